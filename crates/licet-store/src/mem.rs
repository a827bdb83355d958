//! The in-memory reference store.

use std::sync::Mutex;

use licet_core::{Error, MemState, Tx};

use crate::store::Store;

/// Keeps the ledger in memory behind one lock: the reference every other store is tested
/// against. Nothing survives the process.
#[derive(Debug, Default)]
pub struct MemStore {
    state: Mutex<MemState>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }
}

impl Store for MemStore {
    fn transact_dyn(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), Error>) -> Result<(), Error> {
        let mut state = self.state.lock().map_err(|_| Error::Internal("memory store lock poisoned".into()))?;
        state.transact(command)
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}

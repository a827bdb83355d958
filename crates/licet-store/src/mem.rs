//! The in-memory reference store.

use std::sync::Mutex;

use licet_core::{Error, MemState, RecordKey, Table, Tx};

use crate::store::{Store, page_start};

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

    fn keys(&self, table: Table, after: Option<&RecordKey>, limit: usize) -> Result<Vec<RecordKey>, Error> {
        let state = self.state.lock().map_err(|_| Error::Internal("memory store lock poisoned".into()))?;
        let start = page_start(table, after);
        let mut keys: Vec<_> = state
            .records()
            .map(|(key, _)| key.to_bytes())
            .filter(|bytes| bytes.starts_with(&table.prefix()) && *bytes >= start)
            .collect();
        keys.sort();
        Ok(keys.iter().take(limit).filter_map(|bytes| RecordKey::from_bytes(bytes)).collect())
    }
}

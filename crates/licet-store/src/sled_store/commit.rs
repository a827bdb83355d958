//! Commands on the sled store: decided outside the write lock over the reads they record,
//! checked and applied under it ([`SledStore::apply`]), made durable by a shared flush
//! ([`SledStore::make_durable`]).

use std::cell::RefCell;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use licet_core::{Changes, Error as CoreError, Record, RecordKey, Snapshot, Tx};

use super::{Opened, SledStore};

/// A snapshot that remembers what it read (the stored bytes, or their absence), for a command
/// decided outside the write lock and checked under it.
struct RecordingSnapshot<'a> {
    tree: &'a sled::Tree,
    reads: RefCell<Vec<(Vec<u8>, Option<sled::IVec>)>>,
}

impl Snapshot for RecordingSnapshot<'_> {
    fn get(&self, key: &RecordKey) -> Result<Option<Record>, CoreError> {
        let bytes = key.to_bytes();
        let seen = self.tree.get(&bytes).map_err(|e| CoreError::Internal(format!("storage read: {e}")))?;
        // Recorded before decoding, so that a record the command could not read is checked too.
        self.reads.borrow_mut().push((bytes, seen.clone()));
        Ok(match seen {
            None => None,
            Some(stored) => Some(Record::decode(key, &stored)?),
        })
    }
}

/// How often a command decided outside the write lock may find what it read changed before it is
/// decided under the lock.
const OPTIMISTIC_TRIES: usize = 4;

/// A change applied by [`SledStore::apply`] that may not be durable yet.
pub struct Pending {
    seq: u64,
    opened: Arc<Opened>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl SledStore {
    /// The first half of [`Store::transact_dyn`](crate::Store::transact_dyn), for callers that
    /// wait for durability without parking a thread (the server awaits it): decides `command`
    /// (outside the write lock when it can) and applies its changes atomically, then returns its
    /// result with the sequence number that must be durable ([`SledStore::make_durable`]) before
    /// the result is acknowledged — a refusal's too, since what it read may not be durable yet.
    pub fn apply(
        &self,
        command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>,
    ) -> Result<(Result<(), CoreError>, Pending), CoreError> {
        // The lock guards no data of its own, so a poisoned lock is still a valid lock.
        let lock = || Some(self.write.lock().unwrap_or_else(PoisonError::into_inner));
        self.decide_and_apply(command, &lock, true)
            .unwrap_or_else(|| Err(CoreError::Internal("the write lock was not taken".into())))
    }

    /// [`SledStore::apply`] only if it cannot block: `None` when the write lock is held (a
    /// backup, another command) or the database must be opened again first. For callers on an
    /// async worker thread, which then use a blocking thread instead.
    #[allow(clippy::type_complexity)]
    pub fn try_apply(
        &self,
        command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>,
    ) -> Option<Result<(Result<(), CoreError>, Pending), CoreError>> {
        let lock = || match self.write.try_lock() {
            Ok(guard) => Some(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        self.decide_and_apply(command, &lock, false)
    }

    /// Decides `command` outside the write lock, over reads it records; then, under the lock
    /// (from `lock`; `None` means "not now"), checks that every record it read is still as it
    /// read it and applies its changes — or, when one changed, decides again. Writers apply only
    /// under the lock, so a command whose reads are unchanged at that moment decided on the
    /// current ledger: serializable, with only the check and sled's insert inside the lock
    /// (decoding, deciding and encoding were most of it, and every command queued behind them).
    /// After [`OPTIMISTIC_TRIES`] lost races the command is decided under the lock, so it always
    /// finishes.
    #[allow(clippy::type_complexity)]
    fn decide_and_apply<'g>(
        &'g self,
        command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>,
        lock: &dyn Fn() -> Option<std::sync::MutexGuard<'g, ()>>,
        may_reopen: bool,
    ) -> Option<Result<(Result<(), CoreError>, Pending), CoreError>> {
        for _ in 0..OPTIMISTIC_TRIES {
            let Some(opened) = self.opened.read().unwrap_or_else(PoisonError::into_inner).clone() else { break };
            let snapshot = RecordingSnapshot { tree: &opened.ledger, reads: RefCell::new(Vec::new()) };
            let mut tx = Tx::new(&snapshot);
            let result = command(&mut tx);
            let changes = tx.into_changes();
            let reads = snapshot.reads.into_inner();
            let _writer = lock()?;
            let current = self.opened.read().unwrap_or_else(PoisonError::into_inner).clone();
            if !current.is_some_and(|current| Arc::ptr_eq(&current, &opened)) {
                continue;
            }
            let unchanged = reads.iter().all(|(key, seen)| opened.ledger.get(key).is_ok_and(|now| now == *seen));
            if unchanged {
                return Some(self.write_changes(&opened, result.map(|()| changes)));
            }
        }
        let _writer = lock()?;
        let opened = match may_reopen {
            true => match self.current() {
                Ok(opened) => opened,
                Err(e) => return Some(Err(e)),
            },
            false => self.opened.read().unwrap_or_else(PoisonError::into_inner).clone()?,
        };
        // Its reads are recorded too, and need no check: nothing writes while the lock is held.
        let snapshot = RecordingSnapshot { tree: &opened.ledger, reads: RefCell::new(Vec::new()) };
        let mut tx = Tx::new(&snapshot);
        let result = command(&mut tx);
        let changes = tx.into_changes();
        Some(self.write_changes(&opened, result.map(|()| changes)))
    }

    /// Applies a decided command's changes; the caller holds the write lock. A refusal, or a
    /// command that changed nothing, still returns the latest sequence number: what it read may
    /// not be durable yet.
    fn write_changes(
        &self,
        opened: &Arc<Opened>,
        decided: Result<Changes, CoreError>,
    ) -> Result<(Result<(), CoreError>, Pending), CoreError> {
        let pending = |seq| Pending { seq, opened: opened.clone() };
        let changes = match decided {
            Err(e) => return Ok((Err(e), pending(self.group.last_applied()))),
            Ok(changes) if changes.is_empty() => return Ok((Ok(()), pending(self.group.last_applied()))),
            Ok(changes) => changes,
        };
        let commits = self.commits.load(Ordering::SeqCst) + 1;
        let mut writes = changes.iter();
        match (writes.next(), writes.next()) {
            // One record (an activation, a heartbeat: most commands) is written by itself: sled
            // writes one key atomically, and its batches take a lock over the whole database
            // that stalls every reader — the commands being decided outside our lock — meanwhile.
            (Some((key, value)), None) => {
                let written = match value {
                    Some(record) => opened.ledger.insert(key.to_bytes(), record.encode()).map(drop),
                    None => opened.ledger.remove(key.to_bytes()).map(drop),
                };
                written.map_err(|e| self.fail(e))?;
            }
            _ => {
                let mut batch = sled::Batch::default();
                for (key, value) in changes.iter() {
                    match value {
                        Some(record) => batch.insert(key.to_bytes(), record.encode()),
                        None => batch.remove(key.to_bytes()),
                    }
                }
                opened.ledger.apply_batch(batch).map_err(|e| self.fail(e))?;
            }
        }
        self.commits.store(commits, Ordering::SeqCst);
        Ok((Ok(()), pending(self.group.applied())))
    }

    /// Returns once `pending` (from [`SledStore::apply`]) is durable, sharing one flush with
    /// everyone waiting (group commit). Blocks.
    pub fn make_durable(&self, pending: &Pending) -> Result<(), CoreError> {
        // The database the change was applied to: after a failure a reopened one does not hold it.
        self.group.wait_durable(pending.seq, || self.flush_and_seal(&pending.opened, false))
    }

    /// Whether `pending` is durable already.
    pub fn is_durable(&self, pending: &Pending) -> bool {
        self.group.is_durable(pending.seq)
    }

    /// The sequence number of the latest applied change.
    pub fn last_applied(&self) -> u64 {
        self.group.last_applied()
    }
}

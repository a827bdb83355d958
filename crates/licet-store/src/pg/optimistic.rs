//! Commands decided before their transaction, over the records as this node last saw them, and
//! committed only if every one is still so — the PostgreSQL form of the sled store's optimistic
//! commands (`sled_store/commit.rs`).
//!
//! A round trip between processes is most of what a command costs here: each wakes the
//! database's backend, the store's runtime thread and the caller's. Deciding over remembered
//! records and handing what was read and written to the committer (`pg/batch.rs`: `BEGIN`, the
//! check and the writes, `COMMIT`, sent together and shared with other commands) makes a
//! command whose records are remembered one round trip — an activation took four. The
//! check reads every record the command saw inside the serializable transaction, so a command
//! that commits decided on what the transaction read, exactly as if it had read it there. A
//! record that changed meanwhile (another node wrote it) makes the check fail, and a lost race
//! means one likely did: the command is then decided inside its transaction as before, whose
//! reads the node remembers for the next command.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use licet_core::{Error as CoreError, Record, RecordKey, Snapshot, Tx};

use super::batch::{Change, Committer, Seen, Ticket};
use super::{Failure, PgStore, SELECT, doc, step_pool};

/// Records (their stored bytes) as this node last read or wrote them. Never trusted: a command
/// decided over them commits only if each is still so in its transaction. Bounded: emptied
/// when it would hold more than [`RecordCache::CAPACITY`] bytes.
#[derive(Default)]
pub(super) struct RecordCache {
    cached: Mutex<Cached>,
    /// Commands committed as decided over remembered records.
    committed: AtomicU64,
    /// Commands whose remembered records had changed.
    missed: AtomicU64,
}

#[derive(Default)]
struct Cached {
    records: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl RecordCache {
    const CAPACITY: usize = 64 << 20;

    fn lock(&self) -> MutexGuard<'_, Cached> {
        // Only copies behind it: a panic elsewhere leaves nothing inconsistent.
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.lock().records.get(key).cloned()
    }

    /// What remembering `body` under `key` takes: both, their allocations and the map's entry.
    fn cost(key: &[u8], body: &[u8]) -> usize {
        key.len() + body.len() + 96
    }

    /// Remembers `key` as holding `body`, or forgets it (`None`).
    pub(super) fn set(&self, key: &[u8], body: Option<&[u8]>) {
        let mut cache = self.lock();
        if let Some(old) = cache.records.remove(key) {
            cache.bytes -= RecordCache::cost(key, &old);
        }
        let Some(body) = body else { return };
        if cache.bytes + RecordCache::cost(key, body) > RecordCache::CAPACITY {
            // A new map: clearing would keep the old one's buckets.
            *cache = Cached::default();
        }
        cache.bytes += RecordCache::cost(key, body);
        cache.records.insert(key.to_vec(), body.to_vec());
    }
}

/// What a command decided before its transaction does with a record this node does not
/// remember.
#[derive(Clone, Copy, PartialEq)]
enum Misses {
    /// Reads it from the database, outside any transaction (blocking).
    Read,
    /// Gives up deciding: the command runs on a thread that may block.
    GiveUp,
}

/// A command's reads before its transaction: remembered records, else one read each from the
/// database. Keeps what the command saw, for the check.
struct Remembered<'a> {
    store: &'a PgStore,
    misses: Misses,
    deadline: Instant,
    /// A connection for reading records not remembered, taken at the first.
    client: RefCell<Option<deadpool_postgres::Object>>,
    seen: RefCell<Vec<Seen>>,
    /// A read that failed (or, giving up on misses, was needed): the attempt's outcome
    /// whatever the command made of it.
    failed: RefCell<Option<Failure>>,
}

impl Remembered<'_> {
    /// Reads the record at `bytes` from the database, outside any transaction.
    fn read(&self, bytes: &[u8]) -> Result<Option<Vec<u8>>, Failure> {
        if self.misses == Misses::GiveUp {
            return Err(Failure::Stale);
        }
        let mut client = self.client.borrow_mut();
        let client = match &mut *client {
            Some(client) => client,
            empty => empty.insert(step_pool(self.store, self.deadline)?),
        };
        let select = self.store.step(self.deadline, client.prepare_cached(SELECT))?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&bytes];
        let row = self.store.step(self.deadline, client.query_opt(&select, &params))?;
        Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
    }
}

impl Snapshot for Remembered<'_> {
    fn get(&self, key: &RecordKey) -> Result<Option<Record>, CoreError> {
        let bytes = key.to_bytes();
        // A record read twice is the same both times (another thread may remember a newer one
        // meanwhile), and checked once.
        let again = self.seen.borrow().iter().find(|(seen, _)| *seen == bytes).map(|(_, body)| body.clone());
        if let Some(body) = again {
            return Ok(body.as_deref().map(|body| Record::decode(key, body)).transpose()?);
        }
        let body = match self.store.cache.get(&bytes) {
            Some(body) => Some(body),
            None => match self.read(&bytes) {
                Ok(body) => {
                    self.store.cache.set(&bytes, body.as_deref());
                    body
                }
                Err(failure) => {
                    let error = match &failure {
                        Failure::Fail(e) => e.clone(),
                        _ => CoreError::Unavailable("a read before the transaction failed".into()),
                    };
                    *self.failed.borrow_mut() = Some(failure);
                    return Err(error);
                }
            },
        };
        let record = body.as_deref().map(|body| Record::decode(key, body)).transpose();
        self.seen.borrow_mut().push((bytes, body));
        Ok(record?)
    }
}

/// A command decided over the records this node remembers, waiting for its transaction
/// ([`PgStore::decide_remembered`]). It is already on its way: dropped unawaited it may commit
/// all the same, as a command on a blocking thread finishes when its request is dropped.
#[must_use = "its outcome is known only when awaited"]
pub struct Decided {
    /// The command's own outcome (a refusal is checked as a success is).
    result: Result<(), CoreError>,
    /// `None`: it read and changed nothing, so has nothing to commit.
    ticket: Option<Ticket>,
    committer: Arc<Committer>,
    cache: Arc<RecordCache>,
    wait: Duration,
}

impl std::fmt::Debug for Decided {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decided").field("result", &self.result).finish_non_exhaustive()
    }
}

impl Decided {
    /// Waits for the command's transaction, on any runtime with a timer: the command's outcome
    /// once committed (or the database's failure), or `None` when a record it was decided over
    /// had changed or it lost a race — run it with [`StoreExt::transact`](crate::StoreExt::transact)
    /// then.
    pub async fn committed(self) -> Option<Result<(), CoreError>> {
        let Some(ticket) = self.ticket else { return Some(self.result) };
        let outcome = self.committer.outcome(ticket, self.wait).await;
        match tally(&self.cache, outcome) {
            Ok(()) => Some(self.result),
            Err(Failure::Fail(e)) => Some(Err(e)),
            Err(Failure::Stale | Failure::Retry) => None,
        }
    }
}

/// Counts a committed command, or one whose remembered records had changed, and passes its
/// outcome on.
fn tally(cache: &RecordCache, outcome: Result<(), Failure>) -> Result<(), Failure> {
    match &outcome {
        Ok(()) => cache.committed.fetch_add(1, Ordering::Relaxed),
        Err(Failure::Retry | Failure::Stale) => cache.missed.fetch_add(1, Ordering::Relaxed),
        Err(Failure::Fail(_)) => 0,
    };
    outcome
}

impl PgStore {
    /// How many commands this store committed as decided over the records it remembered, and
    /// how many found one of them changed (or lost a race) and were decided again inside their
    /// transaction.
    pub fn remembered(&self) -> (u64, u64) {
        (self.cache.committed.load(Ordering::Relaxed), self.cache.missed.load(Ordering::Relaxed))
    }

    /// How many transactions this store sent for commands decided over remembered records, and
    /// how many commands they carried (several commit together under load).
    pub fn batched(&self) -> (u64, u64) {
        self.committer.sent()
    }

    /// Decides `command` over the records this node remembers, without blocking — so on an
    /// async task — and hands it to the store's committer tasks; await
    /// [`Decided::committed`] for the outcome. `None` when it needs a record this node does
    /// not remember: run it with [`StoreExt::transact`](crate::StoreExt::transact) on a thread that
    /// may block.
    pub fn decide_remembered(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>) -> Option<Decided> {
        let (result, ticket) = self.decide(command, Misses::GiveUp).ok()?;
        Some(Decided {
            result,
            ticket,
            committer: self.committer.clone(),
            cache: self.cache.clone(),
            wait: self.commit_wait(),
        })
    }

    /// How long a command waits for its transaction: it may wait for one before it, each step
    /// with its own deadline.
    fn commit_wait(&self) -> Duration {
        self.options.timeout * 3
    }

    /// One attempt at `command` decided over remembered records (see the [module](self)):
    /// [`Failure::Stale`] when one of them had changed.
    pub(super) fn attempt_optimistic(
        &self,
        command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>,
    ) -> Result<(), Failure> {
        let (result, ticket) = self.decide(command, Misses::Read)?;
        let Some(ticket) = ticket else { return result.map_err(Failure::Fail) };
        tally(&self.cache, self.block_on(self.committer.outcome(ticket, self.commit_wait())))?;
        result.map_err(Failure::Fail)
    }

    /// Decides `command` over remembered records — the others read as `misses` says — and
    /// hands what it read and wrote to the committer: the command's own outcome, and the
    /// ticket to await (none when it read and changed nothing).
    fn decide(
        &self,
        command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>,
        misses: Misses,
    ) -> Result<(Result<(), CoreError>, Option<Ticket>), Failure> {
        let snapshot = Remembered {
            store: self,
            misses,
            deadline: Instant::now() + self.options.timeout,
            client: RefCell::new(None),
            seen: RefCell::new(Vec::new()),
            failed: RefCell::new(None),
        };
        let mut view = Tx::new(&snapshot);
        let result = command(&mut view);
        let failed = snapshot.failed.take();
        // The connection goes back before the command waits for its commit, which needs one.
        if let Some(client) = snapshot.client.take()
            && matches!(failed, Some(Failure::Fail(CoreError::Unavailable(_))))
        {
            // It may be mid-message: never hand it out again.
            drop(deadpool_postgres::Object::take(client));
        }
        if let Some(failure) = failed {
            return Err(failure);
        }
        let changes = view.into_changes();
        let seen = snapshot.seen.into_inner();
        // A refusal commits nothing, but what it was decided on is checked all the same.
        let changes: Vec<Change> = match result {
            Ok(()) => changes
                .iter()
                .map(|(key, value)| (key.to_bytes(), key.table(), value.map(|record| (record.encode(), doc(record)))))
                .collect(),
            Err(_) => Vec::new(),
        };
        if seen.is_empty() && changes.is_empty() {
            // Decided over nothing, changing nothing: nothing to commit.
            return Ok((result, None));
        }
        Ok((result, Some(self.committer.submit(seen, changes))))
    }
}

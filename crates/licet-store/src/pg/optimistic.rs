//! Commands decided before their transaction, over the records as this node last saw them, and
//! committed only if every one is still so — the PostgreSQL form of the sled store's optimistic
//! commands (`sled_store/commit.rs`).
//!
//! A round trip between processes is most of what a command costs here: each wakes the
//! database's backend, the store's runtime thread and the caller's. Deciding over remembered
//! records and sending `BEGIN`, the check of what was read, the writes and `COMMIT` together
//! makes a command whose records are remembered one round trip — an activation took four. The
//! check reads every record the command saw inside the serializable transaction, so a command
//! that commits decided on what the transaction read, exactly as if it had read it there. A
//! record that changed meanwhile (another node wrote it) makes the check fail, and a lost race
//! means one likely did: the command is then decided inside its transaction as before, whose
//! reads the node remembers for the next command.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use futures_util::future::try_join_all;
use licet_core::{Error as CoreError, Record, RecordKey, Snapshot, Tx};
use tokio_postgres::error::SqlState;

use super::{BEGIN, DELETE, Failure, PgStore, SELECT, UPSERT, doc, step_pool};

/// Fails its transaction unless every key holds the body given (or, for a `NULL` body, no
/// record). Each key is looked up by the primary key, whatever the plan. The `CASE` is not
/// constant, so its cast is evaluated — and fails (22P02) — only when a record differs.
const CHECK: &str = "SELECT (CASE WHEN bool_and(seen.body IS NOT DISTINCT FROM \
       (SELECT r.body FROM records r WHERE r.key = seen.key)) IS NOT FALSE \
     THEN '0' ELSE 'changed' END)::integer \
     FROM unnest($1::bytea[], $2::bytea[]) AS seen (key, body)";

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

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
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

/// A record as a command saw it: its key's bytes and its body (`None`: no record).
type Seen = (Vec<u8>, Option<Vec<u8>>);

/// A change to send: the key, its bytes, and the body with its readable JSON (`None`: delete).
type Write<'k> = (&'k RecordKey, Vec<u8>, Option<(Vec<u8>, serde_json::Value)>);

/// A command's reads before its transaction: remembered records, else one read each from the
/// database. Keeps what the command saw, for the check.
struct Remembered<'a> {
    store: &'a PgStore,
    client: &'a deadpool_postgres::Object,
    select: &'a tokio_postgres::Statement,
    deadline: Instant,
    seen: RefCell<Vec<Seen>>,
    /// A read the database failed: the attempt's outcome whatever the command made of it.
    failed: RefCell<Option<Failure>>,
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
            None => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&bytes];
                match self.store.step(self.deadline, self.client.query_opt(self.select, &params)) {
                    Ok(row) => {
                        let body = row.map(|row| row.get::<_, Vec<u8>>(0));
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
                }
            }
        };
        let record = body.as_deref().map(|body| Record::decode(key, body)).transpose();
        self.seen.borrow_mut().push((bytes, body));
        Ok(record?)
    }
}

impl PgStore {
    /// How many commands this store committed as decided over the records it remembered, and
    /// how many found one of them changed (or lost a race) and were decided again inside their
    /// transaction.
    pub fn remembered(&self) -> (u64, u64) {
        (self.cache.committed.load(Ordering::Relaxed), self.cache.missed.load(Ordering::Relaxed))
    }

    /// One attempt at `command` decided over remembered records (see the [module](self)):
    /// [`Failure::Stale`] when one of them had changed.
    pub(super) fn attempt_optimistic(
        &self,
        command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + self.options.timeout;
        let client = step_pool(self, deadline)?;
        let outcome = (|| {
            let select = self.step(deadline, client.prepare_cached(SELECT))?;
            let check = self.step(deadline, client.prepare_cached(CHECK))?;
            let upsert = self.step(deadline, client.prepare_cached(UPSERT))?;
            let delete = self.step(deadline, client.prepare_cached(DELETE))?;
            let snapshot = Remembered {
                store: self,
                client: &client,
                select: &select,
                deadline,
                seen: RefCell::new(Vec::new()),
                failed: RefCell::new(None),
            };
            let mut view = Tx::new(&snapshot);
            let result = command(&mut view);
            if let Some(failure) = snapshot.failed.take() {
                return Err(failure);
            }
            let changes = view.into_changes();
            let seen = snapshot.seen.into_inner();
            // A refusal commits nothing, but what it was decided on is checked all the same.
            let written: Vec<Write<'_>> = match result {
                Ok(()) => changes
                    .iter()
                    .map(|(key, value)| (key, key.to_bytes(), value.map(|record| (record.encode(), doc(record)))))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let keys: Vec<&[u8]> = seen.iter().map(|(key, _)| key.as_slice()).collect();
            let bodies: Vec<Option<&[u8]>> = seen.iter().map(|(_, body)| body.as_deref()).collect();
            let expected: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&keys, &bodies];
            let writes = written.iter().map(|(key, bytes, value)| {
                let (client, upsert, delete) = (&client, &upsert, &delete);
                async move {
                    match value {
                        Some((body, doc)) => client.execute(upsert, &[bytes, &key.table(), body, doc]).await,
                        None => client.execute(delete, &[bytes]).await,
                    }
                }
            });
            let all = async {
                let (began, checked, wrote, committed) = futures_util::join!(
                    client.batch_execute(BEGIN),
                    client.query_one(&check, &expected),
                    try_join_all(writes),
                    client.batch_execute("COMMIT"),
                );
                began?;
                // After a failed check the rest of the pipeline fails with 25P02 and the COMMIT
                // rolls back: the check's answer is the attempt's.
                match checked {
                    Err(e) if e.code() == Some(&SqlState::INVALID_TEXT_REPRESENTATION) => return Ok(false),
                    checked => checked?,
                };
                wrote?;
                committed?;
                Ok(true)
            };
            // Whatever it answers, a COMMIT that was answered ended the transaction.
            if !self.step(deadline, all).inspect_err(|failure| {
                if matches!(failure, Failure::Retry) {
                    self.cache.missed.fetch_add(1, Ordering::Relaxed);
                }
            })? {
                self.cache.missed.fetch_add(1, Ordering::Relaxed);
                for (key, _) in &seen {
                    self.cache.set(key, None);
                }
                return Err(Failure::Stale);
            }
            self.cache.committed.fetch_add(1, Ordering::Relaxed);
            for (_, bytes, value) in &written {
                self.cache.set(bytes, value.as_ref().map(|(body, _)| body.as_slice()));
            }
            result.map_err(Failure::Fail)
        })();
        if matches!(outcome, Err(Failure::Fail(CoreError::Unavailable(_)))) {
            // The connection may be mid-message or mid-transaction: never hand it out again.
            drop(deadpool_postgres::Object::take(client));
        }
        outcome
    }
}

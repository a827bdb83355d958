//! Commands decided over remembered records (`pg/optimistic.rs`), committed several to a
//! transaction: the PostgreSQL form of the sled store's group flush.
//!
//! Each commit costs the database a transaction — its start, its end, its write-ahead-log flush
//! — and each statement a plan's execution; each round trip wakes a backend and a thread here.
//! Two committer tasks per store take the commands waiting and send them together as one
//! pipeline: `BEGIN`; one statement that checks every record they were decided over and makes
//! all their writes; `COMMIT`. Under load, commands gather while the previous transactions
//! commit, so a transaction carries several.
//!
//! Why it stays serializable: commands in one transaction touch no record another of them
//! writes (the committer keeps such a command for a later transaction), so applying them
//! together equals applying them one after the other, each over the records it was decided
//! on — and the check proves, inside the serializable transaction and before the writes, that
//! those are the records the transaction reads. When a transaction of several fails (a changed
//! record, a lost race, an error of the database's own) its commands are sent again one to a
//! transaction, so each gets its own outcome and none fails for another's record.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use licet_core::Error as CoreError;
use tokio::sync::{Notify, oneshot};
use tokio_postgres::error::SqlState;

use super::optimistic::RecordCache;
use super::{BEGIN, Failure, classify, connection};

/// Transactions of commands in flight at once, each on a connection of its own. Fewer make
/// larger transactions, and each costs the database the same whatever it carries: on the
/// two-node bench one or two per node did best (8 % more than four, 20 % more than six); two
/// keep commands moving while one transaction waits on a slow connection.
pub(super) const COMMITTERS: usize = 2;

/// Commands in one transaction at most. Each command's check takes predicate locks on the
/// records it read; past 32 on one table PostgreSQL widens them to the whole table, and
/// every concurrent writer would then conflict with the transaction.
const LARGEST: usize = 16;

/// Records one transaction's check reads at most (unless a single command reads more), for the
/// same reason.
const MOST_READ: usize = 24;

/// A command's state, shared by its caller and the committer: waiting in the queue, in a
/// transaction sent (it may commit), or withdrawn by a caller that stopped waiting (it is
/// never sent).
const WAITING: u8 = 0;
const SENT: u8 = 1;
const WITHDRAWN: u8 = 2;

/// A transaction's commands in one statement: it fails its transaction unless every key in
/// `$1` holds the body in `$2` (or, for a `NULL` body, no record), and writes the records in
/// `$3`–`$6` and deletes those in `$7` (no key twice: see [`Committer::take`]). Every part of a
/// statement reads the same snapshot, so the check sees the records as they were before its
/// writes; each key is looked up by the primary key, whatever the plan. The `CASE` is not
/// constant, so its cast is evaluated — and fails (22P02) — only when a record differs; the
/// writes, in `WITH`, run whether or not the answer reads them. Outside a serializable
/// transaction (were its `BEGIN` lost) it fails the same way.
const APPLY: &str = "WITH written AS (\
       INSERT INTO records (key, kind, body, doc) \
       SELECT * FROM unnest($3::bytea[], $4::text[], $5::bytea[], $6::jsonb[]) \
       ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, body = EXCLUDED.body, doc = EXCLUDED.doc), \
     removed AS (DELETE FROM records WHERE key = ANY($7::bytea[])) \
     SELECT (CASE WHEN current_setting('transaction_isolation') = 'serializable' \
       AND bool_and(seen.body IS NOT DISTINCT FROM \
       (SELECT r.body FROM records r WHERE r.key = seen.key)) IS NOT FALSE \
     THEN '0' ELSE 'changed' END)::integer \
     FROM unnest($1::bytea[], $2::bytea[]) AS seen (key, body)";

/// A record as a command saw it: its key's bytes and its body (`None`: no record).
pub(super) type Seen = (Vec<u8>, Option<Vec<u8>>);

/// A change to make: the key's bytes, its table's name, and the body with its readable JSON
/// (`None`: delete).
pub(super) type Change = (Vec<u8>, &'static str, Option<(Vec<u8>, serde_json::Value)>);

/// A command waiting to commit.
struct Pending {
    id: u64,
    state: Arc<AtomicU8>,
    /// The records it was decided over.
    seen: Vec<Seen>,
    /// What it changes (nothing for a refusal, which is checked all the same).
    changes: Vec<Change>,
    reply: oneshot::Sender<Result<(), Failure>>,
}

impl Pending {
    fn written(&self) -> impl Iterator<Item = &[u8]> {
        self.changes.iter().map(|(key, _, _)| key.as_slice())
    }

    fn read(&self) -> impl Iterator<Item = &[u8]> {
        self.seen.iter().map(|(key, _)| key.as_slice())
    }

    /// Marks the command sent, unless its caller withdrew it.
    fn claim(&self) -> bool {
        self.state.compare_exchange(WAITING, SENT, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

/// The commands waiting to commit, shared by the threads that decided them and the committer
/// tasks ([`commit_batches`]).
pub(super) struct Committer {
    /// The database's name, for messages.
    name: String,
    waiting: Mutex<VecDeque<Pending>>,
    /// Wakes a committer task when a command is waiting.
    work: Notify,
    next_id: AtomicU64,
    /// Transactions sent, and the commands they carried.
    transactions: AtomicU64,
    commands: AtomicU64,
}

/// A command handed to the committer: wait for its outcome with [`Committer::outcome`].
pub(super) struct Ticket {
    id: u64,
    state: Arc<AtomicU8>,
    answer: oneshot::Receiver<Result<(), Failure>>,
}

impl Committer {
    pub(super) fn new(name: String) -> Committer {
        Committer {
            name,
            waiting: Mutex::default(),
            work: Notify::new(),
            next_id: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            commands: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Pending>> {
        // A queue of plain values: a panic elsewhere leaves nothing half-done.
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands over a command decided over `seen` that makes `changes`.
    pub(super) fn submit(&self, seen: Vec<Seen>, changes: Vec<Change>) -> Ticket {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(WAITING));
        self.lock().push_back(Pending { id, state: state.clone(), seen, changes, reply });
        self.work.notify_one();
        Ticket { id, state, answer }
    }

    /// The outcome of `ticket`'s command, on any runtime with a timer. Past `wait` the
    /// command is withdrawn: one not sent never will be and fails as unavailable; one in a
    /// transaction sent is answered by that transaction (a failed one is not sent again), and
    /// waited for `wait` more at most — past that it fails as unavailable too, and may yet
    /// commit, as one whose connection is lost during its `COMMIT` may.
    pub(super) async fn outcome(&self, mut ticket: Ticket, wait: Duration) -> Result<(), Failure> {
        let late = || Err(Failure::Fail(CoreError::Unavailable(format!("database {}: no commit in time", self.name))));
        match tokio::time::timeout(wait, &mut ticket.answer).await {
            Ok(Ok(outcome)) => return outcome,
            Ok(Err(_)) => return late(),
            Err(_) => {}
        }
        if ticket.state.swap(WITHDRAWN, Ordering::AcqRel) == WAITING {
            self.lock().retain(|pending| pending.id != ticket.id);
            return late();
        }
        match tokio::time::timeout(wait, ticket.answer).await {
            Ok(Ok(outcome)) => outcome,
            // Its transaction failed and it was withdrawn: nothing of it committed.
            _ => late(),
        }
    }

    /// Transactions sent and commands they carried, since the store opened.
    pub(super) fn sent(&self) -> (u64, u64) {
        (self.transactions.load(Ordering::Relaxed), self.commands.load(Ordering::Relaxed))
    }

    /// The next transaction's commands: those waiting, in order, up to [`LARGEST`] and
    /// [`MOST_READ`] — less any that writes a record another of them reads or writes, or reads
    /// one another writes, which waits for a later transaction.
    fn take(&self) -> Vec<Pending> {
        let mut waiting = self.lock();
        let mut chosen = Vec::new();
        {
            let (mut read, mut written) = (HashSet::<&[u8]>::new(), HashSet::<&[u8]>::new());
            for (i, pending) in waiting.iter().enumerate() {
                if chosen.len() == LARGEST || (!chosen.is_empty() && read.len() + pending.seen.len() > MOST_READ) {
                    break;
                }
                let clashes = pending.written().any(|key| read.contains(key) || written.contains(key))
                    || pending.read().any(|key| written.contains(key));
                if !clashes {
                    read.extend(pending.read());
                    written.extend(pending.written());
                    chosen.push(i);
                }
            }
        }
        let mut batch: Vec<Pending> = chosen.iter().rev().filter_map(|&i| waiting.remove(i)).collect();
        batch.reverse();
        batch
    }
}

/// Starts the store's [`COMMITTERS`] on `runtime`, each replaced should it panic (the commands
/// it held then fail as unavailable).
pub(super) fn start(
    runtime: &tokio::runtime::Handle,
    committer: &Arc<Committer>,
    cache: &Arc<RecordCache>,
    pool: &Pool,
    timeout: Duration,
) {
    for _ in 0..COMMITTERS {
        let (committer, cache, pool) = (committer.clone(), cache.clone(), pool.clone());
        runtime.spawn(async move {
            loop {
                let task = tokio::spawn(commit_batches(committer.clone(), cache.clone(), pool.clone(), timeout));
                match task.await {
                    // Not at once: a committer that panics at its start would spin.
                    Err(e) if e.is_panic() => tokio::time::sleep(Duration::from_millis(100)).await,
                    // Cancelled: the runtime is shutting down.
                    _ => return,
                }
            }
        });
    }
}

/// A committer task: sends the waiting commands, a transaction at a time, until the store's
/// runtime shuts down. A store runs [`COMMITTERS`] of them.
async fn commit_batches(committer: Arc<Committer>, cache: Arc<RecordCache>, pool: Pool, timeout: Duration) {
    // The database gives up on a transaction before its caller does, so that a transaction
    // its caller stopped waiting for has failed rather than committed unseen.
    let limit = (timeout * 4 / 5).as_millis().max(1);
    let begin = format!("{BEGIN}; SET LOCAL statement_timeout = {limit}; SET LOCAL lock_timeout = {limit}");
    loop {
        let batch = committer.take();
        if batch.is_empty() {
            committer.work.notified().await;
            continue;
        }
        let client = match connection(&pool, &committer.name, timeout).await {
            Ok(client) => client,
            Err(lost) => {
                batch.into_iter().for_each(|pending| answer(pending, Err(Failure::Fail(lost.clone())), &cache));
                continue;
            }
        };
        settle(&committer, client, batch, &cache, &begin, timeout).await;
    }
}

/// Commits `batch` on `client` in one transaction or, should that fail, one command to a
/// transaction, and answers each command.
async fn settle(
    committer: &Committer,
    client: Object,
    batch: Vec<Pending>,
    cache: &RecordCache,
    begin: &str,
    timeout: Duration,
) {
    let mut rest = VecDeque::from(batch);
    let mut together = true;
    while !rest.is_empty() {
        let mut now: Vec<Pending> =
            if together { rest.drain(..).collect() } else { rest.pop_front().into_iter().collect() };
        // A command whose caller stopped waiting is not sent.
        now.retain(Pending::claim);
        if now.is_empty() {
            continue;
        }
        committer.transactions.fetch_add(1, Ordering::Relaxed);
        committer.commands.fetch_add(now.len() as u64, Ordering::Relaxed);
        let sent = tokio::time::timeout(timeout, send(&client, begin, &now)).await;
        let outcome = classify(&committer.name, sent);
        match outcome {
            Ok(true) => now.into_iter().for_each(|pending| answer(pending, Ok(()), cache)),
            Err(Failure::Fail(lost @ CoreError::Unavailable(_))) => {
                // The connection may be mid-message or mid-transaction: never hand it out again.
                drop(Object::take(client));
                for pending in now.into_iter().chain(rest) {
                    answer(pending, Err(Failure::Fail(lost.clone())), cache);
                }
                return;
            }
            // One of them failed the transaction (which committed nothing): each alone, to
            // learn which — but none whose caller withdrew it meanwhile, who hears so.
            _ if now.len() > 1 => {
                let back = |pending: &Pending| {
                    pending.state.compare_exchange(SENT, WAITING, Ordering::AcqRel, Ordering::Acquire).is_ok()
                };
                rest = now.into_iter().filter(back).collect();
                together = false;
            }
            Ok(false) => now.into_iter().for_each(|pending| answer(pending, Err(Failure::Stale), cache)),
            Err(failure) => now.into_iter().for_each(|pending| answer(pending, Err(failure.clone()), cache)),
        }
    }
}

/// Tells a command its outcome, first remembering what it wrote (or, when one of the records
/// it was decided over had changed, forgetting those).
fn answer(pending: Pending, outcome: Result<(), Failure>, cache: &RecordCache) {
    match &outcome {
        Ok(()) => {
            for (key, _, value) in &pending.changes {
                cache.set(key, value.as_ref().map(|(body, _)| body.as_slice()));
            }
        }
        Err(Failure::Stale) => {
            for (key, _) in &pending.seen {
                cache.set(key, None);
            }
        }
        Err(_) => {}
    }
    // A caller that stopped waiting has gone: nothing to tell.
    let _ = pending.reply.send(outcome);
}

/// Sends `batch` as one transaction, pipelined: `BEGIN`, [`APPLY`], `COMMIT`. `Ok(false)` when
/// a record one of its commands was decided over had changed — or, as the same error, when
/// one of its writes was refused as invalid text (22P02): run inside its own transaction, the
/// command then meets that refusal itself.
async fn send(client: &Object, begin: &str, batch: &[Pending]) -> Result<bool, tokio_postgres::Error> {
    let apply = client.prepare_cached(APPLY).await?;
    let seen = batch.iter().flat_map(|pending| &pending.seen);
    let keys: Vec<&[u8]> = seen.clone().map(|(key, _)| key.as_slice()).collect();
    let bodies: Vec<Option<&[u8]>> = seen.map(|(_, body)| body.as_deref()).collect();
    let (mut upserted, mut kinds, mut contents, mut docs, mut deleted) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, kind, value) in batch.iter().flat_map(|pending| &pending.changes) {
        match value {
            Some((body, doc)) => {
                upserted.push(key.as_slice());
                kinds.push(*kind);
                contents.push(body.as_slice());
                docs.push(doc);
            }
            None => deleted.push(key.as_slice()),
        }
    }
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&keys, &bodies, &upserted, &kinds, &contents, &docs, &deleted];
    let (began, applied, committed) = futures_util::join!(
        client.batch_execute(begin),
        client.query_one(&apply, &params),
        client.batch_execute("COMMIT"),
    );
    began?;
    // After a failed statement the COMMIT rolls back: the statement's answer is the
    // transaction's.
    match applied {
        Err(e) if e.code() == Some(&SqlState::INVALID_TEXT_REPRESENTATION) => return Ok(false),
        applied => applied?,
    };
    committed?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that read `read` (as absent) and writes `written`, with where its answer goes.
    fn pending(read: &[&str], written: &[&str]) -> (Pending, oneshot::Receiver<Result<(), Failure>>) {
        let (reply, answer) = oneshot::channel();
        let seen = read.iter().map(|key| (key.as_bytes().to_vec(), None)).collect();
        let changes = written
            .iter()
            .map(|key| {
                (key.as_bytes().to_vec(), "account", Some((format!("{key}!").into_bytes(), serde_json::json!({}))))
            })
            .collect();
        (Pending { id: 0, state: Arc::new(AtomicU8::new(WAITING)), seen, changes, reply }, answer)
    }

    fn ids(batch: &[Pending]) -> Vec<u64> {
        batch.iter().map(|pending| pending.id).collect()
    }

    #[test]
    fn a_transaction_takes_no_command_that_writes_what_another_reads_or_writes() {
        let committer = Committer::new("test".into());
        let commands = [
            (&["k1"][..], &["k2"][..]), // 0: taken
            (&["k2"][..], &[][..]),     // 1: reads what 0 writes
            (&["k1"][..], &["k3"][..]), // 2: taken (reading what 0 reads is no clash)
            (&[][..], &["k1"][..]),     // 3: writes what 0 and 2 read
            (&[][..], &["k3"][..]),     // 4: writes what 2 writes
            (&["k4"][..], &["k5"][..]), // 5: taken
        ];
        for (id, (read, written)) in commands.iter().enumerate() {
            let (mut command, _) = pending(read, written);
            command.id = id as u64;
            committer.lock().push_back(command);
        }
        assert_eq!(ids(&committer.take()), [0, 2, 5]);
        // The ones kept back wait in their order; without 0 and 2 they clash no more.
        assert_eq!(ids(&committer.take()), [1, 3, 4]);
        assert!(committer.take().is_empty());
    }

    #[test]
    fn a_transaction_takes_at_most_so_many_commands_and_records_read() {
        let committer = Committer::new("test".into());
        for i in 0..LARGEST + 3 {
            let key = format!("k{i}");
            committer.lock().push_back(pending(&[], &[&key]).0);
        }
        assert_eq!(committer.take().len(), LARGEST);
        assert_eq!(committer.take().len(), 3);
        // And records read: three commands reading ten each make two transactions.
        for i in 0..3 {
            let keys: Vec<String> = (0..10).map(|k| format!("r{i}.{k}")).collect();
            let read: Vec<&str> = keys.iter().map(String::as_str).collect();
            committer.lock().push_back(pending(&read, &[]).0);
        }
        assert_eq!(committer.take().len(), 2);
        assert_eq!(committer.take().len(), 1);
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn a_command_not_sent_when_its_caller_stops_waiting_is_withdrawn_and_never_sent() {
        let committer = Committer::new("test".into());
        let ticket = committer.submit(Vec::new(), Vec::new());
        let outcome = runtime().block_on(committer.outcome(ticket, Duration::from_millis(20)));
        assert!(matches!(outcome, Err(Failure::Fail(CoreError::Unavailable(_)))));
        assert!(committer.take().is_empty(), "withdrawn from the queue");
        // Had a committer taken it first, it would not claim it.
        let (command, _answer) = pending(&[], &["k"]);
        command.state.store(WITHDRAWN, Ordering::Release);
        assert!(!command.claim());
    }

    #[test]
    fn a_command_sent_when_its_caller_stops_waiting_is_still_answered() {
        let committer = Committer::new("test".into());
        let ticket = committer.submit(Vec::new(), Vec::new());
        let taken = committer.take().remove(0);
        assert!(taken.claim());
        // Answered after the first wait ran out, well inside the second.
        let answering = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            let _ = taken.reply.send(Ok(()));
        });
        let state = ticket.state.clone();
        let outcome = runtime().block_on(committer.outcome(ticket, Duration::from_secs(2)));
        assert!(outcome.is_ok(), "the transaction's own answer, not a guess");
        answering.join().unwrap();
        // Should its transaction have failed, it would not have been sent again.
        assert_eq!(state.load(Ordering::Acquire), WITHDRAWN);
    }

    #[cfg(feature = "test-postgres")]
    mod database {
        use super::*;
        use crate::pg::PgStore;
        use crate::pg::test_instance::TestInstance;

        /// The transaction that last wrote each of `keys` (`None`: no record).
        fn writers(store: &PgStore, keys: &[&str]) -> Vec<Option<String>> {
            store.block_on(async {
                let client = store.pool.get().await.unwrap();
                let mut writers = Vec::new();
                for key in keys {
                    let row = client
                        .query_opt("SELECT xmin::text FROM records WHERE key = $1", &[&key.as_bytes()])
                        .await
                        .unwrap();
                    writers.push(row.map(|row| row.get(0)));
                }
                writers
            })
        }

        fn settle_all(store: &PgStore, batch: Vec<Pending>) {
            store.block_on(async {
                let client = store.pool.get().await.unwrap();
                let begin = format!("{BEGIN}; SET LOCAL lock_timeout = 20000");
                settle(&store.committer, client, batch, &store.cache, &begin, Duration::from_secs(20)).await;
            });
        }

        fn answer_of(mut answer: oneshot::Receiver<Result<(), Failure>>) -> Result<(), Failure> {
            answer.try_recv().expect("every command is answered")
        }

        #[test]
        fn commands_that_clash_with_none_commit_in_one_transaction() {
            let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
            let store = PgStore::connect(&server.create_database().unwrap()).unwrap();
            let (a, a_answer) = pending(&["a"], &["a"]);
            let (b, b_answer) = pending(&[], &["b"]);
            let (c, c_answer) = pending(&["x"], &["c"]);
            settle_all(&store, vec![a, b, c]);
            for answer in [a_answer, b_answer, c_answer] {
                assert!(answer_of(answer).is_ok());
            }
            let writers = writers(&store, &["a", "b", "c"]);
            assert!(writers[0].is_some() && writers.iter().all(|w| *w == writers[0]), "{writers:?}");
            // What they wrote is remembered.
            assert_eq!(store.cache.get(b"b").as_deref(), Some(&b"b!"[..]));
        }

        #[test]
        fn a_command_decided_over_a_changed_record_fails_alone_and_the_others_commit() {
            let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
            let store = PgStore::connect(&server.create_database().unwrap()).unwrap();
            let (a, a_answer) = pending(&["a"], &["a"]);
            // b was decided over a record "b" that is not there.
            let (mut b, b_answer) = pending(&[], &["b"]);
            b.seen.push((b"b".to_vec(), Some(b"old".to_vec())));
            store.cache.set(b"b", Some(b"old"));
            let (c, c_answer) = pending(&[], &["c"]);
            settle_all(&store, vec![a, b, c]);
            assert!(answer_of(a_answer).is_ok());
            assert!(matches!(answer_of(b_answer), Err(Failure::Stale)));
            assert!(answer_of(c_answer).is_ok());
            let writers = writers(&store, &["a", "b", "c"]);
            assert!(writers[1].is_none(), "b committed nothing");
            assert!(writers[0].is_some() && writers[2].is_some() && writers[0] != writers[2], "{writers:?}");
            // The changed record is forgotten, to be read afresh.
            assert_eq!(store.cache.get(b"b"), None);
        }
    }
}

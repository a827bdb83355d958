//! The ledger on PostgreSQL (SPEC §7): one database shared by any number of servers.
//!
//! Every command runs in one `SERIALIZABLE` transaction. It is first decided over the records
//! as this node last saw them and committed only if its transaction finds every one unchanged
//! (`pg/optimistic.rs`: one round trip when they are remembered); should one have changed, it reads
//! the records it names by key inside its transaction. A serialization failure
//! or deadlock (40001, 40P01) runs the command again, a bounded number of times — the [`Store`]
//! contract already asks commands to be pure functions of what they read. The commit returns
//! only once the database has made it durable, so nothing acknowledged depends on this
//! process.
//!
//! The store owns a small Tokio runtime of its own for its connections, so it works the same
//! from the server's blocking threads, from a command line and from plain tests. Blocking calls
//! ([`Store::transact_dyn`] and the other non-`async` methods) must not be made on an async
//! worker thread; the `async` methods of [`shared`] may be awaited on any runtime.
//!
//! A lost database never hangs a caller: every step has a deadline ([`PgOptions::timeout`]) and
//! the pool's connection attempts are bounded; meanwhile commands fail with
//! [`CoreError::Unavailable`] (HTTP 503) and the pool reconnects by itself when the database is
//! back.

mod batch;
mod optimistic;
mod schema;
pub mod shared;
#[cfg(feature = "test-postgres")]
pub mod test_instance;
mod tls;

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::try_join_all;
use licet_core::{Entropy, Error as CoreError, Record, RecordKey, Snapshot, Table, Tx};
use tokio_postgres::IsolationLevel;
use tokio_postgres::error::SqlState;

pub use optimistic::Decided;
pub use schema::PG_SCHEMA_VERSION;

use crate::error::Error;
use crate::os::OsEntropy;
use crate::store::Store;
use batch::Committer;
use optimistic::RecordCache;

/// How a [`PgStore`] connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgOptions {
    /// Connections kept open at most.
    pub pool_size: usize,
    /// The deadline of each step (connecting, a query, the commit): past it the database counts
    /// as lost and the command fails with [`CoreError::Unavailable`].
    pub timeout: Duration,
    /// How many times a command that lost a serialization race is run again.
    pub retries: u32,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions { pool_size: 16, timeout: Duration::from_secs(3), retries: 60 }
    }
}

/// The ledger in a PostgreSQL database; see the [module](self).
pub struct PgStore {
    pool: Pool,
    /// Taken only when the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    options: PgOptions,
    /// The database's address without its password, for messages.
    name: String,
    /// The schema versions before and after opening, when it was migrated.
    migrated: Option<(i32, i32)>,
    /// Records as this node last read or wrote them, for commands decided before their
    /// transaction ([`PgStore::attempt_optimistic`]).
    cache: Arc<RecordCache>,
    /// Those commands waiting for their transaction, and the tasks that send them.
    committer: Arc<Committer>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("database", &self.name).finish_non_exhaustive()
    }
}

/// Why one attempt at a transaction failed.
#[derive(Clone)]
enum Failure {
    /// Lost a race with another transaction: run the command again.
    Retry,
    /// A command decided over remembered records found one changed in its transaction: run it
    /// again at once, reading inside its transaction.
    Stale,
    /// The command refused, or the database failed.
    Fail(CoreError),
}

/// The database's name for messages: host, port and database, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// What a failed database call means: the database is unavailable (no answer, a lost
/// connection, a shutdown, no resources, a transaction rolled back by a conflict or a standby
/// that is read-only: SQLSTATE classes 08, 40, 53, 57, 58 and 25006) or it answered with an error
/// of its own.
pub(crate) fn failed(name: &str, e: &tokio_postgres::Error) -> CoreError {
    match e.as_db_error() {
        Some(db) => {
            let what = format!("database {name}: {} ({})", db.message(), db.code().code());
            let code = db.code().code();
            // 25P02: the connection is inside a transaction that already failed — this one is
            // lost, whatever failed first; 25006: a read-only standby.
            if ["08", "40", "53", "57", "58"].iter().any(|class| code.starts_with(class))
                || code == "25006"
                || code == "25P02"
            {
                CoreError::Unavailable(what)
            } else {
                CoreError::Internal(what)
            }
        }
        None => CoreError::Unavailable(format!("database {name}: {e}")),
    }
}

/// The [`CoreError`] for a connection the pool could not give: always unavailable, naming the
/// database's own error (e.g. `too many clients already (53300)`) when it sent one.
pub(crate) fn pool_failed(name: &str, e: &deadpool_postgres::PoolError) -> CoreError {
    let what = match e {
        deadpool_postgres::PoolError::Backend(e) => match e.as_db_error() {
            Some(db) => format!("no connection: {} ({})", db.message(), db.code().code()),
            None => format!("no connection: {e}"),
        },
        other => format!("no connection: {other}"),
    };
    CoreError::Unavailable(format!("database {name}: {what}"))
}

/// Whether the database refused because of a concurrent transaction (worth running again). A
/// statement refused because its transaction had already failed (25P02) also only means that
/// this attempt is over: the command runs again in a new transaction (a CI run under load once
/// answered a registration 500 with it, its first failure unseen). Nor does a row another
/// transaction held past this one's lock timeout (55P03, set on committers' transactions).
fn is_race(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::IN_FAILED_SQL_TRANSACTION
            || *c == SqlState::LOCK_NOT_AVAILABLE
    )
}

impl PgStore {
    /// Connects with default [`PgOptions`] and brings the schema up to date.
    pub fn connect(url: &str) -> Result<PgStore, Error> {
        PgStore::connect_with(url, PgOptions::default())
    }

    /// Connects to the database at `url` (`postgres://user:password@host:port/db`), brings the
    /// schema up to date (safe with other nodes starting at once) and refuses a database
    /// written by a newer release.
    ///
    /// TLS follows the URL's `sslmode` (`disable`, `prefer` — the default — or `require`); the
    /// server's certificate is always verified, against the system's roots or, with
    /// `sslrootcert=PATH` in the URL (as libpq names it), against the CA certificates in that
    /// PEM file.
    pub fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, Error> {
        let bad_url = |message: String| Error::Database { database: "the database URL".into(), message };
        let (url, root_cert) = tls::split_root_cert(url);
        let config: tokio_postgres::Config = url.parse().map_err(|e| bad_url(format!("{e}")))?;
        let tls = tls::connector(root_cert.as_deref()).map_err(bad_url)?;
        let name = describe(&config);
        let db_error = |message: String| Error::Database { database: name.clone(), message };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("licet-pg")
            .enable_all()
            .build()
            .map_err(|e| db_error(e.to_string()))?;
        let mut pg_config = config;
        pg_config.connect_timeout(options.timeout);
        // Durable before acknowledged, whatever the role or database says. Statements are
        // planned once per connection: PostgreSQL would otherwise plan the check of a command's
        // reads ([`optimistic`]) again at every execution, a tenth of the machine under load.
        let given = pg_config.get_options().unwrap_or("").to_owned();
        pg_config.options(format!("{given} -c synchronous_commit=on -c plan_cache_mode=force_generic_plan").trim());
        let manager = Manager::from_config(pg_config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .build()
            .map_err(|e| db_error(e.to_string()))?;
        let handle = runtime.handle().clone();
        let mut store = PgStore {
            pool,
            runtime: Some(runtime),
            handle,
            options,
            name: name.clone(),
            migrated: None,
            cache: Arc::default(),
            committer: Arc::new(Committer::new(name.clone())),
        };
        batch::start(&store.handle, &store.committer, &store.cache, &store.pool, store.options.timeout);
        let migrated = store.block_on(async {
            let mut client = store.pool.get().await.map_err(|e| db_error(e.to_string()))?;
            schema::migrate(&mut client).await.map_err(|e| match e {
                schema::SchemaError::Newer(found) => {
                    Error::NewerSchema { path: store.name.clone().into(), found: found.to_string() }
                }
                schema::SchemaError::Database(e) => db_error(e.to_string()),
            })
        })?;
        if migrated.from != migrated.to {
            store.migrated = Some((migrated.from, migrated.to));
        }
        Ok(store)
    }

    /// The database's address, without its password.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The schema versions before and after opening, when opening migrated the schema.
    pub fn migrated(&self) -> Option<(i32, i32)> {
        self.migrated
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `future` on the store's runtime from a thread that may block.
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.handle().block_on(future)
    }

    /// Runs `future` on the store's runtime and awaits it from any runtime.
    pub(crate) async fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, CoreError>> + Send + 'static,
    ) -> Result<T, CoreError> {
        match self.handle().spawn(future).await {
            Ok(result) => result,
            Err(e) => Err(CoreError::Internal(format!("a database task did not finish: {e}"))),
        }
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.options.timeout
    }

    /// The [`CoreError`] for a database that failed: unavailable unless it answered with an
    /// error of its own.
    pub(crate) fn failed(&self, e: &tokio_postgres::Error) -> CoreError {
        failed(&self.name, e)
    }

    pub(crate) fn unavailable(&self, e: impl std::fmt::Display) -> CoreError {
        CoreError::Unavailable(format!("database {}: {e}", self.name))
    }

    /// How many records the ledger holds.
    pub fn record_count(&self) -> Result<u64, CoreError> {
        self.block_on(async {
            let client = self.pool.get().await.map_err(|e| pool_failed(&self.name, &e))?;
            let row = client.query_one("SELECT count(*) FROM records", &[]).await.map_err(|e| self.failed(&e))?;
            Ok(row.get::<_, i64>(0).max(0) as u64)
        })
    }

    /// Copies records (an embedded store's, for `licet-server migrate`) and the cluster's
    /// registration into this database in one transaction; refuses a database that already holds
    /// a record or a key.
    pub fn copy_records(
        &self,
        records: &[(RecordKey, Record)],
        registration: &shared::Registration,
    ) -> Result<usize, CoreError> {
        self.block_on(async {
            let mut client = self.pool.get().await.map_err(|e| pool_failed(&self.name, &e))?;
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::Serializable)
                .start()
                .await
                .map_err(|e| self.failed(&e))?;
            tx.execute("LOCK TABLE records IN EXCLUSIVE MODE", &[]).await.map_err(|e| self.failed(&e))?;
            let row = tx.query_one("SELECT count(*) FROM records", &[]).await.map_err(|e| self.failed(&e))?;
            if row.get::<_, i64>(0) != 0 {
                return Err(CoreError::Internal(format!(
                    "database {} already holds a ledger; migrate only into an empty one",
                    self.name
                )));
            }
            let upsert = tx.prepare_cached(UPSERT).await.map_err(|e| self.failed(&e))?;
            for chunk in records.chunks(256) {
                let writes = chunk.iter().map(|(key, record)| write_one(&*tx, &upsert, key, record));
                try_join_all(writes).await.map_err(|e| self.failed(&e))?;
            }
            registration
                .record_in(&tx)
                .await
                .map_err(|e| CoreError::Internal(format!("database {}: {e}", self.name)))?;
            tx.commit().await.map_err(|e| self.failed(&e))?;
            Ok(records.len())
        })
    }

    /// One attempt at running `command` with its reads inside a serializable transaction, for
    /// a command whose remembered records had changed ([`optimistic`]). Round trips between
    /// processes are what a command costs here, so the transaction's `BEGIN` travels with its
    /// first read and its `COMMIT` with its writes (tokio-postgres pipelines requests made
    /// together on one connection): an activation takes four round trips rather than six. Should
    /// a write fail, the database turns that `COMMIT` into a rollback, and the write's error is
    /// the attempt's.
    fn attempt(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>) -> Result<(), Failure> {
        let deadline = Instant::now() + self.options.timeout;
        let client = step_pool(self, deadline)?;
        // `Err((failure, whether the transaction is still open))`.
        let outcome = (|| {
            // Prepared once per connection and cached: no round trip after the first.
            let select = self.step(deadline, client.prepare_cached(SELECT)).map_err(|f| (f, false))?;
            let upsert = self.step(deadline, client.prepare_cached(UPSERT)).map_err(|f| (f, false))?;
            let delete = self.step(deadline, client.prepare_cached(DELETE)).map_err(|f| (f, false))?;
            let snapshot = PgSnapshot {
                store: self,
                client: &client,
                select: &select,
                deadline,
                begun: Cell::new(false),
                race: Cell::new(false),
            };
            let mut view = Tx::new(&snapshot);
            let result = command(&mut view);
            let begun = snapshot.begun.get();
            if snapshot.race.get() {
                return Err((Failure::Retry, begun));
            }
            result.map_err(|e| (Failure::Fail(e), begun))?;
            if !begun {
                // A command that read nothing: its transaction begins on its own.
                self.step(deadline, client.batch_execute(BEGIN)).map_err(|f| (f, true))?;
            }
            let changes = view.into_changes();
            let writes = changes.iter().map(|(key, value)| {
                let (client, upsert, delete) = (&client, &upsert, &delete);
                async move {
                    match value {
                        Some(record) => write_one(&***client, upsert, key, record).await,
                        None => client.execute(delete, &[&key.to_bytes()]).await,
                    }
                }
            });
            let write_and_commit = async {
                let (written, committed) = futures_util::join!(try_join_all(writes), client.batch_execute("COMMIT"));
                written?;
                committed
            };
            // Whatever it answers, a COMMIT that was answered ended the transaction.
            self.step(deadline, write_and_commit).map_err(|f| (f, false))?;
            // What it wrote is read afresh by the next command decided before its transaction.
            for (key, _) in changes.iter() {
                self.cache.set(&key.to_bytes(), None);
            }
            Ok(())
        })();
        let (outcome, open) = match outcome {
            Ok(()) => (Ok(()), false),
            Err((failure, open)) => (Err(failure), open),
        };
        let lost = matches!(outcome, Err(Failure::Fail(CoreError::Unavailable(_))));
        // A transaction left open is rolled back before its connection goes back to the pool.
        let clean = !open
            || (!lost && self.step(Instant::now() + self.options.timeout, client.batch_execute("ROLLBACK")).is_ok());
        if lost || !clean {
            // The connection may be mid-message or mid-transaction: never hand it out again.
            drop(deadpool_postgres::Object::take(client));
        }
        outcome
    }

    /// Runs one database step before `deadline`, classifying its failure.
    fn step<T>(
        &self,
        deadline: Instant,
        future: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Failure> {
        let left = deadline.saturating_duration_since(Instant::now());
        classify(&self.name, self.block_on(async { tokio::time::timeout(left, future).await }))
    }
}

/// What a database step that had a deadline came to.
fn classify<T>(
    name: &str,
    outcome: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
) -> Result<T, Failure> {
    match outcome {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if is_race(&e) => Err(Failure::Retry),
        Ok(Err(e)) => Err(Failure::Fail(failed(name, &e))),
        Err(_) => Err(Failure::Fail(CoreError::Unavailable(format!("database {name}: no answer in time")))),
    }
}

fn step_pool(store: &PgStore, deadline: Instant) -> Result<deadpool_postgres::Object, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    store.block_on(connection(&store.pool, &store.name, left)).map_err(Failure::Fail)
}

/// A connection from `pool` within `wait`, or why none came (always unavailable).
async fn connection(pool: &Pool, name: &str, wait: Duration) -> Result<deadpool_postgres::Object, CoreError> {
    match tokio::time::timeout(wait, pool.get()).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(pool_failed(name, &e)),
        Err(_) => Err(CoreError::Unavailable(format!("database {name}: no connection in time"))),
    }
}

const BEGIN: &str = "BEGIN ISOLATION LEVEL SERIALIZABLE";
const UPSERT: &str = "INSERT INTO records (key, kind, body, doc) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind, body = EXCLUDED.body, doc = EXCLUDED.doc";
const DELETE: &str = "DELETE FROM records WHERE key = $1";
const SELECT: &str = "SELECT body FROM records WHERE key = $1";

/// A record as readable JSON, for the SQL views; licet never reads it back.
fn doc(record: &Record) -> serde_json::Value {
    let value = match record {
        Record::Product(p) => serde_json::to_value(p),
        Record::Account(a) => serde_json::to_value(a),
        Record::AccountId(id) => serde_json::to_value(id),
        Record::Coupon(c) => serde_json::to_value(c),
        Record::HostAccounts(ids) => serde_json::to_value(ids),
        Record::Mail(m) => serde_json::to_value(m),
        _ => Ok(serde_json::Value::Null),
    };
    value.unwrap_or(serde_json::Value::Null)
}

async fn write_one(
    client: &impl tokio_postgres::GenericClient,
    upsert: &tokio_postgres::Statement,
    key: &RecordKey,
    record: &Record,
) -> Result<u64, tokio_postgres::Error> {
    client.execute(upsert, &[&key.to_bytes(), &key.table(), &record.encode(), &doc(record)]).await
}

/// A command's reads inside its transaction.
struct PgSnapshot<'a> {
    store: &'a PgStore,
    client: &'a deadpool_postgres::Object,
    select: &'a tokio_postgres::Statement,
    deadline: Instant,
    /// Whether the transaction has begun (with the first read).
    begun: Cell<bool>,
    /// Set when a read lost a serialization race: the attempt is run again whatever the
    /// command made of the error.
    race: Cell<bool>,
}

impl Snapshot for PgSnapshot<'_> {
    fn get(&self, key: &RecordKey) -> Result<Option<Record>, CoreError> {
        let bytes = key.to_bytes();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&bytes];
        let read = async {
            if self.begun.get() {
                return self.client.query_opt(self.select, &params).await;
            }
            // The first read carries the transaction's BEGIN: one round trip for both.
            let (began, row) =
                futures_util::join!(self.client.batch_execute(BEGIN), self.client.query_opt(self.select, &params));
            began?;
            self.begun.set(true);
            row
        };
        match self.store.step(self.deadline, read) {
            Ok(None) => {
                self.store.cache.set(&bytes, None);
                Ok(None)
            }
            Ok(Some(row)) => {
                let body: &[u8] = row.get(0);
                self.store.cache.set(&bytes, Some(body));
                Ok(Some(Record::decode(key, body)?))
            }
            Err(Failure::Retry | Failure::Stale) => {
                self.race.set(true);
                Err(CoreError::Unavailable("a concurrent transaction won; running the command again".into()))
            }
            Err(Failure::Fail(e)) => Err(e),
        }
    }
}

impl Store for PgStore {
    fn transact_dyn(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>) -> Result<(), CoreError> {
        let mut attempt = 0;
        // However many races it loses, a command gives up after five deadlines in all.
        let give_up = Instant::now() + self.options.timeout * 5;
        // Decided over remembered records first; once that missed, inside its transaction.
        let mut remembered = true;
        loop {
            let outcome = match std::mem::replace(&mut remembered, false) {
                true => self.attempt_optimistic(command),
                false => self.attempt(command),
            };
            match outcome {
                Ok(()) => return Ok(()),
                Err(Failure::Fail(e)) => return Err(e),
                Err(Failure::Stale) => {}
                Err(Failure::Retry) if attempt >= self.options.retries || Instant::now() >= give_up => {
                    return Err(self.unavailable("too many concurrent transactions on the same records"));
                }
                Err(Failure::Retry) => {
                    attempt += 1;
                    // A short random pause, growing with each lost race, so racers spread out.
                    let mut jitter = [0u8; 1];
                    OsEntropy.fill(&mut jitter);
                    let cap = 1u64 << attempt.min(7);
                    std::thread::sleep(Duration::from_micros(200 * (1 + u64::from(jitter[0]) % cap)));
                }
            }
        }
    }

    fn flush(&self) -> Result<(), CoreError> {
        // Every commit is durable when it returns.
        Ok(())
    }

    fn keys(&self, table: Table, after: Option<&RecordKey>, limit: usize) -> Result<Vec<RecordKey>, CoreError> {
        let start = crate::store::page_start(table, after);
        let end = crate::store::table_end(table);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.block_on(async {
            let client = self.pool.get().await.map_err(|e| pool_failed(&self.name, &e))?;
            // A range of the primary key, bounded on both sides.
            let query = "SELECT key FROM records WHERE key >= $1 AND key < $2 AND kind = $3 ORDER BY key LIMIT $4";
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&start, &end, &table.name(), &limit];
            match tokio::time::timeout(self.timeout(), client.query(query, &params)).await {
                Ok(rows) => rows.map_err(|e| self.failed(&e)),
                Err(_) => Err(self.unavailable("the database did not list records in time")),
            }
        })?;
        Ok(rows.iter().filter_map(|row| RecordKey::from_bytes(row.get::<_, &[u8]>(0))).collect())
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks; inside an async caller that would panic.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

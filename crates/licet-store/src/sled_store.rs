//! The server's ledger on sled.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use licet_core::record::legacy;
use licet_core::{Error as CoreError, Record, RecordKey, Table, Tx};

mod commit;

pub use commit::Pending;

use crate::error::Error;
use crate::group_commit::GroupCommit;
use crate::store::Store;

/// The layout this build writes and reads; stored as text under a fixed key.
pub const SCHEMA_VERSION: &str = "licet-ledger-2";
/// Release 0.1.0's layout: records in positional bincode. Migrated in place when opened.
const SCHEMA_0_1_0: &str = "licet-ledger-1";
/// A migration from release 0.1.0 in progress: a name release 0.1.0 refuses, so that it never
/// opens a half-migrated store.
const SCHEMA_MIGRATING: &str = "licet-ledger-2-migrating";
/// What every ledger schema's name starts with; the number after it orders releases.
const SCHEMA_PREFIX: &str = "licet-ledger-";
const SCHEMA_KEY: &[u8] = b"licet/schema";
/// Written by a health check after a failure, beside the schema (outside the ledger's trees).
const HEALTH_PROBE: &[u8] = b"licet/health-probe";
const LEDGER_TREE: &[u8] = b"ledger";
/// The tree holding only the count of commits.
const META_TREE: &[u8] = b"meta";
/// During a migration: the byte form of the last record already rewritten. It sorts before every
/// record key (`!` < any table tag), so it never lies in the range still to migrate.
const MIGRATED_THROUGH: &[u8] = b"!migrated-through";
/// Records rewritten per atomic batch of a migration.
const MIGRATION_BATCH: usize = 1_000;
/// How many commits the ledger holds: alone in the `meta` tree, written just before a flush —
/// at most every [`SEAL_EVERY`] under load, and by every flush of a quiet store or a shutdown —
/// never in each commit's batch (a second write per commit cost a quarter of the throughput).
/// The seal records only a count that a flush made durable, so it is never ahead of the ledger;
/// under load it may lag by the commits of one [`SEAL_EVERY`]. Backups carry it as their first
/// entry.
pub(crate) const COMMITS: &[u8] = b"!commits";
/// Under load, how often the count of commits and the seal are brought up to date.
const SEAL_EVERY: Duration = Duration::from_millis(50);
/// After the store failed, how long it waits before trying to open its database again.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);

/// How a sled store is opened.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, in bytes. sled's own default is 1 GiB; ours is 64 MiB, since a command
    /// reads a handful of records and the OS page cache does the rest.
    pub cache_bytes: u64,
    /// How long to wait for a store another holder is releasing before giving up with
    /// [`Error::Locked`].
    pub lock_patience: Duration,
    /// The store must already exist (a server's initialised data directory): a missing or empty
    /// one is refused with [`Error::Damaged`] instead of being created afresh.
    pub must_exist: bool,
}

impl Default for SledOptions {
    fn default() -> SledOptions {
        SledOptions { cache_bytes: 64 << 20, lock_patience: Duration::from_secs(2), must_exist: false }
    }
}

/// The ledger in a sled database: one tree of records keyed by [`RecordKey::to_bytes`].
///
/// A command is decided outside the write lock over the reads it records, then under the lock
/// checked (every record it read still as it read it; else decided again) and applied
/// atomically (one record by itself, several as one batch) — a few microseconds under the
/// lock — and then waits outside it for a flush it
/// shares with every other committer (group commit). So transactions are serializable, and
/// `transact` returns only once its change is fsynced.
///
/// **When the disk refuses** (full, failing), sled keeps failing even after the cause is gone.
/// So the store closes its database on the first such error and answers
/// [`CoreError::Unavailable`] (HTTP 503) until it has opened it again — tried at the next
/// command, at most once a second — and carries on by itself once the disk is back.
///
/// **Damage does not go unnoticed.** Every commit also counts itself in the ledger (`!commits`),
/// and after every flush the count of commits known durable is written beside the ledger, to
/// `<ledger>.seal`. A ledger that holds fewer commits than its seal — damaged files, deleted
/// snapshots, an old copy — is refused at open ([`Error::Damaged`]), as is a missing ledger
/// when [`SledOptions::must_exist`] says there must be one; sled alone would start with what it
/// could recover, and say so only in a warning.
pub struct SledStore {
    path: PathBuf,
    options: SledOptions,
    opened: std::sync::RwLock<Option<Arc<Opened>>>,
    last_open: Mutex<Instant>,
    write: Mutex<()>,
    group: GroupCommit,
    /// Commits in the ledger (applied, not necessarily flushed).
    commits: AtomicU64,
    /// The disk refused a write, and no flush has succeeded since (what `/v1/health` reports).
    degraded: AtomicBool,
    /// What the seal last recorded.
    sealed: Mutex<Sealed>,
    migrated: Option<usize>,
}

/// A time before any [`SEAL_EVERY`] ago: the next flush counts.
fn long_ago() -> Instant {
    let now = Instant::now();
    now.checked_sub(SEAL_EVERY).unwrap_or(now)
}

impl Drop for SledStore {
    /// A store closed in order leaves its exact count sealed.
    fn drop(&mut self) {
        let opened = self.opened.read().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(opened) = opened {
            let _ = self.flush_and_seal(&opened, true);
        }
    }
}

/// The seal's state: the count it records, its file kept open to overwrite it, and when the
/// count was last written into the ledger.
struct Sealed {
    count: u64,
    file: Option<std::fs::File>,
    counted_at: Instant,
}

/// The database while it is open.
struct Opened {
    ledger: sled::Tree,
    /// The count of commits, alone in its own tree (see [`COMMITS`]).
    meta: sled::Tree,
    db: LockedDb,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// A sled database held under licet's own lock file.
///
/// sled 0.34 leaves a half-written `snap.*.generating` file behind when a process is killed while
/// it writes a snapshot, and on the next open reads that file as the newest snapshot and fails
/// with "corrupted data" (sled issues #1527, #1533; found by our crash test). An incomplete
/// `.generating` file is never needed — a finished snapshot is renamed — so we delete them before
/// opening. That is only safe while no other process has the database open, hence our own
/// exclusive lock on `licet.lock`, taken before sled's and released after it.
pub(crate) struct LockedDb {
    /// Declared first: dropped (and flushed) before the lock is released.
    pub(crate) db: sled::Db,
    _lock: std::fs::File,
}

/// Maps a sled error: the disk refusing (I/O) is [`Error::Storage`]; files sled cannot make
/// sense of (corruption, an unsupported or garbled format) are [`Error::Corrupt`].
pub(crate) fn sled_error(path: &Path, e: sled::Error) -> Error {
    use std::io::ErrorKind::{InvalidData, UnexpectedEof};
    match e {
        // A short or garbled read is the file's fault, not the disk's.
        sled::Error::Io(ref io) if matches!(io.kind(), UnexpectedEof | InvalidData) => {
            Error::Corrupt { path: path.to_owned(), message: e.to_string() }
        }
        sled::Error::Io(_) | sled::Error::CollectionNotFound(_) => Error::storage(path, e),
        e => Error::Corrupt { path: path.to_owned(), message: e.to_string() },
    }
}

/// Opens a sled database with licet's settings, waiting up to `patience` while another holder
/// (another process, or sled's background threads of a handle just dropped in this one) lets
/// go; after that a held lock is [`Error::Locked`].
pub(crate) fn open_db(path: &Path, cache_bytes: u64, patience: Duration) -> Result<LockedDb, Error> {
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(1);
    loop {
        match try_open_db(path, cache_bytes) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(25));
            }
            other => return other,
        }
    }
}

fn try_open_db(path: &Path, cache_bytes: u64) -> Result<LockedDb, Error> {
    std::fs::create_dir_all(path).map_err(|e| Error::storage(path, e))?;
    let lock = take_lock(path)?;
    let remove_half_written = || -> std::io::Result<()> {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("snap.") && name.ends_with(".generating") {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    };
    // sled's own lock on `db` is held until the last background thread of a handle is gone:
    // while one of a handle this process just dropped runs, its snapshot is being written, not
    // half-written. Only a free `db` makes a `.generating` file garbage.
    if let Ok(db_file) = std::fs::OpenOptions::new().read(true).write(true).open(path.join("db")) {
        match db_file.try_lock() {
            Ok(()) => drop(db_file),
            Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: path.to_owned() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::storage(path, e)),
        }
    }
    remove_half_written().map_err(|e| Error::storage(path, e))?;
    let opened = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .mode(sled::Mode::HighThroughput)
        // Durability comes from explicit flushes; the background flush only bounds how much an
        // unacknowledged write can linger in memory.
        .flush_every_ms(Some(1000))
        .open();
    match opened {
        Ok(db) => Ok(LockedDb { db, _lock: lock }),
        // Threads of a handle just dropped in this process may still hold sled's own lock.
        Err(e) if e.to_string().contains("could not acquire lock") => Err(Error::Locked { path: path.to_owned() }),
        Err(e) => Err(sled_error(path, e)),
    }
}

fn write_schema(db: &sled::Db, path: &Path, schema: &str) -> Result<(), Error> {
    db.insert(SCHEMA_KEY, schema.as_bytes()).map_err(|e| sled_error(path, e))?;
    db.flush().map_err(|e| sled_error(path, e))?;
    Ok(())
}

/// The release number in a ledger schema's name (`licet-ledger-2` → 2).
fn schema_number(schema: &str) -> Option<u32> {
    schema.strip_prefix(SCHEMA_PREFIX)?.parse().ok()
}

/// Brings the ledger to [`SCHEMA_VERSION`]: writes it in a new database, migrates a store of
/// release 0.1.0 in place, refuses one of a newer release or anything that is not a ledger.
///
/// The migration first renames the schema to [`SCHEMA_MIGRATING`] (which release 0.1.0
/// refuses), then rewrites records in atomic batches, each also recording the last key it
/// rewrote ([`MIGRATED_THROUGH`]) and each flushed, and names the new schema only after the last
/// batch is durable. Killed at any moment, it leaves a store whose records up to the mark are
/// rewritten and the rest not: the next open carries on from the mark.
/// Returns how many records a migration rewrote at this open, if one ran.
fn bring_up_to_date(db: &sled::Db, ledger: &sled::Tree, path: &Path) -> Result<Option<usize>, Error> {
    let found = match db.get(SCHEMA_KEY).map_err(|e| sled_error(path, e))? {
        Some(found) => String::from_utf8_lossy(&found).into_owned(),
        None if db.was_recovered() => "none".to_owned(),
        None => return write_schema(db, path, SCHEMA_VERSION).map(|()| None),
    };
    let mut migrated = None;
    if found == SCHEMA_0_1_0 || found == SCHEMA_MIGRATING {
        if found == SCHEMA_0_1_0 {
            write_schema(db, path, SCHEMA_MIGRATING)?;
        }
        migrated = Some(migrate_0_1_0(db, ledger, path)?);
        write_schema(db, path, SCHEMA_VERSION)?;
    } else if found != SCHEMA_VERSION {
        return Err(match (schema_number(&found), schema_number(SCHEMA_VERSION)) {
            (Some(theirs), Some(ours)) if theirs > ours => Error::NewerSchema { path: path.to_owned(), found },
            _ => Error::UnknownSchema { path: path.to_owned(), found, expected: SCHEMA_VERSION.to_owned() },
        });
    }
    // A migration that finished but was killed before it removed its mark.
    if ledger.contains_key(MIGRATED_THROUGH).map_err(|e| sled_error(path, e))? {
        ledger.remove(MIGRATED_THROUGH).map_err(|e| sled_error(path, e))?;
        db.flush().map_err(|e| sled_error(path, e))?;
    }
    Ok(migrated)
}

/// Rewrites every record of release 0.1.0 still in its old form (see [`bring_up_to_date`]);
/// returns how many it rewrote.
fn migrate_0_1_0(db: &sled::Db, ledger: &sled::Tree, path: &Path) -> Result<usize, Error> {
    let corrupt = |message: String| Error::Corrupt { path: path.to_owned(), message };
    let mut from = ledger.get(MIGRATED_THROUGH).map_err(|e| sled_error(path, e))?.map(|k| k.to_vec());
    let mut migrated = 0usize;
    loop {
        let range = match &from {
            Some(after) => {
                ledger.range::<&[u8], _>((std::ops::Bound::Excluded(after.as_slice()), std::ops::Bound::Unbounded))
            }
            None => ledger.range::<&[u8], _>(..),
        };
        let mut batch = sled::Batch::default();
        let mut last = None;
        let mut count = 0;
        for item in range {
            let (k, v) = item.map_err(|e| sled_error(path, e))?;
            if k.as_ref() == MIGRATED_THROUGH {
                continue;
            }
            let key = RecordKey::from_bytes(&k).ok_or_else(|| {
                corrupt(format!("a 0.1.0 ledger holds an unknown key {:?}", String::from_utf8_lossy(&k)))
            })?;
            let record = legacy::decode(&key, &v).map_err(|e| corrupt(e.to_string()))?;
            batch.insert(k.as_ref(), record.encode());
            last = Some(k.to_vec());
            count += 1;
            if count == MIGRATION_BATCH {
                break;
            }
        }
        let Some(last) = last else { break };
        batch.insert(MIGRATED_THROUGH, last.as_slice());
        ledger.apply_batch(batch).map_err(|e| sled_error(path, e))?;
        db.flush().map_err(|e| sled_error(path, e))?;
        migrated += count;
        from = Some(last);
    }
    Ok(migrated)
}

impl SledStore {
    /// Opens (or creates) the store in `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<SledStore, Error> {
        SledStore::open_with(path, SledOptions::default())
    }

    /// Opens (or creates) the store in `path`. Nothing is loaded up front: records are read
    /// when a command touches them. A store of release 0.1.0 is migrated in place first (see
    /// [`SledStore::migrated`]); one of a newer release is refused with [`Error::NewerSchema`],
    /// anything else that is not a ledger with [`Error::UnknownSchema`], a damaged one with
    /// [`Error::Damaged`].
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<SledStore, Error> {
        let path = path.as_ref().to_owned();
        let (opened, commits, migrated) = open_checked(&path, &options)?;
        crate::email_index::bring_up_to_date(&opened.db.db, &opened.ledger, &path)?;
        Ok(SledStore {
            path,
            options,
            opened: std::sync::RwLock::new(Some(Arc::new(opened))),
            last_open: Mutex::new(Instant::now()),
            write: Mutex::new(()),
            group: GroupCommit::default(),
            commits: AtomicU64::new(commits),
            degraded: AtomicBool::new(false),
            sealed: Mutex::new(Sealed { count: commits, file: None, counted_at: long_ago() }),
            migrated,
        })
    }

    /// The open database, opening it again after a failure (at most once per
    /// [`REOPEN_PAUSE`]); the caller holds the write lock.
    fn current(&self) -> Result<Arc<Opened>, CoreError> {
        if let Some(opened) = self.opened.read().unwrap_or_else(PoisonError::into_inner).clone() {
            return Ok(opened);
        }
        let unavailable = |why: String| CoreError::Unavailable(format!("storage at {}: {why}", self.path.display()));
        let mut last = self.last_open.lock().unwrap_or_else(PoisonError::into_inner);
        if last.elapsed() < REOPEN_PAUSE {
            return Err(unavailable("waiting to open it again".into()));
        }
        *last = Instant::now();
        // One try: a lock still held is just another reason to come back later.
        let options = SledOptions { must_exist: true, lock_patience: Duration::ZERO, ..self.options.clone() };
        let (opened, commits, _) = open_checked(&self.path, &options).map_err(|e| unavailable(e.to_string()))?;
        self.commits.store(commits, Ordering::SeqCst);
        *self.sealed.lock().unwrap_or_else(PoisonError::into_inner) =
            Sealed { count: commits, file: None, counted_at: long_ago() };
        let opened = Arc::new(opened);
        *self.opened.write().unwrap_or_else(PoisonError::into_inner) = Some(opened.clone());
        Ok(opened)
    }

    /// Closes the database after the disk refused: commands answer `Unavailable` until it is
    /// open again. Changes applied but not flushed were never acknowledged.
    fn fail(&self, e: impl std::fmt::Display) -> CoreError {
        self.degraded.store(true, Ordering::SeqCst);
        *self.opened.write().unwrap_or_else(PoisonError::into_inner) = None;
        *self.last_open.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        CoreError::Unavailable(format!("storage at {}: {e}", self.path.display()))
    }

    /// Flushes `opened`. Before the flush the count of commits is written (see [`COMMITS`]) when
    /// `exact` is asked or [`SEAL_EVERY`] has passed since it last was; after it the seal records
    /// that count. A seal that cannot be written stays behind, which is safe: the flush decides
    /// the answer.
    fn flush_and_seal(&self, opened: &Opened, exact: bool) -> Result<(), CoreError> {
        // Held across the flush, so that counts are written in increasing order.
        let mut sealed = self.sealed.lock().unwrap_or_else(PoisonError::into_inner);
        let commits = self.commits.load(Ordering::SeqCst);
        let count_it = commits > sealed.count && (exact || sealed.counted_at.elapsed() >= SEAL_EVERY);
        if count_it {
            opened.meta.insert(COMMITS, &commits.to_be_bytes()).map_err(|e| self.fail(e))?;
            sealed.counted_at = Instant::now();
        }
        opened.db.db.flush().map_err(|e| self.fail(e))?;
        self.degraded.store(false, Ordering::SeqCst);
        if count_it {
            match overwrite_seal(&self.path, &mut sealed.file, commits) {
                Ok(()) => sealed.count = commits,
                // Opened again next time.
                Err(_) => sealed.file = None,
            }
        }
        Ok(())
    }

    /// What moving the e-mail index to this release's identity of an address found (it runs
    /// once, when a ledger written before is first opened), until [`SledStore::forget_email_report`].
    /// Collisions and addresses the rule refuses are the vendor's to resolve; nothing was merged.
    pub fn email_report(&self) -> Result<Option<licet_core::email::EmailReport>, Error> {
        let opened = self.current().map_err(|e| Error::storage(&self.path, e))?;
        let bytes = opened.ledger.get(crate::email_index::EMAIL_REPORT).map_err(|e| sled_error(&self.path, e))?;
        Ok(bytes.and_then(|b| licet_core::email::EmailReport::decode(&b)))
    }

    /// Drops the e-mail report once the vendor has it (durably).
    pub fn forget_email_report(&self) -> Result<(), Error> {
        let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let opened = self.current().map_err(|e| Error::storage(&self.path, e))?;
        opened.ledger.remove(crate::email_index::EMAIL_REPORT).map_err(|e| sled_error(&self.path, e))?;
        opened.db.db.flush().map_err(|e| sled_error(&self.path, e))?;
        Ok(())
    }

    /// How many records of release 0.1.0 this open migrated, if it migrated any.
    pub fn migrated(&self) -> Option<usize> {
        self.migrated
    }

    /// Every record, decoded (walks the whole tree: for tests, tools and migrations, not for
    /// requests).
    pub fn records(&self) -> impl Iterator<Item = Result<(RecordKey, Record), CoreError>> + '_ {
        let ledger = self.open_tree();
        ledger
            .into_iter()
            .flat_map(|tree| tree.iter())
            .filter(|item| !matches!(item, Ok((k, _)) if k.starts_with(b"!")))
            .map(|item| {
                let (k, v) = item.map_err(|e| CoreError::Internal(format!("storage read: {e}")))?;
                let key = RecordKey::from_bytes(&k)
                    .ok_or_else(|| CoreError::Internal(format!("unknown key {:?}", String::from_utf8_lossy(&k))))?;
                let record = Record::decode(&key, &v)?;
                Ok((key, record))
            })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of records (walks the whole tree: for tests and tools, not for requests).
    pub fn record_count(&self) -> usize {
        let ledger = self.open_tree();
        ledger.map_or(0, |tree| tree.iter().keys().filter(|k| k.as_ref().is_ok_and(|k| !k.starts_with(b"!"))).count())
    }

    /// The ledger's tree, if the database is open (it is not after a failure until reopened).
    fn open_tree(&self) -> Option<sled::Tree> {
        self.opened.read().unwrap_or_else(PoisonError::into_inner).as_ref().map(|o| o.ledger.clone())
    }

    /// How many commits the ledger holds.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }

    /// Space used on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        let opened = self.current().map_err(|e| Error::storage(&self.path, e))?;
        opened.db.db.size_on_disk().map_err(|e| Error::storage(&self.path, e))
    }

    /// Writes a consistent copy of the ledger to `out` (see [`crate::backup`]). Commands wait
    /// while it is written.
    pub fn backup(&self, out: &mut dyn std::io::Write) -> Result<crate::BackupFacts, Error> {
        let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let opened = self.current().map_err(|e| Error::storage(&self.path, e))?;
        let count = (sled::IVec::from(COMMITS), sled::IVec::from(&self.commits.load(Ordering::SeqCst).to_be_bytes()));
        let entries = std::iter::once(Ok(count))
            .chain(opened.ledger.iter().filter(|e| e.as_ref().map_or(true, |(k, _)| k.as_ref() != COMMITS)));
        crate::backup::write(out, entries).map_err(|e| Error::storage(&self.path, e))
    }

    /// Writes the entries of a checked backup into this (new) store, with its count of commits.
    pub(crate) fn load_entries(&self, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), Error> {
        self.apply_raw(|batch, _| {
            let mut commits = 0;
            for (key, value) in entries {
                match key.as_slice() {
                    COMMITS => commits = crate::backup::commits_of(&value).unwrap_or_default(),
                    _ => batch.insert(key, value),
                }
            }
            commits
        })
    }

    /// Writes records without running the ledger: bulk loading for benchmarks and tools. Not
    /// atomic across calls; flushes (and seals) before returning.
    pub fn load_raw(&self, records: impl IntoIterator<Item = (RecordKey, Record)>) -> Result<(), Error> {
        self.apply_raw(|batch, commits| {
            for (key, record) in records {
                batch.insert(key.to_bytes(), record.encode());
            }
            commits + 1
        })
    }

    /// Applies one batch outside the ledger's commands and makes it durable: `fill` adds the
    /// entries, given the count of commits so far, and returns the count the ledger then holds.
    fn apply_raw(&self, fill: impl FnOnce(&mut sled::Batch, u64) -> u64) -> Result<(), Error> {
        let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let opened = self.current().map_err(|e| Error::storage(&self.path, e))?;
        let mut batch = sled::Batch::default();
        let commits = fill(&mut batch, self.commits.load(Ordering::SeqCst));
        opened.ledger.apply_batch(batch).map_err(|e| Error::storage(&self.path, e))?;
        self.commits.store(commits, Ordering::SeqCst);
        self.flush_and_seal(&opened, true).map_err(|e| Error::storage(&self.path, e))
    }
}

/// The seal of the ledger in `path`: a file beside it holding the count of durable commits.
pub(crate) fn seal_path(path: &Path) -> PathBuf {
    crate::backup::sibling(path, ".seal")
}

/// Takes licet's lock of the store in `path`, if there is a store there ([`Error::Locked`] when
/// a process holds it): nobody opens it while the returned file is open.
pub(crate) fn hold(path: &Path) -> Result<Option<std::fs::File>, Error> {
    if !path.is_dir() {
        return Ok(None);
    }
    take_lock(path).map(Some)
}

/// Licet's own exclusive lock of the store in the directory `path` ([`Error::Locked`] when held).
fn take_lock(path: &Path) -> Result<std::fs::File, Error> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join("licet.lock"))
        .map_err(|e| Error::storage(path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path: path.to_owned() }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::storage(path, e)),
    }
}

/// The count of commits the seal says are durable, if there is a seal.
fn read_seal(path: &Path) -> Result<Option<u64>, Error> {
    match std::fs::read_to_string(seal_path(path)) {
        // Only a crash of the machine between creating and filling a file leaves it empty.
        Ok(text) if text.is_empty() => Ok(None),
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::Damaged { path: path.to_owned(), message: format!("its seal holds {text:?}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::storage(&seal_path(path), e)),
    }
}

/// Records after a flush that `commits` commits are durable, overwriting the seal in place
/// through a handle kept open: one small write of a fixed width (a single sector, so never torn),
/// no new file, no rename and no fsync of its own — creating and renaming a file at every flush
/// made each of sled's fsyncs carry a journal commit for it. A seal lost with the machine is only
/// behind, which never refuses a good ledger.
fn overwrite_seal(path: &Path, file: &mut Option<std::fs::File>, commits: u64) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(std::fs::OpenOptions::new().write(true).create(true).truncate(false).open(seal_path(path))?);
    }
    let Some(seal) = file.as_mut() else { return Ok(()) };
    let text = format!("{commits:020}\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        seal.write_all_at(text.as_bytes(), 0)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Seek, Write};
        seal.seek(std::io::SeekFrom::Start(0))?;
        seal.write_all(text.as_bytes())
    }
}

/// Writes a whole new seal (when a ledger is first sealed or restored): replaced whole
/// (rename), without an fsync of its own.
fn write_seal(path: &Path, commits: u64) -> std::io::Result<()> {
    let seal = seal_path(path);
    let mut next = seal.clone().into_os_string();
    next.push(".next");
    std::fs::write(&next, format!("{commits}\n"))?;
    std::fs::rename(&next, &seal)
}

/// Opens the ledger in `path` and checks it: present when it must be, up to date (migrating
/// release 0.1.0's), and holding at least the commits its seal says are durable. Returns it
/// with its count of commits and, if a migration ran, how many records it rewrote.
fn open_checked(path: &Path, options: &SledOptions) -> Result<(Opened, u64, Option<usize>), Error> {
    let damaged = |message: String| Error::Damaged { path: path.to_owned(), message };
    let seal = read_seal(path)?;
    let expected = options.must_exist || seal.is_some();
    // Checked before sled runs, which would create a fresh database in place of a missing one.
    let has_data = std::fs::metadata(path.join("db")).map(|m| m.len() > 0).unwrap_or(false);
    if expected && !has_data {
        return Err(damaged("the ledger is missing or empty".into()));
    }
    let db = open_db(path, options.cache_bytes, options.lock_patience)?;
    if expected && db.db.get(SCHEMA_KEY).map_err(|e| sled_error(path, e))?.is_none() {
        return Err(damaged("the ledger holds no schema: sled could recover nothing from its files".into()));
    }
    let ledger = db.db.open_tree(LEDGER_TREE).map_err(|e| Error::storage(path, e))?;
    let migrated = bring_up_to_date(&db.db, &ledger, path)?;
    // A ledger written before the count moved to the default tree keeps it in its own tree.
    let in_ledger = ledger.get(COMMITS).map_err(|e| sled_error(path, e))?;
    let meta = db.db.open_tree(META_TREE).map_err(|e| Error::storage(path, e))?;
    let stored = match meta.get(COMMITS).map_err(|e| sled_error(path, e))? {
        Some(bytes) => Some(bytes),
        None => in_ledger.clone(),
    };
    let commits = match stored {
        None => 0,
        Some(bytes) => {
            crate::backup::commits_of(&bytes).ok_or_else(|| damaged("its count of commits is unreadable".into()))?
        }
    };
    if in_ledger.is_some() {
        meta.insert(COMMITS, &commits.to_be_bytes()).map_err(|e| sled_error(path, e))?;
        ledger.remove(COMMITS).map_err(|e| sled_error(path, e))?;
        db.db.flush().map_err(|e| sled_error(path, e))?;
    }
    match seal {
        Some(sealed) if sealed > commits => {
            return Err(damaged(format!(
                "it holds {commits} commits but {sealed} were acknowledged: its files are damaged or an older copy"
            )));
        }
        // A new ledger, or one of release 0.1.0: sealed from now on.
        None => write_seal(path, commits).map_err(|e| Error::storage(&seal_path(path), e))?,
        Some(_) => {}
    }
    Ok((Opened { ledger, meta, db }, commits, migrated))
}

impl Store for SledStore {
    fn transact_dyn(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>) -> Result<(), CoreError> {
        let (outcome, pending) = self.apply(command)?;
        self.make_durable(&pending)?;
        outcome
    }

    fn flush(&self) -> Result<(), CoreError> {
        let opened = self.current()?;
        self.flush_and_seal(&opened, true)
    }

    /// Cheap while the last command went through. After the disk refused (the database is then
    /// closed) it opens it again and proves it with a durable write of its own, so that a node
    /// a load balancer took out of rotation comes back by itself once the disk does.
    fn health(&self) -> Result<(), CoreError> {
        if !self.degraded.load(Ordering::SeqCst) {
            return Ok(());
        }
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let opened = self.current()?;
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        opened.db.db.insert(HEALTH_PROBE, &stamp.as_secs().to_be_bytes()).map_err(|e| self.fail(e))?;
        self.flush_and_seal(&opened, false)
    }

    /// Lists what the open database holds; while it is closed after a failure the listing is
    /// unavailable (reopening is for commands and health checks, which prove it with a write).
    fn keys(&self, table: Table, after: Option<&RecordKey>, limit: usize) -> Result<Vec<RecordKey>, CoreError> {
        let opened = self.opened.read().unwrap_or_else(PoisonError::into_inner).clone().ok_or_else(|| {
            CoreError::Unavailable(format!("storage at {}: closed after a failure", self.path.display()))
        })?;
        let prefix = table.prefix();
        let mut keys = Vec::new();
        for item in opened.ledger.range(crate::store::page_start(table, after)..).keys() {
            let bytes = item.map_err(|e| self.fail(e))?;
            if !bytes.starts_with(&prefix) || keys.len() == limit {
                break;
            }
            keys.extend(RecordKey::from_bytes(&bytes));
        }
        Ok(keys)
    }
}

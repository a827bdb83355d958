//! The server's ledger on sled.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use licet_core::record::legacy;
use licet_core::{Error as CoreError, Record, RecordKey, Snapshot, Tx};

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
const LEDGER_TREE: &[u8] = b"ledger";
/// During a migration: the byte form of the last record already rewritten. It sorts before every
/// record key (`!` < any table tag), so it never lies in the range still to migrate.
const MIGRATED_THROUGH: &[u8] = b"!migrated-through";
/// Records rewritten per atomic batch of a migration.
const MIGRATION_BATCH: usize = 1_000;

/// How a sled store is opened.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache, in bytes. sled's own default is 1 GiB; ours is 64 MiB, since a command
    /// reads a handful of records and the OS page cache does the rest.
    pub cache_bytes: u64,
    /// How long to wait for a store another holder is releasing before giving up with
    /// [`Error::Locked`].
    pub lock_patience: Duration,
}

impl Default for SledOptions {
    fn default() -> SledOptions {
        SledOptions { cache_bytes: 64 << 20, lock_patience: Duration::from_secs(2) }
    }
}

/// The ledger in a sled database: one tree of records keyed by [`RecordKey::to_bytes`].
///
/// Commands run one at a time under a write lock (read, decide, apply one atomic batch — a few
/// microseconds), then wait outside the lock for a flush they share with every other committer
/// ([`GroupCommit`]). So transactions are serializable, and `transact` returns only once its
/// change is fsynced.
pub struct SledStore {
    path: PathBuf,
    ledger: sled::Tree,
    db: LockedDb,
    write: Mutex<()>,
    group: GroupCommit,
    migrated: Option<usize>,
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
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join("licet.lock"))
        .map_err(|e| Error::storage(path, e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(Error::Locked { path: path.to_owned() }),
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::storage(path, e)),
    }
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
    /// anything else that is not a ledger with [`Error::UnknownSchema`].
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<SledStore, Error> {
        let path = path.as_ref().to_owned();
        let db = open_db(&path, options.cache_bytes, options.lock_patience)?;
        let ledger = db.db.open_tree(LEDGER_TREE).map_err(|e| Error::storage(&path, e))?;
        let migrated = bring_up_to_date(&db.db, &ledger, &path)?;
        Ok(SledStore { path, db, ledger, write: Mutex::new(()), group: GroupCommit::default(), migrated })
    }

    /// How many records of release 0.1.0 this open migrated, if it migrated any.
    pub fn migrated(&self) -> Option<usize> {
        self.migrated
    }

    /// Every record, decoded (walks the whole tree: for tests, tools and migrations, not for
    /// requests).
    pub fn records(&self) -> impl Iterator<Item = Result<(RecordKey, Record), CoreError>> + '_ {
        self.ledger.iter().map(|item| {
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
        self.ledger.len()
    }

    /// Space used on disk, in bytes.
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        self.db.db.size_on_disk().map_err(|e| Error::storage(&self.path, e))
    }

    /// Writes records without running the ledger: bulk loading for benchmarks and tools. Not
    /// atomic across calls; flushes before returning.
    pub fn load_raw(&self, records: impl IntoIterator<Item = (RecordKey, Record)>) -> Result<(), Error> {
        let mut batch = sled::Batch::default();
        for (key, record) in records {
            batch.insert(key.to_bytes(), record.encode());
        }
        self.ledger.apply_batch(batch).map_err(|e| Error::storage(&self.path, e))?;
        self.db.db.flush().map_err(|e| Error::storage(&self.path, e))?;
        Ok(())
    }

    fn internal(&self, e: impl std::fmt::Display) -> CoreError {
        CoreError::Internal(format!("storage at {}: {e}", self.path.display()))
    }
}

struct SledSnapshot<'a> {
    tree: &'a sled::Tree,
}

impl Snapshot for SledSnapshot<'_> {
    fn get(&self, key: &RecordKey) -> Result<Option<Record>, CoreError> {
        match self.tree.get(key.to_bytes()).map_err(|e| CoreError::Internal(format!("storage read: {e}")))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(Record::decode(key, &bytes)?)),
        }
    }
}

impl Store for SledStore {
    fn transact_dyn(&self, command: &mut dyn FnMut(&mut Tx<'_>) -> Result<(), CoreError>) -> Result<(), CoreError> {
        let (seq, outcome) = {
            // The lock guards no data of its own, so a poisoned lock is still a valid lock.
            let _writer = self.write.lock().unwrap_or_else(PoisonError::into_inner);
            let snapshot = SledSnapshot { tree: &self.ledger };
            let mut tx = Tx::new(&snapshot);
            match command(&mut tx) {
                // A refusal writes nothing, but what it read must be durable before we answer.
                Err(e) => (self.group.last_applied(), Err(e)),
                Ok(()) => {
                    let changes = tx.into_changes();
                    if changes.is_empty() {
                        (self.group.last_applied(), Ok(()))
                    } else {
                        let mut batch = sled::Batch::default();
                        for (key, value) in changes.iter() {
                            match value {
                                Some(record) => batch.insert(key.to_bytes(), record.encode()),
                                None => batch.remove(key.to_bytes()),
                            }
                        }
                        self.ledger.apply_batch(batch).map_err(|e| self.internal(e))?;
                        (self.group.applied(), Ok(()))
                    }
                }
            }
        };
        self.group.wait_durable(seq, || self.db.db.flush().map(|_| ()).map_err(|e| self.internal(e)))?;
        outcome
    }

    fn flush(&self) -> Result<(), CoreError> {
        self.db.db.flush().map(|_| ()).map_err(|e| self.internal(e))
    }
}

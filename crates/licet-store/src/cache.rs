//! The agent's cache: one file in the agent's data directory holding its [`Memory`] — the
//! registration number, the latest token per product and the clock marks of SPEC §3.
//!
//! Many programs on one host may share a data directory, and a license check must never fail
//! because another one is writing. So **readers never lock**: a writer replaces the whole file
//! atomically (temporary file, fsync, rename, fsync of the directory), and a reader sees the old
//! file or the new one, never a mix. Writers take an advisory lock on a separate file and do
//! read–modify–write under it, so concurrent writers merge their changes ([`Persist::apply`]);
//! a writer that cannot get the lock in time gives up ([`CacheError::Busy`]), which a caller that
//! only moves the clock mark can ignore.
//!
//! The cache is not trusted: tokens are verified on every load. A file that cannot be read is
//! set aside, reported once, and replaced by an empty cache — an empty cache means "ask the
//! server", never a license. A file written by a newer release is refused and left alone.
//!
//! A data directory of release 0.1.0 holds a sled database in `cache/` instead, keyed by server
//! URL; [`AgentCache::load`] imports it once when no cache file exists yet, and leaves it in place
//! for any 0.1.0 program that still shares the directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use licet_core::agent::{Memory, Persist};
use licet_core::codec;

use crate::legacy_cache;

const FILE: &str = "agent-cache";
const LOCK: &str = "agent-cache.lock";
/// Made once release 0.1.0's cache was imported, so that it is never imported again — not even
/// after the cache file was set aside as damaged.
const IMPORTED: &str = "agent-cache.imported-0.1.0";
const MAGIC: &[u8] = b"licet-agent-cache\n";
/// The cache format this build writes (release 0.1.0's sled cache was format 1).
pub const CACHE_FORMAT: u8 = 2;
/// Largest cache file read.
const MAX_FILE: u64 = 16 << 20;

/// Why the cache could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The disk refused (full, permissions, I/O).
    #[error("the license cache at {path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
    /// Another process held the cache's write lock for too long.
    #[error("the license cache at {0} is busy")]
    Busy(PathBuf),
    /// The cache was written by a newer release of licet.
    #[error("the license cache at {path} was written by a newer release of licet (format {found}); update the program")]
    Newer {
        /// The file.
        path: PathBuf,
        /// Its format.
        found: u8,
    },
}

fn io(path: &Path, e: impl std::fmt::Display) -> CacheError {
    CacheError::Io { path: path.to_owned(), message: e.to_string() }
}

/// What identifies one version of the file: a writer replaces the file, so its identity changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(meta),
        }
    }
}

/// The agent's cache in a data directory.
#[derive(Debug)]
pub struct AgentCache {
    dir: PathBuf,
    stamp: Mutex<Option<Stamp>>,
    warning: Mutex<Option<String>>,
}

/// What reading the file found.
enum Read {
    Missing,
    Found(Memory, Stamp),
    Unreadable(String),
}

impl AgentCache {
    /// The cache of the data directory `dir` (created on first write).
    pub fn new(dir: impl AsRef<Path>) -> AgentCache {
        AgentCache { dir: dir.as_ref().to_owned(), stamp: Mutex::new(None), warning: Mutex::new(None) }
    }

    /// The cache file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// A problem found and repaired since the last call (a damaged cache set aside), to report
    /// once.
    pub fn take_warning(&self) -> Option<String> {
        self.warning.lock().ok().and_then(|mut w| w.take())
    }

    fn warn(&self, message: String) {
        if let Ok(mut w) = self.warning.lock() {
            *w = Some(message);
        }
    }

    fn remember(&self, stamp: Option<Stamp>) {
        if let Ok(mut s) = self.stamp.lock() {
            *s = stamp;
        }
    }

    /// Whether the file is not the one last read or written here (another process wrote it).
    pub fn changed(&self) -> bool {
        let now = std::fs::metadata(self.path()).ok().map(|m| Stamp::of(&m));
        self.stamp.lock().map(|s| *s != now).unwrap_or(true)
    }

    fn read(&self) -> Result<Read, CacheError> {
        let path = self.path();
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::Missing),
            Err(e) => return Err(io(&path, e)),
        };
        let meta = file.metadata().map_err(|e| io(&path, e))?;
        if meta.len() > MAX_FILE {
            return Ok(Read::Unreadable(format!("{} bytes", meta.len())));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| io(&path, e))?;
        let Some(rest) = bytes.strip_prefix(MAGIC) else {
            return Ok(Read::Unreadable("not a licet agent cache".into()));
        };
        match rest.split_first() {
            Some((&CACHE_FORMAT, body)) => match codec::unpack::<Memory>(body) {
                Ok(memory) => Ok(Read::Found(memory, Stamp::of(&meta))),
                Err(e) => Ok(Read::Unreadable(e.to_string())),
            },
            Some((&found, _)) if found > CACHE_FORMAT => Err(CacheError::Newer { path, found }),
            _ => Ok(Read::Unreadable("unknown format".into())),
        }
    }

    /// Everything cached: one read of one file, no lock. The first load in a data directory of
    /// release 0.1.0 imports that release's cache (preferring the number kept for the first of
    /// `servers` that has one). An unreadable file is set aside and reported; the cache is
    /// then empty.
    pub fn load(&self, servers: &[String]) -> Result<Memory, CacheError> {
        match self.read()? {
            Read::Found(memory, stamp) => {
                self.remember(Some(stamp));
                Ok(memory)
            }
            Read::Missing if self.dir.join(IMPORTED).exists() || !legacy_cache::present(&self.dir) => {
                self.remember(None);
                Ok(Memory::default())
            }
            // Under the lock, looking again: another program may have imported it meanwhile.
            Read::Missing => self.update(&Persist::default(), legacy_cache::PATIENCE, |stored| {
                if stored.is_none() && !self.dir.join(IMPORTED).exists() {
                    *stored = legacy_cache::read(&self.dir, servers)?;
                    std::fs::write(self.dir.join(IMPORTED), b"").map_err(|e| io(&self.dir.join(IMPORTED), e))?;
                    return Ok(true);
                }
                Ok(false)
            }),
            // Under the lock, looking again: another writer may have just replaced it.
            Read::Unreadable(_) => self.update(&Persist::default(), legacy_cache::PATIENCE, |_| Ok(false)),
        }
    }

    /// Applies `change` to the stored cache under the write lock, durably, and returns what is
    /// stored now. Waits up to `patience` for the lock, then gives up with [`CacheError::Busy`].
    pub fn apply(&self, change: &Persist, patience: Duration) -> Result<Memory, CacheError> {
        self.update(change, patience, |_| Ok(false))
    }

    /// Read–modify–write under the lock: an unreadable file is set aside (only here, so no
    /// reader can move away a good file another writer just put in place), `first` may fill a
    /// missing cache (saying whether it did), then `change` applies. Nothing is written when
    /// nothing changed.
    fn update(
        &self,
        change: &Persist,
        patience: Duration,
        first: impl FnOnce(&mut Option<Memory>) -> Result<bool, CacheError>,
    ) -> Result<Memory, CacheError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let _lock = self.lock(patience)?;
        let mut stored = match self.read()? {
            Read::Found(memory, _) => Some(memory),
            Read::Missing => None,
            Read::Unreadable(why) => {
                self.set_aside(&why)?;
                None
            }
        };
        let filled = first(&mut stored)?;
        if let (Some(memory), false, true) = (&stored, filled, change.is_empty()) {
            let stamp = std::fs::metadata(self.path()).map(|m| Stamp::of(&m)).ok();
            self.remember(stamp);
            return Ok(memory.clone());
        }
        let mut memory = stored.unwrap_or_default();
        change.apply(&mut memory);
        let stamp = self.write(&memory)?;
        self.remember(Some(stamp));
        Ok(memory)
    }

    fn lock(&self, patience: Duration) -> Result<std::fs::File, CacheError> {
        let path = self.dir.join(LOCK);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        let deadline = Instant::now() + patience;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(std::fs::TryLockError::WouldBlock) => return Err(CacheError::Busy(self.path())),
                Err(std::fs::TryLockError::Error(e)) => return Err(io(&path, e)),
            }
        }
    }

    /// Replaces the file atomically and durably (the caller holds the lock).
    fn write(&self, memory: &Memory) -> Result<Stamp, CacheError> {
        let path = self.path();
        let tmp = self.dir.join(format!("{FILE}.tmp"));
        let mut bytes = MAGIC.to_vec();
        bytes.push(CACHE_FORMAT);
        bytes.extend_from_slice(&codec::pack(memory));
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(&bytes).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        sync_dir(&self.dir)?;
        let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
        Ok(Stamp::of(&meta))
    }

    /// Moves an unreadable file out of the way (kept for support, not read again).
    fn set_aside(&self, why: &str) -> Result<(), CacheError> {
        let path = self.path();
        let aside = (0..)
            .map(|n| self.dir.join(format!("{FILE}.corrupt-{n}")))
            .find(|p| !p.exists())
            .expect("an unused name exists");
        std::fs::rename(&path, &aside).map_err(|e| io(&path, e))?;
        self.warn(format!(
            "the license cache at {} could not be read ({why}); it was moved to {} and licenses will be fetched again",
            path.display(),
            aside.display()
        ));
        Ok(())
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

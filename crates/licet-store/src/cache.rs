//! The agent's cache: per server and product the latest token, per server the registration
//! number, and the clock high-water mark of SPEC §3.
//!
//! Several programs on one host may share a data directory. sled locks its directory, so the
//! cache never holds it open: each operation opens the database, does its work, flushes and
//! closes, retrying for a while when another process holds the lock.
//!
//! The cache is not trusted: tokens are verified on every load. A cache that cannot be read
//! (corrupted, truncated, written by another version) is reported once and replaced by an
//! empty one — never an error that stops the host program, and never a reason to grant a
//! license: an empty cache means "ask the server".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::sled_store::{OpenFailure, check_schema, open_db, sled_error};

const CACHE_SCHEMA: &str = "licet-cache-1";
const CACHE_BYTES: u64 = 1 << 20;
const CLOCK_KEY: &[u8] = b"clock";
/// The latest issue time of a token accepted from a server: the floor of the clock mark.
const SERVER_CLOCK_KEY: &[u8] = b"server-clock";
/// How long an operation waits for another process to release the cache.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);

/// What the cache holds for one server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheContents {
    /// The registration number entered on this host.
    pub number: Option<String>,
    /// The latest token per product (unverified text).
    pub tokens: BTreeMap<String, String>,
    /// The clock high-water mark, Unix seconds (shared by all servers: it is this host's clock).
    pub high_water: Option<i64>,
}

/// The agent's on-disk cache in one directory.
#[derive(Debug)]
pub struct TokenCache {
    path: PathBuf,
    warning: Mutex<Option<String>>,
}

fn token_key(server: &str, product: &str) -> Vec<u8> {
    [b"t/", server.as_bytes(), b"\0", product.as_bytes()].concat()
}

fn number_key(server: &str) -> Vec<u8> {
    [b"n/", server.as_bytes()].concat()
}

/// Why an operation on the open cache failed.
enum Fault {
    /// The contents cannot be read as a cache: set it aside and start afresh.
    Unreadable(String),
    /// The disk refused (full, permissions, I/O): report it; the cache is left as it is.
    Io(Error),
}

impl TokenCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl AsRef<Path>) -> TokenCache {
        TokenCache { path: dir.as_ref().to_owned(), warning: Mutex::new(None) }
    }

    /// The cache's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A problem found and repaired since the last call (e.g. a corrupted cache that was
    /// replaced), to report once.
    pub fn take_warning(&self) -> Option<String> {
        self.warning.lock().ok().and_then(|mut w| w.take())
    }

    fn warn(&self, message: String) {
        if let Ok(mut w) = self.warning.lock() {
            *w = Some(message);
        }
    }

    fn fault(&self, e: sled::Error) -> Fault {
        match sled_error(&self.path, e) {
            Error::Corrupt { message, .. } => Fault::Unreadable(message),
            other => Fault::Io(other),
        }
    }

    /// Runs `f` on the open database. A damaged or foreign cache is set aside — while licet's
    /// lock is held, so no other process is using it — reported, and replaced by an empty one;
    /// an I/O error is returned and the cache left alone.
    fn with_db<T>(&self, f: impl Fn(&sled::Db) -> Result<T, Fault>) -> Result<T, Error> {
        for _ in 0..2 {
            let (why, lock) = match open_db(&self.path, CACHE_BYTES, LOCK_PATIENCE) {
                Ok(locked) => match check_schema(&locked.db, &self.path, CACHE_SCHEMA) {
                    Ok(()) => match f(&locked.db) {
                        Ok(v) => return Ok(v),
                        Err(Fault::Unreadable(why)) => (why, locked.into_lock()),
                        Err(Fault::Io(e)) => return Err(e),
                    },
                    Err(e @ (Error::UnknownSchema { .. } | Error::Corrupt { .. })) => {
                        (e.to_string(), locked.into_lock())
                    }
                    Err(e) => return Err(e),
                },
                Err(OpenFailure { error: e @ Error::Corrupt { .. }, lock: Some(lock) }) => (e.to_string(), lock),
                Err(failure) => return Err(failure.error),
            };
            self.set_aside(&why)?;
            drop(lock);
        }
        Err(Error::storage(&self.path, "the cache cannot be recreated"))
    }

    /// Moves an unreadable cache out of the way (kept for support, not read again).
    fn set_aside(&self, why: &str) -> Result<(), Error> {
        let mut n = 0;
        let aside = loop {
            let candidate = self.path.with_extension(format!("corrupt-{n}"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        std::fs::rename(&self.path, &aside).map_err(|e| Error::storage(&self.path, e))?;
        self.warn(format!(
            "the license cache at {} could not be read ({why}); it was moved to {} and licenses will be fetched again",
            self.path.display(),
            aside.display()
        ));
        Ok(())
    }

    /// Everything cached for `server`. Never fails on an unreadable cache (it is replaced by an
    /// empty one and a warning kept for [`TokenCache::take_warning`]); fails when another
    /// process holds the cache for too long or the disk refuses.
    pub fn load(&self, server: &str) -> Result<CacheContents, Error> {
        self.with_db(|db| {
            let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|e| Fault::Unreadable(e.to_string()));
            let mut contents = CacheContents::default();
            if let Some(n) = db.get(number_key(server)).map_err(|e| self.fault(e))? {
                contents.number = Some(text(&n)?);
            }
            let prefix = [b"t/", server.as_bytes(), b"\0"].concat();
            for item in db.scan_prefix(&prefix) {
                let (k, v) = item.map_err(|e| self.fault(e))?;
                contents.tokens.insert(text(&k[prefix.len()..])?, text(&v)?);
            }
            contents.high_water = read_seconds(db, CLOCK_KEY).map_err(|e| self.fault_or(e))?;
            Ok(contents)
        })
    }

    fn fault_or(&self, e: Result<sled::Error, String>) -> Fault {
        match e {
            Ok(e) => self.fault(e),
            Err(why) => Fault::Unreadable(why),
        }
    }

    /// Stores the latest token for a product, durably.
    pub fn put_token(&self, server: &str, product: &str, token: &str) -> Result<(), Error> {
        self.write(|db| db.insert(token_key(server, product), token.as_bytes()).map(drop))
    }

    /// Deletes the token for a product, durably.
    pub fn remove_token(&self, server: &str, product: &str) -> Result<(), Error> {
        self.write(|db| db.remove(token_key(server, product)).map(drop))
    }

    /// Stores (or with `None` forgets) the registration number for `server`. Tokens of a
    /// previous number are deleted with it.
    pub fn set_number(&self, server: &str, number: Option<&str>) -> Result<(), Error> {
        self.write(|db| {
            let previous = db.get(number_key(server))?;
            if previous.as_deref() != number.map(str::as_bytes) {
                let prefix = [b"t/", server.as_bytes(), b"\0"].concat();
                for key in db.scan_prefix(&prefix).keys() {
                    db.remove(key?)?;
                }
            }
            match number {
                Some(n) => db.insert(number_key(server), n.as_bytes()).map(drop),
                None => db.remove(number_key(server)).map(drop),
            }
        })
    }

    /// Moves the clock high-water mark forward to `seconds` (never back), durably. Safe against
    /// concurrent processes: the larger mark wins.
    pub fn raise_high_water(&self, seconds: i64) -> Result<(), Error> {
        self.write(|db| max_into(db, CLOCK_KEY, seconds).map(drop))
    }

    /// After a server answered with a token issued at `issued_at`: the server's time is trusted
    /// time, so the mark is set to it — even lower than before, so that a clock once wrongly in
    /// the future does not lock the host out. Never lower than the latest issue time ever
    /// accepted, though, so replaying an old token cannot pull the mark back. Returns the mark.
    pub fn reset_high_water(&self, issued_at: i64) -> Result<i64, Error> {
        self.with_db(|db| {
            let latest = max_into(db, SERVER_CLOCK_KEY, issued_at).map_err(|e| self.fault(e))?;
            db.insert(CLOCK_KEY, &latest.to_be_bytes()).map_err(|e| self.fault(e))?;
            db.flush().map_err(|e| self.fault(e))?;
            Ok(latest)
        })
    }

    fn write(&self, f: impl Fn(&sled::Db) -> sled::Result<()>) -> Result<(), Error> {
        self.with_db(|db| {
            f(db).map_err(|e| self.fault(e))?;
            db.flush().map_err(|e| self.fault(e))?;
            Ok(())
        })
    }
}

/// Stores `max(stored, seconds)` under `key` atomically and returns it.
fn max_into(db: &sled::Db, key: &[u8], seconds: i64) -> sled::Result<i64> {
    let merged = db.update_and_fetch(key, |old| {
        let old = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_be_bytes);
        Some(old.map_or(seconds, |o| o.max(seconds)).to_be_bytes().to_vec())
    })?;
    Ok(merged.and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map_or(seconds, i64::from_be_bytes))
}

/// A mark stored as 8 big-endian bytes; `Err(Err(_))` when it is not 8 bytes.
fn read_seconds(db: &sled::Db, key: &[u8]) -> Result<Option<i64>, Result<sled::Error, String>> {
    match db.get(key).map_err(Ok)? {
        None => Ok(None),
        Some(b) => <[u8; 8]>::try_from(b.as_ref())
            .map(|b| Some(i64::from_be_bytes(b)))
            .map_err(|_| Err("a clock mark is not 8 bytes".to_owned())),
    }
}

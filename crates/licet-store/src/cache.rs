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
use crate::sled_store::{LockedDb, check_schema, open_db};

const CACHE_SCHEMA: &str = "licet-cache-1";
const CACHE_BYTES: u64 = 1 << 20;
const CLOCK_KEY: &[u8] = b"clock";
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

/// The cache could not be read as it is: it is set aside and a fresh one used.
struct Unreadable(String);

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

    /// Opens the database, waiting while another process holds it.
    fn open(&self) -> Result<Result<LockedDb, Unreadable>, Error> {
        match open_db(&self.path, CACHE_BYTES, LOCK_PATIENCE) {
            Ok(db) => Ok(match check_schema(&db.db, &self.path, CACHE_SCHEMA) {
                Ok(()) => Ok(db),
                Err(e) => Err(Unreadable(e.to_string())),
            }),
            Err(e @ Error::Locked { .. }) => Err(e),
            Err(e) => Ok(Err(Unreadable(e.to_string()))),
        }
    }

    /// Runs `f` on the open database; an unreadable cache is set aside, reported and replaced
    /// by an empty one first.
    fn with_db<T>(&self, f: impl Fn(&sled::Db) -> Result<T, Unreadable>) -> Result<T, Error> {
        for _ in 0..2 {
            let failure = match self.open()? {
                Ok(db) => match f(&db.db) {
                    Ok(v) => return Ok(v),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            self.set_aside(&failure.0)?;
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
        if self.path.exists() {
            std::fs::rename(&self.path, &aside).map_err(|e| Error::storage(&self.path, e))?;
        }
        self.warn(format!(
            "the license cache at {} could not be read ({why}); it was moved to {} and licenses will be fetched again",
            self.path.display(),
            aside.display()
        ));
        Ok(())
    }

    /// Everything cached for `server`. Never fails on an unreadable cache (it is replaced by an
    /// empty one and a warning kept for [`TokenCache::take_warning`]); fails only when another
    /// process holds the cache for too long or the disk refuses.
    pub fn load(&self, server: &str) -> Result<CacheContents, Error> {
        self.with_db(|db| {
            let bad = |e: &dyn std::fmt::Display| Unreadable(e.to_string());
            let mut contents = CacheContents::default();
            if let Some(n) = db.get(number_key(server)).map_err(|e| bad(&e))? {
                contents.number = Some(String::from_utf8(n.to_vec()).map_err(|e| bad(&e))?);
            }
            let prefix = [b"t/", server.as_bytes(), b"\0"].concat();
            for item in db.scan_prefix(&prefix) {
                let (k, v) = item.map_err(|e| bad(&e))?;
                let product = String::from_utf8(k[prefix.len()..].to_vec()).map_err(|e| bad(&e))?;
                contents.tokens.insert(product, String::from_utf8(v.to_vec()).map_err(|e| bad(&e))?);
            }
            contents.high_water = read_clock(db).map_err(|e| bad(&e))?;
            Ok(contents)
        })
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
        self.write(|db| {
            db.fetch_and_update(CLOCK_KEY, |old| {
                let old = old.and_then(|b| <[u8; 8]>::try_from(b).ok()).map(i64::from_be_bytes);
                Some(old.map_or(seconds, |o| o.max(seconds)).to_be_bytes().to_vec())
            })
            .map(drop)
        })
    }

    /// Sets the mark to `seconds` even if lower: used after a server answered, whose time is
    /// the trusted time, so that a clock once wrongly in the future does not lock a host out.
    pub fn reset_high_water(&self, seconds: i64) -> Result<(), Error> {
        self.write(|db| db.insert(CLOCK_KEY, &seconds.to_be_bytes()).map(drop))
    }

    fn write(&self, f: impl Fn(&sled::Db) -> sled::Result<()>) -> Result<(), Error> {
        self.with_db(|db| {
            f(db).map_err(|e| Unreadable(e.to_string()))?;
            db.flush().map_err(|e| Unreadable(e.to_string()))?;
            Ok(())
        })
    }
}

fn read_clock(db: &sled::Db) -> Result<Option<i64>, String> {
    match db.get(CLOCK_KEY).map_err(|e| e.to_string())? {
        None => Ok(None),
        Some(b) => <[u8; 8]>::try_from(b.as_ref())
            .map(|b| Some(i64::from_be_bytes(b)))
            .map_err(|_| "the clock mark is not 8 bytes".to_owned()),
    }
}

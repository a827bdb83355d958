//! Backups of the sled ledger: one file, taken while the server runs, checked whole before it
//! is restored.
//!
//! The file is `MAGIC`, the schema, then every entry of the ledger tree as length-prefixed key
//! and value (the count of commits among them), an end mark, the count of entries, and a
//! SHA-256 of everything before it. A copy is taken under the store's write lock, so it holds
//! every commit acknowledged before it began and none begun after it (commits applied but still
//! waiting for their flush are in it too, though their requests may yet fail): commands wait meanwhile
//! (about 0.75 s per 100,000 accounts: BENCHMARKS.md).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use licet_core::{Record, RecordKey};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::sled_store::{COMMITS, SCHEMA_VERSION, SledOptions, SledStore, seal_path};

/// The first bytes of every backup.
const MAGIC: &[u8] = b"licet-ledger-backup 1\n";
/// Where the entries end (no key is this long).
const END: u32 = u32::MAX;

/// What a backup holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupFacts {
    /// Commits in the ledger when the backup was taken.
    pub commits: u64,
    /// Records (licenses, accounts, bindings, coupons, products…).
    pub records: u64,
}

/// Writes into a backup, hashing what it writes.
struct Hashing<W> {
    out: W,
    hash: Sha256,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    fn chunk(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| std::io::Error::other("an entry over 4 GiB"))?;
        self.put(&len.to_be_bytes())?;
        self.put(bytes)
    }
}

/// Writes a backup of `entries` (the ledger tree, in key order) to `out`.
pub(crate) fn write(
    out: &mut dyn Write,
    entries: impl Iterator<Item = Result<(sled::IVec, sled::IVec), sled::Error>>,
) -> Result<BackupFacts, std::io::Error> {
    let mut w = Hashing { out: BufWriter::new(out), hash: Sha256::new() };
    w.put(MAGIC)?;
    w.chunk(SCHEMA_VERSION.as_bytes())?;
    let (mut count, mut facts) = (0u64, BackupFacts { commits: 0, records: 0 });
    for entry in entries {
        let (key, value) = entry.map_err(std::io::Error::other)?;
        if key.as_ref() == COMMITS {
            facts.commits = commits_of(&value).ok_or_else(|| std::io::Error::other("unreadable count of commits"))?;
        } else if !key.starts_with(b"!") {
            facts.records += 1;
        }
        w.chunk(&key)?;
        w.chunk(&value)?;
        count += 1;
    }
    w.put(&END.to_be_bytes())?;
    w.put(&count.to_be_bytes())?;
    let digest = w.hash.clone().finalize();
    w.out.write_all(&digest)?;
    w.out.flush()?;
    Ok(facts)
}

/// Reads the count of commits as stored.
pub(crate) fn commits_of(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

/// A backup read and checked whole.
#[derive(Debug)]
pub struct Backup {
    /// What it holds.
    pub facts: BackupFacts,
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads and checks a whole backup: its hash, its schema and every record in it.
pub fn read(path: &Path) -> Result<Backup, Error> {
    let bad = |message: String| Error::BadBackup { path: path.to_owned(), message };
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| Error::storage(path, e))?;
    let Some(body_len) = bytes.len().checked_sub(32) else { return Err(bad("it is too short".into())) };
    let (body, digest) = bytes.split_at(body_len);
    if !body.starts_with(MAGIC) {
        return Err(bad("it is not a licet ledger backup".into()));
    }
    if Sha256::digest(body).as_slice() != digest {
        return Err(bad("its checksum does not match: the file is damaged or incomplete".into()));
    }
    let mut r = Reader { rest: &body[MAGIC.len()..] };
    let short = || bad("it ends early".into());
    let schema = r.chunk().ok_or_else(short)?;
    if schema != SCHEMA_VERSION.as_bytes() {
        return Err(bad(format!(
            "it holds schema {}, this release restores {SCHEMA_VERSION}",
            String::from_utf8_lossy(schema)
        )));
    }
    let mut entries = Vec::new();
    let mut facts = BackupFacts { commits: 0, records: 0 };
    while r.rest.get(..4).ok_or_else(short)? != END.to_be_bytes() {
        let key = r.chunk().ok_or_else(short)?.to_vec();
        let value = r.chunk().ok_or_else(short)?.to_vec();
        if key == COMMITS {
            facts.commits = commits_of(&value).ok_or_else(|| bad("its count of commits is unreadable".into()))?;
        } else if !key.starts_with(b"!") {
            let record_key = RecordKey::from_bytes(&key)
                .ok_or_else(|| bad(format!("unknown key {:?}", String::from_utf8_lossy(&key))))?;
            Record::decode(&record_key, &value).map_err(|e| bad(format!("record {record_key:?}: {e}")))?;
            facts.records += 1;
        }
        entries.push((key, value));
    }
    r.take(4);
    let count = r.take(8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes);
    if count != Some(entries.len() as u64) || !r.rest.is_empty() {
        return Err(bad("its count of entries does not match".into()));
    }
    Ok(Backup { facts, entries })
}

/// Reads a backup's body front to back.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.rest.get(..n)?;
        self.rest = &self.rest[n..];
        Some(head)
    }

    /// A length-prefixed chunk.
    fn chunk(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().ok()?);
        self.take(len as usize)
    }
}

/// Restores the backup at `backup` as the ledger at `ledger`, which no process may hold.
///
/// The backup is checked whole first. It is loaded into `<ledger>.restoring`, then any ledger
/// in place is moved aside to `<ledger>.replaced-<unix seconds>` (never deleted) and the
/// restored one takes its name. Killed midway, the restore can simply be run again.
pub fn restore(backup: &Path, ledger: &Path, now_unix: u64) -> Result<(BackupFacts, Option<PathBuf>), Error> {
    let Backup { facts, entries } = read(backup)?;
    // Held until the restored ledger is in place: a server starting meanwhile waits for it.
    let _held = crate::sled_store::hold(ledger)?;
    // What an interrupted restore left behind.
    let restoring = sibling(ledger, ".restoring");
    if restoring.exists() {
        std::fs::remove_dir_all(&restoring).map_err(|e| Error::storage(&restoring, e))?;
    }
    let _ = std::fs::remove_file(seal_path(&restoring));
    let store = SledStore::open_with(&restoring, SledOptions::default())?;
    store.load_entries(entries)?;
    drop(store);
    let aside = sibling(ledger, &format!(".replaced-{now_unix}"));
    let replaced = if ledger.exists() {
        std::fs::rename(ledger, &aside).map_err(|e| Error::storage(ledger, e))?;
        Some(aside)
    } else {
        None
    };
    let seal = seal_path(ledger);
    if let (Some(aside), true) = (&replaced, seal.exists()) {
        std::fs::rename(&seal, seal_path(aside)).map_err(|e| Error::storage(&seal, e))?;
    }
    std::fs::rename(&restoring, ledger).map_err(|e| Error::storage(ledger, e))?;
    std::fs::rename(seal_path(&restoring), &seal).map_err(|e| Error::storage(&seal, e))?;
    // The renames are durable before success is reported.
    if let Some(parent) = ledger.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent).and_then(|d| d.sync_all()).map_err(|e| Error::storage(parent, e))?;
    }
    Ok((facts, replaced))
}

/// `path` with `suffix` added to its last component.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

//! Release 0.1.0's agent cache: a sled database in `D/cache/`, schema `licet-cache-1`, holding
//! per server URL the number (`n/URL`) and tokens (`t/URL\0PRODUCT`), and the clock marks
//! (`clock`, `server-clock`, 8 big-endian bytes). Read once, to import it into the new cache.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use licet_core::agent::Memory;

use crate::cache::CacheError;
use crate::error::Error;
use crate::sled_store::open_db;

/// How long to wait for a 0.1.0 program that holds its cache open.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);
const SCHEMA: &[u8] = b"licet-cache-1";

/// Whether `data_dir` holds a cache of release 0.1.0.
pub(crate) fn present(data_dir: &Path) -> bool {
    data_dir.join("cache/conf").exists()
}

/// What release 0.1.0 kept in `data_dir`, as this release's [`Memory`]: the number and tokens
/// of the first of `servers` that has a number there (else of any server that has one, in
/// order), and the clock marks. `None` when there is no readable 0.1.0 cache.
pub(crate) fn read(data_dir: &Path, servers: &[String]) -> Result<Option<Memory>, CacheError> {
    let path = data_dir.join("cache");
    if !present(data_dir) {
        return Ok(None);
    }
    let db = match open_db(&path, 1 << 20, PATIENCE) {
        Ok(db) => db,
        Err(Error::Locked { .. }) => return Err(CacheError::Busy(path)),
        // Damaged: nothing to import; the server will be asked.
        Err(_) => return Ok(None),
    };
    let db = &db.db;
    if db.get(b"licet/schema").ok().flatten().as_deref() != Some(SCHEMA) {
        return Ok(None);
    }
    let text = |bytes: &[u8]| String::from_utf8(bytes.to_vec()).ok();
    let seconds = |key: &[u8]| {
        db.get(key).ok().flatten().and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok()).map(i64::from_be_bytes)
    };
    let mut numbers = BTreeMap::new();
    let mut tokens: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for item in db.iter() {
        let Ok((key, value)) = item else { return Ok(None) };
        if let Some(server) = key.strip_prefix(b"n/").and_then(text) {
            numbers.insert(server, text(&value));
        } else if let Some(rest) = key.strip_prefix(b"t/")
            && let Some(split) = rest.iter().position(|&b| b == 0)
            && let (Some(server), Some(product), Some(token)) =
                (text(&rest[..split]), text(&rest[split + 1..]), text(&value))
        {
            tokens.entry(server).or_default().insert(product, token);
        }
    }
    let configured = servers.iter().map(|s| s.trim().trim_end_matches('/').to_owned());
    let chosen = configured
        .clone()
        .find(|s| numbers.get(s).is_some_and(Option::is_some))
        .or_else(|| numbers.iter().find(|(_, n)| n.is_some()).map(|(s, _)| s.clone()))
        .or_else(|| configured.clone().find(|s| tokens.contains_key(s)))
        .or_else(|| tokens.keys().next().cloned());
    Ok(Some(Memory {
        number: chosen.as_ref().and_then(|s| numbers.get(s).cloned().flatten()),
        tokens: chosen.and_then(|s| tokens.remove(&s)).unwrap_or_default(),
        mark: seconds(b"clock"),
        floor: seconds(b"server-clock"),
        ..Memory::default()
    }))
}

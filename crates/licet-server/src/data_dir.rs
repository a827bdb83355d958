//! The server's data directory: `server.json` (vendor prefix, key id), `signing.key` (mode
//! 0600), `admin-token.sha256` (the admin token is never stored, only its hash), `ledger/`
//! (the sled store) and `outbox/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use licet_core::TokenSigner;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What `init` tells the operator once.
#[derive(Debug, Clone, Serialize)]
pub struct InitFacts {
    /// The signing key's public half, 64 hex characters: embed it in the vendor's program.
    pub public_key: String,
    /// The key id, 16 hex characters.
    pub kid: String,
    /// The admin bearer token, shown only now.
    pub admin_token: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ServerFile {
    vendor_prefix: String,
    kid: String,
    public_key: String,
}

/// An initialised data directory, loaded.
pub(crate) struct Loaded {
    pub(crate) vendor_prefix: String,
    /// The signing keys.
    pub(crate) keys: crate::keys::Keyring,
    /// The admin token's hash; a node of a cluster keeps it in the database instead.
    pub(crate) admin_hash: Option<[u8; 32]>,
}

/// Errors of the data directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// `init` on a directory that is already initialised.
    #[error("{0} is already initialised")]
    AlreadyInitialised(PathBuf),
    /// A file is missing, unreadable or malformed.
    #[error("{path}: {message}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The signing key may be read by others.
    #[error("{0} is readable by other users; run `chmod 600` on it")]
    KeyTooOpen(PathBuf),
}

fn bad(path: &Path, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Bad { path: path.to_owned(), message: e.to_string() }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], DataDirError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| bad(Path::new("getrandom"), e))?;
    Ok(buf)
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(text.trim(), &mut out).ok().map(|()| out)
}

/// SHA-256 of an admin token.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Writes a new file durably, failing if it exists; `mode` applies on Unix.
pub(crate) fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), DataDirError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = options.open(path).map_err(|e| bad(path, e))?;
    f.write_all(contents).map_err(|e| bad(path, e))?;
    f.sync_all().map_err(|e| bad(path, e))
}

/// Whether `dir` holds an initialised server.
pub(crate) fn is_initialised(dir: &Path) -> bool {
    dir.join("server.json").exists()
}

/// Creates the store, a signing key and an admin token in `dir`. Refuses an initialised dir.
pub(crate) fn init(dir: &Path, vendor_prefix: &str) -> Result<InitFacts, anyhow::Error> {
    let (facts, _) = init_with(dir, vendor_prefix, None)?;
    Ok(facts)
}

/// Initialises `dir`: a signing key and `server.json`; the admin token's hash and the ledger
/// go to `database` when there is one (which must not know another key yet), else into `dir`.
pub(crate) fn init_with(
    dir: &Path,
    vendor_prefix: &str,
    database: Option<&licet_store::PgStore>,
) -> Result<(InitFacts, [u8; 32]), anyhow::Error> {
    licet_core::credential::validate_prefix(vendor_prefix)?;
    if is_initialised(dir) || dir.join("signing.key").exists() {
        return Err(DataDirError::AlreadyInitialised(dir.to_owned()).into());
    }
    if let Some(db) = database
        && !db.server_facts()?.keys.is_empty()
    {
        anyhow::bail!(
            "database {} already belongs to a cluster: copy the data directory of one of its nodes instead of running init",
            db.name()
        );
    }
    std::fs::create_dir_all(dir.join("outbox")).map_err(|e| bad(dir, e))?;
    let secret = random_bytes::<32>()?;
    let signer = TokenSigner::from_secret(&secret);
    write_new(&dir.join("signing.key"), format!("{}\n", hex::encode(secret)).as_bytes(), 0o600)?;
    let admin_token = format!("lat_{}", hex::encode(random_bytes::<24>()?));
    let admin_hash = token_hash(&admin_token);
    let facts = InitFacts { public_key: signer.public_key_hex(), kid: signer.kid().to_string(), admin_token };
    match database {
        None => {
            write_new(&dir.join("admin-token.sha256"), format!("{}\n", hex::encode(admin_hash)).as_bytes(), 0o600)?;
            drop(licet_store::SledStore::open(dir.join("ledger"))?);
        }
        Some(db) => {
            let registration = licet_store::pg::shared::Registration::new(
                &facts.kid,
                &facts.public_key,
                &hex::encode(admin_hash),
                vendor_prefix,
            );
            if let Err(e) = db.register_server(&registration) {
                // Leave the directory as it was, so that init can run again.
                let _ = std::fs::remove_file(dir.join("signing.key"));
                return Err(e.into());
            }
        }
    }
    let file = ServerFile {
        vendor_prefix: vendor_prefix.to_owned(),
        kid: facts.kid.clone(),
        public_key: facts.public_key.clone(),
    };
    let json = serde_json::to_vec_pretty(&file)?;
    write_new(&dir.join("server.json"), &json, 0o644)?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| bad(dir, e))?;
    Ok((facts, admin_hash))
}

/// The admin token's hash of a hex text.
pub(crate) fn admin_hash_of(text: &str) -> Option<[u8; 32]> {
    unhex::<32>(text)
}

/// A secret signing key's file: 64 hex characters, readable by its owner only.
pub(crate) fn read_secret(key_path: &Path) -> Result<[u8; 32], DataDirError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key_path).map_err(|e| bad(key_path, e))?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(DataDirError::KeyTooOpen(key_path.to_owned()));
        }
    }
    let secret = std::fs::read_to_string(key_path).map_err(|e| bad(key_path, e))?;
    unhex::<32>(&secret).ok_or_else(|| bad(key_path, "not 64 hex characters"))
}

/// Loads an initialised data directory; `cluster` is what a cluster's database says of its keys.
pub(crate) fn load(dir: &Path, cluster: Option<&crate::keys::ClusterKeys>) -> Result<Loaded, DataDirError> {
    let server_path = dir.join("server.json");
    let server: ServerFile = serde_json::from_slice(&std::fs::read(&server_path).map_err(|e| bad(&server_path, e))?)
        .map_err(|e| bad(&server_path, e))?;
    let keys = crate::keys::Keyring::load(dir, cluster)?;
    let hash_path = dir.join("admin-token.sha256");
    let admin_hash = match std::fs::read_to_string(&hash_path) {
        Ok(hash) => Some(unhex::<32>(&hash).ok_or_else(|| bad(&hash_path, "not 64 hex characters"))?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(bad(&hash_path, e)),
    };
    Ok(Loaded { vendor_prefix: server.vendor_prefix, keys, admin_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_load_and_refuse_a_second_init() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let facts = init(dir.path(), "MIKO")?;
        assert_eq!(facts.public_key.len(), 64);
        assert_eq!(facts.kid.len(), 16);
        let loaded = load(dir.path(), None)?;
        assert_eq!(loaded.vendor_prefix, "MIKO");
        assert_eq!(loaded.keys.active.public_key_hex(), facts.public_key);
        assert_eq!(loaded.admin_hash, Some(token_hash(&facts.admin_token)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("signing.key"))?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(dir.path().join("signing.key"), std::fs::Permissions::from_mode(0o644))?;
            assert!(matches!(load(dir.path(), None), Err(DataDirError::KeyTooOpen(_))));
        }
        assert!(init(dir.path(), "MIKO").is_err());
        assert!(init(&dir.path().join("other"), "bad prefix").is_err());
        Ok(())
    }
}

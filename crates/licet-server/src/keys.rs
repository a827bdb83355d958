//! The server's signing keys (SPEC §9): the key `init` made (`signing.key`) and any added since
//! (`keys/<kid>.key`, mode 0600), with `keys/ring.json` saying which one is active, which are
//! retired, and how each newer key was endorsed by the key active when it was added.
//!
//! The active key signs this release's tokens and refusals, which carry the endorsements that
//! lead back from it to the first key, so that an agent trusting only an older key accepts
//! them. Release 0.1.0's tokens (for agents without the format marker, which read no
//! endorsements) are signed by the oldest key that is not retired. A retired key signs nothing;
//! what it signed stays valid until its lease ends, and its endorsements stay in the chain.
//! Changes take effect when the server (each node) starts; in a cluster the active key is
//! recorded in the database, and a node whose ring lacks it refuses to start.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use licet_core::TokenSigner;
use licet_wire::KeyObject;
use serde::{Deserialize, Serialize};

use crate::data_dir::{DataDirError, read_secret, write_new};

/// Most endorsement links a token carries (agents follow at most four).
const MAX_LINKS: usize = 4;

/// One key of the ring, as `keys/ring.json` records it.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    kid: String,
    public_key: String,
    /// The secret key's file, relative to the data directory.
    file: String,
    /// Unix seconds.
    added_at: i64,
    /// The endorsement by `endorsed_by` (text of a token link); `None` for the first key.
    #[serde(default)]
    endorsement: Option<String>,
    #[serde(default)]
    endorsed_by: Option<String>,
    #[serde(default)]
    retired: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct RingFile {
    active: String,
    keys: Vec<Entry>,
}

/// The signers a server uses, and the keys it lists.
pub(crate) struct Keyring {
    /// Signs this release's tokens, refusals and endorsements, with its chain attached.
    pub(crate) active: TokenSigner,
    /// Signs release 0.1.0's tokens: the oldest key that is not retired.
    pub(crate) legacy: TokenSigner,
    /// `GET /v1/keys`.
    pub(crate) listing: Vec<KeyObject>,
}

fn ring_path(dir: &Path) -> PathBuf {
    dir.join("keys").join("ring.json")
}

fn bad(path: &Path, e: impl std::fmt::Display) -> DataDirError {
    DataDirError::Bad { path: path.to_owned(), message: e.to_string() }
}

/// The ring of `dir`: `keys/ring.json`, or the one key `init` made.
fn read_ring(dir: &Path) -> Result<RingFile, DataDirError> {
    let path = ring_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(&path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = TokenSigner::from_secret(&read_secret(&dir.join("signing.key"))?);
            let kid = signer.kid().to_string();
            let first = Entry {
                kid: kid.clone(),
                public_key: signer.public_key_hex(),
                file: "signing.key".into(),
                added_at: 0,
                endorsement: None,
                endorsed_by: None,
                retired: false,
            };
            Ok(RingFile { active: kid, keys: vec![first] })
        }
        Err(e) => Err(bad(&path, e)),
    }
}

/// Replaces `keys/ring.json` atomically and durably.
fn write_ring(dir: &Path, ring: &RingFile) -> Result<(), DataDirError> {
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| bad(&keys, e))?;
    let path = ring_path(dir);
    let temporary = keys.join("ring.json.new");
    let _ = std::fs::remove_file(&temporary);
    let json = serde_json::to_vec_pretty(ring).map_err(|e| bad(&path, e))?;
    write_new(&temporary, &json, 0o644)?;
    std::fs::rename(&temporary, &path).map_err(|e| bad(&path, e))?;
    std::fs::File::open(&keys).and_then(|d| d.sync_all()).map_err(|e| bad(&keys, e))
}

fn signer_of(dir: &Path, entry: &Entry) -> Result<TokenSigner, DataDirError> {
    let path = dir.join(&entry.file);
    let signer = TokenSigner::from_secret(&read_secret(&path)?);
    if signer.public_key_hex() != entry.public_key {
        return Err(bad(&path, format!("holds another key than {} of keys/ring.json", entry.kid)));
    }
    Ok(signer)
}

/// The endorsements from `kid` back towards the first key, nearest first.
fn chain(ring: &RingFile, kid: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut current = ring.keys.iter().find(|e| e.kid == kid);
    while let Some(entry) = current {
        let (Some(link), Some(by)) = (&entry.endorsement, &entry.endorsed_by) else { break };
        if links.len() == MAX_LINKS {
            break;
        }
        links.push(link.clone());
        current = ring.keys.iter().find(|e| e.kid == *by);
    }
    links
}

/// What a cluster's database says of its keys, which a node's ring follows.
#[derive(Clone, Debug, Default)]
pub struct ClusterKeys {
    /// The active key, once `keys activate --database` chose one.
    pub active: Option<String>,
    /// The keys retired with `--database`.
    pub retired: Vec<String>,
}

/// `ring` as the cluster's database has it: its active key (which must be here and not retired)
/// and its retired ones.
fn follow(dir: &Path, ring: &mut RingFile, cluster: &ClusterKeys) -> Result<(), DataDirError> {
    for entry in &mut ring.keys {
        entry.retired |= cluster.retired.contains(&entry.kid);
    }
    if let Some(kid) = &cluster.active {
        match ring.keys.iter().find(|e| e.kid == *kid) {
            None => {
                let why =
                    format!("the cluster's active key {kid} is not here: copy keys/ from the node where it was added");
                return Err(bad(&ring_path(dir), why));
            }
            Some(e) if e.retired => {
                return Err(bad(&ring_path(dir), format!("the cluster's active key {kid} is retired")));
            }
            Some(_) => ring.active = kid.clone(),
        }
    }
    Ok(())
}

/// Writes what a cluster's database says of its keys into the ring of `dir`, before a `keys`
/// command with `--database` works on it: the key it endorses with, the keys it may retire.
pub fn follow_cluster(dir: &Path, cluster: &ClusterKeys) -> Result<(), DataDirError> {
    let mut ring = read_ring(dir)?;
    follow(dir, &mut ring, cluster)?;
    write_ring(dir, &ring)
}

impl Keyring {
    /// The keys of `dir`, as a cluster's database has them (`cluster`) when there is one.
    pub(crate) fn load(dir: &Path, cluster: Option<&ClusterKeys>) -> Result<Keyring, DataDirError> {
        let mut ring = read_ring(dir)?;
        if let Some(cluster) = cluster {
            follow(dir, &mut ring, cluster)?;
        }
        let active_entry = ring
            .keys
            .iter()
            .find(|e| e.kid == ring.active)
            .ok_or_else(|| bad(&ring_path(dir), format!("the active key {} is not in the ring", ring.active)))?;
        if active_entry.retired {
            let why = format!("the active key {} is retired: activate another one", ring.active);
            return Err(bad(&ring_path(dir), why));
        }
        let legacy_entry = ring.keys.iter().find(|e| !e.retired).unwrap_or(active_entry);
        let listing = objects(&ring);
        Ok(Keyring {
            active: signer_of(dir, active_entry)?.with_chain(chain(&ring, &ring.active)),
            legacy: signer_of(dir, legacy_entry)?,
            listing,
        })
    }
}

/// The keys as `GET /v1/keys` and `licet-server keys` list them: whether each is active (in the
/// ring; a cluster's database may choose another, see [`Keyring::load`]) or retired, and its
/// endorsement.
fn objects(ring: &RingFile) -> Vec<KeyObject> {
    ring.keys
        .iter()
        .map(|e| KeyObject {
            kid: e.kid.clone(),
            public_key: e.public_key.clone(),
            active: e.kid == ring.active,
            retired: e.retired,
            endorsed_by: e.endorsed_by.clone(),
            endorsement: e.endorsement.clone(),
        })
        .collect()
}

/// `keys list`.
pub fn list(dir: &Path) -> Result<Vec<KeyObject>, DataDirError> {
    Ok(objects(&read_ring(dir)?))
}

/// `keys add`: a new key, endorsed by the active one from `now` on, not yet active. Refused
/// without `force` when its chain back to the first key would be longer than agents follow.
pub fn add(dir: &Path, now: DateTime<Utc>, force: bool) -> Result<KeyObject, DataDirError> {
    let mut ring = read_ring(dir)?;
    let active = ring.keys.iter().find(|e| e.kid == ring.active).cloned();
    let active = active.ok_or_else(|| bad(&ring_path(dir), "no active key"))?;
    if chain(&ring, &active.kid).len() >= MAX_LINKS && !force {
        let first = ring.keys.first().map_or("the first key", |e| e.kid.as_str());
        let why = format!(
            "a new key would be {} endorsements away from {first}, more than agents follow: programs that trust \
             only {first} would refuse its tokens; build a newer key into them first, or use --force",
            MAX_LINKS + 1
        );
        return Err(bad(&ring_path(dir), why));
    }
    let endorser = signer_of(dir, &active)?;
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| bad(Path::new("getrandom"), e))?;
    let signer = TokenSigner::from_secret(&secret);
    let kid = signer.kid().to_string();
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| bad(&keys, e))?;
    let file = format!("keys/{kid}.key");
    write_new(&dir.join(&file), format!("{}\n", hex::encode(secret)).as_bytes(), 0o600)?;
    ring.keys.push(Entry {
        kid: kid.clone(),
        public_key: signer.public_key_hex(),
        file,
        added_at: now.timestamp(),
        // From a day before now: a node whose clock runs behind must not issue tokens that the
        // endorsement does not cover yet (the key did not exist before, so nothing is lost).
        endorsement: Some(endorser.endorse(&signer.public_key(), now - chrono::Duration::days(1))),
        endorsed_by: Some(active.kid.clone()),
        retired: false,
    });
    write_ring(dir, &ring)?;
    objects(&ring).into_iter().find(|k| k.kid == kid).ok_or_else(|| bad(&ring_path(dir), "the new key vanished"))
}

/// `keys activate KID`; with `dry_run`, only whether it can (the key is here, readable, not
/// retired).
pub fn activate(dir: &Path, kid: &str, dry_run: bool) -> Result<(), DataDirError> {
    let mut ring = read_ring(dir)?;
    match ring.keys.iter().find(|e| e.kid == kid) {
        None => return Err(bad(&ring_path(dir), format!("no key {kid}"))),
        Some(e) if e.retired => return Err(bad(&ring_path(dir), format!("key {kid} is retired"))),
        Some(e) => signer_of(dir, e)?,
    };
    if dry_run {
        return Ok(());
    }
    ring.active = kid.to_owned();
    write_ring(dir, &ring)
}

/// What retiring a key does to release 0.1.0's agents, said before it is done.
#[derive(Debug)]
pub enum Retire {
    /// Retired; the warning, if it stranded anyone.
    Done(Option<String>),
    /// Not retired: it would strand 0.1.0 agents; `--force` retires it anyway.
    WouldStrand(String),
}

/// `keys retire KID [--force]`; with `dry_run`, only what it would do.
pub fn retire(dir: &Path, kid: &str, force: bool, dry_run: bool) -> Result<Retire, DataDirError> {
    let mut ring = read_ring(dir)?;
    if ring.active == kid {
        return Err(bad(&ring_path(dir), format!("key {kid} is active: activate another one first")));
    }
    let Some(position) = ring.keys.iter().position(|e| e.kid == kid) else {
        return Err(bad(&ring_path(dir), format!("no key {kid}")));
    };
    let oldest = ring.keys.iter().position(|e| !e.retired);
    let mut warning = None;
    if oldest == Some(position) {
        let next = ring.keys.iter().skip(position + 1).find(|e| !e.retired).map_or("none", |e| e.kid.as_str());
        let text = format!(
            "key {kid} signs the tokens of release-0.1.0 agents, which trust only the keys built into them and read \
             no endorsements: once it is retired their tokens are signed by {next}, and agents that do not trust \
             {next} stop passing when their cached tokens' leases end"
        );
        if !force {
            return Ok(Retire::WouldStrand(text));
        }
        warning = Some(text);
    }
    if !dry_run {
        ring.keys[position].retired = true;
        write_ring(dir, &ring)?;
    }
    Ok(Retire::Done(warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use licet_core::TrustedKeys;

    #[test]
    fn a_rotated_ring_signs_with_the_new_key_endorsed_back_to_the_first() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let facts = crate::data_dir::init(dir.path(), "MIKO")?;
        let now = Utc::now();
        let first = Keyring::load(dir.path(), None)?;
        assert_eq!(first.active.kid().to_string(), facts.kid);
        let second = add(dir.path(), now, false)?;
        assert!(!second.active);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(format!("keys/{}.key", second.kid)))?.permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        activate(dir.path(), &second.kid, false)?;
        let one_step = Keyring::load(dir.path(), None)?;
        let third = add(dir.path(), now, false)?;
        activate(dir.path(), &third.kid, false)?;
        let ring = Keyring::load(dir.path(), None)?;
        assert_eq!(ring.active.kid().to_string(), third.kid);
        assert_eq!(ring.legacy.kid().to_string(), facts.kid, "0.1.0 tokens: the oldest key not retired");
        // An agent trusting only the first key accepts what the third signs, through two links.
        let mut trusted = TrustedKeys::new();
        trusted.add_hex(&facts.public_key)?;
        let claims = licet_core::Claims {
            kid: ring.active.kid(),
            license_id: "lic_1".into(),
            product: "p".into(),
            kind: licet_core::LicenseKind::Perpetual,
            host: licet_core::Fingerprint::new([("machine-id", "m")])?.digest(),
            issued_at: now.timestamp(),
            lease_until: now.timestamp() + 60,
            expires_at: None,
            clock_tolerance_minutes: 60,
            grace_until: None,
            refresh_after: None,
            features: Vec::new(),
            nonce: None,
            session: None,
        };
        let token = ring.active.sign(&claims, licet_core::TokenFormat::V2);
        assert_eq!(trusted.verify(&token)?.claims().kid, ring.active.kid());
        // What a chain costs: a token of a directly trusted key, with one link, with two.
        let direct = first.active.sign(&claims, licet_core::TokenFormat::V2).len();
        let one_link = one_step.active.sign(&claims, licet_core::TokenFormat::V2).len();
        println!("token: {direct} characters; one endorsement: {one_link}; two: {}", token.len());
        assert!(direct <= 300 && one_link < direct + 200, "{direct} {one_link}");
        // Retiring the first key strands 0.1.0 agents: refused without --force.
        assert!(matches!(retire(dir.path(), &facts.kid, false, false), Ok(Retire::WouldStrand(_))));
        assert!(retire(dir.path(), &third.kid, true, false).is_err(), "the active key cannot be retired");
        assert!(matches!(retire(dir.path(), &facts.kid, true, false)?, Retire::Done(Some(_))));
        let ring = Keyring::load(dir.path(), None)?;
        assert_eq!(ring.legacy.kid().to_string(), second.kid);
        assert!(trusted.verify(&ring.active.sign(&claims, licet_core::TokenFormat::V2)).is_ok(), "still endorsed");
        assert!(activate(dir.path(), &facts.kid, false).is_err(), "a retired key cannot be activated");
        // Two more rotations make four links; a fifth is refused without --force.
        for _ in 0..2 {
            let next = add(dir.path(), now, false)?;
            activate(dir.path(), &next.kid, false)?;
        }
        assert!(add(dir.path(), now, false).is_err());
        assert!(add(dir.path(), now, true).is_ok());
        // A cluster's view wins: its retired keys, its active key (which must be here).
        let cluster = ClusterKeys { active: Some(second.kid.clone()), retired: vec![third.kid.clone()] };
        let ring = Keyring::load(dir.path(), Some(&cluster))?;
        assert_eq!(ring.active.kid().to_string(), second.kid);
        assert!(ring.listing.iter().any(|k| k.kid == third.kid && k.retired));
        let gone = ClusterKeys { active: Some("0000000000000000".into()), retired: Vec::new() };
        assert!(Keyring::load(dir.path(), Some(&gone)).is_err());
        let retired_active = ClusterKeys { active: Some(third.kid.clone()), retired: vec![third.kid.clone()] };
        assert!(Keyring::load(dir.path(), Some(&retired_active)).is_err());
        Ok(())
    }
}

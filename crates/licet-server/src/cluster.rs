//! A cluster of servers on one PostgreSQL database (SPEC §7): initialising it, admitting a
//! node, and moving an embedded store into it.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use licet_store::pg::shared::Registration;
use licet_store::{PgStore, SledOptions, SledStore};
use serde::Serialize;

use crate::data_dir::{self, InitFacts};
use crate::server::{Backend, Node};

/// Initialises a data directory for a cluster on the database at `url`: the signing key and
/// `server.json` in the directory, the admin token's hash and the ledger in the database
/// (which must not belong to another cluster). Copy the directory to every node.
pub fn init_cluster(data_dir: &std::path::Path, vendor_prefix: &str, url: &str) -> anyhow::Result<InitFacts> {
    let db = PgStore::connect(url)?;
    Ok(data_dir::init_with(data_dir, vendor_prefix, Some(&db))?.0)
}

/// A node of a cluster: the data directory holds only the signing key and `server.json`,
/// which the database must know; it is never initialised here.
pub(crate) fn node(dir: &std::path::Path, url: &str) -> anyhow::Result<Node> {
    if !data_dir::is_initialised(dir) {
        anyhow::bail!(
            "{} is not initialised: with --database, run `licet-server init --database` once, then copy its data directory to every node",
            dir.display()
        );
    }
    let db = Arc::new(PgStore::connect(url)?);
    if let Some((from, to)) = db.migrated() {
        tracing::info!(from, to, database = db.name(), "database schema brought up to date");
    }
    let facts = db.server_facts()?;
    let cluster = crate::keys::ClusterKeys { active: facts.active_kid.clone(), retired: facts.retired.clone() };
    let loaded = data_dir::load(dir, Some(&cluster))?;
    let public_key = loaded.keys.active.public_key_hex();
    if !facts.keys.iter().any(|(_, key)| *key == public_key) {
        anyhow::bail!(
            "database {} does not know the signing key of {} ({}): this data directory belongs to another cluster",
            db.name(),
            dir.display(),
            loaded.keys.active.kid()
        );
    }
    if facts.vendor_prefix.as_deref().is_some_and(|p| p != loaded.vendor_prefix) {
        anyhow::bail!("database {} has another vendor prefix than {}", db.name(), dir.display());
    }
    let admin_hash = facts
        .admin_hash
        .as_deref()
        .and_then(data_dir::admin_hash_of)
        .with_context(|| format!("database {} holds no admin token", db.name()))?;
    Ok(Node { store: db.clone(), backend: Backend::Database(db), loaded, admin_hash, initialised: None })
}

/// What `licet-server migrate` copied.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Migration {
    /// The database, without its password.
    pub database: String,
    /// Records copied.
    pub records: usize,
    /// The signing key's id the cluster now knows.
    pub kid: String,
}

/// Copies the embedded store of `dir` (its ledger, signing key, admin token and vendor prefix)
/// into the empty database at `url`; the server must be stopped. The directory is left as it
/// was: it becomes a node's data directory (`serve --database`), and its ledger a fallback.
pub fn migrate(dir: &Path, url: &str) -> anyhow::Result<Migration> {
    let loaded = data_dir::load(dir, None)?;
    let admin_hash =
        loaded.admin_hash.with_context(|| format!("{} has no admin-token.sha256 to move", dir.display()))?;
    let options = SledOptions { must_exist: true, ..SledOptions::default() };
    let sled = SledStore::open_with(dir.join("ledger"), options).context("opening the embedded ledger")?;
    if let Some(report) = sled.email_report()? {
        crate::server::report_emails(dir, &report, &sled);
    }
    let records = sled.records().collect::<Result<Vec<_>, _>>()?;
    let db = PgStore::connect(url)?;
    let facts = db.server_facts()?;
    if !facts.keys.is_empty() || db.record_count()? != 0 {
        anyhow::bail!("database {} is not empty: migrate only into a new, empty database", db.name());
    }
    let public_key = loaded.keys.active.public_key_hex();
    let kid = loaded.keys.active.kid().to_string();
    let registration = Registration::new(&kid, &public_key, &hex::encode(admin_hash), &loaded.vendor_prefix);
    let copied = db.copy_records(&records, &registration)?;
    // Every key of the ring goes with it (the active one first, as `init` records a cluster's).
    for other in loaded.keys.listing.iter().filter(|k| k.kid != kid) {
        db.add_signing_key(&other.kid, &other.public_key)?;
    }
    Ok(Migration { database: db.name().to_owned(), records: copied, kid })
}

//! `licet-server backup` and `restore` (docs/operations.md).
//!
//! A running server holds its ledger locked, so a backup of a running server is taken by the
//! server itself: it listens on `control/backup.sock` in its data directory (the directory mode
//! 0700, and only the data directory's owner or root are answered) for one JSON line
//! `{"backup":"/absolute/path"}`, writes a consistent copy there ([`SledStore::backup`]) and
//! answers one JSON line. With no server
//! running, the command opens the ledger itself. Either way the command then reads the file
//! back whole and checks it before it reports success.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use licet_store::{BackupFacts, Error as StoreError, SledOptions, SledStore};
use serde::{Deserialize, Serialize};

/// The control socket, in a directory of its own in the data directory.
const CONTROL_DIR: &str = "control";
const CONTROL_SOCKET: &str = "backup.sock";

/// A request on the control socket.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    backup: PathBuf,
}

/// The answer on the control socket.
#[derive(Debug, Serialize, Deserialize)]
struct Reply {
    ok: bool,
    #[serde(default)]
    commits: u64,
    #[serde(default)]
    records: u64,
    #[serde(default)]
    error: Option<String>,
}

/// What a backup or restore did, as `--json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) ok: bool,
    pub(crate) path: PathBuf,
    pub(crate) commits: u64,
    pub(crate) records: u64,
    /// Where a restore moved the ledger it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) replaced: Option<PathBuf>,
}

/// Writes a backup of `store` to `path`: to a `.partial` file first (mode 0600: it holds
/// registration numbers), fsynced, then renamed into place.
fn write_file(store: &SledStore, path: &Path) -> anyhow::Result<BackupFacts> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // One left by an interrupted backup (or a link planted there) is replaced, never followed.
    let _ = std::fs::remove_file(&partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&partial).with_context(|| format!("creating {}", partial.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let facts = store.backup(&mut file)?;
    file.sync_all()?;
    std::fs::rename(&partial, path).with_context(|| format!("renaming to {}", path.display()))?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all())?;
    }
    Ok(facts)
}

/// `licet-server backup --data-dir D --out FILE`.
pub(crate) fn backup(data_dir: &Path, out: &Path) -> anyhow::Result<Report> {
    let out = std::path::absolute(out)?;
    let taken = match ask_running_server(data_dir, &out)? {
        Some(facts) => facts,
        None => {
            let options = SledOptions { must_exist: true, ..SledOptions::default() };
            let store = match SledStore::open_with(data_dir.join("ledger"), options) {
                Err(StoreError::Locked { .. }) => anyhow::bail!(
                    "the ledger in {} is held by a process that does not answer on {CONTROL_DIR}/{CONTROL_SOCKET}",
                    data_dir.display()
                ),
                other => other.context("opening the ledger")?,
            };
            write_file(&store, &out)?
        }
    };
    let checked = licet_store::backup::read(&out).context("reading the backup back")?.facts;
    anyhow::ensure!(checked == taken, "the backup read back holds {checked:?}, not {taken:?}");
    Ok(Report { ok: true, path: out, commits: taken.commits, records: taken.records, replaced: None })
}

/// `licet-server restore --data-dir D --from FILE` (no server may be running on D).
pub(crate) fn restore(data_dir: &Path, from: &Path, now_unix: u64) -> anyhow::Result<Report> {
    anyhow::ensure!(
        crate::data_dir::is_initialised(data_dir),
        "{} is not an initialised data directory: restore into the data directory the backup came from (its server.json and signing key)",
        data_dir.display()
    );
    let (facts, replaced) =
        licet_store::backup::restore(from, &data_dir.join("ledger"), now_unix).map_err(|e| match e {
            StoreError::Locked { .. } => {
                anyhow::anyhow!("a server is running on {}: stop it first", data_dir.display())
            }
            e => e.into(),
        })?;
    Ok(Report { ok: true, path: from.to_owned(), commits: facts.commits, records: facts.records, replaced })
}

#[cfg(unix)]
fn ask_running_server(data_dir: &Path, out: &Path) -> anyhow::Result<Option<BackupFacts>> {
    use std::io::{BufRead, BufReader};
    let Ok(mut stream) = std::os::unix::net::UnixStream::connect(data_dir.join(CONTROL_DIR).join(CONTROL_SOCKET))
    else {
        return Ok(None);
    };
    let mut line = serde_json::to_vec(&Request { backup: out.to_owned() })?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    let reply: Reply = serde_json::from_str(&answer).with_context(|| format!("the server answered {answer:?}"))?;
    match reply {
        Reply { ok: true, commits, records, .. } => Ok(Some(BackupFacts { commits, records })),
        Reply { error, .. } => anyhow::bail!("the server could not take the backup: {}", error.unwrap_or_default()),
    }
}

#[cfg(not(unix))]
fn ask_running_server(_: &Path, _: &Path) -> anyhow::Result<Option<BackupFacts>> {
    Ok(None)
}

/// Answers backup requests on `control/backup.sock` in `data_dir` until aborted.
#[cfg(unix)]
pub(crate) fn listen(data_dir: &Path, store: Arc<SledStore>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let dir = data_dir.join(CONTROL_DIR);
    std::fs::create_dir_all(&dir)?;
    // Private before the socket exists, so nobody else ever reaches it.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    let owner = std::fs::metadata(data_dir)?.uid();
    let path = dir.join(CONTROL_SOCKET);
    // Left behind by a server that was killed; we hold the ledger, so it is not another's.
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    Ok(tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                // Out of file descriptors, say: keep listening once some are back.
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            if !stream.peer_cred().is_ok_and(|c| c.uid() == owner || c.uid() == 0) {
                continue;
            }
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                if BufReader::new(read.take(64 << 10)).read_line(&mut line).await.is_err() {
                    return;
                }
                let reply = match serde_json::from_str::<Request>(&line) {
                    Err(e) => Reply { ok: false, commits: 0, records: 0, error: Some(format!("bad request: {e}")) },
                    Ok(Request { backup }) => {
                        let result = tokio::task::spawn_blocking(move || {
                            let facts = write_file(&store, &backup);
                            (backup, facts)
                        })
                        .await;
                        match result {
                            Ok((path, Ok(facts))) => {
                                tracing::info!(path = %path.display(), commits = facts.commits, "backup written");
                                Reply { ok: true, commits: facts.commits, records: facts.records, error: None }
                            }
                            Ok((_, Err(e))) => {
                                Reply { ok: false, commits: 0, records: 0, error: Some(format!("{e:#}")) }
                            }
                            Err(e) => Reply { ok: false, commits: 0, records: 0, error: Some(e.to_string()) },
                        }
                    }
                };
                let mut answer = serde_json::to_vec(&reply).unwrap_or_default();
                answer.push(b'\n');
                let _ = write.write_all(&answer).await;
            });
        }
    }))
}

/// Removes the control socket of a server that stops.
pub(crate) fn stop_listening(data_dir: &Path) {
    let _ = std::fs::remove_file(data_dir.join(CONTROL_DIR).join(CONTROL_SOCKET));
}

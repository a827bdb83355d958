//! A private PostgreSQL server for tests (feature `test-postgres`): `initdb` in a temporary
//! directory, its own port on 127.0.0.1, run as the `postgres` user when the tests run as root
//! (PostgreSQL refuses root). `LICET_TEST_DATABASE_URL` points the tests at a server of your
//! own instead (they then create a database of their own on it; stopping it is not possible).
//!
//! The binaries are found on `PATH` or in `/usr/lib/postgresql/<version>/bin` (Debian's
//! `postgresql` package, which `.ci/run` installs when absent).

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PostgreSQL server the test owns; stopped and deleted when dropped.
#[derive(Debug)]
pub struct TestInstance {
    /// `postgres://postgres@127.0.0.1:PORT` (no database), or the URL of the outside server.
    base: String,
    port: u16,
    server: Option<Server>,
    /// Databases made so far, for unique names.
    made: std::sync::atomic::AtomicUsize,
    /// On an outside server, the databases this instance made: dropped with it.
    outside_databases: std::sync::Mutex<Vec<String>>,
}

#[derive(Debug)]
struct Server {
    dir: tempfile::TempDir,
    bin: PathBuf,
    user: Option<(u32, u32)>,
    child: Option<Child>,
    /// Whether it serves TLS (`ssl=on` with `server.crt` and `server.key` in its data).
    tls: bool,
}

fn other(message: impl Into<String>) -> io::Error {
    io::Error::other(message.into())
}

/// The directory holding `initdb` and `postgres`.
fn find_bin() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("postgres").is_file() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
                .filter(|(_, bin): &(u32, PathBuf)| bin.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        other("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql); `apt-get install postgresql`")
    })
}

/// The uid and gid to run PostgreSQL as: the `postgres` user when this process is root.
#[cfg(unix)]
fn server_user() -> io::Result<Option<(u32, u32)>> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")?.uid() != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .ok_or_else(|| other("running as root and there is no `postgres` user to run PostgreSQL as"))?;
    let fields: Vec<&str> = line.split(':').collect();
    let id = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).ok_or_else(|| other("unreadable /etc/passwd"));
    Ok(Some((id(2)?, id(3)?)))
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        #[cfg(unix)]
        if let Some((uid, gid)) = self.user {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid);
        }
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl TestInstance {
    /// [`TestInstance::start`], or `None` — after saying so on stderr — when PostgreSQL is not
    /// installed and `LICET_REQUIRE_POSTGRES` is not set (`.ci/run` sets it): `cargo test` keeps
    /// working on a machine with nothing but Rust, like the portal's browser test.
    pub fn start_or_skip(test: &str) -> Option<TestInstance> {
        if !TestInstance::available(test) {
            return None;
        }
        match TestInstance::start() {
            Ok(instance) => Some(instance),
            Err(e) => panic!("{test}: could not start PostgreSQL: {e}"),
        }
    }

    /// Whether tests can have a PostgreSQL server here; when not (and `LICET_REQUIRE_POSTGRES` is
    /// not set) says so on stderr, as [`TestInstance::start_or_skip`] does.
    pub fn available(test: &str) -> bool {
        if std::env::var_os("LICET_TEST_DATABASE_URL").is_none()
            && find_bin().is_err()
            && std::env::var_os("LICET_REQUIRE_POSTGRES").is_none()
        {
            eprintln!("{test}: skipped, PostgreSQL is not installed (set LICET_REQUIRE_POSTGRES=1 to fail instead)");
            return false;
        }
        true
    }

    /// Starts a private server (or uses `LICET_TEST_DATABASE_URL`).
    pub fn start() -> io::Result<TestInstance> {
        TestInstance::start_inner(None)
    }

    /// Starts a private server that also accepts TLS, with this certificate chain and key (PEM).
    pub fn start_with_tls(cert_pem: &str, key_pem: &str) -> io::Result<TestInstance> {
        TestInstance::start_inner(Some((cert_pem, key_pem)))
    }

    fn start_inner(tls: Option<(&str, &str)>) -> io::Result<TestInstance> {
        if let Ok(url) = std::env::var("LICET_TEST_DATABASE_URL")
            && tls.is_none()
        {
            return Ok(TestInstance {
                base: url,
                port: 0,
                server: None,
                made: Default::default(),
                outside_databases: Default::default(),
            });
        }
        let bin = find_bin()?;
        let user = server_user()?;
        stop_orphans();
        let dir = tempfile::Builder::new().prefix(ORPHAN_PREFIX).tempdir()?;
        // Whose it is: a later test run stops it should this process die without dropping it.
        std::fs::write(dir.path().join("owner.pid"), std::process::id().to_string())?;
        #[cfg(unix)]
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
        }
        let mut server = Server { dir, bin, user, child: None, tls: tls.is_some() };
        let log = std::fs::File::create(server.dir.path().join("initdb.log"))?;
        #[cfg(unix)]
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(server.dir.path().join("initdb.log"), Some(uid), Some(gid))?;
        }
        let status = server
            .command("initdb")
            .arg("-D")
            .arg(server.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()?;
        if !status.success() {
            let log = std::fs::read_to_string(server.dir.path().join("initdb.log")).unwrap_or_default();
            return Err(other(format!("initdb failed: {log}")));
        }
        if let Some((cert, key)) = tls {
            for (name, pem) in [("server.crt", cert), ("server.key", key)] {
                let path = server.data().join(name);
                std::fs::write(&path, pem)?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
                    if let Some((uid, gid)) = user {
                        std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
                    }
                }
            }
        }
        let port = free_port()?;
        let mut instance = TestInstance {
            base: format!("postgres://postgres@127.0.0.1:{port}"),
            port,
            server: None,
            made: Default::default(),
            outside_databases: Default::default(),
        };
        spawn(&mut server, port)?;
        instance.server = Some(server);
        instance.wait_ready()?;
        Ok(instance)
    }

    /// The private server's directory and process id (`None` for an outside server).
    pub fn process(&self) -> Option<(&std::path::Path, u32)> {
        let server = self.server.as_ref()?;
        Some((server.dir.path(), server.child.as_ref()?.id()))
    }

    /// The port it listens on (0 for an outside server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        let (main, query) = self.base.split_once('?').map_or((self.base.as_str(), None), |(m, q)| (m, Some(q)));
        let host_start = main.find("://").map_or(0, |i| i + 3);
        let host_end = main[host_start..].find('/').map_or(main.len(), |i| host_start + i);
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        format!("{}/{name}{query}", &main[..host_end])
    }

    /// Creates an empty database of its own and returns its URL.
    pub fn create_database(&self) -> io::Result<String> {
        let n = self.made.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| other(e.to_string()))?;
        let name = format!("licet_test_{n}_{}", suffix.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let url = self.url(&name);
        let admin = self.url("postgres");
        let create = format!("CREATE DATABASE {name}");
        run(async move {
            let (client, connection) =
                tokio_postgres::connect(&admin, tokio_postgres::NoTls).await.map_err(|e| other(e.to_string()))?;
            tokio::spawn(connection);
            client.batch_execute(&create).await.map_err(|e| other(e.to_string()))?;
            Ok::<(), io::Error>(())
        })?;
        if self.server.is_none() {
            self.outside_databases.lock().map_err(|_| other("poisoned"))?.push(name);
        }
        Ok(url)
    }

    /// A new empty database whose schema is at `version`, as an earlier release left it (for the
    /// tests of the migrations after it); its URL.
    pub fn create_database_at_schema(&self, version: i32) -> io::Result<String> {
        let url = self.create_database()?;
        let target = url.clone();
        run(async move {
            let (mut client, connection) =
                tokio_postgres::connect(&target, tokio_postgres::NoTls).await.map_err(|e| other(e.to_string()))?;
            tokio::spawn(connection);
            super::schema::migrate_to(&mut client, version).await.map_err(|e| other(format!("{e:?}")))?;
            Ok::<(), io::Error>(())
        })?;
        Ok(url)
    }

    /// Stops the server (a fast shutdown: connections are cut, as when a database is lost).
    pub fn stop(&mut self) -> io::Result<()> {
        let server = self.server.as_mut().ok_or_else(|| other("an outside database cannot be stopped by the tests"))?;
        if let Some(mut child) = server.child.take() {
            // SIGINT: PostgreSQL's fast shutdown.
            let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait()?.is_none() {
                if Instant::now() > deadline {
                    child.kill()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            child.wait()?;
        }
        Ok(())
    }

    /// Starts a stopped server again on the same port and data.
    pub fn restart(&mut self) -> io::Result<()> {
        let port = self.port;
        let server = self.server.as_mut().ok_or_else(|| other("an outside database cannot be started by the tests"))?;
        if server.child.is_none() {
            spawn(server, port)?;
        }
        self.wait_ready()
    }

    fn wait_ready(&self) -> io::Result<()> {
        let url = self.url("postgres");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let url = url.clone();
            let ready = run(async move { tokio_postgres::connect(&url, tokio_postgres::NoTls).await.map(|_| ()) });
            match ready {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(other(format!("PostgreSQL did not start: {e}"))),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

fn spawn(server: &mut Server, port: u16) -> io::Result<()> {
    let log_path = server.dir.path().join("postgres.log");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
    #[cfg(unix)]
    if let Some((uid, gid)) = server.user {
        std::os::unix::fs::chown(&log_path, Some(uid), Some(gid))?;
    }
    let child = server
        .command("postgres")
        .arg("-D")
        .arg(server.data())
        .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c", "shared_buffers=16MB"])
        .args(["-c", "max_connections=200", "-c", &format!("unix_socket_directories={}", server.dir.path().display())])
        .args(["-c", if server.tls { "ssl=on" } else { "ssl=off" }])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    server.child = Some(child);
    Ok(())
}

/// Runs a future on a runtime of its own (the tests that call this are not async).
fn run<T, E: std::fmt::Display>(future: impl std::future::Future<Output = Result<T, E>>) -> io::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(future).map_err(|e| other(e.to_string()))
}

/// The prefix of a private server's temporary directory.
const ORPHAN_PREFIX: &str = "licet-pg-";

/// Stops the private servers of test processes that died without stopping them (a test binary
/// killed by a timeout or SIGKILL drops nothing), and removes their directories. A server whose
/// owner is alive, or whose owner is unknown, is left alone.
fn stop_orphans() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        if !entry.file_name().to_string_lossy().starts_with(ORPHAN_PREFIX) {
            continue;
        }
        let Some(owner) =
            std::fs::read_to_string(dir.join("owner.pid")).ok().and_then(|p| p.trim().parse::<u32>().ok())
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        // postmaster.pid's first line is the server's process id: SIGQUIT, an immediate stop.
        let postmaster = std::fs::read_to_string(dir.join("data").join("postmaster.pid")).unwrap_or_default();
        if let Some(pid) = postmaster.lines().next().and_then(|l| l.trim().parse::<u32>().ok()) {
            let _ = Command::new("kill").args(["-QUIT", &pid.to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

impl Drop for TestInstance {
    fn drop(&mut self) {
        let _ = self.stop();
        // On an outside server, the databases it made go with it.
        let names = self.outside_databases.get_mut().map(std::mem::take).unwrap_or_default();
        if !names.is_empty() {
            let admin = self.url("postgres");
            let _ = run(async move {
                let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                for name in names {
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await?;
                }
                Ok::<(), tokio_postgres::Error>(())
            });
        }
    }
}

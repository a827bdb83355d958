//! Starting and stopping a server: data directory, store, listener (plain or TLS), graceful
//! shutdown that finishes in-flight requests and flushes the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::Handle;
use licet_core::Ledger;
use licet_store::{PgStore, SledOptions, SledStore, Store};

use crate::app::App;
use crate::clock::Clock;
use crate::connections::{self, Connections, CountingAcceptor, HEADER_READ_TIMEOUT};
use crate::data_dir::{self, InitFacts};
use crate::mail::{Outbox, Postman, Transport};
use crate::ratelimit::{Limiter, RateLimiter};

/// A certificate chain and private key in PEM files, for https.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// How to run a server. Its `Debug` leaves out the database's and the SMTP server's URLs, which
/// may carry passwords.
#[derive(Clone)]
pub struct ServerConfig {
    /// The data directory; initialised first if empty.
    pub data_dir: PathBuf,
    /// The address to listen on; port 0 picks a free port.
    pub listen: String,
    /// Allow `POST /v1/admin/clock` to move the server's clock (tests only).
    pub dev_clock: bool,
    /// Counted events per client IP and minute; 0 turns limiting off.
    pub rate_limit: u32,
    /// Serve https with these files.
    pub tls: Option<TlsFiles>,
    /// The vendor prefix used when the data directory is initialised here.
    pub vendor_prefix: String,
    /// The cluster's PostgreSQL database (`postgres://…`); `None`: the embedded store.
    pub database: Option<String>,
    /// Peers whose `X-Forwarded-For` names the client (load balancers).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Deliver mail by SMTP to this URL (`smtp://host:port`, `smtps://user:pass@host:port`);
    /// `None`: as `.eml` files in the data directory's `outbox/`.
    pub smtp: Option<String>,
    /// The mail's sender; `None`: `licet@<vendor prefix>`.
    pub mail_from: Option<String>,
    /// Serve `GET /metrics` on this address instead of the API's.
    pub metrics_listen: Option<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |url: &Option<String>| if url.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("ServerConfig")
            .field("data_dir", &self.data_dir)
            .field("listen", &self.listen)
            .field("dev_clock", &self.dev_clock)
            .field("rate_limit", &self.rate_limit)
            .field("tls", &self.tls)
            .field("vendor_prefix", &self.vendor_prefix)
            .field("database", &set(&self.database))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("smtp", &set(&self.smtp))
            .field("mail_from", &self.mail_from)
            .field("metrics_listen", &self.metrics_listen)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults of `licet-server serve` for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            data_dir: data_dir.into(),
            listen: "127.0.0.1:8080".into(),
            dev_clock: false,
            rate_limit: 30,
            tls: None,
            vendor_prefix: "LICET".into(),
            database: None,
            trusted_proxies: Vec::new(),
            smtp: None,
            mail_from: None,
            metrics_listen: None,
        }
    }
}

/// How long a stopping server waits for a delivery in progress.
const POSTMAN_GRACE: Duration = Duration::from_secs(10);

/// A server that is accepting connections.
pub struct Running {
    /// The bound address (the real port when asked for port 0).
    pub local_addr: SocketAddr,
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub url: String,
    /// The public key the server signs with (64 hex characters).
    pub public_key: String,
    /// What initialising the data directory produced, if this start did it.
    pub initialised: Option<InitFacts>,
    /// Where `GET /metrics` is served when it has an address of its own.
    pub metrics_addr: Option<SocketAddr>,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    store: Arc<dyn Store>,
    /// The node's postman, and what stops it.
    postman: (tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<bool>),
    /// Answers `licet-server backup` on the data directory's control socket.
    control: Option<tokio::task::JoinHandle<()>>,
    data_dir: PathBuf,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("url", &self.url).finish_non_exhaustive()
    }
}

/// Tells the operator what moving the e-mail index found (docs/accounts.md): collisions and
/// refused addresses go to `email-report-<unix seconds>.json` (mode 0600) in the data directory. The ledger
/// keeps the report until that file is written, so a crash or a full disk loses nothing.
pub(crate) fn report_emails(dir: &std::path::Path, report: &licet_core::email::EmailReport, store: &SledStore) {
    tracing::info!(accounts = report.reindexed, "e-mail index moved to NFC, case-insensitive identities");
    if report.needs_attention() {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let path = dir.join(format!("email-report-{now}.json"));
        let written = match serde_json::to_vec_pretty(report) {
            Ok(json) => data_dir::write_new(&path, &json, 0o600).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = written {
            tracing::error!(report = %path.display(), error = %e, "could not write the e-mail report; kept for the next start");
            return;
        }
        tracing::warn!(
            collisions = report.collisions.len(),
            refused = report.invalid.len(),
            report = %path.display(),
            "some stored e-mail addresses collide or break the e-mail rule; nothing was merged: see docs/accounts.md"
        );
    }
    if let Err(e) = store.forget_email_report() {
        tracing::error!(error = %e, "could not drop the e-mail report from the ledger; it is written again at the next start");
    }
}

/// Initialises a data directory (SPEC §6 `init`). Refuses an initialised one.
pub fn init(data_dir: &std::path::Path, vendor_prefix: &str) -> anyhow::Result<InitFacts> {
    data_dir::init(data_dir, vendor_prefix)
}

/// Opens the data directory (initialising an empty one) and starts serving. Must be called
/// within a tokio runtime.
pub async fn start(config: ServerConfig) -> anyhow::Result<Running> {
    let dir = config.data_dir.clone();
    let node = match &config.database {
        None => embedded(&config)?,
        Some(url) => {
            let (url, dir) = (url.clone(), dir.clone());
            tokio::task::spawn_blocking(move || crate::cluster::node(&dir, &url)).await??
        }
    };
    let Node { store, backend, loaded, admin_hash, initialised } = node;
    let public_key = loaded.keys.active.public_key_hex();
    // The recorder first, so that everything from the first request on is counted.
    crate::metrics::handle();
    let outbox = Outbox::new(dir.join("outbox"));
    let from = config.mail_from.clone().unwrap_or_else(|| format!("licet@{}", loaded.vendor_prefix.to_lowercase()));
    let from: lettre::message::Mailbox = from.parse().with_context(|| format!("the mail sender {from:?}"))?;
    let transport = Transport::new(config.smtp.as_deref(), outbox.clone())?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (limiter, sessions, control) = match &backend {
        Backend::Embedded(sled) => {
            #[cfg(unix)]
            let control = match crate::backup::listen(&dir, sled.clone()) {
                Ok(task) => Some(task),
                Err(e) => {
                    tracing::warn!(error = %e, "no control socket: `licet-server backup` works only while the server is stopped");
                    None
                }
            };
            #[cfg(not(unix))]
            let control = {
                let _ = sled;
                None
            };
            let sessions = crate::portal::Sessions::Local(crate::portal::LocalSessions::default());
            (Limiter::Local(RateLimiter::new(config.rate_limit)), sessions, control)
        }
        Backend::Database(db) => {
            let limiter = Limiter::Shared { db: db.clone(), per_minute: config.rate_limit };
            (limiter, crate::portal::Sessions::Shared(db.clone()), None)
        }
    };
    let app = Arc::new(App {
        store: store.clone(),
        database: match &backend {
            Backend::Database(db) => Some(db.clone()),
            Backend::Embedded(_) => None,
        },
        durability: match &backend {
            Backend::Embedded(sled) => Some(crate::durability::Durability::start(sled.clone())),
            Backend::Database(_) => None,
        },
        ledger: Ledger::new(&loaded.vendor_prefix)?,
        keys: loaded.keys,
        admin_hash,
        clock: if config.dev_clock { Clock::dev() } else { Clock::system() },
        limiter,
        mail_wake: tokio::sync::Notify::new(),
        in_flight: tokio::sync::Semaphore::new(crate::app::MAX_IN_FLIGHT),
        decided_in_flight: tokio::sync::Semaphore::new(crate::app::MAX_DECIDED_IN_FLIGHT),
        trusted_proxies: config.trusted_proxies.clone(),
    });
    let portal = Arc::new(crate::portal::Portal { app: app.clone(), sessions, tls: config.tls.is_some() });
    let listener =
        std::net::TcpListener::bind(&config.listen).with_context(|| format!("listening on {}", config.listen))?;
    let local_addr = listener.local_addr()?;
    let handle = Handle::new();
    let metrics = match &config.metrics_listen {
        None => None,
        Some(addr) => Some(serve_metrics(addr, stop_tx.subscribe()).await?),
    };
    // Everything that can fail is done: the node's own tasks start.
    let postman = tokio::spawn(Postman::new(app.clone(), transport, from, outbox).run(stop_rx));
    tokio::spawn(crate::metrics::keep(app.clone(), stop_tx.subscribe()));
    let service =
        crate::routes::router(app, portal, metrics.is_none()).into_make_service_with_connect_info::<SocketAddr>();
    // Connections are counted (before any TLS handshake) and idle ones time out: see connections.rs.
    let counting = CountingAcceptor::new(Connections::new(connections::capacity()));
    let (scheme, task) = match &config.tls {
        None => {
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(counting)
                .first_request_timeout(HEADER_READ_TIMEOUT)
                .handle(handle.clone());
            server.http_builder().http1().header_read_timeout(HEADER_READ_TIMEOUT);
            ("http", tokio::spawn(server.serve(service)))
        }
        Some(files) => {
            // Several servers in one process share the provider; installing twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .context("loading the TLS certificate and key")?;
            let acceptor = axum_server::tls_rustls::RustlsAcceptor::new(tls).acceptor(counting);
            let mut server = axum_server::from_tcp(listener)?
                .acceptor(acceptor)
                .first_request_timeout(HEADER_READ_TIMEOUT)
                .handle(handle.clone());
            server.http_builder().http1().header_read_timeout(HEADER_READ_TIMEOUT);
            ("https", tokio::spawn(server.serve(service)))
        }
    };
    Ok(Running {
        local_addr,
        url: format!("{scheme}://{local_addr}"),
        public_key,
        initialised,
        metrics_addr: metrics,
        handle,
        task,
        store,
        control,
        postman: (postman, stop_tx),
        data_dir: dir.clone(),
    })
}

/// `GET /metrics` on an address of its own, until `stop`; returns the bound address.
async fn serve_metrics(addr: &str, mut stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<SocketAddr> {
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for /metrics on {addr}"))?;
    let bound = listener.local_addr()?;
    let router = crate::routes::metrics_router();
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(stopped).await {
            tracing::error!(error = %e, "the /metrics listener failed");
        }
    });
    Ok(bound)
}

/// What a node serves from.
pub(crate) struct Node {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) backend: Backend,
    pub(crate) loaded: data_dir::Loaded,
    pub(crate) admin_hash: [u8; 32],
    pub(crate) initialised: Option<InitFacts>,
}

pub(crate) enum Backend {
    Embedded(Arc<SledStore>),
    Database(Arc<PgStore>),
}

/// A node on its own data directory's sled ledger, initialising an empty directory first.
fn embedded(config: &ServerConfig) -> anyhow::Result<Node> {
    let dir = &config.data_dir;
    let initialised =
        if data_dir::is_initialised(dir) { None } else { Some(data_dir::init(dir, &config.vendor_prefix)?) };
    let loaded = data_dir::load(dir, None)?;
    let admin_hash = loaded.admin_hash.with_context(|| format!("{} has no admin-token.sha256", dir.display()))?;
    let options = SledOptions { must_exist: true, ..SledOptions::default() };
    let store = Arc::new(SledStore::open_with(dir.join("ledger"), options).context("opening the ledger")?);
    if let Some(records) = store.migrated() {
        tracing::info!(records, "migrated the ledger of release 0.1.0 to this release's format");
    }
    if let Some(report) = store.email_report()? {
        report_emails(dir, &report, &store);
    }
    Ok(Node { store: store.clone(), backend: Backend::Embedded(store), loaded, admin_hash, initialised })
}

impl Running {
    /// Stops accepting connections and lets in-flight requests finish (up to 30 s).
    pub fn shutdown(&self) {
        self.handle.graceful_shutdown(Some(Duration::from_secs(30)));
    }

    /// Waits for the server to stop, then flushes the store.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await.context("the server task failed");
        if let Some(control) = self.control {
            control.abort();
            crate::backup::stop_listening(&self.data_dir);
        }
        let (mut postman, stop) = self.postman;
        let _ = stop.send(true);
        // A message being handed over gets a little time; its claim lapses if it is cut short.
        if tokio::time::timeout(POSTMAN_GRACE, &mut postman).await.is_err() {
            postman.abort();
            tracing::warn!("stopped the postman in the middle of a delivery; the message goes again later");
        }
        served??;
        self.store.flush()?;
        Ok(())
    }
}

/// A server running on its own tokio runtime, for programs without one (examples, tools,
/// tests): start it, use its URL, stop it.
pub struct Background {
    running: Option<Running>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background").field("running", &self.running).finish_non_exhaustive()
    }
}

impl Background {
    /// Starts a server with `config` on a new multi-threaded runtime.
    pub fn start(config: ServerConfig) -> anyhow::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let running = runtime.block_on(start(config))?;
        Ok(Background { running: Some(running), runtime })
    }

    /// The running server.
    pub fn server(&self) -> &Running {
        self.running.as_ref().expect("a Background holds its server until stop")
    }

    /// Stops the server gracefully and flushes its store.
    pub fn stop(mut self) -> anyhow::Result<()> {
        match self.running.take() {
            Some(running) => {
                running.shutdown();
                self.runtime.block_on(running.wait())
            }
            None => Ok(()),
        }
    }
}

//! The `licet-server` command line (SPEC §6).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::server::{ServerConfig, TlsFiles, init, start};

/// The licet license server.
#[derive(Debug, Parser)]
#[command(name = "licet-server", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the store, an ed25519 signing key and an admin token in a new data directory.
    Init {
        /// The data directory (must not be initialised yet).
        #[arg(long, env = "LICET_DATA_DIR")]
        data_dir: PathBuf,
        /// The prefix of registration numbers and coupons (`MIKO` gives the seed's formats).
        #[arg(long, default_value = "LICET")]
        vendor_prefix: String,
        /// Print `{"public_key","kid","admin_token"}`.
        #[arg(long)]
        json: bool,
        /// A cluster's PostgreSQL database (`postgres://…`): the ledger and the admin token go
        /// there, the data directory keeps the signing key; copy it to every node.
        #[arg(long, env = "LICET_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
    },
    /// Serve the HTTP API (initialising an empty data directory first).
    Serve {
        /// The data directory.
        #[arg(long, env = "LICET_DATA_DIR", default_value = "licet-data")]
        data_dir: PathBuf,
        /// The address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Allow `POST /v1/admin/clock` (tests only).
        #[arg(long)]
        dev_clock: bool,
        /// Failed credentials, registrations and recoveries allowed per client IP and minute; 0 = off.
        #[arg(long, default_value_t = 30)]
        rate_limit: u32,
        /// PEM certificate chain: serve https.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The vendor prefix used if the data directory is initialised now.
        #[arg(long, default_value = "LICET")]
        vendor_prefix: String,
        /// Serve as a node of the cluster on this PostgreSQL database (`postgres://…`); the data
        /// directory must come from `init --database` (it is never initialised then).
        #[arg(long, env = "LICET_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// A load balancer's address range (CIDR, repeatable): from these peers the client's
        /// address is taken from `X-Forwarded-For`.
        #[arg(long = "trusted-proxy", value_name = "CIDR")]
        trusted_proxies: Vec<ipnet::IpNet>,
        /// Deliver mail by SMTP: `smtp://host:port`, `smtps://user:pass@host:port`, or
        /// `smtp://host?tls=required` for STARTTLS. Without it mail goes to `DATA_DIR/outbox/`.
        #[arg(long, env = "LICET_SMTP_URL", hide_env_values = true, value_name = "URL")]
        smtp: Option<String>,
        /// The mail's sender address (default `licet@<vendor prefix>`).
        #[arg(long, env = "LICET_MAIL_FROM", value_name = "ADDRESS")]
        mail_from: Option<String>,
        /// Serve `GET /metrics` on this address instead of the API's.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
    },
    /// The vendor's daily work: products, coupons, accounts, licenses, bindings — against a
    /// running server (`--server` and the admin token) or a stopped server's data directory.
    Admin {
        #[command(flatten)]
        target: crate::admin_cli::Target,
        #[command(subcommand)]
        command: crate::admin_cli::AdminCommand,
    },
    /// Copy a stopped server's embedded store into an empty PostgreSQL database.
    Migrate {
        /// The data directory of the embedded store.
        #[arg(long, env = "LICET_DATA_DIR", default_value = "licet-data")]
        data_dir: PathBuf,
        /// The empty database (`postgres://…`).
        #[arg(long, env = "LICET_DATABASE_URL", hide_env_values = true)]
        database: String,
        /// Print `{"database","records","kid"}`.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the ledger to a file, while the server runs or not.
    Backup {
        /// The data directory.
        #[arg(long, env = "LICET_DATA_DIR", default_value = "licet-data")]
        data_dir: PathBuf,
        /// The backup file to write (mode 0600: it holds registration numbers).
        #[arg(long)]
        out: PathBuf,
        /// Print `{"ok","path","commits","records"}`.
        #[arg(long)]
        json: bool,
    },
    /// The signing keys: list, add, activate, rotate, retire (takes effect at the next start).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        /// The data directory.
        #[arg(long, env = "LICET_DATA_DIR", default_value = "licet-data", global = true)]
        data_dir: PathBuf,
        /// A cluster's database: `add` records the key there, `activate` makes it the nodes' key.
        #[arg(long, env = "LICET_DATABASE_URL", hide_env_values = true, global = true)]
        database: Option<String>,
        /// Print one JSON object.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Replace the ledger with a backup (the server must be stopped; the ledger it replaces is
    /// kept beside it).
    Restore {
        /// The data directory the backup came from.
        #[arg(long, env = "LICET_DATA_DIR", default_value = "licet-data")]
        data_dir: PathBuf,
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// Print `{"ok","path","commits","records","replaced"}`.
        #[arg(long)]
        json: bool,
    },
}

/// What `keys` does (SPEC §9).
#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Every key: whether it is active or retired, and which key endorsed it.
    List,
    /// Create a key endorsed by the active one, not yet active (in a cluster, copy the data
    /// directory's `keys/` to every node before activating it).
    Add {
        /// Even if agents trusting only the first key could not follow its chain.
        #[arg(long)]
        force: bool,
    },
    /// Make a key the active signer (from the server's, or each node's, next start).
    Activate { kid: String },
    /// `add` then `activate` in one step (a single node).
    Rotate {
        /// As for `add`.
        #[arg(long)]
        force: bool,
    },
    /// The key signs nothing more; what it signed stays valid until its lease ends. Refused
    /// without `--force` when release-0.1.0 agents would be stranded.
    Retire {
        kid: String,
        /// Even if release-0.1.0 agents trusting only this key would be stranded.
        #[arg(long)]
        force: bool,
    },
}

fn print_facts(out: &mut dyn Write, facts: &crate::InitFacts) -> std::io::Result<()> {
    writeln!(out, "public key: {}", facts.public_key)?;
    writeln!(out, "key id:     {}", facts.kid)?;
    writeln!(out, "admin token (shown once, keep it safe): {}", facts.admin_token)
}

/// Runs the command line; returns the process's exit code.
pub fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("LICET_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn execute(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init { data_dir, vendor_prefix, json, database } => {
            let facts = match database {
                None => init(&data_dir, &vendor_prefix)?,
                Some(url) => crate::init_cluster(&data_dir, &vendor_prefix, &url)?,
            };
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string(&facts)?)?;
            } else {
                writeln!(out, "initialised {}", data_dir.display())?;
                print_facts(&mut out, &facts)?;
            }
            Ok(())
        }
        Command::Serve {
            data_dir,
            listen,
            dev_clock,
            rate_limit,
            tls_cert,
            tls_key,
            vendor_prefix,
            database,
            trusted_proxies,
            smtp,
            mail_from,
            metrics_listen,
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
                _ => None,
            };
            let config = ServerConfig {
                data_dir,
                listen,
                dev_clock,
                rate_limit,
                tls,
                vendor_prefix,
                database,
                trusted_proxies,
                smtp,
                mail_from,
                metrics_listen,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve(config))
        }
        Command::Admin { target, command } => crate::admin_cli::run(target, command),
        Command::Migrate { data_dir, database, json } => {
            let migration = crate::migrate(&data_dir, &database)?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", serde_json::to_string(&migration)?)?;
            } else {
                writeln!(
                    out,
                    "copied {} records of {} into {}; serve with --database on a copy of this data directory",
                    migration.records,
                    data_dir.display(),
                    migration.database
                )?;
            }
            Ok(())
        }
        Command::Keys { action, data_dir, database, json } => keys(action, &data_dir, database.as_deref(), json),
        Command::Backup { data_dir, out, json } => {
            let report = crate::backup::backup(&data_dir, &out)?;
            print_report(&report, json, "backup written to")
        }
        Command::Restore { data_dir, from, json } => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
            let report = crate::backup::restore(&data_dir, &from, now)?;
            print_report(&report, json, "restored from")
        }
    }
}

fn keys(action: KeysAction, dir: &std::path::Path, database: Option<&str>, json: bool) -> anyhow::Result<()> {
    use crate::keys;
    let db = database.map(licet_store::PgStore::connect).transpose()?;
    // With a cluster's database, the ring first follows what the database says: the key that
    // endorses, the keys that may be retired.
    if let Some(db) = &db {
        let facts = db.server_facts()?;
        let public_key = keys::list(dir)?.into_iter().find(|k| k.active).map(|k| k.public_key);
        if !public_key.is_some_and(|key| facts.keys.iter().any(|(_, known)| *known == key)) {
            anyhow::bail!(
                "database {} does not know the keys of {}: it is another cluster's",
                db.name(),
                dir.display()
            );
        }
        keys::follow_cluster(dir, &keys::ClusterKeys { active: facts.active_kid, retired: facts.retired })?;
    }
    let record = |key: &licet_wire::KeyObject| -> anyhow::Result<()> {
        if let Some(db) = &db {
            db.add_signing_key(&key.kid, &key.public_key)?;
        }
        Ok(())
    };
    // The database first: should it fail, the nodes go on as they were.
    let activate = |kid: &str| -> anyhow::Result<()> {
        let key = keys::list(dir)?.into_iter().find(|k| k.kid == kid);
        let key = key.ok_or_else(|| anyhow::anyhow!("no key {kid}"))?;
        keys::activate(dir, kid, true)?;
        if let Some(db) = &db {
            record(&key)?;
            db.set_active_key(kid)?;
        }
        Ok(keys::activate(dir, kid, false)?)
    };
    let (value, text) = match action {
        KeysAction::List => {
            let list = keys::list(dir)?;
            let text = list
                .iter()
                .map(|k| {
                    let state = if k.active {
                        "active"
                    } else if k.retired {
                        "retired"
                    } else {
                        ""
                    };
                    format!("{} {} {state}", k.kid, k.public_key)
                })
                .collect::<Vec<_>>()
                .join("\n");
            (serde_json::json!({ "keys": list }), text)
        }
        KeysAction::Add { force } => {
            let key = keys::add(dir, chrono::Utc::now(), force)?;
            record(&key)?;
            let text = format!(
                "added {} ({}), endorsed by {}; not active yet",
                key.kid,
                key.public_key,
                key.endorsed_by.as_deref().unwrap_or("-")
            );
            (serde_json::to_value(&key)?, text)
        }
        KeysAction::Activate { kid } => {
            activate(&kid)?;
            (serde_json::json!({ "active": kid }), format!("{kid} is the active key from the next start"))
        }
        KeysAction::Rotate { force } => {
            let key = keys::add(dir, chrono::Utc::now(), force)?;
            record(&key)?;
            activate(&key.kid)?;
            let text = format!("{} ({}) is the active key from the next start", key.kid, key.public_key);
            (serde_json::json!({ "kid": key.kid, "public_key": key.public_key, "active": true }), text)
        }
        KeysAction::Retire { kid, force } => match keys::retire(dir, &kid, force, true)? {
            keys::Retire::WouldStrand(warning) => anyhow::bail!("{warning} (retire it anyway with --force)"),
            keys::Retire::Done(warning) => {
                // The database first, as for `activate`.
                if let Some(db) = &db {
                    db.retire_signing_key(&kid)?;
                }
                keys::retire(dir, &kid, force, false)?;
                if let Some(warning) = warning {
                    eprintln!("warning: {warning}");
                }
                (serde_json::json!({ "retired": kid }), format!("{kid} is retired from the next start"))
            }
        },
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}

fn print_report(report: &crate::backup::Report, json: bool, done: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(report)?)?;
    } else {
        writeln!(out, "{done} {}: {} records, {} commits", report.path.display(), report.records, report.commits)?;
        if let Some(replaced) = &report.replaced {
            writeln!(out, "the ledger it replaced is kept in {}", replaced.display())?;
        }
    }
    Ok(())
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let signals = ShutdownSignals::listen()?;
    let running = start(config).await?;
    if let Some(facts) = &running.initialised {
        let mut err = std::io::stderr().lock();
        writeln!(err, "initialised {}", data_dir.display())?;
        print_facts(&mut err, facts)?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", running.url)?;
        if let Some(metrics) = running.metrics_addr {
            writeln!(out, "metrics on http://{metrics}/metrics")?;
        }
        out.flush()?;
    }
    tracing::info!(url = %running.url, public_key = %running.public_key, "serving");
    signals.received().await;
    tracing::info!("shutting down: finishing in-flight requests");
    running.shutdown();
    running.wait().await?;
    tracing::info!("stopped; the store is flushed");
    Ok(())
}

/// SIGTERM and Ctrl-C, listened for from before the server says it is listening, so that a
/// signal sent the moment it does is a graceful shutdown rather than the default's kill.
struct ShutdownSignals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> std::io::Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(ShutdownSignals {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.terminate.recv() => {},
            _ = self.interrupt.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = &mut self;
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

//! The `licet-agent` command line (SPEC §6).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::json;

use crate::request::{Answer, Request, refusal_json};
use crate::{Agent, AgentConfig, Error, RegistrationForm};

/// The licet agent: license checks for a vendor's program on this machine.
#[derive(Debug, Parser)]
#[command(name = "licet-agent", version, about)]
pub struct Cli {
    /// The license servers, comma-separated, tried in order.
    #[arg(long, env = "LICET_SERVER", default_value = "http://127.0.0.1:8080", global = true)]
    server: String,
    /// The vendor's name, which keys this machine's fingerprint (use the same in all of a
    /// vendor's programs; default: the one recorded in the data directory).
    #[arg(long, env = "LICET_VENDOR", global = true)]
    vendor: Option<String>,
    /// Where the cache lives (default: ~/.licet).
    #[arg(long, env = "LICET_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// The vendor's public key (64 hex characters); repeatable.
    #[arg(long = "trusted-key", env = "LICET_TRUSTED_KEYS", value_delimiter = ',', global = true)]
    trusted_keys: Vec<String>,
    /// A CA certificate (PEM) to trust for https instead of the system's roots.
    #[arg(long, env = "LICET_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register a new account from this host (starts a trial).
    Register {
        #[arg(long)]
        email: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        contact: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        product: String,
        /// The language of the account's mail: ru (the default) or en.
        #[arg(long, value_parser = parse_lang)]
        lang: Option<licet_core::Lang>,
    },
    /// Enter the account's registration number on this host.
    SetNumber {
        number: String,
        /// Store it after the local format check only, for a host that never reaches the server.
        #[arg(long)]
        offline: bool,
    },
    /// Print this host's air-gapped activation request (no network).
    OfflineRequest {
        #[arg(long)]
        product: String,
    },
    /// Install the token an air-gapped activation answered with (`-`: from standard input).
    OfflineInstall { token: String },
    /// Start the account's trial of a product on this host.
    Trial {
        #[arg(long)]
        product: String,
    },
    /// Redeem a coupon for the account.
    Redeem { coupon: String },
    /// Check the license of a product on this host.
    Check {
        #[arg(long)]
        product: String,
        /// A feature the license must grant (repeatable); else 2009.
        #[arg(long)]
        feature: Vec<String>,
    },
    /// The number (masked) and the cached licenses.
    Status,
    /// The account's licenses, from the server.
    Licenses,
    /// Print the cached token of a product.
    Token {
        #[arg(long)]
        product: String,
    },
    /// The offline verdict on a token for this host.
    Verify {
        #[arg(long)]
        token: String,
        #[arg(long)]
        product: String,
        /// A feature the token must grant (repeatable); else 2009.
        #[arg(long)]
        feature: Vec<String>,
    },
    /// Free this host's seat for a product.
    Deactivate {
        #[arg(long)]
        product: String,
    },
    /// Forget the number on this host (with --release, free its seats first).
    Forget {
        #[arg(long)]
        release: bool,
    },
    /// This host's fingerprint components.
    Fingerprint,
    /// Check out a session of a floating license of a product on this host.
    Checkout {
        #[arg(long)]
        product: String,
        /// Hold the seat this many hours, for use offline (at most the product allows).
        #[arg(long)]
        borrow_hours: Option<u32>,
        /// The user shown in the session monitor.
        #[arg(long)]
        user: Option<String>,
        /// Hold the session, heartbeating, until standard input ends, then release it (for
        /// scripts: `licet-agent checkout --hold … <&-`); a killed process's seat is freed by its
        /// lease. Prints the checkout at once, and the release at the end.
        #[arg(long, conflicts_with = "borrow_hours")]
        hold: bool,
    },
    /// Extend a floating session this host checked out.
    Heartbeat {
        #[arg(long)]
        session: String,
    },
    /// End a floating session, freeing its seat.
    Release {
        #[arg(long)]
        session: String,
    },
    /// Serve this agent to programs on this machine over HTTP on loopback (docs/service.md), until
    /// SIGTERM or Ctrl-C.
    #[cfg(feature = "service")]
    Serve {
        /// The loopback address and port to listen on (127.0.0.1:0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:8730")]
        listen: String,
    },
}

fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("LOCALAPPDATA").or_else(|| std::env::var_os("HOME")).unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".licet")
}

/// Replacements of what the agent measures, for tests and support (SPEC §6): given explicitly,
/// never read here from the environment. Only the `licet-agent-testing` binary, built with the
/// cargo feature `test-overrides`, takes them from `LICET_FINGERPRINT`, `LICET_RAW_FINGERPRINT`,
/// `LICET_HOSTNAME` and `LICET_NOW`; `licet-agent` itself never does, so one variable cannot let
/// fifty machines share one seat, or freeze time for the licensed program alone.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// Replaces the fingerprint (components used as given).
    pub fingerprint: Option<licet_core::Fingerprint>,
    /// Replaces the raw machine values (hashed as measured ones are).
    pub raw_components: Option<std::collections::BTreeMap<String, String>>,
    /// Replaces the host name.
    pub hostname: Option<String>,
    /// Replaces the clock.
    pub now: Option<chrono::DateTime<chrono::Utc>>,
    /// Replaces the files that show how late it is at least.
    pub time_evidence: Option<Vec<crate::evidence::Place>>,
}

/// Carries out the command line; `None` when it has printed all it says (`serve`).
fn execute(cli: Cli, overrides: Overrides) -> Result<Option<Answer>, Error> {
    let json_output = cli.json;
    let user = match &cli.command {
        Command::Checkout { user, .. } => user.clone(),
        _ => None,
    };
    let mut config = AgentConfig::new(&cli.server, cli.data_dir.unwrap_or_else(default_data_dir));
    config.vendor = cli.vendor;
    config.trusted_keys = cli.trusted_keys.into_iter().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect();
    config.ca_cert = cli.ca_cert;
    config.fingerprint = overrides.fingerprint;
    config.raw_components = overrides.raw_components;
    config.hostname = overrides.hostname;
    config.now = overrides.now;
    config.time_evidence = overrides.time_evidence;
    config.user = user;
    let agent = std::sync::Arc::new(Agent::new(config)?);
    let request = match cli.command {
        Command::Register { email, org, contact, phone, product, lang } => {
            Request::Register(RegistrationForm { email, organization: org, contact, phone, product, lang })
        }
        Command::SetNumber { number, offline } => Request::SetNumber { number, offline },
        Command::OfflineRequest { product } => Request::OfflineRequest { product },
        Command::OfflineInstall { token } if token == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                .map_err(|e| Error::Internal(format!("standard input: {e}")))?;
            Request::OfflineInstall { token: text }
        }
        Command::OfflineInstall { token } => Request::OfflineInstall { token },
        Command::Trial { product } => Request::Trial { product },
        Command::Redeem { coupon } => Request::Redeem { coupon },
        Command::Check { product, feature } => Request::Check { product, features: feature },
        Command::Verify { token, product, feature } => Request::Verify { token, product, features: feature },
        Command::Status => Request::Status,
        Command::Licenses => Request::Licenses,
        Command::Token { product } => Request::Token { product },
        Command::Deactivate { product } => Request::Deactivate { product },
        Command::Forget { release } => Request::Forget { release },
        Command::Fingerprint => Request::Fingerprint,
        Command::Checkout { product, hold: true, .. } => {
            let session = agent.checkout(&product)?;
            print_answer(json_output, &crate::request::grant_answer(&session.grant()?));
            // Until standard input ends (its contents are ignored).
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let id = session.id();
            session.release()?;
            warn(&agent);
            return Ok(Some(Answer::new().field("released", json!(id)).line(format!("session {id} released"))));
        }
        Command::Checkout { product, borrow_hours, user, .. } => Request::Checkout { product, borrow_hours, user },
        Command::Heartbeat { session } => Request::Heartbeat { session },
        Command::Release { session } => Request::Release { session },
        #[cfg(feature = "service")]
        Command::Serve { listen } => {
            // One line per request on standard error (the library itself installs no logger).
            let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let _ =
                tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false).with_ansi(colours).try_init();
            crate::service::serve(agent.clone(), &listen)?;
            return Ok(None);
        }
    };
    let answer = agent.perform(request)?;
    warn(&agent);
    Ok(Some(answer))
}

/// Prints the agent's warning, if it has one (a damaged cache set aside, a write refused).
fn warn(agent: &Agent) {
    if let Some(warning) = agent.take_warning() {
        eprintln!("warning: {warning}");
    }
}

/// Prints what a command says: one JSON object, or its lines.
fn write_answer(out: &mut impl Write, json: bool, answer: &Answer) -> std::io::Result<()> {
    if json {
        writeln!(out, "{}", answer.json())?;
    } else {
        answer.lines().iter().try_for_each(|l| writeln!(out, "{l}"))?;
    }
    out.flush()
}

/// Prints what a command says before it goes on (`checkout --hold`); a closed output is no
/// reason to stop holding.
fn print_answer(json: bool, answer: &Answer) {
    let _ = write_answer(&mut std::io::stdout().lock(), json, answer);
}

/// Runs the command line: prints the outcome and returns exit code 0 (ok) or 1 (refused).
pub fn run(cli: Cli) -> ExitCode {
    run_with(cli, Overrides::default())
}

/// [`run`] with what the agent measures replaced (tests and support).
pub fn run_with(cli: Cli, overrides: Overrides) -> ExitCode {
    let json = cli.json;
    let outcome = execute(cli, overrides);
    let mut out = std::io::stdout().lock();
    let written = match &outcome {
        Ok(Some(answer)) => write_answer(&mut out, json, answer),
        Ok(None) => Ok(()),
        Err(e) if json => writeln!(out, "{}", refusal_json(e)),
        Err(e) => {
            drop(out);
            writeln!(std::io::stderr(), "error {} {}: {e}", e.code().number(), e.code().name())
        }
    };
    match (outcome, written) {
        (Ok(_), Ok(())) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

fn parse_lang(text: &str) -> Result<licet_core::Lang, String> {
    licet_core::Lang::parse(text).ok_or_else(|| format!("`{text}` is not a language of licet's mail: ru or en"))
}

//! The `licet-agent` command line (SPEC §6).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use licet_core::RegistrationNumber;
use serde_json::{Map, Value, json};

use crate::{Agent, AgentConfig, Error, Grant, LicenseObject, RegistrationForm};

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
}

fn default_data_dir() -> PathBuf {
    let home = std::env::var_os("LOCALAPPDATA").or_else(|| std::env::var_os("HOME")).unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".licet")
}

/// What a command says on success: JSON fields and readable lines.
struct Said {
    fields: Map<String, Value>,
    text: Vec<String>,
}

impl Said {
    fn new() -> Said {
        Said { fields: Map::new(), text: Vec::new() }
    }
    fn field(mut self, name: &str, value: Value) -> Said {
        self.fields.insert(name.to_owned(), value);
        self
    }
    fn line(mut self, line: impl Into<String>) -> Said {
        self.text.push(line.into());
        self
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn describe_license(l: &LicenseObject) -> String {
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let mut text = format!(
        "{} {} ({} of {} seats used), {}",
        l.product,
        l.kind.as_str(),
        l.seats_used,
        l.seats,
        l.expires_at.map_or("perpetual".to_owned(), |t| format!("until {}", at(t)))
    );
    if let Some(grace) = l.grace_until.filter(|g| Some(*g) != l.expires_at) {
        text.push_str(&format!(", grace until {}", at(grace)));
    }
    if !l.features.is_empty() {
        text.push_str(&format!(", features: {}", l.features.join(", ")));
    }
    if l.model != licet_core::LicenseModel::Host {
        text.push_str(&format!(", {} ({} sessions live)", l.model.as_str(), l.sessions_live.unwrap_or(l.seats_used)));
    }
    if let Some(n) = l.resets_left {
        text.push_str(&format!(", {n} resets left"));
    }
    text
}

fn strs(values: &[String]) -> Vec<&str> {
    values.iter().map(String::as_str).collect()
}

fn grant_fields(g: &Grant) -> Said {
    let end = g.expires_at.map_or("perpetual".to_owned(), |t| format!("term until {}", t.format("%Y-%m-%d %H:%M UTC")));
    let mut said = Said::new().line(format!(
        "{}: licensed ({}, {}{}), offline until {}, from the {}",
        g.product,
        g.kind.as_str(),
        end,
        if g.in_grace { ", in its grace period" } else { "" },
        g.lease_until.format("%Y-%m-%d %H:%M UTC"),
        if g.source == crate::Source::Server { "server" } else { "cache" }
    ));
    if !g.features.is_empty() {
        said = said.line(format!("features: {}", g.features.join(", ")));
    }
    if let Some(session) = &g.session_id {
        said = said
            .line(format!("floating session {session}, held until {}", g.lease_until.format("%Y-%m-%d %H:%M:%S UTC")));
    }
    if let Value::Object(map) = to_json(g) {
        said.fields.extend(map);
    }
    said
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

fn execute(cli: Cli, overrides: Overrides) -> Result<Said, Error> {
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
    let said = match cli.command {
        Command::Register { email, org, contact, phone, product } => {
            let form = RegistrationForm { email, organization: org, contact, phone, product };
            let (number, license) = agent.register(&form)?;
            Said::new()
                .field("registration_number", json!(number))
                .field("license", to_json(&license))
                .line(format!("registered; your registration number is {number} (it was also e-mailed to you)"))
                .line(describe_license(&license))
        }
        Command::SetNumber { number, offline: true } => {
            agent.set_number_offline(&number)?;
            Said::new()
                .field("offline", json!(true))
                .line("number stored (checked for typos only, not with the server)")
        }
        Command::OfflineRequest { product } => {
            let request = agent.offline_request(&product)?;
            Said::new().field("request", json!(request)).line(request)
        }
        Command::OfflineInstall { token } => {
            let token = match token.as_str() {
                "-" => {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut text)
                        .map_err(|e| Error::Internal(format!("standard input: {e}")))?;
                    text
                }
                _ => token,
            };
            grant_fields(&agent.offline_install(&token)?)
        }
        Command::SetNumber { number, offline: false } => {
            let licenses = agent.set_number(&number)?;
            let mut said = Said::new().field("licenses", to_json(&licenses)).line("number stored");
            for l in &licenses {
                said = said.line(describe_license(l));
            }
            said
        }
        Command::Trial { product } => {
            let license = agent.trial(&product)?;
            Said::new().field("license", to_json(&license)).line(describe_license(&license))
        }
        Command::Redeem { coupon } => {
            let license = agent.redeem(&coupon)?;
            Said::new().field("license", to_json(&license)).line(describe_license(&license))
        }
        Command::Check { product, feature } => grant_fields(&agent.check_features(&product, &strs(&feature))?),
        Command::Verify { token, product, feature } => {
            grant_fields(&agent.verify_features(&token, &product, &strs(&feature))?)
        }
        Command::Status => {
            let number = agent.number()?;
            let masked = number.as_deref().and_then(|n| RegistrationNumber::parse(n).ok()).map(|n| n.masked());
            let mut said = Said::new()
                .field("registration_number", json!(masked))
                .line(format!("registration number: {}", masked.as_deref().unwrap_or("none")));
            let mut products = Vec::new();
            for (product, verdict) in agent.cached_products()? {
                match verdict {
                    Ok(g) => {
                        let g = grant_fields(&g);
                        said.text.extend(g.text);
                        products.push(Value::Object(g.fields));
                    }
                    Err(e) => {
                        said.text.push(format!("{product}: {} ({} {})", e, e.code().number(), e.code().name()));
                        products.push(json!({"product": product, "code": e.code().number(), "name": e.code().name(), "message": e.to_string()}));
                    }
                }
            }
            said.field("products", Value::Array(products))
        }
        Command::Licenses => {
            let licenses = agent.licenses()?;
            let mut said = Said::new().field("licenses", to_json(&licenses));
            for l in &licenses {
                said = said.line(describe_license(l));
            }
            said
        }
        Command::Token { product } => {
            let token = agent.token(&product)?;
            Said::new().field("token", json!(token)).line(token)
        }
        Command::Deactivate { product } => {
            agent.deactivate(&product)?;
            Said::new().line(format!("{product}: this host's seat is free"))
        }
        Command::Forget { release } => {
            agent.forget(release)?;
            Said::new().line("the registration number and cached licenses were removed from this host")
        }
        Command::Checkout { product, hold: true, .. } => {
            let session = agent.checkout(&product)?;
            print_said(json_output, &grant_fields(&session.grant()?));
            // Until standard input ends (its contents are ignored).
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let id = session.id();
            session.release()?;
            Said::new().field("released", json!(id)).line(format!("session {id} released"))
        }
        Command::Checkout { product, borrow_hours, .. } => grant_fields(&agent.open_session(&product, borrow_hours)?),
        Command::Heartbeat { session } => grant_fields(&agent.heartbeat(&session)?),
        Command::Release { session } => {
            agent.release(&session)?;
            Said::new().line(format!("session {session} released; its seat is free"))
        }
        Command::Fingerprint => {
            let components = agent.fingerprint().components();
            let mut said = Said::new().field("components", to_json(components));
            for (k, v) in components {
                said = said.line(format!("{k}: {v}"));
            }
            said
        }
    };
    if let Some(warning) = agent.take_warning() {
        eprintln!("warning: {warning}");
    }
    Ok(said)
}

/// Prints what a command says: one JSON object, or its lines.
fn write_said(out: &mut impl Write, json: bool, said: &Said) -> std::io::Result<()> {
    if json {
        let mut fields = Map::new();
        fields.insert("ok".into(), json!(true));
        fields.extend(said.fields.clone());
        writeln!(out, "{}", Value::Object(fields))?;
    } else {
        said.text.iter().try_for_each(|l| writeln!(out, "{l}"))?;
    }
    out.flush()
}

/// Prints what a command says before it goes on (`checkout --hold`); a closed output is no
/// reason to stop holding.
fn print_said(json: bool, said: &Said) {
    let _ = write_said(&mut std::io::stdout().lock(), json, said);
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
        Ok(said) => write_said(&mut out, json, said),
        Err(e) if json => writeln!(
            out,
            "{}",
            json!({"ok": false, "code": e.code().number(), "name": e.code().name(), "message": e.to_string()})
        ),
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

//! `licet-agent-testing`: the `licet-agent` command line that also takes the test overrides of
//! SPEC §6 from the environment — `LICET_FINGERPRINT`, `LICET_RAW_FINGERPRINT`, `LICET_HOSTNAME`,
//! `LICET_NOW` — for the project's tests, and the option `--time-evidence PATH` (repeatable, each
//! looked at one level deep) for the files whose times show how late it is. Built only with the
//! cargo feature `test-overrides`; `licet-agent` itself has neither.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use licet_agent::cli::{Cli, Overrides, run_with};
use licet_agent::fingerprint::parse_components;

/// The agent's command line and what only tests may replace.
#[derive(Debug, Parser)]
#[command(name = "licet-agent-testing", version, about)]
struct Testing {
    /// A file or directory whose modification times show how late it is at least, instead of
    /// the system's (repeatable; none given: the system's, or none with LICET_NOW).
    #[arg(long, global = true)]
    time_evidence: Option<Vec<PathBuf>>,
    #[command(flatten)]
    cli: Cli,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn overrides(time_evidence: Option<Vec<PathBuf>>) -> Result<Overrides, String> {
    let mut overrides = Overrides::default();
    if let Some(text) = var("LICET_FINGERPRINT") {
        let components = parse_components(&text).map_err(|e| e.to_string())?;
        overrides.fingerprint = Some(licet_core::Fingerprint::new(components).map_err(|e| e.to_string())?);
    }
    if let Some(text) = var("LICET_RAW_FINGERPRINT") {
        overrides.raw_components = Some(parse_components(&text).map_err(|e| e.to_string())?);
    }
    overrides.hostname = var("LICET_HOSTNAME");
    if let Some(text) = var("LICET_NOW") {
        let now = chrono::DateTime::parse_from_rfc3339(&text).map_err(|e| format!("LICET_NOW: {e}"))?;
        overrides.now = Some(now.to_utc());
    }
    overrides.time_evidence =
        time_evidence.map(|paths| paths.into_iter().map(|p| licet_agent::evidence::Place::new(p, 1)).collect());
    Ok(overrides)
}

fn main() -> ExitCode {
    let testing = Testing::parse();
    match overrides(testing.time_evidence) {
        Ok(overrides) => run_with(testing.cli, overrides),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

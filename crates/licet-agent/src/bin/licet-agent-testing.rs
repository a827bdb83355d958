//! `licet-agent-testing`: the `licet-agent` command line that also takes the test overrides of
//! SPEC §6 from the environment — `LICET_FINGERPRINT`, `LICET_RAW_FINGERPRINT`, `LICET_HOSTNAME`,
//! `LICET_NOW` — for the project's tests, and `LICET_TIME_EVIDENCE` (paths separated as in
//! `PATH`, each looked at one level deep) for the files whose times show how late it is. Built only with the cargo feature `test-overrides`;
//! `licet-agent` itself never reads them.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use licet_agent::cli::{Cli, Overrides, run_with};
use licet_agent::fingerprint::parse_components;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

fn overrides() -> Result<Overrides, String> {
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
    if let Some(paths) = std::env::var_os("LICET_TIME_EVIDENCE") {
        overrides.time_evidence =
            Some(std::env::split_paths(&paths).map(|p| licet_agent::evidence::Place::new(p, 1)).collect());
    }
    Ok(overrides)
}

fn main() -> ExitCode {
    match overrides() {
        Ok(overrides) => run_with(Cli::parse(), overrides),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

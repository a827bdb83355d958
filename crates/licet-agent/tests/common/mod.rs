//! A real `licet-server` process and the real `licet-agent` binary.
#![allow(dead_code, unreachable_pub)]

mod server;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
#[allow(unused_imports)]
pub use server::{PRODUCT, Server, server_binary};

/// One customer machine: a data directory, a fingerprint, a clock.
#[derive(Clone)]
pub struct Host {
    pub data_dir: PathBuf,
    pub fingerprint: String,
    pub server: String,
    pub key: String,
    pub now: Option<String>,
    /// `--time-evidence`: the files whose times show how late it is.
    pub evidence: Option<PathBuf>,
}

impl Host {
    pub fn new(data_dir: PathBuf, tag: &str, server: &Server) -> Host {
        Host {
            data_dir,
            fingerprint: format!("machine-id=m-{tag},mac=a-{tag},disk=d-{tag}"),
            server: server.url.clone(),
            key: server.public_key.clone(),
            now: None,
            evidence: None,
        }
    }

    /// `licet-agent --json ARGS` for this host, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_licet-agent-testing"));
        cmd.arg("--json")
            .args(args)
            .env("LICET_SERVER", &self.server)
            .env("LICET_DATA_DIR", &self.data_dir)
            .env("LICET_TRUSTED_KEYS", &self.key)
            .env("LICET_FINGERPRINT", &self.fingerprint)
            .env("LICET_HOSTNAME", "test-host")
            .env_remove("LICET_RAW_FINGERPRINT")
            .env_remove("LICET_VENDOR")
            .env_remove("LICET_NOW");
        if let Some(now) = &self.now {
            cmd.env("LICET_NOW", now);
        }
        if let Some(evidence) = &self.evidence {
            cmd.arg("--time-evidence").arg(evidence);
        }
        cmd
    }

    /// Runs `licet-agent --json ARGS`; returns the exit code and the printed object.
    pub fn run(&self, args: &[&str]) -> (i32, Value) {
        let out = self.command(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let value = serde_json::from_str(text.trim())
            .unwrap_or_else(|_| panic!("not JSON: {text:?} / {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap_or(-1), value)
    }

    pub fn at(&self, now: &str) -> Host {
        Host { now: Some(now.to_owned()), ..self.clone() }
    }

    pub fn check(&self) -> (i32, Value) {
        self.run(&["check", "--product", PRODUCT])
    }
}

/// Asserts a refusal with `code`.
#[track_caller]
pub fn refused((exit, body): (i32, Value), code: u64) {
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(exit, 1, "{body}");
}

/// Asserts success and returns the body.
#[track_caller]
pub fn ok((exit, body): (i32, Value)) -> Value {
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(exit, 0, "{body}");
    body
}

/// RFC 3339 of now + `hours`.
pub fn hours_from_now(hours: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

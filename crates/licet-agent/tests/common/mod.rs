//! A real `licet-server` process and the real `licet-agent` binary.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

pub const PRODUCT: &str = "call-journal";

/// The `licet-server` binary next to this test's, built first if needed.
pub fn server_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned(); // target/<profile>
    let bin = dir.join(format!("licet-server{}", std::env::consts::EXE_SUFFIX));
    let profile = if dir.file_name().is_some_and(|n| n == "release") { "release" } else { "dev" };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "licet-server", "--bin", "licet-server", "--profile", profile])
        .status()
        .unwrap();
    assert!(status.success(), "building licet-server failed");
    bin
}

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub admin: String,
    pub public_key: String,
}

impl Server {
    /// Initialises `dir` and serves it on `listen` (with a dev clock and no rate limit).
    pub fn start(dir: &Path, listen: &str, extra: &[&str]) -> Server {
        let bin = server_binary();
        let (admin, public_key) = if dir.join("server.json").exists() {
            let facts: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("facts.json")).unwrap()).unwrap();
            (facts["admin_token"].as_str().unwrap().to_owned(), facts["public_key"].as_str().unwrap().to_owned())
        } else {
            let out = Command::new(&bin).args(["init", "--json", "--data-dir"]).arg(dir).output().unwrap();
            assert!(out.status.success());
            let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
            std::fs::write(dir.join("facts.json"), facts.to_string()).unwrap();
            (facts["admin_token"].as_str().unwrap().to_owned(), facts["public_key"].as_str().unwrap().to_owned())
        };
        let mut child = Command::new(&bin)
            .args(["serve", "--dev-clock", "--rate-limit", "0", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(extra)
            .env("LICET_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
        let server = Server { child, url, dir: dir.to_owned(), admin, public_key };
        server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({}));
        server
    }

    /// Serves https with a certificate made by the test. Products are set up over https too.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Server {
        let bin = server_binary();
        let out = Command::new(&bin).args(["init", "--json", "--data-dir"]).arg(dir).output().unwrap();
        let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut child = Command::new(&bin)
            .args(["serve", "--rate-limit", "0", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env("LICET_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
        let pem = std::fs::read(cert).unwrap();
        let root = ureq::tls::parse_pem(&pem)
            .find_map(|i| match i {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                _ => None,
            })
            .unwrap();
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[root])).build();
        let http: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
        let answer = http
            .put(format!("{url}/v1/admin/products/{PRODUCT}"))
            .header("Authorization", format!("Bearer {}", facts["admin_token"].as_str().unwrap()))
            .send_json(json!({}))
            .unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        Server {
            child,
            url,
            dir: dir.to_owned(),
            admin: facts["admin_token"].as_str().unwrap().to_owned(),
            public_key: facts["public_key"].as_str().unwrap().to_owned(),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn http() -> ureq::Agent {
        ureq::Agent::config_builder().http_status_as_error(false).build().into()
    }

    pub fn admin_put(&self, path: &str, body: Value) -> Value {
        Self::http()
            .put(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {}", self.admin))
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    pub fn post(&self, path: &str, bearer: &str, body: Value) -> Value {
        Self::http()
            .post(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {bearer}"))
            .send_json(body)
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    pub fn get(&self, path: &str, bearer: &str) -> Value {
        Self::http()
            .get(format!("{}{path}", self.url))
            .header("Authorization", format!("Bearer {bearer}"))
            .call()
            .unwrap()
            .body_mut()
            .read_json()
            .unwrap()
    }

    pub fn set_clock(&self, now: &str) {
        let answer = self.post("/v1/admin/clock", &self.admin.clone(), json!({"now": now}));
        assert!(answer["now"].is_string(), "{answer}");
    }

    pub fn coupon(&self, seats: u32) -> String {
        let answer = self.post(
            "/v1/admin/coupons",
            &self.admin.clone(),
            json!({"product": PRODUCT, "count": 1, "seats": seats}),
        );
        answer["coupons"][0].as_str().unwrap().to_owned()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

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

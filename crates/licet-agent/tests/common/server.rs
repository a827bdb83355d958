//! A real `licet-server` process (shared by the agent's tests and the C ABI's).
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

/// Starts `serve` (quiet) and reads the URL of its first line.
fn listening(mut serve: Command) -> (Child, String) {
    let mut child = serve.env("LICET_LOG", "warn").stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap().to_owned();
    (child, url)
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
        let mut serve = Command::new(&bin);
        serve
            .args(["serve", "--dev-clock", "--rate-limit", "0", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(extra);
        let (child, url) = listening(serve);
        let server = Server { child, url, dir: dir.to_owned(), admin, public_key };
        server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({}));
        server
    }

    /// Serves https with a certificate made by the test. Products are set up over https too.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Server {
        let bin = server_binary();
        let out = Command::new(&bin).args(["init", "--json", "--data-dir"]).arg(dir).output().unwrap();
        let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut serve = Command::new(&bin);
        serve.args(["serve", "--rate-limit", "0", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir);
        serve.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
        let (child, url) = listening(serve);
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

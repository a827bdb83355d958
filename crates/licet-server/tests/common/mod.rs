//! Real `licet-server` processes on 127.0.0.1:0 and a blocking HTTP client for them.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

pub mod smtp;

pub const PRODUCT: &str = "call-journal";

/// A running server process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub admin: String,
    pub dir: PathBuf,
    pub http: ureq::Agent,
    pub _tmp: Option<tempfile::TempDir>,
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `licet-server init --json` in `dir`; returns the admin token.
pub fn init(dir: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_licet-server"))
        .args(["init", "--json", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "init failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `licet-server serve --listen 127.0.0.1:0 ARGS` in `cwd`, its stdout and stderr piped, not
/// waited for (for tests that read what it says, or that it refuses to start).
pub fn spawn_serve(args: &[&str], cwd: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_licet-server"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(cwd)
        .env("LICET_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Starts `serve` on an initialised `dir` and waits for its first stdout line.
pub fn serve(dir: &Path, admin: &str, extra: &[&str]) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_licet-server"));
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]).arg(dir).args(extra);
    serve_command(command, dir, admin)
}

/// [`serve`] with at most `files` open files (soft and hard limit), as on many hosts.
pub fn serve_with_open_files(dir: &Path, admin: &str, files: u32, extra: &[&str]) -> Server {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_licet-server"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra);
    serve_command(command, dir, admin)
}

fn serve_command(mut command: Command, dir: &Path, admin: &str) -> Server {
    let mut child = command.env("LICET_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_owned();
    Server { child, url, admin: admin.to_owned(), dir: dir.to_owned(), http: agent(), _tmp: None }
}

/// A fresh server in a temporary directory with product `call-journal` created.
pub fn start(extra: &[&str]) -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let facts = init(&dir);
    let mut server = serve(&dir, facts["admin_token"].as_str().unwrap(), extra);
    server._tmp = Some(tmp);
    let (status, _) = server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({}));
    assert_eq!(status, 200);
    server
}

pub fn host(tag: &str) -> Value {
    json!({"fingerprint": {"machine-id": format!("m-{tag}"), "mac": format!("a-{tag}"), "disk": format!("d-{tag}")},
           "hostname": tag, "os": "Linux"})
}

fn read(mut resp: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

impl Server {
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        read(self.http.post(format!("{}{path}", self.url)).send_json(&body).unwrap())
    }

    pub fn post_raw(&self, path: &str, body: &[u8]) -> (u16, Value) {
        read(self.http.post(format!("{}{path}", self.url)).content_type("application/json").send(body).unwrap())
    }

    pub fn post_bearer(&self, path: &str, bearer: &str, body: Value) -> (u16, Value) {
        read(
            self.http
                .post(format!("{}{path}", self.url))
                .header("Authorization", format!("Bearer {bearer}"))
                .send_json(&body)
                .unwrap(),
        )
    }

    /// `DELETE path` with a bearer credential.
    pub fn delete_bearer(&self, path: &str, bearer: &str) -> (u16, Value) {
        read(
            self.http
                .delete(format!("{}{path}", self.url))
                .header("Authorization", format!("Bearer {bearer}"))
                .call()
                .unwrap(),
        )
    }

    /// `POST path` with a bearer credential and no body at all.
    pub fn post_empty(&self, path: &str, bearer: &str) -> (u16, Value) {
        read(
            self.http
                .post(format!("{}{path}", self.url))
                .header("Authorization", format!("Bearer {bearer}"))
                .send_empty()
                .unwrap(),
        )
    }

    pub fn get(&self, path: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.url));
        if let Some(b) = bearer {
            req = req.header("Authorization", format!("Bearer {b}"));
        }
        read(req.call().unwrap())
    }

    pub fn admin_put(&self, path: &str, body: Value) -> (u16, Value) {
        read(
            self.http
                .put(format!("{}{path}", self.url))
                .header("Authorization", format!("Bearer {}", self.admin))
                .send_json(&body)
                .unwrap(),
        )
    }

    pub fn admin_post(&self, path: &str, body: Value) -> (u16, Value) {
        self.post_bearer(path, &self.admin.clone(), body)
    }

    pub fn register(&self, email: &str, tag: &str) -> (u16, Value) {
        self.post("/v1/register", json!({"email": email, "organization": "Org", "product": PRODUCT, "host": host(tag)}))
    }

    pub fn activate(&self, number: &str, tag: &str) -> (u16, Value) {
        self.post("/v1/activate", json!({"registration_number": number, "product": PRODUCT, "host": host(tag)}))
    }

    pub fn coupons(&self, count: u32, seats: u32) -> Vec<String> {
        let (status, body) =
            self.admin_post("/v1/admin/coupons", json!({"product": PRODUCT, "count": count, "seats": seats}));
        assert_eq!(status, 201, "{body}");
        body["coupons"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()
    }

    pub fn set_clock(&self, now: &str) {
        let (status, body) = self.admin_post("/v1/admin/clock", json!({"now": now}));
        assert_eq!(status, 200, "{body}");
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        let rc = send_signal(self.child.id(), sig);
        assert_eq!(rc, 0);
    }
}

/// `kill -SIG pid` (the workspace forbids the `unsafe` that `libc::kill` would need).
fn send_signal(pid: u32, sig: i32) -> i32 {
    Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .map(|s| if s.success() { 0 } else { 1 })
        .unwrap_or(1)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts an error answer: status and SPEC code.
#[track_caller]
pub fn assert_error((status, body): (u16, Value), want_status: u16, code: u64) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(status, want_status, "{body}");
    assert!(body["error"]["name"].is_string() && body["error"]["message"].is_string(), "{body}");
}

/// The value of the first sample of `name` in a Prometheus text exposition whose labels include
/// every one of `labels`.
pub fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

//! The local agent service (SPEC §12) as a process: `licet-agent serve` against a real server —
//! checks, status and every command as the 1C example and the docs make them, refusals as 403
//! with their code, several users' floating sessions through one service, the server going
//! away while the service answers from its cache, a non-loopback address refused, requests
//! from a foreign `Host` or without a JSON body refused, one log line per request without the
//! number, and a clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};

use common::{Host, PRODUCT, Server};
use serde_json::{Value, json};

/// A running `licet-agent serve` for `host`; killed when dropped.
struct Service {
    child: Child,
    url: String,
    log: std::path::PathBuf,
    http: ureq::Agent,
}

impl Service {
    fn start(host: &Host, log: &std::path::Path) -> Service {
        let mut child = host
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_owned();
        let http = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Service { child, url, log: log.to_owned(), http }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let mut answer = self.http.get(format!("{}{path}", self.url)).call().unwrap();
        (answer.status().as_u16(), answer.body_mut().read_json().unwrap())
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let mut answer = self.http.post(format!("{}{path}", self.url)).send_json(body).unwrap();
        (answer.status().as_u16(), answer.body_mut().read_json().unwrap())
    }

    /// Sends `request` as raw bytes; returns the status and the body.
    fn raw(&self, request: &str) -> (u16, Value) {
        let addr = self.url.strip_prefix("http://").unwrap();
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let status = text.split(' ').nth(1).unwrap().parse().unwrap();
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.child.wait().unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[track_caller]
fn ok((status, body): (u16, Value)) -> Value {
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    body
}

#[track_caller]
fn refused((status, body): (u16, Value), want_status: u16, code: u64) {
    assert_eq!((status, &body["ok"], &body["code"]), (want_status, &json!(false), &json!(code)), "{body}");
    assert!(body["name"].is_string() && body["message"].is_string(), "{body}");
}

#[test]
fn the_service_answers_checks_and_commands_and_keeps_answering_without_its_server() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"features": ["recording", "analytics"]}));
    server.admin_put("/v1/admin/products/softphone", json!({"session_lease_seconds": 600}));
    let host = Host::new(tmp.path().join("agent"), "a", &server);
    let mut service = Service::start(&host, &tmp.path().join("service.log"));

    // Nothing entered yet.
    let status = ok(service.get("/v1/status"));
    assert_eq!((status["registration_number"].clone(), status["products"].clone()), (Value::Null, json!([])));
    refused(service.get(&format!("/v1/check?product={PRODUCT}")), 403, 3005);
    refused(service.post("/v1/set-number", json!({"registration_number": "MIKO-1"})), 403, 1002);

    // Registration through the service: the trial's token is cached and checks pass from memory.
    let form = json!({"email": "it@example.com", "organization": "Example LLC", "product": PRODUCT});
    let registered = ok(service.post("/v1/register", form));
    let number = registered["registration_number"].as_str().unwrap().to_owned();
    assert_eq!(registered["license"]["kind"], "trial");
    let check = ok(service.get(&format!("/v1/check?product={PRODUCT}&feature=recording")));
    assert_eq!((check["product"].clone(), check["source"].clone()), (json!(PRODUCT), json!("cache")));
    refused(service.get(&format!("/v1/check?product={PRODUCT}&feature=telepathy")), 403, 2009);
    let status = ok(service.get("/v1/status"));
    assert!(status["registration_number"].as_str().unwrap().ends_with(&number[number.len() - 5..]), "{status}");
    assert_ne!(status["registration_number"], json!(number), "the number is masked");
    assert_eq!(status["products"][0]["product"], PRODUCT);

    // A floating license of a second product: several users' sessions through one service, each
    // heartbeated and released by its id though the cache keeps the latest token only.
    let batch = json!({"product": "softphone", "count": 1, "seats": 2, "model": "floating"});
    let coupon = server.post("/v1/admin/coupons", &server.admin, batch)["coupons"][0].as_str().unwrap().to_owned();
    assert_eq!(ok(service.post("/v1/redeem", json!({"coupon": coupon})))["license"]["model"], "floating");
    let first = ok(service.post("/v1/checkout", json!({"product": "softphone", "user": "ivanov"})));
    let second = ok(service.post("/v1/checkout", json!({"product": "softphone", "user": "petrov"})));
    let (a, b) = (first["session_id"].as_str().unwrap(), second["session_id"].as_str().unwrap());
    assert_ne!(a, b);
    refused(service.post("/v1/checkout", json!({"product": "softphone", "user": "sidorov"})), 403, 1051);
    // Both heartbeat by id; then the one whose token is cached now (b's) is released, and a
    // check of the product still passes, on a's session.
    assert_eq!(ok(service.post("/v1/heartbeat", json!({"session_id": a})))["session_id"], json!(a));
    // A second later: b's token is newer than a's, as it would be minutes later.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(ok(service.post("/v1/heartbeat", json!({"session_id": b})))["session_id"], json!(b));
    ok(service.post("/v1/release", json!({"session_id": b})));
    let check = ok(service.get("/v1/check?product=softphone"));
    assert_eq!((check["session_id"].clone(), check["source"].clone()), (json!(a), json!("cache")));
    refused(service.post("/v1/heartbeat", json!({"session_id": b})), 403, 1055);
    // A session this service does not hold is not its to release.
    refused(service.post("/v1/release", json!({"session_id": "ses_AAAAAAAAAAAAAAAA"})), 403, 1055);
    ok(service.post("/v1/checkout", json!({"product": "softphone", "user": "sidorov"})));
    let account = server.get("/v1/account", &number);
    let mut users: Vec<&str> =
        account["sessions"].as_array().unwrap().iter().map(|s| s["user"].as_str().unwrap()).collect();
    users.sort_unstable();
    assert_eq!(users, ["ivanov", "sidorov"], "{account}");
    // Session a released in the portal: the server refuses its heartbeat (the agent still held it).
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let released = http
        .delete(format!("{}/v1/sessions/{a}", server.url))
        .header("Authorization", format!("Bearer {number}"))
        .call()
        .unwrap();
    assert_eq!(released.status().as_u16(), 200);
    refused(service.post("/v1/heartbeat", json!({"session_id": a})), 403, 1055);

    // Malformed requests: 400/404/413/415 with 1001, never a 5xx; a foreign Host is refused.
    refused(service.get("/v1/check"), 400, 1001);
    refused(service.post("/v1/trial", json!({"produkt": PRODUCT})), 400, 1001);
    refused(service.get("/v1/nothing"), 404, 1001);
    let big = json!({"product": "x".repeat(70 * 1024)});
    refused(service.post("/v1/trial", big), 413, 1001);
    let port = service.url.rsplit(':').next().unwrap().to_owned();
    let plain = format!(
        "POST /v1/deactivate HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    refused(service.raw(&plain), 415, 1001);
    let rebound = format!("GET /v1/status HTTP/1.1\r\nHost: licensed.example.com:{port}\r\nConnection: close\r\n\r\n");
    refused(service.raw(&rebound), 403, 1001);
    let from_page = format!(
        "GET /v1/check?product={PRODUCT} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nSec-Fetch-Site: cross-site\r\nConnection: close\r\n\r\n"
    );
    refused(service.raw(&from_page), 403, 1001);
    let with_origin = format!(
        "GET /v1/status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: https://example.com\r\nConnection: close\r\n\r\n"
    );
    refused(service.raw(&with_origin), 403, 1001);
    let wrong_method = format!("GET /v1/set-number HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n");
    refused(service.raw(&wrong_method), 405, 1001);
    // A credential a client put in a URL does not reach the log.
    refused(service.get(&format!("/v1/nothing?registration_number={number}")), 404, 1001);
    ok(service.get(&format!("/v1/check?product={PRODUCT}&registration_number={number}")));

    // The server goes away: checks go on from the cache; a command needs a server (1011).
    server.kill();
    let check = ok(service.get(&format!("/v1/check?product={PRODUCT}")));
    assert_eq!(check["source"], "cache");
    refused(service.post("/v1/deactivate", json!({"product": PRODUCT})), 403, 1011);

    // SIGTERM: a clean exit; one log line per request, and never the number.
    let stopping = std::time::Instant::now();
    let exit = service.terminate();
    eprintln!("stopped in {:?}", stopping.elapsed());
    assert!(exit.success(), "{exit:?}");
    let log = std::fs::read_to_string(&service.log).unwrap();
    assert!(!log.contains(&number), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("µs")).collect();
    assert!(
        lines.iter().any(|l| l.contains("GET /v1/check product=\"call-journal\" feature=\"telepathy\" 403 code=2009")),
        "{log}"
    );
    assert!(lines.iter().any(|l| l.contains("POST /v1/register 200 code=0")), "{log}");
    assert!(lines.iter().any(|l| l.contains("GET (no such route) 404 code=1001")), "{log}");
    assert_eq!(lines.len(), 32, "{log}");
}

#[test]
fn a_non_loopback_address_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let host = Host::new(tmp.path().join("agent"), "a", &server);
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8730", "not an address"] {
        let out = host.command(&["serve", "--listen", listen]).output().unwrap();
        let said: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!((out.status.code(), &said["code"]), (Some(1), &json!(1001)), "{listen}: {said}");
    }
}

#[test]
fn a_check_due_for_a_refresh_answers_at_once_and_the_refresh_follows_in_the_background() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let host = Host::new(tmp.path().join("agent"), "a", &server);
    let registered =
        common::ok(host.run(&["register", "--email", "d@example.com", "--org", "O", "--product", PRODUCT]));
    assert_eq!(registered["license"]["kind"], "trial");
    let issued = common::ok(host.check())["issued_at"].clone();

    // A day and an hour later (the token is due: refresh_hours is 24; its lease of a week is
    // not over), by the agent's clock and the server's.
    let later = common::hours_from_now(25);
    server.set_clock(&later);
    let service = Service::start(&host.at(&later), &tmp.path().join("service.log"));
    let check = ok(service.get(&format!("/v1/check?product={PRODUCT}")));
    assert_eq!((check["source"].clone(), check["issued_at"].clone()), (json!("cache"), issued.clone()));
    // The refresh thread was woken: the token it fetched answers soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status = ok(service.get("/v1/status"));
        if status["products"][0]["issued_at"] != issued {
            assert_eq!(status["products"][0]["issued_at"].as_str().unwrap()[..13], later[..13], "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no refresh: {status}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

//! Mail and metrics against real processes (SPEC §13): mail is queued in the ledger with the
//! registration, delivered by SMTP to a real listener in the account's language with headers
//! encoded by the RFC, kept through an SMTP outage and a `kill -9`, and sent once; `/metrics`
//! counts what the server did.

mod common;

use std::time::{Duration, Instant};

use common::smtp::{SmtpSink, free_port};
use common::{PRODUCT, Server, assert_error, host, init, sample, serve, spawn_serve, start};
use serde_json::{Value, json};

/// A registration in `lang` (none: the server's default).
fn register(s: &Server, email: &str, tag: &str, lang: Option<&str>) -> (u16, Value) {
    let mut body = json!({"email": email, "organization": "ООО Ромашка", "product": PRODUCT, "host": host(tag)});
    if let Some(lang) = lang {
        body["lang"] = json!(lang);
    }
    s.post("/v1/register", body)
}

fn metrics(s: &Server) -> String {
    let (status, body) = s.get("/metrics", None);
    assert_eq!(status, 200, "{body}");
    body.as_str().unwrap_or_default().to_owned()
}

/// Waits until `/metrics` shows `name` at `at_least` or more.
fn wait_for_metric(s: &Server, name: &str, labels: &[&str], at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample(&metrics(s), name, labels).unwrap_or(0.0) < at_least {
        assert!(Instant::now() < deadline, "{name} never reached {at_least}:\n{}", metrics(s));
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Parsed {
    raw: String,
    subject: String,
    from: String,
    to: String,
    body: String,
}

fn parse(data: &[u8]) -> Parsed {
    let message = mail_parser::MessageParser::default().parse(data).expect("a parsable message");
    let address = |a: Option<&mail_parser::Address>| {
        let first = a.and_then(|a| a.first()).expect("an address");
        format!("{} <{}>", first.name().unwrap_or_default(), first.address().unwrap_or_default())
    };
    Parsed {
        raw: String::from_utf8(data.to_vec()).expect("7-bit or UTF-8 text"),
        subject: message.subject().unwrap_or_default().to_owned(),
        from: address(message.from()),
        to: address(message.to()),
        body: message.body_text(0).unwrap_or_default().into_owned(),
    }
}

/// Headers are 7-bit, each line within RFC 5322's 78 characters, non-ASCII text only in
/// RFC 2047 encoded words of at most 75 characters.
fn assert_headers_follow_the_rfcs(raw: &str) {
    let head = raw.split("\r\n\r\n").next().unwrap();
    for line in head.split("\r\n") {
        assert!(line.is_ascii(), "a raw non-ASCII header line: {line}");
        assert!(line.len() <= 78, "a header line of {} characters: {line}", line.len());
        for word in line.split_whitespace().filter(|w| w.starts_with("=?")) {
            assert!(word.len() <= 75, "an encoded word of {} characters: {word}", word.len());
        }
    }
    let subject = head.split("\r\n").find(|l| l.starts_with("Subject:")).unwrap();
    assert!(subject.to_ascii_lowercase().contains("=?utf-8?"), "{subject}");
}

#[test]
fn registration_mail_reaches_an_smtp_listener_in_the_accounts_language() {
    let sink = SmtpSink::start(0);
    let from = "Лицензии MIKO <licenses@miko.example>";
    let s = start(&["--rate-limit", "0", "--smtp", &sink.url(), "--mail-from", from]);
    assert_eq!(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"name": "Журнал звонков"})).0, 200);

    let (status, ru) = register(&s, "ivan@example.com", "a", None);
    assert_eq!(status, 201, "{ru}");
    let (status, en) = register(&s, "john@example.com", "b", Some("en"));
    assert_eq!(status, 201, "{en}");
    assert_error(register(&s, "hans@example.com", "c", Some("de")), 400, 1001);

    let received = sink.wait_for(2, Duration::from_secs(20));
    assert_eq!(received.len(), 2, "{received:?}");
    let mails: Vec<Parsed> = received.iter().map(|r| parse(&r.data)).collect();
    let to = |addr: &str| mails.iter().find(|m| m.to.ends_with(&format!("<{addr}>"))).unwrap();

    let ivan = to("ivan@example.com");
    assert_headers_follow_the_rfcs(&ivan.raw);
    assert_eq!(ivan.subject, "Регистрационный номер для «Журнал звонков»");
    assert_eq!(ivan.from, "Лицензии MIKO <licenses@miko.example>");
    assert!(ivan.body.contains(ru["registration_number"].as_str().unwrap()), "{}", ivan.body);
    assert!(ivan.body.contains("Пробный период заканчивается"), "{}", ivan.body);
    assert!(received.iter().all(|r| r.from == "<licenses@miko.example>"), "{received:?}");

    let john = to("john@example.com");
    assert_headers_follow_the_rfcs(&john.raw);
    assert_eq!(john.subject, "Your registration number for Журнал звонков");
    assert!(john.body.contains(en["registration_number"].as_str().unwrap()), "{}", john.body);
    assert!(john.body.contains("Your trial ends on"), "{}", john.body);

    // A reminder goes out in the language chosen at registration.
    assert_eq!(s.post("/v1/recover", json!({"email": "JOHN@example.com"})).0, 202);
    let received = sink.wait_for(3, Duration::from_secs(20));
    assert_eq!(received.len(), 3);
    let reminder = parse(&received[2].data);
    assert_eq!((reminder.subject.as_str(), reminder.to.as_str()), ("Your registration number", " <john@example.com>"));
    assert!(reminder.body.contains(en["registration_number"].as_str().unwrap()));

    // Sent by SMTP, so nothing went to the outbox; the metrics saw it.
    assert!(std::fs::read_dir(s.dir.join("outbox")).map(|d| d.count()).unwrap_or(0) == 0);
    wait_for_metric(&s, "licet_mail_sent_total", &[], 3.0);
}

#[test]
fn mail_survives_an_smtp_outage_and_kill_9_and_is_delivered_once() {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let admin = init(&dir)["admin_token"].as_str().unwrap().to_owned();
    let args = ["--rate-limit", "0", "--dev-clock", "--smtp", url.as_str()];
    let mut s = serve(&dir, &admin, &args);
    assert_eq!(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({})).0, 200);
    let (status, reg) = register(&s, "ivan@example.com", "a", None);
    assert_eq!(status, 201, "{reg}");
    // Nothing listens: the attempt fails, the mail stays queued.
    wait_for_metric(&s, "licet_mail_failures_total", &[], 1.0);
    assert_eq!(sample(&metrics(&s), "licet_mail_queued", &[]), Some(1.0));

    // Killed without a chance to flush anything: the acknowledged registration's mail is kept.
    s.signal(9);
    let _ = s.child.wait();
    drop(s);
    let s = serve(&dir, &admin, &args);
    wait_for_metric(&s, "licet_mail_queued", &[], 1.0);

    // The listener comes up; once the retry is due the mail goes, once.
    let sink = SmtpSink::start(port);
    let later = chrono::Utc::now() + chrono::Duration::minutes(5);
    s.set_clock(&later.to_rfc3339());
    let received = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(received.len(), 1);
    assert!(parse(&received[0].data).body.contains(reg["registration_number"].as_str().unwrap()));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sink.received().len(), 1, "delivered twice");
    wait_for_metric(&s, "licet_mail_sent_total", &[], 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&metrics(&s), "licet_mail_queued", &[]) != Some(0.0) {
        assert!(Instant::now() < deadline, "the delivered mail is still queued");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn metrics_count_requests_by_route_and_code_commits_and_the_ledger() {
    let s = start(&["--rate-limit", "0"]);
    let (status, reg) = register(&s, "a@example.com", "a", None);
    assert_eq!(status, 201, "{reg}");
    let number = reg["registration_number"].as_str().unwrap();
    // The trial's one seat is taken: a second host is refused with 1051.
    assert_error(s.activate(number, "b"), 409, 1051);
    assert_error(s.activate(number, "c"), 409, 1051);
    assert_eq!(s.activate(number, "a").0, 200);

    // The ledger's census runs in the background every few seconds.
    wait_for_metric(&s, "licet_bindings", &[], 1.0);
    let text = metrics(&s);
    let refused = ["route=\"/v1/activate\"", "status=\"409\"", "code=\"1051\""];
    assert_eq!(sample(&text, "licet_http_requests_total", &refused), Some(2.0), "{text}");
    let granted = ["route=\"/v1/activate\"", "status=\"200\"", "code=\"ok\""];
    assert_eq!(sample(&text, "licet_http_requests_total", &granted), Some(1.0), "{text}");
    let heartbeat = ["route=\"/v1/sessions/{id}/heartbeat\""];
    assert_eq!(sample(&text, "licet_http_requests_total", &heartbeat), None, "no such request yet");
    assert!(sample(&text, "licet_http_request_duration_seconds_count", &["route=\"/v1/activate\""]) == Some(3.0));
    assert!(sample(&text, "licet_store_commit_seconds_count", &["command=\"register\""]) == Some(1.0), "{text}");
    assert_eq!(sample(&text, "licet_accounts", &[]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "licet_bindings", &[]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "licet_sessions_live", &[]), Some(0.0), "{text}");
    // A path no route matches is counted under one label, not under its own.
    s.get("/no/such/path/12345", None);
    let text = metrics(&s);
    assert!(sample(&text, "licet_http_requests_total", &["route=\"unmatched\"", "status=\"404\""]).is_some());
    assert!(!text.contains("12345"), "{text}");
}

#[test]
fn metrics_can_have_an_address_of_their_own() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    init(&dir);
    let mut child = spawn_serve(&["--data-dir", dir.to_str().unwrap(), "--metrics-listen", "127.0.0.1:0"], tmp.path());
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let api = lines.next().unwrap().unwrap().strip_prefix("listening on ").unwrap().to_owned();
    let metrics_url = lines.next().unwrap().unwrap().strip_prefix("metrics on ").unwrap().to_owned();
    let http = common::agent();
    let mut answer = http.get(&metrics_url).call().unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer.body_mut().read_to_string().unwrap().contains("licet_"));
    assert_eq!(http.get(format!("{api}/metrics")).call().unwrap().status(), 404, "not on the API's address");
    let _ = child.kill();
    let _ = child.wait();
}

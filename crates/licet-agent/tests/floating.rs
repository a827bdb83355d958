//! Floating licenses (SPEC §11) with real processes: agents on three hosts sharing two seats, a
//! silent host's seat going to the next one after the lease, a borrowed seat working offline,
//! and an agent process holding a session that is killed (its seat freed by the lease) or that
//! exits cleanly (freed at once).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use chrono::{Duration, SecondsFormat, Utc};
use common::{Host, PRODUCT, Server, ok, refused};
use serde_json::{Value, json};

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A server whose product's sessions live 60 s and may be borrowed a day; host `a` registered,
/// its account holding a floating license of `seats`; hosts `b` and `c` with the number.
fn setup(tmp: &std::path::Path, seats: u32) -> (Server, Host, Host, Host) {
    let server = Server::start(&tmp.join("server"), "127.0.0.1:0", &[]);
    server.admin_put(
        &format!("/v1/admin/products/{PRODUCT}"),
        json!({"session_lease_seconds": 60, "max_borrow_hours": 24}),
    );
    let a = Host::new(tmp.join("a"), "a", &server);
    let reg = ok(a.run(&["register", "--email", "a@example.com", "--org", "O", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let batch = json!({"product": PRODUCT, "count": 1, "seats": seats, "model": "floating"});
    let coupon = server.post("/v1/admin/coupons", &server.admin, batch)["coupons"][0].as_str().unwrap().to_owned();
    let redeemed = ok(a.run(&["redeem", &coupon]));
    assert_eq!(redeemed["license"]["model"], "floating");
    let (b, c) = (Host::new(tmp.join("b"), "b", &server), Host::new(tmp.join("c"), "c", &server));
    ok(b.run(&["set-number", &number]));
    ok(c.run(&["set-number", &number]));
    (server, a, b, c)
}

fn checkout(host: &Host) -> (i32, Value) {
    host.run(&["checkout", "--product", PRODUCT])
}

#[test]
fn three_hosts_on_two_seats_and_a_silent_hosts_seat_goes_to_the_next_after_its_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, a, b, c) = setup(tmp.path(), 2);
    let start = Utc::now();
    let session_a = ok(checkout(&a))["session_id"].as_str().unwrap().to_owned();
    ok(checkout(&b));
    refused(checkout(&c), 1051);

    // `check` passes on the session's token, from the cache while it is fresh.
    let check = ok(a.check());
    assert_eq!((check["source"].clone(), check["session_id"].clone()), (json!("cache"), json!(session_a)));

    // 45 s later `a` checks (its token is due at half the lease): a heartbeat, same session.
    let later = start + Duration::seconds(45);
    server.set_clock(&rfc3339(later));
    let check = ok(a.at(&rfc3339(later)).check());
    assert_eq!((check["source"].clone(), check["session_id"].clone()), (json!("server"), json!(session_a)));

    // `b` stayed silent: 65 s after its checkout its seat is free, and `c` takes it.
    let later = start + Duration::seconds(65);
    server.set_clock(&rfc3339(later));
    let got = ok(c.at(&rfc3339(later)).run(&["checkout", "--product", PRODUCT]));
    assert!(got["session_id"].as_str().unwrap().starts_with("ses_"));
    // `b`'s check finds its session dead and every seat taken: a signed 1051, its token gone.
    refused(b.at(&rfc3339(later)).check(), 1051);
    assert_eq!(ok(b.run(&["status"]))["products"], json!([]));

    // `a` releases: the seat is free at once, for `b`.
    ok(a.run(&["release", "--session", &session_a]));
    // A malformed session id never reaches a URL: no such session.
    refused(a.run(&["release", "--session", "../v1/account"]), 1055);
    refused(a.at(&rfc3339(later)).run(&["heartbeat", "--session", &session_a]), 1055);
    ok(b.at(&rfc3339(later)).run(&["checkout", "--product", PRODUCT]));
}

#[test]
fn a_borrowed_seat_works_offline_for_its_hours_and_stays_held() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, a, b, _) = setup(tmp.path(), 1);
    refused(a.run(&["checkout", "--product", PRODUCT, "--borrow-hours", "25"]), 1001);
    let start = Utc::now();
    let borrowed = ok(a.run(&["checkout", "--product", PRODUCT, "--borrow-hours", "8"]));
    let lease = chrono::DateTime::parse_from_rfc3339(borrowed["lease_until"].as_str().unwrap()).unwrap();
    assert!(lease.with_timezone(&Utc) >= start + Duration::hours(8) - Duration::seconds(5), "{borrowed}");

    // The laptop leaves: no server for seven hours, and the license keeps working.
    let offline = Host { server: "http://127.0.0.1:9".into(), ..a.clone() };
    let seven = rfc3339(start + Duration::hours(7));
    let check = ok(offline.at(&seven).check());
    assert_eq!(
        (check["source"].clone(), check["session_id"].clone()),
        (json!("cache"), borrowed["session_id"].clone())
    );
    // An explicit checkout needs a server: the cache never answers it.
    refused(offline.at(&seven).run(&["checkout", "--product", PRODUCT]), 1011);
    // Meanwhile nobody else gets the seat, though `a` never heartbeat.
    server.set_clock(&seven);
    refused(b.at(&seven).run(&["checkout", "--product", PRODUCT]), 1051);
    // After the borrow, offline, the token is over (3003), and the seat is free.
    let nine = rfc3339(start + Duration::hours(9));
    refused(offline.at(&nine).check(), 3003);
    server.set_clock(&nine);
    ok(b.at(&nine).run(&["checkout", "--product", PRODUCT]));
}

/// `licet-agent checkout --hold` on `host`: the running process and its first printed object.
fn hold(host: &Host) -> (std::process::Child, BufReader<std::process::ChildStdout>, Value) {
    let mut child = host
        .command(&["checkout", "--product", PRODUCT, "--hold"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let first: Value = serde_json::from_str(line.trim()).unwrap_or_else(|_| panic!("not JSON: {line:?}"));
    (child, out, first)
}

#[test]
fn a_held_session_is_released_by_a_clean_exit_and_freed_by_its_lease_when_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, a, b, _) = setup(tmp.path(), 1);

    // A program holding the seat through the library's session object.
    let (mut child, mut out, first) = hold(&a);
    assert_eq!(first["ok"], true, "{first}");
    let session = first["session_id"].as_str().unwrap().to_owned();
    refused(checkout(&b), 1051);
    // It exits cleanly (its input ends): released at once.
    drop(child.stdin.take());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let last: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!((last["ok"].clone(), last["released"].clone()), (json!(true), json!(session)), "{last}");
    assert!(child.wait().unwrap().success());
    let taken = ok(checkout(&b));
    ok(b.run(&["release", "--session", taken["session_id"].as_str().unwrap()]));

    // Killed with SIGKILL: nothing is released; the seat stays held until the lease passes.
    let (mut child, _out, first) = hold(&a);
    assert_eq!(first["ok"], true, "{first}");
    child.kill().unwrap();
    child.wait().unwrap();
    refused(checkout(&b), 1051);
    let after = rfc3339(Utc::now() + Duration::seconds(61));
    server.set_clock(&after);
    ok(b.at(&after).run(&["checkout", "--product", PRODUCT]));
}

/// An agent of the library on `host`'s data directory and fingerprint, naming `user`.
fn library_agent(host: &Host, user: &str) -> std::sync::Arc<licet_agent::Agent> {
    let mut config = licet_agent::AgentConfig::new(&host.server, &host.data_dir).trust(&host.key).user(user);
    let components = host.fingerprint.split(',').filter_map(|pair| pair.split_once('='));
    config.fingerprint = Some(licet_core::Fingerprint::new(components).unwrap());
    config.time_evidence = Some(Vec::new());
    std::sync::Arc::new(licet_agent::Agent::new(config).unwrap())
}

#[test]
fn a_programs_session_is_its_own_whatever_other_programs_on_the_host_check_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (server, a, _, _) = setup(tmp.path(), 2);
    // Two programs on host `a`, run by two users: each its own session of the two seats.
    let anna = library_agent(&a, "anna");
    let boris = library_agent(&a, "boris");
    let anna_session = anna.checkout(PRODUCT).unwrap();
    let boris_grant = boris.open_session(PRODUCT, None).unwrap();
    let boris_id = boris_grant.session_id.clone().unwrap();
    assert_ne!(anna_session.id(), boris_id);
    // A third program is refused (a signed 1051): that removes no token another program holds.
    let third = library_agent(&a, "carol");
    assert_eq!(third.open_session(PRODUCT, None).unwrap_err().code(), licet_core::Code::NoFreeLicense);
    assert!(boris.token(PRODUCT).is_ok(), "the host's cached session token is still there");
    // Anna's program ends: its own session is released — not Boris's, whose token the cache
    // holds now — and the seat is free for Carol.
    let anna_id = anna_session.id();
    drop(anna_session);
    assert!(ok(a.run(&["token", "--product", PRODUCT]))["token"].is_string(), "Boris's token stays cached");
    let carol = third.open_session(PRODUCT, None).unwrap();
    assert_ne!(carol.session_id.as_deref(), Some(anna_id.as_str()));
    assert_eq!(third.heartbeat(&anna_id).unwrap_err().code(), licet_core::Code::SessionExpired);
    boris.heartbeat(&boris_id).unwrap_or_else(|e| panic!("Boris's session lives: {e}"));
    drop(server);
}

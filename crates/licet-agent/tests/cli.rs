//! The agent against a real `licet-server` process: online, offline, outages, clocks, hosts.

mod common;
#[path = "../../../tests/fixtures/support.rs"]
mod fixtures;

use common::{Host, PRODUCT, Server, hours_from_now, ok, refused};
use fixtures::copy_dir;
use serde_json::json;

fn setup() -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    (tmp, server)
}

fn register(host: &Host, email: &str) -> String {
    let body = ok(host.run(&["register", "--email", email, "--org", "Romashka", "--product", PRODUCT]));
    assert_eq!(body["license"]["kind"], "trial");
    body["registration_number"].as_str().unwrap().to_owned()
}

#[test]
fn register_check_status_licenses_token_fingerprint() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    refused(a.check(), 3005);
    let status = ok(a.run(&["status"]));
    assert_eq!(status["registration_number"], serde_json::Value::Null);
    let number = register(&a, "a@example.com");
    assert!(number.starts_with("LICET-"));

    let check = ok(a.check());
    assert_eq!(check["product"], PRODUCT);
    assert_eq!(check["kind"], "trial");
    assert_eq!(check["source"], "cache", "a fresh token answers without the server");
    assert!(check["expires_at"].is_string() && check["lease_until"].is_string());

    let status = ok(a.run(&["status"]));
    let masked = status["registration_number"].as_str().unwrap();
    assert!(masked.contains("*****") && masked.ends_with(&number[number.len() - 5..]));
    assert_eq!(status["products"][0]["product"], PRODUCT);
    let licenses = ok(a.run(&["licenses"]));
    assert_eq!(licenses["licenses"][0]["seats_used"], 1);
    let token = ok(a.run(&["token", "--product", PRODUCT]))["token"].as_str().unwrap().to_owned();
    let verified = ok(a.run(&["verify", "--token", &token, "--product", PRODUCT]));
    assert_eq!(verified["kind"], "trial");
    refused(a.run(&["token", "--product", "other"]), 3005);
    let fp = ok(a.run(&["fingerprint"]));
    assert_eq!(fp["components"]["mac"], "a-a");

    // Older than half the lease: the next check asks the server.
    let later = a.at(&hours_from_now(100));
    assert_eq!(ok(later.check())["source"], "server");

    // Entering the number on a second host lists the licenses; a trial is refused (used).
    let b = Host::new(tmp.path().join("b"), "b", &server);
    let set = ok(b.run(&["set-number", &number.to_lowercase()]));
    assert_eq!(set["licenses"][0]["kind"], "trial");
    refused(b.check(), 1051);
    refused(b.run(&["trial", "--product", PRODUCT]), 1006);
    // A coupon adds seats; b is then bound.
    let coupon = server.coupon(2);
    refused(Host::new(tmp.path().join("c"), "c", &server).run(&["redeem", &coupon]), 1003);
    let redeemed = ok(b.run(&["redeem", &coupon]));
    assert_eq!(redeemed["license"]["kind"], "perpetual");
    assert_eq!(ok(b.check())["kind"], "perpetual");
    // Deactivate frees the seat and drops the token; forget --release forgets the number.
    ok(b.run(&["deactivate", "--product", PRODUCT]));
    refused(b.run(&["token", "--product", PRODUCT]), 3005);
    ok(b.check());
    ok(b.run(&["forget", "--release"]));
    assert_eq!(ok(b.run(&["status"]))["registration_number"], serde_json::Value::Null);
    let view = server.get("/v1/account", &number);
    assert_eq!(view["bindings"].as_array().unwrap().len(), 1, "b released its seat; a keeps its own");
}

#[test]
fn checks_pass_from_the_cache_through_an_outage_until_the_lease_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let port = server.port();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let number = register(&a, "a@example.com");
    let coupon = server.coupon(1);
    ok(a.run(&["redeem", &coupon]));
    ok(a.at(&hours_from_now(1)).check());
    server.kill();

    // Within the week's lease: passes, from the cache, even when older than half the lease.
    for h in [2, 50, 100, 166] {
        let check = ok(a.at(&hours_from_now(h)).check());
        assert_eq!(check["source"], "cache", "at +{h} h");
    }
    // Past the lease: 3003.
    refused(a.at(&hours_from_now(170)).check(), 3003);
    // A typo in the number is caught with the server unreachable.
    let mut typo = number.clone().into_bytes();
    typo[9] = if typo[9] == b'4' { b'5' } else { b'4' };
    refused(a.run(&["set-number", std::str::from_utf8(&typo).unwrap()]), 1002);
    refused(a.run(&["redeem", "LICETUPD-00000-00000-00000-00000"]), 1004);
    // Without a number, a coupon is refused for that first, whatever its form (1003).
    refused(Host::new(tmp.path().join("nobody"), "n", &server).run(&["redeem", "garbage"]), 1003);

    // The server is back (same port, its clock moved to the agent's): passes again, online.
    let server = Server::start(&tmp.path().join("server"), &format!("127.0.0.1:{port}"), &[]);
    let later = hours_from_now(170);
    server.set_clock(&later);
    let check = ok(a.at(&later).check());
    assert_eq!(check["source"], "server");
    assert_eq!(check["kind"], "perpetual");
}

#[test]
fn a_clock_set_back_is_refused_and_fixing_it_passes() {
    let (tmp, mut server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    // Set back before the server's own time: refused, online or not.
    refused(a.at(&hours_from_now(-48)).check(), 3004);
    ok(a.at(&hours_from_now(24)).check());
    refused(a.at(&hours_from_now(-48)).check(), 3004);
    // Offline, back below the time already seen on this host: refused; fixed: passes.
    server.kill();
    ok(a.at(&hours_from_now(30)).check());
    refused(a.at(&hours_from_now(0)).check(), 3004);
    refused(a.at(&hours_from_now(-48)).check(), 3004);
    assert_eq!(ok(a.at(&hours_from_now(31)).check())["source"], "cache");
}

#[test]
fn a_cache_copied_to_another_host_is_refused() {
    let (tmp, mut server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    // Copy a's data directory to a machine with other hardware, cut off from the server.
    let copy = tmp.path().join("copy");
    for entry in walk(&tmp.path().join("a")) {
        let rel = entry.strip_prefix(tmp.path().join("a")).unwrap();
        if rel.to_string_lossy().ends_with(".lock") {
            continue;
        }
        std::fs::create_dir_all(copy.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&entry, copy.join(rel)).unwrap();
    }
    let thief = Host::new(copy, "x", &server);
    server.kill();
    refused(thief.check(), 3002);
    // One changed component of three is still the same host.
    let mut nic = thief.clone();
    nic.fingerprint = "machine-id=m-a,mac=new,disk=d-a".into();
    assert_eq!(ok(nic.check())["source"], "cache");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn a_token_with_any_changed_character_is_refused() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    let token = ok(a.run(&["token", "--product", PRODUCT]))["token"].as_str().unwrap().to_owned();
    ok(a.run(&["verify", "--token", &token, "--product", PRODUCT]));
    refused(a.run(&["verify", "--token", &token, "--product", "other"]), 3001);
    for i in 0..token.len() {
        let mut changed = token.clone().into_bytes();
        changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
        refused(a.run(&["verify", "--token", std::str::from_utf8(&changed).unwrap(), "--product", PRODUCT]), 3001);
    }
}

#[test]
fn a_reset_host_loses_its_seat_and_token_at_its_next_refresh() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let number = register(&a, "a@example.com");
    // The customer resets a's binding in the portal; b takes the seat.
    let view = server.get("/v1/account", &number);
    let binding = view["bindings"][0]["id"].as_str().unwrap();
    let reset = server.post(&format!("/v1/bindings/{binding}/reset"), &number, json!({}));
    assert_eq!(reset, json!({}));
    let b = Host::new(tmp.path().join("b"), "b", &server);
    ok(b.run(&["set-number", &number]));
    assert_eq!(ok(b.check())["source"], "server");
    // a's token is still fresh, so a check passes from the cache …
    assert_eq!(ok(a.check())["source"], "cache");
    // … until the refresh, which the server refuses: the token is gone.
    refused(a.at(&hours_from_now(100)).check(), 1051);
    refused(a.run(&["token", "--product", PRODUCT]), 3005);
}

#[test]
fn two_programs_sharing_a_data_directory_both_get_answers() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    std::thread::scope(|s| {
        for _ in 0..2 {
            let a = &a;
            s.spawn(move || {
                for _ in 0..10 {
                    ok(a.check());
                    ok(a.run(&["status"]));
                }
            });
        }
    });
}

#[test]
fn a_clock_once_in_the_future_is_forgiven_by_the_server() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    // The clock runs five days ahead for a while: checks pass and the mark follows it.
    assert_eq!(ok(a.at(&hours_from_now(120)).check())["source"], "server");
    // Corrected, the clock is "set back" against the mark — but the server's time settles it.
    let check = ok(a.check());
    assert_eq!(check["source"], "server");
    ok(a.check());
    // With the server unreachable, the same situation stays refused.
    let b = Host::new(tmp.path().join("b"), "b", &server);
    let number = register(&b, "b@example.com");
    assert!(!number.is_empty());
    ok(b.at(&hours_from_now(120)).check());
    let offline = b.clone();
    drop(server);
    refused(offline.check(), 3004);
}

#[test]
fn usage_errors_exit_2_and_missing_keys_are_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_licet-agent-testing")).args(["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_licet-agent-testing"))
        .args(["--json", "status"])
        .env_remove("LICET_TRUSTED_KEYS")
        .env("LICET_DATA_DIR", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    // status is always ok, even without a trusted key; a check then has nothing to go on.
    assert_eq!(out.status.code(), Some(0));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((body["ok"].as_bool(), &body["registration_number"]), (Some(true), &serde_json::Value::Null));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_licet-agent-testing"))
        .args(["--json", "--trusted-key", "not-hex", "status"])
        .output()
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status.code(), &body["code"]), (Some(1), &json!(1001)));
}

#[test]
fn https_with_a_vendor_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start_tls(&tmp.path().join("server"), &cert_path, &key_path);
    assert!(server.url.starts_with("https://"));
    let a = Host::new(tmp.path().join("a"), "a", &server);
    // Without the vendor CA the server is not trusted: nothing to fall back on.
    refused(a.run(&["register", "--email", "a@example.com", "--org", "O", "--product", PRODUCT]), 1011);
    let body = ok(a.run(&[
        "--ca-cert",
        cert_path.to_str().unwrap(),
        "register",
        "--email",
        "a@example.com",
        "--org",
        "O",
        "--product",
        PRODUCT,
    ]));
    assert_eq!(body["license"]["kind"], "trial");
    let later = a.at(&hours_from_now(100));
    assert_eq!(
        ok(later.run(&["--ca-cert", cert_path.to_str().unwrap(), "check", "--product", PRODUCT]))["source"],
        "server"
    );
}

#[test]
fn two_hundred_programs_checking_at_once_on_one_data_directory_all_pass() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    // Each a separate process, as separate programs would be; the server is gone, so every
    // answer comes from the one cache file they share.
    drop(server);
    let now = hours_from_now(1);
    let children: Vec<_> = (0..200)
        .map(|_| {
            a.command(&["check", "--product", PRODUCT])
                .env("LICET_NOW", &now)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(format!("{} {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{} of 200 failed, e.g. {}", failures.len(), failures[0]);
}

#[test]
fn a_changed_server_address_keeps_the_number_and_licenses() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let number = register(&a, "a@example.com");
    // The vendor moved the server to another address (here: the same server under another name).
    let mut moved = a.clone();
    moved.server = server.url.replace("127.0.0.1", "localhost");
    let status = ok(moved.run(&["status"]));
    assert!(status["registration_number"].as_str().unwrap().ends_with(&number[number.len() - 5..]));
    assert_eq!(ok(moved.run(&["licenses"]))["licenses"][0]["kind"], "trial");
    assert_eq!(ok(moved.at(&hours_from_now(30)).check())["source"], "server");
}

#[test]
fn an_agent_whose_first_server_is_dead_passes_through_the_second() {
    let (tmp, server) = setup();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let mut a = Host::new(tmp.path().join("a"), "a", &server);
    a.server = format!("{dead_url},{}", server.url);
    let number = register(&a, "a@example.com");
    assert!(number.starts_with("LICET-"));
    assert_eq!(ok(a.at(&hours_from_now(30)).check())["source"], "server");
    let b = Host { data_dir: tmp.path().join("b"), fingerprint: "machine-id=m-b,mac=a-b,disk=d-b".into(), ..a.clone() };
    ok(b.run(&["set-number", &number]));
    refused(b.check(), 1051);
}

#[test]
fn the_fingerprint_does_not_depend_on_the_trusted_keys_or_their_order() {
    let (tmp, server) = setup();
    let other_key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let mut a = Host::new(tmp.path().join("a"), "a", &server);
    a.fingerprint = String::new();
    let fingerprint = |keys: &str| {
        let out = a
            .command(&["fingerprint"])
            .env_remove("LICET_FINGERPRINT")
            .env("LICET_RAW_FINGERPRINT", "machine-id=0123456789abcdef,mac=02:00:00:00:00:01,hostname=pc")
            .env("LICET_TRUSTED_KEYS", keys)
            .output()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(body["ok"], true, "{body}");
        body["components"].clone()
    };
    let one = fingerprint(&server.public_key);
    assert_eq!(one["mac"].as_str().unwrap().len(), 32, "hashed, not raw");
    assert_eq!(fingerprint(&format!("{other_key},{}", server.public_key)), one);
    assert_eq!(fingerprint(&format!("{},{other_key}", server.public_key)), one);
    assert_eq!(fingerprint(""), one);
    // Another vendor sees other values for the same machine.
    let out = a
        .command(&["--vendor", "ACME", "fingerprint"])
        .env_remove("LICET_FINGERPRINT")
        .env("LICET_RAW_FINGERPRINT", "machine-id=0123456789abcdef,mac=02:00:00:00:00:01,hostname=pc")
        .output()
        .unwrap();
    let acme: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(acme["components"], one);
}

/// A server that answers every request with HTTP 200 and `body`, on 127.0.0.1.
fn lying_server(body: &'static str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes());
            });
        }
    });
    url
}

#[test]
fn a_server_answering_200_without_a_valid_token_is_a_fault_and_the_cache_answers() {
    let (tmp, server) = setup();
    let a = Host::new(tmp.path().join("a"), "a", &server);
    register(&a, "a@example.com");
    let token = ok(a.run(&["token", "--product", PRODUCT]))["token"].clone();
    for body in [r#"{}"#, r#"{"license":{},"binding_id":"x","token":"not-a-token"}"#] {
        let mut liar = a.at(&hours_from_now(30));
        liar.server = lying_server(body);
        let check = ok(liar.check());
        assert_eq!(check["source"], "cache", "{body}");
        assert_eq!(ok(a.run(&["token", "--product", PRODUCT]))["token"], token, "the cached token stays");
    }
}

/// Sets the modification time of `path` (created if missing) to `rfc3339`.
fn stamp(path: &std::path::Path, rfc3339: &str) {
    let time: chrono::DateTime<chrono::Utc> = rfc3339.parse().unwrap();
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).unwrap();
    file.set_modified(time.into()).unwrap();
}

fn restore(saved: &std::path::Path, data_dir: &std::path::Path) {
    std::fs::remove_dir_all(data_dir).unwrap();
    copy_dir(saved, data_dir);
}

#[test]
fn a_cache_restored_with_the_clock_set_back_meets_the_times_of_the_systems_files() {
    let (tmp, mut server) = setup();
    let logs = tmp.path().join("var-log");
    std::fs::create_dir_all(&logs).unwrap();
    let syslog = logs.join("syslog");
    stamp(&syslog, &hours_from_now(0));
    let a = Host { evidence: Some(logs.clone()), ..Host::new(tmp.path().join("a"), "a", &server) };
    register(&a, "a@example.com");
    ok(a.check());
    // The customer saves the cache while it is fresh.
    let saved = tmp.path().join("saved");
    copy_dir(&a.data_dir, &saved);
    server.kill();

    // Ten days offline: the system keeps logging; past the week's lease the checks stop.
    stamp(&syslog, &hours_from_now(100));
    assert_eq!(ok(a.at(&hours_from_now(100)).check())["source"], "cache");
    stamp(&syslog, &hours_from_now(240));
    refused(a.at(&hours_from_now(240)).check(), 3003);

    // The saved cache put back and the clock set back to when it was fresh: the system's files
    // still show day ten, so the clock is known to be set back.
    restore(&saved, &a.data_dir);
    refused(a.at(&hours_from_now(1)).check(), 3004);
    refused(a.at(&hours_from_now(1)).check(), 3004);
    // The bound, written down in docs/agent.md: with no such evidence (or with every file's time
    // set back too), nothing local can tell, and the restored cache passes until its lease ends.
    restore(&saved, &a.data_dir);
    let blind = Host { evidence: Some(tmp.path().join("no-such-dir")), ..a.clone() };
    assert_eq!(ok(blind.at(&hours_from_now(1)).check())["source"], "cache");
}

#[test]
fn a_system_file_stamped_ahead_is_settled_by_the_server_up_to_a_day_and_named_beyond() {
    let (tmp, mut server) = setup();
    let logs = tmp.path().join("var-log");
    std::fs::create_dir_all(&logs).unwrap();
    // A clock a few hours ahead for a while left a file stamped then.
    stamp(&logs.join("wtmp"), &hours_from_now(12));
    let b = Host { evidence: Some(logs.clone()), ..Host::new(tmp.path().join("b"), "b", &server) };
    register(&b, "b@example.com");
    assert_eq!(ok(b.check())["source"], "cache");
    // The server's time was trusted with that file already there: offline, it moves nothing.
    server.kill();
    assert_eq!(ok(b.at(&hours_from_now(2)).check())["source"], "cache");
    // A file written later than that does.
    stamp(&logs.join("syslog"), &hours_from_now(20));
    refused(b.at(&hours_from_now(3)).check(), 3004);

    // A file stamped far ahead (more than a day past the server's time) is never settled: else
    // stamping one and checking once online would blind the evidence. Online checks pass;
    // offline ones fail, and the agent names the file.
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let c = Host { evidence: Some(logs.clone()), ..Host::new(tmp.path().join("c"), "c", &server) };
    stamp(&logs.join("lastlog"), &hours_from_now(24 * 365));
    register(&c, "c@example.com");
    assert_eq!(ok(c.check())["source"], "server");
    let out = c.command(&["check", "--product", PRODUCT]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("lastlog"), "{}", String::from_utf8_lossy(&out.stderr));
    drop(server);
    refused(c.check(), 3004);
}

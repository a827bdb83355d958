//! Behaviour that is about processes: seat races, SIGKILL and restart, SIGTERM, a bare
//! `serve`, and TLS.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{PRODUCT, agent, init, serve, start};
use serde_json::json;

#[test]
fn forty_hosts_racing_for_five_seats_get_exactly_five() {
    let s = start(&["--rate-limit", "0"]);
    for round in 0..10 {
        let (_, reg) = s.register(&format!("r{round}@example.com"), &format!("owner{round}"));
        let number = reg["registration_number"].as_str().unwrap().to_owned();
        let coupon = s.coupons(1, 5).remove(0);
        let (status, _) = s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
        assert_eq!(status, 200);
        // The owner holds the trial's only seat, so the 40 newcomers race for the 5 paid ones.
        let (ok, full) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for i in 0..40 {
                let (s, number, ok, full) = (&s, &number, &ok, &full);
                scope.spawn(move || match s.activate(number, &format!("r{round}-h{i}")) {
                    (200, _) => ok.fetch_add(1, Ordering::SeqCst),
                    (409, body) if body["error"]["code"] == 1051 => full.fetch_add(1, Ordering::SeqCst),
                    other => panic!("unexpected {other:?}"),
                });
            }
        });
        assert_eq!((ok.into_inner(), full.into_inner()), (5, 35), "round {round}");
        let (_, view) = s.get("/v1/account", Some(&number));
        let paid = view["licenses"].as_array().unwrap().iter().find(|l| l["kind"] == "perpetual").unwrap();
        assert_eq!(paid["seats_used"], 5);
    }
}

#[test]
fn acknowledged_registrations_survive_sigkill_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let facts = init(&dir);
    let admin = facts["admin_token"].as_str().unwrap();
    let mut acknowledged: Vec<String> = Vec::new();
    for cycle in 0..5 {
        let s = serve(&dir, admin, &["--rate-limit", "0"]);
        if cycle == 0 {
            assert_eq!(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({})).0, 200);
        }
        let got = std::sync::Mutex::new(Vec::new());
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for w in 0..8 {
                let (s, got, stop) = (&s, &got, &stop);
                scope.spawn(move || {
                    let http = agent();
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let email = format!("c{cycle}-w{w}-{i}@example.com");
                        let body = json!({"email": email, "organization": "O", "product": PRODUCT,
                                          "host": common::host(&format!("c{cycle}-w{w}-{i}"))});
                        match http.post(format!("{}/v1/register", s.url)).send_json(&body) {
                            Ok(resp) if resp.status().as_u16() == 201 => got.lock().unwrap().push(email),
                            // Killed mid-request: not acknowledged, may or may not be there.
                            _ => {}
                        }
                    }
                });
            }
            std::thread::sleep(Duration::from_millis(300 + 150 * cycle));
            s.signal(9);
            stop.store(true, Ordering::SeqCst);
        });
        drop(s);
        acknowledged.extend(got.into_inner().unwrap());
        // Restart and look every acknowledged registration up.
        let s = serve(&dir, admin, &["--rate-limit", "0"]);
        for email in &acknowledged {
            let (status, body) = s.get(&format!("/v1/admin/accounts?email={email}"), Some(admin));
            assert_eq!(status, 200, "cycle {cycle}: {email} was acknowledged but is gone: {body}");
        }
    }
    assert!(acknowledged.len() > 50, "only {} registrations were acknowledged", acknowledged.len());
}

#[test]
fn sigterm_finishes_and_exits_zero() {
    let mut s = start(&[]);
    assert_eq!(s.get("/v1/health", None).0, 200);
    s.signal(15);
    let status = s.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn bare_serve_initialises_licet_data_and_tells_the_operator() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = common::spawn_serve(&[], tmp.path());
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    std::process::Command::new("kill").args(["-15", &child.id().to_string()]).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("admin token") && err.contains("public key"), "{err}");
    assert!(tmp.path().join("licet-data/server.json").exists());
    // init refuses the initialised directory.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_licet-server"))
        .args(["init", "--data-dir"])
        .arg(tmp.path().join("licet-data"))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
}

#[test]
fn https_with_a_certificate_made_here() {
    let tmp = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let dir = tmp.path().join("data");
    let facts = init(&dir);
    let s = serve(
        &dir,
        facts["admin_token"].as_str().unwrap(),
        &["--tls-cert", cert_path.to_str().unwrap(), "--tls-key", key_path.to_str().unwrap()],
    );
    assert!(s.url.starts_with("https://127.0.0.1:"), "{}", s.url);
    let root = ureq::tls::Certificate::from_der(cert.cert.der()).to_owned();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[root])).build();
    let http: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).http_status_as_error(false).build().into();
    let mut resp = http.get(format!("{}/v1/health", s.url)).call().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.body_mut().read_to_string().unwrap(), r#"{"status":"ok"}"#);
    // Without trusting the certificate, the connection is refused.
    assert!(agent().get(format!("{}/v1/health", s.url)).call().is_err());
}

#[test]
fn an_idle_flood_does_not_keep_others_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let facts = init(&dir);
    // A host with the common limit on open files, and more idle connections than it allows,
    // none of them ever sending a byte, all held open for the whole test.
    let s = common::serve_with_open_files(&dir, facts["admin_token"].as_str().unwrap(), 256, &[]);
    let addr = s.url.trim_start_matches("http://").to_owned();
    let flood: Vec<std::net::TcpStream> = (0..300).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
    assert!(flood.len() > 256, "the flood holds {} connections", flood.len());
    // Everybody else still gets served, while the flood is held open.
    let http: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(2))).build().into();
    let started = std::time::Instant::now();
    let mut served = false;
    while started.elapsed() < Duration::from_secs(20) {
        if let Ok(mut resp) = http.get(format!("{}/v1/health", s.url)).call() {
            assert_eq!(resp.body_mut().read_to_string().unwrap(), r#"{"status":"ok"}"#);
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(served, "health never answered during an idle flood");
    // And keep-alive clients are served again and again.
    for _ in 0..20 {
        assert_eq!(s.get("/v1/health", None).0, 200);
    }
    drop(flood);
}

//! Release 0.1.0 in customers' hands, against this release (SPEC §0): the cache a 0.1.0 agent
//! left (golden fixtures), a machine a 0.1.0 agent bound, and a real 0.1.0 agent — built from
//! this repository's history, commit 03f0722 — checking against this release's server.

mod common;
#[path = "../../../tests/fixtures/support.rs"]
mod fixtures;

use fixtures::{copy_dir, facts, fixture};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{Host, PRODUCT, Server, hours_from_now, ok, refused};
use serde_json::{Value, json};

/// Release 0.1.0's commit.
const RELEASE_0_1_0: &str = "03f072266cde41153fdcfdf04f4d0912c6f1a5a6";

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A server of this release on a copy of the data directory 0.1.0 left.
fn fixture_server(tmp: &Path) -> Server {
    let facts = facts();
    let dir = tmp.join("server");
    copy_dir(&fixture("server"), &dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("signing.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // What Server::start reads for an initialised directory.
    let known = json!({"admin_token": facts["admin_token"], "public_key": facts["public_key"]});
    std::fs::write(dir.join("facts.json"), known.to_string()).unwrap();
    Server::start(&dir, "127.0.0.1:0", &[])
}

/// RFC 3339 of the fixture's time plus `hours`.
fn fixture_time(hours: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339(facts()["now"].as_str().unwrap()).unwrap();
    (base + chrono::Duration::hours(hours)).to_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn the_cache_a_0_1_0_agent_left_answers_offline() {
    let facts = facts();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("a");
    copy_dir(&fixture("agent-a"), &data);
    // Nothing listens there: every answer comes from the imported cache.
    let a = Host {
        data_dir: data,
        fingerprint: facts["fingerprints"]["a"].as_str().unwrap().to_owned(),
        server: "http://127.0.0.1:9".into(),
        key: facts["public_key"].as_str().unwrap().to_owned(),
        now: Some(fixture_time(1)),
        evidence: None,
    };
    let status = ok(a.run(&["status"]));
    let number = facts["numbers"]["a"].as_str().unwrap();
    assert_eq!(status["registration_number"], format!("MIKO-*****-*****-*****-{}", &number[number.len() - 5..]));
    let products: Vec<&str> =
        status["products"].as_array().unwrap().iter().map(|p| p["product"].as_str().unwrap()).collect();
    assert_eq!(products, ["call-journal", "recorder"]);
    let check = ok(a.check());
    assert_eq!((check["source"].as_str(), check["kind"].as_str()), (Some("cache"), Some("trial")));
    ok(a.run(&["check", "--product", "recorder"]));
    assert_eq!(ok(a.run(&["token", "--product", PRODUCT]))["token"], facts["tokens"]["a"]);
    // The clock mark came along: a clock set back before the fixture's time is caught.
    refused(a.at(&fixture_time(-3)).check(), 3004);
}

#[test]
fn a_machine_a_0_1_0_agent_bound_keeps_its_seat_after_the_upgrade() {
    let facts = facts();
    let tmp = tempfile::tempdir().unwrap();
    let server = fixture_server(tmp.path());
    // Past half the 0.1.0 token's lease, so that the upgraded agent asks the server.
    let later = fixture_time(90);
    server.set_clock(&later);
    // The upgraded program on the machine that registered with a 0.1.0 agent: the same raw
    // machine values (recorded in the fixture), now hashed the new way, and its old cache.
    let data = tmp.path().join("legacy");
    copy_dir(&fixture("agent-legacy"), &data);
    let raw: Vec<String> = facts["legacy_raw"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap().replace(',', ";")))
        .collect();
    let run_at = |now: &str, server_url: &str, args: &[&str]| {
        let host = Host {
            data_dir: data.clone(),
            fingerprint: String::new(),
            server: server_url.to_owned(),
            key: server.public_key.clone(),
            now: Some(now.to_owned()),
            evidence: None,
        };
        let out = host
            .command(args)
            .env_remove("LICET_FINGERPRINT")
            .env("LICET_RAW_FINGERPRINT", raw.join(","))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let run = |args: &[&str]| run_at(&later, &server.url, args);
    // Offline first: the token 0.1.0 cached here is for the machine as 0.1.0 hashed it, and the
    // upgraded agent still reads it.
    let offline = run_at(&fixture_time(2), "http://127.0.0.1:9", &["check", "--product", PRODUCT]);
    assert_eq!((offline["ok"].as_bool(), offline["source"].as_str()), (Some(true), Some("cache")), "{offline}");
    let fingerprint = run(&["fingerprint"]);
    assert_ne!(fingerprint["components"], facts["fingerprints"]["legacy"], "hashed the new way");
    let check = run(&["check", "--product", PRODUCT]);
    assert_eq!((check["ok"].as_bool(), check["source"].as_str()), (Some(true), Some("server")), "{check}");
    // The same (single trial) seat, moved to the new fingerprint: no second binding.
    let number = facts["numbers"]["legacy"].as_str().unwrap();
    let view = server.get("/v1/account", number);
    let bindings = view["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 1, "{view}");
    assert_eq!(bindings[0]["host"]["fingerprint"], fingerprint["components"]);
}

/// The `licet-agent` binary of release 0.1.0, built once per test run from this repository's
/// history (`git archive` of the release commit: the same tree as a worktree, without registering
/// one in `.git`), in `target/compat-0.1.0`.
fn agent_0_1_0() -> PathBuf {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(bin) = built.as_ref() {
        return bin.clone();
    }
    let top = top();
    let dir = top.join("target/compat-0.1.0");
    let src = dir.join("src");
    if !src.join("Cargo.lock").exists() {
        let known = Command::new("git").arg("-C").arg(&top).args(["cat-file", "-e", RELEASE_0_1_0]).status().unwrap();
        assert!(
            known.success(),
            "the cross-version test needs release 0.1.0's commit {RELEASE_0_1_0} in this clone's history"
        );
        std::fs::create_dir_all(&src).unwrap();
        let archive = dir.join("0.1.0.tar");
        let status = Command::new("git")
            .arg("-C")
            .arg(&top)
            .args(["archive", "--format=tar", "-o"])
            .arg(&archive)
            .arg(RELEASE_0_1_0)
            .status()
            .unwrap();
        assert!(status.success(), "git archive failed");
        let status = Command::new("tar").arg("-xf").arg(&archive).arg("-C").arg(&src).status().unwrap();
        assert!(status.success(), "unpacking release 0.1.0 failed");
    }
    let status = Command::new(env!("CARGO"))
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["build", "--quiet", "--locked", "-p", "licet-agent", "--bin", "licet-agent"])
        .status()
        .unwrap();
    assert!(status.success(), "building release 0.1.0's agent failed");
    let bin = dir.join("target/debug").join(format!("licet-agent{}", std::env::consts::EXE_SUFFIX));
    *built = Some(bin.clone());
    bin
}

/// Runs release 0.1.0's agent like [`Host::run`].
fn run_0_1_0(bin: &Path, host: &Host, args: &[&str]) -> (i32, Value) {
    let mut cmd = Command::new(bin);
    cmd.arg("--json")
        .args(args)
        .env("LICET_SERVER", &host.server)
        .env("LICET_DATA_DIR", &host.data_dir)
        .env("LICET_TRUSTED_KEYS", &host.key)
        .env_remove("LICET_NOW");
    if host.fingerprint.is_empty() {
        cmd.env_remove("LICET_FINGERPRINT");
    } else {
        cmd.env("LICET_FINGERPRINT", &host.fingerprint).env("LICET_HOSTNAME", "old-agent");
    }
    if let Some(now) = &host.now {
        cmd.env("LICET_NOW", now);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| panic!("not JSON: {text:?} / {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), value)
}

#[test]
fn agents_of_release_0_1_0_keep_working_against_this_server() {
    let old = agent_0_1_0();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let b = Host::new(tmp.path().join("b"), "b", &server);
    let run = |host: &Host, args: &[&str]| run_0_1_0(&old, host, args);

    let reg = ok(run(&a, &["register", "--email", "a@example.com", "--org", "Romashka", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    assert_eq!(ok(run(&a, &["check", "--product", PRODUCT]))["source"], "cache");
    // Past half the lease the 0.1.0 agent asks the server, and reads the token it gets.
    let later = a.at(&hours_from_now(90));
    assert_eq!(ok(run(&later, &["check", "--product", PRODUCT]))["source"], "server");
    let token = ok(run(&later, &["token", "--product", PRODUCT]))["token"].as_str().unwrap().to_owned();
    ok(run(&later, &["verify", "--token", &token, "--product", PRODUCT]));
    // The rest of the flows.
    assert_eq!(ok(run(&b, &["set-number", &number]))["licenses"][0]["kind"], "trial");
    refused(run(&b, &["check", "--product", PRODUCT]), 1051);
    refused(run(&b, &["trial", "--product", PRODUCT]), 1006);
    let coupon = server.coupon(2);
    assert_eq!(ok(run(&b, &["redeem", &coupon]))["license"]["kind"], "perpetual");
    assert_eq!(ok(run(&b, &["check", "--product", PRODUCT]))["kind"], "perpetual");
    ok(run(&b, &["deactivate", "--product", PRODUCT]));
    ok(run(&b, &["check", "--product", PRODUCT]));
    ok(run(&b, &["forget", "--release"]));
    assert_eq!(ok(run(&b, &["status"]))["registration_number"], Value::Null);
    // A reset binding is refused at the 0.1.0 agent's next refresh, as before (it reads the
    // code; without a nonce there is no proof, and 0.1.0 does not need one).
    let view = server.get("/v1/account", &number);
    let binding = view["bindings"][0]["id"].as_str().unwrap().to_owned();
    server.post(&format!("/v1/bindings/{binding}/reset"), &number, json!({}));
    // Three hosts of this release take the two perpetual seats and the trial's.
    for tag in ["c", "d", "e"] {
        let host = Host::new(tmp.path().join(tag), tag, &server);
        ok(host.run(&["set-number", &number]));
        ok(host.check());
    }
    refused(run(&a.at(&hours_from_now(95)), &["check", "--product", PRODUCT]), 1051);
    refused(run(&a, &["token", "--product", PRODUCT]), 3005);
}

#[test]
fn a_machine_bound_by_a_0_1_0_agent_keeps_its_seat_when_its_program_is_upgraded() {
    let old = agent_0_1_0();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    // This very machine, measured by each release itself (no fingerprint override), one data
    // directory: the 0.1.0 program registers and checks; then it is upgraded.
    let mut machine = Host::new(tmp.path().join("app"), "unused", &server);
    machine.fingerprint = String::new();
    let reg =
        ok(run_0_1_0(&old, &machine, &["register", "--email", "m@example.com", "--org", "O", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let upgraded = |args: &[&str]| {
        // Past half the 0.1.0 token's lease, so that the upgraded agent asks the server.
        let out = machine.at(&hours_from_now(90)).command(args).env_remove("LICET_FINGERPRINT").output().unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Before that, the token the 0.1.0 program cached answers the upgraded one from the cache.
    let cached = machine.command(&["check", "--product", PRODUCT]).env_remove("LICET_FINGERPRINT").output().unwrap();
    let cached: Value = serde_json::from_slice(&cached.stdout).unwrap();
    assert_eq!(cached["source"], "cache", "{cached}");
    let status = upgraded(&["status"]);
    assert!(status["registration_number"].as_str().unwrap().ends_with(&number[number.len() - 5..]), "{status}");
    let check = upgraded(&["check", "--product", PRODUCT]);
    assert_eq!((check["ok"].as_bool(), check["source"].as_str()), (Some(true), Some("server")), "{check}");
    let view = server.get("/v1/account", &number);
    assert_eq!(view["bindings"].as_array().unwrap().len(), 1, "the trial's single seat, kept: {view}");
    assert_eq!(view["bindings"][0]["host"]["fingerprint"], upgraded(&["fingerprint"])["components"]);
}

#[test]
fn a_0_1_0_agent_keeps_passing_against_a_product_with_features_and_grace() {
    let old = agent_0_1_0();
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let settings =
        json!({"features": ["recording", "analytics"], "grace_days": 10, "trial_days": 2, "max_resets_per_30_days": 1});
    assert_eq!(server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), settings)["grace_days"], 10);
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let run = |host: &Host, args: &[&str]| run_0_1_0(&old, host, args);
    let at = |hours: i64| {
        server.set_clock(&hours_from_now(hours));
        a.at(&hours_from_now(hours))
    };

    let reg = ok(run(&at(0), &["register", "--email", "g@example.com", "--org", "O", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    assert_eq!(ok(run(&at(0), &["check", "--product", PRODUCT]))["kind"], "trial");
    // The trial's term as sold ends after two days; the 0.1.0 agent knows no grace, and is
    // told the term ends when the grace does (two days and ten).
    let check = ok(run(&at(100), &["check", "--product", PRODUCT]));
    assert_eq!(check["source"], "server", "{check}");
    let term_end = chrono::DateTime::parse_from_rfc3339(check["expires_at"].as_str().unwrap()).unwrap();
    let sold_end = chrono::DateTime::parse_from_rfc3339(reg["license"]["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(term_end - sold_end, chrono::Duration::days(10));
    // The account view it reads carries the new fields, which it ignores.
    assert_eq!(ok(run(&at(100), &["licenses"]))["licenses"][0]["kind"], "trial");
    let view = server.get("/v1/account", &number);
    assert_eq!(view["licenses"][0]["features"], json!(["analytics", "recording"]));
    // Past the reset limit its deactivation is refused with a code it knows, saying why.
    ok(run(&at(100), &["deactivate", "--product", PRODUCT]));
    ok(run(&at(100), &["check", "--product", PRODUCT]));
    let (exit, refusal) = run(&at(100), &["deactivate", "--product", PRODUCT]);
    assert_eq!((exit, refusal["code"].as_u64()), (1, Some(1001)), "{refusal}");
    assert!(refusal["message"].as_str().unwrap().contains("1054"), "{refusal}");
    // After the grace: refused, as an expired license always was.
    refused(run(&at(24 * 13), &["check", "--product", PRODUCT]), 1052);
}

/// `licet-server keys ARGS --json --data-dir DIR`: exit status and printed object (or stderr).
fn keys(dir: &Path, args: &[&str]) -> (bool, Value) {
    let out = Command::new(common::server_binary())
        .arg("keys")
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(text.trim())
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&out.stderr).into()));
    (out.status.success(), value)
}

/// Whether `token` verifies against `public_key` alone, and the key id it names.
fn signed_by(token: &str, public_key: &str) -> Option<String> {
    let mut trusted = licet_core::TrustedKeys::new();
    trusted.add_hex(public_key).unwrap();
    trusted.verify(token).ok().map(|t| t.claims().kid.to_string())
}

#[test]
fn a_key_rotation_keeps_agents_of_the_old_key_the_new_key_and_release_0_1_0_passing() {
    let old_agent = agent_0_1_0();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("server");
    let mut server = Server::start(&dir, "127.0.0.1:0", &[]);
    let first_key = server.public_key.clone();
    // Restarted on the same address: release 0.1.0's cache belongs to its server's URL.
    let listen = format!("127.0.0.1:{}", server.port());
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let reg = ok(a.run(&["register", "--email", "a@example.com", "--org", "O", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    ok(a.run(&["redeem", &server.coupon(3)]));
    let z = Host::new(tmp.path().join("z"), "z", &server);
    ok(run_0_1_0(&old_agent, &z, &["set-number", &number]));
    ok(run_0_1_0(&old_agent, &z, &["check", "--product", PRODUCT]));

    // A rotation, the server stopped; it signs with the new key from its next start.
    server.kill();
    let (done, rotated) = keys(&dir, &["rotate"]);
    assert!(done, "{rotated}");
    let (new_kid, new_key) =
        (rotated["kid"].as_str().unwrap().to_owned(), rotated["public_key"].as_str().unwrap().to_owned());
    let mut server = Server::start(&dir, &listen, &[]);
    let listed = server.get("/v1/keys", "");
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "{listed}");
    assert_eq!((listed["keys"][1]["active"].clone(), listed["keys"][0]["active"].clone()), (json!(true), json!(false)));
    assert_eq!(listed["keys"][1]["endorsed_by"], listed["keys"][0]["kid"]);

    // An agent that trusts only the first key takes the new key's token at its next refresh: the
    // token carries the first key's endorsement of the new one.
    let a = Host { server: server.url.clone(), ..a };
    assert_eq!(ok(a.at(&hours_from_now(25)).check())["source"], "server");
    let token = ok(a.run(&["token", "--product", PRODUCT]))["token"].as_str().unwrap().to_owned();
    assert_eq!(signed_by(&token, &new_key).as_deref(), Some(new_kid.as_str()));
    assert_eq!(signed_by(&token, &first_key).as_deref(), Some(new_kid.as_str()), "through the endorsement");
    // One that trusts only the new key works as well.
    let n = Host { key: new_key.clone(), ..Host::new(tmp.path().join("n"), "n", &server) };
    ok(n.run(&["set-number", &number]));
    assert_eq!(ok(n.check())["source"], "server");
    // Release 0.1.0 agents still get 0.1.0 tokens of the oldest key, which they trust.
    let z = Host { server: server.url.clone(), ..z };
    assert_eq!(
        ok(run_0_1_0(&old_agent, &z.at(&hours_from_now(90)), &["check", "--product", PRODUCT]))["source"],
        "server"
    );
    let old_token =
        ok(run_0_1_0(&old_agent, &z, &["token", "--product", PRODUCT]))["token"].as_str().unwrap().to_owned();
    assert!(signed_by(&old_token, &first_key).is_some() && signed_by(&old_token, &new_key).is_none());

    // Retiring the first key would strand them: refused without --force, and said why.
    server.kill();
    let (done, refusal) = keys(&dir, &["retire", &first_kid(&listed)]);
    assert!(!done && refusal.as_str().unwrap().contains("0.1.0"), "{refusal}");
    let (done, retired) = keys(&dir, &["retire", &first_kid(&listed), "--force"]);
    assert!(done, "{retired}");
    let server = Server::start(&dir, &listen, &[]);
    assert_eq!(server.get("/v1/keys", "")["keys"][0]["retired"], true);
    // 0.1.0 tokens are the new key's now (what `keys retire` warned of)...
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let body = json!({"registration_number": number, "product": PRODUCT, "host": {"fingerprint": {"machine-id": "m-z", "mac": "a-z", "disk": "d-z"}, "hostname": "z", "os": "Linux"}});
    let answer: Value =
        http.post(format!("{}/v1/activate", server.url)).send_json(&body).unwrap().body_mut().read_json().unwrap();
    let legacy = answer["token"].as_str().unwrap();
    assert!(signed_by(legacy, &new_key).is_some() && signed_by(legacy, &first_key).is_none(), "{answer}");
    // ...while this release's agents that trust only the retired key keep passing.
    let a = Host { server: server.url.clone(), ..a };
    assert_eq!(ok(a.at(&hours_from_now(50)).check())["source"], "server");
}

fn first_kid(listed: &Value) -> String {
    listed["keys"][0]["kid"].as_str().unwrap().to_owned()
}

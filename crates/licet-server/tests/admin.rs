//! `licet-server admin` as a process: every subcommand against a running server, and the same
//! answers from a stopped server's data directory.

mod common;

use std::process::Command;

use common::{PRODUCT, assert_error, host, start};
use serde_json::{Value, json};

/// Runs `licet-server admin ARGS`; returns success, stdout, stderr.
fn admin(env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_licet-server"))
        .arg("admin")
        .args(args)
        .env_remove("LICET_DATA_DIR")
        .env_remove("LICET_SERVER_URL")
        .env_remove("LICET_ADMIN_TOKEN")
        .env_remove("LICET_DATABASE_URL")
        .envs(env.iter().copied())
        .env("LICET_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `admin --json ARGS` against the server; the answer's JSON.
fn json_of(env: &[(&str, &str)], args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (ok, out, err) = admin(env, &all);
    assert!(ok, "admin {args:?} failed: {err}\n{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("admin {args:?}: {e}: {out}"))
}

#[test]
fn every_admin_subcommand_against_a_running_server_and_on_a_stopped_ones_data_dir() {
    let mut s = start(&["--rate-limit", "0"]);
    let (status, reg) = s.register("a@example.com", "a");
    assert_eq!(status, 201, "{reg}");
    let env = [("LICET_SERVER_URL", s.url.as_str()), ("LICET_ADMIN_TOKEN", s.admin.as_str())];

    // Products.
    let settings = r#"{"features":["hd","stereo"],"trial_days":14}"#;
    let put = json_of(&env, &["products", "put", "recorder", "--name", "Запись разговоров", "--settings", settings]);
    assert_eq!((put["id"].as_str(), put["name"].as_str()), (Some("recorder"), Some("Запись разговоров")));
    let products = json_of(&env, &["products", "list"]);
    let ids: Vec<&str> = products["products"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [PRODUCT, "recorder"]);
    let (ok, out, _) = admin(&env, &["products", "list"]);
    assert!(ok && out.contains("recorder  Запись разговоров  trial 14 days"), "{out}");

    // Coupons: issued with kinds, listed in pages.
    let issued = json_of(
        &env,
        &["coupons", "issue", "--product", "recorder", "--count", "3", "--seats", "2", "--term-days", "365"],
    );
    assert_eq!((issued["coupons"].as_array().unwrap().len(), issued["kind"].as_str()), (3, Some("license")));
    let extend = json_of(&env, &["coupons", "issue", "--product", "recorder", "--kind", "extend", "--days", "30"]);
    assert_eq!(extend["kind"], "extend");
    let (ok, _, err) = admin(&env, &["coupons", "issue", "--product", "recorder", "--kind", "extend"]);
    assert!(!ok && err.contains("1001") && err.contains("days"), "{err}");
    let first = json_of(&env, &["coupons", "list", "--product", "recorder", "--limit", "2"]);
    assert_eq!(first["coupons"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap().to_owned();
    let rest = json_of(&env, &["coupons", "list", "--product", "recorder", "--after", &next]);
    assert_eq!(rest["coupons"].as_array().unwrap().len(), 2);
    assert!(rest["next"].is_null());
    let mut listed: Vec<Value> = first["coupons"].as_array().unwrap().clone();
    listed.extend(rest["coupons"].as_array().unwrap().iter().cloned());
    let kinds: Vec<&str> = listed.iter().map(|c| c["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "license").count(), 3);
    assert!(listed.iter().all(|c| c["redeemed"].is_null() && c["product"] == "recorder"));
    let code = issued["coupons"][0].as_str().unwrap();
    assert!(listed.iter().any(|c| c["code"] == code && c["seats"] == 2 && c["term_days"] == 365));
    let number = reg["registration_number"].as_str().unwrap();
    assert_eq!(s.post("/v1/redeem", json!({"registration_number": number, "coupon": code})).0, 200);
    let (ok, out, _) = admin(&env, &["coupons", "list", "--product", "recorder"]);
    assert!(ok && out.contains(&format!("{code}  recorder  license  redeemed by acc_")), "{out}");

    // Accounts.
    let found = json_of(&env, &["accounts", "find", "--email", "A@example.com"]);
    let account = found["id"].as_str().unwrap().to_owned();
    assert_eq!(found["registration_number"], number, "an admin sees the number in full");
    assert_eq!(json_of(&env, &["accounts", "show", &account]), found);
    let (ok, out, err) = admin(&env, &["--json", "accounts", "show", "acc_nobody"]);
    assert!(!ok && err.contains("1001"), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["error"]["code"], 1001);

    // Licenses: grant, extend, revoke.
    let granted =
        json_of(&env, &["licenses", "grant", &account, "--product", "recorder", "--seats", "2", "--term-days", "30"]);
    let license = granted["license"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (granted["license"]["kind"].as_str(), granted["license"]["seats"].as_u64()),
        (Some("subscription"), Some(2))
    );
    let ends = |l: &Value| chrono::DateTime::parse_from_rfc3339(l["license"]["expires_at"].as_str().unwrap()).unwrap();
    let extended = json_of(&env, &["licenses", "extend", &account, &license, "--days", "10"]);
    assert_eq!(ends(&extended) - ends(&granted), chrono::Duration::days(10));
    let activate = json!({"registration_number": number, "product": "recorder", "host": host("b")});
    assert_eq!(s.post("/v1/activate", activate.clone()).0, 200);

    // Bindings: listed, one freed by hand.
    let bindings = json_of(&env, &["bindings", "list", &account]);
    let bound: Vec<&Value> = bindings["bindings"].as_array().unwrap().iter().collect();
    assert_eq!(bound.len(), 2, "{bindings}");
    let a_binding = bound.iter().find(|b| b["host"]["hostname"] == "a").unwrap()["id"].as_str().unwrap().to_owned();
    let (ok, out, _) = admin(&env, &["bindings", "reset", &account, &a_binding]);
    assert!(ok && out.trim() == format!("{a_binding} freed"), "{out}");
    let left = json_of(&env, &["bindings", "list", &account]);
    assert_eq!(left["bindings"].as_array().unwrap().len(), 1);
    assert_eq!(left["bindings"][0]["host"]["hostname"], "b");

    // Revoking every recorder license frees host b's seat; b can no longer activate the product.
    for l in json_of(&env, &["accounts", "show", &account])["licenses"].as_array().unwrap() {
        if l["product"] == "recorder" {
            let revoked = json_of(&env, &["licenses", "revoke", &account, l["id"].as_str().unwrap()]);
            assert!(revoked["license"]["revoked_at"].is_string(), "{revoked}");
        }
    }
    assert!(json_of(&env, &["bindings", "list", &account])["bindings"].as_array().unwrap().is_empty());
    assert_error(s.post("/v1/activate", activate), 403, 1052);
    // An extend coupon has nothing to extend now (2008), and stays unused.
    let extend_code = extend["coupons"][0].as_str().unwrap();
    assert_error(s.post("/v1/redeem", json!({"registration_number": number, "coupon": extend_code})), 404, 2008);
    let (ok, _, err) =
        admin(&[("LICET_SERVER_URL", "http://lic.example.com"), ("LICET_ADMIN_TOKEN", "t")], &["products", "list"]);
    assert!(!ok && err.contains("only over https"), "{err}");

    // Without the token every admin route answers 401 before it reads anything of the request.
    let no_token = |method: &str, path: &str, body: &str| {
        let url = format!("{}{path}", s.url);
        let req = match method {
            "GET" => s.http.get(&url).call(),
            "PUT" => s.http.put(&url).header("Content-Type", "text/plain").send(body),
            _ => s.http.post(&url).header("Content-Type", "text/plain").send(body),
        };
        let mut resp = req.unwrap();
        let text = resp.body_mut().read_to_string().unwrap();
        (resp.status().as_u16(), text)
    };
    for (method, path) in [
        ("POST", "/v1/admin/coupons"),
        ("PUT", "/v1/admin/products/x"),
        ("GET", "/v1/admin/coupons?limit=nonsense"),
        ("GET", "/v1/admin/accounts"),
        ("POST", "/v1/admin/accounts/acc_x/licenses"),
        ("POST", "/v1/admin/accounts/acc_x/licenses/lic_x/extend"),
        ("POST", "/v1/admin/accounts/acc_x/bindings/bnd_x/reset"),
    ] {
        let (status, text) = no_token(method, path, "not json at all");
        assert!(status == 401 && text.contains("1061"), "{method} {path}: {status} {text}");
    }

    // A data directory a running server holds is refused, and nothing is written.
    let dir = s.dir.to_str().unwrap().to_owned();
    let (ok, _, err) = admin(&[("LICET_DATA_DIR", dir.as_str())], &["coupons", "issue", "--product", PRODUCT]);
    assert!(!ok && err.contains("a running server holds it"), "{err}");

    // A wrong token is refused; the subcommand fails.
    let wrong = [("LICET_SERVER_URL", s.url.as_str()), ("LICET_ADMIN_TOKEN", "not-the-token")];
    let (ok, _, err) = admin(&wrong, &["products", "list"]);
    assert!(!ok && err.contains("1061"), "{err}");

    // Stopped: the same answers from the data directory itself.
    let from_server = json_of(&env, &["accounts", "show", &account]);
    s.signal(15);
    let _ = s.child.wait();
    let here = [("LICET_DATA_DIR", dir.as_str())];
    let offline = json_of(&here, &["accounts", "show", &account]);
    assert_eq!(offline, from_server, "the same answer from the data directory");
    assert_eq!(offline["licenses"].as_array().unwrap().len(), 3);
    let more = json_of(&here, &["coupons", "issue", "--product", PRODUCT, "--count", "2"]);
    assert_eq!(more["coupons"].as_array().unwrap().len(), 2);
    assert_eq!(json_of(&here, &["coupons", "list", "--product", PRODUCT])["coupons"].as_array().unwrap().len(), 2);
    // A data directory that is not one is refused.
    let (ok, _, err) = admin(&[("LICET_DATA_DIR", "/nonexistent/licet")], &["products", "list"]);
    assert!(!ok && err.contains("not an initialised data directory"), "{err}");
}

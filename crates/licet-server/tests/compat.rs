//! A server of this release on the data directory release 0.1.0 left behind (the committed
//! golden fixture): it migrates the ledger in place and serves every account as before.

mod common;
#[path = "../../../tests/fixtures/support.rs"]
mod fixtures;

use fixtures::{copy_dir, fixture};

use std::path::{Path, PathBuf};

use common::{assert_error, serve};
use serde_json::{Value, json};

/// The fixture's data directory, copied (git keeps no file modes: the key is made 0600 again).
fn data_dir(tmp: &Path) -> (PathBuf, Value) {
    let dir = tmp.join("data");
    copy_dir(&fixture("server"), &dir);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["signing.key", "admin-token.sha256"] {
            std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let facts = fixtures::facts();
    (dir, facts)
}

fn token_version(token: &str) -> u8 {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()[0]
}

fn host(spec: &str) -> Value {
    let fingerprint: serde_json::Map<String, Value> =
        spec.split(',').map(|p| p.split_once('=').unwrap()).map(|(k, v)| (k.to_owned(), json!(v))).collect();
    json!({"fingerprint": fingerprint, "hostname": "vm", "os": "Linux"})
}

#[test]
fn the_data_directory_release_0_1_0_left_is_migrated_and_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, facts) = data_dir(tmp.path());
    let s = serve(&dir, facts["admin_token"].as_str().unwrap(), &["--dev-clock", "--rate-limit", "0"]);
    let (_, keys) = s.get("/v1/keys", None);
    assert_eq!(keys["keys"][0]["public_key"], facts["public_key"], "the same signing key");
    assert_eq!(keys["keys"][0]["kid"], facts["kid"]);
    // The admin token of 0.1.0 still works; products kept their settings and got the new ones.
    let (status, product) = s.admin_put("/v1/admin/products/recorder", json!({}));
    assert_eq!(status, 200, "{product}");
    assert_eq!((product["trial_days"].as_u64(), product["refresh_hours"].as_u64()), (Some(14), Some(24)));
    s.set_clock("2026-03-01T12:00:00Z");

    // Account a reads as it did under 0.1.0 (seats in use, hosts, times), number masked.
    let number = facts["numbers"]["a"].as_str().unwrap();
    let (status, view) = s.get("/v1/account", Some(number));
    assert_eq!(status, 200, "{view}");
    let was = &facts["account_a"];
    for field in ["organization", "email", "licenses", "bindings", "created_at", "registration_number"] {
        assert_eq!(as_0_1_0_saw(&view[field], &was[field]), was[field], "{field}");
    }
    // With what this release adds: features, grace, resets left (none set for these products).
    assert_eq!(view["licenses"][1]["features"], json!([]));
    assert_eq!(view["licenses"][0]["grace_until"], view["licenses"][0]["expires_at"]);
    // Logging in with the coupon it redeemed still works.
    assert_eq!(s.get("/v1/account", Some(facts["coupons"]["perpetual"].as_str().unwrap())).0, 200);

    // Its hosts check as before: a 0.1.0 agent (no marker) gets a 0.1.0 token, a newer one a new one.
    let check = |spec: &str, extra: Value| {
        let mut body = json!({"registration_number": number, "product": "call-journal", "host": host(spec)});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s.post("/v1/activate", body)
    };
    let (status, old) = check(facts["fingerprints"]["a"].as_str().unwrap(), json!({}));
    assert_eq!(status, 200, "{old}");
    assert_eq!(token_version(old["token"].as_str().unwrap()), 1);
    let mut trusted = licet_core::TrustedKeys::new();
    trusted.add_hex(facts["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        trusted.verify(old["token"].as_str().unwrap()).unwrap().claims().kind,
        licet_core::LicenseKind::Perpetual
    );
    let (status, new) = check(facts["fingerprints"]["b"].as_str().unwrap(), json!({"token_format": 2}));
    assert_eq!((status, token_version(new["token"].as_str().unwrap())), (200, 2));
    // Both perpetual seats are a's and b's; the trial's seat, freed when a moved, takes one more.
    assert_eq!(check("machine-id=x,mac=y,disk=z", json!({})).0, 200);
    assert_error(check("machine-id=p,mac=q,disk=r", json!({})), 409, 1051);
    // The unredeemed coupon redeems, once; account c (deactivated, subscription) is intact.
    let coupon = facts["coupons"]["unredeemed"].as_str().unwrap();
    let (status, redeemed) = s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
    assert_eq!((status, redeemed["license"]["seats"].as_u64()), (200, Some(3)));
    let c = facts["numbers"]["c"].as_str().unwrap();
    assert_error(s.post("/v1/redeem", json!({"registration_number": c, "coupon": coupon})), 409, 1005);
    let (_, c_view) = s.get("/v1/account", Some(c));
    assert_eq!(c_view["bindings"].as_array().unwrap().len(), 0);
    assert!(c_view["licenses"].as_array().unwrap().iter().any(|l| l["kind"] == "subscription"));
    // A host that registered under 0.1.0 is still refused a second account.
    let (status, body) = s.post(
        "/v1/register",
        json!({"email": "new@example.com", "organization": "O", "product": "call-journal",
               "host": host(facts["fingerprints"]["c"].as_str().unwrap())}),
    );
    assert_eq!((status, body["error"]["code"].as_u64()), (409, Some(1059)), "{body}");
    // The old outbox is untouched.
    assert_eq!(std::fs::read_dir(dir.join("outbox")).unwrap().count(), 4);
}

/// `now` as a release-0.1.0 reader sees it, given `then`, what release 0.1.0 wrote: only the
/// fields it knew, in objects and arrays of objects alike (a newer server adds fields, which
/// older readers ignore, SPEC §0).
fn as_0_1_0_saw(now: &Value, then: &Value) -> Value {
    match (now, then) {
        (Value::Object(now), Value::Object(then)) => Value::Object(
            then.keys().filter_map(|k| now.get(k).map(|v| (k.clone(), as_0_1_0_saw(v, &then[k])))).collect(),
        ),
        (Value::Array(now), Value::Array(then)) => Value::Array(
            now.iter()
                .zip(then.iter().chain(std::iter::repeat(&Value::Null)))
                .map(|(n, t)| as_0_1_0_saw(n, t))
                .collect(),
        ),
        _ => now.clone(),
    }
}

//! SPEC §10 over HTTP: product features, grace and reset limits; coupons of every kind; the
//! license objects that show them; and a 0.1.0-format token with the grace folded in.

mod common;

use common::{PRODUCT, assert_error, host, start};
use licet_core::{TokenFormat, TrustedKeys};
use serde_json::{Value, json};

fn issue(s: &common::Server, body: Value) -> String {
    let (status, answer) = s.admin_post("/v1/admin/coupons", body);
    assert_eq!(status, 201, "{answer}");
    answer["coupons"][0].as_str().unwrap().to_owned()
}

fn redeem(s: &common::Server, number: &str, coupon: &str) -> (u16, Value) {
    s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}))
}

fn keys(s: &common::Server) -> TrustedKeys {
    let (_, answer) = s.get("/v1/keys", None);
    let mut keys = TrustedKeys::new();
    keys.add_hex(answer["keys"][0]["public_key"].as_str().unwrap()).unwrap();
    keys
}

#[test]
fn products_declare_features_and_coupons_of_every_kind_change_licenses() {
    let s = start(&["--rate-limit", "0", "--dev-clock"]);
    s.set_clock("2026-03-01T10:00:00Z");
    let settings =
        json!({"features": ["recording", "analytics", "export"], "grace_days": 5, "max_resets_per_30_days": 2});
    let (status, product) = s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), settings);
    assert_eq!(status, 200, "{product}");
    assert_eq!(product["features"], json!(["analytics", "export", "recording"]));
    assert_eq!((product["grace_days"].as_u64(), product["max_resets_per_30_days"].as_u64()), (Some(5), Some(2)));
    for bad in
        [json!({"features": ["Not A Slug"]}), json!({"grace_days": 4000}), json!({"max_resets_per_30_days": 5000})]
    {
        assert_error(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), bad), 400, 1001);
    }

    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    // A trial grants everything, shows its grace and what is left of its resets.
    assert_eq!(reg["license"]["features"], json!(["analytics", "export", "recording"]));
    assert_eq!(reg["license"]["grace_until"], "2026-04-05T10:00:00Z");
    assert_eq!(reg["license"]["resets_left"], 2);

    // Bad coupon batches are refused with the field named.
    let bad = [
        json!({"product": PRODUCT, "count": 1, "features": ["teleport"]}),
        json!({"product": PRODUCT, "count": 1, "kind": "extend"}),
        json!({"product": PRODUCT, "count": 1, "kind": "extend", "days": 5, "seats": 2}),
        json!({"product": PRODUCT, "count": 1, "kind": "upgrade"}),
        json!({"product": PRODUCT, "count": 1, "kind": "seats", "features": ["export"]}),
        json!({"product": PRODUCT, "count": 1, "kind": "refund"}),
        // A typo, or a setting this release does not know, is refused rather than ignored.
        json!({"product": PRODUCT, "count": 1, "term_day": 365}),
        json!({"product": PRODUCT, "count": 1, "kind": "extend", "days": 5, "model": "floating"}),
        json!({"product": PRODUCT, "count": 1, "model": "shared"}),
    ];
    for body in bad {
        assert_error(s.admin_post("/v1/admin/coupons", body), 400, 1001);
    }

    // kind license with an edition, then seats and an upgrade of it, then an extension.
    let license =
        issue(&s, json!({"product": PRODUCT, "count": 1, "seats": 1, "term_days": 30, "features": ["recording"]}));
    let (status, r) = redeem(&s, &number, &license);
    assert_eq!(status, 200, "{r}");
    assert_eq!((&r["license"]["kind"], &r["license"]["features"]), (&json!("subscription"), &json!(["recording"])));
    let id = r["license"]["id"].clone();
    let (_, r) = redeem(&s, &number, &issue(&s, json!({"product": PRODUCT, "count": 1, "kind": "seats", "seats": 2})));
    assert_eq!((&r["license"]["id"], &r["license"]["seats"]), (&id, &json!(3)));
    let upgrade = issue(&s, json!({"product": PRODUCT, "count": 1, "kind": "upgrade", "features": ["export"]}));
    let (_, r) = redeem(&s, &number, &upgrade);
    assert_eq!(r["license"]["features"], json!(["export", "recording"]));
    // A retry of the upgrade (an answer lost on the way) changes nothing more.
    let (status, again) = redeem(&s, &number, &upgrade);
    assert_eq!((status, &again["license"]), (200, &r["license"]));
    let (status, answer) =
        s.admin_post("/v1/admin/coupons", json!({"product": PRODUCT, "count": 2, "kind": "extend", "days": 10}));
    assert_eq!((status, &answer["kind"]), (201, &json!("extend")));
    let (_, r) = redeem(&s, &number, answer["coupons"][0].as_str().unwrap());
    assert_eq!((&r["license"]["id"], &r["license"]["expires_at"]), (&id, &json!("2026-04-10T10:00:00Z")));

    // The host moves from its trial to the paid license, and the token says what it grants.
    let check = json!({"registration_number": number, "product": PRODUCT, "host": host("a"), "token_format": TokenFormat::LATEST_MARKER});
    let (status, act) = s.post("/v1/activate", check.clone());
    assert_eq!(status, 200, "{act}");
    assert_eq!(act["license"]["id"], id);
    let token = keys(&s).verify(act["token"].as_str().unwrap()).unwrap();
    assert_eq!(token.claims().features, ["export", "recording"]);
    assert!(act["token"].as_str().unwrap().len() <= 300);

    // The account view shows it all.
    let (_, account) = s.get("/v1/account", Some(&number));
    let paid = account["licenses"].as_array().unwrap().iter().find(|l| l["id"] == id).unwrap().clone();
    assert_eq!(paid["grace_until"], "2026-04-15T10:00:00Z");
    assert_eq!(paid["resets_left"], 2);

    // In the grace period checks pass; after it, 1052.
    s.set_clock("2026-04-12T10:00:00Z");
    let (status, act) = s.post("/v1/activate", check.clone());
    assert_eq!(status, 200, "{act}");
    let claims = keys(&s).verify(act["token"].as_str().unwrap()).unwrap().claims().clone();
    assert_eq!(
        claims.term_end(),
        Some(chrono::DateTime::parse_from_rfc3339("2026-04-15T10:00:00Z").unwrap().timestamp())
    );
    s.set_clock("2026-04-16T10:00:00Z");
    assert_error(s.post("/v1/activate", check), 403, 1052);
}

#[test]
fn an_upgrade_of_a_license_with_every_feature_is_used_up_and_changes_nothing() {
    let s = start(&["--rate-limit", "0"]);
    let (status, _) = s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"features": ["a", "b"]}));
    assert_eq!(status, 200);
    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let (_, full) = redeem(&s, &number, &issue(&s, json!({"product": PRODUCT, "count": 1})));
    assert_eq!(full["license"]["features"], json!(["a", "b"]));
    let upgrade = issue(&s, json!({"product": PRODUCT, "count": 1, "kind": "upgrade", "features": ["b"]}));
    let (status, r) = redeem(&s, &number, &upgrade);
    assert_eq!((status, &r["license"]), (200, &full["license"]));
    // Used up all the same: another account cannot have it.
    let (_, other) = s.register("b@example.com", "b");
    assert_error(redeem(&s, other["registration_number"].as_str().unwrap(), &upgrade), 409, 1005);
}

#[test]
fn a_reset_limit_counts_deactivations_and_portal_resets_and_answers_1054() {
    let s = start(&["--rate-limit", "0", "--dev-clock"]);
    s.set_clock("2026-03-01T10:00:00Z");
    let (status, _) =
        s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"max_resets_per_30_days": 1, "trial_seats": 2}));
    assert_eq!(status, 200);
    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let deactivate = |tag: &str, marker: Option<u8>| {
        let mut body = json!({"registration_number": number, "product": PRODUCT, "host": host(tag)});
        if let Some(marker) = marker {
            body["token_format"] = json!(marker);
        }
        s.post("/v1/deactivate", body)
    };
    let newer = Some(TokenFormat::LATEST_MARKER);
    assert_eq!(deactivate("a", newer).0, 200);
    let (_, account) = s.get("/v1/account", Some(&number));
    assert_eq!(account["licenses"][0]["resets_left"], 0);
    let (_, b) = s.activate(&number, "b");
    assert_error(deactivate("b", newer), 409, 1054);
    // A release-0.1.0 agent (no marker) does not know 1054: it is told with 1001, and why.
    let (status, old) = deactivate("b", None);
    assert_eq!((status, old["error"]["code"].as_u64()), (409, Some(1001)), "{old}");
    assert!(old["error"]["message"].as_str().unwrap().contains("1054"), "{old}");
    let binding = b["binding_id"].as_str().unwrap();
    assert_error(s.post_bearer(&format!("/v1/bindings/{binding}/reset"), &number, json!({})), 409, 1054);
    // Thirty days on, one more is allowed.
    s.set_clock("2026-03-31T10:00:01Z");
    assert_eq!(s.post_bearer(&format!("/v1/bindings/{binding}/reset"), &number, json!({})).0, 200);
}

//! Every endpoint of SPEC §5 and every code it can return, over real HTTP to a real process.

mod common;

use common::{PRODUCT, assert_error, host, start};
use serde_json::json;

#[test]
fn register_activate_trial_redeem_deactivate_recover() {
    let s = start(&["--rate-limit", "0", "--dev-clock"]);
    let (status, reg) = s.register("Boss@Example.com", "a");
    assert_eq!(status, 201, "{reg}");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    assert!(number.starts_with("LICET-") && number.len() == 29, "{number}");
    assert_eq!(reg["license"]["kind"], "trial");
    assert_eq!(reg["license"]["seats"], 1);
    assert_eq!(reg["license"]["seats_used"], 1);
    assert!(reg["license"]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(reg["binding_id"].as_str().unwrap().starts_with("bnd_"));
    assert!(reg["token"].as_str().unwrap().len() <= 300);

    // The registration e-mail reaches the outbox with the number in it (the postman delivers
    // it right after the commit).
    let mut found = false;
    for _ in 0..500 {
        let mails: Vec<_> = std::fs::read_dir(s.dir.join("outbox")).into_iter().flatten().flatten().collect();
        if let Some(m) = mails.iter().find(|m| m.path().extension().is_some_and(|e| e == "eml")) {
            let raw = std::fs::read(m.path()).unwrap();
            let mail = mail_parser::MessageParser::default().parse(&raw).unwrap();
            assert_eq!(mail.to().and_then(|to| to.first()).and_then(|a| a.address()), Some("Boss@Example.com"));
            assert!(mail.body_text(0).unwrap().contains(&number));
            found = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(found, "no .eml in the outbox");

    // Activate refreshes the same binding.
    let (status, act) = s.activate(&number, "a");
    assert_eq!(status, 200, "{act}");
    assert_eq!(act["binding_id"], reg["binding_id"]);

    // A trial of another product: 201 once, then 1006.
    s.admin_put("/v1/admin/products/recorder", json!({"trial_seats": 2}));
    let trial = json!({"registration_number": number, "product": "recorder", "host": host("a")});
    let (status, t) = s.post("/v1/trial", trial.clone());
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["license"]["product"], "recorder");
    assert_eq!(t["license"]["seats"], 2);
    assert_error(s.post("/v1/trial", trial), 409, 1006);

    // Redeem: 200, retry-safe.
    let coupon = s.coupons(1, 3).remove(0);
    let (status, r) = s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["license"]["kind"], "perpetual");
    let (status, again) = s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
    assert_eq!((status, &again["license"]["id"]), (200, &r["license"]["id"]));

    // Deactivate frees the seat; a second deactivate finds nothing.
    let deact = json!({"registration_number": number, "product": PRODUCT, "host": host("a")});
    let (status, body) = s.post("/v1/deactivate", deact.clone());
    assert_eq!((status, body), (200, json!({})));
    assert_error(s.post("/v1/deactivate", deact), 404, 1053);

    // Recover: 202 for known and unknown e-mails alike; the mail follows the answer.
    let mails = || {
        std::fs::read_dir(s.dir.join("outbox"))
            .unwrap()
            .flatten()
            .filter(|m| m.path().extension().is_some_and(|e| e == "eml"))
            .count()
    };
    let before = mails();
    let (status, body) = s.post("/v1/recover", json!({"email": "nobody@example.com"}));
    assert_eq!((status, body), (202, json!({})));
    let (status, body) = s.post("/v1/recover", json!({"email": "boss@example.com"}));
    assert_eq!((status, body), (202, json!({})));
    let waited = std::time::Instant::now();
    while mails() == before && waited.elapsed() < std::time::Duration::from_secs(10) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(1_500));
    assert_eq!(mails(), before + 1, "one recovery mail, for the known e-mail");
    assert_error(s.post("/v1/recover", json!({"email": "nonsense"})), 400, 1001);
}

#[test]
fn account_view_reset_keys_health_and_admin_lookup() {
    let s = start(&["--rate-limit", "0"]);
    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let (status, view) = s.get("/v1/account", Some(&number));
    assert_eq!(status, 200, "{view}");
    let masked = view["registration_number"].as_str().unwrap();
    assert!(masked.starts_with("LICET-*****-*****-*****-") && masked.ends_with(&number[number.len() - 5..]));
    assert_eq!(view["organization"], "Org");
    assert_eq!(view["licenses"][0]["seats_used"], 1);
    let b = &view["bindings"][0];
    assert_eq!(b["host"]["hostname"], "a");
    assert_eq!(b["host"]["fingerprint"]["mac"], "a-a");
    assert!(b["bound_at"].is_string() && b["last_seen"].is_string());

    // Log in with a redeemed coupon too.
    let coupon = s.coupons(1, 1).remove(0);
    assert_error(s.get("/v1/account", Some(&coupon)), 401, 1061);
    s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
    let (status, by_coupon) = s.get("/v1/account", Some(&coupon));
    assert_eq!((status, &by_coupon["email"]), (200, &view["email"]));

    // Reset: another account's binding is not found; ours frees the seat.
    let (_, other) = s.register("b@example.com", "b");
    let theirs = other["binding_id"].as_str().unwrap();
    assert_error(s.post_bearer(&format!("/v1/bindings/{theirs}/reset"), &number, json!({})), 404, 1053);
    let ours = b["id"].as_str().unwrap();
    assert_error(s.post_bearer(&format!("/v1/bindings/{ours}/reset"), "wrong", json!({})), 401, 1061);
    let (status, body) = s.post_bearer(&format!("/v1/bindings/{ours}/reset"), &number, json!({}));
    assert_eq!((status, body), (200, json!({})));
    let (_, view) = s.get("/v1/account", Some(&number));
    assert_eq!(view["bindings"].as_array().unwrap().len(), 0);
    assert_error(s.get("/v1/account", None), 401, 1061);

    let (status, keys) = s.get("/v1/keys", None);
    assert_eq!(status, 200);
    let key = &keys["keys"][0];
    assert_eq!(key["public_key"].as_str().unwrap().len(), 64);
    assert_eq!(key["kid"].as_str().unwrap().len(), 16);
    assert_eq!(key["active"], true);
    assert_eq!(s.get("/v1/health", None), (200, json!({"status": "ok"})));

    let (status, admin_view) = s.get("/v1/admin/accounts?email=A@EXAMPLE.COM", Some(&s.admin));
    assert_eq!(status, 200);
    assert_eq!(admin_view["registration_number"], number.as_str());
    assert_error(s.get("/v1/admin/accounts?email=a@example.com", Some("lat_wrong")), 401, 1061);
    assert_error(s.get("/v1/admin/accounts?email=zzz@example.com", Some(&s.admin)), 404, 1001);
    assert_error(s.get("/v1/admin/accounts", Some(&s.admin)), 400, 1001);
}

#[test]
fn admin_products_and_coupons() {
    let s = start(&["--rate-limit", "0"]);
    let (status, p) = s.admin_put("/v1/admin/products/recorder", json!({"name": "Recorder", "trial_days": 14}));
    assert_eq!(status, 200);
    assert_eq!(
        p,
        json!({"id": "recorder", "name": "Recorder", "trial_days": 14, "trial_seats": 1,
        "offline_lease_hours": 168, "clock_tolerance_minutes": 60, "refresh_hours": 24,
        "features": [], "grace_days": 0, "max_resets_per_30_days": 0, "session_lease_seconds": 900,
        "max_borrow_hours": 0, "offline_activation_days": 30})
    );
    let (_, p) = s.admin_put("/v1/admin/products/recorder", json!({"trial_seats": 3}));
    assert_eq!((p["trial_days"].as_u64(), p["trial_seats"].as_u64()), (Some(14), Some(3)));
    assert_error(s.admin_put("/v1/admin/products/recorder", json!({"trial_days": 0})), 400, 1001);
    assert_error(s.admin_put("/v1/admin/products/Bad%20Id", json!({})), 400, 1001);
    assert_error(s.admin_put("/v1/admin/products/recorder", json!({"trial_days": "x"})), 400, 1001);

    let (status, body) =
        s.admin_post("/v1/admin/coupons", json!({"product": "recorder", "count": 5, "seats": 2, "term_days": 365}));
    assert_eq!(status, 201);
    let coupons = body["coupons"].as_array().unwrap();
    assert_eq!(coupons.len(), 5);
    assert!(coupons.iter().all(|c| c.as_str().unwrap().starts_with("LICETUPD-")));
    assert_error(s.admin_post("/v1/admin/coupons", json!({"product": "recorder", "count": 0})), 400, 1001);
    assert_error(s.admin_post("/v1/admin/coupons", json!({"product": "recorder", "count": 10001})), 400, 1001);
    assert_error(s.admin_post("/v1/admin/coupons", json!({"product": "nope", "count": 1})), 404, 1007);
    assert_error(s.post("/v1/admin/coupons", json!({"product": "recorder", "count": 1})), 401, 1061);
    // The dev clock does not exist without --dev-clock.
    let (status, _) = s.admin_post("/v1/admin/clock", json!({"now": "2030-01-01T00:00:00Z"}));
    assert_eq!(status, 404);
}

#[test]
fn every_refusal_has_its_code() {
    let s = start(&["--rate-limit", "0", "--dev-clock"]);
    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap().to_owned();

    assert_error(s.register("A@example.com", "b"), 409, 1058);
    assert_error(s.register("b@example.com", "a"), 409, 1059);
    assert_error(
        s.post(
            "/v1/register",
            json!({"email": "c@example.com", "organization": "O", "product": "nope", "host": host("c")}),
        ),
        404,
        1007,
    );
    // A typo in the number (1002 without a lookup) and an unknown one (1002 after).
    let mut typo = number.clone().into_bytes();
    typo[7] = if typo[7] == b'2' { b'3' } else { b'2' };
    assert_error(s.activate(std::str::from_utf8(&typo).unwrap(), "a"), 400, 1002);
    assert_error(s.activate("LICET-00000-00000-00000-00000", "a"), 400, 1002);
    // A second host on a one-seat trial.
    assert_error(s.activate(&number, "b"), 409, 1051);
    // Another product with no license.
    s.admin_put("/v1/admin/products/recorder", json!({}));
    assert_error(
        s.post("/v1/activate", json!({"registration_number": number, "product": "recorder", "host": host("a")})),
        404,
        2008,
    );
    assert_error(
        s.post("/v1/activate", json!({"registration_number": number, "product": "nope", "host": host("a")})),
        404,
        1007,
    );
    // Coupons.
    let coupon = s.coupons(1, 1).remove(0);
    assert_error(s.post("/v1/redeem", json!({"coupon": coupon})), 400, 1003);
    assert_error(s.post("/v1/redeem", json!({"registration_number": "", "coupon": coupon})), 400, 1003);
    assert_error(
        s.post("/v1/redeem", json!({"registration_number": number, "coupon": "LICETUPD-00000-00000-00000-00000"})),
        400,
        1004,
    );
    let (_, other) = s.register("b@example.com", "b");
    let other_number = other["registration_number"].as_str().unwrap();
    s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
    assert_error(s.post("/v1/redeem", json!({"registration_number": other_number, "coupon": coupon})), 409, 1005);
    // Time passes: the trial of b@ expires.
    s.set_clock("2099-01-01T00:00:00Z");
    assert_error(s.activate(other_number, "b"), 403, 1052);
}

#[test]
fn malformed_requests_are_1001_never_500() {
    let s = start(&["--rate-limit", "0"]);
    for body in [&b"{bad"[..], b"", b"null", b"[]", b"{\"email\": 5}", b"\xff\xfe{}", b"{\"email\":\"a@b.c\"}"] {
        assert_error(s.post_raw("/v1/register", body), 400, 1001);
    }
    let too_big = format!("{{\"email\":\"{}\"}}", "x".repeat(70 * 1024));
    assert_error(s.post_raw("/v1/register", too_big.as_bytes()), 413, 1001);
    let reg = |host: serde_json::Value| json!({"email": "a@example.com", "organization": "O", "product": PRODUCT, "host": host});
    assert_error(s.post("/v1/register", reg(json!({"fingerprint": {}}))), 400, 1001);
    let many: serde_json::Map<String, serde_json::Value> = (0..17).map(|i| (format!("c{i}"), json!("v"))).collect();
    assert_error(s.post("/v1/register", reg(json!({"fingerprint": many}))), 400, 1001);
    assert_error(s.post("/v1/register", reg(json!({"fingerprint": {"a": "x".repeat(257)}}))), 400, 1001);
    assert_error(s.post("/v1/register", reg(json!({"fingerprint": {"a": 1}}))), 400, 1001);
    assert_error(
        s.post(
            "/v1/register",
            json!({"email": "not-an-email", "organization": "O", "product": PRODUCT, "host": host("z")}),
        ),
        400,
        1001,
    );
    assert_error(
        s.post(
            "/v1/register",
            json!({"email": "a@example.com", "organization": "", "product": PRODUCT, "host": host("z")}),
        ),
        400,
        1001,
    );
    assert_error(
        s.post("/v1/activate", json!({"registration_number": 12, "product": PRODUCT, "host": host("z")})),
        400,
        1001,
    );
    let (status, body) = s.get("/v1/nothing-here", None);
    assert_eq!((status, &body["error"]["code"]), (404, &json!(1001)));
    // Unknown fields are ignored.
    let (status, _) = s.post(
        "/v1/register",
        json!({"email": "ok@example.com", "organization": "O", "product": PRODUCT, "host": host("ok"), "extra": true}),
    );
    assert_eq!(status, 201);
}

#[test]
fn failed_credentials_registrations_and_recoveries_are_rate_limited_but_checks_never() {
    let s = start(&["--rate-limit", "3"]);
    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    // Two more registration attempts use up the minute (successful or not).
    s.register("b@example.com", "b");
    s.register("a@example.com", "c");
    let (status, body) = s.register("d@example.com", "d");
    assert_error((status, body), 429, 1062);
    let resp = s.http.post(format!("{}/v1/recover", s.url)).send_json(json!({"email": "a@example.com"})).unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers().get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Successful checks are never limited.
    for _ in 0..10 {
        assert_eq!(s.activate(&number, "a").0, 200);
    }
    // Failed credentials are: this IP is over its minute, so they get 429.
    assert_error(s.activate("LICET-00000-00000-00000-00000", "a"), 429, 1062);
    assert_error(s.get("/v1/account", Some("nonsense")), 429, 1062);
    // Other commands that take a credential are refused before they run, even with a good
    // one, so guessing gets no answer; license checks still pass.
    assert_error(s.get("/v1/account", Some(&number)), 429, 1062);
    assert_eq!(s.activate(&number, "a").0, 200);
}

#[test]
fn malformed_paths_and_methods_keep_the_error_shape() {
    let s = start(&["--rate-limit", "0"]);
    let (_, reg) = s.register("a@example.com", "a");
    let number = reg["registration_number"].as_str().unwrap();
    let (status, body) = s.post_bearer("/v1/bindings/%FF%FE/reset", number, json!({}));
    assert!(status == 400 || status == 404, "{status} {body}");
    assert!(body["error"]["code"].is_u64(), "{body}");
    let (status, body) = s.get("/v1/register", None);
    assert_eq!((status, &body["error"]["code"]), (405, &json!(1001)));
}

/// The version byte of a token's text form.
fn token_version(token: &str) -> u8 {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()[0]
}

#[test]
fn tokens_come_in_the_format_the_agent_reads_and_definitive_refusals_are_signed() {
    let s = start(&["--rate-limit", "0"]);
    let (_, reg) = s.register("a@example.com", "a");
    assert_eq!(token_version(reg["token"].as_str().unwrap()), 1, "no marker: release 0.1.0's format");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let check = |tag: &str, extra: serde_json::Value| {
        let mut body = json!({"registration_number": number, "product": PRODUCT, "host": host(tag)});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        s.post("/v1/activate", body)
    };
    let (status, old) = check("a", json!({}));
    assert_eq!((status, token_version(old["token"].as_str().unwrap())), (200, 1));
    let (status, new) = check("a", json!({"token_format": 2}));
    assert_eq!((status, token_version(new["token"].as_str().unwrap())), (200, 2));

    // The single trial seat is taken: a refusal with the request's nonce carries the proof.
    let (_, keys) = s.get("/v1/keys", None);
    let mut trusted = licet_core::TrustedKeys::new();
    trusted.add_hex(keys["keys"][0]["public_key"].as_str().unwrap()).unwrap();
    let nonce = [0x5au8; 16];
    let refused = check("b", json!({"token_format": 2, "nonce": hex::encode(nonce)}));
    assert_error(refused.clone(), 409, 1051);
    let proof = refused.1["error"]["proof"].as_str().expect("a signed refusal").to_owned();
    let digest = licet_wire::HostJson {
        fingerprint: serde_json::from_value(host("b")["fingerprint"].clone()).unwrap(),
        ..Default::default()
    }
    .to_host()
    .unwrap()
    .fingerprint
    .digest();
    let code = licet_core::Code::NoFreeLicense;
    trusted.verify_refusal(&proof, code, PRODUCT, &digest, &number, &nonce).unwrap();
    assert!(trusted.verify_refusal(&proof, code, PRODUCT, &digest, &number, &[0; 16]).is_err());
    assert!(trusted.verify_refusal(&proof, code, PRODUCT, &digest, "LICET-00000-00000-00000-00000", &nonce).is_err());
    // A granted check with a nonce names it in its token, so the agent knows the answer is fresh.
    let (_, fresh) = check("a", json!({"token_format": 2, "nonce": hex::encode(nonce)}));
    let verified = trusted.verify(fresh["token"].as_str().unwrap()).unwrap();
    assert_eq!(verified.claims().nonce, Some(nonce));
    // Without a nonce there is nothing to bind a proof to; a code that is not definitive has none.
    assert!(check("b", json!({"token_format": 2})).1["error"].get("proof").is_none());
    let unknown = json!({"registration_number": number, "product": "no-such", "host": host("b"),
                         "nonce": hex::encode(nonce)});
    let (status, body) = s.post("/v1/activate", unknown);
    assert_eq!((status, body["error"]["code"].as_u64()), (404, Some(1007)));
    assert!(body["error"].get("proof").is_none());
    // A malformed nonce is a malformed request.
    assert_error(check("b", json!({"nonce": "zz"})), 400, 1001);
}

#[test]
fn a_host_known_by_its_0_1_0_fingerprint_keeps_its_binding() {
    let s = start(&["--rate-limit", "0"]);
    // Registered by a 0.1.0 agent, whose components hashed to these values.
    let (_, reg) = s.register("a@example.com", "old");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let mut upgraded = host("new");
    upgraded["legacy_fingerprint"] = host("old")["fingerprint"].clone();
    let body = json!({"registration_number": number, "product": PRODUCT, "host": upgraded});
    let (status, act) = s.post("/v1/activate", body);
    assert_eq!(status, 200, "{act}");
    assert_eq!(act["binding_id"], reg["binding_id"], "the same seat, not a second one");
    let (_, view) = s.get("/v1/account", Some(&number));
    assert_eq!(view["bindings"].as_array().unwrap().len(), 1);
    assert_eq!(view["bindings"][0]["host"]["fingerprint"], host("new")["fingerprint"]);
    // From now on the new fingerprint alone is the host.
    let (status, again) = s.activate(&number, "new");
    assert_eq!((status, &again["binding_id"]), (200, &reg["binding_id"]));
    // A malformed legacy fingerprint is a malformed request.
    let mut bad = host("new");
    bad["legacy_fingerprint"] = json!({});
    assert_error(
        s.post("/v1/activate", json!({"registration_number": number, "product": PRODUCT, "host": bad})),
        400,
        1001,
    );
}

#[test]
fn a_json_endpoint_refuses_a_body_that_is_not_declared_json() {
    // A web page can post text/plain (or a form) cross-site without a preflight; a licet client
    // always says application/json, so nothing else is accepted.
    let s = start(&["--rate-limit", "0"]);
    let body =
        json!({"email": "a@example.com", "organization": "O", "product": PRODUCT, "host": host("a")}).to_string();
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""] {
        let mut req = s.http.post(format!("{}/v1/register", s.url));
        if !content_type.is_empty() {
            req = req.header("Content-Type", content_type);
        }
        let resp = req.send(body.as_bytes()).unwrap();
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap();
        assert_eq!(status, 415, "{content_type}: {text}");
        assert!(text.contains("1001"), "{text}");
    }
    // Nothing was registered: the e-mail is still free.
    for content_type in ["application/json", "application/json; charset=utf-8"] {
        let resp = s
            .http
            .post(format!("{}/v1/recover", s.url))
            .header("Content-Type", content_type)
            .send(br#"{"email":"a@example.com"}"#.as_slice())
            .unwrap();
        assert_eq!(resp.status().as_u16(), 202, "{content_type}");
    }
    assert_eq!(s.register("a@example.com", "a").0, 201);
}

#[test]
fn one_address_in_any_unicode_form_is_one_account_and_header_syntax_is_refused() {
    let s = start(&["--rate-limit", "0"]);
    assert_eq!(s.register("a\u{301}lvaro@example.com", "nfd").0, 201);
    assert_error(s.register("álvaro@example.com", "nfc"), 409, 1058);
    assert_error(s.register("ÁLVARO@EXAMPLE.COM", "upper"), 409, 1058);
    assert_error(s.register("\u{200b}álvaro@example.com", "zero-width"), 400, 1001);
    assert_error(s.register("álva\u{ad}ro@example.com", "soft-hyphen"), 400, 1001);
    for header_syntax in ["a,b@example.com", "a<b@example.com", "a>b@example.com", "\"ab\"@example.com"] {
        assert_error(s.register(header_syntax, header_syntax), 400, 1001);
    }
    // Stored composed, and found by the admin under any form.
    let (status, account) = s.get("/v1/admin/accounts?email=a%CC%81lvaro%40example.com", Some(&s.admin));
    assert_eq!(status, 200, "{account}");
    assert_eq!(account["email"], "álvaro@example.com");
    assert_eq!(s.register("иван@пример.рф", "cyrillic").0, 201);
}

#[test]
fn the_openapi_document_describes_routes_the_server_has() {
    let s = start(&["--rate-limit", "0"]);
    let (status, doc) = s.get("/v1/openapi.json", None);
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for documented in
        ["/v1/register", "/v1/sessions/{id}/heartbeat", "/v1/admin/accounts/{id}/licenses/{license}/revoke"]
    {
        assert!(paths.contains_key(documented), "{documented} is not in the document");
    }
    assert!(!paths.contains_key("/v1/admin/clock"), "the test-only clock is not part of the API");
    // Every documented operation is routed: the router's own 404 and 405 never answer it.
    let mut operations = 0;
    for (path, methods) in paths {
        let concrete = path.replace("{id}", "x").replace("{license}", "x").replace("{binding}", "x");
        for method in methods.as_object().unwrap().keys() {
            let url = format!("{}{concrete}", s.url);
            let req = ureq::http::Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&url)
                .header("Content-Type", "application/json")
                .body(b"{}".to_vec())
                .unwrap();
            let mut resp = s.http.run(req).unwrap();
            let status = resp.status().as_u16();
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            assert!(status != 405 && !text.contains("no such endpoint"), "{method} {path}: {status} {text}");
            assert!(status < 500, "{method} {path}: {status} {text}");
            operations += 1;
        }
    }
    assert!(operations >= 25, "{operations} operations");
}

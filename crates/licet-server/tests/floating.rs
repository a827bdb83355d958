//! SPEC §11 over HTTP: floating licenses used through `/v1/sessions` — checkout, heartbeat,
//! release, leases that end on the server's clock, borrowing, the account's session list — and
//! the refusals, each with its code.

mod common;

use common::{PRODUCT, assert_error, host, start};
use licet_core::{Code, TrustedKeys};
use serde_json::{Value, json};

const NONCE: &str = "000102030405060708090a0b0c0d0e0f";

fn keys(s: &common::Server) -> TrustedKeys {
    let (_, answer) = s.get("/v1/keys", None);
    let mut keys = TrustedKeys::new();
    keys.add_hex(answer["keys"][0]["public_key"].as_str().unwrap()).unwrap();
    keys
}

fn checkout(s: &common::Server, number: &str, tag: &str, extra: Value) -> (u16, Value) {
    let mut body =
        json!({"registration_number": number, "product": PRODUCT, "host": host(tag), "user": format!("user-{tag}")});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    s.post("/v1/sessions", body)
}

/// A server on a dev clock whose product's sessions live 60 s and may be borrowed 48 h, and an
/// account holding a floating license of two seats (and its registration's host trial).
fn floating_server() -> (common::Server, String) {
    let s = start(&["--rate-limit", "0", "--dev-clock"]);
    s.set_clock("2026-03-01T10:00:00Z");
    let settings = json!({"session_lease_seconds": 60, "max_borrow_hours": 48});
    let (status, product) = s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), settings);
    assert_eq!(status, 200, "{product}");
    assert_eq!((product["session_lease_seconds"].as_u64(), product["max_borrow_hours"].as_u64()), (Some(60), Some(48)));
    let (_, reg) = s.register("a@example.com", "registrar");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let (status, coupons) =
        s.admin_post("/v1/admin/coupons", json!({"product": PRODUCT, "count": 1, "seats": 2, "model": "floating"}));
    assert_eq!(status, 201, "{coupons}");
    let (status, r) =
        s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupons["coupons"][0].as_str().unwrap()}));
    assert_eq!(status, 200, "{r}");
    assert_eq!((&r["license"]["model"], &r["license"]["sessions_live"]), (&json!("floating"), &json!(0)));
    (s, number)
}

#[test]
fn three_hosts_on_two_seats_heartbeats_releases_and_a_lease_that_ends_on_the_servers_clock() {
    let (s, number) = floating_server();
    let (status, a) = checkout(&s, &number, "a", json!({}));
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["lease_until"], "2026-03-01T10:01:00Z");
    assert!(a["session_id"].as_str().unwrap().starts_with("ses_"));
    let (status, b) = checkout(&s, &number, "b", json!({}));
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["license"]["sessions_live"], 2);
    // The third is refused, with a proof the agent can check when it sent a nonce.
    let (status, c) = checkout(&s, &number, "c", json!({"nonce": NONCE, "token_format": 2}));
    assert_error((status, c.clone()), 409, 1051);
    let mut nonce = [0u8; 16];
    hex::decode_to_slice(NONCE, &mut nonce).unwrap();
    let digest = licet_core::Host::new(
        licet_core::Fingerprint::new([("machine-id", "m-c"), ("mac", "a-c"), ("disk", "d-c")]).unwrap(),
        "c",
        "Linux",
    )
    .unwrap()
    .fingerprint
    .digest();
    keys(&s)
        .verify_refusal(c["error"]["proof"].as_str().unwrap(), Code::NoFreeLicense, PRODUCT, &digest, &number, &nonce)
        .unwrap();

    // The token is the session's: valid on its host until the lease, naming the session.
    let token = a["token"].as_str().unwrap();
    let verified = keys(&s).verify(token).unwrap();
    assert_eq!(verified.claims().session.as_deref(), a["session_id"].as_str());

    // The account lists both sessions, with host and user.
    let (_, account) = s.get("/v1/account", Some(&number));
    let sessions = account["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{account}");
    assert_eq!((&sessions[0]["host"]["hostname"], &sessions[0]["user"]), (&json!("a"), &json!("user-a")));
    assert_eq!(sessions[0]["borrowed"], false);

    // `a` heartbeats (no body needed), `b` falls silent; after the lease `b`'s seat is `c`'s.
    s.set_clock("2026-03-01T10:00:50Z");
    let a_id = a["session_id"].as_str().unwrap();
    let (status, beat) = s.post_empty(&format!("/v1/sessions/{a_id}/heartbeat"), &number);
    assert_eq!(status, 200, "{beat}");
    assert_eq!(beat["lease_until"], "2026-03-01T10:01:50Z");
    // An empty body declared as form data (what `curl -d ''` and many HTTP libraries send) too.
    let formish = common::agent()
        .post(format!("{}/v1/sessions/{a_id}/heartbeat", s.url))
        .header("Authorization", format!("Bearer {number}"))
        .content_type("application/x-www-form-urlencoded")
        .send(&b""[..])
        .unwrap();
    assert_eq!(formish.status().as_u16(), 200);
    s.set_clock("2026-03-01T10:01:00Z");
    let (status, c) = checkout(&s, &number, "c", json!({}));
    assert_eq!(status, 201, "{c}");
    let b_id = b["session_id"].as_str().unwrap();
    assert_error(s.post_bearer(&format!("/v1/sessions/{b_id}/heartbeat"), &number, json!({})), 404, 1055);
    let (_, account) = s.get("/v1/account", Some(&number));
    assert_eq!(account["sessions"].as_array().unwrap().len(), 2);
    let floating = account["licenses"].as_array().unwrap().iter().find(|l| l["model"] == "floating").unwrap();
    assert_eq!((&floating["seats_used"], &floating["sessions_live"]), (&json!(2), &json!(2)));

    // A release frees the seat at once; releasing again, or someone else's session, is 1055.
    let (status, body) = s.delete_bearer(&format!("/v1/sessions/{a_id}"), &number);
    assert_eq!((status, body), (200, json!({})));
    assert_error(s.delete_bearer(&format!("/v1/sessions/{a_id}"), &number), 404, 1055);
    let (status, _) = checkout(&s, &number, "b", json!({}));
    assert_eq!(status, 201);
    let (_, other) = s.register("b@example.com", "other");
    let other_number = other["registration_number"].as_str().unwrap();
    let c_id = c["session_id"].as_str().unwrap();
    assert_error(s.delete_bearer(&format!("/v1/sessions/{c_id}"), other_number), 404, 1055);
    assert_error(s.delete_bearer(&format!("/v1/sessions/{c_id}"), "nonsense"), 401, 1061);
}

#[test]
fn borrowing_holds_the_seat_and_host_licenses_stay_with_activate() {
    let (s, number) = floating_server();
    assert_error(checkout(&s, &number, "a", json!({"borrow_hours": 49})), 400, 1001);
    let (status, a) = checkout(&s, &number, "a", json!({"borrow_hours": 24}));
    assert_eq!(status, 201, "{a}");
    assert_eq!(a["lease_until"], "2026-03-02T10:00:00Z");
    // Silent for a day less a minute: still held.
    s.set_clock("2026-03-02T09:59:00Z");
    let (_, account) = s.get("/v1/account", Some(&number));
    assert_eq!(account["sessions"][0]["borrowed"], true);
    // The floating license is never bound by /v1/activate: a host of the account binds only the
    // trial (its one seat is the registering host's).
    assert_error(s.activate(&number, "z"), 409, 1051);
    // An account with host licenses only has no sessions.
    let (_, other) = s.register("b@example.com", "other");
    assert_error(checkout(&s, other["registration_number"].as_str().unwrap(), "x", json!({})), 404, 2008);
}

#[test]
fn malformed_session_requests_are_refused_with_their_codes() {
    let (s, number) = floating_server();
    let missing_host = json!({"registration_number": number, "product": PRODUCT});
    assert_error(s.post("/v1/sessions", missing_host), 400, 1001);
    assert_error(checkout(&s, &number, "a", json!({"borrow_hours": -1})), 400, 1001);
    assert_error(checkout(&s, &number, "a", json!({"user": "x".repeat(300)})), 400, 1001);
    assert_error(s.post_raw("/v1/sessions/ses_x/heartbeat", b"{not json"), 400, 1001);
    assert_error(s.post_bearer("/v1/sessions/ses_x/heartbeat", &number, json!({"nonce": 5})), 400, 1001);
    assert_error(s.post_bearer("/v1/sessions/ses_unknown/heartbeat", &number, json!({})), 404, 1055);
    for bad in [json!({"session_lease_seconds": 59}), json!({"max_borrow_hours": 9000})] {
        assert_error(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), bad), 400, 1001);
    }
}

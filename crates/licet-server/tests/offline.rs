//! `POST /v1/offline/activate` (SPEC §8): what a connected machine sends for an air-gapped host,
//! and every malformed or refused request with its code.

mod common;

use common::{PRODUCT, assert_error, start};
use licet_core::{Fingerprint, Host, OfflineRequest, TrustedKeys};
use serde_json::json;

fn request(number: &str, product: &str, tag: &str) -> String {
    let components = [("machine-id", format!("m-{tag}")), ("mac", format!("a-{tag}")), ("disk", format!("d-{tag}"))];
    let host = Host::new(Fingerprint::new(components).unwrap(), tag, "Linux").unwrap();
    OfflineRequest { number: number.into(), product: product.into(), host }.encode()
}

#[test]
fn an_offline_activation_binds_like_an_activation_with_the_products_offline_lease() {
    let s = start(&["--rate-limit", "0"]);
    let (status, p) = s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"offline_activation_days": 90}));
    assert_eq!((status, &p["offline_activation_days"]), (200, &json!(90)));
    assert_error(
        s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"offline_activation_days": 367})),
        400,
        1001,
    );
    let (_, reg) = s.register("a@example.com", "registrar");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    s.post("/v1/redeem", json!({"registration_number": number, "coupon": s.coupons(1, 1)[0]}));

    let (status, answer) = s.post("/v1/offline/activate", json!({"request": request(&number, PRODUCT, "vault")}));
    assert_eq!(status, 200, "{answer}");
    let (_, keys) = s.get("/v1/keys", None);
    let mut trusted = TrustedKeys::new();
    trusted.add_hex(keys["keys"][0]["public_key"].as_str().unwrap()).unwrap();
    let claims = trusted.verify(answer["token"].as_str().unwrap()).unwrap().claims().clone();
    assert_eq!(claims.lease_until - claims.issued_at, 90 * 86_400);
    // The binding is an ordinary one: the portal lists it and can reset it.
    let (_, account) = s.get("/v1/account", Some(&number));
    let bindings = account["bindings"].as_array().unwrap();
    assert!(bindings.iter().any(|b| b["host"]["hostname"] == "vault"), "{account}");
    // A second request of the same host refreshes its binding; a third host finds no seat.
    assert_eq!(s.post("/v1/offline/activate", json!({"request": request(&number, PRODUCT, "vault")})).0, 200);
    assert_error(s.post("/v1/offline/activate", json!({"request": request(&number, PRODUCT, "third")})), 409, 1051);

    // Malformed and refused requests, each with its code; never a 500.
    assert_error(s.post("/v1/offline/activate", json!({})), 400, 1001);
    assert_error(s.post("/v1/offline/activate", json!({"request": 5})), 400, 1001);
    assert_error(s.post("/v1/offline/activate", json!({"request": "LICET1.AAAA"})), 400, 1001);
    let unknown = "LICET-00000-00000-00000-00000";
    assert_error(s.post("/v1/offline/activate", json!({"request": request(unknown, PRODUCT, "x")})), 400, 1002);
    assert_error(s.post("/v1/offline/activate", json!({"request": request(&number, "no-such", "x")})), 404, 1007);
}

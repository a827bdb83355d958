//! The agent's command line and SPEC §10 against a real server: `check --feature`, features and
//! grace in what `check` and `verify` print, an upgrade seen at the next check, 1054.

mod common;

use common::{Host, PRODUCT, Server, hours_from_now, ok, refused};
use serde_json::{Value, json};

fn coupon(server: &Server, body: Value) -> String {
    let answer = server.post("/v1/admin/coupons", &server.admin, body);
    answer["coupons"][0].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned()
}

#[test]
fn check_feature_passes_refuses_with_2009_and_sees_an_upgrade() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let settings = json!({"features": ["recording", "analytics"], "max_resets_per_30_days": 1});
    server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), settings);
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let reg = ok(a.run(&["register", "--email", "a@example.com", "--org", "O", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();

    // The trial grants every feature, from the cache.
    let check = ok(a.run(&["check", "--product", PRODUCT, "--feature", "recording", "--feature", "analytics"]));
    assert_eq!(
        (check["features"].clone(), check["in_grace"].clone()),
        (json!(["analytics", "recording"]), json!(false))
    );
    refused(a.run(&["check", "--product", PRODUCT, "--feature", "teleport"]), 2009);

    // A second host on a paid license that grants only recording.
    let edition = coupon(&server, json!({"product": PRODUCT, "count": 1, "features": ["recording"]}));
    ok(a.run(&["redeem", &edition]));
    let b = Host::new(tmp.path().join("b"), "b", &server);
    ok(b.run(&["set-number", &number]));
    let check = ok(b.run(&["check", "--product", PRODUCT, "--feature", "recording"]));
    assert_eq!((check["kind"].clone(), check["features"].clone()), (json!("perpetual"), json!(["recording"])));
    refused(b.run(&["check", "--product", PRODUCT, "--feature", "analytics"]), 2009);
    // Offline, the same verdict from the token alone.
    let token = ok(b.run(&["token", "--product", PRODUCT]))["token"].as_str().unwrap().to_owned();
    refused(b.run(&["verify", "--token", &token, "--product", PRODUCT, "--feature", "analytics"]), 2009);
    ok(b.run(&["verify", "--token", &token, "--product", PRODUCT, "--feature", "recording"]));

    // After an upgrade the next check that asks for the feature gets it from the server.
    let upgrade =
        coupon(&server, json!({"product": PRODUCT, "count": 1, "kind": "upgrade", "features": ["analytics"]}));
    let redeemed = ok(b.run(&["redeem", &upgrade]));
    assert_eq!(redeemed["license"]["features"], json!(["analytics", "recording"]));
    let check = ok(b.run(&["check", "--product", PRODUCT, "--feature", "analytics"]));
    assert_eq!(check["source"], "server");
    // And from then on from the cache.
    assert_eq!(ok(b.run(&["check", "--product", PRODUCT, "--feature", "analytics"]))["source"], "cache");

    // One deactivation in 30 days: the next is refused with its code, and the number stays.
    ok(b.run(&["deactivate", "--product", PRODUCT]));
    ok(b.check());
    refused(b.run(&["deactivate", "--product", PRODUCT]), 1054);
    refused(b.run(&["forget", "--release"]), 1054);
    assert!(ok(b.run(&["status"]))["registration_number"].is_string());
}

#[test]
fn a_check_in_the_grace_period_says_so_online_and_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let settings = json!({"grace_days": 5, "trial_days": 1, "refresh_hours": 100});
    server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), settings);
    let a = Host::new(tmp.path().join("a"), "a", &server);
    let at = |hours: i64| {
        server.set_clock(&hours_from_now(hours));
        a.at(&hours_from_now(hours))
    };
    ok(at(0).run(&["register", "--email", "a@example.com", "--org", "O", "--product", PRODUCT]));
    let check = ok(at(0).check());
    assert_eq!(check["in_grace"], false);
    // A day and a half on: the trial as sold is over, its grace is running; the cached token
    // says so offline.
    let offline = ok(at(36).check());
    assert_eq!((offline["source"].clone(), offline["in_grace"].clone()), (json!("cache"), json!(true)));
    // Past its refresh time (half the lease) the agent asks, and the server's token says so too.
    let online = ok(at(80).check());
    assert_eq!((online["source"].clone(), online["in_grace"].clone()), (json!("server"), json!(true)));
    let licenses = ok(at(80).run(&["licenses"]));
    let end = chrono::DateTime::parse_from_rfc3339(licenses["licenses"][0]["expires_at"].as_str().unwrap()).unwrap();
    let grace = chrono::DateTime::parse_from_rfc3339(licenses["licenses"][0]["grace_until"].as_str().unwrap()).unwrap();
    assert_eq!(grace - end, chrono::Duration::days(5));
    // Past the grace: 1052 from the cache too.
    server.kill();
    refused(a.at(&hours_from_now(24 * 7)).check(), 1052);
}

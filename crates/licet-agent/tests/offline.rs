//! Air-gapped activation (SPEC §8) with real processes: a host that never reaches the server
//! writes its request, a connected machine takes it to the server, the token comes back by hand
//! and works offline for the product's `offline_activation_days`.

mod common;

use chrono::{Duration, SecondsFormat, Utc};
use common::{Host, PRODUCT, Server, ok, refused};
use serde_json::json;

/// `host` with no server it could reach.
fn air_gapped(host: &Host) -> Host {
    Host { server: "http://127.0.0.1:9".into(), ..host.clone() }
}

fn days_from_now(days: i64) -> String {
    (Utc::now() + Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The connected machine's part: the request to the API, the token back.
fn answer(server: &Server, request: &str) -> serde_json::Value {
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    http.post(format!("{}/v1/offline/activate", server.url))
        .send_json(json!({"request": request}))
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

#[test]
fn the_air_gapped_round_trip_works_sixty_days_offline_and_counts_seats() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    server.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"offline_activation_days": 60}));
    let office = Host::new(tmp.path().join("office"), "office", &server);
    let reg = ok(office.run(&["register", "--email", "a@example.com", "--org", "O", "--product", PRODUCT]));
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    ok(office.run(&["redeem", &server.coupon(1)]));

    // On the air-gapped host: a typo is caught without a server, the number stored unchecked.
    let vault = air_gapped(&Host::new(tmp.path().join("vault"), "vault", &server));
    let mut typo = number.clone().into_bytes();
    typo[8] = if typo[8] == b'X' { b'Y' } else { b'X' };
    refused(vault.run(&["set-number", "--offline", std::str::from_utf8(&typo).unwrap()]), 1002);
    refused(vault.run(&["offline-request", "--product", PRODUCT]), 3005);
    ok(vault.run(&["set-number", "--offline", &number]));
    let request = ok(vault.run(&["offline-request", "--product", PRODUCT]))["request"].as_str().unwrap().to_owned();
    assert!(request.len() <= 2048 && !request.contains('\n'));

    // The connected machine takes it to the server; a damaged copy is refused and binds nothing.
    let mut damaged = request.clone();
    let middle = damaged.len() / 2;
    let swapped = if &damaged[middle..=middle] == "A" { "B" } else { "A" };
    damaged.replace_range(middle..=middle, swapped);
    assert_eq!(answer(&server, &damaged)["error"]["code"], 1001);
    let granted = answer(&server, &request);
    let token = granted["token"].as_str().unwrap_or_else(|| panic!("{granted}")).to_owned();
    assert_eq!(granted["license"]["seats_used"], 1);

    // Back on the vault, with no network: installed from standard input, it passes for 60 days.
    let mut install = vault.command(&["offline-install", "-"]);
    install.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = install.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), token.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let installed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((installed["ok"].clone(), installed["kind"].clone()), (json!(true), json!("perpetual")), "{installed}");
    let check = ok(vault.at(&days_from_now(59)).check());
    assert_eq!(check["source"], "cache");
    refused(vault.at(&days_from_now(61)).check(), 3003);
    // A token that would not pass (here: installed again after its lease) is refused.
    refused(vault.at(&days_from_now(61)).run(&["offline-install", &token]), 3003);
    assert_eq!(ok(vault.run(&["token", "--product", PRODUCT]))["token"], json!(token));

    // Seats count as online: office holds the trial, the vault the paid seat; a third host is 1051.
    let third = air_gapped(&Host::new(tmp.path().join("third"), "third", &server));
    ok(third.run(&["set-number", "--offline", &number]));
    let third_request =
        ok(third.run(&["offline-request", "--product", PRODUCT]))["request"].as_str().unwrap().to_owned();
    assert_eq!(answer(&server, &third_request)["error"]["code"], 1051);
    // The vault's token on another host is refused.
    refused(third.run(&["offline-install", &token]), 3002);
    refused(third.check(), 1011);
}

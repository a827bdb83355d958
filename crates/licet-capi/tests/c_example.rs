//! The C example (`examples/c/licet_example.c`) compiled with the system's `cc` against
//! `licet.h` and `liblicet_capi`, and run against a real server: its lines are checked. And the
//! Python `ctypes` example (`examples/python/licet_check.py`), the same library from another
//! language, when a `python3` is installed.

#[path = "../../licet-agent/tests/common/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use server::{PRODUCT, Server};

const FLOATING: &str = "softphone";

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `target/<profile>`, where the shared library is, built first.
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().to_owned();
    let profile = if dir.file_name().is_some_and(|n| n == "release") { "release" } else { "dev" };
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "licet-capi", "--lib", "--profile", profile])
        .status()
        .unwrap();
    assert!(status.success(), "building licet-capi failed");
    dir
}

/// A server whose account (returned number) holds three host seats of `call-journal` and two
/// floating seats of `softphone`.
fn account(server: &Server) -> String {
    server.admin_put(&format!("/v1/admin/products/{FLOATING}"), json!({}));
    let host = json!({"fingerprint": {"machine-id": "elsewhere"}, "hostname": "office", "os": "Linux"});
    let form = json!({"email": "c@example.com", "organization": "C", "product": PRODUCT, "host": host});
    let registered: Value =
        ureq::post(format!("{}/v1/register", server.url)).send_json(form).unwrap().body_mut().read_json().unwrap();
    let number = registered["registration_number"].as_str().unwrap().to_owned();
    for batch in [
        json!({"product": PRODUCT, "count": 1, "seats": 3}),
        json!({"product": FLOATING, "count": 1, "seats": 2, "model": "floating"}),
    ] {
        let coupon = server.post("/v1/admin/coupons", &server.admin, batch)["coupons"][0].as_str().unwrap().to_owned();
        let redeemed = server.post("/v1/redeem", "", json!({"registration_number": number, "coupon": coupon}));
        assert!(redeemed["license"].is_object(), "{redeemed}");
    }
    number
}

#[test]
fn the_c_example_licenses_itself_through_the_c_abi() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"), "127.0.0.1:0", &[]);
    let number = account(&server);
    let lib = library_dir();
    let program = tmp.path().join("licet_example");
    let compiled = Command::new("cc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root().join("crates/licet-capi"))
        .arg(root().join("examples/c/licet_example.c"))
        .arg("-L")
        .arg(&lib)
        .args(["-llicet_capi", "-o"])
        .arg(&program)
        .output()
        .expect("a C compiler (cc) is needed for this test");
    assert!(compiled.status.success(), "cc: {}", String::from_utf8_lossy(&compiled.stderr));

    let data_dir = tmp.path().join("agent");
    let out = Command::new(&program)
        .arg(&server.url)
        .arg(&data_dir)
        .args([&server.public_key, PRODUCT, FLOATING])
        .env("LICET_NUMBER", &number)
        .env("LD_LIBRARY_PATH", &lib)
        .env("DYLD_LIBRARY_PATH", &lib)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let line = |step: &str| {
        *lines.iter().find(|l| l.starts_with(&format!("{step} "))).unwrap_or_else(|| panic!("{step}: {text}"))
    };
    let json_of = |step: &str| -> Value { serde_json::from_str(line(step).splitn(3, ' ').nth(2).unwrap()).unwrap() };

    assert_eq!(line("set_number"), "set_number 0");
    assert_eq!(line("check"), "check 0");
    let check = json_of("check_json");
    assert_eq!(
        (check["ok"].clone(), check["product"].clone(), check["source"].clone()),
        (json!(true), json!(PRODUCT), json!("cache"))
    );
    let missing = json_of("check_feature");
    assert_eq!((missing["code"].clone(), missing["name"].clone()), (json!(2009), json!("feature_not_licensed")));
    assert!(line("check_feature").starts_with("check_feature 2009 "));
    let checkout: Vec<&str> = line("checkout").split(' ').collect();
    assert!(checkout[1] == "0" && checkout[2].starts_with("ses_"), "{text}");
    assert_eq!(line("heartbeat"), "heartbeat 0");
    assert_eq!(line("release"), "release 0");
    assert_eq!(line("heartbeat_after_release"), "heartbeat_after_release 1055");
    assert_eq!(line("check_null_product"), "check_null_product 1001");
    let status = json_of("status");
    assert_eq!(status["products"][0]["product"], PRODUCT, "{status}");

    // The server saw this machine bound and the session released.
    let account = server.get("/v1/account", &number);
    assert_eq!(account["bindings"].as_array().unwrap().len(), 2, "{account}");
    assert_eq!(account["sessions"], json!([]), "{account}");

    // The same library from Python, through ctypes: the cached token answers.
    if Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success()) {
        let script = root().join("examples/python/licet_check.py");
        let out = Command::new("python3")
            .arg(script)
            .arg(lib.join(format!("{}licet_capi{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)))
            .arg(&server.url)
            .arg(&data_dir)
            .args([&server.public_key, PRODUCT])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(&format!("{PRODUCT}: licensed")), "{text}");
        assert!(text.contains("telepathy: 2009 feature_not_licensed"), "{text}");
    } else {
        eprintln!("no python3 here: the ctypes example was not run");
    }
}

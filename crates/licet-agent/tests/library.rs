//! The library as a vendor's program links it: explicit configuration only.

use std::collections::BTreeMap;

use licet_agent::{Agent, AgentConfig};

fn raw() -> BTreeMap<String, String> {
    [("machine-id", "0123456789abcdef"), ("mac", "02:00:00:00:00:01"), ("hostname", "pc")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn agent(keys: &[&str]) -> Agent {
    let mut config = AgentConfig::new("http://127.0.0.1:9", tempfile::tempdir().unwrap().keep()).vendor("MIKO");
    config.trusted_keys = keys.iter().map(|k| k.to_string()).collect();
    config.raw_components = Some(raw());
    Agent::new(config).unwrap()
}

const KEY_A: &str = "8c7d97cf28de56818f8f613f9f49198d0b86d5bb3eb96320d0ae9704c0307943";
const KEY_B: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn the_fingerprint_depends_on_the_vendor_not_on_the_trusted_keys_or_their_order() {
    let fingerprint = agent(&[KEY_A]).fingerprint().clone();
    assert_eq!(agent(&[KEY_B, KEY_A]).fingerprint(), &fingerprint);
    assert_eq!(agent(&[KEY_A, KEY_B]).fingerprint(), &fingerprint);
    assert_eq!(agent(&[]).fingerprint(), &fingerprint);
    assert_eq!(fingerprint.components().len(), 3);
}

#[test]
fn the_library_never_reads_the_environment() {
    // This test binary again, as a child, with every override of the CLI set in its environment.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_shows_what_the_library_sees", "--nocapture", "--test-threads=1"])
        .env("LICET_FINGERPRINT", "machine-id=stolen,mac=stolen,disk=stolen")
        .env("LICET_RAW_FINGERPRINT", "machine-id=stolen")
        .env("LICET_NOW", "2001-01-01T00:00:00Z")
        .env("LICET_HOSTNAME", "fake")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let seen = text.lines().find_map(|l| l.split_once("SEEN: ").map(|(_, s)| s.to_owned())).expect("the child reports");
    let expected = format!("{:?} {}", agent(&[KEY_A]).fingerprint().components(), chrono::Utc::now().format("%Y"));
    assert_eq!(seen, expected);
}

#[test]
#[ignore = "a child process of the_library_never_reads_the_environment"]
fn child_shows_what_the_library_sees() {
    let agent = agent(&[KEY_A]);
    println!("SEEN: {:?} {}", agent.fingerprint().components(), agent.now().format("%Y"));
}

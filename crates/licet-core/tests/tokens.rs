//! Token encoding: compact, canonical, and every tampering refused.

mod sim;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use licet_core::{Code, Fingerprint, Host, TrustedKeys};
use sim::{PRODUCT, Sim, pc};

fn issued(host: &Host) -> (Sim, String) {
    let mut sim = Sim::new();
    let reg = sim.register("a@example.com", host).unwrap();
    let token = sim.signer.issue(&reg.seat, sim.now);
    (sim, token)
}

#[test]
fn a_token_is_short_text() {
    let host = Host::new(
        Fingerprint::new([
            ("machine-id", "a".repeat(32)),
            ("mac", "b".repeat(32)),
            ("disk", "c".repeat(32)),
            ("hostname", "d".repeat(32)),
        ])
        .unwrap(),
        "host",
        "Linux",
    )
    .unwrap();
    let (sim, token) = issued(&host);
    assert!(token.len() <= 300, "{} chars", token.len());
    assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    let verified = sim.keys.verify(&token).unwrap();
    assert_eq!(verified.claims().product, PRODUCT);
    assert_eq!(verified.as_str(), token);
}

#[test]
fn every_single_bit_flip_is_refused() {
    let host = pc("a");
    let (sim, token) = issued(&host);
    let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            let text = URL_SAFE_NO_PAD.encode(&flipped);
            let err = sim.keys.verify(&text).expect_err("a flipped bit must not verify");
            assert_eq!(err.code(), Code::TokenInvalid);
        }
    }
    // Truncated and extended forms too.
    for len in 0..bytes.len() {
        assert!(sim.keys.verify(&URL_SAFE_NO_PAD.encode(&bytes[..len])).is_err());
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(sim.keys.verify(&URL_SAFE_NO_PAD.encode(&longer)).is_err());
}

#[test]
fn every_changed_character_is_refused() {
    let (sim, token) = issued(&pc("a"));
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ";
    for i in 0..token.len() {
        for &c in ALPHABET {
            if c == token.as_bytes()[i] {
                continue;
            }
            let mut changed = token.clone().into_bytes();
            changed[i] = c;
            let changed = String::from_utf8(changed).unwrap();
            assert_eq!(sim.keys.verify(&changed).unwrap_err().code(), Code::TokenInvalid, "position {i}");
        }
    }
    for junk in ["", "x", "AAAA", &"A".repeat(10_000), "ж"] {
        assert_eq!(sim.keys.verify(junk).unwrap_err().code(), Code::TokenInvalid);
    }
}

#[test]
fn trusted_keys_parse_hex() {
    let sim = Sim::new();
    let mut keys = TrustedKeys::new();
    assert!(keys.is_empty());
    let kid = keys.add_hex(&sim.signer.public_key_hex()).unwrap();
    assert_eq!(kid, sim.signer.kid());
    assert_eq!(kid.to_string().len(), 16);
    assert_eq!(sim.signer.public_key_hex().len(), 64);
    for bad in ["", "zz", &"g".repeat(64), &"0".repeat(63), "ж".repeat(32).as_str()] {
        assert_eq!(keys.add_hex(bad).unwrap_err().code(), Code::InvalidRequest);
    }
}

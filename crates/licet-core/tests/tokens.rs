//! Token encoding: compact, canonical, and every tampering refused.

#[path = "../../../tests/fixtures/support.rs"]
mod fixtures;
mod sim;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use licet_core::{Code, Fingerprint, Host, LicenseKind, TokenFormat, TokenSigner, TrustedKeys};
use sim::{PRODUCT, Sim, pc};

fn issued(host: &Host) -> (Sim, String) {
    let mut sim = Sim::new();
    let reg = sim.register("a@example.com", host).unwrap();
    let token = sim.signer.issue(&reg.seat, sim.now);
    (sim, token)
}

/// The same in release 0.1.0's layout.
fn issued_v1(host: &Host) -> (Sim, String) {
    let mut sim = Sim::new();
    let reg = sim.register("a@example.com", host).unwrap();
    let token = sim.signer.issue_as(&reg.seat, sim.now, TokenFormat::V1, None);
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
    for make in [issued, issued_v1] {
        every_single_bit_flip_of(make);
    }
}

fn every_single_bit_flip_of(make: fn(&Host) -> (Sim, String)) {
    let host = pc("a");
    let (sim, token) = make(&host);
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

fn fixture_signer() -> TokenSigner {
    let text = std::fs::read_to_string(fixtures::fixture("server/signing.key")).unwrap();
    let mut secret = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut secret).unwrap();
    TokenSigner::from_secret(&secret)
}

#[test]
fn tokens_release_0_1_0_issued_verify_judge_and_are_reissued_byte_for_byte() {
    let facts = fixtures::facts();
    let mut keys = TrustedKeys::new();
    keys.add_hex(facts["public_key"].as_str().unwrap()).unwrap();
    let now = chrono::DateTime::parse_from_rfc3339(facts["now"].as_str().unwrap()).unwrap().to_utc();
    let signer = fixture_signer();
    for (name, product, kind) in [
        ("a", "call-journal", LicenseKind::Trial),
        ("a_recorder", "recorder", LicenseKind::Trial),
        ("b", "call-journal", LicenseKind::Perpetual),
        ("legacy", "call-journal", LicenseKind::Trial),
    ] {
        let token = facts["tokens"][name].as_str().unwrap();
        let verified = keys.verify(token).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(verified.format(), TokenFormat::V1);
        let claims = verified.claims();
        assert_eq!((claims.product.as_str(), claims.kind), (product, kind), "{name}");
        assert_eq!((claims.refresh_after, claims.features.len()), (None, 0));
        // The layout this release writes for 0.1.0 agents is exactly the one 0.1.0 wrote:
        // ed25519 is deterministic, so re-signing the same claims gives the same text.
        assert_eq!(signer.sign(claims, TokenFormat::V1), token, "{name}");
        // Judged offline on its host just after issue: valid, half its lease to the refresh.
        let judged = verified.judge(product, &claims.host, now, None).result.unwrap();
        let lease = judged.lease_until - judged.issued_at;
        assert_eq!(judged.refresh_due, judged.issued_at + lease / 2);
        assert!(!judged.in_grace);
    }
}

fn three_component_host() -> Host {
    Host::new(
        Fingerprint::new([("machine-id", "a".repeat(32)), ("mac", "b".repeat(32)), ("disk", "c".repeat(32))]).unwrap(),
        "host",
        "Linux",
    )
    .unwrap()
}

#[test]
fn a_token_with_three_components_and_three_features_stays_under_300_characters() {
    let (sim, token) = issued(&three_component_host());
    let verified = sim.keys.verify(&token).unwrap();
    let mut claims = verified.claims().clone();
    claims.features = vec!["recording".into(), "analytics".into(), "export".into()];
    claims.grace_until = claims.expires_at.map(|e| e + 14 * 86_400);
    claims.nonce = Some([0xa5; 16]);
    let rich = sim.signer.sign(&claims, TokenFormat::V2);
    eprintln!("a token with three components, three features, grace and a nonce: {} characters", rich.len());
    assert!(rich.len() <= 300, "{} chars", rich.len());
    let again = sim.keys.verify(&rich).unwrap();
    assert_eq!(again.claims(), &claims);
    assert_eq!(again.format(), TokenFormat::V2);
    let legacy = sim.signer.sign(&claims, TokenFormat::V1);
    assert!(legacy.len() < rich.len());
    assert_eq!(sim.keys.verify(&legacy).unwrap().claims().expires_at, claims.grace_until, "grace folded in");
}

#[test]
fn a_refusal_is_proven_only_for_its_code_product_host_and_request() {
    let host = pc("a");
    let (sim, _) = issued(&host);
    let digest = host.fingerprint.digest();
    let nonce = [7u8; 16];
    let number = "MIKO-50YDY-RF28Y-E8CAH-RXWTG";
    let proof = sim.signer.sign_refusal(Code::NoFreeLicense, PRODUCT, &digest, number, sim.now, nonce);
    let refusal = sim.keys.verify_refusal(&proof, Code::NoFreeLicense, PRODUCT, &digest, number, &nonce).unwrap();
    assert_eq!(refusal.server_time, sim.now.timestamp());
    let other = pc("b").fingerprint.digest();
    for (code, product, host, number, nonce) in [
        (Code::LicenseExpired, PRODUCT, &digest, number, nonce),
        (Code::NoFreeLicense, "recorder", &digest, number, nonce),
        (Code::NoFreeLicense, PRODUCT, &other, number, nonce),
        (Code::NoFreeLicense, PRODUCT, &digest, "MIKO-00000-00000-00000-00000", nonce),
        (Code::NoFreeLicense, PRODUCT, &digest, number, [8u8; 16]),
    ] {
        let refused = sim.keys.verify_refusal(&proof, code, product, host, number, &nonce);
        assert_eq!(refused.unwrap_err().code(), Code::TokenInvalid);
    }
    // Signed by a key the agent does not trust, or tampered with: refused.
    let stranger = TokenSigner::from_secret(&[9u8; 32]);
    let forged = stranger.sign_refusal(Code::NoFreeLicense, PRODUCT, &digest, number, sim.now, nonce);
    assert!(sim.keys.verify_refusal(&forged, Code::NoFreeLicense, PRODUCT, &digest, number, &nonce).is_err());
    let bytes = URL_SAFE_NO_PAD.decode(&proof).unwrap();
    for i in 0..bytes.len() {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x10;
        let text = URL_SAFE_NO_PAD.encode(&flipped);
        let refused = sim.keys.verify_refusal(&text, Code::NoFreeLicense, PRODUCT, &digest, number, &nonce);
        assert!(refused.is_err(), "byte {i}");
    }
    // A token is not a refusal, nor a refusal a token.
    let token = sim.signer.issue(&sim_seat(&host), sim.now);
    assert!(sim.keys.verify_refusal(&token, Code::NoFreeLicense, PRODUCT, &digest, number, &nonce).is_err());
    assert!(sim.keys.verify(&proof).is_err());
}

fn sim_seat(host: &Host) -> licet_core::Seat {
    let mut sim = Sim::new();
    sim.register("seat@example.com", host).unwrap().seat
}

#[test]
fn a_newer_key_endorsed_by_a_trusted_one_signs_tokens_agents_accept() {
    let host = pc("a");
    let seat = sim_seat(&host);
    let now = Sim::new().now;
    let old = TokenSigner::from_secret(&[1u8; 32]);
    let new = TokenSigner::from_secret(&[2u8; 32]);
    let newest = TokenSigner::from_secret(&[3u8; 32]);
    let mut trusts_old = TrustedKeys::new();
    trusts_old.add(old.public_key());

    // Without its endorsement the new key is unknown.
    assert_eq!(trusts_old.verify(&new.issue(&seat, now)).unwrap_err().code(), Code::TokenInvalid);
    let endorsed = TokenSigner::from_secret(&[2u8; 32]).with_chain(vec![old.endorse(&new.public_key(), now)]);
    let token = endorsed.issue(&seat, now);
    eprintln!("a token with a one-step endorsement chain: {} characters", token.len());
    assert!(token.len() < 600, "{} chars with one endorsement", token.len());
    assert_eq!(trusts_old.verify(&token).unwrap().claims().kid, new.kid());
    // Two steps: old → new → newest.
    let chain = vec![new.endorse(&newest.public_key(), now), old.endorse(&new.public_key(), now)];
    let newest_token = TokenSigner::from_secret(&[3u8; 32]).with_chain(chain).issue(&seat, now);
    trusts_old.verify(&newest_token).unwrap();
    // Refusals carry the chain too.
    let nonce = [1u8; 16];
    let digest = host.fingerprint.digest();
    let proof = endorsed.sign_refusal(Code::LicenseExpired, PRODUCT, &digest, "n", now, nonce);
    trusts_old.verify_refusal(&proof, Code::LicenseExpired, PRODUCT, &digest, "n", &nonce).unwrap();

    // An endorsement by a key nobody trusts, or one not yet in force, vouches for nothing.
    let stranger = TokenSigner::from_secret(&[4u8; 32]);
    let by_stranger = TokenSigner::from_secret(&[2u8; 32]).with_chain(vec![stranger.endorse(&new.public_key(), now)]);
    assert!(trusts_old.verify(&by_stranger.issue(&seat, now)).is_err());
    let later = now + chrono::Duration::days(1);
    let not_yet = TokenSigner::from_secret(&[2u8; 32]).with_chain(vec![old.endorse(&new.public_key(), later)]);
    assert!(trusts_old.verify(&not_yet.issue(&seat, now)).is_err());
    // A tampered endorsement breaks the chain.
    let link = old.endorse(&new.public_key(), now);
    let mut bytes = URL_SAFE_NO_PAD.decode(&link).unwrap();
    bytes[3] ^= 1;
    let tampered = TokenSigner::from_secret(&[2u8; 32]).with_chain(vec![URL_SAFE_NO_PAD.encode(bytes)]);
    assert!(trusts_old.verify(&tampered.issue(&seat, now)).is_err());
    // An agent that trusts the new key directly needs no chain, and ignores one.
    let mut trusts_new = TrustedKeys::new();
    trusts_new.add(new.public_key());
    trusts_new.verify(&token).unwrap();
    trusts_new.verify(&new.issue(&seat, now)).unwrap();
}

#[test]
fn grace_runs_after_the_term_and_a_clock_set_back_never_stretches_a_lease() {
    let host = pc("a");
    let (sim, token) = issued(&host);
    let verified = sim.keys.verify(&token).unwrap();
    let digest = host.fingerprint.digest();
    let mut claims = verified.claims().clone();
    let end = claims.expires_at.unwrap();
    claims.grace_until = Some(end + 86_400);
    claims.lease_until = end + 86_400;
    let graced = sim.keys.verify(&sim.signer.sign(&claims, TokenFormat::V2)).unwrap();
    let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
    let before = graced.judge(PRODUCT, &digest, at(end - 1), None).result.unwrap();
    assert!(!before.in_grace);
    let during = graced.judge(PRODUCT, &digest, at(end + 3600), None).result.unwrap();
    assert!(during.in_grace);
    assert_eq!(during.grace_until, Some(at(end + 86_400)));
    let after = graced.judge(PRODUCT, &digest, at(end + 86_400), None);
    assert_eq!(after.result.unwrap_err().code(), Code::LicenseExpired);

    // Seen at the lease's last minute, then the clock is set back 50 minutes (within the hour's
    // tolerance): the lease is judged at the time already seen, so it is over a minute later.
    let lease_end = verified.claims().lease_until;
    let seen = verified.judge(PRODUCT, &digest, at(lease_end - 60), None);
    assert!(seen.result.is_ok());
    let set_back = verified.judge(PRODUCT, &digest, at(lease_end - 3000), seen.high_water);
    assert!(set_back.result.is_ok(), "within the tolerance it still passes");
    let a_minute_later = verified.judge(PRODUCT, &digest, at(lease_end - 2940), Some(at(lease_end)));
    assert_eq!(a_minute_later.result.unwrap_err().code(), Code::LeaseExpired);
}

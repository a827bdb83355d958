//! Token verification beside a raw ed25519 verify of the same bytes, token encode/decode, key
//! parsing, and an in-memory activation — all in one run so the ratios mean something.
#![allow(missing_docs)]

use std::hint::black_box;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::Signature;
use licet::core::{
    Command, Fingerprint, Host, Ledger, MemState, Product, ProductSettings, Registered, Registration,
    RegistrationNumber, SeededEntropy, TokenFormat, TokenSigner, TrustedKeys,
};

fn setup() -> (TokenSigner, TrustedKeys, String, Host, DateTime<Utc>) {
    let signer = TokenSigner::from_secret(&[7u8; 32]);
    let mut keys = TrustedKeys::new();
    keys.add(signer.public_key());
    let ledger = Ledger::new("LICET").unwrap();
    let mut state = MemState::new();
    let mut rng = SeededEntropy::new(1);
    let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
    // An edition product: three features and a grace period, so the token carries both.
    let settings = ProductSettings {
        features: Some(["recording", "analytics", "export"].map(String::from).into()),
        grace_days: Some(7),
        ..ProductSettings::default()
    };
    let put = Command::PutProduct { id: "call-journal".into(), settings };
    state.execute::<Product>(&ledger, now, &mut SeededEntropy::new(0), &put).unwrap();
    let host = Host::new(
        Fingerprint::new([("machine-id", "0".repeat(32)), ("mac", "1".repeat(32)), ("disk", "2".repeat(32))]).unwrap(),
        "bench",
        "Linux",
    )
    .unwrap();
    let reg = Registration {
        email: "bench@example.com".into(),
        organization: "Bench".into(),
        contact: None,
        phone: None,
        product: "call-journal".into(),
        host: host.clone(),
        lang: Default::default(),
    };
    let registered: Registered = state.execute(&ledger, now, &mut rng, &Command::Register(reg)).unwrap();
    // As agents of this release receive it: naming the nonce of their request.
    let token = signer.issue_as(&registered.seat, now, TokenFormat::V2, Some([9u8; 16]));
    (signer, keys, token, host, now)
}

fn token(c: &mut Criterion) {
    let (signer, keys, token, host, now) = setup();
    let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
    let (signed, sig) = bytes.split_at(bytes.len() - 64);
    let signature = Signature::from_slice(sig).unwrap();
    let public = signer.public_key();
    let digest = host.fingerprint.digest();
    let features = keys.verify(&token).unwrap().claims().features.len();
    eprintln!("token: {} chars, {} bytes, {features} features, three host components", token.len(), bytes.len());

    let mut g = c.benchmark_group("token");
    g.bench_function("raw_ed25519_verify_strict", |b| {
        b.iter(|| public.verify_strict(black_box(signed), black_box(&signature)).unwrap())
    });
    g.bench_function("licet_verify", |b| b.iter(|| keys.verify(black_box(&token)).unwrap()));
    g.bench_function("licet_verdict", |b| {
        b.iter(|| licet::core::verdict(&keys, black_box(&token), "call-journal", &digest, now, None).result.unwrap())
    });
    let verified = keys.verify(&token).unwrap();
    g.bench_function("judge_verified", |b| {
        b.iter(|| black_box(&verified).judge("call-journal", &digest, now, None).result.unwrap())
    });
    let claims = verified.claims().clone();
    g.bench_function("sign", |b| b.iter(|| signer.sign(black_box(&claims), TokenFormat::V2)));
    g.finish();
}

fn keys(c: &mut Criterion) {
    let number = RegistrationNumber::generate("LICET", &mut SeededEntropy::new(3)).to_string();
    c.bench_function("key/parse_registration_number", |b| {
        b.iter(|| RegistrationNumber::parse(black_box(&number)).unwrap())
    });
}

criterion_group!(benches, token, keys);
criterion_main!(benches);

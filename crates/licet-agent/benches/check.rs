//! The agent's license check: hot (token verified earlier in this process), cold (a fresh
//! agent: read the cache file, verify the signature, judge), beside a raw ed25519 verify of the
//! same token and a `TrustedKeys::verify` in the same run.
#![allow(missing_docs)]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use licet_agent::{Agent, AgentConfig};
use licet_core::{
    Command, Fingerprint, Host, Ledger, MemState, Product, ProductSettings, Registered, Registration, SeededEntropy,
    TokenSigner,
};

const SERVER: &str = "http://127.0.0.1:9";
/// The bench's signing key; the agent trusts its public half.
const SECRET: [u8; 32] = [5; 32];

fn setup(dir: &std::path::Path) -> (String, String, Fingerprint, DateTime<Utc>) {
    // Issued an hour ago by the real clock: the agent runs on the system's clock and looks at
    // the system's files for evidence of the time, as a deployed agent does.
    let now = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 3600, 0).unwrap();
    let signer = TokenSigner::from_secret(&SECRET);
    let ledger = Ledger::new("LICET").unwrap();
    let mut state = MemState::new();
    let put = Command::PutProduct { id: "call-journal".into(), settings: ProductSettings::default() };
    state.execute::<Product>(&ledger, now, &mut SeededEntropy::new(0), &put).unwrap();
    let fingerprint = Fingerprint::new([("machine-id", "m"), ("mac", "a"), ("disk", "d")]).unwrap();
    let reg = Registration {
        email: "bench@example.com".into(),
        organization: "Bench".into(),
        contact: None,
        phone: None,
        product: "call-journal".into(),
        host: Host::new(fingerprint.clone(), "bench", "Linux").unwrap(),
    };
    let registered: Registered =
        state.execute(&ledger, now, &mut SeededEntropy::new(1), &Command::Register(reg)).unwrap();
    let token = signer.issue(&registered.seat, now);
    let change = licet_core::agent::Persist {
        number: Some(Some(registered.number.to_string())),
        tokens: [("call-journal".to_owned(), Some(token.clone()))].into(),
        ..Default::default()
    };
    licet_store::AgentCache::new(dir).apply(&change, std::time::Duration::from_secs(5)).unwrap();
    (signer.public_key_hex(), token, fingerprint, now)
}

fn agent(dir: &std::path::Path, key: &str, fingerprint: &Fingerprint, now: DateTime<Utc>) -> Agent {
    let mut config = AgentConfig::new(SERVER, dir).trust(key);
    config.fingerprint = Some(fingerprint.clone());
    config.hostname = Some("bench".into());
    assert!(now < Utc::now());
    Agent::new(config).unwrap()
}

fn check(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let (key, token, fingerprint, now) = setup(tmp.path());

    let mut g = c.benchmark_group("agent");
    // Baseline: the raw signature check of the same token's bytes.
    let bytes = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap()
    };
    let (signed, sig) = bytes.split_at(bytes.len() - 64);
    let signature = ed25519_dalek::Signature::from_slice(sig).unwrap();
    let verifying = TokenSigner::from_secret(&SECRET).public_key();
    g.bench_function("raw_ed25519_verify_strict", |b| {
        b.iter(|| verifying.verify_strict(black_box(signed), &signature).unwrap())
    });

    let mut keys = licet_core::TrustedKeys::new();
    keys.add_hex(&key).unwrap();
    g.bench_function("token_verify", |b| b.iter(|| keys.verify(black_box(&token)).unwrap()));

    let hot = agent(tmp.path(), &key, &fingerprint, now);
    assert_eq!(hot.check("call-journal").unwrap().source, licet_agent::Source::Cache);
    g.bench_function("hot_check", |b| b.iter(|| hot.check(black_box("call-journal")).unwrap()));
    drop(hot);

    g.bench_function("cold_check", |b| {
        b.iter(|| {
            let cold = agent(tmp.path(), &key, &fingerprint, now);
            cold.check(black_box("call-journal")).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);

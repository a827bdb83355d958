//! The agent's license check: hot (token verified earlier in this process), cold (a fresh
//! agent: read the cache file, verify the signature, judge), beside a raw ed25519 verify of the
//! same token and a `TrustedKeys::verify` in the same run.
#![allow(missing_docs)]

use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use licet_agent::{Agent, AgentConfig};
use licet_core::{Fingerprint, TokenSigner};

mod common;

const SERVER: &str = "http://127.0.0.1:9";
/// The bench's signing key; the agent trusts its public half.
const SECRET: [u8; 32] = [5; 32];

fn setup(dir: &std::path::Path) -> (String, String, Fingerprint, DateTime<Utc>) {
    let fingerprint = Fingerprint::new([("machine-id", "m"), ("mac", "a"), ("disk", "d")]).unwrap();
    let (key, token, now) = common::cache_token(dir, &fingerprint, &SECRET);
    (key, token, fingerprint, now)
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

//! Runs one operation of the license check many times, for instruction counts under callgrind,
//! which repeat exactly where wall-clock medians on a shared machine spread by ±10% (see
//! BENCHMARKS.md):
//!
//! ```text
//! cargo build --release --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/instructions raw-verify 1000
//! ```
//!
//! Operations: `setup` (everything but the loop), `raw-verify` (ed25519 `verify_strict` of the
//! token's bytes), `verify` (`TrustedKeys::verify`), `cold-check` (a new `Agent` reads its cache
//! file, verifies and judges), `hot-check` (`Agent::check` with the token verified earlier).

use std::hint::black_box;
use std::process::ExitCode;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use licet::agent::{Agent, AgentConfig};
use licet::core::agent::Persist;
use licet::core::{
    Command, Fingerprint, Host, Ledger, MemState, Product, ProductSettings, Registered, Registration, SeededEntropy,
    TokenSigner, TrustedKeys,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("instructions: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (op, n) = match args.as_slice() {
        [_, op, n] => (op.as_str(), n.parse::<u32>()?),
        _ => return Err("usage: instructions OPERATION COUNT".into()),
    };
    // Issued an hour ago by the real clock: the agent runs on the system's clock and looks at
    // the system's files for evidence of the time, as a deployed agent does.
    let now = DateTime::<Utc>::from_timestamp(chrono::Utc::now().timestamp() - 3600, 0).ok_or("clock")?;
    let signer = TokenSigner::from_secret(&[5; 32]);
    let ledger = Ledger::new("LICET")?;
    let mut state = MemState::new();
    let mut rng = SeededEntropy::new(1);
    // An edition product: the token carries three features and a grace period.
    let settings = ProductSettings {
        features: Some(["recording", "analytics", "export"].map(String::from).into()),
        grace_days: Some(7),
        ..ProductSettings::default()
    };
    let put = Command::PutProduct { id: "call-journal".into(), settings };
    state.execute::<Product>(&ledger, now, &mut rng, &put)?;
    let fingerprint = Fingerprint::new([("machine-id", "m"), ("mac", "a"), ("disk", "d")])?;
    let registration = Registration {
        email: "bench@example.com".into(),
        organization: "Bench".into(),
        contact: None,
        phone: None,
        product: "call-journal".into(),
        host: Host::new(fingerprint.clone(), "bench", "Linux")?,
        lang: Default::default(),
    };
    let registered: Registered = state.execute(&ledger, now, &mut rng, &Command::Register(registration))?;
    let token = signer.issue(&registered.seat, now);
    let dir = tempfile::tempdir()?;
    let change = Persist {
        number: Some(Some(registered.number.to_string())),
        tokens: [("call-journal".to_owned(), Some(token.clone()))].into(),
        ..Persist::default()
    };
    licet::store::AgentCache::new(dir.path()).apply(&change, std::time::Duration::from_secs(5))?;
    let agent = || -> Result<Agent> {
        let mut config = AgentConfig::new("http://127.0.0.1:9", dir.path()).trust(signer.public_key_hex());
        config.fingerprint = Some(fingerprint.clone());
        config.hostname = Some("bench".into());
        Ok(Agent::new(config)?)
    };
    let bytes = URL_SAFE_NO_PAD.decode(&token)?;
    let (signed, signature) = bytes.split_at(bytes.len() - 64);
    let signature = ed25519_dalek::Signature::from_slice(signature)?;
    let public = signer.public_key();
    let mut keys = TrustedKeys::new();
    keys.add(public);
    let hot = agent()?;
    hot.check("call-journal")?;
    for _ in 0..n {
        match op {
            "setup" => {}
            "raw-verify" => public.verify_strict(black_box(signed), &signature)?,
            "verify" => drop(keys.verify(black_box(&token))?),
            "cold-check" => drop(agent()?.check(black_box("call-journal"))?),
            "hot-check" => drop(hot.check(black_box("call-journal"))?),
            other => return Err(format!("unknown operation {other}").into()),
        }
    }
    Ok(())
}

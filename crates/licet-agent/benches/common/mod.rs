//! What the agent's benchmarks (and the C ABI's) start from: a token of a registered account,
//! cached in a data directory as a server would have left it.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Utc};
use licet_core::{
    Command, Fingerprint, Host, Ledger, MemState, Product, ProductSettings, Registered, Registration, SeededEntropy,
    TokenSigner,
};

pub const PRODUCT: &str = "call-journal";

/// Registers an account whose trial of [`PRODUCT`] is bound to `fingerprint`, issues its token an
/// hour ago (by the real clock: the agents run on the system's clock) with the key of `secret`,
/// and caches it with the number in `dir`. Returns the public key (hex), the token and its time.
pub fn cache_token(
    dir: &std::path::Path,
    fingerprint: &Fingerprint,
    secret: &[u8; 32],
) -> (String, String, DateTime<Utc>) {
    let now = DateTime::<Utc>::from_timestamp(Utc::now().timestamp() - 3600, 0).unwrap();
    let signer = TokenSigner::from_secret(secret);
    let ledger = Ledger::new("LICET").unwrap();
    let mut state = MemState::new();
    let put = Command::PutProduct { id: PRODUCT.into(), settings: ProductSettings::default() };
    state.execute::<Product>(&ledger, now, &mut SeededEntropy::new(0), &put).unwrap();
    let reg = Registration {
        email: "bench@example.com".into(),
        organization: "Bench".into(),
        contact: None,
        phone: None,
        product: PRODUCT.into(),
        host: Host::new(fingerprint.clone(), "bench", "Linux").unwrap(),
        lang: Default::default(),
    };
    let registered: Registered =
        state.execute(&ledger, now, &mut SeededEntropy::new(1), &Command::Register(reg)).unwrap();
    let token = signer.issue(&registered.seat, now);
    let change = licet_core::agent::Persist {
        number: Some(Some(registered.number.to_string())),
        tokens: [(PRODUCT.to_owned(), Some(token.clone()))].into(),
        ..Default::default()
    };
    licet_store::AgentCache::new(dir).apply(&change, std::time::Duration::from_secs(5)).unwrap();
    (signer.public_key_hex(), token, now)
}

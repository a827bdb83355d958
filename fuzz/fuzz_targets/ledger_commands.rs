//! Random command sequences against the core ledger, its invariants checked after each.
#![no_main]

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use licet_core::{
    CouponBatch, Fingerprint, Host, Ledger, MemState, ProductSettings, Registration, SeededEntropy, check_invariants,
};

fn host(i: u8) -> Host {
    let i = i % 12;
    let fp = Fingerprint::new([
        ("machine-id", format!("m{}", i / 2)),
        ("mac", format!("n{i}")),
        ("disk", format!("d{}", i / 3)),
    ])
    .unwrap();
    Host::new(fp, &format!("h{i}"), "Linux").unwrap()
}

fuzz_target!(|data: &[u8]| {
    let ledger = Ledger::new("LICET").unwrap();
    let mut state = MemState::new();
    let mut rng = SeededEntropy::new(data.len() as u64);
    let mut now: DateTime<Utc> = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let products = ["call-journal", "recorder"];
    for p in products {
        let settings = ProductSettings { trial_seats: Some(2), trial_days: Some(3), ..Default::default() };
        state.transact(|tx| ledger.upsert_product(tx, p, &settings)).unwrap();
    }
    let mut coupons = Vec::new();
    for (seats, term) in [(1, None), (3, None), (2, Some(10))] {
        let batch = CouponBatch { product: "call-journal".into(), count: 2, seats, term_days: term };
        coupons.extend(state.transact(|tx| ledger.issue_coupons(tx, now, &mut rng, &batch)).unwrap());
    }
    let mut numbers: Vec<String> = Vec::new();
    for chunk in data.chunks(3) {
        let [op, a, b] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let number = (!numbers.is_empty()).then(|| numbers[a as usize % numbers.len()].clone());
        let product = products[(b & 1) as usize];
        match (op % 8, number) {
            (0, _) => {
                let reg = Registration {
                    email: format!("u{}@example.com", a % 6),
                    organization: "O".into(),
                    contact: None,
                    phone: None,
                    product: product.into(),
                    host: host(b),
                };
                if let Ok(r) = state.transact(|tx| ledger.register(tx, now, &mut rng, &reg)) {
                    numbers.push(r.number.to_string());
                }
            }
            (1, Some(n)) => drop(state.transact(|tx| ledger.activate(tx, now, &mut rng, &n, product, &host(b >> 1)))),
            (2, Some(n)) => drop(state.transact(|tx| ledger.trial(tx, now, &mut rng, &n, product, &host(b >> 1)))),
            (3, n) => {
                let code = coupons[b as usize % coupons.len()].to_string();
                drop(state.transact(|tx| ledger.redeem(tx, now, &mut rng, n.as_deref(), &code)));
            }
            (4, Some(n)) => drop(state.transact(|tx| ledger.deactivate(tx, &n, product, &host(b >> 1)))),
            (5, Some(n)) => {
                let account = state.transact(|tx| ledger.authenticate(tx, &n)).unwrap();
                if let Some(binding) = account.bindings.get(b as usize % account.bindings.len().max(1)) {
                    state.transact(|tx| ledger.reset(tx, &n, &binding.id)).unwrap();
                }
            }
            (6, _) => now += Duration::hours(i64::from(a) * 4),
            _ => {}
        }
        if let Err(broken) = check_invariants(&state) {
            panic!("invariant broken: {broken}");
        }
    }
});

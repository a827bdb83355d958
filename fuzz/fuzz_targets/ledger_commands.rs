//! Random command sequences against the core ledger, its invariants checked after each.
#![no_main]

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use licet_core::{
    AccountFound, Checkout, Command, CouponBatch, CouponCode, Fingerprint, Host, HostCommand, Ledger, LicenseModel,
    MemState, Offer, Outcome, Product, ProductSettings, Registration, Secret, SeededEntropy, check_invariants,
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
        let settings = ProductSettings {
            trial_seats: Some(2),
            trial_days: Some(3),
            features: Some(["a".to_owned(), "b".to_owned()].into()),
            grace_days: Some(2),
            max_resets_per_30_days: Some(3),
            session_lease_seconds: Some(3600),
            max_borrow_hours: Some(24),
            ..Default::default()
        };
        state.execute::<Product>(&ledger, now, &mut rng, &Command::PutProduct { id: p.into(), settings }).unwrap();
    }
    let mut coupons: Vec<CouponCode> = Vec::new();
    let offers = [
        Offer::License { seats: 1, term_days: None, features: None, model: Default::default() },
        Offer::License {
            seats: 3,
            term_days: None,
            features: Some(["a".to_owned()].into()),
            model: Default::default(),
        },
        Offer::License { seats: 2, term_days: Some(10), features: None, model: Default::default() },
        Offer::Extend { days: 5 },
        Offer::Seats { seats: 2 },
        Offer::Upgrade { features: ["b".to_owned()].into() },
        Offer::License { seats: 2, term_days: Some(2), features: None, model: LicenseModel::Floating },
    ];
    let offers_again = offers.clone();
    for offer in offers {
        let batch = CouponBatch { product: "call-journal".into(), count: 2, offer };
        let issued: Vec<CouponCode> = state.execute(&ledger, now, &mut rng, &Command::IssueCoupons(batch)).unwrap();
        coupons.extend(issued);
    }
    let mut numbers: Vec<String> = Vec::new();
    for chunk in data.chunks(3) {
        let [op, a, b] = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let number = (!numbers.is_empty()).then(|| numbers[a as usize % numbers.len()].clone());
        let product = products[(b & 1) as usize];
        let on_host = |n: String| HostCommand { number: n.into(), product: product.into(), host: host(b >> 1) };
        // Every input byte triple becomes a command value, decided by the ledger's one dispatcher.
        let command = match (op % 13, number) {
            (0, _) => Command::Register(Registration {
                email: format!("u{}@example.com", a % 6),
                organization: "O".into(),
                contact: None,
                phone: None,
                product: product.into(),
                host: host(b),
                lang: Default::default(),
            }),
            (1, Some(n)) => Command::Activate(on_host(n)),
            (2, Some(n)) => Command::Trial(on_host(n)),
            (3, n) => Command::Redeem {
                number: n.map(Secret::from),
                coupon: coupons[b as usize % coupons.len()].to_string().into(),
            },
            (4, Some(n)) => Command::Deactivate(on_host(n)),
            (5, Some(n)) => {
                let found: AccountFound =
                    state.execute(&ledger, now, &mut rng, &Command::Account { credential: n.clone().into() }).unwrap();
                let Some(binding) = found.account.bindings.get(b as usize % found.account.bindings.len().max(1)) else {
                    continue;
                };
                Command::Reset { credential: n.into(), binding_id: binding.id.clone() }
            }
            (6, _) => {
                // Up to about a week in steps of ten minutes: sessions live an hour.
                now += Duration::minutes(i64::from(a) * 10 * i64::from(b % 4 + 1));
                continue;
            }
            (7, Some(n)) => Command::Checkout(Checkout {
                number: n.into(),
                product: product.into(),
                host: host(b >> 1),
                user: String::new(),
                borrow_hours: (a % 4 == 0).then_some(u32::from(a % 30)),
            }),
            (8 | 9, Some(n)) => {
                let found: AccountFound =
                    state.execute(&ledger, now, &mut rng, &Command::Account { credential: n.clone().into() }).unwrap();
                let Some(session) = found.account.sessions.get(b as usize % found.account.sessions.len().max(1)) else {
                    continue;
                };
                let (credential, session_id) = (n.into(), session.id.clone());
                match op % 13 {
                    8 => Command::Heartbeat { credential, session_id },
                    _ => Command::Release { credential, session_id },
                }
            }
            // The vendor's hand: grant an offer, revoke, extend, free a seat.
            (11 | 12, Some(n)) => {
                let found: AccountFound =
                    state.execute(&ledger, now, &mut rng, &Command::Account { credential: n.into() }).unwrap();
                let account_id = found.account.id.clone();
                let license = found.account.licenses.get(b as usize % found.account.licenses.len().max(1));
                let binding = found.account.bindings.get(b as usize % found.account.bindings.len().max(1));
                match (op % 13, (a >> 4) % 4, license, binding) {
                    (11, 0, _, _) => Command::Grant {
                        account_id,
                        product: product.into(),
                        offer: offers_again[b as usize % offers_again.len()].clone(),
                    },
                    (11, 1, Some(l), _) => Command::Revoke { account_id, license_id: l.id.clone() },
                    (11, _, Some(l), _) => Command::Extend { account_id, license_id: l.id.clone(), days: u32::from(a) },
                    (_, _, _, Some(bd)) => Command::FreeBinding { account_id, binding_id: bd.id.clone() },
                    _ => continue,
                }
            }
            _ => continue,
        };
        let result = state.transact(|tx| ledger.handle(tx, now, &mut rng, &command));
        if let (Command::Register(_), Ok(Outcome::Registered(r))) = (&command, &result) {
            numbers.push(r.number.to_string());
        }
        if let (Command::Reset { .. }, Err(e)) = (&command, &result)
            && e.code() != licet_core::Code::ResetLimitReached
        {
            panic!("resetting an own binding failed: {e}");
        }
        if let Err(broken) = check_invariants(state.records()) {
            panic!("invariant broken: {broken}");
        }
    }
});

//! Helpers shared by the store tests: a ledger driven through any `Store`.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Utc};
use licet_core::{
    CouponBatch, Error, Fingerprint, Host, Ledger, License, ProductSettings, Registered, Registration, Seat,
    SeededEntropy,
};
use licet_store::{Store, StoreExt};

pub const PRODUCT: &str = "call-journal";

pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

pub fn pc(tag: &str) -> Host {
    let fp = Fingerprint::new([
        ("machine-id", format!("m-{tag}")),
        ("mac", format!("a-{tag}")),
        ("disk", format!("d-{tag}")),
    ])
    .unwrap();
    Host::new(fp, tag, "Linux").unwrap()
}

/// A ledger over a store, with its own deterministic randomness per call site.
pub struct Env<S: Store> {
    pub store: S,
    pub ledger: Ledger,
}

impl<S: Store> Env<S> {
    pub fn new(store: S) -> Env<S> {
        let env = Env { store, ledger: Ledger::new("LICET").unwrap() };
        env.store.transact(|tx| env.ledger.upsert_product(tx, PRODUCT, &ProductSettings::default())).unwrap();
        env
    }

    pub fn register(&self, email: &str, host: &Host, seed: u64) -> Result<Registered, Error> {
        let reg = Registration {
            email: email.into(),
            organization: "Org".into(),
            contact: None,
            phone: None,
            product: PRODUCT.into(),
            host: host.clone(),
        };
        let mut rng = SeededEntropy::new(seed);
        self.store.transact(|tx| self.ledger.register(tx, now(), &mut rng, &reg))
    }

    pub fn activate(&self, number: &str, host: &Host, seed: u64) -> Result<Seat, Error> {
        let mut rng = SeededEntropy::new(seed);
        self.store.transact(|tx| self.ledger.activate(tx, now(), &mut rng, number, PRODUCT, host))
    }

    pub fn coupons(&self, count: u32, seats: u32, seed: u64) -> Vec<String> {
        let mut rng = SeededEntropy::new(seed);
        let batch = CouponBatch { product: PRODUCT.into(), count, seats, term_days: None };
        let codes = self.store.transact(|tx| self.ledger.issue_coupons(tx, now(), &mut rng, &batch)).unwrap();
        codes.iter().map(ToString::to_string).collect()
    }

    pub fn redeem(&self, number: &str, coupon: &str, seed: u64) -> Result<License, Error> {
        let mut rng = SeededEntropy::new(seed);
        self.store.transact(|tx| self.ledger.redeem(tx, now(), &mut rng, Some(number), coupon))
    }

    pub fn account(&self, email: &str) -> Option<licet_core::Account> {
        self.store.transact(|tx| self.ledger.account_by_email(tx, email)).unwrap()
    }
}

//! Helpers shared by the store tests: a ledger driven through any `Store`.
#![allow(dead_code, unreachable_pub)]

use chrono::{DateTime, Utc};
use licet_core::{
    AccountFound, Command, CouponBatch, Error, Fingerprint, Host, HostCommand, Ledger, License, ProductSettings,
    Redeemed, Registered, Registration, Seat, SeededEntropy,
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
        let put = Command::PutProduct { id: PRODUCT.into(), settings: ProductSettings::default() };
        env.store.execute::<licet_core::Product>(&env.ledger, now(), &mut SeededEntropy::new(0), &put).unwrap();
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
            lang: Default::default(),
        };
        let mut rng = SeededEntropy::new(seed);
        self.store.execute(&self.ledger, now(), &mut rng, &Command::Register(reg))
    }

    pub fn activate(&self, number: &str, host: &Host, seed: u64) -> Result<Seat, Error> {
        let mut rng = SeededEntropy::new(seed);
        let request = HostCommand { number: number.into(), product: PRODUCT.into(), host: host.clone() };
        self.store.execute(&self.ledger, now(), &mut rng, &Command::Activate(request))
    }

    pub fn coupons(&self, count: u32, seats: u32, seed: u64) -> Vec<String> {
        let mut rng = SeededEntropy::new(seed);
        let batch = CouponBatch::licenses(PRODUCT, count, seats, None);
        let codes: Vec<licet_core::CouponCode> =
            self.store.execute(&self.ledger, now(), &mut rng, &Command::IssueCoupons(batch)).unwrap();
        codes.iter().map(ToString::to_string).collect()
    }

    pub fn redeem(&self, number: &str, coupon: &str, seed: u64) -> Result<License, Error> {
        let mut rng = SeededEntropy::new(seed);
        let redeem = Command::Redeem { number: Some(number.into()), coupon: coupon.into() };
        self.store.execute::<Redeemed>(&self.ledger, now(), &mut rng, &redeem).map(|r| r.license)
    }

    pub fn account(&self, email: &str) -> Option<licet_core::Account> {
        let find = Command::AccountByEmail { email: email.into() };
        let found: Option<AccountFound> =
            self.store.execute(&self.ledger, now(), &mut SeededEntropy::new(0), &find).unwrap();
        found.map(|f| f.account)
    }
}

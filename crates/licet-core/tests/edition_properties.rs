//! Properties of SPEC §10 under random schedules: features granted never exceed the license's,
//! an `extend` coupon never shortens a term, resets never exceed the limit in any 30 days.

mod sim;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use licet_core::{Code, Offer, ProductSettings};
use proptest::prelude::*;
use sim::{PRODUCT, Sim, pc};

const FEATURES: [&str; 4] = ["recording", "analytics", "export", "crm"];

/// The features whose bits are set in `mask`.
fn subset(mask: u8) -> BTreeSet<String> {
    FEATURES.iter().enumerate().filter(|(i, _)| mask & (1 << i) != 0).map(|(_, f)| (*f).to_owned()).collect()
}

#[derive(Clone, Debug)]
enum FeatureOp {
    /// A license coupon with these features (`None`: all of the product's).
    License(Option<u8>),
    Upgrade(u8),
    /// The product now declares these.
    Declare(u8),
    Activate(u8),
    Deactivate(u8),
}

fn feature_op() -> impl Strategy<Value = FeatureOp> {
    prop_oneof![
        prop::option::of(0..16u8).prop_map(FeatureOp::License),
        (1..16u8).prop_map(FeatureOp::Upgrade),
        (0..16u8).prop_map(FeatureOp::Declare),
        (0..4u8).prop_map(FeatureOp::Activate),
        (0..4u8).prop_map(FeatureOp::Deactivate),
    ]
}

#[derive(Clone, Debug)]
enum TermOp {
    Subscription(u16),
    Extend(u16),
    Advance(u16),
}

fn term_op() -> impl Strategy<Value = TermOp> {
    prop_oneof![
        (1..400u16).prop_map(TermOp::Subscription),
        (1..400u16).prop_map(TermOp::Extend),
        (1..400u16).prop_map(TermOp::Advance),
    ]
}

#[derive(Clone, Debug)]
enum SeatOp {
    Activate(u8),
    Deactivate(u8),
    Reset(u8),
    Advance(u16),
}

fn seat_op() -> impl Strategy<Value = SeatOp> {
    prop_oneof![
        (0..4u8).prop_map(SeatOp::Activate),
        (0..4u8).prop_map(SeatOp::Deactivate),
        any::<u8>().prop_map(SeatOp::Reset),
        (1..300u16).prop_map(SeatOp::Advance),
    ]
}

fn hosts() -> Vec<licet_core::Host> {
    (0..4).map(|i| pc(&format!("h{i}"))).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    /// Every token's features are among those its license holds and its product declares, and
    /// an upgrade only ever adds to a license's features.
    #[test]
    fn features_granted_never_exceed_the_licenses(ops in prop::collection::vec(feature_op(), 1..40)) {
        let mut sim = Sim::new();
        let mut declared = subset(0b1111);
        sim.product(PRODUCT, ProductSettings { features: Some(declared.clone()), ..Default::default() });
        let hosts = hosts();
        let number = sim.register("a@example.com", &hosts[0]).unwrap().number.to_string();
        for op in ops {
            let before = sim.account(&number).licenses;
            match op {
                FeatureOp::License(mask) => {
                    let offer = Offer::License { seats: 2, term_days: None, features: mask.map(subset), model: Default::default() };
                    match sim.issue_offer(PRODUCT, 1, offer) {
                        Ok(codes) => { sim.redeem(Some(&number), &codes[0].to_string()).unwrap(); }
                        Err(e) => prop_assert_eq!(e.code(), Code::InvalidRequest),
                    }
                }
                FeatureOp::Upgrade(mask) => {
                    match sim.issue_offer(PRODUCT, 1, Offer::Upgrade { features: subset(mask) }) {
                        Ok(codes) => if let Err(e) = sim.redeem(Some(&number), &codes[0].to_string()) {
                            prop_assert_eq!(e.code(), Code::NoLicenseForProduct);
                        },
                        Err(e) => prop_assert_eq!(e.code(), Code::InvalidRequest),
                    }
                }
                FeatureOp::Declare(mask) => {
                    declared = subset(mask);
                    sim.product(PRODUCT, ProductSettings { features: Some(declared.clone()), ..Default::default() });
                }
                FeatureOp::Activate(h) => {
                    if let Ok((seat, token)) = sim.activate(&number, &hosts[h as usize]) {
                        let claims = sim.keys.verify(&token).unwrap().claims().clone();
                        for f in &claims.features {
                            prop_assert!(declared.contains(f), "{f} is not declared");
                            if let Some(own) = &seat.license.features {
                                prop_assert!(own.contains(f), "{f} is not the license's");
                            }
                        }
                    }
                }
                FeatureOp::Deactivate(h) => { let _ = sim.deactivate(&number, &hosts[h as usize]); }
            }
            for after in sim.account(&number).licenses {
                if let Some(was) = before.iter().find(|l| l.id == after.id) {
                    match (&was.features, &after.features) {
                        (Some(was), Some(now)) => prop_assert!(was.is_subset(now), "features were taken away"),
                        (was, now) => prop_assert_eq!(was.is_none(), now.is_none()),
                    }
                }
            }
        }
    }

    /// No license's term ever ends earlier than it did, and an extension adds its days to the
    /// later of the old end and now.
    #[test]
    fn an_extend_coupon_never_shortens_a_term(ops in prop::collection::vec(term_op(), 1..40)) {
        let mut sim = Sim::new();
        let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
        for op in ops {
            let before: BTreeMap<String, Option<DateTime<Utc>>> =
                sim.account(&number).licenses.into_iter().map(|l| (l.id, l.expires_at)).collect();
            match op {
                TermOp::Subscription(days) => {
                    let offer = Offer::License { seats: 1, term_days: Some(u32::from(days)), features: None, model: Default::default() };
                    let code = sim.coupon(offer);
                    sim.redeem(Some(&number), &code).unwrap();
                }
                TermOp::Extend(days) => {
                    let code = sim.coupon(Offer::Extend { days: u32::from(days) });
                    let extended = sim.redeem(Some(&number), &code).unwrap();
                    let old = before[&extended.id].unwrap();
                    prop_assert_eq!(extended.expires_at, Some(old.max(sim.now) + Duration::days(i64::from(days))));
                    let latest = before.values().flatten().max().copied();
                    prop_assert_eq!(Some(old), latest, "not the term that ends last");
                }
                TermOp::Advance(days) => sim.advance(Duration::days(i64::from(days))),
            }
            for license in sim.account(&number).licenses {
                if let Some(Some(was)) = before.get(&license.id) {
                    prop_assert!(license.expires_at.is_some_and(|end| end >= *was), "a term got shorter");
                }
            }
        }
    }

    /// Resets and deactivations of a license that succeed never number more than the limit in
    /// any 30 days (both ends included), and one is refused (1054) only when the last 30 days
    /// hold the limit.
    #[test]
    fn resets_never_exceed_the_limit_in_any_30_days(
        limit in 1..4u32,
        ops in prop::collection::vec(seat_op(), 1..80),
    ) {
        let mut sim = Sim::new();
        sim.product(PRODUCT, ProductSettings {
            max_resets_per_30_days: Some(limit),
            trial_seats: Some(2),
            trial_days: Some(3650),
            ..Default::default()
        });
        let hosts = hosts();
        let number = sim.register("a@example.com", &hosts[0]).unwrap().number.to_string();
        let mut done: Vec<DateTime<Utc>> = Vec::new();
        for op in ops {
            let result = match op {
                SeatOp::Activate(h) => { let _ = sim.activate(&number, &hosts[h as usize]); continue; }
                SeatOp::Deactivate(h) => sim.deactivate(&number, &hosts[h as usize]),
                SeatOp::Reset(pick) => {
                    let bindings = sim.account(&number).bindings;
                    let Some(b) = bindings.get(pick as usize % bindings.len().max(1)) else { continue };
                    sim.reset(&number, &b.id)
                }
                SeatOp::Advance(hours) => { sim.advance(Duration::hours(i64::from(hours))); continue; }
            };
            let recent = done.iter().filter(|t| **t >= sim.now - Duration::days(30)).count() as u32;
            match result {
                Ok(()) => { prop_assert!(recent < limit); done.push(sim.now); }
                Err(e) if e.code() == Code::ResetLimitReached => prop_assert_eq!(recent, limit),
                Err(e) => prop_assert_eq!(e.code(), Code::BindingNotFound),
            }
        }
        for (i, start) in done.iter().enumerate() {
            let window = done[i..].iter().take_while(|t| **t <= *start + Duration::days(30)).count() as u32;
            prop_assert!(window <= limit, "{window} resets in 30 days from {start}, limit {limit}");
        }
    }
}

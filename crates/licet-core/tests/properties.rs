//! Invariants under random command sequences from many hosts and accounts.

mod sim;

use std::collections::BTreeMap;

use chrono::Duration;
use licet_core::{Code, Host, ProductSettings};
use proptest::prelude::*;
use sim::{PRODUCT, Sim, host};

const RECORDER: &str = "recorder";

#[derive(Clone, Debug)]
enum Op {
    Register { email: u8, host: u8 },
    Activate { account: u8, host: u8, recorder: bool },
    Trial { account: u8, host: u8, recorder: bool },
    Redeem { account: u8, coupon: u8 },
    Deactivate { account: u8, host: u8 },
    Reset { account: u8, pick: u8 },
    Advance { hours: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5u8, 0..10u8).prop_map(|(email, host)| Op::Register { email, host }),
        (0..6u8, 0..10u8, any::<bool>()).prop_map(|(account, host, recorder)| Op::Activate { account, host, recorder }),
        (0..6u8, 0..10u8, any::<bool>()).prop_map(|(account, host, recorder)| Op::Trial { account, host, recorder }),
        (0..6u8, 0..6u8).prop_map(|(account, coupon)| Op::Redeem { account, coupon }),
        (0..6u8, 0..10u8).prop_map(|(account, host)| Op::Deactivate { account, host }),
        (0..6u8, any::<u8>()).prop_map(|(account, pick)| Op::Reset { account, pick }),
        (1..2000u16).prop_map(|hours| Op::Advance { hours }),
    ]
}

/// Ten hosts; neighbours share components, so the two-thirds rule is exercised both ways.
fn hosts() -> Vec<Host> {
    (0..10)
        .map(|i| {
            let mid = format!("m{}", i / 2);
            let mac = format!("n{i}");
            let disk = format!("d{}", i / 3);
            host(&format!("h{i}"), &[("machine-id", &mid), ("mac", &mac), ("disk", &disk)])
        })
        .collect()
}

fn check_invariants(state: &licet_core::MemState) {
    if let Err(broken) = licet_core::check_invariants(state.records()) {
        panic!("invariant broken: {broken}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_every_invariant(ops in prop::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let mut sim = Sim::with_seed(seed);
        sim.product(RECORDER, ProptestSettings::recorder());
        let hosts = hosts();
        let mut coupons = sim.coupons(3, 2, None);
        coupons.extend(sim.coupons(2, 1, Some(30)));
        coupons.push("MIKOUPD-00000-00000-00000-00000".into());
        let mut numbers: Vec<String> = Vec::new();
        let mut redeemed: BTreeMap<String, (String, String)> = BTreeMap::new();
        let stranger = host("stranger", &[("machine-id", "zz"), ("mac", "zz"), ("disk", "zz")]);

        for op in ops {
            let pick = |i: u8| numbers.get(i as usize % numbers.len().max(1)).cloned();
            match op {
                Op::Register { email, host } => {
                    if let Ok(reg) = sim.register(&format!("user{email}@example.com"), &hosts[host as usize]) {
                        numbers.push(reg.number.to_string());
                    }
                }
                Op::Activate { account, host, recorder } => {
                    let Some(number) = pick(account) else { continue };
                    let product = if recorder { RECORDER } else { PRODUCT };
                    let h = &hosts[host as usize];
                    match sim.activate_product(&number, product, h) {
                        Ok((grant, token)) => {
                            let verified = sim.keys.verify(&token).expect("issued tokens verify");
                            let mine = verified.judge(product, &h.fingerprint.digest(), sim.now, None);
                            prop_assert!(mine.result.is_ok(), "{:?}", mine.result);
                            let theirs = verified.judge(product, &stranger.fingerprint.digest(), sim.now, None);
                            prop_assert_eq!(theirs.result.unwrap_err().code(), Code::HostMismatch);
                            prop_assert!(grant.seats_used <= grant.license.seats);
                        }
                        Err(e) => prop_assert!(matches!(e.code(),
                            Code::NoFreeLicense | Code::LicenseExpired | Code::NoLicenseForProduct), "{e}"),
                    }
                }
                Op::Trial { account, host, recorder } => {
                    let Some(number) = pick(account) else { continue };
                    let product = if recorder { RECORDER } else { PRODUCT };
                    if let Err(e) = sim.trial(&number, product, &hosts[host as usize]) {
                        prop_assert!(matches!(e.code(), Code::TrialAlreadyUsed | Code::NoFreeLicense), "{e}");
                    }
                }
                Op::Redeem { account, coupon } => {
                    let Some(number) = pick(account) else { continue };
                    let code = &coupons[coupon as usize];
                    let account_id = sim.account(&number).id;
                    match sim.redeem(Some(&number), code) {
                        Ok(license) => {
                            let first = redeemed.entry(code.clone()).or_insert((account_id.clone(), license.id.clone()));
                            prop_assert_eq!(first, &(account_id, license.id), "a coupon redeemed twice");
                        }
                        Err(e) => prop_assert!(matches!(e.code(), Code::CouponAlreadyRedeemed | Code::InvalidCoupon), "{e}"),
                    }
                }
                Op::Deactivate { account, host } => {
                    let Some(number) = pick(account) else { continue };
                    if let Err(e) = sim.deactivate(&number, &hosts[host as usize]) {
                        prop_assert_eq!(e.code(), Code::BindingNotFound);
                    }
                }
                Op::Reset { account, pick: p } => {
                    let Some(number) = pick(account) else { continue };
                    let bindings = sim.account(&number).bindings;
                    if let Some(b) = bindings.get(p as usize % bindings.len().max(1)) {
                        sim.reset(&number, &b.id).unwrap();
                    }
                }
                Op::Advance { hours } => sim.advance(Duration::hours(i64::from(hours))),
            }
            check_invariants(&sim.state);
        }
    }
}

struct ProptestSettings;

impl ProptestSettings {
    fn recorder() -> ProductSettings {
        ProductSettings { trial_days: Some(3), trial_seats: Some(2), ..Default::default() }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Components change one at a time, any number of times (values from a small alphabet, so a
    /// machine can also change back): the seat is the host's exactly while it matches the
    /// fingerprint it was first bound with, and the binding never moves its anchor.
    #[test]
    fn a_binding_never_drifts_beyond_the_rule(steps in prop::collection::vec((0..3usize, 0..4u8), 1..40)) {
        let mut sim = Sim::new();
        let names = ["machine-id", "mac", "disk"];
        let mut values = [0u8; 3];
        let make = |values: &[u8; 3]| {
            let components: Vec<(&str, String)> =
                names.iter().zip(values).map(|(n, v)| (*n, format!("{n}-{v}"))).collect();
            let pairs: Vec<(&str, &str)> = components.iter().map(|(n, v)| (*n, v.as_str())).collect();
            host("pc", &pairs)
        };
        let first = make(&values);
        let number = sim.register("a@example.com", &first).unwrap().number.to_string();
        for (component, value) in steps {
            values[component] = value;
            let presented = make(&values);
            let same_machine = first.fingerprint.matches(&presented.fingerprint);
            match sim.activate(&number, &presented) {
                Ok((seat, _)) => {
                    prop_assert!(same_machine, "a host beyond the rule got the seat");
                    prop_assert_eq!(&seat.binding.anchor, &first.fingerprint);
                }
                Err(e) => {
                    prop_assert!(!same_machine, "the machine lost its seat: {}", e);
                    prop_assert_eq!(e.code(), Code::NoFreeLicense);
                }
            }
            let account = sim.account(&number);
            prop_assert_eq!(account.bindings.len(), 1);
            prop_assert_eq!(&account.bindings[0].anchor, &first.fingerprint);
        }
    }
}

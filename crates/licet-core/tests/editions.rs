//! SPEC §10 through the core: features, coupon kinds, grace periods and reset limits, on a
//! virtual clock.

mod sim;

use std::collections::BTreeSet;

use chrono::Duration;
use licet_core::{Code, Error, LicenseKind, Offer, ProductSettings, TokenFormat};
use sim::{AgentSim, PRODUCT, Sim, pc};

#[track_caller]
fn check<T: std::fmt::Debug>(result: Result<T, Error>, code: Code) {
    match result {
        Err(e) => assert_eq!(e.code(), code, "{e}"),
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
    }
}

fn set(features: &[&str]) -> BTreeSet<String> {
    features.iter().map(|f| (*f).to_owned()).collect()
}

fn features(list: &[&str]) -> Vec<String> {
    list.iter().map(|f| (*f).to_owned()).collect()
}

/// A product with three features, and an account (registered on `a`, so holding a trial).
fn edition_sim() -> (Sim, String) {
    let mut sim = Sim::new();
    let settings = ProductSettings { features: Some(set(&["recording", "analytics", "export"])), ..Default::default() };
    sim.product(PRODUCT, settings);
    let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    (sim, number)
}

fn license(features: Option<&[&str]>) -> Offer {
    Offer::License { seats: 2, term_days: None, features: features.map(set), model: Default::default() }
}

#[test]
fn a_trial_grants_every_feature_and_a_license_only_its_own() {
    let (mut sim, number) = edition_sim();
    let trial_seat = sim.activate(&number, &pc("a")).unwrap().0;
    assert_eq!(
        trial_seat.license.features_granted(&trial_seat.product),
        features(&["analytics", "export", "recording"])
    );

    let coupon = sim.coupon(license(Some(&["recording"])));
    sim.redeem(Some(&number), &coupon).unwrap();
    // The host moves from the trial to the paid license, and its token says what that grants.
    let (seat, token) = sim.activate(&number, &pc("a")).unwrap();
    assert_eq!(seat.license.kind, LicenseKind::Perpetual);
    let mut agent = AgentSim::new(pc("a"));
    agent.token = Some(token);
    let grant = agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    assert_eq!(grant.features, features(&["recording"]));
    assert!(grant.has_feature("recording") && !grant.has_feature("analytics"));

    // An upgrade adds features to that license; the next token carries them.
    let upgrade = sim.coupon(Offer::Upgrade { features: set(&["analytics"]) });
    let upgraded = sim.redeem(Some(&number), &upgrade).unwrap();
    assert_eq!(upgraded.id, seat.license.id);
    let (_, token) = sim.activate(&number, &pc("a")).unwrap();
    agent.token = Some(token);
    assert_eq!(
        agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap().features,
        features(&["analytics", "recording"])
    );

    // Release 0.1.0's token format carries no features.
    let seat = sim.activate(&number, &pc("a")).unwrap().0;
    agent.token = Some(sim.signer.issue_as(&seat, sim.now, TokenFormat::V1, None));
    assert!(agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap().features.is_empty());
}

#[test]
fn coupons_offer_only_declared_features_and_need_a_license_to_change() {
    let (mut sim, number) = edition_sim();
    let bad = |sim: &mut Sim, offer| sim.issue_offer(PRODUCT, 1, offer);
    check(bad(&mut sim, license(Some(&["teleport"]))), Code::InvalidRequest);
    check(bad(&mut sim, Offer::Upgrade { features: set(&[]) }), Code::InvalidRequest);
    check(bad(&mut sim, Offer::Upgrade { features: set(&["Bad Slug"]) }), Code::InvalidRequest);
    check(bad(&mut sim, Offer::Extend { days: 0 }), Code::InvalidRequest);
    check(bad(&mut sim, Offer::Seats { seats: 0 }), Code::InvalidRequest);

    // The account holds only a trial: nothing paid to add seats or features to.
    let seats = sim.coupon(Offer::Seats { seats: 1 });
    check(sim.redeem(Some(&number), &seats), Code::NoLicenseForProduct);
    let upgrade = sim.coupon(Offer::Upgrade { features: set(&["export"]) });
    check(sim.redeem(Some(&number), &upgrade), Code::NoLicenseForProduct);
    // A refused redemption leaves the coupon unredeemed, for this account once it can use it.
    let paid = sim.coupon(license(Some(&["recording"])));
    sim.redeem(Some(&number), &paid).unwrap();
    let added = sim.redeem(Some(&number), &seats).unwrap();
    assert_eq!((added.kind, added.seats), (LicenseKind::Perpetual, 3));
    // Redeemed again by the same account: the same license, not three more seats.
    assert_eq!(sim.redeem(Some(&number), &seats).unwrap().seats, 3);
    let other = sim.register("b@example.com", &pc("b")).unwrap().number.to_string();
    check(sim.redeem(Some(&other), &seats), Code::CouponAlreadyRedeemed);

    // A product that stops declaring a feature stops granting it.
    sim.redeem(Some(&number), &upgrade).unwrap();
    sim.product(PRODUCT, ProductSettings { features: Some(set(&["recording"])), ..Default::default() });
    let seat = sim.activate(&number, &pc("a")).unwrap().0;
    assert_eq!(seat.license.features_granted(&seat.product), features(&["recording"]));
}

#[test]
fn an_extend_coupon_lengthens_the_term_that_ends_last_from_its_end_or_from_now() {
    let (mut sim, number) = edition_sim();
    let trial_end = sim.account(&number).licenses[0].expires_at.unwrap();
    // Only a trial: it is extended.
    let coupon = sim.coupon(Offer::Extend { days: 10 });
    let extended = sim.redeem(Some(&number), &coupon).unwrap();
    assert_eq!((extended.kind, extended.expires_at), (LicenseKind::Trial, Some(trial_end + Duration::days(10))));

    let sub = sim.coupon(Offer::License { seats: 1, term_days: Some(365), features: None, model: Default::default() });
    let sub = sim.redeem(Some(&number), &sub).unwrap();
    let year_end = sub.expires_at.unwrap();
    let coupon = sim.coupon(Offer::Extend { days: 30 });
    let extended = sim.redeem(Some(&number), &coupon).unwrap();
    assert_eq!((extended.id.as_str(), extended.expires_at), (sub.id.as_str(), Some(year_end + Duration::days(30))));
    // A retry does not extend twice.
    assert_eq!(sim.redeem(Some(&number), &coupon).unwrap().expires_at, Some(year_end + Duration::days(30)));

    // Long after it ended, an extension counts from now.
    sim.advance(Duration::days(800));
    check(sim.activate(&number, &pc("a")), Code::LicenseExpired);
    let coupon = sim.coupon(Offer::Extend { days: 30 });
    let extended = sim.redeem(Some(&number), &coupon).unwrap();
    assert_eq!(extended.expires_at, Some(sim.now + Duration::days(30)));
    sim.activate(&number, &pc("a")).unwrap();

    // Perpetual licenses have no term to extend: an account with only one is refused.
    sim.product("recorder", ProductSettings::default());
    let perpetual = sim.issue_offer("recorder", 1, license(None)).unwrap()[0].to_string();
    sim.redeem(Some(&number), &perpetual).unwrap();
    let extend = sim.issue_offer("recorder", 1, Offer::Extend { days: 30 }).unwrap()[0].to_string();
    check(sim.redeem(Some(&number), &extend), Code::NoLicenseForProduct);
}

#[test]
fn grace_keeps_checks_passing_after_the_term_then_ends() {
    let (mut sim, number) = edition_sim();
    sim.product(PRODUCT, ProductSettings { grace_days: Some(7), ..Default::default() });
    let sub = sim.coupon(Offer::License { seats: 1, term_days: Some(30), features: None, model: Default::default() });
    let sub = sim.redeem(Some(&number), &sub).unwrap();
    let end = sub.expires_at.unwrap();

    sim.advance(Duration::days(32));
    let (seat, token) = sim.activate(&number, &pc("a")).unwrap();
    assert_eq!(seat.license.id, sub.id);
    let facts = seat.license.facts(&seat.product, sim.now);
    assert_eq!(facts.grace_until, Some(end + Duration::days(7)));
    let mut agent = AgentSim::new(pc("a"));
    agent.token = Some(token);
    let grant = agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    assert!(grant.in_grace);
    assert_eq!(grant.expires_at, Some(end));
    // The lease never outlasts the grace.
    assert_eq!(grant.lease_until, end + Duration::days(7));
    // A 0.1.0 agent's token has the grace folded into its term.
    let legacy = sim.signer.issue_as(&seat, sim.now, TokenFormat::V1, None);
    let verified = sim.keys.verify(&legacy).unwrap();
    assert_eq!(verified.claims().expires_at, Some((end + Duration::days(7)).timestamp()));
    assert_eq!(verified.claims().grace_until, None);

    // Offline, the cached token stops at the grace's end; online, the server says 1052.
    check(agent.check_offline(&sim.keys, PRODUCT, end + Duration::days(7)), Code::LicenseExpired);
    sim.advance(Duration::days(6));
    check(sim.activate(&number, &pc("a")), Code::LicenseExpired);
}

#[test]
fn a_host_on_a_license_in_grace_moves_to_its_renewal() {
    let (mut sim, number) = edition_sim();
    sim.product(PRODUCT, ProductSettings { grace_days: Some(7), ..Default::default() });
    let sub = sim.coupon(Offer::License { seats: 1, term_days: Some(30), features: None, model: Default::default() });
    let sub = sim.redeem(Some(&number), &sub).unwrap();
    assert_eq!(sim.activate(&number, &pc("a")).unwrap().0.license.id, sub.id);
    sim.advance(Duration::days(31));
    assert_eq!(sim.activate(&number, &pc("a")).unwrap().0.license.id, sub.id, "in grace, nothing better");
    let renewal =
        sim.coupon(Offer::License { seats: 1, term_days: Some(365), features: None, model: Default::default() });
    let renewal = sim.redeem(Some(&number), &renewal).unwrap();
    let (seat, token) = sim.activate(&number, &pc("a")).unwrap();
    assert_eq!(seat.license.id, renewal.id);
    let mut agent = AgentSim::new(pc("a"));
    agent.token = Some(token);
    assert!(!agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap().in_grace);
    // The old license's seat is free for another host, for what is left of its grace.
    assert_eq!(sim.activate(&number, &pc("b")).unwrap().0.license.id, sub.id);
}

#[test]
fn resets_and_deactivations_share_a_limit_per_license_and_30_days() {
    let (mut sim, number) = edition_sim();
    sim.product(PRODUCT, ProductSettings { max_resets_per_30_days: Some(2), ..Default::default() });
    let resets_left = |sim: &mut Sim| {
        let account = sim.account(&number);
        let product = sim.state.records().find_map(|(_, r)| match r {
            licet_core::Record::Product(p) if p.id == PRODUCT => Some(p.clone()),
            _ => None,
        });
        account.licenses[0].resets_left(&product.unwrap(), sim.now)
    };
    assert_eq!(resets_left(&mut sim), Some(2));
    sim.deactivate(&number, &pc("a")).unwrap();
    sim.activate(&number, &pc("b")).unwrap();
    assert_eq!(resets_left(&mut sim), Some(1));
    let binding = sim.account(&number).bindings[0].id.clone();
    sim.reset(&number, &binding).unwrap();
    assert_eq!(resets_left(&mut sim), Some(0));
    sim.activate(&number, &pc("c")).unwrap();
    check(sim.deactivate(&number, &pc("c")), Code::ResetLimitReached);
    let binding = sim.account(&number).bindings[0].id.clone();
    check(sim.reset(&number, &binding), Code::ResetLimitReached);
    // The refused reset freed nothing.
    assert_eq!(sim.account(&number).bindings.len(), 1);

    // The resets leave the window once 30 days have passed since them, not a second earlier.
    sim.advance(Duration::days(30));
    assert_eq!(resets_left(&mut sim), Some(0));
    sim.advance(Duration::seconds(1));
    assert_eq!(resets_left(&mut sim), Some(2));
    sim.deactivate(&number, &pc("c")).unwrap();

    // No limit: resets are still remembered, so a limit set later counts them.
    sim.product(PRODUCT, ProductSettings { max_resets_per_30_days: Some(0), ..Default::default() });
    assert_eq!(resets_left(&mut sim), None);
}

#[test]
fn the_largest_feature_list_a_product_may_declare_fits_in_a_token_agents_read() {
    let mut sim = Sim::new();
    let slug = |i: usize| format!("{i:02}-{}", "f".repeat(61));
    let largest: BTreeSet<String> = (0..16).map(slug).collect();
    assert_eq!(largest.iter().map(String::len).sum::<usize>(), licet_core::model::MAX_FEATURE_CHARS);
    sim.product(PRODUCT, ProductSettings { features: Some(largest.clone()), ..Default::default() });
    let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    let (_, token) = sim.activate(&number, &pc("a")).unwrap();
    assert_eq!(sim.keys.verify(&token).unwrap().claims().features.len(), 16);
    // One character more is refused, and the product keeps its list.
    let mut over = largest.clone();
    over.insert("x".into());
    let put = licet_core::Command::PutProduct {
        id: PRODUCT.into(),
        settings: ProductSettings { features: Some(over), ..Default::default() },
    };
    check(sim.exec::<licet_core::Product>(put), Code::InvalidRequest);
    let (seat, _) = sim.activate(&number, &pc("a")).unwrap();
    assert_eq!(seat.product.features, largest);
}

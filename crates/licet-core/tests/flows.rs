//! Every flow of SPEC §2 and §3, driven through the core's public API on a virtual clock.

mod sim;

use chrono::Duration;
use licet_core::{
    AccountFound, Code, Command, Error, Lang, LicenseKind, Message, Product, ProductSettings, Redeemed, Registered,
    Registration, RegistrationNumber, TrialStarted,
};
use sim::{AgentSim, PRODUCT, Sim, host, pc};

/// Asserts that `result` failed with `code`.
#[track_caller]
fn check<T: std::fmt::Debug>(result: Result<T, Error>, code: Code) {
    match result {
        Err(e) => assert_eq!(e.code(), code, "{e}"),
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
    }
}

#[test]
fn register_creates_an_account_with_a_trial_bound_to_the_host() {
    let mut sim = Sim::new();
    let a = pc("a");
    let reg = sim.register("Boss@Example.com", &a).unwrap();
    let number = reg.number.to_string();
    assert!(number.starts_with("MIKO-") && number.len() == 28);
    assert_eq!(reg.seat.license.kind, LicenseKind::Trial);
    assert_eq!(reg.seat.license.expires_at, Some(sim.now + Duration::days(30)));
    assert_eq!(reg.seat.seats_used, 1);
    // The mail is queued with the account, in the account's language.
    let mails = sim.mails();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, "Boss@Example.com");
    assert_eq!(mails[0].lang, Lang::Ru);
    match &mails[0].message {
        Message::Registered { number: n, trial_ends, product_name, .. } => {
            assert_eq!((n, *trial_ends), (&number, reg.seat.license.expires_at));
            assert_eq!(product_name, &reg.seat.product.name);
        }
        other => panic!("{other:?}"),
    }
    assert!(!format!("{:?}", mails[0]).contains(&number), "Debug of a mail must not leak the number");

    let token = sim.signer.issue(&reg.seat, sim.now);
    let mut agent = AgentSim::new(a);
    agent.token = Some(token);
    let grant = agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    assert_eq!(grant.kind, LicenseKind::Trial);
    assert_eq!(grant.lease_until, sim.now + Duration::hours(168));

    // Entering the number on the host lists the account's licenses.
    let account = sim.account(&number);
    assert_eq!(account.licenses.len(), 1);
    assert_eq!(account.bindings.len(), 1);
}

#[test]
fn register_guards_email_host_product_and_input() {
    let mut sim = Sim::new();
    sim.register("boss@example.com", &pc("a")).unwrap();
    check(sim.register("BOSS@example.COM", &pc("b")), Code::EmailAlreadyRegistered);
    check(sim.register("other@example.com", &pc("a")), Code::HostAlreadyRegistered);
    // A registered host learns nothing about e-mails: 1059 comes first (SPEC §2.1), whether or not
    // the e-mail is taken.
    check(sim.register("boss@example.com", &pc("a")), Code::HostAlreadyRegistered);
    // The same host with a new network card is still the same host.
    let a_new_nic = host("a", &[("machine-id", "m-a"), ("mac", "new"), ("disk", "d-a")]);
    check(sim.register("other@example.com", &a_new_nic), Code::HostAlreadyRegistered);
    // Two components changed: a new host.
    let b = host("b", &[("machine-id", "m-a"), ("mac", "x"), ("disk", "y")]);
    sim.register("other@example.com", &b).unwrap();
    for bad in ["", "nobody", "a@b", "a b@example.com", "@example.com", "a@.com", "a@example..com"] {
        check(sim.register(bad, &pc("z")), Code::InvalidRequest);
    }
    let reg = Registration { product: "no-such-product".into(), ..Sim::registration("x@example.com", &pc("x")) };
    check(sim.exec::<Registered>(Command::Register(reg.clone())), Code::UnknownProduct);
    let reg = Registration { organization: "  ".into(), product: PRODUCT.into(), ..reg };
    check(sim.exec::<Registered>(Command::Register(reg.clone())), Code::InvalidRequest);
    // Refused commands wrote nothing: the e-mail is still free.
    let reg = Registration { organization: "X".into(), ..reg };
    sim.exec::<Registered>(Command::Register(reg)).unwrap();
}

#[test]
fn a_number_with_a_typo_is_refused_without_a_lookup_and_an_unknown_one_after() {
    let mut sim = Sim::new();
    let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    let mut typo = number.clone().into_bytes();
    typo[7] = if typo[7] == b'7' { b'8' } else { b'7' };
    let typo = String::from_utf8(typo).unwrap();
    check(RegistrationNumber::parse(&typo), Code::InvalidRegistrationNumber);
    check(sim.activate(&typo, &pc("a")), Code::InvalidRegistrationNumber);
    let unknown = RegistrationNumber::generate("MIKO", &mut licet_core::SeededEntropy::new(99)).to_string();
    check(sim.activate(&unknown, &pc("a")), Code::InvalidRegistrationNumber);
    let foreign = RegistrationNumber::generate("ACME", &mut licet_core::SeededEntropy::new(99)).to_string();
    check(sim.activate(&foreign, &pc("a")), Code::InvalidRegistrationNumber);
    // Typed in lower case with spaces and O for 0: the same account.
    let sloppy = number.to_lowercase().replace('0', "o").replace('-', " - ");
    sim.activate(&sloppy, &pc("a")).unwrap();
}

#[test]
fn a_trial_is_once_per_account_and_product() {
    let mut sim = Sim::new();
    sim.product("recorder", ProductSettings { trial_days: Some(14), trial_seats: Some(2), ..Default::default() });
    let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    check(sim.trial(&number, PRODUCT, &pc("a")), Code::TrialAlreadyUsed);
    let TrialStarted { trial, seat: grant } = sim.trial(&number, "recorder", &pc("a")).unwrap();
    assert_eq!((trial.kind, trial.seats), (LicenseKind::Trial, 2));
    assert_eq!(trial.expires_at, Some(sim.now + Duration::days(14)));
    assert_eq!(grant.license.id, trial.id);
    check(sim.trial(&number, "recorder", &pc("b")), Code::TrialAlreadyUsed);
    check(sim.trial(&number, "nope", &pc("b")), Code::UnknownProduct);
    // Two trial seats: a second host fits, a third does not.
    sim.activate_product(&number, "recorder", &pc("b")).unwrap();
    check(sim.activate_product(&number, "recorder", &pc("c")), Code::NoFreeLicense);
}

#[test]
fn coupons_need_a_number_are_single_use_and_retry_safe() {
    let mut sim = Sim::new();
    let codes = sim.coupons(3, 2, None);
    assert!(codes.iter().all(|c| c.starts_with("MIKOUPD-")));
    let n1 = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    let n2 = sim.register("b@example.com", &pc("b")).unwrap().number.to_string();

    check(sim.redeem(None, &codes[0]), Code::RegistrationNumberRequired);
    check(sim.redeem(Some("  "), &codes[0]), Code::RegistrationNumberRequired);
    check(sim.redeem(Some(&n1), "MIKOUPD-00000-00000-00000-00000"), Code::InvalidCoupon);
    check(sim.redeem(Some(&n1), &n2), Code::InvalidCoupon);

    let license = sim.redeem(Some(&n1), &codes[0]).unwrap();
    assert_eq!((license.kind, license.seats, license.expires_at), (LicenseKind::Perpetual, 2, None));
    // A retry after a lost answer: the same license, not a second one.
    assert_eq!(sim.redeem(Some(&n1), &codes[0].to_lowercase()).unwrap(), license);
    assert_eq!(sim.account(&n1).licenses.len(), 2);
    check(sim.redeem(Some(&n2), &codes[0]), Code::CouponAlreadyRedeemed);
    assert_eq!(sim.account(&n2).licenses.len(), 1);

    let sub = sim.coupons(1, 1, Some(365)).remove(0);
    let license = sim.redeem(Some(&n2), &sub).unwrap();
    assert_eq!(license.kind, LicenseKind::Subscription);
    assert_eq!(license.expires_at, Some(sim.now + Duration::days(365)));

    // Batch limits.
    check(sim.issue(PRODUCT, 0, 1, None), Code::InvalidRequest);
    check(sim.issue(PRODUCT, 10_001, 1, None), Code::InvalidRequest);
    check(sim.issue("nope", 1, 1, None), Code::UnknownProduct);
    check(sim.issue(PRODUCT, 1, 0, None), Code::InvalidRequest);
}

#[test]
fn check_prefers_paid_licenses_and_moves_trial_hosts() {
    let mut sim = Sim::new();
    let a = pc("a");
    let number = sim.register("a@example.com", &a).unwrap().number.to_string();
    let sub_code = sim.coupons(1, 1, Some(100)).remove(0);
    let sub = sim.redeem(Some(&number), &sub_code).unwrap();
    // The host on the trial moves to the paid license.
    let (grant, _) = sim.activate(&number, &a).unwrap();
    assert_eq!(grant.license.id, sub.id);
    let account = sim.account(&number);
    assert_eq!(account.bindings.len(), 1, "the trial seat was released");
    // A second host: the subscription is full, the trial has a free seat again.
    let (grant, _) = sim.activate(&number, &pc("b")).unwrap();
    assert_eq!(grant.license.kind, LicenseKind::Trial);
    // A perpetual license is preferred over everything for a new host.
    let perp_code = sim.coupons(1, 1, None).remove(0);
    let perp = sim.redeem(Some(&number), &perp_code).unwrap();
    let (grant, _) = sim.activate(&number, &pc("c")).unwrap();
    assert_eq!(grant.license.id, perp.id);
    check(sim.activate(&number, &pc("d")), Code::NoFreeLicense);
    // Two subscriptions: the later expiry first.
    let long = sim.coupons(1, 1, Some(400)).remove(0);
    let long = sim.redeem(Some(&number), &long).unwrap();
    let (grant, _) = sim.activate(&number, &pc("e")).unwrap();
    assert_eq!(grant.license.id, long.id);
}

#[test]
fn a_refresh_with_one_new_component_keeps_the_seat_but_the_binding_never_drifts() {
    let mut sim = Sim::new();
    let a = pc("a");
    let number = sim.register("a@example.com", &a).unwrap().number.to_string();
    let a2 = host("a", &[("machine-id", "m-a"), ("mac", "new-nic"), ("disk", "d-a")]);
    let (seat, token) = sim.activate(&number, &a2).unwrap();
    assert_eq!(seat.seats_used, 1);
    assert_eq!(seat.binding.host, a2, "the binding shows the host as last seen");
    assert_eq!(seat.binding.anchor, a.fingerprint, "… but stays anchored where it began");
    // The new token is for the host as it is now.
    let mut agent = AgentSim::new(a2);
    agent.token = Some(token);
    agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    // A second change relative to the original is another machine: {a,b,c} → {a,b,X} → {a,Y,X}
    // must not walk the seat away from the machine that took it.
    let a3 = host("a", &[("machine-id", "m-a"), ("mac", "new-nic"), ("disk", "new-disk")]);
    check(sim.activate(&number, &a3), Code::NoFreeLicense);
    // The original machine still holds its seat.
    assert_eq!(sim.activate(&number, &a).unwrap().0.seats_used, 1);
}

#[test]
fn no_license_and_expired_licenses_have_their_codes() {
    let mut sim = Sim::new();
    sim.product("recorder", ProductSettings::default());
    let a = pc("a");
    let number = sim.register("a@example.com", &a).unwrap().number.to_string();
    check(sim.activate_product(&number, "recorder", &a), Code::NoLicenseForProduct);
    check(sim.activate_product(&number, "no-such", &a), Code::UnknownProduct);
    check(sim.activate_product(&number, "BAD PRODUCT", &a), Code::UnknownProduct);
}

#[test]
fn a_thirty_day_trial_expires() {
    let mut sim = Sim::new();
    let a = pc("a");
    let reg = sim.register("a@example.com", &a).unwrap();
    let number = reg.number.to_string();
    let mut agent = AgentSim::new(a.clone());
    sim.advance(Duration::days(29));
    let (_, token) = sim.activate(&number, &a).unwrap();
    agent.token = Some(token);
    // The lease is cut at the end of the term.
    let grant = agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    assert_eq!(grant.lease_until, reg.seat.license.expires_at.unwrap());
    sim.advance(Duration::days(1));
    check(sim.activate(&number, &a), Code::LicenseExpired);
    check(agent.check_offline(&sim.keys, PRODUCT, sim.now), Code::LicenseExpired);
    // The expired trial's seat was released, and a coupon brings the host back.
    let code = sim.coupons(1, 1, None).remove(0);
    sim.redeem(Some(&number), &code).unwrap();
    let (grant, _) = sim.activate(&number, &a).unwrap();
    assert_eq!(grant.license.kind, LicenseKind::Perpetual);
    assert_eq!(sim.account(&number).bindings.len(), 1);
}

#[test]
fn a_lease_runs_out_offline_and_a_refresh_renews_it() {
    let mut sim = Sim::new();
    let a = pc("a");
    let number = sim.register("a@example.com", &a).unwrap().number.to_string();
    let code = sim.coupons(1, 1, None).remove(0);
    sim.redeem(Some(&number), &code).unwrap();
    let (_, token) = sim.activate(&number, &a).unwrap();
    let mut agent = AgentSim::new(a.clone());
    agent.token = Some(token);
    let start = sim.now;
    assert!(agent.check_offline(&sim.keys, PRODUCT, start + Duration::hours(167)).is_ok());
    check(agent.check_offline(&sim.keys, PRODUCT, start + Duration::hours(168)), Code::LeaseExpired);
    sim.advance(Duration::hours(170));
    let (_, token) = sim.activate(&number, &a).unwrap();
    agent.token = Some(token);
    let grant = agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    assert_eq!(grant.expires_at, None);
}

#[test]
fn a_clock_set_back_is_caught_and_forgiven_when_fixed() {
    let mut sim = Sim::new();
    let a = pc("a");
    let reg = sim.register("a@example.com", &a).unwrap();
    let mut agent = AgentSim::new(a);
    agent.token = Some(sim.signer.issue(&reg.seat, sim.now));
    let now = sim.now + Duration::hours(10);
    agent.check_offline(&sim.keys, PRODUCT, now).unwrap();
    // Within the hour's tolerance: fine.
    agent.check_offline(&sim.keys, PRODUCT, now - Duration::minutes(59)).unwrap();
    // Further back: tampered; the mark does not move back.
    check(agent.check_offline(&sim.keys, PRODUCT, now - Duration::days(2)), Code::ClockTampered);
    assert_eq!(agent.high_water, Some(now));
    // Before the token's own issue time: tampered, even on a fresh agent.
    let mut fresh = AgentSim::new(agent.host.clone());
    fresh.token = agent.token.clone();
    check(fresh.check_offline(&sim.keys, PRODUCT, sim.now - Duration::hours(2)), Code::ClockTampered);
    // Fixed: passes again.
    agent.check_offline(&sim.keys, PRODUCT, now + Duration::minutes(1)).unwrap();
}

#[test]
fn the_verdict_order_is_signature_product_host_clock_term_lease() {
    let mut sim = Sim::new();
    let a = pc("a");
    let reg = sim.register("a@example.com", &a).unwrap();
    let token = sim.signer.issue(&reg.seat, sim.now);
    let end = sim.now + Duration::days(31);
    let mut agent = AgentSim::new(pc("other"));
    agent.token = Some(token.clone());
    // Everything wrong at once: the first rule in order wins.
    check(agent.check_offline(&sim.keys, "recorder", end), Code::TokenInvalid);
    check(agent.check_offline(&sim.keys, PRODUCT, end), Code::HostMismatch);
    let mut agent = AgentSim::new(a);
    agent.token = Some(token);
    agent.high_water = Some(end + Duration::days(10));
    check(agent.check_offline(&sim.keys, PRODUCT, end), Code::ClockTampered);
    agent.high_water = None;
    check(agent.check_offline(&sim.keys, PRODUCT, end), Code::LicenseExpired);
    assert_eq!(agent.high_water, Some(end), "the mark moved to the time seen");
    agent.high_water = None;
    check(agent.check_offline(&sim.keys, PRODUCT, sim.now + Duration::days(8)), Code::LeaseExpired);
    // Unknown key.
    let other = licet_core::TokenSigner::from_secret(&[9u8; 32]);
    agent.token = Some(other.issue(&reg.seat, sim.now));
    check(agent.check_offline(&sim.keys, PRODUCT, sim.now), Code::TokenInvalid);
}

#[test]
fn deactivate_and_reset_free_seats_for_another_host() {
    let mut sim = Sim::new();
    let (a, b, c) = (pc("a"), pc("b"), pc("c"));
    let number = sim.register("a@example.com", &a).unwrap().number.to_string();
    check(sim.activate(&number, &b), Code::NoFreeLicense);
    // Move to another PC: deactivate on the old one.
    sim.deactivate(&number, &a).unwrap();
    check(sim.deactivate(&number, &a), Code::BindingNotFound);
    sim.activate(&number, &b).unwrap();
    // Reset from the portal, logged in with the number.
    let binding = sim.account(&number).bindings[0].id.clone();
    check(sim.reset("MIKO-00000-00000-00000-00000", &binding), Code::Unauthorized);
    check(sim.reset("garbage", &binding), Code::Unauthorized);
    check(sim.reset(&number, "bnd_nope"), Code::BindingNotFound);
    sim.reset(&number, &binding).unwrap();
    sim.activate(&number, &c).unwrap();

    // Logged in with a redeemed coupon; another account's binding is not found.
    let code = sim.coupons(1, 1, None).remove(0);
    check(sim.reset(&code, &binding), Code::Unauthorized);
    sim.redeem(Some(&number), &code).unwrap();
    let other = sim.register("b@example.com", &pc("z")).unwrap();
    let others_binding = other.seat.binding.id.clone();
    check(sim.reset(&code, &others_binding), Code::BindingNotFound);
    let mine = sim.account(&code).bindings[0].id.clone();
    sim.reset(&code, &mine).unwrap();
    assert!(sim.account(&number).bindings.is_empty());
}

#[test]
fn recover_mails_the_number_only_to_a_known_address() {
    let mut sim = Sim::new();
    let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    let recover = |email: &str| Command::Recover { email: email.into() };
    let registration = Registration { lang: Lang::En, ..Sim::registration("en@example.com", &pc("e")) };
    sim.exec::<Registered>(Command::Register(registration)).unwrap();
    assert_eq!(sim.mails().len(), 2);
    sim.exec::<()>(recover("A@Example.com")).unwrap();
    sim.exec::<()>(recover("EN@example.com")).unwrap();
    let mails = sim.mails();
    assert_eq!(mails.len(), 4);
    let reminder =
        |to: &str| mails.iter().find(|m| m.to == to && matches!(m.message, Message::Reminder { .. })).unwrap().clone();
    assert_eq!(reminder("a@example.com").lang, Lang::Ru);
    assert_eq!(reminder("en@example.com").lang, Lang::En, "the account's language");
    assert!(matches!(reminder("a@example.com").message, Message::Reminder { number: n, .. } if n == number));
    sim.exec::<()>(recover("b@example.com")).unwrap();
    assert_eq!(sim.mails().len(), 4, "nothing is queued for an unknown e-mail");
    sim.exec::<()>(recover("a@example.com")).unwrap();
    assert_eq!(sim.mails().len(), 4, "one reminder per account waits at a time (no mail bombing)");
    check(sim.exec::<()>(recover("not-an-email")), Code::InvalidRequest);
    let by_email: Option<AccountFound> = sim.exec(Command::AccountByEmail { email: "A@EXAMPLE.COM".into() }).unwrap();
    assert_eq!(by_email.unwrap().number.to_string(), number);
}

#[test]
fn product_settings_are_validated_and_kept() {
    let mut sim = Sim::new();
    let put = |settings: ProductSettings| Command::PutProduct { id: "rec".into(), settings };
    let p: Product = sim.exec(put(ProductSettings { name: Some("Recorder".into()), ..Default::default() })).unwrap();
    assert_eq!((p.trial_days, p.trial_seats, p.offline_lease_hours, p.clock_tolerance_minutes), (30, 1, 168, 60));
    let p: Product = sim.exec(put(ProductSettings { offline_lease_hours: Some(24), ..Default::default() })).unwrap();
    assert_eq!((p.name.as_str(), p.offline_lease_hours, p.refresh_hours), ("Recorder", 24, 24));
    for bad in [
        ProductSettings { trial_days: Some(0), ..Default::default() },
        ProductSettings { trial_seats: Some(0), ..Default::default() },
        ProductSettings { offline_lease_hours: Some(0), ..Default::default() },
        ProductSettings { refresh_hours: Some(0), ..Default::default() },
        ProductSettings { name: Some(String::new()), ..Default::default() },
    ] {
        check(sim.exec::<Product>(put(bad)), Code::InvalidRequest);
    }
    let bad_slug = Command::PutProduct { id: "Bad Slug".into(), settings: ProductSettings::default() };
    check(sim.exec::<Product>(bad_slug), Code::InvalidRequest);
}

#[test]
fn a_shared_host_name_neither_blocks_registration_nor_grows_an_index() {
    let mut sim = Sim::new();
    for i in 0..5 {
        let h = host(
            "DESKTOP-1",
            &[("machine-id", &format!("m{i}")), ("mac", &format!("a{i}")), ("hostname", "DESKTOP-1")],
        );
        sim.register(&format!("u{i}@example.com"), &h).unwrap();
    }
    // A host known only by its name is indexed by it, and caught again.
    let by_name = host("DESKTOP-1", &[("hostname", "DESKTOP-1")]);
    sim.register("solo@example.com", &by_name).unwrap();
    check(sim.register("solo2@example.com", &by_name), Code::HostAlreadyRegistered);
    let indexed = sim.state.records().filter(|(k, _)| matches!(k, licet_core::RecordKey::HostComponent(_))).count();
    assert_eq!(indexed, 5 * 2 + 1, "the shared host name has no index entry of the five");
    // A key's debug form never shows a credential.
    let number = sim.register("dbg@example.com", &pc("dbg")).unwrap().number;
    let shown = format!("{:?}", licet_core::RecordKey::Number(number.body()));
    assert!(!shown.contains(&number.body()[..10]), "{shown}");
}

#[test]
fn a_host_bound_by_a_0_1_0_agent_keeps_its_seat_and_moves_to_its_new_fingerprint() {
    let mut sim = Sim::new();
    // Release 0.1.0 hashed the components differently: the same machine, other values.
    let old = host("a", &[("machine-id", "old-m"), ("mac", "old-a"), ("disk", "old-d")]);
    let new = host("a", &[("machine-id", "new-m"), ("mac", "new-a"), ("disk", "new-d")]);
    let number = sim.register("a@example.com", &old).unwrap().number.to_string();
    // Without the old fingerprint the upgraded agent is a stranger: the single trial seat is taken.
    check(sim.activate(&number, &new), Code::NoFreeLicense);
    check(
        sim.register("b@example.com", &new.clone().with_legacy(Some(old.fingerprint.clone()))),
        Code::HostAlreadyRegistered,
    );
    // With it, the binding is found and moves to the new fingerprint; so does the registration.
    let upgraded = new.clone().with_legacy(Some(old.fingerprint.clone()));
    let (seat, _) = sim.activate(&number, &upgraded).unwrap();
    assert_eq!(seat.binding.anchor, new.fingerprint);
    assert_eq!(seat.binding.host, new, "the request-only legacy fingerprint is not stored");
    let account = sim.account(&number);
    assert_eq!(account.registration_host, new.fingerprint);
    assert_eq!(account.bindings.len(), 1);
    // From now on the new fingerprint alone is the host, for seats and for the 1059 guard.
    assert_eq!(sim.activate(&number, &new).unwrap().0.binding.id, seat.binding.id);
    check(sim.register("b@example.com", &new), Code::HostAlreadyRegistered);
    // A 0.1.0 program still running on the machine presents only the old fingerprint: it still
    // holds the same seat (a token for the fingerprint it knows), and cannot register again.
    let (seat_0_1_0, token) = sim.activate(&number, &old).unwrap();
    assert_eq!(seat_0_1_0.binding.id, seat.binding.id);
    assert_eq!(sim.account(&number).bindings.len(), 1);
    let mut old_agent = AgentSim::new(old.clone());
    old_agent.token = Some(token);
    old_agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    check(sim.register("c@example.com", &old), Code::HostAlreadyRegistered);
    // And the upgraded one again.
    assert_eq!(sim.activate(&number, &upgraded).unwrap().0.binding.id, seat.binding.id);
    licet_core::check_invariants(sim.state.records()).unwrap();
}

#[test]
fn the_vendor_grants_extends_revokes_and_frees_seats_by_hand() {
    let mut sim = Sim::new();
    let (a, b) = (pc("a"), pc("b"));
    let number = sim.register("a@example.com", &a).unwrap().number.to_string();
    let account_id = sim.account(&number).id;
    let grant = |seats, term_days| Command::Grant {
        account_id: account_id.clone(),
        product: PRODUCT.into(),
        offer: licet_core::Offer::License { seats, term_days, features: None, model: Default::default() },
    };
    check(sim.exec::<Redeemed>(grant(0, None)), Code::InvalidRequest);
    let Command::Grant { product, offer, .. } = grant(1, None) else { unreachable!() };
    let unknown = Command::Grant { account_id: "acc_nobody".into(), product, offer };
    check(sim.exec::<Redeemed>(unknown), Code::InvalidRequest);
    let sub = sim.exec::<Redeemed>(grant(2, Some(30))).unwrap().license;
    assert_eq!((sub.kind, sub.seats), (LicenseKind::Subscription, 2));
    sim.activate(&number, &b).unwrap();

    // Extending never shortens; a perpetual license has no term to extend.
    let extend = |license_id: &str, days| Command::Extend {
        account_id: account_id.clone(),
        license_id: license_id.into(),
        days,
    };
    let extended = sim.exec::<Redeemed>(extend(&sub.id, 10)).unwrap().license;
    assert_eq!(extended.expires_at, sub.expires_at.map(|t| t + Duration::days(10)));
    let perpetual = sim.exec::<Redeemed>(grant(1, None)).unwrap().license;
    check(sim.exec::<Redeemed>(extend(&perpetual.id, 10)), Code::InvalidRequest);
    check(sim.exec::<Redeemed>(extend("lic_none", 10)), Code::InvalidRequest);

    // Freeing a seat by hand does not count as the customer's reset.
    let account = sim.account(&number);
    let binding = account.bindings.iter().find(|bd| bd.host.hostname == "b").unwrap().id.clone();
    let free = Command::FreeBinding { account_id: account_id.clone(), binding_id: binding.clone() };
    sim.exec::<()>(free.clone()).unwrap();
    check(sim.exec::<()>(free), Code::BindingNotFound);
    assert!(sim.account(&number).licenses.iter().all(|l| l.resets.is_empty()));

    // Revoking ends a license at once, grace or not, and frees its seats.
    let bound = sim.activate(&number, &b).unwrap().0.license;
    let revoke = Command::Revoke { account_id: account_id.clone(), license_id: bound.id.clone() };
    let revoked = sim.exec::<Redeemed>(revoke.clone()).unwrap();
    assert_eq!((revoked.license.revoked_at, revoked.seats_used), (Some(sim.now), 0));
    assert!(sim.account(&number).bindings.iter().all(|bd| bd.license_id != bound.id));
    assert_eq!(
        sim.exec::<Redeemed>(revoke).unwrap().license.revoked_at,
        Some(sim.now),
        "revoking again changes nothing"
    );
    let next = sim.activate(&number, &b).unwrap().0.license;
    assert_ne!(next.id, bound.id, "a revoked license binds no host");
    check(sim.exec::<Redeemed>(extend(&bound.id, 5)), Code::InvalidRequest);
    licet_core::check_invariants(sim.state.records()).unwrap();
    let found = sim.exec::<Option<AccountFound>>(Command::AccountById { account_id: account_id.clone() }).unwrap();
    assert_eq!(found.unwrap().number.to_string(), number);
}

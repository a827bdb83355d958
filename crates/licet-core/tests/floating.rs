//! SPEC §11 through the core: floating licenses, their sessions, leases, heartbeats, releases
//! and borrowing, on a virtual clock.

mod sim;

use chrono::Duration;
use licet_core::{Code, Error, LicenseModel, Offer, ProductSettings, check_invariants};
use sim::{AgentSim, PRODUCT, Sim, pc};

#[track_caller]
fn check<T: std::fmt::Debug>(result: Result<T, Error>, code: Code) {
    match result {
        Err(e) => assert_eq!(e.code(), code, "{e}"),
        Ok(v) => panic!("expected {code}, got Ok({v:?})"),
    }
}

/// An account (registered on host `r`, so holding a host trial) with a floating license of
/// `seats` seats; the product's sessions live `lease` seconds and may be borrowed a day.
fn floating_sim(seats: u32, lease: u32) -> (Sim, String) {
    let mut sim = Sim::new();
    let settings =
        ProductSettings { session_lease_seconds: Some(lease), max_borrow_hours: Some(24), ..Default::default() };
    sim.product(PRODUCT, settings);
    let number = sim.register("a@example.com", &pc("r")).unwrap().number.to_string();
    let coupon = sim.coupon(Offer::License { seats, term_days: None, features: None, model: LicenseModel::Floating });
    let license = sim.redeem(Some(&number), &coupon).unwrap();
    assert_eq!(license.model, LicenseModel::Floating);
    (sim, number)
}

fn invariants(sim: &Sim) {
    check_invariants(sim.state.records()).unwrap();
}

#[test]
fn three_hosts_on_two_seats_and_a_silent_hosts_seat_goes_to_the_next_after_its_lease() {
    let (mut sim, number) = floating_sim(2, 900);
    let (a, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    let (b, _) = sim.checkout(&number, &pc("b"), None).unwrap();
    assert_eq!(b.sessions_live, 2);
    check(sim.checkout(&number, &pc("c"), None), Code::NoFreeLicense);

    // `a` heartbeats, `b` goes silent: one lease later `b`'s seat is free, with no job run.
    sim.advance(Duration::seconds(600));
    sim.heartbeat(&number, &a.session.id).unwrap();
    check(sim.checkout(&number, &pc("c"), None), Code::NoFreeLicense);
    sim.advance(Duration::seconds(300));
    let (c, _) = sim.checkout(&number, &pc("c"), None).unwrap();
    assert_eq!(c.sessions_live, 2);
    // `b`'s heartbeat comes too late.
    check(sim.heartbeat(&number, &b.session.id), Code::SessionExpired);
    invariants(&sim);

    // A release frees the seat at once.
    sim.release(&number, &a.session.id).unwrap();
    check(sim.release(&number, &a.session.id), Code::SessionExpired);
    sim.checkout(&number, &pc("b"), None).unwrap();
    invariants(&sim);
}

#[test]
fn the_same_host_and_user_get_their_live_session_back() {
    let (mut sim, number) = floating_sim(1, 900);
    let (first, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    sim.advance(Duration::seconds(60));
    let (again, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    assert_eq!(again.session.id, first.session.id);
    assert_eq!(again.session.lease_until, sim.now + Duration::seconds(900));
    assert_eq!(again.sessions_live, 1);
}

#[test]
fn a_token_lives_as_long_as_its_session_and_names_it() {
    let (mut sim, number) = floating_sim(1, 900);
    let (seat, token) = sim.checkout(&number, &pc("a"), None).unwrap();
    // Three host components and the session's id: still inside the 300 characters of SPEC §10.
    assert!(token.len() <= 300, "{} characters", token.len());
    println!("session token: {} characters", token.len());
    let mut agent = AgentSim::new(pc("a"));
    agent.token = Some(token);
    let grant = agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    assert_eq!(grant.session_id.as_deref(), Some(seat.session.id.as_str()));
    assert_eq!(grant.lease_until, sim.now + Duration::seconds(900));
    // Refreshed by heartbeat at half the lease.
    assert_eq!(grant.refresh_due, sim.now + Duration::seconds(450));
    check(agent.check_offline(&sim.keys, PRODUCT, sim.now + Duration::seconds(900)), Code::LeaseExpired);
    // On another host it is worthless.
    let mut other = AgentSim::new(pc("b"));
    other.token = agent.token.clone();
    check(other.check_offline(&sim.keys, PRODUCT, sim.now), Code::HostMismatch);
}

#[test]
fn a_borrowed_seat_stays_held_for_the_borrow_and_a_heartbeat_never_shortens_it() {
    let (mut sim, number) = floating_sim(1, 900);
    check(sim.checkout(&number, &pc("a"), Some(25)), Code::InvalidRequest);
    check(sim.checkout(&number, &pc("a"), Some(0)), Code::InvalidRequest);
    let (seat, token) = sim.checkout(&number, &pc("a"), Some(8)).unwrap();
    assert!(seat.session.borrowed);
    let mut agent = AgentSim::new(pc("a"));
    agent.token = Some(token);
    // Offline for seven hours: the token still works and nobody else gets the seat.
    sim.advance(Duration::hours(7));
    agent.check_offline(&sim.keys, PRODUCT, sim.now).unwrap();
    check(sim.checkout(&number, &pc("b"), None), Code::NoFreeLicense);
    let (beat, _) = sim.heartbeat(&number, &seat.session.id).unwrap();
    assert_eq!(beat.session.lease_until, seat.session.lease_until);
    sim.advance(Duration::hours(1));
    check(agent.check_offline(&sim.keys, PRODUCT, sim.now), Code::LeaseExpired);
    sim.checkout(&number, &pc("b"), None).unwrap();
    invariants(&sim);
}

#[test]
fn host_and_floating_licenses_are_used_each_their_own_way() {
    let (mut sim, number) = floating_sim(1, 900);
    // The registering host holds the host trial; another host cannot activate the floating seat.
    check(sim.activate(&number, &pc("b")), Code::NoFreeLicense);
    sim.activate(&number, &pc("r")).unwrap();
    // A product with only host licenses has no sessions.
    let mut plain = Sim::new();
    let n = plain.register("b@example.com", &pc("r")).unwrap().number.to_string();
    check(plain.checkout(&n, &pc("r"), None), Code::NoLicenseForProduct);
    // Sessions and bindings are counted apart.
    sim.checkout(&number, &pc("b"), None).unwrap();
    let account = sim.account(&number);
    assert_eq!((account.bindings.len(), account.sessions.len()), (1, 1));
    invariants(&sim);
}

#[test]
fn an_expired_floating_license_ends_its_sessions_with_its_term() {
    let mut sim = Sim::new();
    let number = sim.register("a@example.com", &pc("r")).unwrap().number.to_string();
    let coupon =
        sim.coupon(Offer::License { seats: 1, term_days: Some(1), features: None, model: LicenseModel::Floating });
    sim.redeem(Some(&number), &coupon).unwrap();
    sim.advance(Duration::hours(23) + Duration::minutes(50));
    let (seat, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    // The lease stops at the term's end, not 15 minutes later.
    assert_eq!(seat.session.lease_until, seat.license.expires_at.unwrap());
    sim.advance(Duration::minutes(10));
    check(sim.heartbeat(&number, &seat.session.id), Code::SessionExpired);
    check(sim.checkout(&number, &pc("a"), None), Code::LicenseExpired);
}

#[test]
fn sessions_are_the_accounts_own() {
    let (mut sim, number) = floating_sim(1, 900);
    let (seat, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    let other = sim.register("b@example.com", &pc("x")).unwrap().number.to_string();
    check(sim.heartbeat(&other, &seat.session.id), Code::SessionExpired);
    check(sim.release(&other, &seat.session.id), Code::SessionExpired);
    check(sim.heartbeat("MIKO-00000-00000-00000-00000", &seat.session.id), Code::Unauthorized);
    sim.heartbeat(&number, &seat.session.id).unwrap();
}

#[test]
fn a_dead_session_is_kept_an_hour_and_a_seats_coupon_goes_to_the_host_license() {
    let (mut sim, number) = floating_sim(2, 900);
    let (seat, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    // Dead after its lease, but kept an hour (a server clock stepped back finds it again).
    sim.advance(Duration::seconds(1000));
    sim.checkout(&number, &pc("b"), None).unwrap();
    assert!(sim.account(&number).sessions.iter().any(|s| s.id == seat.session.id));
    check(sim.heartbeat(&number, &seat.session.id), Code::SessionExpired);
    sim.advance(Duration::hours(1));
    let (b, _) = sim.checkout(&number, &pc("b"), None).unwrap();
    let sessions = sim.account(&number).sessions;
    assert!(!sessions.iter().any(|s| s.id == seat.session.id), "dead for over an hour: tidied away");
    assert!(sessions.iter().any(|s| s.id == b.session.id));
    assert_eq!(sim.account(&number).sessions_live(&seat.license.id, sim.now), 1);

    // With a paid host license beside the floating one, seats coupons add to the host license.
    let host_license =
        sim.coupon(Offer::License { seats: 1, term_days: None, features: None, model: LicenseModel::Host });
    let host_license = sim.redeem(Some(&number), &host_license).unwrap();
    let more = sim.coupon(Offer::Seats { seats: 2 });
    assert_eq!(sim.redeem(Some(&number), &more).unwrap().id, host_license.id);
}

#[test]
fn a_dead_session_whose_seat_went_to_another_stays_dead_when_the_clock_steps_back() {
    let (mut sim, number) = floating_sim(1, 900);
    let (first, _) = sim.checkout(&number, &pc("a"), None).unwrap();
    sim.advance(Duration::seconds(1000));
    let (second, _) = sim.checkout(&number, &pc("b"), None).unwrap();
    // A node whose clock runs 200 s behind, or a server clock stepped back: the first session
    // would be within its lease again — but its seat is the second's now.
    sim.now -= Duration::seconds(200);
    check(sim.heartbeat(&number, &first.session.id), Code::SessionExpired);
    assert_eq!(sim.account(&number).sessions_live(&second.license.id, sim.now), 1);
    invariants(&sim);
}

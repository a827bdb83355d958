//! Properties of SPEC §11 under random schedules of checkouts, heartbeats, releases, borrows,
//! added seats and silent hosts whose sessions die: live sessions never exceed seats at any
//! instant, and a checkout is refused only when every seat is live.

mod sim;

use chrono::Duration;
use licet_core::{Code, LicenseModel, Offer, ProductSettings, check_invariants};
use proptest::prelude::*;
use sim::{PRODUCT, Sim, pc};

#[derive(Clone, Debug)]
enum Op {
    /// Host `0..6` checks out, borrowing for so many hours if given.
    Checkout(u8, Option<u8>),
    /// The session checked out `n`-th (modulo those seen) heartbeats.
    Heartbeat(u8),
    Release(u8),
    /// Time passes (hosts that do not heartbeat go silent), in seconds.
    Advance(u16),
    /// A `seats` coupon adds to the floating license.
    AddSeats(u8),
    /// The server's clock steps back (a node of a cluster running behind), in seconds.
    StepBack(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..6u8, prop::option::weighted(0.2, 1..4u8)).prop_map(|(h, b)| Op::Checkout(h, b)),
        3 => any::<u8>().prop_map(Op::Heartbeat),
        2 => any::<u8>().prop_map(Op::Release),
        3 => (1..2400u16).prop_map(Op::Advance),
        1 => (1..3u8).prop_map(Op::AddSeats),
        1 => (1..600u16).prop_map(Op::StepBack),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]

    #[test]
    fn live_sessions_never_exceed_seats(seats in 1..4u32, ops in prop::collection::vec(op(), 1..60)) {
        let mut sim = Sim::new();
        let settings = ProductSettings {
            session_lease_seconds: Some(600),
            max_borrow_hours: Some(3),
            ..Default::default()
        };
        sim.product(PRODUCT, settings);
        let number = sim.register("a@example.com", &pc("r")).unwrap().number.to_string();
        let offer = Offer::License { seats, term_days: None, features: None, model: LicenseModel::Floating };
        let coupon = sim.coupon(offer);
        let license_id = sim.redeem(Some(&number), &coupon).unwrap().id;
        let mut sessions: Vec<String> = Vec::new();
        for op in ops {
            match op {
                Op::Checkout(h, borrow) => {
                    match sim.checkout(&number, &pc(&format!("h{h}")), borrow.map(u32::from)) {
                        Ok((seat, _)) => {
                            prop_assert!(seat.sessions_live <= seat.license.seats);
                            prop_assert!(seat.session.lease_until > sim.now);
                            if !sessions.contains(&seat.session.id) {
                                sessions.push(seat.session.id);
                            }
                        }
                        Err(e) => {
                            // Refused only when every seat is held by a live session: a dead
                            // one frees its seat at once, with no job run.
                            prop_assert_eq!(e.code(), Code::NoFreeLicense);
                            let account = sim.account(&number);
                            let license = account.license(&license_id).unwrap();
                            prop_assert_eq!(account.sessions_live(&license_id, sim.now), license.seats);
                        }
                    }
                }
                Op::Heartbeat(i) | Op::Release(i) if sessions.is_empty() => { let _ = i; }
                Op::Heartbeat(i) => {
                    let id = sessions[i as usize % sessions.len()].clone();
                    let live = sim.account(&number).sessions.iter().any(|s| s.id == id && s.is_live(sim.now));
                    match sim.heartbeat(&number, &id) {
                        Ok((seat, _)) => {
                            prop_assert!(live);
                            prop_assert!(seat.session.lease_until >= sim.now + Duration::seconds(600));
                        }
                        Err(e) => {
                            prop_assert!(!live);
                            prop_assert_eq!(e.code(), Code::SessionExpired);
                        }
                    }
                }
                Op::Release(i) => {
                    let id = sessions[i as usize % sessions.len()].clone();
                    let before = sim.account(&number).sessions_live(&license_id, sim.now);
                    if sim.release(&number, &id).is_ok() {
                        prop_assert_eq!(sim.account(&number).sessions_live(&license_id, sim.now), before - 1);
                    }
                }
                Op::Advance(secs) => sim.advance(Duration::seconds(i64::from(secs))),
                Op::StepBack(secs) => sim.now -= Duration::seconds(i64::from(secs)),
                Op::AddSeats(n) => {
                    let coupon = sim.coupon(Offer::Seats { seats: u32::from(n) });
                    sim.redeem(Some(&number), &coupon).unwrap();
                }
            }
            // At any instant, past or present: sessions live at once never exceed the seats.
            prop_assert!(check_invariants(sim.state.records()).is_ok(), "{:?}", check_invariants(sim.state.records()));
            let account = sim.account(&number);
            let license = account.license(&license_id).unwrap();
            prop_assert!(account.sessions_live(&license_id, sim.now) <= license.seats);
        }
    }
}

//! The agent's policy of SPEC §3 — refresh, back-off, failover, signed refusals, features, clocks
//! — run on a virtual clock against simulated servers (see `sim/net.rs`).

mod sim;

use chrono::Duration;
use licet_core::Code;
use licet_core::agent::{Failure, Source};
use sim::net::{Machine, Mode, Net};
use sim::{PRODUCT, Sim, pc};

/// A registered machine with its trial token cached, talking to `servers`.
fn registered(sim: &mut Sim, tag: &str, servers: usize) -> (Machine, String) {
    let mut m = Machine::new(pc(tag), &sim.keys, servers);
    let reg = sim.register(&format!("{tag}@example.com"), &m.host).unwrap();
    let number = reg.number.to_string();
    m.set_number(&number);
    let token = sim.signer.issue(&reg.seat, sim.now);
    m.take_token(sim, &token);
    (m, number)
}

#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Failure>, code: Code) -> Failure {
    match result {
        Err(f) => {
            assert_eq!(f.code(), code, "{f}");
            f
        }
        Ok(v) => panic!("expected {code}, got {v:?}"),
    }
}

#[test]
fn a_fresh_token_answers_from_the_cache_and_the_refresh_interval_sends_it_to_the_server() {
    let mut sim = Sim::new();
    let net = Net::new(&[Mode::Up]);
    let (mut m, _) = registered(&mut sim, "a", 1);
    for hours in [1, 12, 23] {
        m.wait(&mut sim, Duration::hours(if hours == 1 { 1 } else { 11 }));
        assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Cache, "+{hours} h");
        assert!(m.asked.is_empty());
    }
    // The product's refresh_hours (24) comes before half the week's lease (84 h).
    m.wait(&mut sim, Duration::hours(1));
    assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Server);
    assert_eq!(m.asked, [0]);
    assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Cache);
}

#[test]
fn a_release_0_1_0_token_is_refreshed_at_half_its_lease() {
    let mut sim = Sim::new();
    let legacy = Net::new(&[Mode::Legacy]);
    let (mut m, _) = registered(&mut sim, "a", 1);
    m.wait(&mut sim, Duration::hours(25));
    assert_eq!(m.check(&mut sim, &legacy).unwrap().source, Source::Server);
    m.wait(&mut sim, Duration::hours(83));
    assert_eq!(m.check(&mut sim, &legacy).unwrap().source, Source::Cache, "a version-1 token has no refresh interval");
    m.wait(&mut sim, Duration::hours(1));
    assert_eq!(m.check(&mut sim, &legacy).unwrap().source, Source::Server, "half the 168 h lease");
}

#[test]
fn a_dead_server_is_left_alone_a_while_and_the_cache_answers_until_the_lease_ends() {
    let mut sim = Sim::new();
    let down = Net::new(&[Mode::Down]);
    let (mut m, _) = registered(&mut sim, "a", 1);
    m.wait(&mut sim, Duration::hours(25));
    assert_eq!(m.check(&mut sim, &down).unwrap().source, Source::Cache);
    assert_eq!(m.asked, [0]);
    // Within the next minute nobody asks the dead server again.
    m.wait(&mut sim, Duration::seconds(59));
    assert_eq!(m.check(&mut sim, &down).unwrap().source, Source::Cache);
    assert!(m.asked.is_empty());
    m.wait(&mut sim, Duration::seconds(1));
    m.check(&mut sim, &down).unwrap();
    assert_eq!(m.asked, [0], "a minute later it is tried again");
    // Until the week's lease is over; then 3003, the cached token's own code.
    m.wait(&mut sim, Duration::hours(168 - 25) - Duration::minutes(2));
    assert_eq!(m.check(&mut sim, &down).unwrap().source, Source::Cache);
    m.wait(&mut sim, Duration::minutes(2));
    refused(m.check(&mut sim, &down), Code::LeaseExpired);
    // The server is back: the check passes online again.
    let up = Net::new(&[Mode::Up]);
    m.wait(&mut sim, Duration::minutes(1));
    assert_eq!(m.check(&mut sim, &up).unwrap().source, Source::Server);
}

#[test]
fn the_next_server_is_tried_on_a_fault_and_a_failed_one_is_skipped_for_a_minute() {
    let mut sim = Sim::new();
    let net = Net::new(&[Mode::Down, Mode::Up, Mode::Up]);
    let (mut m, _) = registered(&mut sim, "a", 3);
    m.wait(&mut sim, Duration::hours(25));
    assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Server);
    assert_eq!(m.asked, [0, 1]);
    m.wait(&mut sim, Duration::hours(25));
    assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Server);
    assert_eq!(m.asked, [0, 1], "an hour later the first server is tried first again");
    // Every kind of server fault fails over: a broken token, another host's token, a refusal
    // without its proof.
    for mode in [Mode::BrokenToken, Mode::OtherHost, Mode::Down] {
        let net = Net::new(&[mode.clone(), Mode::Up]);
        let (mut m, _) = registered(&mut sim, &format!("{mode:?}").to_lowercase(), 2);
        m.wait(&mut sim, Duration::hours(25));
        assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Server, "{mode:?}");
        assert_eq!(m.asked, [0, 1], "{mode:?}");
        // Within the minute the failed server is skipped.
        m.wait(&mut sim, Duration::hours(25));
        m.mono -= std::time::Duration::from_secs(25 * 3600 - 30);
        m.check(&mut sim, &net).unwrap();
        assert_eq!(m.asked, [1], "{mode:?}");
    }
}

#[test]
fn a_reply_whose_token_does_not_verify_is_a_fault_and_the_cache_answers() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 1);
    let before = m.policy.token(PRODUCT).unwrap().to_owned();
    for mode in [Mode::BrokenToken, Mode::OtherHost] {
        m.wait(&mut sim, Duration::hours(25));
        let answer = m.check(&mut sim, &Net::new(std::slice::from_ref(&mode))).unwrap();
        assert_eq!(answer.source, Source::Cache, "{mode:?}");
        assert_eq!(m.policy.token(PRODUCT), Some(before.as_str()), "{mode:?}: the cached token stays");
        m.mono += std::time::Duration::from_secs(61);
    }
}

#[test]
fn only_a_signed_refusal_deletes_the_cached_token() {
    let mut sim = Sim::new();
    let (mut a, number) = registered(&mut sim, "a", 1);
    // The customer resets a's binding in the portal and host b takes the single trial seat.
    let binding = sim.account(&number).bindings[0].id.clone();
    sim.reset(&number, &binding).unwrap();
    sim.activate(&number, &pc("b")).unwrap();
    a.wait(&mut sim, Duration::hours(25));
    // Someone in the network path answers 1051 without the server's signature: a fault.
    assert_eq!(a.check(&mut sim, &Net::new(&[Mode::Unsigned])).unwrap().source, Source::Cache);
    assert!(a.policy.token(PRODUCT).is_some());
    // The server's own refusal, bound to this request, settles it: the token goes, for good.
    a.mono += std::time::Duration::from_secs(61);
    let failure = refused(a.check(&mut sim, &Net::new(&[Mode::Up])), Code::NoFreeLicense);
    assert!(matches!(failure, Failure::Server { .. }));
    assert_eq!(a.policy.token(PRODUCT), None);
    assert!(a.disk.tokens.is_empty(), "the deletion reached the disk");
    // Offline now, nothing is left to answer from: the server's refusal or 1011.
    a.mono += std::time::Duration::from_secs(61);
    refused(a.check(&mut sim, &Net::new(&[Mode::Down])), Code::ServerUnreachable);
    // With nothing cached, an unsigned refusal is reported as it is (nothing to delete anyway).
    a.mono += std::time::Duration::from_secs(61);
    refused(a.check(&mut sim, &Net::new(&[Mode::Unsigned])), Code::NoFreeLicense);
}

#[test]
fn a_missing_feature_asks_once_then_is_2009_online_and_offline() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 1);
    let pro = Net::new(&[Mode::Features(vec!["recording".into(), "export".into()])]);
    // The cached trial token has no features: asking for one refreshes at once.
    let granted = m.check_features(&mut sim, &pro, PRODUCT, &["export"]).unwrap();
    assert_eq!((granted.source, m.asked.as_slice()), (Source::Server, &[0][..]));
    assert!(granted.entitlement.has_feature("recording"));
    // Now cached, it answers offline; a feature the license lacks is 2009 after one refresh.
    assert_eq!(m.check_features(&mut sim, &pro, PRODUCT, &["export"]).unwrap().source, Source::Cache);
    refused(m.check_features(&mut sim, &pro, PRODUCT, &["analytics"]), Code::FeatureNotLicensed);
    assert_eq!(m.asked, [0]);
    // Offline, the cache decides: granted features pass, others are 2009.
    let down = Net::new(&[Mode::Down]);
    m.mono += std::time::Duration::from_secs(61);
    refused(m.check_features(&mut sim, &down, PRODUCT, &["analytics"]), Code::FeatureNotLicensed);
    assert_eq!(m.check_features(&mut sim, &down, PRODUCT, &["recording"]).unwrap().source, Source::Cache);
}

#[test]
fn a_clock_set_back_is_refused_and_a_clock_once_in_the_future_is_forgiven_by_the_server() {
    let mut sim = Sim::new();
    let up = Net::new(&[Mode::Up]);
    let down = Net::new(&[Mode::Down]);
    let (mut m, _) = registered(&mut sim, "a", 1);
    m.wait(&mut sim, Duration::hours(10));
    m.check(&mut sim, &down).unwrap();
    // Set back two days: refused offline, and online too (the server's time confirms it).
    m.skew = -Duration::days(2);
    refused(m.check(&mut sim, &down), Code::ClockTampered);
    m.mono += std::time::Duration::from_secs(61);
    refused(m.check(&mut sim, &up), Code::ClockTampered);
    assert_eq!(m.asked, [0]);
    // Fixed: passes again.
    m.skew = Duration::zero();
    m.check(&mut sim, &down).unwrap();

    // A clock that ran five days ahead for a while, then corrected: locally it looks set back,
    // but the server's time is trusted time and settles it.
    let (mut b, _) = registered(&mut sim, "b", 1);
    b.skew = Duration::days(5);
    b.check(&mut sim, &up).unwrap();
    b.skew = Duration::zero();
    b.mono += std::time::Duration::from_secs(61);
    assert_eq!(b.check(&mut sim, &up).unwrap().source, Source::Server);
    assert_eq!(b.check(&mut sim, &down).unwrap().source, Source::Cache, "and offline after that");
}

#[test]
fn without_a_number_or_anything_cached_the_codes_are_3005_and_1011() {
    let mut sim = Sim::new();
    let mut m = Machine::new(pc("a"), &sim.keys, 1);
    refused(m.check(&mut sim, &Net::new(&[Mode::Up])), Code::NotActivated);
    assert!(m.asked.is_empty(), "no number: nothing to ask");
    let number = sim.register("a@example.com", &pc("a")).unwrap().number.to_string();
    m.set_number(&number);
    refused(m.check(&mut sim, &Net::new(&[Mode::Down])), Code::ServerUnreachable);
    // Nothing cached: even right after a failure the server is asked (nothing to lose).
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::Up])).unwrap().source, Source::Server);
}

#[test]
fn what_reaches_the_disk_is_enough_for_a_restarted_program() {
    let mut sim = Sim::new();
    let (mut m, number) = registered(&mut sim, "a", 1);
    m.wait(&mut sim, Duration::hours(3));
    m.check(&mut sim, &Net::new(&[Mode::Down])).unwrap();
    let seen = m.policy.mark().unwrap();
    assert_eq!(m.disk.number.as_deref(), Some(number.as_str()));
    assert_eq!(m.disk.mark, Some(seen.timestamp()), "the mark moved more than five minutes: written");
    // A minute later the mark moves again, but is not written yet.
    m.wait(&mut sim, Duration::minutes(1));
    m.check(&mut sim, &Net::new(&[Mode::Down])).unwrap();
    assert_eq!(m.disk.mark, Some(seen.timestamp()));
    // A restarted program knows the number, the token and the mark; a clock set back is still
    // caught against the mark on disk.
    m.restart(&sim.keys, 1);
    assert_eq!(m.policy.number(), Some(number.as_str()));
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::Down])).unwrap().source, Source::Cache);
    m.skew = -Duration::hours(2) - Duration::minutes(2);
    refused(m.check(&mut sim, &Net::new(&[Mode::Down])), Code::ClockTampered);
    // Another number drops the tokens of the previous one.
    m.set_number("MIKO-00000-00000-00000-00000");
    assert!(m.disk.tokens.is_empty() && m.policy.token(PRODUCT).is_none());
}

#[test]
fn a_replayed_token_never_moves_the_clock_back() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 1);
    // Online a day later, then three days offline: the mark follows the clock.
    m.wait(&mut sim, Duration::hours(25));
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::Up])).unwrap().source, Source::Server);
    m.wait(&mut sim, Duration::days(3));
    m.check(&mut sim, &Net::new(&[Mode::Down])).unwrap();
    // The customer sets the clock back and answers the agent with recorded tokens of its own:
    // accepted as tokens, but not as trusted time, so the clock stays caught.
    let latest = m.policy.token(PRODUCT).unwrap().to_owned();
    m.skew = -Duration::days(3) + Duration::hours(1);
    for mode in [Mode::NoNonce, Mode::Recorded(latest)] {
        m.mono += std::time::Duration::from_secs(61);
        refused(m.check(&mut sim, &Net::new(std::slice::from_ref(&mode))), Code::ClockTampered);
    }
    // The real server's fresh answer is trusted time — and says the clock is wrong too.
    m.mono += std::time::Duration::from_secs(61);
    refused(m.check(&mut sim, &Net::new(&[Mode::Up])), Code::ClockTampered);
}

#[test]
fn a_token_older_than_one_already_accepted_is_a_fault() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 2);
    let registration_token = m.policy.token(PRODUCT).unwrap().to_owned();
    m.wait(&mut sim, Duration::hours(25));
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::Up])).unwrap().source, Source::Server);
    // A day later the first server answers with the registration's token, a recording older
    // than what was accepted since: a fault, and the next server answers.
    m.wait(&mut sim, Duration::hours(25));
    let replay = Net::new(&[Mode::Recorded(registration_token.clone()), Mode::Up]);
    assert_eq!(m.check(&mut sim, &replay).unwrap().source, Source::Server);
    assert_eq!(m.asked, [0, 1]);
    assert_ne!(m.policy.token(PRODUCT).unwrap(), registration_token);
}

#[test]
fn a_refusal_of_an_altered_request_does_not_delete_the_token() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 1);
    m.wait(&mut sim, Duration::hours(25));
    // Someone in the path swaps the number: the server's genuine, signed 1002 is for that one.
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::AlteredNumber])).unwrap().source, Source::Cache);
    assert!(m.policy.token(PRODUCT).is_some());
}

#[test]
fn a_token_release_0_1_0_cached_on_this_machine_answers_after_the_upgrade() {
    let mut sim = Sim::new();
    // The machine as 0.1.0 hashed it, and as this release does.
    let old = pc("a");
    let new = licet_core::Host { fingerprint: pc("a-new").fingerprint, ..old.clone() }
        .with_legacy(Some(old.fingerprint.clone()));
    let reg = sim.register("a@example.com", &old).unwrap();
    let token_0_1_0 = sim.signer.issue_as(&reg.seat, sim.now, licet_core::TokenFormat::V1, None);
    let mut m = Machine::new(new, &sim.keys, 1);
    m.set_number(&reg.number.to_string());
    m.take_token(&sim, &token_0_1_0);
    m.wait(&mut sim, Duration::hours(2));
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::Down])).unwrap().source, Source::Cache);
    // Online, the binding moves to the new fingerprint and the token with it.
    m.wait(&mut sim, Duration::hours(90));
    assert_eq!(m.check(&mut sim, &Net::new(&[Mode::Up])).unwrap().source, Source::Server);
    assert_eq!(sim.account(&reg.number.to_string()).bindings.len(), 1);
}

#[test]
fn a_reply_to_a_check_begun_before_the_number_was_forgotten_is_not_kept() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 1);
    m.wait(&mut sim, Duration::hours(25));
    let step = m.policy.handle_check(sim.now, m.mono, PRODUCT, &[], &mut licet_core::SeededEntropy::new(3));
    let licet_core::agent::Step::Ask(ask) = step else { panic!("a due token asks the server") };
    let reply = Net::new(&[Mode::Up]).serve(&mut sim, &ask, &m.host);
    // Meanwhile the customer forgets the number on this host.
    m.policy.set_number(None);
    let step = m.policy.handle_reply(sim.now, m.mono, ask, reply);
    assert!(matches!(step, licet_core::agent::Step::Answer(Ok(_))));
    assert_eq!(m.policy.token(PRODUCT), None, "the late token is not cached");
    let persisted = m.policy.poll_persist().unwrap();
    assert!(persisted.tokens.values().all(Option::is_none));
}

#[test]
fn a_feature_the_license_lacks_is_asked_for_once_per_token() {
    let mut sim = Sim::new();
    let (mut m, _) = registered(&mut sim, "a", 1);
    let net = Net::new(&[Mode::Features(vec!["recording".into()])]);
    refused(m.check_features(&mut sim, &net, PRODUCT, &["export"]), Code::FeatureNotLicensed);
    assert_eq!(m.asked, [0]);
    refused(m.check_features(&mut sim, &net, PRODUCT, &["export"]), Code::FeatureNotLicensed);
    assert!(m.asked.is_empty(), "the server already said no for this token");
    // The next refresh asks again.
    m.wait(&mut sim, Duration::hours(25));
    refused(m.check_features(&mut sim, &net, PRODUCT, &["export"]), Code::FeatureNotLicensed);
    assert_eq!(m.asked, [0]);
}

/// A machine of an account holding one floating seat (sessions of 15 minutes), number entered.
fn floating_machine(sim: &mut Sim, tag: &str) -> (Machine, String) {
    use licet_core::{LicenseModel, Offer};
    let (mut m, number) = registered(sim, tag, 1);
    let offer = Offer::License { seats: 1, term_days: None, features: None, model: LicenseModel::Floating };
    let coupon = sim.coupon(offer);
    sim.redeem(Some(&number), &coupon).unwrap();
    m.policy.forget(PRODUCT);
    (m, number)
}

#[test]
fn a_session_token_is_refreshed_by_heartbeat_and_a_dead_session_by_a_new_checkout() {
    let mut sim = Sim::new();
    let net = Net::new(&[Mode::Up]);
    let (mut m, number) = floating_machine(&mut sim, "a");
    let first = m.checkout(&mut sim, &net, None).unwrap().entitlement;
    let session = first.session_id.clone().unwrap();
    // Fresh for half the lease; then the check heartbeats the same session.
    m.wait(&mut sim, Duration::seconds(449));
    assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Cache);
    m.wait(&mut sim, Duration::seconds(1));
    let beat = m.check(&mut sim, &net).unwrap();
    assert_eq!((beat.source, beat.entitlement.session_id.as_deref()), (Source::Server, Some(session.as_str())));
    assert_eq!(m.asked, [0]);
    // Never by activation: the only binding is the trial's, made at registration.
    let account = sim.account(&number);
    assert_eq!((account.bindings.len(), account.sessions.len()), (1, 1));

    // Silent past its lease: the session dies, and the next check takes a new one.
    m.wait(&mut sim, Duration::seconds(901));
    let renewed = m.check(&mut sim, &net).unwrap();
    assert_eq!(m.asked, [0, 0], "the heartbeat, then the checkout");
    assert_ne!(renewed.entitlement.session_id.as_deref(), Some(session.as_str()));

    // The seat goes to another host while this one is silent: the heartbeat fails, the checkout
    // is refused with a signed 1051, and the token is gone.
    let mut other = Machine::new(pc("b"), &sim.keys, 1);
    other.set_number(&number);
    m.wait(&mut sim, Duration::seconds(901));
    other.checkout(&mut sim, &net, None).unwrap();
    refused(m.check(&mut sim, &net), Code::NoFreeLicense);
    assert!(m.policy.token(PRODUCT).is_none());
}

#[test]
fn a_session_token_answers_from_the_cache_until_its_lease_while_the_server_is_down() {
    let mut sim = Sim::new();
    let (mut m, _) = floating_machine(&mut sim, "a");
    m.checkout(&mut sim, &Net::new(&[Mode::Up]), Some(8)).unwrap_err();
    // The product allows no borrowing (1001, not definitive: nothing dropped); without a borrow:
    m.checkout(&mut sim, &Net::new(&[Mode::Up]), None).unwrap();
    let down = Net::new(&[Mode::Down]);
    m.wait(&mut sim, Duration::seconds(899));
    assert_eq!(m.check(&mut sim, &down).unwrap().source, Source::Cache);
    m.wait(&mut sim, Duration::seconds(1));
    refused(m.check(&mut sim, &down), Code::LeaseExpired);
    // The clock set back within the tolerance does not stretch the lease.
    m.skew = Duration::minutes(-30);
    refused(m.check(&mut sim, &down), Code::LeaseExpired);
}

#[test]
fn a_refusal_removes_only_the_token_it_was_about_also_on_disk() {
    use licet_core::agent::{Memory, Persist};
    // Another program cached a newer token meanwhile: a conditional removal leaves it.
    let mut disk = Memory::default();
    disk.tokens.insert(PRODUCT.into(), "newer".into());
    let mut change = Persist::default();
    change.drop_if.insert(PRODUCT.into(), "older".into());
    change.apply(&mut disk);
    assert_eq!(disk.tokens.get(PRODUCT).map(String::as_str), Some("newer"));
    change.drop_if.insert(PRODUCT.into(), "newer".into());
    change.apply(&mut disk);
    assert!(disk.tokens.is_empty());

    // A refused explicit checkout removes nothing: the host's cached token (here its trial's)
    // is not what it was about.
    let mut sim = Sim::new();
    let net = Net::new(&[Mode::Up]);
    let (mut m, number) = registered(&mut sim, "a", 1);
    let offer = licet_core::Offer::License {
        seats: 1,
        term_days: None,
        features: None,
        model: licet_core::LicenseModel::Floating,
    };
    let coupon = sim.coupon(offer);
    sim.redeem(Some(&number), &coupon).unwrap();
    let mut other = Machine::new(pc("b"), &sim.keys, 1);
    other.set_number(&number);
    other.checkout(&mut sim, &net, None).unwrap();
    let trial_token = m.policy.token(PRODUCT).unwrap().to_owned();
    refused(m.checkout(&mut sim, &net, None), Code::NoFreeLicense);
    assert_eq!(m.policy.token(PRODUCT), Some(trial_token.as_str()));
    assert_eq!(m.disk.tokens.get(PRODUCT), Some(&trial_token));
}

#[test]
fn an_installed_token_must_pass_now_and_never_replaces_a_newer_one() {
    let mut sim = Sim::new();
    let (mut m, number) = registered(&mut sim, "a", 1);
    let (seat, older) = sim.activate(&number, &m.host).unwrap();
    m.wait(&mut sim, Duration::hours(1));
    let newer = sim.signer.issue(&seat, sim.now);
    m.policy.install(sim.now, &newer).unwrap();
    let refused_older = m.policy.install(sim.now, &older).unwrap_err();
    assert_eq!(refused_older.code(), Code::InvalidRequest);
    assert_eq!(m.policy.token(PRODUCT), Some(newer.as_str()));
    // Another host's token is refused as such, and changes nothing either.
    let mut claims = licet_core::Claims::for_seat(&seat, sim.signer.kid(), sim.now);
    claims.host = pc("b").fingerprint.digest();
    let other = sim.signer.sign(&claims, licet_core::TokenFormat::V2);
    assert_eq!(m.policy.install(sim.now, &other).unwrap_err().code(), Code::HostMismatch);
    assert_eq!(m.policy.token(PRODUCT), Some(newer.as_str()));
}

#[test]
fn restore_puts_back_a_session_token_this_agent_took_if_it_passes_now() {
    let mut sim = Sim::new();
    let net = Net::new(&[Mode::Up]);
    let (mut m, _) = floating_machine(&mut sim, "a");
    m.checkout(&mut sim, &net, None).unwrap();
    let older = m.policy.token(PRODUCT).unwrap().to_owned();
    // Half a lease later a check heartbeats: a newer token, and the newest issue time accepted
    // moves past the older one's.
    m.wait(&mut sim, Duration::seconds(450));
    assert_eq!(m.check(&mut sim, &net).unwrap().source, Source::Server);
    assert_ne!(m.policy.token(PRODUCT), Some(older.as_str()));
    m.policy.forget(PRODUCT);
    let _ = m.policy.poll_persist();

    // Installing by hand refuses a token older than one accepted; the driver's restore, of a
    // token it took from a server itself, puts it back — in memory and on disk.
    assert_eq!(m.policy.install(sim.now, &older).unwrap_err().code(), Code::InvalidRequest);
    assert!(m.policy.token(PRODUCT).is_none());
    let restored = m.policy.restore(sim.now, &older).unwrap();
    assert_eq!(restored.product, PRODUCT);
    assert_eq!(m.policy.token(PRODUCT), Some(older.as_str()));
    let change = m.policy.poll_persist().unwrap();
    assert_eq!(change.tokens.get(PRODUCT), Some(&Some(older.clone())));

    // One that does not pass now is refused, and so is another host's.
    m.policy.forget(PRODUCT);
    m.wait(&mut sim, Duration::seconds(451));
    assert_eq!(m.policy.restore(sim.now, &older).unwrap_err().code(), Code::LeaseExpired);
    assert!(m.policy.token(PRODUCT).is_none());
    let mut other = Machine::new(pc("b"), &sim.keys, 1);
    assert_eq!(other.policy.restore(sim.now, &older).unwrap_err().code(), Code::HostMismatch);
}

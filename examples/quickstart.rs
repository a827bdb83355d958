//! The core's flows end to end on the embedded store, as a short story.
//!
//! A vendor sets up a product and a signing key; two customer hosts register, check, redeem a
//! coupon, run out of seats, free one, and keep working offline from a signed token until the
//! lease ends. Everything lives in a temporary directory that is removed at the end.
//!
//! `cargo run --release --example quickstart`

use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use licet::core::{
    Code, CouponBatch, Entropy, Error, Fingerprint, Host, Ledger, ProductSettings, Registration, SeededEntropy,
    TokenSigner, TrustedKeys, verdict,
};
use licet::store::{SledStore, StoreExt};

fn host(name: &str, seed: &str) -> Host {
    let secret = b"vendor fingerprint secret";
    let fp = Fingerprint::new(
        ["machine-id", "mac", "disk"].map(|c| (c, Fingerprint::keyed_value(secret, c, &format!("{seed}-{c}")))),
    )
    .expect("three components are a valid fingerprint");
    Host::new(fp, name, "Linux").expect("short names are valid")
}

fn step(n: &mut u32, text: impl std::fmt::Display) {
    *n += 1;
    println!("{n:>2}. {text}");
}

fn refused(e: &Error) -> String {
    format!("refused with {} {}", e.code().number(), e.code().name())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = SledStore::open(dir.path().join("ledger"))?;
    let ledger = Ledger::new("LICET")?;
    // A real server draws these from the OS; the story is reproducible instead.
    let mut rng = SeededEntropy::new(2026);
    let mut secret = [0u8; 32];
    rng.fill(&mut secret);
    let signer = TokenSigner::from_secret(&secret);
    let mut trusted = TrustedKeys::new();
    trusted.add_hex(&signer.public_key_hex())?;
    let mut now: DateTime<Utc> = "2026-12-01T09:00:00Z".parse()?;
    let mut n = 0;

    store.transact(|tx| {
        ledger.upsert_product(
            tx,
            "call-journal",
            &ProductSettings { name: Some("Call journal".into()), ..Default::default() },
        )
    })?;
    step(&mut n, format!("The vendor creates product call-journal and signing key {}.", signer.kid()));

    let (office, laptop, third, fourth) =
        (host("office-pc", "a"), host("laptop", "b"), host("warehouse", "c"), host("reception", "d"));
    let reg = Registration {
        email: "it@romashka.example".into(),
        organization: "Romashka LLC".into(),
        contact: Some("Ivan".into()),
        phone: None,
        product: "call-journal".into(),
        host: office.clone(),
    };
    let registered = store.transact(|tx| ledger.register(tx, now, &mut rng, &reg))?;
    let number = registered.number.to_string();
    step(
        &mut n,
        format!(
            "office-pc registers: number {} (mailed to {}), a {}-day trial, seat 1 of 1.",
            registered.number.masked(),
            registered.mail.to,
            30
        ),
    );

    let mut typo = number.clone().into_bytes();
    typo[8] = if typo[8] == b'X' { b'Y' } else { b'X' };
    let typo = String::from_utf8(typo)?;
    let e = licet::core::RegistrationNumber::parse(&typo).expect_err("the check symbols catch a typo");
    step(&mut n, format!("laptop types the number with a typo: {} — caught locally.", refused(&e)));

    let e = store
        .transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &laptop))
        .expect_err("the trial has one seat");
    step(&mut n, format!("laptop checks the license: {}; the trial's only seat is taken.", refused(&e)));

    let batch = CouponBatch { product: "call-journal".into(), count: 1, seats: 2, term_days: None };
    let coupon = store.transact(|tx| ledger.issue_coupons(tx, now, &mut rng, &batch))?.remove(0);
    let license = store.transact(|tx| ledger.redeem(tx, now, &mut rng, Some(&number), &coupon.to_string()))?;
    step(
        &mut n,
        format!(
            "The customer buys coupon {} and redeems it: a {} license for {} seats.",
            coupon.masked(),
            license.kind.as_str(),
            license.seats
        ),
    );

    let grant = store.transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &office))?;
    step(
        &mut n,
        format!("office-pc checks again and moves from the trial to the {} license.", grant.license.kind.as_str()),
    );
    let grant = store.transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &laptop))?;
    let laptop_token = signer.issue(&grant, now);
    step(
        &mut n,
        format!(
            "laptop checks: bound, seat {} of {}; it caches a {}-character signed token.",
            grant.seats_used,
            grant.license.seats,
            laptop_token.len()
        ),
    );

    let grant = store.transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &third))?;
    step(
        &mut n,
        format!(
            "warehouse checks: the paid seats are full, so it takes the freed {} seat.",
            grant.license.kind.as_str()
        ),
    );
    let e = store
        .transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &fourth))
        .expect_err("every seat is bound");
    step(&mut n, format!("reception checks: {} — every seat is bound.", refused(&e)));

    let account = store.transact(|tx| ledger.authenticate(tx, &number))?;
    let office_binding =
        account.bindings.iter().find(|b| b.host.hostname == "office-pc").ok_or("office-pc is bound")?;
    store.transact(|tx| ledger.reset(tx, &number, &office_binding.id))?;
    let grant = store.transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &fourth))?;
    step(
        &mut n,
        format!(
            "In the portal the customer resets office-pc's binding; reception now gets a {} seat.",
            grant.license.kind.as_str()
        ),
    );

    let digest = laptop.fingerprint.digest();
    let mut mark = None;
    now += Duration::days(3);
    let j = verdict(&trusted, &laptop_token, "call-journal", &digest, now, mark);
    mark = j.high_water;
    let ok = j.result?;
    step(
        &mut n,
        format!(
            "The server is down for 3 days; laptop keeps passing from its cached token (lease until {}).",
            ok.lease_until.format("%Y-%m-%d %H:%M")
        ),
    );

    let j = verdict(&trusted, &laptop_token, "call-journal", &digest, now - Duration::days(2), mark);
    let e = j.result.expect_err("a clock set back is caught");
    step(&mut n, format!("Somebody sets laptop's clock back two days: {}.", refused(&e)));

    now += Duration::days(5);
    let j = verdict(&trusted, &laptop_token, "call-journal", &digest, now, j.high_water);
    let e = j.result.expect_err("the lease is a week");
    assert_eq!(e.code(), Code::LeaseExpired);
    step(&mut n, format!("After 8 days offline: {} — time to reach the server again.", refused(&e)));

    let grant = store.transact(|tx| ledger.activate(tx, now, &mut rng, &number, "call-journal", &laptop))?;
    let token = signer.issue(&grant, now);
    verdict(&trusted, &token, "call-journal", &digest, now, None).result?;
    step(&mut n, "The server is back: laptop refreshes its token and passes again.");

    let mut forged = token.into_bytes();
    forged[40] = if forged[40] == b'A' { b'B' } else { b'A' };
    let e = trusted.verify(&String::from_utf8(forged)?).expect_err("a forged token is refused");
    step(&mut n, format!("A token with one changed character: {}.", refused(&e)));

    drop(store);
    dir.close()?;
    println!("Done: the temporary store is removed.");
    Ok(())
}

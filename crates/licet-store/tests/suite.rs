//! The same suite against the in-memory reference store, the sled store and the PostgreSQL
//! store (on a private server the test starts).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Env, pc};
use licet_core::{Code, Record, RecordKey, Table};
use licet_store::pg::test_instance::TestInstance;
use licet_store::{MemStore, PgStore, SledStore, Store, StoreExt};

/// Fresh stores of each kind, made in a place a test owns (a directory, a database server).
trait Fresh: Store + Sized {
    type Place;
    /// `None`: this kind of store cannot be made here (PostgreSQL not installed); skip.
    fn place() -> Option<Self::Place>;
    fn fresh(place: &Self::Place) -> Self;
}

impl Fresh for MemStore {
    type Place = ();
    fn place() -> Option<()> {
        Some(())
    }
    fn fresh(_: &()) -> MemStore {
        MemStore::new()
    }
}

impl Fresh for SledStore {
    type Place = tempfile::TempDir;
    fn place() -> Option<tempfile::TempDir> {
        Some(tempfile::tempdir().unwrap())
    }
    fn fresh(dir: &tempfile::TempDir) -> SledStore {
        SledStore::open(tempfile::tempdir_in(dir.path()).unwrap().keep().join("ledger")).unwrap()
    }
}

impl Fresh for PgStore {
    type Place = TestInstance;
    fn place() -> Option<TestInstance> {
        TestInstance::start_or_skip("the store suite on PostgreSQL")
    }
    fn fresh(server: &TestInstance) -> PgStore {
        PgStore::connect(&server.create_database().unwrap()).unwrap()
    }
}

fn refused_commands_write_nothing<S: Fresh>() {
    let Some(place) = S::place() else { return };
    let env = Env::new(S::fresh(&place));
    let reg = env.register("a@example.com", &pc("a"), 1).unwrap();
    assert_eq!(env.register("A@example.com", &pc("b"), 2).unwrap_err().code(), Code::EmailAlreadyRegistered);
    assert_eq!(env.register("b@example.com", &pc("a"), 3).unwrap_err().code(), Code::HostAlreadyRegistered);
    // The refused registration of b@ left no trace: b@ can still register from another host.
    assert!(env.account("b@example.com").is_none());
    env.register("b@example.com", &pc("b"), 4).unwrap();
    // A command that fails half-way writes nothing either.
    assert!(!reg.number.to_string().is_empty());
    let before = env.account("a@example.com").unwrap();
    let result: Result<(), licet_core::Error> = env.store.transact(|tx| {
        let mut account = tx.account(&before.id)?.expect("the account exists");
        account.organization = "changed".into();
        tx.put_account(&account);
        Err(licet_core::Error::Refused(Code::NoFreeLicense))
    });
    assert!(result.is_err());
    assert_eq!(env.account("a@example.com").unwrap(), before);
}

fn seats_hold_under_concurrency<S: Fresh>() {
    let Some(place) = S::place() else { return };
    for round in 0..10u64 {
        let env = Env::new(S::fresh(&place));
        let number = env.register("a@example.com", &pc("owner"), round).unwrap().number.to_string();
        let coupon = env.coupons(1, 5, round).remove(0);
        env.redeem(&number, &coupon, round).unwrap();
        // The owner's trial seat is taken; 40 new hosts race for the 5 perpetual seats.
        let ok = AtomicUsize::new(0);
        let full = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for i in 0..40u64 {
                let (env, number, ok, full) = (&env, &number, &ok, &full);
                s.spawn(move || match env.activate(number, &pc(&format!("h{i}")), round * 100 + i) {
                    Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                    Err(e) if e.code() == Code::NoFreeLicense => full.fetch_add(1, Ordering::SeqCst),
                    Err(e) => panic!("unexpected {e}"),
                });
            }
        });
        assert_eq!((ok.into_inner(), full.into_inner()), (5, 35), "round {round}");
        let account = env.account("a@example.com").unwrap();
        for l in &account.licenses {
            assert!(account.seats_used(&l.id) <= l.seats);
        }
    }
}

fn a_coupon_is_redeemed_once_under_concurrency<S: Fresh>() {
    let Some(place) = S::place() else { return };
    let env = Env::new(S::fresh(&place));
    let numbers: Vec<String> = (0..8)
        .map(|i| env.register(&format!("u{i}@example.com"), &pc(&format!("u{i}")), i).unwrap().number.to_string())
        .collect();
    let coupon = env.coupons(1, 1, 9).remove(0);
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (i, number) in numbers.iter().enumerate() {
            let (env, coupon, ok) = (&env, &coupon, &ok);
            s.spawn(move || match env.redeem(number, coupon, 50 + i as u64) {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => assert_eq!(e.code(), Code::CouponAlreadyRedeemed),
            });
        }
    });
    assert_eq!(ok.into_inner(), 1);
    let with_license =
        (0..8).filter(|i| env.account(&format!("u{i}@example.com")).unwrap().licenses.len() == 2).count();
    assert_eq!(with_license, 1);
}

fn one_email_one_account_under_concurrency<S: Fresh>() {
    let Some(place) = S::place() else { return };
    let env = Env::new(S::fresh(&place));
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..16u64 {
            let (env, ok) = (&env, &ok);
            s.spawn(move || match env.register("same@example.com", &pc(&format!("r{i}")), i) {
                Ok(_) => {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => assert_eq!(e.code(), Code::EmailAlreadyRegistered),
            });
        }
    });
    assert_eq!(ok.into_inner(), 1);
}

/// Every key of `table`, read in pages of two.
fn list<S: Store>(store: &S, table: Table) -> Vec<RecordKey> {
    let mut all: Vec<RecordKey> = Vec::new();
    loop {
        let page = store.keys(table, all.last(), 2).unwrap();
        assert!(page.len() <= 2);
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

fn mail_is_queued_with_its_change_listed_and_claimed_once<S: Fresh>() {
    let Some(place) = S::place() else { return };
    let env = Env::new(S::fresh(&place));
    for (i, email) in ["a@example.com", "b@example.com", "c@example.com"].into_iter().enumerate() {
        env.register(email, &pc(email), i as u64).unwrap();
    }
    assert!(env.register("a@example.com", &pc("x"), 9).is_err());
    let mail = list(&env.store, Table::Mail);
    assert_eq!(mail.len(), 3, "one mail per account, none for the refused registration: {mail:?}");
    assert!(mail.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(list(&env.store, Table::Account).len(), 3);
    assert_eq!(list(&env.store, Table::Product).len(), 1);
    assert!(list(&env.store, Table::Coupon).is_empty());
    // Every record of a table, a page at a time: each once, of its table's kind.
    let mut emails = Vec::new();
    env.store
        .for_each_record(Table::Account, 2, |record| match record {
            Record::Account(account) => emails.push(account.email),
            other => panic!("not an account: {other:?}"),
        })
        .unwrap();
    emails.sort();
    assert_eq!(emails, ["a@example.com", "b@example.com", "c@example.com"]);
    let mut recipients = 0;
    env.store
        .for_each_record(Table::Mail, 1, |record| recipients += usize::from(matches!(record, Record::Mail(_))))
        .unwrap();
    assert_eq!(recipients, 3);

    // Eight deliverers race for one mail: one claims it.
    let RecordKey::Mail(id) = &mail[0] else { panic!("{:?}", mail[0]) };
    let claimed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let won = env
                    .store
                    .transact(|tx| {
                        let Some(mut m) = tx.mail(id)? else { return Ok(false) };
                        let won = m.claim(common::now(), common::now() + chrono::Duration::minutes(2), "t");
                        tx.put_mail(id, &m);
                        Ok(won)
                    })
                    .unwrap();
                if won {
                    claimed.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(claimed.into_inner(), 1);
    env.store
        .transact(|tx| {
            tx.delete(RecordKey::Mail(id.clone()));
            Ok(())
        })
        .unwrap();
    assert_eq!(list(&env.store, Table::Mail), mail[1..]);
}

macro_rules! suite {
    ($module:ident: $store:ident, $($test:ident),* $(,)?) => {
        mod $module {
            $(#[test] fn $test() { super::$test::<super::$store>() })*
        }
    };
}

suite!(
    mem: MemStore,
    refused_commands_write_nothing,
    seats_hold_under_concurrency,
    a_coupon_is_redeemed_once_under_concurrency,
    one_email_one_account_under_concurrency,
    mail_is_queued_with_its_change_listed_and_claimed_once,
);
suite!(
    sled: SledStore,
    refused_commands_write_nothing,
    seats_hold_under_concurrency,
    a_coupon_is_redeemed_once_under_concurrency,
    one_email_one_account_under_concurrency,
    mail_is_queued_with_its_change_listed_and_claimed_once,
);
suite!(
    pg: PgStore,
    refused_commands_write_nothing,
    seats_hold_under_concurrency,
    a_coupon_is_redeemed_once_under_concurrency,
    one_email_one_account_under_concurrency,
    mail_is_queued_with_its_change_listed_and_claimed_once,
);

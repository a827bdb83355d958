//! What only the sled store has: reopening, schema versions, the directory lock.

mod common;
#[path = "../../../tests/fixtures/support.rs"]
mod fixtures;

use fixtures::{copy_dir, fixture};

use common::{Env, pc};
use licet_core::RecordKey;
use licet_store::{Error, SCHEMA_VERSION, SledStore};

#[test]
fn everything_committed_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let number = {
        let env = Env::new(SledStore::open(&path).unwrap());
        env.register("a@example.com", &pc("a"), 1).unwrap().number.to_string()
    };
    let env = Env { store: SledStore::open(&path).unwrap(), ledger: licet_core::Ledger::new("LICET").unwrap() };
    let account = env.account("a@example.com").unwrap();
    assert_eq!(env.ledger.number_of(&account).unwrap().to_string(), number);
    assert_eq!(account.bindings.len(), 1);
}

#[test]
fn an_older_copy_of_the_ledger_is_refused_as_damaged_and_a_seal_left_behind_never_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let old = dir.path().join("old-copy");
    {
        let env = Env::new(SledStore::open(&path).unwrap());
        env.register("a@example.com", &pc("a"), 1).unwrap();
    }
    copy_dir(&path, &old);
    let commits = {
        let env = Env::new(SledStore::open(&path).unwrap());
        env.register("b@example.com", &pc("b"), 1).unwrap();
        env.store.commits()
    };
    // The seal beside the ledger remembers what was acknowledged.
    std::fs::remove_dir_all(&path).unwrap();
    std::fs::rename(&old, &path).unwrap();
    match SledStore::open(&path) {
        Err(e @ Error::Damaged { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&format!("{commits} were acknowledged")), "{message}");
        }
        other => panic!("expected Damaged, got {other:?}"),
    }
    // The seal being behind (written without an fsync) is normal after a crash.
    std::fs::write(dir.path().join("ledger.seal"), "1\n").unwrap();
    let store = SledStore::open(&path).unwrap();
    assert!((1..commits).contains(&store.commits()), "{} of {commits}", store.commits());
}

#[test]
fn an_unknown_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    drop(SledStore::open(&path).unwrap());
    {
        let db = sled::open(&path).unwrap();
        db.insert(b"licet/schema", b"licet-ledger-999".as_slice()).unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(&path) {
        Err(e @ Error::NewerSchema { .. }) => {
            let message = e.to_string();
            assert!(message.contains("licet-ledger-999") && message.contains("newer release"), "{message}");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    // The store was left as it was.
    {
        let db = sled::open(&path).unwrap();
        assert_eq!(db.get(b"licet/schema").unwrap().as_deref(), Some(b"licet-ledger-999".as_slice()));
    }
    // A database that is not a licet ledger at all.
    let foreign = dir.path().join("foreign");
    {
        let db = sled::open(&foreign).unwrap();
        db.insert(b"x", b"y".as_slice()).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(SledStore::open(&foreign), Err(Error::UnknownSchema { .. })));
    // An agent cache of release 0.1.0 is not a ledger either.
    let cache_dir = dir.path().join("cache");
    copy_dir(&fixture("agent-b/cache"), &cache_dir);
    match SledStore::open(&cache_dir) {
        Err(Error::UnknownSchema { found, expected, .. }) => {
            assert_eq!(found, "licet-cache-1");
            assert_eq!(expected, SCHEMA_VERSION);
        }
        other => panic!("expected UnknownSchema, got {other:?}"),
    }
}

#[test]
fn the_ledger_release_0_1_0_wrote_is_migrated_in_place_and_serves() {
    let facts: serde_json::Value = fixtures::facts();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    copy_dir(&fixture("server/ledger"), &path);

    let store = SledStore::open(&path).unwrap();
    let migrated = store.migrated().expect("a 0.1.0 store is migrated");
    let records: Vec<_> = store.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(migrated, records.len(), "every record was rewritten");
    licet_core::check_invariants(records.iter().map(|(k, r)| (k, r))).unwrap();
    let products: Vec<_> = records.iter().filter(|(k, _)| matches!(k, RecordKey::Product(_))).collect();
    assert_eq!(products.len(), 2);

    // Account a as 0.1.0 described it over HTTP: same licenses, same bindings, same hosts.
    let env = Env { store, ledger: licet_core::Ledger::new("MIKO").unwrap() };
    let a = env.account("a@example.com").unwrap();
    let expected = &facts["account_a"];
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(a.licenses.iter().map(|l| l.id.clone()).collect::<Vec<_>>(), ids(&expected["licenses"]));
    assert_eq!(a.bindings.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), ids(&expected["bindings"]));
    for (binding, was) in a.bindings.iter().zip(expected["bindings"].as_array().unwrap()) {
        let fingerprint: std::collections::BTreeMap<String, String> =
            serde_json::from_value(was["host"]["fingerprint"].clone()).unwrap();
        assert_eq!(binding.host.fingerprint.components(), &fingerprint);
        assert_eq!(binding.anchor, binding.host.fingerprint, "a migrated binding is anchored where it stands");
    }
    assert_eq!(env.ledger.number_of(&a).unwrap().to_string(), facts["numbers"]["a"].as_str().unwrap());
    assert!(env.account("c@example.com").is_some(), "e-mails stay case-insensitive");
    // It serves: host a refreshes its seat; both perpetual seats are taken (a and b), so a new
    // host gets the trial's seat that a left when it moved to the perpetual, and a second none.
    let fingerprint = |text: &str| {
        let pairs = text.split(',').map(|p| p.split_once('=').unwrap());
        licet_core::Host::new(licet_core::Fingerprint::new(pairs).unwrap(), "a", "Linux").unwrap()
    };
    let number = facts["numbers"]["a"].as_str().unwrap();
    let seat = env.activate(number, &fingerprint(facts["fingerprints"]["a"].as_str().unwrap()), 1).unwrap();
    assert_eq!(seat.license.kind, licet_core::LicenseKind::Perpetual);
    assert_eq!(seat.seats_used, 2);
    let stranger = env.activate(number, &pc("stranger"), 2).unwrap();
    assert_eq!(stranger.license.kind, licet_core::LicenseKind::Trial);
    let refused = env.activate(number, &pc("another"), 3).unwrap_err();
    assert_eq!(refused.code(), licet_core::Code::NoFreeLicense);
    drop(env);

    // Opened again: already up to date.
    let again = SledStore::open(&path).unwrap();
    assert_eq!(again.migrated(), None);
    assert_eq!(again.records().count(), records.len());
}

#[test]
fn a_second_opener_is_told_the_store_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let _first = SledStore::open(&path).unwrap();
    assert!(matches!(SledStore::open(&path), Err(Error::Locked { .. })));
}

/// Rewrites an account's e-mail and its index entry as release 0.1.0 would have stored them
/// (trimmed and lower-cased only), bypassing this release's rule.
fn store_as_0_1_0(path: &std::path::Path, old_email: &str, email: &str) {
    use licet_core::Record;
    let db = sled::open(path).unwrap();
    let ledger = db.open_tree("ledger").unwrap();
    let old_key = RecordKey::Email(old_email.to_owned()).to_bytes();
    let id_bytes = ledger.get(&old_key).unwrap().unwrap();
    let Record::AccountId(id) = Record::decode(&RecordKey::Email(old_email.into()), &id_bytes).unwrap() else {
        panic!()
    };
    let key = RecordKey::Account(id.clone());
    let Record::Account(mut account) = Record::decode(&key, &ledger.get(key.to_bytes()).unwrap().unwrap()).unwrap()
    else {
        panic!()
    };
    account.email = email.to_owned();
    ledger.insert(key.to_bytes(), Record::Account(account).encode()).unwrap();
    ledger.remove(old_key).unwrap();
    let new_key = RecordKey::Email(licet_core::email::identity_0_1_0(email));
    ledger.insert(new_key.to_bytes(), Record::AccountId(id).encode()).unwrap();
    ledger.remove(b"!email-identity-1").unwrap();
    db.flush().unwrap();
}

#[test]
fn e_mails_of_an_older_release_are_reindexed_once_and_collisions_reported_never_merged() {
    use licet_core::{Code, Command, SeededEntropy};
    use licet_store::StoreExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    {
        let env = Env::new(SledStore::open(&path).unwrap());
        for (i, tag) in ["a", "b", "c", "d"].iter().enumerate() {
            env.register(&format!("{tag}@example.com"), &pc(tag), i as u64 + 1).unwrap();
        }
        assert_eq!(env.store.email_report().unwrap(), None);
    }
    store_as_0_1_0(&path, "a@example.com", "a\u{301}@example.com"); // decomposed á…
    store_as_0_1_0(&path, "b@example.com", "á@example.com"); // …and composed: one address now
    store_as_0_1_0(&path, "c@example.com", "c<x>@example.com"); // refused by the rule now
    store_as_0_1_0(&path, "d@example.com", "o\u{308}@example.com"); // decomposed ö, alone
    let env = Env { store: SledStore::open(&path).unwrap(), ledger: licet_core::Ledger::new("LICET").unwrap() };
    let report = env.store.email_report().unwrap().expect("the index was moved at this open");
    assert_eq!(report.reindexed, 1);
    assert_eq!(report.collisions.len(), 1);
    let mut colliding: Vec<&str> = report.collisions[0].iter().map(|s| s.email.as_str()).collect();
    colliding.sort();
    assert_eq!(colliding, ["a\u{301}@example.com", "á@example.com"]);
    assert_eq!(report.invalid.iter().map(|s| s.email.as_str()).collect::<Vec<_>>(), ["c<x>@example.com"]);

    // Nothing merged: both colliding accounts are still there, each with its own number.
    let both: Vec<_> = env
        .store
        .records()
        .filter_map(|r| match r.unwrap().1 {
            licet_core::Record::Account(a) if a.email.contains('@') && a.email.starts_with(['a', 'á']) => Some(a.id),
            _ => None,
        })
        .collect();
    assert_eq!(both.len(), 2);
    // Every form of a registered address is taken, and the moved one is found by its composed form.
    for taken in ["ö@example.com", "O\u{308}@EXAMPLE.COM", "á@example.com", "A\u{301}@example.com"] {
        assert_eq!(
            env.register(taken, &pc(taken), 9).unwrap_err(),
            licet_core::Error::Refused(Code::EmailAlreadyRegistered),
            "{taken}"
        );
    }
    assert_eq!(env.account("ö@example.com").unwrap().email, "o\u{308}@example.com");
    // The refused address is found by the admin under its old key, but gets no mail.
    assert!(env.account("c<x>@example.com").is_some());
    let recover = Command::Recover { email: "c<x>@example.com".into() };
    let mail: Result<(), _> = env.store.execute(&env.ledger, common::now(), &mut SeededEntropy::new(0), &recover);
    assert!(matches!(mail, Err(licet_core::Error::InvalidInput { .. })), "{mail:?}");
    // Kept until the vendor has it, however often the ledger is opened; never re-run.
    drop(env);
    let store = SledStore::open(&path).unwrap();
    assert_eq!(store.email_report().unwrap(), Some(report));
    store.forget_email_report().unwrap();
    drop(store);
    assert_eq!(SledStore::open(&path).unwrap().email_report().unwrap(), None);
}

#[test]
fn a_command_whose_reads_change_before_it_applies_is_decided_again_and_loses_nothing() {
    use licet_core::Error as CoreError;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::new(SledStore::open(dir.path().join("ledger")).unwrap());
    let number = env.register("a@example.com", &pc("a"), 1).unwrap().number.to_string();
    let id = env.account("a@example.com").unwrap().id;
    let mut runs = 0;
    let mut command = |tx: &mut licet_core::Tx<'_>| -> Result<(), CoreError> {
        runs += 1;
        let mut account = tx.account(&id)?.ok_or_else(|| CoreError::Internal("no account".into()))?;
        if runs == 1 {
            // While this command decides (outside the store's lock), another binds a host to
            // the same account and commits.
            let other = std::thread::scope(|s| s.spawn(|| env.activate(&number, &pc("b"), 2)).join().unwrap());
            assert_eq!(other.unwrap_err().code(), licet_core::Code::NoFreeLicense, "the trial's one seat is a's");
            let coupon = env.coupons(1, 2, 3).remove(0);
            env.redeem(&number, &coupon, 4).unwrap();
        }
        account.organization = "Renamed".into();
        tx.put_account(&account);
        Ok(())
    };
    let (result, pending) = env.store.apply(&mut command).unwrap();
    result.unwrap();
    env.store.make_durable(&pending).unwrap();
    assert_eq!(runs, 2, "the first decision read an account that changed before it applied");
    let account = env.account("a@example.com").unwrap();
    assert_eq!(account.organization, "Renamed");
    assert_eq!(account.licenses.len(), 2, "the coupon's license, redeemed meanwhile, is kept");
}

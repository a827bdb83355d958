//! What only the sled store has: reopening, schema versions, the directory lock.

mod common;

use common::{Env, pc};
use licet_store::{Error, SCHEMA_VERSION, SledStore, TokenCache};

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
        Err(Error::UnknownSchema { found, expected, .. }) => {
            assert_eq!(found, "licet-ledger-999");
            assert_eq!(expected, SCHEMA_VERSION);
        }
        other => panic!("expected UnknownSchema, got {other:?}"),
    }
    // A database that is not a licet ledger at all.
    let foreign = dir.path().join("foreign");
    {
        let db = sled::open(&foreign).unwrap();
        db.insert(b"x", b"y".as_slice()).unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(SledStore::open(&foreign), Err(Error::UnknownSchema { .. })));
    // An agent cache is not a ledger either.
    let cache_dir = dir.path().join("cache");
    TokenCache::new(&cache_dir).put_token("s", "p", "t").unwrap();
    assert!(matches!(SledStore::open(&cache_dir), Err(Error::UnknownSchema { .. })));
}

#[test]
fn a_second_opener_is_told_the_store_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let _first = SledStore::open(&path).unwrap();
    assert!(matches!(SledStore::open(&path), Err(Error::Locked { .. })));
}

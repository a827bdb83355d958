//! The agent's cache: contents, merging writers, the clock marks, damage, newer formats,
//! many readers, and the import of release 0.1.0's cache.

#[path = "../../../tests/fixtures/support.rs"]
mod fixtures;

use fixtures::{copy_dir, fixture};
use std::collections::BTreeMap;
use std::time::Duration;

use licet_core::agent::{MarkReset, Memory, Persist};
use licet_store::{AgentCache, CacheError};

const PATIENCE: Duration = Duration::from_secs(5);

fn put(product: &str, token: &str) -> Persist {
    Persist { tokens: BTreeMap::from([(product.to_owned(), Some(token.to_owned()))]), ..Persist::default() }
}

fn raise(mark: i64) -> Persist {
    Persist { raise: Some(mark), ..Persist::default() }
}

fn reset(issued_at: i64, mark: i64) -> Persist {
    Persist { reset: Some(MarkReset { issued_at, mark, evidence: None }), ..Persist::default() }
}

#[test]
fn numbers_tokens_and_marks_persist_and_writers_merge() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AgentCache::new(dir.path());
    assert_eq!(cache.load(&[]).unwrap(), Memory::default());
    cache.apply(&Persist { number: Some(Some("LICET-1".into())), ..Persist::default() }, PATIENCE).unwrap();
    cache.apply(&put("p1", "token-1"), PATIENCE).unwrap();
    // A second handle (another program) writes too: nothing of the first is lost.
    AgentCache::new(dir.path()).apply(&put("p2", "token-2"), PATIENCE).unwrap();
    cache.apply(&raise(100), PATIENCE).unwrap();
    cache.apply(&raise(50), PATIENCE).unwrap();

    let again = AgentCache::new(dir.path()).load(&[]).unwrap();
    assert_eq!(again.number.as_deref(), Some("LICET-1"));
    assert_eq!(again.tokens.len(), 2);
    assert_eq!(again.mark, Some(100), "raising never moves the mark back");
    // The server's time is trusted: a reset may lower the mark, never below an earlier reset.
    let after = cache.apply(&reset(70, 70), PATIENCE).unwrap();
    assert_eq!((after.mark, after.floor), (Some(70), Some(70)));
    let after = cache.apply(&reset(60, 65), PATIENCE).unwrap();
    assert_eq!((after.mark, after.floor), (Some(70), Some(70)), "an old token cannot pull the clock back");
    let after = cache.apply(&reset(80, 90), PATIENCE).unwrap();
    assert_eq!((after.mark, after.floor), (Some(90), Some(80)), "the clock seen with the answer counts");
    // Another number drops the tokens of the previous one; the same number keeps them.
    let same = cache.apply(&Persist { number: Some(Some("LICET-1".into())), ..Persist::default() }, PATIENCE).unwrap();
    assert_eq!(same.tokens.len(), 2);
    let other = cache.apply(&Persist { number: Some(Some("LICET-2".into())), ..Persist::default() }, PATIENCE).unwrap();
    assert!(other.tokens.is_empty());
    assert!(cache.take_warning().is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(cache.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds a registration number");
    }
}

#[test]
fn fields_of_a_newer_release_survive_a_write_by_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AgentCache::new(dir.path());
    cache.apply(&put("p", "tok"), PATIENCE).unwrap();
    // A newer release adds a field of its own (say, floating sessions).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Newer {
        number: Option<String>,
        tokens: BTreeMap<String, String>,
        sessions: Vec<String>,
    }
    let newer = Newer { number: None, tokens: [("p".into(), "tok".into())].into(), sessions: vec!["s1".into()] };
    let mut bytes = b"licet-agent-cache\n\x02".to_vec();
    bytes.extend(licet_core::codec::pack(&newer));
    std::fs::write(cache.path(), bytes).unwrap();
    // This release writes: the newer field is still there afterwards.
    cache.apply(&put("q", "tok2"), PATIENCE).unwrap();
    let raw = std::fs::read(cache.path()).unwrap();
    let read: Newer = licet_core::codec::unpack(&raw[b"licet-agent-cache\n\x02".len()..]).unwrap();
    assert_eq!(read.sessions, ["s1"]);
    assert_eq!(read.tokens.len(), 2);
    // A vendor name is recorded once.
    let first = Persist { vendor: Some("MIKO".into()), ..Persist::default() };
    assert_eq!(cache.apply(&first, PATIENCE).unwrap().vendor.as_deref(), Some("MIKO"));
    let second = Persist { vendor: Some("ACME".into()), ..Persist::default() };
    assert_eq!(cache.apply(&second, PATIENCE).unwrap().vendor.as_deref(), Some("MIKO"));
}

#[test]
fn a_change_by_another_process_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    let mine = AgentCache::new(dir.path());
    mine.apply(&put("p", "1"), PATIENCE).unwrap();
    assert!(!mine.changed());
    let theirs = AgentCache::new(dir.path());
    theirs.apply(&put("p", "2"), PATIENCE).unwrap();
    assert!(mine.changed());
    assert_eq!(mine.load(&[]).unwrap().tokens["p"], "2");
    assert!(!mine.changed());
}

#[test]
fn an_unreadable_cache_is_set_aside_reported_once_and_replaced() {
    for garbage in [&b"licet-agent-cache\n\x02\xff\xff"[..], b"something else entirely", b""] {
        let dir = tempfile::tempdir().unwrap();
        let cache = AgentCache::new(dir.path());
        cache.apply(&put("p", "tok"), PATIENCE).unwrap();
        std::fs::write(cache.path(), garbage).unwrap();
        let cache = AgentCache::new(dir.path());
        assert_eq!(cache.load(&[]).unwrap(), Memory::default(), "nothing from a damaged cache is used");
        let warning = cache.take_warning().expect("the damage is reported");
        assert!(warning.contains("could not be read"), "{warning}");
        assert!(cache.take_warning().is_none(), "reported once");
        assert!(dir.path().join("agent-cache.corrupt-0").exists(), "kept aside for support");
        cache.apply(&put("p", "tok2"), PATIENCE).unwrap();
        assert_eq!(cache.load(&[]).unwrap().tokens["p"], "tok2");
    }
}

#[test]
fn a_cache_of_a_newer_release_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AgentCache::new(dir.path());
    let newer = b"licet-agent-cache\n\x09whatever".to_vec();
    std::fs::write(cache.path(), &newer).unwrap();
    let error = cache.load(&[]).unwrap_err();
    assert!(matches!(error, CacheError::Newer { found: 9, .. }), "{error}");
    assert!(error.to_string().contains("newer release"));
    assert!(matches!(cache.apply(&put("p", "t"), PATIENCE), Err(CacheError::Newer { .. })));
    assert_eq!(std::fs::read(cache.path()).unwrap(), newer);
}

#[test]
fn readers_never_wait_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let cache = AgentCache::new(dir.path());
    cache.apply(&put("p", "tok"), PATIENCE).unwrap();
    // Hold the write lock as another process would, for as long as we like.
    let lock = std::fs::OpenOptions::new().write(true).open(dir.path().join("agent-cache.lock")).unwrap();
    lock.lock().unwrap();
    let started = std::time::Instant::now();
    for _ in 0..100 {
        assert_eq!(AgentCache::new(dir.path()).load(&[]).unwrap().tokens["p"], "tok");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(cache.apply(&put("p", "x"), Duration::from_millis(50)), Err(CacheError::Busy(_))));
    lock.unlock().unwrap();
    cache.apply(&put("p", "x"), PATIENCE).unwrap();
}

#[test]
fn many_writers_in_parallel_all_land() {
    let dir = tempfile::tempdir().unwrap();
    std::thread::scope(|s| {
        for t in 0..4 {
            let dir = dir.path();
            s.spawn(move || {
                let cache = AgentCache::new(dir);
                for i in 0..25 {
                    cache.apply(&put(&format!("p{t}"), &format!("tok-{i}")), PATIENCE).unwrap();
                    cache.apply(&raise(i), PATIENCE).unwrap();
                    assert_eq!(cache.load(&[]).unwrap().tokens[&format!("p{t}")], format!("tok-{i}"));
                }
            });
        }
    });
    let all = AgentCache::new(dir.path()).load(&[]).unwrap();
    assert_eq!(all.tokens.len(), 4);
    assert_eq!(all.mark, Some(24));
}

#[test]
fn the_cache_release_0_1_0_wrote_is_imported_once_and_left_in_place() {
    let facts: serde_json::Value = fixtures::facts();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("agent-a"), dir.path());
    let before: Vec<_> =
        std::fs::read_dir(dir.path().join("cache")).unwrap().flatten().map(|e| e.file_name()).collect();
    // The server's address changed since: the number and tokens are this directory's anyway.
    let cache = AgentCache::new(dir.path());
    let memory = cache.load(&["https://lic.example.com".into()]).unwrap();
    assert_eq!(memory.number.as_deref(), facts["numbers"]["a"].as_str());
    assert_eq!(memory.tokens.len(), 2);
    assert_eq!(memory.tokens["call-journal"], facts["tokens"]["a"].as_str().unwrap());
    assert_eq!(memory.tokens["recorder"], facts["tokens"]["a_recorder"].as_str().unwrap());
    let fixture_time = chrono::DateTime::parse_from_rfc3339(facts["now"].as_str().unwrap()).unwrap().timestamp();
    assert_eq!(memory.mark, Some(fixture_time));
    assert!(memory.floor.is_some_and(|f| f >= fixture_time));
    assert!(cache.path().exists(), "imported into the new cache file");
    // The 0.1.0 cache is still there for any 0.1.0 program sharing the directory.
    assert!(dir.path().join("cache/conf").exists());
    let after: Vec<_> = std::fs::read_dir(dir.path().join("cache")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(before.iter().all(|f| after.contains(f)));
    // Imported once: later changes to the new cache stand.
    cache.apply(&Persist { number: Some(None), ..Persist::default() }, PATIENCE).unwrap();
    assert_eq!(AgentCache::new(dir.path()).load(&[]).unwrap().number, None);
}

#[test]
fn many_programs_importing_at_once_all_get_it_and_a_damaged_cache_does_not_bring_it_back() {
    let facts: serde_json::Value = fixtures::facts();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("agent-b"), dir.path());
    std::thread::scope(|s| {
        for _ in 0..16 {
            let dir = dir.path();
            let facts = &facts;
            s.spawn(move || {
                let memory = AgentCache::new(dir).load(&[]).unwrap();
                assert_eq!(memory.number.as_deref(), facts["numbers"]["a"].as_str());
            });
        }
    });
    // The new cache is damaged and set aside: it is not replaced by the stale 0.1.0 one.
    let cache = AgentCache::new(dir.path());
    std::fs::write(cache.path(), b"garbage").unwrap();
    assert_eq!(cache.load(&[]).unwrap().number, None);
    assert!(cache.take_warning().is_some());
    assert_eq!(AgentCache::new(dir.path()).load(&[]).unwrap().number, None);
}

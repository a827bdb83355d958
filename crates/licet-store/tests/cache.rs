//! The agent's token cache: contents, monotonic clock mark, corruption, sharing.

use licet_store::TokenCache;

#[test]
fn tokens_numbers_and_the_clock_mark_persist() {
    let dir = tempfile::tempdir().unwrap();
    let cache = TokenCache::new(dir.path().join("cache"));
    assert_eq!(cache.load("https://a").unwrap(), Default::default());
    cache.set_number("https://a", Some("LICET-1")).unwrap();
    cache.put_token("https://a", "p1", "token-1").unwrap();
    cache.put_token("https://a", "p2", "token-2").unwrap();
    cache.put_token("https://b", "p1", "other-server").unwrap();
    cache.raise_high_water(100).unwrap();
    cache.raise_high_water(50).unwrap();

    let again = TokenCache::new(dir.path().join("cache"));
    let a = again.load("https://a").unwrap();
    assert_eq!(a.number.as_deref(), Some("LICET-1"));
    assert_eq!(a.tokens.len(), 2);
    assert_eq!(a.tokens["p1"], "token-1");
    assert_eq!(a.high_water, Some(100), "the mark never moves back by raising");
    assert_eq!(again.load("https://b").unwrap().tokens["p1"], "other-server");

    again.remove_token("https://a", "p1").unwrap();
    assert!(!again.load("https://a").unwrap().tokens.contains_key("p1"));
    // The same number again keeps tokens; a different one drops them.
    again.set_number("https://a", Some("LICET-1")).unwrap();
    assert_eq!(again.load("https://a").unwrap().tokens.len(), 1);
    again.set_number("https://a", Some("LICET-2")).unwrap();
    assert!(again.load("https://a").unwrap().tokens.is_empty());
    again.set_number("https://a", None).unwrap();
    assert_eq!(again.load("https://a").unwrap().number, None);
    // The server's time is trusted: the mark may be reset lower …
    assert_eq!(again.reset_high_water(70).unwrap(), 70);
    assert_eq!(again.load("https://a").unwrap().high_water, Some(70));
    // … but never below the latest issue time already accepted (no replaying old tokens).
    assert_eq!(again.reset_high_water(90).unwrap(), 90);
    assert_eq!(again.reset_high_water(60).unwrap(), 90);
    assert_eq!(again.load("https://a").unwrap().high_water, Some(90));
    assert!(again.take_warning().is_none());
}

fn corrupt_all_files(dir: &std::path::Path) {
    for entry in walk(dir) {
        let len = std::fs::metadata(&entry).unwrap().len() as usize;
        std::fs::write(&entry, vec![0xa5u8; len.max(64)]).unwrap();
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

#[test]
fn an_unreadable_cache_is_reported_once_and_replaced_by_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    let cache = TokenCache::new(&path);
    cache.put_token("s", "p", "tok").unwrap();
    cache.raise_high_water(1_000).unwrap();
    corrupt_all_files(&path);

    let cache = TokenCache::new(&path);
    let contents = cache.load("s").unwrap();
    assert!(contents.tokens.is_empty(), "nothing from a corrupted cache is used");
    assert_eq!(contents.high_water, None);
    let warning = cache.take_warning().expect("the corruption is reported");
    assert!(warning.contains("could not be read"), "{warning}");
    assert!(cache.take_warning().is_none(), "reported once");
    // The fresh cache works.
    cache.put_token("s", "p", "tok2").unwrap();
    assert_eq!(cache.load("s").unwrap().tokens["p"], "tok2");
    assert!(path.with_extension("corrupt-0").exists(), "the bad cache is kept aside for support");
}

#[test]
fn a_truncated_or_foreign_cache_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    TokenCache::new(&path).put_token("s", "p", "tok").unwrap();
    for f in walk(&path) {
        std::fs::OpenOptions::new().write(true).open(&f).unwrap().set_len(3).unwrap();
    }
    let cache = TokenCache::new(&path);
    assert!(cache.load("s").unwrap().tokens.is_empty());

    // A ledger directory is not a cache.
    let ledger = dir.path().join("ledger");
    drop(licet_store::SledStore::open(&ledger).unwrap());
    let cache = TokenCache::new(&ledger);
    assert!(cache.load("s").unwrap().tokens.is_empty());
    assert!(cache.take_warning().is_some());
}

#[test]
fn many_users_of_one_directory_all_get_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    std::thread::scope(|s| {
        for t in 0..4 {
            let path = &path;
            s.spawn(move || {
                // Each thread has its own handle, as separate programs would.
                let cache = TokenCache::new(path);
                for i in 0..25 {
                    cache.put_token("s", &format!("p{t}"), &format!("tok-{i}")).unwrap();
                    cache.raise_high_water(i).unwrap();
                    let got = cache.load("s").unwrap();
                    assert_eq!(got.tokens[&format!("p{t}")], format!("tok-{i}"));
                }
            });
        }
    });
    let all = TokenCache::new(&path).load("s").unwrap();
    assert_eq!(all.tokens.len(), 4);
    assert_eq!(all.high_water, Some(24));
}

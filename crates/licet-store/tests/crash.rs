//! Crash tests in the style of sled's own: a child process commits in a loop and is killed with
//! SIGKILL at random moments; after every restart each acknowledged commit must be there.
//!
//! The children are this test binary re-executed with `--ignored --exact child_…` and an
//! environment variable naming the directory.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Env, pc};
use licet_core::agent::Persist;
use licet_core::record::legacy;
use licet_core::{Code, Record, RecordKey, SeededEntropy};
use licet_store::{AgentCache, SledStore};

const DIR_VAR: &str = "LICET_CRASH_DIR";
const CYCLES: usize = 100;

fn spawn_child(test: &str, dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", test, "--nocapture", "--test-threads=1"])
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs `child` until it has acknowledged a few commits, kills it after a random pause, and
/// returns every acknowledgement it printed.
fn run_and_kill(test: &str, dir: &std::path::Path, rng: &mut SeededEntropy) -> Vec<String> {
    let mut child = spawn_child(test, dir);
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = line.strip_prefix("ack ")
                && tx.send(ack.to_owned()).is_err()
            {
                break;
            }
        }
    });
    // Wait for the child to be committing, then kill it mid-stream at a random moment.
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("the child commits");
    std::thread::sleep(Duration::from_millis(rng.next_u64() % 40));
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    let mut acks = vec![first];
    acks.extend(rx.try_iter());
    acks
}

fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[test]
fn acknowledged_registrations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let seed = seed();
    let mut rng = SeededEntropy::new(seed);
    let mut acked: Vec<String> = Vec::new();
    let started = Instant::now();
    for cycle in 0..CYCLES {
        acked.extend(run_and_kill("child_registers_forever", &path, &mut rng));
        let env = Env::new(SledStore::open(&path).unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}")));
        for email in &acked {
            let account = env.account(email).unwrap_or_else(|| panic!("cycle {cycle} (seed {seed}): {email} lost"));
            assert_eq!(account.licenses.len(), 1);
            assert_eq!(account.bindings.len(), 1);
            assert!(account.seats_used(&account.licenses[0].id) <= account.licenses[0].seats);
        }
    }
    eprintln!("{} acknowledged registrations over {CYCLES} kills in {:?}", acked.len(), started.elapsed());
    assert!(acked.len() >= CYCLES);
}

#[test]
#[ignore = "a child process of acknowledged_registrations_survive_sigkill"]
fn child_registers_forever() {
    let path = std::env::var_os(DIR_VAR).expect("run by acknowledged_registrations_survive_sigkill");
    let env = Env::new(SledStore::open(path).unwrap());
    let tag = seed();
    for i in 0u64.. {
        let email = format!("u{tag}-{i}@example.com");
        match env.register(&email, &pc(&format!("{tag}-{i}")), tag ^ i) {
            Ok(_) => println!("ack {email}"),
            Err(e) => assert_eq!(e.code(), Code::HostAlreadyRegistered),
        }
    }
}

/// Activations write one record each (the account), which the sled store writes by itself
/// rather than in a batch: acknowledged ones must survive a kill as batches do.
#[test]
fn acknowledged_activations_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let seed = seed();
    let mut rng = SeededEntropy::new(seed);
    let mut bound: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for cycle in 0..CYCLES / 2 {
        for ack in run_and_kill("child_activates_forever", &path, &mut rng) {
            let (email, host) = ack.split_once(' ').unwrap();
            bound.entry(email.to_owned()).or_default().push(host.to_owned());
        }
        let env = Env::new(SledStore::open(&path).unwrap_or_else(|e| panic!("cycle {cycle} (seed {seed}): {e}")));
        for (email, hosts) in &bound {
            let account = env.account(email).unwrap_or_else(|| panic!("cycle {cycle} (seed {seed}): {email} lost"));
            for host in hosts {
                let machine = pc(host).fingerprint;
                assert!(
                    account.bindings.iter().any(|b| b.anchor == machine),
                    "cycle {cycle} (seed {seed}): the acknowledged activation of {host} on {email} was lost"
                );
            }
        }
    }
    // Each cycle is one child's account: most must have been killed in the middle of activating.
    let mid_stream = bound.values().filter(|hosts| hosts.len() > 1).count();
    assert!(mid_stream >= CYCLES / 8, "only {mid_stream} of {} children were killed between activations", CYCLES / 2);
}

#[test]
#[ignore = "a child process of acknowledged_activations_survive_sigkill"]
fn child_activates_forever() {
    let path = std::env::var_os(DIR_VAR).expect("run by acknowledged_activations_survive_sigkill");
    let env = Env::new(SledStore::open(path).unwrap());
    let tag = seed();
    let email = format!("a{tag}@example.com");
    let number = env.register(&email, &pc(&format!("r{tag}")), tag).unwrap().number.to_string();
    let coupon = env.coupons(1, 1_000, tag).remove(0);
    env.redeem(&number, &coupon, tag).unwrap();
    for i in 0u64..900 {
        let host = format!("{tag}-{i}");
        env.activate(&number, &pc(&host), tag ^ i).unwrap();
        println!("ack {email} {host}");
    }
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn acknowledged_cache_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent");
    let mut rng = SeededEntropy::new(seed());
    let mut latest: std::collections::BTreeMap<String, u64> = Default::default();
    for cycle in 0..CYCLES {
        for ack in run_and_kill("child_caches_forever", &path, &mut rng) {
            let (product, n) = ack.split_once('=').unwrap();
            latest.insert(product.to_owned(), n.parse().unwrap());
        }
        let cache = AgentCache::new(&path);
        let contents = cache.load(&[]).unwrap();
        if let Some(w) = cache.take_warning() {
            panic!("cycle {cycle}: the cache was damaged by a kill: {w}");
        }
        for (product, &n) in &latest {
            let stored: u64 = contents.tokens[product].parse().unwrap();
            assert!(stored >= n, "cycle {cycle}: {product} has {stored}, acknowledged {n}");
        }
        let mark = contents.mark.unwrap();
        assert!(mark >= latest.values().copied().max().unwrap() as i64);
    }
}

#[test]
#[ignore = "a child process of acknowledged_cache_writes_survive_sigkill"]
fn child_caches_forever() {
    let path = std::env::var_os(DIR_VAR).expect("run by acknowledged_cache_writes_survive_sigkill");
    let cache = AgentCache::new(path);
    let start = cache.load(&[]).unwrap().mark.unwrap_or(0) as u64 + 1;
    for n in start.. {
        let product = format!("p{}", n % 5);
        let change = Persist {
            tokens: [(product.clone(), Some(n.to_string()))].into(),
            raise: Some(n as i64),
            ..Persist::default()
        };
        cache.apply(&change, Duration::from_secs(5)).unwrap();
        println!("ack {product}={n}");
    }
}

/// Accounts in the 0.1.0 store that the migration crash test migrates.
const MIGRATION_ACCOUNTS: usize = 12_000;

/// Writes a ledger as release 0.1.0 laid it out (schema `licet-ledger-1`, positional records)
/// and returns the records as this release should read them after migrating.
fn write_0_1_0_store(path: &std::path::Path) -> Vec<(RecordKey, Record)> {
    let now = common::now();
    let mut records = vec![(
        RecordKey::Product(common::PRODUCT.into()),
        Record::Product(licet_core::Product::new(common::PRODUCT).unwrap()),
    )];
    for i in 0..MIGRATION_ACCOUNTS {
        let host = pc(&format!("m{i}"));
        let (id, license) = (format!("acc_{i:016}"), format!("lic_{i:016}"));
        let account = licet_core::Account {
            id: id.clone(),
            email: format!("u{i}@example.com"),
            organization: format!("Org {i}"),
            contact: None,
            phone: Some("+7 495 000-00-00".into()),
            number: format!("{i:020}"),
            created_at: now,
            registration_host: host.fingerprint.clone(),
            registration_host_0_1_0: None,
            licenses: vec![licet_core::License {
                id: license.clone(),
                product: common::PRODUCT.into(),
                kind: licet_core::LicenseKind::Trial,
                seats: 1,
                starts_at: now,
                expires_at: Some(now + chrono::Duration::days(30)),
                features: None,
                resets: Vec::new(),
                model: Default::default(),
                revoked_at: None,
            }],
            bindings: vec![licet_core::Binding {
                id: format!("bnd_{i:016}"),
                license_id: license,
                product: common::PRODUCT.into(),
                anchor: host.fingerprint.clone(),
                anchor_0_1_0: None,
                host,
                bound_at: now,
                last_seen: now,
            }],
            trials_used: [common::PRODUCT.to_owned()].into(),
            sessions: Vec::new(),
            lang: licet_core::Lang::before_choice(),
        };
        records.push((RecordKey::Email(account.email.clone()), Record::AccountId(id.clone())));
        records.push((RecordKey::Number(account.number.clone()), Record::AccountId(id.clone())));
        records.push((RecordKey::Account(id), Record::Account(account)));
    }
    let db = sled::open(path).unwrap();
    db.insert(b"licet/schema", b"licet-ledger-1".as_slice()).unwrap();
    let tree = db.open_tree(b"ledger").unwrap();
    let mut batch = sled::Batch::default();
    for (key, record) in &records {
        batch.insert(key.to_bytes(), legacy::encode(record));
    }
    tree.apply_batch(batch).unwrap();
    db.flush().unwrap();
    records.sort_by_key(|(key, _)| key.to_bytes());
    records
}

/// Reads the schema and the migration mark straight from sled (no licet open, which would
/// finish the migration).
fn migration_state(path: &std::path::Path) -> (String, bool) {
    let db = sled::open(path).unwrap();
    let schema = String::from_utf8(db.get(b"licet/schema").unwrap().unwrap().to_vec()).unwrap();
    let marked = db.open_tree(b"ledger").unwrap().contains_key(b"!migrated-through").unwrap();
    (schema, marked)
}

#[test]
fn a_migration_killed_at_any_moment_finishes_at_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let expected = write_0_1_0_store(&path);
    let seed = seed();
    let mut rng = SeededEntropy::new(seed);
    let mut killed_midway = 0;
    let mut cycles = 0;
    loop {
        cycles += 1;
        assert!(cycles <= 200, "the migration never finished (seed {seed})");
        let mut child = spawn_child("child_opens_the_store", &path);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
        // The test harness prints its own words first, on the same line.
        assert!(lines.by_ref().any(|line| line.ends_with("opening")), "the child starts");
        // Later cycles wait longer, so that the migration always gets to finish.
        std::thread::sleep(Duration::from_millis(rng.next_u64() % (20 + 10 * cycles as u64)));
        child.kill().unwrap();
        child.wait().unwrap();
        if let Some(line) = lines.next() {
            assert!(line.starts_with("opened"), "cycle {cycles}: {line}");
            break;
        }
        let (schema, marked) = migration_state(&path);
        if marked {
            killed_midway += 1;
            assert_eq!(schema, "licet-ledger-2-migrating", "release 0.1.0 must refuse a half-migrated store");
        }
    }
    eprintln!("{killed_midway} kills in the middle of the migration, {cycles} opens (seed {seed})");
    assert!(killed_midway >= 1, "no kill landed in the middle of the migration (seed {seed})");
    let store = SledStore::open(&path).unwrap();
    let got: Vec<(RecordKey, Record)> = store.records().collect::<Result<_, _>>().unwrap();
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the migrated records differ from what 0.1.0 held (seed {seed})");
    assert_eq!(migration_state_after_open(store), ("licet-ledger-2".to_owned(), false));
}

fn migration_state_after_open(store: SledStore) -> (String, bool) {
    let path = store.path().to_owned();
    drop(store);
    // sled's own threads of the dropped handle may hold its lock for a moment.
    for _ in 0..100 {
        if let Ok(state) = std::panic::catch_unwind(|| migration_state(&path)) {
            return state;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    migration_state(&path)
}

#[test]
#[ignore = "a child process of a_migration_killed_at_any_moment_finishes_at_the_next_open"]
fn child_opens_the_store() {
    let path = std::env::var_os(DIR_VAR).expect("run by a_migration_killed_at_any_moment_finishes_at_the_next_open");
    println!("opening");
    let store = SledStore::open(path).unwrap();
    println!("opened; migrated {:?}", store.migrated());
}

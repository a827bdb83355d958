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
use licet_core::{Code, SeededEntropy};
use licet_store::{SledStore, TokenCache};

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

#[test]
fn acknowledged_cache_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache");
    let mut rng = SeededEntropy::new(seed());
    let mut latest: std::collections::BTreeMap<String, u64> = Default::default();
    for cycle in 0..CYCLES {
        for ack in run_and_kill("child_caches_forever", &path, &mut rng) {
            let (product, n) = ack.split_once('=').unwrap();
            latest.insert(product.to_owned(), n.parse().unwrap());
        }
        let cache = TokenCache::new(&path);
        let contents = cache.load("https://server").unwrap();
        if let Some(w) = cache.take_warning() {
            panic!("cycle {cycle}: the cache was damaged by a kill: {w}");
        }
        for (product, &n) in &latest {
            let stored: u64 = contents.tokens[product].parse().unwrap();
            assert!(stored >= n, "cycle {cycle}: {product} has {stored}, acknowledged {n}");
        }
        let mark = contents.high_water.unwrap();
        assert!(mark >= latest.values().copied().max().unwrap() as i64);
    }
}

#[test]
#[ignore = "a child process of acknowledged_cache_writes_survive_sigkill"]
fn child_caches_forever() {
    let path = std::env::var_os(DIR_VAR).expect("run by acknowledged_cache_writes_survive_sigkill");
    let cache = TokenCache::new(path);
    let start = cache.load("https://server").unwrap().high_water.unwrap_or(0) as u64 + 1;
    for n in start.. {
        let product = format!("p{}", n % 5);
        cache.put_token("https://server", &product, &n.to_string()).unwrap();
        cache.raise_high_water(n as i64).unwrap();
        println!("ack {product}={n}");
    }
}

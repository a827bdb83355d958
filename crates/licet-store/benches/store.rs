//! Store benchmarks: durable commit latency beside a single raw sled flush, group-commit
//! throughput with 1 and 64 writers, and open time / memory for stores of many accounts.
//!
//! `LICET_BENCH_ACCOUNTS=1000000` adds the million-account open (slow to build: minutes).
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use licet_core::{
    Account, Binding, Command, Fingerprint, Host, HostCommand, Ledger, License, LicenseKind, Product, ProductSettings,
    Record, RecordKey, RegistrationNumber, Seat, SeededEntropy,
};
use licet_store::{SledStore, StoreExt};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z").unwrap().with_timezone(&Utc)
}

fn host(i: u64) -> Host {
    let fp = Fingerprint::new([
        ("machine-id", format!("{i:032x}")),
        ("mac", format!("{:032x}", i ^ 0xabcdef)),
        ("disk", format!("{:032x}", i.wrapping_mul(31))),
    ])
    .unwrap();
    Host::new(fp, &format!("host-{i}"), "Linux").unwrap()
}

/// A host's license check.
fn activate(number: &str, host: Host) -> Command {
    Command::Activate(HostCommand { number: number.into(), product: "call-journal".into(), host })
}

/// Writes `n` accounts (with their e-mail and number indexes) straight into the store and
/// returns their numbers.
fn populate(store: &SledStore, ledger: &Ledger, n: u64) -> Vec<String> {
    let put = Command::PutProduct { id: "call-journal".into(), settings: ProductSettings::default() };
    store.execute::<Product>(ledger, now(), &mut SeededEntropy::new(0), &put).unwrap();
    let mut rng = SeededEntropy::new(42);
    let mut numbers = Vec::new();
    let mut batch = Vec::new();
    for i in 0..n {
        let number = RegistrationNumber::generate(ledger.vendor(), &mut rng);
        let id = format!("acc_{i:016}");
        let h = host(i);
        let license = License {
            id: format!("lic_{i:016}"),
            product: "call-journal".into(),
            kind: LicenseKind::Perpetual,
            seats: 100,
            starts_at: now(),
            expires_at: None,
            features: None,
            resets: Vec::new(),
            model: Default::default(),
            revoked_at: None,
        };
        let account = Account {
            id: id.clone(),
            email: format!("user{i}@example.com"),
            organization: format!("Organisation {i}"),
            contact: None,
            phone: None,
            number: number.body(),
            created_at: now(),
            registration_host: h.fingerprint.clone(),
            registration_host_0_1_0: None,
            bindings: vec![Binding {
                id: format!("bnd_{i:016}"),
                license_id: license.id.clone(),
                product: "call-journal".into(),
                anchor: h.fingerprint.clone(),
                anchor_0_1_0: None,
                host: h,
                bound_at: now(),
                last_seen: now(),
            }],
            licenses: vec![license],
            trials_used: Default::default(),
            sessions: Vec::new(),
            lang: Default::default(),
        };
        batch.push((RecordKey::Email(account.email.clone()), Record::AccountId(id.clone())));
        batch.push((RecordKey::Number(number.body()), Record::AccountId(id.clone())));
        batch.push((RecordKey::Account(id), Record::Account(account)));
        if numbers.len() < 10_000 {
            numbers.push(number.to_string());
        }
        if batch.len() >= 30_000 {
            store.load_raw(std::mem::take(&mut batch)).unwrap();
        }
    }
    store.load_raw(batch).unwrap();
    numbers
}

fn commits(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open(dir.path().join("ledger")).unwrap());
    let ledger = Arc::new(Ledger::new("LICET").unwrap());
    let numbers = Arc::new(populate(&store, &ledger, 2_000));

    let mut g = c.benchmark_group("store");
    // Baseline: one raw sled insert + flush, no licet on top.
    let raw_dir = tempfile::tempdir().unwrap();
    let raw = sled::Config::new().path(raw_dir.path()).cache_capacity(64 << 20).open().unwrap();
    let mut n = 0u64;
    g.bench_function("raw_sled_insert_flush", |b| {
        b.iter(|| {
            n += 1;
            raw.insert(n.to_be_bytes(), vec![0u8; 200]).unwrap();
            raw.flush().unwrap();
        })
    });
    let mut i = 0usize;
    g.bench_function("durable_activate_1_writer", |b| {
        b.iter(|| {
            i += 1;
            let number = &numbers[i % numbers.len()];
            let h = host((i % numbers.len()) as u64);
            let mut rng = SeededEntropy::new(i as u64);
            store.execute::<Seat>(&ledger, now(), &mut rng, &activate(number, h)).unwrap();
        })
    });
    for writers in [1usize, 64] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("durable_activate_per_commit", format!("{writers}_writers")), |b| {
            b.iter_custom(|iters| {
                let per_writer = iters.div_ceil(writers as u64);
                let start = Instant::now();
                std::thread::scope(|s| {
                    for w in 0..writers {
                        let (store, ledger, numbers) = (&store, &ledger, &numbers);
                        s.spawn(move || {
                            for k in 0..per_writer {
                                let a = (w * 31 + k as usize * 7) % numbers.len();
                                let mut rng = SeededEntropy::new(k);
                                let command = activate(&numbers[a], host(a as u64));
                                store.execute::<Seat>(ledger, now(), &mut rng, &command).unwrap();
                            }
                        });
                    }
                });
                // Normalise to the time per commit actually done.
                start.elapsed().mul_f64(iters as f64 / (per_writer * writers as u64) as f64)
            })
        });
    }
    g.finish();
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

const CHILD_VAR: &str = "LICET_BENCH_OPEN_CHILD";

/// In a fresh process (this bench binary re-executed): open the store, run one activation,
/// report the peak resident memory. Measured in the parent it would include building the store.
fn open_in_child(path: &std::path::Path, number: &str) -> String {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD_VAR, path)
        .env("LICET_BENCH_NUMBER", number)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn child() {
    let path = std::env::var_os(CHILD_VAR).unwrap();
    let number = std::env::var("LICET_BENCH_NUMBER").unwrap();
    let before = status_kib("VmHWM:");
    let started = Instant::now();
    let store = SledStore::open(path).unwrap();
    let opened = started.elapsed();
    let ledger = Ledger::new("LICET").unwrap();
    let mut rng = SeededEntropy::new(1);
    store.execute::<Seat>(&ledger, now(), &mut rng, &activate(&number, host(7))).unwrap();
    println!(
        "opened in {opened:?}; peak resident memory {} MiB ({} MiB before opening)",
        status_kib("VmHWM:") / 1024,
        before / 1024
    );
}

fn open(c: &mut Criterion) {
    let mut sizes = vec![10_000u64];
    if let Some(n) = std::env::var("LICET_BENCH_ACCOUNTS").ok().and_then(|v| v.parse().ok()) {
        sizes.push(n);
    }
    let mut g = c.benchmark_group("store_open");
    g.sample_size(10);
    for n in sizes {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let ledger = Ledger::new("LICET").unwrap();
        let built = Instant::now();
        let numbers = {
            let store = SledStore::open(&path).unwrap();
            let numbers = populate(&store, &ledger, n);
            eprintln!(
                "built {n} accounts in {:?}, {} MiB on disk",
                built.elapsed(),
                store.size_on_disk().unwrap() >> 20
            );
            numbers
        };
        eprintln!("{n} accounts, fresh process: {}", open_in_child(&path, &numbers[7]));
        g.bench_function(BenchmarkId::new("open", n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let store = SledStore::open(&path).unwrap();
                    total += start.elapsed();
                    drop(store);
                }
                total
            })
        });
        // A consistent backup beside the baseline of copying the ledger's files as they lie.
        let store = SledStore::open(&path).unwrap();
        let out = dir.path().join("backup");
        g.bench_function(BenchmarkId::new("backup", n), |b| {
            b.iter(|| store.backup(&mut std::fs::File::create(&out).unwrap()).unwrap())
        });
        eprintln!("{n} accounts: backup of {} MiB", std::fs::metadata(&out).unwrap().len() >> 20);
        let copy = dir.path().join("copy");
        std::fs::create_dir_all(&copy).unwrap();
        g.bench_function(BenchmarkId::new("copy_files_baseline", n), |b| {
            b.iter(|| {
                for entry in std::fs::read_dir(&path).unwrap() {
                    let entry = entry.unwrap();
                    if entry.file_type().unwrap().is_file() {
                        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
                    }
                }
            })
        });
    }
    g.finish();
}

/// The CPU cost of a record in and out (what every command pays under the write lock): release
/// 0.1.0's positional bincode beside this release's MessagePack with field names, for an account
/// with one license and one binding.
fn records(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("ledger")).unwrap();
    let ledger = Ledger::new("LICET").unwrap();
    populate(&store, &ledger, 1);
    let (key, account) = store
        .records()
        .map(Result::unwrap)
        .find(|(k, _)| matches!(k, RecordKey::Account(_)))
        .expect("an account was written");
    let mut g = c.benchmark_group("record");
    let old = licet_core::record::legacy::encode(&account);
    let new = account.encode();
    eprintln!("an account: {} bytes in 0.1.0's layout, {} bytes in this release's", old.len(), new.len());
    g.bench_function("roundtrip_0_1_0_layout", |b| {
        b.iter(|| {
            licet_core::record::legacy::decode(
                &key,
                &licet_core::record::legacy::encode(std::hint::black_box(&account)),
            )
            .unwrap()
        })
    });
    g.bench_function("roundtrip", |b| {
        b.iter(|| Record::decode(&key, &std::hint::black_box(&account).encode()).unwrap())
    });
    g.finish();
}

criterion_group!(benches, records, commits, open);

fn main() {
    if std::env::var_os(CHILD_VAR).is_some() {
        child();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

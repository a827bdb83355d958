//! The ledger's disk filling up, a damaged ledger, backup and restore — with real processes on a
//! small filesystem of their own.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{PRODUCT, Server, init, serve};
use serde_json::json;

/// A tmpfs of its own, unmounted when dropped. Mounting needs root, as the tests run in CI.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mebibytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mebibytes}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root (the tests run as root in CI)");
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with one file, until the filesystem refuses.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 64 << 10];
        while file.write_all(&chunk).is_ok() {}
        // Whatever is left is smaller than a chunk; take that too.
        while file.write_all(&[0]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn register(s: &Server, email: &str) -> (u16, serde_json::Value) {
    s.register(email, email)
}

/// Waits for the process to exit, at most `limit`.
fn exits_within(s: &mut Server, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not exit within {limit:?} of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_disk_answers_503_and_the_server_recovers_by_itself_once_space_is_back() {
    let disk = SmallDisk::mount(48);
    let dir = disk.path().join("data");
    let admin = init(&dir)["admin_token"].as_str().unwrap().to_owned();
    let mut s = serve(&dir, &admin, &["--rate-limit", "0"]);
    assert_eq!(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({})).0, 200);
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let email = format!("before-{i}@example.com");
        assert_eq!(register(&s, &email).0, 201);
        acknowledged.push(email);
    }

    let filler = disk.fill();
    let mut refused = None;
    for i in 0..5_000 {
        let email = format!("full-{i}@example.com");
        let started = Instant::now();
        let (status, body) = register(&s, &email);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "a registration on a full disk took {:?}",
            started.elapsed()
        );
        match status {
            201 => acknowledged.push(email),
            _ => {
                refused = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refused.expect("the full disk never refused a registration");
    assert_eq!((status, &body["error"]["code"]), (503, &json!(1099)), "{body}");
    // The health check says so too (a load balancer takes the node out of rotation).
    let (status, body) = s.get("/v1/health", None);
    assert_eq!((status, &body["error"]["code"]), (503, &json!(1099)), "{body}");
    // Still full: reads and writes keep answering, quickly, with 503.
    for i in 0..20 {
        let started = Instant::now();
        let (status, body) = register(&s, &format!("still-full-{i}@example.com"));
        assert_eq!((status, &body["error"]["code"]), (503, &json!(1099)), "{body}");
        assert_eq!(s.get("/v1/health", None).0, 503, "health while the disk is still full");
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::remove_file(filler).unwrap();
    let freed = Instant::now();
    // Health checks alone bring the store back (a node out of rotation gets no other requests).
    while s.get("/v1/health", None).0 != 200 {
        assert!(freed.elapsed() < Duration::from_secs(30), "health still 503 30 s after space was freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut recovered = None;
    for i in 0.. {
        let email = format!("after-{i}@example.com");
        let (status, body) = register(&s, &email);
        if status == 201 {
            recovered = Some(freed.elapsed());
            acknowledged.push(email);
            break;
        }
        assert_eq!((status, &body["error"]["code"]), (503, &json!(1099)), "{body}");
        assert!(freed.elapsed() < Duration::from_secs(30), "no recovery 30 s after space was freed: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("recovered {:?} after space was freed", recovered.unwrap());
    assert_eq!(s.get("/v1/health", None).0, 200);
    for i in 0..20 {
        let email = format!("later-{i}@example.com");
        assert_eq!(register(&s, &email).0, 201);
        acknowledged.push(email);
    }
    s.signal(15);
    assert!(exits_within(&mut s, Duration::from_secs(15)).success());
    drop(s);

    // Full again, and stopped while full: shutdown is bounded too.
    let mut s = serve(&dir, &admin, &["--rate-limit", "0"]);
    let filler = disk.fill();
    for i in 0..5_000 {
        let email = format!("again-{i}@example.com");
        match register(&s, &email) {
            (201, _) => acknowledged.push(email),
            (status, body) => {
                assert_eq!((status, &body["error"]["code"]), (503, &json!(1099)), "{body}");
                break;
            }
        }
    }
    s.signal(15);
    exits_within(&mut s, Duration::from_secs(15));
    drop(s);
    std::fs::remove_file(filler).unwrap();

    // Everything acknowledged is there.
    let s = serve(&dir, &admin, &["--rate-limit", "0"]);
    for email in &acknowledged {
        let (status, body) = s.get(&format!("/v1/admin/accounts?email={email}"), Some(&admin));
        assert_eq!(status, 200, "{email} was acknowledged but is gone: {body}");
    }
}

/// Runs `licet-server` with `args`; its exit status and stdout+stderr.
fn run(args: &[&str], dir: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_licet-server"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("LICET_LOG", "warn")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Starts `serve` and tells whether it refused to start (with its output) or started.
fn refuses_to_start(dir: &Path, admin: &str) -> Result<String, Box<Server>> {
    let mut child = common::spawn_serve(&["--rate-limit", "0", "--data-dir", dir.to_str().unwrap()], Path::new("."));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    if let Some(url) = line.trim().strip_prefix("listening on ") {
        let url = url.to_owned();
        return Err(Box::new(Server {
            child,
            url,
            admin: admin.to_owned(),
            dir: dir.to_owned(),
            http: common::agent(),
            _tmp: None,
        }));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A data dir with `n` acknowledged registrations, its server stopped by SIGKILL.
fn data_dir_with(n: usize, tmp: &Path) -> (PathBuf, String, Vec<String>) {
    let dir = tmp.join("data");
    let admin = init(&dir)["admin_token"].as_str().unwrap().to_owned();
    let s = serve(&dir, &admin, &["--rate-limit", "0"]);
    assert_eq!(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({})).0, 200);
    let emails: Vec<String> = (0..n).map(|i| format!("acked-{i}@example.com")).collect();
    for email in &emails {
        assert_eq!(register(&s, email).0, 201);
    }
    s.signal(9);
    drop(s);
    (dir, admin, emails)
}

fn all_present(s: &Server, emails: &[String]) -> Vec<String> {
    emails
        .iter()
        .filter(|e| s.get(&format!("/v1/admin/accounts?email={e}"), Some(&s.admin)).0 != 200)
        .cloned()
        .collect()
}

#[test]
fn an_emptied_ledger_refuses_to_start_and_nothing_is_written_over_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, admin, _) = data_dir_with(5, tmp.path());
    for entry in std::fs::read_dir(dir.join("ledger")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() { std::fs::remove_dir_all(path).unwrap() } else { std::fs::remove_file(path).unwrap() }
    }
    let message = refuses_to_start(&dir, &admin).unwrap_or_else(|_| panic!("a server started on an emptied ledger"));
    assert!(message.contains("damaged") && message.contains("backup"), "{message}");
    assert_eq!(std::fs::read_dir(dir.join("ledger")).unwrap().count(), 0, "files were written into the emptied ledger");
    // A ledger directory removed altogether is refused the same way.
    std::fs::remove_dir(dir.join("ledger")).unwrap();
    let message = refuses_to_start(&dir, &admin).unwrap_or_else(|_| panic!("a server started without a ledger"));
    assert!(message.contains("missing"), "{message}");
}

#[test]
fn a_damaged_ledger_never_starts_with_acknowledged_data_missing() {
    for damage in ["snapshots deleted", "16 bytes flipped mid-db"] {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, admin, emails) = data_dir_with(300, tmp.path());
        let ledger = dir.join("ledger");
        match damage {
            "snapshots deleted" => {
                for entry in std::fs::read_dir(&ledger).unwrap() {
                    let path = entry.unwrap().path();
                    if path.file_name().unwrap().to_string_lossy().starts_with("snap.") {
                        std::fs::remove_file(path).unwrap();
                    }
                }
            }
            _ => {
                let mut bytes = std::fs::read(ledger.join("db")).unwrap();
                let middle = bytes.len() / 2;
                for b in &mut bytes[middle..middle + 16] {
                    *b ^= 0xFF;
                }
                std::fs::write(ledger.join("db"), bytes).unwrap();
            }
        }
        match refuses_to_start(&dir, &admin) {
            Ok(message) => {
                eprintln!("{damage}: refused: {message}");
                assert!(message.contains("ledger"), "{damage}: {message}");
            }
            Err(s) => {
                let missing = all_present(&s, &emails);
                assert!(missing.is_empty(), "{damage}: started with {} acknowledged accounts missing", missing.len());
                eprintln!("{damage}: started with everything");
            }
        }
    }
}

#[test]
fn an_online_backup_restores_every_registration_acknowledged_before_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let admin = init(&dir)["admin_token"].as_str().unwrap().to_owned();
    let s = serve(&dir, &admin, &["--rate-limit", "0"]);
    assert_eq!(s.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({})).0, 200);
    let backup = tmp.path().join("ledger.backup");
    let before = std::sync::Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let report = std::thread::scope(|scope| {
        let (s, before, stop) = (&s, &before, &stop);
        scope.spawn(move || {
            for i in 0.. {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let email = format!("w-{i}@example.com");
                assert_eq!(register(s, &email).0, 201);
                before.lock().unwrap().push(email);
            }
        });
        // Registrations keep coming while the backup is taken from the running server.
        while before.lock().unwrap().len() < 50 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let acknowledged_before = before.lock().unwrap().clone();
        let (ok, out) = run(&["backup", "--json", "--out", backup.to_str().unwrap()], &dir);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(ok, "{out}");
        (acknowledged_before, serde_json::from_str::<serde_json::Value>(&out).unwrap())
    });
    let (acknowledged_before, report) = report;
    assert_eq!(report["ok"], true);
    let records = report["records"].as_u64().unwrap();
    // Each registration writes an account and a license at least.
    assert!(records > 2 * acknowledged_before.len() as u64, "{report}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let during: Vec<String> = before.into_inner().unwrap();
    s.signal(15);
    drop(s);

    // A running server's ledger is not replaced under it.
    let s = serve(&dir, &admin, &["--rate-limit", "0"]);
    let (ok, out) = run(&["restore", "--from", backup.to_str().unwrap()], &dir);
    assert!(!ok && out.contains("stop it first"), "{out}");
    drop(s);

    // The ledger is lost; a damaged backup is refused, the good one restores.
    std::fs::remove_dir_all(dir.join("ledger")).unwrap();
    assert!(refuses_to_start(&dir, &admin).is_ok());
    let mut bytes = std::fs::read(&backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    let damaged = tmp.path().join("damaged.backup");
    std::fs::write(&damaged, bytes).unwrap();
    let (ok, out) = run(&["restore", "--from", damaged.to_str().unwrap()], &dir);
    assert!(!ok && out.contains("checksum"), "{out}");
    let (ok, out) = run(&["restore", "--json", "--from", backup.to_str().unwrap()], &dir);
    assert!(ok, "{out}");
    let restored: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((restored["records"].as_u64(), &restored["commits"]), (Some(records), &report["commits"]));

    let s = serve(&dir, &admin, &["--rate-limit", "0"]);
    assert_eq!(all_present(&s, &acknowledged_before), Vec::<String>::new());
    // Registrations after the backup are not in it, and the server carries on from it.
    // The worker registers one after another, so the backup holds a prefix of its registrations.
    let missing = all_present(&s, &during);
    assert_eq!(missing, during[during.len() - missing.len()..], "the backup is not one moment's ledger");
    assert_eq!(register(&s, "after-restore@example.com").0, 201);
    drop(s);
    // A backup of a stopped server is taken directly from its ledger.
    let (ok, out) = run(&["backup", "--json", "--out", tmp.path().join("offline.backup").to_str().unwrap()], &dir);
    assert!(ok, "{out}");
    let offline: serde_json::Value = serde_json::from_str(&out).unwrap();
    // (Records may be fewer: the restored queue's mail has been delivered and removed.)
    assert!(offline["records"].as_u64() > Some(0), "{offline}");
    assert!(offline["commits"].as_u64() > report["commits"].as_u64(), "{offline}");
}

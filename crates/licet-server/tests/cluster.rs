//! Several `licet-server serve` processes on one PostgreSQL database (SPEC §7), on a private
//! PostgreSQL server each test starts: the guarantees of one node hold across nodes.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{PRODUCT, Server, assert_error, host, serve};
use licet_store::pg::test_instance::TestInstance;
use serde_json::{Value, json};

/// A database server, one cluster database on it, and the data directory `init` made.
struct Cluster {
    db: TestInstance,
    url: String,
    admin: String,
    public_key: String,
    tmp: tempfile::TempDir,
}

fn licet_server(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_licet-server")).args(args).env("LICET_LOG", "warn").output().unwrap()
}

impl Cluster {
    /// `None` when PostgreSQL is not installed (see `TestInstance::start_or_skip`).
    fn new() -> Option<Cluster> {
        let db = TestInstance::start_or_skip("a cluster test")?;
        let url = db.create_database().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let first = tmp.path().join("node0");
        let out = licet_server(&["init", "--json", "--database", &url, "--data-dir", first.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let facts: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!first.join("ledger").exists(), "a cluster's data directory holds no ledger");
        assert!(!first.join("admin-token.sha256").exists(), "the admin token's hash lives in the database");
        Some(Cluster {
            db,
            url,
            admin: facts["admin_token"].as_str().unwrap().to_owned(),
            public_key: facts["public_key"].as_str().unwrap().to_owned(),
            tmp,
        })
    }

    /// The data directory of node `i`: a copy of the first node's.
    fn dir(&self, i: usize) -> PathBuf {
        let dir = self.tmp.path().join(format!("node{i}"));
        if !dir.exists() {
            let status = Command::new("cp").arg("-a").arg(self.tmp.path().join("node0")).arg(&dir).status().unwrap();
            assert!(status.success());
        }
        dir
    }

    fn node(&self, i: usize, extra: &[&str]) -> Server {
        let mut args = vec!["--database", self.url.as_str()];
        if !extra.contains(&"--rate-limit") {
            args.extend(["--rate-limit", "0"]);
        }
        args.extend_from_slice(extra);
        serve(&self.dir(i), &self.admin, &args)
    }

    /// `serve --database` on `dir` exits at once, saying `why`.
    fn refused(&self, dir: &std::path::Path, why: &str) {
        let dir = dir.to_str().unwrap();
        let out = licet_server(&["serve", "--listen", "127.0.0.1:0", "--database", &self.url, "--data-dir", dir]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && said.contains(why), "{said}");
    }

    fn nodes(&self, n: usize) -> Vec<Server> {
        let nodes: Vec<Server> = (0..n).map(|i| self.node(i, &[])).collect();
        let (status, body) = nodes[0].admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({}));
        assert_eq!(status, 200, "{body}");
        nodes
    }
}

fn number_of(answer: &(u16, Value)) -> String {
    assert_eq!(answer.0, 201, "{}", answer.1);
    answer.1["registration_number"].as_str().unwrap().to_owned()
}

#[test]
fn seats_coupons_and_e_mails_hold_across_three_nodes() {
    let Some(cluster) = Cluster::new() else { return };
    let nodes = cluster.nodes(3);
    let pick = AtomicUsize::new(0);
    let any = || &nodes[pick.fetch_add(1, Ordering::Relaxed) % nodes.len()];
    for round in 0..10 {
        // A new account and a 5-seat coupon each round; 40 hosts race for the seats through
        // the three nodes.
        let number = number_of(&any().register(&format!("owner{round}@example.com"), &format!("owner{round}")));
        let coupon = any().coupons(1, 5).remove(0);
        let (status, body) = any().post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
        assert_eq!(status, 200, "{body}");
        let (ok, full) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for i in 0..40 {
                let (nodes, number, ok, full) = (&nodes, &number, &ok, &full);
                s.spawn(move || {
                    let answer = nodes[(i + round) % 3].activate(number, &format!("r{round}h{i}"));
                    match answer.0 {
                        200 => ok.fetch_add(1, Ordering::SeqCst),
                        409 if answer.1["error"]["code"] == 1051 => full.fetch_add(1, Ordering::SeqCst),
                        _ => panic!("unexpected answer {answer:?}"),
                    };
                });
            }
        });
        assert_eq!((ok.into_inner(), full.into_inner()), (5, 35), "round {round}");
        let (status, account) = any().get("/v1/account", Some(&number));
        assert_eq!(status, 200, "{account}");
        for license in account["licenses"].as_array().unwrap() {
            assert!(license["seats_used"].as_u64() <= license["seats"].as_u64(), "{account}");
        }
    }

    // Floating seats too: 24 hosts race for 3 sessions through the three nodes; then a release
    // on one node frees a seat that a checkout on another takes.
    let number = number_of(&any().register("floating@example.com", "floating-owner"));
    let batch = json!({"product": PRODUCT, "count": 1, "seats": 3, "model": "floating"});
    let (status, coupons) = any().admin_post("/v1/admin/coupons", batch);
    assert_eq!(status, 201, "{coupons}");
    let (status, body) =
        any().post("/v1/redeem", json!({"registration_number": number, "coupon": coupons["coupons"][0]}));
    assert_eq!(status, 200, "{body}");
    let sessions = Mutex::new(Vec::new());
    let full = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..24 {
            let (nodes, number, sessions, full) = (&nodes, &number, &sessions, &full);
            s.spawn(move || {
                let checkout =
                    json!({"registration_number": number, "product": PRODUCT, "host": host(&format!("f{i}"))});
                let (status, answer) = nodes[i % 3].post("/v1/sessions", checkout);
                match status {
                    201 => sessions.lock().unwrap().push(answer["session_id"].as_str().unwrap().to_owned()),
                    409 if answer["error"]["code"] == 1051 => {
                        full.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => panic!("unexpected answer {status} {answer}"),
                }
            });
        }
    });
    let sessions = sessions.into_inner().unwrap();
    assert_eq!((sessions.len(), full.into_inner()), (3, 21));
    let released = &sessions[0];
    assert_eq!(nodes[1].delete_bearer(&format!("/v1/sessions/{released}"), &number).0, 200);
    let checkout = json!({"registration_number": number, "product": PRODUCT, "host": host("late")});
    assert_eq!(nodes[2].post("/v1/sessions", checkout).0, 201);

    // One coupon, eight accounts on two nodes: redeemed once.
    let numbers: Vec<String> =
        (0..8).map(|i| number_of(&nodes[i % 3].register(&format!("c{i}@example.com"), &format!("c{i}")))).collect();
    let coupon = nodes[0].coupons(1, 1).remove(0);
    let redeemed = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for (i, number) in numbers.iter().enumerate() {
            let (nodes, coupon, redeemed) = (&nodes, &coupon, &redeemed);
            s.spawn(move || {
                let (status, body) =
                    nodes[i % 2].post("/v1/redeem", json!({"registration_number": number, "coupon": coupon}));
                match status {
                    200 => {
                        redeemed.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => assert_eq!(body["error"]["code"], 1005, "{body}"),
                }
            });
        }
    });
    assert_eq!(redeemed.into_inner(), 1);

    // One e-mail registered on all three nodes at once: one account.
    let registered = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..12 {
            let (nodes, registered) = (&nodes, &registered);
            s.spawn(move || {
                let (status, body) = nodes[i % 3].register("same@example.com", &format!("same{i}"));
                match status {
                    201 => {
                        registered.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => assert_eq!(body["error"]["code"], 1058, "{body}"),
                }
            });
        }
    });
    assert_eq!(registered.into_inner(), 1);

    // Every registration's mail was written once, by one node or another.
    let registrations = 10 + 1 + 8 + 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    let count_mail = || -> usize {
        (0..3)
            .map(|i| {
                std::fs::read_dir(cluster.dir(i).join("outbox"))
                    .map(|d| {
                        d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "eml")).count()
                    })
                    .unwrap_or(0)
            })
            .sum()
    };
    while count_mail() < registrations && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count_mail(), registrations, "each queued mail is written exactly once");

    // Every node's /metrics counts the shared ledger (the database's census).
    let counts = || {
        let (_, text) = nodes[2].get("/metrics", None);
        let text = text.as_str().unwrap_or_default().to_owned();
        (common::sample(&text, "licet_accounts", &[]), common::sample(&text, "licet_sessions_live", &[]))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while counts() != (Some(registrations as f64), Some(3.0)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(counts(), (Some(registrations as f64), Some(3.0)), "accounts and live sessions in /metrics");

    // Commands were decided both over what a node remembered and inside their transactions
    // (the transactions' metrics are updated at each upkeep, every 5 s).
    let metric = |node: &Server, name: &str, labels: &[&str]| {
        let (_, text) = node.get("/metrics", None);
        common::sample(text.as_str().unwrap_or_default(), name, labels).unwrap_or(0.0)
    };
    let commands = |path: &str| -> f64 {
        let label = format!("path=\"{path}\"");
        nodes.iter().map(|node| metric(node, "licet_database_commands_total", &[&label])).sum()
    };
    assert!(
        commands("remembered") > 0.0 && commands("transaction") > 0.0,
        "{} {}",
        commands("remembered"),
        commands("transaction")
    );
    let carried = || -> Vec<(f64, f64)> {
        let sent = |node| {
            (
                metric(node, "licet_database_transactions_total", &[]),
                metric(node, "licet_database_batched_commands_total", &[]),
            )
        };
        nodes.iter().map(sent).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while carried().iter().any(|(transactions, _)| *transactions == 0.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every node committed through its committer tasks (how many commands a transaction
    // carries is the store's test: these commands mostly share an account).
    for (node, (transactions, commands)) in carried().into_iter().enumerate() {
        assert!(transactions > 0.0 && commands > 0.0, "node {node}: {transactions} transactions, {commands} commands");
    }
}

/// `Set-Cookie: name=value; …` of an answer, as `name=value`.
fn cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

fn no_redirects() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

#[test]
fn a_portal_login_on_one_node_is_valid_on_another_and_rate_limits_are_shared() {
    let Some(cluster) = Cluster::new() else { return };
    let a = cluster.node(0, &["--rate-limit", "3"]);
    let b = cluster.node(1, &["--rate-limit", "3"]);
    assert_eq!(a.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({})).0, 200);
    let number = number_of(&a.register("portal@example.com", "portal"));
    let http = no_redirects();
    let mut page = http.get(format!("{}/?lang=en", a.url)).call().unwrap();
    let login = cookie(&page, "licet_login").unwrap();
    let html = page.body_mut().read_to_string().unwrap();
    let csrf = login.split_once('=').unwrap().1.to_owned();
    assert!(html.contains(&csrf));
    let posted = http
        .post(format!("{}/login", a.url))
        .header("Cookie", &login)
        .send_form([("credential", number.as_str()), ("csrf", csrf.as_str())])
        .unwrap();
    assert_eq!(posted.status(), 303);
    let session = cookie(&posted, "licet_session").unwrap();
    let mut home = http.get(format!("{}/?lang=en", b.url)).header("Cookie", &session).call().unwrap();
    let html = home.body_mut().read_to_string().unwrap();
    assert!(html.contains(&number[number.len() - 5..]), "node b shows the account of a session opened on node a");
    assert!(html.contains("portal"), "with its bindings");
    // Logging out on b closes the session on a too.
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned();
    let out = http.post(format!("{}/logout", b.url)).header("Cookie", &session).send_form([("csrf", csrf.as_str())]);
    assert_eq!(out.unwrap().status(), 303);
    let mut home = http.get(format!("{}/?lang=en", a.url)).header("Cookie", &session).call().unwrap();
    assert!(!home.body_mut().read_to_string().unwrap().contains(&number[number.len() - 5..]));

    // Registrations and failed credentials count on every node together: 3 a minute from this
    // address, and the registration on a was the first.
    let bad = "LICET-00000-00000-00000-00000";
    for node in [&b, &a] {
        let (status, _) = node.get("/v1/account", Some(bad));
        assert!(status == 401 || status == 404 || status == 400, "{status}");
    }
    assert_error(b.get("/v1/account", Some(bad)), 429, 1062);
}

#[test]
fn a_node_refuses_a_data_directory_the_database_does_not_know_and_never_initialises() {
    let Some(cluster) = Cluster::new() else { return };
    // An empty directory is not initialised by `serve --database`.
    let empty = cluster.tmp.path().join("empty");
    cluster.refused(&empty, "not initialised");
    assert!(!empty.join("signing.key").exists());
    // Another cluster's directory is refused.
    let other = cluster.tmp.path().join("other");
    let other_url = cluster.db.create_database().unwrap();
    let out = licet_server(&["init", "--database", &other_url, "--data-dir", other.to_str().unwrap()]);
    assert!(out.status.success());
    cluster.refused(&other, "does not know the signing key");
    // A second init on the cluster's database is refused and leaves its directory empty.
    let second = cluster.tmp.path().join("second");
    let out = licet_server(&["init", "--database", &cluster.url, "--data-dir", second.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(!second.join("signing.key").exists() && !second.join("server.json").exists());
    // The cluster's own directory serves, with the key init printed.
    let node = cluster.node(0, &[]);
    let (status, keys) = node.get("/v1/keys", None);
    assert_eq!(status, 200);
    assert_eq!(keys["keys"][0]["public_key"], cluster.public_key.as_str());
}

/// Waits until `probe` is true, up to `limit`; how long it took.
fn wait_for(limit: Duration, mut probe: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn a_lost_database_is_503_at_once_and_the_nodes_recover_by_themselves() {
    let Some(mut cluster) = Cluster::new() else { return };
    let nodes = cluster.nodes(2);
    let number = number_of(&nodes[0].register("lost@example.com", "lost"));
    assert_eq!(nodes[1].activate(&number, "lost").0, 200);
    cluster.db.stop().unwrap();
    for node in &nodes {
        let start = Instant::now();
        let mut answer = node.http.post(format!("{}/v1/activate", node.url));
        answer = answer.header("Content-Type", "application/json");
        let response = answer
            .send(
                serde_json::to_vec(&json!({"registration_number": number, "product": PRODUCT, "host": host("lost")}))
                    .unwrap(),
            )
            .unwrap();
        assert!(start.elapsed() < Duration::from_secs(8), "answered in {:?}", start.elapsed());
        assert_eq!(response.status(), 503);
        assert!(response.headers().get("retry-after").is_some());
        assert_error(node.register("new@example.com", "new"), 503, 1099);
        assert_error(node.get("/v1/health", None), 503, 1099);
    }
    cluster.db.restart().unwrap();
    for node in &nodes {
        let took = wait_for(Duration::from_secs(30), || node.get("/v1/health", None).0 == 200);
        assert!(took < Duration::from_secs(30));
        assert_eq!(node.activate(&number, "lost").0, 200);
    }
    assert_eq!(nodes[1].register("new@example.com", "new").0, 201);
}

#[test]
fn a_node_killed_under_load_loses_no_acknowledged_registration() {
    let Some(cluster) = Cluster::new() else { return };
    let mut nodes = cluster.nodes(2);
    let acknowledged = Mutex::new(Vec::new());
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (victim, acknowledged, stop) = (&nodes[0], &acknowledged, &stop);
            s.spawn(move || {
                for i in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let email = format!("k{t}-{i}@example.com");
                    let url = format!("{}/v1/register", victim.url);
                    let body = json!({"email": email, "organization": "Org", "product": PRODUCT, "host": host(&format!("k{t}-{i}"))});
                    match victim.http.post(url).send_json(&body) {
                        Ok(r) if r.status() == 201 => acknowledged.lock().unwrap().push(email),
                        _ => {}
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        nodes[0].signal(9);
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, Ordering::SeqCst);
    });
    let _ = nodes[0].child.wait();
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(acknowledged.len() > 5, "the load ran ({} registrations)", acknowledged.len());
    let survivor = nodes.remove(1);
    for email in &acknowledged {
        let (status, body) = survivor.get(&format!("/v1/admin/accounts?email={email}"), Some(&cluster.admin));
        assert_eq!(status, 200, "{email} was acknowledged: {body}");
    }
}

#[test]
fn an_embedded_store_moves_into_an_empty_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let facts = common::init(&dir);
    let admin = facts["admin_token"].as_str().unwrap().to_owned();
    let small = serve(&dir, &admin, &[]);
    assert_eq!(small.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"name": "Журнал звонков"})).0, 200);
    let numbers: Vec<String> =
        (0..5).map(|i| number_of(&small.register(&format!("m{i}@example.com"), &format!("m{i}")))).collect();
    let coupon = small.coupons(2, 3);
    assert_eq!(small.post("/v1/redeem", json!({"registration_number": numbers[0], "coupon": coupon[0]})).0, 200);
    drop(small);

    let Some(db) = TestInstance::start_or_skip("migrate") else { return };
    let url = db.create_database().unwrap();
    let out = licet_server(&["migrate", "--json", "--data-dir", dir.to_str().unwrap(), "--database", &url]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["records"].as_u64().unwrap() >= 5 * 3 + 3, "{report}");
    // Into a database that is not empty: refused.
    let again = licet_server(&["migrate", "--data-dir", dir.to_str().unwrap(), "--database", &url]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    let node = serve(&dir, &admin, &["--database", &url]);
    for (i, number) in numbers.iter().enumerate() {
        let (status, account) = node.get("/v1/account", Some(number));
        assert_eq!(status, 200, "{account}");
        assert_eq!(account["email"], format!("m{i}@example.com"));
    }
    assert_error(node.post("/v1/redeem", json!({"registration_number": numbers[1], "coupon": coupon[0]})), 409, 1005);
    assert_eq!(node.post("/v1/redeem", json!({"registration_number": numbers[1], "coupon": coupon[1]})).0, 200);
    assert_error(node.register("m0@example.com", "elsewhere"), 409, 1058);
    // The admin token moved too.
    assert_eq!(node.admin_put(&format!("/v1/admin/products/{PRODUCT}"), json!({"trial_days": 14})).0, 200);
    assert_eq!(readable_sql(&db, &url), 5);
}

/// The documented views answer SQL: the number of accounts.
fn readable_sql(_db: &TestInstance, url: &str) -> i64 {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let product =
            client.query_one("SELECT name, trial_days FROM products WHERE id = $1", &[&PRODUCT]).await.unwrap();
        assert_eq!(product.get::<_, String>(0), "Журнал звонков");
        assert_eq!(product.get::<_, i32>(1), 14);
        let bound = client
            .query_one(
                "SELECT count(*) FROM bindings b JOIN accounts a ON a.id = b.account_id WHERE a.email LIKE 'm%'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(bound.get::<_, i64>(0), 5);
        let licenses = client.query_one("SELECT count(*) FROM licenses WHERE kind = 'perpetual'", &[]).await.unwrap();
        assert_eq!(licenses.get::<_, i64>(0), 2);
        let coupons =
            client.query_one("SELECT count(*) FROM coupons WHERE redeemed_by IS NOT NULL", &[]).await.unwrap();
        assert_eq!(coupons.get::<_, i64>(0), 2);
        let masked = client.query_one("SELECT min(length(number_last_group)) FROM accounts", &[]).await.unwrap();
        assert_eq!(masked.get::<_, i32>(0), 5);
        client.query_one("SELECT count(*) FROM accounts", &[]).await.unwrap().get::<_, i64>(0)
    })
}

#[test]
fn a_key_rotation_across_two_nodes_follows_the_key_the_database_records() {
    let Some(cluster) = Cluster::new() else { return };
    let (dir0, dir1) = (cluster.dir(0), cluster.dir(1));
    let keys = |dir: &std::path::Path, args: &[&str]| {
        let mut all = vec!["keys"];
        all.extend_from_slice(args);
        all.extend(["--json", "--database", &cluster.url, "--data-dir", dir.to_str().unwrap()]);
        licet_server(&all)
    };
    // Added on node 0 (recorded in the database), not yet active.
    let out = keys(&dir0, &["add"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kid = added["kid"].as_str().unwrap().to_owned();
    // Activated before node 1 has the key: node 1 refuses to start and says what to copy.
    let out = keys(&dir0, &["activate", &kid]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    cluster.refused(&dir1, "copy keys/");
    let status = Command::new("cp").arg("-a").arg(dir0.join("keys")).arg(&dir1).status().unwrap();
    assert!(status.success());
    // Both nodes sign with the new key, which an agent trusting only the first one accepts.
    let nodes = cluster.nodes(2);
    let mut trusted = licet_core::TrustedKeys::new();
    trusted.add_hex(&cluster.public_key).unwrap();
    let mut first_kid = String::new();
    for (i, node) in nodes.iter().enumerate() {
        // This release's agents send the format marker; without it a 0.1.0 token of the oldest key.
        let body = json!({"email": format!("k{i}@example.com"), "organization": "Org", "product": PRODUCT,
                          "host": host(&format!("k{i}")), "token_format": 2});
        let (status, reg) = node.post("/v1/register", body);
        assert_eq!(status, 201, "{reg}");
        let claims = trusted.verify(reg["token"].as_str().unwrap()).unwrap().claims().clone();
        assert_eq!(claims.kid.to_string(), kid, "node {i}");
        let (_, listed) = node.get("/v1/keys", None);
        assert_eq!(listed["keys"][1]["active"], true, "{listed}");
        first_kid = listed["keys"][0]["kid"].as_str().unwrap().to_owned();
    }
    // The first key retired on node 0 (recorded in the database) is retired on node 1 too, whose
    // ring never heard of it: release 0.1.0's tokens come from the new key on both.
    drop(nodes);
    let out = keys(&dir0, &["retire", &first_kid]);
    assert!(!out.status.success(), "stranding 0.1.0 agents needs --force");
    let out = keys(&dir0, &["retire", &first_kid, "--force"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nodes = cluster.nodes(2);
    let mut new_only = licet_core::TrustedKeys::new();
    new_only.add_hex(added["public_key"].as_str().unwrap()).unwrap();
    for (i, node) in nodes.iter().enumerate() {
        let (_, listed) = node.get("/v1/keys", None);
        assert_eq!(listed["keys"][0]["retired"], true, "node {i}: {listed}");
        let (status, reg) = node.register(&format!("old{i}@example.com"), &format!("old{i}"));
        assert_eq!(status, 201, "{reg}");
        assert!(new_only.verify(reg["token"].as_str().unwrap()).is_ok(), "node {i}: a 0.1.0 token of the new key");
    }
}

//! The PostgreSQL store beyond the shared suite: schema migrations, the servers' shared state,
//! TLS, and a lost database — on private PostgreSQL servers the tests start.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Env, pc};
use licet_core::Code;
use licet_store::pg::shared::SharedSession;
use licet_store::pg::test_instance::TestInstance;
use licet_store::{Error, PgOptions, PgStore};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn sql(url: &str, statement: &str) -> Vec<tokio_postgres::Row> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query(statement, &[]).await.unwrap()
}

#[test]
fn nodes_starting_together_create_the_schema_once_and_a_newer_schema_is_refused() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let opened: Vec<PgStore> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| PgStore::connect(&url).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(opened.iter().filter(|s| s.migrated().is_some()).count(), 1, "one node migrated, the others waited");
    drop(opened);
    let rows = runtime().block_on(sql(&url, "SELECT version FROM licet_schema"));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i32>(0), licet_store::pg::PG_SCHEMA_VERSION);
    runtime().block_on(sql(&url, "UPDATE licet_schema SET version = version + 1"));
    match PgStore::connect(&url) {
        Err(Error::NewerSchema { found, .. }) => {
            assert_eq!(found, (licet_store::pg::PG_SCHEMA_VERSION + 1).to_string())
        }
        other => panic!("a newer schema must be refused, got {other:?}"),
    }
}

#[test]
fn portal_sessions_are_shared_single_use_for_forms_and_capped_per_account() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let (a, b) = (PgStore::connect(&url).unwrap(), PgStore::connect(&url).unwrap());
    let rt = runtime();
    rt.block_on(async {
        let idle = Duration::from_secs(60);
        let id = [1u8; 32];
        a.open_session(id, SharedSession::new("acc_1".into(), "NUMBER".into(), "csrf-1".into()), idle, 3)
            .await
            .unwrap();
        let seen = b.session(id, idle).await.unwrap().unwrap();
        assert_eq!((seen.account.as_str(), seen.csrf.as_str()), ("acc_1", "csrf-1"));
        assert!(b.accept_form(id, "forged".into(), "csrf-2".into()).await.unwrap().is_none());
        assert!(a.accept_form(id, "csrf-1".into(), "csrf-2".into()).await.unwrap().is_some());
        assert!(b.accept_form(id, "csrf-1".into(), "csrf-3".into()).await.unwrap().is_none(), "a replayed form");
        assert_eq!(a.swap_flash(id, Some("done".into())).await.unwrap(), None);
        assert_eq!(b.swap_flash(id, None).await.unwrap().as_deref(), Some("done"));
        // At most 3 per account: the oldest go.
        for n in 2..6u8 {
            let session = SharedSession::new("acc_1".into(), "NUMBER".into(), format!("c{n}"));
            a.open_session([n; 32], session, idle, 3).await.unwrap();
        }
        let mut live = 0;
        for n in 1..6u8 {
            live += usize::from(a.session([n; 32], idle).await.unwrap().is_some());
        }
        assert_eq!(live, 3);
        assert!(a.session([5; 32], idle).await.unwrap().is_some(), "the newest stays");
        b.close_session([5; 32]).await.unwrap();
        assert!(a.session([5; 32], idle).await.unwrap().is_none());
        // An expired session is gone.
        let short = SharedSession::new("acc_2".into(), "N".into(), "c".into());
        a.open_session([9; 32], short, Duration::from_millis(1), 3).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(a.session([9; 32], idle).await.unwrap().is_none());
        a.sweep().await.unwrap();
    });
    let rows = rt.block_on(sql(&url, "SELECT count(*) FROM portal_sessions WHERE account_id = 'acc_2'"));
    assert_eq!(rows[0].get::<_, i64>(0), 0, "swept");
}

#[test]
fn rate_windows_count_every_node_together() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let (a, b) = (PgStore::connect(&url).unwrap(), PgStore::connect(&url).unwrap());
    runtime().block_on(async {
        let (ip, other) = ("192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        for node in [&a, &b, &a] {
            assert_eq!(node.rate_check(ip, 3).await.unwrap(), Ok(()));
            assert_eq!(node.rate_spend(ip, 3).await.unwrap(), Ok(()));
        }
        let wait = b.rate_check(ip, 3).await.unwrap().unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        assert!(a.rate_spend(ip, 3).await.unwrap().is_err());
        assert_eq!(a.rate_check(other, 3).await.unwrap(), Ok(()));
    });
    // Racing on two nodes, exactly the limit passes.
    let racer: std::net::IpAddr = "198.51.100.7".parse().unwrap();
    let passed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let node = if i % 2 == 0 { &a } else { &b };
                s.spawn(move || runtime().block_on(node.rate_spend(racer, 5)).unwrap().is_ok())
            })
            .collect();
        handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
    });
    assert_eq!(passed, 5);
}

#[test]
fn queued_mail_is_delivered_once_by_competing_nodes_and_kept_when_delivery_fails() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let nodes: Vec<PgStore> = (0..3).map(|_| PgStore::connect(&url).unwrap()).collect();
    let rt = runtime();
    for i in 0..60 {
        rt.block_on(nodes[i % 3].queue_mail(format!("u{i}@example.com"), "Ваш номер".into(), "…".into())).unwrap();
    }
    // A failing delivery keeps the message and records why.
    let failed = nodes[0].deliver_mail(1, &mut |_| Err("relay down".into())).unwrap();
    assert_eq!(failed, 0);
    let delivered = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for node in &nodes {
            let delivered = &delivered;
            s.spawn(move || {
                while node
                    .deliver_mail(7, &mut |m| {
                        delivered.lock().unwrap().push(m.id);
                        Ok(())
                    })
                    .unwrap()
                    > 0
                {}
            });
        }
    });
    let delivered = delivered.into_inner().unwrap();
    assert_eq!(delivered.len(), 60);
    assert_eq!(delivered.iter().collect::<HashSet<_>>().len(), 60, "no message twice");
    assert_eq!(rt.block_on(nodes[1].mail_queued()).unwrap(), 0);
}

/// A trigger on the ledger's table that fails the first `times` writes of a registration
/// number's index with SQLSTATE `code` (a sequence counts them: it is not rolled back with the
/// transaction that failed).
fn trip_number_writes(url: &str, code: &str, times: u32) {
    let rt = runtime();
    rt.block_on(sql(url, "CREATE SEQUENCE trips"));
    rt.block_on(sql(
        url,
        &format!(
            "CREATE FUNCTION trip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.kind = 'number' THEN \
                 IF nextval('trips') <= {times} THEN \
                   RAISE EXCEPTION 'tripped by the test' USING ERRCODE = '{code}'; \
                 END IF; \
               END IF; RETURN NEW; END $$"
        ),
    ));
    rt.block_on(sql(
        url,
        "CREATE TRIGGER trip BEFORE INSERT OR UPDATE ON records FOR EACH ROW EXECUTE FUNCTION trip()",
    ));
}

fn trips(url: &str) -> i64 {
    runtime().block_on(sql(url, "SELECT last_value FROM trips"))[0].get(0)
}

/// A store whose steps wait long enough that a loaded machine never turns one into a loss.
fn patient(url: &str) -> PgStore {
    let mut options = PgOptions::default();
    options.timeout = Duration::from_secs(20);
    PgStore::connect_with(url, options).unwrap()
}

#[test]
fn a_transaction_that_failed_inside_25p02_is_run_again_and_commits_once() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let env = Env::new(patient(&url));
    // The registration's writes travel pipelined with their COMMIT; the number's index fails
    // twice with 25P02 ("in failed SQL transaction"), as a statement sent after a failed one is
    // answered, and the rest of the pipeline with it.
    trip_number_writes(&url, "25P02", 2);
    let registered = env.register("a@example.com", &pc("a"), 1).unwrap();
    assert_eq!(trips(&url), 3, "two attempts refused, the third committed");
    let number = registered.number.to_string();
    assert_eq!(env.account("a@example.com").unwrap().number, registered.number.body());
    let rows = runtime().block_on(sql(&url, "SELECT count(*) FROM records WHERE kind = 'account'"));
    assert_eq!(rows[0].get::<_, i64>(0), 1, "one account, however many attempts");
    // The connections the failed attempts used went back clean: every later command works.
    for i in 0..20 {
        env.activate(&number, &pc("a"), i).unwrap();
    }
}

#[test]
fn a_database_error_that_is_no_race_fails_the_command_once_and_leaves_the_store_working() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let env = Env::new(patient(&url));
    // 22012, division by zero: the database's own error, not a lost race. It is not run again.
    trip_number_writes(&url, "22012", 1);
    let failed = env.register("a@example.com", &pc("a"), 1).unwrap_err();
    assert_eq!(failed.code(), Code::InternalError, "{failed:?}");
    assert_eq!(trips(&url), 1, "tried once");
    assert!(env.account("a@example.com").is_none(), "nothing of it was committed");
    env.register("a@example.com", &pc("a"), 2).unwrap();
    assert!(env.account("a@example.com").is_some());
}

#[test]
fn a_node_deciding_over_records_it_remembers_sees_what_another_node_wrote_since() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let (a, b) = (Env::new(patient(&url)), Env::new(patient(&url)));
    let number = a.register("a@example.com", &pc("r"), 1).unwrap().number.to_string();
    let coupon = a.coupons(1, 10, 2).remove(0);
    a.redeem(&number, &coupon, 3).unwrap();
    // Node a remembers the account from its own commands; node b then changes it, twice over.
    for i in 0..3 {
        a.activate(&number, &pc(&format!("a{i}")), 10 + i).unwrap();
        b.activate(&number, &pc(&format!("b{i}")), 20 + i).unwrap();
    }
    // Were a's remembered account trusted, each of its activations would drop b's bindings.
    let account = b.account("a@example.com").unwrap();
    for host in ["r", "a0", "b0", "a1", "b1", "a2", "b2"] {
        assert!(account.bindings.iter().any(|binding| binding.anchor == pc(host).fingerprint), "{host} lost");
    }
    // Both took the one-round-trip path, and both found the other's change at least once.
    for (node, env) in [("a", &a), ("b", &b)] {
        let (committed, missed) = env.store.remembered();
        assert!(committed >= 2 && missed >= 1, "node {node}: {committed} committed as remembered, {missed} missed");
    }
    // A refusal is decided on current records too: b takes the last free seats (six of the ten
    // are taken; the registering host holds the trial's), and a is refused.
    for i in 0..4 {
        b.activate(&number, &pc(&format!("c{i}")), 30 + i).unwrap();
    }
    let refused = a.activate(&number, &pc("d"), 40).unwrap_err();
    assert_eq!(refused.code(), Code::NoFreeLicense, "{refused:?}");
    assert_eq!(a.account("a@example.com").unwrap().bindings.len(), 11);
}

#[test]
fn commands_on_different_accounts_at_once_share_transactions_and_each_commits() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let env = Env::new(patient(&server.create_database().unwrap()));
    let numbers: Vec<String> = (0..8u64)
        .map(|i| env.register(&format!("c{i}@example.com"), &pc(&format!("c{i}")), i).unwrap().number.to_string())
        .collect();
    let (before_transactions, before_commands) = env.store.batched();
    // Eight hosts refresh their bindings at once, each on its own account.
    std::thread::scope(|s| {
        for (i, number) in numbers.iter().enumerate() {
            let env = &env;
            s.spawn(move || {
                for round in 0..25u64 {
                    env.activate(number, &pc(&format!("c{i}")), 100 + round).unwrap();
                }
            });
        }
    });
    let (transactions, commands) = env.store.batched();
    let (transactions, commands) = (transactions - before_transactions, commands - before_commands);
    assert!(commands >= 200, "every activation went through the committer: {commands}");
    assert!(transactions < commands, "some transaction carried several: {transactions} for {commands}");
    for i in 0..8 {
        let account = env.account(&format!("c{i}@example.com")).unwrap();
        assert_eq!(account.bindings.len(), 1, "c{i}: {:?}", account.bindings);
    }
}

#[test]
fn a_lost_database_is_unavailable_at_once_and_the_store_recovers_by_itself() {
    let Some(mut server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let mut options = PgOptions::default();
    options.timeout = Duration::from_secs(2);
    let env = Env::new(PgStore::connect_with(&url, options).unwrap());
    env.register("a@example.com", &pc("a"), 1).unwrap();
    server.stop().unwrap();
    let start = Instant::now();
    let lost = env.register("b@example.com", &pc("b"), 2).unwrap_err();
    assert!(matches!(lost, licet_core::Error::Unavailable(_)), "{lost:?}");
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    assert!(runtime().block_on(env.store.ping()).is_err());
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match env.register("b@example.com", &pc("b"), 3) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && e.code() == Code::InternalError => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the store did not come back: {e:?}"),
        }
    }
    assert!(env.account("a@example.com").is_some(), "what was committed before is there");
}

#[test]
fn a_database_out_of_connections_is_unavailable_at_once_and_the_store_carries_on_after() {
    // It takes every connection of its server: only on a private one.
    if std::env::var_os("LICET_TEST_DATABASE_URL").is_some() {
        return;
    }
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database().unwrap();
    let mut options = PgOptions::default();
    options.timeout = Duration::from_secs(2);
    let env = Env::new(PgStore::connect_with(&url, options).unwrap());
    env.register("a@example.com", &pc("a"), 1).unwrap();
    // Other clients take every connection the server allows (53300 past them).
    let rt = runtime();
    let hogs = rt.block_on(async {
        let mut hogs = Vec::new();
        loop {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    hogs.push(client);
                    assert!(hogs.len() < 1_000, "the server never ran out of connections");
                }
                Err(e) => {
                    assert_eq!(e.code().map(|c| c.code()), Some("53300"), "{e}");
                    return hogs;
                }
            }
        }
    });
    // Registrations that need more connections than the store holds are unavailable (HTTP 503),
    // quickly, never an internal error; each of the others still commits.
    let together = std::sync::Barrier::new(8);
    let outcomes: Vec<(Result<(), licet_core::Error>, Duration)> = std::thread::scope(|s| {
        let (env, together) = (&env, &together);
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                s.spawn(move || {
                    // All at once, so that they need more connections than the store holds.
                    together.wait();
                    let start = Instant::now();
                    let result = env.register(&format!("busy{i}@example.com"), &pc(&format!("busy{i}")), 10 + i);
                    (result.map(drop), start.elapsed())
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let unavailable = outcomes
        .iter()
        .filter(|(r, _)| matches!(r, Err(licet_core::Error::Unavailable(m)) if m.contains("53300")))
        .count();
    assert!(unavailable >= 1, "{outcomes:?}");
    for (result, took) in &outcomes {
        assert!(
            result.is_ok() || unavailable > 0 && matches!(result, Err(licet_core::Error::Unavailable(_))),
            "{result:?}"
        );
        assert!(*took < Duration::from_secs(15), "{took:?}");
    }
    // The connections come back: so does the store, by itself.
    drop(hogs);
    drop(rt);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match env.register("after@example.com", &pc("after"), 99) {
            Ok(_) => break,
            Err(licet_core::Error::Unavailable(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("the store did not come back: {e:?}"),
        }
    }
    for (i, (result, _)) in outcomes.iter().enumerate() {
        assert_eq!(env.account(&format!("busy{i}@example.com")).is_some(), result.is_ok(), "busy{i}: {result:?}");
    }
}

#[test]
fn tls_follows_sslmode_and_always_verifies_the_certificate() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    if !TestInstance::available(module_path!()) {
        return;
    }
    let server = TestInstance::start_with_tls(&cert.cert.pem(), &cert.signing_key.serialize_pem()).unwrap();
    let url = server.create_database().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    let secure = format!("{url}?sslmode=require&sslrootcert={}", ca.display());
    let store = PgStore::connect(&secure).unwrap();
    let env = Env::new(store);
    env.register("tls@example.com", &pc("tls"), 1).unwrap();
    // The connection really is encrypted: the server says so of the store's own sessions.
    let rows = runtime().block_on(sql(
        &url,
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.datname = current_database()",
    ));
    assert!(rows[0].get::<_, i64>(0) >= 1);
    // A certificate the URL does not vouch for is refused, never used unverified.
    let unverified = PgStore::connect(&format!("{url}?sslmode=require"));
    assert!(matches!(unverified, Err(Error::Database { .. })), "{unverified:?}");
    // Without TLS where the URL allows it.
    PgStore::connect(&format!("{url}?sslmode=disable")).unwrap();
}

#[test]
fn the_views_show_features_grace_resets_and_coupon_kinds_also_after_an_upgrade_from_version_1() {
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    // The schema a version-1 build made: its views are replaced when this build starts.
    let url = server.create_database_at_schema(1).unwrap();
    assert_eq!(runtime().block_on(sql(&url, "SELECT count(*) FROM licenses"))[0].get::<_, i64>(0), 0);
    let store = PgStore::connect(&url).unwrap();
    assert_eq!(store.migrated(), Some((1, licet_store::pg::PG_SCHEMA_VERSION)));
    let env = Env::new(store);
    let mut rng = licet_core::SeededEntropy::new(5);
    let features = |list: &[&str]| list.iter().map(|f| (*f).to_owned()).collect::<std::collections::BTreeSet<_>>();
    let settings = licet_core::ProductSettings {
        features: Some(features(&["analytics", "recording"])),
        grace_days: Some(7),
        max_resets_per_30_days: Some(3),
        ..Default::default()
    };
    let put = licet_core::Command::PutProduct { id: common::PRODUCT.into(), settings };
    use licet_store::StoreExt;
    env.store.execute::<licet_core::Product>(&env.ledger, common::now(), &mut rng, &put).unwrap();
    let number = env.register("a@example.com", &pc("a"), 1).unwrap().number.to_string();
    let offer = licet_core::Offer::License {
        seats: 2,
        term_days: Some(30),
        features: Some(features(&["recording"])),
        model: Default::default(),
    };
    let batch = licet_core::CouponBatch { product: common::PRODUCT.into(), count: 1, offer };
    let issue = licet_core::Command::IssueCoupons(batch);
    let codes: Vec<licet_core::CouponCode> = env.store.execute(&env.ledger, common::now(), &mut rng, &issue).unwrap();
    env.redeem(&number, &codes[0].to_string(), 2).unwrap();
    let deactivate = licet_core::Command::Deactivate(licet_core::HostCommand {
        number: number.as_str().into(),
        product: common::PRODUCT.into(),
        host: pc("a"),
    });
    // At the real time, which the view's count of recent resets is taken against.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let real_now = chrono::DateTime::from_timestamp(since_epoch.as_secs() as i64, 0).unwrap();
    env.store.execute::<()>(&env.ledger, real_now, &mut rng, &deactivate).unwrap();
    drop(env);

    let rt = runtime();
    let product = rt.block_on(sql(&url, "SELECT features, grace_days, max_resets_per_30_days FROM products"));
    assert_eq!(product[0].get::<_, Vec<String>>(0), ["analytics", "recording"]);
    assert_eq!((product[0].get::<_, i32>(1), product[0].get::<_, i32>(2)), (7, 3));
    let licenses = rt.block_on(sql(
        &url,
        "SELECT kind, features, grace_until - expires_at = interval '7 days', resets_last_30_days \
         FROM licenses ORDER BY kind",
    ));
    let rows: Vec<(String, Vec<String>, bool)> = licenses.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(
        rows,
        [
            ("subscription".to_owned(), vec!["recording".to_owned()], true),
            ("trial".to_owned(), vec!["analytics".to_owned(), "recording".to_owned()], true),
        ]
    );
    // The deactivation counted against the trial the host was bound to.
    let resets: Vec<i32> = licenses.iter().map(|r| r.get(3)).collect();
    assert_eq!(resets, [0, 1]);
    let left = rt.block_on(sql(&url, "SELECT resets_left FROM licenses ORDER BY kind"));
    assert_eq!(left.iter().map(|r| r.get::<_, Option<i32>>(0)).collect::<Vec<_>>(), [Some(3), Some(2)]);
    let coupon = rt.block_on(sql(&url, "SELECT kind, features, days FROM coupons"));
    assert_eq!(coupon[0].get::<_, String>(0), "license");
    assert_eq!(coupon[0].get::<_, Vec<String>>(1), ["recording"]);
    assert_eq!(coupon[0].get::<_, Option<i32>>(2), None);
}

#[test]
fn the_views_show_floating_licenses_and_their_sessions_also_after_an_upgrade_from_version_2() {
    use licet_core::{Checkout, Command, LicenseModel, Offer, SessionSeat};
    use licet_store::StoreExt;
    let Some(server) = TestInstance::start_or_skip(module_path!()) else { return };
    let url = server.create_database_at_schema(2).unwrap();
    let store = PgStore::connect(&url).unwrap();
    assert_eq!(store.migrated(), Some((2, licet_store::pg::PG_SCHEMA_VERSION)));
    let env = Env::new(store);
    let mut rng = licet_core::SeededEntropy::new(9);
    // The views judge liveness against the database's clock: the commands run at the real time.
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let real_now = chrono::DateTime::from_timestamp(since_epoch.as_secs() as i64, 0).unwrap();
    let settings = licet_core::ProductSettings {
        session_lease_seconds: Some(600),
        max_borrow_hours: Some(12),
        ..Default::default()
    };
    let put = Command::PutProduct { id: common::PRODUCT.into(), settings };
    env.store.execute::<licet_core::Product>(&env.ledger, real_now, &mut rng, &put).unwrap();
    let number = env.register("a@example.com", &pc("a"), 1).unwrap().number.to_string();
    let offer = Offer::License { seats: 3, term_days: None, features: None, model: LicenseModel::Floating };
    let issue = Command::IssueCoupons(licet_core::CouponBatch { product: common::PRODUCT.into(), count: 1, offer });
    let codes: Vec<licet_core::CouponCode> = env.store.execute(&env.ledger, real_now, &mut rng, &issue).unwrap();
    env.redeem(&number, &codes[0].to_string(), 2).unwrap();
    let checkout = |host: &str, user: &str, borrow_hours: Option<u32>, at| {
        let request = Checkout {
            number: number.as_str().into(),
            product: common::PRODUCT.into(),
            host: pc(host),
            user: user.into(),
            borrow_hours,
        };
        let seat: SessionSeat = env
            .store
            .execute(&env.ledger, at, &mut licet_core::SeededEntropy::new(7), &Command::Checkout(request))
            .unwrap();
        seat
    };
    // One that died an hour ago (its host went silent), one live, one borrowed.
    checkout("old", "", None, real_now - chrono::Duration::hours(2));
    checkout("b", "anna", None, real_now);
    checkout("c", "", Some(12), real_now);
    drop(env);

    let rt = runtime();
    let product = rt.block_on(sql(&url, "SELECT session_lease_seconds, max_borrow_hours FROM products"));
    assert_eq!((product[0].get::<_, i32>(0), product[0].get::<_, i32>(1)), (600, 12));
    let sessions = rt.block_on(sql(&url, r#"SELECT hostname, "user", borrowed, live FROM sessions ORDER BY hostname"#));
    let rows: Vec<(String, Option<String>, bool, bool)> =
        sessions.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    // The dead one was tidied away by the next checkout.
    assert_eq!(rows, [("b".to_owned(), Some("anna".to_owned()), false, true), ("c".to_owned(), None, true, true)]);
    let licenses = rt.block_on(sql(&url, "SELECT kind, model, seats_used FROM licenses ORDER BY kind"));
    let rows: Vec<(String, String, i32)> = licenses.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(rows, [("perpetual".to_owned(), "floating".to_owned(), 2), ("trial".to_owned(), "host".to_owned(), 1)]);
    let coupon = rt.block_on(sql(&url, "SELECT model FROM coupons"));
    assert_eq!(coupon[0].get::<_, Option<String>>(0).as_deref(), Some("floating"));
}

#[test]
fn a_private_server_whose_test_process_died_is_stopped_by_the_next_one() {
    if !TestInstance::available(module_path!()) || std::env::var_os("LICET_TEST_DATABASE_URL").is_some() {
        return;
    }
    let orphan = TestInstance::start().unwrap();
    let (dir, pid) = orphan.process().map(|(d, p)| (d.to_owned(), p)).unwrap();
    // Its owner "dies": a process that has exited, and nothing is dropped, as after SIGKILL.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    std::fs::write(dir.join("owner.pid"), dead.to_string()).unwrap();
    std::mem::forget(orphan);
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let _next = TestInstance::start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}/status")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default().contains("zombie")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(status.is_empty() || status.contains("zombie"), "the orphan still runs: {status}");
    assert!(!dir.exists(), "its directory is removed");
}

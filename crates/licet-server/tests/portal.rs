//! The customer portal in a real browser: headless Chromium from Debian's packages, driven over
//! WebDriver (chromedriver) by fantoccini. Screenshots go to `target/portal-screenshots/`.
//!
//! Without `chromedriver` on the machine the test says so and stops, unless
//! `LICET_REQUIRE_BROWSER` is set (as `.ci/run` does after installing it): then it fails.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::start;
use fantoccini::{ClientBuilder, Locator};
use serde_json::json;

struct Driver(Child);

/// What `licet-agent offline-request` prints on host `tag` (as `common::host` fingerprints it).
fn offline_request(number: &str, tag: &str) -> String {
    let components = [("machine-id", format!("m-{tag}")), ("mac", format!("a-{tag}")), ("disk", format!("d-{tag}"))];
    let host = licet_core::Host::new(licet_core::Fingerprint::new(components).unwrap(), tag, "Linux").unwrap();
    licet_core::OfflineRequest { number: number.into(), product: common::PRODUCT.into(), host }.encode()
}

/// Finds an element, waiting up to 10 s for it (pages load after a click asynchronously).
async fn find(
    c: &fantoccini::Client,
    locator: Locator<'_>,
) -> Result<fantoccini::elements::Element, fantoccini::error::CmdError> {
    c.wait().at_most(Duration::from_secs(10)).for_element(locator).await
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Option<String> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn screenshots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/portal-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_portal_in_a_real_browser() {
    let Some(driver_bin) = chromedriver() else {
        assert!(std::env::var_os("LICET_REQUIRE_BROWSER").is_none(), "chromedriver is required but not installed");
        eprintln!("SKIPPED: chromedriver is not installed (apt-get install -y chromium chromium-driver)");
        return;
    };
    let s = start(&["--rate-limit", "50"]);
    let edition =
        json!({"name": "Журнал звонков", "features": ["recording", "analytics"], "max_resets_per_30_days": 1});
    assert_eq!(s.admin_put(&format!("/v1/admin/products/{}", common::PRODUCT), edition).0, 200);
    let (_, reg) = s.register("portal@example.com", "office");
    let number = reg["registration_number"].as_str().unwrap().to_owned();
    let batch = json!({"product": common::PRODUCT, "count": 1, "seats": 2, "features": ["recording"]});
    let coupon = s.admin_post("/v1/admin/coupons", batch).1["coupons"][0].as_str().unwrap().to_owned();
    assert_eq!(s.post("/v1/redeem", json!({"registration_number": number, "coupon": coupon})).0, 200);
    assert_eq!(s.activate(&number, "laptop").0, 200);
    assert_eq!(s.activate(&number, "warehouse").0, 200);
    assert_eq!(s.activate(&number, "reception").0, 409, "every seat is bound");
    // A floating license of two seats, both in use.
    let batch = json!({"product": common::PRODUCT, "count": 1, "seats": 2, "model": "floating"});
    let floating = s.admin_post("/v1/admin/coupons", batch).1["coupons"][0].as_str().unwrap().to_owned();
    assert_eq!(s.post("/v1/redeem", json!({"registration_number": number, "coupon": floating})).0, 200);
    for (tag, user) in [("designer", "anna"), ("accountant", "boris")] {
        let checkout =
            json!({"registration_number": number, "product": common::PRODUCT, "host": common::host(tag), "user": user});
        assert_eq!(s.post("/v1/sessions", checkout).0, 201);
    }
    let third = json!({"registration_number": number, "product": common::PRODUCT, "host": common::host("intern")});
    assert_eq!(s.post("/v1/sessions", third.clone()).0, 409, "both floating seats are in use");

    let port = free_port();
    let _driver = Driver(
        Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
                "--window-size=1280,900", format!("--user-data-dir={}", profile.path().display())]}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let c = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("chromedriver starts a headless Chromium");
        let url = s.url.clone();
        let shots = screenshots();
        let css = |sel: &'static str| Locator::Css(sel);

        // The login page, in English.
        c.goto(&format!("{url}/?lang=en")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Sign in to your account"));
        std::fs::write(shots.join("login.png"), c.screenshot().await.unwrap()).unwrap();

        // A wrong number shows an error.
        find(&c, css("#credential")).await.unwrap().send_keys("LICET-00000-00000-00000-00000").await.unwrap();
        find(&c, css("#login")).await.unwrap().click().await.unwrap();
        let error = find(&c, css("#error")).await.unwrap().text().await.unwrap();
        assert!(error.contains("Wrong registration number"), "{error}");

        // Log in with the number: the bindings are there.
        find(&c, css("#credential")).await.unwrap().send_keys(&number).await.unwrap();
        find(&c, css("#login")).await.unwrap().click().await.unwrap();
        assert_eq!(find(&c, css("#organization")).await.unwrap().text().await.unwrap(), "Org");
        let shown = find(&c, css("#number")).await.unwrap().text().await.unwrap();
        assert!(shown.starts_with("LICET-*****") && shown.ends_with(&number[number.len() - 5..]), "{shown}");
        assert!(!c.source().await.unwrap().contains(&number), "the full number never appears on the page");
        let rows = c.find_all(css("tr.binding")).await.unwrap();
        assert_eq!(rows.len(), 3);
        let page = c.source().await.unwrap();
        for host in ["office", "laptop", "warehouse"] {
            assert!(page.contains(&format!("<td>{host}</td>")), "{host} listed");
        }
        std::fs::write(shots.join("bindings.png"), c.screenshot().await.unwrap()).unwrap();
        // The licenses show their features (the trial all of them) and the resets they have left.
        let licenses = find(&c, css("#licenses")).await.unwrap().text().await.unwrap();
        assert!(licenses.contains("analytics, recording") && licenses.contains("Resets left"), "{licenses}");
        // Products by their names, not their ids.
        assert!(licenses.contains("Журнал звонков") && !licenses.contains(common::PRODUCT), "{licenses}");
        let resets: Vec<String> = {
            let mut texts = Vec::new();
            for cell in c.find_all(css("tr.license td.resets-left")).await.unwrap() {
                texts.push(cell.text().await.unwrap());
            }
            texts
        };
        assert_eq!(resets, ["1", "1", "—"]);
        assert!(licenses.contains("(floating)"), "{licenses}");

        // Info shows the fingerprint's components.
        let laptop_row = find(&c, Locator::XPath("//tr[td='laptop']")).await.unwrap();
        laptop_row.find(css("details summary")).await.unwrap().click().await.unwrap();
        let info = laptop_row.find(css("details table")).await.unwrap().text().await.unwrap();
        assert!(info.contains("m-laptop") && info.contains("a-laptop") && info.contains("d-laptop"), "{info}");
        std::fs::write(shots.join("info.png"), c.screenshot().await.unwrap()).unwrap();

        // A post without the CSRF token is refused, and changes nothing.
        let warehouse_row = find(&c, Locator::XPath("//tr[td='warehouse']")).await.unwrap();
        warehouse_row.find(css("a.button")).await.unwrap().click().await.unwrap();
        find(&c, css("#confirm")).await.unwrap();
        let confirm = c.source().await.unwrap();
        assert!(confirm.contains("Reset this binding?") && confirm.contains("Журнал звонков"), "{confirm}");
        c.execute("document.querySelector('form[action^=\"/reset\"] input[name=csrf]').remove()", vec![])
            .await
            .unwrap();
        find(&c, css("#confirm")).await.unwrap().click().await.unwrap();
        assert!(find(&c, css("#error")).await.unwrap().text().await.unwrap().contains("forged"));
        c.goto(&url).await.unwrap();
        assert_eq!(c.find_all(css("tr.binding")).await.unwrap().len(), 3);

        // Reset asks for confirmation, then the binding is gone and the seat free.
        let warehouse_row = find(&c, Locator::XPath("//tr[td='warehouse']")).await.unwrap();
        warehouse_row.find(css("a.button")).await.unwrap().click().await.unwrap();
        std::fs::write(shots.join("confirm-reset.png"), c.screenshot().await.unwrap()).unwrap();
        find(&c, css("#confirm")).await.unwrap().click().await.unwrap();
        assert!(find(&c, css("#notice")).await.unwrap().text().await.unwrap().contains("reset"));
        assert_eq!(c.find_all(css("tr.binding")).await.unwrap().len(), 2);
        assert!(!c.source().await.unwrap().contains("<td>warehouse</td>"));
        assert_eq!(s.activate(&number, "reception").0, 200, "the freed seat takes another host");

        // Replaying the reset (the browser's back + resubmit) is refused: the token was used.
        c.back().await.unwrap();
        c.back().await.unwrap();
        if c.find(css("#confirm")).await.is_ok() {
            find(&c, css("#confirm")).await.unwrap().click().await.unwrap();
            assert!(find(&c, css("#error")).await.unwrap().text().await.unwrap().contains("forged"));
        }

        // That reset used the perpetual license's one reset for 30 days: another is refused, and
        // the portal says why.
        c.goto(&url).await.unwrap();
        let perpetual_left =
            find(&c, Locator::XPath("//tr[@class='license'][td='perpetual']/td[@class='resets-left']"));
        assert_eq!(perpetual_left.await.unwrap().text().await.unwrap(), "0");
        let laptop_row = find(&c, Locator::XPath("//tr[td='laptop']")).await.unwrap();
        laptop_row.find(css("a.button")).await.unwrap().click().await.unwrap();
        find(&c, css("#confirm")).await.unwrap().click().await.unwrap();
        let notice = find(&c, css("#notice")).await.unwrap().text().await.unwrap();
        assert!(notice.contains("used all its seat resets"), "{notice}");
        assert_eq!(c.find_all(css("tr.binding")).await.unwrap().len(), 3, "nothing was reset");

        // The session monitor's other tab: the floating sessions, with host and user.
        c.goto(&url).await.unwrap();
        find(&c, css("#tab-sessions")).await.unwrap().click().await.unwrap();
        assert_eq!(c.find_all(css("tr.session")).await.unwrap().len(), 2);
        let sessions = find(&c, css("#sessions")).await.unwrap().text().await.unwrap();
        assert!(sessions.contains("designer") && sessions.contains("anna") && sessions.contains("boris"), "{sessions}");
        assert!(sessions.contains("Last heartbeat") && sessions.contains("Журнал звонков"), "{sessions}");
        std::fs::write(shots.join("sessions.png"), c.screenshot().await.unwrap()).unwrap();
        // Release frees the seat at once.
        let designer = find(&c, Locator::XPath("//tr[td='designer']")).await.unwrap();
        designer.find(css("button.release")).await.unwrap().click().await.unwrap();
        assert!(find(&c, css("#notice")).await.unwrap().text().await.unwrap().contains("released"));
        assert_eq!(c.find_all(css("tr.session")).await.unwrap().len(), 1);
        assert_eq!(s.post("/v1/sessions", third).0, 201, "the released seat takes another host");
        // The bindings tab is as it was.
        find(&c, css("#tab-bindings")).await.unwrap().click().await.unwrap();
        assert_eq!(c.find_all(css("tr.binding")).await.unwrap().len(), 3);

        // Offline activation: a request of the laptop (bound already) gets its token; a new host's
        // finds no seat; another account's request is refused.
        c.goto(&url).await.unwrap();
        find(&c, css("#offline-link")).await.unwrap().click().await.unwrap();
        find(&c, css("#request")).await.unwrap().send_keys(&offline_request(&number, "laptop")).await.unwrap();
        std::fs::write(shots.join("offline-request.png"), c.screenshot().await.unwrap()).unwrap();
        find(&c, css("#activate")).await.unwrap().click().await.unwrap();
        let token = find(&c, css("#token")).await.unwrap().prop("value").await.unwrap().unwrap_or_default();
        let (_, keys) = s.get("/v1/keys", None);
        let mut trusted = licet_core::TrustedKeys::new();
        trusted.add_hex(keys["keys"][0]["public_key"].as_str().unwrap()).unwrap();
        let claims = trusted.verify(&token).unwrap().claims().clone();
        assert_eq!(claims.lease_until - claims.issued_at, 30 * 86_400, "the product's offline_activation_days");
        std::fs::write(shots.join("offline-token.png"), c.screenshot().await.unwrap()).unwrap();
        c.goto(&format!("{url}/offline")).await.unwrap();
        find(&c, css("#request")).await.unwrap().send_keys(&offline_request(&number, "vault")).await.unwrap();
        find(&c, css("#activate")).await.unwrap().click().await.unwrap();
        let error = find(&c, css("#error")).await.unwrap().text().await.unwrap();
        assert!(error.contains("No seat is free"), "{error}");
        let (_, other) = s.register("other@example.com", "other");
        let other_number = other["registration_number"].as_str().unwrap();
        c.goto(&format!("{url}/offline")).await.unwrap();
        find(&c, css("#request")).await.unwrap().send_keys(&offline_request(other_number, "other")).await.unwrap();
        find(&c, css("#activate")).await.unwrap().click().await.unwrap();
        let error = find(&c, css("#error")).await.unwrap().text().await.unwrap();
        assert!(error.contains("another account") && error.contains("1002"), "{error}");
        c.goto(&format!("{url}/offline")).await.unwrap();
        find(&c, css("#request")).await.unwrap().send_keys("LICET1.garbled").await.unwrap();
        find(&c, css("#activate")).await.unwrap().click().await.unwrap();
        assert!(find(&c, css("#error")).await.unwrap().text().await.unwrap().contains("damaged"));

        // Log out: the session is over.
        c.goto(&url).await.unwrap();
        find(&c, css("#logout")).await.unwrap().click().await.unwrap();
        find(&c, css("#credential")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Sign in to your account"));
        c.goto(&url).await.unwrap();
        assert!(find(&c, css("#login")).await.is_ok(), "logged out stays logged out");

        // Log in with the redeemed coupon, in Russian.
        c.goto(&format!("{url}/?lang=ru")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Вход в личный кабинет"));
        find(&c, css("#credential")).await.unwrap().send_keys(&coupon).await.unwrap();
        find(&c, css("#login")).await.unwrap().click().await.unwrap();
        find(&c, css("#organization")).await.unwrap();
        assert!(c.source().await.unwrap().contains("Привязки лицензий к хостам"));
        assert!(c.source().await.unwrap().contains("Осталось сбросов"));
        assert_eq!(c.find_all(css("tr.binding")).await.unwrap().len(), 3);
        std::fs::write(shots.join("bindings-ru.png"), c.screenshot().await.unwrap()).unwrap();
        find(&c, css("#tab-sessions")).await.unwrap().click().await.unwrap();
        let monitor = find(&c, css("#monitor")).await.unwrap().text().await.unwrap();
        assert!(monitor.contains("Монитор сессий") && monitor.contains("Пользователь"), "{monitor}");
        assert!(monitor.contains("intern") && monitor.contains("Освободить"), "{monitor}");
        std::fs::write(shots.join("sessions-ru.png"), c.screenshot().await.unwrap()).unwrap();
        find(&c, css("#offline-link")).await.unwrap().click().await.unwrap();
        assert!(c.source().await.unwrap().contains("Офлайн-активация"));
        find(&c, css("#request")).await.unwrap().send_keys("не запрос").await.unwrap();
        find(&c, css("#activate")).await.unwrap().click().await.unwrap();
        let error = find(&c, css("#error")).await.unwrap().text().await.unwrap();
        assert!(error.contains("повреждён"), "{error}");
        c.close().await.unwrap();
    });
}

//! licet end to end, in one process, as a short story.
//!
//! A license server starts on 127.0.0.1:0 over the embedded store in a temporary directory.
//! Two customer hosts (agents with their own caches and fingerprints) register, check, redeem a
//! coupon for one edition and upgrade it; a third host finds every seat taken; the customer resets
//! a binding; the server goes down and the hosts keep working from their signed tokens.
//! Everything is removed at the end.
//!
//! `cargo run --release --example quickstart`

use std::process::ExitCode;

use chrono::{Duration, Utc};
use licet::agent::{Agent, AgentConfig, RegistrationForm, Source};
use licet::core::Fingerprint;
use licet::server::{Background, ServerConfig};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Story {
    step: u32,
}

impl Story {
    fn say(&mut self, text: impl std::fmt::Display) {
        self.step += 1;
        println!("{:>2}. {text}", self.step);
    }
}

/// A customer host: its own cache directory and hardware.
fn host(dir: &std::path::Path, name: &str, url: &str, key: &str, hours_later: i64) -> Result<Agent> {
    let mut config = AgentConfig::new(url, dir.join(name)).trust(key);
    config.fingerprint =
        Some(Fingerprint::new(["machine-id", "mac", "disk"].map(|c| (c, format!("{name}-{c}-0123456789abcdef"))))?);
    config.hostname = Some(name.to_owned());
    config.now = Some(Utc::now() + Duration::hours(hours_later));
    Ok(Agent::new(config)?)
}

fn admin(http: &ureq::Agent, method: &str, url: &str, token: &str, body: Value) -> Result<Value> {
    let request = match method {
        "PUT" => http.put(url),
        _ => http.post(url),
    };
    Ok(request.header("Authorization", format!("Bearer {token}")).send_json(body)?.body_mut().read_json()?)
}

fn refused(e: &licet::agent::Error) -> String {
    format!("refused with {} {}", e.code().number(), e.code().name())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut story = Story { step: 0 };
    let dir = tempfile::tempdir()?;
    let mut config = ServerConfig::new(dir.path().join("server"));
    config.listen = "127.0.0.1:0".into();
    let server = Background::start(config)?;
    let url = server.server().url.clone();
    let key = server.server().public_key.clone();
    let token = server.server().initialised.as_ref().ok_or("a new data directory is initialised")?.admin_token.clone();
    story.say(format!("The vendor starts a license server at {url} (signing key {}…).", &key[..16]));

    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let product = json!({"name": "Call journal", "features": ["recording", "analytics"]});
    admin(&http, "PUT", &format!("{url}/v1/admin/products/call-journal"), &token, product)?;
    story.say(
        "It creates the product call-journal with two features, recording and analytics: 30-day single-seat \
         trials with every feature, a week's offline lease.",
    );

    let office = host(dir.path(), "office-pc", &url, &key, 0)?;
    let form = RegistrationForm {
        email: "it@romashka.example".into(),
        organization: "Romashka LLC".into(),
        product: "call-journal".into(),
        ..Default::default()
    };
    let (number, trial) = office.register(&form)?;
    let masked = licet::core::RegistrationNumber::parse(&number)?.masked();
    story.say(format!(
        "office-pc registers: number {masked} (also e-mailed), a {} until {}.",
        trial.kind.as_str(),
        trial.expires_at.map(|t| t.format("%Y-%m-%d").to_string()).unwrap_or_default()
    ));
    let grant = office.check("call-journal")?;
    story.say(format!("office-pc checks the license: ok, {} from its fresh token.", grant.kind.as_str()));

    let laptop = host(dir.path(), "laptop", &url, &key, 0)?;
    let mut typo = number.clone().into_bytes();
    typo[8] = if typo[8] == b'X' { b'Y' } else { b'X' };
    let e = laptop.set_number(std::str::from_utf8(&typo)?).expect_err("the check symbols catch a typo");
    story.say(format!("On laptop the number is typed with a typo: {} — caught without the server.", refused(&e)));
    laptop.set_number(&number)?;
    let e = laptop.check("call-journal").expect_err("the trial has one seat");
    story.say(format!("Typed correctly, laptop checks: {} — the trial's only seat is office-pc's.", refused(&e)));

    let coupons = admin(
        &http,
        "POST",
        &format!("{url}/v1/admin/coupons"),
        &token,
        json!({"product": "call-journal", "count": 1, "seats": 2, "features": ["recording"]}),
    )?;
    let coupon = coupons["coupons"][0].as_str().ok_or("a coupon was issued")?;
    let license = laptop.redeem(coupon)?;
    story.say(format!(
        "The customer buys a coupon and redeems it: a {} license for {} hosts, with {}.",
        license.kind.as_str(),
        license.seats,
        license.features.join(", ")
    ));
    let grant = laptop.check_features("call-journal", &["recording"])?;
    story.say(format!("laptop checks recording: bound to the {} license, licensed.", grant.kind.as_str()));
    let e = laptop.check_features("call-journal", &["analytics"]).expect_err("analytics is not in the edition");
    story.say(format!("laptop's program asks for analytics: {} — not in the edition bought.", refused(&e)));

    let upgrade = admin(
        &http,
        "POST",
        &format!("{url}/v1/admin/coupons"),
        &token,
        json!({"product": "call-journal", "count": 1, "kind": "upgrade", "features": ["analytics"]}),
    )?;
    let license = laptop.redeem(upgrade["coupons"][0].as_str().ok_or("an upgrade coupon was issued")?)?;
    let laptop_restarted = host(dir.path(), "laptop", &url, &key, 1)?;
    let grant = laptop_restarted.check_features("call-journal", &["analytics"])?;
    story.say(format!(
        "The customer redeems an upgrade coupon (the license now has {}); an hour later laptop's program \
         starts again and analytics is licensed (from the {}).",
        license.features.join(", "),
        if grant.source == Source::Server { "server" } else { "cache" }
    ));
    let office_later = host(dir.path(), "office-pc", &url, &key, 100)?;
    let grant = office_later.check("call-journal")?;
    story.say(format!(
        "Four days later office-pc refreshes its token and moves from the trial to the {} license.",
        grant.kind.as_str()
    ));

    let warehouse = host(dir.path(), "warehouse", &url, &key, 100)?;
    warehouse.set_number(&number)?;
    warehouse.check("call-journal")?;
    let reception = host(dir.path(), "reception", &url, &key, 100)?;
    reception.set_number(&number)?;
    let e = reception.check("call-journal").expect_err("every seat is bound");
    story.say(format!("warehouse takes the freed trial seat; reception checks: {}.", refused(&e)));

    let account: Value = http
        .get(format!("{url}/v1/account"))
        .header("Authorization", format!("Bearer {number}"))
        .call()?
        .body_mut()
        .read_json()?;
    let binding = account["bindings"]
        .as_array()
        .and_then(|bs| bs.iter().find(|b| b["host"]["hostname"] == "warehouse"))
        .and_then(|b| b["id"].as_str())
        .ok_or("warehouse is bound")?;
    http.post(format!("{url}/v1/bindings/{binding}/reset"))
        .header("Authorization", format!("Bearer {number}"))
        .send_json(json!({}))?;
    let grant = reception.check("call-journal")?;
    story.say(format!(
        "In the portal the customer resets warehouse's binding; reception now gets the {} seat.",
        grant.kind.as_str()
    ));

    let floating = admin(
        &http,
        "POST",
        &format!("{url}/v1/admin/coupons"),
        &token,
        json!({"product": "call-journal", "count": 1, "seats": 1, "model": "floating"}),
    )?;
    reception.redeem(floating["coupons"][0].as_str().ok_or("a floating coupon was issued")?)?;
    let designer = std::sync::Arc::new(host(dir.path(), "designer", &url, &key, 0)?);
    designer.set_number(&number)?;
    let session = designer.checkout("call-journal")?;
    let held = session.grant()?;
    story.say(format!(
        "The customer adds a floating license for one user at a time: designer's program checks out a \
         session (held until {}, heartbeated in the background).",
        held.lease_until.format("%H:%M UTC")
    ));
    let accountant = host(dir.path(), "accountant", &url, &key, 0)?;
    accountant.set_number(&number)?;
    let e = accountant.open_session("call-journal", None).expect_err("the floating seat is in use");
    story.say(format!("accountant's program asks for a session too: {} — the seat is in use.", refused(&e)));
    drop(session);
    let grant = accountant.open_session("call-journal", None)?;
    story.say(format!(
        "designer's program exits and releases its session; accountant gets the seat at once ({}).",
        grant.session_id.as_deref().unwrap_or("")
    ));

    // A 1C configuration cannot link Rust: on office-pc it asks the local agent service
    // (`licet-agent serve`, docs/service.md) over HTTP on loopback.
    let office_agent = std::sync::Arc::new(host(dir.path(), "office-pc", &url, &key, 100)?);
    let service = licet::agent::service::Service::bind(office_agent, "127.0.0.1:0")?;
    let local = format!("http://{}", service.local_addr()?);
    let (stop_service, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = std::thread::spawn(move || {
        service.run(async {
            let _ = stopped.await;
        })
    });
    let answer: Value = http.get(format!("{local}/v1/check?product=call-journal")).call()?.body_mut().read_json()?;
    story.say(format!(
        "office-pc's 1C module asks the local agent service: GET {local}/v1/check?product=call-journal → \
         ok: {}, {} license, from the {} (what `licet-agent --json check` prints).",
        answer["ok"],
        answer["kind"].as_str().unwrap_or("?"),
        answer["source"].as_str().unwrap_or("?")
    ));
    let _ = stop_service.send(());
    serving.join().map_err(|_| "the local service's thread panicked")??;

    server.stop()?;
    story.say("The license server goes down.");
    let laptop_offline = host(dir.path(), "laptop", &url, &key, 24 * 5)?;
    let grant = laptop_offline.check("call-journal")?;
    assert_eq!(grant.source, Source::Cache);
    story.say(format!(
        "Five days later laptop still passes from its cached token (offline until {}).",
        grant.lease_until.format("%Y-%m-%d %H:%M UTC")
    ));
    let laptop_too_late = host(dir.path(), "laptop", &url, &key, 24 * 8)?;
    let e = laptop_too_late.check("call-journal").expect_err("the lease is a week");
    story.say(format!("After eight days without the server: {} — time to reconnect.", refused(&e)));

    drop((office, office_later, laptop, laptop_restarted, laptop_offline, laptop_too_late, warehouse, reception));
    drop((designer, accountant));
    dir.close()?;
    println!("Done: the server is stopped and its temporary directory removed.");
    Ok(())
}

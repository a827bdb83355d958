//! A load generator: durable activations over HTTP from many concurrent clients.
//!
//! Starts a `licet-server` in-process on 127.0.0.1:0 (a temporary data directory) — or uses the
//! running servers named by `--urls` (the nodes of a cluster: client `i` talks to node
//! `i % n`) with the admin token `--admin` — registers one account per client with a perpetual
//! 1000-seat license, then has every client refresh its host's binding in a loop — each a
//! durable store commit and a freshly signed token. Prints throughput and latency percentiles.
//!
//! With `--mode heartbeat` every client heartbeats a floating session instead (SPEC §11); with
//! `--mode both` activations and heartbeats alternate, `--rounds` times each (default 3), and
//! the medians are compared — the same clients, server and load, in the same run.
//!
//! `cargo run --release --example loadgen -- [clients=64] [seconds=10] [--urls U1,U2 --admin TOKEN]
//! [--mode activate|heartbeat|both] [--rounds N]` (`benches/cluster.sh` runs it against one sled
//! node, PostgreSQL clusters and release 0.1.0.)

use std::time::{Duration, Instant};

use serde_json::{Value, json};

fn host(i: usize) -> Value {
    json!({"fingerprint": {"machine-id": format!("m{i:08}"), "mac": format!("a{i:08}"), "disk": format!("d{i:08}")},
           "hostname": format!("load-{i}"), "os": "Linux"})
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// What the clients send in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Activate,
    Heartbeat,
    Both,
}

/// One client's request, sent again and again.
#[derive(Clone)]
struct Request {
    path: String,
    bearer: Option<String>,
    body: Value,
}

/// Every client sends its request in a loop for `seconds` (client `i` to node `i % n`); prints
/// and returns the throughput.
fn phase(label: &str, nodes: &[String], requests: &[Request], seconds: u64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut refusals: Vec<String> = Vec::new();
    let mut latencies: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = requests
            .iter()
            .enumerate()
            .map(|(i, request)| {
                let url = format!("{}{}", nodes[i % nodes.len()], request.path);
                scope.spawn(move || {
                    let agent = http();
                    let (mut mine, mut refused) = (Vec::new(), Vec::new());
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let mut post = agent.post(&url);
                        if let Some(bearer) = &request.bearer {
                            post = post.header("Authorization", bearer);
                        }
                        match post.send_json(&request.body) {
                            Ok(mut r) if r.status().as_u16() == 200 => {
                                // Read to the end, so that the connection is kept alive.
                                let _ = r.body_mut().read_to_vec();
                                mine.push(t.elapsed());
                            }
                            // Counted and reported: a server under load may refuse (503 + Retry-After).
                            Ok(mut r) => {
                                let text = r.body_mut().read_to_string().unwrap_or_default();
                                refused.push(format!("{} {text}", r.status()));
                            }
                            Err(e) => panic!("a request failed: {e}"),
                        }
                    }
                    (mine, refused)
                })
            })
            .collect();
        let mut all = Vec::new();
        for handle in handles {
            let (mine, refused) = handle.join().expect("a client thread panicked");
            all.extend(mine);
            refusals.extend(refused);
        }
        all
    });
    if !refusals.is_empty() {
        println!("{} {label} refused, e.g. {}", refusals.len(), refusals[0]);
    }
    let elapsed = start.elapsed();
    latencies.sort();
    if latencies.is_empty() {
        println!("no {label} succeeded");
        return 0.0;
    }
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "{} durable {label} in {:.1} s: {rate:.0}/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
    );
    rate
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut positional, mut urls, mut admin, mut mode, mut rounds) = (Vec::new(), None, None, Mode::Activate, 3);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--urls" => urls = args.next(),
            "--admin" => admin = args.next(),
            "--mode" => {
                mode = match args.next().as_deref() {
                    Some("activate") => Mode::Activate,
                    Some("heartbeat") => Mode::Heartbeat,
                    Some("both") => Mode::Both,
                    other => return Err(format!("--mode activate|heartbeat|both, not {other:?}").into()),
                }
            }
            "--rounds" => rounds = args.next().ok_or("--rounds N")?.parse()?,
            _ => positional.push(arg),
        }
    }
    let clients: usize = positional.first().map(|a| a.parse()).transpose()?.unwrap_or(64);
    let seconds: u64 = positional.get(1).map(|a| a.parse()).transpose()?.unwrap_or(10);

    let dir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let (nodes, admin, running): (Vec<String>, String, _) = match urls {
        Some(urls) => {
            let admin = admin.ok_or("--urls needs --admin TOKEN")?;
            (urls.split(',').map(str::to_owned).collect(), admin, None)
        }
        None => {
            let mut config = licet::server::ServerConfig::new(dir.path().join("data"));
            config.listen = "127.0.0.1:0".into();
            config.rate_limit = 0;
            let running = runtime.block_on(licet::server::start(config))?;
            let admin =
                running.initialised.as_ref().ok_or("a fresh data directory is initialised")?.admin_token.clone();
            (vec![running.url.clone()], admin, Some(running))
        }
    };
    let url = nodes[0].clone();
    let agent = http();
    let auth = format!("Bearer {admin}");
    agent.put(format!("{url}/v1/admin/products/call-journal")).header("Authorization", &auth).send_json(json!({}))?;

    let mut numbers = Vec::new();
    let coupons: Value = agent
        .post(format!("{url}/v1/admin/coupons"))
        .header("Authorization", &auth)
        .send_json(json!({"product": "call-journal", "count": clients, "seats": 1000}))?
        .body_mut()
        .read_json()?;
    for i in 0..clients {
        let reg: Value = agent
            .post(format!("{url}/v1/register"))
            .send_json(
                json!({"email": format!("load{i}@example.com"), "organization": "Load", "product": "call-journal",
                              "host": host(i)}),
            )?
            .body_mut()
            .read_json()?;
        let number = reg["registration_number"].as_str().ok_or("registered")?.to_owned();
        agent
            .post(format!("{url}/v1/redeem"))
            .send_json(json!({"registration_number": number, "coupon": coupons["coupons"][i]}))?;
        numbers.push(number);
    }
    // Each client's requests: a refresh of its host's binding, or a heartbeat of its floating
    // session (checked out here, on a second license of model floating).
    let activations: Vec<Request> = numbers
        .iter()
        .enumerate()
        .map(|(i, number)| Request {
            path: "/v1/activate".into(),
            bearer: None,
            body: json!({"registration_number": number, "product": "call-journal", "host": host(i)}),
        })
        .collect();
    let mut heartbeats = Vec::new();
    if mode != Mode::Activate {
        let floating: Value = agent
            .post(format!("{url}/v1/admin/coupons"))
            .header("Authorization", &auth)
            .send_json(json!({"product": "call-journal", "count": clients, "seats": 1000, "model": "floating"}))?
            .body_mut()
            .read_json()?;
        for (i, number) in numbers.iter().enumerate() {
            agent
                .post(format!("{url}/v1/redeem"))
                .send_json(json!({"registration_number": number, "coupon": floating["coupons"][i]}))?;
            let session: Value = agent
                .post(format!("{url}/v1/sessions"))
                .send_json(json!({"registration_number": number, "product": "call-journal", "host": host(i)}))?
                .body_mut()
                .read_json()?;
            let id = session["session_id"].as_str().ok_or("a session was checked out")?;
            heartbeats.push(Request {
                path: format!("/v1/sessions/{id}/heartbeat"),
                bearer: Some(format!("Bearer {number}")),
                body: json!({}),
            });
        }
    }
    let phases: Vec<(&str, &[Request])> = match mode {
        Mode::Activate => vec![("activations", &activations)],
        Mode::Heartbeat => vec![("heartbeats", &heartbeats)],
        // Interleaved, so that a slow moment of a noisy machine does not fall on one kind only.
        Mode::Both => [("activations", &activations[..]), ("heartbeats", &heartbeats[..])].repeat(rounds),
    };
    let mut results: Vec<(&str, f64)> = Vec::new();
    for (label, requests) in phases {
        println!("{clients} clients, {seconds} s of {label} against {}", nodes.join(", "));
        let rate = phase(label, &nodes, requests, seconds);
        results.push((label, rate));
    }
    if mode == Mode::Both {
        let median = |label: &str| {
            let mut rates: Vec<f64> = results.iter().filter(|(l, _)| *l == label).map(|(_, r)| *r).collect();
            rates.sort_by(f64::total_cmp);
            rates[rates.len() / 2]
        };
        let (a, h) = (median("activations"), median("heartbeats"));
        println!(
            "medians of {rounds} rounds: activations {a:.0}/s, heartbeats {h:.0}/s; heartbeat/activation {:.2}",
            h / a
        );
    }
    if let Some(running) = running {
        running.shutdown();
        runtime.block_on(running.wait())?;
    }
    Ok(())
}

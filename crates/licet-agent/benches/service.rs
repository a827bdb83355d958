//! A license check through the local service (SPEC §12) — a program's keep-alive HTTP GET on
//! loopback to `licet-agent serve`, its one log line formatted — beside the in-process hot check
//! of the same agent, in one run: medians and 99th percentiles of single calls. Goal: the
//! service's p99 ≤ 1 ms.
//!
//! `cargo bench -p licet-agent --bench service` (the quick mode CI runs, with criterion's
//! `--measurement-time`, makes fewer calls).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use licet_agent::service::Service;
use licet_agent::{Agent, AgentConfig};
use licet_core::Fingerprint;

mod common;
use common::PRODUCT;

/// Caches in `dir` a token for the fingerprint returned; the trusted key.
fn setup(dir: &std::path::Path) -> (String, Fingerprint) {
    let fingerprint = Fingerprint::new([("machine-id", "m"), ("mac", "a"), ("disk", "d")]).unwrap();
    let (key, _, _) = common::cache_token(dir, &fingerprint, &[9; 32]);
    (key, fingerprint)
}

/// Median and 99th percentile of `calls` timed one by one.
fn percentiles(calls: usize, mut call: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..calls)
        .map(|_| {
            let start = Instant::now();
            call();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    (times[calls / 2], times[calls * 99 / 100])
}

fn main() {
    let quick = std::env::args().any(|a| a == "--measurement-time");
    let calls = if quick { 1_000 } else { 50_000 };
    let tmp = tempfile::tempdir().unwrap();
    let (key, fingerprint) = setup(tmp.path());
    let mut config = AgentConfig::new("http://127.0.0.1:9", tmp.path()).trust(key);
    config.fingerprint = Some(fingerprint);
    config.hostname = Some("bench".into());
    let agent = Arc::new(Agent::new(config).unwrap());
    // As `licet-agent serve` logs: one formatted line per request (here into nothing).
    let _ = tracing_subscriber::fmt().with_writer(std::io::sink).with_ansi(false).try_init();

    let service = Service::bind(agent.clone(), "127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/check?product={PRODUCT}", service.local_addr().unwrap());
    std::thread::spawn(move || service.run(std::future::pending()));
    let http: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let get = || {
        let mut answer = http.get(&url).call().unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        black_box(answer.body_mut().read_to_string().unwrap());
    };
    for _ in 0..calls / 10 {
        get();
    }
    for _ in 0..calls / 10 {
        black_box(agent.check(PRODUCT).unwrap());
    }

    let (hot_median, hot_p99) = percentiles(calls, || {
        black_box(agent.check(black_box(PRODUCT)).unwrap());
    });
    let (http_median, http_p99) = percentiles(calls, get);
    // The same request from a minimal client (what a 1C platform or libcurl sends), on its own
    // keep-alive connection: the service's share without ureq's.
    let addr = url.trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let request = format!("GET /v1/check?product={PRODUCT} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut buffer = vec![0u8; 4096];
    let mut raw = || {
        use std::io::{Read, Write};
        stream.write_all(request.as_bytes()).unwrap();
        let mut got = 0;
        loop {
            got += stream.read(&mut buffer[got..]).unwrap();
            let text = &buffer[..got];
            if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = std::str::from_utf8(&text[..end]).unwrap().to_ascii_lowercase();
                let length: usize =
                    head.split("content-length: ").nth(1).unwrap().split("\r\n").next().unwrap().parse().unwrap();
                if got >= end + 4 + length {
                    break;
                }
            }
        }
    };
    for _ in 0..calls / 10 {
        raw();
    }
    let (raw_median, raw_p99) = percentiles(calls, raw);
    // The floor: a loopback round trip of as many bytes, to a thread that echoes them.
    let echo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut peer, _) = echo.accept().unwrap();
        peer.set_nodelay(true).unwrap();
        let mut buffer = [0u8; 512];
        while let Ok(n @ 1..) = peer.read(&mut buffer) {
            if peer.write_all(&buffer[..n]).is_err() {
                return;
            }
        }
    });
    let mut stream = std::net::TcpStream::connect(echo_addr).unwrap();
    stream.set_nodelay(true).unwrap();
    let mut echoed = vec![0u8; request.len()];
    let mut round_trip = || {
        use std::io::{Read, Write};
        stream.write_all(request.as_bytes()).unwrap();
        stream.read_exact(&mut echoed).unwrap();
    };
    for _ in 0..calls / 10 {
        round_trip();
    }
    let (echo_median, echo_p99) = percentiles(calls, round_trip);
    println!("service/check: {calls} calls each, one by one, same run");
    println!("| path | median | p99 |");
    println!("|---|---|---|");
    println!("| in-process hot check | {hot_median:.2?} | {hot_p99:.2?} |");
    println!("| baseline: loopback TCP round trip to an echoing thread | {echo_median:.2?} | {echo_p99:.2?} |");
    println!("| local service, keep-alive GET /v1/check (ureq) | {http_median:.2?} | {http_p99:.2?} (goal ≤ 1 ms) |");
    println!(
        "| local service, keep-alive GET /v1/check (minimal client) | {raw_median:.2?} | {raw_p99:.2?} (goal ≤ 1 ms) |"
    );
    println!(
        "service ÷ in-process: median {:.0}×, p99 {:.0}×",
        http_median.as_secs_f64() / hot_median.as_secs_f64(),
        http_p99.as_secs_f64() / hot_p99.as_secs_f64()
    );
}

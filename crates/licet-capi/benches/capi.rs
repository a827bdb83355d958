//! A license check through the C ABI beside the same check in-process, in one run: the agent's
//! hot check (token verified earlier in the process) called from Rust, then `licet_check`
//! without JSON (goal: at most 2× the in-process check) and with JSON. Both agents measure this
//! machine as a deployed one does; the token is issued for it by the bench's own key.
#![allow(missing_docs)]

use std::ffi::{CString, c_char};
use std::hint::black_box;
use std::ptr;

use criterion::{Criterion, criterion_group, criterion_main};
use licet_agent::{Agent, AgentConfig};

#[path = "../../licet-agent/benches/common/mod.rs"]
mod common;
use common::PRODUCT;

const SERVER: &str = "http://127.0.0.1:9";

/// Caches, in `dir`, a token of this machine (as the agent measures it) issued an hour ago.
fn setup(dir: &std::path::Path) -> String {
    let key = licet_core::TokenSigner::from_secret(&[7; 32]).public_key_hex();
    let measured = Agent::new(AgentConfig::new(SERVER, dir).trust(&key)).unwrap();
    common::cache_token(dir, measured.fingerprint(), &[7; 32]).0
}

fn capi(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let key = setup(tmp.path());

    let mut g = c.benchmark_group("capi");
    let agent = Agent::new(AgentConfig::new(SERVER, tmp.path()).trust(&key)).unwrap();
    assert_eq!(agent.check(PRODUCT).unwrap().source, licet_agent::Source::Cache);
    g.bench_function("in_process_hot_check", |b| b.iter(|| agent.check(black_box(PRODUCT)).unwrap()));

    let config = serde_json::json!({"servers": SERVER, "data_dir": tmp.path(), "trusted_keys": [key]});
    let config = CString::new(config.to_string()).unwrap();
    let product = CString::new(PRODUCT).unwrap();
    // SAFETY: valid NUL-terminated strings; the agent is freed once, below.
    let c_agent = unsafe { licet_capi::licet_agent_new(config.as_ptr()) };
    assert!(!c_agent.is_null());
    // SAFETY: a live agent and a valid product; no JSON asked.
    assert_eq!(unsafe { licet_capi::licet_check(c_agent, product.as_ptr(), ptr::null(), ptr::null_mut()) }, 0);
    g.bench_function("licet_check", |b| {
        b.iter(|| {
            // SAFETY: as above.
            let code =
                unsafe { licet_capi::licet_check(c_agent, black_box(product.as_ptr()), ptr::null(), ptr::null_mut()) };
            assert_eq!(code, 0);
        })
    });
    g.bench_function("licet_check_json", |b| {
        b.iter(|| {
            let mut json: *mut c_char = ptr::null_mut();
            // SAFETY: as above; the JSON is freed by the library that made it.
            unsafe {
                assert_eq!(licet_capi::licet_check(c_agent, product.as_ptr(), ptr::null(), &mut json), 0);
                licet_capi::licet_string_free(black_box(json));
            }
        })
    });
    g.finish();
    // SAFETY: made by licet_agent_new, freed once.
    unsafe { licet_capi::licet_agent_free(c_agent) };
}

criterion_group!(benches, capi);
criterion_main!(benches);

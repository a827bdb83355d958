//! The licet agent's C ABI (SPEC §12): a shared library and the header `licet.h`, for programs
//! that cannot link Rust — C and C++ directly, Python through `ctypes`, C# through P/Invoke, and
//! so on.
//!
//! ```c
//! licet_agent *agent = licet_agent_new("{\"servers\":\"https://lic.example.com\","
//!                                      "\"data_dir\":\"/var/lib/myapp/licet\","
//!                                      "\"trusted_keys\":[\"89ca1ac1…\"]}");
//! if (agent && licet_check(agent, "call-journal", NULL, NULL) == 0) {
//!     /* licensed on this host */
//! }
//! licet_agent_free(agent);
//! ```
//!
//! Every function returns 0 when it succeeded or the SPEC §4 code of its refusal, and writes the
//! command line's `--json` object to `*json` only when `json` is not `NULL` (free it with
//! [`licet_string_free`], and do not change it: the library frees what it made). Out-pointers
//! are always written, `NULL` where there is nothing to say. Nothing here unwinds into C: a panic is caught and answered as 1099.
//! Invalid arguments (a `NULL` where a string is needed, text that is not UTF-8) are 1001. An
//! agent may be used from several threads at once; it is freed once, with [`licet_agent_free`].

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use licet_agent::request::refusal_json;
use licet_agent::{Agent, AgentConfig, Error, Request};
use serde::Deserialize;
use serde_json::Value;

/// An agent: its configuration, its cache, the verified tokens in memory. Opaque to C, where it
/// is `licet_agent`.
pub struct LicetAgent {
    agent: Arc<Agent>,
}

/// The configuration `licet_agent_new` takes, as JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// One URL, several separated by commas, or a list.
    servers: Servers,
    data_dir: String,
    #[serde(default)]
    trusted_keys: Vec<String>,
    vendor: Option<String>,
    ca_cert: Option<String>,
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Servers {
    One(String),
    Many(Vec<String>),
}

thread_local! {
    static LAST_ERROR: RefCell<Option<Value>> = const { RefCell::new(None) };
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::Local(licet_core::Error::InvalidInput { field, reason: reason.into() })
}

/// The text `ptr` points at; 1001 when it is `NULL` or not UTF-8.
///
/// # Safety
/// `ptr` is `NULL` or points at a NUL-terminated string that outlives `'a`.
unsafe fn text<'a>(ptr: *const c_char, field: &'static str) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(invalid(field, "NULL"));
    }
    // SAFETY: not NULL, and NUL-terminated and alive by the caller's promise.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| invalid(field, "not UTF-8"))
}

/// [`text`], with `NULL` meaning none.
///
/// # Safety
/// As [`text`].
unsafe fn optional_text<'a>(ptr: *const c_char, field: &'static str) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller's promise, passed on.
    unsafe { text(ptr, field) }.map(Some)
}

/// A string C frees with [`licet_string_free`]; `NULL` if it holds a NUL (never, for JSON).
fn c_string(text: String) -> *mut c_char {
    CString::new(text).map_or(std::ptr::null_mut(), CString::into_raw)
}

/// Stores `value` at `out` if `out` is not `NULL` (`NULL` for an empty value).
///
/// # Safety
/// `out` is `NULL` or valid for writing one pointer.
unsafe fn put(out: *mut *mut c_char, value: impl FnOnce() -> String) {
    if !out.is_null() {
        let value = value();
        let value = if value.is_empty() { std::ptr::null_mut() } else { c_string(value) };
        // SAFETY: not NULL, and writable by the caller's promise.
        unsafe { *out = value };
    }
}

fn code_of(e: &Error) -> c_int {
    c_int::from(e.code().number())
}

const BUG: &str = "the licet library failed unexpectedly (a bug: please report it)";

/// Runs `body` without letting a panic unwind into C: a panic is 1099.
fn guarded<T>(body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| Err(Error::Internal(BUG.into())))
}

/// The agent behind `agent`; 1001 when it is `NULL`.
///
/// # Safety
/// `agent` is `NULL` or came from [`licet_agent_new`] and was not freed.
unsafe fn agent_of<'a>(agent: *const LicetAgent) -> Result<&'a Agent, Error> {
    // SAFETY: NULL or a live agent, by the caller's promise.
    unsafe { agent.as_ref() }.map(|a| &*a.agent).ok_or_else(|| invalid("agent", "NULL"))
}

/// Carries out a request made by `make` (which reads the arguments) and answers its code,
/// writing the JSON object to `json` when asked (`NULL` there if even that failed).
///
/// # Safety
/// `json` is `NULL` or valid for writing one pointer.
unsafe fn answer(json: *mut *mut c_char, make: impl FnOnce() -> Result<Value, Error>) -> c_int {
    // SAFETY: the caller's promise, passed on.
    unsafe { put(json, String::new) };
    let outcome = guarded(make);
    let code = outcome.as_ref().map_or_else(code_of, |_| 0);
    let text = catch_unwind(AssertUnwindSafe(|| outcome.unwrap_or_else(|e| refusal_json(&e)).to_string()));
    if let Ok(text) = text {
        // SAFETY: the caller's promise, passed on.
        unsafe { put(json, || text) };
    } else if !json.is_null() {
        // SAFETY: as above.
        unsafe { *json = std::ptr::null_mut() };
    }
    code
}

/// Makes an agent from a JSON configuration:
/// `{"servers": "https://a,https://b" or ["…"], "data_dir": "…", "trusted_keys": ["<64 hex>", …],
/// "vendor"?: "…", "ca_cert"?: "<PEM file>", "user"?: "…"}`. No network yet. `NULL` when the
/// configuration is wrong or the data directory unusable: [`licet_last_error`] says why.
///
/// # Safety
/// `config_json` is `NULL` or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_agent_new(config_json: *const c_char) -> *mut LicetAgent {
    let made = guarded(|| {
        // SAFETY: the caller's promise.
        let text = unsafe { text(config_json, "config_json") }?;
        let config: Config = serde_json::from_str(text).map_err(|e| invalid("config_json", e.to_string()))?;
        let servers = match config.servers {
            Servers::One(list) => list,
            Servers::Many(list) => list.join(","),
        };
        let mut settings = AgentConfig::new(servers, config.data_dir);
        settings.trusted_keys = config.trusted_keys;
        settings.vendor = config.vendor;
        settings.ca_cert = config.ca_cert.map(Into::into);
        settings.user = config.user;
        Agent::new(settings)
    });
    let error = made.as_ref().err().map(refusal_json);
    // A thread being torn down has no thread-locals left: the error is then not kept.
    let _ = LAST_ERROR.try_with(|last| last.replace(error));
    match made {
        Ok(agent) => Box::into_raw(Box::new(LicetAgent { agent: Arc::new(agent) })),
        Err(_) => std::ptr::null_mut(),
    }
}

/// Why the last [`licet_agent_new`] on this thread returned `NULL`, as JSON
/// (`{"ok":false,"code":…,"name":…,"message":…}`), or `NULL` if it did not. Free it with
/// [`licet_string_free`].
#[unsafe(no_mangle)]
pub extern "C" fn licet_last_error() -> *mut c_char {
    let text = catch_unwind(|| LAST_ERROR.try_with(|last| last.borrow().as_ref().map(Value::to_string)));
    match text {
        Ok(Ok(Some(text))) => c_string(text),
        _ => std::ptr::null_mut(),
    }
}

/// Checks the license of `product` on this host — from the verified token in memory while it is
/// fresh, else from the server, else from the cache (SPEC §3) — passing only if it grants
/// `feature` (`NULL`: none asked). 0 when licensed, else the code (2009 for a missing feature).
///
/// # Safety
/// `agent` came from [`licet_agent_new`] and was not freed; `product` and `feature` are `NULL`
/// or NUL-terminated strings; `json` is `NULL` or valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_check(
    agent: *const LicetAgent,
    product: *const c_char,
    feature: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller's promises.
    unsafe {
        answer(json, || {
            let (agent, product, feature) =
                (agent_of(agent)?, text(product, "product")?, optional_text(feature, "feature")?);
            if json.is_null() {
                // The hot path: no JSON made.
                agent.check_features(product, feature.as_slice())?;
                return Ok(Value::Null);
            }
            let features = feature.into_iter().map(str::to_owned).collect();
            Ok(agent.perform(Request::Check { product: product.to_owned(), features })?.json())
        })
    }
}

/// Enters the account's registration number on this host: checked for typos here (1002 without
/// any network call), then with the server; stored only when it knows it. The JSON lists the
/// account's licenses.
///
/// # Safety
/// As [`licet_check`], `number` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_set_number(
    agent: *const LicetAgent,
    number: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller's promises.
    unsafe {
        answer(json, || {
            let (agent, number) = (agent_of(agent)?, text(number, "number")?);
            Ok(agent.perform(Request::SetNumber { number: number.to_owned(), offline: false })?.json())
        })
    }
}

/// Checks out a session of a floating license of `product` for `user` (`NULL`: the configured
/// one), holding a seat until it is released or its lease passes — the caller heartbeats it
/// with [`licet_heartbeat`] before then (the JSON's `lease_until`). Writes the session's id to
/// `*session_id` (free it with [`licet_string_free`]), `NULL` when the checkout failed; 1051
/// when every seat is in use, 1001 when `session_id` and `json` are the same pointer.
///
/// # Safety
/// As [`licet_check`]; `user` is `NULL` or a NUL-terminated string; `session_id` is `NULL` or
/// valid for writing one pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_checkout(
    agent: *const LicetAgent,
    product: *const c_char,
    user: *const c_char,
    session_id: *mut *mut c_char,
    json: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { put(session_id, String::new) };
    let mut held = None;
    // SAFETY: the caller's promises.
    let code = unsafe {
        answer(json, || {
            if !session_id.is_null() && session_id == json {
                return Err(invalid("session_id", "the same pointer as json"));
            }
            let (agent, product, user) = (agent_of(agent)?, text(product, "product")?, optional_text(user, "user")?);
            let user = user.map(str::to_owned);
            let answer = agent.perform(Request::Checkout { product: product.to_owned(), borrow_hours: None, user })?;
            let id = answer.get("session_id").and_then(Value::as_str);
            held = Some(id.ok_or_else(|| Error::Internal("the server's token names no session".into()))?.to_owned());
            Ok(answer.json())
        })
    };
    if let (0, Some(id)) = (code, held) {
        // SAFETY: the caller's promise.
        unsafe { put(session_id, || id) };
    }
    code
}

/// Extends floating session `session_id`, which this agent checked out: 1055 when it has died
/// (then check out a new one).
///
/// # Safety
/// As [`licet_check`], `session_id` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_heartbeat(
    agent: *const LicetAgent,
    session_id: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller's promises.
    unsafe { session_command(agent, session_id, json, |session| Request::Heartbeat { session }) }
}

/// Carries out the request `make` builds of floating session `session_id`.
///
/// # Safety
/// As [`licet_heartbeat`].
unsafe fn session_command(
    agent: *const LicetAgent,
    session_id: *const c_char,
    json: *mut *mut c_char,
    make: fn(String) -> Request,
) -> c_int {
    // SAFETY: the caller's promises.
    unsafe {
        answer(json, || {
            let (agent, session) = (agent_of(agent)?, text(session_id, "session_id")?);
            Ok(agent.perform(make(session.to_owned()))?.json())
        })
    }
}

/// Ends floating session `session_id`, freeing its seat at once (one the server no longer
/// knows counts as released).
///
/// # Safety
/// As [`licet_heartbeat`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_release(
    agent: *const LicetAgent,
    session_id: *const c_char,
    json: *mut *mut c_char,
) -> c_int {
    // SAFETY: the caller's promises.
    unsafe { session_command(agent, session_id, json, |session| Request::Release { session }) }
}

/// The number entered (masked) and the offline verdict on each cached license, as the command
/// line's `status --json` says them. No network.
///
/// # Safety
/// As [`licet_check`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_status(agent: *const LicetAgent, json: *mut *mut c_char) -> c_int {
    // SAFETY: the caller's promises.
    unsafe { answer(json, || Ok(agent_of(agent)?.perform(Request::Status)?.json())) }
}

/// Frees a string this library returned; `NULL` is ignored.
///
/// # Safety
/// `text` is `NULL` or a string from this library not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_string_free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: made by CString::into_raw in this library and not freed, by the caller's promise.
        drop(unsafe { CString::from_raw(text) });
    }
}

/// Frees an agent; `NULL` is ignored. Its cache stays on disk for the next one.
///
/// # Safety
/// `agent` is `NULL` or came from [`licet_agent_new`], is not freed yet and is no longer in use
/// on any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn licet_agent_free(agent: *mut LicetAgent) {
    if !agent.is_null() {
        // SAFETY: made by Box::into_raw in licet_agent_new and not freed, by the caller's promise.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(agent) })));
    }
}

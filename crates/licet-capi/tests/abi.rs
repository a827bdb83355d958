//! The C ABI's answers to misuse, called as C calls it: a `NULL` agent or product, text that is
//! not UTF-8, a configuration that is not JSON, out-pointers on failure, the session id and the
//! JSON given the same pointer. None needs a server (port 9 answers nobody).

use std::ffi::{CStr, CString, c_char};
use std::ptr;

use licet_capi::*;

fn config(dir: &std::path::Path) -> CString {
    let json = serde_json::json!({"servers": ["http://127.0.0.1:9"], "data_dir": dir, "trusted_keys": []});
    CString::new(json.to_string()).unwrap()
}

/// The JSON at `ptr`, freed.
fn take(ptr: *mut c_char) -> serde_json::Value {
    assert!(!ptr.is_null());
    // SAFETY: a string from the library, freed once, here.
    let value = serde_json::from_str(unsafe { CStr::from_ptr(ptr) }.to_str().unwrap()).unwrap();
    // SAFETY: as above.
    unsafe { licet_string_free(ptr) };
    value
}

#[test]
fn misuse_is_answered_with_codes_and_out_pointers_are_always_written() {
    let tmp = tempfile::tempdir().unwrap();
    let product = CString::new("call-journal").unwrap();

    // A configuration that is not JSON: NULL, and the reason on this thread.
    let bad = CString::new("{servers: nowhere").unwrap();
    // SAFETY: valid NUL-terminated strings; what the library returns is freed by it.
    unsafe {
        assert!(licet_agent_new(bad.as_ptr()).is_null());
        let why = take(licet_last_error());
        assert_eq!((why["ok"].clone(), why["code"].clone()), (serde_json::json!(false), serde_json::json!(1001)));
        assert!(licet_agent_new(ptr::null()).is_null());
        let unknown =
            CString::new(r#"{"servers":"http://127.0.0.1:9","data_dir":"/tmp/x","trusted_kyes":[]}"#).unwrap();
        assert!(licet_agent_new(unknown.as_ptr()).is_null(), "a misspelt field is refused");
        assert_eq!(take(licet_last_error())["code"], 1001);
    }

    let config = config(tmp.path());
    // SAFETY: as above; the agent is freed once, at the end.
    unsafe {
        let agent = licet_agent_new(config.as_ptr());
        assert!(!agent.is_null());
        assert!(licet_last_error().is_null(), "a success clears the last error");

        // NULL agent, NULL product, not UTF-8: 1001, with JSON when asked.
        let mut json: *mut c_char = ptr::null_mut();
        assert_eq!(licet_check(ptr::null(), product.as_ptr(), ptr::null(), &mut json), 1001);
        assert_eq!(take(json)["code"], 1001);
        assert_eq!(licet_check(agent, ptr::null(), ptr::null(), ptr::null_mut()), 1001);
        let latin1 = CString::new(vec![b'c', 0xe9, b'j']).unwrap();
        assert_eq!(licet_check(agent, latin1.as_ptr(), ptr::null(), ptr::null_mut()), 1001);
        assert_eq!(licet_set_number(agent, ptr::null(), ptr::null_mut()), 1001);

        // No number entered: 3005; a typo in a number: 1002 without any server.
        assert_eq!(licet_check(agent, product.as_ptr(), ptr::null(), ptr::null_mut()), 3005);
        let typo = CString::new("LICET-12345-12345-12345-12345").unwrap();
        assert_eq!(licet_set_number(agent, typo.as_ptr(), &mut json), 1002);
        assert_eq!(take(json)["name"], "invalid_registration_number");

        // A failed checkout writes NULL to the session id, whatever was there before.
        let mut session: *mut c_char = ptr::dangling_mut();
        assert_eq!(licet_checkout(agent, product.as_ptr(), ptr::null(), &mut session, ptr::null_mut()), 3005);
        assert!(session.is_null());
        let mut both: *mut c_char = ptr::null_mut();
        let alias: *mut *mut c_char = &mut both;
        assert_eq!(licet_checkout(agent, product.as_ptr(), ptr::null(), alias, alias), 1001);
        assert_eq!(take(both)["code"], 1001);
        assert_eq!(licet_heartbeat(agent, ptr::null(), ptr::null_mut()), 1001);
        let unknown = CString::new("ses_AAAAAAAAAAAAAAAA").unwrap();
        assert_eq!(licet_release(agent, unknown.as_ptr(), ptr::null_mut()), 3005);

        // Status works offline.
        assert_eq!(licet_status(agent, &mut json), 0);
        let status = take(json);
        assert_eq!(
            (status["ok"].clone(), status["registration_number"].clone()),
            (serde_json::json!(true), serde_json::Value::Null)
        );

        licet_string_free(ptr::null_mut());
        licet_agent_free(agent);
        licet_agent_free(ptr::null_mut());
    }
}

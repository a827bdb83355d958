//! Every JSON body the server accepts: arbitrary bytes give a SPEC code, never a panic, and a
//! refusal is always 1001 (the rest of the validation happens in the ledger).
#![no_main]

use libfuzzer_sys::fuzz_target;
use licet_core::Code;
use licet_server::{Endpoint, check_body};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let endpoint = Endpoint::ALL[selector as usize % Endpoint::ALL.len()];
    if let Err(code) = check_body(endpoint, body) {
        assert_eq!(code, Code::InvalidRequest);
    }
});

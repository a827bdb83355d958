//! Token decoding and verification: arbitrary text, and arbitrary bytes in the token's base64
//! form (so the fuzzer reaches the claims decoder), never panic and never verify unless signed.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use licet_core::{Code, Fingerprint, TokenSigner, TrustedKeys};

fuzz_target!(|data: &[u8]| {
    let signer = TokenSigner::from_secret(&[7u8; 32]);
    let mut keys = TrustedKeys::new();
    keys.add(signer.public_key());
    let host = Fingerprint::new([("a", "1"), ("b", "2"), ("c", "3")]).unwrap().digest();
    let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    for text in [String::from_utf8_lossy(data).into_owned(), URL_SAFE_NO_PAD.encode(data)] {
        if let Ok(verified) = keys.verify(&text) {
            // Only a token this key signed can verify: re-signing its claims gives the same text.
            assert_eq!(signer.sign(verified.claims(), verified.format()), verified.as_str());
            let _ = verified.judge("call-journal", &host, now, None);
        }
        // Nor can a refusal proof be forged.
        let refusal = keys.verify_refusal(&text, Code::NoFreeLicense, "call-journal", &host, "LICET-0", &[0; 16]);
        assert!(refusal.is_err(), "a forged refusal verified");
    }
});

//! Stored bytes of any format — this release's records, release 0.1.0's, the agent's cache —
//! never panic on decoding, and whatever decodes as this release's record encodes back to it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use licet_core::agent::Memory;
use licet_core::record::legacy;
use licet_core::{Record, RecordKey, codec};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let key = match which % 6 {
        0 => RecordKey::Product("p".into()),
        1 => RecordKey::Account("acc_1".into()),
        2 => RecordKey::Email("a@example.com".into()),
        3 => RecordKey::Number("0".repeat(20)),
        4 => RecordKey::Coupon("0".repeat(20)),
        _ => RecordKey::HostComponent([0; 16]),
    };
    if let Ok(record) = Record::decode(&key, bytes) {
        assert!(record.fits(&key));
        let again = Record::decode(&key, &record.encode()).expect("an encoded record decodes");
        assert_eq!(again, record);
    }
    if let Ok(record) = legacy::decode(&key, bytes) {
        assert!(record.fits(&key));
    }
    let _ = codec::unpack::<Memory>(bytes);
});

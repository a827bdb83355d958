//! Key parsing — registration numbers, coupons, air-gapped activation requests: arbitrary input
//! never panics, and whatever parses prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use licet_core::{CouponCode, OfflineRequest, RegistrationNumber};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(number) = RegistrationNumber::parse(&text) {
        assert_eq!(RegistrationNumber::parse(&number.to_string()).unwrap(), number);
        assert!(number.masked().ends_with(&number.body()[15..]));
    }
    if let Ok(coupon) = CouponCode::parse(&text) {
        assert_eq!(CouponCode::parse(&coupon.to_string()).unwrap(), coupon);
        assert!(RegistrationNumber::parse(&coupon.to_string()).is_err());
    }
    if let Ok(request) = OfflineRequest::decode(&text) {
        assert_eq!(OfflineRequest::decode(&request.encode()).unwrap(), request);
    }
});

//! The one table of SPEC §4 codes, and the core's error type.
//!
//! Every crate of licet reports errors through [`Code`]: the number, the snake_case name and the
//! default message come from the single `codes!` table below, so they can never drift apart.

use std::fmt;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $num:literal, $name:literal, $status:literal,
        credential: $credential:literal, definitive: $definitive:literal,
        in_0_1_0: $old:literal, $msg:literal; )*) => {
        /// A stable numeric error code with its snake_case name (SPEC §4).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable number, e.g. `1051`.
            pub const fn number(self) -> u16 {
                match self { $(Code::$variant => $num,)* }
            }

            /// The stable snake_case name, e.g. `no_free_license`.
            pub const fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// A default human-readable message.
            pub const fn message(self) -> &'static str {
                match self { $(Code::$variant => $msg,)* }
            }

            /// The HTTP status that carries this code: the server's answer, or for the agent's
            /// own codes the local agent service's (403, refused).
            pub const fn http_status(self) -> u16 {
                match self { $(Code::$variant => $status,)* }
            }

            /// Whether the answer means a credential (registration number, coupon, admin token,
            /// portal login) was wrong: such answers count toward a client's rate limit.
            pub const fn is_failed_credential(self) -> bool {
                match self { $(Code::$variant => $credential,)* }
            }

            /// Whether the server's answer settles the license check for good, so that the
            /// agent deletes its cached token — once the refusal is proven signed (SPEC §3).
            /// Every other refusal is, for the agent, a server fault.
            pub const fn is_definitive(self) -> bool {
                match self { $(Code::$variant => $definitive,)* }
            }

            /// Whether release 0.1.0 knew it. Its agents read a code they do not know as a server
            /// fault ("the server cannot be reached"), so a server answers their requests with
            /// 1001 instead, naming the real code in the message.
            pub const fn known_to_0_1_0(self) -> bool {
                match self { $(Code::$variant => $old,)* }
            }

            /// The code with this number, if there is one.
            pub fn from_number(number: u16) -> Option<Code> {
                match number { $($num => Some(Code::$variant),)* _ => None }
            }
        }
    };
}

// One row per code: variant = number, name, HTTP status, whether it counts as a failed credential
// (rate limits), whether it is a definitive answer to a license check (the agent deletes its token
// once the refusal is proven signed), whether release 0.1.0 knew it, and the default message. Adapters read the meaning of a
// code only from here, so a new code cannot fall into a default.
codes! {
    /// Malformed JSON, a missing or oversized field, a bad e-mail.
    InvalidRequest = 1001, "invalid_request", 400, credential: false, definitive: false,
        in_0_1_0: true,
        "the request is malformed";
    /// A registration number with a bad format or check symbols, or one the server does not know.
    InvalidRegistrationNumber = 1002, "invalid_registration_number", 400, credential: true, definitive: true,
        in_0_1_0: true,
        "the registration number is not valid";
    /// A coupon was given without a registration number.
    RegistrationNumberRequired = 1003, "registration_number_required", 400, credential: false, definitive: false,
        in_0_1_0: true,
        "enter a registration number before redeeming a coupon";
    /// A coupon with a bad format or check symbols, or one the server does not know.
    InvalidCoupon = 1004, "invalid_coupon", 400, credential: true, definitive: false,
        in_0_1_0: true,
        "the coupon is not valid";
    /// The coupon was redeemed by another account.
    CouponAlreadyRedeemed = 1005, "coupon_already_redeemed", 409, credential: false, definitive: false,
        in_0_1_0: true,
        "the coupon was already redeemed by another account";
    /// The account already had a trial of this product.
    TrialAlreadyUsed = 1006, "trial_already_used", 409, credential: false, definitive: false,
        in_0_1_0: true,
        "the trial of this product was already used";
    /// No product with this id.
    UnknownProduct = 1007, "unknown_product", 404, credential: false, definitive: false,
        in_0_1_0: true,
        "no such product";
    /// The server did not answer and no usable token is cached.
    ServerUnreachable = 1011, "server_unreachable", 403, credential: false, definitive: false,
        in_0_1_0: true,
        "the license server cannot be reached and no usable license is cached";
    /// Every seat of every license of the product is bound to another host.
    NoFreeLicense = 1051, "no_free_license", 409, credential: false, definitive: true,
        in_0_1_0: true,
        "all seats of the license are bound to other hosts";
    /// The product's licenses have all expired.
    LicenseExpired = 1052, "license_expired", 403, credential: false, definitive: true,
        in_0_1_0: true,
        "the license has expired";
    /// No such binding in this account.
    BindingNotFound = 1053, "binding_not_found", 404, credential: false, definitive: false,
        in_0_1_0: true,
        "no such binding";
    /// The license's resets and deactivations for the last 30 days are used up.
    ResetLimitReached = 1054, "reset_limit_reached", 409, credential: false, definitive: false,
        in_0_1_0: false,
        "this license has used all the seat resets its product allows in 30 days; try again later";
    /// The floating session has died (its lease passed), is unknown, or is another account's.
    SessionExpired = 1055, "session_expired", 404, credential: false, definitive: false,
        in_0_1_0: false,
        "the session has expired or does not exist; check out a new one";
    /// The e-mail already belongs to an account.
    EmailAlreadyRegistered = 1058, "email_already_registered", 409, credential: false, definitive: false,
        in_0_1_0: true,
        "this e-mail is already registered";
    /// This host already registered an account.
    HostAlreadyRegistered = 1059, "host_already_registered", 409, credential: false, definitive: false,
        in_0_1_0: true,
        "this host has already registered an account";
    /// Missing or bad admin token or portal credential.
    Unauthorized = 1061, "unauthorized", 401, credential: true, definitive: false,
        in_0_1_0: true,
        "missing or invalid credentials";
    /// Too many failed attempts from this client.
    RateLimited = 1062, "rate_limited", 429, credential: false, definitive: false,
        in_0_1_0: true,
        "too many requests; try again later";
    /// A fault on the server, never caused by the request.
    InternalError = 1099, "internal_error", 500, credential: false, definitive: false,
        in_0_1_0: true,
        "internal server error";
    /// The account has no license for this product.
    NoLicenseForProduct = 2008, "no_license_for_product", 404, credential: false, definitive: true,
        in_0_1_0: true,
        "the account has no license for this product";
    /// The license lacks a feature the program asked for.
    FeatureNotLicensed = 2009, "feature_not_licensed", 403, credential: false, definitive: false,
        in_0_1_0: false,
        "the license does not include the requested feature";
    /// A token that is malformed, forged, signed by an unknown key or for another product.
    TokenInvalid = 3001, "token_invalid", 403, credential: false, definitive: false,
        in_0_1_0: true,
        "the license token is not valid";
    /// The token belongs to another host.
    HostMismatch = 3002, "host_mismatch", 403, credential: false, definitive: false,
        in_0_1_0: true,
        "the license token belongs to another host";
    /// Offline longer than the lease.
    LeaseExpired = 3003, "lease_expired", 403, credential: false, definitive: false,
        in_0_1_0: true,
        "offline longer than the license lease; connect to the license server";
    /// The system clock is earlier than time already seen.
    ClockTampered = 3004, "clock_tampered", 403, credential: false, definitive: false,
        in_0_1_0: true,
        "the system clock is earlier than time already seen; correct the clock";
    /// No number entered and nothing cached for the product.
    NotActivated = 3005, "not_activated", 403, credential: false, definitive: false,
        in_0_1_0: true,
        "no registration number entered and no license cached for this product";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number(), self.name())
    }
}

/// Why the core refused or failed a command, grouped by cause. Every variant has a [`Code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed: which field, and why (code 1001).
    #[error("invalid request: {field}: {reason}")]
    InvalidInput {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A registration number or coupon that failed its local format check or is unknown
    /// (1002, 1003, 1004).
    #[error("{}", .0.message())]
    Credential(Code),
    /// A rule of the license model refused the command (1005–1007, 1051–1059, 2008).
    #[error("{}", .0.message())]
    Refused(Code),
    /// A license token cannot be used offline (3001–3004, 1052).
    #[error("{}", .0.message())]
    Token(Code),
    /// The store failed or holds a record the core cannot read (1099). Never caused by input.
    #[error("internal error: {0}")]
    Internal(String),
    /// The store cannot be used just now — its disk is full or refuses, its database is gone —
    /// and is being reopened: retry in a moment (1099, HTTP 503 with `Retry-After`).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// The SPEC §4 code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidInput { .. } => Code::InvalidRequest,
            Error::Credential(c) | Error::Refused(c) | Error::Token(c) => *c,
            Error::Internal(_) | Error::Unavailable(_) => Code::InternalError,
        }
    }

    /// A malformed request (1001): which field, and why.
    pub fn input(field: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidInput { field, reason: reason.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_unique_and_round_trip() {
        let mut numbers: Vec<u16> = Code::ALL.iter().map(|c| c.number()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), Code::ALL.len());
        for &c in Code::ALL {
            assert_eq!(Code::from_number(c.number()), Some(c));
            assert!(c.name().chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        }
        assert_eq!(Code::NoFreeLicense.number(), 1051);
        assert_eq!(Code::NoFreeLicense.name(), "no_free_license");
        assert_eq!(Code::from_number(1234), None);
        for &c in Code::ALL {
            let status = c.http_status();
            assert!((400..600).contains(&status), "{c}");
            assert_eq!(status >= 500, c == Code::InternalError, "{c}");
        }
        let definitive: Vec<u16> = Code::ALL.iter().filter(|c| c.is_definitive()).map(|c| c.number()).collect();
        assert_eq!(definitive, [1002, 1051, 1052, 2008]);
        let credentials: Vec<u16> = Code::ALL.iter().filter(|c| c.is_failed_credential()).map(|c| c.number()).collect();
        assert_eq!(credentials, [1002, 1004, 1061]);
        let added: Vec<u16> = Code::ALL.iter().filter(|c| !c.known_to_0_1_0()).map(|c| c.number()).collect();
        assert_eq!(added, [1054, 1055, 2009]);
    }
}

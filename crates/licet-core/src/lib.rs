//! The pure license model of licet.
//!
//! Registration numbers and coupons ([`credential`]), host fingerprints and the two-thirds matching rule
//! ([`host`]), the ledger state machine for every command of the product ([`ledger`]) over
//! records ([`model`]) read and written through a transaction ([`txn`]), signed tokens and the
//! offline verdict ([`token`]), the agent's check policy as a state machine ([`agent`]), and the
//! one table of error codes ([`error`]).
//!
//! **No I/O, no clock, no global randomness**: every function that depends on time takes `now`,
//! every function that mints ids takes an [`Entropy`], and storage sits behind
//! [`Snapshot`] / [`Changes`].
#![forbid(unsafe_code)]

pub mod agent;
pub mod codec;
pub mod credential;
pub mod email;
pub mod entropy;
pub mod error;
pub mod host;
pub mod invariants;
pub mod ledger;
pub mod mail;
pub mod model;
pub mod offline;
pub mod record;
pub mod token;
pub mod txn;

pub use credential::{CouponCode, RegistrationNumber, Secret};
pub use entropy::{Entropy, SeededEntropy};
pub use error::{Code, Error};
pub use host::{Fingerprint, HostDigest};
pub use invariants::check_invariants;
pub use ledger::{
    AccountFound, Checkout, Command, CouponBatch, HostCommand, Ledger, Outcome, Redeemed, Registered, Registration,
    Seat, SessionSeat, TrialStarted,
};
pub use mail::{Lang, Mail, Message};
pub use model::{
    Account, Binding, Coupon, CouponKind, Host, HostMatch, License, LicenseFacts, LicenseKind, LicenseModel, Offer,
    Product, ProductSettings, Session, Time,
};
pub use offline::OfflineRequest;
pub use record::{Record, RecordError};
pub use token::{
    Claims, Endorsement, Entitlement, Judgement, KeyId, Refusal, TokenFormat, TokenSigner, TrustedKeys, VerifiedToken,
    verdict,
};
pub use txn::{Changes, MemState, RecordKey, Snapshot, Table, Tx};

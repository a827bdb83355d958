//! The JSON of licet's HTTP API (SPEC §5), in one place for both ends: the server deserializes
//! requests and serializes answers with these types, the agent does the reverse, so the two
//! cannot drift apart. Only the edge knows the wire: core types never derive JSON shapes, and
//! the conversions from core records to these objects live here.
//!
//! Fields a later release adds are optional (`#[serde(default)]`), and unknown fields are
//! ignored, so older clients and servers keep reading newer messages (SPEC §0).
#![forbid(unsafe_code)]

mod answer;
mod error;
mod request;
pub mod time;

pub use answer::{
    AccountObject, BindingObject, CouponObject, CouponsAnswer, Empty, GrantAnswer, HealthAnswer, KeyObject, KeysAnswer,
    LicenseAnswer, LicenseObject, ProductObject, RedemptionObject, RegisterAnswer, SessionAnswer, SessionObject,
    StoredHost,
};
pub use error::{ErrorBody, ErrorObject};
pub use request::{
    ClockRequest, CouponsRequest, EmailQuery, GrantRequest, HostJson, HostRequest, Nonce, OfflineActivateRequest,
    ProductRequest, RecoverRequest, RedeemRequest, RegisterRequest, SessionRequest, TokenRequest,
};

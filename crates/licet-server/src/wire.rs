//! The JSON shapes of SPEC §5. Only the edge knows the wire: core types are converted here.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use licet_core::{Account, Binding, Fingerprint, Host, License, Product, RegistrationNumber};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;

/// Parses a JSON body: malformed JSON, wrong types, missing fields or invalid UTF-8 are 1001;
/// unknown fields are ignored.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("malformed JSON: {e}")))
}

/// The endpoints that take a JSON body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Endpoint {
    /// `POST /v1/register`.
    Register,
    /// `POST /v1/activate`, `/v1/trial`, `/v1/deactivate`.
    Host,
    /// `POST /v1/redeem`.
    Redeem,
    /// `POST /v1/recover`.
    Recover,
    /// `PUT /v1/admin/products/{id}`.
    Product,
    /// `POST /v1/admin/coupons`.
    Coupons,
    /// `POST /v1/admin/clock`.
    Clock,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Register,
        Endpoint::Host,
        Endpoint::Redeem,
        Endpoint::Recover,
        Endpoint::Product,
        Endpoint::Coupons,
        Endpoint::Clock,
    ];
}

/// Runs the parsing and validation a handler does before it touches the store: what the
/// fuzzers drive. `Err` carries the SPEC code the server would answer with.
pub fn check_body(endpoint: Endpoint, body: &[u8]) -> Result<(), licet_core::Code> {
    let code = |e: ApiError| e.code;
    match endpoint {
        Endpoint::Register => {
            parse_json::<RegisterRequest>(body).and_then(|r| r.host.to_host()).map(drop).map_err(code)
        }
        Endpoint::Host => parse_json::<HostRequest>(body).and_then(|r| r.host.to_host()).map(drop).map_err(code),
        Endpoint::Redeem => parse_json::<RedeemRequest>(body).map(drop).map_err(code),
        Endpoint::Recover => parse_json::<RecoverRequest>(body).map(drop).map_err(code),
        Endpoint::Product => parse_json::<ProductRequest>(body).map(drop).map_err(code),
        Endpoint::Coupons => parse_json::<CouponsRequest>(body).map(drop).map_err(code),
        Endpoint::Clock => parse_json::<ClockRequest>(body).map(drop).map_err(code),
    }
}

/// RFC 3339 UTC with whole seconds.
pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `{"fingerprint":{…},"hostname":"…","os":"…"}`.
#[derive(Debug, Deserialize)]
pub(crate) struct HostJson {
    /// 1–16 components, each value at most 256 characters.
    pub(crate) fingerprint: BTreeMap<String, String>,
    /// For people.
    #[serde(default)]
    pub(crate) hostname: Option<String>,
    /// For people.
    #[serde(default)]
    pub(crate) os: Option<String>,
}

impl HostJson {
    /// The validated core host (1001 on bad components).
    pub(crate) fn to_host(&self) -> Result<Host, ApiError> {
        let fingerprint = Fingerprint::new(self.fingerprint.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        Ok(Host::new(fingerprint, self.hostname.as_deref().unwrap_or(""), self.os.as_deref().unwrap_or(""))?)
    }
}

impl HostRequest {
    /// The ledger's request: number, product and the validated host (1001 on a bad host).
    pub(crate) fn to_command(&self) -> Result<licet_core::HostRequest, ApiError> {
        Ok(licet_core::HostRequest {
            number: self.registration_number.as_str().into(),
            product: self.product.clone(),
            host: self.host.to_host()?,
        })
    }
}

/// `POST /v1/register`.
#[derive(Debug, Deserialize)]
pub(crate) struct RegisterRequest {
    pub(crate) email: String,
    pub(crate) organization: String,
    #[serde(default)]
    pub(crate) contact: Option<String>,
    #[serde(default)]
    pub(crate) phone: Option<String>,
    pub(crate) product: String,
    pub(crate) host: HostJson,
    /// Newer agents' marker: the token format they read (absent: release 0.1.0's).
    #[serde(default)]
    pub(crate) token_format: Option<u8>,
}

/// `POST /v1/activate`, `/v1/trial`, `/v1/deactivate`.
#[derive(Debug, Deserialize)]
pub(crate) struct HostRequest {
    pub(crate) registration_number: String,
    pub(crate) product: String,
    pub(crate) host: HostJson,
    /// Newer agents' marker: the token format they read (absent: release 0.1.0's).
    #[serde(default)]
    pub(crate) token_format: Option<u8>,
}

/// `POST /v1/redeem`.
#[derive(Debug, Deserialize)]
pub(crate) struct RedeemRequest {
    #[serde(default)]
    pub(crate) registration_number: Option<String>,
    pub(crate) coupon: String,
}

/// `POST /v1/recover`.
#[derive(Debug, Deserialize)]
pub(crate) struct RecoverRequest {
    pub(crate) email: String,
}

/// `PUT /v1/admin/products/{id}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ProductRequest {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) trial_days: Option<u32>,
    #[serde(default)]
    pub(crate) trial_seats: Option<u32>,
    #[serde(default)]
    pub(crate) offline_lease_hours: Option<u32>,
    #[serde(default)]
    pub(crate) clock_tolerance_minutes: Option<u32>,
    #[serde(default)]
    pub(crate) refresh_hours: Option<u32>,
}

fn one() -> u32 {
    1
}

/// `POST /v1/admin/coupons`.
#[derive(Debug, Deserialize)]
pub(crate) struct CouponsRequest {
    pub(crate) product: String,
    pub(crate) count: u32,
    #[serde(default = "one")]
    pub(crate) seats: u32,
    #[serde(default)]
    pub(crate) term_days: Option<u32>,
}

/// `POST /v1/admin/clock`.
#[derive(Debug, Deserialize)]
pub(crate) struct ClockRequest {
    pub(crate) now: DateTime<Utc>,
}

/// `GET /v1/admin/accounts?email=`.
#[derive(Debug, Deserialize)]
pub(crate) struct EmailQuery {
    pub(crate) email: String,
}

/// The `license` object.
pub(crate) fn license(l: &License, seats_used: u32) -> Value {
    json!({
        "id": l.id,
        "product": l.product,
        "kind": l.kind.as_str(),
        "seats": l.seats,
        "seats_used": seats_used,
        "starts_at": time(l.starts_at),
        "expires_at": l.expires_at.map(time),
    })
}

/// The `binding` object.
pub(crate) fn binding(b: &Binding) -> Value {
    json!({
        "id": b.id,
        "license_id": b.license_id,
        "product": b.product,
        "host": {"hostname": b.host.hostname, "os": b.host.os, "fingerprint": b.host.fingerprint.components()},
        "bound_at": time(b.bound_at),
        "last_seen": time(b.last_seen),
    })
}

/// The `product` object.
pub(crate) fn product(p: &Product) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "trial_days": p.trial_days,
        "trial_seats": p.trial_seats,
        "offline_lease_hours": p.offline_lease_hours,
        "clock_tolerance_minutes": p.clock_tolerance_minutes,
        "refresh_hours": p.refresh_hours,
    })
}

/// The account view; the number masked but its last group unless `unmasked`.
pub(crate) fn account(a: &Account, number: &RegistrationNumber, unmasked: bool) -> Value {
    json!({
        "organization": a.organization,
        "email": a.email,
        "contact": a.contact,
        "phone": a.phone,
        "registration_number": if unmasked { number.to_string() } else { number.masked() },
        "created_at": time(a.created_at),
        "licenses": a.licenses.iter().map(|l| license(l, a.seats_used(&l.id))).collect::<Vec<_>>(),
        "bindings": a.bindings.iter().map(binding).collect::<Vec<_>>(),
    })
}

//! Parsing request bodies into the shared wire types of `licet_wire`, every failure a 1001.

use licet_wire::{
    ClockRequest, CouponsRequest, HostRequest, OfflineActivateRequest, ProductRequest, RecoverRequest, RedeemRequest,
    RegisterRequest, SessionRequest, TokenRequest,
};

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
    /// `POST /v1/sessions`.
    Session,
    /// `POST /v1/sessions/{id}/heartbeat`.
    Heartbeat,
    /// `POST /v1/offline/activate`.
    Offline,
}

impl Endpoint {
    /// Every endpoint.
    pub const ALL: [Endpoint; 10] = [
        Endpoint::Register,
        Endpoint::Host,
        Endpoint::Redeem,
        Endpoint::Recover,
        Endpoint::Product,
        Endpoint::Coupons,
        Endpoint::Clock,
        Endpoint::Session,
        Endpoint::Heartbeat,
        Endpoint::Offline,
    ];
}

/// Runs the parsing and validation a handler does before it touches the store: what the
/// fuzzers drive. `Err` carries the SPEC code the server would answer with.
pub fn check_body(endpoint: Endpoint, body: &[u8]) -> Result<(), licet_core::Code> {
    let code = |e: ApiError| e.code;
    match endpoint {
        Endpoint::Register => {
            parse_json::<RegisterRequest>(body).and_then(|r| Ok(r.host.to_host()?)).map(drop).map_err(code)
        }
        Endpoint::Host => parse_json::<HostRequest>(body).and_then(|r| Ok(r.to_command()?)).map(drop).map_err(code),
        Endpoint::Redeem => parse_json::<RedeemRequest>(body).map(drop).map_err(code),
        Endpoint::Recover => parse_json::<RecoverRequest>(body).map(drop).map_err(code),
        Endpoint::Product => parse_json::<ProductRequest>(body).map(drop).map_err(code),
        Endpoint::Coupons => parse_json::<CouponsRequest>(body).map(drop).map_err(code),
        Endpoint::Clock => parse_json::<ClockRequest>(body).map(drop).map_err(code),
        Endpoint::Session => {
            parse_json::<SessionRequest>(body).and_then(|r| Ok(r.to_checkout()?)).map(drop).map_err(code)
        }
        Endpoint::Heartbeat => parse_json::<TokenRequest>(body).map(drop).map_err(code),
        Endpoint::Offline => parse_json::<OfflineActivateRequest>(body)
            .and_then(|r| Ok(licet_core::OfflineRequest::decode(&r.request)?))
            .map(drop)
            .map_err(code),
    }
}

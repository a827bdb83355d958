//! Extractors that turn every malformed request into a SPEC error, never a panic or a 500.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use licet_core::Code;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body (SPEC §4: larger is 413 with code 1001).
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// A JSON body: a body not declared `application/json` is 415 with 1001 (so that no web page can
/// post to the API cross-site without a CORS preflight); malformed JSON, wrong types, missing
/// fields or invalid UTF-8 are 1001; a body over 64 KiB is 413 with 1001. Unknown fields are
/// ignored.
pub(crate) struct JsonBody<T>(pub(crate) T);

/// Whether a `Content-Type` names JSON (`application/json`, or `application/…+json`), whatever
/// its parameters.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        read_json(req, state, false).await?.map(JsonBody).ok_or_else(|| ApiError::invalid("a JSON body is required"))
    }
}

/// A JSON body that may be left out (`T::default()`): an empty body, of whatever declared type,
/// is taken as `{}`; one with a body follows [`JsonBody`]'s rules.
pub(crate) struct OptionalJsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(OptionalJsonBody(read_json(req, state, true).await?.unwrap_or_default()))
    }
}

/// Reads a JSON body under [`JsonBody`]'s rules; `None` for an empty body without a declared
/// type when it is `optional`.
async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
    optional: bool,
) -> Result<Option<T>, ApiError> {
    let declared = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !optional && !declared.as_deref().is_some_and(is_json) {
        return Err(unsupported());
    }
    let bytes = Bytes::from_request(req, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: Some(StatusCode::PAYLOAD_TOO_LARGE),
                ..ApiError::invalid(format!("the body is larger than {MAX_BODY} bytes"))
            }
        } else {
            ApiError::invalid("the body could not be read")
        }
    })?;
    match declared {
        // No body at all, whatever a client declared for it (`curl -d ''` says form data).
        _ if optional && bytes.is_empty() => Ok(None),
        Some(declared) if is_json(&declared) => crate::wire::parse_json(&bytes).map(Some),
        _ => Err(unsupported()),
    }
}

fn unsupported() -> ApiError {
    ApiError {
        status: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ..ApiError::invalid("the body must be sent as Content-Type: application/json")
    }
}

/// The credential of `Authorization: Bearer …`; missing or malformed is 1061.
pub(crate) struct Bearer(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let value = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim);
        match token {
            Some(t) if !t.is_empty() && t.len() <= 256 => Ok(Bearer(t.to_owned())),
            _ => Err(ApiError::with_message(Code::Unauthorized, "an Authorization: Bearer credential is required")),
        }
    }
}

/// The client's address: the peer's, or — when the peer is one of the trusted proxies (`serve
/// --trusted-proxy`) — the nearest address in `X-Forwarded-For` that is not a trusted proxy.
/// Rate limits count this address.
pub(crate) struct ClientIp(pub(crate) std::net::IpAddr);

/// A handler state that knows which peers are trusted proxies (the API's, the portal's).
pub(crate) trait ProxyAware {
    /// The `--trusted-proxy` ranges.
    fn trusted_proxies(&self) -> &[ipnet::IpNet];
}

impl ProxyAware for std::sync::Arc<crate::app::App> {
    fn trusted_proxies(&self) -> &[ipnet::IpNet] {
        &self.trusted_proxies
    }
}

impl<S: ProxyAware + Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<ClientIp, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        Ok(ClientIp(client_ip(peer, &parts.headers, state.trusted_proxies())))
    }
}

/// See [`ClientIp`]: `X-Forwarded-For` is read from the right (each proxy appends the address
/// it received from), skipping trusted proxies; the first other address is the client. A
/// malformed entry stops the walk at the last trusted hop, so a client cannot forge its way
/// past it.
pub(crate) fn client_ip(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    // `::ffff:10.0.0.1` (a listener on `[::]`) is 10.0.0.1 for the trusted ranges and the limits.
    let peer = peer.to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    #[test]
    fn json_is_recognised_with_parameters_and_suffixes_and_nothing_else() {
        for yes in ["application/json", "Application/JSON; charset=utf-8", "application/problem+json"] {
            assert!(is_json(yes), "{yes}");
        }
        for no in ["", "text/plain", "application/x-www-form-urlencoded", "text/json", "application/jsonx"] {
            assert!(!is_json(no), "{no}");
        }
    }

    /// `X-Forwarded-For: value` as a header map.
    fn forwarded(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", axum::http::HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn forwarded_addresses_count_only_behind_trusted_proxies() -> Result<(), Box<dyn std::error::Error>> {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse()?, "::1/128".parse()?];
        let ip = |s: &str| s.parse::<std::net::IpAddr>();
        let chain = forwarded("1.2.3.4, 203.0.113.9, 10.0.0.7");
        // From an untrusted peer the header is ignored.
        assert_eq!(client_ip(ip("198.51.100.1")?, &chain, &trusted), ip("198.51.100.1")?);
        // From a trusted one, the nearest untrusted hop is the client (1.2.3.4 may be forged).
        assert_eq!(client_ip(ip("10.0.0.1")?, &chain, &trusted), ip("203.0.113.9")?);
        // Garbage stops the walk at the last trusted hop.
        let garbage = forwarded("1.2.3.4, junk, 10.0.0.7");
        assert_eq!(client_ip(ip("10.0.0.1")?, &garbage, &trusted), ip("10.0.0.7")?);
        // A v4 proxy seen through a dual-stack listener is still trusted.
        let one = forwarded("203.0.113.9");
        assert_eq!(client_ip(ip("::ffff:10.0.0.1")?, &one, &trusted), ip("203.0.113.9")?);
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("::1")?, &HeaderMap::new(), &trusted), ip("::1")?);
        // IPv6 clients behind the proxy.
        assert_eq!(client_ip(ip("::1")?, &forwarded("2001:db8::5"), &trusted), ip("2001:db8::5")?);
        Ok(())
    }
}

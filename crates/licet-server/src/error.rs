//! Errors on the wire: `{"error":{"code","name","message"}}`, with the HTTP status mapped from
//! the code in exactly one place ([`status_of`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use licet_core::Code;
use licet_wire::ErrorBody;

/// The HTTP status of a code, from the one table in `licet_core::Code`.
pub(crate) fn status_of(code: Code) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    /// The SPEC code.
    pub(crate) code: Code,
    /// A message for people; never carries a credential.
    pub(crate) message: String,
    /// Overrides the code's status (413 for an oversized body).
    pub(crate) status: Option<StatusCode>,
    /// Seconds until a rate-limited client may retry.
    pub(crate) retry_after: Option<u64>,
    /// The signed statement of a definitive refusal (SPEC §3).
    pub(crate) proof: Option<String>,
}

impl ApiError {
    /// An error with the code's default message.
    pub(crate) fn new(code: Code) -> ApiError {
        ApiError { code, message: code.message().to_owned(), status: None, retry_after: None, proof: None }
    }

    /// An error with a specific message.
    pub(crate) fn with_message(code: Code, message: impl Into<String>) -> ApiError {
        ApiError { message: message.into(), ..ApiError::new(code) }
    }

    /// The error as an agent of release 0.1.0 — a request without the newer agents' format
    /// `marker` — can read it: a code that release did not know becomes 1001 with the same
    /// status, the real code and its explanation in the message.
    pub(crate) fn for_marker(self, marker: Option<u8>) -> ApiError {
        if marker.is_some() || self.code.known_to_0_1_0() {
            return self;
        }
        let message = format!("{} (code {})", self.message, self.code.number());
        ApiError { status: Some(self.status.unwrap_or_else(|| status_of(self.code))), ..ApiError::invalid(message) }
    }

    /// 1001 for a malformed request.
    pub(crate) fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::with_message(Code::InvalidRequest, message)
    }
}

/// Seconds a client is asked to wait while the store is unavailable.
const UNAVAILABLE_RETRY_AFTER: u64 = 2;

impl From<licet_core::Error> for ApiError {
    fn from(e: licet_core::Error) -> ApiError {
        match &e {
            licet_core::Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::new(Code::InternalError)
            }
            licet_core::Error::Unavailable(detail) => {
                tracing::error!(%detail, "the store is unavailable");
                ApiError {
                    status: Some(StatusCode::SERVICE_UNAVAILABLE),
                    retry_after: Some(UNAVAILABLE_RETRY_AFTER),
                    ..ApiError::with_message(Code::InternalError, "the store is unavailable; try again shortly")
                }
            }
            _ => ApiError::with_message(e.code(), e.to_string()),
        }
    }
}

/// The code of an answer, kept in the response's extensions for the request log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AnsweredCode(pub(crate) Code);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or_else(|| status_of(self.code));
        let mut body = ErrorBody::new(self.code, self.message);
        body.error.proof = self.proof;
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(AnsweredCode(self.code));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_code_has_a_fitting_status() {
        for &code in Code::ALL {
            let status = status_of(code);
            assert!(status.is_client_error() || status.is_server_error(), "{code}");
            assert_eq!(status.is_server_error(), code == Code::InternalError, "{code}");
        }
        assert_eq!(status_of(Code::Unauthorized), StatusCode::UNAUTHORIZED);
        assert_eq!(status_of(Code::RateLimited), StatusCode::TOO_MANY_REQUESTS);
    }
}

//! Error answers: `{"error":{"code":1051,"name":"no_free_license","message":"…","proof":"…"}}`.

use licet_core::Code;
use serde::{Deserialize, Serialize};

/// The body of every error answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorObject,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorObject {
    /// The SPEC §4 code.
    pub code: u16,
    /// Its snake_case name.
    pub name: String,
    /// For people.
    pub message: String,
    /// For a definitive refusal of a license check that carried a nonce: the server's signed
    /// statement of it (SPEC §3), without which an agent keeps its cached token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl ErrorBody {
    /// An error with `code` and a message.
    pub fn new(code: Code, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorObject {
                code: code.number(),
                name: code.name().to_owned(),
                message: message.into(),
                proof: None,
            },
        }
    }

    /// The code, if this release knows it.
    pub fn code(&self) -> Option<Code> {
        Code::from_number(self.error.code)
    }
}

//! The agent's errors, each with its SPEC §4 code.

use licet_core::Code;
use licet_core::agent::Failure;

/// Why a command of the agent failed, grouped by cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Refused on this machine without asking the server: a key's format, or a token's verdict
    /// (1002, 1003, 1004, 3001–3005, 1052, 2009).
    #[error("{0}")]
    Local(#[from] licet_core::Error),
    /// The server answered with a refusal.
    #[error("{message}")]
    Server {
        /// The server's code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// No server could be reached and nothing usable is cached (1011).
    #[error("the license server cannot be reached: {0}")]
    Unreachable(String),
    /// The local cache or configuration failed (1099).
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The SPEC §4 code.
    pub fn code(&self) -> Code {
        match self {
            Error::Local(e) => e.code(),
            Error::Server { code, .. } => *code,
            Error::Unreachable(_) => Code::ServerUnreachable,
            Error::Internal(_) => Code::InternalError,
        }
    }

    pub(crate) fn local(code: Code) -> Error {
        Error::Local(licet_core::Error::Token(code))
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::Local(e) => Error::Local(e),
            Failure::Server { code, message } => Error::Server { code, message },
            Failure::Unreachable(reason) => Error::Unreachable(reason),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<licet_store::CacheError> for Error {
    fn from(e: licet_store::CacheError) -> Error {
        Error::Internal(e.to_string())
    }
}

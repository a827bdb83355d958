//! The blocking HTTP client to one license server: short timeouts, https verified against the
//! operating system's roots (or a vendor CA given to the agent), the shared wire types, and
//! every answer classified the way SPEC §3 needs it: an answer, a refusal, or a server fault.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use licet_core::Code;
use licet_wire::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Connecting may take this long (SPEC §3: ≈ 3 s).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole request may take this long (SPEC §3: ≤ 10 s).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read.
const MAX_ANSWER: u64 = 1 << 20;

/// What went wrong with a call.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The server answered with a SPEC error (a 4xx with a code this release knows).
    Refused {
        /// Its code.
        code: Code,
        /// Its message.
        message: String,
        /// `error.proof`, if any.
        proof: Option<String>,
    },
    /// No usable answer: connection failure, timeout, a 5xx, an unreadable or foreign body.
    Fault(String),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Refused { code, message, .. } => Error::Server { code, message },
            CallError::Fault(reason) => Error::Unreachable(reason),
        }
    }
}

pub(crate) struct Client {
    http: ureq::Agent,
    base: String,
}

impl Client {
    pub(crate) fn new(server: &str, ca_cert: Option<&Path>) -> Result<Client, Error> {
        let mut tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier);
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
            let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(Error::Internal(format!("{}: no PEM certificate", path.display())));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .max_redirects(0)
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Client { http, base: server.trim_end_matches('/').to_owned() })
    }

    /// `POST path` with a JSON body, or `GET` when `body` is `None`; the answer read as `A`.
    pub(crate) fn call<B: Serialize, A: DeserializeOwned>(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: Option<&B>,
    ) -> Result<A, CallError> {
        let url = format!("{}{path}", self.base);
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let response = match body {
            Some(body) => {
                let mut req = self.http.post(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send_json(body)
            }
            None => {
                let mut req = self.http.get(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
        };
        self.read(response)
    }

    /// `DELETE path`; the answer read as `A`.
    pub(crate) fn delete<A: DeserializeOwned>(&self, path: &str, bearer: &str) -> Result<A, CallError> {
        let url = format!("{}{path}", self.base);
        self.read(self.http.delete(&url).header("Authorization", &format!("Bearer {bearer}")).call())
    }

    /// Classifies an answer: read as `A`, a SPEC refusal, or a fault.
    fn read<A: DeserializeOwned>(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<A, CallError> {
        let mut response = response.map_err(|e| CallError::Fault(format!("{}: {e}", self.base)))?;
        let status = response.status();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| CallError::Fault(format!("{}: unreadable answer ({status}): {e}", self.base)))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| CallError::Fault(format!("{}: unreadable answer ({status}): {e}", self.base)));
        }
        if status.is_server_error() {
            return Err(CallError::Fault(format!("{} answered {status}", self.base)));
        }
        match serde_json::from_str::<ErrorBody>(&text).ok().and_then(|b| Some((b.code()?, b))) {
            Some((code, body)) => {
                Err(CallError::Refused { code, message: body.error.message, proof: body.error.proof })
            }
            None => Err(CallError::Fault(format!("{} answered {status} without a licet error", self.base))),
        }
    }
}

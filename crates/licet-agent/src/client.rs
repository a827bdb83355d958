//! The blocking HTTP client to the license server: short timeouts, https verified against the
//! operating system's roots (or a vendor CA given to the agent), and SPEC error bodies turned
//! into [`Error::Server`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use licet_core::Code;
use serde_json::Value;

use crate::error::Error;

/// Connecting may take this long (SPEC §3: ≈ 3 s).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole request may take this long (SPEC §3: ≤ 10 s).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// `POST path` with a JSON body; `GET` when `body` is `None`.
    pub(crate) fn call(&self, path: &str, bearer: Option<&str>, body: Option<&Value>) -> Result<Value, Error> {
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
        let mut response = response.map_err(|e| Error::Unreachable(e.to_string()))?;
        let status = response.status();
        let value: Value = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_json()
            .map_err(|e| Error::Unreachable(format!("unreadable answer ({status}): {e}")))?;
        if status.is_success() {
            return Ok(value);
        }
        let error = &value["error"];
        let code = error["code"].as_u64().and_then(|n| u16::try_from(n).ok()).and_then(Code::from_number);
        match code {
            Some(code) => {
                Err(Error::Server { code, message: error["message"].as_str().unwrap_or_default().to_owned() })
            }
            None => Err(Error::Unreachable(format!("the server answered {status} without a licet error"))),
        }
    }
}

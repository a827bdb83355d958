//! How an [`Agent`](crate::Agent) is set up.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use licet_core::Fingerprint;

/// The agent's settings. The vendor embeds the trusted public keys in its program: they are
/// never fetched from the server.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The license server, e.g. `https://lic.example.com`.
    pub server: String,
    /// Where the cache lives.
    pub data_dir: PathBuf,
    /// Public keys (64 hex characters each) whose tokens are trusted.
    pub trusted_keys: Vec<String>,
    /// A vendor CA certificate (PEM) to trust for https instead of the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Replaces the measured fingerprint (default: `LICET_FINGERPRINT`, else measured).
    pub fingerprint: Option<Fingerprint>,
    /// The secret the fingerprint's components are hashed under, embedded in the vendor's
    /// program. Default: the first trusted key — public, so a component's value can then be
    /// confirmed by guessing; set a secret to prevent that.
    pub fingerprint_secret: Option<Vec<u8>>,
    /// Replaces the host name (default: `LICET_HOSTNAME`, else the system's).
    pub hostname: Option<String>,
    /// Replaces the clock (default: `LICET_NOW`, else the system clock). Setting it has the same
    /// power as setting the system clock, so it opens nothing.
    pub now: Option<DateTime<Utc>>,
}

impl AgentConfig {
    /// Settings for `server`, caching in `data_dir`, trusting `trusted_key`.
    ///
    /// ```
    /// let config = licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/licet-cache")
    ///     .trust("89ca1ac1770dbb956f8cf5bc014c7e3947485bc797df89c69e089f3af2bcc5ac");
    /// assert_eq!(config.trusted_keys.len(), 1);
    /// ```
    pub fn new(server: impl Into<String>, data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            server: server.into(),
            data_dir: data_dir.into(),
            trusted_keys: Vec::new(),
            ca_cert: None,
            fingerprint: None,
            fingerprint_secret: None,
            hostname: None,
            now: None,
        }
    }

    /// Adds a trusted public key (64 hex characters).
    pub fn trust(mut self, public_key: impl Into<String>) -> AgentConfig {
        self.trusted_keys.push(public_key.into());
        self
    }
}

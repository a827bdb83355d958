//! How an [`Agent`](crate::Agent) is set up. Everything is explicit: the library never reads
//! the environment (only the CLI does, and only for its own flags — or, in builds with the
//! `test-overrides` feature, for the test overrides of SPEC §6).

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use licet_core::Fingerprint;

/// The agent's settings. The vendor embeds the trusted public keys in its program: they are
/// never fetched from the server.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The license servers, tried in order (SPEC §7): the next one on a connection failure, a
    /// timeout, a 5xx or any other server fault.
    pub servers: Vec<String>,
    /// The data directory: the cache lives here, and belongs to it — a changed server list or
    /// set of trusted keys keeps it.
    pub data_dir: PathBuf,
    /// Public keys (64 hex characters each) whose tokens are trusted.
    pub trusted_keys: Vec<String>,
    /// A vendor CA certificate (PEM) to trust for https instead of the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// The vendor's name, which keys the hashes of this machine's components, so that different
    /// vendors see unrelated fingerprints. Use the same name in all of a vendor's programs (the
    /// vendor prefix of its registration numbers is a good choice): a host is then the same host
    /// for all of them. The first program that names one records it in the data directory;
    /// `None` takes the recorded one (so the CLI, run without `--vendor`, agrees with the
    /// program), or `licet` when none is recorded.
    pub vendor: Option<String>,
    /// A secret of the vendor's that keys the hashes instead of [`AgentConfig::vendor`], so that
    /// a component's value cannot even be confirmed by guessing.
    pub fingerprint_secret: Option<Vec<u8>>,
    /// Replaces the machine's raw component values (tests, support); they are hashed as
    /// measured values are.
    pub raw_components: Option<BTreeMap<String, String>>,
    /// Replaces the fingerprint altogether, values used as given (tests, support).
    pub fingerprint: Option<Fingerprint>,
    /// Replaces the host name shown in the portal.
    pub hostname: Option<String>,
    /// Replaces the clock. Setting it has the same power as setting the system clock, so it
    /// opens nothing.
    pub now: Option<DateTime<Utc>>,
    /// Files whose modification times show how late it is at least (docs/agent.md, "Clock").
    /// `None`: the system's own ([`crate::evidence::system_places`]) — or none when
    /// [`AgentConfig::now`] replaces the clock, as the system's file times then say nothing
    /// about it. `Some(vec![])`: none.
    pub time_evidence: Option<Vec<crate::evidence::Place>>,
    /// The user named in floating sessions (SPEC §11), shown in the portal's session monitor.
    pub user: Option<String>,
}

impl AgentConfig {
    /// Settings for `servers` (one URL, or several separated by commas), caching in
    /// `data_dir`, trusting no key yet.
    ///
    /// ```
    /// let config = licet_agent::AgentConfig::new("https://lic.example.com,https://lm.example.com", "/tmp/licet")
    ///     .trust("89ca1ac1770dbb956f8cf5bc014c7e3947485bc797df89c69e089f3af2bcc5ac");
    /// assert_eq!(config.servers.len(), 2);
    /// assert_eq!(config.trusted_keys.len(), 1);
    /// ```
    pub fn new(servers: impl AsRef<str>, data_dir: impl Into<PathBuf>) -> AgentConfig {
        AgentConfig {
            servers: split_servers(servers.as_ref()),
            data_dir: data_dir.into(),
            trusted_keys: Vec::new(),
            ca_cert: None,
            vendor: None,
            fingerprint_secret: None,
            raw_components: None,
            fingerprint: None,
            hostname: None,
            now: None,
            time_evidence: None,
            user: None,
        }
    }

    /// Adds a trusted public key (64 hex characters).
    pub fn trust(mut self, public_key: impl Into<String>) -> AgentConfig {
        self.trusted_keys.push(public_key.into());
        self
    }

    /// Names the user of floating sessions checked out by this agent.
    pub fn user(mut self, user: impl Into<String>) -> AgentConfig {
        self.user = Some(user.into());
        self
    }

    /// Sets the vendor's name that keys this machine's fingerprint.
    pub fn vendor(mut self, vendor: impl Into<String>) -> AgentConfig {
        self.vendor = Some(vendor.into());
        self
    }
}

/// `a, b,c` → `["a", "b", "c"]`, trailing slashes trimmed, empty entries dropped.
pub(crate) fn split_servers(text: &str) -> Vec<String> {
    text.split(',').map(|s| s.trim().trim_end_matches('/').to_owned()).filter(|s| !s.is_empty()).collect()
}

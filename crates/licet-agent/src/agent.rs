//! The agent: license checks that keep passing while the server is unreachable (SPEC §3).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use licet_core::{
    Code, Entitlement, Fingerprint, Host, HostDigest, LicenseKind, TokenFormat, TrustedKeys, VerifiedToken,
};
use licet_store::TokenCache;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::Client;
use crate::config::AgentConfig;
use crate::error::Error;
use crate::fingerprint;

/// The high-water mark is written to disk when it has moved this far (a restart loses at most
/// this much of it, well inside any clock tolerance); in memory it is exact.
const PERSIST_STEP: Duration = Duration::minutes(5);
/// After a failed attempt to reach the server, checks answer from the cache for this long
/// before trying again, so a dead server never slows every check.
const RETRY_AFTER: StdDuration = StdDuration::from_secs(60);

/// Where a grant came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The server answered just now.
    Server,
    /// A cached token, judged offline.
    Cache,
}

/// A passed license check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The product checked.
    pub product: String,
    /// The license's kind.
    pub kind: LicenseKind,
    /// When the license's term ends; `None` for perpetual.
    pub expires_at: Option<DateTime<Utc>>,
    /// Until when the check passes without reaching the server.
    pub lease_until: DateTime<Utc>,
    /// Whether the server or the cache answered.
    pub source: Source,
}

impl Grant {
    fn new(g: Entitlement, source: Source) -> Grant {
        Grant { product: g.product, kind: g.kind, expires_at: g.expires_at, lease_until: g.lease_until, source }
    }
}

/// A license as the server describes it (SPEC §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// `lic_…`.
    pub id: String,
    /// The product.
    pub product: String,
    /// `trial`, `subscription` or `perpetual`.
    pub kind: LicenseKind,
    /// Hosts that may be bound at once.
    pub seats: u32,
    /// Hosts bound now.
    pub seats_used: u32,
    /// When it began.
    pub starts_at: DateTime<Utc>,
    /// When it ends; `None` for perpetual.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A product with the offline verdict on its cached token.
pub type ProductVerdict = (String, Result<Grant, Error>);

/// A cached token, verified once per process.
struct Cached {
    text: String,
    verified: Result<VerifiedToken, licet_core::Error>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    number: Option<String>,
    tokens: HashMap<String, Cached>,
    high_water: Option<DateTime<Utc>>,
    persisted: Option<DateTime<Utc>>,
    offline_until: Option<Instant>,
}

/// The license agent of one vendor's program on one machine.
///
/// ```no_run
/// let config = licet_agent::AgentConfig::new("https://lic.example.com", "/var/lib/myapp/licet")
///     .trust("89ca1ac1770dbb956f8cf5bc014c7e3947485bc797df89c69e089f3af2bcc5ac");
/// let agent = licet_agent::Agent::new(config)?;
/// match agent.check("call-journal") {
///     Ok(grant) => println!("licensed until {}", grant.lease_until),
///     Err(e) => println!("not licensed: {} {}", e.code().number(), e),
/// }
/// # Ok::<(), licet_agent::Error>(())
/// ```
pub struct Agent {
    server: String,
    keys: TrustedKeys,
    cache: TokenCache,
    client: Client,
    host: Host,
    digest: HostDigest,
    fixed_now: Option<DateTime<Utc>>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("server", &self.server).finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent from `config`; reads `LICET_FINGERPRINT`, `LICET_HOSTNAME` and `LICET_NOW` for
    /// what the config leaves unset. Without a trusted key every token is refused (3001), but
    /// the offline commands (status, fingerprint) still work.
    pub fn new(config: AgentConfig) -> Result<Agent, Error> {
        let mut keys = TrustedKeys::new();
        for key in &config.trusted_keys {
            keys.add_hex(key)?;
        }
        // Without a vendor secret, the vendor's public key keys the hashes: fingerprints then
        // differ per vendor, but anyone holding the key can test guesses of a component.
        let secret = match (&config.fingerprint_secret, config.trusted_keys.first()) {
            (Some(secret), _) => secret.clone(),
            (None, Some(key)) => key.trim().to_lowercase().into_bytes(),
            (None, None) => b"licet".to_vec(),
        };
        let fingerprint = match config.fingerprint {
            Some(f) => f,
            None => fingerprint::current(&secret)?,
        };
        let hostname = config.hostname.unwrap_or_else(fingerprint::hostname);
        let host = Host::new(fingerprint, &hostname, &fingerprint::os())?;
        let fixed_now = match config.now {
            Some(t) => Some(t),
            None => match std::env::var("LICET_NOW") {
                Ok(text) if !text.trim().is_empty() => Some(
                    DateTime::parse_from_rfc3339(text.trim())
                        .map_err(|e| {
                            Error::Local(licet_core::Error::InvalidInput { field: "LICET_NOW", reason: e.to_string() })
                        })?
                        .with_timezone(&Utc),
                ),
                _ => None,
            },
        };
        Ok(Agent {
            server: config.server.trim_end_matches('/').to_owned(),
            client: Client::new(&config.server, config.ca_cert.as_deref())?,
            cache: TokenCache::new(config.data_dir.join("cache")),
            digest: host.fingerprint.digest(),
            host,
            keys,
            fixed_now,
            state: Mutex::new(State::default()),
        })
    }

    /// The agent's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }

    /// This machine's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.host.fingerprint
    }

    /// A problem with the cache found and repaired (reported once), for the host program's log.
    pub fn take_warning(&self) -> Option<String> {
        self.cache.take_warning()
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn host_json(&self) -> serde_json::Value {
        json!({"fingerprint": self.host.fingerprint.components(), "hostname": self.host.hostname, "os": self.host.os})
    }

    /// The state, loaded from disk on first use.
    fn state(&self) -> Result<MutexGuard<'_, State>, Error> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !st.loaded {
            let contents = self.cache.load(&self.server)?;
            st.number = contents.number;
            st.high_water = contents.high_water.and_then(|s| DateTime::from_timestamp(s, 0));
            st.persisted = st.high_water;
            st.tokens = contents
                .tokens
                .into_iter()
                .map(|(product, text)| {
                    let verified = self.keys.verify(&text);
                    (product, Cached { text, verified })
                })
                .collect();
            st.loaded = true;
        }
        Ok(st)
    }

    /// The registration number entered on this host.
    pub fn number(&self) -> Result<Option<String>, Error> {
        Ok(self.state()?.number.clone())
    }

    /// Checks the license of `product` on this host (SPEC §3): from the cached token while it is
    /// fresh, from the server when it is missing, unusable or older than half its lease, and
    /// from the cache again when the server cannot be reached.
    ///
    /// ```no_run
    /// # let agent = licet_agent::Agent::new(licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/c"))?;
    /// match agent.check("call-journal") {
    ///     Ok(grant) => println!("{} license, offline until {}", grant.kind.as_str(), grant.lease_until),
    ///     Err(e) if e.code() == licet_core::Code::NoFreeLicense => println!("all seats are taken"),
    ///     Err(e) => println!("not licensed: {e}"),
    /// }
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn check(&self, product: &str) -> Result<Grant, Error> {
        let now = self.now();
        let mut st = self.state()?;
        let local = self.judge_cached(&mut st, product, now);
        self.persist_high_water(&mut st)?;
        // A fresh, valid token answers. Anything else asks the server — a clock set back too:
        // the server's time may show that it was the mark that was wrong (a clock once in the
        // future), and a clock really set back is refused again against the new token.
        if let Some(Ok(g)) = &local
            && now - g.issued_at <= (g.lease_until - g.issued_at) / 2
        {
            return Ok(Grant::new(g.clone(), Source::Cache));
        }
        let from_cache = |local: Option<Result<Entitlement, licet_core::Error>>, online: Error| match local {
            Some(Ok(g)) => Ok(Grant::new(g, Source::Cache)),
            Some(Err(e)) => Err(Error::Local(e)),
            None => Err(online),
        };
        let Some(number) = st.number.clone() else {
            return from_cache(local, Error::local(Code::NotActivated));
        };
        if local.is_some() && st.offline_until.is_some_and(|t| Instant::now() < t) {
            return from_cache(local, Error::Unreachable("the last attempt failed; retrying later".into()));
        }
        drop(st);
        let body = json!({"registration_number": number, "product": product, "host": self.host_json(),
                           "token_format": TokenFormat::LATEST_MARKER});
        match self.client.call("/v1/activate", None, Some(&body)) {
            Ok(answer) => {
                let token = answer["token"].as_str().unwrap_or_default();
                self.accept_token(product, token).map(|g| Grant::new(g, Source::Server))
            }
            Err(e) if e.code().is_definitive() => {
                self.forget_token(product)?;
                Err(e)
            }
            // Unreachable, overloaded (1099), rate-limited (1062): the cache answers, and the
            // server is left alone for a while.
            Err(e) => {
                self.state()?.offline_until = Some(Instant::now() + RETRY_AFTER);
                from_cache(local, e)
            }
        }
    }

    /// The offline verdict on the cached token of `product`, moving the in-memory mark.
    fn judge_cached(
        &self,
        st: &mut State,
        product: &str,
        now: DateTime<Utc>,
    ) -> Option<Result<Entitlement, licet_core::Error>> {
        let cached = st.tokens.get(product)?;
        Some(match &cached.verified {
            Ok(verified) => {
                let judgement = verified.judge(product, &self.digest, now, st.high_water);
                st.high_water = judgement.high_water;
                judgement.result
            }
            Err(e) => Err(e.clone()),
        })
    }

    /// Writes the high-water mark when it has moved far enough since the last write.
    fn persist_high_water(&self, st: &mut State) -> Result<(), Error> {
        if let Some(mark) = st.high_water
            && st.persisted.is_none_or(|p| mark - p >= PERSIST_STEP)
        {
            self.cache.raise_high_water(mark.timestamp())?;
            st.persisted = Some(mark);
        }
        Ok(())
    }

    /// Verifies a token the server just issued, caches it, and judges it. The server's time is
    /// trusted time: the high-water mark is set to the token's issue time.
    pub(crate) fn accept_token(&self, product: &str, token: &str) -> Result<Entitlement, Error> {
        let verified = self.keys.verify(token)?;
        self.cache.put_token(&self.server, product, token)?;
        let mark = DateTime::from_timestamp(self.cache.reset_high_water(verified.claims().issued_at)?, 0);
        let judgement = verified.judge(product, &self.digest, self.now(), mark);
        let mut st = self.state()?;
        st.high_water = judgement.high_water;
        st.persisted = mark;
        st.offline_until = None;
        self.persist_high_water(&mut st)?;
        st.tokens.insert(product.to_owned(), Cached { text: token.to_owned(), verified: Ok(verified) });
        judgement.result.map_err(Error::Local)
    }

    /// Deletes the cached token of `product`.
    pub(crate) fn forget_token(&self, product: &str) -> Result<(), Error> {
        self.cache.remove_token(&self.server, product)?;
        self.state()?.tokens.remove(product);
        Ok(())
    }

    /// Stores (or forgets) the number; tokens of another number go with it.
    pub(crate) fn store_number(&self, number: Option<&str>) -> Result<(), Error> {
        self.cache.set_number(&self.server, number)?;
        let mut st = self.state()?;
        if st.number.as_deref() != number {
            st.tokens.clear();
        }
        st.number = number.map(str::to_owned);
        Ok(())
    }

    /// The cached token of `product`, as text (3005 if there is none).
    pub fn token(&self, product: &str) -> Result<String, Error> {
        self.state()?.tokens.get(product).map(|c| c.text.clone()).ok_or(Error::local(Code::NotActivated))
    }

    /// The offline verdict on any token for `product` on this host at this agent's time — the
    /// same rules as a check from the cache, without touching the cache.
    ///
    /// ```no_run
    /// # let agent = licet_agent::Agent::new(licet_agent::AgentConfig::new("https://lic.example.com", "/tmp/c"))?;
    /// let token = agent.token("call-journal")?;
    /// assert_eq!(agent.verify(&token, "call-journal")?.product, "call-journal");
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn verify(&self, token: &str, product: &str) -> Result<Grant, Error> {
        let high_water = self.state()?.high_water;
        let verdict = licet_core::verdict(&self.keys, token, product, &self.digest, self.now(), high_water);
        verdict.result.map(|g| Grant::new(g, Source::Cache)).map_err(Error::Local)
    }

    /// Offline verdicts of every cached token: what `status` shows.
    pub fn cached_products(&self) -> Result<Vec<ProductVerdict>, Error> {
        let now = self.now();
        let mut st = self.state()?;
        let mut products: Vec<String> = st.tokens.keys().cloned().collect();
        products.sort();
        let mut out = Vec::new();
        for product in products {
            if let Some(result) = self.judge_cached(&mut st, &product, now) {
                out.push((product, result.map(|g| Grant::new(g, Source::Cache)).map_err(Error::Local)));
            }
        }
        Ok(out)
    }
}

//! The agent: the driver of the core's check policy ([`licet_core::agent::Policy`]) — it reads
//! the cache, sends the requests the policy asks for, and writes what it says to persist.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use licet_core::agent::{Ask, AskKind, Policy, Reply, Step, Verdict};
use licet_core::{Code, Entitlement, Fingerprint, Host, LicenseKind, TokenFormat, TrustedKeys};
use licet_store::{AgentCache, CacheError, OsEntropy};
use licet_wire::{GrantAnswer, HostJson, HostRequest, Nonce, SessionAnswer, SessionRequest, TokenRequest};
use serde::{Deserialize, Serialize};

pub use licet_core::agent::Source;

use crate::client::{CallError, Client};
use crate::config::AgentConfig;
use crate::error::Error;
use crate::fingerprint;

/// How long a command waits for another process that is writing the cache.
const COMMAND_PATIENCE: Duration = Duration::from_secs(5);
/// How long a check waits to write the cache before leaving it to a later check: a check must
/// never fail, nor wait long, because other programs are busy with the same data directory.
const CHECK_PATIENCE: Duration = Duration::from_millis(200);

/// A passed license check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The product checked.
    pub product: String,
    /// The license's kind.
    pub kind: LicenseKind,
    /// When the license's term ends; `None` for perpetual.
    #[serde(with = "licet_wire::time::option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Until when the check passes without reaching the server.
    #[serde(with = "licet_wire::time")]
    pub lease_until: DateTime<Utc>,
    /// Whether the server or the cache answered.
    pub source: Source,
    /// The features the license grants.
    pub features: Vec<String>,
    /// Whether the term is over and its grace period running.
    pub in_grace: bool,
    /// The floating session whose seat this is; `None` for a host's seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// When the server issued the token (by the server's clock).
    #[serde(with = "licet_wire::time")]
    pub issued_at: DateTime<Utc>,
}

impl Grant {
    pub(crate) fn new(e: Entitlement, source: Source) -> Grant {
        Grant {
            product: e.product,
            kind: e.kind,
            expires_at: e.expires_at,
            lease_until: e.lease_until,
            source,
            features: e.features,
            in_grace: e.in_grace,
            session_id: e.session_id,
            issued_at: e.issued_at,
        }
    }

    /// Whether the license grants `feature`.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }
}

impl From<Verdict> for Grant {
    fn from(v: Verdict) -> Grant {
        Grant::new(v.entitlement, v.source)
    }
}

/// What [`Agent::check_now`] can say without waiting.
#[cfg(feature = "service")]
pub(crate) enum CheckNow {
    /// The answer.
    Answer(Result<Grant, Error>),
    /// The cached token passes, but a server should be asked (it is due for a refresh): this
    /// grant answers now, and a blocking check should follow.
    Due(Grant),
    /// A server must be asked — or, unless the caller may block, the disk written or a lock
    /// another thread holds awaited.
    Wait,
}

/// The offline verdict on the floating session token cached for `product`, with `features`.
fn session_verdict(st: &mut State, product: &str, features: &[String], now: DateTime<Utc>) -> Result<Grant, Error> {
    let e = st.policy.judge(product, now)?;
    if !features.iter().all(|f| e.has_feature(f)) {
        return Err(Error::Local(licet_core::Error::Token(Code::FeatureNotLicensed)));
    }
    Ok(Grant::new(e, Source::Cache))
}

/// A product with the offline verdict on its cached token.
pub type ProductVerdict = (String, Result<Grant, Error>);

pub(crate) struct State {
    pub(crate) policy: Policy,
}

/// The license agent of one vendor's program on one machine.
///
/// ```no_run
/// let config = licet_agent::AgentConfig::new("https://lic.example.com", "/var/lib/myapp/licet")
///     .trust("89ca1ac1770dbb956f8cf5bc014c7e3947485bc797df89c69e089f3af2bcc5ac")
///     .vendor("MIKO");
/// let agent = licet_agent::Agent::new(config)?;
/// match agent.check("call-journal") {
///     Ok(grant) => println!("licensed until {}", grant.lease_until),
///     Err(e) => println!("not licensed: {} {}", e.code().number(), e),
/// }
/// # Ok::<(), licet_agent::Error>(())
/// ```
pub struct Agent {
    servers: Vec<String>,
    ca_cert: Option<PathBuf>,
    clients: Vec<OnceLock<Result<Client, String>>>,
    cache: AgentCache,
    host: Host,
    fixed_now: Option<DateTime<Utc>>,
    started: Instant,
    state: Mutex<State>,
    warning: Mutex<Option<String>>,
    /// The user named in floating sessions' checkouts.
    user: Option<String>,
    /// The floating sessions this agent checked out and has not released, and their products:
    /// one program (the local service) may hold several sessions of a product at once, while
    /// the cache keeps one token per product.
    pub(crate) opened: Mutex<std::collections::BTreeMap<String, crate::floating::Opened>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent").field("servers", &self.servers).finish_non_exhaustive()
    }
}

impl Agent {
    /// An agent from `config`. It reads its cache (one file) to learn the vendor name recorded
    /// in the data directory, when the config names none; nothing goes to the network yet.
    /// Without a trusted key every token is refused (3001), but the offline commands (status,
    /// fingerprint) work.
    pub fn new(config: AgentConfig) -> Result<Agent, Error> {
        let mut keys = TrustedKeys::new();
        for key in &config.trusted_keys {
            keys.add_hex(key)?;
        }
        if config.servers.len() > licet_core::agent::MAX_SERVERS {
            let reason = format!("at most {} servers", licet_core::agent::MAX_SERVERS);
            return Err(Error::Local(licet_core::Error::InvalidInput { field: "server", reason }));
        }
        let cache = AgentCache::new(&config.data_dir);
        let memory = cache.load(&config.servers)?;
        let vendor = config.vendor.clone().or_else(|| memory.vendor.clone()).unwrap_or_else(|| "licet".into());
        let raw = match (&config.raw_components, &config.fingerprint) {
            (Some(raw), _) => Some((raw.clone(), raw.clone())),
            (None, None) => Some((fingerprint::measure_raw(), fingerprint::measure_raw_as_0_1_0())),
            (None, Some(_)) => None,
        };
        let vendor_key = fingerprint::vendor_key(&vendor, config.fingerprint_secret.as_deref());
        let measured = match (&config.fingerprint, &raw) {
            (Some(f), _) => f.clone(),
            (None, Some((raw, _))) => Fingerprint::keyed(&vendor_key, raw)?,
            (None, None) => unreachable!("raw values are measured when no fingerprint is given"),
        };
        // The machine as release 0.1.0 hashed it, so that its old bindings and tokens find it.
        let key_0_1_0 = fingerprint::key_of_0_1_0(&config.trusted_keys, config.fingerprint_secret.as_deref());
        let legacy = match &raw {
            Some((_, raw_0_1_0)) => Some(Fingerprint::keyed_as_0_1_0(&key_0_1_0, raw_0_1_0)?),
            None => None,
        };
        let hostname = config.hostname.clone().unwrap_or_else(fingerprint::hostname);
        let host = Host::new(measured, &hostname, &fingerprint::os())?.with_legacy(legacy);
        let legacy_digest = host.legacy.as_ref().map(Fingerprint::digest);
        let mut policy = Policy::new(keys, host.fingerprint.digest(), legacy_digest, config.servers.len().max(1));
        policy.load(&memory);
        let time_evidence = match (&config.time_evidence, config.now) {
            (Some(paths), _) => paths.clone(),
            (None, None) => crate::evidence::system_places(),
            (None, Some(_)) => Vec::new(),
        };
        // Only a new agent needs it: a running one's mark already follows its clock, and a
        // cache restored under it cannot lower the mark it holds.
        let mut warning = None;
        if let Some((newest, path)) = crate::evidence::newest(&time_evidence)
            && policy.observe_time(newest)
            && config.now.unwrap_or_else(Utc::now) + chrono::Duration::minutes(10) < newest
        {
            warning = Some(format!(
                "{} was modified at {newest}, later than this machine's clock: if the clock is right, that \
                 file's time is wrong (offline checks fail until the server is reached or that time comes)",
                path.display()
            ));
        }
        if memory.vendor.is_none()
            && let Some(named) = &config.vendor
        {
            policy.record_vendor(named);
        }
        Ok(Agent {
            clients: config.servers.iter().map(|_| OnceLock::new()).collect(),
            servers: config.servers,
            ca_cert: config.ca_cert,
            cache,
            host,
            fixed_now: config.now,
            started: Instant::now(),
            state: Mutex::new(State { policy }),
            warning: Mutex::new(warning),
            user: config.user,
            opened: Mutex::new(std::collections::BTreeMap::new()),
        })
    }

    /// The agent's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed_now.unwrap_or_else(Utc::now)
    }

    pub(crate) fn mono(&self) -> Duration {
        self.started.elapsed()
    }

    /// This machine's fingerprint.
    pub fn fingerprint(&self) -> &Fingerprint {
        &self.host.fingerprint
    }

    /// A problem with the cache, reported once for the host program's log: a damaged cache set
    /// aside, or a write the disk refused (the check stood; the change is written later).
    pub fn take_warning(&self) -> Option<String> {
        self.cache.take_warning().or_else(|| self.warning.lock().ok().and_then(|mut w| w.take()))
    }

    /// The client of server `i` (made on first use: a check answered from the cache needs none).
    pub(crate) fn client(&self, i: usize) -> Result<&Client, Error> {
        let server = self.servers.get(i).ok_or_else(|| Error::Internal("no license server is configured".into()))?;
        self.clients[i]
            .get_or_init(|| Client::new(server, self.ca_cert.as_deref()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Internal(e.clone()))
    }

    /// How many servers are configured.
    pub(crate) fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// This machine as requests present it.
    pub(crate) fn host(&self) -> &Host {
        &self.host
    }

    pub(crate) fn host_json(&self) -> HostJson {
        HostJson::of(&self.host)
    }

    /// The state (loaded from disk when the agent was made).
    pub(crate) fn state(&self) -> Result<MutexGuard<'_, State>, Error> {
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes what the policy says must reach the disk. A command waits for other writers and
    /// fails if the disk refuses; a check (`best_effort`) never fails for it: the change waits
    /// in memory for the next write, and the disk's refusal is kept as a warning.
    pub(crate) fn persist(&self, st: &mut State, best_effort: bool) -> Result<(), Error> {
        let Some(change) = st.policy.poll_persist() else { return Ok(()) };
        let patience = if best_effort { CHECK_PATIENCE } else { COMMAND_PATIENCE };
        match self.cache.apply(&change, patience) {
            // What the disk holds now, others' changes merged: e.g. a token another program
            // cached, which a conditional removal of ours left in place.
            Ok(merged) => {
                st.policy.load(&merged);
                Ok(())
            }
            Err(e) if best_effort => {
                if !matches!(e, CacheError::Busy(_)) {
                    let warning = format!("{e}; the change is kept in memory and written later");
                    *self.warning.lock().unwrap_or_else(|e| e.into_inner()) = Some(warning);
                }
                st.policy.requeue(change);
                Ok(())
            }
            Err(e) => {
                st.policy.requeue(change);
                Err(e.into())
            }
        }
    }

    /// The registration number entered on this host.
    pub fn number(&self) -> Result<Option<String>, Error> {
        Ok(self.state()?.policy.number().map(str::to_owned))
    }

    /// Checks the license of `product` on this host (SPEC §3): from the cached token while it is
    /// fresh, from the server when it is missing, unusable or due for a refresh, and from the
    /// cache again when no server can be reached.
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
        self.check_features(product, &[])
    }

    /// [`Agent::check`], passing only if the license grants every one of `features` (2009
    /// otherwise, decided after one refresh when the cached token lacks one).
    pub fn check_features(&self, product: &str, features: &[&str]) -> Result<Grant, Error> {
        self.check_with(product, features, true)
    }

    /// A check; with `renew_sessions` false, a floating session's token cached for `product` is
    /// judged as it is — never heartbeated, never replaced by a checkout — for a program that
    /// holds several users' sessions and leaves each to its holder (the local service).
    pub(crate) fn check_with(&self, product: &str, features: &[&str], renew_sessions: bool) -> Result<Grant, Error> {
        let features: Vec<String> = features.iter().map(|f| (*f).to_owned()).collect();
        let mut st = self.state()?;
        let mut reloaded = false;
        loop {
            if !renew_sessions && st.policy.session_of(product).is_some() {
                let verdict = session_verdict(&mut st, product, &features, self.now());
                self.persist(&mut st, true)?;
                return verdict;
            }
            let step = st.policy.handle_check(self.now(), self.mono(), product, &features, &mut OsEntropy);
            // About to ask a server: another program may already have refreshed the token.
            if matches!(step, Step::Ask(_)) && !reloaded && self.reload_if_changed(&mut st)? {
                reloaded = true;
                continue;
            }
            return self.drive(st, step);
        }
    }

    /// Takes what other programs wrote to the cache since this agent last read or wrote it;
    /// whether there was anything.
    pub(crate) fn reload_if_changed(&self, st: &mut State) -> Result<bool, Error> {
        if !self.cache.changed() {
            return Ok(false);
        }
        let memory = self.cache.load(&self.servers)?;
        st.policy.load(&memory);
        Ok(true)
    }

    /// What a check that leaves floating sessions alone (`renew_sessions` false in
    /// [`Agent::check_with`]) can say without asking a server: the answer, or the cached token's
    /// grant when it passes but is due for a refresh. Without `may_block` it does not wait for
    /// a lock another thread holds nor write the disk either (`Wait` then).
    #[cfg(feature = "service")]
    pub(crate) fn check_now(&self, product: &str, features: &[String], may_block: bool) -> CheckNow {
        let mut st = match self.state.try_lock() {
            Ok(st) => st,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if may_block => match self.state() {
                Ok(st) => st,
                Err(e) => return CheckNow::Answer(Err(e)),
            },
            Err(std::sync::TryLockError::WouldBlock) => return CheckNow::Wait,
        };
        if !may_block && st.policy.must_persist() {
            return CheckNow::Wait;
        }
        let now = self.now();
        let said = if st.policy.session_of(product).is_some() {
            CheckNow::Answer(session_verdict(&mut st, product, features, now))
        } else {
            match st.policy.handle_check(now, self.mono(), product, features, &mut OsEntropy) {
                Step::Answer(result) => CheckNow::Answer(result.map(Grant::from).map_err(Error::from)),
                // Due for a refresh, or nothing usable cached, or a feature to ask the server for:
                // a cached token that passes with every feature answers now.
                Step::Ask(_) => match st.policy.judge(product, now) {
                    Ok(e) if features.iter().all(|f| e.has_feature(f)) => CheckNow::Due(Grant::new(e, Source::Cache)),
                    _ => CheckNow::Wait,
                },
            }
        };
        if st.policy.must_persist() {
            // What was decided waits in the policy for a check that may write.
            if !may_block {
                return CheckNow::Wait;
            }
            if let Err(e) = self.persist(&mut st, true) {
                return CheckNow::Answer(Err(e));
            }
        }
        said
    }

    /// Runs the policy's steps from `step` until it answers, sending what it asks. A floating
    /// session a server grants is remembered with its token (see [`Agent::open_session_as`]).
    pub(crate) fn drive<'a>(&'a self, mut st: MutexGuard<'a, State>, mut step: Step) -> Result<Grant, Error> {
        self.persist(&mut st, true)?;
        loop {
            match step {
                Step::Answer(result) => return result.map(Grant::from).map_err(Error::from),
                Step::Ask(ask) => {
                    drop(st);
                    let reply = self.ask(&ask);
                    let granted = match (&ask.kind, &reply) {
                        (AskKind::Checkout { .. } | AskKind::Heartbeat { .. }, Reply::Granted { token }) => {
                            Some(token.clone())
                        }
                        _ => None,
                    };
                    st = self.state()?;
                    let product = ask.product.clone();
                    let had_token = st.policy.token(&product).is_some();
                    step = st.policy.handle_reply(self.now(), self.mono(), ask, reply);
                    let cached = st.policy.token(&product);
                    match (&step, granted) {
                        // Only a token the policy took (not one answering a request sent before
                        // the number changed or the session was dropped) is a session held.
                        (Step::Answer(Ok(verdict)), Some(token)) if cached == Some(token.as_str()) => {
                            self.remember(&verdict.entitlement, token);
                        }
                        // A proven refusal removed the product's token: its sessions are over too.
                        (Step::Answer(Err(_)), _) if had_token && cached.is_none() => {
                            self.opened().retain(|_, o| o.product != product);
                        }
                        _ => {}
                    }
                    self.persist(&mut st, true)?;
                }
            }
        }
    }

    /// Sends what the policy asks to the server it chose.
    fn ask(&self, ask: &Ask) -> Reply {
        let client = match self.client(ask.server) {
            Ok(c) => c,
            Err(e) => return Reply::Fault { reason: e.to_string() },
        };
        let number = ask.number.expose();
        let nonce = Some(Nonce(ask.nonce));
        let token_format = Some(TokenFormat::LATEST_MARKER);
        let answer = match &ask.kind {
            AskKind::Activate => {
                let (product, host) = (ask.product.clone(), self.host_json());
                let request =
                    HostRequest { registration_number: number.to_owned(), product, host, token_format, nonce };
                client.call::<_, GrantAnswer>("/v1/activate", None, Some(&request)).map(|a| a.token)
            }
            AskKind::Checkout { borrow_hours, user } => {
                let request = SessionRequest {
                    registration_number: number.to_owned(),
                    product: ask.product.clone(),
                    host: self.host_json(),
                    user: user.clone().or_else(|| self.user.clone()),
                    borrow_hours: *borrow_hours,
                    token_format,
                    nonce,
                };
                client.call::<_, SessionAnswer>("/v1/sessions", None, Some(&request)).map(|a| a.token)
            }
            AskKind::Heartbeat { session, .. } => {
                let path = format!("/v1/sessions/{session}/heartbeat");
                let request = TokenRequest { token_format, nonce };
                client.call::<_, SessionAnswer>(&path, Some(number), Some(&request)).map(|a| a.token)
            }
        };
        match answer {
            Ok(token) => Reply::Granted { token },
            Err(CallError::Refused { code, message, proof }) => Reply::Refused { code, message, proof },
            Err(CallError::Fault(reason)) => Reply::Fault { reason },
        }
    }

    /// The cached token of `product`, as text (3005 if there is none).
    pub fn token(&self, product: &str) -> Result<String, Error> {
        self.state()?.policy.token(product).map(str::to_owned).ok_or(Error::local(Code::NotActivated))
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
        self.verify_features(token, product, &[])
    }

    /// [`Agent::verify`], passing only if the token grants every one of `features` (2009
    /// otherwise).
    pub fn verify_features(&self, token: &str, product: &str, features: &[&str]) -> Result<Grant, Error> {
        let st = self.state()?;
        let entitlement = st.policy.verify(token, product, self.now())?;
        if !features.iter().all(|f| entitlement.has_feature(f)) {
            return Err(Error::Local(licet_core::Error::Token(licet_core::Code::FeatureNotLicensed)));
        }
        Ok(Grant::new(entitlement, Source::Cache))
    }

    /// Offline verdicts of every cached token: what `status` shows.
    pub fn cached_products(&self) -> Result<Vec<ProductVerdict>, Error> {
        let now = self.now();
        let mut st = self.state()?;
        let products: Vec<String> = st.policy.products().map(str::to_owned).collect();
        let verdicts = products
            .into_iter()
            .map(|product| {
                let verdict = st.policy.judge(&product, now);
                (product, verdict.map(|e| Grant::new(e, Source::Cache)).map_err(Error::Local))
            })
            .collect();
        self.persist(&mut st, true)?;
        Ok(verdicts)
    }
}

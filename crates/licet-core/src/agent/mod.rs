//! The agent's license-check policy as a state machine without I/O (SPEC §3), in the manner of
//! quinn-proto: the `licet-agent` crate drives it — reads the cache, sends the requests it asks
//! for, writes what it says to persist — while every decision is made here, on times passed in,
//! so the simulation harness runs the real refresh, back-off, failover and refusal rules on a
//! virtual clock.
//!
//! * [`Policy::handle_check`] answers from a cached token or asks a server ([`Step::Ask`]);
//! * [`Policy::handle_reply`] takes the server's reply and answers, or asks the next server;
//! * [`Policy::poll_persist`] says what must reach the disk ([`Persist`]);
//! * [`Policy::load`] takes what is on disk ([`Memory`]), e.g. another process's newer token.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::credential::Secret;
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::host::HostDigest;
use crate::model::Time;
use crate::token::{Entitlement, Judgement, TrustedKeys, VerifiedToken};

mod memory;
pub use memory::{MarkReset, Memory, Persist};

/// The clock mark is written to disk once it has moved this far (a restart loses at most this
/// much of it, well inside any clock tolerance); in memory it is exact.
pub const PERSIST_STEP: chrono::Duration = chrono::Duration::minutes(5);
/// After a server failed, it is left alone this long: checks answer from the cache meanwhile,
/// so a dead server never slows every check.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// How far ahead of a trusted server time evidence of the time can be settled by it, seconds.
const EVIDENCE_AHEAD_OF_SERVER: i64 = 24 * 3600;

/// Most servers in an agent's list.
pub const MAX_SERVERS: usize = 16;

/// Where an answer came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A server answered just now.
    Server,
    /// A cached token, judged offline.
    Cache,
}

/// A passed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What the token grants.
    pub entitlement: Entitlement,
    /// Whether the server or the cache answered.
    pub source: Source,
}

/// Why a check did not pass.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Decided on this machine: the cached token's verdict, no number (3005), a missing
    /// feature (2009).
    #[error("{0}")]
    Local(Error),
    /// A server's answer: a definitive refusal proven signed (its token is gone), or the
    /// refusal of a server when nothing usable is cached.
    #[error("{message}")]
    Server {
        /// The server's code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// No server answered usefully and nothing usable is cached (1011).
    #[error("the license server cannot be reached: {0}")]
    Unreachable(String),
}

impl Failure {
    /// The SPEC §4 code.
    pub fn code(&self) -> Code {
        match self {
            Failure::Local(e) => e.code(),
            Failure::Server { code, .. } => *code,
            Failure::Unreachable(_) => Code::ServerUnreachable,
        }
    }
}

/// What the policy wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// The check is decided.
    Answer(Result<Verdict, Failure>),
    /// Send this request, then call [`Policy::handle_reply`] with the reply.
    Ask(Ask),
}

/// Which request an [`Ask`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AskKind {
    /// `POST /v1/activate` with the newer agents' marker: bind or refresh this host's seat.
    Activate,
    /// `POST /v1/sessions`: check out a floating session, borrowed for so many hours if asked.
    Checkout {
        /// Hours to borrow the seat for, offline.
        borrow_hours: Option<u32>,
        /// The user the session monitor shows; `None`: the agent's own.
        user: Option<String>,
    },
    /// `POST /v1/sessions/{session}/heartbeat`: extend a floating session.
    Heartbeat {
        /// The session.
        session: String,
        /// Whether a refused heartbeat (the session died) is followed by a checkout on the same
        /// server: so for a check, not for an explicit heartbeat of one session.
        renew: bool,
    },
}

/// A request to send to a server: a license check, or a floating session's checkout or heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Which request.
    pub kind: AskKind,
    /// Which server of the list.
    pub server: usize,
    /// The product.
    pub product: String,
    /// The account's number.
    pub number: Secret,
    /// The request's nonce: a refusal must name it to count.
    pub nonce: [u8; 16],
    features: Vec<String>,
    tried: Vec<usize>,
    /// A refusal an earlier server gave, for when nothing else answers.
    refused: Option<(Code, String)>,
    /// Whether it serves a license check, which the cache answers when no server does; an
    /// explicit checkout or heartbeat is answered by a server or not at all.
    check: bool,
    /// The cached token this request refreshes: a proven definitive refusal removes that one
    /// only — not a token another program cached meanwhile, nor one an explicit checkout never
    /// touched.
    replaces: Option<String>,
    /// The policy's generation when the check began.
    generation: u64,
}

/// A server's reply to an [`Ask`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// HTTP 2xx with a token (which may still not verify).
    Granted {
        /// The token's text.
        token: String,
    },
    /// A SPEC error body.
    Refused {
        /// Its code.
        code: Code,
        /// Its message.
        message: String,
        /// `error.proof`, if any.
        proof: Option<String>,
    },
    /// No usable answer: connection failure, timeout, 5xx, an unreadable body.
    Fault {
        /// What happened, for the message of a 1011.
        reason: String,
    },
}

/// A cached token, verified once, when first judged.
#[derive(Clone, Debug)]
struct Cached {
    text: String,
    verified: std::cell::OnceCell<Result<VerifiedToken, Error>>,
}

impl Cached {
    fn new(text: String) -> Cached {
        Cached { text, verified: std::cell::OnceCell::new() }
    }

    fn verified(&self, keys: &TrustedKeys) -> &Result<VerifiedToken, Error> {
        self.verified.get_or_init(|| keys.verify(&self.text))
    }
}

/// The license-check policy of one agent: its trusted keys, its host, its server list, and
/// what it knows (see the module's documentation).
#[derive(Debug)]
pub struct Policy {
    keys: TrustedKeys,
    host: HostDigest,
    /// This machine as release 0.1.0 fingerprinted it: the tokens a 0.1.0 agent cached here
    /// are for that digest.
    host_0_1_0: Option<HostDigest>,
    servers: usize,
    number: Option<String>,
    tokens: BTreeMap<String, Cached>,
    mark: Option<Time>,
    floor: Option<Time>,
    persisted_mark: Option<Time>,
    /// The newest time the system's files showed, when last looked at.
    evidence: Option<Time>,
    /// What they showed when a server's time was last trusted.
    evidence_baseline: Option<Time>,
    pending: Persist,
    /// Per server: until when (on the monotonic clock) it is left alone.
    backoff: Vec<Option<Duration>>,
    /// Changes when the number is entered or forgotten or a token dropped, so that the reply to
    /// a request sent before cannot bring an old token back.
    generation: u64,
    /// Per product, the issue time of a token the server sent when asked for features, and the
    /// features asked: a missing feature is asked for once per token, not at every check.
    refreshed_for_features: BTreeMap<String, (i64, Vec<String>)>,
}

use crate::model::from_unix as at;

impl Policy {
    /// A policy trusting `keys`, for the host whose digest is `host` (and, as release 0.1.0
    /// fingerprinted it, `host_0_1_0`), with `servers` servers (1–16) tried in order. It knows
    /// nothing until [`Policy::load`].
    pub fn new(keys: TrustedKeys, host: HostDigest, host_0_1_0: Option<HostDigest>, servers: usize) -> Policy {
        let servers = servers.clamp(1, MAX_SERVERS);
        Policy {
            keys,
            host,
            host_0_1_0,
            servers,
            number: None,
            tokens: BTreeMap::new(),
            mark: None,
            floor: None,
            persisted_mark: None,
            evidence: None,
            evidence_baseline: None,
            pending: Persist::default(),
            backoff: vec![None; servers],
            generation: 0,
            refreshed_for_features: BTreeMap::new(),
        }
    }

    /// Takes what is on disk. Tokens whose text is unchanged keep their verification; the
    /// in-memory mark never falls below the stored one.
    pub fn load(&mut self, memory: &Memory) {
        self.number.clone_from(&memory.number);
        let mut tokens = BTreeMap::new();
        for (product, text) in &memory.tokens {
            let cached = match self.tokens.remove(product) {
                Some(c) if c.text == *text => c,
                _ => Cached::new(text.clone()),
            };
            tokens.insert(product.clone(), cached);
        }
        self.tokens = tokens;
        let stored = memory.mark.and_then(at);
        self.mark = self.mark.max(stored);
        self.persisted_mark = self.persisted_mark.max(stored);
        self.floor = self.floor.max(memory.floor.and_then(at));
        self.evidence_baseline = self.evidence_baseline.max(memory.evidence.and_then(at));
    }

    /// Takes `newest`, the newest modification time among files the system keeps writing (logs,
    /// the time-sync clock file): it is at least that late. When it is newer than what those
    /// files showed at the last trusted server time, the mark rises to it — so a cache copied
    /// while fresh and restored later, with the clock set back, meets a mark the restore did not
    /// bring back (3004). Evidence that was already there when the server's time was trusted
    /// moves nothing — up to a day ahead of the server's time: a file stamped further ahead (by
    /// a clock once far wrong, or on purpose) keeps offline checks failing until its time comes
    /// or it is rewritten. docs/agent.md states the bound.
    /// Returns whether it raised the mark.
    pub fn observe_time(&mut self, newest: Time) -> bool {
        self.evidence = Some(newest);
        if self.evidence_baseline.is_some_and(|seen| newest <= seen) || self.mark.is_some_and(|mark| newest <= mark) {
            return false;
        }
        self.mark = Some(newest);
        self.note_mark();
        true
    }

    /// The registration number entered on this host.
    pub fn number(&self) -> Option<&str> {
        self.number.as_deref()
    }

    /// The cached token of `product`, as text.
    pub fn token(&self, product: &str) -> Option<&str> {
        self.tokens.get(product).map(|c| c.text.as_str())
    }

    /// The products with a cached token, in order.
    pub fn products(&self) -> impl Iterator<Item = &str> {
        self.tokens.keys().map(String::as_str)
    }

    /// The clock high-water mark.
    pub fn mark(&self) -> Option<Time> {
        self.mark
    }

    /// Enters (or with `None` forgets) the number; tokens of another number go with it.
    pub fn set_number(&mut self, number: Option<String>) {
        if self.number != number {
            for product in std::mem::take(&mut self.tokens).into_keys() {
                self.pending.tokens.insert(product, None);
            }
        }
        self.generation += 1;
        self.number.clone_from(&number);
        self.pending.number = Some(number);
    }

    /// Forgets the token of `product` (after a deactivation, say).
    pub fn forget(&mut self, product: &str) {
        self.generation += 1;
        self.tokens.remove(product);
        self.pending.tokens.insert(product.to_owned(), None);
    }

    /// Forgets the token of `product` if it is `text` — here, and on disk only if it is still
    /// that one there (another program may have cached a newer one).
    pub fn forget_if(&mut self, product: &str, text: &str) {
        self.generation += 1;
        if self.token(product) == Some(text) {
            self.tokens.remove(product);
        }
        self.pending.drop_if.insert(product.to_owned(), text.to_owned());
    }

    /// Records the vendor name that keys this machine's fingerprint, if the directory has none.
    pub fn record_vendor(&mut self, vendor: &str) {
        self.pending.vendor = Some(vendor.to_owned());
    }

    /// `token` judged for `product` on this machine: by its fingerprint, or — for a token a
    /// release-0.1.0 agent cached here — by the fingerprint 0.1.0 made of it.
    fn judge_token(&self, token: &VerifiedToken, product: &str, now: Time, mark: Option<Time>) -> Judgement {
        let judgement = token.judge(product, &self.host, now, mark);
        match (&judgement.result, &self.host_0_1_0) {
            (Err(e), Some(old)) if e.code() == Code::HostMismatch => token.judge(product, old, now, mark),
            _ => judgement,
        }
    }

    /// The offline verdict on the cached token of `product`, moving the mark.
    fn judge_cached(&mut self, product: &str, now: Time) -> Option<Result<Entitlement, Error>> {
        let cached = self.tokens.get(product)?;
        let judgement = match cached.verified(&self.keys) {
            Ok(token) => self.judge_token(token, product, now, self.mark),
            Err(e) => return Some(Err(e.clone())),
        };
        self.mark = judgement.high_water;
        Some(judgement.result)
    }

    /// The offline verdict on the cached token of `product`, as `status` shows it (3005 when
    /// there is none).
    pub fn judge(&mut self, product: &str, now: Time) -> Result<Entitlement, Error> {
        let verdict = self.judge_cached(product, now).unwrap_or(Err(Error::Token(Code::NotActivated)));
        self.note_mark();
        verdict
    }

    /// The offline verdict on any token for `product` on this host, without touching the cache.
    pub fn verify(&self, token: &str, product: &str, now: Time) -> Result<Entitlement, Error> {
        self.judge_token(&self.keys.verify(token)?, product, now, self.mark).result
    }

    /// Notes the mark for persisting once it has moved [`PERSIST_STEP`] since the last write.
    fn note_mark(&mut self) {
        if let Some(mark) = self.mark
            && self.persisted_mark.is_none_or(|p| mark - p >= PERSIST_STEP)
        {
            self.pending.raise = Some(mark.timestamp());
            self.persisted_mark = Some(mark);
        }
    }

    /// A check of `product` on this host, at wall-clock `now` and monotonic time `mono`,
    /// needing `features`. `entropy` supplies the nonce of a request, drawn only if one is sent.
    pub fn handle_check(
        &mut self,
        now: Time,
        mono: Duration,
        product: &str,
        features: &[String],
        entropy: &mut dyn Entropy,
    ) -> Step {
        let local = self.judge_cached(product, now);
        self.note_mark();
        let effective = self.mark.map_or(now, |m| m.max(now));
        if let Some(Ok(e)) = &local
            && effective < e.refresh_due
        {
            if has_all(e, features) {
                return Step::Answer(Ok(Verdict { entitlement: e.clone(), source: Source::Cache }));
            }
            // The server was asked for these features when it issued this token: it said no.
            if let Some((issued, asked)) = self.refreshed_for_features.get(product)
                && *issued == e.issued_at.timestamp()
                && features.iter().all(|f| e.has_feature(f) || asked.contains(f))
            {
                return Step::Answer(Err(Failure::Local(Error::Token(Code::FeatureNotLicensed))));
            }
        }
        let Some(number) = self.number.clone() else {
            return Step::Answer(from_cache(local, features, Failure::Local(Error::Token(Code::NotActivated))));
        };
        // A floating session's token is refreshed by its heartbeat, never by an activation — if it
        // is this host's: a session token copied from another machine is not, and neither is
        // its session (a new one is checked out).
        let foreign = matches!(&local, Some(Err(e)) if matches!(e.code(), Code::TokenInvalid | Code::HostMismatch));
        let kind = match self.session_of(product) {
            Some(session) if !foreign => AskKind::Heartbeat { session, renew: true },
            Some(_) => AskKind::Checkout { borrow_hours: None, user: None },
            None => AskKind::Activate,
        };
        let mut ask = self.new_ask(kind, product, number, features, entropy);
        ask.check = true;
        ask.replaces = self.token(product).map(str::to_owned);
        match self.next_server(&ask, mono) {
            Some(server) => Step::Ask(Ask { server, ..ask }),
            // Every server failed a moment ago: the cache answers, if it has anything; if not,
            // there is nothing to lose by asking again.
            None if local.is_some() => Step::Answer(from_cache(
                local,
                features,
                Failure::Unreachable("every license server failed recently; retrying later".into()),
            )),
            None => Step::Ask(Ask { server: 0, ..ask }),
        }
    }

    /// A request about `product` with a fresh nonce, to no server yet.
    fn new_ask(
        &self,
        kind: AskKind,
        product: &str,
        number: String,
        features: &[String],
        entropy: &mut dyn Entropy,
    ) -> Ask {
        let mut nonce = [0u8; 16];
        entropy.fill(&mut nonce);
        Ask {
            server: 0,
            product: product.to_owned(),
            number: number.into(),
            nonce,
            features: features.to_vec(),
            tried: Vec::new(),
            refused: None,
            check: matches!(kind, AskKind::Activate | AskKind::Heartbeat { renew: true, .. }),
            replaces: None,
            generation: self.generation,
            kind,
        }
    }

    /// The floating session whose token is cached for `product`, if that token verifies and is one.
    pub fn session_of(&self, product: &str) -> Option<String> {
        let cached = self.tokens.get(product)?;
        cached.verified(&self.keys).as_ref().ok()?.claims().session.clone()
    }

    /// The product whose cached token belongs to floating session `session`.
    pub fn product_of_session(&self, session: &str) -> Option<String> {
        self.tokens.keys().find(|p| self.session_of(p).as_deref() == Some(session)).cloned()
    }

    /// A checkout of a floating session of `product` (borrowed for `borrow_hours`, if given):
    /// always asks a server — the first one not left alone after a failure. 3005 without a number.
    pub fn handle_checkout(
        &mut self,
        mono: Duration,
        product: &str,
        borrow_hours: Option<u32>,
        user: Option<String>,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let Some(number) = self.number.clone() else {
            return Step::Answer(Err(Failure::Local(Error::Token(Code::NotActivated))));
        };
        let ask = self.new_ask(AskKind::Checkout { borrow_hours, user }, product, number, &[], entropy);
        let server = self.next_server(&ask, mono).unwrap_or(0);
        Step::Ask(Ask { server, ..ask })
    }

    /// A heartbeat of floating session `session` of `product`. With `renew` (a program keeping
    /// its session alive), a refusal is followed by a checkout and no server answering by the
    /// cache; without (an explicit heartbeat), a server's answer is the answer.
    pub fn handle_heartbeat(
        &mut self,
        mono: Duration,
        product: &str,
        session: &str,
        renew: bool,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let Some(number) = self.number.clone() else {
            return Step::Answer(Err(Failure::Local(Error::Token(Code::NotActivated))));
        };
        let kind = AskKind::Heartbeat { session: session.to_owned(), renew };
        let mut ask = self.new_ask(kind, product, number, &[], entropy);
        if self.session_of(product).as_deref() == Some(session) {
            ask.replaces = self.token(product).map(str::to_owned);
        }
        let server = self.next_server(&ask, mono).unwrap_or(0);
        Step::Ask(Ask { server, ..ask })
    }

    /// The first server of the list not yet tried for `ask` and not left alone after a failure.
    fn next_server(&self, ask: &Ask, mono: Duration) -> Option<usize> {
        (0..self.servers).find(|s| !ask.tried.contains(s) && self.backoff[*s].is_none_or(|until| mono >= until))
    }

    /// The reply of server `ask.server` to `ask`.
    pub fn handle_reply(&mut self, now: Time, mono: Duration, mut ask: Ask, reply: Reply) -> Step {
        ask.tried.push(ask.server);
        let fault = match reply {
            Reply::Granted { token } => {
                let fresh_context = Fresh { nonce: ask.nonce, generation: ask.generation };
                match self.accept(&ask.product, &token, now, Some(fresh_context)) {
                    Ok(result) => {
                        self.backoff[ask.server] = None;
                        if let (Ok(e), false) = (&result, ask.features.is_empty()) {
                            let asked = (e.issued_at.timestamp(), ask.features.clone());
                            self.refreshed_for_features.insert(ask.product.clone(), asked);
                        }
                        return Step::Answer(result.and_then(|e| match has_all(&e, &ask.features) {
                            true => Ok(Verdict { entitlement: e, source: Source::Server }),
                            false => Err(Failure::Local(Error::Token(Code::FeatureNotLicensed))),
                        }));
                    }
                    Err(why) => why,
                }
            }
            // The session died (or its license changed): a check takes a new one, whose refusal
            // (1051 when the seats went to others meanwhile) is signed like an activation's.
            Reply::Refused { .. } if matches!(ask.kind, AskKind::Heartbeat { renew: true, .. }) => {
                ask.tried.pop();
                return Step::Ask(Ask { kind: AskKind::Checkout { borrow_hours: None, user: None }, ..ask });
            }
            Reply::Refused { code, message, proof } => {
                let number = ask.number.expose();
                let proven = code.is_definitive()
                    && proof.as_deref().is_some_and(|p| {
                        self.keys.verify_refusal(p, code, &ask.product, &self.host, number, &ask.nonce).is_ok()
                    });
                if proven {
                    self.backoff[ask.server] = None;
                    // The token refreshed goes — if it is still the one cached.
                    if let Some(text) = &ask.replaces {
                        self.forget_if(&ask.product, text);
                    }
                    return Step::Answer(Err(Failure::Server { code, message }));
                }
                // An explicit checkout or heartbeat asked this server, and it answered.
                if !ask.check {
                    return Step::Answer(Err(Failure::Server { code, message }));
                }
                ask.refused = Some((code, message.clone()));
                format!("the server refused with {code} without proof: {message}")
            }
            Reply::Fault { reason } => reason,
        };
        self.backoff[ask.server] = Some(mono + RETRY_AFTER);
        if let Some(server) = self.next_server(&ask, mono) {
            return Step::Ask(Ask { server, ..ask });
        }
        let last = match ask.refused {
            Some((code, message)) => Failure::Server { code, message },
            None => Failure::Unreachable(fault),
        };
        if !ask.check {
            return Step::Answer(Err(last));
        }
        let local = self.judge_cached(&ask.product, now);
        self.note_mark();
        Step::Answer(from_cache(local, &ask.features, last))
    }

    /// Takes a token a server just issued for `product`, in answer to a request that carried
    /// `fresh`'s nonce (if any). `Err` (the fault's description) when it does not verify, is not
    /// for this product and host, or is a replay: a token without this request's nonce that is
    /// older than what was already accepted. Otherwise it is cached — unless the number was
    /// changed or the token dropped while the request was out — and its offline verdict is the
    /// answer (a clock far off still gives 3004 against a fresh token). Only a token carrying
    /// this request's nonce makes the server's time trusted time, which may lower the mark.
    fn accept(
        &mut self,
        product: &str,
        token: &str,
        now: Time,
        fresh: Option<Fresh>,
    ) -> Result<Result<Entitlement, Failure>, String> {
        let verified = self.keys.verify(token).map_err(|_| "the server's token does not verify".to_owned())?;
        let probe = self.judge_token(&verified, product, now, None);
        if let Err(e) = &probe.result
            && matches!(e.code(), Code::TokenInvalid | Code::HostMismatch)
        {
            return Err(format!("the server's token is not for this product and host ({})", e.code()));
        }
        let issued = verified.claims().issued_at;
        let answers_this_request = fresh.is_some_and(|f| verified.claims().nonce == Some(f.nonce));
        if !answers_this_request && self.floor.is_some_and(|floor| issued < floor.timestamp()) {
            return Err("the server's token is older than one already accepted".to_owned());
        }
        let judgement = if answers_this_request {
            let floor = self.floor.map_or(issued, |f| f.timestamp().max(issued));
            self.floor = at(floor);
            let judgement = self.judge_token(&verified, product, now, at(floor));
            self.mark = judgement.high_water;
            self.persisted_mark = self.mark;
            let mark = self.mark.map_or(floor, |m| m.timestamp());
            // Evidence ahead of the server's time by more than a day is not settled by it: else
            // one file stamped far ahead, then one online check, would blind the evidence.
            let cap = issued.saturating_add(EVIDENCE_AHEAD_OF_SERVER);
            let evidence = self.evidence.map(|t| t.timestamp().min(cap));
            self.evidence_baseline = self.evidence_baseline.max(evidence.and_then(at));
            self.pending.reset = Some(MarkReset { issued_at: issued, mark, evidence });
            judgement
        } else {
            let judgement = self.judge_token(&verified, product, now, self.mark);
            self.mark = judgement.high_water;
            self.note_mark();
            judgement
        };
        if fresh.is_none_or(|f| f.generation == self.generation) {
            self.pending.tokens.insert(product.to_owned(), Some(token.to_owned()));
            let cached = Cached::new(token.to_owned());
            let _ = cached.verified.set(Ok(verified));
            self.tokens.insert(product.to_owned(), cached);
        }
        Ok(judgement.result.map_err(Failure::Local))
    }

    /// Takes a token that came with a command's answer (register, trial) to a request that
    /// carried `nonce`: cached like a check's, its verdict returned. A token that does not
    /// verify is an error (3001) and is not kept.
    pub fn handle_token(
        &mut self,
        now: Time,
        product: &str,
        token: &str,
        nonce: [u8; 16],
    ) -> Result<Entitlement, Failure> {
        let fresh = Fresh { nonce, generation: self.generation };
        match self.accept(product, token, now, Some(fresh)) {
            Ok(result) => result,
            Err(_) => Err(Failure::Local(Error::Token(Code::TokenInvalid))),
        }
    }

    /// Takes a token brought by hand from an air-gapped activation (SPEC §8): verified, for this
    /// host, judged by the clock rules, and cached for its product unless it is older than a
    /// token already accepted. It answers no request of this agent, so its time is not trusted
    /// time. The answer is its verdict.
    /// A token that would not pass now (another host, a lease over, a clock set back) is refused
    /// and changes nothing, and so is one older than the token cached for its product.
    pub fn install(&mut self, now: Time, token: &str) -> Result<Entitlement, Failure> {
        let verified = self.keys.verify(token).map_err(Failure::Local)?;
        let product = verified.claims().product.clone();
        self.judge_token(&verified, &product, now, self.mark).result.map_err(Failure::Local)?;
        let cached = self.tokens.get(&product).and_then(|c| c.verified(&self.keys).as_ref().ok());
        if cached.is_some_and(|c| c.claims().issued_at > verified.claims().issued_at) {
            let why = "the token cached for this product was issued later: keep it";
            return Err(Failure::Local(Error::input("token", why)));
        }
        match self.accept(&product, token, now, None) {
            Ok(verdict) => verdict,
            Err(why) => Err(Failure::Local(Error::input("token", why))),
        }
    }

    /// Whether something waits to be written to disk ([`Policy::poll_persist`] would give it).
    pub fn must_persist(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Puts back in the cache a token a server gave this agent earlier, in answer to one of its
    /// own requests — a floating session the driver still holds, whose token a later session's
    /// replaced. It must verify, be this host's and pass now; unlike [`Policy::install`] it is
    /// not compared with the newest token accepted (the driver vouches that a server sent it to
    /// this agent), and nothing in it becomes trusted time. The answer is its verdict.
    pub fn restore(&mut self, now: Time, token: &str) -> Result<Entitlement, Failure> {
        let verified = self.keys.verify(token).map_err(Failure::Local)?;
        let product = verified.claims().product.clone();
        let judgement = self.judge_token(&verified, &product, now, self.mark);
        let entitlement = judgement.result.map_err(Failure::Local)?;
        self.mark = judgement.high_water;
        self.note_mark();
        self.pending.tokens.insert(product.clone(), Some(token.to_owned()));
        let cached = Cached::new(token.to_owned());
        let _ = cached.verified.set(Ok(verified));
        self.tokens.insert(product, cached);
        Ok(entitlement)
    }

    /// What must be written to disk now, if anything.
    pub fn poll_persist(&mut self) -> Option<Persist> {
        let pending = std::mem::take(&mut self.pending);
        (!pending.is_empty()).then_some(pending)
    }

    /// Takes back a change the driver could not write (the disk refused, or another process
    /// held the cache too long), to be written with the next one. Newer pending changes win.
    pub fn requeue(&mut self, unwritten: Persist) {
        let newer = std::mem::take(&mut self.pending);
        self.pending = unwritten.then(newer);
    }
}

/// What a fresh answer must match: the request's nonce, and the policy's generation then.
#[derive(Clone, Copy, Debug)]
struct Fresh {
    nonce: [u8; 16],
    generation: u64,
}

fn has_all(e: &Entitlement, features: &[String]) -> bool {
    features.iter().all(|f| e.has_feature(f))
}

/// The answer when no server settled the check: the cached token's verdict (with the features'
/// rule), or `otherwise` when nothing is cached.
fn from_cache(
    local: Option<Result<Entitlement, Error>>,
    features: &[String],
    otherwise: Failure,
) -> Result<Verdict, Failure> {
    match local {
        Some(Ok(e)) if has_all(&e, features) => Ok(Verdict { entitlement: e, source: Source::Cache }),
        Some(Ok(_)) => Err(Failure::Local(Error::Token(Code::FeatureNotLicensed))),
        Some(Err(e)) => Err(Failure::Local(e)),
        None => Err(otherwise),
    }
}

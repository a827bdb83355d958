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

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use crate::credential::Secret;
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::host::HostDigest;
use crate::model::Time;
use crate::token::{Entitlement, TrustedKeys, VerifiedToken};

/// The clock mark is written to disk once it has moved this far (a restart loses at most this
/// much of it, well inside any clock tolerance); in memory it is exact.
pub const PERSIST_STEP: chrono::Duration = chrono::Duration::minutes(5);
/// After a server failed, it is left alone this long: checks answer from the cache meanwhile,
/// so a dead server never slows every check.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);
/// Most servers in an agent's list.
pub const MAX_SERVERS: usize = 16;

/// What an agent keeps on disk, in its data directory: it belongs to the directory, not to a
/// server address, so a changed server list or set of trusted keys keeps it. Fields a later
/// release adds carry `#[serde(default)]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// The registration number entered on this host.
    #[serde(default)]
    pub number: Option<String>,
    /// The latest token per product (unverified text: verified on every load).
    #[serde(default)]
    pub tokens: BTreeMap<String, String>,
    /// The clock high-water mark of trusted time, Unix seconds.
    #[serde(default)]
    pub mark: Option<i64>,
    /// The latest issue time of a token accepted from a server: the mark never goes below it, so
    /// replaying an old token cannot pull the clock back.
    #[serde(default)]
    pub floor: Option<i64>,
}

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

/// A license check to send to a server (`POST /v1/activate` with the newer agents' marker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
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

/// What must reach the disk after a step: apply it to the stored [`Memory`] (under the
/// cache's lock, so that concurrent processes merge rather than overwrite).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// `Some(number)`: store (or with `None`, forget) the number; tokens of another number go.
    pub number: Option<Option<String>>,
    /// Tokens to store (`Some`) or delete (`None`), by product.
    pub tokens: BTreeMap<String, Option<String>>,
    /// The clock mark, if it must be written.
    pub mark: Option<MarkUpdate>,
}

/// How the stored clock mark changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkUpdate {
    /// Raise it to at least this (Unix seconds); never lower.
    Raise(i64),
    /// A server answered with a token issued at `issued_at`: the server's time is trusted time,
    /// so the floor rises to it and the mark becomes `mark` (the later of that time and the
    /// clock seen now) even if that is lower than before — a clock once wrongly in the future
    /// locks nobody out — but never lower than the floor.
    Reset {
        /// The new token's issue time, Unix seconds.
        issued_at: i64,
        /// The mark after judging the new token, Unix seconds.
        mark: i64,
    },
}

impl Persist {
    /// Applies this change to what is stored.
    pub fn apply(&self, memory: &mut Memory) {
        if let Some(number) = &self.number {
            if memory.number != *number {
                memory.tokens.clear();
            }
            memory.number.clone_from(number);
        }
        for (product, token) in &self.tokens {
            match token {
                Some(text) => memory.tokens.insert(product.clone(), text.clone()),
                None => memory.tokens.remove(product),
            };
        }
        match self.mark {
            Some(MarkUpdate::Raise(mark)) => memory.mark = Some(memory.mark.map_or(mark, |m| m.max(mark))),
            Some(MarkUpdate::Reset { issued_at, mark }) => {
                let floor = memory.floor.map_or(issued_at, |f| f.max(issued_at));
                memory.floor = Some(floor);
                memory.mark = Some(mark.max(floor));
            }
            None => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.number.is_none() && self.tokens.is_empty() && self.mark.is_none()
    }
}

/// A cached token, verified once.
#[derive(Clone, Debug)]
struct Cached {
    text: String,
    verified: Result<VerifiedToken, Error>,
}

/// The license-check policy of one agent: its trusted keys, its host, its server list, and
/// what it knows (see the module's documentation).
#[derive(Debug)]
pub struct Policy {
    keys: TrustedKeys,
    host: HostDigest,
    servers: usize,
    number: Option<String>,
    tokens: BTreeMap<String, Cached>,
    mark: Option<Time>,
    floor: Option<Time>,
    persisted_mark: Option<Time>,
    pending: Persist,
    /// Per server: until when (on the monotonic clock) it is left alone.
    backoff: Vec<Option<Duration>>,
}

fn at(secs: i64) -> Option<Time> {
    DateTime::from_timestamp(secs, 0)
}

impl Policy {
    /// A policy trusting `keys`, for the host whose digest is `host`, with `servers` servers
    /// (1–16) tried in order. It knows nothing until [`Policy::load`].
    pub fn new(keys: TrustedKeys, host: HostDigest, servers: usize) -> Policy {
        let servers = servers.clamp(1, MAX_SERVERS);
        Policy {
            keys,
            host,
            servers,
            number: None,
            tokens: BTreeMap::new(),
            mark: None,
            floor: None,
            persisted_mark: None,
            pending: Persist::default(),
            backoff: vec![None; servers],
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
                _ => Cached { text: text.clone(), verified: self.keys.verify(text) },
            };
            tokens.insert(product.clone(), cached);
        }
        self.tokens = tokens;
        let stored = memory.mark.and_then(at);
        self.mark = self.mark.max(stored);
        self.persisted_mark = self.persisted_mark.max(stored);
        self.floor = self.floor.max(memory.floor.and_then(at));
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
        self.number.clone_from(&number);
        self.pending.number = Some(number);
    }

    /// Forgets the token of `product` (after a deactivation, say).
    pub fn forget(&mut self, product: &str) {
        self.tokens.remove(product);
        self.pending.tokens.insert(product.to_owned(), None);
    }

    /// The offline verdict on the cached token of `product`, moving the mark.
    fn judge_cached(&mut self, product: &str, now: Time) -> Option<Result<Entitlement, Error>> {
        let cached = self.tokens.get(product)?;
        Some(match &cached.verified {
            Ok(token) => {
                let judgement = token.judge(product, &self.host, now, self.mark);
                self.mark = judgement.high_water;
                judgement.result
            }
            Err(e) => Err(e.clone()),
        })
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
        self.keys.verify(token)?.judge(product, &self.host, now, self.mark).result
    }

    /// Notes the mark for persisting once it has moved [`PERSIST_STEP`] since the last write.
    fn note_mark(&mut self) {
        if let Some(mark) = self.mark
            && self.persisted_mark.is_none_or(|p| mark - p >= PERSIST_STEP)
            && self.pending.mark.is_none()
        {
            self.pending.mark = Some(MarkUpdate::Raise(mark.timestamp()));
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
            && has_all(e, features)
        {
            return Step::Answer(Ok(Verdict { entitlement: e.clone(), source: Source::Cache }));
        }
        let Some(number) = self.number.clone() else {
            return Step::Answer(from_cache(local, features, Failure::Local(Error::Token(Code::NotActivated))));
        };
        let mut nonce = [0u8; 16];
        entropy.fill(&mut nonce);
        let ask = Ask {
            server: 0,
            product: product.to_owned(),
            number: number.into(),
            nonce,
            features: features.to_vec(),
            tried: Vec::new(),
            refused: None,
        };
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

    /// The first server of the list not yet tried for `ask` and not left alone after a failure.
    fn next_server(&self, ask: &Ask, mono: Duration) -> Option<usize> {
        (0..self.servers).find(|s| !ask.tried.contains(s) && self.backoff[*s].is_none_or(|until| mono >= until))
    }

    /// The reply of server `ask.server` to `ask`.
    pub fn handle_reply(&mut self, now: Time, mono: Duration, mut ask: Ask, reply: Reply) -> Step {
        ask.tried.push(ask.server);
        let fault = match reply {
            Reply::Granted { token } => match self.accept(&ask.product, &token, now) {
                Ok(result) => {
                    self.backoff[ask.server] = None;
                    return Step::Answer(result.and_then(|e| match has_all(&e, &ask.features) {
                        true => Ok(Verdict { entitlement: e, source: Source::Server }),
                        false => Err(Failure::Local(Error::Token(Code::FeatureNotLicensed))),
                    }));
                }
                Err(why) => why,
            },
            Reply::Refused { code, message, proof } => {
                let proven = code.is_definitive()
                    && proof.as_deref().is_some_and(|p| {
                        self.keys.verify_refusal(p, code, &ask.product, &self.host, &ask.nonce).is_ok()
                    });
                if proven {
                    self.backoff[ask.server] = None;
                    self.forget(&ask.product);
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
        let local = self.judge_cached(&ask.product, now);
        self.note_mark();
        let last = match ask.refused {
            Some((code, message)) => Failure::Server { code, message },
            None => Failure::Unreachable(fault),
        };
        Step::Answer(from_cache(local, &ask.features, last))
    }

    /// Takes a token a server just issued for `product`. `Err` (a string for the fault's
    /// description) when it does not verify or is not for this product and host: a server fault.
    /// Otherwise it is cached and the server's time becomes trusted time; its offline verdict
    /// is the answer (a clock far off still gives 3004 against a fresh token).
    fn accept(&mut self, product: &str, token: &str, now: Time) -> Result<Result<Entitlement, Failure>, String> {
        let verified = self.keys.verify(token).map_err(|_| "the server's token does not verify".to_owned())?;
        let probe = verified.judge(product, &self.host, now, None);
        if let Err(e) = &probe.result
            && matches!(e.code(), Code::TokenInvalid | Code::HostMismatch)
        {
            return Err(format!("the server's token is not for this product and host ({})", e.code()));
        }
        let issued = verified.claims().issued_at;
        let floor = self.floor.map_or(issued, |f| f.timestamp().max(issued));
        self.floor = at(floor);
        let judgement = verified.judge(product, &self.host, now, at(floor));
        self.mark = judgement.high_water;
        self.persisted_mark = self.mark;
        let mark = self.mark.map_or(floor, |m| m.timestamp());
        self.pending.mark = Some(MarkUpdate::Reset { issued_at: issued, mark });
        self.pending.tokens.insert(product.to_owned(), Some(token.to_owned()));
        self.tokens.insert(product.to_owned(), Cached { text: token.to_owned(), verified: Ok(verified) });
        Ok(judgement.result.map_err(Failure::Local))
    }

    /// Takes a token that came with a command's answer (register, trial): cached like a check's,
    /// its verdict returned. A token that does not verify is an error (3001) and is not kept.
    pub fn handle_token(&mut self, now: Time, product: &str, token: &str) -> Result<Entitlement, Failure> {
        match self.accept(product, token, now) {
            Ok(result) => result,
            Err(_) => Err(Failure::Local(Error::Token(Code::TokenInvalid))),
        }
    }

    /// What must be written to disk now, if anything.
    pub fn poll_persist(&mut self) -> Option<Persist> {
        let pending = std::mem::take(&mut self.pending);
        (!pending.is_empty()).then_some(pending)
    }

    /// Takes back a change the driver could not write (the disk refused, or another process
    /// held the cache too long), to be written with the next one. Newer pending changes win.
    pub fn requeue(&mut self, unwritten: Persist) {
        let newer = std::mem::replace(&mut self.pending, unwritten);
        if newer.number.is_some() {
            self.pending.number = newer.number;
        }
        self.pending.tokens.extend(newer.tokens);
        if newer.mark.is_some() {
            self.pending.mark = newer.mark;
        }
        if let Some(MarkUpdate::Raise(_)) = self.pending.mark {
            // Not on disk: the next move of the mark must write it.
            self.persisted_mark = None;
            self.pending.mark = None;
        }
    }
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

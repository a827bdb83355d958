//! What the agent keeps on disk ([`Memory`]) and the changes the policy asks to be written to it
//! ([`Persist`]), merged under the cache's lock so that concurrent processes never overwrite
//! each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an agent keeps on disk, in its data directory: it belongs to the directory, not to a
/// server address, so a changed server list or set of trusted keys keeps it. Fields a later
/// release adds carry `#[serde(default)]`; fields this release does not know are kept as they
/// are ([`Memory::newer`]), so a program of this release sharing the directory with a newer one
/// never erases what the newer one wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// The vendor name that keys this machine's fingerprint, recorded by the first program that
    /// set one, so that a program (or the CLI) that does not say uses the same.
    #[serde(default)]
    pub vendor: Option<String>,
    /// The newest time the system's own files showed when a server's time was last trusted
    /// (see [`Policy::observe_time`](super::Policy::observe_time)), Unix seconds: newer evidence moves the mark, older does not.
    #[serde(default)]
    pub evidence: Option<i64>,
    /// Fields of a newer release, kept unread.
    #[serde(flatten)]
    pub newer: BTreeMap<String, rmpv::Value>,
}

/// What must reach the disk after a step: apply it to the stored [`Memory`] (under the
/// cache's lock, so that concurrent processes merge rather than overwrite).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persist {
    /// `Some(number)`: store (or with `None`, forget) the number; tokens of another number go.
    pub number: Option<Option<String>>,
    /// Tokens to store (`Some`) or delete (`None`), by product.
    pub tokens: BTreeMap<String, Option<String>>,
    /// Tokens to delete only if the one stored for the product is still this text: what a
    /// refusal or a release is about, which another program may have replaced meanwhile.
    pub drop_if: BTreeMap<String, String>,
    /// A server's fresh answer (its token carried this agent's nonce): the server's time is
    /// trusted time, so the floor rises to the token's issue time and the mark becomes the mark
    /// judged with it — even if lower than before (a clock once wrongly in the future locks
    /// nobody out), never below the floor.
    pub reset: Option<MarkReset>,
    /// Raise the mark to at least this (Unix seconds); never lower.
    pub raise: Option<i64>,
    /// Record this vendor name if none is recorded.
    pub vendor: Option<String>,
}

/// See [`Persist::reset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkReset {
    /// The fresh token's issue time, Unix seconds.
    pub issued_at: i64,
    /// The mark after judging it, Unix seconds.
    pub mark: i64,
    /// The newest time the system's files showed then, if they were looked at.
    pub evidence: Option<i64>,
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
        for (product, text) in &self.drop_if {
            if memory.tokens.get(product) == Some(text) {
                memory.tokens.remove(product);
            }
        }
        if let Some(reset) = self.reset {
            let floor = memory.floor.map_or(reset.issued_at, |f| f.max(reset.issued_at));
            memory.floor = Some(floor);
            memory.mark = Some(reset.mark.max(floor));
            memory.evidence = memory.evidence.max(reset.evidence);
        }
        if let Some(mark) = self.raise {
            memory.mark = Some(memory.mark.map_or(mark, |m| m.max(mark)));
        }
        if memory.vendor.is_none() {
            memory.vendor.clone_from(&self.vendor);
        }
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Persist::default()
    }

    /// Folds a newer change into this older one: the newer wins where both say something.
    pub(super) fn then(mut self, newer: Persist) -> Persist {
        if newer.number.is_some() {
            self.number = newer.number;
        }
        for product in newer.tokens.keys() {
            self.drop_if.remove(product);
        }
        self.tokens.extend(newer.tokens);
        self.drop_if.extend(newer.drop_if);
        self.reset = match (self.reset, newer.reset) {
            (Some(a), Some(b)) => Some(if b.issued_at >= a.issued_at { b } else { a }),
            (a, b) => b.or(a),
        };
        self.raise = self.raise.max(newer.raise);
        self.vendor = newer.vendor.or(self.vendor);
        self
    }
}

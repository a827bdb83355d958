//! Mail to customers, queued in the ledger with the change that causes it.
//!
//! A registration writes its mail in the same transaction as the account, so the mail exists
//! exactly when the account does, on every store. The ledger keeps what the mail says as data
//! ([`Message`]) and in which language ([`Lang`]); the server words it when it delivers it. A
//! queued mail also carries its delivery state: a node *claims* it for a while before sending it
//! (so that, in a cluster, one node sends it), deletes it once sent, and after a failure puts it
//! back with a later attempt time ([`Mail::failed`]).

use serde::{Deserialize, Serialize};

use crate::entropy::Entropy;
use crate::model::Time;

/// The language of an account's mail (SPEC §13): Russian unless the customer chose English.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Lang {
    /// Russian, the default.
    #[default]
    Ru,
    /// English.
    En,
}

impl Lang {
    /// Every language, in the order they are documented.
    pub const ALL: [Lang; 2] = [Lang::Ru, Lang::En];

    /// `ru` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    /// Reads `ru` or `en` (case-insensitively).
    pub fn parse(text: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.as_str().eq_ignore_ascii_case(text))
    }

    /// The language of an account stored before accounts had one: English, the only language
    /// release 0.1.0 mailed in.
    pub fn before_choice() -> Lang {
        Lang::En
    }
}

/// What a mail tells the customer; worded by the server in the account's language.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Message {
    /// A new account: its registration number and trial.
    Registered {
        /// The organisation that registered.
        organization: String,
        /// The product's display name.
        product_name: String,
        /// The registration number, as the customer types it.
        number: String,
        /// When the trial ends.
        #[serde(default, with = "chrono::serde::ts_seconds_option")]
        trial_ends: Option<Time>,
    },
    /// A reminder of an account's registration number, asked for by e-mail.
    Reminder {
        /// The account's organisation.
        organization: String,
        /// The registration number.
        number: String,
    },
    /// A kind of message a newer release queued: this one cannot word it, so it leaves it
    /// queued for a node that can.
    #[serde(other)]
    Unknown,
}

/// One queued mail: the recipient, what to tell them, and how its delivery goes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mail {
    /// The recipient.
    pub to: String,
    /// The language to word it in.
    #[serde(default)]
    pub lang: Lang,
    /// What to tell.
    pub message: Message,
    /// When it was queued.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub queued_at: Time,
    /// Failed deliveries so far.
    #[serde(default)]
    pub attempts: u32,
    /// Not to be tried before this (after a failure).
    #[serde(default, with = "chrono::serde::ts_seconds_option")]
    pub not_before: Option<Time>,
    /// A node is delivering it until this time; after it, any node may.
    #[serde(default, with = "chrono::serde::ts_seconds_option")]
    pub claimed_until: Option<Time>,
    /// Who holds the claim: only that delivery may remove the mail or put it back.
    #[serde(default)]
    pub claim: Option<String>,
    /// Why the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The body may carry a registration number: never printed.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("to", &self.to)
            .field("lang", &self.lang)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Registered { .. } => "Registered",
            Message::Reminder { .. } => "Reminder",
            Message::Unknown => "Unknown",
        })
    }
}

/// The longest wait between two attempts.
pub const MAX_BACKOFF_SECONDS: i64 = 3_600;
/// The wait after the first failure; it doubles with each further one.
pub const FIRST_BACKOFF_SECONDS: i64 = 10;

impl Mail {
    /// A mail to queue now.
    pub fn new(to: String, lang: Lang, message: Message, now: Time) -> Mail {
        Mail {
            to,
            lang,
            message,
            queued_at: now,
            attempts: 0,
            not_before: None,
            claimed_until: None,
            claim: None,
            last_error: None,
        }
    }

    /// The queue id of an account's reminder: one per account, so that asking again while one
    /// waits queues nothing more.
    pub fn reminder_id(account_id: &str) -> String {
        format!("r-{account_id}")
    }

    /// A new queue id: the queuing time first, so that ids sort oldest first, then randomness.
    pub fn new_id(now: Time, entropy: &mut dyn Entropy) -> String {
        let mut random = [0u8; 8];
        entropy.fill(&mut random);
        format!("{:012x}{}", now.timestamp().max(0), hex::encode(random))
    }

    /// Whether a node may take it at `now`: a kind this release can word, not waiting for a
    /// retry, and nobody's claim alive.
    pub fn is_due(&self, now: Time) -> bool {
        self.message != Message::Unknown
            && self.not_before.is_none_or(|t| t <= now)
            && self.claimed_until.is_none_or(|t| t <= now)
    }

    /// Takes it for delivery until `until` under the claim `token` (fresh for each attempt), if it
    /// is due at `now`.
    pub fn claim(&mut self, now: Time, until: Time, token: &str) -> bool {
        if !self.is_due(now) {
            return false;
        }
        self.claimed_until = Some(until);
        self.claim = Some(token.to_owned());
        true
    }

    /// Whether `token`'s claim still holds it (no other delivery took it over after it lapsed).
    pub fn is_claimed_by(&self, token: &str) -> bool {
        self.claim.as_deref() == Some(token)
    }

    /// Puts it back after a failed attempt: the wait doubles from [`FIRST_BACKOFF_SECONDS`] up to
    /// [`MAX_BACKOFF_SECONDS`]. The mail is kept until it is delivered.
    pub fn failed(&mut self, now: Time, why: &str) {
        self.claim = None;
        self.attempts = self.attempts.saturating_add(1);
        let wait =
            FIRST_BACKOFF_SECONDS.saturating_mul(1 << self.attempts.saturating_sub(1).min(20)).min(MAX_BACKOFF_SECONDS);
        self.not_before = Some(now + chrono::Duration::seconds(wait));
        self.claimed_until = None;
        self.last_error = Some(why.chars().take(500).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    fn at(seconds: i64) -> Time {
        Time::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn mail() -> Mail {
        let message = Message::Reminder { organization: "Org".into(), number: "MIKO-X".into() };
        Mail::new("a@example.com".into(), Lang::Ru, message, at(0))
    }

    #[test]
    fn a_claim_holds_off_other_nodes_until_it_lapses() {
        let mut m = mail();
        assert!(m.claim(at(0), at(120), "a"));
        assert!(!m.clone().claim(at(119), at(300), "b"), "claimed by another node");
        assert!(m.claim(at(120), at(240), "b"), "a lapsed claim (a node died) is taken over");
        assert!(m.is_claimed_by("b") && !m.is_claimed_by("a"), "the first delivery no longer owns it");
        m.message = Message::Unknown;
        assert!(!m.clone().claim(at(1_000), at(1_100), "c"), "a newer release's message is left alone");
    }

    #[test]
    fn failures_back_off_doubling_up_to_an_hour_and_keep_the_mail() {
        let mut m = mail();
        let mut waits = Vec::new();
        for n in 0..12 {
            m.claim(at(n * 10_000), at(n * 10_000 + 120), "t");
            m.failed(at(n * 10_000), "550 mailbox unavailable");
            waits.push((m.not_before.unwrap() - at(n * 10_000)).num_seconds());
            assert!(!m.is_due(at(n * 10_000)));
        }
        assert_eq!(&waits[..5], &[10, 20, 40, 80, 160]);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF_SECONDS);
        assert_eq!(m.attempts, 12);
        assert_eq!(m.last_error.as_deref(), Some("550 mailbox unavailable"));
    }

    #[test]
    fn ids_sort_by_queuing_time_and_debug_hides_the_message() {
        let mut e = SeededEntropy::new(7);
        let (a, b) = (Mail::new_id(at(5), &mut e), Mail::new_id(at(6), &mut e));
        assert!(a < b && a.len() == 28, "{a} {b}");
        assert!(!format!("{:?}", mail()).contains("MIKO-X"));
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("de"), None);
    }
}

//! The records of the license model: products, accounts with their licenses and bindings, and
//! coupons. Times are kept as whole seconds since the Unix epoch (UTC).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::host::Fingerprint;

/// A point in time as stored: whole seconds since the Unix epoch, UTC.
pub type Time = DateTime<Utc>;

/// The time `secs` seconds after the Unix epoch, if it can be represented.
pub(crate) fn from_unix(secs: i64) -> Option<Time> {
    DateTime::from_timestamp(secs, 0)
}

/// A licensable module and its settings (SPEC §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The slug, e.g. `call-journal`.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Length of a trial, in days.
    pub trial_days: u32,
    /// Hosts a trial may bind at once.
    pub trial_seats: u32,
    /// How long a token stays usable without contacting the server, in hours.
    pub offline_lease_hours: u32,
    /// How far the agent's clock may fall behind time already seen before it counts as set back.
    pub clock_tolerance_minutes: u32,
    /// An agent asks the server again once its token is this old (or half its lease, whichever
    /// comes first), so a reset binding loses its seat within this long online.
    #[serde(default = "default_refresh_hours")]
    pub refresh_hours: u32,
}

fn default_refresh_hours() -> u32 {
    24
}

/// Changes to a product's settings; `None` keeps the current value (or the default on create).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSettings {
    /// See [`Product::name`].
    pub name: Option<String>,
    /// See [`Product::trial_days`].
    pub trial_days: Option<u32>,
    /// See [`Product::trial_seats`].
    pub trial_seats: Option<u32>,
    /// See [`Product::offline_lease_hours`].
    pub offline_lease_hours: Option<u32>,
    /// See [`Product::clock_tolerance_minutes`].
    pub clock_tolerance_minutes: Option<u32>,
    /// See [`Product::refresh_hours`].
    #[serde(default)]
    pub refresh_hours: Option<u32>,
}

impl Product {
    /// A product with the SPEC defaults: 30-day single-seat trial, a week's lease, an hour's
    /// tolerance, a refresh every day.
    pub fn new(id: &str) -> Result<Product, Error> {
        validate_product_id(id)?;
        Ok(Product {
            id: id.to_owned(),
            name: id.to_owned(),
            trial_days: 30,
            trial_seats: 1,
            offline_lease_hours: 168,
            clock_tolerance_minutes: 60,
            refresh_hours: default_refresh_hours(),
        })
    }

    /// Applies `settings`, refusing values out of range (1001) without changing anything.
    pub fn apply(&mut self, settings: &ProductSettings) -> Result<(), Error> {
        let mut next = self.clone();
        if let Some(name) = &settings.name {
            next.name = bounded_text("name", name, 1, 200)?;
        }
        let range = |field: &'static str, v: Option<u32>, lo: u32, hi: u32, cur: u32| match v {
            Some(v) if !(lo..=hi).contains(&v) => Err(Error::input(field, format!("must be {lo}..={hi}"))),
            Some(v) => Ok(v),
            None => Ok(cur),
        };
        next.trial_days = range("trial_days", settings.trial_days, 1, 3650, next.trial_days)?;
        next.trial_seats = range("trial_seats", settings.trial_seats, 1, 10_000, next.trial_seats)?;
        next.offline_lease_hours =
            range("offline_lease_hours", settings.offline_lease_hours, 1, 24 * 366, next.offline_lease_hours)?;
        next.clock_tolerance_minutes = range(
            "clock_tolerance_minutes",
            settings.clock_tolerance_minutes,
            0,
            7 * 24 * 60,
            next.clock_tolerance_minutes,
        )?;
        next.refresh_hours = range("refresh_hours", settings.refresh_hours, 1, 24 * 366, next.refresh_hours)?;
        *self = next;
        Ok(())
    }
}

/// Checks a product slug: 1–64 of `a-z 0-9 -`, starting with a letter or digit.
pub fn validate_product_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok { Ok(()) } else { Err(Error::input("product", "a slug of 1-64 characters a-z, 0-9 and '-'")) }
}

/// Trims `text` and checks its length in characters.
pub(crate) fn bounded_text(field: &'static str, text: &str, min: usize, max: usize) -> Result<String, Error> {
    let t = text.trim();
    let n = t.chars().count();
    if n < min || n > max || t.chars().any(char::is_control) {
        return Err(Error::input(field, format!("must have {min}-{max} characters and no control characters")));
    }
    Ok(t.to_owned())
}

/// What kind of right a license grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LicenseKind {
    /// A time-limited evaluation; once per account and product.
    Trial,
    /// A paid license with an end date.
    Subscription,
    /// A paid license without an end date.
    Perpetual,
}

impl LicenseKind {
    /// The wire name: `trial`, `subscription` or `perpetual`.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseKind::Trial => "trial",
            LicenseKind::Subscription => "subscription",
            LicenseKind::Perpetual => "perpetual",
        }
    }
}

/// A right to a product for `seats` hosts at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    /// `lic_…`.
    pub id: String,
    /// The product's slug.
    pub product: String,
    /// Trial, subscription or perpetual.
    pub kind: LicenseKind,
    /// Hosts that may be bound at once.
    pub seats: u32,
    /// When the license began.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub starts_at: Time,
    /// When the term ends; `None` for perpetual licenses.
    #[serde(with = "chrono::serde::ts_seconds_option")]
    pub expires_at: Option<Time>,
}

impl License {
    /// Whether the term is still running at `now`.
    pub fn is_current(&self, now: Time) -> bool {
        self.expires_at.is_none_or(|end| now < end)
    }
}

/// A host as presented in a request, or as last seen in a binding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// The fingerprint (keyed hashes of hardware components).
    pub fingerprint: Fingerprint,
    /// The host name, for people.
    pub hostname: String,
    /// The operating system, for people.
    pub os: String,
    /// Only in requests, never stored: the same machine's fingerprint as release 0.1.0 hashed it,
    /// so that bindings and registrations made by a 0.1.0 agent still find their host; the
    /// ledger moves such a record to [`Host::fingerprint`] when it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<Fingerprint>,
}

impl Host {
    /// Validates the display fields (at most 255 characters, no control characters).
    pub fn new(fingerprint: Fingerprint, hostname: &str, os: &str) -> Result<Host, Error> {
        Ok(Host {
            fingerprint,
            hostname: bounded_text("host.hostname", hostname, 0, 255)?,
            os: bounded_text("host.os", os, 0, 255)?,
            legacy: None,
        })
    }

    /// The same host, also presenting its release-0.1.0 fingerprint.
    pub fn with_legacy(mut self, legacy: Option<Fingerprint>) -> Host {
        self.legacy = legacy;
        self
    }

    /// Whether this presented host is the machine a record identifies by `stored` — and, for a
    /// record that moved from release 0.1.0's hashing to this release's, by `stored_0_1_0`, the
    /// fingerprint it had before (which 0.1.0 agents on the same machine still present).
    pub fn is(&self, stored: &Fingerprint, stored_0_1_0: Option<&Fingerprint>) -> HostMatch {
        let by = |stored: &Fingerprint| {
            if stored.matches(&self.fingerprint) {
                Some(true)
            } else if self.legacy.as_ref().is_some_and(|legacy| stored.matches(legacy)) {
                Some(false)
            } else {
                None
            }
        };
        match (by(stored), stored_0_1_0.and_then(by)) {
            (Some(true), _) | (_, Some(_)) => HostMatch::Current,
            (Some(false), None) => HostMatch::Legacy,
            (None, None) => HostMatch::Other,
        }
    }

    /// The host as stored: without the request-only legacy fingerprint.
    pub fn stored(&self) -> Host {
        Host { legacy: None, ..self.clone() }
    }
}

/// How a presented host relates to a stored fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMatch {
    /// The same host, by its current fingerprint.
    Current,
    /// The same host, by the fingerprint release 0.1.0 made of it, presented by a newer agent:
    /// the record should move to the current fingerprint (keeping the old one for 0.1.0 agents).
    Legacy,
    /// Another host.
    Other,
}

impl HostMatch {
    /// Whether it is the same host either way.
    pub fn is_same(self) -> bool {
        self != HostMatch::Other
    }
}

/// A seat of a license held by a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// `bnd_…`.
    pub id: String,
    /// The license whose seat this is.
    pub license_id: String,
    /// The license's product.
    pub product: String,
    /// The host, as last seen.
    pub host: Host,
    /// The fingerprint the seat was first taken with. A host is this binding's only while it
    /// matches the anchor (SPEC §1's two-thirds rule), so a binding never drifts further than the
    /// rule from where it began, however often its components change one at a time.
    pub anchor: Fingerprint,
    /// For a binding a release-0.1.0 agent made and a newer agent on the same machine then moved
    /// to this release's hashing: the anchor as 0.1.0 hashed it, which 0.1.0 programs still
    /// running on the machine present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_0_1_0: Option<Fingerprint>,
    /// When the seat was taken.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub bound_at: Time,
    /// The host's latest check.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub last_seen: Time,
}

/// A customer organisation and everything it holds; one record, so a command on an account
/// reads and writes one record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `acc_…`.
    pub id: String,
    /// The e-mail as given (unique case-insensitively).
    pub email: String,
    /// The organisation's name.
    pub organization: String,
    /// A contact person.
    pub contact: Option<String>,
    /// A phone number.
    pub phone: Option<String>,
    /// The registration number's canonical body (the deployment's prefix is added for display).
    pub number: String,
    /// When the account was registered.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub created_at: Time,
    /// The host that registered the account.
    pub registration_host: Fingerprint,
    /// The registering host as release 0.1.0 hashed it, once the registration moved to this
    /// release's hashing (see [`Binding::anchor_0_1_0`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_host_0_1_0: Option<Fingerprint>,
    /// Licenses, oldest first.
    pub licenses: Vec<License>,
    /// Seats held by hosts.
    pub bindings: Vec<Binding>,
    /// Products whose trial the account has used (registration counts).
    pub trials_used: BTreeSet<String>,
}

impl Binding {
    /// Whether `host` is the machine holding this seat.
    pub fn held_by(&self, host: &Host) -> HostMatch {
        host.is(&self.anchor, self.anchor_0_1_0.as_ref())
    }
}

impl Account {
    /// Whether `host` is the machine that registered this account.
    pub fn registered_by(&self, host: &Host) -> HostMatch {
        host.is(&self.registration_host, self.registration_host_0_1_0.as_ref())
    }

    /// Hosts bound to license `license_id`.
    pub fn seats_used(&self, license_id: &str) -> u32 {
        self.bindings.iter().filter(|b| b.license_id == license_id).count() as u32
    }

    /// The license with this id.
    pub fn license(&self, license_id: &str) -> Option<&License> {
        self.licenses.iter().find(|l| l.id == license_id)
    }
}

/// The redemption of a coupon.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redemption {
    /// The account that redeemed it.
    pub account_id: String,
    /// The license it created.
    pub license_id: String,
    /// When.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub at: Time,
}

/// A single-use code that adds a license to the account that redeems it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// The code's canonical body.
    pub body: String,
    /// The product of the license it creates.
    pub product: String,
    /// Seats of that license.
    pub seats: u32,
    /// Term of that license in days; `None` makes it perpetual.
    pub term_days: Option<u32>,
    /// When it was issued.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub issued_at: Time,
    /// Set once, when redeemed.
    pub redeemed: Option<Redemption>,
}

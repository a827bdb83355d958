//! The records of the license model: products, accounts with their licenses and bindings, and
//! coupons. Times are kept as whole seconds since the Unix epoch (UTC).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::host::Fingerprint;

/// A point in time as stored: whole seconds since the Unix epoch, UTC.
pub type Time = DateTime<Utc>;

/// `t` plus whole days; the latest representable time rather than an overflow, so no number of
/// extensions can make a command panic.
pub(crate) fn add_days(t: Time, days: u32) -> Time {
    t.checked_add_signed(chrono::Duration::days(i64::from(days))).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

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
    /// The features (entitlements) licenses of this product may grant, as slugs, sorted.
    #[serde(default)]
    pub features: BTreeSet<String>,
    /// Days after a license's `expires_at` during which checks still pass, `in_grace`.
    #[serde(default)]
    pub grace_days: u32,
    /// Resets and deactivations a license allows in any 30 days (0: no limit).
    #[serde(default)]
    pub max_resets_per_30_days: u32,
    /// How long a floating session lives without a heartbeat, in seconds (SPEC §11).
    #[serde(default = "default_session_lease_seconds")]
    pub session_lease_seconds: u32,
    /// Most hours a floating session may be borrowed for, offline (0: no borrowing).
    #[serde(default)]
    pub max_borrow_hours: u32,
    /// The lease of a token from an air-gapped activation (SPEC §8), in days.
    #[serde(default = "default_offline_activation_days")]
    pub offline_activation_days: u32,
}

fn default_refresh_hours() -> u32 {
    24
}

fn default_session_lease_seconds() -> u32 {
    900
}

fn default_offline_activation_days() -> u32 {
    30
}

/// Most features a product declares.
pub const MAX_FEATURES: usize = 64;
/// Most characters all of a product's feature slugs have together, so that a token granting
/// every one stays well inside the largest token agents read (2 KiB).
pub const MAX_FEATURE_CHARS: usize = 1024;
/// Highest `max_resets_per_30_days`; also how many resets a license remembers.
pub const MAX_RESETS_PER_30_DAYS: u32 = 1000;
/// Longest session lease a product may set: a day.
pub const MAX_SESSION_LEASE_SECONDS: u32 = 24 * 3600;
/// Longest borrow a product may allow: a year.
pub const MAX_BORROW_HOURS: u32 = 24 * 366;
/// The window over which resets are counted.
pub const RESET_WINDOW: chrono::Duration = chrono::Duration::days(30);

/// Changes to a product's settings; `None` keeps the current value (or the default on create).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// See [`Product::features`]; replaces the whole set.
    #[serde(default)]
    pub features: Option<BTreeSet<String>>,
    /// See [`Product::grace_days`].
    #[serde(default)]
    pub grace_days: Option<u32>,
    /// See [`Product::max_resets_per_30_days`].
    #[serde(default)]
    pub max_resets_per_30_days: Option<u32>,
    /// See [`Product::session_lease_seconds`].
    #[serde(default)]
    pub session_lease_seconds: Option<u32>,
    /// See [`Product::max_borrow_hours`].
    #[serde(default)]
    pub max_borrow_hours: Option<u32>,
    /// See [`Product::offline_activation_days`].
    #[serde(default)]
    pub offline_activation_days: Option<u32>,
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
            features: BTreeSet::new(),
            grace_days: 0,
            max_resets_per_30_days: 0,
            session_lease_seconds: default_session_lease_seconds(),
            max_borrow_hours: 0,
            offline_activation_days: default_offline_activation_days(),
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
        next.grace_days = range("grace_days", settings.grace_days, 0, 3650, next.grace_days)?;
        next.max_resets_per_30_days = range(
            "max_resets_per_30_days",
            settings.max_resets_per_30_days,
            0,
            MAX_RESETS_PER_30_DAYS,
            next.max_resets_per_30_days,
        )?;
        next.session_lease_seconds = range(
            "session_lease_seconds",
            settings.session_lease_seconds,
            60,
            MAX_SESSION_LEASE_SECONDS,
            next.session_lease_seconds,
        )?;
        next.max_borrow_hours =
            range("max_borrow_hours", settings.max_borrow_hours, 0, MAX_BORROW_HOURS, next.max_borrow_hours)?;
        next.offline_activation_days =
            range("offline_activation_days", settings.offline_activation_days, 1, 366, next.offline_activation_days)?;
        if let Some(features) = &settings.features {
            next.features = validate_features("features", features)?;
        }
        *self = next;
        Ok(())
    }

    /// Checks that every one of `features` is declared by this product (1001 naming `field`).
    pub fn check_declares(&self, field: &'static str, features: &BTreeSet<String>) -> Result<(), Error> {
        match features.iter().find(|f| !self.features.contains(*f)) {
            None => Ok(()),
            Some(f) => Err(Error::input(field, format!("product {} declares no feature {f:?}", self.id))),
        }
    }
}

/// Checks a set of feature slugs: at most [`MAX_FEATURES`], each a slug as product ids are.
pub fn validate_features(field: &'static str, features: &BTreeSet<String>) -> Result<BTreeSet<String>, Error> {
    if features.len() > MAX_FEATURES || features.iter().map(String::len).sum::<usize>() > MAX_FEATURE_CHARS {
        return Err(Error::input(
            field,
            format!("at most {MAX_FEATURES} features of {MAX_FEATURE_CHARS} characters in all"),
        ));
    }
    if features.iter().any(|f| validate_product_id(f).is_err()) {
        return Err(Error::input(field, "each feature is a slug of 1-64 characters a-z, 0-9 and '-'"));
    }
    Ok(features.clone())
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

/// How a license's seats are taken (SPEC §11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum LicenseModel {
    /// A seat is a host bound to the license (`/v1/activate`); every license before floating
    /// licenses existed, and every trial.
    #[default]
    Host,
    /// A seat is a live session on any host (`/v1/sessions`): concurrent use.
    Floating,
}

impl LicenseModel {
    /// The wire name: `host` or `floating`.
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseModel::Host => "host",
            LicenseModel::Floating => "floating",
        }
    }

    /// Whether it is [`LicenseModel::Host`] (records leave the default out).
    pub fn is_host(&self) -> bool {
        *self == LicenseModel::Host
    }
}

/// A right to a product for `seats` hosts (or, floating, sessions) at once.
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
    /// The features it grants, among those its product declares; `None`: all of them (trials,
    /// licenses sold without an edition, and every license made before features existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeSet<String>>,
    /// When its seats were freed by a reset or a deactivation, as Unix seconds, oldest first; the
    /// latest [`MAX_RESETS_PER_30_DAYS`] at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resets: Vec<i64>,
    /// Whether its seats are bound hosts or live sessions.
    #[serde(default, skip_serializing_if = "LicenseModel::is_host")]
    pub model: LicenseModel,
    /// When the vendor revoked it: from then on it grants nothing, grace or not.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "chrono::serde::ts_seconds_option")]
    pub revoked_at: Option<Time>,
}

/// What a license grants at a moment, given its product's settings: the facts a license object
/// shows and a token carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LicenseFacts {
    /// The features granted, sorted.
    pub features: Vec<String>,
    /// When the term ends after the grace period; `None` for perpetual.
    pub grace_until: Option<Time>,
    /// Resets and deactivations still allowed in the current 30 days; `None`: no limit.
    pub resets_left: Option<u32>,
    /// Whether the term as sold is over and the grace period running.
    pub in_grace: bool,
}

impl License {
    /// A new trial of `product` from `now`: the product's trial seats and days, all its features.
    pub fn trial(id: String, product: &Product, now: Time) -> License {
        License {
            id,
            product: product.id.clone(),
            kind: LicenseKind::Trial,
            seats: product.trial_seats,
            starts_at: now,
            expires_at: Some(add_days(now, product.trial_days)),
            features: None,
            resets: Vec::new(),
            model: LicenseModel::Host,
            revoked_at: None,
        }
    }

    /// When the term ends after `product`'s grace period; `None` for perpetual.
    pub fn term_end(&self, product: &Product) -> Option<Time> {
        self.expires_at.map(|end| add_days(end, product.grace_days))
    }

    /// Whether checks pass at `now`: not revoked, and the term, grace included, still running.
    pub fn is_current(&self, product: &Product, now: Time) -> bool {
        self.revoked_at.is_none() && self.term_end(product).is_none_or(|end| now < end)
    }

    /// Whether at `now` the term as sold is over and `product`'s grace period is running.
    pub fn in_grace(&self, product: &Product, now: Time) -> bool {
        self.expires_at.is_some_and(|end| now >= end) && self.is_current(product, now)
    }

    /// The features granted: the license's own among those `product` declares, or all of them.
    pub fn features_granted(&self, product: &Product) -> Vec<String> {
        match &self.features {
            None => product.features.iter().cloned().collect(),
            Some(own) => own.intersection(&product.features).cloned().collect(),
        }
    }

    /// Resets counted at `now`: those in the 30 days up to it, both ends included (times are
    /// whole seconds, so a reset counts for at least a full 30 days).
    fn recent_resets(&self, now: Time) -> u32 {
        let since = now.timestamp().saturating_sub(RESET_WINDOW.num_seconds());
        self.resets.iter().filter(|&&t| t >= since).count() as u32
    }

    /// Resets and deactivations still allowed at `now`; `None` when `product` sets no limit.
    pub fn resets_left(&self, product: &Product, now: Time) -> Option<u32> {
        let limit = product.max_resets_per_30_days;
        (limit > 0).then(|| limit.saturating_sub(self.recent_resets(now)))
    }

    /// Counts a reset or deactivation at `now`, or refuses it (1054) when the product's limit
    /// for 30 days is reached.
    pub fn count_reset(&mut self, product: &Product, now: Time) -> Result<(), Error> {
        if self.resets_left(product, now) == Some(0) {
            return Err(Error::Refused(crate::error::Code::ResetLimitReached));
        }
        self.resets.push(now.timestamp());
        let excess = self.resets.len().saturating_sub(MAX_RESETS_PER_30_DAYS as usize);
        self.resets.drain(..excess);
        Ok(())
    }

    /// The facts of this license at `now` under `product`'s settings.
    pub fn facts(&self, product: &Product, now: Time) -> LicenseFacts {
        LicenseFacts {
            features: self.features_granted(product),
            grace_until: self.term_end(product),
            resets_left: self.resets_left(product, now),
            in_grace: self.in_grace(product, now),
        }
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

/// A floating seat in use: a session on a host, alive while its lease lasts (SPEC §11). A session
/// whose lease has passed is dead and holds no seat, whether or not it is still stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// `ses_…`.
    pub id: String,
    /// The floating license whose seat it holds.
    pub license_id: String,
    /// The license's product.
    pub product: String,
    /// The host that checked it out.
    pub host: Host,
    /// The user the program runs as, for people (empty when not given).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// When it was checked out.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub started_at: Time,
    /// Its latest heartbeat (the checkout counts as the first).
    #[serde(with = "chrono::serde::ts_seconds")]
    pub last_heartbeat: Time,
    /// When it dies unless a heartbeat extends it.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub lease_until: Time,
    /// Whether it was borrowed: its lease was set to the borrow, for use offline.
    #[serde(default)]
    pub borrowed: bool,
}

impl Session {
    /// Whether it holds its seat at `now`.
    pub fn is_live(&self, now: Time) -> bool {
        now < self.lease_until
    }
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
    /// Sessions on its floating licenses (dead ones go at the account's next session command, an
    /// hour after they died).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<Session>,
    /// The language of the account's mail (SPEC §13), chosen at registration (Russian unless
    /// asked otherwise). An account registered before there was a choice keeps the English its
    /// mail always had ([`crate::mail::Lang::before_choice`]).
    #[serde(default = "crate::mail::Lang::before_choice")]
    pub lang: crate::mail::Lang,
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

    /// Sessions live at `now` on license `license_id`.
    pub fn sessions_live(&self, license_id: &str, now: Time) -> u32 {
        self.sessions.iter().filter(|s| s.license_id == license_id && s.is_live(now)).count() as u32
    }

    /// Seats of `license` taken at `now`: bound hosts, or for a floating license live sessions.
    pub fn seats_taken(&self, license: &License, now: Time) -> u32 {
        match license.model {
            LicenseModel::Host => self.seats_used(&license.id),
            LicenseModel::Floating => self.sessions_live(&license.id, now),
        }
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

/// What a coupon does to the account that redeems it (SPEC §10).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Offer {
    /// A new license.
    License {
        /// Its seats.
        seats: u32,
        /// Its term in days; `None` makes it perpetual.
        term_days: Option<u32>,
        /// Its features; `None`: all of the product's.
        features: Option<BTreeSet<String>>,
        /// Bound hosts or floating sessions.
        #[serde(default)]
        model: LicenseModel,
    },
    /// The account's trial or subscription of the product that ends last ends this many days
    /// later, counted from the redemption if it has already ended.
    Extend {
        /// Days added.
        days: u32,
    },
    /// Seats added to the account's paid license of the product (the one a host would be bound to).
    Seats {
        /// Seats added.
        seats: u32,
    },
    /// Features added to that same license.
    Upgrade {
        /// Features added.
        features: BTreeSet<String>,
    },
}

/// A coupon's kind, as the API names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum CouponKind {
    /// [`Offer::License`].
    #[default]
    License,
    /// [`Offer::Extend`].
    Extend,
    /// [`Offer::Seats`].
    Seats,
    /// [`Offer::Upgrade`].
    Upgrade,
}

impl CouponKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::License => "license",
            CouponKind::Extend => "extend",
            CouponKind::Seats => "seats",
            CouponKind::Upgrade => "upgrade",
        }
    }
}

impl Offer {
    /// Its kind.
    pub fn kind(&self) -> CouponKind {
        match self {
            Offer::License { .. } => CouponKind::License,
            Offer::Extend { .. } => CouponKind::Extend,
            Offer::Seats { .. } => CouponKind::Seats,
            Offer::Upgrade { .. } => CouponKind::Upgrade,
        }
    }
}

/// A single-use code that changes the licenses of the account that redeems it. Stored flat, as
/// release 0.1.0 stored it, with the fields later kinds need added; [`Coupon::offer`] reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coupon {
    /// The code's canonical body.
    pub body: String,
    /// The product whose licenses it changes.
    pub product: String,
    /// Seats of a new license, or seats added.
    pub seats: u32,
    /// Term of a new license in days; `None` makes it perpetual.
    pub term_days: Option<u32>,
    /// When it was issued.
    #[serde(with = "chrono::serde::ts_seconds")]
    pub issued_at: Time,
    /// Set once, when redeemed.
    pub redeemed: Option<Redemption>,
    /// What it does (coupons before kinds existed all create licenses).
    #[serde(default)]
    pub kind: CouponKind,
    /// Days an `extend` coupon adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// Features of a new license (`None`: all of the product's), or features added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeSet<String>>,
    /// The model of a new license.
    #[serde(default, skip_serializing_if = "LicenseModel::is_host")]
    pub model: LicenseModel,
}

impl Coupon {
    /// A coupon for `product` making `offer`, not yet redeemed.
    pub fn new(body: String, product: &str, offer: &Offer, issued_at: Time) -> Coupon {
        let mut coupon = Coupon {
            body,
            product: product.to_owned(),
            seats: 0,
            term_days: None,
            issued_at,
            redeemed: None,
            kind: offer.kind(),
            days: None,
            features: None,
            model: LicenseModel::Host,
        };
        match offer {
            Offer::License { seats, term_days, features, model } => {
                (coupon.seats, coupon.term_days, coupon.features, coupon.model) =
                    (*seats, *term_days, features.clone(), *model)
            }
            Offer::Extend { days } => coupon.days = Some(*days),
            Offer::Seats { seats } => coupon.seats = *seats,
            Offer::Upgrade { features } => coupon.features = Some(features.clone()),
        }
        coupon
    }

    /// What it does.
    pub fn offer(&self) -> Offer {
        match self.kind {
            CouponKind::License => Offer::License {
                seats: self.seats,
                term_days: self.term_days,
                features: self.features.clone(),
                model: self.model,
            },
            CouponKind::Extend => Offer::Extend { days: self.days.unwrap_or(0) },
            CouponKind::Seats => Offer::Seats { seats: self.seats },
            CouponKind::Upgrade => Offer::Upgrade { features: self.features.clone().unwrap_or_default() },
        }
    }
}

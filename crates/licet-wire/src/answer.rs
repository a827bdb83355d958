//! Answer bodies of the HTTP API, and how core records become them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use licet_core::{
    AccountFound, Binding, CouponKind, Host, License, LicenseFacts, LicenseKind, LicenseModel, Offer, Product, Session,
};
use serde::{Deserialize, Serialize};

/// The `license` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseObject {
    /// `lic_…`.
    pub id: String,
    /// The product.
    pub product: String,
    /// `trial`, `subscription` or `perpetual`.
    pub kind: LicenseKind,
    /// Hosts that may be bound (or, floating, sessions live) at once.
    pub seats: u32,
    /// Hosts bound now, or for a floating license sessions live now.
    pub seats_used: u32,
    /// When it began.
    #[serde(with = "crate::time")]
    pub starts_at: DateTime<Utc>,
    /// When it ends; `null` for perpetual.
    #[serde(with = "crate::time::option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// The features it grants (absent from a release-0.1.0 server's answers).
    #[serde(default)]
    pub features: Vec<String>,
    /// When checks stop passing: `expires_at` plus the product's grace days; `null` for perpetual.
    #[serde(default, with = "crate::time::option")]
    pub grace_until: Option<DateTime<Utc>>,
    /// Resets and deactivations still allowed in the current 30 days; `null`: no limit.
    #[serde(default)]
    pub resets_left: Option<u32>,
    /// `host` (seats are bound hosts) or `floating` (seats are live sessions).
    #[serde(default)]
    pub model: LicenseModel,
    /// For a floating license, the sessions live now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_live: Option<u32>,
    /// When the vendor revoked it (absent unless revoked); it grants nothing since.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::time::option")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl LicenseObject {
    /// The wire form of a license with `seats_used` seats taken, granting what `facts` say.
    pub fn of(l: &License, seats_used: u32, facts: &LicenseFacts) -> LicenseObject {
        LicenseObject {
            model: l.model,
            sessions_live: (l.model == LicenseModel::Floating).then_some(seats_used),
            id: l.id.clone(),
            product: l.product.clone(),
            kind: l.kind,
            seats: l.seats,
            seats_used,
            starts_at: l.starts_at,
            expires_at: l.expires_at,
            features: facts.features.clone(),
            grace_until: facts.grace_until,
            resets_left: facts.resets_left,
            revoked_at: l.revoked_at,
        }
    }

    /// The wire form of `license` of `product` at `now`, with `seats_used` seats taken.
    pub fn at(license: &License, seats_used: u32, product: &Product, now: DateTime<Utc>) -> LicenseObject {
        LicenseObject::of(license, seats_used, &license.facts(product, now))
    }
}

/// The host of a `binding` or `session` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredHost {
    /// For people.
    pub hostname: String,
    /// For people.
    pub os: String,
    /// The components as last seen (keyed hashes).
    pub fingerprint: BTreeMap<String, String>,
}

impl StoredHost {
    /// The wire form of a stored host.
    pub fn of(h: &Host) -> StoredHost {
        StoredHost { hostname: h.hostname.clone(), os: h.os.clone(), fingerprint: h.fingerprint.components().clone() }
    }
}

/// The `session` object: a floating seat in use (SPEC §11).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionObject {
    /// `ses_…`.
    pub id: String,
    /// The floating license whose seat it holds.
    pub license_id: String,
    /// The product.
    pub product: String,
    /// The host that checked it out.
    pub host: StoredHost,
    /// The user the program runs as, if it said.
    pub user: Option<String>,
    /// When it was checked out.
    #[serde(with = "crate::time")]
    pub started_at: DateTime<Utc>,
    /// Its latest heartbeat.
    #[serde(with = "crate::time")]
    pub last_heartbeat: DateTime<Utc>,
    /// When it dies unless a heartbeat extends it.
    #[serde(with = "crate::time")]
    pub lease_until: DateTime<Utc>,
    /// Whether it was borrowed for use offline.
    pub borrowed: bool,
}

impl SessionObject {
    /// The wire form of a session.
    pub fn of(s: &Session) -> SessionObject {
        SessionObject {
            id: s.id.clone(),
            license_id: s.license_id.clone(),
            product: s.product.clone(),
            host: StoredHost::of(&s.host),
            user: (!s.user.is_empty()).then(|| s.user.clone()),
            started_at: s.started_at,
            last_heartbeat: s.last_heartbeat,
            lease_until: s.lease_until,
            borrowed: s.borrowed,
        }
    }
}

/// The `binding` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BindingObject {
    /// `bnd_…`.
    pub id: String,
    /// The license whose seat it is.
    pub license_id: String,
    /// The product.
    pub product: String,
    /// The host as last seen.
    pub host: StoredHost,
    /// When the seat was taken.
    #[serde(with = "crate::time")]
    pub bound_at: DateTime<Utc>,
    /// The host's latest check.
    #[serde(with = "crate::time")]
    pub last_seen: DateTime<Utc>,
}

impl BindingObject {
    /// The wire form of a binding.
    pub fn of(b: &Binding) -> BindingObject {
        BindingObject {
            id: b.id.clone(),
            license_id: b.license_id.clone(),
            product: b.product.clone(),
            host: StoredHost::of(&b.host),
            bound_at: b.bound_at,
            last_seen: b.last_seen,
        }
    }
}

/// The account view of `GET /v1/account` (number masked) and the admin lookup (in full).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountObject {
    /// `acc_…`, what the admin endpoints name the account by (absent from older servers' answers).
    #[serde(default)]
    pub id: String,
    /// The organisation.
    pub organization: String,
    /// The e-mail as registered.
    pub email: String,
    /// A contact person.
    pub contact: Option<String>,
    /// A phone number.
    pub phone: Option<String>,
    /// The registration number: all but its last group masked, except for the admin.
    pub registration_number: String,
    /// When the account was registered.
    #[serde(with = "crate::time")]
    pub created_at: DateTime<Utc>,
    /// Its licenses.
    pub licenses: Vec<LicenseObject>,
    /// Seats held by hosts.
    pub bindings: Vec<BindingObject>,
    /// Floating sessions live now.
    #[serde(default)]
    pub sessions: Vec<SessionObject>,
}

impl AccountObject {
    /// The wire form of an account found at `now`; the number masked but its last group unless
    /// `unmasked`.
    pub fn of(found: &AccountFound, unmasked: bool, now: DateTime<Utc>) -> AccountObject {
        let (a, number) = (&found.account, &found.number);
        AccountObject {
            id: a.id.clone(),
            organization: a.organization.clone(),
            email: a.email.clone(),
            contact: a.contact.clone(),
            phone: a.phone.clone(),
            registration_number: if unmasked { number.to_string() } else { number.masked() },
            created_at: a.created_at,
            licenses: a
                .licenses
                .iter()
                .map(|l| LicenseObject::of(l, a.seats_taken(l, now), &found.facts(l, now)))
                .collect(),
            bindings: a.bindings.iter().map(BindingObject::of).collect(),
            sessions: a.sessions.iter().filter(|s| s.is_live(now)).map(SessionObject::of).collect(),
        }
    }
}

/// The `product` object (admin).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductObject {
    /// The slug.
    pub id: String,
    /// A display name.
    pub name: String,
    /// Length of a trial, in days.
    pub trial_days: u32,
    /// Hosts a trial may bind at once.
    pub trial_seats: u32,
    /// How long a token stays usable without contacting the server, in hours.
    pub offline_lease_hours: u32,
    /// How far an agent's clock may fall behind time already seen.
    pub clock_tolerance_minutes: u32,
    /// How often an agent asks the server again, in hours.
    pub refresh_hours: u32,
    /// The features its licenses may grant.
    pub features: Vec<String>,
    /// Days after `expires_at` during which checks still pass.
    pub grace_days: u32,
    /// Resets and deactivations a license allows in any 30 days (0: no limit).
    pub max_resets_per_30_days: u32,
    /// How long a floating session lives without a heartbeat, in seconds.
    pub session_lease_seconds: u32,
    /// Most hours a floating session may be borrowed for (0: no borrowing).
    pub max_borrow_hours: u32,
    /// The lease of an air-gapped activation's token, in days.
    pub offline_activation_days: u32,
}

impl ProductObject {
    /// The wire form of a product.
    pub fn of(p: &Product) -> ProductObject {
        ProductObject {
            id: p.id.clone(),
            name: p.name.clone(),
            trial_days: p.trial_days,
            trial_seats: p.trial_seats,
            offline_lease_hours: p.offline_lease_hours,
            clock_tolerance_minutes: p.clock_tolerance_minutes,
            refresh_hours: p.refresh_hours,
            features: p.features.iter().cloned().collect(),
            grace_days: p.grace_days,
            max_resets_per_30_days: p.max_resets_per_30_days,
            session_lease_seconds: p.session_lease_seconds,
            max_borrow_hours: p.max_borrow_hours,
            offline_activation_days: p.offline_activation_days,
        }
    }
}

/// The answer to `activate` and `trial`: the license, the host's binding and a signed token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantAnswer {
    /// The license (for `trial`, the new trial).
    pub license: LicenseObject,
    /// The host's binding.
    pub binding_id: String,
    /// The signed token.
    pub token: String,
}

/// The answer to a checkout (`POST /v1/sessions`) and a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionAnswer {
    /// The session, `ses_…`.
    pub session_id: String,
    /// The signed token, valid on the host until `lease_until`.
    pub token: String,
    /// When the session dies unless a heartbeat extends it.
    #[serde(with = "crate::time")]
    pub lease_until: DateTime<Utc>,
    /// The floating license whose seat it holds.
    pub license: LicenseObject,
}

/// The answer to `register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterAnswer {
    /// The new account's number, in full.
    pub registration_number: String,
    /// The trial.
    pub license: LicenseObject,
    /// The registering host's binding.
    pub binding_id: String,
    /// The signed token.
    pub token: String,
}

/// The answer to `redeem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LicenseAnswer {
    /// The coupon's license.
    pub license: LicenseObject,
}

/// The answer to issuing coupons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CouponsAnswer {
    /// The codes, in full.
    pub coupons: Vec<String>,
    /// What they do: `license`, `extend`, `seats` or `upgrade`.
    #[serde(default)]
    pub kind: CouponKind,
}

/// A coupon as `GET /v1/admin/coupons` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CouponObject {
    /// The code, in full (a credential: admin answers only).
    pub code: String,
    /// The product.
    pub product: String,
    /// `license`, `extend`, `seats` or `upgrade`.
    pub kind: CouponKind,
    /// `license`: seats of the license; `seats`: seats added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seats: Option<u32>,
    /// `license`: the term in days (`null`: perpetual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term_days: Option<u32>,
    /// `extend`: days added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub days: Option<u32>,
    /// `license`: its features (absent: all); `upgrade`: the features added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<BTreeSet<String>>,
    /// `license`: `host` or `floating`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<LicenseModel>,
    /// When it was issued.
    #[serde(with = "crate::time")]
    pub issued_at: DateTime<Utc>,
    /// Who redeemed it, when, for which license; `null` while it is unused.
    pub redeemed: Option<RedemptionObject>,
}

/// A coupon's redemption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RedemptionObject {
    /// `acc_…`.
    pub account_id: String,
    /// The license it made or changed.
    pub license_id: String,
    /// When.
    #[serde(with = "crate::time")]
    pub at: DateTime<Utc>,
}

impl CouponObject {
    /// The listing form of `coupon`, whose full code is `code`.
    pub fn of(coupon: &licet_core::Coupon, code: String) -> CouponObject {
        let (mut seats, mut term_days, mut days, mut features, mut model) = (None, None, None, None, None);
        match coupon.offer() {
            Offer::License { seats: n, term_days: t, features: f, model: m } => {
                (seats, term_days, features, model) = (Some(n), t, f, Some(m));
            }
            Offer::Extend { days: d } => days = Some(d),
            Offer::Seats { seats: n } => seats = Some(n),
            Offer::Upgrade { features: f } => features = Some(f),
        }
        CouponObject {
            code,
            product: coupon.product.clone(),
            kind: coupon.kind,
            seats,
            term_days,
            days,
            features,
            model,
            issued_at: coupon.issued_at,
            redeemed: coupon.redeemed.as_ref().map(|r| RedemptionObject {
                account_id: r.account_id.clone(),
                license_id: r.license_id.clone(),
                at: r.at,
            }),
        }
    }
}

/// A signing key as `GET /v1/keys` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyObject {
    /// 16 hex characters.
    pub kid: String,
    /// 64 hex characters.
    pub public_key: String,
    /// Whether it signs new tokens.
    pub active: bool,
    /// Whether it signs nothing any more (what it signed stays valid until its lease ends).
    #[serde(default)]
    pub retired: bool,
    /// The key that endorsed it when it was added (`None` for the first key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsed_by: Option<String>,
    /// That endorsement, as tokens carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement: Option<String>,
}

/// The answer to `GET /v1/keys`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeysAnswer {
    /// Every key.
    pub keys: Vec<KeyObject>,
}

/// The answer to `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthAnswer {
    /// `ok`.
    pub status: String,
}

/// `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_license_object_reads_what_it_writes_with_whole_second_times() {
        let starts_at = DateTime::from_timestamp(1_772_359_200, 0).unwrap();
        let l = LicenseObject {
            id: "lic_1".into(),
            product: "call-journal".into(),
            kind: LicenseKind::Trial,
            seats: 1,
            seats_used: 1,
            starts_at,
            expires_at: None,
            features: vec!["recording".into()],
            grace_until: None,
            resets_left: Some(2),
            model: LicenseModel::Floating,
            sessions_live: Some(1),
            revoked_at: None,
        };
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(
            text,
            r#"{"id":"lic_1","product":"call-journal","kind":"trial","seats":1,"seats_used":1,"starts_at":"2026-03-01T10:00:00Z","expires_at":null,"features":["recording"],"grace_until":null,"resets_left":2,"model":"floating","sessions_live":1}"#
        );
        assert_eq!(serde_json::from_str::<LicenseObject>(&text).unwrap(), l);
        // A newer server's extra fields are ignored.
        let newer = text.replace(r#""expires_at":null"#, r#""expires_at":null,"seat_policy":"x""#);
        assert_eq!(serde_json::from_str::<LicenseObject>(&newer).unwrap(), l);
        // A release-0.1.0 server's answer reads, with no features, grace or limit.
        let older = r#"{"id":"lic_1","product":"call-journal","kind":"trial","seats":1,"seats_used":1,"starts_at":"2026-03-01T10:00:00Z","expires_at":null}"#;
        let read = serde_json::from_str::<LicenseObject>(older).unwrap();
        assert_eq!((read.features.len(), read.grace_until, read.resets_left), (0, None, None));
        assert_eq!((read.model, read.sessions_live), (LicenseModel::Host, None));
    }
}

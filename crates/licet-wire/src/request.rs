//! Request bodies (and the one query) of the HTTP API.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use licet_core::{Checkout, CouponBatch, CouponKind, Error, Fingerprint, Host, LicenseModel, Offer, ProductSettings};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `{"fingerprint":{…},"hostname":"…","os":"…"}`, and from newer agents on a machine a release
/// 0.1.0 agent knew, `legacy_fingerprint`: the same components as 0.1.0 hashed them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostJson {
    /// 1–16 components, each value at most 256 characters.
    pub fingerprint: BTreeMap<String, String>,
    /// For people.
    #[serde(default)]
    pub hostname: Option<String>,
    /// For people.
    #[serde(default)]
    pub os: Option<String>,
    /// The machine as release 0.1.0 fingerprinted it, so its old bindings still find it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy_fingerprint: Option<BTreeMap<String, String>>,
}

impl HostJson {
    /// The wire form of a host.
    pub fn of(host: &Host) -> HostJson {
        HostJson {
            fingerprint: host.fingerprint.components().clone(),
            hostname: Some(host.hostname.clone()),
            os: Some(host.os.clone()),
            legacy_fingerprint: host.legacy.as_ref().map(|f| f.components().clone()),
        }
    }

    /// The validated core host (1001 on bad components or display fields).
    pub fn to_host(&self) -> Result<Host, Error> {
        let fingerprint = Fingerprint::new(self.fingerprint.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
        let legacy = match &self.legacy_fingerprint {
            None => None,
            Some(components) => Some(Fingerprint::new(components.iter().map(|(k, v)| (k.as_str(), v.as_str())))?),
        };
        Ok(Host::new(fingerprint, self.hostname.as_deref().unwrap_or(""), self.os.as_deref().unwrap_or(""))?
            .with_legacy(legacy))
    }
}

/// 16 random bytes an agent sends with a license check, as 32 hex characters; a signed refusal
/// names it, so that it answers this request and no other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-fA-F]{32}$"))]
pub struct Nonce(pub [u8; 16]);

impl Serialize for Nonce {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Nonce, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 16];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| serde::de::Error::custom("a nonce is 32 hexadecimal characters"))?;
        Ok(Nonce(bytes))
    }
}

/// `POST /v1/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// Unique, case-insensitively.
    pub email: String,
    /// The organisation.
    pub organization: String,
    /// A contact person.
    #[serde(default)]
    pub contact: Option<String>,
    /// A phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// The product to try.
    pub product: String,
    /// The language of the account's mail (`ru`, the default, or `en`); older agents leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<licet_core::Lang>,
    /// The registering host.
    pub host: HostJson,
    /// Newer agents' marker: the token format they read (absent: release 0.1.0's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_format: Option<u8>,
    /// A fresh nonce: the token in the answer names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
}

/// `POST /v1/activate`, `/v1/trial`, `/v1/deactivate`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostRequest {
    /// The account's number.
    pub registration_number: String,
    /// The product.
    pub product: String,
    /// The asking host.
    pub host: HostJson,
    /// Newer agents' marker: the token format they read (absent: release 0.1.0's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_format: Option<u8>,
    /// A fresh nonce: the token in the answer names it, and a definitive refusal of this
    /// request carries a signed proof naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
}

impl HostRequest {
    /// The ledger's request: number, product and the validated host (1001 on a bad host).
    pub fn to_command(&self) -> Result<licet_core::HostCommand, Error> {
        Ok(licet_core::HostCommand {
            number: self.registration_number.as_str().into(),
            product: self.product.clone(),
            host: self.host.to_host()?,
        })
    }
}

/// `POST /v1/sessions`: a checkout of a floating seat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionRequest {
    /// The account's number.
    pub registration_number: String,
    /// The product.
    pub product: String,
    /// The asking host.
    pub host: HostJson,
    /// The user the program runs as, shown in the session monitor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Hours to borrow the seat for, offline (at most the product's `max_borrow_hours`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borrow_hours: Option<u32>,
    /// The token format the agent reads (sessions are always issued in this release's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_format: Option<u8>,
    /// A fresh nonce: the token names it, and a definitive refusal carries a proof naming it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
}

impl SessionRequest {
    /// The ledger's checkout (1001 on a bad host).
    pub fn to_checkout(&self) -> Result<Checkout, Error> {
        Ok(Checkout {
            number: self.registration_number.as_str().into(),
            product: self.product.clone(),
            host: self.host.to_host()?,
            user: self.user.clone().unwrap_or_default(),
            borrow_hours: self.borrow_hours,
        })
    }
}

/// The optional body of `POST /v1/sessions/{id}/heartbeat`: what the answer's token should carry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    /// The token format the agent reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_format: Option<u8>,
    /// A fresh nonce for the answer's token to name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
}

/// `POST /v1/offline/activate`: an air-gapped host's request, as its agent wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OfflineActivateRequest {
    /// The one-line text of `licet-agent offline-request`.
    pub request: String,
}

/// `POST /v1/redeem`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RedeemRequest {
    /// The account's number; without one the coupon is refused (1003).
    #[serde(default)]
    pub registration_number: Option<String>,
    /// The coupon.
    pub coupon: String,
}

/// `POST /v1/recover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoverRequest {
    /// The account's e-mail.
    pub email: String,
}

/// `PUT /v1/admin/products/{id}`: the settings to change; absent ones keep their value. The
/// ledger's own settings, whose JSON is the API's: one list of fields, not two to keep in step.
pub type ProductRequest = ProductSettings;

/// `POST /v1/admin/coupons`. A field it does not know is refused (1001) rather than ignored, so
/// that a typo (`term_day`) or a setting of a later release never issues coupons that do
/// something else than the vendor asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CouponsRequest {
    /// The product whose licenses the coupons create or change.
    pub product: String,
    /// How many, 1–10000.
    pub count: u32,
    /// `license` (the default), `extend`, `seats` or `upgrade`.
    #[serde(default)]
    pub kind: CouponKind,
    /// `license`: seats of each license (default 1); `seats`: seats added (default 1).
    #[serde(default)]
    pub seats: Option<u32>,
    /// `license`: term of each license in days; absent or `null` makes them perpetual.
    #[serde(default)]
    pub term_days: Option<u32>,
    /// `extend`: days added.
    #[serde(default)]
    pub days: Option<u32>,
    /// `license`: the features of each license (absent: all of the product's); `upgrade`: the
    /// features added.
    #[serde(default)]
    pub features: Option<BTreeSet<String>>,
    /// `license`: `host` (the default: seats are bound hosts) or `floating` (seats are live
    /// sessions).
    #[serde(default)]
    pub model: Option<LicenseModel>,
}

impl CouponsRequest {
    /// The ledger's batch; a field the kind does not use, or a missing one it needs, is 1001.
    pub fn to_batch(&self) -> Result<CouponBatch, Error> {
        let offer = OfferFields {
            kind: self.kind,
            seats: self.seats,
            term_days: self.term_days,
            days: self.days,
            features: self.features.clone(),
            model: self.model,
        }
        .into_offer()?;
        Ok(CouponBatch { product: self.product.clone(), count: self.count, offer })
    }
}

/// `POST /v1/admin/accounts/{id}/licenses`: what a coupon of `kind` would make, made at once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The product.
    pub product: String,
    /// `license` (the default), `extend`, `seats` or `upgrade`, with the fields of a coupon of it.
    #[serde(default)]
    pub kind: CouponKind,
    /// As in [`CouponsRequest`].
    #[serde(default)]
    pub seats: Option<u32>,
    /// As in [`CouponsRequest`].
    #[serde(default)]
    pub term_days: Option<u32>,
    /// As in [`CouponsRequest`].
    #[serde(default)]
    pub days: Option<u32>,
    /// As in [`CouponsRequest`].
    #[serde(default)]
    pub features: Option<BTreeSet<String>>,
    /// As in [`CouponsRequest`].
    #[serde(default)]
    pub model: Option<LicenseModel>,
}

impl GrantRequest {
    /// The offer; a field the kind does not use, or a missing one it needs, is 1001.
    pub fn to_offer(&self) -> Result<Offer, Error> {
        OfferFields {
            kind: self.kind,
            seats: self.seats,
            term_days: self.term_days,
            days: self.days,
            features: self.features.clone(),
            model: self.model,
        }
        .into_offer()
    }
}

/// The fields that describe an offer, as coupons and grants take them.
struct OfferFields {
    kind: CouponKind,
    seats: Option<u32>,
    term_days: Option<u32>,
    days: Option<u32>,
    features: Option<BTreeSet<String>>,
    model: Option<LicenseModel>,
}

impl OfferFields {
    fn into_offer(self) -> Result<Offer, Error> {
        let kind = self.kind.as_str();
        let unused = |field: &'static str, given: bool| match given {
            true => Err(Error::input(field, format!("is not used by offers of kind {kind}"))),
            false => Ok(()),
        };
        let required = |field: &'static str| Error::input(field, format!("is required by offers of kind {kind}"));
        Ok(match self.kind {
            CouponKind::License => {
                unused("days", self.days.is_some())?;
                Offer::License {
                    seats: self.seats.unwrap_or(1),
                    term_days: self.term_days,
                    features: self.features,
                    model: self.model.unwrap_or_default(),
                }
            }
            CouponKind::Extend => {
                unused("seats", self.seats.is_some())?;
                unused("term_days", self.term_days.is_some())?;
                unused("features", self.features.is_some())?;
                unused("model", self.model.is_some())?;
                Offer::Extend { days: self.days.ok_or_else(|| required("days"))? }
            }
            CouponKind::Seats => {
                unused("term_days", self.term_days.is_some())?;
                unused("days", self.days.is_some())?;
                unused("features", self.features.is_some())?;
                unused("model", self.model.is_some())?;
                Offer::Seats { seats: self.seats.unwrap_or(1) }
            }
            CouponKind::Upgrade => {
                unused("seats", self.seats.is_some())?;
                unused("term_days", self.term_days.is_some())?;
                unused("days", self.days.is_some())?;
                unused("model", self.model.is_some())?;
                Offer::Upgrade { features: self.features.ok_or_else(|| required("features"))? }
            }
        })
    }
}

/// `POST /v1/admin/clock`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClockRequest {
    /// The time the server's clock should read.
    #[serde(with = "crate::time")]
    pub now: DateTime<Utc>,
}

/// `GET /v1/admin/accounts?email=`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailQuery {
    /// The account's e-mail.
    pub email: String,
}

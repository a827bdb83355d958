//! Release 0.1.0's records: positional bincode structs without a format byte, kept exactly as
//! that release wrote them so that a store it left behind can be migrated.
//!
//! [`decode`] reads one for the migration; [`encode`] writes one, for tests and tools that need
//! a 0.1.0 store bigger than the committed fixture. What 0.1.0 did not have is filled in on the
//! way: a binding's anchor is the fingerprint it holds (0.1.0 let bindings drift, so that is the
//! nearest thing to where it began), and a product refreshes every 24 hours.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::{Record, RecordError};
use crate::codec;
use crate::host::Fingerprint;
use crate::model::{
    Account, Binding, Coupon, CouponKind, Host, License, LicenseKind, LicenseModel, Product, Redemption, Time,
};
use crate::txn::RecordKey;

#[derive(Serialize, Deserialize)]
struct ProductV1 {
    id: String,
    name: String,
    trial_days: u32,
    trial_seats: u32,
    offline_lease_hours: u32,
    clock_tolerance_minutes: u32,
}

#[derive(Clone, Copy, Serialize, Deserialize)]
enum KindV1 {
    Trial,
    Subscription,
    Perpetual,
}

#[derive(Serialize, Deserialize)]
struct LicenseV1 {
    id: String,
    product: String,
    kind: KindV1,
    seats: u32,
    #[serde(with = "chrono::serde::ts_seconds")]
    starts_at: Time,
    #[serde(with = "chrono::serde::ts_seconds_option")]
    expires_at: Option<Time>,
}

#[derive(Serialize, Deserialize)]
struct HostV1 {
    fingerprint: BTreeMap<String, String>,
    hostname: String,
    os: String,
}

#[derive(Serialize, Deserialize)]
struct BindingV1 {
    id: String,
    license_id: String,
    product: String,
    host: HostV1,
    #[serde(with = "chrono::serde::ts_seconds")]
    bound_at: Time,
    #[serde(with = "chrono::serde::ts_seconds")]
    last_seen: Time,
}

#[derive(Serialize, Deserialize)]
struct AccountV1 {
    id: String,
    email: String,
    organization: String,
    contact: Option<String>,
    phone: Option<String>,
    number: String,
    #[serde(with = "chrono::serde::ts_seconds")]
    created_at: Time,
    registration_host: BTreeMap<String, String>,
    licenses: Vec<LicenseV1>,
    bindings: Vec<BindingV1>,
    trials_used: BTreeSet<String>,
}

#[derive(Serialize, Deserialize)]
struct RedemptionV1 {
    account_id: String,
    license_id: String,
    #[serde(with = "chrono::serde::ts_seconds")]
    at: Time,
}

#[derive(Serialize, Deserialize)]
struct CouponV1 {
    body: String,
    product: String,
    seats: u32,
    term_days: Option<u32>,
    #[serde(with = "chrono::serde::ts_seconds")]
    issued_at: Time,
    redeemed: Option<RedemptionV1>,
}

fn kind(k: KindV1) -> LicenseKind {
    match k {
        KindV1::Trial => LicenseKind::Trial,
        KindV1::Subscription => LicenseKind::Subscription,
        KindV1::Perpetual => LicenseKind::Perpetual,
    }
}

fn kind_v1(k: LicenseKind) -> KindV1 {
    match k {
        LicenseKind::Trial => KindV1::Trial,
        LicenseKind::Subscription => KindV1::Subscription,
        LicenseKind::Perpetual => KindV1::Perpetual,
    }
}

fn fingerprint(components: BTreeMap<String, String>) -> Result<Fingerprint, String> {
    Fingerprint::new(components).map_err(|e| e.to_string())
}

fn host(h: HostV1) -> Result<Host, String> {
    Ok(Host { fingerprint: fingerprint(h.fingerprint)?, hostname: h.hostname, os: h.os, legacy: None })
}

fn license(l: LicenseV1) -> License {
    License {
        id: l.id,
        product: l.product,
        kind: kind(l.kind),
        seats: l.seats,
        starts_at: l.starts_at,
        expires_at: l.expires_at,
        features: None,
        resets: Vec::new(),
        model: LicenseModel::Host,
        revoked_at: None,
    }
}

fn binding(b: BindingV1) -> Result<Binding, String> {
    let host = host(b.host)?;
    Ok(Binding {
        id: b.id,
        license_id: b.license_id,
        product: b.product,
        anchor: host.fingerprint.clone(),
        anchor_0_1_0: None,
        host,
        bound_at: b.bound_at,
        last_seen: b.last_seen,
    })
}

fn account(a: AccountV1) -> Result<Account, String> {
    Ok(Account {
        id: a.id,
        email: a.email,
        organization: a.organization,
        contact: a.contact,
        phone: a.phone,
        number: a.number,
        created_at: a.created_at,
        registration_host: fingerprint(a.registration_host)?,
        registration_host_0_1_0: None,
        licenses: a.licenses.into_iter().map(license).collect(),
        bindings: a.bindings.into_iter().map(binding).collect::<Result<_, _>>()?,
        trials_used: a.trials_used,
        sessions: Vec::new(),
        // Release 0.1.0 mailed in English; its customers go on getting English.
        lang: crate::mail::Lang::before_choice(),
    })
}

fn product(p: ProductV1) -> Product {
    Product {
        id: p.id,
        name: p.name,
        trial_days: p.trial_days,
        trial_seats: p.trial_seats,
        offline_lease_hours: p.offline_lease_hours,
        clock_tolerance_minutes: p.clock_tolerance_minutes,
        refresh_hours: 24,
        features: Default::default(),
        grace_days: 0,
        max_resets_per_30_days: 0,
        session_lease_seconds: 900,
        max_borrow_hours: 0,
        offline_activation_days: 30,
    }
}

fn coupon(c: CouponV1) -> Coupon {
    Coupon {
        body: c.body,
        product: c.product,
        seats: c.seats,
        term_days: c.term_days,
        issued_at: c.issued_at,
        redeemed: c.redeemed.map(|r| Redemption { account_id: r.account_id, license_id: r.license_id, at: r.at }),
        kind: CouponKind::License,
        days: None,
        features: None,
        model: LicenseModel::Host,
    }
}

/// Reads a record as release 0.1.0 stored it under `key`.
pub fn decode(key: &RecordKey, bytes: &[u8]) -> Result<Record, RecordError> {
    let unreadable = |reason: String| RecordError::Unreadable { key: key.clone(), reason };
    let e = |e: codec::CodecError| unreadable(e.to_string());
    Ok(match key {
        RecordKey::Product(_) => Record::Product(product(codec::decode(bytes).map_err(e)?)),
        RecordKey::Account(_) => Record::Account(account(codec::decode(bytes).map_err(e)?).map_err(unreadable)?),
        RecordKey::Email(_) | RecordKey::Number(_) => Record::AccountId(codec::decode(bytes).map_err(e)?),
        RecordKey::Coupon(_) => Record::Coupon(coupon(codec::decode(bytes).map_err(e)?)),
        RecordKey::HostComponent(_) => Record::HostAccounts(codec::decode(bytes).map_err(e)?),
        RecordKey::Mail(_) => return Err(unreadable("release 0.1.0 kept no mail in its ledger".into())),
    })
}

/// Writes a record as release 0.1.0 did (what it did not have is dropped).
pub fn encode(record: &Record) -> Vec<u8> {
    let host_v1 = |h: &Host| HostV1 {
        fingerprint: h.fingerprint.components().clone(),
        hostname: h.hostname.clone(),
        os: h.os.clone(),
    };
    let license_v1 = |l: &License| LicenseV1 {
        id: l.id.clone(),
        product: l.product.clone(),
        kind: kind_v1(l.kind),
        seats: l.seats,
        starts_at: l.starts_at,
        expires_at: l.expires_at,
    };
    match record {
        Record::Product(p) => codec::encode(&ProductV1 {
            id: p.id.clone(),
            name: p.name.clone(),
            trial_days: p.trial_days,
            trial_seats: p.trial_seats,
            offline_lease_hours: p.offline_lease_hours,
            clock_tolerance_minutes: p.clock_tolerance_minutes,
        }),
        Record::Account(a) => codec::encode(&AccountV1 {
            id: a.id.clone(),
            email: a.email.clone(),
            organization: a.organization.clone(),
            contact: a.contact.clone(),
            phone: a.phone.clone(),
            number: a.number.clone(),
            created_at: a.created_at,
            registration_host: a.registration_host.components().clone(),
            licenses: a.licenses.iter().map(license_v1).collect(),
            bindings: a
                .bindings
                .iter()
                .map(|b| BindingV1 {
                    id: b.id.clone(),
                    license_id: b.license_id.clone(),
                    product: b.product.clone(),
                    host: host_v1(&b.host),
                    bound_at: b.bound_at,
                    last_seen: b.last_seen,
                })
                .collect(),
            trials_used: a.trials_used.clone(),
        }),
        Record::AccountId(id) => codec::encode(id),
        Record::Coupon(c) => codec::encode(&CouponV1 {
            body: c.body.clone(),
            product: c.product.clone(),
            seats: c.seats,
            term_days: c.term_days,
            issued_at: c.issued_at,
            redeemed: c.redeemed.as_ref().map(|r| RedemptionV1 {
                account_id: r.account_id.clone(),
                license_id: r.license_id.clone(),
                at: r.at,
            }),
        }),
        Record::HostAccounts(ids) => codec::encode(ids),
        // Release 0.1.0 wrote mail straight to the outbox; it has no such record to read.
        Record::Mail(_) => Vec::new(),
    }
}

//! The ledger's invariants, checked over a whole ledger: what property tests and fuzzers assert
//! after every command, and what the store's migration tests assert of a migrated store.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use crate::model::{LicenseModel, Session};
use crate::record::Record;
use crate::txn::RecordKey;

/// Checks every invariant of a whole ledger, given as its records (e.g. `MemState::records()`);
/// the first one broken is described in the error.
///
/// * every record is of the kind its key names;
/// * one e-mail (case-insensitive) has at most one account, and the e-mail index has exactly
///   one entry per account;
/// * no license has more bindings than seats;
/// * every binding points at a host license of its account, for its product;
/// * every session points at a floating license of its account, for its product, and at no
///   instant were more of a license's sessions live than it has seats (a session is live from
///   its start until its lease ends, so this holds whatever the time now);
/// * a binding's host as last seen still matches the fingerprint it was first bound with (or, for
///   one moved from release 0.1.0's hashing, the fingerprint 0.1.0 bound it with);
/// * a license belongs to one account only;
/// * a redeemed coupon's license is in the account that redeemed it.
pub fn check_invariants<K: Borrow<RecordKey>, R: Borrow<Record>>(
    records: impl IntoIterator<Item = (K, R)>,
) -> Result<(), String> {
    let mut accounts = BTreeMap::new();
    let mut coupons = Vec::new();
    let mut email_index = 0;
    for (key, record) in records {
        let (key, record) = (key.borrow(), record.borrow());
        if !record.fits(key) {
            return Err(format!("{key:?} holds {record:?}"));
        }
        match record {
            Record::Account(account) => {
                accounts.insert(account.id.clone(), account.clone());
            }
            Record::Coupon(coupon) => coupons.push(coupon.clone()),
            Record::AccountId(_) if matches!(key, RecordKey::Email(_)) => email_index += 1,
            _ => {}
        }
    }
    let mut emails = BTreeSet::new();
    let mut licenses = BTreeSet::new();
    for account in accounts.values() {
        if !emails.insert(account.email.to_lowercase()) {
            return Err(format!("e-mail {} has two accounts", account.email));
        }
        for license in &account.licenses {
            if !licenses.insert(license.id.clone()) {
                return Err(format!("license {} is in two places", license.id));
            }
            let used = account.seats_used(&license.id);
            if used > license.seats {
                return Err(format!("license {} has {used} hosts on {} seats", license.id, license.seats));
            }
        }
        for license in account.licenses.iter().filter(|l| l.model == LicenseModel::Floating) {
            let most = most_at_once(account.sessions.iter().filter(|s| s.license_id == license.id));
            if most > license.seats {
                return Err(format!("license {} had {most} live sessions on {} seats", license.id, license.seats));
            }
        }
        for session in &account.sessions {
            match account.license(&session.license_id) {
                Some(l) if l.product == session.product && l.model == LicenseModel::Floating => {}
                _ => return Err(format!("session {} points at no floating license of its product", session.id)),
            }
        }
        for binding in &account.bindings {
            match account.license(&binding.license_id) {
                Some(l) if l.product == binding.product && l.model == LicenseModel::Host => {}
                _ => return Err(format!("binding {} points at no host license of its product", binding.id)),
            }
            let host = &binding.host.fingerprint;
            if !binding.anchor.matches(host) && !binding.anchor_0_1_0.as_ref().is_some_and(|a| a.matches(host)) {
                return Err(format!("binding {} drifted beyond the fingerprint it was bound with", binding.id));
            }
        }
    }
    if email_index != accounts.len() {
        return Err(format!("{email_index} e-mail index entries for {} accounts", accounts.len()));
    }
    for coupon in coupons {
        if let Some(r) = &coupon.redeemed {
            let holder =
                accounts.get(&r.account_id).ok_or(format!("coupon {} redeemed by a missing account", coupon.body))?;
            if holder.license(&r.license_id).is_none() {
                return Err(format!("coupon {}'s license is not in the account that redeemed it", coupon.body));
            }
        }
    }
    Ok(())
}

/// The most of `sessions` live at one instant: each is live over `[started_at, lease_until)`.
fn most_at_once<'a>(sessions: impl Iterator<Item = &'a Session>) -> u32 {
    // Ends sort before starts at the same second: a lease that ends as another begins never overlaps it.
    let mut events: Vec<(i64, i32)> =
        sessions.flat_map(|s| [(s.started_at.timestamp(), 1), (s.lease_until.timestamp(), -1)]).collect();
    events.sort();
    let (mut live, mut most) = (0i32, 0i32);
    for (_, step) in events {
        live += step;
        most = most.max(live);
    }
    most.max(0) as u32
}

//! The ledger's invariants, checked over a whole ledger: what property tests and fuzzers assert
//! after every command, and what the store's migration tests assert of a migrated store.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};

use crate::record::Record;
use crate::txn::RecordKey;

/// Checks every invariant of a whole ledger, given as its records (e.g. `MemState::records()`);
/// the first one broken is described in the error.
///
/// * every record is of the kind its key names;
/// * one e-mail (case-insensitive) has at most one account, and the e-mail index has exactly
///   one entry per account;
/// * no license has more bindings than seats;
/// * every binding points at a license of its account, for its product;
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
        for binding in &account.bindings {
            match account.license(&binding.license_id) {
                Some(l) if l.product == binding.product => {}
                _ => return Err(format!("binding {} points at no license of its product", binding.id)),
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

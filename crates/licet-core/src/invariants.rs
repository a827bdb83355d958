//! The ledger's invariants, checked over a whole in-memory ledger: what property tests and
//! fuzzers assert after every command.

use std::collections::{BTreeMap, BTreeSet};

use crate::codec;
use crate::model::{Account, Coupon};
use crate::txn::{MemState, RecordKey};

/// Checks every invariant of the ledger; the first one broken is described in the error.
///
/// * every stored record decodes;
/// * one e-mail (case-insensitive) has at most one account, and the e-mail index has exactly
///   one entry per account;
/// * no license has more bindings than seats;
/// * every binding points at a license of its account, for its product;
/// * a license belongs to one account only;
/// * a redeemed coupon's license is in the account that redeemed it.
pub fn check_invariants(state: &MemState) -> Result<(), String> {
    let mut accounts = BTreeMap::new();
    let mut coupons = Vec::new();
    let mut email_index = 0;
    for (key, value) in state.records() {
        match key {
            RecordKey::Account(id) => {
                let account: Account = codec::decode(value).map_err(|e| format!("account {id}: {e}"))?;
                accounts.insert(id.clone(), account);
            }
            RecordKey::Coupon(body) => {
                coupons.push(codec::decode::<Coupon>(value).map_err(|e| format!("coupon {body}: {e}"))?)
            }
            RecordKey::Email(_) => email_index += 1,
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

//! What the vendor does to an account by hand (`licet-server admin`, the admin endpoints): grant
//! a license or change one without a coupon, revoke one, extend a term, free a seat.

use super::coupons::{extend_term, make_offer, validate};
use super::{Ledger, Redeemed};
use crate::entropy::Entropy;
use crate::error::Error;
use crate::model::{Account, Offer, Time};
use crate::txn::Tx;

impl Ledger {
    /// The account with `id` (1001 with field `account` when there is none: the only use of that
    /// field, so a server can answer it 404).
    fn account_by_id(&self, tx: &Tx<'_>, id: &str) -> Result<Account, Error> {
        tx.account(id)?.ok_or_else(|| Error::input("account", "no such account"))
    }

    /// Makes `offer` to the account as a coupon of it would, without one (1001, 1007, 2008).
    pub(crate) fn grant(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        account_id: &str,
        product: &str,
        offer: &Offer,
    ) -> Result<Redeemed, Error> {
        let mut account = self.account_by_id(tx, account_id)?;
        let product = self.product(tx, product)?;
        validate(offer, &product)?;
        let license = make_offer(&mut account, &product, offer.clone(), now, entropy)?;
        tx.put_account(&account);
        Ok(Redeemed { seats_used: account.seats_taken(&license, now), license, product })
    }

    /// Revokes a license: from `now` it grants nothing, and its hosts' seats and floating
    /// sessions are freed (without counting as resets). Revoking it again changes nothing.
    pub(crate) fn revoke(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        account_id: &str,
        license_id: &str,
    ) -> Result<Redeemed, Error> {
        let mut account = self.account_by_id(tx, account_id)?;
        let i = license_index(&account, license_id)?;
        if account.licenses[i].revoked_at.is_none() {
            account.licenses[i].revoked_at = Some(now);
            account.bindings.retain(|b| b.license_id != license_id);
            account.sessions.retain(|s| s.license_id != license_id);
            tx.put_account(&account);
        }
        let license = account.licenses[i].clone();
        let product = self.product(tx, &license.product)?;
        Ok(Redeemed { seats_used: 0, license, product })
    }

    /// Adds `days` to a trial's or subscription's term, never shortening it (1001 for a
    /// perpetual or revoked license).
    pub(crate) fn extend(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        account_id: &str,
        license_id: &str,
        days: u32,
    ) -> Result<Redeemed, Error> {
        if !(1..=36_600).contains(&days) {
            return Err(Error::input("days", "must be 1..=36600"));
        }
        let mut account = self.account_by_id(tx, account_id)?;
        let i = license_index(&account, license_id)?;
        let license = &mut account.licenses[i];
        if license.expires_at.is_none() {
            return Err(Error::input("kind", "a perpetual license has no term to extend"));
        }
        if license.revoked_at.is_some() {
            return Err(Error::input("revoked_at", "the license is revoked"));
        }
        extend_term(license, days, now);
        let license = license.clone();
        tx.put_account(&account);
        let product = self.product(tx, &license.product)?;
        Ok(Redeemed { seats_used: account.seats_taken(&license, now), license, product })
    }

    /// Frees a host's seat for the vendor: unlike the customer's reset it does not count against
    /// the license's resets (1001 unknown account, 1053 unknown binding).
    pub(crate) fn free_binding(&self, tx: &mut Tx<'_>, account_id: &str, binding_id: &str) -> Result<(), Error> {
        let mut account = self.account_by_id(tx, account_id)?;
        let before = account.bindings.len();
        account.bindings.retain(|b| b.id != binding_id);
        if account.bindings.len() == before {
            return Err(Error::Refused(crate::error::Code::BindingNotFound));
        }
        tx.put_account(&account);
        Ok(())
    }

    /// The account with `id`, if any (admin).
    pub(crate) fn account_with_id(&self, tx: &Tx<'_>, id: &str) -> Result<Option<Account>, Error> {
        tx.account(id)
    }
}

/// The license with `license_id` (1001 with field `license`, used for nothing else).
fn license_index(account: &Account, license_id: &str) -> Result<usize, Error> {
    account
        .licenses
        .iter()
        .position(|l| l.id == license_id)
        .ok_or_else(|| Error::input("license", "no such license in this account"))
}

//! Seats: activate-or-refresh, trials, deactivation and reset.

use std::cmp::Reverse;

use super::accounts::adopt_registration_host;
use super::{Ledger, TrialStarted, new_id};
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::model::{Account, Binding, Host, HostMatch, License, LicenseKind, LicenseModel, Product, Time};
use crate::txn::Tx;

/// A host's seat on a license, as the outcome of activate, trial or register; the server turns
/// it into a signed token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seat {
    /// The account holding the license.
    pub account_id: String,
    /// The product, with the settings that shape the token (lease, clock tolerance).
    pub product: Product,
    /// The license the host is bound to.
    pub license: License,
    /// Hosts bound to that license now, this one included.
    pub seats_used: u32,
    /// The host's binding.
    pub binding: Binding,
}

/// Preference among licenses with a free seat: perpetual, then subscriptions with the latest
/// expiry, then trials. Smaller sorts first.
pub(super) fn preference(license: &License) -> (u8, Reverse<Option<Time>>) {
    let rank = match license.kind {
        LicenseKind::Perpetual => 0,
        LicenseKind::Subscription => 1,
        LicenseKind::Trial => 2,
    };
    (rank, Reverse(license.expires_at))
}

/// Whether `license` is one of `product` whose seats are bound hosts (floating licenses are used
/// through sessions, never bound).
fn binds(license: &License, product: &Product) -> bool {
    license.product == product.id && license.model == LicenseModel::Host
}

/// The best current host license of `product` with a free seat, other than `except`.
fn best_free(account: &Account, product: &Product, now: Time, except: Option<&str>) -> Option<License> {
    account
        .licenses
        .iter()
        .filter(|l| binds(l, product) && l.is_current(product, now) && Some(l.id.as_str()) != except)
        .filter(|l| account.seats_used(&l.id) < l.seats)
        .min_by_key(|l| preference(l))
        .cloned()
}

/// Binds `host` to a license of `product` in `account`, or refreshes its binding (SPEC §2 flow 5).
fn bind(
    account: &mut Account,
    product: &Product,
    host: &Host,
    now: Time,
    entropy: &mut dyn Entropy,
) -> Result<Seat, Error> {
    if !account.licenses.iter().any(|l| binds(l, product)) {
        return Err(Error::Refused(Code::NoLicenseForProduct));
    }
    let existing = account.bindings.iter().position(|b| b.product == product.id && b.held_by(host).is_same());
    if let Some(i) = existing {
        // A binding a 0.1.0 agent made moves to the host's current fingerprint: the same machine,
        // hashed the new way, so its anchor is translated rather than drifted. The old anchor
        // stays, for 0.1.0 programs still running on the machine.
        let binding = &mut account.bindings[i];
        if binding.held_by(host) == HostMatch::Legacy {
            binding.anchor_0_1_0 = Some(std::mem::replace(&mut binding.anchor, host.fingerprint.clone()));
        }
        let current = account.license(&account.bindings[i].license_id).filter(|l| l.is_current(product, now)).cloned();
        match current {
            Some(license) => {
                // A host on a trial moves to a paid license with a free seat; one on a license
                // in its grace period, to a paid one that is not (a renewal).
                let in_grace = |l: &License| l.in_grace(product, now);
                let target = match license.kind == LicenseKind::Trial || in_grace(&license) {
                    true => best_free(account, product, now, Some(&license.id))
                        .filter(|l| {
                            l.kind != LicenseKind::Trial && (license.kind == LicenseKind::Trial || !in_grace(l))
                        })
                        .unwrap_or(license),
                    false => license,
                };
                let binding = &mut account.bindings[i];
                binding.license_id = target.id.clone();
                binding.host = host.stored();
                binding.last_seen = now;
                let binding = binding.clone();
                return Ok(seat_of(account, product, target, binding));
            }
            // The bound license is over: its seat is released, and the host looks for another.
            None => {
                account.bindings.remove(i);
            }
        }
    }
    let Some(license) = best_free(account, product, now, None) else {
        let any_current = account.licenses.iter().any(|l| binds(l, product) && l.is_current(product, now));
        return Err(Error::Refused(if any_current { Code::NoFreeLicense } else { Code::LicenseExpired }));
    };
    let binding = Binding {
        id: new_id("bnd_", entropy),
        license_id: license.id.clone(),
        product: product.id.clone(),
        host: host.stored(),
        anchor: host.fingerprint.clone(),
        anchor_0_1_0: None,
        bound_at: now,
        last_seen: now,
    };
    account.bindings.push(binding.clone());
    Ok(seat_of(account, product, license, binding))
}

fn seat_of(account: &Account, product: &Product, license: License, binding: Binding) -> Seat {
    Seat {
        account_id: account.id.clone(),
        product: product.clone(),
        seats_used: account.seats_used(&license.id),
        license,
        binding,
    }
}

impl Ledger {
    /// Binds the host to a license of the product, or refreshes its binding (1002, 1007, 1051,
    /// 1052, 2008).
    pub(crate) fn activate(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        number: &str,
        product: &str,
        host: &Host,
    ) -> Result<Seat, Error> {
        let mut account = self.account_by_number(tx, number)?;
        let product = self.product(tx, product)?;
        let seat = bind(&mut account, &product, host, now, entropy)?;
        adopt_registration_host(tx, &mut account, host)?;
        tx.put_account(&account);
        Ok(seat)
    }

    /// Starts the account's trial of a product — once per account and product, registration
    /// counting (1006) — and binds the host. Returns the trial and the host's seat.
    pub(crate) fn trial(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        number: &str,
        product: &str,
        host: &Host,
    ) -> Result<TrialStarted, Error> {
        let mut account = self.account_by_number(tx, number)?;
        let product = self.product(tx, product)?;
        if account.trials_used.contains(&product.id) {
            return Err(Error::Refused(Code::TrialAlreadyUsed));
        }
        let trial = License::trial(new_id("lic_", entropy), &product, now);
        account.licenses.push(trial.clone());
        account.trials_used.insert(product.id.clone());
        let seat = bind(&mut account, &product, host, now, entropy)?;
        adopt_registration_host(tx, &mut account, host)?;
        tx.put_account(&account);
        Ok(TrialStarted { trial, seat })
    }

    /// Frees the seat the host holds on a license of the product (1053 when it holds none;
    /// 1054 past the product's limit of resets).
    pub(crate) fn deactivate(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        number: &str,
        product: &str,
        host: &Host,
    ) -> Result<(), Error> {
        let mut account = self.account_by_number(tx, number)?;
        let product = self.product(tx, product)?;
        let i = account
            .bindings
            .iter()
            .position(|b| b.product == product.id && b.held_by(host).is_same())
            .ok_or(Error::Refused(Code::BindingNotFound))?;
        free_seat(&mut account, i, &product, now)?;
        tx.put_account(&account);
        Ok(())
    }

    /// Frees a seat from the portal: the binding must belong to the account behind
    /// `credential` (1061 for a bad credential, 1053 for a binding that is not the account's;
    /// 1054 past the product's limit of resets).
    pub(crate) fn reset(&self, tx: &mut Tx<'_>, now: Time, credential: &str, binding_id: &str) -> Result<(), Error> {
        let mut account = self.authenticate(tx, credential)?;
        let i =
            account.bindings.iter().position(|b| b.id == binding_id).ok_or(Error::Refused(Code::BindingNotFound))?;
        let product = self.product(tx, &account.bindings[i].product)?;
        free_seat(&mut account, i, &product, now)?;
        tx.put_account(&account);
        Ok(())
    }
}

/// Removes binding `i`, counting the reset against its license's limit (1054 when reached).
fn free_seat(account: &mut Account, i: usize, product: &Product, now: Time) -> Result<(), Error> {
    let license_id = account.bindings[i].license_id.clone();
    if let Some(license) = account.licenses.iter_mut().find(|l| l.id == license_id) {
        license.count_reset(product, now)?;
    }
    account.bindings.remove(i);
    Ok(())
}

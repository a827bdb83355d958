//! Coupons: issuing batches and redeeming them once.

use super::bindings::preference;
use super::{Ledger, Redeemed, add_days, new_id};
use crate::credential::CouponCode;
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::model::{
    Account, Coupon, CouponKind, License, LicenseKind, LicenseModel, Offer, Product, Redemption, Time,
    validate_features,
};
use crate::txn::Tx;

/// Most coupons in one batch.
pub const MAX_BATCH: u32 = 10_000;

/// A batch of coupons to issue (admin).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CouponBatch {
    /// The product whose licenses the coupons create or change.
    pub product: String,
    /// How many coupons, 1–10000.
    pub count: u32,
    /// What each one does.
    pub offer: Offer,
}

impl CouponBatch {
    /// `count` coupons for `product`, each adding a license of `seats` with all of the product's
    /// features, perpetual or for `term_days`.
    pub fn licenses(product: &str, count: u32, seats: u32, term_days: Option<u32>) -> CouponBatch {
        let offer = Offer::License { seats, term_days, features: None, model: LicenseModel::Host };
        CouponBatch { product: product.to_owned(), count, offer }
    }
}

/// Checks an offer's numbers and that its features are the product's (1001).
pub(crate) fn validate(offer: &Offer, product: &Product) -> Result<(), Error> {
    let seats = |seats: u32| match (1..=10_000).contains(&seats) {
        true => Ok(()),
        false => Err(Error::input("seats", "must be 1..=10000")),
    };
    match offer {
        Offer::License { seats: n, term_days, features, .. } => {
            seats(*n)?;
            if term_days.is_some_and(|d| !(1..=36_600).contains(&d)) {
                return Err(Error::input("term_days", "must be 1..=36600 or null"));
            }
            if let Some(features) = features {
                validate_features("features", features)?;
                product.check_declares("features", features)?;
            }
        }
        Offer::Extend { days } if !(1..=36_600).contains(days) => {
            return Err(Error::input("days", "must be 1..=36600"));
        }
        Offer::Extend { .. } => {}
        Offer::Seats { seats: n } => seats(*n)?,
        Offer::Upgrade { features } => {
            if features.is_empty() {
                return Err(Error::input("features", "an upgrade adds at least one feature"));
            }
            validate_features("features", features)?;
            product.check_declares("features", features)?;
        }
    }
    Ok(())
}

/// The license of `product` in `account` that a coupon of `kind` changes: for `extend`, the
/// trial or subscription that ends last; for `seats` and `upgrade`, the paid license a host
/// would be bound to (SPEC §2.5's preference, current ones first) — a floating one only when
/// the account has no paid host license of the product. `None` for `license`.
fn target(account: &Account, product: &Product, kind: CouponKind, now: Time) -> Option<usize> {
    // A revoked license is changed by nothing: the vendor took it back.
    let of_product =
        || account.licenses.iter().enumerate().filter(|(_, l)| l.product == product.id && l.revoked_at.is_none());
    let found = match kind {
        CouponKind::License => None,
        CouponKind::Extend => of_product()
            .filter(|(_, l)| matches!(l.kind, LicenseKind::Trial | LicenseKind::Subscription))
            .max_by_key(|(_, l)| l.expires_at),
        CouponKind::Seats | CouponKind::Upgrade => of_product()
            .filter(|(_, l)| l.kind != LicenseKind::Trial)
            .min_by_key(|(_, l)| (!l.is_current(product, now), l.model != LicenseModel::Host, preference(l))),
    };
    found.map(|(i, _)| i)
}

/// Makes `offer` to `account`: a new license, or a change to the license of `product` it
/// applies to (2008 when the account holds none). Returns the license made or changed.
pub(crate) fn make_offer(
    account: &mut Account,
    product: &Product,
    offer: Offer,
    now: Time,
    entropy: &mut dyn Entropy,
) -> Result<License, Error> {
    Ok(match offer {
        Offer::License { seats, term_days, features, model } => {
            let license = License {
                id: new_id("lic_", entropy),
                product: product.id.clone(),
                kind: if term_days.is_some() { LicenseKind::Subscription } else { LicenseKind::Perpetual },
                seats,
                starts_at: now,
                expires_at: term_days.map(|d| add_days(now, d)),
                features,
                resets: Vec::new(),
                model,
                revoked_at: None,
            };
            account.licenses.push(license.clone());
            license
        }
        offer => {
            let i = target(account, product, offer.kind(), now).ok_or(Error::Refused(Code::NoLicenseForProduct))?;
            let license = &mut account.licenses[i];
            match offer {
                Offer::Extend { days } => extend_term(license, days, now),
                Offer::Seats { seats } => license.seats = license.seats.saturating_add(seats),
                Offer::Upgrade { features } => {
                    if let Some(own) = &mut license.features {
                        own.extend(features);
                    }
                }
                Offer::License { .. } => {}
            }
            license.clone()
        }
    })
}

/// Adds `days` to a license's term: never shorter — from the end as sold, or from `now` once it
/// has passed.
pub(crate) fn extend_term(license: &mut License, days: u32, now: Time) {
    let from = license.expires_at.map_or(now, |end| end.max(now));
    license.expires_at = Some(add_days(from, days));
}

impl Ledger {
    /// Issues a batch of coupons, each making the batch's offer (admin; 1001, 1007).
    pub(crate) fn issue_coupons(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        batch: &CouponBatch,
    ) -> Result<Vec<CouponCode>, Error> {
        let CouponBatch { ref product, count, ref offer } = *batch;
        if !(1..=MAX_BATCH).contains(&count) {
            return Err(Error::input("count", format!("must be 1..={MAX_BATCH}")));
        }
        let product = self.product(tx, product)?;
        validate(offer, &product)?;
        let mut codes = Vec::with_capacity(count as usize);
        while codes.len() < count as usize {
            let code = CouponCode::generate(&self.vendor, entropy);
            if tx.coupon(&code.body())?.is_some() {
                continue;
            }
            tx.put_coupon(&Coupon::new(code.body(), &product.id, offer, now));
            codes.push(code);
        }
        Ok(codes)
    }

    /// Redeems a coupon for the account of `number`: makes its offer once — a new license, or a
    /// change to one the account holds (2008 when it holds none to change). Redeemed by another
    /// account → 1005; by this one → the same license again, so a retry is safe (1002, 1003,
    /// 1004, 1005).
    pub(crate) fn redeem(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        number: Option<&str>,
        coupon: &str,
    ) -> Result<Redeemed, Error> {
        let number = number.map(str::trim).filter(|n| !n.is_empty());
        let Some(number) = number else { return Err(Error::Credential(Code::RegistrationNumberRequired)) };
        let mut account = self.account_by_number(tx, number)?;
        let unknown = Error::Credential(Code::InvalidCoupon);
        let code = CouponCode::parse(coupon)?;
        if code.vendor() != self.vendor {
            return Err(unknown);
        }
        let mut coupon = tx.coupon(&code.body())?.ok_or(unknown)?;
        let product = self.product(tx, &coupon.product)?;
        if let Some(done) = &coupon.redeemed {
            if done.account_id != account.id {
                return Err(Error::Refused(Code::CouponAlreadyRedeemed));
            }
            let license = account.license(&done.license_id).cloned().ok_or_else(|| {
                Error::Internal(format!("license {} of a redeemed coupon is missing", done.license_id))
            })?;
            return Ok(Redeemed { seats_used: account.seats_taken(&license, now), license, product });
        }
        let license = make_offer(&mut account, &product, coupon.offer(), now, entropy)?;
        coupon.redeemed = Some(Redemption { account_id: account.id.clone(), license_id: license.id.clone(), at: now });
        tx.put_coupon(&coupon);
        tx.put_account(&account);
        Ok(Redeemed { seats_used: account.seats_taken(&license, now), license, product })
    }
}

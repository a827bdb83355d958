//! Coupons: issuing batches and redeeming them once.

use super::{Ledger, Redeemed, add_days, new_id};
use crate::credential::CouponCode;
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::model::{Coupon, License, LicenseKind, Redemption, Time};
use crate::txn::Tx;

/// Most coupons in one batch.
pub const MAX_BATCH: u32 = 10_000;

/// A batch of coupons to issue (admin).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CouponBatch {
    /// The product of the licenses the coupons create.
    pub product: String,
    /// How many coupons, 1–10000.
    pub count: u32,
    /// Seats of each license, 1–10000.
    pub seats: u32,
    /// Term of each license in days; `None` makes them perpetual.
    pub term_days: Option<u32>,
}

impl Ledger {
    /// Issues a batch of coupons, each adding a license of the batch's seats, perpetual or for
    /// its term (admin; 1001, 1007).
    pub(crate) fn issue_coupons(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        batch: &CouponBatch,
    ) -> Result<Vec<CouponCode>, Error> {
        let CouponBatch { ref product, count, seats, term_days } = *batch;
        if !(1..=MAX_BATCH).contains(&count) {
            return Err(Error::input("count", format!("must be 1..={MAX_BATCH}")));
        }
        if !(1..=10_000).contains(&seats) {
            return Err(Error::input("seats", "must be 1..=10000"));
        }
        if term_days.is_some_and(|d| !(1..=36_600).contains(&d)) {
            return Err(Error::input("term_days", "must be 1..=36600 or null"));
        }
        let product = self.product(tx, product)?;
        let mut codes = Vec::with_capacity(count as usize);
        while codes.len() < count as usize {
            let code = CouponCode::generate(&self.vendor, entropy);
            if tx.coupon(&code.body())?.is_some() {
                continue;
            }
            tx.put_coupon(&Coupon {
                body: code.body(),
                product: product.id.clone(),
                seats,
                term_days,
                issued_at: now,
                redeemed: None,
            });
            codes.push(code);
        }
        Ok(codes)
    }

    /// Redeems a coupon for the account of `number`: creates its license once. Redeemed by
    /// another account → 1005; by this one → the same license again, so a retry is safe
    /// (1002, 1003, 1004, 1005).
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
        if let Some(done) = &coupon.redeemed {
            if done.account_id != account.id {
                return Err(Error::Refused(Code::CouponAlreadyRedeemed));
            }
            let license = account.license(&done.license_id).cloned().ok_or_else(|| {
                Error::Internal(format!("license {} of a redeemed coupon is missing", done.license_id))
            })?;
            return Ok(Redeemed { seats_used: account.seats_used(&license.id), license });
        }
        let license = License {
            id: new_id("lic_", entropy),
            product: coupon.product.clone(),
            kind: if coupon.term_days.is_some() { LicenseKind::Subscription } else { LicenseKind::Perpetual },
            seats: coupon.seats,
            starts_at: now,
            expires_at: coupon.term_days.map(|d| add_days(now, d)),
        };
        coupon.redeemed = Some(Redemption { account_id: account.id.clone(), license_id: license.id.clone(), at: now });
        account.licenses.push(license.clone());
        tx.put_coupon(&coupon);
        tx.put_account(&account);
        Ok(Redeemed { license, seats_used: 0 })
    }
}

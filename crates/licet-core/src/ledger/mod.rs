//! The license ledger: every command of SPEC §2 and §5 as a pure function of the records it
//! reads, the time and injected randomness.
//!
//! Commands are values ([`Command`]) decided by one dispatcher, [`Ledger::handle`], over a [`Tx`]
//! (reads + buffered writes), `now`, and an [`Entropy`] for the ids and keys it mints. A command
//! that returns `Err` must leave its writes unapplied; stores guarantee that by applying
//! [`Tx::into_changes`](crate::txn::Tx::into_changes) only on success.

mod accounts;
mod admin;
mod bindings;
mod command;
mod coupons;
mod sessions;

pub use command::{AccountFound, Command, HostCommand, Outcome, Redeemed, TrialStarted};
pub use coupons::{CouponBatch, MAX_BATCH};

use crate::credential::{self, CouponCode, RegistrationNumber};
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::model::{Account, Product, ProductSettings};
use crate::txn::{RecordKey, Tx};

pub use accounts::{Registered, Registration};
pub use bindings::Seat;
pub use sessions::{Checkout, SessionSeat};

/// The ledger's configuration; the state lives in the store.
#[derive(Clone, Debug)]
pub struct Ledger {
    vendor: String,
}

/// Symbols in a record id after its prefix (80 random bits).
const ID_LEN: usize = 16;

impl Ledger {
    /// A ledger for the deployment's vendor prefix (`LICET`, `MIKO`, …).
    pub fn new(vendor_prefix: &str) -> Result<Ledger, Error> {
        credential::validate_prefix(vendor_prefix)?;
        Ok(Ledger { vendor: vendor_prefix.to_owned() })
    }

    /// The vendor prefix of this deployment's keys.
    pub fn vendor(&self) -> &str {
        &self.vendor
    }

    /// The full registration number of an account, as the customer types it.
    pub fn number_of(&self, account: &Account) -> Result<RegistrationNumber, Error> {
        RegistrationNumber::parse(&format!("{}-{}", self.vendor, account.number))
            .map_err(|_| Error::Internal(format!("account {} holds an invalid number", account.id)))
    }

    /// Creates a product or changes its settings (admin).
    pub(crate) fn upsert_product(
        &self,
        tx: &mut Tx<'_>,
        id: &str,
        settings: &ProductSettings,
    ) -> Result<Product, Error> {
        let mut product = match tx.product(id)? {
            Some(p) => p,
            None => Product::new(id)?,
        };
        product.apply(settings)?;
        tx.put_product(&product);
        Ok(product)
    }

    /// A product, or 1007.
    pub(crate) fn product(&self, tx: &Tx<'_>, id: &str) -> Result<Product, Error> {
        crate::model::validate_product_id(id).map_err(|_| Error::Refused(Code::UnknownProduct))?;
        tx.product(id)?.ok_or(Error::Refused(Code::UnknownProduct))
    }

    /// The account of a registration number given as text; a bad format, a foreign vendor
    /// prefix or an unknown number is 1002.
    pub(crate) fn account_by_number(&self, tx: &Tx<'_>, number: &str) -> Result<Account, Error> {
        let unknown = Error::Credential(Code::InvalidRegistrationNumber);
        let number = RegistrationNumber::parse(number)?;
        if number.vendor() != self.vendor {
            return Err(unknown);
        }
        tx.account_by(&RecordKey::Number(number.body()))?.ok_or(unknown)
    }

    /// The account behind a portal credential: its registration number, or a coupon it has
    /// redeemed. Anything else is 1061.
    pub(crate) fn authenticate(&self, tx: &Tx<'_>, credential: &str) -> Result<Account, Error> {
        let unauthorized = Error::Refused(Code::Unauthorized);
        if let Ok(account) = self.account_by_number(tx, credential) {
            return Ok(account);
        }
        let Ok(coupon) = CouponCode::parse(credential) else { return Err(unauthorized) };
        if coupon.vendor() != self.vendor {
            return Err(unauthorized);
        }
        let Some(redemption) = tx.coupon(&coupon.body())?.and_then(|c| c.redeemed) else {
            return Err(unauthorized);
        };
        tx.account(&redemption.account_id)?
            .ok_or_else(|| Error::Internal(format!("coupon redeemed by missing account {}", redemption.account_id)))
    }
}

/// A fresh record id: `prefix` + 16 Crockford symbols (80 bits) from `entropy`.
pub(crate) fn new_id(prefix: &str, entropy: &mut dyn Entropy) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut bytes = [0u8; ID_LEN];
    entropy.fill(&mut bytes);
    let mut id = String::with_capacity(prefix.len() + ID_LEN);
    id.push_str(prefix);
    id.extend(bytes.iter().map(|b| ALPHABET[(b & 31) as usize] as char));
    id
}

pub(crate) use crate::model::add_days;

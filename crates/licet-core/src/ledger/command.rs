//! Commands as values: everything the ledger can be asked, as data that can be logged (credentials
//! masked), serialized and replayed, decided by one dispatcher, [`Ledger::handle`].
//!
//! The server turns each HTTP request into a [`Command`], the property tests and the fuzzer
//! generate them; a new command is added here and in the dispatcher, nowhere else.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Ledger;
use super::accounts::{Registered, Registration};
use super::bindings::Seat;
use super::coupons::CouponBatch;
use super::sessions::{Checkout, SessionSeat};
use crate::credential::{CouponCode, RegistrationNumber, Secret};
use crate::entropy::Entropy;
use crate::error::Error;
use crate::model::{Account, Host, License, LicenseFacts, Offer, Product, ProductSettings, Time};
use crate::txn::Tx;

/// What a host asks about a product with the account's registration number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCommand {
    /// The registration number as given.
    pub number: Secret,
    /// The product's slug.
    pub product: String,
    /// The asking host.
    pub host: Host,
}

/// A request to the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Creates a product or changes its settings (admin) → [`Outcome::Product`].
    PutProduct {
        /// The product's slug.
        id: String,
        /// The settings to change.
        settings: ProductSettings,
    },
    /// Issues a batch of coupons (admin) → [`Outcome::Coupons`].
    IssueCoupons(CouponBatch),
    /// Registers an account with a trial bound to the registering host → [`Outcome::Registered`].
    Register(Registration),
    /// Binds the host to a license of the product, or refreshes its binding → [`Outcome::Seat`].
    Activate(HostCommand),
    /// Starts the account's trial of the product on the host → [`Outcome::Trial`].
    Trial(HostCommand),
    /// Frees the seat the host holds → [`Outcome::Done`].
    Deactivate(HostCommand),
    /// Redeems a coupon for the account of `number` → [`Outcome::Redeemed`].
    Redeem {
        /// The account's number; a coupon without one is refused (1003).
        number: Option<Secret>,
        /// The coupon as given.
        coupon: Secret,
    },
    /// Frees a binding of the account behind `credential` (portal) → [`Outcome::Done`].
    Reset {
        /// The account's number or a coupon it redeemed.
        credential: Secret,
        /// The binding to free.
        binding_id: String,
    },
    /// Queues the mail that reminds an account of its number, if the e-mail has one → [`Outcome::Done`].
    Recover {
        /// The e-mail as given.
        email: String,
    },
    /// The account behind a credential: its number or a coupon it redeemed → [`Outcome::Account`].
    Account {
        /// The number or coupon.
        credential: Secret,
    },
    /// The account registered with an e-mail (admin) → [`Outcome::MaybeAccount`].
    AccountByEmail {
        /// The e-mail.
        email: String,
    },
    /// The account with an id (admin) → [`Outcome::MaybeAccount`].
    AccountById {
        /// `acc_…`.
        account_id: String,
    },
    /// Makes an offer to an account without a coupon (admin) → [`Outcome::Redeemed`].
    Grant {
        /// `acc_…`.
        account_id: String,
        /// The product.
        product: String,
        /// What a coupon of it would make.
        offer: Offer,
    },
    /// Revokes a license: it grants nothing from now, its seats and sessions are freed (admin)
    /// → [`Outcome::Redeemed`].
    Revoke {
        /// `acc_…`.
        account_id: String,
        /// `lic_…`.
        license_id: String,
    },
    /// Adds days to a trial's or subscription's term (admin) → [`Outcome::Redeemed`].
    Extend {
        /// `acc_…`.
        account_id: String,
        /// `lic_…`.
        license_id: String,
        /// Days added.
        days: u32,
    },
    /// Frees a host's seat without counting it as a reset (admin) → [`Outcome::Done`].
    FreeBinding {
        /// `acc_…`.
        account_id: String,
        /// `bnd_…`.
        binding_id: String,
    },
    /// Checks out a session of a floating license on the host → [`Outcome::Session`].
    Checkout(Checkout),
    /// Extends a live session of the account behind `credential` → [`Outcome::Session`].
    Heartbeat {
        /// The account's number (or a coupon it redeemed).
        credential: Secret,
        /// The session.
        session_id: String,
    },
    /// Ends a live session of the account behind `credential` (agent or portal) → [`Outcome::Done`].
    Release {
        /// The account's number (or a coupon it redeemed).
        credential: Secret,
        /// The session.
        session_id: String,
    },
}

impl Command {
    /// The command's snake_case name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::PutProduct { .. } => "put_product",
            Command::IssueCoupons(_) => "issue_coupons",
            Command::Register(_) => "register",
            Command::Activate(_) => "activate",
            Command::Trial(_) => "trial",
            Command::Deactivate(_) => "deactivate",
            Command::Redeem { .. } => "redeem",
            Command::Reset { .. } => "reset",
            Command::Recover { .. } => "recover",
            Command::Account { .. } => "account",
            Command::AccountByEmail { .. } => "account_by_email",
            Command::AccountById { .. } => "account_by_id",
            Command::Grant { .. } => "grant",
            Command::Revoke { .. } => "revoke",
            Command::Extend { .. } => "extend",
            Command::FreeBinding { .. } => "free_binding",
            Command::Checkout(_) => "checkout",
            Command::Heartbeat { .. } => "heartbeat",
            Command::Release { .. } => "release",
        }
    }
}

/// A trial started on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialStarted {
    /// The new trial license.
    pub trial: License,
    /// The host's seat (on the trial, or on a paid license it already held).
    pub seat: Seat,
}

/// A redeemed coupon's license.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redeemed {
    /// The license the coupon created or changed (the same one again on a retry).
    pub license: License,
    /// Hosts bound to it now.
    pub seats_used: u32,
    /// Its product, whose settings shape what it grants.
    pub product: Product,
}

/// An account with its registration number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountFound {
    /// The account.
    pub account: Account,
    /// Its registration number (a credential: show it masked unless to its owner or an admin).
    pub number: RegistrationNumber,
    /// The products of its licenses, by id, whose settings shape what they grant.
    pub products: BTreeMap<String, Product>,
}

impl AccountFound {
    /// The display name of product `id` (its id when the product is missing, which a ledger
    /// never lets happen).
    pub fn product_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.products.get(id).map_or(id, |p| p.name.as_str())
    }

    /// What license `license` grants at `now` (no features, no grace, no limit should its
    /// product be missing, which a ledger never lets happen).
    pub fn facts(&self, license: &License, now: Time) -> LicenseFacts {
        match self.products.get(&license.product) {
            Some(product) => license.facts(product, now),
            None => LicenseFacts {
                features: Vec::new(),
                grace_until: license.expires_at,
                resets_left: None,
                in_grace: false,
            },
        }
    }
}

/// What a command produced.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The product as stored.
    Product(Product),
    /// The coupons issued.
    Coupons(Vec<CouponCode>),
    /// The new account.
    Registered(Box<Registered>),
    /// A host's seat.
    Seat(Box<Seat>),
    /// A started trial.
    Trial(Box<TrialStarted>),
    /// A redeemed coupon.
    Redeemed(Box<Redeemed>),
    /// Done; nothing to tell.
    Done,
    /// An account.
    Account(Box<AccountFound>),
    /// An account, if there is one.
    MaybeAccount(Option<Box<AccountFound>>),
    /// A live floating session.
    Session(Box<SessionSeat>),
}

/// Typed access to an outcome: `let seat: Seat = outcome.try_into()?`. A mismatch is a bug in the
/// caller, reported as an internal error (1099), never a panic.
macro_rules! outcome_into {
    ($($variant:ident => $ty:ty, |$v:ident| $out:expr;)*) => {$(
        impl TryFrom<Outcome> for $ty {
            type Error = Error;
            fn try_from(outcome: Outcome) -> Result<$ty, Error> {
                match outcome {
                    Outcome::$variant($v) => Ok($out),
                    other => Err(Error::Internal(format!(
                        "expected a {} outcome, got {other:?}", stringify!($variant)))),
                }
            }
        }
    )*};
}

outcome_into! {
    Product => Product, |p| p;
    Coupons => Vec<CouponCode>, |c| c;
    Registered => Registered, |r| *r;
    Seat => Seat, |s| *s;
    Trial => TrialStarted, |t| *t;
    Redeemed => Redeemed, |r| *r;
    Account => AccountFound, |a| *a;
    MaybeAccount => Option<AccountFound>, |a| a.map(|a| *a);
    Session => SessionSeat, |s| *s;
}

impl TryFrom<Outcome> for () {
    type Error = Error;
    fn try_from(outcome: Outcome) -> Result<(), Error> {
        match outcome {
            Outcome::Done => Ok(()),
            other => Err(Error::Internal(format!("expected no outcome, got {other:?}"))),
        }
    }
}

impl Ledger {
    /// An account found, with its number and the products of its licenses.
    fn found(&self, tx: &Tx<'_>, account: Account) -> Result<AccountFound, Error> {
        let number = self.number_of(&account)?;
        let mut products = BTreeMap::new();
        for license in &account.licenses {
            if !products.contains_key(&license.product) {
                products.insert(license.product.clone(), self.product(tx, &license.product)?);
            }
        }
        Ok(AccountFound { account, number, products })
    }

    /// Decides `command` over the records `tx` reads, at `now`, minting ids from `entropy`. The
    /// one dispatcher: every command of the product runs through here. A refused command leaves
    /// its writes unapplied (stores apply [`Tx::into_changes`] only on `Ok`).
    pub fn handle(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        command: &Command,
    ) -> Result<Outcome, Error> {
        Ok(match command {
            Command::PutProduct { id, settings } => Outcome::Product(self.upsert_product(tx, id, settings)?),
            Command::IssueCoupons(batch) => Outcome::Coupons(self.issue_coupons(tx, now, entropy, batch)?),
            Command::Register(registration) => {
                Outcome::Registered(Box::new(self.register(tx, now, entropy, registration)?))
            }
            Command::Activate(r) => {
                Outcome::Seat(Box::new(self.activate(tx, now, entropy, r.number.expose(), &r.product, &r.host)?))
            }
            Command::Trial(r) => {
                Outcome::Trial(Box::new(self.trial(tx, now, entropy, r.number.expose(), &r.product, &r.host)?))
            }
            Command::Deactivate(r) => {
                self.deactivate(tx, now, r.number.expose(), &r.product, &r.host)?;
                Outcome::Done
            }
            Command::Redeem { number, coupon } => Outcome::Redeemed(Box::new(self.redeem(
                tx,
                now,
                entropy,
                number.as_ref().map(Secret::expose),
                coupon.expose(),
            )?)),
            Command::Reset { credential, binding_id } => {
                self.reset(tx, now, credential.expose(), binding_id)?;
                Outcome::Done
            }
            Command::Recover { email } => {
                self.recover(tx, now, email)?;
                Outcome::Done
            }
            Command::Account { credential } => {
                let account = self.authenticate(tx, credential.expose())?;
                Outcome::Account(Box::new(self.found(tx, account)?))
            }
            Command::AccountByEmail { email } => match self.account_by_email(tx, email)? {
                None => Outcome::MaybeAccount(None),
                Some(account) => Outcome::MaybeAccount(Some(Box::new(self.found(tx, account)?))),
            },
            Command::AccountById { account_id } => match self.account_with_id(tx, account_id)? {
                None => Outcome::MaybeAccount(None),
                Some(account) => Outcome::MaybeAccount(Some(Box::new(self.found(tx, account)?))),
            },
            Command::Grant { account_id, product, offer } => {
                Outcome::Redeemed(Box::new(self.grant(tx, now, entropy, account_id, product, offer)?))
            }
            Command::Revoke { account_id, license_id } => {
                Outcome::Redeemed(Box::new(self.revoke(tx, now, account_id, license_id)?))
            }
            Command::Extend { account_id, license_id, days } => {
                Outcome::Redeemed(Box::new(self.extend(tx, now, account_id, license_id, *days)?))
            }
            Command::FreeBinding { account_id, binding_id } => {
                self.free_binding(tx, account_id, binding_id)?;
                Outcome::Done
            }
            Command::Checkout(request) => Outcome::Session(Box::new(self.checkout(tx, now, entropy, request)?)),
            Command::Heartbeat { credential, session_id } => {
                Outcome::Session(Box::new(self.heartbeat(tx, now, credential.expose(), session_id)?))
            }
            Command::Release { credential, session_id } => {
                self.release(tx, now, credential.expose(), session_id)?;
                Outcome::Done
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use crate::host::Fingerprint;

    #[test]
    fn a_command_round_trips_and_its_debug_form_hides_credentials() -> Result<(), Box<dyn std::error::Error>> {
        let host = Host::new(Fingerprint::new([("machine-id", "m"), ("mac", "a")])?, "pc", "Linux")?;
        let number = "MIKO-50YDY-RF28Y-E8CAH-RXWTG";
        let commands = [
            Command::Activate(HostCommand { number: number.into(), product: "call-journal".into(), host }),
            Command::Redeem { number: Some(number.into()), coupon: "MIKOUPD-A650G-F1WCF-CFM4D-A0435".into() },
            Command::Recover { email: "a@example.com".into() },
        ];
        for command in commands {
            assert_eq!(codec::unpack::<Command>(&codec::pack(&command))?, command);
            let shown = format!("{command:?}");
            assert!(!shown.contains("50YDY") && !shown.contains("A650G"), "{shown}");
        }
        Ok(())
    }
}

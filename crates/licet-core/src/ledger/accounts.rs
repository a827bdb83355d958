//! Registration, recovery and account lookups.

use std::collections::BTreeSet;

use super::{Ledger, new_id};
use crate::credential::RegistrationNumber;
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::host::Fingerprint;
use crate::mail::{Lang, Mail, Message};
use crate::model::{Account, Binding, Host, HostMatch, License, Time, bounded_text};
use crate::txn::{RecordKey, Tx};

use super::bindings::Seat;

/// What a customer fills in to register (SPEC §2 flow 1).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registration {
    /// Unique, case-insensitively.
    pub email: String,
    /// The organisation's name.
    pub organization: String,
    /// A contact person.
    pub contact: Option<String>,
    /// A phone number.
    pub phone: Option<String>,
    /// The product to try.
    pub product: String,
    /// The registering host, bound to the trial.
    pub host: Host,
    /// The language of the account's mail.
    #[serde(default)]
    pub lang: Lang,
}

/// The result of a registration.
#[derive(Clone, Debug)]
pub struct Registered {
    /// The new account's registration number.
    pub number: RegistrationNumber,
    /// The trial and the registering host's seat.
    pub seat: Seat,
}

/// Validates an e-mail address by [`crate::email`]'s rule; returns it as stored.
pub(crate) fn validate_email(email: &str) -> Result<String, Error> {
    crate::email::normalize(email)
}

fn optional_text(field: &'static str, text: &Option<String>) -> Result<Option<String>, Error> {
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => bounded_text(field, t, 1, 200).map(Some),
    }
}

/// The index key of an accepted e-mail.
fn email_key(email: &str) -> RecordKey {
    RecordKey::Email(crate::email::identity(email))
}

/// Accounts listed under one host component at most: a component shared by that many
/// registrations (a cloned VM image's machine-id, say) tells hosts apart no longer.
const MAX_HOST_INDEX: usize = 1_000;

/// The first 16 bytes of a component hash, as stored in the host index.
fn short(hash: [u8; 32]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out.copy_from_slice(&hash[..16]);
    out
}

/// The components a registration host is indexed by, for the 1059 guard (lookups use every
/// component). The host name is common to many customers ("DESKTOP-1"), so it is left out —
/// unless it is the only component. Two thirds of a fingerprint of two or more components
/// always include one that is not the host name, so no match is missed.
fn indexed_components(fingerprint: &Fingerprint) -> Vec<[u8; 16]> {
    let only_one = fingerprint.components().len() == 1;
    fingerprint
        .components()
        .keys()
        .zip(fingerprint.component_hashes())
        .filter(|(name, _)| only_one || name.as_str() != "hostname")
        .map(|(_, hash)| short(hash))
        .collect()
}

/// Lists `account_id` under the components of its registration host.
fn index_registration_host(tx: &mut Tx<'_>, account_id: &str, host: &Fingerprint) -> Result<(), Error> {
    for component in indexed_components(host) {
        let mut ids = tx.host_accounts(component)?;
        if ids.len() < MAX_HOST_INDEX && !ids.iter().any(|id| id == account_id) {
            ids.push(account_id.to_owned());
            tx.put_host_accounts(component, &ids);
        }
    }
    Ok(())
}

/// When `host` is the account's registration host by the fingerprint release 0.1.0 made of it,
/// moves the registration to the host's current fingerprint (indexed too), so that the 1059
/// guard keeps working once agents stop presenting the old one; the old fingerprint and its
/// index entries stay, for 0.1.0 agents still running on the machine.
pub(super) fn adopt_registration_host(tx: &mut Tx<'_>, account: &mut Account, host: &Host) -> Result<(), Error> {
    if account.registered_by(host) != HostMatch::Legacy {
        return Ok(());
    }
    account.registration_host_0_1_0 = Some(std::mem::replace(&mut account.registration_host, host.fingerprint.clone()));
    index_registration_host(tx, &account.id, &host.fingerprint)
}

impl Ledger {
    /// Creates an account with a new registration number and a trial of `product` bound to the
    /// registering host (1001, 1007, 1059, 1058 — the host checked before the e-mail).
    pub(crate) fn register(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        reg: &Registration,
    ) -> Result<Registered, Error> {
        let email = validate_email(&reg.email)?;
        let organization = bounded_text("organization", &reg.organization, 1, 200)?;
        let contact = optional_text("contact", &reg.contact)?;
        let phone = optional_text("phone", &reg.phone)?;
        let product = self.product(tx, &reg.product)?;
        // The host first (SPEC §2.1): a registered host learns nothing about which e-mails exist.
        let mut seen = BTreeSet::new();
        let presented = std::iter::once(&reg.host.fingerprint).chain(reg.host.legacy.as_ref());
        for component in presented.flat_map(Fingerprint::component_hashes).map(short) {
            for account_id in tx.host_accounts(component)? {
                if seen.insert(account_id.clone())
                    && let Some(other) = tx.account(&account_id)?
                    && other.registered_by(&reg.host).is_same()
                {
                    return Err(Error::Refused(Code::HostAlreadyRegistered));
                }
            }
        }

        if tx.exists(&email_key(&email))? {
            return Err(Error::Refused(Code::EmailAlreadyRegistered));
        }
        let number = loop {
            let candidate = RegistrationNumber::generate(&self.vendor, entropy);
            if !tx.exists(&RecordKey::Number(candidate.body()))? {
                break candidate;
            }
        };
        let account_id = loop {
            let id = new_id("acc_", entropy);
            if !tx.exists(&RecordKey::Account(id.clone()))? {
                break id;
            }
        };
        let license = License::trial(new_id("lic_", entropy), &product, now);
        let binding = Binding {
            id: new_id("bnd_", entropy),
            license_id: license.id.clone(),
            product: product.id.clone(),
            host: reg.host.stored(),
            anchor: reg.host.fingerprint.clone(),
            anchor_0_1_0: None,
            bound_at: now,
            last_seen: now,
        };
        let account = Account {
            id: account_id.clone(),
            email: email.clone(),
            organization,
            contact,
            phone,
            number: number.body(),
            created_at: now,
            registration_host: reg.host.fingerprint.clone(),
            registration_host_0_1_0: None,
            licenses: vec![license.clone()],
            bindings: vec![binding.clone()],
            trials_used: BTreeSet::from([product.id.clone()]),
            sessions: Vec::new(),
            lang: reg.lang,
        };
        tx.put_account(&account);
        tx.put_account_id(email_key(&email), &account_id);
        tx.put_account_id(RecordKey::Number(number.body()), &account_id);
        index_registration_host(tx, &account_id, &reg.host.fingerprint)?;
        let message = Message::Registered {
            organization: account.organization.clone(),
            product_name: product.name.clone(),
            number: number.to_string(),
            trial_ends: license.expires_at,
        };
        tx.put_mail(&Mail::new_id(now, entropy), &Mail::new(email, reg.lang, message, now));
        Ok(Registered { number, seat: Seat { account_id, product, seats_used: 1, license, binding } })
    }

    /// Queues the mail that reminds an account of its number, if `email` belongs to one. The
    /// caller must answer the same either way, so that nobody learns which e-mails are
    /// registered.
    pub(crate) fn recover(&self, tx: &mut Tx<'_>, now: Time, email: &str) -> Result<(), Error> {
        let email = validate_email(email)?;
        let Some(account) = tx.account_by(&email_key(&email))? else { return Ok(()) };
        // An address stored by release 0.1.0 that the rule refuses is not mailed (docs/accounts.md).
        if !crate::email::is_valid(&account.email) {
            return Ok(());
        }
        let number = self.number_of(&account)?;
        let id = Mail::reminder_id(&account.id);
        if tx.mail(&id)?.is_some() {
            // One is already on its way: asking again queues nothing more.
            return Ok(());
        }
        let message = Message::Reminder { organization: account.organization.clone(), number: number.to_string() };
        tx.put_mail(&id, &Mail::new(account.email.clone(), account.lang, message, now));
        Ok(())
    }

    /// The account registered with `email` (admin lookup).
    /// Addresses stored by release 0.1.0 that the rule refuses are found under their old key.
    pub(crate) fn account_by_email(&self, tx: &Tx<'_>, email: &str) -> Result<Option<Account>, Error> {
        if let Ok(email) = validate_email(email)
            && let Some(account) = tx.account_by(&email_key(&email))?
        {
            return Ok(Some(account));
        }
        tx.account_by(&RecordKey::Email(crate::email::identity_0_1_0(email)))
    }
}

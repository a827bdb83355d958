//! Floating licenses (SPEC §11): sessions checked out on any host, kept alive by heartbeats,
//! released — or dead once their lease passes.
//!
//! A seat of a floating license is a *live* session: one whose `lease_until` is after `now`.
//! The count is a function of `now`, decided here, so a session whose host went silent frees its
//! seat the moment its lease passes, with no background job; dead sessions are merely tidied away
//! at the account's next session command an hour after they died.

use serde::{Deserialize, Serialize};

use super::bindings::preference;
use super::{Ledger, new_id};
use crate::credential::Secret;
use crate::entropy::Entropy;
use crate::error::{Code, Error};
use crate::model::{Account, Host, License, LicenseModel, Product, Session, Time, bounded_text};
use crate::txn::Tx;

/// A checkout: a host asks for a session of a floating license of the product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The registration number as given.
    pub number: Secret,
    /// The product's slug.
    pub product: String,
    /// The asking host.
    pub host: Host,
    /// The user the program runs as (may be empty).
    #[serde(default)]
    pub user: String,
    /// Hours to borrow the seat for, offline (at most the product's `max_borrow_hours`).
    #[serde(default)]
    pub borrow_hours: Option<u32>,
}

/// A live session with what shapes its token: the outcome of a checkout or a heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSeat {
    /// The account holding the license.
    pub account_id: String,
    /// The product, with the settings that shape the token.
    pub product: Product,
    /// The floating license whose seat the session holds.
    pub license: License,
    /// The session.
    pub session: Session,
    /// Sessions live on that license now, this one included.
    pub sessions_live: u32,
}

/// The end of a lease of `seconds` from `now` on `license`: never past its term (grace included).
fn lease_end(license: &License, product: &Product, now: Time, seconds: i64) -> Time {
    let lease = now.checked_add_signed(chrono::Duration::seconds(seconds)).unwrap_or(Time::MAX_UTC);
    license.term_end(product).map_or(lease, |end| end.min(lease))
}

fn session_seat(account: &Account, product: &Product, license: License, session: Session, now: Time) -> SessionSeat {
    SessionSeat {
        account_id: account.id.clone(),
        product: product.clone(),
        sessions_live: account.sessions_live(&license.id, now),
        license,
        session,
    }
}

/// How long a dead session is kept before it is tidied away: should the server's clock have
/// jumped forward and back, a session it judged dead meanwhile lives again, seat included.
const KEPT_DEAD: chrono::Duration = chrono::Duration::hours(1);

/// Removes the sessions that died more than [`KEPT_DEAD`] before `now`.
fn tidy(account: &mut Account, now: Time) {
    account.sessions.retain(|s| s.lease_until + KEPT_DEAD > now);
}

/// Before a checkout takes a seat of `license`: the dead sessions kept beyond the seats still
/// free lose theirs for good (those that died first), so that a clock behind — a node of a
/// cluster, a server's clock stepped back — can never find more sessions live than seats.
fn forfeit_dead(account: &mut Account, license: &License, now: Time) {
    let live = account.sessions_live(&license.id, now) + 1;
    let room = license.seats.saturating_sub(live) as usize;
    let mut dead: Vec<(Time, String)> = account
        .sessions
        .iter()
        .filter(|s| s.license_id == license.id && !s.is_live(now))
        .map(|s| (s.lease_until, s.id.clone()))
        .collect();
    dead.sort();
    let forfeit: Vec<String> = dead.iter().take(dead.len().saturating_sub(room)).map(|(_, id)| id.clone()).collect();
    account.sessions.retain(|s| !forfeit.contains(&s.id));
}

/// The live session `id` of `account`, by index (1055 when it is unknown or dead).
fn live_session(account: &Account, id: &str, now: Time) -> Result<usize, Error> {
    account.sessions.iter().position(|s| s.id == id && s.is_live(now)).ok_or(Error::Refused(Code::SessionExpired))
}

impl Ledger {
    /// Checks out a session of a floating license of the product for the host (1001, 1002,
    /// 1007, 1051, 1052, 2008). The same host and user asking again while its session lives
    /// gets that session back, extended: a program restarted after a crash takes no second seat.
    pub(crate) fn checkout(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        entropy: &mut dyn Entropy,
        request: &Checkout,
    ) -> Result<SessionSeat, Error> {
        let mut account = self.account_by_number(tx, request.number.expose())?;
        let product = self.product(tx, &request.product)?;
        let user = bounded_text("user", &request.user, 0, 255)?;
        let lease_seconds = match request.borrow_hours {
            None => i64::from(product.session_lease_seconds),
            Some(hours) if (1..=product.max_borrow_hours).contains(&hours) => i64::from(hours) * 3600,
            Some(_) if product.max_borrow_hours == 0 => {
                return Err(Error::input("borrow_hours", format!("product {} allows no borrowing", product.id)));
            }
            Some(_) => {
                return Err(Error::input("borrow_hours", format!("must be 1..={}", product.max_borrow_hours)));
            }
        };
        let floating = |l: &&License| l.product == product.id && l.model == LicenseModel::Floating;
        if !account.licenses.iter().any(|l| floating(&l)) {
            return Err(Error::Refused(Code::NoLicenseForProduct));
        }
        tidy(&mut account, now);
        let mine = account.sessions.iter().position(|s| {
            s.is_live(now)
                && s.product == product.id
                && s.user == user
                && request.host.is(&s.host.fingerprint, None).is_same()
        });
        if let Some(i) = mine
            && let Some(license) = account.license(&account.sessions[i].license_id).cloned()
            && license.is_current(&product, now)
        {
            let session = &mut account.sessions[i];
            session.lease_until = session.lease_until.max(lease_end(&license, &product, now, lease_seconds));
            session.borrowed |= request.borrow_hours.is_some();
            session.last_heartbeat = now;
            session.host = request.host.stored();
            let session = session.clone();
            tx.put_account(&account);
            return Ok(session_seat(&account, &product, license, session, now));
        }
        let free = account
            .licenses
            .iter()
            .filter(floating)
            .filter(|l| l.is_current(&product, now) && account.sessions_live(&l.id, now) < l.seats)
            .min_by_key(|l| preference(l))
            .cloned();
        let Some(license) = free else {
            let any_current = account.licenses.iter().filter(floating).any(|l| l.is_current(&product, now));
            return Err(Error::Refused(if any_current { Code::NoFreeLicense } else { Code::LicenseExpired }));
        };
        forfeit_dead(&mut account, &license, now);
        let session = Session {
            id: new_id("ses_", entropy),
            license_id: license.id.clone(),
            product: product.id.clone(),
            host: request.host.stored(),
            user,
            started_at: now,
            last_heartbeat: now,
            lease_until: lease_end(&license, &product, now, lease_seconds),
            borrowed: request.borrow_hours.is_some(),
        };
        account.sessions.push(session.clone());
        tx.put_account(&account);
        Ok(session_seat(&account, &product, license, session, now))
    }

    /// Extends a live session of the account behind `credential` by the product's session lease
    /// (never shortening a borrow) — 1061 for a bad credential, 1055 for a session that is dead,
    /// unknown or another account's, 1052 once its license is over.
    pub(crate) fn heartbeat(
        &self,
        tx: &mut Tx<'_>,
        now: Time,
        credential: &str,
        session_id: &str,
    ) -> Result<SessionSeat, Error> {
        let mut account = self.authenticate(tx, credential)?;
        let i = live_session(&account, session_id, now)?;
        let product = self.product(tx, &account.sessions[i].product)?;
        let license = account
            .license(&account.sessions[i].license_id)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("session {session_id} holds a seat of a missing license")))?;
        if !license.is_current(&product, now) {
            return Err(Error::Refused(Code::LicenseExpired));
        }
        let session = &mut account.sessions[i];
        let lease = lease_end(&license, &product, now, i64::from(product.session_lease_seconds));
        session.lease_until = session.lease_until.max(lease);
        session.last_heartbeat = now;
        let session = session.clone();
        tidy(&mut account, now);
        tx.put_account(&account);
        Ok(session_seat(&account, &product, license, session, now))
    }

    /// Ends a live session of the account behind `credential`, freeing its seat at once (1061,
    /// 1055 as for [`Ledger::heartbeat`]). Releases are not resets: they count against no limit.
    pub(crate) fn release(&self, tx: &mut Tx<'_>, now: Time, credential: &str, session_id: &str) -> Result<(), Error> {
        let mut account = self.authenticate(tx, credential)?;
        let i = live_session(&account, session_id, now)?;
        account.sessions.remove(i);
        tidy(&mut account, now);
        tx.put_account(&account);
        Ok(())
    }
}

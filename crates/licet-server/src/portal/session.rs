//! Portal sessions: an unguessable id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! behind TLS), kept server-side with the credential it was opened with and a CSRF token that
//! changes after every form it accepts — so a forged post has no token and a replayed one an
//! old token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use licet_store::PgStore;
use licet_store::pg::shared::SharedSession;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// A session ends after this long without a request.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// Most open sessions of one account: a login beyond closes its least recently used one.
pub(crate) const MAX_PER_ACCOUNT: usize = 16;
/// Most open sessions in all: a login beyond closes the least recently used one, so that logins
/// in a loop (with one valid number) cannot grow the server's memory without bound.
pub(crate) const MAX_SESSIONS: usize = 10_000;
/// The session cookie's name.
pub(crate) const COOKIE: &str = "licet_session";
/// The login form's double-submit cookie.
pub(crate) const LOGIN_COOKIE: &str = "licet_login";

/// 32 random bytes as hex.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    // The portal cannot run without unguessable ids; there is no fallback.
    getrandom::fill(&mut bytes).expect("the operating system's random source must work");
    hex::encode(bytes)
}

/// Constant-time equality of two tokens.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The account logged in to.
    account: String,
    /// The registration number or redeemed coupon the customer logged in with.
    pub(crate) credential: String,
    /// The token the next form must carry.
    pub(crate) csrf: String,
    /// A message for the next page (e.g. "binding reset").
    pub(crate) flash: Option<String>,
    expires: Instant,
}

impl Session {
    /// The id of the account logged in to.
    pub(crate) fn account(&self) -> &str {
        &self.account
    }
}

/// All open sessions.
/// Where sessions are kept: in this process, or in the cluster's database (by the SHA-256 of
/// their ids, so that reading the table does not open a session), where every node sees them.
#[derive(Debug)]
pub(crate) enum Sessions {
    /// This process's sessions.
    Local(LocalSessions),
    /// The database's.
    Shared(Arc<PgStore>),
}

fn id_hash(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn of_shared(s: SharedSession) -> Session {
    Session {
        account: s.account,
        credential: s.credential,
        csrf: s.csrf,
        flash: s.flash,
        expires: Instant::now() + IDLE,
    }
}

impl Sessions {
    /// Opens a session for `account`; its id.
    pub(crate) async fn open(&self, account: &str, credential: String) -> Result<String, ApiError> {
        match self {
            Sessions::Local(local) => Ok(local.open(account, credential)),
            Sessions::Shared(db) => {
                let id = random_token();
                let session = SharedSession::new(account.to_owned(), credential, random_token());
                db.open_session(id_hash(&id), session, IDLE, MAX_PER_ACCOUNT as i64).await?;
                Ok(id)
            }
        }
    }

    /// The live session `id`, its idle time started again.
    pub(crate) async fn get(&self, id: &str) -> Result<Option<Session>, ApiError> {
        match self {
            Sessions::Local(local) => Ok(local.get(id)),
            Sessions::Shared(db) => Ok(db.session(id_hash(id), IDLE).await?.map(of_shared)),
        }
    }

    /// The session `id` if `csrf` is its current form token, which is then replaced.
    pub(crate) async fn accept(&self, id: &str, csrf: &str) -> Result<Option<Session>, ApiError> {
        match self {
            Sessions::Local(local) => Ok(local.accept(id, csrf)),
            Sessions::Shared(db) => {
                Ok(db.accept_form(id_hash(id), csrf.to_owned(), random_token()).await?.map(of_shared))
            }
        }
    }

    /// Sets the message of the session's next page, returning the one it had.
    pub(crate) async fn flash(&self, id: &str, message: Option<String>) -> Result<Option<String>, ApiError> {
        match self {
            Sessions::Local(local) => Ok(local.flash(id, message)),
            Sessions::Shared(db) => Ok(db.swap_flash(id_hash(id), message).await?),
        }
    }

    /// Closes the session.
    pub(crate) async fn close(&self, id: &str) -> Result<(), ApiError> {
        match self {
            Sessions::Local(local) => {
                local.close(id);
                Ok(())
            }
            Sessions::Shared(db) => Ok(db.close_session(id_hash(id)).await?),
        }
    }
}

/// Sessions in this process's memory.
#[derive(Debug, Default)]
pub(crate) struct LocalSessions {
    map: Mutex<HashMap<String, Session>>,
}

impl LocalSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session of `account`; returns its id. Expired sessions go first; then, over a cap
    /// ([`MAX_PER_ACCOUNT`], [`MAX_SESSIONS`]), the least recently used.
    pub(crate) fn open(&self, account: &str, credential: String) -> String {
        let id = random_token();
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        let least_recent = |map: &HashMap<String, Session>, of: Option<&str>| {
            map.iter()
                .filter(|(_, s)| of.is_none_or(|a| s.account == a))
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
        };
        while map.values().filter(|s| s.account == account).count() >= MAX_PER_ACCOUNT {
            let Some(oldest) = least_recent(&map, Some(account)) else { break };
            map.remove(&oldest);
        }
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = least_recent(&map, None) else { break };
            map.remove(&oldest);
        }
        let session =
            Session { account: account.to_owned(), credential, csrf: random_token(), flash: None, expires: now + IDLE };
        map.insert(id.clone(), session);
        id
    }

    /// Open sessions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    /// The live session `id`, its idle timer restarted.
    pub(crate) fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.lock();
        let session = map.get_mut(id)?;
        if session.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        session.expires = Instant::now() + IDLE;
        Some(session.clone())
    }

    /// Accepts a form's CSRF token: it must be the session's current one; it is then replaced,
    /// so the same form cannot be posted twice.
    pub(crate) fn accept(&self, id: &str, csrf: &str) -> Option<Session> {
        let mut map = self.lock();
        let session = map.get_mut(id).filter(|s| s.expires > Instant::now())?;
        if !same(&session.csrf, csrf) {
            return None;
        }
        session.csrf = random_token();
        Some(session.clone())
    }

    /// Sets or takes the flash message.
    pub(crate) fn flash(&self, id: &str, message: Option<String>) -> Option<String> {
        let mut map = self.lock();
        let session = map.get_mut(id)?;
        std::mem::replace(&mut session.flash, message)
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_single_use() {
        let sessions = LocalSessions::default();
        let id = sessions.open("acc_1", "LICET-…".into());
        let csrf = sessions.get(&id).map(|s| s.csrf).unwrap_or_default();
        assert_eq!(csrf.len(), 64);
        assert!(sessions.accept(&id, "forged").is_none());
        assert!(sessions.accept(&id, &csrf).is_some());
        assert!(sessions.accept(&id, &csrf).is_none(), "a replayed form is refused");
        assert!(sessions.accept("no-such-session", &csrf).is_none());
        sessions.close(&id);
        assert!(sessions.get(&id).is_none());
        assert_eq!(random_token().len(), 64);
        assert_ne!(random_token(), random_token());
    }

    #[test]
    fn sessions_are_capped_per_account_and_in_all() {
        let sessions = LocalSessions::default();
        // Logins in a loop with one valid number keep only the newest few.
        let ids: Vec<String> = (0..40).map(|_| sessions.open("acc_1", "N".into())).collect();
        assert_eq!(sessions.len(), MAX_PER_ACCOUNT);
        assert!(ids[..40 - MAX_PER_ACCOUNT].iter().all(|id| sessions.get(id).is_none()));
        assert!(ids[40 - MAX_PER_ACCOUNT..].iter().all(|id| sessions.get(id).is_some()));
        // Many accounts: never more than the cap in all, and the newest stay.
        let last = (0..MAX_SESSIONS + 50).map(|i| sessions.open(&format!("acc_{i}"), "N".into())).last();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.get(&last.unwrap_or_default()).is_some());
    }
}

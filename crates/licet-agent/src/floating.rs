//! Floating licenses on the agent's side (SPEC §11): checking out a session, its heartbeats and
//! its release — by hand, or through a [`Session`] that heartbeats in the background and is
//! released when dropped.
//!
//! A session's token is cached for its product like a host's, so `check` keeps passing on it
//! and refreshes it by heartbeat (the core's policy decides); a session that died meanwhile is
//! replaced by a new checkout, if a seat is free.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use licet_core::Code;
use licet_store::OsEntropy;
use licet_wire::Empty;

use crate::agent::{Agent, Grant, Source};
use crate::error::Error;

/// Bounds of the pause between a background session's heartbeats (half the lease, normally).
const MOST_EAGER: Duration = Duration::from_secs(5);
const MOST_PATIENT: Duration = Duration::from_secs(12 * 3600);
/// The pause after a heartbeat or checkout failed (a server down, or every seat taken).
const RETRY: Duration = Duration::from_secs(10);

impl Agent {
    /// Checks out a session of a floating license of `product` on this host and caches its
    /// token; with `borrow_hours`, the seat is held and the token works offline that long (at
    /// most the product's `max_borrow_hours`). The grant names the session. Refusals: 1051
    /// when every seat is in use, 2008 without a floating license of the product.
    pub fn open_session(&self, product: &str, borrow_hours: Option<u32>) -> Result<Grant, Error> {
        self.open_session_as(product, borrow_hours, None)
    }

    /// [`Agent::open_session`] for `user` (shown in the session monitor) instead of the
    /// configured [`AgentConfig::user`](crate::AgentConfig::user): a program serving several
    /// users on one host (the local service) checks out a session for each. The agent remembers
    /// the sessions it opened, so each can be heartbeated and released by its id while the cache
    /// holds the token of the latest.
    pub fn open_session_as(
        &self,
        product: &str,
        borrow_hours: Option<u32>,
        user: Option<&str>,
    ) -> Result<Grant, Error> {
        let mut st = self.state()?;
        let user = user.map(str::to_owned);
        let step = st.policy.handle_checkout(self.mono(), product, borrow_hours, user, &mut OsEntropy);
        self.drive(st, step)
    }

    /// Records floating session `e.session_id`, which a server just granted this agent, with its
    /// token, and forgets the sessions whose leases have passed (heartbeating one would be
    /// refused: 1055). Called with the agent's state locked, so that concurrent grants are all
    /// recorded in the order the policy took them.
    pub(crate) fn remember(&self, e: &licet_core::Entitlement, token: String) {
        let Some(id) = &e.session_id else { return };
        let now = self.now();
        let mut opened = self.opened();
        opened.retain(|_, o| o.lease_until > now);
        opened.insert(id.clone(), Opened { product: e.product.clone(), token, lease_until: e.lease_until });
    }

    /// Whether this agent holds floating session `session`: it checked it out, or caches its
    /// token.
    #[cfg(feature = "service")]
    pub(crate) fn holds_session(&self, session: &str) -> bool {
        self.opened().contains_key(session)
            || self.state().is_ok_and(|st| st.policy.product_of_session(session).is_some())
    }

    pub(crate) fn opened(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Opened>> {
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Extends floating session `session`, whose token this host caches or which this agent
    /// checked out (1055 when the session has died or is not this host's). Its new token is
    /// cached.
    pub fn heartbeat(&self, session: &str) -> Result<Grant, Error> {
        let mut st = self.state()?;
        let opened = || self.opened().get(session).map(|o| o.product.clone());
        let Some(product) = st.policy.product_of_session(session).or_else(opened) else {
            return Err(Error::Local(licet_core::Error::Refused(Code::SessionExpired)));
        };
        let step = st.policy.handle_heartbeat(self.mono(), &product, session, false, &mut OsEntropy);
        let result = self.drive(st, step);
        if let Err(e) = &result
            && e.code() == Code::SessionExpired
        {
            self.drop_session(session)?;
        }
        result
    }

    /// Keeps floating session `session` of `product` alive: a heartbeat, and if the session died
    /// a new checkout (the grant names the session now held); no server answering, the cache.
    fn renew(&self, product: &str, session: &str) -> Result<Grant, Error> {
        let mut st = self.state()?;
        let step = st.policy.handle_heartbeat(self.mono(), product, session, true, &mut OsEntropy);
        self.drive(st, step)
    }

    /// Ends floating session `session`, freeing its seat at once, and drops its cached token. A
    /// session the server no longer knows (1055: it died, or was released in the portal) counts
    /// as released.
    pub fn release(&self, session: &str) -> Result<(), Error> {
        let number = self.number()?.ok_or(Error::local(Code::NotActivated))?;
        if !is_session_id(session) {
            return Err(Error::Local(licet_core::Error::Refused(Code::SessionExpired)));
        }
        let path = format!("/v1/sessions/{session}");
        match self.first_answer(|client| client.delete::<Empty>(&path, &number)) {
            Ok(_) => {}
            Err(e) if e.code() == Code::SessionExpired => {}
            Err(e) => return Err(e),
        }
        self.drop_session(session)
    }

    /// Forgets floating session `session`, which has ended: its cached token goes, and another
    /// live session this agent holds of the product (the latest to end) takes its place, so a
    /// check goes on passing while one is live.
    fn drop_session(&self, session: &str) -> Result<(), Error> {
        let mut st = self.state()?;
        // Another program may have cached a newer token of the product meanwhile: keep it.
        self.reload_if_changed(&mut st)?;
        let released = self.opened().remove(session);
        let cached = st.policy.product_of_session(session);
        if let Some(product) = &cached
            && let Some(token) = st.policy.token(product).map(str::to_owned)
        {
            st.policy.forget_if(product, &token);
        }
        if let Some(product) = cached.or(released.map(|o| o.product))
            && st.policy.token(&product).is_none()
        {
            let now = self.now();
            let latest = self
                .opened()
                .values()
                .filter(|o| o.product == product && o.lease_until > now)
                .max_by_key(|o| o.lease_until)
                .map(|o| o.token.clone());
            if let Some(token) = latest {
                // A session that does not pass now (its lease judged by this clock) is no loss.
                let _ = st.policy.restore(now, &token);
            }
        }
        self.persist(&mut st, false)
    }

    /// Checks out a floating session of `product` that lives as long as the returned
    /// [`Session`]: a background thread heartbeats it (no async runtime needed), and dropping it
    /// — as a program does when it exits cleanly — releases the seat. A process that dies
    /// simply stops heartbeating; its seat is free once the lease passes.
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// let agent = Arc::new(licet_agent::Agent::new(
    ///     licet_agent::AgentConfig::new("https://lic.example.com", "/var/lib/myapp/licet")
    ///         .trust("89ca1ac1770dbb956f8cf5bc014c7e3947485bc797df89c69e089f3af2bcc5ac"),
    /// )?);
    /// let session = agent.checkout("call-journal")?;
    /// // … the licensed work; `session.grant()` says whether the seat is still held …
    /// drop(session); // the seat is free for the next user at once
    /// # Ok::<(), licet_agent::Error>(())
    /// ```
    pub fn checkout(self: &Arc<Self>, product: &str) -> Result<Session, Error> {
        let grant = self.open_session(product, None)?;
        let id =
            grant.session_id.clone().ok_or_else(|| Error::Internal("the server's token names no session".into()))?;
        let held = Arc::new(Held { id: Mutex::new(id), latest: Mutex::new(Ok(grant)) });
        let (stop, stopped) = mpsc::channel::<()>();
        let (agent, product_owned, shared) = (self.clone(), product.to_owned(), held.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("licet-session-{product}"))
            .spawn(move || keep_alive(&agent, &product_owned, &shared, &stopped));
        let mut session =
            Session { agent: self.clone(), product: product.to_owned(), held, stop: Some(stop), thread: None };
        match spawned {
            Ok(thread) => session.thread = Some(thread),
            Err(e) => {
                let _ = session.stop_and_release();
                return Err(Error::Internal(format!("cannot start the session's heartbeat thread: {e}")));
            }
        }
        Ok(session)
    }
}

/// A floating session this agent checked out: its product, and its latest token and lease.
#[derive(Clone, Debug)]
pub(crate) struct Opened {
    pub(crate) product: String,
    token: String,
    lease_until: chrono::DateTime<chrono::Utc>,
}

/// Whether `id` looks like a session id (`ses_` and 16 symbols), so that it can go in a URL.
fn is_session_id(id: &str) -> bool {
    id.strip_prefix("ses_").is_some_and(|rest| rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// What a [`Session`] holds: the id of its own session (not whatever another program cached for
/// the product since) and the latest answer about it.
struct Held {
    id: Mutex<String>,
    latest: Mutex<Result<Grant, Error>>,
}

/// The background thread of a [`Session`]: at half of each token's lease (counted from the
/// token's own times, so a wrong local clock neither hastens nor delays it) it heartbeats its
/// session — or, if the session died, checks out a new one — until told to stop.
fn keep_alive(agent: &Agent, product: &str, held: &Held, stopped: &mpsc::Receiver<()>) {
    loop {
        let wait = match &*held.latest.lock().unwrap_or_else(|e| e.into_inner()) {
            Ok(grant) if grant.source == Source::Server => {
                let lease = (grant.lease_until - grant.issued_at).to_std().unwrap_or(Duration::ZERO);
                (lease / 2).clamp(MOST_EAGER, MOST_PATIENT)
            }
            // No server answered (the cache did), or the seat is not held: soon again, well
            // before the lease ends.
            _ => RETRY,
        };
        match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let id = held.id.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let result = agent.renew(product, &id);
        // Only a server's answer names the session now held: the cache holds whatever another
        // program on the host cached last.
        if let Ok(grant) = &result
            && grant.source == Source::Server
            && let Some(now_held) = &grant.session_id
        {
            *held.id.lock().unwrap_or_else(|e| e.into_inner()) = now_held.clone();
        }
        *held.latest.lock().unwrap_or_else(|e| e.into_inner()) = result;
    }
}

/// A floating session held by this program (see [`Agent::checkout`]).
pub struct Session {
    agent: Arc<Agent>,
    product: String,
    held: Arc<Held>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("product", &self.product).field("id", &self.id()).finish_non_exhaustive()
    }
}

impl Session {
    /// The product.
    pub fn product(&self) -> &str {
        &self.product
    }

    /// The latest answer about the session's seat: the grant (naming the session, which changes
    /// if the session died and a new one was checked out), or why the seat is not held now.
    pub fn grant(&self) -> Result<Grant, Error> {
        match &*self.held.latest.lock().unwrap_or_else(|e| e.into_inner()) {
            Ok(grant) => Ok(grant.clone()),
            Err(e) => Err(Error::Server { code: e.code(), message: e.to_string() }),
        }
    }

    /// The id of the session held.
    pub fn id(&self) -> String {
        self.held.id.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops heartbeating and releases the seat, saying whether the release reached a server.
    pub fn release(mut self) -> Result<(), Error> {
        self.stop_and_release()
    }

    fn stop_and_release(&mut self) -> Result<(), Error> {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.agent.release(&self.id())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.stop.is_some() {
            // Nothing to report to: an unreachable server leaves the seat to its lease.
            let _ = self.stop_and_release();
        }
    }
}

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

use crate::agent::{Agent, Grant};
use crate::client::CallError;
use crate::error::Error;

/// Longest pause between a background session's checks: it heartbeats once its token is due
/// (half the lease), so this only bounds how late after that it notices.
const MOST_PATIENT: Duration = Duration::from_secs(60);

impl Agent {
    /// Checks out a session of a floating license of `product` on this host and caches its
    /// token; with `borrow_hours`, the seat is held and the token works offline that long (at
    /// most the product's `max_borrow_hours`). The grant names the session. Refusals: 1051
    /// when every seat is in use, 2008 without a floating license of the product.
    pub fn open_session(&self, product: &str, borrow_hours: Option<u32>) -> Result<Grant, Error> {
        let mut st = self.state()?;
        let step = st.policy.handle_checkout(self.mono(), product, borrow_hours, &mut OsEntropy);
        self.drive(st, step)
    }

    /// Extends floating session `session`, whose token this host caches (1055 when the session
    /// has died or is not this host's). Its new token is cached.
    pub fn heartbeat(&self, session: &str) -> Result<Grant, Error> {
        let mut st = self.state()?;
        let step = st.policy.handle_heartbeat(self.mono(), session, &mut OsEntropy);
        self.drive(st, step)
    }

    /// Ends floating session `session`, freeing its seat at once, and drops its cached token. A
    /// session the server no longer knows (1055: it died, or was released in the portal) counts
    /// as released.
    pub fn release(&self, session: &str) -> Result<(), Error> {
        let number = self.number()?.ok_or(Error::local(Code::NotActivated))?;
        let path = format!("/v1/sessions/{session}");
        let mut fault = "no license server is configured".to_owned();
        let mut released = false;
        for server in 0..self.server_count() {
            match self.client(server)?.delete::<Empty>(&path, &number) {
                Ok(_) => released = true,
                Err(CallError::Refused { code: Code::SessionExpired, .. }) => released = true,
                Err(CallError::Fault(reason)) => fault = reason,
                Err(refused) => return Err(refused.into()),
            }
            if released {
                break;
            }
        }
        if !released {
            return Err(Error::Unreachable(fault));
        }
        let mut st = self.state()?;
        if let Some(product) = st.policy.product_of_session(session) {
            st.policy.forget(&product);
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
        let latest = Arc::new(Mutex::new(Ok(grant)));
        let (stop, stopped) = mpsc::channel::<()>();
        let (agent, product_owned, shared) = (self.clone(), product.to_owned(), latest.clone());
        let thread = std::thread::Builder::new()
            .name(format!("licet-session-{product}"))
            .spawn(move || keep_alive(&agent, &product_owned, &shared, &stopped))
            .map_err(|e| Error::Internal(format!("cannot start the session's heartbeat thread: {e}")))?;
        Ok(Session { agent: self.clone(), product: product.to_owned(), latest, stop: Some(stop), thread: Some(thread) })
    }
}

/// The background thread of a [`Session`]: checks the product whenever its token may be due
/// (the check heartbeats, or checks out anew if the session died), until told to stop.
fn keep_alive(agent: &Agent, product: &str, latest: &Mutex<Result<Grant, Error>>, stopped: &mpsc::Receiver<()>) {
    loop {
        let wait = match &*latest.lock().unwrap_or_else(|e| e.into_inner()) {
            Ok(grant) => {
                let left = (grant.lease_until - agent.now()).to_std().unwrap_or(Duration::ZERO);
                (left / 4).clamp(Duration::from_secs(1), MOST_PATIENT)
            }
            Err(_) => Duration::from_secs(5),
        };
        match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let result = agent.check(product);
        *latest.lock().unwrap_or_else(|e| e.into_inner()) = result;
    }
}

/// A floating session held by this program (see [`Agent::checkout`]).
pub struct Session {
    agent: Arc<Agent>,
    product: String,
    latest: Arc<Mutex<Result<Grant, Error>>>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("product", &self.product).finish_non_exhaustive()
    }
}

impl Session {
    /// The product.
    pub fn product(&self) -> &str {
        &self.product
    }

    /// The latest check of the session's seat: the grant (naming the session, which changes if
    /// the session died and a new one was checked out), or why the seat is not held now.
    pub fn grant(&self) -> Result<Grant, Error> {
        match &*self.latest.lock().unwrap_or_else(|e| e.into_inner()) {
            Ok(grant) => Ok(grant.clone()),
            Err(e) => Err(Error::Server { code: e.code(), message: e.to_string() }),
        }
    }

    /// The session's id now, as its cached token names it.
    pub fn id(&self) -> Option<String> {
        self.agent.state().ok()?.policy.session_of(&self.product)
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
        match self.id() {
            Some(id) => self.agent.release(&id),
            None => Ok(()),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Nothing to report to: an unreachable server leaves the seat to its lease.
            let _ = self.stop_and_release();
        }
    }
}

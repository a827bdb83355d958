//! Commands on the embedded store without a thread parked per command: a command is decided and
//! applied on the request's own task (the store checks and applies it under its write lock in a
//! few microseconds), and its acknowledgement awaits durability from one flushing task, which
//! makes every change applied so far durable with one flush on a blocking thread and answers
//! everyone who was waiting.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use licet_core::{Command, Error as CoreError, Ledger, Outcome, Tx};
use licet_store::{OsEntropy, Pending, SledStore};
use tokio::sync::{mpsc, oneshot};

type Request = (Pending, oneshot::Sender<Result<(), CoreError>>);
/// A command applied: its outcome (or refusal), and what must be durable before it is given.
type Applied = Result<(Result<Outcome, CoreError>, Pending), CoreError>;

/// The flushing task of one sled store.
#[derive(Debug)]
pub(crate) struct Durability {
    pub(crate) store: Arc<SledStore>,
    requests: mpsc::UnboundedSender<Request>,
}

impl Durability {
    /// Starts the flushing task on the current runtime.
    pub(crate) fn start(store: Arc<SledStore>) -> Durability {
        let (requests, waiting) = mpsc::unbounded_channel();
        tokio::spawn(flush_forever(store.clone(), waiting));
        Durability { store, requests }
    }

    /// Runs `command` and returns its outcome once durable. It is decided and applied on this
    /// task when that cannot block (the usual case: the store's lock is held for microseconds),
    /// on a blocking thread while a backup holds the lock or the store must reopen — never
    /// stalling an async worker.
    pub(crate) async fn execute(
        &self,
        ledger: &Ledger,
        now: DateTime<Utc>,
        command: &Command,
    ) -> Result<Outcome, CoreError> {
        let applied = match apply(&self.store, ledger, now, command, false) {
            Some(applied) => applied,
            None => {
                let (store, ledger, command) = (self.store.clone(), ledger.clone(), command.clone());
                tokio::task::spawn_blocking(move || apply(&store, &ledger, now, &command, true))
                    .await
                    .ok()
                    .flatten()
                    .ok_or_else(|| CoreError::Internal("a ledger command did not finish".into()))?
            }
        };
        let (result, pending) = applied?;
        self.wait(pending).await?;
        result
    }

    /// Returns once `pending` is durable.
    async fn wait(&self, pending: Pending) -> Result<(), CoreError> {
        if self.store.is_durable(&pending) {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((pending, reply))
            .map_err(|_| CoreError::Unavailable("the store's flushing task has stopped".into()))?;
        answer.await.map_err(|_| CoreError::Unavailable("the store's flushing task has stopped".into()))?
    }
}

/// Applies `command` to `store` — waiting for the write lock when `may_block`, else `None` if
/// it is held — and returns its outcome with what must be durable before it is given.
fn apply(
    store: &SledStore,
    ledger: &Ledger,
    now: DateTime<Utc>,
    command: &Command,
    may_block: bool,
) -> Option<Applied> {
    let mut outcome = None;
    let mut run = |tx: &mut Tx<'_>| {
        outcome = Some(ledger.handle(tx, now, &mut OsEntropy, command)?);
        Ok(())
    };
    let applied = if may_block { Some(store.apply(&mut run)) } else { store.try_apply(&mut run) }?;
    let no_outcome = || CoreError::Internal("a command succeeded without an outcome".into());
    Some(applied.map(|(result, pending)| (result.and_then(|()| outcome.ok_or_else(no_outcome)), pending)))
}

/// Takes every request waiting, makes them durable on one blocking thread (the first flush
/// covers all of them: it flushes everything applied so far), answers them, and again.
async fn flush_forever(store: Arc<SledStore>, mut waiting: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = waiting.try_recv() {
            batch.push(more);
        }
        let store = store.clone();
        let flushed = tokio::task::spawn_blocking(move || {
            for (pending, reply) in batch {
                let _ = reply.send(store.make_durable(&pending));
            }
        })
        .await;
        if let Err(e) = flushed {
            tracing::error!(error = %e, "a flush did not finish");
        }
    }
}

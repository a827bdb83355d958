//! Commands on the embedded store without a thread parked per command: a command is applied
//! on the request's own task (a few microseconds under the store's write lock), and its
//! acknowledgement awaits durability from one flushing task, which makes every change applied so
//! far durable with one flush on a blocking thread and answers everyone who was waiting.

use std::sync::Arc;

use licet_core::Error as CoreError;
use licet_store::{Pending, SledStore};
use tokio::sync::{mpsc, oneshot};

type Request = (Pending, oneshot::Sender<Result<(), CoreError>>);

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

    /// Returns once `pending` is durable.
    pub(crate) async fn wait(&self, pending: Pending) -> Result<(), CoreError> {
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

//! Keeping idle connections from taking the server down.
//!
//! Three things together. hyper's header-read timeout closes a connection that has not sent a
//! whole request head within [`HEADER_READ_TIMEOUT`] — from the moment it is accepted, and again
//! while a kept-alive connection waits for its next request — so an idle flood costs the attacker
//! a reconnect every few seconds. The process raises its soft limit of open files to the hard
//! one. And connections are counted against a cap below that limit ([`Connections`]): when a
//! new one arrives at the cap, the connection whose last read lies furthest back — an idle one,
//! never a client in the middle of a request — is closed to make room. So a flood of connections
//! that never send a byte displaces only itself, and a real client gets in at once, even while
//! the flood is held open (a per-address cap alone could not do that: they may share an
//! address).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How long a connection may take to send a request head, and may wait idle between requests.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Open files kept for everything but client connections (the store, the outbox, logs, TLS).
const RESERVED_FILES: u64 = 64;
/// Fewest connections allowed, whatever the limit on open files says.
const MIN_CONNECTIONS: usize = 16;

/// How many connections this process can hold: its limit on open files (raised to the hard
/// limit first) less what the rest of the server needs.
pub(crate) fn capacity() -> usize {
    let files = rlimit::increase_nofile_limit(u64::MAX)
        .or_else(|_| rlimit::getrlimit(rlimit::Resource::NOFILE).map(|(soft, _)| soft))
        .unwrap_or(1024);
    let usable = files.saturating_sub(RESERVED_FILES).min(1 << 20);
    usize::try_from(usable).unwrap_or(usize::MAX).max(MIN_CONNECTIONS)
}

/// What the table knows of one live connection.
#[derive(Debug)]
struct Live {
    /// Milliseconds after the table's start of the latest read that brought bytes (or of the
    /// accept).
    last_read: AtomicU64,
    /// Set to close the connection: its next read ends the stream.
    evicted: AtomicBool,
    /// The task waiting to read, woken on eviction.
    waker: Mutex<Option<Waker>>,
}

/// The live connections of one server and their cap.
#[derive(Debug)]
pub(crate) struct Connections {
    cap: usize,
    started: Instant,
    next: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Live>>>,
}

impl Connections {
    /// A table holding at most `cap` connections.
    pub(crate) fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            started: Instant::now(),
            next: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Live>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection, first closing the least recently read one if at the cap.
    fn admit(self: &Arc<Self>) -> (u64, Arc<Live>) {
        let mut live = self.lock();
        while live.len() >= self.cap {
            let Some((&id, _)) = live.iter().min_by_key(|(_, c)| c.last_read.load(Ordering::Relaxed)) else { break };
            if let Some(victim) = live.remove(&id) {
                victim.evicted.store(true, Ordering::Release);
                if let Some(waker) = victim.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
                    waker.wake();
                }
                tracing::warn!(connections = self.cap, "at the connection limit: closed the longest idle connection");
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Live {
            last_read: AtomicU64::new(self.now()),
            evicted: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        live.insert(id, entry.clone());
        (id, entry)
    }

    /// Connections open now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The acceptor that counts connections (put it first, before TLS: a handshake that never comes
/// holds a file too).
#[derive(Clone, Debug)]
pub(crate) struct CountingAcceptor {
    table: Arc<Connections>,
}

impl CountingAcceptor {
    pub(crate) fn new(table: Arc<Connections>) -> CountingAcceptor {
        CountingAcceptor { table }
    }
}

impl<I, S> Accept<I, S> for CountingAcceptor {
    type Stream = Counted<I>;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Counted<I>, S)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let (id, live) = self.table.admit();
        std::future::ready(Ok((Counted { inner: stream, id, live, table: self.table.clone() }, service)))
    }
}

/// A connection's stream, counted while it lives.
#[derive(Debug)]
pub(crate) struct Counted<I> {
    inner: I,
    id: u64,
    live: Arc<Live>,
    table: Arc<Connections>,
}

impl<I> Drop for Counted<I> {
    fn drop(&mut self) {
        self.table.lock().remove(&self.id);
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Counted<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.live.evicted.load(Ordering::Acquire) {
            // The end of the stream: hyper closes the connection.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.live.last_read.store(this.table.now(), Ordering::Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                *this.live.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
                // Evicted between the check above and now: wake at once to see it.
                if this.live.evicted.load(Ordering::Acquire) {
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Counted<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn at_the_cap_the_longest_idle_connection_makes_room() -> io::Result<()> {
        let table = Connections::new(2);
        let acceptor = CountingAcceptor::new(table.clone());
        let (idle, _idle_peer) = tokio::io::duplex(64);
        let (busy, mut busy_peer) = tokio::io::duplex(64);
        let (mut idle, ()) = acceptor.accept(idle, ()).await?;
        let (mut busy, ()) = acceptor.accept(busy, ()).await?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        tokio::io::AsyncWriteExt::write_all(&mut busy_peer, b"GET").await?;
        let mut buf = [0u8; 3];
        busy.read_exact(&mut buf).await?;
        assert_eq!(table.len(), 2);
        // A third connection: the one that never sent anything is closed, not the busy one.
        let (third, _third_peer) = tokio::io::duplex(64);
        let (_third, ()) = acceptor.accept(third, ()).await?;
        assert_eq!(idle.read(&mut buf).await?, 0, "the idle connection reads its end");
        drop(idle);
        assert_eq!(table.len(), 2);
        tokio::io::AsyncWriteExt::write_all(&mut busy_peer, b"!").await?;
        assert_eq!(busy.read(&mut buf).await?, 1, "the busy connection goes on");
        Ok(())
    }

    #[test]
    fn the_capacity_leaves_room_for_the_rest_of_the_server() {
        assert!(capacity() >= MIN_CONNECTIONS);
    }
}

//! Group commit: many committers, one flush.
//!
//! Every applied change gets a sequence number. A committer that needs its change durable waits
//! until the flushed sequence passes it; if no flush is running it runs one itself, covering
//! every change applied so far. Under load one fsync serves many requests.

use std::sync::{Condvar, Mutex, MutexGuard};

#[derive(Debug, Default)]
struct State {
    applied: u64,
    flushed: u64,
    flushing: bool,
}

/// The shared flush schedule of one store.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    flushed: Condvar,
}

impl GroupCommit {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only counters behind, which stay consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records one more applied change (call while the store's write lock is held, so
    /// sequence order is apply order) and returns its sequence number.
    pub(crate) fn applied(&self) -> u64 {
        let mut s = self.lock();
        s.applied += 1;
        s.applied
    }

    /// The sequence number of the latest applied change.
    pub(crate) fn last_applied(&self) -> u64 {
        self.lock().applied
    }

    /// Whether every change up to `seq` is durable.
    pub(crate) fn is_durable(&self, seq: u64) -> bool {
        self.lock().flushed >= seq
    }

    /// Returns once every change up to `seq` is durable, calling `flush` if nobody else is.
    pub(crate) fn wait_durable<E>(&self, seq: u64, flush: impl Fn() -> Result<(), E>) -> Result<(), E> {
        let mut s = self.lock();
        loop {
            if s.flushed >= seq {
                return Ok(());
            }
            if s.flushing {
                s = self.flushed.wait(s).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.flushing = true;
            let target = s.applied;
            drop(s);
            let result = flush();
            s = self.lock();
            s.flushing = false;
            if result.is_ok() {
                s.flushed = s.flushed.max(target);
            }
            self.flushed.notify_all();
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn concurrent_committers_share_flushes_and_all_become_durable() {
        let gc = Arc::new(GroupCommit::default());
        let flushes = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (gc, flushes) = (gc.clone(), flushes.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let seq = gc.applied();
                        gc.wait_durable(seq, || {
                            flushes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            Ok::<(), ()>(())
                        })
                        .unwrap();
                        assert!(gc.lock().flushed >= seq);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!(n < 800, "{n} flushes for 800 commits: no grouping");
        assert_eq!(gc.lock().flushed, 800);
    }

    #[test]
    fn a_failed_flush_is_reported_and_retried_by_the_next_waiter() {
        let gc = GroupCommit::default();
        let seq = gc.applied();
        assert_eq!(gc.wait_durable(seq, || Err("disk full")), Err("disk full"));
        assert_eq!(gc.wait_durable(seq, || Ok::<(), &str>(())), Ok(()));
    }
}

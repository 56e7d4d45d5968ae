//! Group commit: concurrent writers share one fdatasync.
//!
//! Every appended record gets a write sequence number (`seq`, in memory only,
//! never reset). A writer that must be durable waits until `synced ≥ seq`.
//! The first waiter that finds no sync in flight becomes the *leader*: it
//! asks the store for the newest `seq` written so far and the active file,
//! fdatasyncs that file without holding any lock, then publishes
//! `synced = that seq` and wakes everyone. Writers that arrived during the
//! fsync find their `seq` covered, or elect the next leader, whose single
//! fsync then covers all of them.
//!
//! Gathering: with many writers, the next leader is elected by whichever
//! writer returns first, while the others are still being woken up and
//! writing. So a leader first waits (at most [`MAX_GATHER`]) until as many
//! writers are waiting as the previous fsync served. The estimate adapts in
//! one round; a lone writer never waits.
//!
//! Correctness of "fdatasync the active file covers everything ≤ seq": records
//! before the active segment were fsynced when their segment was sealed (the
//! roll calls [`GroupCommit::mark_synced`] after that fsync), and the leader
//! reads `seq` and the file under the writer lock, so every record with a
//! smaller or equal `seq` is in that file or an already-synced one.
//!
//! A failed fsync poisons the store: the kernel may have dropped the dirty
//! pages, so retrying could report success for lost data. Waiters get
//! [`Error::Poisoned`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::Error;

/// Longest a group-commit leader waits for more writers to join.
pub const MAX_GATHER: Duration = Duration::from_micros(200);

#[derive(Default)]
struct State {
    synced: u64,
    leader: bool,
    /// Sequences of writers inside `wait` whose write is not yet durable.
    pending: Vec<u64>,
    /// How many were waiting when the previous fsync started.
    last_batch: usize,
}

/// Shared group-commit state of one store.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    done: Condvar,
    arrived: Condvar,
    poisoned: AtomicBool,
}

impl GroupCommit {
    /// Waits until every record with sequence ≤ `seq` is durable. `sync`
    /// performs one fsync and returns the sequence it covers.
    pub(crate) fn wait(
        &self,
        seq: u64,
        sync: impl Fn() -> Result<u64, Error>,
    ) -> Result<(), Error> {
        let mut st = self.state.lock();
        if st.synced >= seq {
            return Ok(());
        }
        st.pending.push(seq);
        self.arrived.notify_one();
        let result = self.lead_or_follow(&mut st, seq, sync);
        if let Some(i) = st.pending.iter().position(|&s| s == seq) {
            st.pending.swap_remove(i);
        }
        result
    }

    fn lead_or_follow(
        &self,
        st: &mut MutexGuard<'_, State>,
        seq: u64,
        sync: impl Fn() -> Result<u64, Error>,
    ) -> Result<(), Error> {
        loop {
            if st.synced >= seq {
                return Ok(());
            }
            if self.is_poisoned() {
                return Err(Error::Poisoned);
            }
            if st.leader {
                self.done.wait(st);
                continue;
            }
            st.leader = true;
            self.gather(st);
            st.last_batch = st.pending.len();
            let result = MutexGuard::unlocked(st, &sync);
            st.leader = false;
            self.done.notify_all();
            match result {
                Ok(covered) => Self::advance(st, covered),
                Err(e) => {
                    self.poisoned.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
        }
    }

    /// Waits until as many writers wait as last time, or [`MAX_GATHER`].
    fn gather(&self, st: &mut MutexGuard<'_, State>) {
        let deadline = Instant::now() + MAX_GATHER;
        while st.pending.len() < st.last_batch {
            if self.arrived.wait_until(st, deadline).timed_out() {
                break;
            }
        }
    }

    /// Records that everything up to `seq` is durable (segment roll, close).
    pub(crate) fn mark_synced(&self, seq: u64) {
        let mut st = self.state.lock();
        Self::advance(&mut st, seq);
        self.done.notify_all();
    }

    /// Publishes `synced ≥ covered`; satisfied writers stop counting as
    /// pending at once (not when they get around to returning).
    fn advance(st: &mut State, covered: u64) {
        st.synced = st.synced.max(covered);
        let synced = st.synced;
        st.pending.retain(|&s| s > synced);
    }

    /// Marks the store poisoned and wakes waiters.
    pub(crate) fn poison(&self) {
        if !self.poisoned.load(Ordering::SeqCst) {
            tracing::error!("an fsync failed: the store refuses writes until it is reopened");
        }
        self.poisoned.store(true, Ordering::SeqCst);
        let _st = self.state.lock();
        self.done.notify_all();
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    pub(crate) fn synced(&self) -> u64 {
        self.state.lock().synced
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn concurrent_waiters_share_syncs() {
        let gc = Arc::new(GroupCommit::default());
        let written = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (gc, written, syncs) = (gc.clone(), written.clone(), syncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let seq = written.fetch_add(1, Ordering::SeqCst) + 1;
                        gc.wait(seq, || {
                            let covered = written.load(Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_micros(200));
                            syncs.fetch_add(1, Ordering::SeqCst);
                            Ok(covered)
                        })
                        .unwrap();
                        assert!(gc.synced() >= seq);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(syncs.load(Ordering::SeqCst) < 400, "no batching happened");
    }

    #[test]
    fn a_lone_writer_does_not_wait_for_company() {
        let gc = GroupCommit::default();
        let start = Instant::now();
        for seq in 1..=100 {
            gc.wait(seq, || Ok(seq)).unwrap();
        }
        assert!(start.elapsed() < MAX_GATHER * 50, "lone writer gathered");
    }

    #[test]
    fn failed_sync_poisons() {
        let gc = GroupCommit::default();
        let err = gc.wait(1, || Err(Error::Closed)).unwrap_err();
        assert!(matches!(err, Error::Closed));
        assert!(matches!(gc.wait(2, || Ok(2)), Err(Error::Poisoned)));
        assert!(gc.is_poisoned());
    }
}

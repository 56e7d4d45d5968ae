//! Background threads of a store.
//!
//! - The *maintenance* thread writes hint files for freshly sealed segments
//!   and, under `CompactionPolicy::Auto`, merges sealed segments when the
//!   policy says so. It wakes when a segment is sealed and every
//!   [`COMPACTION_CHECK_INTERVAL`].
//! - The *sync* thread (only for `SyncPolicy::Interval`) runs a group-commit
//!   fsync every interval.
//!
//! Both hold an `Arc<Inner>`, never the `Store`; `Store::close` and `Drop`
//! raise the shutdown flag, wake them and join them. A running compaction
//! checks the flag between records and abandons its temporary files. On a
//! graceful close pending hints are written first; on drop they are skipped
//! (recovery rewrites missing hints). Errors are counted in
//! `Stats::background_errors` and logged at WARN (tracing), never printed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::compaction;
use crate::error::Error;
use crate::hint;
use crate::inner::Inner;
use crate::options::{CompactionPolicy, SyncPolicy};
use crate::segment::SegmentId;
use crate::stats::bump;

/// How often the maintenance thread re-checks the compaction policy.
pub const COMPACTION_CHECK_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    shutdown: bool,
    /// On shutdown, finish pending hints first.
    drain: bool,
    hints: VecDeque<SegmentId>,
}

/// Wake-up channel between the store and its threads.
#[derive(Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
    wake: Condvar,
}

impl Signal {
    /// Asks the maintenance thread to write the hint of a sealed segment.
    pub(crate) fn request_hint(&self, id: SegmentId) {
        self.state.lock().hints.push_back(id);
        self.wake.notify_all();
    }

    /// Tells the threads to stop; `drain` finishes queued hints first.
    pub(crate) fn shutdown(&self, drain: bool) {
        let mut st = self.state.lock();
        st.shutdown = true;
        st.drain = drain;
        self.wake.notify_all();
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.state.lock().shutdown
    }

    /// Waits up to `timeout` for a wake-up; returns `false` on shutdown.
    fn wait(&self, timeout: Duration) -> bool {
        let mut st = self.state.lock();
        if !st.shutdown && st.hints.is_empty() {
            self.wake.wait_for(&mut st, timeout);
        }
        !st.shutdown
    }

    fn next_hint(&self) -> Option<SegmentId> {
        let mut st = self.state.lock();
        if st.shutdown && !st.drain {
            return None;
        }
        st.hints.pop_front()
    }
}

/// Starts the threads the options ask for.
pub(crate) fn spawn(inner: &Arc<Inner>) -> Result<Vec<JoinHandle<()>>, Error> {
    let mut threads = Vec::new();
    let spawn_err = |e| Error::io(&inner.dir, e);
    let maint = inner.clone();
    let handle = std::thread::Builder::new()
        .name("kv-storage-maint".into())
        .spawn(move || maintenance_loop(&maint))
        .map_err(spawn_err)?;
    threads.push(handle);
    if let SyncPolicy::Interval(every) = inner.opts.sync {
        let syncer = inner.clone();
        let handle = std::thread::Builder::new()
            .name("kv-storage-sync".into())
            .spawn(move || sync_loop(&syncer, every))
            .map_err(spawn_err)?;
        threads.push(handle);
    }
    Ok(threads)
}

fn maintenance_loop(inner: &Inner) {
    // Damage found by compaction stops automatic compaction: retrying would
    // rewrite the same data every interval and fail at the same record.
    let mut auto = true;
    loop {
        let running = inner.signal.wait(COMPACTION_CHECK_INTERVAL);
        while let Some(id) = inner.signal.next_hint() {
            report(inner, write_hint(inner, id));
        }
        if !running {
            return;
        }
        if auto && should_compact(inner) {
            let result = compaction::compact(inner, compaction::Scope::Sealed, None).map(drop);
            auto = !matches!(result, Err(Error::Corrupted { .. }));
            report(inner, result);
        }
    }
}

fn sync_loop(inner: &Inner, every: Duration) {
    while inner.signal.wait(every) {
        let seq = inner.writer.lock().seq;
        report(inner, inner.sync_to(seq));
    }
}

fn report(inner: &Inner, result: Result<(), Error>) {
    match result {
        Ok(()) | Err(Error::Closed) => {}
        Err(e) => {
            tracing::warn!(store = %inner.dir.display(), error = %e, "background store work failed");
            bump(&inner.counters.background_errors, 1);
        }
    }
}

/// Writes the hint of sealed segment `id` if it still exists.
pub(crate) fn write_hint(inner: &Inner, id: SegmentId) -> Result<(), Error> {
    let _guard = inner.compaction_lock.lock();
    let segment = inner.layout.read().get(id).cloned();
    let Some(segment) = segment else {
        return Ok(());
    };
    if segment.mapped().is_none() || segment.hint_bytes.load(Ordering::Relaxed) > 0 {
        return Ok(());
    }
    let hint = hint::build(&segment)?;
    let size = hint::write(&inner.dir, id, &hint)?;
    segment.hint_bytes.store(size, Ordering::Relaxed);
    Ok(())
}

/// Whether `CompactionPolicy::Auto` asks for a merge now.
pub(crate) fn should_compact(inner: &Inner) -> bool {
    let CompactionPolicy::Auto {
        min_garbage_ratio,
        min_sealed_segments,
    } = inner.opts.compaction
    else {
        return false;
    };
    let layout = inner.layout.read();
    let (mut count, mut total, mut dead) = (0usize, 0u64, 0u64);
    for seg in crate::compaction::eligible(&layout, inner.retention()) {
        count += 1;
        total += seg.len();
        dead += seg.dead_bytes.load(Ordering::Relaxed);
    }
    let ratio = dead as f64 / total.max(1) as f64;
    count >= min_sealed_segments.max(1) && dead > 0 && ratio >= min_garbage_ratio
}

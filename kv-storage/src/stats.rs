//! Counters a store exposes through `Store::stats()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Epoch, Lsn};

/// A snapshot of a store's state and counters.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Stats {
    /// Live keys.
    pub keys: u64,
    /// Bytes of the records live keys point to.
    pub live_bytes: u64,
    /// Bytes of segment and hint files. The active segment counts up to its
    /// last record: the file is pre-sized ahead of it, but that part is a
    /// sparse hole (no blocks) and is cut off when the segment is sealed or
    /// the store closed.
    pub disk_bytes: u64,
    /// Segment files (sealed and active).
    pub segments: u64,
    /// Keys of this store in the hot cache.
    pub hot_keys: u64,
    /// Hot-cache bytes charged to this store.
    pub hot_bytes: u64,
    /// Highest LSN written or applied.
    pub last_lsn: Lsn,
    /// Current epoch.
    pub epoch: Epoch,
    /// `entries_since(after)` for `after` below this falls back to a snapshot.
    pub history_floor: Lsn,
    /// Bytes cut from a torn or corrupt tail of the newest segment at open.
    pub truncated_tail_bytes: u64,
    /// Hint files that were unusable at open (their segments were scanned).
    pub hint_fallbacks: u64,
    /// Completed compactions since open.
    pub compactions: u64,
    /// Disk bytes freed by compactions since open.
    pub reclaimed_bytes: u64,
    /// fdatasync calls on segment data since open.
    pub syncs: u64,
    /// Records written by `put`, `delete` and `apply` since open.
    pub writes: u64,
    /// `write(2)` calls appending records since open: a batch (`write_batch`,
    /// `apply` of many entries) is one, so `writes / appends` is the
    /// average batch size.
    pub appends: u64,
    /// `get` calls answered from the hot cache.
    pub cache_hits: u64,
    /// `get` calls that read a segment.
    pub cache_misses: u64,
    /// Approximate heap bytes of the key directory.
    pub keydir_bytes: u64,
    /// Errors in background work (hint writing, automatic compaction).
    pub background_errors: u64,
    /// Entries removed by `truncate_after` since open (each saved to a
    /// rollback file first).
    pub rolled_back_entries: u64,
    /// Whether a failed fsync made the store refuse writes.
    pub poisoned: bool,
    /// Expired keys deleted by `Store::expire_due` since open.
    pub expired_keys: u64,
}

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct CompactionStats {
    /// Sealed segments merged.
    pub input_segments: u64,
    /// Segments written.
    pub output_segments: u64,
    /// Live records copied.
    pub records: u64,
    /// Disk bytes (segments and hints) of the inputs.
    pub bytes_before: u64,
    /// Disk bytes of the outputs.
    pub bytes_after: u64,
    /// `bytes_before - bytes_after` (0 if the outputs are larger).
    pub reclaimed_bytes: u64,
    /// Records of expired keys dropped instead of copied.
    pub expired_records: u64,
    /// Wall time.
    pub duration: Duration,
}

/// The store's running counters.
#[derive(Default)]
pub(crate) struct Counters {
    pub truncated_tail_bytes: AtomicU64,
    pub hint_fallbacks: AtomicU64,
    pub compactions: AtomicU64,
    pub reclaimed_bytes: AtomicU64,
    pub syncs: AtomicU64,
    pub writes: AtomicU64,
    pub appends: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub background_errors: AtomicU64,
    pub rolled_back_entries: AtomicU64,
    pub expired_keys: AtomicU64,
}

/// Increments a counter.
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Reads a counter.
pub(crate) fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

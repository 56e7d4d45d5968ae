//! Store configuration: sync policy, segment size, limits, cache, compaction.

use std::time::Duration;

use crate::cache::HotCache;
use crate::error::Error;

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Default key size limit: 64 KiB.
pub const DEFAULT_MAX_KEY_BYTES: usize = 64 * 1024;
/// Default value size limit: 16 MiB minus 64 KiB, so a value plus its key and
/// message header still fits the node's 16 MiB frame.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 16 * 1024 * 1024 - 64 * 1024;
/// Default private hot-cache budget when `Options::hot_cache` is `None`.
pub const DEFAULT_HOT_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Default interval of `SyncPolicy::Interval`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Format cap on `segment_bytes` (offsets in the key directory are 32-bit).
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;
/// Format cap on `max_key_bytes + max_value_bytes`.
pub const MAX_RECORD_PAYLOAD_BYTES: usize = 1 << 30;
/// Smallest accepted `segment_bytes` (tests use tiny segments).
pub const MIN_SEGMENT_BYTES: u64 = 64;

/// When appended records are fsynced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync (fdatasync) before acknowledging each write; concurrent writers
    /// share one fsync (group commit).
    Always,
    /// A background thread fsyncs every interval; a crash of the machine may
    /// lose up to one interval of acknowledged writes (a crash of the process
    /// loses nothing: every write reached the OS before it was acknowledged).
    Interval(Duration),
    /// Never fsync except on segment roll, compaction and close.
    Never,
}

/// When sealed segments are merged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CompactionPolicy {
    /// A background thread merges all sealed segments when there are at least
    /// `min_sealed_segments` of them and at least `min_garbage_ratio` of
    /// their bytes are dead (overwritten, deleted, or tombstones).
    Auto {
        /// Fraction of dead bytes in sealed segments that triggers a merge.
        min_garbage_ratio: f64,
        /// Minimum number of sealed segments before a merge is considered.
        min_sealed_segments: usize,
    },
    /// Only [`Store::compact`](crate::Store::compact) merges.
    Manual,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy::Auto {
            min_garbage_ratio: 0.5,
            min_sealed_segments: 2,
        }
    }
}

/// Configuration of one [`Store`](crate::Store).
#[derive(Clone, Debug)]
pub struct Options {
    /// When writes are fsynced. Default `Interval(1s)`.
    pub sync: SyncPolicy,
    /// Size at which the active segment is sealed and a new one started.
    /// Default 64 MiB; at most 1 GiB. A single record larger than this gets a
    /// segment of its own.
    pub segment_bytes: u64,
    /// Largest accepted key. Default 64 KiB.
    pub max_key_bytes: usize,
    /// Largest accepted value. Default 16 MiB − 64 KiB.
    pub max_value_bytes: usize,
    /// Hot-cache budget shared with other stores; `None` gives this store a
    /// private cache of 64 MiB.
    pub hot_cache: Option<HotCache>,
    /// When to merge sealed segments.
    pub compaction: CompactionPolicy,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncPolicy::Interval(DEFAULT_SYNC_INTERVAL),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            hot_cache: None,
            compaction: CompactionPolicy::default(),
        }
    }
}

impl Options {
    /// Checks the limits the on-disk format imposes.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::InvalidOptions { reason });
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return fail(format!(
                "segment_bytes {} outside {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            ));
        }
        let payload = self.max_key_bytes.checked_add(self.max_value_bytes);
        if payload.is_none_or(|p| p > MAX_RECORD_PAYLOAD_BYTES) {
            return fail(format!(
                "max_key_bytes + max_value_bytes exceeds {MAX_RECORD_PAYLOAD_BYTES}"
            ));
        }
        if let SyncPolicy::Interval(d) = self.sync
            && d.is_zero()
        {
            return fail("sync interval must be positive".to_string());
        }
        if let CompactionPolicy::Auto {
            min_garbage_ratio, ..
        } = self.compaction
            && !(0.0..=1.0).contains(&min_garbage_ratio)
        {
            return fail(format!(
                "min_garbage_ratio {min_garbage_ratio} outside 0..=1"
            ));
        }
        Ok(())
    }
}

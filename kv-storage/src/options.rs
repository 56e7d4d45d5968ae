//! Store configuration: sync policy, segment size, limits, cache,
//! compaction, and the clock expiry is judged by.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cache::HotCache;
use crate::error::Error;

// Values the cluster config and the wire share are defined once, in
// kv-limits (default segment size, the segment cap, the hot cache budget,
// the sync interval, the key limit).
pub use kv_limits::{DEFAULT_HOT_CACHE_BYTES, DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES};
/// Default key size limit: 64 KiB.
pub const DEFAULT_MAX_KEY_BYTES: usize = kv_limits::MAX_KEY_BYTES;
/// Default value size limit: 16 MiB minus the key limit, so a value plus its
/// key and message header still fits the node's 16 MiB frame.
pub const DEFAULT_MAX_VALUE_BYTES: usize =
    kv_limits::DEFAULT_MAX_FRAME_BYTES - DEFAULT_MAX_KEY_BYTES;
/// Default interval of `SyncPolicy::Interval`.
pub const DEFAULT_SYNC_INTERVAL: Duration =
    Duration::from_millis(kv_limits::DEFAULT_SYNC_INTERVAL_MS);
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

/// Where a store reads the time (unix milliseconds) to decide whether a key
/// has expired. [`Clock::system`] by default; tests pass a clock they move
/// by hand ([`Clock::from_fn`]) instead of sleeping.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use kv_storage::Clock;
///
/// let now = Arc::new(AtomicU64::new(1_000));
/// let seen = now.clone();
/// let clock = Clock::from_fn(move || seen.load(Ordering::Relaxed));
/// assert_eq!(clock.now_ms(), 1_000);
/// now.store(5_000, Ordering::Relaxed);
/// assert_eq!(clock.now_ms(), 5_000);
/// ```
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    /// The system's wall clock (a clock before 1970 reads as 0), as Redis
    /// reads it: cached, refreshed every millisecond by one background
    /// thread per process, so a read of a key with an expiry costs an
    /// atomic load rather than a clock read (which measured 0.5–1.5 µs per
    /// call in our test VM). It lags the system clock by about a
    /// millisecond, more on an overloaded machine: keys may expire that
    /// much late, never early. If the thread cannot be started, every call
    /// reads the system clock.
    pub fn system() -> Clock {
        Clock::from_fn(cached_now_ms)
    }

    /// A clock that reads `now` (unix milliseconds).
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// The current time, in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::system()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Clock").field(&self.now_ms()).finish()
    }
}

fn system_now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How often the cached wall clock is refreshed.
const CLOCK_TICK: Duration = Duration::from_millis(1);
/// The cached wall clock (see [`Clock::system`]).
static CACHED_NOW_MS: AtomicU64 = AtomicU64::new(0);
/// Whether the thread refreshing [`CACHED_NOW_MS`] runs.
static CLOCK_TICKING: AtomicBool = AtomicBool::new(false);
static START_CLOCK: Once = Once::new();

/// The cached wall clock, starting its thread on first use.
fn cached_now_ms() -> u64 {
    START_CLOCK.call_once(|| {
        CACHED_NOW_MS.store(system_now_ms(), Ordering::Relaxed);
        let ticker = std::thread::Builder::new()
            .name("kv-storage-clock".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(CLOCK_TICK);
                    CACHED_NOW_MS.store(system_now_ms(), Ordering::Relaxed);
                }
            });
        CLOCK_TICKING.store(ticker.is_ok(), Ordering::Release);
    });
    match CLOCK_TICKING.load(Ordering::Acquire) {
        true => CACHED_NOW_MS.load(Ordering::Relaxed),
        false => system_now_ms(),
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
    /// Whether a written value goes into the hot cache (default `true`:
    /// just-written data is hot, as the original system's `status` shows).
    /// With `false` only reads fill the cache, and a write drops the key's
    /// older cached value: for write-heavy loads that rarely read back what
    /// they wrote, it saves the copy and the cache update per write.
    pub cache_writes: bool,
    /// When to merge sealed segments.
    pub compaction: CompactionPolicy,
    /// The time expiry is judged by. Default: the system clock.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync: SyncPolicy::Interval(DEFAULT_SYNC_INTERVAL),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            hot_cache: None,
            cache_writes: true,
            compaction: CompactionPolicy::default(),
            clock: Clock::system(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_cached_but_close_and_never_ahead() {
        let before = system_now_ms();
        let cached = Clock::system().now_ms();
        let after = system_now_ms();
        // Refreshed before the first read, then by the thread: within the
        // last few seconds even on a loaded machine, and never ahead.
        assert!(cached <= after, "{cached} > {after}");
        assert!(cached + 5_000 >= before, "{cached} lags {before}");
        let later = (0..10_000).find_map(|_| {
            std::thread::sleep(Duration::from_millis(1));
            Some(Clock::system().now_ms()).filter(|&t| t > cached)
        });
        assert!(later.is_some(), "the cached clock moves");
    }
}

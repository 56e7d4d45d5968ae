//! kv-storage: one partition's log-structured key-value store.
//!
//! A Bitcask-style store of opaque bytes. It owns one directory and, in it,
//! an append-only log split into segment files, plus an in-memory key
//! directory that says where each key's latest record is. It knows nothing of
//! value encodings, the network or async runtimes, so any project can embed it.
//!
//! ```
//! use kv_storage::{Location, Options, Since, Store};
//!
//! # fn main() -> Result<(), kv_storage::Error> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let store = Store::open(dir.path(), Options::default())?;
//! let pos = store.put(b"nama", b"Rafi Widya")?;
//! assert_eq!(pos.lsn, 1);
//! assert_eq!(store.get(b"nama")?.as_deref(), Some(&b"Rafi Widya"[..]));
//! assert_eq!(store.location(b"nama"), Location::Hot);
//! store.delete(b"nama")?;
//! assert_eq!(store.get(b"nama")?, None);
//! // A follower asks for everything after its last LSN.
//! let Since::Entries(history) = store.entries_since(0, 100)? else { unreachable!() };
//! assert_eq!(history.len(), 2);
//! store.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! Iterating a store: [`Store::iter`] pages through the live keys (in hash
//! order, not sorted) without holding a lock between pages; values are read
//! on demand. [`Store::scan`] is the same walk one page at a time with a
//! [`Cursor`] you can keep (for example, send to a client) and resume later.
//!
//! ```
//! use kv_storage::{Cursor, Options, Store};
//!
//! # fn main() -> Result<(), kv_storage::Error> {
//! let dir = tempfile::tempdir().expect("temp dir");
//! let store = Store::open(dir.path(), Options::default())?;
//! for (k, v) in [("user:1", "Ana"), ("user:2", "Budi"), ("order:7", "3 apples")] {
//!     store.put(k.as_bytes(), v.as_bytes())?;
//! }
//! let mut users = Vec::new();
//! for pair in store.iter_prefix(b"user:").with_values() {
//!     let (key, value) = pair?;
//!     users.push((key, value));
//! }
//! users.sort();
//! assert_eq!(users[1], (b"user:2"[..].into(), b"Budi"[..].into()));
//! assert_eq!(users.len(), 2);
//!
//! // The same walk, two keys per call, resumable from `page.next`.
//! let (mut cursor, mut seen) = (Cursor::START, 0);
//! loop {
//!     let page = store.scan(cursor, 2)?;
//!     seen += page.keys.len();
//!     match page.next {
//!         Some(next) => cursor = next,
//!         None => break,
//!     }
//! }
//! assert_eq!(seen, 3);
//! # Ok(())
//! # }
//! ```
//!
//! # Modules, in data-flow order
//!
//! - [`options`] — configuration: sync policy, segment size, limits.
//! - `record` — the checksummed record format (byte layout documented there).
//! - `segment` — `segment-<n>.log` files: header, positional reads of
//!   every segment, mmap of sealed ones for recovery and compaction (and
//!   why that is sound).
//! - `inner` — the write path (one `write(2)` per record or batch, into an
//!   active segment pre-sized in chunks) and the read path; lock order.
//! - `batch` — [`WriteBatch`]: several puts and deletes in one `write(2)`,
//!   all or none after a crash.
//! - `expiry` — per-key expiry ([`Store::put_with_expiry`],
//!   [`Store::expire`], [`Store::expiry`], [`Store::expire_due`]), judged
//!   by [`Options::clock`]; the model (leader decides, reads hide) is
//!   documented there.
//! - `sync` — group commit for `SyncPolicy::Always`.
//! - `keydir` — key → (segment, offset, length, LSN), sharded, compact,
//!   laid out in a fixed hash order.
//! - `scan` — [`Store::scan`] / [`Store::iter`]: listing keys with a
//!   resumable cursor over that hash order.
//! - `cache` — the hot cache: a CLOCK cache with a byte budget shared by
//!   stores ([`HotCache`]).
//! - `hint` — per-segment index files that make reopening fast.
//! - `recovery` — what `open` does with whatever a crash left behind;
//!   `recovery::load` indexes segments in parallel.
//! - `compaction` — merging sealed segments (an explicit
//!   [`Store::compact`] seals the active segment first when it holds
//!   garbage), crash-safe at every step.
//! - `replication` — `entries_since`, `apply`, `clear`, the retention
//!   watermark.
//! - `snapshot` — [`SnapshotReader`]: live entries in bounded chunks, as of
//!   a position (full resync, source side).
//! - `install` — [`Install`]: a snapshot staged beside the live data and
//!   switched in atomically (destination side).
//! - `epochs` — the epoch history (epoch → first LSN, file `EPOCHS`):
//!   [`Store::begin_epoch`], [`Store::end_of_epoch`] for log matching.
//! - `truncate` — [`Store::truncate_after`]: removing a divergent tail,
//!   crash-safe, restoring older versions of the affected keys.
//! - [`rollback`] — the rollback files a truncation writes first, and
//!   their reader.
//! - `worker` — background hint writing, compaction and interval fsync.
//! - `meta`, `lock` — the legacy `EPOCH` file, compaction and truncation
//!   markers, directory lock.
//! - [`durable`] — the one crash-safe way to create a file (`.tmp`, fsync,
//!   rename, fsync the directory), used by every file above and by
//!   kv-node's `LAYOUT`.
//!
//! # Invariants
//!
//! - Every acknowledged write was handed to the OS with one `write(2)` before
//!   the call returned; under `SyncPolicy::Always` it was also fdatasynced.
//!   A write batch is one `write(2)` and recovery keeps all of it or none.
//! - LSNs of records only grow; `last_lsn()` never goes backwards, even across
//!   compaction and reopen (segment headers remember the position).
//! - A read returns the latest value or an error: every record read from disk
//!   is CRC-checked and matched against the key and LSN the directory expects.
//! - Sealed segments are never modified. The active segment's file is grown
//!   ahead of its records (zeros, sparse) and cut back to its last record,
//!   durably, before it is sealed and mapped and on close; otherwise only the
//!   newest log segment is truncated, and only during recovery (a torn tail;
//!   an all-zero tail is the clean end of the log and is kept).
//! - One `Store` per directory (an OS file lock); a failed fsync poisons the
//!   store until it is reopened.
//!
//! # Cargo feature `sim`
//!
//! For kv-node's deterministic simulation only: the `sim` module, a
//! simulated disk (active segments are not fdatasynced; their durable ends
//! are recorded so a test can apply a power loss, and failing fsyncs or a
//! full disk can be armed). A production build never enables it.
//!
//! # What it does not do
//!
//! No transactions (a [`WriteBatch`] is atomic across a crash, but readers
//! may see it half-indexed for a moment, and it has no conditions), no sorted range scans (the key
//! directory is a hash map: scans list keys in hash order, and a prefix is a
//! filter, not a seek), no compression. Values are bounded by
//! `Options::max_value_bytes` and read whole.

// Library code never panics on input: no unwrap/expect, no unchecked
// indexing (exceptions carry `#[expect(..., reason = "...")]`). Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

// The modules with `impl Store` blocks come first, in the order rustdoc
// then shows `Store`'s methods: where a user starts (open, put, get),
// then listing keys, batches and expiry, then the replication hooks.
mod store;

mod scan;

mod batch;

mod expiry;

mod replication;

mod epochs;

mod truncate;

pub mod rollback;

mod snapshot;

mod install;

// Internals.
mod cache;
mod compaction;
pub mod durable;
mod error;
mod fault;
mod hint;
mod inner;
mod keydir;
mod lock;
mod meta;
pub mod options;
mod record;
mod recovery;
mod segment;
#[cfg(feature = "sim")]
pub mod sim;
mod stats;
mod sync;
mod worker;

use bytes::Bytes;

pub use batch::WriteBatch;
#[doc(hidden)]
pub use cache::CacheHandle;
pub use cache::HotCache;
pub use error::Error;
pub use expiry::{Expiry, Ttl};
#[doc(hidden)]
pub use fault::FaultPoint;
pub use install::{Install, STAGING_DIR};
pub use options::{Clock, CompactionPolicy, Options, SyncPolicy};
pub use scan::{Cursor, Iter, ScanPage};
pub use snapshot::SnapshotReader;
pub use stats::{CompactionStats, Stats};
pub use store::Store;
pub use truncate::Truncation;

/// Per-partition sequence number: strictly increasing, 0 = nothing written.
pub type Lsn = u64;

/// History epoch: only grows (bumped by leader changes).
pub type Epoch = u32;

/// A point in a partition's history. Ordered by epoch, then LSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The epoch the entry was written in.
    pub epoch: Epoch,
    /// The entry's sequence number.
    pub lsn: Lsn,
}

/// What [`Store::delete`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deleted {
    /// The tombstone's position.
    pub position: Position,
    /// Whether the key was live; false when its expiry had passed (by the
    /// store's clock) and only the tombstone was still to come.
    pub live: bool,
}

/// One entry of the history, as replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it sits in the history.
    pub position: Position,
    /// The key.
    pub key: Bytes,
    /// The value, or `None` for a deletion (tombstone).
    pub value: Option<Bytes>,
    /// When the key expires (unix ms), for a value that does; a follower
    /// stores the same time. Always `None` for deletions.
    pub expiry: Option<u64>,
}

/// Answer of [`Store::entries_since`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Since {
    /// Every entry after the requested LSN, in LSN order (at most the
    /// requested count; empty if up to date).
    Entries(Vec<Entry>),
    /// The requested history was compacted away (or never held here): all
    /// live records (no tombstones), sorted by LSN, current as of `last`.
    /// Built in memory.
    Snapshot {
        /// The live records.
        entries: Vec<Entry>,
        /// The position the records are current as of.
        last: Position,
    },
}

/// Where a key's value is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// In the hot cache (memory).
    Hot,
    /// Only on disk.
    Cold,
    /// No such key.
    Missing,
}

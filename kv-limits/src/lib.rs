//! kv-limits: the sizes and defaults several kv crates must agree on,
//! each written once.
//!
//! The store ([kv-storage]) enforces them, the cluster config (kv-router)
//! checks a config file against them before any store opens, and the wire
//! protocol (kv-node) sizes its messages by them. Those crates may not
//! depend on each other in the direction that would let one own the
//! values: kv-storage is embeddable and knows nothing of clusters, and
//! kv-router is part of every client build, which must not pull in the
//! store (memmap2, its threads). So the values live here, below all
//! three, and each crate re-exports the ones in its public API under the
//! name it always had.
//!
//! Only values that mean the same thing in every crate belong here;
//! a crate's own policy (the config's 4 KiB lower bound on segments, the
//! store's 64-byte one for tests) stays with it.
//!
//! ```
//! assert_eq!(kv_limits::DEFAULT_SEGMENT_BYTES, 64 << 20);
//! assert!(kv_limits::DEFAULT_SEGMENT_BYTES <= kv_limits::MAX_SEGMENT_BYTES);
//! ```
//!
//! [kv-storage]: https://docs.rs/kv-storage

#![no_std]

/// Largest segment file (1 GiB): offsets in kv-storage's key directory are
/// 32-bit. The store refuses larger `segment_bytes`; the cluster config
/// rejects them when it is parsed.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// Size at which a segment is sealed unless configured otherwise (64 MiB).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// Default budget of the hot cache (64 MiB): a store's private cache, and
/// a node's cache shared by its stores.
pub const DEFAULT_HOT_CACHE_BYTES: u64 = 64 << 20;

/// Default fsync period of the interval sync policy, in milliseconds (one
/// second).
pub const DEFAULT_SYNC_INTERVAL_MS: u64 = 1000;

/// Longest key (64 KiB): the store's default limit and the node's.
pub const MAX_KEY_BYTES: usize = 64 << 10;

/// The node's default frame limit (16 MiB). kv-storage's default value
/// limit leaves a key and a message header of room in it, so a value an
/// embedded store accepts by default can be sent to a node.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 << 20;

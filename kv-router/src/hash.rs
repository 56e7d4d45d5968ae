//! The stable partition function.
//!
//! A key's partition is `xxh3_64(key) % partitions`, with xxh3 seeded with 0.
//! xxh3 is specified bit for bit and independent of platform, endianness,
//! process and library version, so every node and client — in any process,
//! on any machine, now and later — computes the same partition for a key.
//! The test vectors in `tests/hash_vectors.rs` pin the values: changing this
//! function would silently remap stored keys, so those tests must fail first.

use crate::PartitionId;

/// The 64-bit hash of a key: xxh3-64 with seed 0 over the raw key bytes.
pub fn key_hash(key: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key)
}

/// The partition of `key` among `partitions` partitions:
/// `xxh3_64(key) % partitions`.
///
/// `partitions` must be at least 1; a count of 0 is treated as 1 (every key
/// maps to partition 0) rather than panicking. A validated
/// [`ClusterConfig`](crate::ClusterConfig) never has 0 partitions.
pub fn partition_for(key: &[u8], partitions: u32) -> PartitionId {
    let n = u64::from(partitions.max(1));
    // The remainder is < n <= u32::MAX, so the conversion cannot fail.
    PartitionId::try_from(key_hash(key) % n).unwrap_or(0)
}

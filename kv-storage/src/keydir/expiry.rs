//! Expiry times of one shard's keys that have one.
//!
//! Most keys never expire, so the times live beside the hash tables rather
//! than in every slot (which would grow each slot from 24 to 32 bytes):
//! a key without an expiry costs nothing here, and a shard without expiring
//! keys answers "no expiry" with one `is_empty` check. A key with an expiry
//! costs about 60 bytes: an entry in a map from its arena reference to the
//! time, and the same pair in a set ordered by time, which is what makes
//! finding the keys that are due cheap (no sampling: the earliest first,
//! `O(log n)` each).

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes an arena reference (a `u32` the process made, not user input)
/// with a multiplication and a fold: the lookup sits on the read path of every key
/// of a shard that has expiring keys, where SipHash cost ~4× more.
#[derive(Default)]
struct KeyRefHasher(u64);

impl Hasher for KeyRefHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = ((self.0 << 8) | u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        // The table indexes by the low bits, which a product alone fills
        // from the low bits of the reference only (references of different
        // arena chunks would collide): fold the high half in.
        self.0 ^ (self.0 >> 32)
    }
}

/// Arena reference of a key → expiry time (unix ms), both ways.
#[derive(Default)]
pub(super) struct Expiries {
    by_key: HashMap<u32, u64, BuildHasherDefault<KeyRefHasher>>,
    by_time: BTreeSet<(u64, u32)>,
}

impl Expiries {
    /// The expiry of the key stored at `key_ref`, if it has one.
    pub(super) fn get(&self, key_ref: u32) -> Option<u64> {
        if self.by_key.is_empty() {
            return None;
        }
        self.by_key.get(&key_ref).copied()
    }

    /// Sets (or, with `None`, clears) the expiry of the key at `key_ref`.
    pub(super) fn set(&mut self, key_ref: u32, at: Option<u64>) {
        let old = match at {
            Some(at) => self.by_key.insert(key_ref, at),
            None if self.by_key.is_empty() => return,
            None => self.by_key.remove(&key_ref),
        };
        if let Some(old) = old {
            self.by_time.remove(&(old, key_ref));
        }
        if let Some(at) = at {
            self.by_time.insert((at, key_ref));
        }
    }

    /// Keys due at `now` (expiry ≤ `now`), earliest first.
    pub(super) fn due(&self, now: u64) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.by_time.range(..=(now, u32::MAX)).copied()
    }

    /// Number of keys with an expiry.
    pub(super) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// The same expiries after the arena moved keys: `moved` yields
    /// (old reference, new reference) for every live key.
    pub(super) fn remapped(&self, moved: impl Iterator<Item = (u32, u32)>) -> Expiries {
        let mut fresh = Expiries::default();
        if self.by_key.is_empty() {
            return fresh;
        }
        for (old, new) in moved {
            if let Some(at) = self.get(old) {
                fresh.set(new, Some(at));
            }
        }
        fresh
    }

    /// Approximate heap bytes held.
    pub(super) fn memory_bytes(&self) -> usize {
        // A map entry (12 bytes + control byte, at most 8/7 load) and a
        // B-tree element (16 bytes, nodes about 2/3 full).
        self.by_key.capacity() * 13 + self.by_time.len() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replace_clear_and_due() {
        let mut e = Expiries::default();
        assert_eq!(e.get(1), None);
        e.set(1, Some(50));
        e.set(2, Some(10));
        e.set(3, Some(30));
        e.set(1, Some(20));
        assert_eq!(e.get(1), Some(20));
        assert_eq!(e.due(25).collect::<Vec<_>>(), [(10, 2), (20, 1)]);
        e.set(2, None);
        assert_eq!(e.due(u64::MAX).collect::<Vec<_>>(), [(20, 1), (30, 3)]);
        assert_eq!(e.len(), 2);
        let moved = e.remapped([(1, 7), (3, 8), (9, 9)].into_iter());
        assert_eq!(
            (moved.get(7), moved.get(8), moved.get(1)),
            (Some(20), Some(30), None)
        );
        assert_eq!(moved.len(), 2);
    }

    #[test]
    fn references_of_different_chunks_spread_over_the_table() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<KeyRefHasher>::default();
        // Fixed-length keys: the same offsets in every chunk.
        let buckets: std::collections::HashSet<u64> = (0..64u32)
            .flat_map(|chunk| (0..16u32).map(move |i| (chunk << 16) | (i * 48)))
            .map(|r| build.hash_one(r) & 1023)
            .collect();
        assert!(buckets.len() > 600, "{} of 1024 buckets", buckets.len());
    }
}

//! Deterministic keys and values: every process can regenerate them.
//!
//! Key `i` of a key set is 16 bytes from SplitMix64 of `(seed, i)`, so keys
//! are uniformly random but need no storage. A key's value is 100 bytes of
//! SplitMix64 output seeded by the key itself, so a reader verifies a value
//! from the key alone, and values are incompressible (no engine gains from
//! compression).

/// Key length in bytes.
pub const KEY_BYTES: usize = 16;
/// Value length in bytes.
pub const VALUE_BYTES: usize = 100;

/// Seed of the bulk-loaded key set (load, read, reopen).
pub const LOAD_SEED: u64 = 0x6b76_2d6c_6f61_6400;
/// Seed of the durable-write key set.
pub const DURABLE_SEED: u64 = 0x6b76_2d64_7572_6100;
/// Seed of the read workload's random key choices.
pub const READ_SEED: u64 = 0x6b76_2d72_6561_6400;

/// A key.
pub type Key = [u8; KEY_BYTES];
/// A value.
pub type Value = [u8; VALUE_BYTES];

/// One SplitMix64 step: advances `state` and returns the next output.
pub fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Key number `i` of the key set `seed`.
pub fn key(seed: u64, i: u64) -> Key {
    let mut state = seed ^ i.wrapping_mul(0xd6e8_feb8_6659_fd93);
    let mut k = [0u8; KEY_BYTES];
    k[..8].copy_from_slice(&splitmix(&mut state).to_le_bytes());
    k[8..].copy_from_slice(&splitmix(&mut state).to_le_bytes());
    k
}

/// The value stored under `key`.
pub fn value(key: &Key) -> Value {
    let (a, b) = key.split_at(8);
    let lo = u64::from_le_bytes(a.try_into().unwrap_or_default());
    let hi = u64::from_le_bytes(b.try_into().unwrap_or_default());
    let mut state = lo ^ hi.rotate_left(29);
    let mut v = [0u8; VALUE_BYTES];
    for chunk in v.chunks_mut(8) {
        let word = splitmix(&mut state).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    v
}

/// A small PRNG for choosing keys.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is below 2^-40 for the
    /// key counts used here).
    pub fn below(&mut self, n: u64) -> u64 {
        splitmix(&mut self.0) % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_values_stable() {
        let keys: std::collections::HashSet<Key> = (0..10_000).map(|i| key(LOAD_SEED, i)).collect();
        assert_eq!(keys.len(), 10_000);
        assert_ne!(key(LOAD_SEED, 1), key(DURABLE_SEED, 1));
        let k = key(LOAD_SEED, 7);
        assert_eq!(value(&k), value(&k));
        assert_ne!(value(&k), value(&key(LOAD_SEED, 8)));
    }
}

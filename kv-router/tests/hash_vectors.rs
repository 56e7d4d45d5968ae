//! Frozen test vectors for the partition function.
//!
//! The hashes were computed once with the reference C implementation of
//! xxHash (libxxhash 0.8.1, `XXH3_64bits`), not with this crate, and are
//! committed here. If one of these tests fails, the partition function has
//! changed and every stored key would be looked up in the wrong partition:
//! do not update the table, fix the change.

use kv_router::{key_hash, partition_for};

/// (key, xxh3-64, partition with N = 4, partition with N = 16)
const TEXT_KEYS: &[(&str, u64, u32, u32)] = &[
    ("", 0x2d06800538d394c2, 2, 2),
    ("a", 0xe6c632b61e964e1f, 3, 15),
    ("nama", 0x45f00d57bf5e9fe0, 0, 0),
    ("user:101", 0x073801607c263728, 0, 8),
    ("event:login", 0x2983d50bd872c808, 0, 8),
    ("user:101:profile", 0xf0cfc3f9b4e17b25, 1, 5),
    ("Rafi Widya", 0x4fcafc2f885687dd, 1, 13),
    ("ключ", 0x9a137c08c1e55ede, 2, 14),
    ("键值", 0xd0c3e4ad8879c917, 3, 7),
    ("🔑 kunci", 0x45681556c6497313, 3, 3),
    ("café au lait — crème brûlée", 0xe20dc0b669ba33a1, 1, 1),
];

/// (length of [`pattern`] key, xxh3-64, partition N = 4, partition N = 16).
/// The lengths cover each of xxh3's input-size code paths (1–3, 17–128,
/// 129–240, 241+ bytes); the keys are not valid UTF-8.
const BINARY_KEYS: &[(usize, u64, u32, u32)] = &[
    (3, 0xa9088dda485b481c, 0, 12),
    (100, 0xb5937857f0d78c9f, 3, 15),
    (200, 0x746cd0025327bf5b, 3, 11),
    (241, 0x8beadd3a8874fe17, 3, 7),
    (1024, 0x9b81661c641c72b1, 1, 1),
];

/// Byte `i` is `(7 i + 3) mod 256`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 7 + 3) % 256) as u8).collect()
}

fn check(label: &str, key: &[u8], hash: u64, p4: u32, p16: u32) {
    assert_eq!(
        key_hash(key),
        hash,
        "xxh3 of {label}: got {:#018x}",
        key_hash(key)
    );
    assert_eq!(partition_for(key, 4), p4, "partition of {label} with N = 4");
    assert_eq!(
        partition_for(key, 16),
        p16,
        "partition of {label} with N = 16"
    );
    assert_eq!(partition_for(key, 1), 0, "partition of {label} with N = 1");
    assert_eq!(
        u64::from(partition_for(key, 7)),
        hash % 7,
        "partition of {label} with N = 7"
    );
}

#[test]
fn text_keys_map_to_frozen_partitions() {
    for &(key, hash, p4, p16) in TEXT_KEYS {
        check(&format!("{key:?}"), key.as_bytes(), hash, p4, p16);
    }
}

#[test]
fn binary_keys_map_to_frozen_partitions() {
    for &(len, hash, p4, p16) in BINARY_KEYS {
        check(&format!("pattern({len})"), &pattern(len), hash, p4, p16);
    }
}

#[test]
fn zero_partitions_does_not_panic() {
    assert_eq!(partition_for(b"user:101", 0), 0);
}

#[test]
fn cluster_map_uses_the_same_function() {
    let config = kv_router::ClusterConfig::default_topology();
    let map = kv_router::ClusterMap::new(&config).unwrap();
    for &(key, _, p4, _) in TEXT_KEYS {
        assert_eq!(map.partition_of(key.as_bytes()), p4, "{key:?}");
    }
}

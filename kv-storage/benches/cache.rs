//! The hot cache (`cache.rs`, CLOCK, hand-written) against `quick_cache`
//! (the cache fjall's lsm-tree uses), called the way a store calls its
//! cache: a precomputed xxh3 key hash, the record's LSN checked on a hit,
//! a byte budget charged key + value + 128 bytes per entry.
//!
//! Workloads, same run, 16-byte keys and 100-byte values:
//! - `get_hit`: every key cached, random gets;
//! - `get_miss`: gets of keys never inserted;
//! - `insert_evict`: a budget for a tenth of the keys, random inserts (each
//!   one evicts);
//! - `read_through`: a budget for a tenth of the keys, skewed gets (most go
//!   to a few keys), a miss inserts; the hit ratio of each cache is printed.
//!
//! `cargo bench -p kv-storage --bench cache`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kv_storage::HotCache;
use quick_cache::{Equivalent, Weighter};
use rand::{Rng, SeedableRng};

const KEYS: usize = 100_000;
const VALUE_BYTES: usize = 100;
/// Charged per entry on top of key and value (as `cache.rs` does).
const OVERHEAD: u64 = 128;
const ENTRY_BYTES: u64 = 16 + VALUE_BYTES as u64 + OVERHEAD;
const LSN: u64 = 1;

/// One key of the workload: its bytes, hash and key-then-value data.
struct Item {
    key: Bytes,
    hash: u64,
    data: Bytes,
}

fn items(salt: u64) -> Vec<Item> {
    (0..KEYS as u64)
        .map(|i| {
            let mut key = [0u8; 16];
            key[..8].copy_from_slice(&i.to_be_bytes());
            key[8..].copy_from_slice(&salt.to_be_bytes());
            let hash = xxhash_rust::xxh3::xxh3_64(&key);
            let data = Bytes::from([&key[..], &[7u8; VALUE_BYTES]].concat());
            Item {
                key: Bytes::copy_from_slice(&key),
                hash,
                data,
            }
        })
        .collect()
}

/// quick_cache's key: a store id and the key, hashed by the precomputed
/// hash (as `cache.rs` is).
#[derive(Clone, PartialEq, Eq)]
struct QKey {
    hash: u64,
    store: u64,
    key: Bytes,
}

impl Hash for QKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

/// A borrowed lookup key.
struct QRef<'a> {
    hash: u64,
    store: u64,
    key: &'a [u8],
}

impl Hash for QRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Equivalent<QKey> for QRef<'_> {
    fn equivalent(&self, k: &QKey) -> bool {
        self.store == k.store && self.key == k.key.as_ref()
    }
}

/// Passes the precomputed hash through.
#[derive(Clone, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Clone, Default)]
struct PassThroughBuild;

impl BuildHasher for PassThroughBuild {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough::default()
    }
}

#[derive(Clone)]
struct Charge;

impl Weighter<QKey, (u64, Bytes)> for Charge {
    fn weight(&self, k: &QKey, v: &(u64, Bytes)) -> u64 {
        k.key.len() as u64 + v.1.len() as u64 + OVERHEAD
    }
}

type Quick = quick_cache::sync::Cache<QKey, (u64, Bytes), Charge, PassThroughBuild>;

fn quick(capacity_bytes: u64) -> Quick {
    let items = (capacity_bytes / ENTRY_BYTES) as usize;
    Quick::with(
        items,
        capacity_bytes,
        Charge,
        PassThroughBuild,
        Default::default(),
    )
}

/// The two caches behind one interface.
trait Cache {
    fn get(&self, item: &Item) -> Option<Bytes>;
    fn insert(&self, item: &Item);
}

impl Cache for kv_storage::CacheHandle {
    fn get(&self, item: &Item) -> Option<Bytes> {
        kv_storage::CacheHandle::get(self, item.hash, &item.key, LSN)
    }
    fn insert(&self, item: &Item) {
        kv_storage::CacheHandle::insert(self, item.hash, item.data.clone(), item.key.len(), LSN);
    }
}

impl Cache for Quick {
    fn get(&self, item: &Item) -> Option<Bytes> {
        let (hash, key) = (item.hash, &item.key[..]);
        let (lsn, value) = Quick::get(
            self,
            &QRef {
                hash,
                store: 1,
                key,
            },
        )?;
        (lsn == LSN).then_some(value)
    }
    fn insert(&self, item: &Item) {
        let key = QKey {
            hash: item.hash,
            store: 1,
            key: item.key.clone(),
        };
        let value = item.data.slice(item.key.len()..);
        Quick::insert(self, key, (LSN, value));
    }
}

/// Both caches with `capacity_bytes`, ours first.
fn both(capacity_bytes: u64) -> [(&'static str, Box<dyn Cache>); 2] {
    let hand = HotCache::new(capacity_bytes).bench_handle();
    [
        ("clock", Box::new(hand)),
        ("quick_cache", Box::new(quick(capacity_bytes))),
    ]
}

/// A skewed index: most draws land on a few keys.
fn skewed(rng: &mut rand::rngs::SmallRng) -> usize {
    let u: f64 = rng.random();
    ((KEYS as f64) * u.powi(4)) as usize
}

/// A get that inserts on a miss; whether it hit.
fn read_through(cache: &dyn Cache, item: &Item) -> bool {
    let hit = cache.get(item).is_some();
    if !hit {
        cache.insert(item);
    }
    hit
}

/// The hit ratio of one million skewed read-through gets, the same
/// sequence for every cache.
fn hit_ratio(cache: &dyn Cache, keys: &[Item]) -> f64 {
    const GETS: usize = 1_000_000;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(17);
    let hits = (0..GETS)
        .filter(|_| read_through(cache, &keys[skewed(&mut rng)]))
        .count();
    hits as f64 / GETS as f64
}

fn bench_gets(c: &mut Criterion) {
    let present = items(1);
    let absent = items(2);
    let mut group = c.benchmark_group("cache");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    for (name, cache) in both(KEYS as u64 * ENTRY_BYTES * 4) {
        present.iter().for_each(|i| cache.insert(i));
        let hits = present.iter().filter(|i| cache.get(i).is_some()).count();
        assert_eq!(hits, KEYS, "{name}: every key fits");
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        group.bench_function(format!("get_hit/{name}"), |b| {
            b.iter(|| cache.get(&present[rng.random_range(0..KEYS)]))
        });
        group.bench_function(format!("get_miss/{name}"), |b| {
            b.iter(|| cache.get(&absent[rng.random_range(0..KEYS)]))
        });
    }
    group.finish();
}

fn bench_churn(c: &mut Criterion) {
    let keys = items(3);
    let mut group = c.benchmark_group("cache");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let budget = KEYS as u64 / 10 * ENTRY_BYTES;
    for (name, cache) in both(budget) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
        group.bench_function(format!("insert_evict/{name}"), |b| {
            b.iter(|| cache.insert(&keys[rng.random_range(0..KEYS)]))
        });
    }
    for (name, cache) in both(budget) {
        println!(
            "read_through/{name}: hit ratio {:.3}",
            hit_ratio(&*cache, &keys)
        );
        let mut rng = rand::rngs::SmallRng::seed_from_u64(13);
        group.bench_function(format!("read_through/{name}"), |b| {
            b.iter(|| read_through(&*cache, &keys[skewed(&mut rng)]))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500));
    targets = bench_gets, bench_churn
}
criterion_main!(benches);

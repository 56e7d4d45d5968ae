//! Criterion benchmarks for the workloads of DESIGN §4: put (100 B, 1 KiB,
//! 16 KiB), hot get, cold get (positional read of the active segment vs mmap
//! of sealed ones), durable put with 1/4/16 concurrent writers, open time with
//! and without hints, and compaction throughput. Also (issue 15): a full scan
//! of a large store against the old way to list it (`entries_since(0, ..)`,
//! the whole history in memory), and write batches against the same puts
//! made one by one. And (expiry): put and hot get of keys with an expiry
//! against the same without one, in the same run, and active expiry
//! (`expire_due`) throughput in keys per second.
//!
//! `cargo bench -p kv-storage` runs them all (a few minutes).

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kv_storage::{
    Clock, CompactionPolicy, Cursor, Expiry, HotCache, Options, Store, SyncPolicy, WriteBatch,
};
use rand::{Rng, SeedableRng};

/// Keys loaded for the open-time and compaction benchmarks.
const LOAD_KEYS: u64 = 200_000;
/// Keys for the read benchmarks.
const READ_KEYS: u64 = 100_000;
const VALUE_BYTES: usize = 100;

fn options(sync: SyncPolicy, segment_bytes: u64, cache_bytes: u64) -> Options {
    Options {
        sync,
        segment_bytes,
        hot_cache: Some(HotCache::new(cache_bytes)),
        compaction: CompactionPolicy::Manual,
        ..Options::default()
    }
}

/// 16-byte keys, as in the peer comparison.
fn key(i: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&i.to_be_bytes());
    k[8..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k
}

fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random()).collect()
}

fn load(dir: &Path, opts: &Options, keys: u64, rounds: u64) {
    let store = Store::open(dir, opts.clone()).unwrap();
    let value = incompressible(VALUE_BYTES, 1);
    for _ in 0..rounds {
        for i in 0..keys {
            store.put(&key(i), &value).unwrap();
        }
    }
    store.close().unwrap();
}

fn bench_put(c: &mut Criterion) {
    let mut group = c.benchmark_group("put");
    group.measurement_time(Duration::from_secs(3));
    for size in [100usize, 1024, 16 * 1024] {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open(dir.path(), options(SyncPolicy::Never, 64 << 20, 64 << 20)).unwrap();
        let value = incompressible(size, 2);
        let mut i = 0u64;
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{size}B"), |b| {
            b.iter(|| {
                i += 1;
                store.put(&key(i), &value).unwrap()
            })
        });
    }
    group.finish();
}

fn bench_get(c: &mut Criterion) {
    let mut group = c.benchmark_group("get");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let cases = [
        ("hot", 64 << 20, 256u64 << 20),
        ("cold_active_pread", 1u64 << 30, 0),
        ("cold_sealed_mmap", 1 << 20, 0),
    ];
    for (name, segment_bytes, cache) in cases {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(SyncPolicy::Never, segment_bytes, cache);
        load(dir.path(), &opts, READ_KEYS, 1);
        let store = Store::open(dir.path(), opts).unwrap();
        for i in 0..READ_KEYS {
            store.get(&key(i)).unwrap();
        }
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        group.bench_function(name, |b| {
            b.iter(|| {
                store
                    .get(&key(rng.random_range(0..READ_KEYS)))
                    .unwrap()
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_durable(c: &mut Criterion) {
    let mut group = c.benchmark_group("durable_put");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(4));
    for writers in [1u64, 4, 16] {
        let dir = tempfile::tempdir().unwrap();
        let opts = options(SyncPolicy::Always, 64 << 20, 0);
        let store = Arc::new(Store::open(dir.path(), opts).unwrap());
        let value = incompressible(VALUE_BYTES, 3);
        group.throughput(Throughput::Elements(writers));
        group.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                let threads: Vec<_> = (0..writers)
                    .map(|w| {
                        let (store, value) = (store.clone(), value.clone());
                        std::thread::spawn(move || {
                            for i in 0..iters {
                                store.put(&key(w << 32 | i), &value).unwrap();
                            }
                        })
                    })
                    .collect();
                threads.into_iter().for_each(|t| t.join().unwrap());
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open");
    group.sample_size(10);
    group.throughput(Throughput::Elements(LOAD_KEYS));
    let dir = tempfile::tempdir().unwrap();
    let opts = options(SyncPolicy::Never, 4 << 20, 0);
    load(dir.path(), &opts, LOAD_KEYS, 1);
    let hints: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hint"))
        .collect();
    assert!(!hints.is_empty());
    group.bench_function(format!("{LOAD_KEYS}_keys_with_hints"), |b| {
        b.iter(|| Store::open(dir.path(), opts.clone()).unwrap())
    });
    let saved: Vec<_> = hints.iter().map(|p| std::fs::read(p).unwrap()).collect();
    group.bench_function(format!("{LOAD_KEYS}_keys_without_hints"), |b| {
        b.iter_batched(
            || hints.iter().for_each(|p| drop(std::fs::remove_file(p))),
            |()| Store::open(dir.path(), opts.clone()).unwrap(),
            BatchSize::PerIteration,
        )
    });
    for (path, bytes) in hints.iter().zip(saved) {
        std::fs::write(path, bytes).unwrap();
    }
    group.finish();
}

fn bench_compaction(c: &mut Criterion) {
    let mut group = c.benchmark_group("compaction");
    group.sample_size(10);
    let opts = options(SyncPolicy::Never, 4 << 20, 0);
    let probe = tempfile::tempdir().unwrap();
    load(probe.path(), &opts, LOAD_KEYS, 2);
    let input = Store::open(probe.path(), opts.clone())
        .unwrap()
        .stats()
        .disk_bytes;
    group.throughput(Throughput::Bytes(input));
    group.bench_function(format!("{LOAD_KEYS}_keys_half_garbage"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                load(dir.path(), &opts, LOAD_KEYS, 2);
                let store = Store::open(dir.path(), opts.clone()).unwrap();
                let start = Instant::now();
                store.compact().unwrap();
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// Keys in the store the scan benchmarks walk.
const SCAN_KEYS: u64 = 1_000_000;

/// Every key through `scan`, `count` per call; returns how many.
fn full_scan(store: &Store, count: usize) -> usize {
    let (mut n, mut cursor) = (0, Some(Cursor::START));
    while let Some(c) = cursor {
        let page = store.scan(c, count).unwrap();
        n += page.keys.len();
        cursor = page.next;
    }
    n
}

fn bench_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SCAN_KEYS));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never, 64 << 20, 0)).unwrap();
    let mut batch = WriteBatch::new();
    for i in 0..SCAN_KEYS {
        batch.put(key(i), i.to_le_bytes());
        if batch.len() == 10_000 {
            store.write_batch(&batch).unwrap();
            batch = WriteBatch::new();
        }
    }
    group.bench_function("baseline_entries_since_0", |b| {
        b.iter(|| match store.entries_since(0, usize::MAX).unwrap() {
            kv_storage::Since::Entries(e) => assert_eq!(e.len() as u64, SCAN_KEYS),
            kv_storage::Since::Snapshot { .. } => unreachable!(),
        })
    });
    for count in [10usize, 100, 1000] {
        group.bench_function(format!("keys_count_{count}"), |b| {
            b.iter(|| assert_eq!(full_scan(&store, count) as u64, SCAN_KEYS))
        });
    }
    group.bench_function("iter_with_values_cold", |b| {
        b.iter(|| assert_eq!(store.iter().with_values().count() as u64, SCAN_KEYS))
    });
    group.finish();
}

fn bench_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch");
    group.sample_size(10);
    for (sync, name, ops) in [
        (SyncPolicy::Never, "never", 64u64),
        (SyncPolicy::Always, "always", 16),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), options(sync, 64 << 20, 0)).unwrap();
        let value = incompressible(VALUE_BYTES, 4);
        let mut i = 0u64;
        group.throughput(Throughput::Elements(ops));
        group.bench_function(format!("{name}_baseline_single_puts_x{ops}"), |b| {
            b.iter(|| {
                for _ in 0..ops {
                    i += 1;
                    store.put(&key(i), &value).unwrap();
                }
            })
        });
        group.bench_function(format!("{name}_write_batch_x{ops}"), |b| {
            b.iter(|| {
                let mut batch = WriteBatch::new();
                for _ in 0..ops {
                    i += 1;
                    batch.put(key(i), &value);
                }
                store.write_batch(&batch).unwrap()
            })
        });
    }
    group.finish();
}

/// Median over `rounds` of (time of `block` calls of `f(true)`) / (time of
/// `block` calls of `f(false)`, the baseline), the two run alternately so
/// that the machine's load drifts over both alike.
fn interleaved_ratio(rounds: usize, block: usize, mut f: impl FnMut(bool)) -> f64 {
    let mut time = |test: bool| {
        let started = Instant::now();
        (0..block).for_each(|_| f(test));
        started.elapsed().as_secs_f64()
    };
    // Alternate which goes first, so neither always runs warmer.
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|round| match round % 2 {
            0 => {
                let base = time(false);
                time(true) / base
            }
            _ => {
                let test = time(true);
                test / time(false)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[rounds / 2]
}

/// An expiry far in the future (a day).
const LATER: Expiry = Expiry::After(Duration::from_secs(86_400));

/// The cost of an expiry on put and hot get: each case next to its
/// baseline without one, same store, same run; then the same pairs timed
/// alternately (`interleaved_ratio`), which the machine's noise bothers
/// least.
fn bench_ttl(c: &mut Criterion) {
    let mut group = c.benchmark_group("ttl");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    let value = incompressible(VALUE_BYTES, 5);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never, 64 << 20, 256 << 20)).unwrap();
    // Half the keys with an expiry, so every shard holds expiring keys and
    // a key without one still pays for the lookup beside the table.
    for k in 0..READ_KEYS {
        match k % 2 {
            0 => store.put(&key(k), &value).map(drop),
            _ => store.put_with_expiry(&key(k), &value, LATER).map(drop),
        }
        .unwrap();
    }
    let mut rng = rand::rngs::SmallRng::seed_from_u64(8);
    let mut get = |parity: u64| {
        let k = rng.random_range(0..READ_KEYS / 2) * 2 + parity;
        store.get(&key(k)).unwrap().unwrap()
    };
    for (name, parity) in [("get_hot_baseline_no_ttl", 0), ("get_hot_with_ttl", 1)] {
        group.bench_function(name, |b| b.iter(|| get(parity)));
    }
    let get_ratio = interleaved_ratio(41, 20_000, |ttl| drop(get(u64::from(ttl))));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options(SyncPolicy::Never, 64 << 20, 256 << 20)).unwrap();
    let mut i = 0u64;
    let mut put = |ttl: bool| {
        i += 1;
        match ttl {
            false => store.put(&key(i), &value),
            true => store.put_with_expiry(&key(i), &value, LATER),
        }
        .unwrap()
    };
    group.bench_function("put_baseline_no_ttl", |b| b.iter(|| put(false)));
    group.bench_function("put_with_ttl", |b| b.iter(|| put(true)));
    group.finish();
    let put_ratio = interleaved_ratio(41, 5_000, |ttl| {
        put(ttl);
    });
    println!("ttl/get_hot interleaved: with ttl / without = {get_ratio:.3} (median of 41 rounds)");
    println!("ttl/put interleaved: with ttl / without = {put_ratio:.3} (median of 41 rounds)");
}

/// Active expiry: `expire_due(1000)` deleting 1000 due keys per call, among
/// 100k keys that are not due yet.
fn bench_active_expiry(c: &mut Criterion) {
    const PER_CALL: u64 = 1000;
    let mut group = c.benchmark_group("active_expiry");
    group.sample_size(20);
    group.throughput(Throughput::Elements(PER_CALL));
    let now = Arc::new(AtomicU64::new(1_000_000));
    let clock_now = now.clone();
    let opts = Options {
        clock: Clock::from_fn(move || clock_now.load(Ordering::Relaxed)),
        ..options(SyncPolicy::Never, 64 << 20, 64 << 20)
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts).unwrap();
    let value = incompressible(VALUE_BYTES, 6);
    for k in 0..READ_KEYS {
        store.put_with_expiry(&key(k), &value, LATER).unwrap();
    }
    let mut next = READ_KEYS;
    group.bench_function("expire_due_x1000", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let past = Expiry::At(now.load(Ordering::Relaxed) - 1);
                for k in next..next + PER_CALL {
                    store.put_with_expiry(&key(k), &value, past).unwrap();
                }
                next += PER_CALL;
                let started = Instant::now();
                let deleted = store.expire_due(PER_CALL as usize).unwrap();
                spent += started.elapsed();
                assert_eq!(deleted.len() as u64, PER_CALL);
            }
            spent
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500));
    targets = bench_put, bench_get, bench_durable, bench_open, bench_compaction, bench_scan,
        bench_batch, bench_ttl, bench_active_expiry
}
criterion_main!(benches);

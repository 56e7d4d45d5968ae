//! Scans racing writers and compaction: every key present for the whole scan
//! is returned at least once (Redis SCAN's guarantee), and a scan's pages
//! stay small.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{key, tiny, value};
use kv_storage::{Cursor, Store};

/// Keys 0..STABLE are present throughout; writers churn other keys and
/// overwrite the stable ones (an overwrite keeps a key present).
const STABLE: u64 = 3_000;
const CHURN: u64 = 2_000;

/// Runs a full scan, `count` per page, calling `between` after every page.
fn full_scan(store: &Store, count: usize, mut between: impl FnMut()) -> HashSet<Vec<u8>> {
    let (mut seen, mut cursor) = (HashSet::new(), Some(Cursor::START));
    while let Some(c) = cursor {
        let page = store.scan(c, count).unwrap();
        assert!(page.keys.len() <= count + 4, "page of {}", page.keys.len());
        seen.extend(page.keys.iter().map(|k| k.to_vec()));
        cursor = page.next;
        between();
    }
    seen
}

fn assert_all_stable_seen(seen: &HashSet<Vec<u8>>) {
    let missing: Vec<u64> = (0..STABLE).filter(|i| !seen.contains(&key(*i))).collect();
    assert!(
        missing.is_empty(),
        "missed {} keys: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

fn seeded_store(dir: &std::path::Path) -> Arc<Store> {
    let store = Store::open(dir, tiny(32 * 1024, 1 << 20)).unwrap();
    for i in 0..STABLE {
        store.put(&key(i), &value(i, 0)).unwrap();
    }
    Arc::new(store)
}

/// Inserts, overwrites and deletes until `stop`, touching only churn keys
/// (inserted and deleted) and stable keys (overwritten).
fn churn(store: &Store, stop: &AtomicBool, seed: u64) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) && round < 200 {
        for j in 0..CHURN / 10 {
            let c = STABLE + (seed * 7919 + round * 31 + j) % CHURN;
            store.put(&key(c), &value(c, round)).unwrap();
            store.delete(&key(STABLE + (c + 13) % CHURN)).unwrap();
            store
                .put(&key((c * 17) % STABLE), &value(c, round))
                .unwrap();
        }
        round += 1;
    }
}

#[test]
fn scan_during_concurrent_writes_misses_no_stable_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded_store(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|seed| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || churn(&store, &stop, seed))
        })
        .collect();
    for count in [1, 10, 100] {
        let seen = full_scan(&store, count, std::thread::yield_now);
        assert_all_stable_seen(&seen);
    }
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
}

#[test]
fn scan_during_compaction_and_growth_misses_no_stable_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded_store(dir.path());
    let mut page = 0;
    let mut next_new = STABLE + CHURN;
    let seen = full_scan(&store, 25, || {
        page += 1;
        // Overwrites make garbage; compaction moves every live record; new
        // keys make the key directory split its tables under the scan.
        for i in 0..40 {
            store.put(&key((page * 40 + i) % STABLE), b"moved").unwrap();
            // Bounded, so the scan catches up and ends.
            if next_new < STABLE + CHURN + 6_000 {
                store.put(&key(next_new), b"new").unwrap();
                next_new += 1;
            }
        }
        if page % 5 == 0 {
            store.compact().unwrap();
        }
    });
    assert!(store.stats().compactions > 0);
    assert_all_stable_seen(&seen);
}

#[test]
fn iter_with_values_reads_current_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded_store(dir.path());
    let mut n = 0;
    for pair in store.iter().with_values() {
        let (k, v) = pair.unwrap();
        let i: u64 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
        assert_eq!(v, value(i, 0));
        n += 1;
    }
    assert_eq!(n, STABLE);
}

#[test]
fn scan_of_a_closed_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = seeded_store(dir.path());
    store.shutdown().unwrap();
    assert!(matches!(
        store.scan(Cursor::START, 10),
        Err(kv_storage::Error::Closed)
    ));
    let mut it = store.iter();
    assert!(matches!(it.next(), Some(Err(kv_storage::Error::Closed))));
    assert!(it.next().is_none());
}

#[test]
fn a_scan_with_values_leaves_the_hot_cache_alone_and_a_get_fills_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(1 << 20, 1 << 20);
    {
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        for i in 0..200 {
            store.put(&key(i), &value(i, 1)).unwrap();
        }
        store.close().unwrap();
    }
    // Reopened: nothing is hot; every value is on disk.
    let store = Store::open(dir.path(), opts).unwrap();
    assert_eq!(store.stats().hot_keys, 0);
    let pairs: Vec<_> = store
        .iter()
        .with_values()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pairs.len(), 200);
    for (k, v) in &pairs {
        assert_eq!(store.peek(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(
        store.stats().hot_keys,
        0,
        "one pass over the store caches nothing"
    );
    assert_eq!(store.get(&key(7)).unwrap().unwrap(), value(7, 1));
    assert_eq!(store.stats().hot_keys, 1, "a get still fills the cache");
}

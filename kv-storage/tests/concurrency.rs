//! Threads: concurrent readers and writers, and group commit.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{key, open, tiny};
use kv_storage::{HotCache, Options, Store, SyncPolicy};

/// Value of `key` version `v`: the version, then filler that depends on both.
fn versioned(i: u64, v: u64) -> Vec<u8> {
    let mut out = v.to_le_bytes().to_vec();
    out.extend(std::iter::repeat_n((i * 31 + v) as u8, (i % 40) as usize));
    out
}

fn version_of(i: u64, bytes: &[u8]) -> u64 {
    let v = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    assert_eq!(
        bytes,
        &versioned(i, v)[..],
        "torn or foreign value for key {i}"
    );
    v
}

#[test]
fn readers_and_writers_run_together_and_readers_see_monotonic_versions() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        hot_cache: Some(HotCache::new(32 * 1024)),
        ..tiny(16 * 1024, 0)
    };
    let store = Arc::new(open(dir.path(), &opts));
    const KEYS_PER_WRITER: u64 = 50;
    const WRITERS: u64 = 3;
    const VERSIONS: u64 = 60;
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for v in 1..=VERSIONS {
                    for i in w * KEYS_PER_WRITER..(w + 1) * KEYS_PER_WRITER {
                        store.put(&key(i), &versioned(i, v)).unwrap();
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let total = WRITERS * KEYS_PER_WRITER;
                let mut seen = vec![0u64; total as usize];
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let i = (reads * 7 + r) % total;
                    if let Some(bytes) = store.get(&key(i)).unwrap() {
                        let v = version_of(i, &bytes);
                        assert!(v >= seen[i as usize], "key {i} went back in time");
                        seen[i as usize] = v;
                    }
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let compactor = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                store.compact().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    compactor.join().unwrap();
    for i in 0..WRITERS * KEYS_PER_WRITER {
        let bytes = store.get(&key(i)).unwrap().unwrap();
        assert_eq!(version_of(i, &bytes), VERSIONS);
    }
    assert_eq!(store.last_lsn(), WRITERS * KEYS_PER_WRITER * VERSIONS);
}

#[test]
fn group_commit_shares_fsyncs_between_writers() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sync: SyncPolicy::Always,
        ..tiny(64 << 20, 0)
    };
    let store = Arc::new(open(dir.path(), &opts));
    const THREADS: u64 = 16;
    const PUTS: u64 = 40;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..PUTS {
                    store.put(&key(t * PUTS + i), b"durable").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.writes, THREADS * PUTS);
    assert!(stats.syncs >= 1);
    assert!(
        stats.syncs < THREADS * PUTS,
        "{} fsyncs for {} writes: no group commit",
        stats.syncs,
        stats.writes
    );
    drop(store);
    let store = Store::open(dir.path(), opts).unwrap();
    assert_eq!(store.len() as u64, THREADS * PUTS);
}

#[test]
fn always_syncs_each_lone_write_and_never_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let always = Options {
        sync: SyncPolicy::Always,
        ..tiny(64 << 20, 0)
    };
    let store = open(dir.path(), &always);
    for i in 0..10 {
        store.put(&key(i), b"v").unwrap();
    }
    assert_eq!(store.stats().syncs, 10);
    drop(store);
    let never = tiny(64 << 20, 0);
    let store = open(dir.path(), &never);
    for i in 0..10 {
        store.put(&key(i), b"v").unwrap();
    }
    assert_eq!(store.stats().syncs, 0);
    store.sync().unwrap();
    assert_eq!(store.stats().syncs, 1);
    store.sync().unwrap();
    assert_eq!(store.stats().syncs, 1, "nothing new to sync");
}

#[test]
fn interval_policy_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        sync: SyncPolicy::Interval(std::time::Duration::from_millis(10)),
        ..tiny(64 << 20, 0)
    };
    let store = open(dir.path(), &opts);
    store.put(b"k", b"v").unwrap();
    let mut synced = false;
    for _ in 0..200 {
        if store.stats().syncs > 0 {
            synced = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(synced, "the interval thread never synced");
}

#[test]
fn a_failed_fsync_poisons_the_store_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let always = Options {
        sync: SyncPolicy::Always,
        ..tiny(64 << 20, 0)
    };
    let store = open(dir.path(), &always);
    store.put(b"before", b"1").unwrap();
    store.fail_next_sync();
    let err = store.put(b"failed", b"2").unwrap_err();
    // Applied but not durable: the caller cannot know whether it survives.
    let kv_storage::Error::NotDurable { source } = &err else {
        panic!("{err}");
    };
    assert!(matches!(**source, kv_storage::Error::Io { .. }), "{err}");
    assert!(matches!(
        store.put(b"after", b"3"),
        Err(kv_storage::Error::Poisoned)
    ));
    assert!(matches!(
        store.delete(b"before"),
        Err(kv_storage::Error::Poisoned)
    ));
    assert!(matches!(store.sync(), Err(kv_storage::Error::Poisoned)));
    assert!(store.stats().poisoned);
    // Reads keep working; acknowledged data is intact.
    assert_eq!(store.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    drop(store);
    let store = open(dir.path(), &always);
    assert!(!store.stats().poisoned);
    assert_eq!(store.get(b"before").unwrap().as_deref(), Some(&b"1"[..]));
    store.put(b"after", b"3").unwrap();

    // The same through an explicit sync under another policy.
    let never = tiny(64 << 20, 0);
    drop(store);
    let store = open(dir.path(), &never);
    store.put(b"k", b"v").unwrap();
    store.fail_next_sync();
    assert!(store.sync().is_err());
    assert!(matches!(
        store.put(b"k", b"v"),
        Err(kv_storage::Error::Poisoned)
    ));
}

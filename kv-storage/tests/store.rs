//! Basic behaviour of the public API against real files.

mod common;

use common::{files_with_ext, key, open, tiny, value};
use kv_storage::{Error, HotCache, Location, Options, Store};

#[test]
fn put_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(1 << 20, 1 << 20);
    let store = open(dir.path(), &opts);
    assert!(store.is_empty());
    assert_eq!(store.put(b"a", b"1").unwrap().lsn, 1);
    assert_eq!(store.put(b"b", b"2").unwrap().lsn, 2);
    assert_eq!(store.put(b"a", b"3").unwrap().lsn, 3);
    assert_eq!(
        store
            .delete(b"b")
            .unwrap()
            .map(|d| (d.position.lsn, d.live)),
        Some((4, true))
    );
    assert_eq!(
        store.delete(b"b").unwrap(),
        None,
        "absent key writes nothing"
    );
    assert_eq!(store.last_lsn(), 4);
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.len(), 1);
    store.close().unwrap();

    let store = open(dir.path(), &opts);
    assert_eq!(
        store.location(b"a"),
        Location::Cold,
        "nothing cached after reopen"
    );
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(
        store.location(b"a"),
        Location::Hot,
        "a read fills the cache"
    );
    assert_eq!(store.get(b"b").unwrap(), None);
    assert_eq!(store.last_lsn(), 4);
    assert_eq!(store.len(), 1);
    assert_eq!(store.put(b"c", b"").unwrap().lsn, 5);
    assert_eq!(store.get(b"c").unwrap().as_deref(), Some(&b""[..]));
}

#[test]
fn many_keys_across_many_segments_survive_reopen_with_and_without_hints() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(512, 4096);
    let store = open(dir.path(), &opts);
    for round in 0..3 {
        for i in 0..300 {
            store.put(&key(i), &value(i, round)).unwrap();
        }
    }
    for i in (0..300).step_by(3) {
        store.delete(&key(i)).unwrap();
    }
    let check = |store: &Store| {
        for i in 0..300 {
            let want = (i % 3 != 0).then(|| value(i, 2));
            assert_eq!(
                store.get(&key(i)).unwrap().map(|b| b.to_vec()),
                want,
                "key {i}"
            );
        }
        assert_eq!(store.len(), 200);
        assert_eq!(store.last_lsn(), 1000);
    };
    check(&store);
    store.close().unwrap();
    assert!(files_with_ext(dir.path(), "log").len() > 10);
    assert!(
        !files_with_ext(dir.path(), "hint").is_empty(),
        "close writes pending hints"
    );

    let store = open(dir.path(), &opts);
    check(&store);
    assert_eq!(store.stats().hint_fallbacks, 0);
    drop(store);
    for hint in files_with_ext(dir.path(), "hint") {
        std::fs::remove_file(hint).unwrap();
    }
    let store = open(dir.path(), &opts);
    check(&store);
}

#[test]
fn size_limits_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        max_key_bytes: 8,
        max_value_bytes: 16,
        ..tiny(1 << 20, 0)
    };
    let store = open(dir.path(), &opts);
    let err = store.put(&[0; 9], b"v").unwrap_err();
    assert!(
        matches!(err, Error::KeyTooLarge { len: 9, max: 8 }),
        "{err}"
    );
    let err = store.put(b"k", &[0; 17]).unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { len: 17, max: 16 }),
        "{err}"
    );
    assert!(matches!(
        store.delete(&[0; 9]),
        Err(Error::KeyTooLarge { .. })
    ));
    store.put(&[0; 8], &[0; 16]).unwrap();
    assert_eq!(store.last_lsn(), 1);
}

#[test]
fn invalid_options_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_bytes: 2 << 30,
        ..Options::default()
    };
    assert!(matches!(
        Store::open(dir.path(), opts),
        Err(Error::InvalidOptions { .. })
    ));
}

#[test]
fn directory_lock_prevents_a_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(1 << 20, 0);
    let store = open(dir.path(), &opts);
    let err = Store::open(dir.path(), opts.clone()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    drop(store);
    open(dir.path(), &opts);
}

#[test]
fn begun_epoch_is_persisted_and_never_regresses() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(1 << 20, 0);
    let store = open(dir.path(), &opts);
    assert_eq!(store.epoch(), 0);
    assert_eq!(store.begin_epoch(3).unwrap(), 1);
    for requested in [3, 2] {
        let err = store.begin_epoch(requested).unwrap_err();
        assert!(
            matches!(err, Error::EpochRegression { current: 3, requested: r } if r == requested),
            "{err}"
        );
    }
    let pos = store.put(b"k", b"v").unwrap();
    assert_eq!((pos.epoch, pos.lsn), (3, 1));
    drop(store);
    let store = open(dir.path(), &opts);
    assert_eq!(store.epoch(), 3);
    assert_eq!(store.last_position(), pos);
    assert_eq!(store.epoch_history(), vec![(3, 1)]);
    assert!(matches!(
        store.begin_epoch(1),
        Err(Error::EpochRegression { .. })
    ));
}

#[test]
fn location_and_hot_keys_follow_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 1 << 20));
    store.put(b"b", b"2").unwrap();
    store.put(b"a", b"1").unwrap();
    assert_eq!(store.location(b"a"), Location::Hot);
    assert_eq!(store.location(b"zz"), Location::Missing);
    assert_eq!(store.hot_keys(), vec![&b"a"[..], &b"b"[..]]);
    store.delete(b"a").unwrap();
    assert_eq!(store.location(b"a"), Location::Missing);
    assert_eq!(store.hot_keys(), vec![&b"b"[..]]);
    let stats = store.stats();
    assert_eq!((stats.keys, stats.hot_keys, stats.last_lsn), (1, 1, 3));
}

#[test]
fn zero_cache_reads_cold_and_reads_fill_a_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    store.put(b"k", b"v").unwrap();
    assert_eq!(store.location(b"k"), Location::Cold);
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(store.location(b"k"), Location::Cold);
    store.close().unwrap();

    let store = open(dir.path(), &tiny(1 << 20, 1 << 20));
    assert_eq!(store.location(b"k"), Location::Cold);
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(store.location(b"k"), Location::Hot);
    let stats = store.stats();
    assert_eq!((stats.cache_misses, stats.cache_hits), (1, 0));
}

#[test]
fn a_shared_cache_stays_within_its_budget() {
    let cache = HotCache::new(64 * 1024);
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let stores: Vec<Store> = dirs
        .iter()
        .map(|d| {
            let opts = Options {
                hot_cache: Some(cache.clone()),
                ..tiny(1 << 20, 0)
            };
            open(d.path(), &opts)
        })
        .collect();
    for i in 0..2000 {
        stores[(i % 3) as usize].put(&key(i), &[7; 100]).unwrap();
    }
    assert!(cache.used_bytes() <= cache.capacity_bytes());
    let hot: u64 = stores.iter().map(|s| s.stats().hot_bytes).sum();
    assert_eq!(hot, cache.used_bytes());
    assert!(stores.iter().all(|s| s.stats().hot_keys > 0));
    drop(stores);
    assert_eq!(cache.used_bytes(), 0, "closing a store releases its share");
}

#[test]
fn closed_store_refuses_operations() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    store.put(b"k", b"v").unwrap();
    store.shutdown().unwrap();
    store.shutdown().unwrap();
    assert!(matches!(store.put(b"k", b"v"), Err(Error::Closed)));
    assert!(matches!(store.get(b"k"), Err(Error::Closed)));
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Store>();
    assert_send_sync::<HotCache>();
}

/// `write_is_quick` says no when the write would roll the active segment
/// (a roll fsyncs and creates files) or wait for the writer lock, and yes
/// again once the new segment has room.
#[test]
fn a_write_is_quick_only_when_it_fits_and_the_writer_is_free() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(64 * 1024, 0));
    let payload = key(0).len() + 100;
    assert!(store.write_is_quick(10, 10 * payload));
    assert!(!store.write_is_quick(1, 64 * 1024), "would not fit");
    // Fill the active segment until it says one more record may not fit.
    let mut i = 0;
    while store.write_is_quick(1, payload) {
        assert!(i < 1000, "still quick after {i} records in 64 KiB");
        store.put(&key(i), &[b'v'; 100]).unwrap();
        i += 1;
    }
    let segments = store.stats().segments;
    assert!(i > 100, "{i} records filled 64 KiB");
    // The answer is conservative (it assumes the longest record header):
    // at most one more record fits, the one after rolls.
    for j in i..i + 2 {
        store.put(&key(j), &[b'v'; 100]).unwrap();
    }
    assert!(store.stats().segments > segments, "a write rolled");
    assert!(store.write_is_quick(1, payload), "the new segment has room");
    let held = store.hold_writer();
    assert!(!store.write_is_quick(1, payload), "the writer lock is held");
    drop(held);
}

/// With `cache_writes` off a put leaves the value on disk only (and drops
/// an older cached value of its key); a read brings it into the cache.
#[test]
fn without_cache_writes_only_reads_fill_the_hot_cache() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        cache_writes: false,
        ..tiny(1 << 20, 1 << 20)
    };
    let store = open(dir.path(), &opts);
    store.put(b"a", b"one").unwrap();
    assert_eq!(store.location(b"a"), Location::Cold);
    assert_eq!(store.stats().hot_keys, 0);
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(store.location(b"a"), Location::Hot, "the read cached it");
    store.put(b"a", b"two").unwrap();
    assert_eq!(store.location(b"a"), Location::Cold, "the old value left");
    assert_eq!(store.stats().hot_keys, 0);
    assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(store.location(b"a"), Location::Hot);
    // The default caches every write.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 1 << 20));
    store.put(b"a", b"one").unwrap();
    assert_eq!(store.location(b"a"), Location::Hot);
}

//! Compaction: space is reclaimed, data is kept, and a crash (simulated by
//! stopping at each fault point) loses or resurrects nothing.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{files_with_ext, key, open, tiny, value};
use kv_storage::{CompactionPolicy, Error, FaultPoint, Options, Store};

type Model = BTreeMap<u64, Vec<u8>>;

const KEYS: u64 = 40;

/// Overwrites and deletes spread over many small segments. Keys 0, 5, 10..
/// are deleted in a later segment than their last value (the resurrection
/// trap); keys 3, 13, .. are deleted and written again.
fn churn(store: &Store, model: &mut Model) {
    for round in 0..4 {
        for i in 0..KEYS {
            store.put(&key(i), &value(i, round)).unwrap();
            model.insert(i, value(i, round));
        }
    }
    for i in (0..KEYS).step_by(5) {
        store.delete(&key(i)).unwrap();
        model.remove(&i);
    }
    for i in (3..KEYS).step_by(10) {
        store.delete(&key(i)).unwrap();
        store.put(&key(i), &value(i, 9)).unwrap();
        model.insert(i, value(i, 9));
    }
}

fn check(store: &Store, model: &Model) {
    for i in 0..KEYS + 20 {
        let got = store.get(&key(i)).unwrap().map(|v| v.to_vec());
        assert_eq!(got.as_ref(), model.get(&i), "key {i}");
    }
    assert_eq!(store.len(), model.len());
}

#[test]
fn compaction_reclaims_space_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(600, 2048);
    let store = open(dir.path(), &opts);
    let mut model = Model::new();
    churn(&store, &mut model);
    let last = store.last_lsn();
    let before = store.stats();
    let result = store.compact().unwrap();
    let after = store.stats();
    assert!(result.input_segments > 1);
    assert!(result.records > 0 && result.records <= model.len() as u64);
    assert!(result.reclaimed_bytes > 0);
    assert!(after.disk_bytes < before.disk_bytes);
    assert_eq!(after.compactions, 1);
    assert!(after.history_floor > 0);
    assert_eq!(store.last_lsn(), last);
    check(&store, &model);
    // A second compaction right away has little or nothing to do.
    store.compact().unwrap();
    check(&store, &model);
    store.close().unwrap();
    let store = open(dir.path(), &opts);
    check(&store, &model);
    assert_eq!(store.last_lsn(), last);
    assert_eq!(store.stats().hint_fallbacks, 0);
}

#[test]
fn last_lsn_survives_when_the_newest_records_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(200, 0);
    let store = open(dir.path(), &opts);
    for i in 0..10 {
        store.put(&key(i), &value(i, 0)).unwrap();
    }
    for i in 0..10 {
        store.delete(&key(i)).unwrap();
    }
    let last = store.last_position();
    // Roll so every tombstone is sealed, then merge: nothing live remains.
    store.put(b"filler", &[0; 190]).unwrap();
    store.delete(b"filler").unwrap();
    store.put(b"roll", &[0; 190]).unwrap();
    store.delete(b"roll").unwrap();
    let last_after = store.last_position();
    store.compact().unwrap();
    assert!(store.is_empty());
    assert_eq!(store.last_position(), last_after);
    drop(store);
    let store = open(dir.path(), &opts);
    assert!(store.is_empty());
    assert_eq!(store.last_position(), last_after);
    assert!(last_after > last);
    assert_eq!(store.put(b"k", b"v").unwrap().lsn, last_after.lsn + 1);
}

#[test]
fn a_crash_at_every_compaction_step_loses_nothing_and_resurrects_nothing() {
    for point in FaultPoint::ALL {
        let dir = tempfile::tempdir().unwrap();
        let opts = tiny(600, 0);
        let store = open(dir.path(), &opts);
        let mut model = Model::new();
        churn(&store, &mut model);
        // A first, complete compaction leaves values in a compacted segment
        // whose id is higher than the log segments written next; deleting
        // those keys now puts their tombstones in lower-numbered segments.
        store.compact().unwrap();
        for i in (1..KEYS).step_by(4) {
            store.delete(&key(i)).unwrap();
            model.remove(&i);
        }
        store.put(b"roll", &[1; 600]).unwrap();
        store.delete(b"roll").unwrap();
        let last = store.last_lsn();
        let err = store.compact_until(point).unwrap_err();
        assert!(
            matches!(err, Error::FaultInjected(p) if p == point),
            "{err}"
        );
        assert!(matches!(store.put(b"x", b"y"), Err(Error::Closed)));
        drop(store);

        let store = open(dir.path(), &opts);
        check(&store, &model);
        assert_eq!(store.last_lsn(), last, "{point:?}");
        // A crash right after step 0 leaves a sealed segment without a hint,
        // which the reopened store writes in the background (through a
        // `.tmp` file of its own): wait for that, then look for leftovers.
        store.write_pending_hints().unwrap();
        assert!(files_with_ext(dir.path(), "tmp").is_empty(), "{point:?}");
        assert!(files_with_ext(dir.path(), "marker").is_empty());
        // Finish the job and check again, across another reopen.
        store.compact().unwrap();
        check(&store, &model);
        store.put(&key(1), b"new").unwrap();
        model.insert(1, b"new".to_vec());
        store.close().unwrap();
        let store = open(dir.path(), &opts);
        check(&store, &model);
    }
}

#[test]
fn readers_and_writers_keep_going_during_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), &tiny(4096, 8192)));
    let mut model = Model::new();
    churn(&store, &mut model);
    let stop = Arc::new(AtomicBool::new(false));
    let compactor = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) || runs < 3 {
                store.compact().unwrap();
                runs += 1;
            }
            runs
        })
    };
    // Writer: keys KEYS.. get versions; reader checks stable keys meanwhile.
    for v in 0..30 {
        for i in KEYS..KEYS + 20 {
            store.put(&key(i), &value(i, v)).unwrap();
            assert_eq!(store.get(&key(i)).unwrap().unwrap(), value(i, v));
        }
        for i in 0..KEYS {
            let got = store.get(&key(i)).unwrap().map(|b| b.to_vec());
            assert_eq!(got.as_ref(), model.get(&i));
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(compactor.join().unwrap() >= 3);
    for i in KEYS..KEYS + 20 {
        assert_eq!(store.get(&key(i)).unwrap().unwrap(), value(i, 29));
    }
    let store = Arc::into_inner(store).unwrap();
    store.close().unwrap();
    let store = open(dir.path(), &tiny(4096, 0));
    for i in KEYS..KEYS + 20 {
        model.insert(i, value(i, 29));
    }
    check(&store, &model);
}

fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    false
}

#[test]
fn automatic_compaction_runs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        compaction: CompactionPolicy::Auto {
            min_garbage_ratio: 0.3,
            min_sealed_segments: 2,
        },
        ..tiny(600, 0)
    };
    let store = open(dir.path(), &opts);
    let mut model = Model::new();
    churn(&store, &mut model);
    assert!(
        wait_for(|| store.stats().compactions > 0),
        "no background compaction"
    );
    check(&store, &model);
    assert_eq!(store.stats().background_errors, 0);
}

fn disk_bytes(dir: &Path) -> u64 {
    files_with_ext(dir, "log")
        .into_iter()
        .chain(files_with_ext(dir, "hint"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn stats_disk_bytes_match_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(600, 0));
    let mut model = Model::new();
    churn(&store, &mut model);
    store.compact().unwrap();
    store.write_pending_hints().unwrap();
    // The active segment counts up to its last record; its file is pre-sized
    // beyond that while open and cut back on close.
    let stats = store.stats();
    store.close().unwrap();
    assert_eq!(stats.disk_bytes, disk_bytes(dir.path()));
}

#[test]
fn compaction_with_nothing_dead_rewrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(600, 2048);
    let store = open(dir.path(), &opts);
    // Distinct keys only: several sealed segments, no dead record.
    for i in 0..KEYS {
        store.put(&key(i), &value(i, 0)).unwrap();
    }
    let segments = files_with_ext(dir.path(), "log");
    assert!(segments.len() > 2, "{segments:?}");
    let result = store.compact().unwrap();
    assert_eq!(result.input_segments, 0, "{result:?}");
    assert_eq!(result.records, 0);
    assert_eq!(files_with_ext(dir.path(), "log"), segments);
    // One overwrite makes a dead record: now there is work to do.
    store.put(&key(0), &value(0, 1)).unwrap();
    for i in KEYS..KEYS + 10 {
        store.put(&key(i), &value(i, 0)).unwrap();
    }
    // Count the inputs' hints too (the background thread may not have
    // written them yet), so the outputs' hints do not outweigh the gain.
    store.write_pending_hints().unwrap();
    let result = store.compact().unwrap();
    assert!(result.input_segments > 0, "{result:?}");
    assert!(result.reclaimed_bytes > 0, "{result:?}");
    assert_eq!(
        store.get(&key(0)).unwrap().as_deref(),
        Some(&value(0, 1)[..])
    );
}

/// Writes `keys` keys of `value_bytes` bytes, `rounds` times each (the last
/// round's values survive), and deletes every tenth key; returns the model.
fn overwrite(store: &Store, keys: u64, value_bytes: usize, rounds: u64) -> Model {
    let mut model = Model::new();
    for round in 0..rounds {
        for i in 0..keys {
            let mut v = value(i, round);
            v.resize(value_bytes, b'.');
            store.put(&key(i), &v).unwrap();
            model.insert(i, v);
        }
    }
    for i in (0..keys).step_by(10) {
        store.delete(&key(i)).unwrap();
        model.remove(&i);
    }
    model
}

fn check_pairs(store: &Store, model: &Model) {
    assert_eq!(store.len(), model.len());
    for (i, v) in model {
        assert_eq!(store.get(&key(*i)).unwrap().as_deref(), Some(&v[..]));
    }
}

/// Step 0 of compaction: garbage in the active segment is reclaimed, for a
/// store smaller than one segment and for the newest segment of a larger
/// one, whatever the value size. Without sealing the active segment first,
/// the small stores reclaim nothing (every ratio is about `rounds`).
#[test]
fn compaction_reclaims_garbage_in_the_active_segment() {
    // (segment bytes, keys, value bytes, rounds)
    let cases = [
        (1 << 20, 300, 1000, 8),    // all in one (active) segment
        (64 << 10, 300, 1000, 8),   // many segments, the newest with garbage
        (1 << 20, 2000, 100, 6),    // small values
        (4 << 20, 20, 100_000, 10), // large values
    ];
    for (segment_bytes, keys, value_bytes, rounds) in cases {
        let dir = tempfile::tempdir().unwrap();
        let opts = tiny(segment_bytes, 0);
        let store = open(dir.path(), &opts);
        let model = overwrite(&store, keys, value_bytes, rounds);
        let last = store.last_lsn();
        let result = store.compact().unwrap();
        let stats = store.stats();
        // Every record of the store is an input; the active one is new.
        assert!(result.reclaimed_bytes > 0, "{result:?}");
        assert_eq!(stats.history_floor, last);
        let logical: u64 = model
            .iter()
            .map(|(i, v)| (key(*i).len() + v.len()) as u64)
            .sum();
        let ratio = stats.disk_bytes as f64 / logical as f64;
        let case = format!("{segment_bytes} B segments, {value_bytes} B values: {ratio:.3}");
        // Record headers and hint entries: ~1.03× at 1000-byte values.
        let bound = if value_bytes >= 1000 { 1.1 } else { 1.4 };
        assert!(ratio <= bound, "disk / logical after compact(), {case}");
        check_pairs(&store, &model);
        store.close().unwrap();
        let store = open(dir.path(), &opts);
        check_pairs(&store, &model);
        assert_eq!(store.last_lsn(), last);
        assert!(store.stats().disk_bytes <= stats.disk_bytes, "{case}");
    }
}

/// Step 0 is skipped when the active segment holds no garbage (nothing to
/// gain) or holds history above the retention watermark (it would not be an
/// input once sealed): no new segment, and that history stays readable.
#[test]
fn compaction_leaves_the_active_segment_without_garbage_or_above_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    for i in 0..50 {
        store.put(&key(i), &value(i, 0)).unwrap();
    }
    let segments = files_with_ext(dir.path(), "log");
    assert_eq!(store.compact().unwrap().input_segments, 0);
    assert_eq!(files_with_ext(dir.path(), "log"), segments);
    // Garbage now, but a follower still needs everything after LSN 10.
    let model = overwrite(&store, 50, 20, 2);
    store.set_retention(Some(10));
    assert_eq!(store.compact().unwrap().input_segments, 0);
    assert_eq!(files_with_ext(dir.path(), "log"), segments);
    assert_eq!(store.stats().history_floor, 0);
    let kv_storage::Since::Entries(entries) = store.entries_since(10, 1000).unwrap() else {
        panic!("history above the watermark was compacted away");
    };
    assert_eq!(entries.len() as u64, store.last_lsn() - 10);
    // Once the follower has caught up, the garbage goes.
    store.set_retention(Some(store.last_lsn()));
    assert!(store.compact().unwrap().reclaimed_bytes > 0);
    check_pairs(&store, &model);
}

/// Keys that expired while their only records are in the active segment
/// are dropped by an explicit compaction too (no dead record is needed).
#[test]
fn compaction_drops_expired_keys_of_the_active_segment() {
    let now = Arc::new(std::sync::atomic::AtomicU64::new(1_000_000));
    let clock = {
        let now = now.clone();
        kv_storage::Clock::from_fn(move || now.load(Ordering::Relaxed))
    };
    let opts = Options {
        clock,
        ..tiny(1 << 20, 0)
    };
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts);
    for i in 0..100 {
        let at = kv_storage::Expiry::At(1_000_500);
        store.put_with_expiry(&key(i), &[7; 500], at).unwrap();
    }
    store.put(b"stays", b"here").unwrap();
    now.store(1_001_000, Ordering::Relaxed);
    let result = store.compact().unwrap();
    assert_eq!(result.expired_records, 100, "{result:?}");
    assert_eq!(store.len(), 1);
    assert!(store.stats().disk_bytes < 1000, "{:?}", store.stats());
    assert_eq!(store.get(b"stays").unwrap().as_deref(), Some(&b"here"[..]));
}

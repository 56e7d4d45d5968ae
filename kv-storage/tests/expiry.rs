//! Per-key expiry through the public API, with a clock the tests move by
//! hand (no test sleeps).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{key, live_pairs, open, tiny};
use kv_storage::{
    Clock, Cursor, Entry, Expiry, Location, Options, Position, Since, Store, Ttl, WriteBatch,
};

/// A clock the test sets; starts at `T0`.
#[derive(Clone)]
struct FakeTime(Arc<AtomicU64>);

const T0: u64 = 1_700_000_000_000;

impl FakeTime {
    fn new() -> FakeTime {
        FakeTime(Arc::new(AtomicU64::new(T0)))
    }
    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock::from_fn(move || now.load(Ordering::Relaxed))
    }
    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::Relaxed);
    }
}

fn opts(time: &FakeTime, segment_bytes: u64) -> Options {
    Options {
        clock: time.clock(),
        ..tiny(segment_bytes, 1 << 20)
    }
}

fn secs(s: u64) -> Expiry {
    Expiry::After(Duration::from_secs(s))
}

fn all_keys(store: &Store) -> Vec<Vec<u8>> {
    let mut keys: Vec<_> = store.iter().map(|k| k.unwrap().to_vec()).collect();
    keys.sort();
    keys
}

#[test]
fn an_expired_key_is_hidden_from_every_read() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 1 << 20));
    store.put_with_expiry(b"t", b"soon", secs(10)).unwrap();
    store.put(b"p", b"forever").unwrap();
    assert_eq!(store.expiry(b"t").unwrap(), Ttl::ExpiresAt(T0 + 10_000));
    assert_eq!(store.expiry(b"p").unwrap(), Ttl::Persistent);
    assert_eq!(store.expiry(b"none").unwrap(), Ttl::Missing);
    time.set(T0 + 9_999);
    assert_eq!(store.get(b"t").unwrap().as_deref(), Some(&b"soon"[..]));
    assert_eq!(
        store.expiry(b"t").unwrap().remaining_ms(T0 + 9_999),
        Some(1)
    );
    time.set(T0 + 10_000);
    assert_eq!(store.get(b"t").unwrap(), None);
    assert_eq!(store.get_in_memory(b"t"), Some(None));
    assert_eq!(store.location(b"t"), Location::Missing);
    assert_eq!(store.expiry(b"t").unwrap(), Ttl::Missing);
    assert_eq!(all_keys(&store), vec![b"p".to_vec()]);
    assert_eq!(store.hot_keys(), vec![Bytes::from_static(b"p")]);
    let page = store.scan(Cursor::START, 100).unwrap();
    assert_eq!(page.keys, vec![Bytes::from_static(b"p")]);
    // A read never writes.
    assert_eq!(store.last_lsn(), 2);
    // Deleting an expired key still writes its tombstone (not live): a
    // replica whose clock is behind, or this store after its clock steps
    // back, would still show the key.
    let deleted = store.delete(b"t").unwrap().expect("a tombstone");
    assert_eq!((deleted.position.lsn, deleted.live), (3, false));
    time.set(T0);
    assert_eq!(
        store.get(b"t").unwrap(),
        None,
        "a clock stepped back finds the tombstone"
    );
    assert_eq!(
        store.delete(b"t").unwrap(),
        None,
        "then nothing is left to delete"
    );
}

#[test]
fn put_without_expiry_clears_an_earlier_one() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 1 << 20));
    store.put_with_expiry(b"k", b"1", secs(1)).unwrap();
    store.put(b"k", b"2").unwrap();
    time.set(T0 + 5_000);
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.expiry(b"k").unwrap(), Ttl::Persistent);
}

#[test]
fn expire_sets_clears_and_deletes_with_a_past_time() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 1 << 20));
    assert_eq!(store.expire(b"k", Some(secs(5))).unwrap(), None);
    store.put(b"k", b"v").unwrap();
    // Clearing the expiry of a key without one writes nothing.
    assert_eq!(store.expire(b"k", None).unwrap(), None);
    let set = store.expire(b"k", Some(secs(5))).unwrap().unwrap();
    assert_eq!(
        set,
        Entry {
            position: Position { epoch: 0, lsn: 2 },
            key: Bytes::from_static(b"k"),
            value: Some(Bytes::from_static(b"v")),
            expiry: Some(T0 + 5_000),
        }
    );
    assert_eq!(store.expiry(b"k").unwrap(), Ttl::ExpiresAt(T0 + 5_000));
    let cleared = store.expire(b"k", None).unwrap().unwrap();
    assert_eq!((cleared.position.lsn, cleared.expiry), (3, None));
    time.set(T0 + 60_000);
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    let gone = store.expire(b"k", Some(Expiry::At(T0))).unwrap().unwrap();
    assert_eq!(
        (gone.position.lsn, gone.value, gone.expiry),
        (4, None, None)
    );
    assert_eq!(store.get(b"k").unwrap(), None);
    assert!(store.is_empty());
}

#[test]
fn expire_due_deletes_with_replicated_tombstones_earliest_first_and_bounded() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 1 << 20));
    for i in 0..50 {
        store
            .put_with_expiry(&key(i), b"v", Expiry::At(T0 + 1 + i))
            .unwrap();
    }
    store.put(b"stays", b"v").unwrap();
    assert!(store.expire_due(100).unwrap().is_empty(), "nothing due yet");
    time.set(T0 + 30);
    let first = store.expire_due(10).unwrap();
    assert_eq!(first.len(), 10);
    assert!(
        first
            .iter()
            .all(|e| e.value.is_none() && e.expiry.is_none())
    );
    let lsns: Vec<_> = first.iter().map(|e| e.position.lsn).collect();
    assert_eq!(lsns, (52..62).collect::<Vec<_>>());
    let rest = store.expire_due(100).unwrap();
    assert_eq!(rest.len(), 20, "keys 0..30 were due");
    let mut deleted: Vec<_> = first.iter().chain(&rest).map(|e| e.key.to_vec()).collect();
    deleted.sort();
    assert_eq!(deleted, (0..30).map(key).collect::<Vec<_>>());
    assert_eq!(store.len(), 21);
    assert_eq!(store.stats().expired_keys, 30);
    // The tombstones are history like any other.
    let Since::Entries(history) = store.entries_since(51, 100).unwrap() else {
        panic!("history expected")
    };
    assert_eq!(history, [first, rest].concat());
}

#[test]
fn batches_carry_expiries() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 1 << 20));
    let mut batch = WriteBatch::new();
    batch
        .put_with_expiry(b"a", b"1", secs(1))
        .put(b"b", b"2")
        .put_with_expiry(b"c", b"3", Expiry::At(T0 - 1))
        .delete(b"c");
    assert_eq!(store.write_batch(&batch).unwrap().unwrap().lsn, 3);
    assert_eq!(store.expiry(b"a").unwrap(), Ttl::ExpiresAt(T0 + 1_000));
    assert_eq!(store.expiry(b"c").unwrap(), Ttl::Missing);
    time.set(T0 + 1_000);
    assert_eq!(all_keys(&store), vec![b"b".to_vec()]);
}

#[test]
fn expiry_survives_reopen_from_segments_and_from_hints() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    for use_hints in [false, true] {
        let dir = dir.path().join(format!("hints-{use_hints}"));
        {
            let store = open(&dir, &opts(&time, 300));
            for i in 0..40 {
                match i % 3 {
                    0 => store.put(&key(i), b"p").map(drop),
                    _ => store
                        .put_with_expiry(&key(i), b"t", Expiry::At(T0 + i))
                        .map(drop),
                }
                .unwrap();
            }
            if use_hints {
                store.write_pending_hints().unwrap();
            }
            store.close().unwrap();
        }
        if !use_hints {
            for hint in common::files_with_ext(&dir, "hint") {
                std::fs::remove_file(hint).unwrap();
            }
        }
        time.set(T0);
        let store = open(&dir, &opts(&time, 300));
        assert_eq!(store.stats().hint_fallbacks, 0);
        for i in 0..40 {
            let want = match i % 3 {
                0 => Ttl::Persistent,
                _ => Ttl::ExpiresAt(T0 + i),
            };
            assert_eq!(
                store.expiry(&key(i)).unwrap(),
                want,
                "key {i}, hints {use_hints}"
            );
        }
        time.set(T0 + 100);
        let want: Vec<_> = (0..40).filter(|i| i % 3 == 0).map(key).collect();
        assert_eq!(all_keys(&store), want);
    }
}

#[test]
fn compaction_drops_expired_records_and_gives_back_the_space() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 4096));
    for i in 0..400 {
        let value = vec![b'x'; 100];
        match i % 4 {
            0 => store.put(&key(i), &value).map(drop),
            _ => store.put_with_expiry(&key(i), &value, secs(60)).map(drop),
        }
        .unwrap();
    }
    store.write_pending_hints().unwrap();
    let before = store.stats();
    time.set(T0 + 60_000);
    let stats = store.compact().unwrap();
    assert!(stats.expired_records > 250, "{stats:?}");
    let after = store.stats();
    assert!(after.keys <= before.keys - stats.expired_records);
    assert!(
        after.disk_bytes * 2 < before.disk_bytes,
        "{before:?} {after:?}"
    );
    let want: Vec<_> = (0..400).filter(|i| i % 4 == 0).map(key).collect();
    assert_eq!(all_keys(&store), want);
    drop(store);
    // Nothing comes back after a restart, even with the clock turned back.
    time.set(T0);
    let store = open(dir.path(), &opts(&time, 4096));
    let present = (0..400)
        .filter(|i| store.get(&key(*i)).unwrap().is_some())
        .count();
    assert_eq!(present, 400 - stats.expired_records as usize);
    assert_eq!(live_pairs(&store).len(), present);
}

#[test]
fn followers_store_the_leaders_expiry_and_hide_with_their_own_clock() {
    let leader_time = FakeTime::new();
    let follower_time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let leader = open(&dir.path().join("l"), &opts(&leader_time, 1 << 20));
    let follower = open(&dir.path().join("f"), &opts(&follower_time, 1 << 20));
    leader.put_with_expiry(b"k", b"v", secs(10)).unwrap();
    leader.put(b"p", b"v").unwrap();
    let Since::Entries(history) = leader.entries_since(0, 10).unwrap() else {
        panic!("history expected")
    };
    assert_eq!(history[0].expiry, Some(T0 + 10_000));
    assert_eq!(follower.apply_batch(&history).unwrap(), 2);
    assert_eq!(follower.expiry(b"k").unwrap(), Ttl::ExpiresAt(T0 + 10_000));
    follower_time.set(T0 + 10_000);
    assert_eq!(follower.get(b"k").unwrap(), None);
    assert_eq!(leader.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    // The follower hides but never deletes; the leader's tombstone arrives.
    assert_eq!(follower.last_lsn(), 2);
    leader_time.set(T0 + 10_000);
    let tombstones = leader.expire_due(10).unwrap();
    assert_eq!(follower.apply_batch(&tombstones).unwrap(), 1);
    assert_eq!(follower.len(), 1);
}

#[test]
fn snapshots_carry_expiries_and_leave_expired_keys_out() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 200));
    store.put_with_expiry(b"a", b"1", secs(10)).unwrap();
    store.put_with_expiry(b"b", b"2", secs(100)).unwrap();
    for i in 0..20 {
        store.put(b"c", &key(i)).unwrap();
    }
    store.compact().unwrap();
    time.set(T0 + 50_000);
    let Since::Snapshot { entries, .. } = store.entries_since(0, 10).unwrap() else {
        panic!("snapshot expected")
    };
    let got: Vec<_> = entries.iter().map(|e| (e.key.to_vec(), e.expiry)).collect();
    assert_eq!(
        got,
        vec![(b"b".to_vec(), Some(T0 + 100_000)), (b"c".to_vec(), None)]
    );
}

/// Every key the crash test writes, with its value and expiry, sorted.
fn state(store: &Store) -> Vec<(Vec<u8>, Option<Bytes>, Ttl)> {
    [&b"a"[..], b"b", b"c", b"d"]
        .iter()
        .map(|k| (k.to_vec(), store.get(k).unwrap(), store.expiry(k).unwrap()))
        .collect()
}

/// Writes of the crash test, one per reopen.
const CRASH_STEPS: usize = 5;

fn crash_test_write(store: &Store, step: usize) {
    let mut batch = WriteBatch::new();
    match step {
        0 => drop(store.put(b"a", b"before").unwrap()),
        1 => drop(
            store
                .put_with_expiry(b"b", b"ttl", Expiry::At(T0 + 5))
                .unwrap(),
        ),
        2 => drop(store.expire(b"a", Some(Expiry::At(T0 + 7))).unwrap()),
        3 => {
            batch
                .put_with_expiry(b"c", b"batched", Expiry::At(T0 + 9))
                .put(b"b", b"persistent")
                .put_with_expiry(b"d", "x".repeat(30), Expiry::At(u64::MAX));
            store.write_batch(&batch).unwrap();
        }
        _ => drop(store.expire(b"d", None).unwrap()),
    }
}

/// Cuts the newest segment at every byte of records with an expiry (a put,
/// an expire, a batch), padded with zeros or not: reopening finds exactly
/// the state after the last whole write before the cut.
#[test]
fn records_with_expiry_survive_a_crash_whole_or_not_at_all() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let o = opts(&time, 1 << 20);
    let seg_len = || {
        std::fs::metadata(common::newest_segment(dir.path()))
            .unwrap()
            .len()
    };
    // (segment length, state) after each write.
    let mut states = Vec::new();
    for step in 0..CRASH_STEPS {
        let store = open(dir.path(), &o);
        crash_test_write(&store, step);
        let now = state(&store);
        store.close().unwrap();
        states.push((seg_len(), now));
    }
    let (first, end) = (states[0].0, seg_len());
    for cut in first..=end {
        for pad in [false, true] {
            let copy = common::cut_copy(dir.path(), cut, pad.then_some(end + 4096));
            let store = open(copy.path(), &o);
            let want = states.iter().rev().find(|(len, _)| *len <= cut).unwrap();
            assert_eq!(state(&store), want.1, "cut at {cut}, padded {pad}");
        }
    }
}

#[test]
fn active_expiry_writes_its_tombstones_with_one_write_and_one_fsync() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let always = Options {
        sync: kv_storage::SyncPolicy::Always,
        ..opts(&time, 1 << 20)
    };
    let store = open(dir.path(), &always);
    for i in 0..20 {
        store.put_with_expiry(&key(i), b"v", secs(1)).unwrap();
    }
    time.set(T0 + 1_000);
    let before = store.stats();
    assert_eq!(store.expire_due(100).unwrap().len(), 20);
    let after = store.stats();
    assert_eq!(after.syncs - before.syncs, 1);
    assert_eq!(after.writes - before.writes, 20);
    drop(store);
    // And they are durable: nothing comes back with the clock turned back.
    time.set(T0);
    let store = open(dir.path(), &always);
    assert!(store.is_empty());
}

/// A scan while keys expire between its pages: every key still live at
/// the end (so live throughout) is returned, and no page holds a key that
/// had expired when the page was read.
#[test]
fn a_scan_while_keys_expire_returns_the_survivors_and_no_expired_key() {
    let time = FakeTime::new();
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts(&time, 1 << 20));
    for i in 0..2000 {
        match i % 3 {
            0 => store.put(&key(i), b"v").map(drop),
            _ => store
                .put_with_expiry(&key(i), b"v", Expiry::At(T0 + 1 + i))
                .map(drop),
        }
        .unwrap();
    }
    let expires = |k: &[u8]| {
        let i: u64 = std::str::from_utf8(&k[4..]).unwrap().parse().unwrap();
        (!i.is_multiple_of(3)).then_some(T0 + 1 + i)
    };
    let (mut seen, mut cursor, mut now) = (std::collections::HashSet::new(), Cursor::START, T0);
    loop {
        let page = store.scan(cursor, 50).unwrap();
        for k in &page.keys {
            assert!(
                expires(k).is_none_or(|at| at > now),
                "{k:?} expired at {now}"
            );
            seen.insert(k.to_vec());
        }
        now += 25;
        time.set(now);
        match page.next {
            Some(next) => cursor = next,
            None => break,
        }
    }
    let survivors: Vec<_> = (0..2000)
        .map(key)
        .filter(|k| expires(k).is_none_or(|at| at > now))
        .collect();
    assert!(survivors.len() > 700, "some expiring keys outlive the scan");
    assert!(survivors.iter().all(|k| seen.contains(k)));
    assert!(seen.len() < 2000, "keys that expired early were left out");
}

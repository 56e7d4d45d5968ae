//! Replication hooks: entries_since, apply, snapshots, clear.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{install, key, open, tiny, value};
use kv_storage::{Entry, Error, Position, Since, Store};

fn entries(since: Since) -> Vec<Entry> {
    match since {
        Since::Entries(e) => e,
        Since::Snapshot { .. } => panic!("expected entries, got a snapshot"),
    }
}

/// Brings `follower` up to date with `leader` the way a node would.
fn catch_up(leader: &Store, follower: &Store) -> usize {
    let mut snapshots = 0;
    loop {
        match leader.entries_since(follower.last_lsn(), 7).unwrap() {
            Since::Entries(batch) if batch.is_empty() => return snapshots,
            Since::Entries(batch) => {
                for e in &batch {
                    assert!(follower.apply(e).unwrap());
                }
            }
            Since::Snapshot { entries, last } => {
                install(follower, &entries, last);
                snapshots += 1;
            }
        }
    }
}

fn assert_same(a: &Store, b: &Store, keys: u64) {
    for i in 0..keys {
        assert_eq!(a.get(&key(i)).unwrap(), b.get(&key(i)).unwrap(), "key {i}");
    }
    assert_eq!(a.len(), b.len());
    assert_eq!(a.last_position(), b.last_position());
}

#[test]
fn entries_since_returns_the_history_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(300, 0));
    for i in 0..30 {
        store.put(&key(i % 7), &value(i, 0)).unwrap();
        if i % 5 == 4 {
            store.delete(&key(i % 7)).unwrap();
        }
    }
    let all = entries(store.entries_since(0, 1000).unwrap());
    assert_eq!(all.len() as u64, store.last_lsn());
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.position.lsn, i as u64 + 1);
    }
    assert!(
        all.iter().any(|e| e.value.is_none()),
        "tombstones are entries"
    );
    let page = entries(store.entries_since(10, 5).unwrap());
    assert_eq!(
        page.iter().map(|e| e.position.lsn).collect::<Vec<_>>(),
        vec![11, 12, 13, 14, 15]
    );
    assert_eq!(page[..], all[10..15]);
    assert!(entries(store.entries_since(store.last_lsn(), 5).unwrap()).is_empty());
    assert!(entries(store.entries_since(store.last_lsn() + 10, 5).unwrap()).is_empty());
    // The same after reopen (sealed segments through hints and mmap).
    store.close().unwrap();
    let store = open(dir.path(), &tiny(300, 0));
    assert_eq!(entries(store.entries_since(0, 1000).unwrap()), all);
}

#[test]
fn entries_since_from_the_middle_of_a_large_segment() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(8 << 20, 0);
    let store = open(dir.path(), &opts);
    for i in 0..20_000 {
        store.put(&key(i % 1000), &[(i % 251) as u8; 40]).unwrap();
    }
    for after in [0, 1, 9_999, 15_432, 19_999] {
        let got = entries(store.entries_since(after, 3).unwrap());
        let lsns: Vec<u64> = got.iter().map(|e| e.position.lsn).collect();
        assert_eq!(
            lsns,
            (after + 1..=(after + 3).min(20_000)).collect::<Vec<_>>()
        );
        assert_eq!(
            got[0].value.as_deref(),
            Some(&[(after % 251) as u8; 40][..])
        );
    }
}

#[test]
fn a_follower_converges_and_apply_is_idempotent() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(400, 0));
    let follower = open(fd.path(), &tiny(400, 0));
    leader.begin_epoch(2).unwrap();
    for i in 0..50 {
        leader.put(&key(i % 11), &value(i, 1)).unwrap();
        if i % 4 == 0 {
            leader.delete(&key(i % 3)).unwrap();
        }
    }
    assert_eq!(catch_up(&leader, &follower), 0);
    assert_same(&leader, &follower, 11);
    assert_eq!(
        follower.epoch(),
        2,
        "the follower's epoch follows the history"
    );
    // Re-delivery is ignored.
    for e in entries(leader.entries_since(0, 1000).unwrap()) {
        assert!(!follower.apply(&e).unwrap());
    }
    assert_same(&leader, &follower, 11);
    drop(follower);
    let follower = open(fd.path(), &tiny(400, 0));
    assert_same(&leader, &follower, 11);
    assert_eq!(follower.epoch(), 2);
}

#[test]
fn a_tombstone_for_a_missing_key_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    let tomb = Entry {
        position: Position { epoch: 1, lsn: 1 },
        key: Bytes::from_static(b"never"),
        value: None,
        expiry: None,
    };
    assert!(store.apply(&tomb).unwrap());
    assert_eq!(store.last_lsn(), 1);
    assert!(store.is_empty());
    assert_eq!(entries(store.entries_since(0, 10).unwrap()), vec![tomb]);
    let zero = Entry {
        position: Position::default(),
        key: Bytes::from_static(b"k"),
        value: None,
        expiry: None,
    };
    assert!(matches!(
        store.apply(&zero),
        Err(Error::InvalidEntry { .. })
    ));
}

#[test]
fn compacted_history_falls_back_to_a_snapshot() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(300, 0));
    let follower = open(fd.path(), &tiny(300, 0));
    for i in 0..60 {
        leader.put(&key(i % 9), &value(i, 0)).unwrap();
    }
    leader.delete(&key(4)).unwrap();
    leader.compact().unwrap();
    let floor = leader.stats().history_floor;
    assert!(floor > 0);
    let Since::Snapshot {
        entries: snap,
        last,
    } = leader.entries_since(0, 1000).unwrap()
    else {
        panic!("history below the floor must be a snapshot");
    };
    assert_eq!(last, leader.last_position());
    assert_eq!(snap.len(), leader.len());
    assert!(
        snap.windows(2)
            .all(|w| w[0].position.lsn < w[1].position.lsn)
    );
    assert!(snap.iter().all(|e| e.value.is_some()));
    // History above the floor is still served as entries.
    assert!(matches!(
        leader.entries_since(floor, 10).unwrap(),
        Since::Entries(_)
    ));

    assert_eq!(catch_up(&leader, &follower), 1);
    assert_same(&leader, &follower, 9);
    // The follower can now only serve its own history from the snapshot on.
    assert!(matches!(
        follower.entries_since(0, 10).unwrap(),
        Since::Snapshot { .. }
    ));
    for i in 0..20 {
        leader.put(&key(i % 9), &value(i, 5)).unwrap();
    }
    leader.delete(&key(2)).unwrap();
    assert_eq!(
        catch_up(&leader, &follower),
        0,
        "incremental after the snapshot"
    );
    assert_same(&leader, &follower, 9);
    drop(follower);
    let follower = open(fd.path(), &tiny(300, 0));
    assert_same(&leader, &follower, 9);
    assert!(matches!(
        follower.entries_since(0, 10).unwrap(),
        Since::Snapshot { .. }
    ));
}

#[test]
fn a_snapshot_ending_in_deletions_keeps_the_leader_position() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(200, 0));
    for i in 0..20 {
        leader.put(&key(i), &value(i, 0)).unwrap();
    }
    for i in 10..20 {
        leader.delete(&key(i)).unwrap();
    }
    leader.put(b"x", &[0; 200]).unwrap();
    leader.delete(b"x").unwrap();
    leader.compact().unwrap();
    let follower = open(fd.path(), &tiny(200, 0));
    assert_eq!(catch_up(&leader, &follower), 1);
    assert_eq!(follower.last_position(), leader.last_position());
    drop(follower);
    let follower = open(fd.path(), &tiny(200, 0));
    assert_eq!(follower.last_position(), leader.last_position());
    assert_same(&leader, &follower, 20);
}

#[test]
fn a_gap_in_applied_lsns_raises_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    let entry = |lsn, k: &'static [u8]| Entry {
        position: Position { epoch: 1, lsn },
        key: Bytes::from_static(k),
        value: Some(Bytes::from_static(b"v")),
        expiry: None,
    };
    assert!(store.apply(&entry(1, b"a")).unwrap());
    assert!(store.apply(&entry(5, b"b")).unwrap());
    assert_eq!(store.stats().history_floor, 4);
    assert!(matches!(
        store.entries_since(2, 10).unwrap(),
        Since::Snapshot { .. }
    ));
    assert_eq!(
        entries(store.entries_since(4, 10).unwrap()),
        vec![entry(5, b"b")]
    );
    drop(store);
    let store = open(dir.path(), &tiny(1 << 20, 0));
    assert_eq!(
        store.stats().history_floor,
        4,
        "the floor is recovered from the log"
    );
}

#[test]
fn clear_drops_everything_durably_but_keeps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(300, 1 << 16);
    let store = open(dir.path(), &opts);
    store.begin_epoch(4).unwrap();
    for i in 0..40 {
        store.put(&key(i), &value(i, 0)).unwrap();
    }
    store.clear().unwrap();
    assert!(store.is_empty());
    assert_eq!(store.last_lsn(), 0);
    assert_eq!(store.get(&key(1)).unwrap(), None);
    assert!(store.hot_keys().is_empty());
    assert_eq!(store.epoch(), 4);
    assert!(entries(store.entries_since(0, 10).unwrap()).is_empty());
    drop(store);
    let store = open(dir.path(), &opts);
    assert!(store.is_empty());
    assert_eq!((store.last_lsn(), store.epoch()), (0, 4));
    assert_eq!(
        store.put(b"k", b"v").unwrap(),
        Position { epoch: 4, lsn: 1 }
    );
}

#[test]
fn entries_since_never_skips_an_lsn_under_concurrent_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(open(dir.path(), &tiny(2048, 0)));
    const WRITES: u64 = 3000;
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..WRITES {
                store.put(&key(i % 50), &value(i, 0)).unwrap();
            }
        })
    };
    let mut seen = 0;
    while seen < WRITES {
        for e in entries(store.entries_since(seen, 64).unwrap()) {
            assert_eq!(e.position.lsn, seen + 1, "skipped or repeated an LSN");
            assert_eq!(e.value.unwrap().to_vec(), value(seen, 0));
            seen += 1;
        }
    }
    writer.join().unwrap();
}

#[test]
fn apply_batch_writes_only_new_entries_and_syncs_once() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(4096, 0));
    let always = kv_storage::Options {
        sync: kv_storage::SyncPolicy::Always,
        ..tiny(4096, 0)
    };
    let follower = open(fd.path(), &always);
    for i in 0..40 {
        leader.put(&key(i % 13), &value(i, 2)).unwrap();
    }
    let history = entries(leader.entries_since(0, 1000).unwrap());
    // The first ten arrive alone; the batch then re-delivers them.
    for e in &history[..10] {
        assert!(follower.apply(e).unwrap());
    }
    let syncs_before = follower.stats().syncs;
    assert_eq!(follower.apply_batch(&history).unwrap(), 30);
    let syncs = follower.stats().syncs - syncs_before;
    assert!(syncs <= 1, "{syncs} syncs for one batch");
    assert_same(&leader, &follower, 13);
    assert_eq!(follower.apply_batch(&history).unwrap(), 0);
    drop(follower);
    let follower = open(fd.path(), &always);
    assert_same(&leader, &follower, 13);
}

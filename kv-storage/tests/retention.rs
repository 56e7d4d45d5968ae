//! The retention watermark: compaction keeps the history above it.

mod common;

use common::{key, open, tiny, value};
use kv_storage::{Since, Store};

/// Writes `n` overwrites of a few keys, so compaction has garbage.
fn churn(store: &Store, n: u64) {
    for i in 0..n {
        store.put(&key(i % 4), &value(i, 0)).unwrap();
    }
}

#[test]
fn a_follower_a_segment_behind_catches_up_from_history_after_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let leader = open(dir.path(), &tiny(400, 0));
    churn(&leader, 40);
    let follower_at = leader.last_lsn();
    leader.set_retention(Some(follower_at));
    assert_eq!(leader.retention(), Some(follower_at));
    churn(&leader, 40);
    let stats = leader.compact().unwrap();
    assert!(stats.input_segments > 0, "{stats:?}");
    assert!(leader.stats().history_floor <= follower_at);
    let Since::Entries(entries) = leader.entries_since(follower_at, usize::MAX).unwrap() else {
        panic!("a follower at the watermark must get history, not a snapshot");
    };
    assert_eq!(entries.len() as u64, leader.last_lsn() - follower_at);
    assert_eq!(entries[0].position.lsn, follower_at + 1);

    // Without a watermark the same compaction raises the floor past it.
    leader.set_retention(None);
    churn(&leader, 40);
    leader.compact().unwrap();
    assert!(leader.stats().history_floor > follower_at);
    assert!(matches!(
        leader.entries_since(follower_at, 10).unwrap(),
        Since::Snapshot { .. }
    ));
}

#[test]
fn the_floor_never_rises_above_the_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(300, 0));
    store.set_retention(Some(0));
    churn(&store, 60);
    store.compact().unwrap();
    assert_eq!(store.stats().history_floor, 0);
    assert_eq!(store.stats().compactions, 0);
    for mark in [10, 25, 50] {
        store.set_retention(Some(mark));
        churn(&store, 20);
        store.compact().unwrap();
        assert!(store.stats().history_floor <= mark, "watermark {mark}");
        let Since::Entries(all) = store.entries_since(mark, usize::MAX).unwrap() else {
            panic!("history above {mark} is gone");
        };
        assert_eq!(all.len() as u64, store.last_lsn() - mark);
    }
}

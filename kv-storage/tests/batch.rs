//! Write batches: ordering, LSNs, size checks, and all-or-none after a crash
//! cut at every byte of the batch.

mod common;

use common::{cut_copy, live_pairs, newest_segment, tiny};
use kv_storage::{Error, Store, WriteBatch};

fn opts() -> kv_storage::Options {
    tiny(1 << 20, 1 << 20)
}

#[test]
fn a_batch_writes_in_order_with_consecutive_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.put(b"old", b"1").unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put("a", "1")
        .put("b", "2")
        .delete("absent")
        .delete("old")
        .put("c", "3")
        .delete("c")
        .put("a", "again");
    let last = store.write_batch(&batch).unwrap().unwrap();
    // Six records: the deletion of an absent key writes nothing.
    assert_eq!(last.lsn, 7);
    assert_eq!(store.last_lsn(), 7);
    let want = vec![
        (b"a".to_vec(), b"again".to_vec()),
        (b"b".to_vec(), b"2".to_vec()),
    ];
    assert_eq!(live_pairs(&store), want);
    assert_eq!(store.write_batch(&WriteBatch::new()).unwrap(), None);
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    assert_eq!(live_pairs(&store), want);
    assert_eq!(store.last_lsn(), 7);
}

#[test]
fn a_batch_is_one_append_and_single_puts_one_each() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let before = store.stats();
    let mut batch = WriteBatch::new();
    for i in 0..10 {
        batch.put(format!("k{i}"), "v");
    }
    store.write_batch(&batch).unwrap();
    let batched = store.stats();
    assert_eq!(batched.writes - before.writes, 10);
    assert_eq!(batched.appends - before.appends, 1);
    for i in 0..10 {
        store.put(format!("k{i}").as_bytes(), b"w").unwrap();
    }
    let single = store.stats();
    assert_eq!(single.writes - batched.writes, 10);
    assert_eq!(single.appends - batched.appends, 10);
}

#[test]
fn a_rejected_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = opts();
    options.max_value_bytes = 100;
    let store = Store::open(dir.path(), options).unwrap();
    let mut batch = WriteBatch::new();
    batch.put("a", "1").put("b", vec![0u8; 101]);
    assert!(matches!(
        store.write_batch(&batch),
        Err(Error::ValueTooLarge { .. })
    ));
    let mut big = WriteBatch::new();
    for i in 0..20_000 {
        big.put(format!("key-{i}"), [7u8; 90]);
    }
    assert!(matches!(
        store.write_batch(&big),
        Err(Error::BatchTooLarge { .. })
    ));
    assert_eq!(store.last_lsn(), 0);
    assert!(store.is_empty());
}

/// Cuts the newest segment at every byte inside the batch (and pads the cut
/// with zeros, as a pre-sized file would read): reopening finds the state
/// before the batch, or, only with every byte present, the state after.
#[test]
fn a_batch_survives_a_crash_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.put(b"a", b"before").unwrap();
    store.put(b"b", b"before").unwrap();
    let before = live_pairs(&store);
    store.close().unwrap();
    let start = std::fs::metadata(newest_segment(dir.path())).unwrap().len();
    let store = Store::open(dir.path(), opts()).unwrap();
    let mut batch = WriteBatch::new();
    batch
        .put("a", "after")
        .delete("b")
        .put("c", "new")
        .put("d", "x".repeat(40));
    store.write_batch(&batch).unwrap();
    let after = live_pairs(&store);
    store.close().unwrap();
    let end = std::fs::metadata(newest_segment(dir.path())).unwrap().len();
    assert!(end > start + 60);
    for cut in start..=end {
        for pad in [false, true] {
            let copy = cut_copy(dir.path(), cut, pad.then_some(end + 4096));
            let store = Store::open(copy.path(), opts()).unwrap();
            let (want, lsn) = if cut == end {
                (&after, 6)
            } else {
                (&before, 2)
            };
            assert_eq!(&live_pairs(&store), want, "cut at {cut}, padded {pad}");
            assert_eq!(store.last_lsn(), lsn, "cut at {cut}, padded {pad}");
            // The store takes writes after the cut (the log ends cleanly).
            store.put(b"z", b"later").unwrap();
            drop(store);
            let store = Store::open(copy.path(), opts()).unwrap();
            assert_eq!(store.get(b"z").unwrap().as_deref(), Some(&b"later"[..]));
        }
    }
}

/// A follower applying a replicated batch writes it the same way.
#[test]
fn apply_batch_is_all_or_none_too() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = tempfile::tempdir().unwrap();
    let leader = Store::open(leader_dir.path(), opts()).unwrap();
    let mut batch = WriteBatch::new();
    batch.put("a", "1").put("b", "2").put("c", "3");
    leader.write_batch(&batch).unwrap();
    let kv_storage::Since::Entries(entries) = leader.entries_since(0, 10).unwrap() else {
        panic!("history expected");
    };
    let follower = Store::open(dir.path(), opts()).unwrap();
    follower.put(b"x", b"0").unwrap();
    follower.close().unwrap();
    let start = std::fs::metadata(newest_segment(dir.path())).unwrap().len();
    let follower = Store::open(dir.path(), opts()).unwrap();
    // The leader's three entries, placed after the follower's own record.
    let shifted: Vec<_> = entries
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.position.lsn += 1;
            e
        })
        .collect();
    assert_eq!(follower.apply_batch(&shifted).unwrap(), 3);
    follower.close().unwrap();
    let end = std::fs::metadata(newest_segment(dir.path())).unwrap().len();
    for cut in [start + 1, (start + end) / 2, end - 1] {
        let copy = cut_copy(dir.path(), cut, None);
        let store = Store::open(copy.path(), opts()).unwrap();
        assert_eq!(store.last_lsn(), 1, "cut at {cut}");
        assert_eq!(store.len(), 1, "cut at {cut}");
    }
}

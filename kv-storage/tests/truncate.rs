//! `truncate_after`: divergent tails removed, saved to rollback files,
//! older versions restored, crash-safe at every step.

mod common;

use common::{crashed_at, files_with_ext, key, live_pairs, open, tiny, value};
use kv_storage::{
    Entry, Error, FaultPoint, Lsn, Options, Position, Since, Store, WriteBatch, rollback,
};

fn history(store: &Store) -> Vec<Entry> {
    match store.entries_since(0, usize::MAX).unwrap() {
        Since::Entries(e) => e,
        Since::Snapshot { .. } => panic!("expected history"),
    }
}

/// 60 mixed writes over 8 keys (puts, overwrites, deletes, a batch).
fn fill(store: &Store) {
    for i in 0..60u64 {
        match i % 9 {
            4 => {
                store.delete(&key(i % 8)).unwrap();
            }
            7 => {
                let mut batch = WriteBatch::new();
                batch.put(key(i % 8), value(i, 1)).delete(key((i + 3) % 8));
                store.write_batch(&batch).unwrap();
            }
            _ => {
                store.put(&key(i % 8), &value(i, 0)).unwrap();
            }
        }
    }
}

/// What the store held when its last LSN was `lsn`: its history up to
/// there, applied to a fresh store.
fn state_at(entries: &[Entry], lsn: Lsn) -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    let prefix: Vec<Entry> = entries
        .iter()
        .filter(|e| e.position.lsn <= lsn)
        .cloned()
        .collect();
    store.apply_batch(&prefix).unwrap();
    live_pairs(&store)
}

#[test]
fn truncation_restores_every_key_and_saves_the_tail() {
    let opts = tiny(400, 1 << 16);
    for after in [0, 1, 17, 33, 49, 63] {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &opts);
        fill(&store);
        let all = history(&store);
        let last = store.last_lsn();
        let kept_pos = all
            .iter()
            .rfind(|e| e.position.lsn <= after)
            .map_or(Position::default(), |e| e.position);
        let t = store.truncate_after(kept_pos).unwrap();
        assert_eq!(t.kept, kept_pos, "after {after}");
        assert_eq!(t.removed, last - after);
        assert_eq!(store.last_position(), kept_pos);
        assert_eq!(live_pairs(&store), state_at(&all, after), "after {after}");
        for i in 0..8 {
            let expected = state_at(&all, after)
                .into_iter()
                .find(|(k, _)| *k == key(i))
                .map(|(_, v)| v);
            assert_eq!(store.get(&key(i)).unwrap().map(|b| b.to_vec()), expected);
        }
        let file = rollback::read(t.rollback.as_deref().unwrap()).unwrap();
        assert_eq!(file.truncated_after, kept_pos);
        assert_eq!(file.entries, all[after as usize..].to_vec());
        assert_eq!(store.rollbacks().unwrap(), vec![t.rollback.unwrap()]);
        assert_eq!(store.stats().rolled_back_entries, last - after);
        // The store goes on from there, and all of it survives a reopen.
        let pos = store.put(b"after", b"truncation").unwrap();
        assert_eq!(pos.lsn, after + 1);
        let expected = live_pairs(&store);
        drop(store);
        let store = open(dir.path(), &opts);
        assert_eq!(live_pairs(&store), expected, "after {after}");
        assert_eq!(store.last_position(), pos);
        assert_no_unfinished_truncation(dir.path());
    }
}

#[test]
fn nothing_to_remove_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(400, 0));
    fill(&store);
    let last = store.last_position();
    let t = store.truncate_after(last).unwrap();
    assert_eq!((t.kept, t.removed, t.rollback), (last, 0, None));
    assert!(store.rollbacks().unwrap().is_empty());
}

#[test]
fn a_cut_through_an_applied_batch_keeps_the_part_before_it() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(1 << 20, 0));
    fill(&leader);
    // The follower writes all 63 entries as one append (one batch).
    let opts = tiny(1 << 20, 0);
    let follower = open(fd.path(), &opts);
    follower.apply_batch(&history(&leader)).unwrap();
    follower
        .truncate_after(Position { epoch: 0, lsn: 30 })
        .unwrap();
    drop(follower);
    let follower = open(fd.path(), &opts);
    assert_eq!(follower.last_lsn(), 30);
    assert_eq!(live_pairs(&follower), state_at(&history(&leader), 30));
}

#[test]
fn below_the_history_floor_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(400, 0));
    fill(&store);
    store.compact().unwrap();
    let floor = store.stats().history_floor;
    assert!(floor > 1);
    let err = store
        .truncate_after(Position {
            epoch: 0,
            lsn: floor - 1,
        })
        .unwrap_err();
    assert!(
        matches!(err, Error::HistoryGone { requested, floor: f } if requested == floor - 1 && f == floor),
        "{err}"
    );
    assert_eq!(store.last_lsn(), 65);
}

#[test]
fn truncation_after_compaction_still_restores_older_versions() {
    let opts = tiny(400, 0);
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &opts);
    fill(&store);
    let all = history(&store);
    store.compact().unwrap();
    let (floor, last) = (store.stats().history_floor, store.last_lsn());
    drop(store);
    // Every cut from the floor up, each on a fresh copy of the compacted
    // store (older versions of keys rewritten above the floor must survive
    // compaction for this).
    for after in floor..last {
        let copy = tempfile::tempdir().unwrap();
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let f = f.unwrap();
            if f.file_type().unwrap().is_file() && f.file_name() != "LOCK" {
                std::fs::copy(f.path(), copy.path().join(f.file_name())).unwrap();
            }
        }
        let store = open(copy.path(), &opts);
        store
            .truncate_after(all[after as usize - 1].position)
            .unwrap();
        assert_eq!(live_pairs(&store), state_at(&all, after), "after {after}");
    }
}

/// No head segment under a `.tmp` name and no marker (a background hint
/// write may have a `.hint.tmp` open at any time).
fn assert_no_unfinished_truncation(dir: &std::path::Path) {
    let tmp = files_with_ext(dir, "tmp");
    assert!(
        !tmp.iter()
            .any(|p| p.to_string_lossy().ends_with(".log.tmp")),
        "{tmp:?}"
    );
    assert!(files_with_ext(dir, "marker").is_empty());
}

fn crash_opts() -> Options {
    tiny(400, 1 << 16)
}

#[test]
fn a_crash_at_every_step_leaves_it_untruncated_or_truncated() {
    for point in FaultPoint::TRUNCATION {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &crash_opts());
        fill(&store);
        let all = history(&store);
        let end = store.last_lsn();
        let at = all[24].position;
        let result = store.truncate_after_until(at, point);
        crashed_at(store, result, point);

        let store = open(dir.path(), &crash_opts());
        let committed = !matches!(
            point,
            FaultPoint::TruncateAfterRollback | FaultPoint::TruncateAfterHeadWritten
        );
        let (lsn, state) = match committed {
            true => (at.lsn, state_at(&all, at.lsn)),
            false => (end, state_at(&all, end)),
        };
        assert_eq!(store.last_lsn(), lsn, "{point:?}");
        assert_eq!(live_pairs(&store), state, "{point:?}");
        assert_eq!(history(&store), all[..lsn as usize].to_vec(), "{point:?}");
        assert!(store.epoch_history().iter().all(|&(_, first)| first <= lsn));
        let files = store.rollbacks().unwrap();
        assert_eq!(files.len(), 1, "{point:?}");
        let file = rollback::read(&files[0]).unwrap();
        assert_eq!(file.entries, all[25..].to_vec());
        assert_no_unfinished_truncation(dir.path());
        // Finish (or redo) the truncation and go on.
        store.truncate_after(at).unwrap();
        assert_eq!(live_pairs(&store), state_at(&all, at.lsn));
        store.put(b"k", b"v").unwrap();
    }
}

/// Shrunk from the model test (it looped forever replicating): a cut
/// inside a gap of applied LSNs keeps up to the entry before the gap, and
/// the history floor comes down with it so the store still serves history
/// from its end.
#[test]
fn a_cut_inside_a_gap_keeps_the_entry_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(1 << 20, 0));
    let entry = |lsn, value: Option<&'static str>| Entry {
        position: Position { epoch: 0, lsn },
        key: "k".into(),
        value: value.map(Into::into),
        expiry: None,
    };
    store.apply(&entry(2, Some("a"))).unwrap();
    store.apply(&entry(5, Some("b"))).unwrap();
    assert_eq!(store.stats().history_floor, 4);
    let t = store.truncate_after(Position { epoch: 0, lsn: 4 }).unwrap();
    assert_eq!((t.kept.lsn, t.removed), (2, 1));
    assert_eq!(store.last_lsn(), 2);
    assert!(store.stats().history_floor <= 2);
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"a"[..]));
    assert!(matches!(store.entries_since(2, 10).unwrap(), Since::Entries(e) if e.is_empty()));
}

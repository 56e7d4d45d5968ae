//! Epoch history and log matching (Kafka KIP-101 / KAFKA-7164 cases).

mod common;

use common::{key, open, tiny, value};
use kv_storage::{Entry, Epoch, Error, Lsn, Position, Since, Store};

fn pos(epoch: Epoch, lsn: Lsn) -> Position {
    Position { epoch, lsn }
}

/// Writes `n` puts as leader of the store's current epoch.
fn write(store: &Store, n: u64) {
    for i in 0..n {
        store.put(&key(i % 5), &value(i, store.last_lsn())).unwrap();
    }
}

fn entries_after(store: &Store, after: Lsn) -> Vec<Entry> {
    match store.entries_since(after, usize::MAX).unwrap() {
        Since::Entries(e) => e,
        Since::Snapshot { .. } => panic!("expected history"),
    }
}

/// Follower side of log matching: where to truncate after asking `leader`.
fn match_point(follower: &Store, leader: &Store) -> Position {
    let mine = follower.last_position();
    let answer = leader.end_of_epoch(mine.epoch);
    let own_end = follower.end_of_epoch(answer.epoch);
    let lsn = answer.lsn.min(mine.lsn).min(own_end.lsn);
    pos(answer.epoch, lsn)
}

/// Truncates `follower` to the match point and streams the rest.
fn reconcile(follower: &Store, leader: &Store) -> u64 {
    let at = match_point(follower, leader);
    let removed = follower.truncate_after(at).unwrap().removed;
    for e in entries_after(leader, follower.last_lsn()) {
        assert!(follower.apply(&e).unwrap());
    }
    removed
}

fn assert_same_history(a: &Store, b: &Store) {
    assert_eq!(a.last_position(), b.last_position());
    assert_eq!(entries_after(a, 0), entries_after(b, 0));
    assert_eq!(a.epoch_history(), b.epoch_history());
}

#[test]
fn begin_epoch_stamps_writes_and_history_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(300, 0);
    let store = open(dir.path(), &opts);
    write(&store, 3);
    assert_eq!(store.begin_epoch(2).unwrap(), 4);
    write(&store, 4);
    assert_eq!(store.begin_epoch(5).unwrap(), 8);
    assert_eq!(store.put(b"k", b"v").unwrap(), pos(5, 8));
    let history = vec![(0, 1), (2, 4), (5, 8)];
    assert_eq!(store.epoch_history(), history);
    drop(store);
    let store = open(dir.path(), &opts);
    assert_eq!(store.epoch_history(), history);
    assert_eq!(store.epoch(), 5);
    assert!(matches!(
        store.begin_epoch(5),
        Err(Error::EpochRegression { current: 5, .. })
    ));
}

#[test]
fn an_unused_epoch_is_forgotten_on_reopen_but_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(300, 0);
    let store = open(dir.path(), &opts);
    write(&store, 2);
    store.begin_epoch(3).unwrap();
    assert_eq!(store.epoch_history(), vec![(0, 1), (3, 3)]);
    drop(store);
    let store = open(dir.path(), &opts);
    assert_eq!(store.epoch_history(), vec![(0, 1)]);
    assert!(store.begin_epoch(3).is_err());
    assert_eq!(store.put(b"k", b"v").unwrap(), pos(3, 3));
    assert_eq!(store.epoch_history(), vec![(0, 1), (3, 3)]);
}

#[test]
fn a_follower_records_the_epochs_it_applies() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(300, 0));
    let follower = open(fd.path(), &tiny(300, 0));
    leader.begin_epoch(1).unwrap();
    write(&leader, 3);
    leader.begin_epoch(4).unwrap();
    write(&leader, 3);
    follower.apply_batch(&entries_after(&leader, 0)).unwrap();
    assert_same_history(&leader, &follower);
    assert_eq!(follower.epoch_history(), vec![(1, 1), (4, 4)]);
    assert_eq!(follower.end_of_epoch(1), pos(1, 3));
    // An entry older than the epochs it follows is refused.
    let stale = Entry {
        position: pos(2, 7),
        key: "k".into(),
        value: None,
        expiry: None,
    };
    let err = follower.apply(&stale).unwrap_err();
    assert!(matches!(err, Error::InvalidEntry { lsn: 7, .. }), "{err}");
    assert_eq!(follower.last_lsn(), 6);
}

#[test]
fn end_of_epoch_answers_unknown_newer_and_older_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &tiny(300, 0));
    assert_eq!(store.end_of_epoch(0), pos(0, 0));
    assert_eq!(store.end_of_epoch(7), pos(7, 0));
    store.begin_epoch(2).unwrap();
    write(&store, 3);
    store.begin_epoch(5).unwrap();
    write(&store, 2);
    // Known epochs end where the next begins, the newest at the end.
    assert_eq!(store.end_of_epoch(2), pos(2, 3));
    assert_eq!(store.end_of_epoch(5), pos(5, 5));
    // Unknown epochs in between resolve to the largest known one below.
    assert_eq!(store.end_of_epoch(4), pos(2, 3));
    // Newer than anything here: our end.
    assert_eq!(store.end_of_epoch(9), pos(5, 5));
    // Older than anything here: nothing of it is shared.
    assert_eq!(store.end_of_epoch(1), pos(1, 0));
}

/// KIP-101's original case: a leader restarts behind (lost unsynced tail)
/// while its follower still holds that tail; the leader takes new writes
/// in a new epoch at the same LSNs. The follower must truncate, not keep
/// two histories under one LSN.
#[test]
fn a_follower_ahead_of_a_new_leader_truncates_its_tail() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old_leader = open(ld.path(), &tiny(300, 0));
    let follower = open(fd.path(), &tiny(300, 0));
    old_leader.begin_epoch(1).unwrap();
    write(&old_leader, 10);
    follower
        .apply_batch(&entries_after(&old_leader, 0))
        .unwrap();
    // The old leader loses entries 8..=10, then leads again in epoch 2.
    old_leader.truncate_after(pos(1, 7)).unwrap();
    old_leader.begin_epoch(2).unwrap();
    write(&old_leader, 4);
    assert_eq!(match_point(&follower, &old_leader), pos(1, 7));
    assert_eq!(reconcile(&follower, &old_leader), 3);
    assert_same_history(&old_leader, &follower);
    assert_eq!(follower.epoch_history(), vec![(1, 1), (2, 8)]);
}

/// KAFKA-7164: a follower that missed a whole epoch (it was down while
/// epoch 2 was written) and holds a divergent tail of epoch 1.
#[test]
fn a_follower_that_missed_an_epoch_converges() {
    let (ad, bd, cd) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, b, c) = (
        open(ad.path(), &tiny(300, 0)),
        open(bd.path(), &tiny(300, 0)),
        open(cd.path(), &tiny(300, 0)),
    );
    a.begin_epoch(1).unwrap();
    write(&a, 6);
    let shared = entries_after(&a, 0);
    b.apply_batch(&shared[..4]).unwrap();
    c.apply_batch(&shared).unwrap();
    // b leads epoch 2 (c is away), writes, then c leads epoch 3.
    b.begin_epoch(2).unwrap();
    write(&b, 3);
    c.apply_batch(&[]).unwrap();
    reconcile(&c, &b);
    c.begin_epoch(3).unwrap();
    write(&c, 2);
    // a missed epoch 2 entirely; its lsns 5..=6 of epoch 1 are divergent.
    assert_eq!(c.end_of_epoch(1), pos(1, 4));
    assert_eq!(reconcile(&a, &c), 2);
    assert_same_history(&a, &c);
    assert_eq!(a.epoch_history(), vec![(1, 1), (2, 5), (3, 8)]);
}

/// Two quick leader changes: epochs 2 and 3 begin back to back, epoch 2
/// without a single write. The empty epoch must not claim LSNs.
#[test]
fn two_quick_leader_changes_leave_no_phantom_epoch() {
    let (ld, fd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(ld.path(), &tiny(300, 0));
    let follower = open(fd.path(), &tiny(300, 0));
    leader.begin_epoch(1).unwrap();
    write(&leader, 3);
    follower.apply_batch(&entries_after(&leader, 0)).unwrap();
    leader.begin_epoch(2).unwrap();
    leader.begin_epoch(3).unwrap();
    write(&leader, 2);
    assert_eq!(leader.epoch_history(), vec![(1, 1), (3, 4)]);
    assert_eq!(leader.end_of_epoch(2), pos(1, 3));
    assert_eq!(reconcile(&follower, &leader), 0);
    assert_same_history(&leader, &follower);
}

/// The epoch file is replaced atomically (`.tmp`, fsync, rename): a crash
/// before the rename leaves the old file and a `.tmp` that open deletes; a
/// crash after it, the new one. A damaged file refuses to open.
#[test]
fn a_crash_while_writing_the_epoch_file_keeps_the_old_or_the_new_history() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(300, 0);
    let store = open(dir.path(), &opts);
    store.begin_epoch(2).unwrap();
    write(&store, 3);
    drop(store);
    let epochs = dir.path().join("EPOCHS");
    let old = std::fs::read(&epochs).unwrap();
    // Before the rename: a half-written new file under `.tmp`.
    std::fs::write(dir.path().join("EPOCHS.tmp"), &old[..old.len() / 2]).unwrap();
    let store = open(dir.path(), &opts);
    assert_eq!(store.epoch_history(), vec![(2, 1)]);
    assert!(!dir.path().join("EPOCHS.tmp").exists());
    // After the rename: the new history is there.
    store.begin_epoch(3).unwrap();
    drop(store);
    let store = open(dir.path(), &opts);
    assert_eq!(store.epoch_history(), vec![(2, 1)]);
    assert_eq!(store.epoch(), 3, "an unused epoch is remembered");
    drop(store);
    // Damage is an error, never a silently different history.
    let mut bytes = std::fs::read(&epochs).unwrap();
    bytes[6] ^= 0x10;
    std::fs::write(&epochs, bytes).unwrap();
    let err = kv_storage::Store::open(dir.path(), opts).unwrap_err();
    assert!(matches!(err, Error::Corrupted { .. }), "{err}");
}

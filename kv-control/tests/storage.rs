//! The controller's Raft storage on real files: recovery after a reopen,
//! a crash at every byte of the log, corruption, snapshots, compaction.

use std::io::Cursor;
use std::path::Path;

use kv_control::storage::{self, LogStore, OpenError};
use kv_control::{Command, ControlState, TypeConfig};
use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
    StorageHelper,
};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, Membership, SnapshotMeta, StoredMembership, Vote,
};

type Payload = EntryPayload<TypeConfig>;

fn log_id(term: u64, index: u64) -> LogId<u32> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64, payload: Payload) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(term, index),
        payload,
    }
}

/// Three commands that each change the map (versions 1, 2, 3).
fn commands() -> Vec<Command> {
    vec![
        Command::Init {
            replicas: vec![vec![0, 1], vec![1, 0]],
        },
        Command::Elect {
            partition: 0,
            leader: 1,
            epoch: 2,
            isr: vec![1],
            expect_epoch: 0,
            unclean: false,
        },
        Command::SetIsr {
            partition: 0,
            leader: 1,
            epoch: 2,
            isr: vec![0, 1],
        },
    ]
}

/// A membership entry at index 0 (where openraft's log starts), then the
/// commands from index 1.
fn command_entries(term: u64) -> Vec<Entry<TypeConfig>> {
    let voters = Membership::new(vec![[1u32].into()], None);
    let mut entries = vec![entry(term, 0, Payload::Membership(voters))];
    for (i, command) in commands().into_iter().enumerate() {
        entries.push(entry(term, i as u64 + 1, Payload::Normal(command)));
    }
    entries
}

/// The state after applying `n` of [`commands`].
fn state_after(n: usize) -> ControlState {
    let mut state = ControlState::default();
    for command in commands().iter().take(n) {
        state.apply(command);
    }
    state
}

/// Every entry in the log, as comparable (log id, payload) pairs.
async fn log_contents(log: &mut LogStore) -> Vec<(LogId<u32>, Payload)> {
    let entries = log.try_get_log_entries(..).await.unwrap();
    entries.into_iter().map(|e| (e.log_id, e.payload)).collect()
}

fn pairs(entries: &[Entry<TypeConfig>]) -> Vec<(LogId<u32>, Payload)> {
    entries
        .iter()
        .map(|e| (e.log_id, e.payload.clone()))
        .collect()
}

fn log_len(dir: &Path) -> usize {
    std::fs::metadata(dir.join("raft.log")).unwrap().len() as usize
}

#[tokio::test(flavor = "multi_thread")]
async fn reopen_restores_log_vote_committed_and_reapplies_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let entries = command_entries(1);
    {
        let (mut log, mut sm) = storage::open(dir.path()).unwrap();
        log.blocking_append(entries.clone()).await.unwrap();
        log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
        log.save_committed(Some(log_id(1, 3))).await.unwrap();
        sm.apply(entries.clone()).await.unwrap();
        assert_eq!(sm.state(), state_after(3));
    }
    let (mut log, mut sm) = storage::open(dir.path()).unwrap();
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(1, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 3)));
    assert_eq!(log_contents(&mut log).await, pairs(&entries));
    let state = log.get_log_state().await.unwrap();
    assert_eq!(
        (state.last_purged_log_id, state.last_log_id),
        (None, Some(log_id(1, 3)))
    );
    // no snapshot: the state machine starts empty, and openraft's startup
    // re-applies the committed entries from the log
    assert_eq!(sm.state(), ControlState::default());
    StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .unwrap();
    assert_eq!(sm.state(), state_after(3));
    assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(1, 3)));
}

/// What a reopened log shows: entries, last purged, committed.
type Seen = (
    Vec<(LogId<u32>, Payload)>,
    Option<LogId<u32>>,
    Option<LogId<u32>>,
);

async fn seen(log: &mut LogStore) -> Seen {
    let purged = log.get_log_state().await.unwrap().last_purged_log_id;
    (
        log_contents(log).await,
        purged,
        log.read_committed().await.unwrap(),
    )
}

/// Writes a log of varied records; returns, per record, the file length
/// once it was written and what a reopen must show from then on.
async fn write_varied_log(dir: &Path) -> Vec<(usize, Seen)> {
    let (mut log, _sm) = storage::open(dir).unwrap();
    let entries = command_entries(1);
    let mut marks = vec![(log_len(dir), seen(&mut log).await)];
    let blank = |term, index| entry(term, index, Payload::Blank);
    log.blocking_append(entries[..2].to_vec()).await.unwrap();
    marks.push((log_len(dir), seen(&mut log).await));
    log.blocking_append(entries[2..].to_vec()).await.unwrap();
    marks.push((log_len(dir), seen(&mut log).await));
    log.save_committed(Some(log_id(1, 1))).await.unwrap();
    marks.push((log_len(dir), seen(&mut log).await));
    log.truncate(log_id(1, 2)).await.unwrap();
    marks.push((log_len(dir), seen(&mut log).await));
    log.blocking_append([blank(2, 2), blank(2, 3)])
        .await
        .unwrap();
    marks.push((log_len(dir), seen(&mut log).await));
    log.purge(log_id(1, 0)).await.unwrap();
    marks.push((log_len(dir), seen(&mut log).await));
    marks
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_at_every_byte_keeps_exactly_the_whole_records() {
    let dir = tempfile::tempdir().unwrap();
    let marks = write_varied_log(dir.path()).await;
    let full = std::fs::read(dir.path().join("raft.log")).unwrap();
    assert_eq!(marks.last().unwrap().0, full.len());
    assert_eq!(marks.len(), 7, "magic and six records");
    for cut in 0..=full.len() {
        let copy = tempfile::tempdir().unwrap();
        std::fs::write(copy.path().join("raft.log"), &full[..cut]).unwrap();
        let (mut log, _sm) =
            storage::open(copy.path()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        // the last record wholly before the cut (a cut magic: the empty log)
        let (end, want) = marks
            .iter()
            .rev()
            .find(|(end, _)| *end <= cut)
            .unwrap_or(&marks[0]);
        assert_eq!(&seen(&mut log).await, want, "cut at {cut}");
        assert_eq!(
            log_len(copy.path()),
            *end,
            "cut at {cut}: file cut back to a record"
        );
    }
}

/// `raft.log` with three one-entry records; the offsets where each starts.
async fn three_records(dir: &Path) -> Vec<usize> {
    let (mut log, _sm) = storage::open(dir).unwrap();
    let mut starts = Vec::new();
    for index in 1..=3 {
        starts.push(log_len(dir));
        log.blocking_append([entry(1, index, Payload::Blank)])
            .await
            .unwrap();
    }
    starts
}

fn flip(dir: &Path, offset: usize) {
    let path = dir.join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_before_good_records_is_corruption() {
    for (name, within) in [
        ("payload", 20),
        ("length", 0),
        ("checksum", 5),
        ("header checksum", 9),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let starts = three_records(dir.path()).await;
        let before = std::fs::read(dir.path().join("raft.log")).unwrap();
        flip(dir.path(), starts[1] + within);
        let err = storage::open(dir.path())
            .err()
            .unwrap_or_else(|| panic!("{name}: opened"));
        let OpenError::Corrupted { offset, .. } = err else {
            panic!("{name}: {err}")
        };
        assert_eq!(offset, starts[1] as u64, "{name}");
        // nothing was cut: a human can still look at every byte
        assert_eq!(log_len(dir.path()), before.len(), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_the_last_record_is_cut_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let starts = three_records(dir.path()).await;
    flip(dir.path(), starts[2] + 20);
    let (mut log, _sm) = storage::open(dir.path()).unwrap();
    let ids: Vec<_> = log_contents(&mut log)
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, vec![log_id(1, 1), log_id(1, 2)]);
    assert_eq!(log_len(dir.path()), starts[2]);
    // the log goes on after the cut
    log.blocking_append([entry(2, 3, Payload::Blank)])
        .await
        .unwrap();
    drop(log);
    let (mut log, _sm) = storage::open(dir.path()).unwrap();
    assert_eq!(
        log.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 3))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zero_filled_tail_is_cut_as_torn() {
    let dir = tempfile::tempdir().unwrap();
    let starts = three_records(dir.path()).await;
    let path = dir.path().join("raft.log");
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len();
    bytes.extend(std::iter::repeat_n(0u8, 100));
    std::fs::write(&path, bytes).unwrap();
    let (mut log, _sm) = storage::open(dir.path()).unwrap();
    assert_eq!(log_contents(&mut log).await.len(), 3);
    assert_eq!(log_len(dir.path()), len);
    assert_eq!(starts.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_vote_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut log, _sm) = storage::open(dir.path()).unwrap();
        log.save_vote(&Vote::new(3, 2)).await.unwrap();
    }
    let path = dir.path().join("vote");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = storage::open(dir.path()).err().unwrap();
    assert!(
        matches!(err, OpenError::Corrupted { offset: 8, .. }),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_survives_a_reopen_and_the_log_replays_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let entries = command_entries(1);
    let built = {
        let (mut log, mut sm) = storage::open(dir.path()).unwrap();
        log.blocking_append(entries.clone()).await.unwrap();
        sm.apply(entries[..3].to_vec()).await.unwrap();
        let built = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(built.meta.last_log_id, Some(log_id(1, 2)));
        sm.apply(entries[3..].to_vec()).await.unwrap();
        log.save_committed(Some(log_id(1, 3))).await.unwrap();
        built
    };
    let (mut log, mut sm) = storage::open(dir.path()).unwrap();
    // from the snapshot: two commands applied, membership from index 0
    assert_eq!(sm.state(), state_after(2));
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 2)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, built.meta);
    assert_eq!(current.snapshot.into_inner(), built.snapshot.into_inner());
    // openraft's startup re-applies the third command from the log
    StorageHelper::new(&mut log, &mut sm)
        .get_initial_state()
        .await
        .unwrap();
    assert_eq!(sm.state(), state_after(3));
}

/// A leader's snapshot: three commands applied, built in its own dir.
async fn leaders_snapshot(dir: &Path) -> openraft::Snapshot<TypeConfig> {
    let (_log, mut sm) = storage::open(dir).unwrap();
    sm.apply(command_entries(4)).await.unwrap();
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_from_another_node_installs_and_persists() {
    let leader = tempfile::tempdir().unwrap();
    let snapshot = leaders_snapshot(leader.path()).await;
    let follower = tempfile::tempdir().unwrap();
    {
        let (_log, mut sm) = storage::open(follower.path()).unwrap();
        let mut rx = sm.subscribe();
        let mut received = sm.begin_receiving_snapshot().await.unwrap();
        *received = Cursor::new(snapshot.snapshot.get_ref().clone());
        sm.install_snapshot(&snapshot.meta, received).await.unwrap();
        assert_eq!(sm.state(), state_after(3));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), state_after(3));
        assert_eq!(sm.applied_state().await.unwrap().0, Some(log_id(4, 3)));
    }
    let (_log, mut sm) = storage::open(follower.path()).unwrap();
    assert_eq!(sm.state(), state_after(3));
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_whose_data_disagree_with_its_meta_is_refused() {
    let leader = tempfile::tempdir().unwrap();
    let snapshot = leaders_snapshot(leader.path()).await;
    let follower = tempfile::tempdir().unwrap();
    let (_log, mut sm) = storage::open(follower.path()).unwrap();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(4, 9)),
        ..snapshot.meta.clone()
    };
    let data = Box::new(Cursor::new(snapshot.snapshot.get_ref().clone()));
    assert!(sm.install_snapshot(&meta, data).await.is_err());
    assert_eq!(sm.state(), ControlState::default());
    assert!(sm.get_current_snapshot().await.unwrap().is_none());
    assert_eq!(
        sm.applied_state().await.unwrap(),
        (None, StoredMembership::default())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_publishes_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let (_log, mut sm) = storage::open(dir.path()).unwrap();
    let mut rx = sm.subscribe();
    assert_eq!(*rx.borrow_and_update(), ControlState::default());
    let replies = sm.apply(command_entries(1)).await.unwrap();
    assert_eq!(replies.len(), 4);
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), state_after(3));
}

#[tokio::test(flavor = "multi_thread")]
async fn compaction_keeps_exactly_the_live_log_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let blank = |index| entry(1, index, Payload::Blank);
    {
        let (mut log, _sm) = storage::open(dir.path()).unwrap();
        for batch in 0..15 {
            log.blocking_append((1..=100).map(|i| blank(batch * 100 + i)))
                .await
                .unwrap();
        }
        log.save_committed(Some(log_id(1, 1400))).await.unwrap();
        let before = log_len(dir.path());
        // 1200 dead entries, a fifth of the file live: rewritten
        log.purge(log_id(1, 1200)).await.unwrap();
        assert!(
            log_len(dir.path()) < before / 3,
            "{} of {before}",
            log_len(dir.path())
        );
        // the log goes on in the new file
        log.blocking_append([blank(1501)]).await.unwrap();
    }
    let (mut log, _sm) = storage::open(dir.path()).unwrap();
    let ids: Vec<u64> = log_contents(&mut log)
        .await
        .iter()
        .map(|(id, _)| id.index)
        .collect();
    assert_eq!(ids, (1201..=1501).collect::<Vec<_>>());
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1200)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1501)));
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1400)));
}

#[tokio::test(flavor = "multi_thread")]
async fn few_dead_entries_do_not_compact() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _sm) = storage::open(dir.path()).unwrap();
    log.blocking_append((1..=500).map(|i| entry(1, i, Payload::Blank)))
        .await
        .unwrap();
    let before = log_len(dir.path());
    log.purge(log_id(1, 499)).await.unwrap();
    assert!(
        log_len(dir.path()) > before,
        "only the purge record was added"
    );
}

//! The follower side of a replication stream, as a sans-IO state machine.
//!
//! [`FollowerMachine`] decides what a replica pulling from a source (its
//! leader, or for a recovering leader its most advanced follower) does next.
//! It never touches a socket, a clock or a store: the transport feeds it
//! events (a tick with the current instant, connected, disconnected, a
//! received message together with the replica's current position) and
//! executes the [`Action`]s it returns. That keeps the rules testable
//! without sockets or sleeps:
//!
//! - reconnect with exponential backoff (reset once a stream delivers);
//! - log matching first (`docs/replication.md`): every stream opens with
//!   the source's `LogMatch`; a source older than the highest epoch the
//!   replica has seen is refused (fencing), and the replica truncates what
//!   the source's history does not share ([`super::epochs`]) into a
//!   rollback file before anything is applied;
//! - apply entries only in LSN order: a batch that does not start right
//!   after the replica's position breaks the stream, which resubscribes;
//! - a snapshot is staged beside the replica's data and replaces it only
//!   at its end, and only when it is not behind the replica (the no-wipe
//!   rule of DESIGN §5): a snapshot older than what the replica holds is
//!   refused, counted and the stream dropped;
//! - acknowledge the applied position after every batch and heartbeat;
//! - check every message before it reaches the store
//!   ([`check_message`]): the right partition, positions that make sense,
//!   keys and values within the limits and valid kv-codec encodings;
//! - a leader catching up from a follower ([`FollowerMachine::recovering`])
//!   never takes a snapshot while it holds data: a snapshot replaces the
//!   replica's data, and nothing proves that the follower's compacted
//!   history contains every entry the leader acknowledged, so it refuses
//!   and logs instead (DESIGN §5 no-wipe rule).

use std::time::{Duration, Instant};

use kv_router::PartitionId;
use tracing::warn;

use super::epochs;

use crate::error::ErrorCode;
use crate::protocol::limits;
use crate::protocol::{Entry, Epoch, Lsn, Position, Response};

/// First reconnect delay.
pub const MIN_BACKOFF: Duration = Duration::from_millis(50);
/// Reconnect delays double up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the transport must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a connection to the source.
    Connect,
    /// Send a subscribe request for entries after `after`.
    Subscribe {
        /// The replica's last applied position.
        after: Position,
        /// The highest epoch the replica has seen.
        epoch: Epoch,
    },
    /// Truncate the replica's history after `keep`, keeping what goes in a
    /// rollback file.
    Truncate {
        /// The last LSN kept.
        keep: Lsn,
    },
    /// The source is at this epoch: remember it (fencing).
    SeenEpoch(Epoch),
    /// Apply these entries, in order, to the replica.
    Apply(Vec<Entry>),
    /// A snapshot taken as of `last` follows: stage it beside the live
    /// data (which stays as it is until the end).
    BeginSnapshot {
        /// The position the snapshot is current as of.
        last: Position,
    },
    /// Stage these snapshot entries.
    Stage(Vec<Entry>),
    /// The snapshot is complete: switch it in (the replica's position
    /// becomes `last`).
    EndSnapshot {
        /// The position the snapshot is current as of.
        last: Position,
    },
    /// Acknowledge the replica's applied position to the source.
    Ack,
    /// Close the connection; the machine will reconnect after a backoff.
    Disconnect {
        /// Why, for the log.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting to (re)connect at the instant given.
    Idle { retry_at: Instant },
    /// A connection attempt is under way.
    Connecting,
    /// Subscribed, waiting for the source's `LogMatch`.
    Matching,
    /// Matched; `snapshot` is the announced position while a snapshot is
    /// being received.
    Streaming { snapshot: Option<Position> },
}

/// What the machine needs to know about the replica it feeds.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    /// The replica's last applied position.
    pub position: Position,
    /// The highest epoch it has seen.
    pub epoch: Epoch,
    /// With a `LogMatch`: where the answer's epoch ends in the replica's
    /// own history (its store's `end_of_epoch`).
    pub own_end: Option<Position>,
}

/// The follower side of one partition's replication.
#[derive(Debug)]
pub struct FollowerMachine {
    state: State,
    backoff: Duration,
    /// The source's last position as last heard.
    pub source_last: Position,
    /// Full resyncs (snapshots installed) since start.
    pub full_resyncs: u64,
    /// Snapshots refused because they would have moved the replica back
    /// or discarded its entries.
    pub refused_snapshots: u64,
    /// Truncations log matching asked for.
    pub truncations: u64,
    /// Whether this is a follower of its leader (fencing; a snapshot may
    /// replace its data) rather than a leader recovering from a peer (no
    /// fencing; never a snapshot over data it holds).
    snapshot_over_data: bool,
}

impl FollowerMachine {
    /// A machine that will connect at the first tick.
    pub fn new(now: Instant) -> FollowerMachine {
        FollowerMachine {
            state: State::Idle { retry_at: now },
            backoff: MIN_BACKOFF,
            source_last: Position::default(),
            full_resyncs: 0,
            refused_snapshots: 0,
            truncations: 0,
            snapshot_over_data: true,
        }
    }

    /// A machine for a leader catching up from one of its followers: it
    /// refuses any snapshot while the replica holds data.
    pub fn recovering(now: Instant) -> FollowerMachine {
        FollowerMachine {
            snapshot_over_data: false,
            ..FollowerMachine::new(now)
        }
    }

    /// Whether a stream is open now.
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. } | State::Matching)
    }

    /// Whether log matching is done and entries flow.
    pub fn is_matched(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// Whether a snapshot is being received.
    pub fn in_snapshot(&self) -> bool {
        matches!(self.state, State::Streaming { snapshot: Some(_) })
    }

    /// When the machine next wants a tick, if it is waiting.
    pub fn next_tick(&self) -> Option<Instant> {
        match self.state {
            State::Idle { retry_at } => Some(retry_at),
            _ => None,
        }
    }

    /// Time passes: connect when the backoff has run out.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        match self.state {
            State::Idle { retry_at } if now >= retry_at => {
                self.state = State::Connecting;
                Some(Action::Connect)
            }
            _ => None,
        }
    }

    /// The connection is open: subscribe after the replica's position,
    /// telling the highest epoch it has seen. A recovering leader pulls
    /// from its peers, which may not have heard of its newest epoch yet
    /// (it began one and lost its entries): it sends epoch 0 and fences
    /// nobody, since it follows no one.
    pub fn connected(&mut self, position: Position, epoch: Epoch) -> Action {
        self.state = State::Matching;
        let epoch = if self.snapshot_over_data { epoch } else { 0 };
        Action::Subscribe {
            after: position,
            epoch,
        }
    }

    /// The connection failed or closed: wait and try again.
    pub fn disconnected(&mut self, now: Instant) {
        self.state = State::Idle {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// A message arrived on the stream; `local` is the replica as it is now.
    pub fn on_message(&mut self, message: Response, local: Local) -> Vec<Action> {
        let position = local.position;
        let (snapshot, message) = match (self.state, message) {
            (State::Matching, Response::LogMatch { epoch, end, .. }) => {
                return self.on_log_match(epoch, end, local);
            }
            (State::Matching, Response::Error { code, message, .. }) => {
                return vec![source_refused(code, &message)];
            }
            (State::Matching, other) => {
                return vec![disconnect(&format!(
                    "a stream must open with LogMatch, got {other:?}"
                ))];
            }
            (State::Streaming { snapshot }, message) => (snapshot, message),
            _ => return vec![disconnect("message outside a stream")],
        };
        match message {
            Response::Entries {
                source_last,
                entries,
                ..
            } => self.on_entries(snapshot, source_last, entries, position),
            Response::SnapshotStart { .. } if snapshot.is_some() => {
                vec![disconnect("a snapshot started inside a snapshot")]
            }
            Response::SnapshotStart { last, .. } => self.on_snapshot_start(last, position),
            Response::SnapshotEnd { last, .. } if snapshot == Some(last) => {
                self.state = State::Streaming { snapshot: None };
                self.source_last = self.source_last.max(last);
                vec![Action::EndSnapshot { last }, Action::Ack]
            }
            Response::SnapshotEnd { last, .. } => vec![disconnect(&format!(
                "a snapshot end at {last:?} that matches no snapshot start ({snapshot:?})"
            ))],
            Response::Error { code, message, .. } => vec![source_refused(code, &message)],
            other => vec![disconnect(&format!("unexpected stream message {other:?}"))],
        }
    }

    /// The source's answer to the subscription: fence, truncate what it
    /// does not share, and stream (or resubscribe after cutting below
    /// where it will start).
    fn on_log_match(&mut self, epoch: Epoch, end: Position, local: Local) -> Vec<Action> {
        if epoch < local.epoch && self.snapshot_over_data {
            return vec![disconnect(&format!(
                "source at epoch {epoch} is older than epoch {} seen here (a superseded leader)",
                local.epoch
            ))];
        }
        let Some(own_end) = local.own_end else {
            return vec![disconnect(
                "log matching without this replica's end of the epoch",
            )];
        };
        let cut = epochs::truncation_point(local.position, own_end, end);
        let from = local.position.lsn.min(end.lsn);
        let mut actions = vec![Action::SeenEpoch(epoch)];
        if cut.keep < local.position.lsn {
            self.truncations += 1;
            actions.push(Action::Truncate { keep: cut.keep });
        }
        if !cut.settled || cut.keep < from {
            // Ask again from the new last entry: it matches at once.
            self.backoff = MIN_BACKOFF;
            actions.push(disconnect("resubscribing after a truncation"));
        } else {
            self.state = State::Streaming { snapshot: None };
        }
        actions
    }

    fn on_entries(
        &mut self,
        snapshot: Option<Position>,
        source_last: Position,
        entries: Vec<Entry>,
        position: Position,
    ) -> Vec<Action> {
        self.source_last = source_last;
        self.backoff = MIN_BACKOFF;
        if entries.is_empty() {
            return vec![Action::Ack];
        }
        match snapshot {
            None if !continues(position, &entries) => {
                vec![disconnect("entries do not continue the replica's history")]
            }
            None => vec![Action::Apply(entries), Action::Ack],
            Some(last) if entries.iter().any(|e| e.position.lsn > last.lsn) => {
                vec![disconnect(
                    "snapshot entries beyond the snapshot's position",
                )]
            }
            Some(_) => vec![Action::Stage(entries)],
        }
    }

    fn on_snapshot_start(&mut self, last: Position, position: Position) -> Vec<Action> {
        let refusal = if last < position {
            Some(format!(
                "refused a snapshot at {last:?} that is behind this replica at {position:?}"
            ))
        } else if !self.snapshot_over_data && position.lsn > 0 {
            Some(format!(
                "refused a snapshot at {last:?}: it would discard the entries this recovering leader holds (up to {position:?}), and without replication epochs nothing proves the source holds them all"
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.refused_snapshots += 1;
            warn!(%reason, "snapshot refused (no-wipe rule)");
            return vec![disconnect(&reason)];
        }
        self.full_resyncs += 1;
        self.state = State::Streaming {
            snapshot: Some(last),
        };
        vec![Action::BeginSnapshot { last }]
    }
}

/// Whether `entries` start right after `position`, strictly ascending.
fn continues(position: Position, entries: &[Entry]) -> bool {
    let mut expected = position.lsn + 1;
    entries.iter().all(|e| {
        let ok = e.position.lsn == expected && e.position.epoch >= position.epoch;
        expected += 1;
        ok
    })
}

/// Checks a stream message before anything of it reaches the store: it
/// must be about `partition`, its entries must be in ascending LSN order
/// and not beyond the source's announced position, keys non-empty (except
/// a tombstone: the snapshot marker that stores of earlier versions hold
/// in their history) and within the key
/// limit, and values valid kv-codec encodings within the value limit of
/// `max_frame_bytes`. The `Err` says what is wrong.
pub fn check_message(
    partition: PartitionId,
    message: &Response,
    max_frame_bytes: usize,
) -> Result<(), String> {
    let (about, entries, source_last) = match message {
        Response::Entries {
            partition,
            source_last,
            entries,
        } => (*partition, entries.as_slice(), *source_last),
        Response::SnapshotStart { partition, .. }
        | Response::SnapshotEnd { partition, .. }
        | Response::LogMatch { partition, .. } => (*partition, &[][..], Position::default()),
        _ => return Ok(()),
    };
    if about != partition {
        return Err(format!(
            "a message about partition {about} on the stream of partition {partition}"
        ));
    }
    let mut previous = 0;
    for e in entries {
        let lsn = e.position.lsn;
        if lsn <= previous || lsn > source_last.lsn {
            return Err(format!(
                "entry at LSN {lsn} out of order or beyond the source's {source_last:?}"
            ));
        }
        previous = lsn;
        check_entry(e, max_frame_bytes)?;
    }
    Ok(())
}

fn check_entry(e: &Entry, max_frame_bytes: usize) -> Result<(), String> {
    let lsn = e.position.lsn;
    if e.key.is_empty() && e.value.is_some() {
        return Err(format!("entry at LSN {lsn} has an empty key"));
    }
    if e.key.len() > limits::max_key_bytes() {
        return Err(format!("entry at LSN {lsn}: key over the limit"));
    }
    if let Some(value) = &e.value {
        if value.len() > limits::max_value_bytes(max_frame_bytes) {
            return Err(format!("entry at LSN {lsn}: value over the limit"));
        }
        kv_codec::validate(value)
            .map_err(|err| format!("entry at LSN {lsn}: value is not a valid encoding: {err}"))?;
    }
    Ok(())
}

fn disconnect(reason: &str) -> Action {
    Action::Disconnect {
        reason: reason.to_string(),
    }
}

fn source_refused(code: ErrorCode, message: &str) -> Action {
    disconnect(&format!("source refused the stream ({code:?}): {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pos(lsn: u64) -> Position {
        Position { epoch: 1, lsn }
    }

    fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
        range
            .map(|lsn| Entry {
                position: pos(lsn),
                key: Bytes::from(format!("k{lsn}")),
                value: Some(Bytes::from_static(b"v")),
                expiry: None,
            })
            .collect()
    }

    fn batch(range: std::ops::RangeInclusive<u64>, last: u64) -> Response {
        Response::Entries {
            partition: 0,
            source_last: pos(last),
            entries: entries(range),
        }
    }

    fn snapshot_start(last: u64) -> Response {
        Response::SnapshotStart {
            partition: 0,
            last: pos(last),
            reason: "test".into(),
        }
    }

    /// A replica at `(1, lsn)` whose history is all epoch 1.
    fn local(lsn: u64) -> Local {
        Local {
            position: pos(lsn),
            epoch: 1,
            own_end: Some(pos(lsn)),
        }
    }

    fn log_match(epoch: Epoch, end: u64) -> Response {
        Response::LogMatch {
            partition: 0,
            epoch,
            end: pos(end),
        }
    }

    fn streaming(now: Instant) -> FollowerMachine {
        let mut m = FollowerMachine::new(now);
        assert_eq!(m.tick(now), Some(Action::Connect));
        let subscribe = Action::Subscribe {
            after: pos(0),
            epoch: 1,
        };
        assert_eq!(m.connected(pos(0), 1), subscribe);
        assert_eq!(
            m.on_message(log_match(1, 0), local(0)),
            vec![Action::SeenEpoch(1)]
        );
        m
    }

    #[test]
    fn backs_off_exponentially_up_to_the_cap() {
        let t0 = Instant::now();
        let mut m = FollowerMachine::new(t0);
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            assert_eq!(m.tick(now), Some(Action::Connect));
            m.disconnected(now);
            let next = m.next_tick().unwrap();
            assert_eq!(m.tick(next - Duration::from_millis(1)), None);
            delays.push(next - now);
            now = next;
        }
        assert_eq!(delays[0], MIN_BACKOFF);
        assert_eq!(delays[1], MIN_BACKOFF * 2);
        assert_eq!(*delays.last().unwrap(), MAX_BACKOFF);
    }

    #[test]
    fn applies_contiguous_entries_and_acks() {
        let mut m = streaming(Instant::now());
        let actions = m.on_message(batch(1..=3, 3), local(0));
        assert_eq!(actions, vec![Action::Apply(entries(1..=3)), Action::Ack]);
        assert_eq!(m.source_last, pos(3));
    }

    #[test]
    fn a_gap_breaks_the_stream() {
        let mut m = streaming(Instant::now());
        let actions = m.on_message(batch(5..=6, 6), local(3));
        assert!(matches!(actions.as_slice(), [Action::Disconnect { .. }]));
    }

    #[test]
    fn heartbeat_updates_source_position_and_acks() {
        let mut m = streaming(Instant::now());
        let heartbeat = Response::Entries {
            partition: 0,
            source_last: pos(42),
            entries: Vec::new(),
        };
        let actions = m.on_message(heartbeat, local(0));
        assert_eq!(actions, vec![Action::Ack]);
        assert_eq!(m.source_last, pos(42));
    }

    #[test]
    fn snapshot_behind_the_replica_is_refused() {
        let mut m = streaming(Instant::now());
        let start = snapshot_start(5);
        let actions = m.on_message(start, local(9));
        assert!(matches!(actions.as_slice(), [Action::Disconnect { .. }]));
        assert_eq!(m.refused_snapshots, 1);
        assert_eq!(m.full_resyncs, 0);
    }

    #[test]
    fn snapshot_install_sequence() {
        let mut m = streaming(Instant::now());
        let start = snapshot_start(10);
        assert_eq!(
            m.on_message(start, local(2)),
            vec![Action::BeginSnapshot { last: pos(10) }]
        );
        // Snapshot entries have gaps (only live records), are staged and
        // not acked.
        let chunk = Response::Entries {
            partition: 0,
            source_last: pos(10),
            entries: [entries(3..=3), entries(7..=7)].concat(),
        };
        let actions = m.on_message(chunk, local(0));
        assert!(matches!(actions.as_slice(), [Action::Stage(e)] if e.len() == 2));
        let end = Response::SnapshotEnd {
            partition: 0,
            last: pos(10),
        };
        assert_eq!(
            m.on_message(end, local(7)),
            vec![Action::EndSnapshot { last: pos(10) }, Action::Ack]
        );
        assert_eq!(m.full_resyncs, 1);
        // Back to normal streaming: contiguity is enforced again.
        let actions = m.on_message(batch(12..=12, 12), local(10));
        assert!(matches!(actions.as_slice(), [Action::Disconnect { .. }]));
    }

    #[test]
    fn source_error_disconnects() {
        let mut m = streaming(Instant::now());
        let err = Response::Error {
            code: ErrorCode::Recovering,
            leader: None,
            message: "recovering".into(),
        };
        assert!(matches!(
            m.on_message(err, local(0)).as_slice(),
            [Action::Disconnect { .. }]
        ));
    }

    #[test]
    fn a_recovering_leader_with_data_refuses_any_snapshot() {
        let now = Instant::now();
        let mut m = FollowerMachine::recovering(now);
        assert_eq!(m.tick(now), Some(Action::Connect));
        m.connected(pos(5), 1);
        m.on_message(log_match(1, 5), local(5));
        let actions = m.on_message(snapshot_start(1005), local(5));
        assert!(matches!(actions.as_slice(), [Action::Disconnect { .. }]));
        assert_eq!(m.refused_snapshots, 1);
        // An empty leader has nothing to lose: it takes the snapshot.
        let mut m = FollowerMachine::recovering(now);
        m.tick(now);
        m.connected(pos(0), 1);
        m.on_message(log_match(1, 0), local(0));
        assert_eq!(
            m.on_message(snapshot_start(9), local(0)),
            vec![Action::BeginSnapshot { last: pos(9) }]
        );
    }

    #[test]
    fn a_snapshot_end_must_match_its_start() {
        let mut m = streaming(Instant::now());
        let start = snapshot_start(10);
        assert_eq!(
            m.on_message(start, local(2)),
            vec![Action::BeginSnapshot { last: pos(10) }]
        );
        let beyond = Response::Entries {
            partition: 0,
            source_last: pos(20),
            entries: entries(11..=11),
        };
        assert!(matches!(
            m.on_message(beyond, local(0)).as_slice(),
            [Action::Disconnect { .. }]
        ));
        let mut m = streaming(Instant::now());
        let start = snapshot_start(10);
        m.on_message(start, local(2));
        let end = Response::SnapshotEnd {
            partition: 0,
            last: pos(1010),
        };
        assert!(matches!(
            m.on_message(end, local(0)).as_slice(),
            [Action::Disconnect { .. }]
        ));
        let stray_end = Response::SnapshotEnd {
            partition: 0,
            last: pos(3),
        };
        let mut m = streaming(Instant::now());
        assert!(matches!(
            m.on_message(stray_end, local(0)).as_slice(),
            [Action::Disconnect { .. }]
        ));
    }

    #[test]
    fn a_stream_opens_with_log_matching() {
        let now = Instant::now();
        // Anything before LogMatch breaks the stream.
        let mut m = FollowerMachine::new(now);
        m.tick(now);
        m.connected(pos(3), 1);
        let early = m.on_message(batch(4..=4, 4), local(3));
        assert!(matches!(early.as_slice(), [Action::Disconnect { .. }]));
        // A source older than what the replica has seen is refused.
        let mut m = FollowerMachine::new(now);
        m.tick(now);
        m.connected(pos(3), 2);
        let seen_two = Local {
            epoch: 2,
            ..local(3)
        };
        let stale = m.on_message(log_match(1, 3), seen_two);
        assert!(matches!(stale.as_slice(), [Action::Disconnect { .. }]));
        // A source that ends our epoch earlier: truncate, then stream on.
        let mut m = FollowerMachine::new(now);
        m.tick(now);
        m.connected(pos(8), 1);
        assert_eq!(
            m.on_message(log_match(2, 5), local(8)),
            vec![Action::SeenEpoch(2), Action::Truncate { keep: 5 }]
        );
        assert_eq!(m.truncations, 1);
        let next = Response::Entries {
            partition: 0,
            source_last: Position { epoch: 2, lsn: 6 },
            entries: vec![Entry {
                position: Position { epoch: 2, lsn: 6 },
                key: Bytes::from_static(b"k"),
                value: None,
                expiry: None,
            }],
        };
        assert!(matches!(
            m.on_message(next, local(5)).as_slice(),
            [Action::Apply(_), Action::Ack]
        ));
    }

    #[test]
    fn messages_are_checked_before_they_reach_the_store() {
        const FRAME: usize = 16 << 20;
        let valid = Bytes::from(kv_codec::Value::from_user_input("42").encode());
        let valid_entries = |range: std::ops::RangeInclusive<u64>| -> Vec<Entry> {
            entries(range)
                .into_iter()
                .map(|e| Entry {
                    value: Some(valid.clone()),
                    ..e
                })
                .collect()
        };
        let good = |last| Response::Entries {
            partition: 0,
            source_last: pos(last),
            entries: valid_entries(1..=3),
        };
        assert_eq!(check_message(0, &good(3), FRAME), Ok(()));
        assert!(
            check_message(1, &good(3), FRAME).is_err(),
            "wrong partition"
        );
        assert!(check_message(0, &good(2), FRAME).is_err(), "beyond source");
        let mut unordered = valid_entries(1..=2);
        unordered.reverse();
        let unordered = Response::Entries {
            partition: 0,
            source_last: pos(9),
            entries: unordered,
        };
        assert!(check_message(0, &unordered, FRAME).is_err());
        let with = |key: &'static [u8], value: Option<&'static [u8]>| Response::Entries {
            partition: 0,
            source_last: pos(9),
            entries: vec![Entry {
                position: pos(1),
                key: Bytes::from_static(key),
                value: value.map(Bytes::from_static),
                expiry: None,
            }],
        };
        let valid = kv_codec::Value::from_user_input("42").encode();
        let valid: &'static [u8] = Vec::leak(valid);
        assert_eq!(check_message(0, &with(b"k", Some(valid)), FRAME), Ok(()));
        assert!(check_message(0, &with(b"k", Some(b"\xff\xff")), FRAME).is_err());
        assert!(check_message(0, &with(b"", Some(valid)), FRAME).is_err());
        // An older version's snapshot marker: an empty key, tombstone.
        assert_eq!(check_message(0, &with(b"", None), FRAME), Ok(()));
        let start = Response::SnapshotStart {
            partition: 2,
            last: pos(1),
            reason: String::new(),
        };
        assert!(check_message(0, &start, FRAME).is_err());
    }
}

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
//! - apply entries only in LSN order: a batch that does not start right
//!   after the replica's position breaks the stream, which resubscribes;
//! - a snapshot replaces the replica's data only when it is not behind the
//!   replica (the no-wipe rule of DESIGN §5): a snapshot older than what
//!   the replica holds is refused, counted and the stream dropped;
//! - acknowledge the applied position after every batch and heartbeat.

use std::time::{Duration, Instant};

use kv_storage::{Entry, Position};

use crate::error::ErrorCode;
use crate::protocol::Response;

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
    },
    /// Apply these entries, in order, to the replica.
    Apply(Vec<Entry>),
    /// Drop the replica's data: a snapshot follows.
    BeginSnapshot,
    /// The snapshot is complete as of `last`: record that position.
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
    /// Subscribed; `in_snapshot` while a snapshot is being received.
    Streaming { in_snapshot: bool },
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
    /// Snapshots refused because they would have moved the replica back.
    pub refused_snapshots: u64,
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
        }
    }

    /// Whether a stream is open now.
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// Whether a snapshot is being received.
    pub fn in_snapshot(&self) -> bool {
        matches!(self.state, State::Streaming { in_snapshot: true })
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

    /// The connection is open: subscribe after the replica's position.
    pub fn connected(&mut self, position: Position) -> Action {
        self.state = State::Streaming { in_snapshot: false };
        Action::Subscribe { after: position }
    }

    /// The connection failed or closed: wait and try again.
    pub fn disconnected(&mut self, now: Instant) {
        self.state = State::Idle {
            retry_at: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    /// A message arrived on the stream; `position` is the replica's current
    /// last applied position.
    pub fn on_message(&mut self, message: Response, position: Position) -> Vec<Action> {
        let State::Streaming { in_snapshot } = self.state else {
            return vec![disconnect("message outside a stream")];
        };
        match message {
            Response::Entries {
                source_last,
                entries,
                ..
            } => self.on_entries(in_snapshot, source_last, entries, position),
            Response::SnapshotStart { last, .. } => self.on_snapshot_start(last, position),
            Response::SnapshotEnd { last, .. } if in_snapshot => {
                self.state = State::Streaming { in_snapshot: false };
                self.source_last = self.source_last.max(last);
                vec![Action::EndSnapshot { last }, Action::Ack]
            }
            Response::Error { code, message, .. } => vec![source_refused(code, &message)],
            other => vec![disconnect(&format!("unexpected stream message {other:?}"))],
        }
    }

    fn on_entries(
        &mut self,
        in_snapshot: bool,
        source_last: Position,
        entries: Vec<Entry>,
        position: Position,
    ) -> Vec<Action> {
        self.source_last = source_last;
        self.backoff = MIN_BACKOFF;
        if entries.is_empty() {
            return vec![Action::Ack];
        }
        if !in_snapshot && !continues(position, &entries) {
            return vec![disconnect("entries do not continue the replica's history")];
        }
        if in_snapshot {
            vec![Action::Apply(entries)]
        } else {
            vec![Action::Apply(entries), Action::Ack]
        }
    }

    fn on_snapshot_start(&mut self, last: Position, position: Position) -> Vec<Action> {
        if last < position {
            self.refused_snapshots += 1;
            return vec![disconnect(&format!(
                "refused a snapshot at {last:?} that is behind this replica at {position:?}"
            ))];
        }
        self.full_resyncs += 1;
        self.state = State::Streaming { in_snapshot: true };
        vec![Action::BeginSnapshot]
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

    fn streaming(now: Instant) -> FollowerMachine {
        let mut m = FollowerMachine::new(now);
        assert_eq!(m.tick(now), Some(Action::Connect));
        assert_eq!(m.connected(pos(0)), Action::Subscribe { after: pos(0) });
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
        let actions = m.on_message(batch(1..=3, 3), pos(0));
        assert_eq!(actions, vec![Action::Apply(entries(1..=3)), Action::Ack]);
        assert_eq!(m.source_last, pos(3));
    }

    #[test]
    fn a_gap_breaks_the_stream() {
        let mut m = streaming(Instant::now());
        let actions = m.on_message(batch(5..=6, 6), pos(3));
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
        let actions = m.on_message(heartbeat, pos(0));
        assert_eq!(actions, vec![Action::Ack]);
        assert_eq!(m.source_last, pos(42));
    }

    #[test]
    fn snapshot_behind_the_replica_is_refused() {
        let mut m = streaming(Instant::now());
        let start = Response::SnapshotStart {
            partition: 0,
            last: pos(5),
            reason: "test".into(),
        };
        let actions = m.on_message(start, pos(9));
        assert!(matches!(actions.as_slice(), [Action::Disconnect { .. }]));
        assert_eq!(m.refused_snapshots, 1);
        assert_eq!(m.full_resyncs, 0);
    }

    #[test]
    fn snapshot_install_sequence() {
        let mut m = streaming(Instant::now());
        let start = Response::SnapshotStart {
            partition: 0,
            last: pos(10),
            reason: "test".into(),
        };
        assert_eq!(m.on_message(start, pos(2)), vec![Action::BeginSnapshot]);
        // Snapshot entries have gaps (only live records) and are not acked.
        let chunk = Response::Entries {
            partition: 0,
            source_last: pos(10),
            entries: [entries(3..=3), entries(7..=7)].concat(),
        };
        let actions = m.on_message(chunk, pos(0));
        assert!(matches!(actions.as_slice(), [Action::Apply(e)] if e.len() == 2));
        let end = Response::SnapshotEnd {
            partition: 0,
            last: pos(10),
        };
        assert_eq!(
            m.on_message(end, pos(7)),
            vec![Action::EndSnapshot { last: pos(10) }, Action::Ack]
        );
        assert_eq!(m.full_resyncs, 1);
        // Back to normal streaming: contiguity is enforced again.
        let actions = m.on_message(batch(12..=12, 12), pos(10));
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
            m.on_message(err, pos(0)).as_slice(),
            [Action::Disconnect { .. }]
        ));
    }
}

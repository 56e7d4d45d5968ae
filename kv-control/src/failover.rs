//! The controller leader's decisions: which nodes have failed, which
//! partitions need a new leader and whom to elect, which in-sync sets to
//! record. Sans-IO: callers feed heartbeats with an injected `now` and
//! propose the [`Command`]s [`plan`] returns.
//!
//! # Timing
//!
//! A node's heartbeat, answered by the controller leader, renews the
//! node's lease for `lease` from the moment the node *sent* it. The
//! controller declares the node failed only when `lease + margin` has
//! passed since it last *received* one (or since it became leader, for a
//! node it has not heard from yet). A heartbeat is received after it was
//! sent, so the node's lease has lapsed before the controller acts, as
//! long as the two clocks advance at about the same rate (drift below
//! `margin` over one `lease`). That is the assumption failover rests on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kv_router::{NodeId, PartitionId};
use serde::{Deserialize, Serialize};

use crate::state::{Command, ControlState, Epoch};

/// A replica's history position: its last entry's `(epoch, lsn)`.
pub type Position = (Epoch, u64);

/// What a node says about one of its replicas in a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaReport {
    /// The partition.
    pub partition: PartitionId,
    /// Its last entry's position.
    pub position: Position,
    /// The highest epoch it has seen.
    pub epoch: Epoch,
    /// When it leads and takes writes: its in-sync set, itself included.
    pub in_sync: Option<Vec<NodeId>>,
}

/// How long the controller waits before it declares a silent node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A partition leader's lease, renewed by each answered heartbeat.
    pub lease: Duration,
    /// The extra wait before the controller acts on a lapsed lease.
    pub margin: Duration,
}

impl Timing {
    /// Silence longer than this means failed.
    pub fn failure_after(&self) -> Duration {
        self.lease + self.margin
    }
}

/// The controller leader's view of the nodes: when each was last heard
/// and what it reported. Reset whenever this node becomes leader.
#[derive(Debug, Clone)]
pub struct Liveness {
    since: Instant,
    heard: BTreeMap<NodeId, Instant>,
    reports: BTreeMap<NodeId, Vec<ReplicaReport>>,
    /// Nodes that said they are stopping, until they are heard again.
    departed: BTreeSet<NodeId>,
}

impl Liveness {
    /// A view that starts at `now` (the start of a leadership): every node
    /// is given a whole failure timeout from here.
    pub fn new(now: Instant) -> Liveness {
        Liveness {
            since: now,
            heard: BTreeMap::new(),
            reports: BTreeMap::new(),
            departed: BTreeSet::new(),
        }
    }

    /// Records a heartbeat from `node` received at `now`.
    pub fn heard(&mut self, node: NodeId, now: Instant, replicas: Vec<ReplicaReport>) {
        self.heard.insert(node, now);
        self.reports.insert(node, replicas);
        self.departed.remove(&node);
    }

    /// Forgets what `node` reported (it said it is stopping): it is failed
    /// from now on, and is never elected.
    pub fn departed(&mut self, node: NodeId) {
        self.reports.remove(&node);
        self.departed.insert(node);
    }

    /// Whether `node` has been silent for longer than the timing allows.
    pub fn is_failed(&self, node: NodeId, now: Instant, timing: &Timing) -> bool {
        if self.departed.contains(&node) {
            return true;
        }
        let last = self.heard.get(&node).copied().unwrap_or(self.since);
        now.saturating_duration_since(last) > timing.failure_after()
    }

    /// How many entries `node`'s replica of `p` lacks against `leader`'s
    /// last reported position (by LSN), or `None` when this view has no
    /// report of either (the controller changed since the leader was last
    /// heard of).
    pub fn behind(&self, p: PartitionId, node: NodeId, leader: NodeId) -> Option<u64> {
        let own = self.report(node, p)?.position.1;
        let theirs = self.report(leader, p)?.position.1;
        Some(theirs.saturating_sub(own))
    }

    /// True when `node` has reported but holds no working replica of `p`
    /// (its store failed to open): it cannot lead `p` although it is alive.
    pub fn lacks(&self, node: NodeId, p: PartitionId) -> bool {
        self.reports
            .get(&node)
            .is_some_and(|r| !r.iter().any(|r| r.partition == p))
    }

    /// What `node` last said about partition `p`.
    pub fn report(&self, node: NodeId, p: PartitionId) -> Option<&ReplicaReport> {
        self.reports.get(&node)?.iter().find(|r| r.partition == p)
    }
}

/// The commands the controller leader should propose now: an election for
/// every partition whose leader has failed and that has a live in-sync
/// replica, and an in-sync set update for every live leader whose report
/// differs from the record, or which began an epoch the record lacks (a
/// leader writes only in an epoch the map records, so that every later
/// election, which picks an epoch above the record, begins above it).
pub fn plan(state: &ControlState, live: &Liveness, now: Instant, timing: &Timing) -> Vec<Command> {
    let failed: BTreeSet<NodeId> = state
        .partitions
        .iter()
        .flat_map(|r| r.replicas.iter().copied())
        .filter(|&n| live.is_failed(n, now, timing))
        .collect();
    let mut commands = Vec::new();
    for (p, record) in state.partitions.iter().enumerate() {
        let Ok(p) = PartitionId::try_from(p) else {
            break;
        };
        let Some(leader) = record.leader() else {
            continue;
        };
        // Down for this partition: failed, or alive with its store failed.
        let down: BTreeSet<NodeId> = record
            .replicas
            .iter()
            .copied()
            .filter(|&n| failed.contains(&n) || live.lacks(n, p))
            .collect();
        if down.contains(&leader) {
            if let Some(command) = elect(p, record, live, &down) {
                commands.push(command);
            }
            continue;
        }
        let Some(report) = live.report(leader, p) else {
            continue;
        };
        let reported: Vec<NodeId> = match &report.in_sync {
            Some(in_sync) => in_sync
                .iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            // A leader that began an epoch the map lacks takes no writes
            // until it is recorded (so every later election begins above
            // it); its in-sync set is not known yet and stays as recorded.
            None if report.epoch > record.epoch => record.isr.clone(),
            None => continue,
        };
        if reported != record.isr || report.epoch != record.epoch {
            commands.push(Command::SetIsr {
                partition: p,
                leader,
                epoch: report.epoch.max(record.epoch),
                isr: reported,
            });
        }
    }
    commands
}

/// The election for partition `p` whose leader failed: the live in-sync
/// replica with the most advanced position (ties: the lowest id), at an
/// epoch above every one its replicas reported. `None` when no in-sync
/// replica is alive and has reported (the partition waits, or an operator
/// promotes one uncleanly).
fn elect(
    p: PartitionId,
    record: &crate::state::PartitionRecord,
    live: &Liveness,
    failed: &BTreeSet<NodeId>,
) -> Option<Command> {
    let candidates = record.isr.iter().filter(|n| !failed.contains(n));
    let (leader, _) = candidates
        .filter_map(|&n| Some((n, live.report(n, p)?.position)))
        // max position; among equals the lowest id wins
        .max_by(|(a, pa), (b, pb)| pa.cmp(pb).then(b.cmp(a)))?;
    let seen = record
        .replicas
        .iter()
        .filter_map(|&n| live.report(n, p).map(|r| r.epoch.max(r.position.0)))
        .max()
        .unwrap_or(0);
    let isr = record
        .isr
        .iter()
        .copied()
        .filter(|n| !failed.contains(n))
        .collect();
    Some(Command::Elect {
        partition: p,
        leader,
        epoch: record.epoch.max(seen) + 1,
        isr,
        expect_epoch: record.epoch,
        unclean: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Reply;

    const TIMING: Timing = Timing {
        lease: Duration::from_millis(1000),
        margin: Duration::from_millis(500),
    };

    fn report(p: PartitionId, position: Position, in_sync: Option<Vec<NodeId>>) -> ReplicaReport {
        ReplicaReport {
            partition: p,
            position,
            epoch: position.0,
            in_sync,
        }
    }

    fn three_way() -> ControlState {
        let mut s = ControlState::default();
        s.apply(&Command::Init {
            replicas: vec![vec![0, 1, 2]],
        });
        s
    }

    #[test]
    fn nobody_fails_before_the_lease_and_margin_have_passed() {
        let t0 = Instant::now();
        let live = Liveness::new(t0);
        let s = three_way();
        assert!(plan(&s, &live, t0 + Duration::from_millis(1500), &TIMING).is_empty());
        assert!(!live.is_failed(0, t0 + TIMING.failure_after(), &TIMING));
        assert!(live.is_failed(
            0,
            t0 + TIMING.failure_after() + Duration::from_millis(1),
            &TIMING
        ));
    }

    #[test]
    fn the_most_advanced_live_in_sync_replica_wins_ties_to_the_lowest_id() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(2);
        let mut live = Liveness::new(t0);
        live.heard(1, later, vec![report(0, (3, 40), None)]);
        live.heard(2, later, vec![report(0, (3, 41), None)]);
        let mut s = three_way();
        let commands = plan(&s, &live, later, &TIMING);
        assert_eq!(
            commands,
            vec![Command::Elect {
                partition: 0,
                leader: 2,
                epoch: 4,
                isr: vec![1, 2],
                expect_epoch: 0,
                unclean: false,
            }]
        );
        // equal positions: node 1
        live.heard(2, later, vec![report(0, (3, 40), None)]);
        let commands = plan(&s, &live, later, &TIMING);
        assert!(matches!(
            commands.first(),
            Some(Command::Elect { leader: 1, .. })
        ));
        for c in &commands {
            assert!(matches!(s.apply(c), Reply::Applied { .. }));
        }
        // the new leader is live: no further election
        assert!(plan(&s, &live, later, &TIMING).is_empty());
    }

    #[test]
    fn no_election_without_a_live_in_sync_replica() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(2);
        let mut s = three_way();
        // the leader reported the followers out of sync
        let mut live = Liveness::new(t0);
        live.heard(0, t0, vec![report(0, (1, 9), Some(vec![0]))]);
        let isr = plan(&s, &live, t0, &TIMING);
        assert_eq!(isr.len(), 1);
        s.apply(&isr[0]);
        live.heard(1, later, vec![report(0, (1, 5), None)]);
        assert!(plan(&s, &live, later, &TIMING).is_empty());
    }

    #[test]
    fn a_live_leader_whose_store_failed_is_replaced() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        let s = three_way();
        // node 0 is alive but reports no replica of partition 0
        live.heard(0, t0, vec![]);
        live.heard(1, t0, vec![report(0, (2, 7), None)]);
        live.heard(2, t0, vec![report(0, (2, 9), None)]);
        let commands = plan(&s, &live, t0, &TIMING);
        assert!(
            matches!(commands.as_slice(), [Command::Elect { leader: 2, isr, .. }] if isr == &vec![1, 2]),
            "{commands:?}"
        );
    }

    #[test]
    fn a_leaders_unrecorded_epoch_is_recorded_and_later_elections_begin_above_it() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        let mut s = three_way();
        // Node 0 began epoch 1 on its own (the seeded map says 0) and takes
        // no writes yet, so it reports no in-sync set.
        live.heard(
            0,
            t0,
            vec![ReplicaReport {
                epoch: 1,
                ..report(0, (0, 0), None)
            }],
        );
        let commands = plan(&s, &live, t0, &TIMING);
        assert_eq!(
            commands,
            vec![Command::SetIsr {
                partition: 0,
                leader: 0,
                epoch: 1,
                isr: vec![0, 1, 2],
            }]
        );
        assert!(matches!(s.apply(&commands[0]), Reply::Applied { .. }));
        assert!(plan(&s, &live, t0, &TIMING).is_empty(), "recorded once");
        // Node 0 falls silent after writing in epoch 1; its followers never
        // heard of epoch 1. The election still begins above it.
        let later = t0 + Duration::from_secs(2);
        let mut live = Liveness::new(later);
        live.heard(1, later, vec![report(0, (0, 0), None)]);
        live.heard(2, later, vec![report(0, (0, 0), None)]);
        let after = later + Duration::from_secs(2);
        live.heard(1, after, vec![report(0, (0, 0), None)]);
        live.heard(2, after, vec![report(0, (0, 0), None)]);
        let commands = plan(&s, &live, after, &TIMING);
        assert!(
            matches!(
                commands.as_slice(),
                [Command::Elect {
                    leader: 1,
                    epoch: 2,
                    ..
                }]
            ),
            "{commands:?}"
        );
    }

    #[test]
    fn a_departed_node_is_failed_at_once() {
        let t0 = Instant::now();
        let mut live = Liveness::new(t0);
        live.heard(0, t0, vec![]);
        live.departed(0);
        assert!(live.is_failed(0, t0, &TIMING));
    }
}

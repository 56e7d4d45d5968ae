//! The replicated state: per partition its replicas, leader, leader epoch
//! and in-sync set, with a map version that only grows.
//!
//! [`ControlState::apply`] is the whole state machine: a pure function of
//! the state and one committed [`Command`]. Every voter applies the same
//! commands in the same order, so every voter holds the same state; a
//! command that no longer fits (a stale leader epoch, a node outside the
//! partition) is refused with [`Reply::Refused`] and changes nothing, so
//! proposals made from an old view are harmless.

use std::collections::BTreeSet;

use kv_router::{ClusterMap, MapVersion, NodeId, PartitionId};
use serde::{Deserialize, Serialize};

/// A partition history's leader epoch (kv-node's `Epoch`).
pub type Epoch = u32;

/// One partition as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    /// Every replica, the leader first.
    pub replicas: Vec<NodeId>,
    /// The leader epoch of the current leadership: the epoch its leader
    /// reported, or the least epoch an elected leader must begin.
    pub epoch: Epoch,
    /// The in-sync set, leader included, in ascending id order. Only its
    /// members may be elected.
    pub isr: Vec<NodeId>,
}

impl PartitionRecord {
    /// The partition's leader.
    pub fn leader(&self) -> Option<NodeId> {
        self.replicas.first().copied()
    }
}

/// The authoritative cluster map.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlState {
    /// The map version: 0 before [`Command::Init`], then 1, and one more
    /// for every command that changed something.
    pub version: MapVersion,
    /// Partition `p` at index `p`.
    pub partitions: Vec<PartitionRecord>,
}

/// A change to the cluster map, proposed by the controller leader (or by
/// an operator through it) and applied once committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Seeds the map from the config's placement on the first start;
    /// refused once the map exists (the config never overrides it).
    Init {
        /// Per partition, its replicas, leader first.
        replicas: Vec<Vec<NodeId>>,
    },
    /// Makes `leader` the leader of `partition` at `epoch`, with the
    /// in-sync set `isr` (which must contain it). Refused unless the
    /// partition's current epoch is `expect_epoch` (so an election decided
    /// from an old view changes nothing), `leader` is a replica, `epoch`
    /// is above the current one, and (unless `unclean`) `leader` is in the
    /// current in-sync set.
    Elect {
        /// The partition.
        partition: PartitionId,
        /// Its new leader.
        leader: NodeId,
        /// The epoch the new leadership begins at (at least).
        epoch: Epoch,
        /// The new in-sync set.
        isr: Vec<NodeId>,
        /// The epoch the decision was made against.
        expect_epoch: Epoch,
        /// An operator's promotion of a replica outside the in-sync set.
        unclean: bool,
    },
    /// The partition's leader reports its in-sync set (and the epoch it
    /// leads at). Refused unless `leader` is the current leader and
    /// `epoch` is not below the recorded one.
    SetIsr {
        /// The partition.
        partition: PartitionId,
        /// The reporting leader.
        leader: NodeId,
        /// The epoch it leads at.
        epoch: Epoch,
        /// Its in-sync set, itself included.
        isr: Vec<NodeId>,
    },
}

/// The outcome of one applied command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// Applied; the map's version now.
    Applied {
        /// The version after the command.
        version: MapVersion,
    },
    /// Changed nothing; why.
    Refused(String),
}

impl ControlState {
    /// True once the map has been seeded.
    pub fn is_initialized(&self) -> bool {
        self.version > 0
    }

    /// Partition `p`'s record.
    pub fn partition(&self, p: PartitionId) -> Option<&PartitionRecord> {
        self.partitions.get(p as usize)
    }

    /// Applies one committed command (the state machine).
    pub fn apply(&mut self, command: &Command) -> Reply {
        match self.check(command) {
            Err(reason) => Reply::Refused(reason),
            Ok(false) => Reply::Applied {
                version: self.version,
            },
            Ok(true) => {
                self.change(command);
                self.version += 1;
                Reply::Applied {
                    version: self.version,
                }
            }
        }
    }

    /// Whether `command` applies (`Ok(true)`: it changes the state,
    /// `Ok(false)`: it would change nothing), or why it is refused.
    fn check(&self, command: &Command) -> Result<bool, String> {
        match command {
            Command::Init { replicas } => {
                if self.is_initialized() {
                    return Err("the map is already initialized".into());
                }
                if replicas.iter().any(|r| r.is_empty()) {
                    return Err("a partition without replicas".into());
                }
                // version 0 → 1 even for an empty cluster.
                Ok(true)
            }
            Command::Elect {
                partition,
                leader,
                epoch,
                isr,
                expect_epoch,
                unclean,
            } => {
                let record = self.record(*partition)?;
                if record.epoch != *expect_epoch {
                    return Err(format!(
                        "partition {partition} is at epoch {}, not {expect_epoch}",
                        record.epoch
                    ));
                }
                if *epoch <= record.epoch {
                    return Err(format!(
                        "epoch {epoch} is not above partition {partition}'s epoch {}",
                        record.epoch
                    ));
                }
                if !record.replicas.contains(leader) {
                    return Err(format!(
                        "node {leader} holds no replica of partition {partition}"
                    ));
                }
                if !unclean && !record.isr.contains(leader) {
                    return Err(format!(
                        "node {leader} is not in partition {partition}'s in-sync set {:?}",
                        record.isr
                    ));
                }
                check_isr(record, *leader, isr)?;
                Ok(true)
            }
            Command::SetIsr {
                partition,
                leader,
                epoch,
                isr,
            } => {
                let record = self.record(*partition)?;
                if record.leader() != Some(*leader) {
                    return Err(format!("node {leader} does not lead partition {partition}"));
                }
                if *epoch < record.epoch {
                    return Err(format!(
                        "epoch {epoch} is below partition {partition}'s epoch {}",
                        record.epoch
                    ));
                }
                check_isr(record, *leader, isr)?;
                Ok(*epoch != record.epoch || sorted(isr) != record.isr)
            }
        }
    }

    /// Carries out a command [`ControlState::check`] accepted.
    fn change(&mut self, command: &Command) {
        match command {
            Command::Init { replicas } => {
                self.partitions = replicas
                    .iter()
                    .map(|r| PartitionRecord {
                        replicas: r.clone(),
                        epoch: 0,
                        isr: sorted(r),
                    })
                    .collect();
            }
            Command::Elect {
                partition,
                leader,
                epoch,
                isr,
                ..
            } => {
                if let Some(record) = self.partitions.get_mut(*partition as usize) {
                    record.replicas.retain(|n| n != leader);
                    record.replicas.insert(0, *leader);
                    record.epoch = *epoch;
                    record.isr = sorted(isr);
                }
            }
            Command::SetIsr {
                partition,
                epoch,
                isr,
                ..
            } => {
                if let Some(record) = self.partitions.get_mut(*partition as usize) {
                    record.epoch = *epoch;
                    record.isr = sorted(isr);
                }
            }
        }
    }

    fn record(&self, p: PartitionId) -> Result<&PartitionRecord, String> {
        self.partition(p)
            .ok_or_else(|| format!("partition {p} does not exist"))
    }

    /// `base` (the config's map: nodes, addresses, partition count) with
    /// this state's replicas and version. `None` when the state is not
    /// initialized or does not fit `base`.
    pub fn map(&self, base: &ClusterMap) -> Option<ClusterMap> {
        if !self.is_initialized() || self.partitions.len() != base.partition_count() as usize {
            return None;
        }
        let mut map = base.clone();
        for (p, record) in self.partitions.iter().enumerate() {
            map.set_replicas(u32::try_from(p).ok()?, &record.replicas)
                .ok()?;
        }
        Some(map.with_version(self.version))
    }

    /// The [`Command::Init`] that seeds this state from `base`.
    pub fn init_from(base: &ClusterMap) -> Command {
        Command::Init {
            replicas: (0..base.partition_count())
                .map(|p| base.replicas(p).unwrap_or(&[]).to_vec())
                .collect(),
        }
    }
}

/// An in-sync set must contain its leader and only replicas.
fn check_isr(record: &PartitionRecord, leader: NodeId, isr: &[NodeId]) -> Result<(), String> {
    if !isr.contains(&leader) {
        return Err(format!("the in-sync set {isr:?} lacks its leader {leader}"));
    }
    if let Some(stranger) = isr.iter().find(|n| !record.replicas.contains(n)) {
        return Err(format!(
            "node {stranger} in the in-sync set holds no replica"
        ));
    }
    Ok(())
}

fn sorted(nodes: &[NodeId]) -> Vec<NodeId> {
    nodes
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> ControlState {
        let mut s = ControlState::default();
        let reply = s.apply(&Command::Init {
            replicas: vec![vec![0, 1], vec![1, 2], vec![2, 0, 1]],
        });
        assert_eq!(reply, Reply::Applied { version: 1 });
        s
    }

    fn elect(p: PartitionId, leader: NodeId, epoch: Epoch, expect: Epoch) -> Command {
        Command::Elect {
            partition: p,
            leader,
            epoch,
            isr: vec![leader],
            expect_epoch: expect,
            unclean: false,
        }
    }

    #[test]
    fn init_seeds_once_with_full_in_sync_sets() {
        let mut s = state();
        assert_eq!(s.partition(2).map(|r| r.isr.clone()), Some(vec![0, 1, 2]));
        assert!(matches!(
            s.apply(&Command::Init { replicas: vec![] }),
            Reply::Refused(_)
        ));
        assert_eq!(s.version, 1);
    }

    #[test]
    fn an_election_moves_the_leader_first_and_bumps_version_and_epoch() {
        let mut s = state();
        assert_eq!(s.apply(&elect(0, 1, 5, 0)), Reply::Applied { version: 2 });
        let r = s.partition(0).cloned();
        assert_eq!(r.as_ref().map(|r| r.replicas.clone()), Some(vec![1, 0]));
        assert_eq!(r.as_ref().map(|r| r.epoch), Some(5));
        assert_eq!(r.map(|r| r.isr), Some(vec![1]));
    }

    #[test]
    fn elections_from_an_old_view_or_outside_the_isr_change_nothing() {
        let mut s = state();
        assert!(matches!(s.apply(&elect(0, 1, 5, 0)), Reply::Applied { .. }));
        let before = s.clone();
        // decided against epoch 0, but the partition is at 5 now
        assert!(matches!(s.apply(&elect(0, 0, 6, 0)), Reply::Refused(_)));
        // node 0 left the in-sync set with the election above
        assert!(matches!(s.apply(&elect(0, 0, 6, 5)), Reply::Refused(_)));
        // not a replica
        assert!(matches!(s.apply(&elect(0, 2, 6, 5)), Reply::Refused(_)));
        // epoch not above
        assert!(matches!(s.apply(&elect(0, 1, 5, 5)), Reply::Refused(_)));
        assert_eq!(s, before);
        // an operator's unclean promotion may pick node 0
        let unclean = Command::Elect {
            partition: 0,
            leader: 0,
            epoch: 6,
            isr: vec![0],
            expect_epoch: 5,
            unclean: true,
        };
        assert!(matches!(s.apply(&unclean), Reply::Applied { version: 3 }));
    }

    #[test]
    fn isr_reports_come_only_from_the_leader_and_unchanged_ones_keep_the_version() {
        let mut s = state();
        let report = |leader, epoch, isr: Vec<NodeId>| Command::SetIsr {
            partition: 1,
            leader,
            epoch,
            isr,
        };
        assert!(matches!(
            s.apply(&report(2, 3, vec![2, 1])),
            Reply::Refused(_)
        ));
        assert_eq!(
            s.apply(&report(1, 3, vec![1])),
            Reply::Applied { version: 2 }
        );
        assert_eq!(
            s.apply(&report(1, 3, vec![1])),
            Reply::Applied { version: 2 }
        );
        assert!(matches!(
            s.apply(&report(1, 2, vec![1, 2])),
            Reply::Refused(_)
        ));
        assert!(matches!(s.apply(&report(1, 3, vec![2])), Reply::Refused(_)));
        assert!(matches!(
            s.apply(&report(1, 3, vec![1, 0])),
            Reply::Refused(_)
        ));
        assert_eq!(
            s.apply(&report(1, 3, vec![2, 1])),
            Reply::Applied { version: 3 }
        );
        assert_eq!(s.partition(1).map(|r| r.isr.clone()), Some(vec![1, 2]));
    }
}

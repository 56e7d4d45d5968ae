//! The cluster map: which nodes hold which partitions, and in which role.
//!
//! # Placement
//!
//! Nodes are sorted by id; with `n` nodes, replica `i` of partition `p` lives
//! on the node at index `(p + i) mod n` of that sorted list, and replica 0 is
//! the partition's leader. With the default topology (nodes 0, 1, 2;
//! 4 partitions; replication factor 2) this gives p0 = [0, 1], p1 = [1, 2],
//! p2 = [2, 0], p3 = [0, 1]: node 0 holds partitions 0, 2 and 3, as in the
//! original system. Because consecutive indices are distinct whenever
//! `replication_factor <= n`, no partition ever has two replicas on one node,
//! and leaders are spread so that node leader counts differ by at most one.
//! A `[[placement]]` override replaces the formula for its partition.
//!
//! # Versions
//!
//! A map carries a [`MapVersion`]. A map built from a config starts at
//! version 1; whoever changes leadership or placement later publishes the
//! new map with a higher version (see [`ClusterMap::with_version`]), and
//! nodes and clients keep the map with the highest version they have seen.
//! Publishing a bound address with [`ClusterMap::set_addr`] does not change
//! placement and does not bump the version. (A partition history's *epoch*
//! is a different thing, kept by each store: DESIGN §9.)

use std::collections::BTreeMap;
use std::fmt;

use crate::config::{addr_key, check_addr, duplicate_addr};
use crate::{
    ClusterConfig, ConfigError, MapVersion, NodeConfig, NodeId, PartitionId, partition_for,
};

/// The role a node plays for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Replica 0: accepts writes and streams them to the followers.
    Leader,
    /// Any other replica: applies the leader's writes.
    Follower,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        })
    }
}

/// Nodes, partition → replicas (leader first), and a version.
///
/// Built from a validated [`ClusterConfig`]; immutable except for
/// publishing node addresses. Lookups for an unknown partition or node
/// return `None` (or an empty list), never panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMap {
    version: MapVersion,
    partitions: u32,
    replication_factor: u32,
    /// All nodes, sorted by id.
    nodes: Vec<NodeConfig>,
    /// `partitions × replication_factor` node ids: the replicas of partition
    /// `p` are `replicas[p*rf .. (p+1)*rf]`, leader first.
    replicas: Vec<NodeId>,
}

impl ClusterMap {
    /// Validates `config` and places every partition (version 1).
    pub fn new(config: &ClusterConfig) -> Result<ClusterMap, ConfigError> {
        config.validate()?;
        let mut nodes = config.nodes.clone();
        nodes.sort_by_key(|n| n.id);
        let ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        let rf = config.replication_factor;
        let overrides: BTreeMap<PartitionId, &[NodeId]> = config
            .placement
            .iter()
            .map(|o| (o.partition, o.replicas.as_slice()))
            .collect();
        let mut replicas = Vec::with_capacity(config.partitions as usize * rf as usize);
        for p in 0..config.partitions {
            match overrides.get(&p) {
                Some(list) => replicas.extend_from_slice(list),
                None => replicas.extend(default_replicas(&ids, p, rf)),
            }
        }
        Ok(ClusterMap {
            version: 1,
            partitions: config.partitions,
            replication_factor: rf,
            nodes,
            replicas,
        })
    }

    /// The map's version; a higher version supersedes a lower one.
    pub fn version(&self) -> MapVersion {
        self.version
    }

    /// The same map with another version.
    pub fn with_version(mut self, version: MapVersion) -> Self {
        self.version = version;
        self
    }

    /// Number of partitions keys are hashed into.
    pub fn partition_count(&self) -> u32 {
        self.partitions
    }

    /// Replicas per partition, leader included.
    pub fn replication_factor(&self) -> u32 {
        self.replication_factor
    }

    /// The partition of `key`: [`partition_for`] with this map's count.
    pub fn partition_of(&self, key: &[u8]) -> PartitionId {
        partition_for(key, self.partitions)
    }

    /// The replicas of partition `p`, leader first; `None` if out of range.
    pub fn replicas(&self, p: PartitionId) -> Option<&[NodeId]> {
        if p >= self.partitions {
            return None;
        }
        let rf = self.replication_factor as usize;
        let start = p as usize * rf;
        self.replicas.get(start..start + rf)
    }

    /// The leader of partition `p`.
    pub fn leader(&self, p: PartitionId) -> Option<NodeId> {
        self.replicas(p)?.first().copied()
    }

    /// The followers of partition `p` (its replicas after the leader).
    pub fn followers(&self, p: PartitionId) -> Option<&[NodeId]> {
        self.replicas(p)?.get(1..)
    }

    /// The role `node` plays for partition `p`, or `None` if it holds no
    /// replica of it (or `p` is out of range).
    pub fn role_of(&self, node: NodeId, p: PartitionId) -> Option<Role> {
        match self.replicas(p)?.iter().position(|&n| n == node)? {
            0 => Some(Role::Leader),
            _ => Some(Role::Follower),
        }
    }

    /// Every partition `node` holds, in ascending partition order, with its
    /// role. Empty for a node that holds nothing or is unknown.
    pub fn partitions_of(&self, node: NodeId) -> Vec<(PartitionId, Role)> {
        (0..self.partitions)
            .filter_map(|p| Some((p, self.role_of(node, p)?)))
            .collect()
    }

    /// All nodes, sorted by id.
    pub fn nodes(&self) -> &[NodeConfig] {
        &self.nodes
    }

    /// The node with this id.
    pub fn node(&self, id: NodeId) -> Option<&NodeConfig> {
        let i = self.nodes.binary_search_by_key(&id, |n| n.id).ok()?;
        self.nodes.get(i)
    }

    /// The address of node `id`.
    pub fn addr(&self, id: NodeId) -> Option<&str> {
        self.node(id).map(|n| n.addr.as_str())
    }

    /// Replaces partition `p`'s replicas (leader first), as the control
    /// plane does when it elects a leader. The list must name
    /// `replication_factor` distinct nodes of the map. The version is
    /// unchanged: the caller sets the version the change belongs to.
    pub fn set_replicas(&mut self, p: PartitionId, replicas: &[NodeId]) -> Result<(), ConfigError> {
        let rf = self.replication_factor as usize;
        let start = (p as usize).saturating_mul(rf);
        if p >= self.partitions || replicas.len() != rf {
            return Err(ConfigError::Placement {
                partition: p,
                reason: format!(
                    "needs {rf} replicas within {} partitions, got {replicas:?}",
                    self.partitions
                ),
            });
        }
        for (i, n) in replicas.iter().enumerate() {
            if self.node(*n).is_none() {
                return Err(ConfigError::UnknownNode { node: *n });
            }
            if replicas.get(..i).is_some_and(|before| before.contains(n)) {
                return Err(ConfigError::Placement {
                    partition: p,
                    reason: format!("node {n} is listed twice"),
                });
            }
        }
        if let Some(slot) = self.replicas.get_mut(start..start + rf) {
            slot.copy_from_slice(replicas);
        }
        Ok(())
    }

    /// Publishes the address node `id` actually listens on (an embedded
    /// cluster binds port 0, then records the port it got).
    ///
    /// The address is checked like one in the config and must not clash
    /// with another node's. The version is unchanged: placement is the same.
    pub fn set_addr(&mut self, id: NodeId, addr: String) -> Result<(), ConfigError> {
        if self.node(id).is_none() {
            return Err(ConfigError::UnknownNode { node: id });
        }
        check_addr(id, &addr)?;
        let key = addr_key(&addr);
        let clash = self
            .nodes
            .iter()
            .find(|n| n.id != id && key.is_some() && addr_key(&n.addr) == key);
        if let Some(other) = clash {
            return Err(duplicate_addr(&addr, id, other.id));
        }
        if let Some(node) = self.nodes.iter_mut().find(|n| n.id == id) {
            node.addr = addr;
        }
        Ok(())
    }
}

/// The formula's replicas of partition `p`: the nodes at indices
/// `(p + i) mod n`, `i` in `0..rf`, of the id-sorted node list.
fn default_replicas(
    sorted_ids: &[NodeId],
    p: PartitionId,
    rf: u32,
) -> impl Iterator<Item = NodeId> + '_ {
    let n = sorted_ids.len();
    (0..rf as usize).filter_map(move |i| sorted_ids.get((p as usize + i) % n.max(1)).copied())
}

//! The one error type of this crate.

use crate::{NodeId, PartitionId};

/// Why a cluster config (or a change to a [`ClusterMap`](crate::ClusterMap))
/// was rejected.
///
/// Every variant names the field, node or partition at fault, so the message
/// alone tells a user what to edit. The enum is `#[non_exhaustive]`: new
/// checks may add variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The text is not valid TOML, has an unknown key, a missing key or a
    /// value of the wrong type. `message` is toml's own message, with line
    /// and column.
    #[error("invalid cluster config: {message}")]
    Toml {
        /// toml's description of the problem, including its position.
        message: String,
    },

    /// `partitions = 0`.
    #[error("partitions must be at least 1")]
    ZeroPartitions,

    /// More partitions than [`MAX_PARTITIONS`](crate::MAX_PARTITIONS).
    #[error("partitions = {partitions} is more than the supported maximum of {max}")]
    TooManyPartitions {
        /// The configured partition count.
        partitions: u32,
        /// The largest accepted partition count.
        max: u32,
    },

    /// `replication_factor = 0`.
    #[error("replication_factor must be at least 1")]
    ZeroReplicationFactor,

    /// The config has no `[[nodes]]` entry.
    #[error("no [[nodes]] configured; add at least one node")]
    NoNodes,

    /// Two `[[nodes]]` entries share an id.
    #[error("node id {0} appears more than once in [[nodes]]; node ids must be unique")]
    DuplicateNodeId(NodeId),

    /// Two nodes share an address (only port 0, "pick a free port", may repeat).
    #[error(
        "nodes {first} and {second} both use address {addr:?}; every node needs its own \
         address (only port 0 may repeat)"
    )]
    DuplicateAddr {
        /// The shared address.
        addr: String,
        /// The node that uses it first (lower id).
        first: NodeId,
        /// The other node using it.
        second: NodeId,
    },

    /// A node address is not `host:port` with a port in 0..=65535.
    #[error("node {node}: address {addr:?} is not host:port ({reason})")]
    BadAddr {
        /// The node whose address is wrong.
        node: NodeId,
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A node's `data_dir` is the empty string.
    #[error("node {node}: data_dir is empty; remove the key or name a directory")]
    EmptyDataDir {
        /// The node with the empty `data_dir`.
        node: NodeId,
    },

    /// `replication_factor` is larger than the number of nodes, so a
    /// partition cannot have that many replicas on distinct nodes.
    #[error(
        "replication_factor = {rf} but only {nodes} node(s) are configured; lower \
         replication_factor or add [[nodes]]"
    )]
    ReplicationFactorTooHigh {
        /// The configured replication factor.
        rf: u32,
        /// The number of configured nodes.
        nodes: usize,
    },

    /// A byte size in `[storage]` is zero, negative, out of range or has an
    /// unknown unit.
    #[error("storage.{field} = {value}: {reason}")]
    BadSize {
        /// The key in `[storage]`, e.g. `"segment_bytes"`.
        field: &'static str,
        /// The value as given.
        value: String,
        /// What is wrong and what is accepted.
        reason: String,
    },

    /// `sync = "interval"` with `sync_interval_ms = 0`.
    #[error("storage.sync_interval_ms must be greater than 0 when sync = \"interval\"")]
    ZeroSyncInterval,

    /// A node id that the cluster does not know (e.g. in
    /// [`ClusterMap::set_addr`](crate::ClusterMap::set_addr)).
    #[error("node {node} is not part of the cluster")]
    UnknownNode {
        /// The unknown node id.
        node: NodeId,
    },

    /// A `[[placement]]` override is invalid.
    #[error("[[placement]] for partition {partition}: {reason}")]
    Placement {
        /// The partition the override names.
        partition: PartitionId,
        /// What is wrong with it.
        reason: String,
    },

    /// `[replication]` `min_insync_replicas` is 0 or more than the
    /// replication factor (a write with `acks = "all"` could never meet it).
    #[error(
        "replication.min_insync_replicas = {min} must be between 1 and replication_factor \
         ({replication_factor})"
    )]
    MinInsyncReplicas {
        /// The configured minimum.
        min: u32,
        /// The configured replication factor.
        replication_factor: u32,
    },

    /// The `[control]` table is invalid.
    #[error("[control]: {reason}")]
    Control {
        /// What is wrong.
        reason: String,
    },

    /// `[replication]` `replica_lag_max_ms = 0`.
    #[error("replication.replica_lag_max_ms must be greater than 0")]
    ZeroReplicaLagMax,
}

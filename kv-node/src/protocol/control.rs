//! The body of the `Control` request (type 0x70) and reply (0xE0): the
//! control plane's messages, as one JSON document each (they are rare and
//! small next to data traffic, and openraft's own messages are serde
//! types). `docs/protocol.md` lists them.
//!
//! Raft messages and heartbeats are accepted only on authenticated peer
//! connections (their own quota, so clients cannot starve them); `Info`,
//! `Transfer` and `Promote` also from clients.

use kv_router::{MapVersion, NodeId, PartitionId};
use serde::{Deserialize, Serialize};

use super::types::Epoch;

/// Which Raft RPC a [`ControlRequest::Raft`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaftRpc {
    /// A vote request.
    Vote,
    /// An append-entries request (heartbeats of the controller group too).
    Append,
    /// A whole snapshot.
    Snapshot,
}

/// A control-plane request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlRequest {
    /// Peer: one Raft RPC of the controller group; `body` is openraft's
    /// request as JSON.
    Raft {
        /// The RPC.
        rpc: RaftRpc,
        /// openraft's request.
        body: serde_json::Value,
    },
    /// Peer: a node's heartbeat to the controller leader, with what it
    /// knows of its replicas.
    Heartbeat {
        /// The node.
        node: NodeId,
        /// The map version it has applied.
        map_version: MapVersion,
        /// Its replicas: partition, position, epoch seen, in-sync set when
        /// it leads.
        replicas: serde_json::Value,
        /// It is stopping: hand its leaderships over now.
        stopping: bool,
    },
    /// The controller's view: leader, term, voters and every partition.
    Info,
    /// Operator, to the partition's leader: hand the leadership to
    /// `node`, an in-sync replica, losing nothing. The leader stops taking
    /// writes for the partition, waits until `node` holds everything it
    /// wrote, then asks the controller (`Promote`, clean).
    Transfer {
        /// The partition.
        partition: PartitionId,
        /// Its new leader.
        node: NodeId,
    },
    /// To the controller leader: make `node` the leader of `partition`.
    /// Clean: only an in-sync replica. Unclean (an operator's `kv cluster
    /// promote --unclean`): any replica; what only the old leader held is
    /// lost.
    Promote {
        /// The partition.
        partition: PartitionId,
        /// Its new leader.
        node: NodeId,
        /// Allow a replica outside the in-sync set.
        unclean: bool,
    },
}

/// One partition as the controller records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    /// The partition.
    pub partition: PartitionId,
    /// Its replicas, leader first.
    pub replicas: Vec<NodeId>,
    /// The leader epoch recorded.
    pub epoch: Epoch,
    /// The in-sync set.
    pub isr: Vec<NodeId>,
}

/// The controller's view ([`ControlRequest::Info`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerInfo {
    /// The node answering.
    pub node: NodeId,
    /// The controller leader it knows of.
    pub leader: Option<NodeId>,
    /// The Raft term it is at.
    pub term: u64,
    /// The voters.
    pub voters: Vec<NodeId>,
    /// The map version it has applied.
    pub version: MapVersion,
    /// Every partition.
    pub partitions: Vec<PartitionView>,
}

/// A control-plane reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlReply {
    /// openraft's answer (a `Result` as JSON).
    Raft {
        /// The answer.
        body: serde_json::Value,
    },
    /// The heartbeat was taken: the sender's lease runs `lease_ms` from
    /// when it sent it. `state` is the controller's state when it is newer
    /// than the sender's `map_version`.
    Heartbeat {
        /// The lease granted, in milliseconds.
        lease_ms: u64,
        /// The newer state (kv-control's `ControlState` as JSON), if any.
        state: Option<serde_json::Value>,
    },
    /// Reply to `Info`.
    Info(ControllerInfo),
    /// An operator request was committed; the map's version after it.
    Done {
        /// The version.
        version: MapVersion,
        /// How many entries the new leader lacked against the old leader's
        /// last position the controller heard of (what an unclean
        /// promotion loses); `None` when the controller never heard it
        /// (it changed since).
        behind: Option<u64>,
    },
    /// This node is not the controller leader; ask `leader` (if known).
    NotController {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// The request failed.
    Failed {
        /// Why.
        message: String,
    },
}

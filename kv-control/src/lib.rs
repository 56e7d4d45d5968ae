//! kv-control: the control plane of a kv cluster.
//!
//! A small Raft group (on [`openraft`] 0.9; kv implements no consensus of
//! its own) owns the authoritative cluster map: per partition its
//! replicas, its leader, the leader epoch and the in-sync set, with a map
//! version that only grows (DESIGN §9, Kafka's split between data and
//! metadata). This crate holds the parts that do not touch a socket:
//!
//! - [`state`]: the replicated state ([`ControlState`]) and the commands
//!   that change it ([`Command`]); [`ControlState::apply`] is the whole
//!   state machine, a pure function.
//! - [`failover`]: the controller leader's decisions from heartbeats: who
//!   has failed (after the lease plus a margin), whom to elect (the live
//!   in-sync replica with the most advanced history), which in-sync sets
//!   to record.
//! - [`storage`]: openraft's log and state-machine storage under one
//!   directory, crash-safe (fsync before anything is acknowledged).
//!
//! kv-node carries the Raft messages over its framed protocol and drives
//! the replicas from the map.
//!
//! # Example
//!
//! ```
//! use kv_control::{Command, ControlState, Reply};
//!
//! let mut state = ControlState::default();
//! state.apply(&Command::Init { replicas: vec![vec![0, 1], vec![1, 0]] });
//! // node 0 failed: node 1, in sync, leads partition 0 from epoch 2
//! let reply = state.apply(&Command::Elect {
//!     partition: 0,
//!     leader: 1,
//!     epoch: 2,
//!     isr: vec![1],
//!     expect_epoch: 0,
//!     unclean: false,
//! });
//! assert_eq!(reply, Reply::Applied { version: 2 });
//! assert_eq!(state.partition(0).and_then(|p| p.leader()), Some(1));
//! ```

// Library code never panics on input: no unwrap/expect, no unchecked
// indexing. Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod failover;
#[cfg(feature = "sim")]
pub mod sim;
pub mod state;
pub mod storage;

pub use failover::{Liveness, ReplicaReport, Timing};
/// The openraft this crate is built on (the types in [`TypeConfig`]'s
/// traits), re-exported so users need no second, possibly different copy.
pub use openraft;
pub use state::{Command, ControlState, Epoch, PartitionRecord, Reply};

openraft::declare_raft_types!(
    /// kv's Raft types: commands are [`Command`]s, replies [`Reply`]s,
    /// node ids kv's, and a voter's address comes from the cluster map.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = kv_router::NodeId,
        Node = openraft::EmptyNode,
        SnapshotData = std::io::Cursor<Vec<u8>>,
        AsyncRuntime = Runtime,
);

/// openraft's async runtime: tokio; under feature `sim`, tokio with a
/// seeded generator for election timeouts (`sim::SimRuntime`).
#[cfg(not(feature = "sim"))]
pub type Runtime = openraft::TokioRuntime;
/// openraft's async runtime: tokio; under feature `sim`, tokio with a
/// seeded generator for election timeouts (`sim::SimRuntime`).
#[cfg(feature = "sim")]
pub type Runtime = sim::SimRuntime;

/// A running Raft member of the control plane.
pub type Raft = openraft::Raft<TypeConfig>;

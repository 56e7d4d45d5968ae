//! kv-router: the pure cluster logic of kv — which partition a key belongs
//! to, and which nodes hold that partition.
//!
//! # What it owns
//!
//! - The **cluster config** (DESIGN §6): [`ClusterConfig`] parsed from TOML
//!   text with [`ClusterConfig::from_toml_str`], validated, and written back
//!   with [`ClusterConfig::to_toml_string`].
//! - The **stable partition function** [`partition_for`]:
//!   `xxh3_64(key) % partitions`, the same in every process, version and
//!   machine; committed test vectors pin it.
//! - **Placement and the [`ClusterMap`]**: replica `i` of partition `p` on
//!   the node at index `(p + i) mod n` of the nodes sorted by id, replica 0
//!   the leader, overridable per partition with `[[placement]]`; the map
//!   answers leader / replicas / role questions and carries a [`MapVersion`].
//!
//! # Modules, in data-flow order
//!
//! 1. `size` — byte sizes such as `"64MiB"` in the config.
//! 2. `toml_format` — TOML text ⇄ [`ClusterConfig`] (unknown keys rejected).
//! 3. `config` — the config types, their defaults and [`ClusterConfig::validate`].
//! 4. `hash` — [`key_hash`] and [`partition_for`].
//! 5. `map` — placement and [`ClusterMap`].
//! 6. `error` — [`ConfigError`], the crate's one error type.
//!
//! # Invariants
//!
//! - A [`ClusterMap`] exists only for a config that passed validation: every
//!   partition has exactly `replication_factor` replicas, on distinct, known
//!   nodes.
//! - A key's partition depends only on its bytes and the partition count.
//! - Nothing here panics on input: bad configs are [`ConfigError`]s, unknown
//!   partitions and nodes are `None`.
//!
//! # What it does not do
//!
//! No file or socket I/O: the caller reads the config file (and resolves
//! relative `data_dir`s with [`ClusterConfig::resolve_data_dirs`]) and talks
//! to the nodes. No leader election or rebalancing: a new map with a higher
//! version is built by whoever decides such a change.
//!
//! # Example
//!
//! ```
//! use kv_router::{ClusterConfig, ClusterMap, Role};
//!
//! let config = ClusterConfig::from_toml_str(
//!     r#"
//!     partitions = 4
//!     replication_factor = 2
//!
//!     [storage]
//!     segment_bytes = "64 MiB"
//!
//!     [[nodes]]
//!     id = 0
//!     addr = "127.0.0.1:7000"
//!     [[nodes]]
//!     id = 1
//!     addr = "127.0.0.1:7001"
//!     [[nodes]]
//!     id = 2
//!     addr = "127.0.0.1:7002"
//!     "#,
//! )?;
//! assert_eq!(config.storage.segment_bytes, 64 << 20);
//!
//! let map = ClusterMap::new(&config)?;
//! let p = map.partition_of(b"user:101");
//! let leader = map.leader(p).expect("every partition has a leader");
//! assert_eq!(map.replicas(p).unwrap()[0], leader);
//! assert_eq!(map.role_of(leader, p), Some(Role::Leader));
//! let addr = map.addr(leader).expect("every node has an address");
//! assert!(addr.starts_with("127.0.0.1:700"));
//!
//! // Node 0 holds partitions 0, 2 and 3, as in the original system.
//! let held: Vec<u32> = map.partitions_of(0).into_iter().map(|(p, _)| p).collect();
//! assert_eq!(held, [0, 2, 3]);
//! # Ok::<(), kv_router::ConfigError>(())
//! ```

// Library code never panics on input: no unwrap/expect, no unchecked
// indexing (exceptions carry `#[expect(..., reason = "...")]`). Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod config;
mod control;
mod error;
mod hash;
mod map;
mod replication;
mod size;
mod toml_format;

pub use config::{
    ClusterConfig, DEFAULT_HOT_CAPACITY_BYTES, DEFAULT_SEGMENT_BYTES, DEFAULT_SYNC_INTERVAL_MS,
    MAX_PARTITIONS, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES, NodeConfig, PlacementOverride,
    SecurityConfig, StorageConfig, SyncMode,
};
pub use control::{
    ControlConfig, DEFAULT_HEARTBEAT_MS, DEFAULT_LEASE_MS, DEFAULT_MARGIN_MS, DEFAULT_VOTERS,
};
pub use error::ConfigError;
pub use hash::{key_hash, partition_for};
pub use map::{ClusterMap, Role};
pub use replication::{
    AckMode, DEFAULT_MIN_INSYNC_REPLICAS, DEFAULT_REPLICA_LAG_MAX_MS, ReplicationConfig,
};

/// A node's id, unique in the cluster (ids need not be contiguous).
pub type NodeId = u32;

/// A partition's number, in `0..partitions`.
pub type PartitionId = u32;

/// The cluster map's version: a higher version supersedes a lower one. (Not
/// an epoch: in kv, "epoch" names only a partition history's leader epoch,
/// DESIGN §9.)
pub type MapVersion = u64;

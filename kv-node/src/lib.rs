//! kv-node: the kv node server, its wire protocol, replication, and the
//! clients that talk to it.
//!
//! A node hosts the partition replicas the [`kv_router::ClusterMap`] gives
//! its id, one [`kv_storage::Store`] each under
//! `<data_dir>/partition_<p>/`, and serves them over TCP.
//!
//! # Features
//!
//! - `server` (on by default): the node server ([`NodeServer`],
//!   [`NodeOptions`], [`Layout`]), hosting on kv-storage, [`replication`],
//!   the [`resp`] listener, and [`Error::Storage`].
//! - Without it (`kv-node = { default-features = false }`): the
//!   [`protocol`] and its history types ([`Position`], [`Entry`],
//!   [`Location`], [`Lsn`], [`Epoch`]), [`NodeClient`] and
//!   [`ClusterClient`]; no kv-storage, no memmap2, no storage threads.
//!   `cargo check -p kv-node --no-default-features` (in `.ci/run`) keeps
//!   that build working.
//!
//! The history types are the protocol's own; the server converts them to
//! and from kv-storage's where it calls its stores (`convert`), so the
//! client API names no kv-storage type.
//!
//! # Modules, in the order a request flows
//!
//! - [`protocol`]: length-delimited frames (size-capped; buffers grow with
//!   the bytes that arrived, under a node-wide budget) carrying binary
//!   messages with request ids, so clients pipeline; every connection
//!   opens with a handshake (protocol version, client password, peers
//!   proving the cluster secret: `auth`). `docs/protocol.md` is the
//!   byte-level spec.
//! - `connection`: accept loop, handshake, separate client and peer
//!   quotas, idle and request deadlines.
//! - [`NodeServer`] (`server`): one task per connection, dispatch of
//!   ping/get/put/delete/status/inspect/info; writes only on the leader,
//!   values validated with kv-codec.
//! - `keyspace` and `expiry`: per-partition scan pages, `MGet`, `MSet`
//!   (one store batch per partition), and key expiry: decided by the
//!   leader (relative TTL in, absolute time stored and replicated with the
//!   entry), hidden by every replica's clock on reads, deleted by the
//!   leader's bounded active-expiry task with replicated tombstones.
//! - `hosting`: opening the hosted partitions one by one; a store that
//!   fails to open fails its partition only (reported by `info`), and a
//!   corrupted follower store is moved aside and resynced.
//! - `storage_io`: the blocking boundary; every store call from async code
//!   goes through it, off the async workers. `replica` makes the store
//!   calls, converting history types at that seam (`convert`).
//! - [`replication`]: asynchronous leader→follower streaming from a bounded
//!   backlog, store history or snapshot; sans-IO decision code with thin
//!   tokio transport; leader recovery from followers (no-wipe rule); the
//!   in-sync set and `acks = "all"` writes (`replication::insync`).
//! - [`NodeClient`] and [`ClusterClient`]: a pipelining client for one node,
//!   and a router that sends each key to its leader and falls back to
//!   followers for reads; `ClusterClient::scan` walks every partition with
//!   one opaque [`ClusterCursor`] (a key present for the whole scan is
//!   returned at least once), `mget`/`mset` group keys by partition.
//! - [`resp`]: the optional RESP2 listener (`NodeOptions::resp_addr`), so
//!   redis-cli and Redis client libraries talk to any node; commands run
//!   at the key's leader, in process or forwarded (`atomic` holds the
//!   leader-side conditional writes: `SET NX`, `INCR`).
//!
//! # Invariants
//!
//! - With `acks = "leader"` (the default) the leader acknowledges a write
//!   after its own store took it; with `acks = "all"` only once every
//!   in-sync follower acknowledged it. The replication stream never waits
//!   for a write, and a slow follower costs bounded memory.
//! - A write that was sent but not answered is reported as
//!   [`Error::OutcomeUnknown`], never as "not applied".
//! - A replica never replaces its data with a history behind its own.
//! - Bad input on a socket closes that connection only; the node stays up.
//!
//! - `control` (with `NodeOptions::control`): the node's half of the
//!   control plane: a kv-control Raft member on the voters, heartbeats
//!   and leases on every node, elections of partition leaders, `kv
//!   cluster transfer`/`promote`, controlled shutdown
//!   (`docs/replication.md`, "Failover").
//!
//! # Not here
//!
//! No TLS (the handshake authenticates, it does not encrypt: the password
//! and data cross the wire in the clear). No membership changes: the
//! nodes and each partition's replica set are the config's; the control
//! plane moves leaderships only.
//!
//! # Example
//!
//! ```
//! use kv_codec::Value;
//! use kv_node::{ClientOptions, ClusterClient, NodeOptions, NodeServer};
//! use kv_router::{ClusterConfig, ClusterMap};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let data = tempfile::tempdir()?;
//! # let node_dir = data.path().join("node_0");
//! // A one-node cluster with four partitions on an ephemeral port.
//! let mut config = ClusterConfig::default_topology();
//! config.nodes.truncate(1);
//! config.replication_factor = 1;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let mut map = ClusterMap::new(&config)?;
//! map.set_addr(0, listener.local_addr()?.to_string())?;
//! let node = NodeServer::start(NodeOptions::new(0, map.clone(), node_dir), listener).await?;
//!
//! let client = ClusterClient::new(map, ClientOptions::default());
//! client.put(b"nama", &Value::from_user_input("Rafi Widya")).await?;
//! let read = client.get(b"nama").await?;
//! assert_eq!(read.value.map(|v| v.render()), Some("Rafi Widya".to_string()));
//! node.shutdown().await?;
//! # Ok(())
//! # }
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
// The front page links the server half; a client-only doc build has no
// such items to link to.
#![cfg_attr(not(feature = "server"), allow(rustdoc::broken_intra_doc_links))]

// The client half: always built.
mod auth;
mod client;
mod client_keyspace;
mod cluster_client;
mod cluster_keyspace;
mod error;
pub mod net;
pub mod protocol;

/// Items of the server half: each is built only with feature `server`.
macro_rules! server {
    ($($item:item)*) => { $( #[cfg(feature = "server")] $item )* };
}

// The server half: hosting, replication, the storage boundary.
server! {
    mod atomic;
    mod connection;
    mod control;
    mod convert;
    mod expiry;
    mod hosting;
    mod keyspace;
    mod layout;
    mod options;
    mod pipeline;
    mod replica;
    pub mod replication;
    pub mod resp;
    mod server;
    mod storage_io;

    pub use layout::Layout;
    pub use options::NodeOptions;
    pub use server::{NodeHandle, NodeServer};
}

pub use auth::ClusterSecret;
pub use client::{ClientOptions, NodeClient};
pub use client_keyspace::PartitionPage;
pub use cluster_client::{ClusterClient, Read, Written};
pub use cluster_keyspace::{ClusterCursor, KeyPage, ScanOptions};
pub use error::{Error, ErrorCode, ProtocolError, Result};
pub use protocol::{Entry, Epoch, Location, Lsn, Position};

//! How a node is started.

use std::path::PathBuf;
use std::time::Duration;

use kv_router::{ClusterMap, ControlConfig, NodeId, ReplicationConfig, StorageConfig, SyncMode};
use kv_storage::{Clock, HotCache, SyncPolicy};

use crate::auth::ClusterSecret;
use crate::protocol::DEFAULT_MAX_FRAME_BYTES;
use crate::protocol::limits;

/// Everything a [`crate::NodeServer`] needs to start.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// This node's id in the map.
    pub id: NodeId,
    /// The cluster map: which partitions this node hosts and who leads them.
    pub map: ClusterMap,
    /// This node's data directory; partition `p` lives in
    /// `<data_dir>/partition_<p>/`.
    pub data_dir: PathBuf,
    /// Storage settings from the cluster config.
    pub storage: StorageConfig,
    /// Ack mode and in-sync settings from the cluster config.
    pub replication: ReplicationConfig,
    /// Longest a write with `acks = "all"` waits for its in-sync
    /// followers; past it the writer is told "outcome unknown".
    pub ack_timeout: Duration,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Client connections served at once; the next one is refused with
    /// `Busy` right after its handshake.
    pub max_connections: usize,
    /// Peer-node connections served at once, counted apart from clients so
    /// that clients can never starve replication.
    pub max_peer_connections: usize,
    /// Connections still in their handshake at once; past it the oldest
    /// pending handshake is dropped to make room.
    pub max_handshakes: usize,
    /// Bytes of partly received requests the node holds at once, over a
    /// small allowance per connection (see [`crate::protocol::frame`]).
    pub max_inflight_request_bytes: usize,
    /// A connection must complete its handshake within this.
    pub handshake_timeout: Duration,
    /// A connection with no request for this long is closed
    /// (replication streams excepted: they carry heartbeats).
    pub idle_timeout: Duration,
    /// A request must arrive completely within this of its first byte.
    pub request_deadline: Duration,
    /// The cluster secret peers prove to each other. Without it any
    /// process that reaches the port can act as a peer node.
    pub secret: Option<ClusterSecret>,
    /// The password clients present in their handshake (and RESP clients
    /// with `AUTH`), if any.
    pub client_password: Option<String>,
    /// Bytes of recent entries each led partition keeps in memory for
    /// followers.
    pub backlog_bytes: usize,
    /// Timeout for the node's own requests to other nodes.
    pub peer_timeout: Duration,
    /// Idle replication streams send a heartbeat this often (more often
    /// when a third of `replica_lag_max_ms` is shorter).
    pub heartbeat_interval: Duration,
    /// Where the RESP2 (Redis protocol) listener binds, if the node has one
    /// (`127.0.0.1:0` picks a free port; see `NodeHandle::resp_addr`).
    pub resp_addr: Option<String>,
    /// A RESP client that sends nothing for this long is disconnected.
    pub resp_idle_timeout: Duration,
    /// The time key expiry is judged by on this node (unix ms): the system
    /// clock, unless a test moves one by hand.
    pub clock: Clock,
    /// The control plane (automatic failover, DESIGN §9), when set: every
    /// node of the cluster must run it with the same settings. `None`
    /// (the default here; `kv` turns it on from `[control]`): the map is
    /// the config's and never changes.
    pub control: Option<ControlConfig>,
}

impl NodeOptions {
    /// Options with defaults for everything but identity and place.
    pub fn new(id: NodeId, map: ClusterMap, data_dir: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            id,
            map,
            data_dir: data_dir.into(),
            storage: StorageConfig::default(),
            replication: ReplicationConfig::default(),
            ack_timeout: Duration::from_secs(30),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: 1024,
            max_peer_connections: 256,
            max_handshakes: 256,
            max_inflight_request_bytes: 256 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            request_deadline: Duration::from_secs(30),
            secret: None,
            client_password: None,
            backlog_bytes: 16 * 1024 * 1024,
            peer_timeout: Duration::from_secs(2),
            heartbeat_interval: Duration::from_millis(500),
            resp_addr: None,
            resp_idle_timeout: Duration::from_secs(600),
            clock: Clock::system(),
            control: None,
        }
    }

    /// The storage options for one partition store of this node.
    pub(crate) fn store_options(&self, cache: &HotCache) -> kv_storage::Options {
        let sync = match self.storage.sync {
            SyncMode::Always => SyncPolicy::Always,
            SyncMode::Interval => {
                SyncPolicy::Interval(Duration::from_millis(self.storage.sync_interval_ms))
            }
            SyncMode::Never => SyncPolicy::Never,
        };
        kv_storage::Options {
            sync,
            segment_bytes: self.storage.segment_bytes,
            // Every entry must fit the largest message it travels in.
            max_key_bytes: limits::max_key_bytes(),
            max_value_bytes: limits::max_value_bytes(self.max_frame_bytes),
            hot_cache: Some(cache.clone()),
            cache_writes: self.storage.cache_writes,
            clock: self.clock.clone(),
            ..kv_storage::Options::default()
        }
    }
}

//! How a node is started.

use std::path::PathBuf;
use std::time::Duration;

use kv_router::{ClusterMap, NodeId, StorageConfig, SyncMode};
use kv_storage::{HotCache, SyncPolicy};

use crate::protocol::DEFAULT_MAX_FRAME_BYTES;

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
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Connections served at once; further ones wait to be accepted.
    pub max_connections: usize,
    /// Bytes of recent entries each led partition keeps in memory for
    /// followers.
    pub backlog_bytes: usize,
    /// Timeout for the node's own requests to other nodes.
    pub peer_timeout: Duration,
    /// Idle replication streams send a heartbeat this often.
    pub heartbeat_interval: Duration,
    /// Where the RESP2 (Redis protocol) listener binds, if the node has one
    /// (`127.0.0.1:0` picks a free port; see `NodeHandle::resp_addr`).
    pub resp_addr: Option<String>,
    /// The password RESP clients must give with `AUTH` before anything
    /// else; `None` means no password.
    pub client_password: Option<String>,
    /// A RESP client that sends nothing for this long is disconnected.
    pub resp_idle_timeout: Duration,
}

impl NodeOptions {
    /// Options with defaults for everything but identity and place.
    pub fn new(id: NodeId, map: ClusterMap, data_dir: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            id,
            map,
            data_dir: data_dir.into(),
            storage: StorageConfig::default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            max_connections: 1024,
            backlog_bytes: 16 * 1024 * 1024,
            peer_timeout: Duration::from_secs(2),
            heartbeat_interval: Duration::from_millis(500),
            resp_addr: None,
            client_password: None,
            resp_idle_timeout: Duration::from_secs(600),
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
            // Leave room in the frame for the message around the value.
            max_value_bytes: self.max_frame_bytes.saturating_sub(64 * 1024),
            hot_cache: Some(cache.clone()),
            ..kv_storage::Options::default()
        }
    }
}

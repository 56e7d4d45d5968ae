//! The cluster config: its types, defaults and validation.
//!
//! Parsing and writing TOML live in [`crate::toml_format`]; this module owns
//! what a valid config *is*. [`ClusterConfig::validate`] is the single
//! gatekeeper: [`ClusterConfig::from_toml_str`] and
//! [`ClusterMap::new`](crate::ClusterMap::new) both call it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ConfigError, ControlConfig, NodeId, PartitionId, ReplicationConfig};

/// The largest accepted partition count. Placement keeps
/// `partitions × replication_factor` node ids in memory and every node makes a
/// directory per partition it hosts, so absurd counts are rejected early.
pub const MAX_PARTITIONS: u32 = 1 << 16;

/// The smallest accepted `segment_bytes` (4 KiB).
pub const MIN_SEGMENT_BYTES: u64 = 4 << 10;

// The largest accepted `segment_bytes` (the largest segment kv-storage
// opens) and the defaults the store shares are defined once, in kv-limits.
pub use kv_limits::{DEFAULT_SEGMENT_BYTES, DEFAULT_SYNC_INTERVAL_MS, MAX_SEGMENT_BYTES};

/// Default `hot_capacity_bytes` (64 MiB per node).
pub const DEFAULT_HOT_CAPACITY_BYTES: u64 = kv_limits::DEFAULT_HOT_CACHE_BYTES;

/// When the storage layer fsyncs (DESIGN §4). Written in TOML in lower case:
/// `"always"`, `"interval"`, `"never"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// fsync before acknowledging each write (concurrent writers share one).
    Always,
    /// fsync every `sync_interval_ms` milliseconds.
    #[default]
    Interval,
    /// Never fsync explicitly; the OS decides.
    Never,
}

impl SyncMode {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Always => "always",
            SyncMode::Interval => "interval",
            SyncMode::Never => "never",
        }
    }
}

/// The `[storage]` table: settings every node applies to its partition stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// When to fsync.
    pub sync: SyncMode,
    /// The fsync period for [`SyncMode::Interval`], in milliseconds (> 0).
    pub sync_interval_ms: u64,
    /// Bytes of recently used values kept in memory, per node (> 0).
    pub hot_capacity_bytes: u64,
    /// Size at which a segment file is sealed and a new one started
    /// ([`MIN_SEGMENT_BYTES`]..=[`MAX_SEGMENT_BYTES`]).
    pub segment_bytes: u64,
    /// Whether written values go into the hot cache (`true`, the default:
    /// a `put` is `HOT_STORAGE` at once); `false` fills it on reads only.
    pub cache_writes: bool,
}

impl Default for StorageConfig {
    /// The DESIGN §6 defaults: `interval` every 1000 ms, 64 MiB hot cache,
    /// 64 MiB segments; written values are cached.
    fn default() -> Self {
        StorageConfig {
            sync: SyncMode::Interval,
            sync_interval_ms: DEFAULT_SYNC_INTERVAL_MS,
            hot_capacity_bytes: DEFAULT_HOT_CAPACITY_BYTES,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            cache_writes: true,
        }
    }
}

impl StorageConfig {
    /// Checks sizes and the sync interval.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_size("hot_capacity_bytes", self.hot_capacity_bytes)
            .map_err(|reason| bad_size("hot_capacity_bytes", self.hot_capacity_bytes, reason))?;
        check_size("segment_bytes", self.segment_bytes)
            .map_err(|reason| bad_size("segment_bytes", self.segment_bytes, reason))?;
        if self.sync == SyncMode::Interval && self.sync_interval_ms == 0 {
            return Err(ConfigError::ZeroSyncInterval);
        }
        Ok(())
    }
}

fn bad_size(field: &'static str, value: u64, reason: String) -> ConfigError {
    ConfigError::BadSize {
        field,
        value: value.to_string(),
        reason,
    }
}

/// The range check of a size field; the `Err` is the reason shown to the user.
pub(crate) fn check_size(field: &str, bytes: u64) -> Result<(), String> {
    if bytes == 0 {
        return Err("must be greater than 0".to_string());
    }
    if field == "segment_bytes" && !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&bytes) {
        return Err(format!(
            "must be between 4KiB ({MIN_SEGMENT_BYTES}) and 1GiB ({MAX_SEGMENT_BYTES}) bytes"
        ));
    }
    Ok(())
}

/// One `[[nodes]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node's id, unique in the cluster (ids need not be contiguous).
    pub id: NodeId,
    /// `host:port` the node listens on; port 0 means "any free port", to be
    /// published later with [`ClusterMap::set_addr`](crate::ClusterMap::set_addr).
    pub addr: String,
    /// Where the node keeps its data. In a file it is relative to the config
    /// file: see [`ClusterConfig::resolve_data_dirs`].
    pub data_dir: Option<PathBuf>,
    /// `host:port` of the node's optional RESP2 (Redis protocol) listener.
    pub resp_addr: Option<String>,
}

/// One `[[placement]]` entry: the replicas of one partition, leader first,
/// replacing the formula for that partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementOverride {
    /// The partition this entry places.
    pub partition: PartitionId,
    /// Its replicas, leader first; exactly `replication_factor` distinct,
    /// known node ids.
    pub replicas: Vec<NodeId>,
}

/// The `[security]` table: who may talk to the nodes.
///
/// Both settings are optional. Without a secret, any process that reaches
/// a node's port can act as a peer node (bind to loopback only); without a
/// password, any process can act as a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityConfig {
    /// A file holding the cluster secret every node proves to its peers
    /// (challenge-response, never sent). In a file it is relative to the
    /// config file: see [`ClusterConfig::resolve_data_dirs`].
    pub secret_file: Option<PathBuf>,
    /// The password clients present (framed handshake, RESP `AUTH`).
    pub client_password: Option<String>,
}

/// A whole cluster config (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Number of partitions keys are hashed into (1..=[`MAX_PARTITIONS`]).
    pub partitions: u32,
    /// Replicas per partition, leader included (1..=number of nodes).
    pub replication_factor: u32,
    /// The `[storage]` table.
    pub storage: StorageConfig,
    /// The `[[nodes]]` entries, in file order.
    pub nodes: Vec<NodeConfig>,
    /// The `[[placement]]` overrides, in file order.
    pub placement: Vec<PlacementOverride>,
    /// The `[security]` table.
    pub security: SecurityConfig,
    /// The `[replication]` table (ack mode, in-sync replicas).
    pub replication: ReplicationConfig,
    /// The `[control]` table (failover, controller voters, lease timing).
    pub control: ControlConfig,
}

impl ClusterConfig {
    /// The default topology of the original system: nodes 0, 1 and 2 on
    /// `127.0.0.1:0` (ephemeral ports), 4 partitions, replication factor 2,
    /// default storage, no overrides.
    pub fn default_topology() -> ClusterConfig {
        let nodes = (0..3)
            .map(|id| NodeConfig {
                id,
                addr: "127.0.0.1:0".to_string(),
                data_dir: None,
                resp_addr: None,
            })
            .collect();
        ClusterConfig {
            partitions: 4,
            replication_factor: 2,
            storage: StorageConfig::default(),
            nodes,
            placement: Vec::new(),
            security: SecurityConfig::default(),
            replication: ReplicationConfig::default(),
            control: ControlConfig::default(),
        }
    }

    /// Checks every rule of the config; the first violation is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_counts()?;
        check_nodes(&self.nodes)?;
        if self.replication_factor as usize > self.nodes.len() {
            return Err(ConfigError::ReplicationFactorTooHigh {
                rf: self.replication_factor,
                nodes: self.nodes.len(),
            });
        }
        self.storage.validate()?;
        self.replication.validate(self.replication_factor)?;
        self.control.validate(&self.nodes)?;
        self.check_placement()
    }

    /// Makes every relative `data_dir` (and the `[security]`
    /// `secret_file`) relative to `base` (normally the directory holding
    /// the config file). Pure path arithmetic: nothing is read from disk.
    pub fn resolve_data_dirs(&mut self, base: &Path) {
        for node in &mut self.nodes {
            if let Some(dir) = &node.data_dir
                && dir.is_relative()
            {
                node.data_dir = Some(base.join(dir));
            }
        }
        if let Some(file) = &self.security.secret_file
            && file.is_relative()
        {
            self.security.secret_file = Some(base.join(file));
        }
    }

    fn check_counts(&self) -> Result<(), ConfigError> {
        if self.partitions == 0 {
            return Err(ConfigError::ZeroPartitions);
        }
        if self.partitions > MAX_PARTITIONS {
            return Err(ConfigError::TooManyPartitions {
                partitions: self.partitions,
                max: MAX_PARTITIONS,
            });
        }
        if self.replication_factor == 0 {
            return Err(ConfigError::ZeroReplicationFactor);
        }
        if self.nodes.is_empty() {
            return Err(ConfigError::NoNodes);
        }
        Ok(())
    }

    fn check_placement(&self) -> Result<(), ConfigError> {
        let known: BTreeSet<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let mut seen = BTreeSet::new();
        for o in &self.placement {
            let fail = |reason: String| ConfigError::Placement {
                partition: o.partition,
                reason,
            };
            if o.partition >= self.partitions {
                return Err(fail(format!(
                    "out of range: the cluster has {} partitions (0..={})",
                    self.partitions,
                    self.partitions - 1
                )));
            }
            if !seen.insert(o.partition) {
                return Err(fail(
                    "more than one [[placement]] entry for this partition".into(),
                ));
            }
            check_replicas(&o.replicas, self.replication_factor, &known).map_err(fail)?;
        }
        Ok(())
    }
}

/// Checks one override's replica list; the `Err` is the reason.
fn check_replicas(replicas: &[NodeId], rf: u32, known: &BTreeSet<NodeId>) -> Result<(), String> {
    if replicas.len() != rf as usize {
        return Err(format!(
            "lists {} replica(s) but replication_factor is {rf}",
            replicas.len()
        ));
    }
    let mut used = BTreeSet::new();
    for &node in replicas {
        if !known.contains(&node) {
            return Err(format!("replica node {node} is not in [[nodes]]"));
        }
        if !used.insert(node) {
            return Err(format!(
                "node {node} is listed twice; replicas must be on distinct nodes"
            ));
        }
    }
    Ok(())
}

/// Checks ids, addresses and data dirs of all nodes.
fn check_nodes(nodes: &[NodeConfig]) -> Result<(), ConfigError> {
    let mut ids = BTreeSet::new();
    for node in nodes {
        if !ids.insert(node.id) {
            return Err(ConfigError::DuplicateNodeId(node.id));
        }
        check_addr(node.id, &node.addr)?;
        if let Some(resp) = &node.resp_addr {
            check_addr(node.id, resp)?;
        }
        if node
            .data_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err(ConfigError::EmptyDataDir { node: node.id });
        }
    }
    let mut by_addr: BTreeMap<(String, u16), NodeId> = BTreeMap::new();
    let mut sorted: Vec<&NodeConfig> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.id);
    // A RESP listener may share no port with any node's listener.
    let addrs = sorted.iter().map(|n| (n.id, &n.addr)).chain(
        sorted
            .iter()
            .filter_map(|n| n.resp_addr.as_ref().map(|a| (n.id, a))),
    );
    for (id, addr) in addrs {
        let Some(key) = addr_key(addr) else {
            continue;
        };
        if let Some(&first) = by_addr.get(&key) {
            return Err(duplicate_addr(addr, first, id));
        }
        by_addr.insert(key, id);
    }
    Ok(())
}

/// What makes two addresses the same: the host without regard to case, and
/// the port as a number. `None` for port 0 (ephemeral, may repeat) and for
/// malformed addresses. Host names are not resolved: `localhost:7000` and
/// `127.0.0.1:7000` count as different.
pub(crate) fn addr_key(addr: &str) -> Option<(String, u16)> {
    match split_addr(addr) {
        Ok((_, 0)) | Err(_) => None,
        Ok((host, port)) => Some((host.to_ascii_lowercase(), port)),
    }
}

pub(crate) fn duplicate_addr(addr: &str, a: NodeId, b: NodeId) -> ConfigError {
    ConfigError::DuplicateAddr {
        addr: addr.to_string(),
        first: a.min(b),
        second: a.max(b),
    }
}

/// Checks that `addr` is `host:port` (IPv6 hosts in brackets).
pub(crate) fn check_addr(node: NodeId, addr: &str) -> Result<(), ConfigError> {
    split_addr(addr)
        .map(|_| ())
        .map_err(|reason| ConfigError::BadAddr {
            node,
            addr: addr.to_string(),
            reason,
        })
}

/// The host and port of a `host:port` address, or what is wrong with it.
fn split_addr(addr: &str) -> Result<(&str, u16), &'static str> {
    let (host, port) = addr.rsplit_once(':').ok_or("missing :port")?;
    if host.is_empty() {
        return Err("empty host");
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("host contains whitespace");
    }
    let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
    if !bracketed && (host.contains(':') || host.contains('[') || host.contains(']')) {
        return Err("write IPv6 hosts in brackets, e.g. [::1]:7000");
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("port must be a number in 0..=65535");
    }
    let port = port
        .parse()
        .map_err(|_| "port must be a number in 0..=65535")?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "127.0.0.1:7000",
            "localhost:0",
            "[::1]:65535",
            "node-1.example:1",
            "h:00080",
        ] {
            assert!(split_addr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            ":7000",
            "host:",
            "host:65536",
            "host:-1",
            "host:+80",
            "::1:7000",
            "[::1:7000",
            "a b:1",
            "host:7000 ",
            "[]:1",
            "",
        ] {
            assert!(split_addr(bad).is_err(), "{bad:?}");
        }
        assert_eq!(split_addr("[::1]:7000"), Ok(("[::1]", 7000)));
        assert_eq!(addr_key("127.0.0.1:0"), None);
        assert_eq!(addr_key("[::1]:000"), None);
        assert_eq!(addr_key("Node1:080"), Some(("node1".to_string(), 80)));
    }

    #[test]
    fn resolve_data_dirs_joins_relative_only() {
        let mut c = ClusterConfig::default_topology();
        c.nodes[0].data_dir = Some("data/node_0".into());
        c.nodes[1].data_dir = Some("/abs/node_1".into());
        c.resolve_data_dirs(Path::new("/etc/kv"));
        assert_eq!(
            c.nodes[0].data_dir,
            Some(PathBuf::from("/etc/kv/data/node_0"))
        );
        assert_eq!(c.nodes[1].data_dir, Some(PathBuf::from("/abs/node_1")));
        assert_eq!(c.nodes[2].data_dir, None);
    }
}

//! Reading and writing the TOML form of a [`ClusterConfig`] (DESIGN §6).
//!
//! The file is first deserialized into private `Raw*` structs that mirror
//! it key for key with `deny_unknown_fields`, so a misspelt key is an error
//! naming that key rather than a silently ignored setting. The raw values
//! are then converted (sizes with units) and the result validated.
//!
//! Writing is done line by line, not through serde, so it cannot fail and
//! its layout is fixed (strings are encoded by `toml_writer`): top-level keys, `[storage]`, then one `[[nodes]]` and one
//! `[[placement]]` table per entry, then `[security]` when anything in it
//! is set, then `[replication]` when anything in it is not the default.

use serde::Deserialize;
use toml_writer::{ToTomlValue, TomlStringBuilder};

use crate::config::check_size;
use crate::size::RawSize;
use crate::{
    ClusterConfig, ConfigError, ControlConfig, NodeConfig, NodeId, PartitionId, PlacementOverride,
    ReplicationConfig, SecurityConfig, StorageConfig, SyncMode,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    partitions: u32,
    replication_factor: u32,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    nodes: Vec<RawNode>,
    #[serde(default)]
    placement: Vec<RawPlacement>,
    #[serde(default)]
    security: RawSecurity,
    #[serde(default)]
    replication: RawReplication,
    #[serde(default)]
    control: RawControl,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    failover: Option<bool>,
    voters: Option<Vec<NodeId>>,
    heartbeat_ms: Option<u64>,
    lease_ms: Option<u64>,
    margin_ms: Option<u64>,
}

impl RawControl {
    fn into_control(self) -> ControlConfig {
        let d = ControlConfig::default();
        ControlConfig {
            failover: self.failover.unwrap_or(d.failover),
            voters: self.voters.unwrap_or(d.voters),
            heartbeat_ms: self.heartbeat_ms.unwrap_or(d.heartbeat_ms),
            lease_ms: self.lease_ms.unwrap_or(d.lease_ms),
            margin_ms: self.margin_ms.unwrap_or(d.margin_ms),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReplication {
    acks: Option<crate::AckMode>,
    min_insync_replicas: Option<u32>,
    replica_lag_max_ms: Option<u64>,
}

impl RawReplication {
    fn into_replication(self) -> ReplicationConfig {
        let defaults = ReplicationConfig::default();
        ReplicationConfig {
            acks: self.acks.unwrap_or(defaults.acks),
            min_insync_replicas: self
                .min_insync_replicas
                .unwrap_or(defaults.min_insync_replicas),
            replica_lag_max_ms: self
                .replica_lag_max_ms
                .unwrap_or(defaults.replica_lag_max_ms),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSecurity {
    secret_file: Option<String>,
    client_password: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    sync: Option<SyncMode>,
    sync_interval_ms: Option<u64>,
    hot_capacity_bytes: Option<RawSize>,
    segment_bytes: Option<RawSize>,
    cache_writes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    id: NodeId,
    addr: String,
    data_dir: Option<String>,
    resp_addr: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlacement {
    partition: PartitionId,
    replicas: Vec<NodeId>,
}

impl ClusterConfig {
    /// Parses and validates a cluster config written in TOML.
    ///
    /// Unknown keys, missing required keys (`partitions`,
    /// `replication_factor`, and `id`/`addr` of each node) and wrongly typed
    /// values are [`ConfigError::Toml`]; everything else is checked by
    /// [`ClusterConfig::validate`]. Relative `data_dir`s are kept as written:
    /// see [`ClusterConfig::resolve_data_dirs`].
    pub fn from_toml_str(s: &str) -> Result<ClusterConfig, ConfigError> {
        let raw: RawConfig = toml::from_str(s).map_err(|e| ConfigError::Toml {
            message: e.to_string().trim_end().to_string(),
        })?;
        let config = ClusterConfig {
            partitions: raw.partitions,
            replication_factor: raw.replication_factor,
            storage: raw.storage.into_storage()?,
            nodes: raw.nodes.into_iter().map(RawNode::into_node).collect(),
            placement: raw
                .placement
                .into_iter()
                .map(RawPlacement::into_override)
                .collect(),
            security: SecurityConfig {
                secret_file: raw.security.secret_file.map(Into::into),
                client_password: raw.security.client_password,
            },
            replication: raw.replication.into_replication(),
            control: raw.control.into_control(),
        };
        config.validate()?;
        Ok(config)
    }

    /// The config as TOML that [`ClusterConfig::from_toml_str`] reads back
    /// into an equal config (for every valid config whose `data_dir`s are
    /// valid UTF-8; other paths are written lossily).
    pub fn to_toml_string(&self) -> String {
        let mut out = vec![
            format!("partitions = {}", self.partitions),
            format!("replication_factor = {}", self.replication_factor),
            String::new(),
            "[storage]".to_string(),
            format!("sync = {}", quote(self.storage.sync.as_str())),
            format!("sync_interval_ms = {}", self.storage.sync_interval_ms),
            format!(
                "hot_capacity_bytes = {}",
                size(self.storage.hot_capacity_bytes)
            ),
            format!("segment_bytes = {}", size(self.storage.segment_bytes)),
            format!("cache_writes = {}", self.storage.cache_writes),
        ];
        for node in &self.nodes {
            out.extend(["".into(), "[[nodes]]".into(), format!("id = {}", node.id)]);
            out.push(format!("addr = {}", quote(&node.addr)));
            if let Some(dir) = &node.data_dir {
                out.push(format!("data_dir = {}", quote(&dir.to_string_lossy())));
            }
            if let Some(resp) = &node.resp_addr {
                out.push(format!("resp_addr = {}", quote(resp)));
            }
        }
        for o in &self.placement {
            let ids: Vec<String> = o.replicas.iter().map(|id| id.to_string()).collect();
            out.extend(["".into(), "[[placement]]".into()]);
            out.push(format!("partition = {}", o.partition));
            out.push(format!("replicas = [{}]", ids.join(", ")));
        }
        out.extend(security_lines(&self.security));
        out.extend(self.replication.toml_lines());
        out.extend(self.control.toml_lines());
        out.push(String::new());
        out.join("\n")
    }
}

impl RawStorage {
    fn into_storage(self) -> Result<StorageConfig, ConfigError> {
        let defaults = StorageConfig::default();
        Ok(StorageConfig {
            sync: self.sync.unwrap_or(defaults.sync),
            sync_interval_ms: self.sync_interval_ms.unwrap_or(defaults.sync_interval_ms),
            hot_capacity_bytes: bytes("hot_capacity_bytes", self.hot_capacity_bytes)?
                .unwrap_or(defaults.hot_capacity_bytes),
            segment_bytes: bytes("segment_bytes", self.segment_bytes)?
                .unwrap_or(defaults.segment_bytes),
            cache_writes: self.cache_writes.unwrap_or(defaults.cache_writes),
        })
    }
}

/// Converts and range-checks a size, reporting it as the user wrote it.
fn bytes(field: &'static str, raw: Option<RawSize>) -> Result<Option<u64>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let bad = |reason| ConfigError::BadSize {
        field,
        value: raw.to_string(),
        reason,
    };
    let n = raw.to_bytes().map_err(bad)?;
    check_size(field, n).map_err(bad)?;
    Ok(Some(n))
}

impl RawNode {
    fn into_node(self) -> NodeConfig {
        NodeConfig {
            id: self.id,
            addr: self.addr,
            data_dir: self.data_dir.map(Into::into),
            resp_addr: self.resp_addr,
        }
    }
}

impl RawPlacement {
    fn into_override(self) -> PlacementOverride {
        PlacementOverride {
            partition: self.partition,
            replicas: self.replicas,
        }
    }
}

/// The `[security]` table, when anything is set.
fn security_lines(security: &SecurityConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(file) = &security.secret_file {
        out.push(format!("secret_file = {}", quote(&file.to_string_lossy())));
    }
    if let Some(password) = &security.client_password {
        out.push(format!("client_password = {}", quote(password)));
    }
    if !out.is_empty() {
        out.splice(0..0, [String::new(), "[security]".to_string()]);
    }
    out
}

/// A size as a TOML integer, or as a numeric string when it exceeds TOML's
/// signed 64-bit integers.
fn size(bytes: u64) -> String {
    if i64::try_from(bytes).is_ok() {
        bytes.to_string()
    } else {
        quote(&bytes.to_string())
    }
}

/// `s` as a TOML basic string (`"..."`), encoded by `toml_writer` (the
/// toml-rs project's writer, which `toml` itself uses): quotes,
/// backslashes and the control characters TOML forbids in strings
/// escaped, everything else literal.
fn quote(s: &str) -> String {
    TomlStringBuilder::new(s).as_basic().to_toml_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes() {
        assert_eq!(
            quote("a\"b\\c\n\u{1}\u{7f}\u{c}é"),
            "\"a\\\"b\\\\c\\n\\u0001\\u007F\\fé\""
        );
        assert_eq!(quote("127.0.0.1:7000"), "\"127.0.0.1:7000\"");
    }

    proptest::proptest! {
        /// Any string, written as a value, reads back equal with the
        /// `toml` crate; quotes, backslashes, control characters and
        /// non-ASCII are drawn often.
        #[test]
        fn quoted_strings_read_back(
            s in "([\"\\\\'\\x00-\\x1f\\x7f\u{80}-\u{9f}é€😀\u{feff}\u{2028}]|.){0,40}"
        ) {
            #[derive(serde::Deserialize)]
            struct One { v: String }
            let text = format!("v = {}\n", quote(&s));
            let back: One = toml::from_str(&text).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(format!("{text:?}: {e}"))
            })?;
            proptest::prop_assert_eq!(back.v, s);
        }
    }

    #[test]
    fn huge_size_written_as_string() {
        assert_eq!(size(64), "64");
        assert_eq!(size(u64::MAX), "\"18446744073709551615\"");
    }
}

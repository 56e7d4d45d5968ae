//! The `[replication]` table: how a write is acknowledged and which
//! followers count as in sync (DESIGN §9, `docs/replication.md`).
//!
//! The settings are cluster-wide: every leader applies them to the
//! partitions it leads. `acks` is only the default; a client may ask for
//! another mode per write.

use serde::{Deserialize, Serialize};

use crate::ConfigError;

/// Default `min_insync_replicas`: the leader alone is enough.
pub const DEFAULT_MIN_INSYNC_REPLICAS: u32 = 1;

/// Default `replica_lag_max_ms`: a follower that has not caught up with
/// the leader's end for 5 s leaves the in-sync set.
pub const DEFAULT_REPLICA_LAG_MAX_MS: u64 = 5000;

/// When a leader answers a write. Written in TOML in lower case:
/// `"leader"`, `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// After the leader's own write, durable under its sync policy;
    /// followers copy it asynchronously (a leader lost before they do
    /// loses the write).
    #[default]
    Leader,
    /// After every member of the partition's in-sync set has the write
    /// durable under its own sync policy.
    All,
}

impl AckMode {
    /// The name used in the config file, the shell and the bench.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Leader => "leader",
            AckMode::All => "all",
        }
    }
}

impl std::str::FromStr for AckMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "leader" => Ok(AckMode::Leader),
            "all" => Ok(AckMode::All),
            _ => Err(format!("acks must be \"leader\" or \"all\", not {s:?}")),
        }
    }
}

/// The `[replication]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationConfig {
    /// The ack mode of writes that do not ask for one.
    pub acks: AckMode,
    /// Writes with [`AckMode::All`] are refused when the in-sync set,
    /// leader included, is smaller than this (1..=replication_factor).
    pub min_insync_replicas: u32,
    /// A follower is in sync while it has caught up with the leader's end
    /// at some point in the last this many milliseconds (> 0).
    pub replica_lag_max_ms: u64,
}

impl Default for ReplicationConfig {
    /// `acks = "leader"`, `min_insync_replicas = 1`,
    /// `replica_lag_max_ms = 5000`.
    fn default() -> Self {
        ReplicationConfig {
            acks: AckMode::Leader,
            min_insync_replicas: DEFAULT_MIN_INSYNC_REPLICAS,
            replica_lag_max_ms: DEFAULT_REPLICA_LAG_MAX_MS,
        }
    }
}

impl ReplicationConfig {
    /// Checks the ranges; `replication_factor` bounds `min_insync_replicas`
    /// (a larger value could never be met).
    pub fn validate(&self, replication_factor: u32) -> Result<(), ConfigError> {
        let min = self.min_insync_replicas;
        if min == 0 || min > replication_factor {
            return Err(ConfigError::MinInsyncReplicas {
                min,
                replication_factor,
            });
        }
        if self.replica_lag_max_ms == 0 {
            return Err(ConfigError::ZeroReplicaLagMax);
        }
        Ok(())
    }

    /// The table's lines for the config file; none when every setting is
    /// the default, so configs that never mention it are written as before.
    pub(crate) fn toml_lines(&self) -> Vec<String> {
        if *self == ReplicationConfig::default() {
            return Vec::new();
        }
        vec![
            String::new(),
            "[replication]".to_string(),
            format!("acks = \"{}\"", self.acks.as_str()),
            format!("min_insync_replicas = {}", self.min_insync_replicas),
            format!("replica_lag_max_ms = {}", self.replica_lag_max_ms),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_insync_must_be_between_one_and_rf() {
        let mut c = ReplicationConfig::default();
        assert_eq!(c.validate(1), Ok(()));
        c.min_insync_replicas = 0;
        assert!(matches!(
            c.validate(2),
            Err(ConfigError::MinInsyncReplicas { min: 0, .. })
        ));
        c.min_insync_replicas = 3;
        assert!(matches!(
            c.validate(2),
            Err(ConfigError::MinInsyncReplicas {
                min: 3,
                replication_factor: 2
            })
        ));
        assert_eq!(c.validate(3), Ok(()));
    }

    #[test]
    fn zero_lag_is_refused() {
        let c = ReplicationConfig {
            replica_lag_max_ms: 0,
            ..ReplicationConfig::default()
        };
        assert_eq!(c.validate(2), Err(ConfigError::ZeroReplicaLagMax));
    }

    #[test]
    fn ack_mode_names() {
        assert_eq!("ALL".parse::<AckMode>(), Ok(AckMode::All));
        assert_eq!("leader".parse::<AckMode>(), Ok(AckMode::Leader));
        assert!("quorum".parse::<AckMode>().is_err());
        assert_eq!(AckMode::All.as_str(), "all");
    }

    #[test]
    fn default_table_is_not_written() {
        assert!(ReplicationConfig::default().toml_lines().is_empty());
        let c = ReplicationConfig {
            acks: AckMode::All,
            ..ReplicationConfig::default()
        };
        assert!(c.toml_lines().contains(&"acks = \"all\"".to_string()));
    }
}

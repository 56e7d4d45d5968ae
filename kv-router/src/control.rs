//! The `[control]` table: the control plane that owns the cluster map and
//! fails partitions over when a leader dies (DESIGN §9,
//! `docs/replication.md`).

use crate::{ConfigError, NodeConfig, NodeId};

/// Default `heartbeat_ms`: each node heartbeats to the controller leader
/// this often.
pub const DEFAULT_HEARTBEAT_MS: u64 = 200;
/// Default `lease_ms`: a partition leader takes writes for this long after
/// it sent a heartbeat the controller answered.
pub const DEFAULT_LEASE_MS: u64 = 1000;
/// Default `margin_ms`: the controller declares a node failed after
/// `lease_ms + margin_ms` of silence.
pub const DEFAULT_MARGIN_MS: u64 = 500;
/// How many of the lowest node ids vote when `voters` is not given.
pub const DEFAULT_VOTERS: usize = 3;

/// The `[control]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Run the control plane: automatic failover, map changes through the
    /// controller. Off, the map is the config's and never changes.
    pub failover: bool,
    /// The nodes that vote in the controller's Raft group; empty means the
    /// [`DEFAULT_VOTERS`] lowest ids (every node of a smaller cluster).
    pub voters: Vec<NodeId>,
    /// How often each node heartbeats to the controller leader (ms).
    pub heartbeat_ms: u64,
    /// A partition leader's lease (ms), renewed by answered heartbeats.
    pub lease_ms: u64,
    /// Extra silence (ms) before the controller declares a node failed.
    pub margin_ms: u64,
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            failover: true,
            voters: Vec::new(),
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            lease_ms: DEFAULT_LEASE_MS,
            margin_ms: DEFAULT_MARGIN_MS,
        }
    }
}

impl ControlConfig {
    /// The voters among `nodes`: the configured ones, or the lowest ids.
    pub fn voters_among(&self, nodes: &[NodeConfig]) -> Vec<NodeId> {
        if !self.voters.is_empty() {
            let mut v = self.voters.clone();
            v.sort_unstable();
            return v;
        }
        let mut ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        ids.sort_unstable();
        ids.truncate(DEFAULT_VOTERS);
        ids
    }

    /// Checks the timings and that every voter is a node, once.
    pub fn validate(&self, nodes: &[NodeConfig]) -> Result<(), ConfigError> {
        let bad = |reason: String| Err(ConfigError::Control { reason });
        if self.heartbeat_ms == 0 || self.lease_ms <= self.heartbeat_ms {
            return bad(format!(
                "heartbeat_ms = {} must be above 0 and below lease_ms = {}",
                self.heartbeat_ms, self.lease_ms
            ));
        }
        for (i, v) in self.voters.iter().enumerate() {
            if !nodes.iter().any(|n| n.id == *v) {
                return bad(format!("voter {v} is not a node"));
            }
            if self
                .voters
                .get(..i)
                .is_some_and(|before| before.contains(v))
            {
                return bad(format!("voter {v} is listed twice"));
            }
        }
        Ok(())
    }

    /// The table's lines for the config file; none when every setting is
    /// the default.
    pub(crate) fn toml_lines(&self) -> Vec<String> {
        if *self == ControlConfig::default() {
            return Vec::new();
        }
        let voters: Vec<String> = self.voters.iter().map(|v| v.to_string()).collect();
        vec![
            String::new(),
            "[control]".to_string(),
            format!("failover = {}", self.failover),
            format!("voters = [{}]", voters.join(", ")),
            format!("heartbeat_ms = {}", self.heartbeat_ms),
            format!("lease_ms = {}", self.lease_ms),
            format!("margin_ms = {}", self.margin_ms),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[NodeId]) -> Vec<NodeConfig> {
        ids.iter()
            .map(|&id| NodeConfig {
                id,
                addr: format!("127.0.0.1:{}", 7000 + id),
                data_dir: None,
                resp_addr: None,
            })
            .collect()
    }

    #[test]
    fn the_lowest_three_vote_unless_named() {
        let c = ControlConfig::default();
        assert_eq!(c.voters_among(&nodes(&[5, 1, 9, 3, 7])), vec![1, 3, 5]);
        assert_eq!(c.voters_among(&nodes(&[4, 2])), vec![2, 4]);
        let named = ControlConfig {
            voters: vec![9, 5],
            ..ControlConfig::default()
        };
        assert_eq!(named.voters_among(&nodes(&[5, 1, 9])), vec![5, 9]);
    }

    #[test]
    fn bad_timings_and_voters_are_refused() {
        let n = nodes(&[0, 1, 2]);
        assert_eq!(ControlConfig::default().validate(&n), Ok(()));
        let slow = ControlConfig {
            heartbeat_ms: 1000,
            ..ControlConfig::default()
        };
        assert!(matches!(
            slow.validate(&n),
            Err(ConfigError::Control { .. })
        ));
        let stranger = ControlConfig {
            voters: vec![0, 8],
            ..ControlConfig::default()
        };
        assert!(matches!(
            stranger.validate(&n),
            Err(ConfigError::Control { .. })
        ));
        let twice = ControlConfig {
            voters: vec![0, 0],
            ..ControlConfig::default()
        };
        assert!(matches!(
            twice.validate(&n),
            Err(ConfigError::Control { .. })
        ));
    }

    #[test]
    fn default_table_is_not_written() {
        assert!(ControlConfig::default().toml_lines().is_empty());
        let off = ControlConfig {
            failover: false,
            ..ControlConfig::default()
        };
        assert!(off.toml_lines().contains(&"failover = false".to_string()));
    }
}

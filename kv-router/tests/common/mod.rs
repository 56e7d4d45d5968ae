//! Helpers shared by the router's integration tests.

use kv_router::{ClusterConfig, NodeConfig};

/// A config with nodes `ids` (address `node<id>:7000`), `partitions`
/// partitions and replication factor `rf`; the rest as the default.
pub fn config(ids: &[u32], partitions: u32, rf: u32) -> ClusterConfig {
    let nodes = ids
        .iter()
        .map(|&id| NodeConfig {
            id,
            addr: format!("node{id}:7000"),
            data_dir: None,
            resp_addr: None,
        })
        .collect();
    ClusterConfig {
        partitions,
        replication_factor: rf,
        nodes,
        ..ClusterConfig::default_topology()
    }
}

//! Placement and the ClusterMap API on fixed topologies.

mod common;

use common::config;
use kv_router::{ClusterConfig, ClusterMap, ConfigError, PlacementOverride, Role};

fn default_map() -> ClusterMap {
    ClusterMap::new(&ClusterConfig::default_topology()).unwrap()
}

#[test]
fn default_topology_matches_the_original() {
    let c = ClusterConfig::default_topology();
    assert_eq!(
        (c.partitions, c.replication_factor, c.nodes.len()),
        (4, 2, 3)
    );
    let map = default_map();
    assert_eq!(map.version(), 1);
    assert_eq!(map.partition_count(), 4);
    assert_eq!(map.replication_factor(), 2);
    let expected: [&[u32]; 4] = [&[0, 1], &[1, 2], &[2, 0], &[0, 1]];
    for (p, replicas) in expected.iter().enumerate() {
        assert_eq!(map.replicas(p as u32), Some(*replicas), "partition {p}");
    }
    use Role::{Follower, Leader};
    assert_eq!(
        map.partitions_of(0),
        [(0, Leader), (2, Follower), (3, Leader)]
    );
    assert_eq!(
        map.partitions_of(1),
        [(0, Follower), (1, Leader), (3, Follower)]
    );
    assert_eq!(map.partitions_of(2), [(1, Follower), (2, Leader)]);
}

#[test]
fn leader_followers_and_roles() {
    let map = default_map();
    assert_eq!(map.leader(2), Some(2));
    assert_eq!(map.followers(2), Some(&[0][..]));
    assert_eq!(map.role_of(2, 2), Some(Role::Leader));
    assert_eq!(map.role_of(0, 2), Some(Role::Follower));
    assert_eq!(map.role_of(1, 2), None);
    assert_eq!(Role::Leader.to_string(), "leader");
    assert_eq!(Role::Follower.to_string(), "follower");
}

#[test]
fn unknown_partitions_and_nodes_are_none_not_panics() {
    let map = default_map();
    assert_eq!(map.replicas(4), None);
    assert_eq!(map.replicas(u32::MAX), None);
    assert_eq!(map.leader(4), None);
    assert_eq!(map.followers(4), None);
    assert_eq!(map.role_of(0, 4), None);
    assert_eq!(map.role_of(9, 0), None);
    assert!(map.partitions_of(9).is_empty());
    assert_eq!(map.node(9), None);
    assert_eq!(map.addr(9), None);
}

#[test]
fn replication_factor_one_and_equal_to_node_count() {
    let map = ClusterMap::new(&config(&[0, 1, 2], 4, 1)).unwrap();
    assert_eq!(map.replicas(3), Some(&[0][..]));
    assert_eq!(map.followers(3), Some(&[][..]));

    let map = ClusterMap::new(&config(&[0, 1, 2], 4, 3)).unwrap();
    assert_eq!(map.replicas(1), Some(&[1, 2, 0][..]));
    for node in 0..3 {
        assert_eq!(
            map.partitions_of(node).len(),
            4,
            "every node holds everything"
        );
    }
}

#[test]
fn sparse_ids_use_the_sorted_list() {
    let map = ClusterMap::new(&config(&[30, 10, 20, 1000], 5, 2)).unwrap();
    let expected: [&[u32]; 5] = [&[10, 20], &[20, 30], &[30, 1000], &[1000, 10], &[10, 20]];
    for (p, replicas) in expected.iter().enumerate() {
        assert_eq!(map.replicas(p as u32), Some(*replicas), "partition {p}");
    }
    assert_eq!(
        map.node(1000).map(|n| n.addr.as_str()),
        Some("node1000:7000")
    );
}

#[test]
fn override_applies_to_its_partition_only() {
    let mut c = config(&[0, 1, 2], 4, 2);
    c.placement = vec![PlacementOverride {
        partition: 1,
        replicas: vec![0, 2],
    }];
    let map = ClusterMap::new(&c).unwrap();
    assert_eq!(map.replicas(1), Some(&[0, 2][..]));
    assert_eq!(map.leader(1), Some(0));
    assert_eq!(map.replicas(0), Some(&[0, 1][..]));
    assert_eq!(map.replicas(2), Some(&[2, 0][..]));
}

#[test]
fn version_can_be_replaced() {
    let map = default_map().with_version(42);
    assert_eq!(map.version(), 42);
    assert_ne!(map, default_map(), "version is part of equality");
    assert_eq!(map.with_version(1), default_map());
}

#[test]
fn set_addr_publishes_bound_ports() {
    let mut map = default_map();
    assert_eq!(map.addr(1), Some("127.0.0.1:0"));
    map.set_addr(0, "127.0.0.1:40001".into()).unwrap();
    map.set_addr(1, "127.0.0.1:40002".into()).unwrap();
    assert_eq!(map.addr(0), Some("127.0.0.1:40001"));
    assert_eq!(map.addr(1), Some("127.0.0.1:40002"));
    assert_eq!(
        map.version(),
        1,
        "publishing an address is not a placement change"
    );
    // Setting a node's own address again is fine; stealing another's is not.
    map.set_addr(0, "127.0.0.1:40001".into()).unwrap();
    assert_eq!(
        map.set_addr(2, "127.0.0.1:40001".into()),
        Err(ConfigError::DuplicateAddr {
            addr: "127.0.0.1:40001".into(),
            first: 0,
            second: 2
        })
    );
    assert!(matches!(
        map.set_addr(2, "nonsense".into()),
        Err(ConfigError::BadAddr { node: 2, .. })
    ));
    assert_eq!(
        map.addr(2),
        Some("127.0.0.1:0"),
        "a rejected address changes nothing"
    );
    map.set_addr(2, "127.0.0.1:0".into()).unwrap();
}

#[test]
fn map_rejects_invalid_configs() {
    assert_eq!(
        ClusterMap::new(&config(&[0, 1], 4, 3)),
        Err(ConfigError::ReplicationFactorTooHigh { rf: 3, nodes: 2 })
    );
}

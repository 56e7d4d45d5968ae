//! The body of the `ClusterMap` reply (type 0xA0, asked with 0x20): the
//! node's whole cluster map, so a client given only one node's
//! `host:port` learns every node and every partition's replicas.
//!
//! Layout (big-endian), see `docs/protocol.md`:
//!
//! | field | size |
//! |-------|------|
//! | map version | u64 |
//! | partition count | u32 |
//! | replication factor | u32 |
//! | node count, then per node: id u32, addr string | u32 + … |
//! | per partition (in order 0..count): replication-factor × node id u32 | … |
//!
//! The replicas are sent explicitly (not left to the formula), so the map
//! decoded is the map the node routes by, `[[placement]]` overrides
//! included.

use bytes::{BufMut, BytesMut};
use kv_router::{
    ClusterConfig, ClusterMap, NodeConfig, PlacementOverride, SecurityConfig, StorageConfig,
};

use super::wire::{WireReader, WireWrite};
use crate::error::ProtocolError;

/// Smallest encoded node: id (4) + address length (4).
const MIN_NODE_BYTES: usize = 8;

pub(super) fn encode_map(out: &mut BytesMut, map: &ClusterMap) {
    out.put_u64(map.version());
    out.put_u32(map.partition_count());
    out.put_u32(map.replication_factor());
    out.put_u32(u32::try_from(map.nodes().len()).unwrap_or(u32::MAX));
    for node in map.nodes() {
        out.put_u32(node.id);
        out.put_str_field(&node.addr);
    }
    for p in 0..map.partition_count() {
        for &id in map.replicas(p).unwrap_or(&[]) {
            out.put_u32(id);
        }
    }
}

pub(super) fn decode_map(r: &mut WireReader) -> Result<ClusterMap, ProtocolError> {
    let version = r.u64()?;
    let partitions = r.u32()?;
    let replication_factor = r.u32()?;
    let n = r.count(MIN_NODE_BYTES)?;
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(NodeConfig {
            id: r.u32()?,
            addr: r.string()?,
            data_dir: None,
            resp_addr: None,
        });
    }
    let mut placement = Vec::new();
    for partition in 0..partitions {
        let mut replicas = Vec::new();
        for _ in 0..replication_factor {
            replicas.push(r.u32()?);
        }
        placement.push(PlacementOverride {
            partition,
            replicas,
        });
    }
    let config = ClusterConfig {
        partitions,
        replication_factor,
        storage: StorageConfig::default(),
        nodes,
        placement,
        security: SecurityConfig::default(),
        replication: kv_router::ReplicationConfig::default(),
        control: kv_router::ControlConfig::default(),
    };
    ClusterMap::new(&config)
        .map(|m| m.with_version(version))
        .map_err(|e| ProtocolError::Invalid(format!("cluster map: {e}")))
}

#[cfg(test)]
mod tests {
    use kv_router::ClusterConfig;

    use crate::protocol::{Request, Response};

    use super::*;

    #[test]
    fn cluster_map_round_trips_with_overrides_and_version() {
        let mut config = ClusterConfig::default_topology();
        config.placement.push(PlacementOverride {
            partition: 3,
            replicas: vec![2, 0],
        });
        let mut map = ClusterMap::new(&config).unwrap().with_version(7);
        map.set_addr(1, "127.0.0.1:7001".into()).unwrap();
        let mut out = BytesMut::new();
        Response::ClusterMap(map.clone()).encode(42, &mut out);
        assert_eq!(out[0], 0xA0);
        let (id, back) = Response::decode(out.freeze()).unwrap();
        assert_eq!((id, back), (42, Response::ClusterMap(map)));

        let mut out = BytesMut::new();
        Request::ClusterMap.encode(5, &mut out);
        assert_eq!(&out[..], &[0x20, 0, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(
            Request::decode(out.freeze()).unwrap(),
            (5, Request::ClusterMap)
        );
    }

    #[test]
    fn a_map_naming_unknown_nodes_is_refused() {
        let mut out = BytesMut::new();
        out.put_u64(1);
        out.put_u32(1); // one partition
        out.put_u32(1); // rf 1
        out.put_u32(1); // one node
        out.put_u32(0);
        out.put_str_field("127.0.0.1:1");
        out.put_u32(9); // partition 0 on node 9: unknown
        let mut r = WireReader::new(out.freeze());
        assert!(matches!(decode_map(&mut r), Err(ProtocolError::Invalid(_))));
    }
}

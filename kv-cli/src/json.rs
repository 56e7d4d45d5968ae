//! `-o json`: one JSON object per answer, for scripts.
//!
//! Shapes (one line each):
//!
//! - `put` → `{"ok": true}`
//! - `get` → `{"key": .., "found": true, "value": .., "partition": .., "node": .., "stale": false}`;
//!   a text value is a JSON string, a JSON value is itself, an event is
//!   `{"data": .., "timestamp": ..}`; a missing key has `"found": false,
//!   "value": null`
//! - `del` → `{"key": .., "deleted": bool}`
//! - `status` → `{"key": .., "location": "HOT_STORAGE", "partition": .., "leader": .., "replicas": [..],
//!   "in_sync": [..] or null}` (the in-sync set, leader first; null when the leader did not answer)
//! - `inspect` → `{"node": .., "partitions": [{"partition": .., "role": .., "hot_keys": [..],
//!   "rolled_back": n|null, "rollback_files": [..]|null}]}` (null: the node's info did not answer)
//! - `cluster` → `{"nodes": [{"id", "addr", "up", "error"?, "partitions"?, "keys"?}],
//!   "partitions": [{"partition", "replicas": [{"node", "role", "up", "lsn"?, "lag"?}], "in_sync"?}]}`
//!   (`in_sync`: the set as the leader reports it, leader first)
//! - `scan`, `keys` → `{"keys": [..], "count": .., "truncated": bool, "stale": bool}`
//! - `mget` → `{"values": [{"key": .., "found": bool, "value": .., "stale": bool}]}`
//! - `ttl` → `{"key": .., "found": bool, "ttl_ms": n|null, "persistent": bool}`
//! - `expire`, `persist` → `{"key": .., "changed": bool}`; `mset` as `put`
//! - a failed command → `{"error": ..}`

use kv_codec::Value;
use kv_node::protocol::NodeInfo;
use kv_router::{ClusterMap, NodeId, PartitionId};
use serde_json::{Value as Json, json};

use crate::command::{Command, Reply};
use crate::output::{Infos, location_word, replica_info};

/// The JSON object answering `command` with `reply`.
pub fn answer(command: &Command, reply: &Reply, map: &ClusterMap) -> Json {
    let key = command.key().unwrap_or_default();
    match reply {
        Reply::Stored => json!({"ok": true}),
        Reply::Value(read) => json!({
            "key": key,
            "found": read.value.is_some(),
            "value": read.value.as_ref().map_or(Json::Null, value),
            "partition": read.partition,
            "node": read.node,
            "stale": read.stale,
        }),
        Reply::Deleted(existed) => json!({"key": key, "deleted": existed}),
        Reply::Status {
            read,
            replicas,
            in_sync,
        } => json!({
            "key": key,
            "location": location_word(read.value),
            "partition": read.partition,
            "leader": replicas.first(),
            "replicas": replicas,
            "in_sync": in_sync,
            "stale": read.stale,
        }),
        Reply::Inspect {
            node,
            partitions,
            histories,
        } => {
            let parts: Vec<Json> = partitions
                .iter()
                .map(|p| {
                    let keys: Vec<String> = p
                        .hot_keys
                        .iter()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .collect();
                    let history = histories.get(&p.partition);
                    json!({
                        "partition": p.partition,
                        "role": p.role.to_string(),
                        "hot_keys": keys,
                        "rolled_back": history.map(|h| h.rolled_back),
                        "rollback_files": history.map(|h| &h.rollback_files),
                    })
                })
                .collect();
            json!({"node": node, "partitions": parts})
        }
        Reply::Cluster { infos, controller } => {
            let mut out = cluster(infos, map);
            out["controller"] = match controller {
                Ok(c) => json!({
                    "leader": c.leader,
                    "term": c.term,
                    "voters": c.voters,
                    "map_version": c.version,
                }),
                Err(e) => json!({ "error": e }),
            };
            out
        }
        Reply::Moved {
            partition,
            node,
            version,
            behind,
            unclean,
        } => json!({
            "partition": partition,
            "leader": node,
            "map_version": version,
            "unclean": unclean,
            "entries_behind": behind,
        }),
        other => {
            let keys = match command {
                Command::Mget { keys } => keys.as_slice(),
                _ => &[],
            };
            crate::keyspace::json_answer(key, keys, other).unwrap_or(Json::Null)
        }
    }
}

/// `{"error": message}`.
pub fn error(message: &str) -> Json {
    json!({ "error": message })
}

/// A stored value as JSON: text as a string, JSON as itself, an event as
/// its object, V4 bytes as `{"hex": "ff00…"}`.
pub fn value(v: &Value) -> Json {
    match v {
        Value::Text(s) => Json::String(s.clone()),
        Value::Bytes(b) => {
            let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
            json!({ "hex": hex })
        }
        Value::Json(j) => j.clone(),
        Value::Event { data, timestamp } => {
            json!({"data": data, "timestamp": timestamp.to_string()})
        }
    }
}

fn cluster(infos: &[(NodeId, Result<NodeInfo, String>)], map: &ClusterMap) -> Json {
    let infos: Infos = infos.iter().cloned().collect();
    let nodes: Vec<Json> = map
        .nodes()
        .iter()
        .map(|n| match infos.get(&n.id) {
            Some(Ok(info)) => json!({
                "id": n.id,
                "addr": n.addr,
                "up": true,
                "partitions": info.partitions.len(),
                "keys": info.partitions.iter().map(|p| p.keys).sum::<u64>(),
            }),
            Some(Err(e)) => json!({"id": n.id, "addr": n.addr, "up": false, "error": e}),
            None => json!({"id": n.id, "addr": n.addr, "up": false}),
        })
        .collect();
    let partitions: Vec<Json> = (0..map.partition_count())
        .map(|p| partition(p, map, &infos))
        .collect();
    json!({"nodes": nodes, "partitions": partitions})
}

fn partition(p: PartitionId, map: &ClusterMap, infos: &Infos) -> Json {
    let replicas = map.replicas(p).unwrap_or(&[]);
    let leader_lsn = replicas
        .first()
        .and_then(|&l| replica_info(infos, l, p))
        .map(|r| r.position.lsn);
    let list: Vec<Json> = replicas
        .iter()
        .enumerate()
        .map(|(i, &node)| {
            let role = if i == 0 { "leader" } else { "follower" };
            match replica_info(infos, node, p) {
                Some(r) => json!({
                    "node": node,
                    "role": role,
                    "up": true,
                    "lsn": r.position.lsn,
                    "lag": leader_lsn.map(|l| l.saturating_sub(r.position.lsn)),
                }),
                None => json!({"node": node, "role": role, "up": false}),
            }
        })
        .collect();
    let leader = replicas.first().copied();
    match leader.and_then(|l| replica_info(infos, l, p).map(|r| (l, r))) {
        Some((l, r)) => {
            let in_sync: Vec<NodeId> = std::iter::once(l).chain(r.in_sync_followers()).collect();
            json!({"partition": p, "replicas": list, "in_sync": in_sync})
        }
        None => json!({"partition": p, "replicas": list}),
    }
}

#[cfg(test)]
mod tests {
    use kv_node::Read;
    use kv_router::ClusterConfig;

    use super::*;

    #[test]
    fn get_answers_carry_the_value_as_json() {
        let map = ClusterMap::new(&ClusterConfig::default_topology()).unwrap();
        let get = Command::Get { key: "k".into() };
        let read = |value| {
            Reply::Value(Read {
                value,
                partition: 2,
                node: 2,
                stale: false,
            })
        };
        let doc = Value::from_user_input(r#"{"a": [1, 2]}"#);
        assert_eq!(
            answer(&get, &read(Some(doc)), &map),
            json!({"key": "k", "found": true, "value": {"a": [1, 2]}, "partition": 2, "node": 2, "stale": false})
        );
        assert_eq!(answer(&get, &read(None), &map)["value"], Json::Null);
        assert_eq!(value(&Value::from_user_input("")), json!(""));
    }
}

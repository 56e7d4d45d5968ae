//! `INFO` (sections server, clients, replication, keyspace, stats, with
//! kv's partitions, epochs and follower lag) and `DBSIZE`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use kv_router::{PartitionId, Role};

use super::admin::REDIS_VERSION;
use super::commands::lossy;
use super::connection::Front;
use super::reply::Reply;
use crate::protocol::{NodeInfo, PartitionInfo};

/// Every node's info: `mine` (this node's, read without the network)
/// and the other nodes' that answer.
async fn all_info(front: &Front, mine: Option<NodeInfo>) -> Vec<NodeInfo> {
    let me = front.shared.id();
    let mut infos: Vec<NodeInfo> = mine.into_iter().collect();
    for (id, info) in front.cluster.cluster_info().await {
        if let (true, Ok(info)) = (id != me, info) {
            infos.push(info);
        }
    }
    infos
}

/// Keys in the cluster: each partition counted once, from its leader when
/// it answers, else from its most advanced reachable follower.
pub(crate) async fn dbsize(front: &Front) -> Reply {
    let mine = crate::server::current_info(&front.shared).await.ok();
    let keys = cluster_keys(front, mine).await;
    Reply::Integer(i64::try_from(keys).unwrap_or(i64::MAX))
}

async fn cluster_keys(front: &Front, mine: Option<NodeInfo>) -> u64 {
    let mut best: BTreeMap<PartitionId, (bool, u64)> = BTreeMap::new();
    for info in all_info(front, mine).await {
        for p in info.partitions {
            let candidate = (p.role == Role::Leader, p.keys);
            let entry = best.entry(p.partition).or_insert(candidate);
            if candidate > *entry {
                *entry = candidate;
            }
        }
    }
    best.values().map(|(_, keys)| *keys).sum()
}

const INFO_SECTIONS: [&str; 5] = ["server", "clients", "replication", "keyspace", "stats"];

pub(crate) async fn info(front: &Front, args: &[Bytes]) -> Reply {
    let asked: Vec<String> = args.iter().map(|a| lossy(a).to_ascii_lowercase()).collect();
    let all = asked.is_empty()
        || asked
            .iter()
            .any(|a| a == "all" || a == "everything" || a == "default");
    let wanted: Vec<&str> = INFO_SECTIONS
        .into_iter()
        .filter(|s| all || asked.iter().any(|a| a == s))
        .collect();
    let me = match crate::server::current_info(&front.shared).await {
        Ok(me) => me,
        Err(e) => return Reply::Error(format!("ERR {e}")),
    };
    let keys = if wanted.contains(&"keyspace") {
        cluster_keys(front, Some(me.clone())).await
    } else {
        0
    };
    let sections: Vec<String> = wanted
        .into_iter()
        .map(|s| section(front, &me, s, keys))
        .collect();
    Reply::bulk(sections.join("\r\n"))
}

/// One `INFO` section: `# Title` and `key:value` lines, CRLF ended.
/// `keys`: the cluster's key count, for the keyspace section.
fn section(front: &Front, me: &NodeInfo, name: &str, keys: u64) -> String {
    let (title, lines): (&str, Vec<(String, String)>) = match name {
        "server" => ("Server", server_lines(front, me)),
        "clients" => (
            "Clients",
            vec![
                kv("connected_clients", front.connected.load(Ordering::Relaxed)),
                kv("maxclients", front.shared.options.max_connections),
            ],
        ),
        "replication" => {
            let mut lines = vec![kv("role", "master"), kv("connected_slaves", 0)];
            lines.extend(
                me.partitions
                    .iter()
                    .map(|p| kv(&format!("kv_partition_{}", p.partition), partition_line(p))),
            );
            ("Replication", lines)
        }
        "keyspace" => (
            "Keyspace",
            vec![kv("db0", format!("keys={keys},expires=0,avg_ttl=0"))],
        ),
        _ => (
            "Stats",
            vec![
                kv(
                    "total_connections_received",
                    front.connections_received.load(Ordering::Relaxed),
                ),
                kv(
                    "total_commands_processed",
                    front.commands_processed.load(Ordering::Relaxed),
                ),
                kv(
                    "kv_forwarded_commands",
                    front.forwarded.load(Ordering::Relaxed),
                ),
            ],
        ),
    };
    let mut out = format!("# {title}\r\n");
    for (k, v) in lines {
        let _ = write!(out, "{k}:{v}\r\n");
    }
    out
}

fn kv(key: &str, value: impl std::fmt::Display) -> (String, String) {
    (key.to_string(), value.to_string())
}

fn server_lines(front: &Front, me: &NodeInfo) -> Vec<(String, String)> {
    let up = crate::net::now()
        .saturating_duration_since(front.started)
        .as_secs();
    vec![
        kv("redis_version", REDIS_VERSION),
        kv("kv_version", env!("CARGO_PKG_VERSION")),
        kv("redis_mode", "standalone"),
        kv("os", std::env::consts::OS),
        kv("arch_bits", usize::BITS),
        kv("process_id", std::process::id()),
        kv("tcp_port", front.port),
        kv("uptime_in_seconds", up),
        kv("uptime_in_days", up / 86_400),
        kv("kv_node_id", me.node),
        kv("kv_map_version", me.map_version),
        kv("kv_partitions", front.shared.options.map.partition_count()),
    ]
}

/// One partition of this node: role, state, position, keys, and for a
/// leader each follower's connection, lag in entries and whether it is in
/// the in-sync set.
fn partition_line(p: &PartitionInfo) -> String {
    let role = match p.role {
        Role::Leader => "leader",
        Role::Follower => "follower",
    };
    let mut s = format!(
        "role={role},state={:?},epoch={},lsn={},keys={}",
        p.state, p.position.epoch, p.position.lsn, p.keys
    )
    .to_ascii_lowercase();
    for f in &p.followers {
        let lag = p.position.lsn.saturating_sub(f.acked.lsn);
        let _ = write!(
            s,
            ",follower{}={},lag={lag},in_sync={}",
            f.node,
            if f.connected { "up" } else { "down" },
            u8::from(f.in_sync)
        );
    }
    s
}

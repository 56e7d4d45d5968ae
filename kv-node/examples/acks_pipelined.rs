//! Pipelined put throughput with `acks = "leader"` against `acks = "all"`
//! on a 3-node loopback cluster (4 partitions, replication factor 2).
//!
//! `cargo run --release -p kv-node --example acks_pipelined [ROUNDS]`
//!
//! One `ClusterClient` is shared by `IN_FLIGHT` tasks, so each node's
//! `NodeClient` pipelines them on its one connection. Both modes run on
//! the same cluster, alternating, `ROUNDS` times (default 3); the report is
//! each round's ops/s and the median ratio all / leader. Figures are only
//! meaningful as that ratio.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use kv_codec::Value;
use kv_node::{ClientOptions, ClusterClient, NodeHandle, NodeOptions, NodeServer};
use kv_router::{AckMode, ClusterConfig, ClusterMap};

const IN_FLIGHT: usize = 256;
const OPS: usize = 20_000;

async fn start(dir: &std::path::Path) -> (Vec<NodeHandle>, ClusterMap) {
    let config = ClusterConfig::default_topology();
    let mut listeners = Vec::new();
    let mut map = ClusterMap::new(&config).expect("default topology");
    for id in 0..3 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        map.set_addr(id, addr).expect("known node");
        listeners.push(l);
    }
    let mut nodes = Vec::new();
    for (id, l) in (0..3).zip(listeners) {
        let options = NodeOptions::new(id, map.clone(), dir.join(format!("node_{id}")));
        nodes.push(NodeServer::start(options, l).await.expect("node starts"));
    }
    (nodes, map)
}

/// `OPS` puts through `client` from `IN_FLIGHT` tasks; ops/s.
async fn run(client: &ClusterClient, acks: AckMode, round: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let value = Value::Text("x".repeat(100));
    let started = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, next, value) = (client.clone(), Arc::clone(&next), value.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= OPS {
                        return;
                    }
                    let key = format!("r{round}:{i:08}");
                    let written = client.put_with(key.as_bytes(), &value, Some(acks)).await;
                    written.expect("put");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    OPS as f64 / started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    rt.block_on(async {
        let (nodes, map) = start(dir.path()).await;
        let client = ClusterClient::new(map, ClientOptions::default());
        // Let every follower subscribe and acknowledge once.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (mut leader, mut all) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let l = run(&client, AckMode::Leader, 2 * round).await;
            let a = run(&client, AckMode::All, 2 * round + 1).await;
            println!(
                "round {round}: acks=leader {l:.0} ops/s, acks=all {a:.0} ops/s, ratio {:.2}",
                a / l
            );
            leader.push(l);
            all.push(a);
        }
        let (l, a) = (median(leader), median(all));
        println!(
            "median: acks=leader {l:.0} ops/s, acks=all {a:.0} ops/s, all/leader {:.2} \
             ({IN_FLIGHT} in flight on one shared client, {OPS} puts per run)",
            a / l
        );
        for node in nodes {
            node.shutdown().await.expect("shutdown");
        }
    });
}

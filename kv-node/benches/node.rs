//! One node on loopback: single-client round-trip latency and pipelined
//! throughput for get and put with 100-byte values; and the keyspace
//! requests: put with a TTL against a plain put, 256 keys in one `MSet`
//! (one store batch) against 256 pipelined puts, and scan pages of 1000
//! keys against pipelined gets.
//!
//! `cargo bench -p kv-node`. Figures are relative: compare get against
//! ping (the protocol floor), pipelined against one-at-a-time, and each
//! keyspace request against the plain requests measured in the same run.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kv_codec::Value;
use kv_node::protocol::ScanSpec;
use kv_node::{ClientOptions, NodeClient, NodeHandle, NodeOptions, NodeServer};
use kv_router::{ClusterConfig, ClusterMap, SyncMode};
use tokio::runtime::Runtime;

const PIPELINE_DEPTH: usize = 256;
const KEYS: usize = 10_000;

fn start(rt: &Runtime, dir: &std::path::Path) -> (NodeHandle, NodeClient) {
    rt.block_on(async {
        let mut config = ClusterConfig::default_topology();
        config.nodes.truncate(1);
        config.replication_factor = 1;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mut map = ClusterMap::new(&config).unwrap();
        map.set_addr(0, addr.clone()).unwrap();
        let mut options = NodeOptions::new(0, map, dir.join("node_0"));
        options.storage.sync = SyncMode::Never;
        let node = NodeServer::start(options, listener).await.unwrap();
        let client = NodeClient::new(0, addr, ClientOptions::default());
        (node, client)
    })
}

fn value() -> Bytes {
    Bytes::from(Value::Text("x".repeat(100)).encode())
}

fn key(i: usize) -> Vec<u8> {
    format!("key:{:08}", i % KEYS).into_bytes()
}

/// Runs `PIPELINE_DEPTH` requests at once on one shared connection.
fn in_flight<F, Fut>(rt: &Runtime, client: &NodeClient, base: usize, request: F)
where
    F: Fn(NodeClient, Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = kv_node::Result<()>>,
{
    let requests = (0..PIPELINE_DEPTH).map(|j| request(client.clone(), key(base + j)));
    rt.block_on(futures::future::try_join_all(requests))
        .unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (node, client) = start(&rt, dir.path());
    rt.block_on(async {
        for i in 0..KEYS {
            client.put(&key(i), value()).await.unwrap();
        }
    });

    let mut g = c.benchmark_group("node_round_trip");
    g.measurement_time(Duration::from_secs(3));
    let mut i = 0usize;
    g.bench_function("ping", |b| b.iter(|| rt.block_on(client.ping()).unwrap()));
    g.bench_function("get_100B", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(client.get(&key(i))).unwrap()
        })
    });
    g.bench_function("put_100B", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(client.put(&key(i), value())).unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("node_pipelined");
    g.measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Elements(PIPELINE_DEPTH as u64));
    g.bench_function("get_100B_x256", |b| {
        b.iter(|| {
            i += PIPELINE_DEPTH;
            in_flight(
                &rt,
                &client,
                i,
                |c, k| async move { c.get(&k).await.map(drop) },
            )
        })
    });
    g.bench_function("put_100B_x256", |b| {
        b.iter(|| {
            i += PIPELINE_DEPTH;
            in_flight(&rt, &client, i, |c, k| async move {
                c.put(&k, value()).await.map(drop)
            })
        })
    });
    g.finish();
    keyspace(c, &rt, &client);
    rt.block_on(node.shutdown()).unwrap();
}

/// `PIPELINE_DEPTH` keys of partition 0 (of 4), starting at `base`.
fn partition_keys(base: usize) -> Vec<Bytes> {
    (base..)
        .map(|i| format!("batch:{i}"))
        .filter(|k| kv_router::partition_for(k.as_bytes(), 4) == 0)
        .take(PIPELINE_DEPTH)
        .map(Bytes::from)
        .collect()
}

fn keyspace(c: &mut Criterion, rt: &Runtime, client: &NodeClient) {
    let mut g = c.benchmark_group("node_keyspace");
    g.measurement_time(Duration::from_secs(3));
    // First, while the store holds exactly the KEYS keys.
    g.throughput(Throughput::Elements(KEYS as u64));
    g.bench_function("scan_all_keys_pages_of_1000", |b| {
        b.iter(|| {
            let mut seen = 0;
            for p in 0..4 {
                let mut cursor = 0;
                loop {
                    let page = client.scan_partition(ScanSpec {
                        partition: p,
                        cursor,
                        count: 1000,
                        prefix: Bytes::new(),
                        values: false,
                        align: 0,
                    });
                    let page = rt.block_on(page).unwrap();
                    seen += page.entries.len();
                    match page.next {
                        Some(next) => cursor = next,
                        None => break,
                    }
                }
            }
            seen
        })
    });
    let mut i = 0usize;
    g.throughput(Throughput::Elements(1));
    g.bench_function("put_ttl_100B", |b| {
        b.iter(|| {
            i += 1;
            let ttl = Duration::from_secs(3600);
            rt.block_on(client.put_ttl(&key(i), value(), ttl)).unwrap()
        })
    });
    g.throughput(Throughput::Elements(PIPELINE_DEPTH as u64));
    g.bench_function("mset_100B_x256", |b| {
        b.iter(|| {
            i += PIPELINE_DEPTH * 4;
            let pairs = partition_keys(i % (KEYS * 4))
                .into_iter()
                .map(|k| (k, value()));
            rt.block_on(client.mset(0, pairs.collect())).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

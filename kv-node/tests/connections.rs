//! Connection slots: caps answer clearly, idle and slow sockets are cut
//! off, clients never starve peers, and a dropped client closes its
//! socket (issue 8).
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{TestCluster, raw};
use kv_codec::Value;
use kv_node::protocol::Response;
use kv_node::{ClientOptions, Error, ErrorCode, NodeClient, NodeOptions};
use kv_router::ClusterConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONVERGE: Duration = Duration::from_secs(30);

async fn one_node(tweak: fn(&mut NodeOptions)) -> TestCluster {
    let mut config = ClusterConfig::default_topology();
    config.nodes.truncate(1);
    config.replication_factor = 1;
    TestCluster::start_with(config, tweak).await
}

fn client(cluster: &TestCluster, node: u32) -> NodeClient {
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        ..ClientOptions::default()
    };
    NodeClient::new(node, cluster.map.addr(node).unwrap(), options)
}

/// True when the node closed the connection (within 10 s).
async fn closed_by_node(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

fn one_client_slot(o: &mut NodeOptions) {
    o.max_connections = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_client_gives_its_slot_back() {
    let cluster = one_node(one_client_slot).await;
    let first = client(&cluster, 0);
    first.ping().await.unwrap();
    drop(first);
    // The only slot is free again once the dropped client's socket closed.
    let second = client(&cluster, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match second.ping().await {
            Ok(_) => break,
            Err(Error::Remote {
                code: ErrorCode::Busy,
                ..
            }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the dropped client still holds its slot: {e}"),
        }
    }
    cluster.shutdown().await;
}

fn four_client_slots(o: &mut NodeOptions) {
    o.max_connections = 4;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_over_the_cap_is_refused_at_once() {
    let cluster = one_node(four_client_slots).await;
    let addr = cluster.node(0).local_addr().to_string();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(raw::client(&addr, None).await);
    }
    let extra = client(&cluster, 0);
    let started = Instant::now();
    let refused = extra.ping().await;
    let waited = started.elapsed();
    match refused {
        Err(Error::Remote {
            code: ErrorCode::Busy,
            message,
            ..
        }) => assert!(
            message.contains("limit of 4 client connections"),
            "{message}"
        ),
        other => panic!("expected a Busy refusal, got {other:?}"),
    }
    println!("the client over the cap was refused after {waited:?}");
    drop(held);
    cluster.shutdown().await;
}

fn tight(o: &mut NodeOptions) {
    o.max_connections = 16;
    o.handshake_timeout = Duration::from_millis(500);
    o.idle_timeout = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_sockets_starve_neither_clients_nor_peers() {
    let mut cluster = TestCluster::start_with(ClusterConfig::default_topology(), tight).await;
    cluster.wait_ready(CONVERGE).await;
    let p = 0;
    let leader = cluster.map.leader(p).unwrap();
    let follower = cluster.map.followers(p).unwrap()[0];
    let addr = cluster.map.addr(leader).unwrap().to_string();
    // 300 sockets that never speak, and client slots filled by 15 idle
    // clients and our writer.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut idle = Vec::new();
    for _ in 0..15 {
        idle.push(raw::client(&addr, None).await);
    }
    let opened = Instant::now();
    let writer = client(&cluster, leader);
    writer.ping().await.unwrap();
    match client(&cluster, leader).ping().await {
        Err(Error::Remote {
            code: ErrorCode::Busy,
            ..
        }) => {}
        other => panic!("expected Busy at the cap, got {other:?}"),
    }
    // The follower reconnects as a peer: its quota is its own.
    cluster.stop(follower).await;
    cluster.restart(follower).await;
    let keys: Vec<String> = (0..)
        .map(|i| format!("starve-{i}"))
        .filter(|k| cluster.map.partition_of(k.as_bytes()) == p)
        .take(20)
        .collect();
    for k in &keys {
        let value = Bytes::from(Value::from_user_input(k).encode());
        writer.put(k.as_bytes(), value).await.unwrap();
    }
    let deadline = Instant::now() + CONVERGE;
    while cluster.position(follower, p) != cluster.position(leader, p) {
        assert!(Instant::now() < deadline, "replication starved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The idle clients and silent sockets are closed by the node.
    let checked = Instant::now();
    let sockets = idle.iter_mut().map(|s| ("idle client", s));
    let sockets = sockets.chain(silent.iter_mut().take(20).map(|s| ("silent socket", s)));
    for (i, (what, s)) in sockets.enumerate() {
        assert!(
            closed_by_node(s).await,
            "{what} {i} (of 15 idle, then 20 silent) stayed open; opened {:?} ago, checks began {:?} ago",
            opened.elapsed(),
            checked.elapsed()
        );
    }
    cluster.shutdown().await;
}

fn short_deadline(o: &mut NodeOptions) {
    o.request_deadline = Duration::from_millis(500);
}

#[tokio::test]
async fn a_request_that_trickles_in_is_cut_off_at_the_deadline() {
    let cluster = one_node(short_deadline).await;
    let addr = cluster.node(0).local_addr().to_string();
    let mut s = raw::client(&addr, None).await;
    // A header announcing 1000 bytes, then a few of them, then nothing.
    let mut partial = BytesMut::new();
    partial.extend_from_slice(&1000u32.to_be_bytes());
    partial.extend_from_slice(&[0x01; 10]);
    s.write_all(&partial).await.unwrap();
    let reply = raw::read_frame(&mut s).await.expect("an error reply");
    match Response::decode(reply) {
        Ok((_, Response::Error { message, .. })) => {
            assert!(message.contains("not complete within"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(closed_by_node(&mut s).await);
    cluster.shutdown().await;
}

//! Store calls left waiting in the blocking boundary: shutdown with one
//! still running, and concurrent puts written together.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_router::{ClusterConfig, ClusterMap};
use tokio::net::TcpListener;

use super::*;
use crate::client::{ClientOptions, NodeClient};

const KEY: &[u8] = b"in-flight";

/// How long the test keeps the write waiting after shutdown began.
const HOLD: Duration = Duration::from_secs(1);

/// A one-node, one-partition node on an ephemeral port.
async fn one_node(dir: &std::path::Path) -> NodeHandle {
    let mut config = ClusterConfig::default_topology();
    config.nodes.truncate(1);
    (config.partitions, config.replication_factor) = (1, 1);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.nodes[0].addr = listener.local_addr().unwrap().to_string();
    let map = ClusterMap::new(&config).unwrap();
    let options = NodeOptions::new(0, map, dir);
    NodeServer::start(options, listener).await.unwrap()
}

/// Waits until a blocking store call of `replica` has been running for
/// 50 ms on end (the held put: the expiry task's calls are brief).
async fn wait_for_a_blocked_call(replica: &Replica) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut since = None;
    loop {
        assert!(Instant::now() < deadline, "the put never reached the store");
        since = match (replica.blocking_calls_running(), since) {
            (0, _) => None,
            (_, None) => Some(Instant::now()),
            (_, Some(t)) if t.elapsed() >= Duration::from_millis(50) => return,
            (_, t) => t,
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Puts another key until the new leader takes writes.
async fn wait_writable(client: &NodeClient, value: &Bytes) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = client.put(b"warm-up", value.clone()).await {
        assert!(Instant::now() < deadline, "the node never took a write: {e}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A put is on the blocking pool (a current-thread runtime sends every
/// store call there), held in the replica by its key's lock, when the node
/// shuts down. Shutdown cancels the request's task, but the call runs on:
/// shutdown must wait for it before closing the store, so the write is
/// not failed by the store closing under it, and the store's directory is
/// free once shutdown returns.
///
/// Polling the replica's reference count waited only for the store to be
/// dropped, after `Store::shutdown` had already closed it: the put then
/// failed (`Closed`) and the key was missing on reopen.
#[tokio::test]
async fn shutdown_waits_for_a_store_call_left_on_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let client = NodeClient::new(0, node.local_addr().to_string(), ClientOptions::default());
    let value = Bytes::from(kv_codec::Value::Text("kept".into()).encode());
    wait_writable(&client, &value).await;
    let replica = Arc::clone(node.shared.replicas.get(&0).unwrap());
    let (held_tx, held_rx) = mpsc::channel();
    let holder = {
        let replica = Arc::clone(&replica);
        std::thread::spawn(move || {
            let guard = replica.hold_key(KEY);
            held_tx.send(()).unwrap();
            std::thread::sleep(HOLD);
            drop(guard);
        })
    };
    held_rx.recv().unwrap();
    let put = tokio::spawn(async move { client.put(KEY, value).await });
    wait_for_a_blocked_call(&replica).await;
    drop(replica);
    node.shutdown().await.unwrap();
    // The holder has let the key go (the put waited for it); its thread
    // holds the last other reference to the replica.
    holder.join().unwrap();
    // The directory lock is free: the store was closed after the put.
    let store_dir = dir.path().join("partition_0");
    let store = kv_storage::Store::open(&store_dir, kv_storage::Options::default()).unwrap();
    assert!(store.get(KEY).unwrap().is_some(), "the in-flight put was lost");
    put.abort();
}

/// Puts of other requests that arrive while one put is being written wait
/// in the replica's queue and are then written together: here the first
/// put is held by its key's lock while twenty more arrive on other
/// connections; once it is let go, the twenty take one append (one
/// `write(2)`) instead of twenty.
#[tokio::test]
async fn puts_that_arrive_while_one_is_written_are_written_together() {
    let dir = tempfile::tempdir().unwrap();
    let node = one_node(dir.path()).await;
    let addr = node.local_addr().to_string();
    let client = NodeClient::new(0, addr.clone(), ClientOptions::default());
    let value = Bytes::from(kv_codec::Value::Text("v".into()).encode());
    wait_writable(&client, &value).await;
    let replica = Arc::clone(node.shared.replicas.get(&0).unwrap());
    let before = replica.store.stats();
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = {
        let replica = Arc::clone(&replica);
        std::thread::spawn(move || {
            let guard = replica.hold_key(KEY);
            held_tx.send(()).unwrap();
            let _ = release_rx.recv();
            drop(guard);
        })
    };
    held_rx.recv().unwrap();
    let first = tokio::spawn({
        let (client, value) = (client.clone(), value.clone());
        async move { client.put(KEY, value).await }
    });
    wait_for_a_blocked_call(&replica).await;
    // Twenty more, each on a connection of its own, all waiting.
    let mut others = Vec::new();
    for i in 0..20 {
        let client = NodeClient::new(0, addr.clone(), ClientOptions::default());
        let value = value.clone();
        others.push(tokio::spawn(async move {
            client.put(format!("other-{i}").as_bytes(), value).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while replica.put_queue.len() < 20 {
        assert!(Instant::now() < deadline, "the puts never queued");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release_tx.send(()).unwrap();
    first.await.unwrap().unwrap();
    for put in others {
        put.await.unwrap().unwrap();
    }
    holder.join().unwrap();
    let after = replica.store.stats();
    assert_eq!(after.writes - before.writes, 21);
    let appends = after.appends - before.appends;
    assert!(appends <= 3, "21 concurrent puts took {appends} appends");
    drop(replica);
    node.shutdown().await.unwrap();
}

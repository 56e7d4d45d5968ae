//! A damaged store on disk, seen from a cluster of real nodes: the node
//! reports the partition (failed, resyncing, or with the tail it cut) and
//! keeps serving its other partitions; a damaged follower resyncs from its
//! leader; a damaged leader refuses and reports.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{TestCluster, keys_in, put_named};
use kv_node::protocol::{PartitionInfo, ReplicaState};
use kv_node::{ErrorCode, NodeClient};

const CONVERGE: Duration = Duration::from_secs(30);

/// Node 1 follows partition 0 (leader node 0) and leads partition 1
/// (follower node 2). Writes 100 keys to each and waits for replication.
async fn cluster_with_data() -> (TestCluster, Vec<String>, Vec<String>) {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    let p0 = keys_in(&cluster.map, 0, 100, "a");
    let p1 = keys_in(&cluster.map, 1, 100, "b");
    put_named(&client, p0.iter().chain(&p1)).await;
    cluster.wait_replicated(CONVERGE).await;
    (cluster, p0, p1)
}

fn partition_dir(cluster: &TestCluster, node: u32, p: u32) -> PathBuf {
    cluster.node_dir(node).join(format!("partition_{p}"))
}

/// The newest `segment-<n>.log` of a store directory.
fn newest_segment(dir: &Path) -> PathBuf {
    let id = |p: &PathBuf| -> u64 {
        let name = p.file_name().unwrap().to_str().unwrap();
        let digits = name.trim_start_matches("segment-").trim_end_matches(".log");
        digits.parse().unwrap_or(0)
    };
    let logs = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path());
    let logs = logs.filter(|p| p.extension().is_some_and(|e| e == "log"));
    logs.max_by_key(id).expect("a segment")
}

/// Flips one bit in the middle of the newest segment: damage with valid,
/// acknowledged records after it.
fn flip_middle(dir: &Path) -> PathBuf {
    let segment = newest_segment(dir);
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x08;
    std::fs::write(&segment, bytes).unwrap();
    segment
}

fn partition(cluster: &TestCluster, node: u32, p: u32) -> PartitionInfo {
    let info = cluster.node(node).info();
    let found = info.partitions.into_iter().find(|i| i.partition == p);
    found.expect("partition listed in info")
}

async fn assert_serves(client: &NodeClient, keys: &[String]) {
    for k in keys {
        let got = client
            .get(k.as_bytes())
            .await
            .unwrap()
            .expect("key present");
        assert_eq!(kv_codec::decode(&got).unwrap().render(), *k, "key {k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_leader_is_reported_failed_while_the_node_serves_its_other_partitions() {
    let (mut cluster, p0, p1) = cluster_with_data().await;
    cluster.stop(1).await;
    let damaged = flip_middle(&partition_dir(&cluster, 1, 1));
    cluster.restart(1).await;

    let failed = partition(&cluster, 1, 1);
    assert_eq!(failed.state, ReplicaState::Failed);
    let name = damaged.file_name().unwrap().to_str().unwrap();
    assert!(failed.health.problem.contains(name), "{failed:?}");
    assert!(failed.health.problem.contains("offset"), "{failed:?}");
    // Over the wire too (what `kv cluster` shows).
    let node1 = cluster.client().node(1).unwrap().clone();
    let remote = node1.info().await.unwrap();
    let listed = remote.partitions.iter().find(|i| i.partition == 1);
    assert_eq!(listed.map(|i| i.state), Some(ReplicaState::Failed));

    // Requests for it get a storage error naming the failure.
    let err = node1.get(p1[0].as_bytes()).await.unwrap_err();
    match err {
        kv_node::Error::Remote { code, message, .. } => {
            assert_eq!(code, ErrorCode::Storage);
            assert!(message.contains("failed"), "{message}");
        }
        e => panic!("unexpected {e}"),
    }
    // A cluster client reads it from the follower instead, marked stale.
    let read = cluster.client().get(p1[1].as_bytes()).await.unwrap();
    assert_eq!((read.node, read.stale), (2, true));
    assert_eq!(read.value.map(|v| v.render()), Some(p1[1].clone()));
    // The leader's damaged directory is left where it is, for a human.
    assert!(damaged.exists());
    // Its other partition is served.
    let deadline = Instant::now() + CONVERGE;
    while partition(&cluster, 1, 0).state != ReplicaState::Ready {
        assert!(
            Instant::now() < deadline,
            "partition 0 never ready on node 1"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_serves(&node1, &p0).await;
    // The healthy follower of partition 1 still holds everything.
    assert_serves(cluster.client().node(2).unwrap(), &p1).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_follower_moves_its_store_aside_and_resyncs_from_the_leader() {
    let (mut cluster, p0, _) = cluster_with_data().await;
    let leader_position = cluster.position(0, 0);
    cluster.stop(1).await;
    let dir = partition_dir(&cluster, 1, 0);
    flip_middle(&dir);
    cluster.restart(1).await;

    let deadline = Instant::now() + CONVERGE;
    loop {
        let p = partition(&cluster, 1, 0);
        if p.state == ReplicaState::Ready && p.position == leader_position {
            assert!(p.full_resyncs >= 1, "{p:?}");
            break;
        }
        assert!(Instant::now() < deadline, "follower never resynced: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_serves(cluster.client().node(1).unwrap(), &p0).await;
    // The damaged store was moved aside, not deleted.
    let node_dir = cluster.node_dir(1);
    let aside: Vec<_> = std::fs::read_dir(&node_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("partition_0.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(newest_segment(&node_dir.join(&aside[0])).exists());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_tail_cut_at_open_is_shown_by_info() {
    let (mut cluster, p0, _) = cluster_with_data().await;
    cluster.stop(1).await;
    // Half a record after the last one: what a kill -9 mid-append leaves.
    let segment = newest_segment(&partition_dir(&cluster, 1, 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    let torn = bytes[32..32 + 25].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&segment, bytes).unwrap();
    cluster.restart(1).await;

    let p = partition(&cluster, 1, 0);
    assert_eq!(p.health.truncated_tail_bytes, 25, "{p:?}");
    assert!(!p.health.poisoned);
    let remote = cluster.client().node(1).unwrap().info().await.unwrap();
    let listed = remote.partitions.iter().find(|i| i.partition == 0).unwrap();
    assert_eq!(listed.health.truncated_tail_bytes, 25);
    cluster.wait_replicated(CONVERGE).await;
    assert_serves(cluster.client().node(1).unwrap(), &p0).await;
    cluster.shutdown().await;
}

//! Role changes at run time (`NodeHandle::set_role`) on a running cluster
//! over real sockets: leader → follower and follower → leader without a
//! restart, each new leadership in a higher epoch.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{TestCluster, keys_in, put_named};
use kv_codec::Value;
use kv_node::protocol::{PartitionInfo, ReplicaState};
use kv_node::{Error, ErrorCode, NodeClient};
use kv_router::{NodeId, PartitionId, Role};

const CONVERGE: Duration = Duration::from_secs(30);

fn partition(cluster: &TestCluster, node: NodeId, p: PartitionId) -> PartitionInfo {
    let info = cluster.node(node).info();
    info.partitions
        .into_iter()
        .find(|i| i.partition == p)
        .unwrap()
}

/// Waits until `node` leads `p` and takes writes.
async fn wait_leading(cluster: &TestCluster, node: NodeId, p: PartitionId) -> PartitionInfo {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let info = partition(cluster, node, p);
        if info.role == Role::Leader && info.state == ReplicaState::Ready {
            return info;
        }
        assert!(Instant::now() < deadline, "never led: {info:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `follower` has the position of `leader` for `p`.
async fn wait_caught_up(cluster: &TestCluster, leader: NodeId, follower: NodeId, p: PartitionId) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let (l, f) = (
            partition(cluster, leader, p),
            partition(cluster, follower, p),
        );
        if l.position == f.position && f.leader_connected {
            return;
        }
        assert!(Instant::now() < deadline, "never caught up: {l:#?} {f:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn put_all(node: &NodeClient, keys: &[String], value: &str) {
    for k in keys {
        let v = Bytes::from(Value::from_user_input(value).encode());
        node.put(k.as_bytes(), v).await.unwrap();
    }
}

async fn assert_values(node: &NodeClient, keys: &[String], value: &str) {
    for k in keys {
        let raw = node.get(k.as_bytes()).await.unwrap();
        let got = raw.map(|r| kv_codec::decode(&r).unwrap().render());
        assert_eq!(got.as_deref(), Some(value), "node {} key {k}", node.node());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leadership_moves_back_and_forth_without_a_restart() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    // Partition 0: leader node 0, follower node 1.
    let p = 0;
    let keys = keys_in(&cluster.map, p, 50, "roles");
    put_named(&client, &keys).await;
    cluster.wait_replicated(CONVERGE).await;
    let first = partition(&cluster, 0, p);
    let (n0, n1) = (client.node(0).unwrap(), client.node(1).unwrap());

    // Node 1 takes over; node 0 follows it.
    cluster
        .node(0)
        .set_role(p, Role::Follower, Some(1), None)
        .await
        .unwrap();
    cluster
        .node(1)
        .set_role(p, Role::Leader, None, None)
        .await
        .unwrap();
    let second = wait_leading(&cluster, 1, p).await;
    assert!(second.history.epoch > first.history.epoch, "{second:#?}");
    let refused = n0.put(
        keys[0].as_bytes(),
        Bytes::from(Value::from_user_input("x").encode()),
    );
    let err = refused.await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::NotLeader,
                leader: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    put_all(n1, &keys, "second").await;
    let after = partition(&cluster, 1, p).position;
    assert_eq!(after.lsn, first.position.lsn + keys.len() as u64);
    assert_eq!(after.epoch, second.history.epoch);
    wait_caught_up(&cluster, 1, 0, p).await;
    assert_values(n0, &keys, "second").await;

    // And back: node 0 leads again, in a higher epoch still.
    cluster
        .node(1)
        .set_role(p, Role::Follower, Some(0), None)
        .await
        .unwrap();
    cluster
        .node(0)
        .set_role(p, Role::Leader, None, None)
        .await
        .unwrap();
    let third = wait_leading(&cluster, 0, p).await;
    assert!(third.history.epoch > second.history.epoch, "{third:#?}");
    put_all(n0, &keys, "third").await;
    wait_caught_up(&cluster, 0, 1, p).await;
    assert_values(n1, &keys, "third").await;
    let leader = partition(&cluster, 0, p);
    assert_eq!(leader.followers.len(), 1);
    assert_eq!(leader.followers[0].acked, leader.position);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_promoted_while_behind_catches_up_from_its_peer_first() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    let p = 0;
    let keys = keys_in(&cluster.map, p, 30, "promote");
    put_named(&client, &keys).await;
    cluster.wait_replicated(CONVERGE).await;
    // Node 1 stops following (a follower of a leader it cannot reach),
    // while node 0 takes more writes.
    cluster
        .node(1)
        .set_role(p, Role::Follower, Some(2), None)
        .await
        .unwrap();
    let n0 = client.node(0).unwrap();
    put_all(n0, &keys, "later").await;
    let ahead = partition(&cluster, 0, p).position;
    assert!(partition(&cluster, 1, p).position < ahead);
    // Promote node 1: it pulls what node 0 has before taking writes.
    cluster
        .node(0)
        .set_role(p, Role::Follower, Some(1), None)
        .await
        .unwrap();
    cluster
        .node(1)
        .set_role(p, Role::Leader, None, None)
        .await
        .unwrap();
    let led = wait_leading(&cluster, 1, p).await;
    assert_eq!(led.position, ahead, "{led:#?}");
    assert_values(client.node(1).unwrap(), &keys, "later").await;
    cluster.shutdown().await;
}

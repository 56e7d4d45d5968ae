//! Replication scenarios on an in-process cluster over real sockets.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use common::{TestCluster, key_in, keys_in, put_named};
use kv_codec::Value;
use kv_node::{Error, ErrorCode, NodeClient};
use kv_router::ClusterConfig;

const CONVERGE: Duration = Duration::from_secs(30);

/// Keys of partition `p`, `n` of them.
/// Every key reads back `value(k)` directly from `node`'s replica.
async fn assert_replica_has(node: &NodeClient, keys: &[String], value: impl Fn(&str) -> String) {
    for k in keys {
        let raw = node.get(k.as_bytes()).await.unwrap();
        let raw = raw.unwrap_or_else(|| panic!("node {} lacks {k}", node.node()));
        assert_eq!(
            kv_codec::decode(&raw).unwrap().render(),
            value(k),
            "key {k}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_catches_up_after_being_stopped_during_10000_writes() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    // Partition 0: leader node 0, follower node 1.
    let keys = keys_in(&cluster.map, 0, 10_000, "c");
    for (i, k) in keys.iter().enumerate() {
        if i == 3_000 {
            cluster.stop(1).await;
        }
        client
            .put(k.as_bytes(), &Value::from_user_input(k))
            .await
            .unwrap();
    }
    cluster.restart(1).await;
    cluster.wait_replicated(CONVERGE).await;
    assert_eq!(cluster.position(1, 0), cluster.position(0, 0));
    assert_eq!(cluster.position(0, 0).lsn, 10_000);
    assert_replica_has(client.node(1).unwrap(), &keys, |k| k.to_string()).await;
    cluster.shutdown().await;
}

fn small_backlog(o: &mut kv_node::NodeOptions) {
    o.backlog_bytes = 8 * 1024;
    o.storage.segment_bytes = 64 * 1024;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_follower_is_served_from_history_kept_by_retention_then_snapshot() {
    let mut cluster =
        TestCluster::start_with(ClusterConfig::default_topology(), small_backlog).await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    let keys = keys_in(&cluster.map, 0, 300, "s");
    cluster.stop(1).await;
    // Far more than the 8 KiB backlog: served from the store's history.
    for round in 0..5 {
        for k in &keys {
            let v = Value::from_user_input(&format!("{k}/{round}"));
            client.put(k.as_bytes(), &v).await.unwrap();
        }
    }
    cluster.restart(1).await;
    cluster.wait_replicated(CONVERGE).await;
    assert_replica_has(client.node(1).unwrap(), &keys, |k| format!("{k}/4")).await;
    let resyncs = |c: &TestCluster| c.node(1).info().partitions[0].full_resyncs;
    assert_eq!(resyncs(&cluster), 0, "history was still on disk");

    // The follower falls behind again and the leader compacts: the
    // retention watermark (the follower's last ack) keeps the history it
    // needs, so it still catches up without a snapshot.
    cluster.stop(1).await;
    for round in 5..7 {
        for k in &keys {
            let v = Value::from_user_input(&format!("{k}/{round}"));
            client.put(k.as_bytes(), &v).await.unwrap();
        }
    }
    cluster.node(0).compact().await.unwrap();
    cluster.restart(1).await;
    cluster.wait_replicated(CONVERGE).await;
    assert_replica_has(client.node(1).unwrap(), &keys, |k| format!("{k}/6")).await;
    assert_eq!(resyncs(&cluster), 0, "retention kept the history");

    // A leader that restarted has heard from no follower, so nothing holds
    // its compaction back: the follower that fell behind meanwhile needs a
    // full snapshot.
    cluster.stop(1).await;
    cluster.stop(0).await;
    cluster.restart(0).await;
    // (Enough writes to seal the segment that was active at the restart.)
    for round in 7..17 {
        for k in &keys {
            let v = Value::from_user_input(&format!("{k}/{round}"));
            client.put(k.as_bytes(), &v).await.unwrap();
        }
    }
    let gone = key_in(&cluster.map, 0, "deleted");
    client
        .put(gone.as_bytes(), &Value::from_user_input("x"))
        .await
        .unwrap();
    cluster.node(0).compact().await.unwrap();
    client.delete(gone.as_bytes()).await.unwrap();
    cluster.node(0).compact().await.unwrap();
    cluster.restart(1).await;
    cluster.wait_replicated(CONVERGE).await;
    assert_replica_has(client.node(1).unwrap(), &keys, |k| format!("{k}/16")).await;
    assert!(
        client
            .node(1)
            .unwrap()
            .get(gone.as_bytes())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(resyncs(&cluster), 1, "{:#?}", cluster.infos());
    assert_eq!(cluster.position(1, 0), cluster.position(0, 0));
    // Live streaming continues.
    client
        .put(gone.as_bytes(), &Value::from_user_input("back"))
        .await
        .unwrap();
    cluster.wait_replicated(CONVERGE).await;
    assert_replica_has(client.node(1).unwrap(), std::slice::from_ref(&gone), |_| {
        "back".into()
    })
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_restart_keeps_lsns_monotonic() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    let k = key_in(&cluster.map, 0, "m");
    let mut last = client
        .put(k.as_bytes(), &Value::from_user_input("1"))
        .await
        .unwrap()
        .position;
    for round in 0..3 {
        cluster.stop(0).await;
        cluster.restart(0).await;
        cluster.wait_ready(CONVERGE).await;
        let w = client
            .put(k.as_bytes(), &Value::from_user_input(&round.to_string()))
            .await
            .unwrap();
        assert!(w.position > last, "{:?} after {:?}", w.position, last);
        assert_eq!(w.position.lsn, last.lsn + 1);
        last = w.position;
    }
    cluster.wait_replicated(CONVERGE).await;
    assert_eq!(cluster.position(1, 0), last);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_that_lost_its_data_dir_resyncs_as_follower_and_recovers_as_leader() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    // Node 1 follows partition 0 (leader 0) and leads partition 1
    // (follower 2).
    let p0 = keys_in(&cluster.map, 0, 200, "a");
    let p1 = keys_in(&cluster.map, 1, 200, "b");
    put_named(&client, p0.iter().chain(&p1)).await;
    cluster.wait_replicated(CONVERGE).await;
    let p1_before = cluster.position(2, 1);

    cluster.stop(1).await;
    std::fs::remove_dir_all(cluster.node_dir(1)).unwrap();
    cluster.restart(1).await;
    cluster.wait_ready(CONVERGE).await;
    cluster.wait_replicated(CONVERGE).await;

    // The empty leader pulled partition 1 back from its follower instead
    // of wiping it, and kept its history position.
    assert_eq!(cluster.position(1, 1), p1_before);
    assert_eq!(cluster.position(2, 1), p1_before);
    assert_replica_has(client.node(2).unwrap(), &p1, |k| k.to_string()).await;
    assert_replica_has(client.node(1).unwrap(), &p1, |k| k.to_string()).await;
    // As a follower it got partition 0 again.
    assert_replica_has(client.node(1).unwrap(), &p0, |k| k.to_string()).await;
    // And the next write continues the history.
    let w = client
        .put(p1[0].as_bytes(), &Value::from_user_input("next"))
        .await
        .unwrap();
    assert_eq!(w.position.lsn, p1_before.lsn + 1);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_leader_refuses_writes_until_a_follower_answers() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    let keys = keys_in(&cluster.map, 1, 50, "r");
    put_named(&client, &keys).await;
    cluster.wait_replicated(CONVERGE).await;
    let before = cluster.position(2, 1);

    // Partition 1: leader 1, follower 2. Both go down; node 1 loses its disk.
    cluster.stop(1).await;
    cluster.stop(2).await;
    std::fs::remove_dir_all(cluster.node_dir(1)).unwrap();
    cluster.restart(1).await;
    // Asked directly (ClusterClient would retry for a while first).
    let too_early = bytes::Bytes::from(Value::from_user_input("too early").encode());
    let err = client
        .node(1)
        .unwrap()
        .put(keys[0].as_bytes(), too_early)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::Recovering,
                ..
            }
        ),
        "{err:?}"
    );
    // Nor does it answer reads with what it lacks: no "(nil)" for a key
    // that exists, but an error, since the follower is down too.
    let err = client
        .node(1)
        .unwrap()
        .get(keys[0].as_bytes())
        .await
        .unwrap_err();
    assert!(err.is_recovering(), "{err:?}");
    let err = client.get(keys[0].as_bytes()).await.unwrap_err();
    assert!(
        matches!(err, Error::PartitionUnavailable { partition: 1, .. }),
        "{err:?}"
    );
    cluster.restart(2).await;
    cluster.wait_ready(CONVERGE).await;
    assert_eq!(cluster.position(1, 1), before);
    assert_replica_has(client.node(1).unwrap(), &keys, |k| k.to_string()).await;
    client
        .put(keys[0].as_bytes(), &Value::from_user_input("now"))
        .await
        .unwrap();
    cluster.wait_replicated(CONVERGE).await;
    assert_replica_has(client.node(2).unwrap(), &keys[..1], |_| "now".into()).await;
    cluster.shutdown().await;
}

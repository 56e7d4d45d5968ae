//! A three-node cluster through `ClusterClient`, on real sockets.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use common::{TestCluster, key_in};
use kv_codec::Value;
use kv_node::{Error, ErrorCode, Location};
use kv_router::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_delete_status_inspect_round_trips() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();

    let seed = [
        ("nama", "Rafi Widya"),
        (
            "event:login",
            r#"{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}"#,
        ),
        (
            "user:101:profile",
            r#"{"jurusan": "Sistem Informasi", "angkatan": 2022}"#,
        ),
    ];
    for (k, v) in seed {
        let w = client
            .put(k.as_bytes(), &Value::from_user_input(v))
            .await
            .unwrap();
        assert_eq!(w.partition, cluster.map.partition_of(k.as_bytes()));
        assert_eq!(Some(w.node), cluster.map.leader(w.partition));
    }
    for (k, v) in seed {
        let read = client.get(k.as_bytes()).await.unwrap();
        assert!(!read.stale);
        assert_eq!(read.value.unwrap().render(), v);
    }
    let status = client.status(b"nama").await.unwrap();
    assert_eq!(status.value, Location::Hot);
    assert_eq!(
        client.status(b"missing").await.unwrap().value,
        Location::Missing
    );
    assert!(client.get(b"missing").await.unwrap().value.is_none());

    // inspect: node 0 holds partitions 0, 2, 3 with their roles, and the
    // hot keys of each partition on it.
    let parts = client.inspect(0).await.unwrap();
    let roles: Vec<(u32, Role)> = parts.iter().map(|p| (p.partition, p.role)).collect();
    assert_eq!(
        roles,
        vec![(0, Role::Leader), (2, Role::Follower), (3, Role::Leader)]
    );
    let p = cluster.map.partition_of(b"nama");
    let holder = cluster.map.leader(p).unwrap();
    let parts = client.inspect(holder).await.unwrap();
    let part = parts.iter().find(|x| x.partition == p).unwrap();
    assert!(part.hot_keys.iter().any(|k| k.as_ref() == b"nama"));

    assert!(client.delete(b"nama").await.unwrap());
    assert!(!client.delete(b"nama").await.unwrap());
    assert!(client.get(b"nama").await.unwrap().value.is_none());

    // Followers got everything.
    cluster.wait_replicated(Duration::from_secs(10)).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_to_followers_and_bad_values_are_refused_with_typed_errors() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let key = key_in(&cluster.map, 1, "k");
    // Partition 1 is led by node 1 and followed by node 2.
    let follower = client.node(2).unwrap();
    let value = bytes::Bytes::from(Value::from_user_input("x").encode());
    let err = follower.put(key.as_bytes(), value).await.unwrap_err();
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
    // Node 0 hosts no replica of partition 1.
    let err = client
        .node(0)
        .unwrap()
        .get(key.as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::NotHosted,
                leader: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    // Garbage is not a kv-codec value.
    let leader = client.node(1).unwrap();
    let garbage = bytes::Bytes::from_static(&[0xEE, 1, 2, 3]);
    let err = leader.put(key.as_bytes(), garbage).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::InvalidValue,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(leader.get(key.as_bytes()).await.unwrap().is_none());
    // Empty keys are refused.
    let err = leader.get(b"").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::InvalidRequest,
                ..
            }
        ),
        "{err:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_node_leaves_reads_answered_and_writes_refused_until_it_returns() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    for k in &keys {
        client
            .put(k.as_bytes(), &Value::from_user_input(k))
            .await
            .unwrap();
    }
    cluster.wait_replicated(Duration::from_secs(10)).await;

    // Node 1 leads partition 1 and follows partition 0.
    cluster.stop(1).await;
    for k in &keys {
        let read = client.get(k.as_bytes()).await.unwrap();
        assert_eq!(read.value.unwrap().render(), *k);
        let p = read.partition;
        assert_eq!(
            read.stale,
            cluster.map.leader(p) == Some(1),
            "key {k} partition {p}"
        );
        assert_ne!(read.node, 1);
    }
    let led_by_1 = key_in(&cluster.map, 1, "w");
    let err = client
        .put(led_by_1.as_bytes(), &Value::from_user_input("new"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::LeaderUnavailable {
                partition: 1,
                node: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("partition 1") && msg.contains("node 1"),
        "{msg}"
    );
    // Writes to other partitions still work.
    let led_by_0 = key_in(&cluster.map, 0, "w");
    client
        .put(led_by_0.as_bytes(), &Value::from_user_input("ok"))
        .await
        .unwrap();

    cluster.restart(1).await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    // The same client reconnects by itself.
    client
        .put(led_by_1.as_bytes(), &Value::from_user_input("new"))
        .await
        .unwrap();
    for k in &keys {
        let read = client.get(k.as_bytes()).await.unwrap();
        assert!(!read.stale);
        assert_eq!(read.value.unwrap().render(), *k);
    }
    cluster.wait_replicated(Duration::from_secs(10)).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_load_from_many_tasks() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..200 {
                let key = format!("t{t}-{i}");
                let value = Value::from_user_input(&format!("v{t}-{i}"));
                client.put(key.as_bytes(), &value).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut reads = Vec::new();
    for t in 0..32 {
        let client = client.clone();
        reads.push(tokio::spawn(async move {
            for i in 0..200 {
                let key = format!("t{t}-{i}");
                let got = client.get(key.as_bytes()).await.unwrap().value.unwrap();
                assert_eq!(got.render(), format!("v{t}-{i}"));
            }
        }));
    }
    for r in reads {
        r.await.unwrap();
    }
    cluster.wait_replicated(Duration::from_secs(10)).await;
    let total: u64 = cluster
        .infos()
        .iter()
        .flat_map(|i| i.partitions.iter())
        .filter(|p| p.role == Role::Leader)
        .map(|p| p.keys)
        .sum();
    assert_eq!(total, 32 * 200);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_values_fail_fast_with_a_size_error_and_the_client_keeps_working() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    // Over the 16 MiB frame: refused before it is sent.
    let huge = Value::Text("x".repeat(17 * 1024 * 1024));
    let err = client.put(b"big", &huge).await.unwrap_err();
    assert!(matches!(err, Error::RequestTooLarge { .. }), "{err:?}");
    // Fits in a frame but over the store's value limit: refused by the node.
    let large = Value::Text("x".repeat(16 * 1024 * 1024 - 1024));
    let err = client.put(b"big", &large).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::TooLarge,
                ..
            }
        ),
        "{err:?}"
    );
    client
        .put(b"big", &Value::from_user_input("small"))
        .await
        .unwrap();
    assert!(client.get(b"big").await.unwrap().value.is_some());
    cluster.shutdown().await;
}

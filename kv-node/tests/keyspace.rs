//! Cluster-wide scan, mget and mset through `ClusterClient`, on a real
//! three-node cluster over TCP.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TestCluster, key_in, put_named};
use kv_codec::Value;
use kv_node::{ClusterClient, ClusterCursor, Error, ErrorCode, ScanOptions};

/// Every key of a full scan, in the order returned (duplicates kept), and
/// whether any page was stale.
async fn full_scan(client: &ClusterClient, options: &ScanOptions) -> (Vec<String>, bool) {
    let (mut keys, mut stale, mut cursor, mut pages) = (Vec::new(), false, ClusterCursor::START, 0);
    loop {
        let page = client.scan(cursor, options).await.unwrap();
        stale |= page.stale;
        keys.extend(
            page.entries
                .iter()
                .map(|e| String::from_utf8(e.key.to_vec()).unwrap()),
        );
        pages += 1;
        assert!(pages < 100_000, "the scan does not end");
        match page.next {
            Some(next) => {
                assert!(next.to_u64() > cursor.to_u64(), "cursor went backwards");
                cursor = next;
            }
            None => return (keys, stale),
        }
    }
}

fn counts(keys: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for k in keys {
        *counts.entry(k.as_str()).or_insert(0) += 1;
    }
    counts
}

fn options(count: u32, prefix: &str, values: bool) -> ScanOptions {
    ScanOptions {
        count,
        prefix: Bytes::copy_from_slice(prefix.as_bytes()),
        values,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_cluster_scan_returns_every_key_exactly_once() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let users: Vec<String> = (0..600).map(|i| format!("user:{i}")).collect();
    let orders: Vec<String> = (0..300).map(|i| format!("order:{i}")).collect();
    put_named(&client, users.iter().chain(&orders)).await;

    let (all, stale) = full_scan(&client, &options(37, "", false)).await;
    assert!(!stale);
    let counts = counts(&all);
    assert!(counts.values().all(|&n| n == 1), "a key came twice");
    let expected: BTreeSet<&str> = users.iter().chain(&orders).map(String::as_str).collect();
    assert_eq!(counts.keys().copied().collect::<BTreeSet<_>>(), expected);

    // A prefix scan returns exactly the matching keys.
    let (only_orders, _) = full_scan(&client, &options(50, "order:", false)).await;
    let mut sorted = only_orders.clone();
    sorted.sort();
    let mut want = orders.clone();
    want.sort();
    assert_eq!(sorted, want);

    // With values: each key's own name, as written.
    let page = client
        .scan(ClusterCursor::START, &options(1000, "user:1", true))
        .await
        .unwrap();
    assert!(!page.entries.is_empty());
    for e in &page.entries {
        let value = kv_codec::decode(e.value.as_ref().unwrap()).unwrap();
        assert_eq!(value.render().as_bytes(), e.key.as_ref());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_present_throughout_are_returned_while_others_churn() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let stable: Vec<String> = (0..800).map(|i| format!("stable:{i}")).collect();
    put_named(&client, &stable).await;

    // Another task writes and deletes other keys for as long as the scan
    // runs (bounded: it stops by itself after 20 000 operations).
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (client, done) = (client.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            for i in 0..20_000u32 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let key = format!("churn:{}", i % 500);
                if i % 3 == 2 {
                    client.delete(key.as_bytes()).await.unwrap();
                } else {
                    let v = Value::from_user_input(&i.to_string());
                    client.put(key.as_bytes(), &v).await.unwrap();
                }
            }
        })
    };
    let (seen, _) = full_scan(&client, &options(20, "", false)).await;
    done.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let seen: BTreeSet<&str> = seen.iter().map(String::as_str).collect();
    let missing: Vec<&String> = stable
        .iter()
        .filter(|k| !seen.contains(k.as_str()))
        .collect();
    assert!(missing.is_empty(), "stable keys not returned: {missing:?}");
    assert!(
        seen.iter()
            .all(|k| k.starts_with("stable:") || k.starts_with("churn:")),
        "a key nobody wrote"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scan_falls_back_to_followers_when_a_leader_is_down() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    put_named(&client, &keys).await;
    cluster.wait_replicated(Duration::from_secs(10)).await;
    cluster.stop(0).await;

    let (seen, stale) = full_scan(&client, &options(64, "", false)).await;
    assert!(
        stale,
        "node 0 leads partitions, so some page came from a follower"
    );
    let seen: BTreeSet<String> = seen.into_iter().collect();
    assert_eq!(seen, keys.into_iter().collect::<BTreeSet<_>>());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mset_writes_each_partition_as_one_batch_and_mget_reads_them_back() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let values: Vec<(String, Value)> = (0..40)
        .map(|i| (format!("m:{i}"), Value::from_user_input(&format!("v{i}"))))
        .collect();
    let pairs: Vec<(&[u8], &Value)> = values.iter().map(|(k, v)| (k.as_bytes(), v)).collect();
    let written = client.mset(&pairs).await.unwrap();
    let partitions: BTreeSet<u32> = written.iter().map(|w| w.partition).collect();
    assert_eq!(partitions.len(), written.len(), "one batch per partition");
    assert_eq!(partitions.len(), 4, "40 keys touch every partition");

    let mut keys: Vec<&[u8]> = values.iter().map(|(k, _)| k.as_bytes()).collect();
    keys.push(b"m:missing");
    let read = client.mget(&keys).await.unwrap();
    assert_eq!(read.len(), 41);
    for ((k, v), r) in values.iter().zip(&read) {
        assert_eq!(r.value.as_ref(), Some(v), "{k}");
        assert_eq!(r.partition, cluster.map.partition_of(k.as_bytes()));
        assert!(!r.stale);
    }
    assert_eq!(read[40].value, None);

    // Replicated like any write: a follower's replica has every key.
    cluster.wait_replicated(Duration::from_secs(10)).await;
    let p = cluster.map.partition_of(b"m:0");
    let follower = cluster.map.followers(p).unwrap()[0];
    let of_p: Vec<Bytes> = values
        .iter()
        .filter(|(k, _)| cluster.map.partition_of(k.as_bytes()) == p)
        .map(|(k, _)| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    let on_follower = client
        .node(follower)
        .unwrap()
        .mget(p, of_p.clone())
        .await
        .unwrap();
    assert_eq!(on_follower.len(), of_p.len());
    assert!(on_follower.iter().all(Option::is_some));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_multi_key_requests_are_refused_and_write_nothing() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let client = cluster.client();
    let p = 1;
    let leader = client.node(cluster.map.leader(p).unwrap()).unwrap();
    let good = Bytes::copy_from_slice(key_in(&cluster.map, p, "good").as_bytes());
    let valid = Bytes::from(Value::from_user_input("x").encode());

    // One value that is not kv-codec: the whole batch is refused.
    let garbage = Bytes::from_static(&[0xff, 0x00, 0x13]);
    let other = Bytes::copy_from_slice(key_in(&cluster.map, p, "other").as_bytes());
    let err = leader
        .mset(p, vec![(good.clone(), valid.clone()), (other, garbage)])
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::InvalidValue), "{err}");
    assert_eq!(leader.get(&good).await.unwrap(), None);

    // A key of another partition.
    let stranger = Bytes::copy_from_slice(key_in(&cluster.map, 2, "x").as_bytes());
    let err = leader
        .mset(p, vec![(stranger, valid.clone())])
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::InvalidRequest), "{err}");
    let err = leader.mget(p, vec![]).await.unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::InvalidRequest), "{err}");

    // A follower refuses the write and names the leader.
    let follower = client.node(cluster.map.followers(p).unwrap()[0]).unwrap();
    let err = follower.mset(p, vec![(good, valid)]).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::NotLeader,
                leader: Some(_),
                ..
            }
        ),
        "{err}"
    );
    cluster.shutdown().await;
}

//! Group append: the puts a client pipelines in one write reach the store
//! as one batch per partition, and each is answered as if it were alone.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{TestCluster, keys_in, raw};
use kv_codec::Value;
use kv_node::protocol::{Request, Response};
use kv_node::{ErrorCode, NodeOptions};
use kv_router::{ClusterConfig, SyncMode};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn sync_always(o: &mut NodeOptions) {
    o.storage.sync = SyncMode::Always;
}

fn text(s: &str) -> Bytes {
    Bytes::from(kv_codec::encode(&Value::Text(s.to_string())))
}

/// Sends `requests` (ids 1, 2, ...) in one write and reads one reply each,
/// checking they come back in order.
async fn pipeline(conn: &mut TcpStream, requests: &[Request]) -> Vec<Response> {
    let mut out = Vec::new();
    for (id, request) in (1..).zip(requests) {
        let mut body = BytesMut::new();
        request.encode(id, &mut body);
        out.extend_from_slice(&raw::frame(&body));
    }
    conn.write_all(&out).await.unwrap();
    let mut replies = Vec::new();
    for expected in (1..).take(requests.len()) {
        let frame = raw::read_frame(conn).await.expect("a reply");
        let (id, reply) = Response::decode(frame).unwrap();
        assert_eq!(id, expected, "replies come back in request order");
        replies.push(reply);
    }
    replies
}

/// Partition 0, its leader, and a partition another node leads.
fn led_and_elsewhere(cluster: &TestCluster) -> (u32, u32, u32) {
    let leader = cluster.map.leader(0).unwrap();
    let other = (0..cluster.map.partition_count())
        .find(|&q| cluster.map.leader(q) != Some(leader))
        .expect("a partition led by another node");
    (0, leader, other)
}

fn put(key: &str, value: Bytes) -> Request {
    Request::Put {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_puts_of_one_write_share_one_store_write_and_one_sync() {
    let cluster = TestCluster::start_with(ClusterConfig::default_topology(), sync_always).await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let p = 0;
    let leader = cluster.map.leader(p).unwrap();
    let node = cluster.node(leader);
    let keys = keys_in(&cluster.map, p, 64, "group");
    let before = node.store_stats(p).unwrap();

    let mut conn = raw::client(&node.local_addr().to_string(), None).await;
    let requests: Vec<Request> = keys.iter().map(|k| put(k, text(k))).collect();
    let replies = pipeline(&mut conn, &requests).await;

    let mut lsns = Vec::new();
    for reply in &replies {
        match reply {
            Response::Written {
                partition,
                position,
            } => {
                assert_eq!(*partition, p);
                lsns.push(position.lsn);
            }
            other => panic!("expected Written, got {other:?}"),
        }
    }
    assert!(
        lsns.windows(2).all(|w| w[1] == w[0] + 1),
        "each put has its own position, in order: {lsns:?}"
    );
    let after = node.store_stats(p).unwrap();
    assert_eq!(after.writes - before.writes, 64, "every put is written");
    let appends = after.appends - before.appends;
    assert!(appends <= 16, "64 pipelined puts took {appends} appends");
    // Written one at a time, each put under `sync = "always"` costs its
    // own fdatasync: 64. As groups of what one read of the socket holds,
    // a handful at most.
    let syncs = after.syncs - before.syncs;
    assert!(syncs <= 16, "64 pipelined puts took {syncs} syncs");

    // One backlog push and one wake-up of the follower's stream for the
    // group: the follower gets every entry all the same.
    cluster.wait_replicated(Duration::from_secs(10)).await;
    let client = cluster.client();
    for k in &keys {
        assert_eq!(
            client.get(k.as_bytes()).await.unwrap().value,
            Some(Value::Text(k.clone()))
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_put_of_a_group_is_answered_as_if_it_were_alone() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let (p, leader, other) = led_and_elsewhere(&cluster);
    let node = cluster.node(leader);
    let keys = keys_in(&cluster.map, p, 2, "alone");
    let (k1, k2) = (&keys[0], &keys[1]);
    let elsewhere = &keys_in(&cluster.map, other, 1, "alone")[0];
    let oversized = "k".repeat(70_000);

    let mut conn = raw::client(&node.local_addr().to_string(), None).await;
    let requests = [
        put(k1, text("v1")),
        put(k2, Bytes::from_static(b"\xffnot kv-codec")),
        put(elsewhere, text("x")),
        put(k1, text("v2")),
        Request::Get {
            key: Bytes::copy_from_slice(k1.as_bytes()),
        },
        put(k1, text("v3")),
        put(&oversized, text("big key")),
        put(k2, text("w")),
    ];
    let replies = pipeline(&mut conn, &requests).await;

    let written =
        |r: &Response| matches!(r, Response::Written { partition, .. } if *partition == p);
    let error =
        |r: &Response, want: ErrorCode| matches!(r, Response::Error { code, .. } if *code == want);
    assert!(written(&replies[0]), "{:?}", replies[0]);
    assert!(
        error(&replies[1], ErrorCode::InvalidValue),
        "{:?}",
        replies[1]
    );
    assert!(
        matches!(replies[2], Response::Error { .. }),
        "a put for a partition this node does not lead fails alone: {:?}",
        replies[2]
    );
    assert!(written(&replies[3]), "{:?}", replies[3]);
    // The get after them sees the puts sent before it.
    match &replies[4] {
        Response::Value { value, .. } => assert_eq!(value.as_deref(), Some(&text("v2")[..])),
        other => panic!("expected the value, got {other:?}"),
    }
    assert!(written(&replies[5]), "{:?}", replies[5]);
    assert!(error(&replies[6], ErrorCode::TooLarge), "{:?}", replies[6]);
    assert!(
        written(&replies[7]),
        "a key over the limit fails alone, not its group: {:?}",
        replies[7]
    );

    let client = cluster.client();
    let got = |k: &str| {
        let client = client.clone();
        let k = k.to_string();
        async move { client.get(k.as_bytes()).await.unwrap().value }
    };
    assert_eq!(
        got(k1).await,
        Some(Value::Text("v3".into())),
        "the last put of a key wins"
    );
    assert_eq!(got(k2).await, Some(Value::Text("w".into())));
    assert_eq!(got(elsewhere).await, None);
    cluster.shutdown().await;
}

fn resp_sync_always(o: &mut NodeOptions) {
    o.storage.sync = SyncMode::Always;
    o.resp_addr = Some("127.0.0.1:0".into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resp_pipeline_of_sets_is_one_group_and_each_answer_stays_in_place() {
    let cluster =
        TestCluster::start_with(ClusterConfig::default_topology(), resp_sync_always).await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let (p, leader, other) = led_and_elsewhere(&cluster);
    let node = cluster.node(leader);
    let keys = keys_in(&cluster.map, p, 24, "resp-group");
    let forwarded = keys_in(&cluster.map, other, 2, "resp-group");
    let url = format!("redis://{}/", node.resp_addr().unwrap());
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(&keys[0])
        .arg("before")
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    let before = node.store_stats(p).unwrap();

    // SETs led here, two forwarded to another leader and a GET of a key
    // written before, all in one pipeline (distinct keys: one run).
    let mut pipe = redis::pipe();
    pipe.get(&keys[0]);
    for k in &keys[1..] {
        pipe.set(k, format!("v-{k}"));
    }
    for k in &forwarded {
        pipe.set(k, "elsewhere");
    }
    let replies: Vec<redis::Value> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), 1 + 23 + 2);
    assert_eq!(
        replies[0],
        redis::Value::BulkString(b"before".to_vec()),
        "the GET's answer stays in its place"
    );
    for (i, r) in replies.iter().enumerate().skip(1) {
        assert_eq!(*r, redis::Value::Okay, "reply {i}");
    }
    let after = node.store_stats(p).unwrap();
    assert_eq!(after.writes - before.writes, 23);
    // Side by side but each through the store alone, the SETs shared
    // fsyncs (group commit) yet took 23 `write(2)`s; as one group, one
    // (a few if the pipeline arrives in more than one read).
    let appends = after.appends - before.appends;
    assert!(appends <= 3, "23 pipelined SETs took {appends} appends");

    let client = cluster.client();
    for k in keys[1..].iter().chain(&forwarded) {
        assert!(
            client.get(k.as_bytes()).await.unwrap().value.is_some(),
            "{k}"
        );
    }
    cluster.shutdown().await;
}

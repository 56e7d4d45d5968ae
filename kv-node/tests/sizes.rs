//! Key and value limits fit every envelope an entry travels in
//! (docs/protocol.md, "Sizes"): tested at the exact boundary, and with the
//! write that used to stop replication forever (issue 8).
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use common::TestCluster;
use kv_codec::Value;
use kv_node::protocol::{DEFAULT_MAX_FRAME_BYTES, limits};
use kv_node::{ClientOptions, Error, ErrorCode, NodeClient};

const CONVERGE: Duration = Duration::from_secs(60);

/// A string value whose encoding is exactly `bytes` long.
fn value_encoding_to(bytes: usize) -> Vec<u8> {
    let mut n = bytes;
    loop {
        let encoded = Value::from_user_input(&"v".repeat(n)).encode();
        match encoded.len().cmp(&bytes) {
            std::cmp::Ordering::Equal => return encoded,
            std::cmp::Ordering::Greater => n -= encoded.len() - bytes,
            std::cmp::Ordering::Less => n += bytes - encoded.len(),
        }
    }
}

/// A key of `len` bytes.
fn key_of(len: usize) -> Vec<u8> {
    vec![b'k'; len]
}

fn leader_client(cluster: &TestCluster, key: &[u8]) -> NodeClient {
    let leader = cluster.map.leader(cluster.map.partition_of(key)).unwrap();
    let options = ClientOptions {
        request_timeout: Duration::from_secs(30),
        ..ClientOptions::default()
    };
    NodeClient::new(leader, cluster.map.addr(leader).unwrap(), options)
}

fn assert_too_large(result: Result<kv_node::Position, Error>) {
    match result {
        Err(Error::Remote {
            code: ErrorCode::TooLarge,
            ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_entry_is_accepted_and_replicated() {
    let cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let key = key_of(limits::max_key_bytes());
    let value = value_encoding_to(limits::max_value_bytes(DEFAULT_MAX_FRAME_BYTES));
    let client = leader_client(&cluster, &key);
    client.put(&key, value.clone().into()).await.unwrap();
    cluster.wait_replicated(CONVERGE).await;
    let p = cluster.map.partition_of(&key);
    let follower = cluster.map.followers(p).unwrap()[0];
    let direct = NodeClient::new(
        follower,
        cluster.map.addr(follower).unwrap(),
        ClientOptions::default(),
    );
    assert_eq!(direct.get(&key).await.unwrap().as_deref(), Some(&value[..]));

    // One byte more, of key or of value, is refused up front.
    let longer_key = key_of(limits::max_key_bytes() + 1);
    let other = leader_client(&cluster, &longer_key);
    assert_too_large(other.put(&longer_key, value.clone().into()).await);
    let bigger = value_encoding_to(limits::max_value_bytes(DEFAULT_MAX_FRAME_BYTES) + 1);
    assert_too_large(client.put(&key, bigger.into()).await);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_that_stopped_replication_is_refused_up_front() {
    // The reproduced case: a 65,516-byte key and a value encoding to
    // 16,711,680 bytes fit a Put frame, but their Entries message is 30
    // bytes over the frame limit.
    let cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let key = key_of(65_516);
    let client = leader_client(&cluster, &key);
    assert_too_large(client.put(&key, value_encoding_to(16_711_680).into()).await);
    // Replication of the partition is still alive.
    client
        .put(&key, Value::from_user_input("small").encode().into())
        .await
        .unwrap();
    cluster.wait_replicated(CONVERGE).await;
    cluster.shutdown().await;
}

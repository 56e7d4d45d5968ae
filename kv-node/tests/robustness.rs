//! Bad input on a socket closes that connection; the node keeps serving.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::TestCluster;
use kv_node::protocol::{Request, Response};
use kv_node::{ErrorCode, NodeClient};
use kv_router::ClusterConfig;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn one_node() -> TestCluster {
    let mut config = ClusterConfig::default_topology();
    config.nodes.truncate(1);
    config.replication_factor = 1;
    TestCluster::start_with(config, common::no_tweak).await
}

fn addr(cluster: &TestCluster) -> String {
    cluster.node(0).local_addr().to_string()
}

/// Reads one reply frame, or `None` at end of stream.
async fn read_reply(s: &mut TcpStream) -> Option<(u64, Response)> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
        .await
        .expect("reply in time")
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(Response::decode(Bytes::from(body)).expect("node replies decode"))
}

/// True when the peer closed the connection.
async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn still_serving(cluster: &TestCluster) {
    let c = NodeClient::new(0, addr(cluster), Default::default());
    assert_eq!(c.ping().await.unwrap(), 0);
}

use common::raw::frame;

/// A raw client connection past its handshake.
async fn connect(cluster: &TestCluster) -> TcpStream {
    common::raw::client(&addr(cluster), None).await
}

#[tokio::test]
async fn garbage_bytes_get_an_error_and_the_connection_closes() {
    let cluster = one_node().await;
    let mut s = connect(&cluster).await;
    s.write_all(&frame(b"hello, this is not kv")).await.unwrap();
    let (_, reply) = read_reply(&mut s).await.unwrap();
    assert!(
        matches!(
            reply,
            Response::Error {
                code: ErrorCode::InvalidRequest,
                ..
            }
        ),
        "{reply:?}"
    );
    assert!(closed(&mut s).await);
    still_serving(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn frame_over_the_limit_is_refused_without_reading_it() {
    let cluster = one_node().await;
    let mut s = connect(&cluster).await;
    s.write_all(&0x7fff_ffffu32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 1024]).await.unwrap();
    let (id, reply) = read_reply(&mut s).await.unwrap();
    assert_eq!(id, 0);
    match reply {
        Response::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::InvalidRequest);
            assert!(message.contains("too large"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(closed(&mut s).await);
    still_serving(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn unknown_message_type_is_answered_with_its_request_id() {
    let cluster = one_node().await;
    let mut s = connect(&cluster).await;
    let mut body = BytesMut::new();
    body.put_u8(0x7e);
    body.put_u64(4242);
    s.write_all(&frame(&body)).await.unwrap();
    let (id, reply) = read_reply(&mut s).await.unwrap();
    assert_eq!(id, 4242);
    match reply {
        Response::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::InvalidRequest);
            assert!(message.contains("unknown message type 0x7e"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    still_serving(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn client_vanishing_mid_frame_does_not_disturb_the_node() {
    let cluster = one_node().await;
    for cut in [1usize, 3, 4, 9, 20] {
        let mut s = connect(&cluster).await;
        let mut body = BytesMut::new();
        Request::Put {
            key: Bytes::from_static(b"half"),
            value: Bytes::from(kv_codec::Value::from_user_input("x").encode()),
        }
        .encode(7, &mut body);
        let bytes = frame(&body);
        s.write_all(&bytes[..cut.min(bytes.len() - 1)])
            .await
            .unwrap();
        drop(s);
    }
    still_serving(&cluster).await;
    let c = NodeClient::new(0, addr(&cluster), Default::default());
    assert!(
        c.get(b"half").await.unwrap().is_none(),
        "a half frame was applied"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_connections_are_served() {
    let cluster = one_node().await;
    let addr = addr(&cluster);
    let mut sockets = Vec::new();
    for _ in 0..500 {
        sockets.push(common::raw::client(&addr, None).await);
    }
    // Every connection is open at once; each pings and gets its own reply.
    let mut tasks = Vec::new();
    for (i, mut s) in sockets.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut body = BytesMut::new();
            Request::Ping.encode(i as u64, &mut body);
            s.write_all(&frame(&body)).await.unwrap();
            let (id, reply) = read_reply(&mut s).await.unwrap();
            assert_eq!(id, i as u64);
            assert!(matches!(reply, Response::Pong { node: 0, .. }));
            s
        }));
    }
    let mut open = Vec::new();
    for t in tasks {
        open.push(t.await.unwrap());
    }
    assert_eq!(open.len(), 500);
    still_serving(&cluster).await;
    drop(open);
    cluster.shutdown().await;
}

#[tokio::test]
async fn pipelined_requests_on_one_connection_are_answered_in_order() {
    let cluster = one_node().await;
    let mut s = connect(&cluster).await;
    let mut burst = Vec::new();
    for i in 0..100u64 {
        let mut body = BytesMut::new();
        let key = Bytes::from(format!("p{i}"));
        let value = Bytes::from(kv_codec::Value::from_user_input(&i.to_string()).encode());
        Request::Put {
            key: key.clone(),
            value,
        }
        .encode(2 * i, &mut body);
        burst.extend(frame(&body));
        body.clear();
        Request::Get { key }.encode(2 * i + 1, &mut body);
        burst.extend(frame(&body));
    }
    s.write_all(&burst).await.unwrap();
    for i in 0..100u64 {
        let (id, reply) = read_reply(&mut s).await.unwrap();
        assert_eq!(id, 2 * i);
        assert!(matches!(reply, Response::Written { .. }), "{reply:?}");
        let (id, reply) = read_reply(&mut s).await.unwrap();
        assert_eq!(id, 2 * i + 1);
        let Response::Value { value: Some(v), .. } = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(kv_codec::decode(&v).unwrap().render(), i.to_string());
    }
    cluster.shutdown().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Request::decode(Bytes::from(bytes.clone()));
        let _ = Response::decode(Bytes::from(bytes));
    }

    #[test]
    fn decoders_never_panic_on_mutated_messages(cut in 0usize..64, flip in 0usize..64, bit in 0u8..8) {
        let mut body = BytesMut::new();
        Request::Subscribe { partition: 3, from: 1, after: kv_node::Position { epoch: 1, lsn: 9 }, epoch: 1 }
            .encode(5, &mut body);
        let mut bytes = body.to_vec();
        if flip < bytes.len() {
            bytes[flip] ^= 1 << bit;
        }
        bytes.truncate(cut.min(bytes.len()));
        let _ = Request::decode(Bytes::from(bytes));
    }

    #[test]
    fn requests_round_trip(key in proptest::collection::vec(any::<u8>(), 0..64), id in any::<u64>()) {
        let request = Request::Get { key: Bytes::from(key) };
        let mut out = BytesMut::new();
        request.encode(id, &mut out);
        prop_assert_eq!(Request::decode(out.freeze()).unwrap(), (id, request));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_follower_never_blocks_the_leader() {
    // A three-node cluster; a fake follower subscribes to partition 0 on
    // its leader and then never reads a byte. The leader must keep
    // acknowledging writes (its stream task just waits on the socket).
    let cluster = TestCluster::start().await;
    cluster.wait_ready(Duration::from_secs(10)).await;
    let leader_addr = cluster.node(0).local_addr().to_string();
    // It proves the secret as node 1, which replicates partition 0.
    let (mut stalled, welcome) =
        common::raw::peer(&leader_addr, 1, common::TEST_SECRET.as_bytes()).await;
    assert_eq!(welcome[0], 0x91, "{welcome:?}");
    let mut body = BytesMut::new();
    Request::Subscribe {
        partition: 0,
        from: 1,
        after: kv_node::Position::default(),
        epoch: 0,
    }
    .encode(1, &mut body);
    stalled.write_all(&frame(&body)).await.unwrap();

    let client = cluster.client();
    let big = "x".repeat(4096);
    let keys: Vec<String> = (0..)
        .map(|i| format!("stall-{i}"))
        .filter(|k| cluster.map.partition_of(k.as_bytes()) == 0)
        .take(5_000)
        .collect();
    // 20 MB through partition 0, far more than socket buffers hold.
    let writes = async {
        for k in &keys {
            client
                .put(k.as_bytes(), &kv_codec::Value::from_user_input(&big))
                .await
                .unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(60), writes)
        .await
        .expect("leader blocked behind a stalled follower");
    // The real follower kept up regardless.
    cluster.wait_replicated(Duration::from_secs(30)).await;
    // Shutdown does not wait for the stalled stream to drain.
    tokio::time::timeout(Duration::from_secs(60), cluster.shutdown())
        .await
        .expect("shutdown hung on a stalled follower");
    drop(stalled);
}

//! Hostile local processes: impostors, unauthenticated subscribers and
//! writers, other protocol versions. Each case was reproduced against the
//! node before the handshake existed (issue 8).
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{TestCluster, keys_in, put_named, raw};
use kv_codec::Value;
use kv_node::protocol::{Request, Response};
use kv_node::{ClientOptions, Error, ErrorCode, NodeClient, NodeOptions, Position};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CONVERGE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "client password";

async fn bind_retrying(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("binding {addr}: {e}"),
        }
    }
}

/// Reads and discards one frame (whatever the dialer opens with).
async fn skip_frame(s: &mut TcpStream) -> Option<()> {
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    Some(())
}

fn forged(response: Response) -> Vec<u8> {
    let mut body = BytesMut::new();
    response.encode(1, &mut body);
    raw::frame(&body)
}

/// Plays the leader of partition `p` on a port it took over: whatever the
/// dialer sends first, it answers with a snapshot far ahead that holds
/// nothing (and, every other time, with a challenge carrying a made-up
/// proof first, as an impostor that knows the handshake would).
async fn impostor(listener: TcpListener, p: u32, last: Position, seen: Arc<AtomicUsize>) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let n = seen.fetch_add(1, Ordering::SeqCst);
        if skip_frame(&mut s).await.is_none() {
            continue;
        }
        let mut out = Vec::new();
        if n % 2 == 1 {
            let mut challenge = BytesMut::new();
            challenge.put_u8(0x90);
            challenge.put_u64(0);
            challenge.put_u16(raw::VERSION);
            challenge.put_u32(0);
            challenge.put_slice(&[1; 32]);
            challenge.put_u8(1);
            challenge.put_u32(32);
            challenge.put_slice(&[2; 32]);
            out.extend(raw::frame(&challenge));
        }
        out.extend(forged(Response::SnapshotStart {
            partition: p,
            last,
            reason: "forged".into(),
        }));
        out.extend(forged(Response::SnapshotEnd { partition: p, last }));
        let _ = s.write_all(&out).await;
        let _ = skip_frame(&mut s).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_on_a_dead_leaders_port_cannot_wipe_the_partition() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let p = 0;
    let leader = cluster.map.leader(p).unwrap();
    let follower = cluster.map.followers(p).unwrap()[0];
    let keys = keys_in(&cluster.map, p, 50, "hostile");
    let client = cluster.client();
    put_named(&client, &keys).await;
    cluster.wait_replicated(CONVERGE).await;
    let before = cluster.position(follower, p);

    cluster.stop(leader).await;
    let addr = cluster.map.addr(leader).unwrap().to_string();
    let listener = bind_retrying(&addr).await;
    let seen = Arc::new(AtomicUsize::new(0));
    let forged_last = Position {
        epoch: before.epoch,
        lsn: before.lsn + 1000,
    };
    let fake = tokio::spawn(impostor(listener, p, forged_last, Arc::clone(&seen)));
    // The follower reconnects with backoff: let it meet the impostor a few
    // times (both variants).
    let deadline = Instant::now() + CONVERGE;
    while seen.load(Ordering::SeqCst) < 4 {
        assert!(Instant::now() < deadline, "the follower never dialled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(cluster.position(follower, p), before, "the follower moved");
    let direct = NodeClient::new(
        follower,
        cluster.map.addr(follower).unwrap(),
        ClientOptions::default(),
    );
    for k in &keys {
        assert!(
            direct.get(k.as_bytes()).await.unwrap().is_some(),
            "{k} wiped"
        );
    }
    fake.abort();
    let _ = fake.await;

    // The real leader comes back and every acknowledged key is there.
    cluster.restart(leader).await;
    cluster.wait_ready(CONVERGE).await;
    cluster.wait_replicated(CONVERGE).await;
    for k in &keys {
        let read = client.get(k.as_bytes()).await.unwrap();
        assert_eq!(read.value.map(|v| v.render()), Some(k.clone()));
    }
    cluster.shutdown().await;
}

fn with_password(o: &mut NodeOptions) {
    o.client_password = Some(PASSWORD.into());
}

fn client_of(cluster: &TestCluster, node: u32, password: Option<&str>) -> NodeClient {
    let options = ClientOptions {
        password: password.map(Into::into),
        ..ClientOptions::default()
    };
    NodeClient::new(node, cluster.map.addr(node).unwrap(), options)
}

fn error_code(frame: &Bytes) -> ErrorCode {
    match Response::decode(frame.clone()) {
        Ok((_, Response::Error { code, .. })) => code,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

fn subscribe(partition: u32, from: u32) -> Vec<u8> {
    let mut body = BytesMut::new();
    Request::Subscribe {
        partition,
        from,
        after: Position::default(),
        epoch: 0,
    }
    .encode(1, &mut body);
    raw::frame(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_process_cannot_subscribe_as_a_node() {
    let cluster =
        TestCluster::start_with(kv_router::ClusterConfig::default_topology(), with_password).await;
    cluster.wait_ready(CONVERGE).await;
    let p = 0;
    let leader = cluster.map.leader(p).unwrap();
    let follower = cluster.map.followers(p).unwrap()[0];
    let writer = client_of(&cluster, leader, Some(PASSWORD));
    for k in keys_in(&cluster.map, p, 20, "hostile") {
        writer
            .put(
                k.as_bytes(),
                Bytes::from(Value::from_user_input(&k).encode()),
            )
            .await
            .unwrap();
    }
    let addr = cluster.map.addr(leader).unwrap().to_string();

    // The attack as reproduced: subscribe straight away, no handshake.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&subscribe(p, follower)).await.unwrap();
    let reply = raw::read_frame(&mut s).await.expect("an answer");
    assert_eq!(error_code(&reply), ErrorCode::InvalidRequest, "{reply:?}");
    assert!(
        raw::read_frame(&mut s).await.is_none(),
        "stream after refusal"
    );

    // A client (even with the password) may not subscribe either.
    let mut s = raw::client(&addr, Some(PASSWORD)).await;
    s.write_all(&subscribe(p, follower)).await.unwrap();
    let reply = raw::read_frame(&mut s).await.unwrap();
    assert_eq!(error_code(&reply), ErrorCode::Unauthorized);
    assert!(raw::read_frame(&mut s).await.is_none());

    // A peer with the wrong secret is refused at the handshake.
    let (_s, answer) = raw::peer_with(&addr, follower, b"not the secret at all!", false).await;
    assert_eq!(error_code(&answer), ErrorCode::Unauthorized);

    // A proven peer may subscribe only as itself, for its own partitions.
    let secret = common::TEST_SECRET.as_bytes();
    let (mut s, welcome) = raw::peer(&addr, follower, secret).await;
    assert_eq!(welcome[0], 0x91);
    let other = cluster
        .map
        .nodes()
        .iter()
        .map(|n| n.id)
        .find(|&n| n != leader && n != follower);
    s.write_all(&subscribe(p, other.unwrap())).await.unwrap();
    assert_eq!(
        error_code(&raw::read_frame(&mut s).await.unwrap()),
        ErrorCode::Unauthorized
    );
    let stranger = other.unwrap();
    if !cluster.map.replicas(p).unwrap().contains(&stranger) {
        let (mut s, _) = raw::peer(&addr, stranger, secret).await;
        s.write_all(&subscribe(p, stranger)).await.unwrap();
        assert_eq!(
            error_code(&raw::read_frame(&mut s).await.unwrap()),
            ErrorCode::Unauthorized
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_need_the_password_to_read_or_write() {
    let cluster =
        TestCluster::start_with(kv_router::ClusterConfig::default_topology(), with_password).await;
    cluster.wait_ready(CONVERGE).await;
    let key = common::key_in(&cluster.map, 0, "pw");
    let leader = cluster.map.leader(0).unwrap();
    let value = Bytes::from(Value::from_user_input("v").encode());
    for password in [None, Some("wrong")] {
        let c = client_of(&cluster, leader, password);
        match c.put(key.as_bytes(), value.clone()).await {
            Err(Error::Remote {
                code: ErrorCode::Unauthorized,
                ..
            }) => {}
            other => panic!("{password:?}: {other:?}"),
        }
    }
    let c = client_of(&cluster, leader, Some(PASSWORD));
    c.put(key.as_bytes(), value.clone()).await.unwrap();
    assert_eq!(c.get(key.as_bytes()).await.unwrap(), Some(value));

    // Raw: a put without a handshake is refused and not applied.
    let addr = cluster.map.addr(leader).unwrap().to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut body = BytesMut::new();
    Request::Delete {
        key: Bytes::from(key.clone()),
    }
    .encode(9, &mut body);
    s.write_all(&raw::frame(&body)).await.unwrap();
    assert_eq!(
        error_code(&raw::read_frame(&mut s).await.unwrap()),
        ErrorCode::InvalidRequest
    );
    assert!(c.get(key.as_bytes()).await.unwrap().is_some());
    cluster.shutdown().await;
}

fn password_but_no_secret(o: &mut NodeOptions) {
    o.secret = None;
    o.client_password = Some(PASSWORD.into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_secret_peers_present_the_password() {
    let cluster = TestCluster::start_with(
        kv_router::ClusterConfig::default_topology(),
        password_but_no_secret,
    )
    .await;
    cluster.wait_ready(CONVERGE).await;
    let p = 0;
    let leader = cluster.map.leader(p).unwrap();
    let writer = client_of(&cluster, leader, Some(PASSWORD));
    for k in keys_in(&cluster.map, p, 10, "hostile") {
        let value = Bytes::from(Value::from_user_input(&k).encode());
        writer.put(k.as_bytes(), value).await.unwrap();
    }
    cluster.wait_replicated(CONVERGE).await;
    // A would-be peer without the password is refused.
    let addr = cluster.map.addr(leader).unwrap().to_string();
    let follower = cluster.map.followers(p).unwrap()[0];
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let hello = raw::hello(raw::VERSION, 1, follower, [0; 32], None);
    s.write_all(&raw::frame(&hello)).await.unwrap();
    assert_eq!(
        error_code(&raw::read_frame(&mut s).await.unwrap()),
        ErrorCode::Unauthorized
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn another_protocol_version_is_refused_clearly() {
    let mut config = kv_router::ClusterConfig::default_topology();
    config.nodes.truncate(1);
    config.replication_factor = 1;
    let cluster = TestCluster::start_with(config, common::no_tweak).await;
    let addr = cluster.node(0).local_addr().to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut hello = raw::hello(2, 0, 0, [0; 32], None);
    hello.extend_from_slice(b"fields of a later version");
    s.write_all(&raw::frame(&hello)).await.unwrap();
    let reply = raw::read_frame(&mut s).await.unwrap();
    let Ok((_, Response::Error { code, message, .. })) = Response::decode(reply) else {
        panic!("expected an error reply");
    };
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert!(message.contains("version 2"), "{message}");
    assert!(raw::read_frame(&mut s).await.is_none());
    cluster.shutdown().await;
}

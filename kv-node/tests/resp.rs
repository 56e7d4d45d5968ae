//! The RESP2 front door driven by a real Redis client library (redis-rs)
//! against an in-process three-node cluster on 127.0.0.1: every command,
//! forwarding (each key through every node), pipelines, binary and large
//! values, many connections, atomic increments under contention, AUTH,
//! bad input and a dead leader.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::Duration;

use common::{TestCluster, key_in};
use kv_codec::Value;
use kv_node::NodeOptions;
use kv_router::ClusterConfig;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value as RV, cmd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_resp(o: &mut NodeOptions) {
    o.resp_addr = Some("127.0.0.1:0".into());
}

fn with_password(o: &mut NodeOptions) {
    with_resp(o);
    o.client_password = Some("sesame".into());
}

fn with_short_idle(o: &mut NodeOptions) {
    with_resp(o);
    o.resp_idle_timeout = Duration::from_millis(300);
}

async fn cluster(tweak: fn(&mut NodeOptions)) -> TestCluster {
    let c = TestCluster::start_with(ClusterConfig::default_topology(), tweak).await;
    c.wait_ready(Duration::from_secs(10)).await;
    c
}

fn port(c: &TestCluster, id: u32) -> u16 {
    c.node(id).resp_addr().expect("RESP listener").port()
}

/// Generous: the machine is shared and the tests run unoptimized; a
/// reply that never comes still fails the test instead of hanging it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

async fn connect_url(url: &str) -> RedisResult<MultiplexedConnection> {
    let mut con = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    con.set_response_timeout(RESPONSE_TIMEOUT);
    Ok(con)
}

async fn connect(c: &TestCluster, id: u32) -> MultiplexedConnection {
    connect_url(&format!("redis://127.0.0.1:{}/", port(c, id)))
        .await
        .unwrap()
}

async fn q<T: redis::FromRedisValue>(
    con: &mut MultiplexedConnection,
    args: &[&[u8]],
) -> RedisResult<T> {
    let mut c = cmd(std::str::from_utf8(args[0]).unwrap());
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await
}

fn err_text(e: &redis::RedisError) -> String {
    format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_any_key_and_values_keep_their_kv_schema() {
    let c = cluster(with_resp).await;
    let client = c.client();
    for via in 0..3 {
        let mut con = connect(&c, via).await;
        for p in 0..4 {
            let key = key_in(&c.map, p, &format!("via{via}"));
            let value = format!("value of {key}");
            let ok: String = q(&mut con, &[b"SET", key.as_bytes(), value.as_bytes()])
                .await
                .unwrap();
            assert_eq!(ok, "OK");
            // Read back through every node, and through kv's own client.
            for reader in 0..3 {
                let mut r = connect(&c, reader).await;
                let got: Option<String> = q(&mut r, &[b"GET", key.as_bytes()]).await.unwrap();
                assert_eq!(
                    got.as_deref(),
                    Some(value.as_str()),
                    "via {via} read on {reader}"
                );
            }
            let read = client.get(key.as_bytes()).await.unwrap();
            assert_eq!(read.value, Some(Value::Text(value)));
        }
    }
    // JSON text classifies exactly as shell input does.
    let mut con = connect(&c, 1).await;
    let json = r#"{"jurusan": "Sistem Informasi", "angkatan": 2022}"#;
    let event = r#"{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}"#;
    for (key, text) in [("j", json), ("e", event)] {
        let _: String = q(&mut con, &[b"SET", key.as_bytes(), text.as_bytes()])
            .await
            .unwrap();
        let stored = client.get(key.as_bytes()).await.unwrap().value.unwrap();
        assert_eq!(stored, Value::from_user_input(text));
        let got: String = q(&mut con, &[b"GET", key.as_bytes()]).await.unwrap();
        assert_eq!(got, text);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_and_large_values_round_trip_byte_for_byte() {
    let c = cluster(with_resp).await;
    let mut con = connect(&c, 2).await;
    let binary: Vec<u8> = (0..=255u8).chain([0xff, 0x00, b'\r', b'\n']).collect();
    let large: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    for (key, value) in [(&b"bin"[..], &binary), (&b"large"[..], &large)] {
        let ok: String = q(&mut con, &[b"SET", key, value]).await.unwrap();
        assert_eq!(ok, "OK");
        let got: Vec<u8> = q(&mut con, &[b"GET", key]).await.unwrap();
        assert_eq!(&got, value);
        let len: i64 = q(&mut con, &[b"STRLEN", key]).await.unwrap();
        assert_eq!(len as usize, value.len());
    }
    let stored = c.client().get(b"bin").await.unwrap().value.unwrap();
    assert_eq!(stored, Value::Bytes(binary));
    // A pipeline whose replies are far larger than one output batch.
    let mut pipe = redis::pipe();
    for _ in 0..8 {
        pipe.cmd("GET").arg("large").cmd("STRLEN").arg("large");
    }
    let replies: Vec<RV> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), 16);
    for pair in replies.chunks(2) {
        assert_eq!(pair[0], RV::BulkString(large.clone()));
        assert_eq!(pair[1], RV::Int(large.len() as i64));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_options_getset_and_counters() {
    let c = cluster(with_resp).await;
    let mut con = connect(&c, 0).await;
    let k = key_in(&c.map, 1, "cond");
    let k = k.as_bytes();
    let r: Option<String> = q(&mut con, &[b"SET", k, b"a", b"XX"]).await.unwrap();
    assert_eq!(r, None);
    let r: Option<String> = q(&mut con, &[b"SET", k, b"a", b"NX"]).await.unwrap();
    assert_eq!(r.as_deref(), Some("OK"));
    let r: Option<String> = q(&mut con, &[b"SET", k, b"b", b"NX"]).await.unwrap();
    assert_eq!(r, None);
    let r: Option<String> = q(&mut con, &[b"SET", k, b"b", b"XX", b"GET"])
        .await
        .unwrap();
    assert_eq!(r.as_deref(), Some("a"));
    let r: Option<String> = q(&mut con, &[b"GETSET", k, b"c"]).await.unwrap();
    assert_eq!(r.as_deref(), Some("b"));
    let r: Option<String> = q(&mut con, &[b"GETSET", b"fresh", b"c"]).await.unwrap();
    assert_eq!(r, None);
    let e = q::<String>(&mut con, &[b"SET", k, b"v", b"EX", b"0"])
        .await
        .unwrap_err();
    assert!(err_text(&e).contains("invalid expire time"), "{e}");
    let e = q::<String>(&mut con, &[b"SET", k, b"v", b"NX", b"XX"])
        .await
        .unwrap_err();
    assert!(err_text(&e).contains("syntax error"), "{e}");

    let n = key_in(&c.map, 2, "n");
    let n = n.as_bytes();
    assert_eq!(q::<i64>(&mut con, &[b"INCR", n]).await.unwrap(), 1);
    assert_eq!(
        q::<i64>(&mut con, &[b"INCRBY", n, b"41"]).await.unwrap(),
        42
    );
    assert_eq!(q::<i64>(&mut con, &[b"DECR", n]).await.unwrap(), 41);
    assert_eq!(
        q::<i64>(&mut con, &[b"DECRBY", n, b"-9"]).await.unwrap(),
        50
    );
    let e = q::<i64>(&mut con, &[b"INCR", k]).await.unwrap_err();
    assert_eq!(err_text(&e), "ERR value is not an integer or out of range");
    let e = q::<i64>(&mut con, &[b"INCRBY", n, b"x"]).await.unwrap_err();
    assert_eq!(err_text(&e), "ERR value is not an integer or out of range");
    let _: String = q(&mut con, &[b"SET", n, b"9223372036854775807"])
        .await
        .unwrap();
    let e = q::<i64>(&mut con, &[b"INCR", n]).await.unwrap_err();
    assert!(err_text(&e).contains("overflow"), "{e}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn increments_through_every_node_are_atomic() {
    let c = cluster(with_resp).await;
    const TASKS: usize = 12;
    const EACH: usize = 40;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut con = connect(&c, (t % 3) as u32).await;
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let _: i64 = q(&mut con, &[b"INCR", b"counter"]).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut con = connect(&c, 1).await;
    let total: i64 = q(&mut con, &[b"GET", b"counter"]).await.unwrap();
    assert_eq!(total as usize, TASKS * EACH);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_key_commands_and_dbsize() {
    let c = cluster(with_resp).await;
    let mut con = connect(&c, 2).await;
    let keys: Vec<String> = (0..4).map(|p| key_in(&c.map, p, "mk")).collect();
    let mut mset = vec![&b"MSET"[..]];
    for k in &keys {
        mset.extend([k.as_bytes(), k.as_bytes()]);
    }
    assert_eq!(q::<String>(&mut con, &mset).await.unwrap(), "OK");
    let mut mget = vec![&b"MGET"[..]];
    mget.extend(keys.iter().map(|k| k.as_bytes()));
    mget.push(b"missing");
    let got: Vec<Option<String>> = q(&mut con, &mget).await.unwrap();
    let mut expected: Vec<Option<String>> = keys.iter().cloned().map(Some).collect();
    expected.push(None);
    assert_eq!(got, expected);
    let exists: i64 = q(
        &mut con,
        &[
            b"EXISTS",
            keys[0].as_bytes(),
            keys[0].as_bytes(),
            b"missing",
        ],
    )
    .await
    .unwrap();
    assert_eq!(exists, 2);
    assert_eq!(q::<i64>(&mut con, &[b"DBSIZE"]).await.unwrap(), 4);
    let deleted: i64 = q(
        &mut con,
        &[b"DEL", keys[0].as_bytes(), keys[1].as_bytes(), b"missing"],
    )
    .await
    .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(q::<i64>(&mut con, &[b"DBSIZE"]).await.unwrap(), 2);
    let e = q::<String>(&mut con, &[b"MSET", b"a"]).await.unwrap_err();
    assert_eq!(
        err_text(&e),
        "ERR wrong number of arguments for 'mset' command"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_answer_in_order() {
    let c = cluster(with_resp).await;
    let mut con = connect(&c, 0).await;
    let mut pipe = redis::pipe();
    for i in 0..500 {
        pipe.cmd("SET").arg(format!("p{i}")).arg(i);
        pipe.cmd("GET").arg(format!("p{i}"));
    }
    let replies: Vec<RV> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), 1000);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair[0], RV::Okay);
        assert_eq!(pair[1], RV::BulkString(i.to_string().into_bytes()));
    }
    // Runs of SETs on distinct keys (executed side by side), then writes
    // of one key, which must apply in order, and reads of both.
    let mut pipe = redis::pipe();
    for i in 0..300 {
        pipe.cmd("SET").arg(format!("d{i}")).arg(format!("v{i}"));
    }
    for i in 0..50 {
        pipe.cmd("SET").arg("same").arg(i);
    }
    pipe.cmd("GET").arg("same");
    for i in 0..300 {
        pipe.cmd("GET").arg(format!("d{i}"));
    }
    let replies: Vec<RV> = pipe.query_async(&mut con).await.unwrap();
    assert_eq!(replies.len(), 651);
    assert!(replies[..350].iter().all(|r| *r == RV::Okay));
    assert_eq!(replies[350], RV::BulkString(b"49".to_vec()));
    for (i, r) in replies[351..].iter().enumerate() {
        assert_eq!(*r, RV::BulkString(format!("v{i}").into_bytes()));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_connections_at_once() {
    let c = cluster(with_resp).await;
    let mut tasks = Vec::new();
    for t in 0..60u32 {
        let url = format!("redis://127.0.0.1:{}/", port(&c, t % 3));
        tasks.push(tokio::spawn(async move {
            let mut con = connect_url(&url).await.unwrap();
            let key = format!("conn{t}");
            for i in 0..10 {
                let v = format!("{t}-{i}");
                let _: String = q(&mut con, &[b"SET", key.as_bytes(), v.as_bytes()])
                    .await
                    .unwrap();
                let got: String = q(&mut con, &[b"GET", key.as_bytes()]).await.unwrap();
                assert_eq!(got, v);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut con = connect(&c, 0).await;
    assert_eq!(q::<i64>(&mut con, &[b"DBSIZE"]).await.unwrap(), 60);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_server_commands() {
    let c = cluster(with_resp).await;
    let mut con = connect(&c, 1).await;
    assert_eq!(q::<String>(&mut con, &[b"PING"]).await.unwrap(), "PONG");
    assert_eq!(
        q::<String>(&mut con, &[b"PING", b"hi"]).await.unwrap(),
        "hi"
    );
    assert_eq!(
        q::<String>(&mut con, &[b"ECHO", b"x y"]).await.unwrap(),
        "x y"
    );
    assert_eq!(
        q::<String>(&mut con, &[b"SELECT", b"0"]).await.unwrap(),
        "OK"
    );
    let e = q::<String>(&mut con, &[b"SELECT", b"1"]).await.unwrap_err();
    assert_eq!(err_text(&e), "ERR DB index is out of range");
    assert_eq!(
        q::<String>(&mut con, &[b"CLIENT", b"SETNAME", b"tester"])
            .await
            .unwrap(),
        "OK"
    );
    assert_eq!(
        q::<String>(&mut con, &[b"CLIENT", b"GETNAME"])
            .await
            .unwrap(),
        "tester"
    );
    assert!(q::<i64>(&mut con, &[b"CLIENT", b"ID"]).await.unwrap() > 0);
    let setinfo = [&b"CLIENT"[..], b"SETINFO", b"LIB-NAME", b"kv-test"];
    assert_eq!(q::<String>(&mut con, &setinfo).await.unwrap(), "OK");
    let e = q::<String>(&mut con, &[b"CLIENT", b"KILL", b"x"])
        .await
        .unwrap_err();
    assert!(err_text(&e).contains("unknown subcommand"), "{e}");
    let info: Vec<RV> = q(&mut con, &[b"COMMAND", b"INFO", b"get"]).await.unwrap();
    assert_eq!(info.len(), 1);
    let e = q::<String>(&mut con, &[b"FLUSHALL", b"ASYNC", b"x"])
        .await
        .unwrap_err();
    assert_eq!(
        err_text(&e),
        "ERR unknown command 'FLUSHALL', with args beginning with: 'ASYNC' 'x' "
    );
    let e = q::<String>(&mut con, &[b"GET"]).await.unwrap_err();
    assert_eq!(
        err_text(&e),
        "ERR wrong number of arguments for 'get' command"
    );
    let e = q::<RV>(&mut con, &[b"HELLO", b"3"]).await.unwrap_err();
    assert_eq!(e.code(), Some("NOPROTO"));
    let hello: Vec<RV> = q(&mut con, &[b"HELLO", b"2"]).await.unwrap();
    assert!(hello.contains(&RV::Int(2)));
    let count: i64 = q(&mut con, &[b"COMMAND", b"COUNT"]).await.unwrap();
    let all: Vec<RV> = q(&mut con, &[b"COMMAND"]).await.unwrap();
    assert_eq!(all.len() as i64, count);
    let docs: Vec<RV> = q(&mut con, &[b"COMMAND", b"DOCS", b"set"]).await.unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0], RV::BulkString(b"set".to_vec()));
    let config: Vec<String> = q(&mut con, &[b"CONFIG", b"GET", b"maxmemory"])
        .await
        .unwrap();
    assert!(config.is_empty());
    let config: Vec<String> = q(&mut con, &[b"CONFIG", b"GET", b"appendonly"])
        .await
        .unwrap();
    assert_eq!(config, ["appendonly", "no"]);
    let _: String = q(&mut con, &[b"SET", b"counted", b"1"]).await.unwrap();
    let info: String = q(&mut con, &[b"INFO"]).await.unwrap();
    for field in [
        "# Server",
        "redis_version:",
        "kv_node_id:1",
        "# Clients",
        "connected_clients:",
        "# Replication",
        "kv_partition_",
        "lag=",
        "# Keyspace",
        "db0:keys=1,",
        "# Stats",
        "total_commands_processed:",
    ] {
        assert!(
            info.contains(field.trim_end_matches('=')),
            "{field} missing in\n{info}"
        );
    }
    let only: String = q(&mut con, &[b"INFO", b"keyspace"]).await.unwrap();
    assert!(
        only.starts_with("# Keyspace") && !only.contains("# Server"),
        "{only}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_when_a_password_is_set() {
    let c = cluster(with_password).await;
    let p = port(&c, 0);
    let mut raw = raw_connect(p).await;
    assert_eq!(
        raw_ask(&mut raw, b"GET k\r\n").await,
        "-NOAUTH Authentication required.\r\n"
    );
    assert_eq!(
        raw_ask(&mut raw, b"AUTH wrong\r\n").await,
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(
        raw_ask(&mut raw, b"AUTH default sesame\r\n").await,
        "+OK\r\n"
    );
    assert_eq!(raw_ask(&mut raw, b"GET k\r\n").await, "$-1\r\n");
    assert_eq!(raw_ask(&mut raw, b"RESET\r\n").await, "+RESET\r\n");
    assert!(raw_ask(&mut raw, b"GET k\r\n").await.starts_with("-NOAUTH"));
    assert!(
        raw_ask(&mut raw, b"HELLO 2 AUTH default sesame\r\n")
            .await
            .starts_with('*')
    );
    assert_eq!(raw_ask(&mut raw, b"GET k\r\n").await, "$-1\r\n");
    // redis-rs sends AUTH from the URL.
    let url = format!("redis://:sesame@127.0.0.1:{p}/");
    let mut con = connect_url(&url).await.unwrap();
    assert_eq!(
        q::<String>(&mut con, &[b"SET", b"k", b"v"]).await.unwrap(),
        "OK"
    );
    let bad = connect_url(&format!("redis://:nope@127.0.0.1:{p}/")).await;
    assert!(bad.is_err());
    // Keys led by the other nodes are forwarded over the framed protocol,
    // whose handshake asks for the same password.
    let keys: Vec<String> = (0..4).map(|p| key_in(&c.map, p, "pw")).collect();
    for key in &keys {
        let set = q::<String>(&mut con, &[b"SET", key.as_bytes(), key.as_bytes()]).await;
        assert_eq!(set.unwrap(), "OK", "{key}");
    }
    for key in &keys {
        let got = q::<String>(&mut con, &[b"GET", key.as_bytes()]).await;
        assert_eq!(got.unwrap(), *key);
    }
    let counter = key_in(&c.map, 1, "pw-counter");
    let counted = q::<i64>(&mut con, &[b"INCR", counter.as_bytes()]).await;
    assert_eq!(counted.unwrap(), 1);
    c.shutdown().await;
}

async fn raw_connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).await.unwrap()
}

/// Sends `request` and reads one reply's worth of bytes (the replies used
/// here fit in one read).
async fn raw_ask(s: &mut TcpStream, request: &[u8]) -> String {
    s.write_all(request).await.unwrap();
    let mut buf = vec![0; 4096];
    let n = s.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Reads until the peer closes; true if it did within a generous bound.
async fn closed_by_peer(s: &mut TcpStream) -> bool {
    let mut buf = vec![0; 4096];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_closes_only_that_connection() {
    let c = cluster(with_resp).await;
    let p = port(&c, 0);
    let mut good = connect(&c, 0).await;
    let cases: [&[u8]; 4] = [
        b"*1\r\n$99999999999\r\n",
        b"*3000000\r\n",
        b"*1\r\n+PING\r\n",
        b"SET \"unbalanced\r\n",
    ];
    for garbage in cases {
        let mut bad = raw_connect(p).await;
        let reply = raw_ask(&mut bad, garbage).await;
        assert!(reply.starts_with("-ERR Protocol error:"), "{reply}");
        assert!(closed_by_peer(&mut bad).await);
        assert_eq!(q::<String>(&mut good, &[b"PING"]).await.unwrap(), "PONG");
    }
    // Inline commands and QUIT, as telnet would send them.
    let mut inline = raw_connect(p).await;
    assert_eq!(
        raw_ask(&mut inline, b"set \"in line\" 'v 1'\r\n").await,
        "+OK\r\n"
    );
    assert_eq!(
        raw_ask(&mut inline, b"get \"in line\"\r\n").await,
        "$3\r\nv 1\r\n"
    );
    assert_eq!(raw_ask(&mut inline, b"QUIT\r\n").await, "+OK\r\n");
    assert!(closed_by_peer(&mut inline).await);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_client_is_closed_and_others_keep_working() {
    let c = cluster(with_short_idle).await;
    let p = port(&c, 1);
    let mut idle = raw_connect(p).await;
    idle.write_all(b"*2\r\n$3\r\nGET").await.unwrap();
    assert!(closed_by_peer(&mut idle).await);
    let mut fresh = raw_connect(p).await;
    assert_eq!(raw_ask(&mut fresh, b"PING\r\n").await, "+PONG\r\n");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_leader_means_tryagain_for_writes_and_follower_reads() {
    let mut c = cluster(with_resp).await;
    let mut con = connect(&c, 1).await;
    // Partition 0 is led by node 0, followed by node 1.
    let key = key_in(&c.map, 0, "dead");
    let _: String = q(&mut con, &[b"SET", key.as_bytes(), b"before"])
        .await
        .unwrap();
    c.wait_replicated(Duration::from_secs(10)).await;
    c.stop(0).await;
    let e = q::<String>(&mut con, &[b"SET", key.as_bytes(), b"after"])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("TRYAGAIN"), "{e}");
    let e = q::<i64>(&mut con, &[b"INCR", key.as_bytes()])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("TRYAGAIN"), "{e}");
    let got: String = q(&mut con, &[b"GET", key.as_bytes()]).await.unwrap();
    assert_eq!(got, "before");
    c.shutdown().await;
}

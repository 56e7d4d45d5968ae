//! RESP `SCAN`, `KEYS` and the expiry commands through a real Redis
//! client library (redis-rs) against an in-process three-node cluster on
//! 127.0.0.1.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::TestCluster;
use kv_node::NodeOptions;
use kv_router::ClusterConfig;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, cmd};

fn with_resp(o: &mut NodeOptions) {
    o.resp_addr = Some("127.0.0.1:0".into());
}

async fn cluster() -> TestCluster {
    let c = TestCluster::start_with(ClusterConfig::default_topology(), with_resp).await;
    c.wait_ready(Duration::from_secs(10)).await;
    c
}

fn url(c: &TestCluster, id: u32) -> String {
    let port = c.node(id).resp_addr().expect("RESP listener").port();
    format!("redis://127.0.0.1:{port}/")
}

async fn connect(c: &TestCluster, id: u32) -> MultiplexedConnection {
    let client = redis::Client::open(url(c, id)).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    con.set_response_timeout(Duration::from_secs(60));
    con
}

async fn q<T: redis::FromRedisValue>(
    con: &mut MultiplexedConnection,
    args: &[&str],
) -> RedisResult<T> {
    let mut c = cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query_async(con).await
}

/// Writes `keys` through RESP, each with its own name as its value.
async fn set_all(con: &mut MultiplexedConnection, keys: &[String]) {
    let mut pipe = redis::pipe();
    for k in keys {
        pipe.cmd("SET").arg(k).arg(k).ignore();
    }
    let () = pipe.query_async(con).await.unwrap();
}

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_match_iterates_the_whole_keyspace_with_redis_rs() {
    let c = cluster().await;
    let mut con = connect(&c, 1).await;
    let users = names("user:", 300);
    let others = names("order:", 120);
    set_all(&mut con, &users).await;
    set_all(&mut con, &others).await;

    // redis-rs's own iterator (the blocking `Commands` API), following
    // the cursor until 0.
    let url = url(&c, 2);
    let (all, only_users) = tokio::task::spawn_blocking(move || {
        use redis::Commands;
        let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
        let all: RedisResult<Vec<String>> = con.scan_match::<_, String>("*").unwrap().collect();
        let users: RedisResult<Vec<String>> =
            con.scan_match::<_, String>("user:*").unwrap().collect();
        (all.unwrap(), users.unwrap())
    })
    .await
    .unwrap();
    let every: BTreeSet<String> = users.iter().chain(&others).cloned().collect();
    assert_eq!(all.len(), every.len(), "each key once on a quiet cluster");
    assert_eq!(all.into_iter().collect::<BTreeSet<_>>(), every);
    assert_eq!(only_users.len(), users.len());
    assert_eq!(
        only_users.into_iter().collect::<BTreeSet<_>>(),
        users.iter().cloned().collect()
    );

    // A glob that is not a prefix is filtered on the node.
    let mut seen = BTreeSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys): (String, Vec<String>) = q(
            &mut con,
            &["SCAN", &cursor, "MATCH", "user:1?", "COUNT", "50"],
        )
        .await
        .unwrap();
        seen.extend(keys);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    let expected: BTreeSet<String> = (10..20).map(|i| format!("user:{i}")).collect();
    assert_eq!(seen, expected);

    // KEYS: every match at once.
    let mut keys: Vec<String> = q(&mut con, &["KEYS", "order:1*"]).await.unwrap();
    keys.sort();
    let mut want: Vec<String> = others
        .iter()
        .filter(|k| k.starts_with("order:1"))
        .cloned()
        .collect();
    want.sort();
    assert_eq!(keys, want);
    let none: Vec<String> = q(&mut con, &["KEYS", "nothing*"]).await.unwrap();
    assert!(none.is_empty());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_pages_and_bad_arguments_answer_as_redis_does() {
    let c = cluster().await;
    let mut con = connect(&c, 0).await;
    set_all(&mut con, &names("k", 50)).await;

    // COUNT bounds the keys examined per page, so small pages come back
    // with a non-zero cursor.
    let (next, keys): (String, Vec<String>) =
        q(&mut con, &["SCAN", "0", "COUNT", "5"]).await.unwrap();
    assert_ne!(next, "0");
    assert!(!keys.is_empty() && keys.len() <= 10, "{keys:?}");
    // TYPE string is every kv value; another type matches nothing.
    let (_, keys): (String, Vec<String>) =
        q(&mut con, &["SCAN", "0", "COUNT", "100", "TYPE", "hash"])
            .await
            .unwrap();
    assert!(keys.is_empty());

    for (args, message) in [
        (&["SCAN", "abc"][..], "invalid cursor"),
        (&["SCAN", "0", "COUNT", "0"][..], "syntax error"),
        (&["SCAN", "0", "COUNT", "x"][..], "not an integer"),
        (&["SCAN", "0", "MATCH"][..], "syntax error"),
        (&["SCAN", "0", "BOGUS", "1"][..], "syntax error"),
    ] {
        let e = q::<redis::Value>(&mut con, args).await.unwrap_err();
        assert!(e.to_string().contains(message), "{args:?}: {e}");
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_ttl_persist_and_set_options_answer_as_redis_does() {
    let c = cluster().await;
    let mut con = connect(&c, 0).await;
    // One key per partition: node 0 leads some (run locally) and forwards
    // the others.
    for p in 0..4 {
        let k = common::key_in(&c.map, p, "ttl");
        let k = k.as_str();
        let ttl = |v: i64| (1..=100).contains(&v);
        assert_eq!(q::<i64>(&mut con, &["TTL", k]).await.unwrap(), -2);
        assert_eq!(q::<i64>(&mut con, &["EXPIRE", k, "100"]).await.unwrap(), 0);
        let () = q(&mut con, &["SET", k, "v", "EX", "100"]).await.unwrap();
        assert!(ttl(q(&mut con, &["TTL", k]).await.unwrap()), "{k}");
        let ms: i64 = q(&mut con, &["PTTL", k]).await.unwrap();
        assert!((1..=100_000).contains(&ms), "{ms}");

        // KEEPTTL and INCR keep the expiry; a plain SET clears it.
        let () = q(&mut con, &["SET", k, "7", "KEEPTTL"]).await.unwrap();
        assert!(ttl(q(&mut con, &["TTL", k]).await.unwrap()));
        assert_eq!(q::<i64>(&mut con, &["INCR", k]).await.unwrap(), 8);
        assert!(ttl(q(&mut con, &["TTL", k]).await.unwrap()));
        let () = q(&mut con, &["SET", k, "v"]).await.unwrap();
        assert_eq!(q::<i64>(&mut con, &["TTL", k]).await.unwrap(), -1);

        assert_eq!(
            q::<i64>(&mut con, &["PEXPIRE", k, "100000"]).await.unwrap(),
            1
        );
        assert!(ttl(q(&mut con, &["TTL", k]).await.unwrap()));
        assert_eq!(q::<i64>(&mut con, &["PERSIST", k]).await.unwrap(), 1);
        assert_eq!(q::<i64>(&mut con, &["PERSIST", k]).await.unwrap(), 0);
        assert_eq!(q::<i64>(&mut con, &["TTL", k]).await.unwrap(), -1);

        // SET NX with an expiry: the classic lock.
        let lock = format!("{k}:lock");
        let got: Option<String> = q(&mut con, &["SET", &lock, "me", "NX", "PX", "60000"])
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some("OK"));
        let again: Option<String> = q(&mut con, &["SET", &lock, "you", "NX", "PX", "60000"])
            .await
            .unwrap();
        assert_eq!(again, None);
        assert!(q::<i64>(&mut con, &["PTTL", &lock]).await.unwrap() > 0);

        // A time of zero or less deletes the key.
        assert_eq!(q::<i64>(&mut con, &["EXPIRE", k, "-1"]).await.unwrap(), 1);
        let gone: Option<String> = q(&mut con, &["GET", k]).await.unwrap();
        assert_eq!(gone, None);
        assert_eq!(q::<i64>(&mut con, &["EXISTS", k]).await.unwrap(), 0);
    }
    for (args, message) in [
        (&["SET", "k", "v", "EX", "0"][..], "invalid expire time"),
        (&["SET", "k", "v", "EX", "x"][..], "not an integer"),
        (&["SET", "k", "v", "EX", "1", "PX", "1"][..], "syntax error"),
        (&["SET", "k", "v", "EX"][..], "syntax error"),
        (&["EXPIRE", "k", "x"][..], "not an integer"),
        (&["EXPIRE", "k", "10", "NX"][..], "does not support"),
        (&["TTL"][..], "wrong number of arguments"),
    ] {
        let e = q::<redis::Value>(&mut con, args).await.unwrap_err();
        assert!(e.to_string().contains(message), "{args:?}: {e}");
    }
    c.shutdown().await;
}

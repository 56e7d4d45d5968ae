//! Key expiry on a real three-node cluster over TCP: puts with a time to
//! live, expire/persist/ttl through `ClusterClient`, the expiry time
//! travelling to followers, followers hiding expired keys by their own
//! clock without deleting them, and the leader deleting them (also after
//! a restart, and on the new leader after a leader change) with tombstones
//! that replicate.
//!
//! Clocks are moved by hand (`NodeOptions::clock`), so no test depends on
//! how fast the machine is; waits poll with generous deadlines.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{TestCluster, key_in, no_tweak};
use kv_codec::Value;
use kv_node::protocol::{KeyTtl, ReplicaState, ScanSpec};
use kv_node::{ErrorCode, NodeOptions};
use kv_router::{ClusterConfig, Role};
use kv_storage::Clock;

const WAIT: Duration = Duration::from_secs(20);

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Polls `check` until it holds, failing after [`WAIT`].
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_expire_and_persist_through_the_cluster_client() {
    let cluster = TestCluster::start_with(ClusterConfig::default_topology(), no_tweak).await;
    cluster.wait_ready(WAIT).await;
    let client = cluster.client();
    let k = key_in(&cluster.map, 1, "session");
    let key = k.as_bytes();
    let minute = Duration::from_secs(60);
    let value = Value::from_user_input("abc");

    client.put_ttl(key, &value, minute).await.unwrap();
    let expires =
        |ttl: KeyTtl| matches!(ttl, KeyTtl::Expires(d) if d > Duration::ZERO && d <= minute);
    assert!(expires(client.ttl(key).await.unwrap().value));
    assert_eq!(client.get(key).await.unwrap().value, Some(value.clone()));

    // The expiry time travels with the entry: the follower knows it.
    cluster.wait_replicated(WAIT).await;
    let follower = client.node(cluster.map.followers(1).unwrap()[0]).unwrap();
    assert!(expires(follower.ttl(key).await.unwrap()));

    assert!(client.persist(key).await.unwrap());
    assert_eq!(client.ttl(key).await.unwrap().value, KeyTtl::Persistent);
    assert!(!client.persist(key).await.unwrap(), "nothing to remove");
    cluster.wait_replicated(WAIT).await;
    assert_eq!(follower.ttl(key).await.unwrap(), KeyTtl::Persistent);

    assert!(client.expire(key, minute).await.unwrap());
    assert!(expires(client.ttl(key).await.unwrap().value));
    // A plain put clears the expiry, as Redis's SET does.
    client.put(key, &value).await.unwrap();
    assert_eq!(client.ttl(key).await.unwrap().value, KeyTtl::Persistent);

    assert!(!client.expire(b"nobody", minute).await.unwrap());
    assert_eq!(client.ttl(b"nobody").await.unwrap().value, KeyTtl::Missing);
    let err = client
        .put_ttl(key, &value, Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::InvalidRequest), "{err}");

    // A time to live of zero deletes the key, on the follower too.
    assert!(client.expire(key, Duration::ZERO).await.unwrap());
    assert_eq!(client.get(key).await.unwrap().value, None);
    cluster.wait_replicated(WAIT).await;
    assert_eq!(follower.get(key).await.unwrap(), None);
    cluster.shutdown().await;
}

/// The time node 0 reads (it leads partition 0).
static LEADER_NOW: AtomicU64 = AtomicU64::new(0);
/// The time every other node reads.
static OTHERS_NOW: AtomicU64 = AtomicU64::new(0);

fn hand_clocks(o: &mut NodeOptions) {
    o.clock = if o.id == 0 {
        Clock::from_fn(|| LEADER_NOW.load(Ordering::SeqCst))
    } else {
        Clock::from_fn(|| OTHERS_NOW.load(Ordering::SeqCst))
    };
}

/// Keys partition `p` holds on node `id` (expired ones count until a
/// tombstone or compaction removes them).
fn stored_keys(cluster: &TestCluster, id: u32, p: u32) -> u64 {
    let info = cluster.node(id).info();
    let part = info.partitions.iter().find(|i| i.partition == p).unwrap();
    part.keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_decides_expiry_followers_only_hide_and_a_restart_keeps_it() {
    let start = system_ms();
    LEADER_NOW.store(start, Ordering::SeqCst);
    OTHERS_NOW.store(start, Ordering::SeqCst);
    let mut cluster = TestCluster::start_with(ClusterConfig::default_topology(), hand_clocks).await;
    cluster.wait_ready(WAIT).await;
    let client = cluster.client();
    let (p, leader, follower_id) = (0, 0, 1);
    assert_eq!(cluster.map.replicas(p).unwrap(), [leader, follower_id]);
    let k = key_in(&cluster.map, p, "expiring");
    let key = Bytes::copy_from_slice(k.as_bytes());
    let value = Value::from_user_input("soon gone");
    client
        .put_ttl(&key, &value, Duration::from_secs(10))
        .await
        .unwrap();
    cluster.wait_replicated(WAIT).await;
    let follower = client.node(follower_id).unwrap();

    // Twenty seconds later by the follower's clock only: it hides the key
    // from reads, scans and ttl, but keeps it (no tombstone: followers
    // never expire keys themselves); the leader still serves it.
    OTHERS_NOW.store(start + 20_000, Ordering::SeqCst);
    assert_eq!(follower.get(&key).await.unwrap(), None);
    assert_eq!(follower.ttl(&key).await.unwrap(), KeyTtl::Missing);
    let page = follower
        .scan_partition(ScanSpec {
            partition: p,
            cursor: 0,
            count: 100,
            prefix: Bytes::new(),
            values: false,
            align: 0,
        })
        .await
        .unwrap();
    assert!(page.entries.is_empty(), "{page:?}");
    let position = cluster.position(leader, p);
    assert_eq!(stored_keys(&cluster, follower_id, p), 1);
    assert_eq!(client.get(&key).await.unwrap().value, Some(value.clone()));

    // The leader restarts; the expiry time is in its records.
    cluster.stop(leader).await;
    cluster.restart(leader).await;
    cluster.wait_ready(WAIT).await;
    assert_eq!(client.get(&key).await.unwrap().value, Some(value));
    assert!(matches!(
        client.ttl(&key).await.unwrap().value,
        KeyTtl::Expires(_)
    ));
    assert_eq!(cluster.position(leader, p), position, "nothing expired yet");

    // Its clock passes the expiry: it deletes the key with a tombstone,
    // which reaches the follower through the stream.
    LEADER_NOW.store(start + 20_000, Ordering::SeqCst);
    eventually("the leader deletes the expired key", async || {
        cluster.position(leader, p).lsn > position.lsn
    })
    .await;
    assert_eq!(client.get(&key).await.unwrap().value, None);
    assert_eq!(stored_keys(&cluster, leader, p), 0);
    eventually("the tombstone reaches the follower", async || {
        stored_keys(&cluster, follower_id, p) == 0
    })
    .await;
    // The follower's position is refreshed just after the apply that
    // emptied its store.
    eventually("the follower is at the leader's position", async || {
        cluster.position(follower_id, p) == cluster.position(leader, p)
    })
    .await;
    cluster.shutdown().await;
}

/// The time node 0 reads in the leader-change test.
static NODE0_NOW: AtomicU64 = AtomicU64::new(0);
/// The time every other node reads in the leader-change test.
static NODE1_NOW: AtomicU64 = AtomicU64::new(0);

fn change_clocks(o: &mut NodeOptions) {
    o.clock = if o.id == 0 {
        Clock::from_fn(|| NODE0_NOW.load(Ordering::SeqCst))
    } else {
        Clock::from_fn(|| NODE1_NOW.load(Ordering::SeqCst))
    };
}

/// Expiry follows leadership: a deposed leader stops expiring keys (its
/// clock passing the expiry writes nothing), and the new leader expires
/// the key it received from the old one, with a tombstone that reaches
/// the old leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_moves_with_leadership() {
    let start = system_ms();
    NODE0_NOW.store(start, Ordering::SeqCst);
    NODE1_NOW.store(start, Ordering::SeqCst);
    let cluster = TestCluster::start_with(ClusterConfig::default_topology(), change_clocks).await;
    cluster.wait_ready(WAIT).await;
    let client = cluster.client();
    let (p, old, new) = (0, 0, 1);
    assert_eq!(cluster.map.replicas(p).unwrap(), [old, new]);
    let k = key_in(&cluster.map, p, "handed-over");
    let key = Bytes::copy_from_slice(k.as_bytes());
    let value = Value::from_user_input("expires after the change");
    client
        .put_ttl(&key, &value, Duration::from_secs(10))
        .await
        .unwrap();
    cluster.wait_replicated(WAIT).await;

    // Node 1 takes over partition 0.
    let demoted = cluster
        .node(old)
        .set_role(p, Role::Follower, Some(new), None);
    demoted.await.unwrap();
    let promoted = cluster.node(new).set_role(p, Role::Leader, None, None);
    promoted.await.unwrap();
    eventually("node 1 leads partition 0 and takes writes", async || {
        let info = cluster.node(new).info();
        info.partitions
            .iter()
            .any(|r| r.partition == p && r.role == Role::Leader && r.state == ReplicaState::Ready)
    })
    .await;
    let before = cluster.position(new, p);

    // The deposed leader's clock passes the expiry: it hides the key but
    // writes nothing (it no longer decides expiry).
    NODE0_NOW.store(start + 20_000, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cluster.position(old, p).lsn, before.lsn);
    assert_eq!(stored_keys(&cluster, old, p), 1);

    // The new leader's clock passes it: it deletes the key, and the
    // tombstone reaches the old leader.
    NODE1_NOW.store(start + 20_000, Ordering::SeqCst);
    eventually("the new leader deletes the expired key", async || {
        cluster.position(new, p).lsn > before.lsn
    })
    .await;
    assert_eq!(stored_keys(&cluster, new, p), 0);
    eventually("the tombstone reaches the old leader", async || {
        stored_keys(&cluster, old, p) == 0
    })
    .await;
    // Its position is refreshed just after the apply that emptied its
    // store.
    eventually(
        "the old leader is at the new leader's position",
        async || cluster.position(old, p) == cluster.position(new, p),
    )
    .await;
    cluster.shutdown().await;
}

//! Ack modes and in-sync replicas over TCP on real in-process nodes.
//!
//! Partition 0 of the default topology lives on nodes [0, 1] (leader 0).
//! Where a test must control exactly when a follower acknowledges, node 1
//! is stopped and the test speaks node 1's side of the replication stream
//! itself (the peer handshake proves the cluster secret as node 1), so an
//! entry can be held unacknowledged for as long as the test wants.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::raw::{frame, read_frame};
use common::{TestCluster, key_in};
use kv_codec::Value;
use kv_node::protocol::{Request, Response};
use kv_node::{
    ClientOptions, ClusterClient, Entry, Error, ErrorCode, NodeClient, NodeOptions, Position,
};
use kv_router::{AckMode, ClusterConfig, NodeId, PartitionId};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const P: PartitionId = 0;
const LEADER: NodeId = 0;
const FOLLOWER: NodeId = 1;

/// Node 1's side of partition 0's replication stream, driven by the test.
struct FakeFollower {
    sock: TcpStream,
}

impl FakeFollower {
    /// Subscribes to partition 0 on the leader as node 1, after the
    /// leader's current position (so nothing old is streamed).
    async fn subscribe(cluster: &TestCluster) -> FakeFollower {
        let addr = cluster.node(LEADER).local_addr().to_string();
        let (mut sock, welcome) =
            common::raw::peer(&addr, FOLLOWER, common::TEST_SECRET.as_bytes()).await;
        assert_eq!(welcome[0], 0x91, "{welcome:?}");
        let after = cluster.position(LEADER, P);
        send(
            &mut sock,
            &Request::Subscribe {
                partition: P,
                from: FOLLOWER,
                after,
                epoch: after.epoch,
            },
        )
        .await;
        FakeFollower { sock }
    }

    /// Reads stream messages until one carries entries; returns them.
    async fn next_entries(&mut self) -> Vec<Entry> {
        loop {
            let body = read_frame(&mut self.sock)
                .await
                .expect("the stream is open");
            match Response::decode(body).expect("a stream message") {
                (_, Response::Entries { entries, .. }) if !entries.is_empty() => return entries,
                (_, Response::Entries { .. } | Response::LogMatch { .. }) => {}
                (_, other) => panic!("unexpected stream message {other:?}"),
            }
        }
    }

    /// Asserts that `task`, which the leader may answer only once this
    /// follower has `position`, has not answered 300 ms on; then
    /// acknowledges `position` and returns the task's answer.
    async fn answered_after_ack<T: std::fmt::Debug>(
        &mut self,
        task: tokio::task::JoinHandle<T>,
        position: Position,
        what: &str,
    ) -> T {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !task.is_finished(),
            "{what} answered before the in-sync follower acknowledged: {:?}",
            task.await
        );
        self.ack(position).await;
        task.await.unwrap()
    }

    /// Acknowledges `applied` as node 1 would after a durable apply.
    async fn ack(&mut self, applied: Position) {
        send(
            &mut self.sock,
            &Request::Ack {
                partition: P,
                applied,
            },
        )
        .await;
    }
}

async fn send(sock: &mut TcpStream, request: &Request) {
    let mut body = BytesMut::new();
    request.encode(1, &mut body);
    sock.write_all(&frame(&body)).await.unwrap();
}

/// The followers of partition 0 that node 0 reports in sync.
fn in_sync(cluster: &TestCluster) -> Vec<NodeId> {
    let info = cluster.node(LEADER).info();
    let p = info.partitions.iter().find(|p| p.partition == P).unwrap();
    p.in_sync_followers()
}

/// Waits (bounded) until partition 0's in-sync followers are `expected`.
async fn wait_in_sync(cluster: &TestCluster, expected: &[NodeId]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while in_sync(cluster) != expected {
        assert!(
            Instant::now() < deadline,
            "in-sync set never became {expected:?}: {:#?}",
            cluster.node(LEADER).info()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn value(s: &str) -> Value {
    Value::from_user_input(s)
}

fn client_with_timeout(cluster: &TestCluster, timeout: Duration) -> ClusterClient {
    let options = ClientOptions {
        request_timeout: timeout,
        ..ClientOptions::default()
    };
    ClusterClient::new(cluster.map.clone(), options)
}

/// Starts the default topology with `tweak`, waits until node 1 is in
/// partition 0's in-sync set, then stops node 1 (it stays in the set for
/// `replica_lag_max_ms`) and takes its place on the stream.
async fn with_fake_follower(tweak: fn(&mut NodeOptions)) -> (TestCluster, FakeFollower) {
    let mut cluster = TestCluster::start_with(ClusterConfig::default_topology(), tweak).await;
    cluster.wait_replicated(Duration::from_secs(20)).await;
    wait_in_sync(&cluster, &[FOLLOWER]).await;
    cluster.stop(FOLLOWER).await;
    let mut fake = FakeFollower::subscribe(&cluster).await;
    fake.ack(cluster.position(LEADER, P)).await;
    (cluster, fake)
}

fn all_by_default_long_lag(o: &mut NodeOptions) {
    o.replication.acks = AckMode::All;
    o.replication.replica_lag_max_ms = 3_600_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_reply_waits_until_the_in_sync_follower_acknowledges() {
    let (cluster, mut fake) = with_fake_follower(all_by_default_long_lag).await;
    let key = key_in(&cluster.map, P, "held");
    let client = cluster.client();
    // The cluster default is acks = all: a plain put waits.
    let put = {
        let (client, key) = (client.clone(), key.clone());
        tokio::spawn(async move { client.put(key.as_bytes(), &value("v")).await })
    };
    let entries = fake.next_entries().await;
    let entry = entries.last().unwrap().clone();
    assert_eq!(entry.key, Bytes::from(key.clone()));
    // The leader has written it (it streamed it), yet the put must not be
    // answered while the follower holds back its ack.
    let written = fake
        .answered_after_ack(put, entry.position, "an acks = all put")
        .await
        .expect("answered after the ack");
    assert_eq!(written.position, entry.position);
    // An explicit acks = leader write does not wait for the follower.
    let quick = key_in(&cluster.map, P, "quick");
    let w = client
        .put_with(quick.as_bytes(), &value("q"), Some(AckMode::Leader))
        .await;
    assert!(w.is_ok(), "{w:?}");
    cluster.shutdown().await;
}

/// Under `acks = "all"` a leader read is answered only once everything
/// the leader held when it read is on the in-sync follower: a write still
/// waiting for its ack (here one sent with `acks = "leader"`, so it was
/// answered at once) is not visible to leader reads yet, since a failover
/// to the follower could still lose it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_read_waits_until_the_in_sync_follower_has_what_it_read() {
    let (cluster, mut fake) = with_fake_follower(all_by_default_long_lag).await;
    let key = key_in(&cluster.map, P, "dirty");
    let client = cluster.client();
    let written = client
        .put_with(
            key.as_bytes(),
            &value("unreplicated"),
            Some(AckMode::Leader),
        )
        .await
        .expect("acks = leader answers at once");
    let entries = fake.next_entries().await;
    assert_eq!(entries.last().unwrap().position, written.position);
    let leader = client.node(LEADER).unwrap().clone();
    let read = {
        let (leader, key) = (leader.clone(), key.clone());
        tokio::spawn(async move { leader.get_at_leader(key.as_bytes()).await })
    };
    // The leader has the write, but its follower has not acknowledged it:
    // the read must not answer yet.
    let value = fake
        .answered_after_ack(read, written.position, "a leader read of the write")
        .await
        .expect("answered after the ack");
    assert!(value.is_some(), "the write is visible once acknowledged");
    cluster.shutdown().await;
}

/// A delete that finds no key writes nothing, but its answer ("not
/// there") comes from the leader's log as a read's does: when that log
/// holds a delete still waiting for its follower's ack, the second delete
/// waits too. Answered at once, it acknowledged a state a failover could
/// undo (simulation seed 10400189: the first delete was lost with its
/// leader and the key came back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_finds_no_key_waits_like_a_read() {
    let (cluster, mut fake) = with_fake_follower(all_by_default_long_lag).await;
    let key = key_in(&cluster.map, P, "twice-deleted");
    let client = cluster.client();
    let written = client
        .put_with(key.as_bytes(), &value("v"), Some(AckMode::Leader))
        .await
        .expect("acks = leader answers at once");
    fake.next_entries().await;
    fake.ack(written.position).await;
    let existed = client
        .delete_with(key.as_bytes(), Some(AckMode::Leader))
        .await
        .expect("acks = leader answers at once");
    assert!(existed);
    let tombstone = fake.next_entries().await.last().unwrap().position;
    let second = {
        let (client, key) = (client.clone(), key.clone());
        tokio::spawn(async move { client.delete(key.as_bytes()).await })
    };
    let existed = fake
        .answered_after_ack(second, tombstone, "a delete that found the tombstone")
        .await
        .expect("answered after the ack");
    assert!(!existed, "the key was gone");
    cluster.shutdown().await;
}

/// The other reads a leader answers as the leader's (mget, scan with
/// values, ttl) wait the same way: each sees a write its in-sync follower
/// lacks only once the follower has acknowledged it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_leader_read_waits_until_the_in_sync_follower_has_what_it_read() {
    use kv_node::protocol::{KeyTtl, ScanSpec};
    let (cluster, mut fake) = with_fake_follower(all_by_default_long_lag).await;
    let client = cluster.client();
    let leader = client.node(LEADER).unwrap().clone();
    for kind in ["mget", "scan", "ttl"] {
        let key = key_in(&cluster.map, P, &format!("dirty-{kind}"));
        let written = client
            .put_with(key.as_bytes(), &value(kind), Some(AckMode::Leader))
            .await
            .expect("acks = leader answers at once");
        let entries = fake.next_entries().await;
        assert_eq!(entries.last().unwrap().position, written.position);
        let read = {
            let (leader, key) = (leader.clone(), Bytes::from(key.clone()));
            tokio::spawn(async move {
                // Whether the read found the write.
                match kind {
                    "mget" => leader
                        .mget(P, vec![key])
                        .await
                        .map(|values| values[0].is_some()),
                    "scan" => {
                        let spec = ScanSpec {
                            partition: P,
                            cursor: 0,
                            count: 1000,
                            prefix: key.clone(),
                            values: true,
                            align: 0,
                        };
                        leader
                            .scan_partition(spec)
                            .await
                            .map(|page| page.entries.iter().any(|e| e.key == key))
                    }
                    _ => leader.ttl(&key).await.map(|t| t == KeyTtl::Persistent),
                }
            })
        };
        let what = format!("{kind} at the leader, of the write");
        let found = fake
            .answered_after_ack(read, written.position, &what)
            .await
            .expect("answered after the ack");
        assert!(found, "{kind}: the write is visible once acknowledged");
    }
    cluster.shutdown().await;
}

/// Writes that arrive as keyspace requests (a put with a ttl, an mset)
/// run under the cluster's ack mode too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_writes_wait_for_acks_under_the_cluster_default() {
    let (cluster, mut fake) = with_fake_follower(all_by_default_long_lag).await;
    let client = cluster.client();
    let ttl_key = key_in(&cluster.map, P, "ttl");
    let mset_key = key_in(&cluster.map, P, "mset");
    for (name, key) in [("put --ttl", ttl_key), ("mset", mset_key)] {
        let write = {
            let (client, key) = (client.clone(), key.clone());
            tokio::spawn(async move {
                let v = value("v");
                match name {
                    "mset" => client.mset(&[(key.as_bytes(), &v)]).await.map(|_| ()),
                    _ => client
                        .put_ttl(key.as_bytes(), &v, Duration::from_secs(60))
                        .await
                        .map(|_| ()),
                }
            })
        };
        let entries = fake.next_entries().await;
        let entry = entries.last().unwrap().clone();
        assert_eq!(entry.key, Bytes::from(key.clone()), "{name}");
        let answered = fake.answered_after_ack(write, entry.position, name).await;
        assert!(answered.is_ok(), "{name}: {answered:?}");
    }
    cluster.shutdown().await;
}

fn short_lag(o: &mut NodeOptions) {
    o.replication.replica_lag_max_ms = 500;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_stops_acking_leaves_the_set_and_does_not_hang_the_write() {
    let (cluster, mut fake) = with_fake_follower(short_lag).await;
    let key = key_in(&cluster.map, P, "silent");
    let client = cluster.client();
    let put = {
        let (client, key) = (client.clone(), key.clone());
        tokio::spawn(async move {
            let v = value("v");
            client
                .put_with(key.as_bytes(), &v, Some(AckMode::All))
                .await
        })
    };
    // The follower receives the entry and never acknowledges it: once it
    // has been behind for replica_lag_max_ms it leaves the set, and the
    // write (min_insync_replicas = 1) completes on the remaining set.
    let entries = fake.next_entries().await;
    assert_eq!(entries.last().unwrap().key, Bytes::from(key.clone()));
    let written = put.await.unwrap();
    assert!(written.is_ok(), "{written:?}");
    assert_eq!(in_sync(&cluster), Vec::<NodeId>::new());
    drop(fake);
    cluster.shutdown().await;
}

fn long_lag_short_ack_timeout(o: &mut NodeOptions) {
    o.replication.replica_lag_max_ms = 3_600_000;
    o.ack_timeout = Duration::from_secs(2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_write_is_outcome_unknown_never_not_applied() {
    let (cluster, mut fake) = with_fake_follower(long_lag_short_ack_timeout).await;
    // The client gives up first (200 ms; the leader waits 2 s for acks).
    let impatient = client_with_timeout(&cluster, Duration::from_millis(200));
    let first = key_in(&cluster.map, P, "unknown-client");
    let r = impatient
        .put_with(first.as_bytes(), &value("1"), Some(AckMode::All))
        .await;
    assert!(
        matches!(r, Err(Error::OutcomeUnknown { node: LEADER, .. })),
        "{r:?}"
    );
    let _ = fake.next_entries().await;
    // The leader gives up first (2 s; the client waits 5 s).
    let second = key_in(&cluster.map, P, "unknown-leader");
    let r = cluster
        .client()
        .delete_with(first.as_bytes(), Some(AckMode::All))
        .await;
    assert!(
        matches!(r, Err(Error::OutcomeUnknown { node: LEADER, .. })),
        "{r:?}"
    );
    let r = cluster
        .client()
        .put_with(second.as_bytes(), &value("2"), Some(AckMode::All))
        .await;
    match &r {
        Err(e @ Error::OutcomeUnknown { reason, .. }) => {
            assert!(reason.contains("did not acknowledge"), "{reason}");
            assert!(e.to_string().contains("outcome unknown"), "{e}");
        }
        other => panic!("expected outcome unknown, got {other:?}"),
    }
    // "Unknown" was the truth: the leader did apply it.
    let read = cluster.client().get(second.as_bytes()).await.unwrap();
    assert_eq!(read.value, Some(value("2")));

    // The connection is lost while the write waits (the leader stops).
    let third = key_in(&cluster.map, P, "unknown-lost");
    let client = cluster.client();
    let put = {
        let third = third.clone();
        tokio::spawn(async move {
            let v = value("3");
            client
                .put_with(third.as_bytes(), &v, Some(AckMode::All))
                .await
        })
    };
    // Once the leader streams it, the write is applied and waiting.
    let third = Bytes::from(third);
    while !fake.next_entries().await.iter().any(|e| e.key == third) {}
    let mut cluster = cluster;
    cluster.stop(LEADER).await;
    let r = put.await.unwrap();
    assert!(
        matches!(r, Err(Error::OutcomeUnknown { node: LEADER, .. })),
        "{r:?}"
    );
    drop(fake);
    cluster.shutdown().await;
}

fn two_in_sync_short_lag(o: &mut NodeOptions) {
    o.replication.min_insync_replicas = 2;
    o.replication.replica_lag_max_ms = 300;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_shrinks_refuses_below_the_minimum_and_grows_back_after_catch_up() {
    let mut cluster =
        TestCluster::start_with(ClusterConfig::default_topology(), two_in_sync_short_lag).await;
    cluster.wait_replicated(Duration::from_secs(20)).await;
    wait_in_sync(&cluster, &[FOLLOWER]).await;
    let client = cluster.client();
    let follower = NodeClient::new(
        FOLLOWER,
        cluster.map.addr(FOLLOWER).unwrap(),
        ClientOptions::default(),
    );
    let before = key_in(&cluster.map, P, "before");
    let all = Some(AckMode::All);
    client
        .put_with(before.as_bytes(), &value("b"), all)
        .await
        .unwrap();
    // acks = all answered, so the follower already has it.
    let on_follower = follower.get(before.as_bytes()).await.unwrap();
    assert_eq!(on_follower, Some(Bytes::from(value("b").encode())));

    cluster.stop(FOLLOWER).await;
    wait_in_sync(&cluster, &[]).await;
    let refused = key_in(&cluster.map, P, "refused");
    let r = client.put_with(refused.as_bytes(), &value("r"), all).await;
    match &r {
        Err(Error::Remote {
            code: ErrorCode::NotEnoughReplicas,
            message,
            ..
        }) => assert!(message.contains("min_insync_replicas = 2"), "{message}"),
        other => panic!("expected NotEnoughReplicas, got {other:?}"),
    }
    let r = client.delete_with(before.as_bytes(), all).await;
    assert!(
        matches!(
            r,
            Err(Error::Remote {
                code: ErrorCode::NotEnoughReplicas,
                ..
            })
        ),
        "{r:?}"
    );
    // Refused before it was applied: nothing there, nothing deleted.
    assert_eq!(client.get(refused.as_bytes()).await.unwrap().value, None);
    assert!(client.get(before.as_bytes()).await.unwrap().value.is_some());
    // acks = leader still takes writes.
    let leader_only = Some(AckMode::Leader);
    client
        .put_with(refused.as_bytes(), &value("l"), leader_only)
        .await
        .unwrap();

    cluster.restart(FOLLOWER).await;
    wait_in_sync(&cluster, &[FOLLOWER]).await;
    let after = key_in(&cluster.map, P, "after");
    client
        .put_with(after.as_bytes(), &value("a"), all)
        .await
        .unwrap();
    let on_follower = follower.get(after.as_bytes()).await.unwrap();
    assert_eq!(on_follower, Some(Bytes::from(value("a").encode())));
    cluster.shutdown().await;
}

fn all_by_default_two_in_sync_short_lag(o: &mut NodeOptions) {
    two_in_sync_short_lag(o);
    o.replication.acks = AckMode::All;
}

/// Below `min_insync_replicas` a leader read (under the `acks = "all"`
/// default) is refused rather than answered from what the leader alone
/// holds, which its next power loss may take (simulation seed 4100078);
/// a stale read still answers, and leader reads come back with the set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_read_below_the_minimum_in_sync_set_is_refused() {
    let mut cluster = TestCluster::start_with(
        ClusterConfig::default_topology(),
        all_by_default_two_in_sync_short_lag,
    )
    .await;
    cluster.wait_replicated(Duration::from_secs(20)).await;
    wait_in_sync(&cluster, &[FOLLOWER]).await;
    cluster.stop(FOLLOWER).await;
    wait_in_sync(&cluster, &[]).await;
    let key = key_in(&cluster.map, P, "alone");
    cluster
        .client()
        .put_with(key.as_bytes(), &value("only here"), Some(AckMode::Leader))
        .await
        .expect("acks = leader takes writes below the minimum");
    let leader = NodeClient::new(
        LEADER,
        cluster.map.addr(LEADER).unwrap(),
        ClientOptions::default(),
    );
    let read = leader.get_at_leader(key.as_bytes()).await;
    match &read {
        Err(Error::Remote {
            code: ErrorCode::Recovering,
            message,
            ..
        }) => assert!(message.contains("in-sync"), "{message}"),
        other => panic!("a leader read below min_insync_replicas answered: {other:?}"),
    }
    let stale = leader.get_stale(key.as_bytes()).await.unwrap();
    assert_eq!(stale, Some(Bytes::from(value("only here").encode())));

    cluster.restart(FOLLOWER).await;
    wait_in_sync(&cluster, &[FOLLOWER]).await;
    let read = leader.get_at_leader(key.as_bytes()).await.unwrap();
    assert_eq!(read, Some(Bytes::from(value("only here").encode())));
    cluster.shutdown().await;
}

/// A batch and a put with a TTL whose reply does not come in time may
/// have been applied: each is `OutcomeUnknown`, sent once, never again
/// (the simulation found a timed-out batch retried and applied twice,
/// the second time over a later write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_keyspace_write_is_outcome_unknown_and_sent_once() {
    let (cluster, mut fake) = with_fake_follower(all_by_default_long_lag).await;
    let impatient = client_with_timeout(&cluster, Duration::from_millis(200));
    let batched = key_in(&cluster.map, P, "batched");
    let expiring = key_in(&cluster.map, P, "expiring");
    let v = value("once");
    let r = impatient.mset(&[(batched.as_bytes(), &v)]).await;
    assert!(
        matches!(r, Err(Error::OutcomeUnknown { node: LEADER, .. })),
        "{r:?}"
    );
    // Another connection: this one's requests are answered in order.
    let impatient = client_with_timeout(&cluster, Duration::from_millis(200));
    let r = impatient
        .put_ttl(expiring.as_bytes(), &v, Duration::from_secs(60))
        .await;
    assert!(
        matches!(r, Err(Error::OutcomeUnknown { node: LEADER, .. })),
        "{r:?}"
    );
    // Each went out once: the leader streams one entry per key and no
    // more (a resend would be another).
    let keys = [Bytes::from(batched), Bytes::from(expiring)];
    let mut seen = [0, 0];
    let quiet = Duration::from_millis(1500);
    while let Ok(entries) = tokio::time::timeout(quiet, fake.next_entries()).await {
        for (n, key) in seen.iter_mut().zip(&keys) {
            *n += entries.iter().filter(|e| e.key == *key).count();
        }
    }
    assert_eq!(seen, [1, 1], "entries streamed per key");
    cluster.shutdown().await;
}

//! Automatic failover through the control plane (DESIGN §9): real node
//! servers on 127.0.0.1 running the openraft controller.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::time::{Duration, Instant};

use common::{TestCluster, keys_in, put_named};
use kv_codec::Value;
use kv_node::NodeOptions;
use kv_router::{ClusterConfig, ControlConfig};

fn with_control(o: &mut NodeOptions) {
    o.control = Some(ControlConfig::default());
}

async fn control_cluster() -> TestCluster {
    let cluster = TestCluster::start_with(ClusterConfig::default_topology(), with_control).await;
    // The controller elects itself, seeds the map and grants leases.
    let client = cluster.client();
    let deadline = Instant::now() + Duration::from_secs(15);
    for p in 0..cluster.map.partition_count() {
        let key = common::key_in(&cluster.map, p, "ready");
        while let Err(e) = client
            .put(key.as_bytes(), &Value::from_user_input("x"))
            .await
        {
            assert!(
                Instant::now() < deadline,
                "partition {p} never took writes: {e}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    cluster
}

async fn read_all(client: &kv_node::ClusterClient, keys: &[String]) {
    for k in keys {
        let read = client.get(k.as_bytes()).await.unwrap();
        assert_eq!(read.value.map(|v| v.render()), Some(k.clone()), "key {k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_leader_is_replaced_and_its_partition_takes_writes_again() {
    let mut cluster = control_cluster().await;
    let client = cluster.client();
    // partition 0 is led by node 0 (placement), followed by node 1
    let before = keys_in(&cluster.map, 0, 20, "before");
    put_named(&client, &before).await;
    cluster.wait_replicated(Duration::from_secs(10)).await;

    let node0 = cluster.nodes[0].take().unwrap();
    node0.shutdown_without_handover().await.unwrap();
    let stopped = Instant::now();

    let after = keys_in(&cluster.map, 0, 20, "after");
    put_named(&client, &after).await;
    let took = stopped.elapsed();
    assert!(
        client.map().leader(0) == Some(1),
        "partition 0 should be led by node 1 now: {:?}",
        client.map()
    );
    read_all(&client, &before).await;
    read_all(&client, &after).await;
    eprintln!("failover took {took:?}");

    // The old leader comes back as a follower and catches up.
    cluster.restart(0).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = cluster.node(0).info();
        let p0 = info.partitions.iter().find(|p| p.partition == 0).unwrap();
        if p0.role == kv_router::Role::Follower && p0.position == cluster.position(1, 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 0 did not rejoin as follower: {p0:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.shutdown().await;
}

/// Writes keys of partition `p` one after another until `stop` is set;
/// returns the keys acknowledged (each key's value is its name).
fn steady_writer(
    client: kv_node::ClusterClient,
    map: kv_router::ClusterMap,
    p: u32,
    salt: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        for k in keys_in(&map, p, 100_000, salt) {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            if client
                .put(k.as_bytes(), &Value::from_user_input(&k))
                .await
                .is_ok()
            {
                acked.push(k);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        acked
    })
}

fn rolled_back(cluster: &TestCluster, node: u32, p: u32) -> u64 {
    let info = cluster.node(node).info();
    let part = info.partitions.iter().find(|r| r.partition == p).unwrap();
    part.history.rolled_back
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_under_writes_loses_no_acknowledged_write() {
    let cluster = control_cluster().await;
    let client = cluster.client();
    // A client whose map will miss the move below.
    let stale = cluster.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = steady_writer(
        client.clone(),
        cluster.map.clone(),
        0,
        "moving",
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (version, behind) = client.move_leader(0, 1, false).await.unwrap();
    assert_eq!(behind, Some(0));
    assert!(client.map().version() >= version);
    assert_eq!(client.map().leader(0), Some(1));
    // Clients whose maps missed the move still read at the leader of now
    // (`AtLeader`: node 0 answers NotLeader), not at node 0 as if it led.
    // Node 1 leads once it applied the new map (its next heartbeat); until
    // then no node leads and reads are answered stale.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster
        .node(1)
        .info()
        .partitions
        .iter()
        .all(|p| p.partition != 0 || p.role != kv_router::Role::Leader)
    {
        assert!(Instant::now() < deadline, "node 1 never led partition 0");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let key = common::key_in(&cluster.map, 0, "ready");
    let at = |node, stale| (node, stale);
    let status = cluster.client().status(key.as_bytes()).await.unwrap();
    assert_eq!(at(status.node, status.stale), (1, false), "status");
    let ttl = cluster.client().ttl(key.as_bytes()).await.unwrap();
    assert_eq!(at(ttl.node, ttl.stale), (1, false), "ttl");
    let mget = cluster.client().mget(&[key.as_bytes()]).await.unwrap();
    assert_eq!(at(mget[0].node, mget[0].stale), (1, false), "mget");
    assert_eq!(mget[0].value.as_ref().map(Value::render), Some("x".into()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.await.unwrap();
    assert!(
        acked.len() > 20,
        "the writer made progress: {}",
        acked.len()
    );
    cluster.wait_replicated(Duration::from_secs(10)).await;
    read_all(&client, &acked).await;
    // The old leader follows without having cut anything.
    assert_eq!(rolled_back(&cluster, 0, 0), 0);
    // Only an in-sync replica may be handed a leadership cleanly.
    let refused = client.move_leader(0, 2, false).await;
    match refused {
        Err(kv_node::Error::Control(message)) => {
            assert_eq!(message, "node 2 holds no replica of partition 0")
        }
        other => panic!("node 2 holds no replica of partition 0: {other:?}"),
    }
    // A client that missed the move asks the leader of now, not node 0.
    assert_eq!(stale.map().leader(0), Some(0));
    let (_, behind) = stale.move_leader(0, 0, false).await.unwrap();
    assert_eq!(behind, Some(0));
    assert_eq!(stale.map().leader(0), Some(0));
    assert_eq!(stale.map().replicas(0), Some(&[0, 1][..]));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controlled_shutdown_under_writes_loses_no_acknowledged_write() {
    let mut cluster = control_cluster().await;
    let client = cluster.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = steady_writer(
        client.clone(),
        cluster.map.clone(),
        0,
        "stopping",
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    cluster.stop(0).await; // NodeHandle::shutdown: hands leaderships over
    let handover = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let acked = writer.await.unwrap();
    eprintln!("controlled shutdown took {handover:?}");
    assert_eq!(client.map().leader(0), Some(1));
    read_all(&client, &acked).await;
    // Back as a follower: nothing of its history was cut.
    cluster.restart(0).await;
    cluster.wait_replicated(Duration::from_secs(15)).await;
    assert_eq!(rolled_back(&cluster, 0, 0), 0);
    read_all(&client, &acked).await;
    cluster.shutdown().await;
}

/// Node 2 alone votes: the controller stays up while nodes 0 and 1 stop,
/// so it still knows the last position node 0 reported.
fn fast_isr(o: &mut NodeOptions) {
    o.control = Some(ControlConfig {
        voters: vec![2],
        ..ControlConfig::default()
    });
    o.replication.replica_lag_max_ms = 300;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_in_sync_replica_only_an_unclean_promotion_elects() {
    let mut cluster = TestCluster::start_with(ClusterConfig::default_topology(), fast_isr).await;
    let client = cluster.client();
    let key = common::key_in(&cluster.map, 0, "lonely");
    let put = |v: &'static str| {
        let client = client.clone();
        let key = key.clone();
        async move { client.put(key.as_bytes(), &Value::from_user_input(v)).await }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while put("first").await.is_err() {
        assert!(Instant::now() < deadline, "partition 0 never took writes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Node 1, partition 0's only follower, stops: the controller records
    // the in-sync set shrinking to the leader alone.
    cluster.stop(1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let info = client.controller().await.unwrap();
        if info.partitions[0].isr == vec![0] {
            break;
        }
        assert!(Instant::now() < deadline, "isr never shrank: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    put("only on node 0").await.unwrap();
    // (a heartbeat reports that write's position to the controller)
    tokio::time::sleep(Duration::from_millis(600)).await;
    let old_end = cluster.position(0, 0).lsn;
    // The leader goes too; node 1 returns, but is not in sync: no election.
    cluster.nodes[0]
        .take()
        .unwrap()
        .shutdown_without_handover()
        .await
        .unwrap();
    cluster.restart(1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.refresh().await;
    assert_eq!(
        client.map().leader(0),
        Some(0),
        "an out-of-sync replica was elected"
    );
    // The operator accepts the loss.
    let own_end = cluster.position(1, 0).lsn;
    let (_, behind) = client.move_leader(0, 1, true).await.unwrap();
    assert!(own_end < old_end, "node 1 missed a write");
    assert_eq!(behind, Some(old_end - own_end), "what node 1 lacked");
    assert_eq!(client.map().leader(0), Some(1));
    put("after promotion").await.unwrap();
    let read = client.get(key.as_bytes()).await.unwrap();
    assert_eq!(
        read.value.map(|v| v.render()),
        Some("after promotion".into())
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_every_node_loses_no_acknowledged_write() {
    let mut cluster = control_cluster().await;
    let client = cluster.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // acks = leader writers on every partition, while each node in turn
    // stops (handing its leaderships over) and comes back.
    let writers: Vec<_> = (0..4)
        .map(|p| {
            steady_writer(
                client.clone(),
                cluster.map.clone(),
                p,
                "rolling",
                stop.clone(),
            )
        })
        .collect();
    for id in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.stop(id).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.restart(id).await;
        cluster.wait_replicated(Duration::from_secs(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 100,
        "the writers made progress: {}",
        acked.len()
    );
    cluster.wait_replicated(Duration::from_secs(20)).await;
    read_all(&client, &acked).await;
    for id in 0..3 {
        for p in cluster.node(id).info().partitions {
            assert_eq!(
                p.history.rolled_back, 0,
                "node {id} partition {}",
                p.partition
            );
        }
    }
    cluster.shutdown().await;
}

/// A leader that stays reachable but lost its lease (here: the controller
/// lost its majority) is waited for by reads, up to `stale_read_after`:
/// when the majority returns in time, the read is the leader's, not a
/// stale fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_waits_for_a_leader_to_regain_its_lease_before_answering_stale() {
    let mut cluster = control_cluster().await;
    let client = cluster.client();
    // partition 0 is led by node 0 (placement)
    let keys = keys_in(&cluster.map, 0, 1, "lease");
    put_named(&client, &keys).await;
    for id in [1, 2] {
        let node = cluster.nodes[id].take().unwrap();
        node.shutdown_without_handover().await.unwrap();
    }
    // Node 0 alone: no controller majority renews its lease.
    let leader = cluster.client().node(0).unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match leader.get_at_leader(keys[0].as_bytes()).await {
            Err(e) if e.is_recovering() => break,
            other => assert!(
                Instant::now() < deadline,
                "node 0 kept serving without a controller majority: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let patient = kv_node::ClusterClient::new(
        cluster.map.clone(),
        kv_node::ClientOptions {
            stale_read_after: Duration::from_secs(60),
            ..kv_node::ClientOptions::default()
        },
    );
    let key = keys[0].clone();
    let read = tokio::spawn(async move { patient.get(key.as_bytes()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!read.is_finished(), "the read did not wait for the leader");
    cluster.restart(1).await;
    cluster.restart(2).await;
    let read = read.await.unwrap().unwrap();
    assert!(!read.stale, "{read:?}");
    assert_eq!(read.value.map(|v| v.render()), Some(keys[0].clone()));
    cluster.shutdown().await;
}

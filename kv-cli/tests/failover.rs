//! Automatic failover with real `kv node` processes (DESIGN §9): a leader
//! killed with SIGKILL under a steady writer, a leader paused past its
//! lease (SIGSTOP), the controller leader killed, two nodes of three down.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::nodes::{WAIT, client, config, sigterm, start_node};
use common::{Running, free_ports, poll};
use kv_codec::Value;
use kv_node::{ClientOptions, ClusterClient, NodeClient};
use kv_router::{AckMode, ClusterConfig, ClusterMap, NodeId, PartitionId, Role};

struct Cluster {
    _dir: tempfile::TempDir,
    nodes: Vec<Running>,
    map: ClusterMap,
    rt: tokio::runtime::Runtime,
}

impl Cluster {
    /// Three `kv node` processes (4 partitions, RF 2, `sync = "always"`)
    /// with `extra` appended to the config, every partition writable.
    fn start(extra: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut text = config(&free_ports(3));
        text.push_str(extra);
        std::fs::write(dir.path().join("cluster.toml"), &text).unwrap();
        let nodes = (0..3).map(|id| start_node(dir.path(), id)).collect();
        let map = ClusterMap::new(&ClusterConfig::from_toml_str(&text).unwrap()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = Cluster {
            _dir: dir,
            nodes,
            map,
            rt,
        };
        let client = cluster.client();
        for p in 0..4 {
            let key = key_in(p, 0, "ready");
            poll(&format!("partition {p} to take writes"), WAIT, || {
                cluster
                    .rt
                    .block_on(client.put(key.as_bytes(), &Value::from_user_input("x")))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            });
        }
        cluster
    }

    fn dir(&self) -> &Path {
        self._dir.path()
    }

    fn client(&self) -> ClusterClient {
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            failover_wait: Duration::from_secs(15),
            ..ClientOptions::default()
        };
        ClusterClient::new(self.map.clone(), options)
    }

    fn node(&self, id: NodeId) -> NodeClient {
        NodeClient::new(id, self.map.addr(id).unwrap(), ClientOptions::default())
    }

    /// The controller leader, once there is one.
    fn controller_leader(&self, client: &ClusterClient) -> NodeId {
        poll("a controller leader", WAIT, || {
            match self.rt.block_on(client.controller()) {
                Ok(info) => info.leader.ok_or(format!("{info:?}")),
                Err(e) => Err(e.to_string()),
            }
        })
    }

    /// Waits until the map shows `p` led by a node other than `old`.
    fn new_leader(&self, client: &ClusterClient, p: PartitionId, old: NodeId) -> NodeId {
        poll(&format!("a new leader of partition {p}"), WAIT, || {
            self.rt.block_on(client.refresh());
            match client.map().leader(p) {
                Some(l) if l != old => Ok(l),
                other => Err(format!("{other:?}")),
            }
        })
    }

    /// Waits until node `id` follows `p` and holds what the leader holds.
    fn wait_follower_caught_up(&self, id: NodeId, p: PartitionId, leader: NodeId) {
        poll(&format!("node {id} to follow partition {p}"), WAIT, || {
            let rt = &self.rt;
            let mine = rt
                .block_on(self.node(id).info())
                .map_err(|e| e.to_string())?;
            let theirs = rt
                .block_on(self.node(leader).info())
                .map_err(|e| e.to_string())?;
            let find = |info: &kv_node::protocol::NodeInfo| {
                info.partitions.iter().find(|r| r.partition == p).cloned()
            };
            match (find(&mine), find(&theirs)) {
                (Some(m), Some(t))
                    if m.role == Role::Follower
                        && t.role == Role::Leader
                        && m.position == t.position =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        })
    }
}

/// The `i`-th key (from `from`) of partition `p`, salted.
fn key_in(p: PartitionId, from: usize, salt: &str) -> String {
    (from..)
        .map(|i| format!("{salt}:{i}"))
        .find(|k| kv_router::partition_for(k.as_bytes(), 4) == p)
        .unwrap()
}

fn keys_in(p: PartitionId, n: usize, salt: &str) -> Vec<String> {
    (0..)
        .map(|i| format!("{salt}:{i}"))
        .filter(|k| kv_router::partition_for(k.as_bytes(), 4) == p)
        .take(n)
        .collect()
}

/// A partition `node` leads in `map`.
fn led_by(map: &ClusterMap, node: NodeId) -> PartitionId {
    (0..map.partition_count())
        .find(|&p| map.leader(p) == Some(node))
        .expect("every node leads a partition")
}

#[test]
fn sigkill_of_the_controller_and_partition_leader_fails_over_without_losing_acks_all_writes() {
    let mut cluster = Cluster::start("\n[replication]\nacks = \"all\"\n");
    let client = cluster.client();
    // The victim leads the controller and a partition: both must move.
    let victim = cluster.controller_leader(&client);
    cluster.rt.block_on(client.refresh());
    let p = led_by(&client.map(), victim);
    let keys = keys_in(p, 400, "order");

    // A steady writer, acks = all; every acknowledged write is recorded.
    let writer = {
        let client = client.clone();
        let keys = keys.clone();
        cluster.rt.spawn(async move {
            let mut acked = Vec::new();
            for (i, k) in keys.iter().enumerate() {
                let value = Value::from_user_input(&format!("v{i}"));
                if client
                    .put_with(k.as_bytes(), &value, Some(AckMode::All))
                    .await
                    .is_ok()
                {
                    acked.push((i, Instant::now()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            acked
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    cluster.nodes[victim as usize].kill();
    let killed = Instant::now();
    let acked = cluster.rt.block_on(writer).unwrap();

    let after: Vec<_> = acked.iter().filter(|(_, at)| *at > killed).collect();
    assert!(
        after.len() > 10,
        "writes to partition {p} must succeed again after the kill: {} acked after",
        after.len()
    );
    eprintln!(
        "first write after the kill: {:?}",
        after.first().map(|(_, at)| at.duration_since(killed))
    );
    let leader = cluster.new_leader(&client, p, victim);
    let controller = cluster.controller_leader(&client);
    assert_ne!(controller, victim, "a new controller leader is elected");

    // The old leader rejoins as a follower and catches up.
    cluster.nodes[victim as usize] = start_node(cluster.dir(), victim as usize);
    cluster.wait_follower_caught_up(victim, p, leader);
    for (i, _) in &acked {
        let read = cluster
            .rt
            .block_on(client.get(keys[*i].as_bytes()))
            .unwrap();
        assert_eq!(
            read.value.map(|v| v.render()),
            Some(format!("v{i}")),
            "acknowledged write {i} of partition {p}"
        );
        assert!(!read.stale);
    }
    // `kv cluster` shows the failed-over partition and the controller.
    let out = client_cluster(cluster.dir());
    assert!(
        out.contains(&format!("partition {p}: leader node {leader} ")),
        "{out}"
    );
    assert!(
        out.contains(&format!("controller: leader node {controller},")),
        "{out}"
    );
    for (id, node) in cluster.nodes.iter_mut().enumerate() {
        sigterm(node, &format!("node {id}"));
    }
}

fn client_cluster(dir: &Path) -> String {
    let out = client(dir, &["cluster"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    out.stdout
}

#[test]
fn a_paused_leader_refuses_writes_at_its_old_epoch_and_rejoins_as_follower() {
    let mut cluster = Cluster::start("");
    let client = cluster.client();
    let controller = cluster.controller_leader(&client);
    // Pause a partition leader that is not the controller leader.
    let victim = (0..3).find(|&n| n != controller).unwrap();
    let p = led_by(&client.map(), victim);
    let key = key_in(p, 0, "paused");
    cluster
        .rt
        .block_on(client.put(key.as_bytes(), &Value::from_user_input("before")))
        .unwrap();

    cluster.nodes[victim as usize].signal("STOP");
    let leader = cluster.new_leader(&client, p, victim);
    cluster
        .rt
        .block_on(client.put(key.as_bytes(), &Value::from_user_input("after")))
        .unwrap();
    cluster.nodes[victim as usize].signal("CONT");

    // Straight to the old leader: refused (its lease lapsed, then it
    // learns it follows), never taken.
    let old = cluster.node(victim);
    for _ in 0..20 {
        let put = cluster.rt.block_on(old.put(
            key.as_bytes(),
            Value::from_user_input("stale").encode().into(),
        ));
        assert!(put.is_err(), "the paused leader took a write: {put:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    cluster.wait_follower_caught_up(victim, p, leader);
    let read = cluster.rt.block_on(client.get(key.as_bytes())).unwrap();
    assert_eq!(read.value.map(|v| v.render()), Some("after".to_string()));
    for (id, node) in cluster.nodes.iter_mut().enumerate() {
        sigterm(node, &format!("node {id}"));
    }
}

#[test]
fn two_nodes_of_three_down_elect_nothing_and_survivors_answer_reads_as_stale() {
    let mut cluster = Cluster::start("");
    let client = cluster.client();
    let keys: Vec<String> = (0..4).map(|p| key_in(p, 0, "kept")).collect();
    for k in &keys {
        cluster
            .rt
            .block_on(client.put(k.as_bytes(), &Value::from_user_input(k)))
            .unwrap();
    }
    // Let the followers catch up before the kills.
    std::thread::sleep(Duration::from_millis(500));
    let survivor: NodeId = 2;
    let before = client.map();
    cluster.nodes[0].kill();
    cluster.nodes[1].kill();
    // Longer than a lease plus its margin: a controller would have acted.
    std::thread::sleep(Duration::from_secs(3));
    let short = ClusterClient::new(
        cluster.map.clone(),
        ClientOptions {
            connect_timeout: Duration::from_millis(300),
            failover_wait: Duration::from_millis(500),
            ..ClientOptions::default()
        },
    );
    for (p, k) in keys.iter().enumerate() {
        let replicas = before.replicas(p as u32).unwrap();
        if !replicas.contains(&survivor) {
            continue;
        }
        let read = cluster.rt.block_on(short.get(k.as_bytes())).unwrap();
        assert_eq!(
            read.value.map(|v| v.render()),
            Some(k.clone()),
            "partition {p}"
        );
        assert!(
            read.stale,
            "partition {p}: a read without a controller is stale"
        );
        assert_eq!(read.node, survivor);
        // No election without a controller majority: the write fails.
        let put = cluster
            .rt
            .block_on(short.put(k.as_bytes(), &Value::from_user_input("new")));
        assert!(put.is_err(), "partition {p} took a write: {put:?}");
    }
    let info = cluster.rt.block_on(short.controller()).unwrap();
    assert_eq!(info.leader, None, "{info:?}");
    sigterm(&mut cluster.nodes[survivor as usize], "the survivor");
}

/// `kv cluster transfer` moves a leadership to an in-sync follower, and a
/// second process sees the move; a node without a replica is refused
/// with the controller's reason and exit code 3.
#[test]
fn kv_cluster_transfer_moves_a_leadership_and_refuses_a_node_without_a_replica() {
    let mut cluster = Cluster::start("");
    let (p, key) = (1, key_in(1, 0, "moved"));
    let replicas = cluster.map.replicas(p).unwrap().to_vec();
    let follower = replicas[1].to_string();
    // Right after the start the follower may not be in sync yet.
    let moved = poll("the transfer", WAIT, || {
        let out = client(cluster.dir(), &["cluster", "transfer", "1", &follower]);
        if out.code == Some(0) {
            Ok(out.stdout)
        } else {
            Err(format!("{out:?}"))
        }
    });
    assert!(
        moved.starts_with(&format!(
            "OK: partition 1 is led by node {follower} (map version "
        )),
        "{moved}"
    );
    let out = client(cluster.dir(), &["put", &key, "after the move"]);
    assert_eq!(out.stdout, "OK\n", "{out:?}");
    let out = client(cluster.dir(), &["status", &key]);
    assert!(
        out.stdout.contains(&format!("leader=node{follower}")),
        "{out:?}"
    );
    let outsider = (0..3).find(|n| !replicas.contains(n)).unwrap();
    let out = client(
        cluster.dir(),
        &["cluster", "transfer", "1", &outsider.to_string()],
    );
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("node {outsider} holds no replica of partition 1")),
        "{out:?}"
    );
    for (id, node) in cluster.nodes.iter_mut().enumerate() {
        sigterm(node, &format!("node {id}"));
    }
}

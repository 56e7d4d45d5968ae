//! An in-process cluster of real node servers on 127.0.0.1 ephemeral ports.
#![allow(dead_code)]

pub mod raw;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kv_node::{ClientOptions, ClusterClient, NodeHandle, NodeOptions, NodeServer};
use kv_router::{ClusterConfig, ClusterMap, NodeId, SyncMode};
use tokio::net::TcpListener;

/// The cluster secret of every test cluster.
pub const TEST_SECRET: &str = "test cluster secret, 32 bytes ok";

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub map: ClusterMap,
    pub nodes: Vec<Option<NodeHandle>>,
    pub tweak: fn(&mut NodeOptions),
}

pub fn no_tweak(_: &mut NodeOptions) {}

impl TestCluster {
    /// The default topology (3 nodes, 4 partitions, RF 2).
    pub async fn start() -> TestCluster {
        Self::start_with(ClusterConfig::default_topology(), no_tweak).await
    }

    pub async fn start_with(mut config: ClusterConfig, tweak: fn(&mut NodeOptions)) -> TestCluster {
        config.storage.sync = SyncMode::Never;
        let mut listeners = Vec::new();
        for n in &mut config.nodes {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            n.addr = l.local_addr().unwrap().to_string();
            listeners.push(l);
        }
        let map = ClusterMap::new(&config).unwrap();
        let mut cluster = TestCluster {
            dir: tempfile::tempdir().unwrap(),
            map,
            nodes: Vec::new(),
            tweak,
        };
        let ids: Vec<NodeId> = cluster.map.nodes().iter().map(|n| n.id).collect();
        for (id, l) in ids.into_iter().zip(listeners) {
            let handle = NodeServer::start(cluster.options(id), l).await.unwrap();
            cluster.nodes.push(Some(handle));
        }
        cluster
    }

    pub fn node_dir(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node_{id}"))
    }

    pub fn options(&self, id: NodeId) -> NodeOptions {
        let mut o = NodeOptions::new(id, self.map.clone(), self.node_dir(id));
        o.storage.sync = SyncMode::Never;
        o.heartbeat_interval = Duration::from_millis(100);
        o.secret = Some(kv_node::ClusterSecret::new(TEST_SECRET).unwrap());
        (self.tweak)(&mut o);
        o
    }

    pub fn client(&self) -> ClusterClient {
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            ..ClientOptions::default()
        };
        ClusterClient::new(self.map.clone(), options)
    }

    pub fn node(&self, id: NodeId) -> &NodeHandle {
        self.nodes[id as usize].as_ref().expect("node is running")
    }

    pub async fn stop(&mut self, id: NodeId) {
        let handle = self.nodes[id as usize].take().expect("node is running");
        handle.shutdown().await.unwrap();
    }

    pub async fn restart(&mut self, id: NodeId) {
        assert!(self.nodes[id as usize].is_none(), "node {id} is running");
        let addr = self.map.addr(id).unwrap().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(&addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("rebinding {addr}: {e}"),
            }
        };
        let handle = NodeServer::start(self.options(id), listener).await.unwrap();
        self.nodes[id as usize] = Some(handle);
    }

    pub async fn shutdown(mut self) {
        for n in self.nodes.iter_mut() {
            if let Some(h) = n.take() {
                h.shutdown().await.unwrap();
            }
        }
    }

    /// Waits until every running follower has acked its leader's position
    /// and every leader is ready.
    pub async fn wait_replicated(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if self.replicated() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replication did not converge: {:#?}",
                self.infos()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn infos(&self) -> Vec<kv_node::protocol::NodeInfo> {
        self.nodes.iter().flatten().map(|h| h.info()).collect()
    }

    fn replicated(&self) -> bool {
        let infos = self.infos();
        let running: Vec<NodeId> = infos.iter().map(|i| i.node).collect();
        infos.iter().flat_map(|i| i.partitions.iter()).all(|p| {
            p.state == kv_node::protocol::ReplicaState::Ready
                && p.followers
                    .iter()
                    .filter(|f| running.contains(&f.node))
                    .all(|f| f.acked.lsn == p.position.lsn)
        })
    }

    /// Position of partition `p` on node `id`.
    pub fn position(&self, id: NodeId, p: u32) -> kv_node::Position {
        self.node(id)
            .info()
            .partitions
            .iter()
            .find(|i| i.partition == p)
            .expect("partition hosted")
            .position
    }

    /// Waits until a led partition accepts writes again.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self
            .infos()
            .iter()
            .flat_map(|i| i.partitions.iter())
            .all(|p| p.state == kv_node::protocol::ReplicaState::Ready)
        {
            assert!(
                Instant::now() < deadline,
                "leaders did not become ready: {:#?}",
                self.infos()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[path = "../workload/keys.rs"]
mod keys;
#[allow(unused_imports)]
pub use keys::keys_in;

/// Writes every key through `client`, each with its own name as its
/// value (V1 text), one after another.
pub async fn put_named<'a>(client: &ClusterClient, keys: impl IntoIterator<Item = &'a String>) {
    for k in keys {
        let value = kv_codec::Value::from_user_input(k);
        client.put(k.as_bytes(), &value).await.unwrap();
    }
}

/// A key whose partition is `p` under `map`.
pub fn key_in(map: &ClusterMap, p: u32, salt: &str) -> String {
    (0..)
        .map(|i| format!("{salt}-{i}"))
        .find(|k| map.partition_of(k.as_bytes()) == p)
        .unwrap()
}

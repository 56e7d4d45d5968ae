//! Spike: real kv nodes (server, replication, optionally the control
//! plane) and a client inside one turmoil simulation, on simulated TCP
//! and time. Built only with feature `sim` (`required-features`).

use std::path::PathBuf;
use std::time::Duration;

use kv_codec::Value;
use kv_node::{ClientOptions, ClusterClient, ClusterSecret, NodeOptions, NodeServer};
use kv_router::{ClusterConfig, ClusterMap, ControlConfig, NodeId, SyncMode};

const PORT: u16 = 7000;
const TEST_SECRET: &str = "test cluster secret, 32 bytes ok";

fn host(id: NodeId) -> String {
    format!("n{id}")
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The default topology (3 nodes, 4 partitions, RF 2) at turmoil host
/// names.
fn map() -> ClusterMap {
    let mut config = ClusterConfig::default_topology();
    config.storage.sync = SyncMode::Never;
    for n in &mut config.nodes {
        n.addr = format!("{}:{PORT}", host(n.id));
    }
    ClusterMap::new(&config).unwrap()
}

fn options(id: NodeId, map: &ClusterMap, dir: &std::path::Path, control: bool) -> NodeOptions {
    let mut o = NodeOptions::new(id, map.clone(), dir.join(format!("node_{id}")));
    o.storage.sync = SyncMode::Never;
    o.heartbeat_interval = Duration::from_millis(100);
    o.secret = Some(ClusterSecret::new(TEST_SECRET).unwrap());
    if control {
        o.control = Some(ControlConfig::default());
    }
    o
}

/// Adds the three node hosts, each running a real `NodeServer` until the
/// simulation ends (or the host is crashed; a bounce starts it again on
/// the same data directory).
fn add_nodes(sim: &mut turmoil::Sim<'_>, map: &ClusterMap, dir: &std::path::Path, control: bool) {
    for n in map.nodes() {
        let id = n.id;
        let map = map.clone();
        let dir: PathBuf = dir.to_path_buf();
        sim.host(host(id), move || {
            let options = options(id, &map, &dir, control);
            async move {
                let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
                let _node = NodeServer::start(options, listener).await?;
                std::future::pending::<()>().await;
                Ok(())
            }
        });
    }
}

fn client(map: &ClusterMap) -> ClusterClient {
    let options = ClientOptions {
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    };
    ClusterClient::new(map.clone(), options)
}

fn sim(seconds: u64, seed: u64) -> turmoil::Sim<'static> {
    turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(seconds))
        .rng_seed(seed)
        .build()
}

/// Three nodes without the control plane; one client puts and gets.
#[test]
fn put_get_without_control_plane() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let map = map();
    let mut sim = sim(60, 1);
    add_nodes(&mut sim, &map, dir.path(), false);
    let c = client(&map);
    sim.client("client", async move {
        for i in 0..20 {
            let key = format!("k{i}");
            let w = c.put(key.as_bytes(), &Value::from_user_input(&format!("v{i}"))).await?;
            let r = c.get(key.as_bytes()).await?;
            assert_eq!(r.value, Some(Value::from_user_input(&format!("v{i}"))), "{w:?}");
        }
        Ok(())
    });
    let started = std::time::Instant::now();
    sim.run().unwrap();
    eprintln!("sim elapsed {:?}, wall {:?}", sim.elapsed(), started.elapsed());
}

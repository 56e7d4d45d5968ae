//! Where commands go: an embedded cluster started in this process, or a
//! running cluster.
//!
//! [`Session::open`] looks, in order, for `--cluster` (or `KV_CLUSTER`: a
//! config file, or `host:port` of any node, whose map is fetched from it),
//! then for the cluster file a running `kv` shell or `kv serve` wrote in
//! the data directory (`<data-dir>/cluster.toml`, with the real ports; it
//! is removed when that process stops, and ignored when the process that
//! wrote it is gone), and only then starts an embedded cluster. A one-shot
//! command only starts one on a data directory that exists: it never
//! creates a cluster ([`Start::ExistingOnly`]); the shell, `kv init` and
//! `kv serve` do.
//!
//! The embedded cluster binds every node's listener first (port 0 unless
//! the config fixes one), publishes the real ports in one
//! [`ClusterMap`], and only then starts the nodes with that map, so every
//! node and the client find each other. Node `N` keeps its data in the
//! config's `data_dir` for it or else in `<data-dir>/node_N`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kv_node::protocol::ReplicaState;
use kv_node::{ClientOptions, ClusterClient, NodeClient, NodeHandle, NodeOptions, NodeServer};
use kv_router::{ClusterConfig, ClusterMap, NodeId, Role};
use tokio::net::TcpListener;
use tracing::warn;

use crate::args::GlobalOpts;
use crate::error::{CliError, one_line};
use crate::security::Security;

/// Where the embedded cluster's RESP listener binds when the config names
/// none.
const EMBEDDED_RESP_ADDR: &str = "127.0.0.1:0";

/// The data directory when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// The file a running embedded cluster writes in its data directory.
pub const CLUSTER_FILE: &str = "cluster.toml";

/// The first line of a cluster file, followed by the writer's pid.
const CLUSTER_FILE_PID: &str = "# pid = ";

/// Whether a command may create a cluster when none is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Start an embedded cluster, creating its data directory if needed.
    Create,
    /// Start one only on an existing data directory; otherwise refuse.
    ExistingOnly,
}

/// How long a freshly started embedded cluster may take until every led
/// partition accepts writes (leaders first ask their followers whether
/// they are behind).
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads and validates a cluster config file; relative `data_dir`s are
/// made relative to the file's directory.
pub fn load_config(path: &Path) -> Result<ClusterConfig, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::Config(format!("cannot read config file {}: {e}", path.display()))
    })?;
    let mut config = ClusterConfig::from_toml_str(&text).map_err(|e| {
        CliError::Config(format!(
            "config file {}: {}",
            path.display(),
            one_line(&e.to_string())
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    config.resolve_data_dirs(base);
    Ok(config)
}

/// The config an embedded cluster or `kv serve` uses: `--config`, or the
/// default topology.
pub fn embedded_config(global: &GlobalOpts) -> Result<ClusterConfig, CliError> {
    match &global.config {
        Some(path) => load_config(path),
        None => Ok(ClusterConfig::default_topology()),
    }
}

/// The data directory of node `id`.
pub fn node_data_dir(config: &ClusterConfig, id: NodeId, data_dir: &Path) -> PathBuf {
    config
        .nodes
        .iter()
        .find(|n| n.id == id)
        .and_then(|n| n.data_dir.clone())
        .unwrap_or_else(|| data_dir.join(format!("node_{id}")))
}

/// Whether any node of `config` already has a data directory.
fn has_data(config: &ClusterConfig, data_dir: &Path) -> bool {
    config.nodes.iter().any(|n| {
        node_data_dir(config, n.id, data_dir)
            .join("LAYOUT")
            .exists()
    })
}

/// Where the nodes keep their data, for people: `./data` when every node
/// is in `<data_dir>/node_N`, else the list of directories.
fn data_description(config: &ClusterConfig, data_dir: &Path) -> String {
    let dirs: Vec<PathBuf> = config
        .nodes
        .iter()
        .map(|n| node_data_dir(config, n.id, data_dir))
        .collect();
    let default = config
        .nodes
        .iter()
        .zip(&dirs)
        .all(|(n, d)| *d == data_dir.join(format!("node_{}", n.id)));
    if default {
        data_dir.display().to_string()
    } else {
        let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        dirs.join(", ")
    }
}

/// The cluster file of a running cluster in `data_dir`, as a config;
/// `None` when there is none or its writer is gone.
fn running_cluster(data_dir: &Path) -> Result<Option<(PathBuf, ClusterConfig)>, CliError> {
    let path = data_dir.join(CLUSTER_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let pid = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix(CLUSTER_FILE_PID));
    let alive = match pid.and_then(|p| p.trim().parse::<u32>().ok()) {
        Some(pid) => process_alive(pid),
        None => true,
    };
    if !alive {
        warn!(
            "ignoring {}: the kv process that wrote it is gone",
            path.display()
        );
        return Ok(None);
    }
    Ok(Some((path.clone(), load_config(&path)?)))
}

/// Whether process `pid` exists (Linux /proc; elsewhere assumed).
fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// A cluster file written by this process, removed when dropped.
pub struct ClusterFile(PathBuf);

impl ClusterFile {
    /// Writes the cluster file of `cluster` into `data_dir`.
    pub fn write(
        config: &ClusterConfig,
        cluster: &Embedded,
        data_dir: &Path,
    ) -> Result<ClusterFile, CliError> {
        let mut running = config.clone();
        running.nodes = cluster.map().nodes().to_vec();
        for node in &mut running.nodes {
            node.data_dir = None;
        }
        let text = format!(
            "{CLUSTER_FILE_PID}{}\n# The cluster a kv process runs from this directory, with its real ports;\n# one-shot kv commands here use it. Removed when that process stops.\n\n{}",
            std::process::id(),
            running.to_toml_string()
        );
        let path = data_dir.join(CLUSTER_FILE);
        std::fs::create_dir_all(data_dir)
            .and_then(|()| std::fs::write(&path, text))
            .map_err(|e| CliError::failed(&format!("writing {}", path.display()), e))?;
        Ok(ClusterFile(path))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ClusterFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The options node `id` runs with: storage from the config, secret and
/// password from `security`, the RESP listener from `resp` when given,
/// else from the node's `resp_addr`.
pub fn node_options(
    config: &ClusterConfig,
    map: &ClusterMap,
    id: NodeId,
    data_dir: &Path,
    resp: Option<&str>,
    security: &Security,
) -> NodeOptions {
    let mut options = NodeOptions::new(id, map.clone(), node_data_dir(config, id, data_dir));
    options.storage = config.storage.clone();
    options.replication = config.replication.clone();
    options.control = config.control.failover.then(|| config.control.clone());
    security.apply(&mut options);
    options.resp_addr = resp.map(str::to_string).or_else(|| {
        let node = config.nodes.iter().find(|n| n.id == id);
        node.and_then(|n| n.resp_addr.clone())
    });
    options
}

/// Node servers running in this process.
pub struct Embedded {
    nodes: Vec<NodeHandle>,
    map: ClusterMap,
    data: String,
    security: Security,
}

impl Embedded {
    /// Binds and starts every node of `config`, data under `data_dir`;
    /// `resp` (if any) is the RESP listener address of the first node.
    /// If one fails to start, the ones already started are shut down.
    pub async fn start(
        config: &ClusterConfig,
        data_dir: &Path,
        resp: Option<&str>,
    ) -> Result<Embedded, CliError> {
        let security = Security::embedded(config)?;
        let mut map = ClusterMap::new(config).map_err(|e| CliError::Config(e.to_string()))?;
        let mut listeners = Vec::new();
        for node in &config.nodes {
            let listener = TcpListener::bind(&node.addr).await.map_err(|e| {
                CliError::failed(&format!("node {}: binding {}", node.id, node.addr), e)
            })?;
            let addr = listener
                .local_addr()
                .map_err(|e| CliError::failed("reading a listener address", e))?;
            map.set_addr(node.id, addr.to_string())
                .map_err(|e| CliError::Config(e.to_string()))?;
            listeners.push((node.id, listener));
        }
        let mut nodes = Vec::new();
        for (i, (id, listener)) in listeners.into_iter().enumerate() {
            let resp = resp.filter(|_| i == 0);
            let options = node_options(config, &map, id, data_dir, resp, &security);
            let local = listener.local_addr();
            if let Some(warning) = local.ok().and_then(|a| security.exposure_warning(a)) {
                eprintln!("{warning}");
            }
            match NodeServer::start(options, listener).await {
                Ok(handle) => nodes.push(handle),
                Err(e) => {
                    shutdown_all(nodes).await;
                    return Err(e.into());
                }
            }
        }
        let data = data_description(config, data_dir);
        let cluster = Embedded {
            nodes,
            map,
            data,
            security,
        };
        cluster.wait_ready().await;
        Ok(cluster)
    }

    /// The map with the real addresses.
    pub fn map(&self) -> &ClusterMap {
        &self.map
    }

    /// Where the nodes keep their data, for people.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The running nodes.
    pub fn nodes(&self) -> &[NodeHandle] {
        &self.nodes
    }

    /// Waits until every led partition takes writes, or the timeout.
    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while !self.all_ready() {
            if Instant::now() > deadline {
                warn!(
                    "some partitions are still recovering; writes to them fail until they are ready"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn all_ready(&self) -> bool {
        self.nodes.iter().all(|n| {
            n.info()
                .partitions
                .iter()
                // A failed partition will not become ready by waiting (its
                // node logged why; `cluster` shows it).
                .all(|p| p.role != Role::Leader || p.state != ReplicaState::Recovering)
        })
    }

    /// Shuts every node down: closes connections, waits for tasks, fsyncs.
    pub async fn shutdown(self) -> Result<(), CliError> {
        let errors = shutdown_all(self.nodes).await;
        match errors.first() {
            None => Ok(()),
            Some(e) => Err(CliError::Failed(e.clone())),
        }
    }
}

/// Shuts nodes down together, returning the errors (each node is
/// tried). The whole cluster stops, so no node hands its leaderships over.
async fn shutdown_all(nodes: Vec<NodeHandle>) -> Vec<String> {
    NodeHandle::shutdown_together(nodes)
        .await
        .into_iter()
        .map(|(id, e)| format!("shutting down node {id}: {e}"))
        .collect()
}

/// A client and, for an embedded cluster, the nodes behind it.
pub struct Session {
    /// Routes requests by the map.
    pub client: ClusterClient,
    /// The options `client` uses (with the password), for more clients.
    pub client_options: ClientOptions,
    /// The nodes started by this process, if any.
    pub embedded: Option<Embedded>,
    /// Where the map came from, for people (remote clusters).
    pub source: String,
}

impl Session {
    /// Connects to `--cluster`, or to the cluster another `kv` runs from
    /// `data_dir`, or starts the embedded cluster (`--config`, defaults)
    /// as `start` allows.
    pub async fn open(
        global: &GlobalOpts,
        data_dir: &Path,
        start: Start,
    ) -> Result<Session, CliError> {
        if let Some(target) = &global.cluster {
            let (map, options) = remote_map(target).await?;
            return Ok(Session::remote(map, options, target.clone()));
        }
        if let Some((path, config)) = running_cluster(data_dir)? {
            let map = ClusterMap::new(&config).map_err(|e| CliError::Config(e.to_string()))?;
            let options = Security::from_config(&config)?.client_options();
            return Ok(Session::remote(map, options, path.display().to_string()));
        }
        let config = embedded_config(global)?;
        if start == Start::ExistingOnly && !has_data(&config, data_dir) {
            return Err(CliError::Usage(format!(
                "no cluster here (no {} and no data in {}): run kv (or kv init) to start one, or pass --cluster FILE|HOST:PORT",
                data_dir.join(CLUSTER_FILE).display(),
                data_dir.display()
            )));
        }
        // Redis clients can reach the embedded cluster too: one RESP
        // listener on a free loopback port unless the config names some.
        let configured = config.nodes.iter().any(|n| n.resp_addr.is_some());
        let resp = (!configured).then_some(EMBEDDED_RESP_ADDR);
        let embedded = Embedded::start(&config, data_dir, resp).await?;
        let client_options = embedded.security.client_options();
        Ok(Session {
            client: ClusterClient::new(embedded.map().clone(), client_options.clone()),
            client_options,
            embedded: Some(embedded),
            source: String::new(),
        })
    }

    fn remote(map: ClusterMap, client_options: ClientOptions, source: String) -> Session {
        Session {
            client: ClusterClient::new(map, client_options.clone()),
            client_options,
            embedded: None,
            source,
        }
    }

    /// Nodes that do not answer, as `node N: error` lines; an error when
    /// none answers.
    pub async fn down_nodes(&self) -> Result<Vec<String>, CliError> {
        let infos = self.client.cluster_info().await;
        let down: Vec<String> = infos
            .iter()
            .filter_map(|(id, r)| r.as_ref().err().map(|e| format!("node {id} DOWN: {e}")))
            .collect();
        if !infos.is_empty() && down.len() == infos.len() {
            return Err(CliError::Failed(format!(
                "no node of the cluster in {} answers: {}",
                self.source,
                down.join("; ")
            )));
        }
        Ok(down)
    }

    /// Shuts the embedded cluster down, if there is one.
    pub async fn close(self) -> Result<(), CliError> {
        match self.embedded {
            Some(e) => e.shutdown().await,
            None => Ok(()),
        }
    }

    /// The RESP listeners of the embedded nodes, as `node N ADDR`.
    pub fn resp_addrs(&self) -> Vec<String> {
        let nodes = self.embedded.iter().flat_map(|e| e.nodes());
        nodes
            .filter_map(|n| n.resp_addr().map(|a| format!("node {} {a}", n.id())))
            .collect()
    }

    /// One line saying what this session talks to.
    pub fn describe(&self) -> String {
        let map = self.client.map();
        let shape = format!(
            "{} nodes, {} partitions, replication factor {}",
            map.nodes().len(),
            map.partition_count(),
            map.replication_factor()
        );
        match &self.embedded {
            Some(_) => format!("embedded cluster: {shape}"),
            None => format!("cluster from {}: {shape}", self.source),
        }
    }
}

/// The map of `--cluster TARGET` and the client options to use with it: a
/// config file (its `[security]`, overridden by the environment), or
/// `host:port` of a node asked for its map (the password from
/// `KV_PASSWORD`).
async fn remote_map(target: &str) -> Result<(ClusterMap, ClientOptions), CliError> {
    let path = Path::new(target);
    if path.is_file() {
        let config = load_config(path)?;
        let options = Security::from_config(&config)?.client_options();
        let map = ClusterMap::new(&config).map_err(|e| CliError::Config(e.to_string()))?;
        return Ok((map, options));
    }
    let looks_like_addr = target
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !looks_like_addr {
        return Err(CliError::Config(format!(
            "--cluster {target}: no such file, and not host:port"
        )));
    }
    let options = Security::from_env()?.client_options();
    let map = NodeClient::new(0, target, options.clone())
        .cluster_map()
        .await
        .map_err(|e| CliError::failed(&format!("fetching the cluster map from {target}"), e))?;
    Ok((map, options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv_codec::Value;

    /// The embedded cluster runs the control plane: one of its nodes
    /// stopping (here without handing anything over, as a crash would)
    /// leaves every partition writable once the controller has elected new
    /// leaders.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_go_on_when_an_embedded_node_stops() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClusterConfig::default_topology();
        let mut embedded = Embedded::start(&config, dir.path(), None).await.unwrap();
        let options = ClientOptions {
            failover_wait: Duration::from_secs(15),
            ..embedded.security.client_options()
        };
        let client = ClusterClient::new(embedded.map().clone(), options);
        let keys: Vec<String> = (0..40).map(|i| format!("before:{i}")).collect();
        for k in &keys {
            let value = Value::from_user_input(k);
            let all = Some(kv_router::AckMode::All);
            client.put_with(k.as_bytes(), &value, all).await.unwrap();
        }
        // Node 0 leads partitions 0 and 3.
        let node0 = embedded.nodes.remove(0);
        assert_eq!(node0.id(), 0);
        node0.shutdown_without_handover().await.unwrap();
        for i in 0..40 {
            let k = format!("after:{i}");
            client
                .put(k.as_bytes(), &Value::from_user_input(&k))
                .await
                .unwrap();
        }
        for p in [0, 3] {
            let leader = client.map().leader(p);
            assert!(leader.is_some_and(|l| l != 0), "partition {p}: {leader:?}");
        }
        for k in &keys {
            let read = client.get(k.as_bytes()).await.unwrap();
            assert_eq!(read.value.map(|v| v.render()).as_ref(), Some(k));
        }
        embedded.shutdown().await.unwrap();
    }
}

//! Where commands go: an embedded cluster started in this process, or a
//! running cluster named by a config file.
//!
//! The embedded cluster binds every node's listener first (port 0 unless
//! the config fixes one), publishes the real ports in one
//! [`ClusterMap`], and only then starts the nodes with that map, so every
//! node and the client find each other. Node `N` keeps its data in the
//! config's `data_dir` for it or else in `<data-dir>/node_N`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kv_node::protocol::ReplicaState;
use kv_node::{ClientOptions, ClusterClient, NodeHandle, NodeOptions, NodeServer};
use kv_router::{ClusterConfig, ClusterMap, NodeId, Role};
use tokio::net::TcpListener;
use tracing::warn;

use crate::args::GlobalOpts;
use crate::error::{CliError, one_line};
use crate::security::Security;

/// The data directory when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "./data";

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

/// Node servers running in this process.
pub struct Embedded {
    nodes: Vec<NodeHandle>,
    map: ClusterMap,
    security: Security,
}

impl Embedded {
    /// Binds and starts every node of `config`, data under `data_dir`.
    /// If one fails to start, the ones already started are shut down.
    pub async fn start(config: &ClusterConfig, data_dir: &Path) -> Result<Embedded, CliError> {
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
        for (id, listener) in listeners {
            let mut options =
                NodeOptions::new(id, map.clone(), node_data_dir(config, id, data_dir));
            options.storage = config.storage.clone();
            security.apply(&mut options);
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
        let cluster = Embedded {
            nodes,
            map,
            security,
        };
        cluster.wait_ready().await;
        Ok(cluster)
    }

    /// The map with the real addresses.
    pub fn map(&self) -> &ClusterMap {
        &self.map
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
                .all(|p| p.role != Role::Leader || p.state == ReplicaState::Ready)
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

/// Shuts nodes down, returning the errors (each node is tried).
async fn shutdown_all(nodes: Vec<NodeHandle>) -> Vec<String> {
    let mut errors = Vec::new();
    for node in nodes {
        let id = node.id();
        if let Err(e) = node.shutdown().await {
            errors.push(format!("shutting down node {id}: {e}"));
        }
    }
    errors
}

/// A client and, for an embedded cluster, the nodes behind it.
pub struct Session {
    /// Routes requests by the map.
    pub client: ClusterClient,
    /// The options `client` uses (with the password), for more clients.
    pub client_options: ClientOptions,
    /// The nodes started by this process, if any.
    pub embedded: Option<Embedded>,
}

impl Session {
    /// Connects to `--cluster`, or starts the embedded cluster (`--config`,
    /// `--data-dir`, defaults).
    pub async fn open(global: &GlobalOpts, default_data_dir: &Path) -> Result<Session, CliError> {
        if let Some(path) = &global.cluster {
            let config = load_config(path)?;
            let map = ClusterMap::new(&config).map_err(|e| CliError::Config(e.to_string()))?;
            let client_options = Security::from_config(&config)?.client_options();
            return Ok(Session {
                client: ClusterClient::new(map, client_options.clone()),
                client_options,
                embedded: None,
            });
        }
        let config = embedded_config(global)?;
        let data_dir = global.data_dir.as_deref().unwrap_or(default_data_dir);
        let embedded = Embedded::start(&config, data_dir).await?;
        let client_options = embedded.security.client_options();
        Ok(Session {
            client: ClusterClient::new(embedded.map().clone(), client_options.clone()),
            client_options,
            embedded: Some(embedded),
        })
    }

    /// Shuts the embedded cluster down, if there is one.
    pub async fn close(self) -> Result<(), CliError> {
        match self.embedded {
            Some(e) => e.shutdown().await,
            None => Ok(()),
        }
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
            None => format!("cluster: {shape}"),
        }
    }
}

//! The servers under test: redis-server as a child process, a kv node
//! in-process on its own tokio runtime (framed and RESP2 listeners).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kv_node::{NodeHandle, NodeOptions, NodeServer};
use kv_router::{ClusterConfig, ClusterMap, SyncMode};
use tempfile::TempDir;
use tokio::runtime::Runtime;

use crate::conn::{Conn, Proto, Reply};

/// A port that was free a moment ago.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A redis-server child on 127.0.0.1; killed when dropped.
pub struct Redis {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Its port, for redis-benchmark.
    pub port: u16,
    _dir: TempDir,
}

impl Redis {
    /// Starts `redis-server --save '' --appendonly no` plus `extra`.
    pub fn start(extra: &[&str], base: &std::path::Path) -> Result<Redis> {
        let dir = tempfile::Builder::new().prefix("redis-").tempdir_in(base)?;
        let port = free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (apt-get install -y redis-server)")?;
        Ok(Redis {
            child,
            addr: format!("127.0.0.1:{port}"),
            port,
            _dir: dir,
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Partitions of every kv node started ([`set_partitions`]; default 4).
static PARTITIONS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(4);

/// Sets the partition count of the kv nodes started from now on
/// (`--partitions N`).
pub fn set_partitions(n: u32) {
    PARTITIONS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// One kv node (RF 1, 4 partitions unless `--partitions` says otherwise)
/// serving from its own runtime.
pub struct Kv {
    handle: Option<NodeHandle>,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// The RESP2 listener's port.
    pub resp_port: u16,
    _dir: TempDir,
}

impl Kv {
    /// Starts a node with the given sync mode (interval = every 1000 ms).
    pub fn start(rt: &Runtime, sync: SyncMode, base: &std::path::Path) -> Result<Kv> {
        let dir = tempfile::Builder::new().prefix("kv-").tempdir_in(base)?;
        let data = dir.path().join("node_0");
        let (handle, addr) = rt.block_on(async move {
            let mut config = ClusterConfig::default_topology();
            config.nodes.truncate(1);
            config.replication_factor = 1;
            config.partitions = PARTITIONS.load(std::sync::atomic::Ordering::Relaxed);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?.to_string();
            let mut map = ClusterMap::new(&config)?;
            map.set_addr(0, addr.clone())?;
            let mut options = NodeOptions::new(0, map, data);
            options.storage.sync = sync;
            options.storage.sync_interval_ms = 1000;
            options.resp_addr = Some("127.0.0.1:0".into());
            let node = NodeServer::start(options, listener).await?;
            anyhow::Ok((node, addr))
        })?;
        let resp_port = handle.resp_addr().map_or(0, |a| a.port());
        Ok(Kv {
            handle: Some(handle),
            addr,
            resp_port,
            _dir: dir,
        })
    }

    /// Graceful shutdown (stores synced, hint files written).
    pub fn stop(mut self, rt: &Runtime) -> Result<()> {
        if let Some(h) = self.handle.take() {
            rt.block_on(h.shutdown())?;
        }
        Ok(())
    }
}

/// Waits until a server answers PING (redis needs a moment to start).
pub async fn wait_ready(proto: Proto, addr: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = async {
            let mut c = Conn::connect(proto, addr).await?;
            c.push_ping();
            c.flush().await?;
            c.read().await
        };
        match attempt.await {
            Ok(Reply::Pong) => return Ok(()),
            Ok(other) if Instant::now() > deadline => bail!("{addr}: PING answered {other:?}"),
            Err(e) if Instant::now() > deadline => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

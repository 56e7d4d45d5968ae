//! The three `kv node` processes under test: their config, the guard that
//! kills them, and the checks that say the cluster is healthy again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use kv_node::ClusterClient;
use kv_node::protocol::{NodeInfo, PartitionInfo, ReplicaState};
use kv_router::{NodeId, PartitionId, Role};

/// Nodes in the cluster.
pub const NODES: usize = 3;
/// Partitions in the cluster.
pub const PARTITIONS: u32 = 4;
/// How often a wait polls.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The cluster config: [`NODES`] nodes on free ports of 127.0.0.1,
/// [`PARTITIONS`] partitions, replication factor 2, fsync on every write,
/// `acks` as given, the control plane's defaults (lease 1 s, margin 0.5 s).
pub fn config(acks: &str) -> Result<String> {
    let mut text = format!(
        "partitions = {PARTITIONS}\nreplication_factor = 2\n\n[storage]\nsync = \"always\"\n\n\
         [replication]\nacks = \"{acks}\"\n"
    );
    for (id, port) in free_ports(NODES)?.iter().enumerate() {
        text.push_str(&format!(
            "\n[[nodes]]\nid = {id}\naddr = \"127.0.0.1:{port}\"\ndata_dir = \"data/node_{id}\"\n"
        ));
    }
    Ok(text)
}

/// `n` ports that were free a moment ago (bound all at once: distinct).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("binding a free port on 127.0.0.1")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The `kv node` processes, killed (SIGKILL) when this is dropped, also on
/// an error or a panic. A node's stderr goes to `node_<id>.log` in the
/// directory, appended to across restarts.
pub struct Nodes {
    kv: PathBuf,
    dir: PathBuf,
    children: Vec<Option<Child>>,
}

impl Nodes {
    /// Starts every node of `dir/cluster.toml` with the binary `kv`.
    pub fn start_all(kv: &Path, dir: &Path) -> Result<Nodes> {
        let mut nodes = Nodes {
            kv: kv.to_path_buf(),
            dir: dir.to_path_buf(),
            children: (0..NODES).map(|_| None).collect(),
        };
        for id in 0..NODES {
            nodes.start(id)?;
        }
        Ok(nodes)
    }

    /// Starts node `id` (which must not be running).
    pub fn start(&mut self, id: usize) -> Result<()> {
        let log = self.log(id)?;
        let child = Command::new(&self.kv)
            .args(["node", "--config", "cluster.toml", "--id", &id.to_string()])
            .current_dir(&self.dir)
            .env("RUST_LOG", "info,openraft=error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} node --id {id}", self.kv.display()))?;
        self.children[id] = Some(child);
        Ok(())
    }

    fn log(&self, id: usize) -> Result<File> {
        let path = self.dir.join(format!("node_{id}.log"));
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }

    /// SIGKILL to node `id`, then reaps it.
    pub fn kill(&mut self, id: usize) {
        if let Some(mut child) = self.children[id].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`) to node `id` with kill(1).
    pub fn signal(&self, id: usize, signal: &str) -> Result<()> {
        let child = self.children[id]
            .as_ref()
            .ok_or_else(|| anyhow!("node {id} is not running"))?;
        let status = Command::new("kill")
            .args([format!("-{signal}"), child.id().to_string()])
            .status()
            .context("running kill(1)")?;
        if !status.success() {
            bail!("kill -{signal} node {id}: {status}");
        }
        Ok(())
    }

    /// The nodes that exited by themselves since the last call, with how.
    pub fn exited(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut gone = Vec::new();
        for (id, slot) in self.children.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = slot.as_mut().map(Child::try_wait) {
                gone.push((id, status));
                *slot = None;
            }
        }
        gone
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for id in 0..self.children.len() {
            self.kill(id);
        }
    }
}

/// Every node's info, or why not.
async fn infos(client: &ClusterClient) -> Result<BTreeMap<NodeId, NodeInfo>, String> {
    let mut all = BTreeMap::new();
    for (id, info) in client.cluster_info().await {
        all.insert(id, info.map_err(|e| format!("node {id}: {e}"))?);
    }
    Ok(all)
}

fn partition(
    infos: &BTreeMap<NodeId, NodeInfo>,
    node: NodeId,
    p: PartitionId,
) -> Result<&PartitionInfo, String> {
    infos
        .get(&node)
        .and_then(|i| i.partitions.iter().find(|r| r.partition == p))
        .ok_or_else(|| format!("node {node} does not host partition {p}"))
}

/// Ok when the cluster is healthy: every node answers `info`; the
/// controller has a leader; every partition's leader (as the newest map
/// says) is a Ready leader; every follower is a Ready follower holding at
/// least what the leader held a moment before (or, under load, in the
/// leader's in-sync set and connected); the controller's in-sync
/// set of every partition is all its replicas. Err says what is not.
pub async fn health(client: &ClusterClient) -> Result<(), String> {
    client.refresh().await;
    let map = client.map();
    let before = infos(client).await?;
    let control = client
        .controller()
        .await
        .map_err(|e| format!("controller: {e}"))?;
    if control.leader.is_none() {
        return Err("the controller has no leader".into());
    }
    let after = infos(client).await?;
    for p in 0..map.partition_count() {
        let replicas = map.replicas(p).unwrap_or(&[]);
        let (&leader, followers) = replicas
            .split_first()
            .ok_or_else(|| format!("partition {p} has no replicas"))?;
        let led = partition(&before, leader, p)?;
        if led.role != Role::Leader || led.state != ReplicaState::Ready {
            return Err(format!(
                "partition {p}: leader node {leader} is {:?} {:?}",
                led.role, led.state
            ));
        }
        for &f in followers {
            let copy = partition(&after, f, p)?;
            // Under a full write load an acks = leader follower may stay a
            // few entries behind: then the leader's in-sync flag decides.
            let in_sync = led
                .followers
                .iter()
                .any(|x| x.node == f && x.connected && x.in_sync);
            let ready = copy.role == Role::Follower && copy.state == ReplicaState::Ready;
            if !ready || (copy.position < led.position && !in_sync) {
                return Err(format!(
                    "partition {p}: follower node {f} is {:?} {:?} at {:?}, leader was at {:?}",
                    copy.role, copy.state, copy.position, led.position
                ));
            }
        }
        let view = control.partitions.iter().find(|v| v.partition == p);
        let mut isr = view.map(|v| v.isr.clone()).unwrap_or_default();
        isr.sort_unstable();
        let mut all = replicas.to_vec();
        all.sort_unstable();
        if isr != all {
            return Err(format!(
                "partition {p}: controller in-sync set {isr:?}, replicas {all:?}"
            ));
        }
    }
    Ok(())
}

/// Why replicas could not be found in agreement.
#[derive(Debug, Clone)]
pub enum Disagreement {
    /// Replicas of a partition report different positions or key counts.
    Differ(String),
    /// A node did not answer: agreement could not be checked.
    Unchecked(String),
}

/// Ok when every partition's replicas report the same position (epoch,
/// LSN) and key count; Err lists the differences.
pub async fn replicas_agree(client: &ClusterClient) -> Result<(), Disagreement> {
    client.refresh().await;
    let map = client.map();
    let all = infos(client).await.map_err(Disagreement::Unchecked)?;
    let mut differ = Vec::new();
    for p in 0..map.partition_count() {
        let mut seen = Vec::new();
        for &node in map.replicas(p).unwrap_or(&[]) {
            let r = partition(&all, node, p).map_err(Disagreement::Unchecked)?;
            seen.push((node, r.position, r.keys));
        }
        if seen
            .windows(2)
            .any(|w| (w[0].1, w[0].2) != (w[1].1, w[1].2))
        {
            let text: Vec<String> = seen
                .iter()
                .map(|(n, pos, keys)| {
                    format!("node {n} at ({}, {}) with {keys} keys", pos.epoch, pos.lsn)
                })
                .collect();
            differ.push(format!("partition {p}: {}", text.join(", ")));
        }
    }
    if differ.is_empty() {
        Ok(())
    } else {
        Err(Disagreement::Differ(differ.join(
            "
",
        )))
    }
}

/// Polls `check` until it is Ok or `timeout` passes; Err is its last
/// complaint.
pub async fn wait_until<F, Fut, E>(timeout: Duration, mut check: F) -> Result<Duration, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return Ok(start.elapsed()),
            Err(why) if start.elapsed() > timeout => return Err(why),
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

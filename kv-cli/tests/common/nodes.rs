//! `kv node` processes from one `cluster.toml` (3 nodes, 4 partitions,
//! replication factor 2, `sync = "always"`): node 1 leads partition 1
//! (followed by node 2) and follows partitions 0 and 3.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::{Output, Running, kv, run};

/// How long a node may take to stop, or the cluster to converge.
pub const WAIT: Duration = Duration::from_secs(30);

/// The cluster config for nodes listening on `ports`.
pub fn config(ports: &[u16]) -> String {
    let mut text =
        String::from("partitions = 4\nreplication_factor = 2\n\n[storage]\nsync = \"always\"\n");
    for (id, port) in ports.iter().enumerate() {
        text.push_str(&format!(
            "\n[[nodes]]\nid = {id}\naddr = \"127.0.0.1:{port}\"\ndata_dir = \"data/node_{id}\"\n"
        ));
    }
    text
}

/// [`config`] without the control plane: the map never changes, a dead
/// leader's partitions refuse writes until it returns.
#[allow(dead_code)]
pub fn static_config(ports: &[u16]) -> String {
    config(ports) + "\n[control]\nfailover = false\n"
}

/// Stops a node with SIGTERM and checks it exits cleanly.
pub fn sigterm(node: &mut Running, what: &str) {
    node.signal("TERM");
    let exit = node
        .wait_for(WAIT)
        .unwrap_or_else(|| panic!("{what} did not stop"));
    assert!(exit.success(), "{what}: {exit:?}");
}

/// Starts node `id`, its log (stderr) in `node_<id>.log`.
pub fn start_node(dir: &Path, id: usize) -> Running {
    let log = std::fs::File::create(dir.join(format!("node_{id}.log"))).unwrap();
    let mut cmd = kv(dir);
    cmd.args(["node", "--config", "cluster.toml", "--id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(log);
    Running::spawn(cmd)
}

/// Runs `kv --cluster cluster.toml args...`.
pub fn client(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["--cluster", "cluster.toml"];
    all.extend_from_slice(args);
    run(dir, &all, "")
}

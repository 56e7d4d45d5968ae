//! `kv node` (one node of a config, in the foreground) and `kv serve`
//! (every node of a config in this process, which writes the cluster file
//! `<data-dir>/cluster.toml` as the shell does). Both run until SIGINT or
//! SIGTERM and then shut down cleanly: connections closed, tasks joined,
//! stores fsynced.

use std::path::Path;

use kv_node::{NodeHandle, NodeServer};
use kv_router::ClusterMap;

use crate::args::{GlobalOpts, NodeArgs};
use crate::cluster::{self, Embedded};
use crate::error::CliError;
use crate::security::Security;
use crate::signals::Signals;

/// Runs node `id` of `--config` until a signal.
pub async fn node(global: &GlobalOpts, args: &NodeArgs, data_dir: &Path) -> Result<(), CliError> {
    // Before any node starts: a node takes requests as soon as it listens,
    // and a signal sent once it answers must stop it cleanly.
    let signals = Signals::interrupt_or_terminate()?;
    let id = args.id;
    let Some(path) = &global.config else {
        return Err(CliError::Usage(
            "kv node needs --config FILE (the cluster config naming every node)".into(),
        ));
    };
    let config = cluster::load_config(path)?;
    let map = ClusterMap::new(&config).map_err(|e| CliError::Config(e.to_string()))?;
    if map.node(id).is_none() {
        return Err(CliError::Usage(format!(
            "node {id} is not in {}; its [[nodes]] ids are {}",
            path.display(),
            ids(&map)
        )));
    }
    let dir = cluster::node_data_dir(&config, id, data_dir);
    let security = Security::from_config(&config)?;
    let options =
        cluster::node_options(&config, &map, id, data_dir, args.resp.as_deref(), &security);
    let handle = NodeServer::bind(options).await?;
    if let Some(warning) = security.exposure_warning(handle.local_addr()) {
        eprintln!("{warning}");
    }
    // The roles the node opened its replicas in: the config's, or the
    // control plane's last map (a leadership may have moved since).
    let roles: Vec<String> = handle
        .info()
        .partitions
        .iter()
        .map(|p| format!("{} ({})", p.partition, p.role))
        .collect();
    eprintln!(
        "node {id} listening on {}{}, data in {}, partitions {}",
        handle.local_addr(),
        resp_part(&handle),
        dir.display(),
        roles.join(", ")
    );
    signals.wait().await;
    handle.shutdown().await?;
    eprintln!("node {id} stopped");
    Ok(())
}

/// `, RESP on ADDR` when the node serves RESP.
fn resp_part(node: &NodeHandle) -> String {
    node.resp_addr()
        .map(|a| format!(", RESP on {a}"))
        .unwrap_or_default()
}

fn ids(map: &ClusterMap) -> String {
    let ids: Vec<String> = map.nodes().iter().map(|n| n.id.to_string()).collect();
    ids.join(", ")
}

/// Runs every node of `--config` (or of the default topology) until a
/// signal.
pub async fn serve(
    global: &GlobalOpts,
    resp: Option<&str>,
    data_dir: &Path,
) -> Result<(), CliError> {
    // Before any node starts: a node takes requests as soon as it listens,
    // and a signal sent once it answers must stop it cleanly.
    let signals = Signals::interrupt_or_terminate()?;
    let config = cluster::embedded_config(global)?;
    let cluster = Embedded::start(&config, data_dir, resp).await?;
    for node in cluster.nodes() {
        eprintln!(
            "node {} listening on {}{}",
            node.id(),
            node.local_addr(),
            resp_part(node)
        );
    }
    let file = cluster::ClusterFile::write(&config, &cluster, data_dir)?;
    eprintln!(
        "data in {}; cluster file {} (kv commands in this directory use it)",
        cluster.data(),
        file.path().display()
    );
    signals.wait().await;
    drop(file);
    cluster.shutdown().await?;
    eprintln!("stopped");
    Ok(())
}

//! Opening the partitions a node hosts, and what happens to one that fails.
//!
//! One damaged store must not take the node's other partitions down with
//! it, nor be served as if it were whole. At start, each partition's store
//! is opened on its own:
//!
//! - It opens: a [`Replica`], served as usual. A torn tail its recovery cut
//!   is logged (by kv-storage) and reported by `info` as
//!   `truncated_tail_bytes`.
//! - It is *corrupted* ([`kv_storage::Error::Corrupted`]) and this node is a
//!   **follower** with a leader elsewhere: the damaged directory is renamed
//!   to `partition_<p>.damaged-<unix seconds>` (kept for a human: never
//!   deleted), a fresh store is opened in its place, and the replica starts
//!   `Recovering`: it resyncs from its leader (history or snapshot, as any
//!   follower that is far behind) and serves reads only once it has caught
//!   up. The full resync is counted and logged with its reason.
//! - Anything else (a corrupted **leader**, whose followers may be behind
//!   it, so no peer is known to hold its history; an I/O error, which may
//!   be transient): the partition is reported as *failed* — `info` lists it
//!   with the error, requests for it get a `Storage` error naming it — and
//!   the node serves its other partitions. A human repairs or moves the
//!   directory and restarts the node.
//! - Another process holds a store's lock: the node refuses to start, as
//!   two nodes on one data directory is a configuration error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kv_router::{ClusterMap, PartitionId, Role};
use kv_storage::{HotCache, Store};
use tracing::{error, warn};

use crate::error::{Error, Result};
use crate::layout::{self, Layout};
use crate::options::NodeOptions;
use crate::replica::Replica;

/// A hosted partition whose store could not be opened.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub role: Role,
    /// The error, as text (shown by `info` and in error replies).
    pub problem: String,
}

/// The node's partitions after opening.
pub(crate) struct Hosted {
    pub replicas: BTreeMap<PartitionId, Arc<Replica>>,
    pub failed: BTreeMap<PartitionId, Failed>,
}

/// Opens every partition this node hosts (blocking), in the roles `roles`
/// gives them (the config's map, or the control plane's last one; the data
/// directory's layout is checked against the config's).
pub(crate) fn open(options: &NodeOptions, roles: &ClusterMap) -> Result<Hosted> {
    layout::check_or_record(&options.data_dir, &Layout::of(&options.map))?;
    let cache = HotCache::new(options.storage.hot_capacity_bytes);
    let mut hosted = Hosted {
        replicas: BTreeMap::new(),
        failed: BTreeMap::new(),
    };
    for (p, role) in roles.partitions_of(options.id) {
        let has_leader = roles.leader(p).is_some_and(|leader| leader != options.id);
        match open_one(options, &cache, p, role, has_leader)? {
            Ok(replica) => {
                hosted.replicas.insert(p, Arc::new(replica));
            }
            Err(failed) => {
                hosted.failed.insert(p, failed);
            }
        }
    }
    Ok(hosted)
}

/// The directory of partition `p`.
pub(crate) fn partition_dir(options: &NodeOptions, p: PartitionId) -> PathBuf {
    options.data_dir.join(format!("partition_{p}"))
}

/// Opens one partition: its replica, or why it is failed. Errors that stop
/// the node (a locked directory, a failed move) are the outer `Err`.
fn open_one(
    options: &NodeOptions,
    cache: &HotCache,
    p: PartitionId,
    role: Role,
    has_leader: bool,
) -> Result<std::result::Result<Replica, Failed>> {
    let dir = partition_dir(options, p);
    let opened = Store::open(&dir, options.store_options(cache));
    let e = match opened {
        Ok(store) => return Ok(Ok(Replica::new(p, role, store, options.backlog_bytes))),
        Err(e @ kv_storage::Error::Locked { .. }) => return Err(e.into()),
        Err(e) => e,
    };
    error!(node = options.id, partition = p, ?role, error = %e, "partition store failed to open");
    let resync = role == Role::Follower && has_leader;
    if !(resync && matches!(e, kv_storage::Error::Corrupted { .. })) {
        let problem = format!("store failed to open: {e}");
        return Ok(Err(Failed { role, problem }));
    }
    let aside = move_aside(&dir)?;
    let store = Store::open(&dir, options.store_options(cache))?;
    let replica = Replica::new(p, role, store, options.backlog_bytes);
    replica.machine().set_resyncing(true);
    replica.count_full_resync();
    replica.set_problem(format!(
        "damaged store moved to {} ({e}); resyncing from the leader",
        aside.display()
    ));
    warn!(node = options.id, partition = p, moved_to = %aside.display(), "full resync: damaged follower store moved aside; resyncing from the leader");
    Ok(Ok(replica))
}

/// Renames a damaged store directory out of the way (never deletes it).
fn move_aside(dir: &Path) -> Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let name = dir
        .file_name()
        .map_or_else(|| "partition".into(), |n| n.to_string_lossy().into_owned());
    let mut aside = dir.with_file_name(format!("{name}.damaged-{secs}"));
    let mut n = 1;
    while aside.exists() {
        aside = dir.with_file_name(format!("{name}.damaged-{secs}-{n}"));
        n += 1;
    }
    std::fs::rename(dir, &aside)
        .map_err(|e| Error::io(format!("moving {} aside", dir.display()), e))?;
    // The rename is durable before a fresh store is created in its place.
    if let Some(parent) = dir.parent() {
        kv_storage::durable::sync_dir(parent)?;
    }
    Ok(aside)
}

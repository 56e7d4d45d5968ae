//! The divergence regression of issue 10: a leader restarts *behind* (the
//! tail it acknowledged under `sync = "interval"` is lost) while its
//! follower is unreachable, takes new writes at LSNs the follower already
//! holds, and the follower comes back. Both must end with the leader's
//! history; the follower's extra entries go to a rollback file.
//!
//! Before leader epochs and log matching, the follower resumed after its
//! own LSN and kept the lost entries under the same positions forever.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{TestCluster, keys_in, put_named};
use kv_codec::Value;

const CONVERGE: Duration = Duration::from_secs(30);

/// Lengths of the log segment files of a store directory.
fn segment_lengths(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_log = name.starts_with("segment-") && name.ends_with(".log");
            is_log.then(|| (name, e.metadata().unwrap().len()))
        })
        .collect();
    files.sort();
    files
}

/// Cuts a (closed) store's log back to the lengths recorded earlier, as a
/// crash under `sync = "interval"` would: newer segments vanish, hint
/// files go (recovery rescans), everything else (epoch files) stays.
fn lose_tail(dir: &Path, kept: &[(String, u64)]) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if name.starts_with("segment-") && name.ends_with(".hint") {
            std::fs::remove_file(&path).unwrap();
        } else if name.starts_with("segment-") && name.ends_with(".log") {
            match kept.iter().find(|(n, _)| *n == name) {
                Some((_, len)) => {
                    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
                    f.set_len(*len).unwrap();
                }
                None => std::fs::remove_file(&path).unwrap(),
            }
        }
    }
}

async fn wait_partition_ready(cluster: &TestCluster, node: u32, p: u32) {
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        let info = cluster.node(node).info();
        let part = info.partitions.iter().find(|i| i.partition == p).unwrap();
        if part.state == kv_node::protocol::ReplicaState::Ready {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{part:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn text(raw: Option<Bytes>) -> Option<String> {
    raw.map(|r| kv_codec::decode(&r).unwrap().render())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_restarts_behind_never_leaves_a_divergent_follower() {
    let mut cluster = TestCluster::start().await;
    cluster.wait_ready(CONVERGE).await;
    let client = cluster.client();
    // Partition 0: leader node 0, follower node 1.
    let (p, leader, follower) = (0, 0, 1);
    let common = keys_in(&cluster.map, p, 20, "common");
    put_named(&client, &common).await;
    cluster.wait_replicated(CONVERGE).await;

    // The durable state the leader will fall back to.
    cluster.stop(leader).await;
    let leader_dir = cluster.node_dir(leader).join(format!("partition_{p}"));
    let durable = segment_lengths(&leader_dir);
    cluster.restart(leader).await;
    cluster.wait_ready(CONVERGE).await;

    // A tail both replicas hold, which the leader then loses.
    let lost = keys_in(&cluster.map, p, 10, "lost");
    put_named(&client, &lost).await;
    cluster.wait_replicated(CONVERGE).await;
    let follower_before = cluster.position(follower, p);

    // The follower is unreachable while the leader restarts behind.
    cluster.stop(follower).await;
    cluster.stop(leader).await;
    lose_tail(&leader_dir, &durable);
    cluster.restart(leader).await;
    // (Its other partitions were never written: as empty leaders they wait
    // for a follower, so only this one becomes ready.)
    wait_partition_ready(&cluster, leader, p).await;
    let restarted = cluster.position(leader, p);
    assert!(restarted.lsn < follower_before.lsn, "{restarted:?}");

    // New writes take LSNs the follower holds, and then some.
    let fresh = keys_in(&cluster.map, p, 15, "fresh");
    let direct = client.node(leader).unwrap();
    for k in &fresh {
        let value = Bytes::from(Value::from_user_input(k).encode());
        direct.put(k.as_bytes(), value).await.unwrap();
    }
    cluster.restart(follower).await;
    cluster.wait_replicated(CONVERGE).await;

    // Identical histories: same position, same keys, same values.
    assert_eq!(cluster.position(follower, p), cluster.position(leader, p));
    let replica = client.node(follower).unwrap();
    for k in common.iter().chain(&fresh) {
        let got = text(replica.get(k.as_bytes()).await.unwrap());
        assert_eq!(got.as_deref(), Some(k.as_str()), "follower's {k}");
    }
    for k in &lost {
        assert_eq!(replica.get(k.as_bytes()).await.unwrap(), None, "{k}");
        assert_eq!(direct.get(k.as_bytes()).await.unwrap(), None, "{k}");
    }
    // Nothing vanished silently: the follower's cut tail is in a rollback
    // file, counted and listed by `info`.
    let info = cluster.node(follower).info();
    let part = info.partitions.iter().find(|i| i.partition == p).unwrap();
    assert_eq!(part.history.rolled_back, lost.len() as u64, "{part:#?}");
    assert_eq!(part.history.rollback_files.len(), 1, "{part:#?}");
    let leader_epoch = cluster.node(leader).info().partitions[0].history.epoch;
    assert!(part.history.epoch >= leader_epoch, "{part:#?}");
    cluster.shutdown().await;
}

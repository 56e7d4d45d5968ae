//! Three `kv node` processes; node 1's stores are damaged on disk while it
//! is stopped. On restart it serves what it can, `kv cluster` shows the
//! failed leader partition and the follower that resynced, and reads of
//! the failed partition are answered by its follower.

mod common;

use std::path::{Path, PathBuf};

use common::nodes::{WAIT, client, sigterm, start_node, static_config};
use common::{Running, free_ports, poll, run};
use kv_router::partition_for;

const KEYS: usize = 200;

fn key(i: usize) -> String {
    format!("key:{i}")
}

/// The newest `segment-<n>.log` of node `node`'s partition `p`.
fn newest_segment(dir: &Path, node: usize, p: u32) -> PathBuf {
    let store = dir.join(format!("data/node_{node}/partition_{p}"));
    let mut logs: Vec<PathBuf> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

/// Flips a bit in the middle of the records: acknowledged records follow.
fn flip_middle(segment: &Path) {
    let mut bytes = std::fs::read(segment).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(segment, bytes).unwrap();
}

/// The `partition <p>:` line of `kv cluster`.
fn partition_line(out: &str, p: u32) -> String {
    let prefix = format!("partition {p}:");
    let line = out.lines().find(|l| l.starts_with(&prefix));
    line.unwrap_or_default().to_string()
}

#[test]
fn damaged_stores_are_reported_by_kv_cluster_and_the_follower_resyncs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports = free_ports(3);
    std::fs::write(d.join("cluster.toml"), static_config(&ports)).unwrap();
    let mut nodes: Vec<Running> = (0..3).map(|id| start_node(d, id)).collect();
    let script: String = (0..KEYS)
        .map(|i| format!("put {} 'value {i}'\n", key(i)))
        .collect();
    poll("the cluster to take writes", WAIT, || {
        let out = run(d, &["--cluster", "cluster.toml"], &script);
        match out.stdout == "OK\n".repeat(KEYS) {
            true => Ok(()),
            false => Err(format!("{out:?}")),
        }
    });
    poll("node 1 to follow partition 0 with lag 0", WAIT, || {
        let out = client(d, &["cluster"]).stdout;
        let line = partition_line(&out, 0);
        match line.contains("follower node 1") && line.contains("lag=0 streaming") {
            true => Ok(()),
            false => Err(out),
        }
    });

    // Node 1 leads partition 1 and follows partition 0.
    sigterm(&mut nodes[1], "node 1");
    let led = newest_segment(d, 1, 1);
    flip_middle(&led);
    flip_middle(&newest_segment(d, 1, 0));
    nodes[1] = start_node(d, 1);

    let state = poll("kv cluster to show the damage", WAIT, || {
        let out = client(d, &["cluster"]).stdout;
        let p0 = partition_line(&out, 0);
        let p1 = partition_line(&out, 1);
        let resynced = p0.contains("follower node 1") && p0.contains("lag=0 streaming");
        match p1.contains("leader node 1 epoch=0 lsn=0 FAILED (") && resynced {
            true => Ok(out),
            false => Err(out),
        }
    });
    let p1 = partition_line(&state, 1);
    let led_name = led.file_name().unwrap().to_str().unwrap();
    assert!(p1.contains(led_name) && p1.contains("offset"), "{state}");
    let p0 = partition_line(&state, 0);
    assert!(p0.contains("full_resyncs=1"), "{state}");

    // Every key reads back: partition 1's from its follower, marked stale.
    for i in 0..KEYS {
        let out = client(d, &["get", &key(i)]);
        assert_eq!(out.stdout, format!("value {i}\n"), "{out:?}");
        if partition_for(key(i).as_bytes(), 4) == 1 {
            assert!(out.stderr.contains("possibly stale"), "{out:?}");
        }
    }
    let log = std::fs::read_to_string(d.join("node_1.log")).unwrap();
    assert!(log.contains("partition store failed to open"), "{log}");
    assert!(log.contains("moved aside"), "{log}");
    let aside = d.join("data/node_1");
    let kept = std::fs::read_dir(aside).unwrap().any(|e| {
        let name = e.unwrap().file_name();
        name.to_string_lossy().starts_with("partition_0.damaged-")
    });
    assert!(kept, "the damaged follower store is kept");

    for (id, node) in nodes.iter_mut().enumerate() {
        sigterm(node, &format!("node {id}"));
    }
}

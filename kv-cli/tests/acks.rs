//! `[replication]` from the config file, `put/del --acks`, and the in-sync
//! set in `kv cluster`, with three `kv node` processes.

mod common;

use std::path::Path;

use common::nodes::{WAIT, client, config, sigterm, start_node};
use common::{Running, free_ports, poll, run};
use kv_router::partition_for;

/// The line of partition `p` in `kv cluster`, once `check` accepts it.
fn wait_partition_line(dir: &Path, p: u32, check: impl Fn(&str) -> bool) -> String {
    poll(&format!("partition {p}'s line"), WAIT, || {
        let out = client(dir, &["cluster"]);
        let line = out
            .lines()
            .into_iter()
            .find(|l| l.starts_with(&format!("partition {p}:")))
            .map(str::to_string);
        match line {
            Some(l) if check(&l) => Ok(l),
            _ => Err(format!("{out:?}")),
        }
    })
}

/// A key of partition 1 (led by node 1, followed by node 2).
fn key_in_p1() -> String {
    (0..)
        .map(|i| format!("order:{i}"))
        .find(|k| partition_for(k.as_bytes(), 4) == 1)
        .unwrap()
}

#[test]
fn acks_all_needs_the_in_sync_set_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut text = config(&free_ports(3));
    text.push_str("\n[replication]\nmin_insync_replicas = 2\nreplica_lag_max_ms = 300\n");
    std::fs::write(d.join("cluster.toml"), text).unwrap();
    let mut nodes: Vec<Running> = (0..3).map(|id| start_node(d, id)).collect();
    wait_partition_line(d, 1, |l| l.ends_with("; isr=1,2"));

    let key = key_in_p1();
    let out = client(d, &["put", "--acks", "all", &key, "paid"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );

    // Node 2 (partition 1's follower) dies: it leaves the set, and
    // acks = all writes are refused before they are applied.
    nodes[2].kill();
    wait_partition_line(d, 1, |l| l.ends_with("; isr=1"));
    let out = client(d, &["put", "--acks", "all", &key, "refunded"]);
    assert!(out.code.is_some_and(|c| c >= 3), "{out:?}");
    assert!(
        out.stderr
            .contains("fewer than min_insync_replicas = 2; write not applied"),
        "{out:?}"
    );
    let out = client(d, &["get", &key]);
    assert_eq!(out.stdout, "paid\n", "{out:?}");
    // The shell says so on its own line and goes on; acks = leader works.
    let script = format!("del --acks all {key}\nput --acks leader {key} kept\nget {key}\n");
    let out = run(d, &["--cluster", "cluster.toml", "--keep-going"], &script);
    let lines = out.lines();
    assert!(
        lines[0].starts_with("(error) partition 1: 1 in-sync replica(s)"),
        "{out:?}"
    );
    assert_eq!(lines[1..], ["OK", "kept"], "{out:?}");
    let out = client(d, &["put", "--acks", "most", &key, "x"]);
    assert_eq!(out.code, Some(2), "{out:?}");

    nodes[2] = start_node(d, 2);
    wait_partition_line(d, 1, |l| l.ends_with("; isr=1,2"));
    let out = client(d, &["del", "--acks", "all", &key]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    for (id, node) in nodes.iter_mut().enumerate() {
        sigterm(node, &format!("node {id}"));
    }
}

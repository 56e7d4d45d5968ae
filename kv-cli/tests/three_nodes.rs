//! Three `kv node` processes from one config; one is killed with SIGKILL
//! and restarted.

mod common;

use std::path::Path;
use std::process::Stdio;

use common::nodes::{WAIT, client, config, sigterm, start_node, static_config};
use common::{Running, free_ports, kv, poll, run};
use kv_router::partition_for;

const KEYS: usize = 24;

fn key(i: usize) -> String {
    format!("key:{i}")
}

/// Waits until every node is up, every leader ready and every follower
/// streaming with lag 0; returns the `kv cluster` output.
fn wait_caught_up(dir: &Path) -> String {
    poll("the cluster to catch up", WAIT, || {
        let out = client(dir, &["cluster"]);
        let partitions: Vec<&str> = out
            .lines()
            .into_iter()
            .filter(|l| l.starts_with("partition "))
            .collect();
        let healthy = out.code == Some(0)
            && !out.stdout.contains("DOWN")
            && partitions.len() == 4
            && partitions.iter().all(|l| {
                l.contains(" ready;") && l.contains(" lag=0 streaming") && !l.contains("lag=?")
            })
            && out.stdout.matches("lag=").count() == 4
            && out.stdout.matches("lag=0 ").count() == 4;
        if healthy {
            Ok(out.stdout)
        } else {
            Err(format!("{out:?}"))
        }
    })
}

#[test]
fn killed_node_reads_fall_back_writes_fail_and_restart_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports = free_ports(3);
    std::fs::write(d.join("cluster.toml"), static_config(&ports)).unwrap();
    let mut nodes: Vec<Running> = (0..3).map(|id| start_node(d, id)).collect();
    wait_caught_up(d);

    let script: String = (0..KEYS)
        .map(|i| format!("put {} 'value {i}'\n", key(i)))
        .collect();
    let out = run(d, &["--cluster", "cluster.toml"], &script);
    assert_eq!(out.stdout, "OK\n".repeat(KEYS), "{out:?}");
    wait_caught_up(d);

    // Node 1 leads partition 1 (followed by node 2) and follows 0 and 3.
    nodes[1].kill();
    let in_p = |p: u32| (0..KEYS).filter(move |&i| partition_for(key(i).as_bytes(), 4) == p);
    let led_by_1: Vec<usize> = in_p(1).collect();
    assert!(!led_by_1.is_empty(), "some key must land in partition 1");
    for &i in &led_by_1 {
        let out = client(d, &["get", &key(i)]);
        assert_eq!(
            (out.code, out.stdout.clone()),
            (Some(0), format!("value {i}\n")),
            "{out:?}"
        );
        assert_eq!(
            out.stderr.trim(),
            "(possibly stale: leader node 1 unavailable, answered by follower node 2)"
        );
    }
    let out = client(d, &["put", &key(led_by_1[0]), "new"]);
    assert!(out.code.is_some_and(|c| c >= 3), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.contains("partition 1") && out.stderr.contains("node 1"),
        "{out:?}"
    );
    let out = client(d, &["del", &key(led_by_1[0])]);
    assert!(out.code.is_some_and(|c| c >= 3), "{out:?}");

    // Partitions led by live nodes still take writes, also those node 1
    // follows: it must catch up on them after the restart.
    let followed_by_1: Vec<usize> = in_p(0).chain(in_p(3)).collect();
    for &i in &followed_by_1 {
        let out = client(d, &["put", &key(i), &format!("changed {i}")]);
        assert_eq!(out.code, Some(0), "{out:?}");
    }

    nodes[1] = start_node(d, 1);
    let state = wait_caught_up(d);
    assert!(
        !state.contains("full_resyncs"),
        "catch-up must be incremental:\n{state}"
    );
    for i in 0..KEYS {
        let out = client(d, &["get", &key(i)]);
        let expected = if followed_by_1.contains(&i) {
            format!("changed {i}\n")
        } else {
            format!("value {i}\n")
        };
        assert_eq!(
            (out.code, out.stdout.clone(), out.stderr.as_str()),
            (Some(0), expected, ""),
            "{out:?}"
        );
    }
    // The restarted leader takes writes again (after its recovery check).
    poll("partition 1 to take writes", WAIT, || {
        let out = client(d, &["put", &key(led_by_1[0]), "after"]);
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });

    // A clean stop: SIGTERM ends each node with exit code 0.
    for (id, node) in nodes.iter_mut().enumerate() {
        sigterm(node, &format!("node {id}"));
    }
}

#[test]
fn serve_runs_every_node_of_a_config_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cluster.toml"), config(&free_ports(3))).unwrap();
    let mut cmd = kv(d);
    cmd.args(["serve", "--config", "cluster.toml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut serve = Running::spawn(cmd);
    poll("kv serve to take writes", WAIT, || {
        let out = client(d, &["put", "nama", "Rafi Widya"]);
        if out.code == Some(0) {
            Ok(())
        } else {
            Err(format!("{out:?}"))
        }
    });
    let out = client(d, &["get", "nama"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "Rafi Widya\n"),
        "{out:?}"
    );
    sigterm(&mut serve, "kv serve");

    // Stopped cleanly: the same config, embedded this time, finds the data
    // in the config's data_dirs (relative to the config file).
    let out = run(d, &["--config", "cluster.toml", "get", "nama"], "");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "Rafi Widya\n"),
        "{out:?}"
    );
    assert!(d.join("data/node_0/LAYOUT").is_file());
}

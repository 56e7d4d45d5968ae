//! `[security]` end to end: `kv node` processes sharing a secret file
//! replicate, clients need the password, and a node that listens beyond
//! loopback without a secret says so.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Running, free_ports, kv, poll, run};

const WAIT: Duration = Duration::from_secs(30);

fn config(ports: &[u16], host: &str, security: &str) -> String {
    let mut text = format!(
        "partitions = 2\nreplication_factor = {}\n",
        ports.len().min(2)
    );
    for (id, port) in ports.iter().enumerate() {
        text.push_str(&format!(
            "\n[[nodes]]\nid = {id}\naddr = \"{host}:{port}\"\ndata_dir = \"data/node_{id}\"\n"
        ));
    }
    text.push_str(security);
    text
}

fn start_node(dir: &Path, id: usize) -> Running {
    let log = std::fs::File::create(dir.join(format!("node_{id}.log"))).unwrap();
    let mut cmd = kv(dir);
    cmd.args(["node", "--config", "cluster.toml", "--id", &id.to_string()])
        .env_remove("KV_SECRET")
        .env_remove("KV_PASSWORD")
        .stdout(Stdio::null())
        .stderr(log);
    Running::spawn(cmd)
}

fn client(dir: &Path, password: Option<&str>, args: &[&str]) -> common::Output {
    let mut all = vec!["--cluster", "cluster.toml"];
    all.extend_from_slice(args);
    match password {
        Some(p) => {
            let mut cmd = kv(dir);
            cmd.args(&all).env("KV_PASSWORD", p);
            let out = cmd.output().expect("running kv");
            common::Output {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
        None => run(dir, &all, ""),
    }
}

#[test]
fn nodes_with_a_secret_replicate_and_clients_need_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("cluster.key"), "a cluster secret of 32 bytes...\n").unwrap();
    let ports = free_ports(2);
    let security =
        "\n[security]\nsecret_file = \"cluster.key\"\nclient_password = \"open sesame\"\n";
    std::fs::write(
        d.join("cluster.toml"),
        config(&ports, "127.0.0.1", security),
    )
    .unwrap();
    let _nodes: Vec<Running> = (0..2).map(|id| start_node(d, id)).collect();

    // The config's password lets the client in; replication catches up.
    poll("writes to be taken", WAIT, || {
        let out = client(d, None, &["put", "greeting", "halo"]);
        (out.code == Some(0))
            .then_some(())
            .ok_or(format!("{out:?}"))
    });
    poll("the follower to catch up", WAIT, || {
        let out = client(d, None, &["cluster"]);
        let caught_up = out.stdout.matches("lag=0 streaming").count() == 2;
        caught_up.then_some(()).ok_or(format!("{out:?}"))
    });
    let out = client(d, None, &["get", "greeting"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "halo\n"),
        "{out:?}"
    );

    // KV_PASSWORD overrides the file: a wrong one is refused clearly.
    let out = client(d, Some("wrong"), &["put", "greeting", "x"]);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("password"), "{out:?}");
    let out = client(d, Some("open sesame"), &["get", "greeting"]);
    assert_eq!(out.stdout, "halo\n", "{out:?}");
}

#[test]
fn a_node_beyond_loopback_without_a_secret_warns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ports = free_ports(1);
    std::fs::write(d.join("cluster.toml"), config(&ports, "0.0.0.0", "")).unwrap();
    let mut cmd = kv(d);
    cmd.args(["node", "--config", "cluster.toml", "--id", "0"])
        .env_remove("KV_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut node = Running::spawn(cmd);
    let mut stderr = node.0.stderr.take().unwrap();
    let text = std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        // Read until the start line (or the pipe closes).
        while !text.contains("listening on") {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        text
    });
    poll("the node to start", WAIT, || {
        if text.is_finished() {
            Ok(())
        } else {
            Err("still starting".into())
        }
    });
    let text = text.join().unwrap();
    node.kill();
    assert!(
        text.contains("without a cluster secret"),
        "no warning in:\n{text}"
    );
}

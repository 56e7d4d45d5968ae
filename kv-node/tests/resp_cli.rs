//! The real `redis-cli` against a kv node: commands typed one per line as
//! a user would, binary values shown in redis-cli's escaped form, INFO,
//! and the hints' source (`COMMAND DOCS`). Skipped, with a printed reason,
//! where `redis-cli` is not installed (`.ci/run` installs it when it can).
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestCluster;
use kv_node::NodeOptions;
use kv_router::ClusterConfig;

fn with_resp(o: &mut NodeOptions) {
    o.resp_addr = Some("127.0.0.1:0".into());
}

fn redis_cli_installed() -> bool {
    Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `redis-cli -p PORT --no-raw` with `input` on stdin.
fn redis_cli(port: u16, input: &str) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--no-raw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_session() {
    if !redis_cli_installed() {
        eprintln!("skipped: redis-cli is not installed (apt-get install redis-tools)");
        return;
    }
    let c = TestCluster::start_with(ClusterConfig::default_topology(), with_resp).await;
    c.wait_ready(Duration::from_secs(10)).await;
    let port = c.node(2).resp_addr().unwrap().port();
    let input = concat!(
        "ping\n",
        "set nama \"Rafi Widya\"\n",
        "get nama\n",
        "set bin \"\\xff\\x00A\\n\"\n",
        "get bin\n",
        "incr n\n",
        "mget nama missing\n",
        "frobnicate x\n",
        "info keyspace\n",
        "command docs get\n",
    );
    let output = tokio::task::spawn_blocking(move || redis_cli(port, input))
        .await
        .unwrap();
    let expected_start = [
        "PONG",
        "OK",
        "\"Rafi Widya\"",
        "OK",
        "\"\\xff\\x00A\\n\"",
        "(integer) 1",
        "1) \"Rafi Widya\"",
        "2) (nil)",
        "(error) ERR unknown command 'frobnicate', with args beginning with: 'x' ",
        "# Keyspace",
        "db0:keys=3,expires=0,avg_ttl=0",
    ];
    let lines: Vec<&str> = output.lines().collect();
    assert!(lines.len() > expected_start.len(), "{output}");
    assert_eq!(&lines[..expected_start.len()], expected_start, "{output}");
    assert!(output.contains("\"summary\""), "{output}");
    assert!(output.contains("\"arguments\""), "{output}");
    c.shutdown().await;
}

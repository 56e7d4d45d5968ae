//! The `kv` binary as scripts and people meet it (issue 16): it refuses to
//! create a cluster from a one-shot command, a second process finds the
//! shell's cluster, exit codes tell the truth, broken pipes end quietly,
//! values come from stdin or files, `-o json` answers parse, logs are
//! plain or JSON, and the shell's comforts work in a script.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::{Running, free_ports, kv, poll, run};
use serde_json::Value as Json;

const WAIT: Duration = Duration::from_secs(30);

fn init(d: &Path) {
    let out = run(d, &["init"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
}

/// The first node address in a cluster config.
fn first_addr(config: &str) -> String {
    config
        .lines()
        .find_map(|l| l.strip_prefix("addr = "))
        .expect("an addr line")
        .trim_matches('"')
        .to_string()
}

fn json_lines(stdout: &str) -> Vec<Json> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn a_one_shot_command_never_creates_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [&["get", "k"][..], &["put", "k", "v"], &["cluster"]] {
        let out = run(d, args, "");
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("no cluster here") && out.stderr.contains("--cluster"),
            "{out:?}"
        );
    }
    assert!(!d.join("data").exists(), "nothing created");
    init(d);
    let out = run(d, &["put", "k", "v"], "");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
}

/// A shell reading a script from a pipe that stays open, so it keeps its
/// embedded cluster running while the test uses it from other processes.
fn start_shell(d: &Path) -> Running {
    let mut cmd = kv(d);
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    Running::spawn(cmd)
}

#[test]
fn a_second_process_finds_the_shells_cluster_by_file_address_or_env() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut shell = start_shell(d);
    let file = d.join("data/cluster.toml");
    let text = poll("the cluster file", WAIT, || {
        std::fs::read_to_string(&file).map_err(|e| e.to_string())
    });
    let out = run(d, &["put", "nama", "Rafi Widya"], "");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    let out = run(d, &["get", "nama"], "");
    assert_eq!(out.stdout, "Rafi Widya\n", "{out:?}");

    // Any node's host:port is enough: the map is fetched from it.
    let addr = first_addr(&text);
    assert!(!addr.ends_with(":0"), "real ports in {text}");
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run(elsewhere.path(), &["--cluster", &addr, "get", "nama"], "");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "Rafi Widya\n"),
        "{out:?}"
    );
    let mut cmd = kv(elsewhere.path());
    cmd.env("KV_CLUSTER", &addr).args(["get", "nama"]);
    let out = cmd.output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "Rafi Widya\n",
        "{out:?}"
    );
    assert!(!elsewhere.path().join("data").exists());

    // Closing the shell's input ends it; the file goes with it.
    drop(shell.0.stdin.take());
    let status = shell
        .wait_for(WAIT)
        .expect("the shell stops at end of input");
    assert!(status.success(), "{status:?}");
    assert!(!file.exists(), "cluster file removed on exit");
    let out = run(d, &["get", "nama"], "");
    assert_eq!(
        out.stdout, "Rafi Widya\n",
        "the data dir serves again: {out:?}"
    );
}

/// A three-node config on ports nobody listens on.
fn nobody_listens() -> String {
    let mut text = String::from("partitions = 4\nreplication_factor = 2\n");
    for (id, port) in free_ports(3).iter().enumerate() {
        text.push_str(&format!(
            "[[nodes]]\nid = {id}\naddr = \"127.0.0.1:{port}\"\n"
        ));
    }
    text
}

#[test]
fn a_stale_cluster_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    // A pid no process has: the writer is gone.
    let text = format!("# pid = 4294967295\n{}", nobody_listens());
    std::fs::write(d.join("data/cluster.toml"), text).unwrap();
    let out = run(d, &["put", "k", "v"], "");
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
}

#[test]
fn exit_codes_tell_when_nodes_are_down() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let text = nobody_listens();
    std::fs::write(d.join("down.toml"), &text).unwrap();
    let out = run(d, &["--cluster", "down.toml", "cluster"], "");
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stdout.matches("DOWN").count() >= 3, "{out:?}");
    // The shell on a dead cluster stops before the first line.
    let out = run(d, &["--cluster", "down.toml"], "get k\n");
    assert_eq!((out.code, out.stdout.as_str()), (Some(3), ""), "{out:?}");
    assert!(
        out.stderr
            .contains("no node of the cluster in down.toml answers"),
        "{out:?}"
    );
    let unreachable = first_addr(&text);
    let out = run(d, &["--cluster", &unreachable, "get", "k"], "");
    assert_eq!(out.code, Some(3), "{out:?}");
    assert!(out.stderr.contains("fetching the cluster map"), "{out:?}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    for args in [&["inspect", "0"][..], &["cluster"]] {
        let mut cmd = kv(d);
        cmd.args(args).stderr(Stdio::piped());
        let mut child = Running::spawn(cmd);
        // Like `| head -0`: the reader is gone before kv writes.
        drop(child.0.stdout.take());
        let status = child.wait_for(WAIT).expect("kv finishes");
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!((status.code(), stderr.as_str()), (Some(0), ""), "{args:?}");
    }
}

#[test]
fn values_come_from_stdin_or_a_file_as_text_or_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let big: String = (0..200_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let out = run(d, &["put", "big", "-"], &big);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = run(d, &["get", "big"], "");
    assert_eq!(out.stdout.trim_end(), big);

    std::fs::write(d.join("doc.json"), r#"{"a": [1, 2]}"#).unwrap();
    assert_eq!(run(d, &["put", "doc", "@doc.json"], "").code, Some(0));
    assert_eq!(run(d, &["get", "doc"], "").stdout, "{\"a\": [1, 2]}\n");
    assert_eq!(run(d, &["put", "at", "@@home"], "").code, Some(0));
    assert_eq!(run(d, &["get", "at"], "").stdout, "@home\n");

    let out = run(d, &["put", "m", "@missing"], "");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(out.stderr.contains("@@"), "{out:?}");
    assert_eq!(run(d, &["get", "m"], "").code, Some(1), "nothing stored");

    // Bytes that are not UTF-8 are stored as V4 and printed as redis-cli
    // prints them.
    std::fs::write(d.join("bin"), [0xff, 0x00, 0xfe]).unwrap();
    assert_eq!(run(d, &["put", "b", "@bin"], "").code, Some(0));
    assert_eq!(run(d, &["get", "b"], "").stdout, "\"\\xff\\x00\\xfe\"\n");
    let out = run(d, &["-o", "json", "get", "b"], "");
    assert!(out.stdout.contains(r#"{"hex":"ff00fe"}"#), "{out:?}");
}

#[test]
fn json_output_is_one_object_per_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let out = run(
        d,
        &["-o", "json", "put", "user:1", r#"{"name": "Ana"}"#],
        "",
    );
    assert_eq!(json_lines(&out.stdout), [serde_json::json!({"ok": true})]);
    let out = run(d, &["get", "user:1", "--output", "json"], "");
    let answer = &json_lines(&out.stdout)[0];
    assert_eq!(
        answer["value"],
        serde_json::json!({"name": "Ana"}),
        "{out:?}"
    );
    assert_eq!(
        (answer["key"].as_str(), answer["found"].as_bool()),
        (Some("user:1"), Some(true))
    );
    let out = run(d, &["-o", "json", "get", "nobody"], "");
    assert_eq!(out.code, Some(1));
    assert_eq!(json_lines(&out.stdout)[0]["found"], Json::Bool(false));
    let out = run(d, &["-o", "json", "cluster"], "");
    let answer = &json_lines(&out.stdout)[0];
    assert_eq!(answer["nodes"].as_array().map(Vec::len), Some(3), "{out:?}");
    assert_eq!(answer["partitions"].as_array().map(Vec::len), Some(4));
    assert_eq!(answer["nodes"][1]["up"], Json::Bool(true));

    // The shell answers in JSON too, errors included.
    let out = run(
        d,
        &["-o", "json", "--keep-going"],
        "status user:1\nfrobnicate\n",
    );
    let answers = json_lines(&out.stdout);
    assert_eq!(
        answers[0]["location"].as_str(),
        Some("COLD_STORAGE"),
        "{out:?}"
    );
    assert!(answers[1]["error"].as_str().unwrap().contains("frobnicate"));
}

#[test]
fn the_shell_is_comfortable_in_a_script() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = "# a comment line\n\
        PUT color #ff0000 # and a trailing comment\n\
        Get color\n\
        put empty ''\n\
        get empty\n\
        put ctl \"tab\there\"\n\
        get ctl\n\
        put poem 'line one\nline two'\n\
        get poem\n\
        put long \\\n  continued\n\
        get long\n\
        gte color\n";
    let out = run(d, &["--keep-going"], script);
    assert_eq!(
        out.lines(),
        [
            "OK",
            "#ff0000",
            "OK",
            "\"\"",
            "OK",
            "\"tab\\there\"",
            "OK",
            "\"line one\\nline two\"",
            "OK",
            "continued",
            "(error) unknown command 'gte'; did you mean 'get'? type help",
        ],
        "{out:?}"
    );
    let out = run(d, &["--raw", "get", "empty"], "");
    assert_eq!(out.stdout, "\n");
    let out = run(d, &["--raw", "get", "ctl"], "");
    assert_eq!(out.stdout, "tab\there\n");
    let out = run(d, &["--raw", "get", "poem"], "");
    assert_eq!(out.stdout, "line one\nline two\n");
}

#[test]
fn help_lists_only_the_options_that_apply() {
    let dir = tempfile::tempdir().unwrap();
    let node = run(dir.path(), &["node", "--help"], "");
    assert_eq!(node.code, Some(0));
    assert!(
        node.stdout.contains("--id") && node.stdout.contains("--config"),
        "{node:?}"
    );
    for absent in ["--cluster", "--output", "--raw"] {
        assert!(!node.stdout.contains(absent), "{absent} in {}", node.stdout);
    }
    let bench = run(dir.path(), &["bench", "--help"], "");
    let (own, global) = bench
        .stdout
        .split_once("Global options:")
        .expect("a heading");
    assert!(
        own.contains("--clients") && !own.contains("--data-dir"),
        "{own}"
    );
    assert!(
        global.contains("--data-dir") && !global.contains("--clients"),
        "{global}"
    );
}

#[test]
fn the_data_directories_named_are_the_ones_used() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("w")).unwrap();
    let mut config = String::from("partitions = 2\nreplication_factor = 1\n");
    for id in 0..2 {
        config.push_str(&format!(
            "[[nodes]]\nid = {id}\naddr = \"127.0.0.1:0\"\ndata_dir = \"data/node_{id}\"\n"
        ));
    }
    std::fs::write(d.join("w/cluster.toml"), config).unwrap();
    let out = run(d, &["--config", "w/cluster.toml", "init"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("data in w/data/node_0, w/data/node_1; ready"),
        "{out:?}"
    );
    assert!(d.join("w/data/node_1/LAYOUT").exists() && !d.join("data").exists());
}

#[test]
fn logs_are_plain_off_a_terminal_or_json_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let mut cmd = kv(d);
    cmd.env("RUST_LOG", "info").args(["get", "k"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INFO") && !stderr.contains('\x1b'),
        "{stderr}"
    );
    let mut cmd = kv(d);
    cmd.env("RUST_LOG", "info")
        .args(["--log-format", "json", "get", "k"]);
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| *l != "(nil)").collect();
    assert!(!lines.is_empty());
    for line in lines {
        let log: Json = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(log["level"].is_string(), "{line}");
    }
}

#[test]
fn adding_a_node_that_would_move_replicas_is_refused_with_the_moves() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let before = common::snapshot(&d.join("data"));
    let mut four = String::from("partitions = 4\nreplication_factor = 2\n");
    for id in 0..4 {
        four.push_str(&format!("[[nodes]]\nid = {id}\naddr = \"127.0.0.1:0\"\n"));
    }
    std::fs::write(d.join("four.toml"), &four).unwrap();
    let out = run(d, &["--config", "four.toml", "get", "k"], "");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("partition 2: [2, 0] -> [2, 3]")
            && out.stderr.contains("partition 3: [0, 1] -> [3, 0]")
            && out.stderr.contains("[[placement]]"),
        "{out:?}"
    );
    assert_eq!(common::snapshot(&d.join("data")), before, "nothing touched");
    // Pinning the recorded placement lets the new node join.
    four.push_str("[[placement]]\npartition = 2\nreplicas = [2, 0]\n");
    four.push_str("[[placement]]\npartition = 3\nreplicas = [0, 1]\n");
    std::fs::write(d.join("four.toml"), &four).unwrap();
    let out = run(d, &["--config", "four.toml", "put", "k", "v"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
}

fn bench_json(stdout: &str) -> Json {
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{stdout}: {e}"))
}

#[test]
fn bench_reports_json_and_cleans_up_a_real_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut cmd = kv(d);
    cmd.env("TMPDIR", &tmp).args([
        "bench",
        "--ops",
        "300",
        "--keys",
        "40",
        "--clients",
        "2",
        "--json",
    ]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = bench_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        (report["done"].as_u64(), report["errors"].as_u64()),
        (Some(300), Some(0))
    );
    assert!(
        report["latency_ns"]["all"]["p99"].as_u64().is_some(),
        "{report}"
    );
    // The embedded cluster has followers: their lag was sampled.
    let lag = &report["replication_lag_entries"];
    assert!(lag["samples"].as_u64().is_some_and(|n| n >= 1), "{report}");
    assert!(lag["p99"].as_u64() <= lag["max"].as_u64(), "{report}");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp dir removed"
    );

    init(d);
    assert_eq!(run(d, &["put", "mine", "kept"], "").code, Some(0));
    let out = run(
        d,
        &[
            "bench",
            "--ops",
            "200",
            "--keys",
            "30",
            "--prefix",
            "b:",
            "--data-dir",
            "data",
        ],
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("keys: b:00000000 .. b:00000029"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("cleanup: deleted 30 keys under b:"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("replication lag (entries behind the leader, "),
        "{out:?}"
    );
    let out = run(d, &["-o", "json", "cluster"], "");
    let keys: u64 = json_lines(&out.stdout)[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["keys"].as_u64().unwrap())
        .sum();
    assert_eq!(keys, 2, "only `mine` is left, on its two replicas: {out:?}");
}

#[test]
fn ctrl_c_stops_bench_with_a_summary_and_removes_its_temp_dir() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let log = d.join("bench.out");
    let mut cmd = kv(d);
    cmd.env("TMPDIR", &tmp)
        .args([
            "bench",
            "--ops",
            "100000000",
            "--read-ratio",
            "0",
            "--clients",
            "2",
        ])
        .stdout(std::fs::File::create(&log).unwrap());
    let mut bench = Running::spawn(cmd);
    poll("the bench to start", WAIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("keys:") {
            Ok(())
        } else {
            Err(text)
        }
    });
    bench.signal("INT");
    let status = bench.wait_for(WAIT).expect("bench stops after Ctrl-C");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert!(
        text.contains("interrupted (Ctrl-C) after") && text.contains("ops/s"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temp dir removed"
    );
}

/// `cache_writes = false` reaches every node's stores: a put stays cold
/// until the first read brings it into the hot tier.
#[test]
fn cache_writes_off_makes_puts_cold_until_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = "partitions = 4\nreplication_factor = 2\n\
        [storage]\ncache_writes = false\n\
        [[nodes]]\nid = 0\naddr = \"127.0.0.1:0\"\n\
        [[nodes]]\nid = 1\naddr = \"127.0.0.1:0\"\n\
        [[nodes]]\nid = 2\naddr = \"127.0.0.1:0\"\n";
    std::fs::write(d.join("cold.toml"), config).unwrap();
    let out = run(
        d,
        &["--config", "cold.toml", "--data-dir", "data"],
        "put nama Budi\nstatus nama\nget nama\nstatus nama\nexit\n",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"OK"), "{out:?}");
    assert!(lines[1].starts_with("COLD_STORAGE "), "{out:?}");
    assert_eq!(lines[2], "Budi", "{out:?}");
    assert!(lines[3].starts_with("HOT_STORAGE "), "{out:?}");
}

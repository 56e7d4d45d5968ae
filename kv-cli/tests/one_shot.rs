//! One-shot commands against the embedded cluster, their output and exit
//! codes; bad config files; a data directory created with another
//! partition count.

mod common;

use common::{run, snapshot};
use kv_router::partition_for;

fn kv_in(dir: &std::path::Path, args: &[&str]) -> common::Output {
    let mut all = vec!["--data-dir", "d"];
    all.extend_from_slice(args);
    run(dir, &all, "")
}

#[test]
fn one_shot_commands_print_answers_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = kv_in(d, &["init"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.ends_with("ready\n"), "{out:?}");

    let out = kv_in(d, &["put", "user:1", r#"{"name": "Ana", "tags": [1, 2]}"#]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    // Global options go after the subcommand too.
    let out = run(d, &["get", "user:1", "--data-dir", "d"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "{\"name\": \"Ana\", \"tags\": [1, 2]}\n");
    assert_eq!(out.stderr, "");

    let out = kv_in(d, &["get", "nobody"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(1), ""), "{out:?}");
    assert_eq!(out.stderr.trim(), "(nil)");

    // A fresh process has nothing hot: the value is on disk.
    let p = partition_for(b"user:1", 4);
    let out = kv_in(d, &["status", "user:1"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let expected = format!(
        "COLD_STORAGE partition={p} leader=node{} replicas=[{}, {}]\n",
        p % 3,
        p % 3,
        (p + 1) % 3
    );
    assert_eq!(out.stdout, expected);
    let out = kv_in(d, &["status", "nobody"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.starts_with("NOT_FOUND partition="), "{out:?}");

    let out = kv_in(d, &["inspect", "0"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let headers: Vec<&str> = out
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with("  "))
        .collect();
    assert_eq!(
        headers,
        [
            "partition 0 (leader): 0 hot keys",
            "partition 2 (follower): 0 hot keys",
            "partition 3 (leader): 0 hot keys"
        ],
        "{out:?}"
    );

    let out = kv_in(d, &["cluster"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut lines = out.lines();
    assert_eq!(lines.len(), 1 + 3 + 4, "{out:?}");
    let controller = lines.remove(0);
    assert!(
        controller.starts_with("controller: leader node ")
            && controller.contains(", voters 0,1,2, map version "),
        "{out:?}"
    );
    for (i, line) in lines[..3].iter().enumerate() {
        assert!(
            line.starts_with(&format!("node {i} 127.0.0.1:")) && line.contains(" up,"),
            "{out:?}"
        );
    }
    for (p, line) in lines[3..].iter().enumerate() {
        assert!(
            line.starts_with(&format!("partition {p}: leader node {} epoch=", p % 3))
                && line.contains(" lsn="),
            "{out:?}"
        );
        assert!(
            line.contains(&format!("; follower node {} epoch=", (p + 1) % 3)),
            "{out:?}"
        );
    }

    let out = kv_in(d, &["del", "user:1"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    let out = kv_in(d, &["del", "user:1"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let out = kv_in(d, &["get", "user:1"]);
    assert_eq!(out.code, Some(1), "{out:?}");
}

#[test]
fn usage_errors_exit_with_2_before_touching_data() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        &["get"][..],
        &["put", "k"],
        &["get", "a", "b"],
        &["frobnicate"],
        &["get", ""],
        &["inspect", "x"],
        &["--config", "a.toml", "--cluster", "b.toml", "get", "k"],
        &["node", "--id", "0"],
    ] {
        let out = kv_in(d, args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert_eq!(out.stdout, "", "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}");
    }
    assert!(
        !d.join("d").exists(),
        "a usage error must not create the data directory"
    );
    assert_eq!(kv_in(d, &["init"]).code, Some(0));
    let out = kv_in(d, &["inspect", "7"]);
    assert_eq!(out.code, Some(2), "unknown node: {out:?}");
    assert!(
        out.stderr
            .contains("node 7 is not in the cluster; its nodes are 0, 1, 2"),
        "{out:?}"
    );
}

#[test]
fn bad_config_files_give_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("syntax.toml", "partitions = \n", "TOML parse error"),
        (
            "type.toml",
            "partitions = \"four\"\nreplication_factor = 2\n",
            "partitions",
        ),
        (
            "unknown.toml",
            "partitions = 4\nreplication_factor = 1\nshards = 3\n[[nodes]]\nid = 0\naddr = \"127.0.0.1:0\"\n",
            "shards",
        ),
        (
            "rf.toml",
            "partitions = 4\nreplication_factor = 3\n[[nodes]]\nid = 0\naddr = \"127.0.0.1:0\"\n",
            "replication_factor = 3",
        ),
    ];
    for (file, text, needle) in cases {
        std::fs::write(d.join(file), text).unwrap();
        for flag in ["--config", "--cluster"] {
            let out = run(d, &[flag, file, "get", "k"], "");
            assert_eq!(out.code, Some(2), "{file} {flag}: {out:?}");
            assert_eq!(out.stderr.lines().count(), 1, "{file} {flag}: {out:?}");
            assert!(
                out.stderr
                    .starts_with(&format!("error: config file {file}: ")),
                "{out:?}"
            );
            assert!(out.stderr.contains(needle), "{file}: {out:?}");
        }
        let out = run(d, &["node", "--config", file, "--id", "0"], "");
        assert_eq!(
            (out.code, out.stderr.lines().count()),
            (Some(2), 1),
            "{out:?}"
        );
    }
    let out = run(d, &["--config", "missing.toml", "get", "k"], "");
    assert_eq!(out.code, Some(2), "{out:?}");
    assert!(
        out.stderr.contains("cannot read config file missing.toml"),
        "{out:?}"
    );
    assert!(!d.join("data").exists(), "nothing started");
}

#[test]
fn another_partition_count_is_refused_and_nothing_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(kv_in(d, &["init"]).code, Some(0));
    let out = kv_in(d, &["put", "nama", "Rafi Widya"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let before = snapshot(&d.join("d"));

    let eight = "partitions = 8\nreplication_factor = 2\n\
        [[nodes]]\nid = 0\naddr = \"127.0.0.1:0\"\n\
        [[nodes]]\nid = 1\naddr = \"127.0.0.1:0\"\n\
        [[nodes]]\nid = 2\naddr = \"127.0.0.1:0\"\n";
    std::fs::write(d.join("eight.toml"), eight).unwrap();
    for args in [
        &["--config", "eight.toml", "get", "nama"][..],
        &["--config", "eight.toml", "node", "--id", "1"],
        &["--config", "eight.toml"],
    ] {
        let out = kv_in(d, args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
        assert!(
            out.stderr.contains("partitions = 4") && out.stderr.contains("partitions = 8"),
            "{out:?}"
        );
        assert!(out.stderr.contains("refusing"), "{out:?}");
        assert_eq!(
            snapshot(&d.join("d")),
            before,
            "{args:?} touched the data directory"
        );
    }

    let out = kv_in(d, &["get", "nama"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "Rafi Widya\n"),
        "{out:?}"
    );
}

//! The keyspace commands of the `kv` binary, one-shot and in the shell:
//! `scan`, `keys`, `mget`, `mset`, `put --ttl`, `ttl`, `expire`,
//! `persist`; their output, `-o json` and exit codes.

mod common;

use std::path::Path;

use common::run;
use serde_json::Value as Json;

fn kv_in(dir: &Path, args: &[&str]) -> common::Output {
    let mut all = vec!["--data-dir", "d"];
    all.extend_from_slice(args);
    run(dir, &all, "")
}

fn init(d: &Path) {
    let out = kv_in(d, &["init"]);
    assert_eq!(out.code, Some(0), "{out:?}");
}

fn sorted(lines: Vec<&str>) -> Vec<String> {
    let mut lines: Vec<String> = lines.into_iter().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn mset_mget_scan_and_keys_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let mut pairs = vec!["mset"];
    let names: Vec<String> = (0..30).map(|i| format!("user:{i:02}")).collect();
    for n in &names {
        pairs.extend([n.as_str(), n.as_str()]);
    }
    pairs.extend(["order:1", r#"{"total": 5}"#]);
    let out = kv_in(d, &pairs);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );

    let out = kv_in(d, &["mget", "user:03", "nobody", "order:1"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout, "user:03\n(nil)\n{\"total\": 5}\n");

    // scan lists every key once; a prefix narrows it; --limit cuts it
    // short and says so on stderr.
    let out = kv_in(d, &["scan"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let mut all = names.clone();
    all.push("order:1".into());
    all.sort();
    assert_eq!(sorted(out.lines()), all);
    let out = kv_in(d, &["scan", "user:1"]);
    let tens: Vec<String> = (10..20).map(|i| format!("user:{i}")).collect();
    assert_eq!(sorted(out.lines()), tens, "{out:?}");
    let out = kv_in(d, &["scan", "--limit", "4"]);
    assert_eq!((out.code, out.lines().len()), (Some(0), 4), "{out:?}");
    assert!(out.stderr.contains("stopped at 4 keys"), "{out:?}");

    // keys: sorted.
    let out = kv_in(d, &["keys", "user:2"]);
    let twenties: Vec<String> = (20..30).map(|i| format!("user:{i}")).collect();
    assert_eq!(out.stdout, format!("{}\n", twenties.join("\n")), "{out:?}");
    let out = kv_in(d, &["keys", "zzz"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""), "{out:?}");
    assert_eq!(out.stderr.trim(), "(empty)");

    // -o json.
    let out = kv_in(d, &["-o", "json", "keys", "order"]);
    let answer: Json = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(answer["keys"], serde_json::json!(["order:1"]));
    assert_eq!(answer["truncated"], Json::Bool(false));
    let out = kv_in(d, &["-o", "json", "mget", "order:1", "nobody"]);
    let answer: Json = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(answer["values"][0]["value"]["total"], Json::from(5));
    assert_eq!(answer["values"][1]["found"], Json::Bool(false));

    // Usage errors exit 2.
    for args in [&["mset", "a"][..], &["mset", "a", "1", "b"], &["mget"]] {
        let out = kv_in(d, args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
}

#[test]
fn the_shell_runs_the_keyspace_commands() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let script = "mset a 1 b 2 c 3\nmget a zz c\nkeys ''\nscan b\nhelp\n";
    let out = run(d, &["--data-dir", "d"], script);
    assert_eq!(out.code, Some(0), "{out:?}");
    let lines = out.lines();
    let at = lines.iter().position(|l| *l == "OK").expect("mset OK");
    assert_eq!(lines[at + 1..at + 4], ["1", "(nil)", "3"], "{out:?}");
    assert_eq!(lines[at + 4..at + 7], ["a", "b", "c"], "{out:?}");
    assert_eq!(lines[at + 7], "b", "{out:?}");
    for name in ["scan", "keys", "mget", "mset", "ttl", "expire", "persist"] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("  {name} "))),
            "help lacks {name}: {out:?}"
        );
    }
}

#[test]
fn put_ttl_expire_persist_one_shot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let out = kv_in(d, &["put", "session", "abc", "--ttl", "1h"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    let seconds = |out: &common::Output| -> f64 {
        let text = out
            .stdout
            .trim()
            .strip_suffix('s')
            .expect("a time in seconds");
        text.parse().unwrap()
    };
    let out = kv_in(d, &["ttl", "session"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let left = seconds(&out);
    assert!(left > 0.0 && left <= 3600.0, "{out:?}");

    let out = kv_in(d, &["persist", "session"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    let out = kv_in(d, &["ttl", "session"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "persistent\n"));
    let out = kv_in(d, &["expire", "session", "90s"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (Some(0), "OK\n"),
        "{out:?}"
    );
    let out = kv_in(d, &["-o", "json", "ttl", "session"]);
    let answer: Json = serde_json::from_str(out.stdout.trim()).unwrap();
    let ms = answer["ttl_ms"].as_u64().expect("ttl_ms");
    assert!(ms > 0 && ms <= 90_000, "{answer}");
    assert_eq!(answer["persistent"], Json::Bool(false));

    // Missing keys: (nil) and exit 1, as get does.
    for args in [
        &["ttl", "nobody"][..],
        &["expire", "nobody", "5s"],
        &["persist", "nobody"],
    ] {
        let out = kv_in(d, args);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(1), ""),
            "{args:?}: {out:?}"
        );
        assert_eq!(out.stderr.trim(), "(nil)", "{args:?}");
    }
    // expire 0s deletes the key.
    let out = kv_in(d, &["expire", "session", "0s"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = kv_in(d, &["get", "session"]);
    assert_eq!(out.code, Some(1), "{out:?}");

    // Bad durations are usage errors.
    for args in [
        &["put", "k", "v", "--ttl", "soon"][..],
        &["put", "k", "v", "--ttl", "0s"],
        &["expire", "k", "10x"],
    ] {
        let out = kv_in(d, args);
        assert_eq!(out.code, Some(2), "{args:?}: {out:?}");
    }
}

//! The seed's shell walkthrough, word for word, through stdin; then a
//! restart on the same data directory.

mod common;

use common::run;
use kv_router::partition_for;

const NAMA: &str = "Rafi Widya";
const EVENT: &str = r#"{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}"#;
const PROFILE: &str = r#"{"jurusan": "Sistem Informasi", "angkatan": 2022}"#;

const SEED_SCRIPT: &str = r#"put nama "Rafi Widya"
get nama
put event:login '{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}'
get event:login
put user:101:profile '{"jurusan": "Sistem Informasi", "angkatan": 2022}'
get user:101:profile
status nama
inspect 1 # node_id bisa disesuaikan (0, 1, atau 2)
exit
"#;

/// The default topology: replica i of partition p on node (p + i) mod 3.
fn replicas(p: u32) -> [u32; 2] {
    [p % 3, (p + 1) % 3]
}

fn status_line(word: &str, key: &str) -> String {
    let p = partition_for(key.as_bytes(), 4);
    let [leader, follower] = replicas(p);
    format!("{word} partition={p} leader=node{leader} replicas=[{leader}, {follower}]")
}

/// The lines of `inspect 1` for one partition: its header and keys.
fn inspect_section<'a>(lines: &[&'a str], p: u32) -> Vec<&'a str> {
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("partition {p} (")))
        .unwrap_or_else(|| panic!("no section for partition {p} in {lines:?}"));
    let mut section = vec![lines[start]];
    section.extend(
        lines[start + 1..]
            .iter()
            .take_while(|l| l.starts_with("  ")),
    );
    section
}

#[test]
fn seed_walkthrough_then_restart_finds_everything_cold() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], SEED_SCRIPT);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stderr, "", "the shell must not be noisy");
    let lines = out.lines();
    assert_eq!(
        lines[..7],
        [
            "OK",
            NAMA,
            "OK",
            EVENT,
            "OK",
            PROFILE,
            &status_line("HOT_STORAGE", "nama"),
        ],
        "{out:?}"
    );

    // inspect 1: node 1 leads partition 1 and follows partitions 0 and 3.
    let inspect = &lines[7..];
    let headers: Vec<&str> = inspect
        .iter()
        .copied()
        .filter(|l| !l.starts_with("  "))
        .collect();
    let roles: Vec<String> = headers
        .iter()
        .map(|h| h.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(
        roles,
        [
            "partition 0 (follower)",
            "partition 1 (leader)",
            "partition 3 (follower)"
        ],
        "{out:?}"
    );
    // Keys led by node 1 were just written there, so they are hot; keys of
    // partitions node 1 does not hold never show up.
    let keys = ["nama", "event:login", "user:101:profile"];
    for key in keys {
        let p = partition_for(key.as_bytes(), 4);
        let shown = inspect.contains(&format!("  {key}").as_str());
        match p {
            1 => assert!(
                inspect_section(inspect, 1).contains(&format!("  {key}").as_str()),
                "{key}: {out:?}"
            ),
            2 => assert!(!shown, "{key} is in partition 2, not on node 1: {out:?}"),
            _ => {}
        }
    }

    // Restart on the same data directory: every value is there, and keys
    // not read since the restart are cold.
    let script = "status nama\nstatus event:login\nstatus user:101:profile\n\
                  get nama\nget event:login\nget user:101:profile\nstatus nama\nquit\n";
    let out = run(dir.path(), &[], script);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(
        out.lines(),
        [
            status_line("COLD_STORAGE", "nama").as_str(),
            &status_line("COLD_STORAGE", "event:login"),
            &status_line("COLD_STORAGE", "user:101:profile"),
            NAMA,
            EVENT,
            PROFILE,
            &status_line("HOT_STORAGE", "nama"),
        ],
        "{out:?}"
    );
    assert!(
        dir.path().join("data/node_0").is_dir(),
        "data goes to ./data by default"
    );
}

#[test]
fn a_script_stops_at_the_first_failed_line_unless_keep_going() {
    let dir = tempfile::tempdir().unwrap();
    let script = "get nothing\nfrobnicate\nget\ndel nothing\n\
                  put k v\ndel k\nget k\nhelp\nput k 'open\n";
    let out = run(dir.path(), &["--data-dir", "d", "--keep-going"], script);
    assert_eq!(out.code, Some(3), "a line failed: {out:?}");
    let lines = out.lines();
    assert_eq!(lines[0], "(nil)");
    assert_eq!(lines[1], "(error) unknown command 'frobnicate'; type help");
    assert!(
        lines[2].starts_with("(error) ") && lines[2].contains("usage: get <KEY>"),
        "{out:?}"
    );
    assert_eq!(lines[3..7], ["(nil)", "OK", "OK", "(nil)"], "{out:?}");
    assert!(
        lines[7..]
            .iter()
            .any(|l| l.trim_start().starts_with("status <KEY>")),
        "{out:?}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with("(error) ") && last.contains("quote"),
        "{out:?}"
    );
    assert!(dir.path().join("d/node_2").is_dir());

    let out = run(dir.path(), &["--data-dir", "d"], script);
    assert_eq!(out.code, Some(3), "{out:?}");
    assert_eq!(
        out.lines(),
        ["(nil)", "(error) unknown command 'frobnicate'; type help"],
        "stops at the first failed line"
    );
    let out = run(dir.path(), &["--data-dir", "d"], "put a 1\nget a\n");
    assert_eq!((out.code, out.lines()), (Some(0), vec!["OK", "1"]));
}

//! How replies are printed.
//!
//! [`render`] turns a [`Reply`] into answer lines, notes and an
//! [`Outcome`]. The shell prints the answer lines and then each note on its
//! own line; a one-shot command prints the answer on stdout and the notes
//! on stderr, and exits with 1 when the key was not found, 3 when a node
//! is down. The value line of a `get` is always the value alone, so
//! scripts can use it as is. As redis-cli does, an empty text value shows
//! as `""` and one with control characters as a quoted string with
//! escapes ([`escape`]); `--raw` prints values exactly as stored.
//! `-o json` answers are built by [`crate::json`].
//!
//! Everything is written through [`Out`], which turns a closed stdout
//! (`kv ... | head -1`) into a quiet stop instead of a panic.

use std::collections::BTreeMap;

use kv_codec::Value;
use kv_node::protocol::control::ControllerInfo;
use kv_node::protocol::{HistoryInfo, NodeInfo, PartitionInfo, PartitionKeys, ReplicaState};
use kv_node::{Location, Read};
use kv_router::{ClusterMap, NodeId, PartitionId};

use crate::command::Reply;
use crate::keyspace;

/// What an answer says about the command, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done (exit 0).
    Ok,
    /// The key does not exist (exit 1).
    NotFound,
    /// Answered, but part of the cluster is down (exit 3).
    Degraded,
}

/// A reply ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The answer.
    pub lines: Vec<String>,
    /// Remarks about the answer: `(nil)`, possibly-stale notices.
    pub notes: Vec<String>,
    /// What the answer means for the exit code.
    pub outcome: Outcome,
}

impl Rendered {
    fn answer(lines: Vec<String>) -> Rendered {
        Rendered {
            lines,
            notes: Vec::new(),
            outcome: Outcome::Ok,
        }
    }

    fn nil() -> Rendered {
        Rendered {
            lines: Vec::new(),
            notes: vec!["(nil)".to_string()],
            outcome: Outcome::NotFound,
        }
    }

    fn with_stale_note<T>(mut self, read: &Read<T>, map: &ClusterMap) -> Rendered {
        if read.stale {
            let leader = map
                .leader(read.partition)
                .map_or_else(|| "?".to_string(), |l| l.to_string());
            self.notes.push(format!(
                "(possibly stale: leader node {leader} unavailable, answered by follower node {})",
                read.node
            ));
        }
        self
    }
}

/// Renders a reply; `map` names leaders and addresses; `raw` prints
/// values exactly as stored.
pub fn render(reply: &Reply, map: &ClusterMap, raw: bool) -> Rendered {
    match reply {
        Reply::Stored => Rendered::answer(vec!["OK".to_string()]),
        Reply::Value(read) => match &read.value {
            Some(value) => Rendered::answer(vec![value_text(value, raw)]),
            None => Rendered::nil(),
        }
        .with_stale_note(read, map),
        Reply::Deleted(true) => Rendered::answer(vec!["OK".to_string()]),
        Reply::Deleted(false) => Rendered::nil(),
        Reply::Status { read, replicas, .. } => Rendered {
            lines: vec![status_line(read, replicas)],
            notes: Vec::new(),
            outcome: match read.value {
                Location::Missing => Outcome::NotFound,
                _ => Outcome::Ok,
            },
        }
        .with_stale_note(read, map),
        Reply::Inspect {
            partitions,
            histories,
            ..
        } => Rendered::answer(inspect_lines(partitions, histories)),
        Reply::Keys(list) => keyspace::render_keys(list, "use --limit N to list more"),
        Reply::Values(reads) => keyspace::render_values(reads, raw),
        Reply::Ttl(read) => keyspace::render_ttl(read).with_stale_note(read, map),
        Reply::ExpiryChanged(true) => Rendered::answer(vec!["OK".to_string()]),
        Reply::ExpiryChanged(false) => Rendered::nil(),
        Reply::Cluster { infos, controller } => {
            let mut lines = vec![controller_line(controller)];
            lines.extend(cluster_lines(infos, map));
            Rendered {
                outcome: if infos.iter().any(|(_, i)| i.is_err()) {
                    Outcome::Degraded
                } else {
                    Outcome::Ok
                },
                ..Rendered::answer(lines)
            }
        }
        Reply::Moved {
            partition,
            node,
            version,
            behind,
            unclean,
        } => {
            let mut line =
                format!("OK: partition {partition} is led by node {node} (map version {version})");
            match (unclean, behind) {
                (false, _) => {}
                (true, Some(n)) => line.push_str(&format!(
                    "; node {node} lacked {n} entr{} of the old leader's last reported position: lost",
                    if *n == 1 { "y" } else { "ies" }
                )),
                (true, None) => line.push_str(
                    "; how many entries the old leader held beyond it is unknown (the controller never heard its last position): they are lost",
                ),
            }
            Rendered::answer(vec![line])
        }
    }
}

/// A value as `get` prints it: text as is, except that an empty text is
/// `""` and one with control characters is quoted with escapes (unless
/// `raw`); V4 bytes quoted with escapes as redis-cli prints them (with
/// `raw`, invalid UTF-8 shows as U+FFFD); events and JSON as their
/// canonical text.
pub fn value_text(value: &Value, raw: bool) -> String {
    match value {
        Value::Text(s) if !raw && (s.is_empty() || s.chars().any(char::is_control)) => {
            escape(s.as_bytes())
        }
        Value::Bytes(b) if raw => String::from_utf8_lossy(b).into_owned(),
        Value::Bytes(b) => escape(b),
        other => other.render(),
    }
}

/// redis-cli's quoted form of a byte string: `"` around it, `\\` and `\"`
/// for backslash and quote, `\n \r \t \a \b` for those controls, `\xHH`
/// for other control characters and for bytes that are not UTF-8.
/// Printable characters, non-ASCII letters included, stay as they are.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{7}' => out.push_str("\\a"),
                '\u{8}' => out.push_str("\\b"),
                c if c.is_control() => {
                    let mut buf = [0; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

/// Standard output that notices when nobody reads any more.
pub struct Out {
    closed: bool,
}

impl Out {
    /// Stdout, open.
    pub fn stdout() -> Out {
        Out { closed: false }
    }

    /// Writes `line` and a newline (flushed); false once stdout is closed
    /// (a broken pipe), after which nothing more is written.
    pub fn line(&mut self, line: impl std::fmt::Display) -> bool {
        use std::io::Write;
        if !self.closed {
            let mut stdout = std::io::stdout().lock();
            let written = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
            self.closed = written.is_err();
        }
        !self.closed
    }

    /// Whether a write failed because stdout was closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }
}

/// `HOT_STORAGE`, `COLD_STORAGE` or `NOT_FOUND`.
pub fn location_word(location: Location) -> &'static str {
    match location {
        Location::Hot => "HOT_STORAGE",
        Location::Cold => "COLD_STORAGE",
        Location::Missing => "NOT_FOUND",
    }
}

/// `HOT_STORAGE partition=1 leader=node1 replicas=[1, 2]` (the in-sync
/// set is in `kv cluster` and in `status -o json`; this line is a
/// contract, DESIGN §7).
fn status_line(read: &Read<Location>, replicas: &[NodeId]) -> String {
    let word = location_word(read.value);
    let leader = replicas
        .first()
        .map_or_else(|| "?".to_string(), |l| format!("node{l}"));
    let list: Vec<String> = replicas.iter().map(ToString::to_string).collect();
    format!(
        "{word} partition={} leader={leader} replicas=[{}]",
        read.partition,
        list.join(", ")
    )
}

/// For each partition: its role, how many hot keys, then its rollback
/// files if it has any, then the hot keys one per line (quoted like a
/// shell word when needed).
fn inspect_lines(
    partitions: &[PartitionKeys],
    histories: &BTreeMap<PartitionId, HistoryInfo>,
) -> Vec<String> {
    let mut lines = Vec::new();
    for p in partitions {
        let n = p.hot_keys.len();
        lines.push(format!(
            "partition {} ({}): {n} hot key{}",
            p.partition,
            p.role,
            plural(n as u64)
        ));
        if let Some(h) = histories.get(&p.partition) {
            lines.extend(rollback_lines(h));
        }
        for key in &p.hot_keys {
            let key = String::from_utf8_lossy(key);
            lines.push(format!("  {}", shell_words::quote(&key)));
        }
    }
    lines
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `controller: leader node 1, term 3, voters 0,1,2, map version 7`.
fn controller_line(controller: &Result<ControllerInfo, String>) -> String {
    match controller {
        Ok(c) => {
            let voters: Vec<String> = c.voters.iter().map(|v| v.to_string()).collect();
            let leader = c
                .leader
                .map_or_else(|| "none".to_string(), |l| format!("node {l}"));
            format!(
                "controller: leader {leader}, term {}, voters {}, map version {}",
                c.term,
                voters.join(","),
                c.version
            )
        }
        Err(e) => format!("controller: {e}"),
    }
}

/// Every node's info (or the error reaching it), by node.
pub type Infos = BTreeMap<NodeId, Result<NodeInfo, String>>;

fn cluster_lines(infos: &[(NodeId, Result<NodeInfo, String>)], map: &ClusterMap) -> Vec<String> {
    let infos: Infos = infos.iter().cloned().collect();
    let mut lines = Vec::new();
    for node in map.nodes() {
        let health = match infos.get(&node.id) {
            Some(Ok(info)) => node_summary(info),
            Some(Err(e)) => format!("DOWN: {e}"),
            None => "unknown".to_string(),
        };
        lines.push(format!("node {} {} {health}", node.id, node.addr));
    }
    for p in 0..map.partition_count() {
        lines.push(partition_line(p, map, &infos));
    }
    lines
}

fn node_summary(info: &NodeInfo) -> String {
    let leading = info
        .partitions
        .iter()
        .filter(|p| p.role == kv_router::Role::Leader)
        .count();
    let keys: u64 = info.partitions.iter().map(|p| p.keys).sum();
    let n = info.partitions.len();
    format!(
        "up, {n} partition{} ({leading} led), {keys} key{}",
        plural(n as u64),
        plural(keys)
    )
}

/// The replica `node` holds of partition `p`, if the node answered.
pub fn replica_info(infos: &Infos, node: NodeId, p: PartitionId) -> Option<&PartitionInfo> {
    match infos.get(&node) {
        Some(Ok(info)) => info.partitions.iter().find(|r| r.partition == p),
        _ => None,
    }
}

/// `partition 0: leader node 0 epoch=2 lsn=3 ready; follower node 1 epoch=2 lsn=3 lag=0 streaming; isr=0,1`
fn partition_line(p: PartitionId, map: &ClusterMap, infos: &Infos) -> String {
    let replicas = map.replicas(p).unwrap_or(&[]);
    let Some((&leader, followers)) = replicas.split_first() else {
        return format!("partition {p}: no replicas");
    };
    let lead = replica_info(infos, leader, p);
    let mut parts = vec![match lead {
        Some(r) => format!(
            "leader node {leader} epoch={} lsn={} {}{}",
            r.history.epoch,
            r.position.lsn,
            state_word(r.state),
            health(r)
        ),
        None => format!("leader node {leader} DOWN"),
    }];
    for &f in followers {
        parts.push(follower_part(f, lead, replica_info(infos, f, p)));
    }
    if let Some(r) = lead.filter(|r| r.state != ReplicaState::Failed) {
        parts.push(in_sync_part(leader, r));
    }
    format!("partition {p}: {}", parts.join("; "))
}

/// The in-sync set as the leader reports it, leader first: `isr=0,1`.
fn in_sync_part(leader: NodeId, lead: &PartitionInfo) -> String {
    let ids: Vec<String> = std::iter::once(leader)
        .chain(lead.in_sync_followers())
        .map(|n| n.to_string())
        .collect();
    format!("isr={}", ids.join(","))
}

fn state_word(state: ReplicaState) -> &'static str {
    match state {
        ReplicaState::Ready => "ready",
        ReplicaState::Recovering => "recovering",
        ReplicaState::Failed => "FAILED",
    }
}

/// Storage trouble of a replica, empty when there is none:
/// ` truncated_tail_bytes=30 background_errors=2 POISONED (problem)`.
fn health(r: &PartitionInfo) -> String {
    let h = &r.health;
    let mut out = String::new();
    if h.truncated_tail_bytes > 0 {
        out += &format!(" truncated_tail_bytes={}", h.truncated_tail_bytes);
    }
    if h.background_errors > 0 {
        out += &format!(" background_errors={}", h.background_errors);
    }
    if h.poisoned {
        out += " POISONED";
    }
    if !h.problem.is_empty() {
        out += &format!(" ({})", h.problem);
    }
    out + &rollbacks(r)
}

/// `  rolled back 3 entries since start; rollback files:` and one file per
/// line, or nothing when the replica never truncated.
fn rollback_lines(h: &HistoryInfo) -> Vec<String> {
    if h.rollback_files.is_empty() && h.rolled_back == 0 {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "  rolled back {} entr{} since start; rollback files:",
        h.rolled_back,
        if h.rolled_back == 1 { "y" } else { "ies" }
    )];
    lines.extend(h.rollback_files.iter().map(|f| format!("    {f}")));
    lines
}

/// Log-matching truncations of a replica, empty when none:
/// ` rolled_back=10 rollback_files=[/data/node_1/partition_0/rollback/rollback-1.kvrb]`.
fn rollbacks(r: &PartitionInfo) -> String {
    let h = &r.history;
    if h.rolled_back == 0 && h.rollback_files.is_empty() {
        return String::new();
    }
    format!(
        " rolled_back={} rollback_files=[{}]",
        h.rolled_back,
        h.rollback_files.join(", ")
    )
}

fn follower_part(
    node: NodeId,
    lead: Option<&PartitionInfo>,
    own: Option<&PartitionInfo>,
) -> String {
    let leader_lsn = lead.map(|l| l.position.lsn);
    let lag = |lsn: u64| {
        leader_lsn.map_or_else(|| "?".to_string(), |l| l.saturating_sub(lsn).to_string())
    };
    match own {
        Some(r) => {
            let stream = if r.leader_connected {
                "streaming"
            } else {
                "not streaming"
            };
            let resyncs = match r.full_resyncs {
                0 => String::new(),
                n => format!(" full_resyncs={n}"),
            };
            let state = match r.state {
                ReplicaState::Ready => String::new(),
                s => format!(" {}", state_word(s)),
            };
            format!(
                "follower node {node} epoch={} lsn={} lag={} {stream}{state}{resyncs}{}",
                r.history.epoch,
                r.position.lsn,
                lag(r.position.lsn),
                health(r)
            )
        }
        None => {
            let acked = lead.and_then(|l| l.followers.iter().find(|f| f.node == node));
            match acked {
                Some(a) => format!(
                    "follower node {node} DOWN acked_lsn={} lag={}",
                    a.acked.lsn,
                    lag(a.acked.lsn)
                ),
                None => format!("follower node {node} DOWN lag=?"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kv_codec::Value;
    use kv_node::Position;
    use kv_node::protocol::{FollowerInfo, Health, HistoryInfo};
    use kv_router::{ClusterConfig, Role};

    use super::*;

    fn map() -> ClusterMap {
        ClusterMap::new(&ClusterConfig::default_topology()).unwrap()
    }

    fn read<T>(value: T, partition: PartitionId, node: NodeId, stale: bool) -> Read<T> {
        Read {
            value,
            partition,
            node,
            stale,
        }
    }

    #[test]
    fn get_prints_the_value_alone_and_notes_staleness_apart() {
        let reply = Reply::Value(read(Some(Value::from_user_input("Rafi Widya")), 1, 2, true));
        let r = render(&reply, &map(), false);
        assert_eq!(r.lines, ["Rafi Widya"]);
        assert_eq!(
            r.notes,
            ["(possibly stale: leader node 1 unavailable, answered by follower node 2)"]
        );
        assert_eq!(r.outcome, Outcome::Ok);
        let missing = render(&Reply::Value(read(None, 0, 0, false)), &map(), false);
        assert_eq!(
            (missing.lines.len(), missing.outcome),
            (0, Outcome::NotFound)
        );
        assert_eq!(missing.notes, ["(nil)"]);
    }

    #[test]
    fn binary_values_print_as_redis_cli_does() {
        let value = Value::from_bytes(b"\xff\x00A\n\"");
        assert_eq!(value_text(&value, false), r#""\xff\x00A\n\"""#);
        assert_eq!(value_text(&value, true), "\u{fffd}\0A\n\"");
        assert_eq!(value_text(&Value::from_user_input("plain"), false), "plain");
    }

    #[test]
    fn status_starts_with_the_location_word() {
        let status = |location| Reply::Status {
            read: read(location, 1, 1, false),
            replicas: vec![1, 2],
            in_sync: Some(vec![1]),
        };
        let hot = render(&status(Location::Hot), &map(), false);
        assert_eq!(
            hot.lines,
            ["HOT_STORAGE partition=1 leader=node1 replicas=[1, 2]"]
        );
        let cold = render(&status(Location::Cold), &map(), false);
        assert!(cold.lines[0].starts_with("COLD_STORAGE partition=1 "));
        let missing = render(&status(Location::Missing), &map(), false);
        assert!(missing.lines[0].starts_with("NOT_FOUND ") && missing.outcome == Outcome::NotFound);
    }

    #[test]
    fn inspect_lists_roles_and_quotes_odd_keys() {
        let reply = Reply::Inspect {
            node: 1,
            partitions: vec![
                PartitionKeys {
                    partition: 0,
                    role: Role::Follower,
                    hot_keys: vec![],
                },
                PartitionKeys {
                    partition: 1,
                    role: Role::Leader,
                    hot_keys: vec![Bytes::from("nama"), Bytes::from("two words")],
                },
            ],
            histories: BTreeMap::from([
                (
                    0,
                    HistoryInfo {
                        epoch: 3,
                        rolled_back: 2,
                        rollback_files: vec!["/d/rollback/rollback-0000000001.kvrb".into()],
                    },
                ),
                (1, HistoryInfo::default()),
            ]),
        };
        assert_eq!(
            render(&reply, &map(), false).lines,
            [
                "partition 0 (follower): 0 hot keys",
                "  rolled back 2 entries since start; rollback files:",
                "    /d/rollback/rollback-0000000001.kvrb",
                "partition 1 (leader): 2 hot keys",
                "  nama",
                "  'two words'",
            ]
        );
    }

    fn pinfo(partition: PartitionId, role: Role, lsn: u64) -> PartitionInfo {
        PartitionInfo {
            partition,
            role,
            state: ReplicaState::Ready,
            position: Position { epoch: 1, lsn },
            keys: lsn,
            disk_bytes: 0,
            hot_keys: 0,
            full_resyncs: 0,
            leader_connected: role == Role::Follower,
            leader_position: Position { epoch: 1, lsn },
            followers: Vec::new(),
            health: Health::default(),
            history: HistoryInfo {
                epoch: 2,
                ..HistoryInfo::default()
            },
        }
    }

    #[test]
    fn cluster_shows_lag_and_down_nodes() {
        let map = map();
        let mut p0 = pinfo(0, Role::Leader, 10);
        p0.followers = vec![FollowerInfo {
            node: 1,
            connected: false,
            acked: Position { epoch: 1, lsn: 7 },
            in_sync: true,
        }];
        let node0 = NodeInfo {
            node: 0,
            map_version: 0,
            partitions: vec![p0, pinfo(2, Role::Follower, 4), pinfo(3, Role::Leader, 0)],
        };
        let node2 = NodeInfo {
            node: 2,
            map_version: 0,
            partitions: vec![pinfo(1, Role::Follower, 3), pinfo(2, Role::Leader, 5)],
        };
        let reply = Reply::Cluster {
            infos: vec![
                (0, Ok(node0)),
                (1, Err("cannot connect".to_string())),
                (2, Ok(node2)),
            ],
            controller: Ok(ControllerInfo {
                node: 0,
                leader: Some(2),
                term: 4,
                voters: vec![0, 1, 2],
                version: 7,
                partitions: vec![],
            }),
        };
        let rendered = render(&reply, &map, false);
        assert_eq!(rendered.outcome, Outcome::Degraded);
        let mut lines = rendered.lines;
        assert_eq!(
            lines.remove(0),
            "controller: leader node 2, term 4, voters 0,1,2, map version 7"
        );
        assert!(lines[0].starts_with("node 0 127.0.0.1:0 up, 3 partitions (2 led), 14 keys"));
        assert_eq!(lines[1], "node 1 127.0.0.1:0 DOWN: cannot connect");
        assert_eq!(
            lines[3..],
            [
                "partition 0: leader node 0 epoch=2 lsn=10 ready; follower node 1 DOWN acked_lsn=7 \
                 lag=3; isr=0,1",
                "partition 1: leader node 1 DOWN; follower node 2 epoch=2 lsn=3 lag=? streaming",
                "partition 2: leader node 2 epoch=2 lsn=5 ready; follower node 0 epoch=2 lsn=4 lag=1 \
                 streaming; isr=2",
                "partition 3: leader node 0 epoch=2 lsn=0 ready; follower node 1 DOWN lag=?; isr=0",
            ]
        );
    }

    #[test]
    fn a_moved_leadership_says_what_an_unclean_promotion_lost() {
        let map = map();
        let moved = |unclean, behind| Reply::Moved {
            partition: 2,
            node: 0,
            version: 9,
            behind,
            unclean,
        };
        let clean = render(&moved(false, Some(0)), &map, false).lines;
        assert_eq!(clean, ["OK: partition 2 is led by node 0 (map version 9)"]);
        let unclean = render(&moved(true, Some(12)), &map, false).lines;
        assert!(
            unclean[0].contains("node 0 lacked 12 entries"),
            "{unclean:?}"
        );
        let unknown = render(&moved(true, None), &map, false).lines;
        assert!(unknown[0].contains("unknown"), "{unknown:?}");
    }

    #[test]
    fn empty_and_control_values_are_quoted_like_redis_cli_unless_raw() {
        let text = |s: &str| Value::Text(s.to_string());
        assert_eq!(value_text(&text(""), false), "\"\"");
        assert_eq!(value_text(&text(""), true), "");
        assert_eq!(value_text(&text("Rafi Widya"), false), "Rafi Widya");
        assert_eq!(value_text(&text("say \"hi\""), false), "say \"hi\"");
        assert_eq!(value_text(&text("a\nb"), false), "\"a\\nb\"");
        assert_eq!(value_text(&text("a\nb"), true), "a\nb");
        assert_eq!(value_text(&text("café"), false), "café");
    }

    #[test]
    fn escape_matches_redis_cli_repr() {
        let cases: [(&[u8], &str); 6] = [
            (b"", r#""""#),
            (b"plain", r#""plain""#),
            (b"q\"b\\", r#""q\"b\\""#),
            (b"\t\r\n\x07\x08", r#""\t\r\n\a\b""#),
            (b"\x00\x1b\x7f", r#""\x00\x1b\x7f""#),
            (b"\xff\xc3\xa9", r#""\xffé""#),
        ];
        for (bytes, expected) in cases {
            assert_eq!(escape(bytes), expected, "{bytes:?}");
        }
    }

    #[test]
    fn cluster_shows_failed_partitions_and_storage_health() {
        let map = map();
        let mut follower = pinfo(0, Role::Follower, 9);
        follower.health.truncated_tail_bytes = 30;
        follower.health.background_errors = 2;
        follower.health.poisoned = true;
        follower.history.rolled_back = 3;
        follower.history.rollback_files = vec!["p0/rollback/rollback-1.kvrb".into()];
        let node0 = NodeInfo {
            node: 0,
            map_version: 0,
            partitions: vec![PartitionInfo::failed(
                0,
                Role::Leader,
                "store failed to open: corrupted".into(),
            )],
        };
        let node1 = NodeInfo {
            node: 1,
            map_version: 0,
            partitions: vec![follower],
        };
        let reply = Reply::Cluster {
            infos: vec![(0, Ok(node0)), (1, Ok(node1))],
            controller: Err("this cluster runs without a control plane".into()),
        };
        let lines = render(&reply, &map, false).lines;
        assert_eq!(
            lines[0],
            "controller: this cluster runs without a control plane"
        );
        let p0 = lines
            .iter()
            .find(|l| l.starts_with("partition 0:"))
            .unwrap();
        assert_eq!(
            p0,
            "partition 0: leader node 0 epoch=0 lsn=0 FAILED (store failed to open: corrupted); \
             follower node 1 epoch=2 lsn=9 lag=0 streaming truncated_tail_bytes=30 \
             background_errors=2 POISONED rolled_back=3 \
             rollback_files=[p0/rollback/rollback-1.kvrb]"
        );
    }
}

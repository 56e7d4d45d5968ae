//! A deterministic, socket-free simulation of one partition's replicas,
//! for tests: real stores in a temporary directory, the real
//! [`ReplicaMachine`] and [`FollowerMachine`], and a harness that carries
//! their effects out the way `transport` does, message by message.
//!
//! Scripts (`testscripts/*.txt`, toydb goldenscript style) are runs of
//! commands; the runner echoes each command followed by its output lines
//! (`> ...`) and compares the whole transcript with the file. Set
//! `UPDATE_GOLDEN=1` to rewrite the files, then review the diff.
//!
//! | command | effect |
//! |---------|--------|
//! | `lead N [epoch]` | node N becomes leader: catch up from its most advanced reachable peer, then begin a new epoch |
//! | `follow N L` | node N follows node L |
//! | `put N key value` / `del N key` | a client write on node N |
//! | `fill N count` | `count` puts on node N over keys `k0`..`k4` |
//! | `sync F` | node F subscribes to its leader once and takes what it streams (`chunks=K`: stop after K snapshot chunks, as if the source died) |
//! | `down N` / `up N` | N is (un)reachable for position questions |
//! | `mark N` | remember N's log lengths (what is durable) |
//! | `crash N` | N restarts, losing every byte written since `mark N` (epoch files survive) |
//! | `wipe N` | N loses its whole store (its role is kept) |
//! | `compact N` | compact N's store (retention as its followers set it) |
//! | `dump` | every replica: role, epoch, position, epoch history, rollbacks, keys |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kv_router::{NodeId, Role};
use kv_storage::{Options, Store, SyncPolicy};

use super::follower::{Action, FollowerMachine, Local};
use super::machine::{Effect, PeerPosition, SubscribeAnswer};
use crate::protocol::{Entry, Epoch, Position, Response};
use crate::replica::Replica;

/// Bytes per snapshot chunk in the simulation: one entry per chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1;

/// One partition's replicas, by node id.
pub struct Sim {
    dir: tempfile::TempDir,
    pub nodes: BTreeMap<NodeId, Arc<Replica>>,
    down: Vec<NodeId>,
    marks: BTreeMap<NodeId, Vec<(PathBuf, u64)>>,
}

fn open(dir: &Path, role: Role) -> Arc<Replica> {
    let options = Options {
        sync: SyncPolicy::Never,
        segment_bytes: 1024,
        ..Options::default()
    };
    let store = Store::open(dir, options).expect("open store");
    Arc::new(Replica::new(0, role, store, 1 << 20))
}

impl Sim {
    /// `n` replicas, node 0 the leader of an empty partition.
    pub fn new(n: NodeId) -> Sim {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sim = Sim {
            nodes: BTreeMap::new(),
            down: Vec::new(),
            marks: BTreeMap::new(),
            dir,
        };
        for id in 0..n {
            let replica = open(&sim.node_dir(id), Role::Follower);
            sim.nodes.insert(id, replica);
        }
        sim
    }

    fn node_dir(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node_{id}"))
    }

    fn replica(&self, id: NodeId) -> Arc<Replica> {
        Arc::clone(&self.nodes[&id])
    }

    fn peers(&self, id: NodeId) -> Vec<NodeId> {
        self.nodes.keys().copied().filter(|&n| n != id).collect()
    }

    /// Node `id` leads: the machine's effects, carried out.
    pub fn lead(&mut self, id: NodeId, epoch: Option<Epoch>, out: &mut Vec<String>) {
        let r = self.replica(id);
        let effects = {
            let mut m = r.machine();
            m.set_peers(self.peers(id));
            m.set_role(id, Role::Leader, None, epoch, r.position())
        };
        for effect in effects {
            match effect {
                Effect::AskPositions { .. } => self.recover(id, out),
                Effect::BeginEpoch(e) => self.begin(id, e, out),
                _ => {}
            }
        }
    }

    fn recover(&mut self, id: NodeId, out: &mut Vec<String>) {
        let r = self.replica(id);
        for _ in 0..8 {
            let replies: Vec<PeerPosition> = self
                .peers(id)
                .into_iter()
                .filter(|n| !self.down.contains(n))
                .map(|node| PeerPosition {
                    node,
                    position: self.nodes[&node].position(),
                    epoch: self.nodes[&node].machine().epoch(),
                })
                .collect();
            let effect = r.machine().on_positions(r.position(), &replies);
            match effect {
                Effect::PullFrom { node, target } => {
                    out.push(format!("pull from {node} up to {}", pos(target)));
                    self.session(
                        node,
                        id,
                        FollowerMachine::recovering(Instant::now()),
                        None,
                        out,
                    );
                }
                Effect::BeginEpoch(e) => return self.begin(id, e, out),
                _ => {
                    out.push("waiting: no peer answered".into());
                    return;
                }
            }
        }
    }

    fn begin(&mut self, id: NodeId, epoch: Epoch, out: &mut Vec<String>) {
        let r = self.replica(id);
        match r.begin_epoch(epoch) {
            Ok(()) => {
                r.machine().on_epoch_begun(epoch);
                out.push(format!("node {id} leads in epoch {epoch}"));
            }
            Err(e) => out.push(format!("begin_epoch({epoch}) failed: {e}")),
        }
    }

    /// Node `id` follows `leader`.
    pub fn follow(&mut self, id: NodeId, leader: NodeId) {
        let r = self.replica(id);
        let mut m = r.machine();
        m.set_peers(self.peers(id));
        m.set_role(id, Role::Follower, Some(leader), None, r.position());
    }

    /// A client put on `id`: its position, or why it was refused.
    pub fn put(&mut self, id: NodeId, key: &str, value: Option<&str>) -> String {
        let r = self.replica(id);
        if let Err(e) = r.machine().writable() {
            return format!("refused: {e:?}");
        }
        let key = Bytes::copy_from_slice(key.as_bytes());
        match value {
            Some(v) => match r.put(key, Bytes::copy_from_slice(v.as_bytes())) {
                Ok(p) => format!("ok {}", pos(p)),
                Err(e) => format!("error: {e}"),
            },
            None => match r.delete(key) {
                Ok(existed) => format!("ok existed={existed}"),
                Err(e) => format!("error: {e}"),
            },
        }
    }

    /// Follower `id` subscribes to its leader (resubscribing as its
    /// machine asks, a few times).
    pub fn sync(&mut self, id: NodeId, chunks: Option<usize>, out: &mut Vec<String>) {
        let Some(leader) = self.nodes[&id].machine().leader() else {
            out.push("no leader".into());
            return;
        };
        let machine = FollowerMachine::new(Instant::now());
        self.session(leader, id, machine, chunks, out);
    }

    /// Streams from `src` to `dst` until caught up, refused, or cut.
    fn session(
        &mut self,
        src: NodeId,
        dst: NodeId,
        mut fm: FollowerMachine,
        chunks: Option<usize>,
        out: &mut Vec<String>,
    ) {
        let (source, replica) = (self.replica(src), self.replica(dst));
        for _ in 0..4 {
            let now = Instant::now();
            let _ = fm.tick(now);
            let Action::Subscribe { after, epoch } =
                fm.connected(replica.position(), replica.machine().epoch())
            else {
                return;
            };
            let (end, later) = source.match_point(after.epoch);
            let answer = source.machine().on_subscribe(epoch, after, end, later);
            let messages = match answer {
                SubscribeAnswer::Refuse(code, why) => {
                    out.push(format!("refused ({code:?}): {why}"));
                    return;
                }
                SubscribeAnswer::Serve { epoch, end, from } => {
                    out.push(format!("log match: epoch {epoch}, end {}", pos(end)));
                    stream(&source, epoch, end, from, chunks)
                }
            };
            let fed = feed(&replica, &mut fm, messages, out);
            if fm.in_snapshot() {
                replica.abandon_snapshot();
                out.push("source gone: staged snapshot abandoned".into());
                return;
            }
            match fed {
                Fed::Done => return,
                Fed::Resubscribe => fm.disconnected(now),
            }
        }
    }

    /// Records what of `id`'s log is durable now (its files are closed and
    /// reopened so their lengths are the data's; the replica keeps its
    /// state).
    pub fn mark(&mut self, id: NodeId) {
        let machine = self.nodes[&id].machine().clone();
        self.reopen(id, None);
        *self.nodes[&id].machine() = machine;
        self.marks.insert(id, log_lengths(&self.node_dir(id)));
    }

    /// [`Sim::mark`] by an fsync instead of a reopen, for the property
    /// test. A reopen drops the row of an epoch begun and not written yet
    /// (kv-storage keeps only its `max`); in a node that happens only at a
    /// restart, after which a leader begins a new epoch. A leader reopened
    /// in place kept serving without the row, and refused forever a
    /// follower holding a deposed leader's tail ("source behind").
    pub fn sync_mark(&mut self, id: NodeId) {
        if let Err(e) = self.nodes[&id].store.sync() {
            panic!("node {id}: the fsync of a mark failed: {e}");
        }
        self.marks.insert(id, log_lengths(&self.node_dir(id)));
    }

    /// Restarts `id`, losing what was written since its mark.
    pub fn crash(&mut self, id: NodeId) {
        let mark = self.marks.get(&id).cloned();
        self.reopen(id, mark.as_deref());
    }

    fn reopen(&mut self, id: NodeId, cut: Option<&[(PathBuf, u64)]>) {
        let dir = self.node_dir(id);
        let role = self.nodes[&id].role();
        if let Some(old) = self.nodes.remove(&id) {
            let _ = old.store.shutdown();
            drop(old);
        }
        if let Some(kept) = cut {
            lose_tail(&dir, kept);
        }
        self.nodes.insert(id, open(&dir, role));
    }

    /// Marks `id` unreachable or reachable.
    pub fn set_down(&mut self, id: NodeId, down: bool) {
        self.down.retain(|&n| n != id);
        if down {
            self.down.push(id);
        }
    }

    /// Every replica's state, one line each.
    pub fn dump(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(id, r)| {
                let m = r.machine().clone();
                let history: Vec<String> = r
                    .store
                    .epoch_history()
                    .iter()
                    .map(|(e, first)| format!("{e}@{first}"))
                    .collect();
                format!(
                    "node {id}: {:?} {:?} epoch={} pos={} history=[{}] rolled_back={} keys={{{}}}",
                    m.role(),
                    m.state(),
                    m.epoch(),
                    pos(r.position()),
                    history.join(" "),
                    r.store.stats().rolled_back_entries,
                    contents(r).join(" ")
                )
            })
            .collect()
    }
}

/// `key=value` for every live key, sorted.
pub fn contents(r: &Replica) -> Vec<String> {
    let mut keys: Vec<Bytes> = r.store.iter().flatten().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let v = r.store.get(k).ok().flatten().unwrap_or_default();
            format!(
                "{}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(&v)
            )
        })
        .collect()
}

fn pos(p: Position) -> String {
    format!("({},{})", p.epoch, p.lsn)
}

/// What the source sends after `LogMatch`: history, or a snapshot in
/// chunks (cut after `chunks` of them, as a source dying mid-transfer).
fn stream(
    source: &Replica,
    epoch: Epoch,
    end: Position,
    from: u64,
    chunks: Option<usize>,
) -> Vec<Response> {
    let last = source.position();
    let mut messages = vec![Response::LogMatch {
        partition: 0,
        epoch,
        end,
    }];
    match source.history_after(from, usize::MAX) {
        Ok(Some(entries)) => messages.push(entries_message(last, entries)),
        Ok(None) => {
            let Ok(mut reader) = source.store.snapshot_reader(SNAPSHOT_CHUNK_BYTES) else {
                return messages;
            };
            let last = Position::from(reader.as_of());
            messages.push(Response::SnapshotStart {
                partition: 0,
                last,
                reason: "history compacted away".into(),
            });
            let mut sent = 0;
            while let Ok(Some(chunk)) = reader.next_chunk() {
                if chunks.is_some_and(|limit| sent >= limit) {
                    return messages;
                }
                messages.push(entries_message(last, crate::convert::entries(chunk)));
                sent += 1;
            }
            messages.push(Response::SnapshotEnd { partition: 0, last });
        }
        Err(_) => {}
    }
    messages
}

fn entries_message(source_last: Position, entries: Vec<Entry>) -> Response {
    Response::Entries {
        partition: 0,
        source_last,
        entries,
    }
}

enum Fed {
    Done,
    Resubscribe,
}

/// Feeds `messages` to the follower machine, carrying out its actions on
/// `replica` as `transport::execute` does.
fn feed(
    replica: &Replica,
    fm: &mut FollowerMachine,
    messages: Vec<Response>,
    out: &mut Vec<String>,
) -> Fed {
    for message in messages {
        let own_end = match &message {
            Response::LogMatch { end, .. } => Some(replica.end_of_epoch(end.epoch)),
            _ => None,
        };
        let local = Local {
            position: replica.position(),
            epoch: replica.machine().epoch(),
            own_end,
        };
        for action in fm.on_message(message, local) {
            if let Some(line) = execute(replica, action) {
                let resubscribe = line.starts_with("disconnect");
                out.push(line);
                if resubscribe {
                    return Fed::Resubscribe;
                }
            }
        }
    }
    Fed::Done
}

fn execute(replica: &Replica, action: Action) -> Option<String> {
    let result = match action {
        Action::Apply(entries) => {
            let n = entries.len();
            replica.apply(entries).map(|()| format!("applied {n}"))
        }
        Action::Truncate { keep } => replica
            .truncate_after(keep)
            .map(|t| format!("truncated after {keep}: {} to rollback", t.removed)),
        Action::SeenEpoch(e) => {
            replica.machine().observe_epoch(e);
            return None;
        }
        Action::BeginSnapshot { last } => replica
            .begin_snapshot(last)
            .map(|()| format!("snapshot as of {} begins", pos(last))),
        Action::Stage(entries) => {
            let n = entries.len();
            replica.stage(entries).map(|()| format!("staged {n}"))
        }
        Action::EndSnapshot { last } => replica
            .end_snapshot()
            .map(|()| format!("snapshot installed at {}", pos(last))),
        Action::Disconnect { reason } => Ok(format!("disconnect: {reason}")),
        Action::Ack | Action::Connect | Action::Subscribe { .. } => return None,
    };
    Some(result.unwrap_or_else(|e| format!("store error: {e}")))
}

fn log_lengths(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
        .map(|d| d.flatten().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| (e.path(), e.metadata().map_or(0, |m| m.len())))
        .collect();
    files.sort();
    files
}

/// Cuts a closed store's logs back to `kept` (newer segments and every
/// hint go), as a crash losing unsynced bytes would.
fn lose_tail(dir: &Path, kept: &[(PathBuf, u64)]) {
    let entries = std::fs::read_dir(dir).map(|d| d.flatten().collect::<Vec<_>>());
    for entry in entries.unwrap_or_default() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".hint") {
            let _ = std::fs::remove_file(&path);
        } else if name.ends_with(".log") {
            match kept.iter().find(|(p, _)| *p == path) {
                Some((_, len)) => {
                    let file = std::fs::OpenOptions::new().write(true).open(&path);
                    let _ = file.and_then(|f| f.set_len(*len));
                }
                None => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

/// Runs one script; the transcript it produced.
pub fn run_script(script: &str) -> String {
    let mut sim = Sim::new(3);
    let mut transcript = String::new();
    for line in script.lines() {
        if line.starts_with("> ") {
            continue;
        }
        transcript.push_str(line);
        transcript.push('\n');
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() || line.starts_with('#') {
            continue;
        }
        for out in sim.command(&words) {
            transcript.push_str(&format!("> {out}\n"));
        }
    }
    transcript
}

impl Sim {
    fn command(&mut self, words: &[&str]) -> Vec<String> {
        let node = |i: usize| -> NodeId { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        let mut out = Vec::new();
        match words.first().copied().unwrap_or_default() {
            "lead" => {
                let epoch = words.get(2).and_then(|w| w.parse().ok());
                self.lead(node(1), epoch, &mut out);
            }
            "follow" => self.follow(node(1), node(2)),
            "put" => out.push(self.put(node(1), words[2], Some(words[3]))),
            "del" => out.push(self.put(node(1), words[2], None)),
            "fill" => {
                let count: usize = words.get(2).and_then(|w| w.parse().ok()).unwrap_or(0);
                let mut last = String::new();
                for i in 0..count {
                    last = self.put(node(1), &format!("k{}", i % 5), Some(&format!("v{i}")));
                }
                out.push(format!("{count} puts, last {last}"));
            }
            "sync" => {
                let chunks = words
                    .get(2)
                    .and_then(|w| w.strip_prefix("chunks="))
                    .and_then(|n| n.parse().ok());
                self.sync(node(1), chunks, &mut out);
            }
            "down" => self.set_down(node(1), true),
            "up" => self.set_down(node(1), false),
            "mark" => self.mark(node(1)),
            "crash" => self.crash(node(1)),
            "wipe" => {
                let machine = self.nodes[&node(1)].machine().clone();
                let dir = self.node_dir(node(1));
                if let Some(old) = self.nodes.remove(&node(1)) {
                    let _ = old.store.shutdown();
                }
                let _ = std::fs::remove_dir_all(&dir);
                self.nodes.insert(node(1), open(&dir, machine.role()));
                *self.nodes[&node(1)].machine() = machine;
            }
            "compact" => {
                if let Err(e) = self.nodes[&node(1)].store.compact() {
                    out.push(format!("error: {e}"));
                }
            }
            "dump" => out = self.dump(),
            other => out.push(format!("unknown command {other}")),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/replication/testscripts")
            .join(name);
        let script = std::fs::read_to_string(&path).expect("script");
        let got = run_script(&script);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).expect("write script");
            return;
        }
        assert_eq!(
            got, script,
            "{name}: rerun with UPDATE_GOLDEN=1 and review the diff"
        );
    }

    #[test]
    fn subscribe_after_a_lost_tail() {
        check("lost_tail.txt");
    }

    #[test]
    fn follower_that_missed_an_epoch_change() {
        check("missed_epoch.txt");
    }

    #[test]
    fn two_quick_leader_changes() {
        check("quick_leader_changes.txt");
    }

    #[test]
    fn follower_ahead_of_a_new_leader() {
        check("follower_ahead.txt");
    }

    #[test]
    fn snapshot_interrupted_at_every_chunk() {
        check("snapshot_interrupted.txt");
    }

    #[test]
    fn deposed_leader_rolls_back() {
        check("deposed_leader.txt");
    }

    #[test]
    fn a_source_behind_refuses_rather_than_truncate() {
        check("source_behind.txt");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8),
        Del(u8),
        Sync(NodeId),
        NewLeader(NodeId),
        Down(NodeId),
        Up(NodeId),
        Mark(NodeId),
        Crash(NodeId),
        /// An `acks = "all"` write under `sync = "always"`: the leader's
        /// last entry counts as acknowledged once every replica holds it,
        /// durably (all are marked then).
        AckAll,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let node = 0..3u32;
        prop_oneof![
            4 => (0..4u8, any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
            1 => (0..4u8).prop_map(Op::Del),
            3 => node.clone().prop_map(Op::Sync),
            1 => node.clone().prop_map(Op::NewLeader),
            1 => node.clone().prop_map(Op::Down),
            1 => node.clone().prop_map(Op::Up),
            1 => node.clone().prop_map(Op::Mark),
            1 => node.prop_map(Op::Crash),
            2 => Just(Op::AckAll),
        ]
    }

    /// Every replica follows `leader` and syncs until it has its position.
    fn converge(sim: &mut Sim, leader: NodeId) {
        let mut out = Vec::new();
        for n in 0..3 {
            sim.set_down(n, false);
        }
        for n in 0..3 {
            if n != leader {
                sim.follow(n, leader);
                for _ in 0..3 {
                    sim.sync(n, None, &mut out);
                }
            }
        }
    }

    /// Leader changes take their epoch from a counter, as the control
    /// plane will hand them out (node-local epochs are unique only when
    /// the new leader heard of the old one).
    /// The entry at `position` in `r`'s history, if it holds it.
    fn entry_at(r: &Replica, position: Position) -> Option<Entry> {
        let lsn = position.lsn.checked_sub(1)?;
        match r.history_after(lsn, 1) {
            Ok(Some(mut entries)) if !entries.is_empty() => {
                Some(entries.remove(0)).filter(|e| e.position == position)
            }
            _ => None,
        }
    }

    /// Acknowledges the leader's last entry if every replica holds it
    /// (see [`Op::AckAll`]).
    fn ack_all(sim: &mut Sim, leader: NodeId, acked: &mut Vec<Entry>) {
        let last = sim.nodes[&leader].position();
        let Some(entry) = entry_at(&sim.nodes[&leader], last) else {
            return;
        };
        if sim
            .nodes
            .values()
            .all(|r| entry_at(r, last).as_ref() == Some(&entry))
        {
            for n in 0..3 {
                sim.sync_mark(n);
            }
            acked.push(entry);
        }
    }

    fn apply(
        sim: &mut Sim,
        leader: &mut NodeId,
        epochs: &mut Epoch,
        acked: &mut Vec<Entry>,
        op: &Op,
    ) {
        let mut out = Vec::new();
        match *op {
            Op::Put(k, v) => {
                sim.put(*leader, &format!("k{k}"), Some(&format!("v{v}")));
            }
            Op::Del(k) => {
                sim.put(*leader, &format!("k{k}"), None);
            }
            Op::Sync(n) if n != *leader && !sim.down.contains(&n) => sim.sync(n, None, &mut out),
            Op::NewLeader(n) => {
                *leader = n;
                for other in (0..3).filter(|&o| o != n) {
                    sim.follow(other, n);
                }
                *epochs += 1;
                sim.lead(n, Some(*epochs), &mut out);
            }
            Op::Down(n) => sim.set_down(n, true),
            Op::Up(n) => sim.set_down(n, false),
            Op::Mark(n) => sim.sync_mark(n),
            Op::Crash(n) => {
                sim.crash(n);
                if n == *leader {
                    *epochs += 1;
                    sim.lead(n, Some(*epochs), &mut out);
                } else {
                    sim.follow(n, *leader);
                }
            }
            Op::AckAll => ack_all(sim, *leader, acked),
            Op::Sync(_) => {}
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// After any run of writes, leader changes, partitions and crashes
        /// that lose unsynced tails, once everyone follows the last leader
        /// every replica holds exactly its history, and that history still
        /// holds every write acknowledged with `acks = "all"`.
        #[test]
        fn replicas_converge_on_the_leaders_history(ops in proptest::collection::vec(op(), 1..40)) {
            let mut sim = Sim::new(3);
            let mut out = Vec::new();
            let (mut leader, mut epochs, mut acked) = (0, 1, Vec::new());
            sim.follow(1, 0);
            sim.follow(2, 0);
            sim.lead(0, Some(epochs), &mut out);
            for op in &ops {
                apply(&mut sim, &mut leader, &mut epochs, &mut acked, op);
            }
            // The last leader may still be waiting for a peer: heal first.
            for n in 0..3 {
                sim.set_down(n, false);
            }
            if sim.nodes[&leader].machine().writable().is_err() {
                sim.lead(leader, Some(epochs + 1), &mut out);
            }
            converge(&mut sim, leader);
            let lead = Arc::clone(&sim.nodes[&leader]);
            let history = |r: &Replica| match r.history_after(0, usize::MAX) {
                Ok(Some(entries)) => entries,
                other => panic!("{other:?}"),
            };
            for (id, r) in &sim.nodes {
                proptest::prop_assert_eq!(r.position(), lead.position(), "node {}: {:?}", id, sim.dump());
                proptest::prop_assert_eq!(contents(r), contents(&lead), "node {}", id);
                proptest::prop_assert_eq!(history(r), history(&lead), "node {}", id);
            }
            for entry in &acked {
                let held = entry_at(&lead, entry.position);
                proptest::prop_assert_eq!(held.as_ref(), Some(entry), "{:?}", sim.dump());
            }
        }
    }
}

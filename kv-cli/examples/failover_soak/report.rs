//! What the soak found: per cycle, then the table, the failover line, the
//! verdict and (with `--json`) the same as one JSON line.

use std::collections::HashSet;
use std::time::Duration;

use kv_router::PartitionId;

use crate::cluster::Disagreement;
use crate::workload::{Ack, Found};

/// Kills at least this many partition leaders before the failover target
/// is judged (the "over ≥ 20 kills").
const TARGET_MIN_KILLS: usize = 20;
const TARGET_P50: Duration = Duration::from_secs(2);
const TARGET_MAX: Duration = Duration::from_secs(4);
/// Lost or wrong writes listed in detail.
const SHOWN: usize = 20;

/// A nemesis action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// SIGKILL, then a restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
}

impl Action {
    pub fn signal(self) -> &'static str {
        match self {
            Action::Kill => "SIGKILL",
            Action::Pause => "SIGSTOP",
        }
    }
}

/// One nemesis cycle.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub action: Action,
    pub victim: usize,
    /// The partitions the victim led when signalled.
    pub led: Vec<PartitionId>,
    /// Per partition in `led`: signal to first acknowledged write after.
    pub unavailable: Vec<Option<Duration>>,
    /// The partitions the victim followed when signalled.
    pub followed: Vec<PartitionId>,
    /// Per partition in `followed`: the longest time without an
    /// acknowledged write from the signal until healed (with `acks = all`
    /// a write waits until the follower is back or out of the in-sync set).
    pub stalled: Vec<Option<Duration>>,
    pub healed: bool,
}

impl Cycle {
    pub fn describe(&self) -> String {
        format!(
            "{} node {}; led: {}; followed: {}",
            self.action.signal(),
            self.victim,
            firsts(&self.led, &self.unavailable),
            firsts(&self.followed, &self.stalled)
        )
    }
}

/// `p0 1.71 s, p3 1.69 s`: per partition, its first write after the signal.
fn firsts(parts: &[PartitionId], times: &[Option<Duration>]) -> String {
    if parts.is_empty() {
        return "none".into();
    }
    let each: Vec<String> = parts
        .iter()
        .zip(times)
        .map(|(p, d)| format!("p{p} {}", opt_secs(*d)))
        .collect();
    each.join(", ")
}

/// Everything the soak measured and checked.
#[derive(Debug)]
pub struct Report {
    pub seed: u64,
    pub acks: &'static str,
    pub requested: usize,
    pub cycles: Vec<Cycle>,
    /// Nodes that exited by themselves: id and exit status.
    pub exited: Vec<(usize, String)>,
    /// Writes that failed, and of those with an unknown outcome.
    pub failed_writes: (u64, u64),
    pub acked: usize,
    pub lost: Vec<Ack>,
    pub wrong: Vec<(Ack, String)>,
    pub unverified: Vec<(Ack, String)>,
    /// Ok, or the partitions whose replicas differ.
    pub replicas: Result<(), Disagreement>,
    /// Of the lost writes: found in a rollback file, found nowhere.
    pub located: Option<(usize, usize)>,
}

impl Report {
    pub fn new(seed: u64, acks: &'static str, requested: usize) -> Report {
        Report {
            seed,
            acks,
            requested,
            cycles: Vec::new(),
            exited: Vec::new(),
            failed_writes: (0, 0),
            acked: 0,
            lost: Vec::new(),
            wrong: Vec::new(),
            unverified: Vec::new(),
            replicas: Ok(()),
            located: None,
        }
    }

    /// Files the end check's findings.
    pub fn add_checks(&mut self, checked: Vec<(Ack, Found)>) {
        self.acked = checked.len();
        for (ack, found) in checked {
            match found {
                Found::Same => {}
                Found::Missing => self.lost.push(ack),
                Found::Wrong(v) => self.wrong.push((ack, v)),
                Found::Unverified(why) => self.unverified.push((ack, why)),
            }
        }
        self.lost.sort_by_key(|a| a.at);
    }

    pub fn lost_count(&self) -> usize {
        self.lost.len()
    }

    /// Sorts the lost writes into found in a rollback file or nowhere.
    pub fn locate_lost(&mut self, rolled: &HashSet<(PartitionId, Vec<u8>)>) {
        let found = self
            .lost
            .iter()
            .filter(|a| rolled.contains(&(a.written.partition, a.key().into_bytes())))
            .count();
        self.located = Some((found, self.lost.len() - found));
    }

    fn count(&self, action: Action) -> usize {
        self.cycles.iter().filter(|c| c.action == action).count()
    }

    fn unhealed(&self) -> usize {
        self.cycles.iter().filter(|c| !c.healed).count()
    }

    /// Unavailability samples of the cycles of `action` (all if None).
    fn samples(&self, action: Option<Action>) -> Vec<Duration> {
        self.sorted(action, |c| &c.unavailable)
    }

    /// The samples `of` each cycle of `action` (all if None), sorted.
    fn sorted(
        &self,
        action: Option<Action>,
        of: impl Fn(&Cycle) -> &[Option<Duration>],
    ) -> Vec<Duration> {
        let mut all: Vec<Duration> = self
            .cycles
            .iter()
            .filter(|c| action.is_none_or(|a| c.action == a))
            .flat_map(|c| of(c).iter().flatten().copied())
            .collect();
        all.sort_unstable();
        all
    }

    /// Whether nothing went wrong (the failover target is reported, not
    /// judged here).
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    fn failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.acks == "all" && !self.lost.is_empty() {
            why.push(format!(
                "{} acknowledged writes lost under acks=all",
                self.lost.len()
            ));
        }
        if !self.wrong.is_empty() {
            why.push(format!("{} wrong values", self.wrong.len()));
        }
        if !self.unverified.is_empty() {
            why.push(format!(
                "{} writes could not be read back",
                self.unverified.len()
            ));
        }
        match &self.replicas {
            Ok(()) => {}
            Err(Disagreement::Differ(_)) => why.push("replicas differ".into()),
            Err(Disagreement::Unchecked(_)) => why.push("replica agreement unchecked".into()),
        }
        if self.unhealed() > 0 {
            why.push(format!("{} cycle(s) never healed", self.unhealed()));
        }
        if !self.exited.is_empty() {
            why.push(format!(
                "{} node exit(s) nobody asked for",
                self.exited.len()
            ));
        }
        why
    }

    /// Prints the details of what went wrong, the table and the verdict.
    pub fn print(&self, json: bool) {
        self.print_details();
        println!();
        self.print_table();
        println!("{}", self.failover_line());
        println!("{}", self.stall_line());
        self.print_extra();
        match self.failures() {
            f if f.is_empty() => println!("PASS"),
            f => println!("FAIL: {}", f.join("; ")),
        }
        if json {
            println!("{}", self.json());
        }
    }

    /// `identical`, `differ`, or `unchecked` (a node did not answer).
    fn replicas_word(&self) -> &'static str {
        match &self.replicas {
            Ok(()) => "identical",
            Err(Disagreement::Differ(_)) => "differ",
            Err(Disagreement::Unchecked(_)) => "unchecked",
        }
    }

    fn print_table(&self) {
        let all = self.samples(None);
        let replicas = self.replicas_word();
        println!(
            "{:<7} {:<6} {:<7} {:<8} {:<5} {:<6} {:<10} {:<16} {:<7} {:<7} (n)",
            "cycles",
            "kills",
            "pauses",
            "acked",
            "lost",
            "wrong",
            "replicas",
            "unavailable p50",
            "p99",
            "max"
        );
        println!(
            "{:<7} {:<6} {:<7} {:<8} {:<5} {:<6} {:<10} {:<16} {:<7} {:<7} ({})",
            self.cycles.len(),
            self.count(Action::Kill),
            self.count(Action::Pause),
            self.acked,
            self.lost.len(),
            self.wrong.len(),
            replicas,
            opt_secs(percentile(&all, 0.50)),
            opt_secs(percentile(&all, 0.99)),
            opt_secs(all.last().copied()),
            all.len()
        );
    }

    /// Failover time over SIGKILLs of a partition leader, against the target.
    fn failover_line(&self) -> String {
        let kills = self.samples(Some(Action::Kill));
        let leader_kills = self
            .cycles
            .iter()
            .filter(|c| c.action == Action::Kill && !c.led.is_empty())
            .count();
        let (p50, max) = (percentile(&kills, 0.50), kills.last().copied());
        let verdict = match (p50, max) {
            _ if leader_kills < TARGET_MIN_KILLS => {
                format!("not judged (fewer than {TARGET_MIN_KILLS} leader kills)")
            }
            (Some(p50), Some(max)) if p50 <= TARGET_P50 && max <= TARGET_MAX => "met".to_string(),
            _ => "NOT met".to_string(),
        };
        format!(
            "failover after SIGKILL: p50 {}  max {}  ({} partitions, {leader_kills} kills of a leader); target p50 <= 2 s, max <= 4 s: {verdict}",
            opt_secs(p50),
            opt_secs(max),
            kills.len()
        )
    }

    /// Longest time without a write on the partitions the victim followed.
    fn stall_line(&self) -> String {
        let line = |action: Action| {
            let all = self.sorted(Some(action), |c| &c.stalled);
            format!(
                "after {} p50 {} max {} ({})",
                action.signal(),
                opt_secs(percentile(&all, 0.5)),
                opt_secs(all.last().copied()),
                all.len()
            )
        };
        format!(
            "partitions the victim followed, longest time without a write: {}; {}",
            line(Action::Kill),
            line(Action::Pause)
        )
    }

    fn print_extra(&self) {
        let (failed, unknown) = self.failed_writes;
        println!(
            "writes failed (not acked, not checked): {failed}, of which outcome unknown: {unknown}; unverified reads: {}; unhealed cycles: {}; nodes that exited by themselves: {}",
            self.unverified.len(),
            self.unhealed(),
            self.exited.len()
        );
        if let Some((rollback, nowhere)) = self.located {
            println!(
                "lost writes in a rollback file: {rollback}; lost nowhere to be found: {nowhere}"
            );
        }
        if self.cycles.len() < self.requested {
            println!(
                "stopped after {} of {} cycles",
                self.cycles.len(),
                self.requested
            );
        }
        println!("seed {}", self.seed);
    }

    fn print_details(&self) {
        for a in self.lost.iter().take(SHOWN) {
            eprintln!("lost: {}", describe(a));
        }
        for (a, v) in self.wrong.iter().take(SHOWN) {
            eprintln!("wrong: {} read {v:?}", describe(a));
        }
        for (a, why) in self.unverified.iter().take(SHOWN) {
            eprintln!("unverified: {}: {why}", describe(a));
        }
        match &self.replicas {
            Ok(()) => {}
            Err(Disagreement::Differ(why)) => eprintln!("replicas differ:\n{why}"),
            Err(Disagreement::Unchecked(why)) => eprintln!("replicas unchecked: {why}"),
        }
        for (id, status) in &self.exited {
            eprintln!("node {id} exited by itself: {status}");
        }
    }

    fn json(&self) -> serde_json::Value {
        let all = self.samples(None);
        let kills = self.samples(Some(Action::Kill));
        let stalled = self.sorted(None, |c| &c.stalled);
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        serde_json::json!({
            "seed": self.seed,
            "acks": self.acks,
            "cycles": self.cycles.len(),
            "kills": self.count(Action::Kill),
            "pauses": self.count(Action::Pause),
            "acked": self.acked,
            "lost": self.lost.len(),
            "wrong": self.wrong.len(),
            "unverified": self.unverified.len(),
            "replicas": self.replicas_word(),
            "unavailable_ms": {"p50": ms(percentile(&all, 0.5)), "p99": ms(percentile(&all, 0.99)), "max": ms(all.last().copied()), "n": all.len()},
            "failover_kill_ms": {"p50": ms(percentile(&kills, 0.5)), "max": ms(kills.last().copied()), "n": kills.len()},
            "followed_longest_gap_ms": {"p50": ms(percentile(&stalled, 0.5)), "max": ms(stalled.last().copied()), "n": stalled.len()},
            "unhealed": self.unhealed(),
            "exited": self.exited.len(),
            "failed_writes": self.failed_writes.0,
            "outcome_unknown": self.failed_writes.1,
            "lost_in_rollback": self.located.map(|l| l.0),
            "lost_nowhere": self.located.map(|l| l.1),
            "passed": self.passed(),
        })
    }
}

/// A write for the details: key, partition, who acknowledged it where.
fn describe(a: &Ack) -> String {
    let w = a.written;
    format!(
        "{} (partition {}) acked by node {} at ({}, {})",
        a.key(),
        w.partition,
        w.node,
        w.position.epoch,
        w.position.lsn
    )
}

/// Nearest-rank percentile of sorted `samples`.
fn percentile(samples: &[Duration], q: f64) -> Option<Duration> {
    let rank = (q * samples.len() as f64).ceil() as usize;
    samples.get(rank.max(1) - 1).copied()
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map(secs).unwrap_or_else(|| "-".into())
}

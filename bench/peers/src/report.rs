//! The comparison table, the targets, and the footnotes that say
//! exactly what each engine did.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::ENGINES;
use crate::data::{KEY_BYTES, VALUE_BYTES};
use crate::workload::{Figures, Plan};

/// One child's figures, or why it failed.
pub type Run = Result<Figures, String>;

/// Everything one run of the harness measured.
pub struct Results {
    /// What was run.
    pub plan: Plan,
    /// `/proc/loadavg` before the first child.
    pub load_before: String,
    /// `/proc/loadavg` after the last child.
    pub load_after: String,
    /// Which kv-storage was measured (git commit, dirty or not).
    pub revision: String,
    runs: BTreeMap<(String, String), Run>,
}

impl Results {
    /// No runs yet.
    pub fn new(plan: Plan, load_before: String) -> Results {
        let load_after = String::new();
        Results {
            plan,
            load_before,
            load_after,
            revision: String::new(),
            runs: BTreeMap::new(),
        }
    }

    /// Records the outcome of `engine`'s `step`.
    pub fn insert(&mut self, engine: &str, step: &str, run: Run) {
        self.runs
            .insert((engine.to_string(), step.to_string()), run);
    }

    /// One figure, if that run succeeded and reported it; for a step run in
    /// rounds (`step#0`, `step#1`, …), the median over the rounds.
    pub fn get(&self, engine: &str, step: &str, field: &str) -> Option<f64> {
        if let Some(run) = self.runs.get(&(engine.to_string(), step.to_string())) {
            return run.as_ref().ok()?.get(field).copied();
        }
        median(
            self.rounds(engine, step, field)
                .into_iter()
                .flatten()
                .collect(),
        )
    }

    /// `field` of `step` in each round (`None` where that round failed).
    pub fn rounds(&self, engine: &str, step: &str, field: &str) -> Vec<Option<f64>> {
        (0..self.plan.rounds)
            .map(|i| {
                let key = (engine.to_string(), format!("{step}#{i}"));
                self.runs.get(&key)?.as_ref().ok()?.get(field).copied()
            })
            .collect()
    }

    /// Median over rounds of `a / b`, each pair taken from the same round (so
    /// a disturbance of the machine hits both sides of a ratio).
    pub fn paired(&self, engine: &str, a: (&str, &str), b: (&str, &str)) -> Option<f64> {
        let (xs, ys) = (self.rounds(engine, a.0, a.1), self.rounds(engine, b.0, b.1));
        let ratios = xs.iter().zip(&ys).filter_map(|(x, y)| Some((*x)? / (*y)?));
        median(ratios.collect())
    }

    fn logical_bytes(&self) -> f64 {
        self.plan.keys as f64 * (KEY_BYTES + VALUE_BYTES) as f64
    }

    fn engines(&self) -> Vec<&'static str> {
        let ran = |e: &&str| self.runs.keys().any(|(engine, _)| engine == e);
        ENGINES.iter().copied().filter(ran).collect()
    }

    fn failures(&self) -> impl Iterator<Item = &String> {
        self.runs.values().filter_map(|r| r.as_ref().err())
    }
}

/// Median of `xs` (mean of the middle two for an even count).
fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(xs[n / 2]),
        _ => Some((xs[n / 2 - 1] + xs[n / 2]) / 2.0),
    }
}

/// A figure of one engine.
type Metric = fn(&Results, &str) -> Option<f64>;

/// One table row: label (with ↑ or ↓ for the better direction), decimals,
/// the figure, and whether kv-storage's ratio to peers means anything.
struct Row(&'static str, usize, Metric, bool);

const MIB: f64 = 1024.0 * 1024.0;

fn rows() -> Vec<Row> {
    vec![
        Row(
            "load: puts/s ↑",
            0,
            |r, e| r.get(e, "load", "ops_per_sec"),
            true,
        ),
        Row(
            "load: peak RSS MiB ↓",
            0,
            |r, e| Some(r.get(e, "load", "peak_rss_bytes")? / MIB),
            true,
        ),
        Row(
            "read: gets/s ↑",
            0,
            |r, e| r.get(e, "read", "ops_per_sec"),
            true,
        ),
        Row(
            "reopen: open + first get, s ↓",
            3,
            |r, e| r.get(e, "reopen", "open_first_get_secs"),
            true,
        ),
        Row(
            "reopen: RSS added by open, MiB ↓",
            1,
            |r, e| Some(r.get(e, "reopen", "rss_delta_bytes")? / MIB),
            true,
        ),
        Row(
            "disk / logical bytes ↓",
            2,
            |r, e| Some(r.get(e, "reopen", "disk_bytes")? / r.logical_bytes()),
            true,
        ),
        Row(
            "disk / logical after compact() ↓",
            2,
            |r, e| Some(r.get(e, "reopen", "compact_disk_bytes")? / r.logical_bytes()),
            true,
        ),
        Row(
            "raw floor before durable: append+fdatasync p50 µs",
            0,
            |r, e| r.get(e, "floor", "append_p50_us"),
            false,
        ),
        Row(
            "raw floor before durable: append+fdatasync p99 µs",
            0,
            |r, e| r.get(e, "floor", "append_p99_us"),
            false,
        ),
        Row(
            "raw floor before durable: presized+fdatasync p50 µs",
            0,
            |r, e| r.get(e, "floor", "presized_p50_us"),
            false,
        ),
        Row(
            "durable, 1 writer: puts/s ↑",
            0,
            |r, e| r.get(e, "durable1", "ops_per_sec"),
            true,
        ),
        Row(
            "durable, 1 writer: p50 µs ↓",
            0,
            |r, e| r.get(e, "durable1", "p50_us"),
            true,
        ),
        Row(
            "durable, 1 writer: p99 µs ↓",
            0,
            |r, e| r.get(e, "durable1", "p99_us"),
            true,
        ),
        Row(
            "durable, N writers: puts/s ↑",
            0,
            |r, e| r.get(e, "durable_n", "ops_per_sec"),
            true,
        ),
        Row(
            "durable, N writers: p50 µs ↓",
            0,
            |r, e| r.get(e, "durable_n", "p50_us"),
            true,
        ),
        Row(
            "durable, N writers: p99 µs ↓",
            0,
            |r, e| r.get(e, "durable_n", "p99_us"),
            true,
        ),
        Row(
            "durable batches of 256 puts, 1 writer: puts/s ↑",
            0,
            |r, e| r.get(e, "batch", "ops_per_sec"),
            true,
        ),
        Row(
            "durable batches of 256 puts: batch p50 µs ↓",
            0,
            |r, e| r.get(e, "batch", "batch_p50_us"),
            true,
        ),
        Row(
            "durable batches of 256 puts: batch p99 µs ↓",
            0,
            |r, e| r.get(e, "batch", "batch_p99_us"),
            true,
        ),
        Row(
            "durable, N writers / 1 writer ↑",
            2,
            |r, e| {
                let rate = "ops_per_sec";
                r.paired(e, ("durable_n", rate), ("durable1", rate))
            },
            true,
        ),
    ]
}

/// `1234567.8` → `"1,234,568"` (with `digits == 0`), else fixed decimals.
fn number(x: f64, digits: usize) -> String {
    if digits > 0 {
        return format!("{x:.digits$}");
    }
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 { format!("-{out}") } else { out }
}

fn cell(x: Option<f64>, digits: usize) -> String {
    x.filter(|v| v.is_finite())
        .map_or("–".to_string(), |v| number(v, digits))
}

/// The whole report: header, table, kv-storage details, targets, footnotes.
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let engines = r.engines();
    let peers: Vec<&str> = engines
        .iter()
        .copied()
        .filter(|e| *e != "kv-storage")
        .collect();
    let _ = writeln!(out, "\n{}\n", header(r));
    let mut head = "| metric |".to_string();
    let mut rule = "|---|".to_string();
    for e in &engines {
        let _ = write!(head, " {e} |");
        rule.push_str("---:|");
    }
    for p in &peers {
        let _ = write!(head, " kv/{p} |");
        rule.push_str("---:|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    for Row(label, digits, metric, ratio_ok) in rows() {
        let label = label.replace("N writers", &format!("{} writers", r.plan.writers));
        let _ = write!(out, "| {label} |");
        for e in &engines {
            let _ = write!(out, " {} |", cell(metric(r, e), digits));
        }
        let kv = metric(r, "kv-storage");
        for p in &peers {
            let ratio = kv
                .zip(metric(r, p))
                .filter(|_| ratio_ok)
                .map(|(a, b)| a / b);
            let _ = write!(
                out,
                " {} |",
                ratio.map_or("–".into(), |x| format!("{x:.2}×"))
            );
        }
        out.push('\n');
    }
    out.push_str(&details(r));
    out.push_str(&targets(r));
    out.push_str(FOOTNOTES);
    for failure in r.failures() {
        let _ = writeln!(out, "FAILED: {failure}");
    }
    out
}

fn header(r: &Results) -> String {
    format!(
        "{} keys (16-byte random keys, 100-byte random values) written {}× each, \
         {} durable puts; {} cores; load average before {} / after {}; kv-storage at {}",
        number(r.plan.keys as f64, 0),
        r.plan.writes_per_key,
        number(r.plan.durable_ops as f64, 0),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        r.load_before,
        r.load_after,
        r.revision,
    )
}

fn details(r: &Results) -> String {
    let n = r.plan.keys.max(1) as f64;
    let kv = |step, field| r.get("kv-storage", step, field);
    let rss_per_key = kv("reopen", "rss_delta_bytes").map(|b| b / n - KEY_BYTES as f64);
    let stats_per_key = kv("reopen", "keydir_stats_bytes_per_key").map(|b| b - KEY_BYTES as f64);
    let mut out = String::from("\n");
    let mut line = |s: String| out.push_str(&format!("- {s}\n"));
    line(format!(
        "kv-storage key directory beyond key bytes: {} B/key by RSS added by open, {} B/key by stats().keydir_bytes",
        cell(rss_per_key, 1),
        cell(stats_per_key, 1),
    ));
    line(format!(
        "kv-storage compact(): {} s for {} records from {} segments; hint fallbacks at reopen: {}; segments: {}",
        cell(kv("reopen", "compact_secs"), 2),
        cell(kv("reopen", "compact_records"), 0),
        cell(kv("reopen", "compact_input_segments"), 0),
        cell(kv("reopen", "hint_fallbacks"), 0),
        cell(kv("reopen", "segments"), 0),
    ));
    let logical = r.logical_bytes();
    line(format!(
        "kv-storage after compact(): segment files {}× logical, hint files {}× logical",
        cell(kv("reopen", "compact_log_bytes").map(|b| b / logical), 3),
        cell(kv("reopen", "compact_hint_bytes").map(|b| b / logical), 3),
    ));
    let per_put = |step| Some(kv(step, "syncs")? / kv(step, "writes")?);
    line(format!(
        "kv-storage fdatasyncs per durable put: {} with 1 writer, {} with {} writers",
        cell(per_put("durable1"), 2),
        cell(per_put("durable_n"), 2),
        r.plan.writers,
    ));
    let per_round = |step, field, digits| {
        let xs = r.rounds("kv-storage", step, field);
        xs.iter()
            .map(|x| cell(*x, digits))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    line(format!(
        "kv-storage per round: reopen s {}; floor p50 µs {}; 1 writer p50 µs {}, puts/s {}; {} writers puts/s {}",
        per_round("reopen", "open_first_get_secs", 3),
        per_round("floor", "append_p50_us", 0),
        per_round("durable1", "p50_us", 0),
        per_round("durable1", "ops_per_sec", 0),
        r.plan.writers,
        per_round("durable_n", "ops_per_sec", 0),
    ));
    line(format!(
        "close after load (s): {}",
        r.engines()
            .iter()
            .map(|e| format!("{e} {}", cell(r.get(e, "load", "close_secs"), 2)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out
}

/// Whether `actual` meets `want` (`≥` when `at_least`, else `≤`), and by how
/// much it misses.
fn verdict(actual: Option<f64>, want: f64, at_least: bool) -> String {
    let Some(a) = actual else {
        return "not measured".to_string();
    };
    let short = match at_least {
        true => (want - a) / want,
        false => (a - want) / want,
    };
    match short <= 0.0 {
        true => "MET".to_string(),
        false => format!("MISSED by {:.0}%", short * 100.0),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).map(|(a, b)| a / b)
}

/// The targets, each with the measured figure and a verdict.
pub fn targets(r: &Results) -> String {
    let kv = |step, field| r.get("kv-storage", step, field);
    let n = r.plan.keys.max(1) as f64;
    let load = ratio(
        kv("load", "ops_per_sec"),
        r.get("fjall", "load", "ops_per_sec"),
    );
    let read = ratio(
        kv("read", "ops_per_sec"),
        r.get("redb", "read", "ops_per_sec"),
    );
    let reopen = kv("reopen", "open_first_get_secs");
    let floor = r.paired(
        "kv-storage",
        ("durable1", "p50_us"),
        ("floor", "append_p50_us"),
    );
    let rate = "ops_per_sec";
    let group = r.paired("kv-storage", ("durable_n", rate), ("durable1", rate));
    let disk = kv("reopen", "compact_disk_bytes").map(|b| b / r.logical_bytes());
    let keydir = kv("reopen", "rss_delta_bytes").map(|b| b / n - KEY_BYTES as f64);
    let group_name = format!("{} writers ≥ 5× one writer's rate", r.plan.writers);
    let items = [
        ("load ≥ 1.5× fjall", load, 1.5, true, "×"),
        ("random reads ≥ 1.0× redb", read, 1.0, true, "×"),
        (
            "reopen (open + first get) ≤ 0.25 s",
            reopen,
            0.25,
            false,
            " s",
        ),
        (
            "1-writer put+sync p50 ≤ 1.2× raw append+fdatasync p50",
            floor,
            1.2,
            false,
            "×",
        ),
        (group_name.as_str(), group, 5.0, true, "×"),
        (
            "disk ≤ 1.2× logical after compaction",
            disk,
            1.2,
            false,
            "×",
        ),
        (
            "key directory ≤ 64 B/key beyond key bytes (RSS)",
            keydir,
            64.0,
            false,
            " B",
        ),
    ];
    let mut out = String::from(
        "\nTargets (kv-storage; medians over rounds, ratios paired within a round):\n\n\
         | target | measured | verdict |\n|---|---:|---|\n",
    );
    for (name, actual, want, at_least, unit) in items {
        let digits = if unit == " s" { 3 } else { 2 };
        let shown = actual.map_or("–".into(), |a| format!("{a:.digits$}{unit}"));
        let _ = writeln!(
            out,
            "| {name} | {shown} | {} |",
            verdict(actual, want, at_least)
        );
    }
    out
}

const FOOTNOTES: &str = "
Each (engine, workload) ran in its own child process; load → read → reopen share one
fresh temp directory per engine, each durable run gets a fresh one. Every value read is
compared with the value derived from its key. Reopen, raw floor and durable runs are
repeated in rounds (`--rounds`, default 3); the table shows medians over rounds, and
ratios of two figures of one engine (N/1 writers, put+sync / floor) are medians of
per-round ratios. Ratios are kv-storage ÷ peer (↑ higher is
better, ↓ lower is better). Disk bytes are allocated blocks (du) of the whole directory;
logical bytes = keys × 116. Cache budget 64 MiB everywhere.

- load: kv-storage `SyncPolicy::Never` (one write(2) per put, fsync only on segment roll),
  64 MiB segments, 64 MiB hot cache, then one `sync()`. fjall: default keyspace, 64 MiB
  block cache, each insert flushed to the OS (default), then `persist(SyncAll)`. redb:
  all puts in ONE write transaction, committed with `Durability::Immediate`. sled:
  `Mode::HighThroughput`, 64 MiB cache, inserts then one `flush()`. Peak RSS = VmHWM.
- read: a new process opens the loaded directory (untimed) and does uniform-random gets;
  redb uses one read transaction for the whole run, the others plain `get`.
- reopen: a new process each round; time from open to the first verified get; RSS added =
  VmRSS after minus before. In the last round kv-storage then runs `compact()` and
  re-checks every key.
- durable: kv-storage `SyncPolicy::Always` (put returns after group-commit fdatasync).
  fjall `insert` + `Database::persist(PersistMode::SyncAll)` (fsync of the journal).
  redb one write transaction per put, `Durability::Immediate` (default). sled `insert` +
  `flush()`. N writers = N threads sharing one handle, the same total number of puts.
- sled 0.34's `flush()` calls `sync_file_range(2)`, not fsync/fdatasync (seen with strace):
  it neither commits filesystem metadata nor flushes the drive's write cache, so its
  durable figures are not comparable guarantees.
- raw floor: run right before each engine's durable runs, in a fresh file: 148-byte write +
  `fdatasync`, as many times as durable puts;
  `append` grows the file (every fdatasync also commits the new size), `presized`
  overwrites a file pre-sized with `set_len` (what fjall's journal does).
";

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pairs: &[(&str, f64)]) -> Run {
        Ok(pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect())
    }

    #[test]
    fn medians_pair_rounds_and_verdicts_say_by_how_much() {
        let plan = Plan {
            keys: 10,
            durable_ops: 10,
            writers: 16,
            rounds: 3,
            writes_per_key: 1,
        };
        let mut r = Results::new(plan, "0 0 0".into());
        for (i, (one, many)) in [(100.0, 800.0), (10.0, 30.0), (50.0, 400.0)]
            .iter()
            .enumerate()
        {
            r.insert(
                "kv-storage",
                &format!("durable1#{i}"),
                figures(&[("ops_per_sec", *one)]),
            );
            r.insert(
                "kv-storage",
                &format!("durable_n#{i}"),
                figures(&[("ops_per_sec", *many)]),
            );
        }
        assert_eq!(r.get("kv-storage", "durable1", "ops_per_sec"), Some(50.0));
        // Per-round ratios 8, 3, 8 → median 8 (not 400 / 50 of the medians).
        let rate = ("durable_n", "ops_per_sec");
        assert_eq!(
            r.paired("kv-storage", rate, ("durable1", "ops_per_sec")),
            Some(8.0)
        );
        assert_eq!(verdict(Some(0.3), 0.25, false), "MISSED by 20%");
        assert_eq!(verdict(Some(4.0), 5.0, true), "MISSED by 20%");
        assert_eq!(verdict(Some(5.0), 5.0, true), "MET");
        assert_eq!(verdict(None, 5.0, true), "not measured");
        r.insert("fjall", "load", Err("boom".into()));
        let text = render(&r);
        assert!(text.contains("FAILED: boom"));
        assert!(text.contains("| 16 writers ≥ 5× one writer's rate | 8.00× | MET |"));
    }

    #[test]
    fn numbers_get_thousands_separators() {
        assert_eq!(number(1_234_567.8, 0), "1,234,568");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(0.2534, 3), "0.253");
    }
}

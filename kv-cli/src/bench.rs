//! `kv bench`: a load generator against any cluster.
//!
//! Keys are `<prefix>00000000` .. `<prefix><keys-1>`; the prefix
//! (`--prefix`, default `bench:<random hex>:`) is printed at the start, and
//! with `--cleanup` (the default) every bench key is deleted afterwards, so
//! a real cluster is left as it was. Ctrl-C stops the clients, prints the
//! summary of what ran, cleans up and exits with 130. `--json` prints the
//! results as one JSON object on stdout (the header then goes to stderr).
//! When the mix has reads,
//! every key is written once first (not timed as the run) so reads find
//! values. Then each client — a task with its own [`ClusterClient`] and so
//! its own connections — runs its share of the operations one after the
//! other, choosing get or put at random with the read ratio and a key at
//! random, and records each latency in its own hdrhistogram; the
//! histograms are merged for the report. A progress bar is drawn on
//! stderr only when stderr is a terminal. While the clients run, every
//! node's `info` is read every 100 ms and each follower's distance behind
//! its leader (in entries) goes into a replication-lag histogram.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use kv_codec::Value;
use kv_node::{ClientOptions, ClusterClient};
use kv_router::{ClusterMap, Role};
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use crate::args::BenchArgs;
use crate::error::CliError;
use crate::output::Out;
use crate::signals::Signals;
use kv_router::AckMode;

/// Latencies are recorded in nanoseconds up to this bound (60 s).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// One client's results.
struct ClientResult {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
    /// Replication lag in entries, sampled during the run (the merged
    /// result only; see [`sample_lag`]).
    lag: Histogram<u64>,
}

impl ClientResult {
    fn new() -> ClientResult {
        ClientResult {
            reads: histogram(),
            writes: histogram(),
            errors: 0,
            first_error: None,
            lag: entries_histogram(),
        }
    }

    /// Operations that ran (succeeded or failed).
    fn ops(&self) -> u64 {
        self.reads.len() + self.writes.len() + self.errors
    }

    fn merge(&mut self, other: ClientResult) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.reads.add(&other.reads);
        let _ = self.writes.add(&other.writes);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds are valid")
}

/// The bench's keys: `prefix` then a zero-padded index.
#[derive(Debug, Clone)]
struct Keys {
    prefix: Arc<str>,
    count: u64,
}

impl Keys {
    fn key(&self, i: u64) -> String {
        format!("{}{i:08}", self.prefix)
    }
}

/// How a bench run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Every operation ran.
    Complete,
    /// Ctrl-C stopped it early.
    Interrupted,
}

/// Shared between the clients and the Ctrl-C watcher.
#[derive(Clone)]
struct Control {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// The clients' options: a node being dialled by a thousand clients at
/// once may take longer than the usual second to accept them all.
fn bench_options(options: &ClientOptions) -> ClientOptions {
    ClientOptions {
        connect_timeout: options.connect_timeout.max(Duration::from_secs(10)),
        request_timeout: options.request_timeout.max(Duration::from_secs(10)),
        ..options.clone()
    }
}

/// Runs the benchmark against `map` and prints the report on stdout.
/// Fails (after the report) when any operation failed. `throwaway` says
/// the cluster is a temporary one, so there is nothing to clean up.
pub async fn run(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
    target: &str,
    throwaway: bool,
) -> Result<Ending, CliError> {
    let options = &bench_options(options);
    let keys = Keys {
        prefix: args
            .prefix
            .clone()
            .unwrap_or_else(|| format!("bench:{:08x}:", rand::random::<u32>()))
            .into(),
        count: args.keys,
    };
    let control = Control {
        stop: Arc::new(AtomicBool::new(false)),
        done: Arc::new(AtomicU64::new(0)),
    };
    // Before the header: a Ctrl-C once it is out stops the bench with its
    // summary rather than killing the process (seen in CI under load).
    let watcher = watch_ctrl_c(control.clone())?;
    let header = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            Out::stdout().line(line);
        }
    };
    header(format!(
        "kv bench: {} client{}, {} ops, {:.0}% reads, {}-byte values, {} keys{}",
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        args.ops,
        args.read_ratio * 100.0,
        args.value_size,
        args.keys,
        args.acks
            .map_or_else(String::new, |a| format!(", acks={}", a.as_str()))
    ));
    header(format!("target: {target}"));
    let cleanup = args.cleanup && !throwaway;
    header(format!(
        "keys: {}00000000 .. {}; {}",
        keys.prefix,
        keys.key(args.keys - 1),
        if cleanup {
            "deleted afterwards (--cleanup false keeps them)"
        } else if throwaway {
            "in a temporary cluster removed afterwards"
        } else {
            "kept (--cleanup false)"
        }
    ));
    let outcome = load_and_run(args, map, options, &keys, &control, &header).await;
    watcher.abort();
    let deleted = if cleanup {
        Some(delete_keys(args, map, options, &keys).await)
    } else {
        None
    };
    let (result, elapsed, preload) = outcome?;
    let ending = if control.stopped() {
        Ending::Interrupted
    } else {
        Ending::Complete
    };
    let report = Report {
        args,
        keys: &keys,
        result: &result,
        elapsed,
        preload,
        ending,
        deleted,
    };
    report.print();
    match (result.errors, &result.first_error) {
        (0, _) => Ok(ending),
        (n, first) => Err(CliError::Failed(format!(
            "{n} of {} operations failed; first error: {}",
            result.ops(),
            first.clone().unwrap_or_default()
        ))),
    }
}

/// Sets the stop flag on Ctrl-C. The handler is in place when this
/// returns, not when the task first runs.
fn watch_ctrl_c(control: Control) -> Result<tokio::task::JoinHandle<()>, CliError> {
    let signals = Signals::interrupt()?;
    Ok(tokio::spawn(async move {
        signals.wait().await;
        control.stop.store(true, Ordering::Relaxed);
    }))
}

type Measured = (ClientResult, Duration, Option<(u64, f64)>);

/// Preloads (when the mix has reads) and runs the timed operations.
async fn load_and_run(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
    keys: &Keys,
    control: &Control,
    header: &impl Fn(String),
) -> Result<Measured, CliError> {
    let mut preload_figures = None;
    if args.read_ratio > 0.0 {
        let started = Instant::now();
        let loaded = preload(args, map, options, keys, control).await?;
        let secs = started.elapsed().as_secs_f64();
        header(format!(
            "preload: {loaded} puts in {secs:.2} s ({:.0} ops/s)",
            loaded as f64 / secs.max(1e-9)
        ));
        preload_figures = Some((loaded, secs));
    }
    let (result, elapsed) = timed_run(args, map, options, keys, control).await;
    Ok((result, elapsed, preload_figures))
}

/// Deletes every bench key; returns how many existed.
async fn delete_keys(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
    keys: &Keys,
) -> u64 {
    let clients = u64::from(args.clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = ClusterClient::new(map.clone(), options.clone());
            let keys = keys.clone();
            tokio::spawn(async move {
                let mut deleted = 0;
                let mut i = c;
                while i < keys.count {
                    if let Ok(true) = client.delete(keys.key(i).as_bytes()).await {
                        deleted += 1;
                    }
                    i += clients;
                }
                deleted
            })
        })
        .collect();
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap_or(0))
        .sum()
}

/// Writes every key once, spread over the clients (stops on Ctrl-C).
async fn preload(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
    keys: &Keys,
    control: &Control,
) -> Result<u64, CliError> {
    let clients = u64::from(args.clients);
    let written = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = ClusterClient::new(map.clone(), options.clone());
            let value = random_value(&mut StdRng::seed_from_u64(c), args.value_size);
            let (keys, control, written) = (keys.clone(), control.clone(), Arc::clone(&written));
            tokio::spawn(async move {
                let mut i = c;
                while i < keys.count && !control.stopped() {
                    client.put(keys.key(i).as_bytes(), &value).await?;
                    written.fetch_add(1, Ordering::Relaxed);
                    i += clients;
                }
                Ok::<(), kv_node::Error>(())
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.map_err(|e| CliError::failed("preload task", e))?
            .map_err(|e| CliError::failed("preloading keys", e))?;
    }
    Ok(written.load(Ordering::Relaxed))
}

fn random_value(rng: &mut StdRng, size: u32) -> Value {
    Value::Text(Alphanumeric.sample_string(rng, size as usize))
}

/// Runs the clients; their merged results (with the replication lag
/// sampled meanwhile) and how long they took.
async fn timed_run(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
    keys: &Keys,
    control: &Control,
) -> (ClientResult, Duration) {
    let progress = progress_bar(args.ops, Arc::clone(&control.done));
    let lag_client = ClusterClient::new(map.clone(), options.clone());
    let lag = Arc::new(Mutex::new(entries_histogram()));
    let sampler = tokio::spawn(sample_lag(lag_client.clone(), Arc::clone(&lag)));
    let started = Instant::now();
    let clients = u64::from(args.clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let share = args.ops / clients + u64::from(c < args.ops % clients);
            let client = ClusterClient::new(map.clone(), options.clone());
            let plan = ClientPlan {
                ops: share,
                keys: keys.clone(),
                read_ratio: args.read_ratio,
                value_size: args.value_size,
                acks: args.acks,
                seed: 1000 + c,
            };
            tokio::spawn(run_client(client, plan, control.clone()))
        })
        .collect();
    let mut total = ClientResult::new();
    for task in futures::future::join_all(tasks).await {
        match task {
            Ok(result) => total.merge(result),
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let elapsed = started.elapsed();
    sampler.abort();
    total.lag = std::mem::replace(&mut *lock(&lag), entries_histogram());
    if total.lag.is_empty() {
        // A run shorter than the first sample: one now, briefly.
        let _ = tokio::time::timeout(LAG_SAMPLE_EVERY, sample_once(&lag_client, &lag)).await;
        total.lag = std::mem::replace(&mut *lock(&lag), entries_histogram());
    }
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    (total, elapsed)
}

fn lock(lag: &Mutex<Histogram<u64>>) -> std::sync::MutexGuard<'_, Histogram<u64>> {
    lag.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How often [`sample_lag`] reads the nodes' `info`.
const LAG_SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Until aborted: every [`LAG_SAMPLE_EVERY`], [`sample_once`] into `lag`.
async fn sample_lag(client: ClusterClient, lag: Arc<Mutex<Histogram<u64>>>) {
    loop {
        sample_once(&client, &lag).await;
        tokio::time::sleep(LAG_SAMPLE_EVERY).await;
    }
}

/// Reads every node's `info` and records in `lag`, for each partition it
/// leads, how many entries each follower is behind (the leader's last
/// position minus the follower's last acknowledged one). A node that does
/// not answer is skipped.
async fn sample_once(client: &ClusterClient, lag: &Mutex<Histogram<u64>>) {
    for (_, info) in client.cluster_info().await {
        let Ok(info) = info else { continue };
        let mut lag = lock(lag);
        for p in info.partitions.iter().filter(|p| p.role == Role::Leader) {
            for f in &p.followers {
                lag.saturating_record(p.position.lsn.saturating_sub(f.acked.lsn));
            }
        }
    }
}

fn entries_histogram() -> Histogram<u64> {
    Histogram::new(3).expect("constant precision is valid")
}

/// What one client does.
struct ClientPlan {
    ops: u64,
    keys: Keys,
    read_ratio: f64,
    value_size: u32,
    acks: Option<AckMode>,
    seed: u64,
}

async fn run_client(client: ClusterClient, plan: ClientPlan, control: Control) -> ClientResult {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let value = random_value(&mut rng, plan.value_size);
    let mut result = ClientResult::new();
    for _ in 0..plan.ops {
        if control.stopped() {
            break;
        }
        let key = plan.keys.key(rng.random_range(0..plan.keys.count));
        let read = rng.random_bool(plan.read_ratio);
        let started = Instant::now();
        let outcome = if read {
            client.get(key.as_bytes()).await.map(|_| ())
        } else {
            let acks = plan.acks;
            client
                .put_with(key.as_bytes(), &value, acks)
                .await
                .map(|_| ())
        };
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        match outcome {
            Ok(()) if read => result.reads.saturating_record(nanos),
            Ok(()) => result.writes.saturating_record(nanos),
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        control.done.fetch_add(1, Ordering::Relaxed);
    }
    result
}

type Progress = (ProgressBar, tokio::task::JoinHandle<()>);

/// A progress bar fed from `done`, only when stderr is a terminal.
fn progress_bar(ops: u64, done: Arc<AtomicU64>) -> Option<Progress> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style =
        ProgressStyle::with_template("{bar:30} {human_pos}/{human_len} ops  {msg}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    let bar = ProgressBar::new(ops).with_style(style);
    let ticker_bar = bar.clone();
    let started = Instant::now();
    let ticker = tokio::spawn(async move {
        loop {
            let n = done.load(Ordering::Relaxed);
            let rate = n as f64 / started.elapsed().as_secs_f64().max(1e-9);
            ticker_bar.set_position(n);
            ticker_bar.set_message(format!("{rate:.0} ops/s"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Some((bar, ticker))
}

/// Everything the report shows.
struct Report<'a> {
    args: &'a BenchArgs,
    keys: &'a Keys,
    result: &'a ClientResult,
    elapsed: Duration,
    preload: Option<(u64, f64)>,
    ending: Ending,
    deleted: Option<u64>,
}

impl Report<'_> {
    fn print(&self) {
        if self.args.json {
            Out::stdout().line(self.json());
        } else {
            self.print_text();
        }
    }

    fn rate(&self) -> f64 {
        self.result.ops() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn histograms(&self) -> [(&'static str, Histogram<u64>); 3] {
        let mut all = histogram();
        let _ = all.add(&self.result.reads);
        let _ = all.add(&self.result.writes);
        [
            ("all", all),
            ("get", self.result.reads.clone()),
            ("put", self.result.writes.clone()),
        ]
    }

    fn print_text(&self) {
        let mut out = Out::stdout();
        if self.ending == Ending::Interrupted {
            out.line(format!(
                "interrupted (Ctrl-C) after {} of {} ops",
                self.result.ops(),
                self.args.ops
            ));
        }
        out.line(format!(
            "run: {} ops in {:.2} s: {:.0} ops/s, {} errors",
            self.result.ops(),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.result.errors
        ));
        out.line(format!(
            "{:<8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "latency", "count", "mean", "p50", "p99", "p999", "max"
        ));
        for (name, h) in self.histograms() {
            if h.is_empty() {
                continue;
            }
            out.line(format!(
                "{name:<8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
                h.len(),
                nanos(h.mean() as u64),
                nanos(h.value_at_quantile(0.5)),
                nanos(h.value_at_quantile(0.99)),
                nanos(h.value_at_quantile(0.999)),
                nanos(h.max())
            ));
        }
        let lag = &self.result.lag;
        if !lag.is_empty() {
            out.line(format!(
                "replication lag (entries behind the leader, {} follower samples, every {} ms): p50 {}, p99 {}, max {}",
                lag.len(),
                LAG_SAMPLE_EVERY.as_millis(),
                lag.value_at_quantile(0.5),
                lag.value_at_quantile(0.99),
                lag.max()
            ));
        }
        if let Some(n) = self.deleted {
            out.line(format!(
                "cleanup: deleted {n} keys under {}",
                self.keys.prefix
            ));
        }
    }

    fn json(&self) -> serde_json::Value {
        let mut latency = serde_json::Map::new();
        for (name, h) in self.histograms() {
            if !h.is_empty() {
                latency.insert(
                    name.to_string(),
                    json!({
                        "count": h.len(),
                        "mean": h.mean() as u64,
                        "p50": h.value_at_quantile(0.5),
                        "p99": h.value_at_quantile(0.99),
                        "p999": h.value_at_quantile(0.999),
                        "max": h.max(),
                    }),
                );
            }
        }
        json!({
            "clients": self.args.clients,
            "ops": self.args.ops,
            "done": self.result.ops(),
            "interrupted": self.ending == Ending::Interrupted,
            "read_ratio": self.args.read_ratio,
            "value_size": self.args.value_size,
            "acks": self.args.acks.map(AckMode::as_str),
            "keys": self.args.keys,
            "prefix": &*self.keys.prefix,
            "preload_puts": self.preload.map(|(n, _)| n),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "ops_per_s": self.rate(),
            "errors": self.result.errors,
            "latency_ns": latency,
            "replication_lag_entries": (!self.result.lag.is_empty()).then(|| json!({
                "samples": self.result.lag.len(),
                "p50": self.result.lag.value_at_quantile(0.5),
                "p99": self.result.lag.value_at_quantile(0.99),
                "max": self.result.lag.max(),
            })),
            "deleted": self.deleted,
        })
    }
}

/// A latency in a readable unit: `812 ns`, `312 µs`, `1.25 ms`, `2.10 s`.
fn nanos(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..1_000_000 => format!("{} µs", ns / 1_000),
        1_000_000..1_000_000_000 => format!("{:.2} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_print_in_readable_units() {
        assert_eq!(nanos(812), "812 ns");
        assert_eq!(nanos(312_400), "312 µs");
        assert_eq!(nanos(1_250_000), "1.25 ms");
        assert_eq!(nanos(2_100_000_000), "2.10 s");
    }

    #[test]
    fn merged_results_add_counts_and_keep_the_first_error() {
        let mut a = ClientResult::new();
        a.reads.saturating_record(1_000);
        let mut b = ClientResult::new();
        b.reads.saturating_record(3_000);
        b.errors = 2;
        b.first_error = Some("boom".into());
        a.merge(b);
        assert_eq!(a.reads.len(), 2);
        assert_eq!(a.errors, 2);
        assert_eq!(a.first_error.as_deref(), Some("boom"));
    }
}

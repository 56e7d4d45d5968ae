//! `kv bench`: a load generator against any cluster.
//!
//! Keys are `bench:00000000` .. `bench:<keys-1>`. When the mix has reads,
//! every key is written once first (not timed as the run) so reads find
//! values. Then each client — a task with its own [`ClusterClient`] and so
//! its own connections — runs its share of the operations one after the
//! other, choosing get or put at random with the read ratio and a key at
//! random, and records each latency in its own hdrhistogram; the
//! histograms are merged for the report. A progress bar is drawn on
//! stderr only when stderr is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use kv_codec::Value;
use kv_node::{ClientOptions, ClusterClient};
use kv_router::ClusterMap;
use rand::distr::{Alphanumeric, SampleString};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::args::BenchArgs;
use crate::error::CliError;

/// Latencies are recorded in nanoseconds up to this bound (60 s).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// One client's results.
struct ClientResult {
    reads: Histogram<u64>,
    writes: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

impl ClientResult {
    fn new() -> ClientResult {
        ClientResult {
            reads: histogram(),
            writes: histogram(),
            errors: 0,
            first_error: None,
        }
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

/// The clients' options: a node being dialled by a thousand clients at
/// once may take longer than the usual second to accept them all.
fn bench_options(options: &ClientOptions) -> ClientOptions {
    ClientOptions {
        connect_timeout: options.connect_timeout.max(Duration::from_secs(10)),
        request_timeout: options.request_timeout.max(Duration::from_secs(10)),
        ..options.clone()
    }
}

fn key(i: u64) -> String {
    format!("bench:{i:08}")
}

/// Runs the benchmark against `map` and prints the report on stdout.
/// Fails (after the report) when any operation failed.
pub async fn run(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
    target: &str,
) -> Result<(), CliError> {
    let options = &bench_options(options);
    println!(
        "kv bench: {} client{}, {} ops, {:.0}% reads, {}-byte values, {} keys",
        args.clients,
        if args.clients == 1 { "" } else { "s" },
        args.ops,
        args.read_ratio * 100.0,
        args.value_size,
        args.keys
    );
    println!("target: {target}");
    if args.read_ratio > 0.0 {
        let started = Instant::now();
        let loaded = preload(args, map, options).await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "preload: {loaded} puts in {secs:.2} s ({:.0} ops/s)",
            loaded as f64 / secs.max(1e-9)
        );
    }
    let started = Instant::now();
    let result = timed_run(args, map, options).await;
    let elapsed = started.elapsed();
    print_report(args.ops, elapsed, &result);
    match (result.errors, result.first_error) {
        (0, _) => Ok(()),
        (n, first) => Err(CliError::Failed(format!(
            "{n} of {} operations failed; first error: {}",
            args.ops,
            first.unwrap_or_default()
        ))),
    }
}

/// Writes every key once, spread over the clients.
async fn preload(
    args: &BenchArgs,
    map: &ClusterMap,
    options: &ClientOptions,
) -> Result<u64, CliError> {
    let clients = u64::from(args.clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = ClusterClient::new(map.clone(), options.clone());
            let value = random_value(&mut StdRng::seed_from_u64(c), args.value_size);
            let keys = args.keys;
            tokio::spawn(async move {
                let mut i = c;
                while i < keys {
                    client.put(key(i).as_bytes(), &value).await?;
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
    Ok(args.keys)
}

fn random_value(rng: &mut StdRng, size: u32) -> Value {
    Value::Text(Alphanumeric.sample_string(rng, size as usize))
}

async fn timed_run(args: &BenchArgs, map: &ClusterMap, options: &ClientOptions) -> ClientResult {
    let done = Arc::new(AtomicU64::new(0));
    let progress = progress_bar(args.ops, Arc::clone(&done));
    let clients = u64::from(args.clients);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let share = args.ops / clients + u64::from(c < args.ops % clients);
            let client = ClusterClient::new(map.clone(), options.clone());
            let plan = ClientPlan {
                ops: share,
                keys: args.keys,
                read_ratio: args.read_ratio,
                value_size: args.value_size,
                seed: 1000 + c,
            };
            tokio::spawn(run_client(client, plan, Arc::clone(&done)))
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
    if let Some((bar, ticker)) = progress {
        ticker.abort();
        bar.finish_and_clear();
    }
    total
}

/// What one client does.
struct ClientPlan {
    ops: u64,
    keys: u64,
    read_ratio: f64,
    value_size: u32,
    seed: u64,
}

async fn run_client(client: ClusterClient, plan: ClientPlan, done: Arc<AtomicU64>) -> ClientResult {
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let value = random_value(&mut rng, plan.value_size);
    let mut result = ClientResult::new();
    for _ in 0..plan.ops {
        let key = key(rng.random_range(0..plan.keys));
        let read = rng.random_bool(plan.read_ratio);
        let started = Instant::now();
        let outcome = if read {
            client.get(key.as_bytes()).await.map(|_| ())
        } else {
            client.put(key.as_bytes(), &value).await.map(|_| ())
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
        done.fetch_add(1, Ordering::Relaxed);
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

fn print_report(ops: u64, elapsed: Duration, result: &ClientResult) {
    let secs = elapsed.as_secs_f64();
    println!(
        "run: {ops} ops in {secs:.2} s: {:.0} ops/s, {} errors",
        ops as f64 / secs.max(1e-9),
        result.errors
    );
    let mut all = histogram();
    let _ = all.add(&result.reads);
    let _ = all.add(&result.writes);
    println!(
        "{:<8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "latency", "count", "mean", "p50", "p99", "p999", "max"
    );
    for (name, h) in [
        ("all", &all),
        ("get", &result.reads),
        ("put", &result.writes),
    ] {
        if h.is_empty() {
            continue;
        }
        println!(
            "{name:<8} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
            h.len(),
            nanos(h.mean() as u64),
            nanos(h.value_at_quantile(0.5)),
            nanos(h.value_at_quantile(0.99)),
            nanos(h.value_at_quantile(0.999)),
            nanos(h.max())
        );
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

//! bench-redis: one kv node against redis-server on loopback, same client
//! pattern, one table.
//!
//! Four servers run side by side for the whole run: a kv node with
//! `sync = never` and one with `sync = interval` (1000 ms), both in this
//! process on their own 2-thread tokio runtime, and two redis-server
//! children, one without persistence and one with `appendonly yes,
//! appendfsync everysec`. The client runs on a second 2-thread runtime and
//! speaks each server's wire protocol with the same code (`conn`): queue
//! requests, one write, read the replies. Every measurement is repeated
//! `--rounds` times (servers in rotating order) and the median is reported.

mod client;
mod conn;
mod kvwire;
mod rbtable;
mod resp;
mod servers;
mod workload;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use kv_node::{ClientOptions, NodeClient};
use kv_router::SyncMode;

use conn::{Conn, Proto};
use workload::{Data, Op};

const KEYS: usize = 10_000;
const VALUE_BYTES: usize = 100;
const DEPTH: usize = 256;
const FAN_CONNS: usize = 16;
const FAN_DEPTH: usize = 32;

struct Args {
    single_ops: usize,
    pipelined_ops: usize,
    rounds: usize,
    redis_benchmark: bool,
    dir: PathBuf,
    only: Option<String>,
    redis_benchmark_table: bool,
    client: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        single_ops: 20_000,
        pipelined_ops: 204_800,
        rounds: 3,
        redis_benchmark: true,
        dir: std::env::temp_dir(),
        only: None,
        redis_benchmark_table: false,
        client: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut num = || -> Result<usize> { Ok(it.next().context("missing value")?.parse()?) };
        match flag.as_str() {
            "--single-ops" => a.single_ops = num()?,
            "--pipelined-ops" => a.pipelined_ops = num()?,
            "--rounds" => a.rounds = num()?.max(1),
            "--no-redis-benchmark" => a.redis_benchmark = false,
            "--dir" => a.dir = it.next().context("missing value")?.into(),
            "--only" => a.only = Some(it.next().context("missing value")?),
            "--redis-benchmark-table" => a.redis_benchmark_table = true,
            "--client" => a.client = true,
            "--partitions" => servers::set_partitions(u32::try_from(num()?)?),
            _ => bail!(
                "usage: bench-redis [--single-ops N] [--pipelined-ops N] [--rounds N] \
                 [--no-redis-benchmark] [--dir BASE] [--only LABEL-PART] \
                 [--redis-benchmark-table] [--client] [--partitions N]"
            ),
        }
    }
    Ok(a)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

pub(crate) fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()?)
}

struct Target {
    label: &'static str,
    proto: Proto,
    addr: String,
}

/// Metric names; the index is the key in the results map.
const METRICS: [&str; 10] = [
    "GET one at a time: p50 µs",
    "GET one at a time: p99 µs",
    "GET one at a time: ops/s",
    "SET one at a time: p50 µs",
    "SET one at a time: p99 µs",
    "SET one at a time: ops/s",
    "GET pipelined ×256, 1 conn: ops/s",
    "SET pipelined ×256, 1 conn: ops/s",
    "GET 16 conns × pipelined 32: ops/s",
    "SET 16 conns × pipelined 32: ops/s",
];

type Results = BTreeMap<(usize, usize), Vec<f64>>;

async fn measure(
    t: &Target,
    data: &Arc<Data>,
    a: &Args,
    seed: u64,
    out: &mut Vec<f64>,
) -> Result<()> {
    let mut c = Conn::connect(t.proto, &t.addr).await?;
    for op in [Op::Get, Op::Set] {
        let l = workload::single(&mut c, data, op, a.single_ops, seed).await?;
        out.extend([l.p50_us, l.p99_us, l.ops_per_sec]);
    }
    let rounds = a.pipelined_ops / DEPTH;
    for op in [Op::Get, Op::Set] {
        out.push(workload::pipelined(&mut c, data, op, DEPTH, rounds, seed).await?);
    }
    let rounds = a.pipelined_ops / (FAN_CONNS * FAN_DEPTH);
    for op in [Op::Get, Op::Set] {
        let r = workload::fan_out(
            t.proto, &t.addr, data, op, FAN_CONNS, FAN_DEPTH, rounds, seed,
        );
        out.push(r.await?);
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One redis-benchmark run: (test, requests/s, p50 µs) per test.
fn redis_benchmark(port: u16, extra: &[&str]) -> Result<Vec<(String, f64, f64)>> {
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-q",
            "-t",
            "set,get",
            "-n",
            "200000",
        ])
        .args(["-d", "100", "-c", "1"])
        .args(extra)
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    for line in text.split(['\r', '\n']) {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let Some((rps, rest)) = rest.split_once(" requests per second") else {
            continue;
        };
        let p50 = rest
            .split_once("p50=")
            .and_then(|(_, r)| r.split_whitespace().next())
            .and_then(|ms| ms.parse::<f64>().ok())
            .map_or(f64::NAN, |ms| ms * 1000.0);
        rows.push((name.trim().to_string(), rps.trim().parse()?, p50));
    }
    Ok(rows)
}

fn fmt(x: f64) -> String {
    if x.is_nan() {
        "—".into()
    } else if x >= 1000.0 {
        format!("{:.0}", x)
    } else {
        format!("{:.1}", x)
    }
}

/// The allocator the `kv` binary uses (kv-cli's `main.rs`), so the
/// in-process node is measured as it runs in production.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    let a = parse_args()?;
    if a.redis_benchmark_table {
        return rbtable::run(a.rounds, &a.dir);
    }
    if a.client {
        return client::run(&a);
    }
    let load_before = loadavg();
    let node_rt = runtime("kv-node")?;
    let client_rt = runtime("client")?;
    let data = Arc::new(Data::new(KEYS, VALUE_BYTES));

    eprintln!("starting servers under {}", a.dir.display());
    let kv_never = servers::Kv::start(&node_rt, SyncMode::Never, &a.dir)?;
    let kv_interval = servers::Kv::start(&node_rt, SyncMode::Interval, &a.dir)?;
    let redis_plain = servers::Redis::start(&[], &a.dir)?;
    let redis_aof = servers::Redis::start(
        &["--appendonly", "yes", "--appendfsync", "everysec"],
        &a.dir,
    )?;
    let targets = [
        Target {
            label: "kv sync=never",
            proto: Proto::Kv,
            addr: kv_never.addr.clone(),
        },
        Target {
            label: "redis no persistence",
            proto: Proto::Redis,
            addr: redis_plain.addr.clone(),
        },
        Target {
            label: "kv sync=interval 1s",
            proto: Proto::Kv,
            addr: kv_interval.addr.clone(),
        },
        Target {
            label: "redis aof everysec",
            proto: Proto::Redis,
            addr: redis_aof.addr.clone(),
        },
    ];

    let mut results = Results::new();
    let mut reference = BTreeMap::<String, Vec<f64>>::new();
    client_rt.block_on(async {
        for t in &targets {
            servers::wait_ready(t.proto, &t.addr).await?;
            let mut c = Conn::connect(t.proto, &t.addr).await?;
            workload::preload(&mut c, &data).await?;
        }
        for round in 0..a.rounds {
            for i in 0..targets.len() {
                let ti = (i + round) % targets.len();
                let t = &targets[ti];
                if a.only
                    .as_ref()
                    .is_some_and(|o| !t.label.contains(o.as_str()))
                {
                    continue;
                }
                eprintln!(
                    "round {}/{}: {} ({})",
                    round + 1,
                    a.rounds,
                    t.label,
                    loadavg()
                );
                let mut row = Vec::new();
                measure(t, &data, &a, 0x5EED + round as u64, &mut row).await?;
                for (m, x) in row.into_iter().enumerate() {
                    results.entry((m, ti)).or_default().push(x);
                }
            }
            if a.only.is_some() {
                continue;
            }
            // kv's own client, for reference (default sync = interval).
            let client = NodeClient::new(0, kv_interval.addr.clone(), ClientOptions::default());
            for (name, op) in [("GET", Op::Get), ("SET", Op::Set)] {
                let l = workload::node_client_single(&client, &data, op, a.single_ops, 7).await?;
                reference
                    .entry(format!("NodeClient {name} one at a time: p50 µs"))
                    .or_default()
                    .push(l.p50_us);
                reference
                    .entry(format!("NodeClient {name} one at a time: ops/s"))
                    .or_default()
                    .push(l.ops_per_sec);
                let rounds = a.pipelined_ops / DEPTH;
                let r =
                    workload::node_client_pipelined(&client, &data, op, DEPTH, rounds, 7).await?;
                reference
                    .entry(format!("NodeClient {name} 256 concurrent: ops/s"))
                    .or_default()
                    .push(r);
            }
        }
        anyhow::Ok(())
    })?;

    if a.redis_benchmark {
        for round in 0..a.rounds {
            eprintln!("redis-benchmark round {}/{}", round + 1, a.rounds);
            for (label, extra) in [("-c 1", &[][..]), ("-c 1 -P 256", &["-P", "256"][..])] {
                for (test, rps, p50) in redis_benchmark(redis_plain.port, extra)? {
                    reference
                        .entry(format!("redis-benchmark {test} {label}: ops/s"))
                        .or_default()
                        .push(rps);
                    if extra.is_empty() {
                        reference
                            .entry(format!("redis-benchmark {test} {label}: p50 µs"))
                            .or_default()
                            .push(p50);
                    }
                }
            }
        }
    }
    let load_after = loadavg();
    kv_never.stop(&node_rt)?;
    kv_interval.stop(&node_rt)?;
    drop((redis_plain, redis_aof));

    report(
        &a,
        &targets,
        &results,
        &reference,
        &load_before,
        &load_after,
    );
    Ok(())
}

fn report(
    a: &Args,
    targets: &[Target],
    results: &Results,
    reference: &BTreeMap<String, Vec<f64>>,
    load_before: &str,
    load_after: &str,
) {
    let get = |m: usize, t: usize| results.get(&(m, t)).map_or(f64::NAN, |v| median(v));
    println!(
        "{} keys, {}-byte values, medians of {} rounds; one-at-a-time {} requests, pipelined {} requests per measurement.",
        KEYS, VALUE_BYTES, a.rounds, a.single_ops, a.pipelined_ops
    );
    println!("Load average before: {load_before}; after: {load_after}.\n");
    println!("| metric | kv | redis | kv/redis |");
    println!("|---|---:|---:|---:|");
    for (kv, redis, title) in [(0, 1, "no fsync"), (2, 3, "fsync every 1 s")] {
        println!(
            "| **{title}**: {} vs {} | | | |",
            targets[kv].label, targets[redis].label
        );
        for (m, name) in METRICS.iter().enumerate() {
            let (k, r) = (get(m, kv), get(m, redis));
            println!("| {name} | {} | {} | {:.2} |", fmt(k), fmt(r), k / r);
        }
    }
    println!(
        "| **reference** (kv column: NodeClient on kv sync=interval 1s; redis column: redis-benchmark on redis no persistence) | | | |"
    );
    for (name, v) in reference {
        let (k, r) = if name.starts_with("NodeClient") {
            (median(v), f64::NAN)
        } else {
            (f64::NAN, median(v))
        };
        println!("| {name} | {} | {} | |", fmt(k), fmt(r));
    }
    println!("\nEvery run (in round order):\n");
    println!("| metric | server | runs |");
    println!("|---|---|---|");
    for (m, name) in METRICS.iter().enumerate() {
        for (ti, t) in targets.iter().enumerate() {
            if let Some(v) = results.get(&(m, ti)) {
                let runs: Vec<String> = v.iter().map(|x| fmt(*x)).collect();
                println!("| {name} | {} | {} |", t.label, runs.join(", "));
            }
        }
    }
}

//! `--redis-benchmark-table`: redis-benchmark itself (the same external C
//! client, the same flags) against kv's RESP2 front door and against
//! redis-server, one table with kv/redis ratios.
//!
//! Pairs: a kv node with `sync = never` vs redis-server without
//! persistence, and a kv node with `sync = always` vs redis-server with
//! `appendonly yes, appendfsync always`. Flags: `-t set,get -d 100` with
//! `-c 1`, `-c 50` and `-c 50 -P 16`, keyspace `-r 10000`. Rounds are
//! interleaved: each round runs every configuration on every server, the
//! server order rotating, so drift on the shared machine hits all of them;
//! the table shows each cell's median and the report lists every run.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use kv_router::SyncMode;

use crate::servers;

/// One redis-benchmark flag set: label, flags, requests (no fsync),
/// requests (fsync always).
const RUNS: [(&str, &[&str], usize, usize); 3] = [
    ("-c 1", &["-c", "1"], 20_000, 2_000),
    ("-c 50", &["-c", "50"], 100_000, 20_000),
    ("-c 50 -P 16", &["-c", "50", "-P", "16"], 400_000, 100_000),
];

/// (pair index, run index, test, server is kv) → requests/s per round.
type Cells = BTreeMap<(usize, usize, String, bool), Vec<f64>>;

/// Runs redis-benchmark once: requests/s per test (`SET`, `GET`).
fn redis_benchmark(port: u16, flags: &[&str], requests: usize) -> Result<Vec<(String, f64)>> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "set,get", "-d", "100", "-r", "10000", "--csv"])
        .args(["-n", &requests.to_string()])
        .args(flags)
        .output()
        .context("running redis-benchmark (apt-get install -y redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Vec::new();
    // "test","rps","avg_latency_ms",...; then one quoted row per test.
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        if let (Some(test), Some(rps)) = (fields.first(), fields.get(1)) {
            rows.push((test.to_string(), rps.parse()?));
        }
    }
    anyhow::ensure!(
        rows.len() == 2,
        "redis-benchmark on port {port} printed {text:?} (stderr {:?})",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(rows)
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the whole table and prints it (Markdown) on stdout.
pub fn run(rounds: usize, dir: &Path) -> Result<()> {
    let node_rt = crate::runtime("kv-node")?;
    let kv_never = servers::Kv::start(&node_rt, SyncMode::Never, dir)?;
    let kv_always = servers::Kv::start(&node_rt, SyncMode::Always, dir)?;
    let redis_plain = servers::Redis::start(&[], dir)?;
    let redis_always =
        servers::Redis::start(&["--appendonly", "yes", "--appendfsync", "always"], dir)?;
    node_rt.block_on(async {
        servers::wait_ready(crate::conn::Proto::Redis, &redis_plain.addr).await?;
        servers::wait_ready(crate::conn::Proto::Redis, &redis_always.addr).await
    })?;
    let pairs = [
        (
            "no fsync: kv sync=never vs redis no persistence",
            kv_never.resp_port,
            redis_plain.port,
            false,
        ),
        (
            "fsync every write: kv sync=always vs redis appendfsync always",
            kv_always.resp_port,
            redis_always.port,
            true,
        ),
    ];
    let load_before = crate::loadavg();
    let mut cells = Cells::new();
    for round in 0..rounds {
        for (pi, (title, kv_port, redis_port, durable)) in pairs.iter().enumerate() {
            for (ri, (label, flags, fast_n, durable_n)) in RUNS.iter().enumerate() {
                let n = if *durable { *durable_n } else { *fast_n };
                let mut order = [(true, *kv_port), (false, *redis_port)];
                if (round + ri) % 2 == 1 {
                    order.reverse();
                }
                for (is_kv, port) in order {
                    eprintln!(
                        "round {}/{rounds}: {title}, {label}, {} ({})",
                        round + 1,
                        if is_kv { "kv" } else { "redis" },
                        crate::loadavg()
                    );
                    for (test, rps) in redis_benchmark(port, flags, n)? {
                        cells.entry((pi, ri, test, is_kv)).or_default().push(rps);
                    }
                }
            }
        }
    }
    let load_after = crate::loadavg();
    kv_never.stop(&node_rt)?;
    kv_always.stop(&node_rt)?;
    drop((redis_plain, redis_always));
    report(
        &pairs.map(|p| p.0),
        &cells,
        rounds,
        &load_before,
        &load_after,
    );
    Ok(())
}

fn report(titles: &[&str], cells: &Cells, rounds: usize, before: &str, after: &str) {
    let get = |pi, ri, test: &str, kv| cells.get(&(pi, ri, test.to_string(), kv));
    println!(
        "redis-benchmark -t set,get -d 100 -r 10000 --csv, requests/s, medians of {rounds} interleaved rounds."
    );
    println!("Load average before: {before}; after: {after}.\n");
    println!("| pair | flags | test | kv req/s | redis req/s | kv/redis |");
    println!("|---|---|---|---:|---:|---:|");
    for (pi, title) in titles.iter().enumerate() {
        for (ri, (label, ..)) in RUNS.iter().enumerate() {
            for test in ["SET", "GET"] {
                let k = get(pi, ri, test, true).map_or(f64::NAN, |v| median(v));
                let r = get(pi, ri, test, false).map_or(f64::NAN, |v| median(v));
                println!(
                    "| {title} | `{label}` | {test} | {k:.0} | {r:.0} | {:.2} |",
                    k / r
                );
            }
        }
    }
    println!("\nEvery run (requests/s, in round order):\n");
    println!("| pair | flags | test | kv runs | redis runs |");
    println!("|---|---|---|---|---|");
    let runs = |v: Option<&Vec<f64>>| {
        v.map(|v| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
    };
    for (pi, title) in titles.iter().enumerate() {
        for (ri, (label, ..)) in RUNS.iter().enumerate() {
            for test in ["SET", "GET"] {
                let (k, r) = (
                    runs(get(pi, ri, test, true)),
                    runs(get(pi, ri, test, false)),
                );
                println!("| {title} | `{label}` | {test} | {k} | {r} |");
            }
        }
    }
}

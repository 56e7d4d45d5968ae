//! `peers`: kv-storage side by side with fjall, redb and sled.
//!
//! The parent process runs every (engine, workload) pair as a child process —
//! this same binary re-executed with `--engine X --workload Y --dir D` — so
//! each engine starts with a clean heap and its own peak RSS, and a crash or
//! leak in one engine cannot colour another's figures. A child prints one
//! JSON object of figures on stdout; the parent collects them and prints one
//! table with kv-storage's ratio to each peer.
//!
//! Modules: `data` (deterministic keys and values), `engines` (the four
//! engines behind one trait), `workload` (what a child runs), `sys` (RSS,
//! disk usage, load average), `report` (the table and the targets).

mod data;
mod engines;
mod report;
mod sys;
mod workload;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use engines::{Fjall, KvStorage, Redb, Sled};
use report::{Results, Run};
use workload::{Figures, Plan};

/// Engines in the order they run and appear in the table.
pub const ENGINES: [&str; 4] = ["kv-storage", "fjall", "redb", "sled"];

/// Command-line arguments (parent and child share them).
struct Args {
    plan: Plan,
    /// Where temporary data directories are made.
    base: PathBuf,
    engines: Vec<String>,
    /// Child mode: (engine, workload, data dir).
    child: Option<(String, String, PathBuf)>,
}

const USAGE: &str = "usage: peers [--keys N] [--durable-ops N] [--writers N] \
[--rounds N] [--writes-per-key N] [--dir BASE] [--engines kv-storage,fjall,redb,sled]";

fn parse_args() -> Result<Args> {
    let mut plan = Plan {
        keys: 1_000_000,
        durable_ops: 2_000,
        writers: 16,
        rounds: 3,
        writes_per_key: 1,
    };
    let mut base = std::env::temp_dir();
    let mut engines: Vec<String> = ENGINES.iter().map(|s| s.to_string()).collect();
    let (mut engine, mut workload, mut dir) = (None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--keys" => plan.keys = value()?.replace('_', "").parse()?,
            "--durable-ops" => plan.durable_ops = value()?.replace('_', "").parse()?,
            "--writers" => plan.writers = value()?.parse()?,
            "--rounds" => plan.rounds = value()?.parse::<u64>()?.max(1),
            "--writes-per-key" => plan.writes_per_key = value()?.parse::<u64>()?.max(1),
            "--dir" => base = value()?.into(),
            "--engines" => engines = value()?.split(',').map(str::to_string).collect(),
            "--engine" => engine = Some(value()?),
            "--workload" => workload = Some(value()?),
            "--data" => dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => bail!("{USAGE}"),
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if let Some(bad) = engines.iter().find(|e| !ENGINES.contains(&e.as_str())) {
        bail!("unknown engine {bad:?}; known: {}", ENGINES.join(","));
    }
    let child = match (engine, workload, dir) {
        (Some(e), Some(w), Some(d)) => Some((e, w, d)),
        (None, None, None) => None,
        _ => bail!("--engine, --workload and --data go together"),
    };
    Ok(Args {
        plan,
        base,
        engines,
        child,
    })
}

fn main() -> Result<()> {
    let args = parse_args()?;
    match &args.child {
        Some((engine, workload, dir)) => child(engine, workload, dir, &args.plan),
        None => parent(&args),
    }
}

/// Child mode: run one workload and print its figures as JSON.
fn child(engine: &str, workload: &str, dir: &Path, plan: &Plan) -> Result<()> {
    let figures = match engine {
        "raw" if workload == "floor" => workload::floor(dir, plan.durable_ops),
        "kv-storage" => workload::run::<KvStorage>(workload, dir, plan),
        "fjall" => workload::run::<Fjall>(workload, dir, plan),
        "redb" => workload::run::<Redb>(workload, dir, plan),
        "sled" => workload::run::<Sled>(workload, dir, plan),
        other => bail!("unknown engine {other:?}"),
    }?;
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// Parent mode: run every child, then print the table.
fn parent(args: &Args) -> Result<()> {
    let mut results = Results::new(args.plan, sys::load_average());
    results.revision = sys::kv_storage_revision();
    eprintln!(
        "peers: {} keys, load average {}",
        args.plan.keys, results.load_before
    );
    for engine in &args.engines {
        run_engine(args, engine, &mut results)?;
    }
    results.load_after = sys::load_average();
    print!("{}", report::render(&results));
    Ok(())
}

/// One engine's children: load → read → reopen (`rounds` times, the last
/// with maintenance) on one directory, then `rounds` rounds of raw fdatasync
/// floor, 1-writer and N-writer durable runs on fresh directories. Repeated
/// steps are stored as `step#round`; the report shows their median.
fn run_engine(args: &Args, engine: &str, results: &mut Results) -> Result<()> {
    let (plan, base) = (&args.plan, &args.base);
    let dir = tempfile::Builder::new().prefix("peers-").tempdir_in(base)?;
    let mut steps = vec![("load".to_string(), "load"), ("read".to_string(), "read")];
    for round in 0..plan.rounds {
        let last = round + 1 == plan.rounds;
        let workload = if last { "reopen-compact" } else { "reopen" };
        steps.push((format!("reopen#{round}"), workload));
    }
    for (step, workload) in steps {
        let run = spawn(plan, base, engine, workload, Some(dir.path()))?;
        let failed = run.is_err();
        results.insert(engine, &step, run);
        if failed {
            break;
        }
    }
    drop(dir);
    for round in 0..plan.rounds {
        // The disk's own append + fdatasync cost, right before this engine's
        // durable runs: other tenants of the machine make it drift.
        let floor = spawn(plan, base, "raw", "floor", None)?;
        results.insert(engine, &format!("floor#{round}"), floor);
        for (step, writers) in [("durable1", 1), ("durable_n", plan.writers)] {
            let plan = Plan { writers, ..*plan };
            let run = spawn(&plan, base, engine, "durable", None)?;
            results.insert(engine, &format!("{step}#{round}"), run);
        }
        let batches = spawn(plan, base, engine, "batch", None)?;
        results.insert(engine, &format!("batch#{round}"), batches);
    }
    Ok(())
}

/// Runs one child (in `dir`, or a fresh temp dir) and parses its figures.
fn spawn(
    plan: &Plan,
    base: &Path,
    engine: &str,
    workload: &str,
    dir: Option<&Path>,
) -> Result<Run> {
    let fresh = tempfile::Builder::new().prefix("peers-").tempdir_in(base)?;
    let data = dir.unwrap_or(fresh.path());
    let started = Instant::now();
    let output = Command::new(std::env::current_exe()?)
        .args(["--engine", engine, "--workload", workload, "--data"])
        .arg(data)
        .args(["--keys", &plan.keys.to_string()])
        .args(["--durable-ops", &plan.durable_ops.to_string()])
        .args(["--writers", &plan.writers.to_string()])
        .args(["--writes-per-key", &plan.writes_per_key.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    let secs = started.elapsed().as_secs_f64();
    let label = match workload {
        "durable" => format!("{engine} {workload}, {} writer(s)", plan.writers),
        "batch" => format!(
            "{engine} {workload}es of {}, {} batches",
            workload::BATCH_PUTS,
            workload::batch_count(plan)
        ),
        _ => format!("{engine} {workload}"),
    };
    eprintln!(
        "  {label:<36} {secs:>7.1} s{}",
        if output.status.success() {
            ""
        } else {
            "  FAILED"
        }
    );
    if !output.status.success() {
        return Ok(Err(format!("{label}: child exited with {}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let figures: Figures = serde_json::from_str(line)
        .with_context(|| format!("{label}: bad child output {line:?}"))?;
    Ok(Ok(figures))
}

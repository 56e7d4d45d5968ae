//! The workloads, each run inside one child process on one engine.
//!
//! - `load`: `n` puts of the load key set into an empty directory, one sync at
//!   the end, all of it `writes_per_key` times (each pass overwrites every
//!   key with the same value: the later passes leave garbage); then a clean
//!   close.
//! - `read`: open the loaded directory (untimed), `n` uniform-random gets of
//!   loaded keys, every value checked.
//! - `reopen`: time `open` plus the first get; memory the open added; disk
//!   usage. `reopen-compact` then also runs the engine's maintenance
//!   (kv-storage: `compact()` and a check of every key).
//! - `durable`: `ops` puts split over `writers` threads into an empty
//!   directory, each acknowledged only when durable; per-put latency; then
//!   every written value checked.
//! - `floor`: `ops` appends of one record-sized buffer to a plain file, each
//!   followed by `fdatasync` — the cost no durable put can beat.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};

use crate::data::{self, DURABLE_SEED, KEY_BYTES, LOAD_SEED, READ_SEED, Rng, VALUE_BYTES};
use crate::engines::{Engine, Mode, check_keys};
use crate::sys;

/// Figures a workload reports (name → number).
pub type Figures = BTreeMap<String, f64>;

/// What a child process runs.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Keys loaded and gets done.
    pub keys: u64,
    /// Durable puts in total (over all writers).
    pub durable_ops: u64,
    /// Concurrent writers of the `durable` workload.
    pub writers: u64,
    /// Repetitions of the short steps (reopen, floor, durable) in the parent.
    pub rounds: u64,
    /// Passes of the load over the key set (1: every key written once).
    pub writes_per_key: u64,
}

/// Runs `workload` on engine `E` in `dir`.
pub fn run<E: Engine>(workload: &str, dir: &Path, plan: &Plan) -> Result<Figures> {
    match workload {
        "load" => load::<E>(dir, plan.keys, plan.writes_per_key),
        "read" => read::<E>(dir, plan.keys),
        "reopen" => reopen::<E>(dir, plan.keys, false),
        "reopen-compact" => reopen::<E>(dir, plan.keys, true),
        "durable" => durable::<E>(dir, plan.durable_ops, plan.writers),
        "batch" => durable_batches::<E>(dir, batch_count(plan) * BATCH_PUTS),
        other => bail!("unknown workload {other:?}"),
    }
}

fn load_item(i: u64) -> (data::Key, data::Value) {
    let k = data::key(LOAD_SEED, i);
    (k, data::value(&k))
}

fn load<E: Engine>(dir: &Path, n: u64, passes: u64) -> Result<Figures> {
    let rss_before = sys::rss();
    let engine = E::open(dir, Mode::Bulk)?;
    let started = Instant::now();
    for _ in 0..passes.max(1) {
        engine.load(n, &load_item)?;
    }
    let secs = started.elapsed().as_secs_f64() / passes.max(1) as f64;
    let peak = sys::peak_rss();
    let closing = Instant::now();
    engine.close()?;
    let close_secs = closing.elapsed().as_secs_f64();
    Ok(Figures::from([
        ("ops_per_sec".into(), n as f64 / secs),
        ("secs".into(), secs),
        ("peak_rss_bytes".into(), peak as f64),
        ("rss_before_open_bytes".into(), rss_before as f64),
        ("close_secs".into(), close_secs),
    ]))
}

fn read<E: Engine>(dir: &Path, n: u64) -> Result<Figures> {
    let engine = E::open(dir, Mode::Bulk)?;
    let mut reader = engine.reader()?;
    let mut rng = Rng::new(READ_SEED);
    let started = Instant::now();
    for _ in 0..n {
        let k = data::key(LOAD_SEED, rng.below(n));
        ensure!(
            reader.check(&k, &data::value(&k))?,
            "wrong or missing value"
        );
    }
    let secs = started.elapsed().as_secs_f64();
    drop(reader);
    let peak = sys::peak_rss();
    engine.close()?;
    Ok(Figures::from([
        ("ops_per_sec".into(), n as f64 / secs),
        ("secs".into(), secs),
        ("peak_rss_bytes".into(), peak as f64),
    ]))
}

fn reopen<E: Engine>(dir: &Path, n: u64, maintain: bool) -> Result<Figures> {
    let rss_before = sys::rss();
    let started = Instant::now();
    let engine = E::open(dir, Mode::Bulk)?;
    let first = data::key(LOAD_SEED, n / 2);
    let ok = engine.reader()?.check(&first, &data::value(&first))?;
    let secs = started.elapsed().as_secs_f64();
    ensure!(ok, "first get after reopen: wrong or missing value");
    let rss_after = sys::rss();
    let (allocated, apparent) = sys::disk_usage(dir)?;
    let mut figures = Figures::from([
        ("open_first_get_secs".into(), secs),
        (
            "rss_delta_bytes".into(),
            rss_after.saturating_sub(rss_before) as f64,
        ),
        ("disk_bytes".into(), allocated as f64),
        ("disk_apparent_bytes".into(), apparent as f64),
    ]);
    figures.extend(engine.open_extras(n)?);
    if maintain {
        figures.extend(engine.after_reopen(dir)?);
    }
    engine.close()?;
    Ok(figures)
}

fn durable<E: Engine>(dir: &Path, ops: u64, writers: u64) -> Result<Figures> {
    let engine = E::open(dir, Mode::Durable)?;
    let per_writer = ops / writers.max(1);
    let started = Instant::now();
    let latencies = std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let engine = &engine;
                s.spawn(move || durable_writer(engine, w * per_writer, per_writer))
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            match h.join() {
                Ok(lat) => all.extend(lat?),
                Err(_) => bail!("a writer thread panicked"),
            }
        }
        Ok(all)
    });
    let secs = started.elapsed().as_secs_f64();
    let total = per_writer * writers;
    durable_figures(engine, total, secs, latencies?, "")
}

/// After a durable run that wrote keys `0..total` of [`DURABLE_SEED`] in
/// `secs`: checks every value, then puts/s, the latencies' p50 and p99
/// (named `<latency>p50_us`, `<latency>p99_us`) and the engine's counters;
/// closes the engine.
fn durable_figures<E: Engine>(
    engine: E,
    total: u64,
    secs: f64,
    mut latencies: Vec<Duration>,
    latency: &str,
) -> Result<Figures> {
    check_keys(&mut *engine.reader()?, DURABLE_SEED, total, "durable")?;
    let mut figures = Figures::from([
        ("ops_per_sec".into(), total as f64 / secs),
        (
            format!("{latency}p50_us"),
            sys::percentile_us(&mut latencies, 0.50),
        ),
        (
            format!("{latency}p99_us"),
            sys::percentile_us(&mut latencies, 0.99),
        ),
        ("ops".into(), total as f64),
    ]);
    figures.extend(engine.counters());
    engine.close()?;
    Ok(figures)
}

/// Puts per batch of the `batch` workload (a full pipeline's worth, as
/// kv-node's group append writes).
pub const BATCH_PUTS: u64 = 256;

/// Batches the `batch` workload writes: a tenth of the durable puts (at
/// least 10), so a run stays about as long as a durable one.
pub fn batch_count(plan: &Plan) -> u64 {
    (plan.durable_ops / 10).max(10)
}

/// One writer putting `ops` pairs in durable batches of [`BATCH_PUTS`]
/// (each durable before the next is built); puts/s and per-batch latency.
fn durable_batches<E: Engine>(dir: &Path, ops: u64) -> Result<Figures> {
    let engine = E::open(dir, Mode::Durable)?;
    let batches = ops / BATCH_PUTS;
    let mut latencies = Vec::with_capacity(batches as usize);
    let started = Instant::now();
    for b in 0..batches {
        let pairs: Vec<_> = (b * BATCH_PUTS..(b + 1) * BATCH_PUTS)
            .map(|i| {
                let k = data::key(DURABLE_SEED, i);
                let v = data::value(&k);
                (k, v)
            })
            .collect();
        let put = Instant::now();
        engine.durable_batch(&pairs)?;
        latencies.push(put.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    durable_figures(engine, batches * BATCH_PUTS, secs, latencies, "batch_")
}

fn durable_writer<E: Engine>(engine: &E, first: u64, count: u64) -> Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count as usize);
    for i in first..first + count {
        let k = data::key(DURABLE_SEED, i);
        let v = data::value(&k);
        let started = Instant::now();
        engine.durable_put(&k, &v)?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Bytes appended per raw write: about one kv-storage record of a 16-byte key
/// and a 100-byte value.
const FLOOR_RECORD_BYTES: usize = KEY_BYTES + VALUE_BYTES + 32;

/// The raw floor: `ops` times one record-sized write + `fdatasync` on a plain
/// new file, twice: appending (the file grows, so every fdatasync also
/// commits the new size to the filesystem journal) and overwriting a file
/// pre-sized with `set_len` (as fjall's journal is; only the data and, once
/// per 4 KiB block, the block allocation have to reach the disk).
pub fn floor(dir: &Path, ops: u64) -> Result<Figures> {
    let mut figures = Figures::new();
    for (name, presize) in [("append", false), ("presized", true)] {
        let mut file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(dir.join(format!("floor-{name}.log")))?;
        if presize {
            file.set_len(ops * FLOOR_RECORD_BYTES as u64 + 4096)?;
        }
        let mut latencies = timed_syncs(&mut file, ops)?;
        let p50 = sys::percentile_us(&mut latencies, 0.50);
        let p99 = sys::percentile_us(&mut latencies, 0.99);
        let total: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
        figures.insert(format!("{name}_p50_us"), p50);
        figures.insert(format!("{name}_p99_us"), p99);
        figures.insert(format!("{name}_ops_per_sec"), ops as f64 / total);
    }
    Ok(figures)
}

/// Latency of each of `ops` sequential record writes + `fdatasync`.
fn timed_syncs(file: &mut std::fs::File, ops: u64) -> Result<Vec<Duration>> {
    let record = [0x5au8; FLOOR_RECORD_BYTES];
    let mut latencies = Vec::with_capacity(ops as usize);
    for _ in 0..ops {
        let t = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        latencies.push(t.elapsed());
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engines::{Fjall, KvStorage, Redb, Sled};

    fn plan(keys: u64) -> Plan {
        Plan {
            keys,
            durable_ops: 64,
            writers: 4,
            rounds: 1,
            writes_per_key: 2,
        }
    }

    /// Every workload runs and reports its figures; reading keys that were
    /// never loaded is an error (the value check can fail).
    fn round_trip<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        let small = plan(500);
        let load = run::<E>("load", dir.path(), &small).unwrap();
        assert!(load["ops_per_sec"] > 0.0 && load["peak_rss_bytes"] > 0.0);
        assert!(run::<E>("read", dir.path(), &small).unwrap()["ops_per_sec"] > 0.0);
        let reopen = run::<E>("reopen-compact", dir.path(), &small).unwrap();
        assert!(reopen["disk_bytes"] > 0.0);
        assert!(run::<E>("read", dir.path(), &plan(5_000)).is_err());
        let fresh = tempfile::tempdir().unwrap();
        let durable = run::<E>("durable", fresh.path(), &small).unwrap();
        assert_eq!(durable["ops"], 64.0);
        assert!(durable["p99_us"] >= durable["p50_us"]);
        // Every batched key is checked by the workload itself.
        let fresh = tempfile::tempdir().unwrap();
        let batches = run::<E>("batch", fresh.path(), &small).unwrap();
        assert_eq!(batches["ops"], (10 * BATCH_PUTS) as f64);
        assert!(batches["batch_p99_us"] >= batches["batch_p50_us"]);
    }

    #[test]
    fn kv_storage_round_trip() {
        round_trip::<KvStorage>();
    }

    #[test]
    fn fjall_round_trip() {
        round_trip::<Fjall>();
    }

    #[test]
    fn redb_round_trip() {
        round_trip::<Redb>();
    }

    #[test]
    fn sled_round_trip() {
        round_trip::<Sled>();
    }

    #[test]
    fn kv_storage_compaction_figures() {
        let dir = tempfile::tempdir().unwrap();
        let small = plan(300);
        run::<KvStorage>("load", dir.path(), &small).unwrap();
        let reopen = run::<KvStorage>("reopen-compact", dir.path(), &small).unwrap();
        assert!(reopen["compact_log_bytes"] >= 300.0 * 116.0);
        assert_eq!(reopen["hint_fallbacks"], 0.0);
    }

    #[test]
    fn floor_reports_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = floor(dir.path(), 16).unwrap();
        assert!(f["append_p50_us"] > 0.0 && f["presized_p50_us"] > 0.0);
    }
}

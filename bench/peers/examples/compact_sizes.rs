//! Disk after `compact()` for kv-storage stores of several sizes and value
//! sizes, each key written `--writes-per-key` times (default 3) and one key in
//! ten then deleted: the garbage an explicit compaction should give back.
//!
//! ```sh
//! cargo run --release --example compact_sizes -- [--dir BASE] [--writes-per-key N]
//! ```
//!
//! Prints one Markdown row per case: live logical bytes (keys + values of
//! the live keys); disk (segment and hint files, up to the last record)
//! before and after `compact()` as multiples of it; the part of "after"
//! that is the format's own cost (live records with their headers, and
//! their hint entries); and the garbage left (the rest). Then the time to
//! reopen the compacted store with its hints, without them, and with them
//! again (closing the second rewrites them), all in this process: the later
//! opens reuse memory the earlier ones freed, so compare the third with the
//! second (the hints' price is on disk, their gain is here).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use kv_storage::{CompactionPolicy, Options, Store, SyncPolicy};

const KEY_BYTES: usize = 16;

/// (name, live logical bytes to aim for, value bytes)
const CASES: [(&str, u64, usize); 8] = [
    ("small", 4 << 20, 16),
    ("small", 4 << 20, 100),
    ("small", 4 << 20, 1000),
    ("small", 4 << 20, 10_000),
    ("large", 160 << 20, 16),
    ("large", 160 << 20, 100),
    ("large", 160 << 20, 1000),
    ("large", 160 << 20, 10_000),
];

fn key(i: u64) -> [u8; KEY_BYTES] {
    let mut k = [0u8; KEY_BYTES];
    k[..8].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Bytes of the files in `dir` whose name ends in `.{ext}`.
fn bytes_of(dir: &std::path::Path, ext: &str) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(ext) {
            total += std::fs::metadata(&path)?.len();
        }
    }
    Ok(total)
}

fn main() -> Result<()> {
    let mut base = std::env::temp_dir();
    let mut passes = 3u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().context("flag needs a value")?;
        match flag.as_str() {
            "--dir" => base = PathBuf::from(value),
            "--writes-per-key" => passes = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    println!(
        "| store | value B | live keys | live logical MiB | disk before ÷ logical | \
         disk after ÷ logical | of which records + hints | of which garbage | compact s | \
         reopen s: hints, no hints, hints |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (name, target, value_bytes) in CASES {
        let dir = tempfile::tempdir_in(&base)?;
        let options = Options {
            sync: SyncPolicy::Never,
            compaction: CompactionPolicy::Manual,
            ..Options::default()
        };
        let store = Store::open(dir.path(), options.clone())?;
        let keys = target / (KEY_BYTES + value_bytes) as u64;
        let value = vec![0x5a; value_bytes];
        for pass in 0..passes {
            for i in 0..keys {
                let mut v = value.clone();
                v[..8.min(value_bytes)].copy_from_slice(&pass.to_le_bytes()[..8.min(value_bytes)]);
                store.put(&key(i), &v)?;
            }
        }
        for i in (0..keys).step_by(10) {
            store.delete(&key(i))?;
        }
        let live_keys = store.len() as u64;
        let logical = live_keys * (KEY_BYTES + value_bytes) as u64;
        store.write_pending_hints()?;
        let before = store.stats().disk_bytes;
        let started = Instant::now();
        store.compact()?;
        let secs = started.elapsed().as_secs_f64();
        store.write_pending_hints()?;
        let live_records = store.stats().live_bytes;
        store.close()?;
        let after = bytes_of(dir.path(), "log")? + bytes_of(dir.path(), "hint")?;
        let format = live_records + bytes_of(dir.path(), "hint")?;
        let mut reopen = [0.0; 3];
        for (i, secs) in reopen.iter_mut().enumerate() {
            if i == 1 {
                for entry in std::fs::read_dir(dir.path())? {
                    let path = entry?.path();
                    if path.extension().and_then(|e| e.to_str()) == Some("hint") {
                        std::fs::remove_file(path)?;
                    }
                }
            }
            let started = Instant::now();
            let store = Store::open(dir.path(), options.clone())?;
            *secs = started.elapsed().as_secs_f64();
            anyhow::ensure!(store.len() as u64 == live_keys, "keys lost");
            store.close()?;
        }
        println!(
            "| {name} | {value_bytes} | {live_keys} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} | {secs:.2} | {:.3}, {:.3}, {:.3} |",
            logical as f64 / (1 << 20) as f64,
            before as f64 / logical as f64,
            after as f64 / logical as f64,
            format as f64 / logical as f64,
            after.saturating_sub(format) as f64 / logical as f64,
            reopen[0],
            reopen[1],
            reopen[2],
        );
    }
    Ok(())
}

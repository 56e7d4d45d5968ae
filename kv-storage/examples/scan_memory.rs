//! A full scan of 1M keys with values: `Store::iter().with_values()` (one
//! page of keys at a time) versus the old way to list a store,
//! `entries_since(0, usize::MAX)` (the whole history in one `Vec`). Run with
//! `cargo run --release -p kv-storage --example scan_memory [keys]`.
//!
//! Also the keys alone (`iter()`), for scan throughput.
//!
//! All run in one process, the scans first; each reports the keys seen,
//! keys per second and the resident set growth over the size before it
//! (sampled every 10 000 keys for the scan, after the `Vec` is built).

use std::time::Instant;

use kv_storage::Since;

#[path = "support/mod.rs"]
mod support;
use support::{VALUE_BYTES, filled_store, keys_arg, mib, rss_bytes};

fn main() -> Result<(), kv_storage::Error> {
    let keys = keys_arg();
    let (_dir, store) = filled_store(keys)?;

    let started = Instant::now();
    let mut key_count = 0u64;
    for key in store.iter() {
        key?;
        key_count += 1;
    }
    let keys_secs = started.elapsed().as_secs_f64();

    let before = rss_bytes();
    let (mut peak, mut seen, mut value_bytes) = (before, 0u64, 0usize);
    let started = Instant::now();
    for item in store.iter().with_values() {
        let (_, v) = item?;
        value_bytes += v.len();
        seen += 1;
        if seen % 10_000 == 0 {
            peak = peak.max(rss_bytes());
        }
    }
    let scan_secs = started.elapsed().as_secs_f64();
    let scan_growth = peak.max(rss_bytes()).saturating_sub(before);

    let before = rss_bytes();
    let started = Instant::now();
    let Since::Snapshot { entries, .. } = store.entries_since(0, usize::MAX)? else {
        return Err(kv_storage::Error::Closed);
    };
    let vec_secs = started.elapsed().as_secs_f64();
    let vec_growth = rss_bytes().saturating_sub(before);
    let vec_entries = entries.len();
    drop(entries);

    println!("full listing of {keys} keys ({VALUE_BYTES}-byte values):");
    println!(
        "  iter() keys only:     {key_count} keys, {:.0} keys/s",
        key_count as f64 / keys_secs
    );
    println!(
        "  iter().with_values(): {seen} keys ({} value bytes), {:.0} keys/s, RSS growth {:.1} MiB",
        value_bytes,
        seen as f64 / scan_secs,
        mib(scan_growth)
    );
    println!(
        "  entries_since(0):     {vec_entries} entries, {:.0} keys/s, RSS growth {:.1} MiB",
        vec_entries as f64 / vec_secs,
        mib(vec_growth)
    );
    println!(
        "  ratio scan/Vec: RSS growth {:.4}x, keys/s {:.2}x",
        scan_growth as f64 / vec_growth.max(1) as f64,
        (seen as f64 / scan_secs) / (vec_entries as f64 / vec_secs)
    );
    store.close()
}

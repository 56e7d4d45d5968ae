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

use bytes::Bytes;
use kv_storage::{Entry, Options, Position, Since, Store, SyncPolicy};

#[path = "support/rss.rs"]
mod rss;
use rss::{mib, rss_bytes};

const VALUE_BYTES: usize = 100;

fn main() -> Result<(), kv_storage::Error> {
    let keys: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().map_err(|e| kv_storage::Error::Io {
        path: "tmp".into(),
        source: e,
    })?;
    let opts = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let store = Store::open(dir.path(), opts)?;
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let mut batch = Vec::with_capacity(1000);
    for i in 0..keys {
        // From LSN 2 on, so `entries_since(0)` answers with every live
        // entry in memory (LSN 1 is below the history floor).
        batch.push(Entry {
            position: Position {
                epoch: 1,
                lsn: i + 2,
            },
            key: Bytes::from(format!("key-{i:08}")),
            value: Some(value.clone()),
            expiry: None,
        });
        if batch.len() == 1000 {
            store.apply_batch(&batch)?;
            batch.clear();
        }
    }
    store.apply_batch(&batch)?;
    drop(batch);

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

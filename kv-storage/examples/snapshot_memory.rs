//! Peak memory of a full snapshot of 1M keys: the chunked
//! `SnapshotReader` versus the in-memory `Since::Snapshot` (a `Vec` of every
//! live entry). Run with
//! `cargo run --release -p kv-storage --example snapshot_memory [keys]`.
//!
//! Both are measured in one process, chunked first: the resident set size
//! (`VmRSS` from `/proc/self/status`, Linux only) is sampled after every
//! chunk and after the `Vec` is built, and reported as growth over the
//! resident size before each run, together with the entries held at once.

use kv_storage::Since;

const CHUNK_BYTES: usize = 1 << 20;

#[path = "support/mod.rs"]
mod support;
use support::{VALUE_BYTES, filled_store, keys_arg, mib, rss_bytes};

fn main() -> Result<(), kv_storage::Error> {
    let keys = keys_arg();
    let (_dir, store) = filled_store(keys)?;

    let before = rss_bytes();
    let mut reader = store.snapshot_reader(CHUNK_BYTES)?;
    let (mut peak_rss, mut total) = (before, 0usize);
    while let Some(chunk) = reader.next_chunk()? {
        total += chunk.len();
        peak_rss = peak_rss.max(rss_bytes());
    }
    let chunked_growth = peak_rss.saturating_sub(before);
    let chunked_peak = reader.peak_entries();
    drop(reader);

    let before = rss_bytes();
    let Since::Snapshot { entries, .. } = store.entries_since(0, usize::MAX)? else {
        panic!("expected the in-memory snapshot");
    };
    let vec_growth = rss_bytes().saturating_sub(before);
    let vec_entries = entries.len();
    drop(entries);

    println!(
        "snapshot of {keys} keys ({VALUE_BYTES}-byte values, {} MiB chunks):",
        CHUNK_BYTES >> 20
    );
    println!(
        "  chunked: {total} entries streamed, at most {chunked_peak} held at once, RSS growth {:.1} MiB",
        mib(chunked_growth)
    );
    println!(
        "  Vec:     {vec_entries} entries held at once, RSS growth {:.1} MiB",
        mib(vec_growth)
    );
    println!(
        "  ratio chunked/Vec: entries {:.4}x, RSS growth {:.4}x",
        chunked_peak as f64 / vec_entries.max(1) as f64,
        chunked_growth as f64 / vec_growth.max(1) as f64
    );
    store.close()
}

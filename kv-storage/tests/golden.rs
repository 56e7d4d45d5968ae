//! Frozen files written by an earlier version of the on-disk format: every
//! later version must open them and read the same data. The files under
//! `tests/golden/<name>/` are never regenerated; `write_fixture` documents
//! how they were made (run it only to add a *new* fixture directory:
//! `KV_WRITE_GOLDEN=<name> cargo test -p kv-storage --test golden`).
//!
//! - `v1-2026-12`: the record format of December 2026 (CRC, epoch, LSN,
//!   varint lengths, flags with bit 2 "batch continues"), segment headers,
//!   hint files and the `EPOCH` file of that time: sealed segments with
//!   hints, a compacted segment, a sealed segment without its hint, and a
//!   newest segment ending in a write batch.

mod common;

use std::path::{Path, PathBuf};

use common::{live_pairs, tiny};
use kv_storage::{Since, Store, WriteBatch};

const FIXTURES: &[&str] = &["v1-2026-12"];

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn key(i: u32) -> Vec<u8> {
    format!("golden-{i:03}").into_bytes()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    format!("value {i} round {round} {}", "~".repeat((i % 23) as usize)).into_bytes()
}

/// The live data every fixture holds: keys 0..60, minus every 7th (deleted),
/// value of round 1 for even keys (overwritten), round 0 for odd ones; then
/// the batch: key 100 = "batched", key 1 deleted.
fn expected() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out: Vec<_> = (0..60)
        .filter(|i| i % 7 != 0 && *i != 1)
        .map(|i| (key(i), value(i, (i % 2) ^ 1)))
        .collect();
    out.push((key(100), b"batched".to_vec()));
    out.sort();
    out
}

/// Writes a fixture with today's code (see the module docs).
fn write_fixture(dir: &Path) {
    let store = Store::open(dir, tiny(700, 0)).unwrap();
    store.begin_epoch(3).unwrap();
    for round in 0..2 {
        for i in (0..60).filter(|i| round == 0 || i % 2 == 0) {
            store.put(&key(i), &value(i, round)).unwrap();
        }
    }
    for i in (0..60).filter(|i| i % 7 == 0) {
        store.delete(&key(i)).unwrap();
    }
    store.write_pending_hints().unwrap();
    store.compact().unwrap();
    for i in 60..70 {
        store.put(&key(i), b"short-lived").unwrap();
        store.delete(&key(i)).unwrap();
    }
    let mut batch = WriteBatch::new();
    batch.put(key(100), "batched").delete(key(1));
    store.write_batch(&batch).unwrap();
    store.close().unwrap();
    // One sealed segment loses its hint, so the strict scan path is covered.
    let mut hints = common::files_with_ext(dir, "hint");
    if let Some(last) = hints.pop() {
        std::fs::remove_file(last).unwrap();
    }
    std::fs::remove_file(dir.join("LOCK")).ok();
}

fn copy_fixture(name: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    copy
}

#[test]
fn golden_fixtures_open_and_read_the_same_data() {
    if let Ok(name) = std::env::var("KV_WRITE_GOLDEN") {
        let dir = fixture_dir(&name);
        assert!(
            !dir.exists(),
            "fixtures are never regenerated: {name} exists"
        );
        std::fs::create_dir_all(&dir).unwrap();
        write_fixture(&dir);
    }
    for name in FIXTURES {
        let copy = copy_fixture(name);
        let store = Store::open(copy.path(), tiny(700, 0)).unwrap();
        assert_eq!(live_pairs(&store), expected(), "{name}");
        assert_eq!(store.epoch(), 3, "{name}");
        assert_eq!(store.stats().truncated_tail_bytes, 0, "{name}");
        assert!(store.stats().hint_fallbacks == 0, "{name}");
        // The history above the compacted part reads back as entries.
        let last = store.last_lsn();
        let Since::Entries(tail) = store.entries_since(last - 2, 10).unwrap() else {
            panic!("{name}: history expected");
        };
        assert_eq!(tail.len(), 2, "{name}");
        assert_eq!(tail[0].key, key(100), "{name}");
        // And it keeps working: compaction and a reopen keep the data.
        store.compact().unwrap();
        store.close().unwrap();
        let store = Store::open(copy.path(), tiny(700, 0)).unwrap();
        assert_eq!(live_pairs(&store), expected(), "{name}");
    }
}

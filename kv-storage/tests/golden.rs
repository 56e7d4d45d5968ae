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
//! - `v2-2026-12`: the same, written after per-key expiry arrived (record
//!   flag bit 3 with an 8-byte expiry, hint format version 2), plus keys
//!   with expiry times in every kind of file: compacted, sealed with and
//!   without a hint, and the newest segment (see [`EXPIRING`]).

mod common;

use std::path::{Path, PathBuf};

use common::{live_pairs, tiny};
use kv_storage::{Clock, Expiry, Options, Since, Store, Ttl, WriteBatch};

/// The fixtures, and whether each holds the [`EXPIRING`] keys.
const FIXTURES: &[(&str, bool)] = &[("v1-2026-12", false), ("v2-2026-12", true)];

/// The expiring fixture's clock when it was written (unix ms); expiry
/// times in it are relative to this.
const WRITTEN_AT: u64 = 1_796_000_000_000;

/// Keys `200..230` of the expiring fixture: key `200 + i` written with an
/// expiry `WRITTEN_AT + 1000 (i + 1)`; then keys 210..215 made persistent
/// and key 220's expiry moved to `WRITTEN_AT + 99_000`. Key 101 expires at
/// `WRITTEN_AT + 50_000`.
const EXPIRING: std::ops::Range<u32> = 0..30;

/// What the expiring fixture says about key `200 + i`'s expiry.
fn expiring_ttl(i: u32) -> Ttl {
    match i {
        10..15 => Ttl::Persistent,
        20 => Ttl::ExpiresAt(WRITTEN_AT + 99_000),
        _ => Ttl::ExpiresAt(WRITTEN_AT + 1000 * (u64::from(i) + 1)),
    }
}

/// Options of a fixture store whose clock reads `now`.
fn options_at(now: u64) -> Options {
    Options {
        clock: Clock::from_fn(move || now),
        ..tiny(700, 0)
    }
}

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

/// [`expected`], plus the expiring keys still live at `now` if `expiring`.
fn expected_at(expiring: bool, now: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = expected();
    if !expiring {
        return out;
    }
    let live = |ttl: Ttl| ttl == Ttl::Persistent || ttl.remaining_ms(now).is_some_and(|r| r > 0);
    let keys = EXPIRING.filter(|&i| live(expiring_ttl(i)));
    out.extend(keys.map(|i| (key(200 + i), value(200 + i, 0))));
    if now < WRITTEN_AT + 50_000 {
        out.push((key(101), b"expiring".to_vec()));
    }
    out.sort();
    out
}

/// The expiring keys written before the compaction (`first`) or after it.
fn write_expiring(store: &Store, first: bool) {
    let half = (EXPIRING.start + EXPIRING.end) / 2;
    let range = if first {
        EXPIRING.start..half
    } else {
        half..EXPIRING.end
    };
    for i in range {
        let at = Expiry::At(WRITTEN_AT + 1000 * (u64::from(i) + 1));
        let (k, v) = (key(200 + i), value(200 + i, 0));
        store.put_with_expiry(&k, &v, at).unwrap();
    }
    if !first {
        for i in 10..15 {
            store.expire(&key(200 + i), None).unwrap();
        }
        let later = Expiry::At(WRITTEN_AT + 99_000);
        store.expire(&key(220), Some(later)).unwrap();
    }
}

/// Writes a fixture with today's code (see the module docs); the expiring
/// keys too if `expiring`.
fn write_fixture(dir: &Path, expiring: bool) {
    let store = Store::open(dir, options_at(WRITTEN_AT)).unwrap();
    store.begin_epoch(3).unwrap();
    for round in 0..2 {
        for i in (0..60).filter(|i| round == 0 || i % 2 == 0) {
            store.put(&key(i), &value(i, round)).unwrap();
        }
    }
    for i in (0..60).filter(|i| i % 7 == 0) {
        store.delete(&key(i)).unwrap();
    }
    if expiring {
        write_expiring(&store, true);
    }
    store.write_pending_hints().unwrap();
    store.compact().unwrap();
    if expiring {
        write_expiring(&store, false);
    }
    for i in 60..70 {
        store.put(&key(i), b"short-lived").unwrap();
        store.delete(&key(i)).unwrap();
    }
    if expiring {
        let k101 = Expiry::At(WRITTEN_AT + 50_000);
        store.put_with_expiry(&key(101), b"expiring", k101).unwrap();
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

/// The format version byte of every hint file of fixture `name`.
fn hint_versions(name: &str) -> Vec<u8> {
    let hints = common::files_with_ext(&fixture_dir(name), "hint");
    hints.iter().map(|h| std::fs::read(h).unwrap()[4]).collect()
}

#[test]
fn golden_fixtures_open_and_read_the_same_data() {
    if let Ok(name) = std::env::var("KV_WRITE_GOLDEN") {
        let dir = fixture_dir(&name);
        assert!(
            !dir.exists(),
            "fixtures are never regenerated: {name} exists"
        );
        let expiring = FIXTURES.iter().any(|(n, e)| *n == name && *e);
        std::fs::create_dir_all(&dir).unwrap();
        write_fixture(&dir, expiring);
    }
    for &(name, expiring) in FIXTURES {
        let copy = copy_fixture(name);
        let store = Store::open(copy.path(), options_at(WRITTEN_AT)).unwrap();
        assert_eq!(
            live_pairs(&store),
            expected_at(expiring, WRITTEN_AT),
            "{name}"
        );
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
        // And it keeps working: compaction (which drops what expired by
        // then) and a reopen keep the data.
        store.close().unwrap();
        let later = WRITTEN_AT + 15_500;
        let store = Store::open(copy.path(), options_at(later)).unwrap();
        store.compact().unwrap();
        store.close().unwrap();
        let store = Store::open(copy.path(), options_at(later)).unwrap();
        assert_eq!(live_pairs(&store), expected_at(expiring, later), "{name}");
    }
}

#[test]
fn the_expiring_fixture_keeps_every_expiry_time() {
    let copy = copy_fixture("v2-2026-12");
    let store = Store::open(copy.path(), options_at(WRITTEN_AT)).unwrap();
    for i in EXPIRING {
        let k = key(200 + i);
        assert_eq!(
            store.expiry(&k).unwrap(),
            expiring_ttl(i),
            "key {}",
            200 + i
        );
    }
    let k101 = Ttl::ExpiresAt(WRITTEN_AT + 50_000);
    assert_eq!(store.expiry(&key(101)).unwrap(), k101);
    assert_eq!(store.expiry(&key(2)).unwrap(), Ttl::Persistent);
    // Only the keys written before the compaction went through it.
    assert_ne!(
        expected_at(true, WRITTEN_AT),
        expected_at(true, WRITTEN_AT + 15_500)
    );
}

#[test]
fn the_fixtures_cover_both_hint_versions() {
    let v1 = hint_versions("v1-2026-12");
    let v2 = hint_versions("v2-2026-12");
    assert!(!v1.is_empty() && v1.iter().all(|&v| v == 1), "{v1:?}");
    assert!(!v2.is_empty() && v2.iter().all(|&v| v == 2), "{v2:?}");
}

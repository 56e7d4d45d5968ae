//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kv_storage::{
    CompactionPolicy, Entry, Error, FaultPoint, HotCache, Options, Position, Store, SyncPolicy,
};

/// Options for tests: tiny segments, manual compaction, no fsync, a private
/// cache of `cache` bytes.
pub fn tiny(segment_bytes: u64, cache: u64) -> Options {
    Options {
        sync: SyncPolicy::Never,
        segment_bytes,
        hot_cache: Some(HotCache::new(cache)),
        compaction: CompactionPolicy::Manual,
        ..Options::default()
    }
}

/// Opens `dir` with `opts`, panicking on error.
pub fn open(dir: &Path, opts: &Options) -> Store {
    Store::open(dir, opts.clone()).expect("open")
}

/// Segment files in `dir`, sorted.
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Deletes every hint file in `dir`, so the next open scans the segments.
pub fn remove_hints(dir: &Path) {
    for hint in files_with_ext(dir, "hint") {
        std::fs::remove_file(hint).unwrap();
    }
}

/// The newest `segment-*.log` in `dir`.
pub fn newest_segment(dir: &Path) -> PathBuf {
    files_with_ext(dir, "log").pop().expect("a segment")
}

/// Key `i` as bytes.
pub fn key(i: u64) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

/// A value for key `i` at version `v`, of varying length.
pub fn value(i: u64, v: u64) -> Vec<u8> {
    let len = ((i * 7 + v * 13) % 50) as usize;
    let mut out = format!("v{v}-k{i}-").into_bytes();
    out.extend(std::iter::repeat_n(b'x', len));
    out
}

/// Every live key and its value, sorted, read through `iter`.
pub fn live_pairs(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all: Vec<_> = store
        .iter()
        .with_values()
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    all.sort();
    all
}

/// Installs `entries` as a snapshot as of `as_of` with a staged install.
pub fn install(store: &Store, entries: &[Entry], as_of: Position) {
    let mut install = store.begin_install(as_of).expect("begin install");
    install.add(entries).expect("stage");
    install.commit().expect("commit");
}

/// Copies `source`'s live entries to `dest` with a chunked snapshot of
/// `chunk_bytes` chunks; returns the snapshot's position.
pub fn copy_snapshot(source: &Store, dest: &Store, chunk_bytes: usize) -> Position {
    let reader = source.snapshot_reader(chunk_bytes).expect("reader");
    let as_of = reader.as_of();
    let mut install = dest.begin_install(as_of).expect("begin install");
    for chunk in reader {
        install.add(&chunk.expect("chunk")).expect("stage");
    }
    install.commit().expect("commit");
    as_of
}

/// Checks that `result` stopped at `point` and that the store then refuses
/// writes (as after a crash), and drops the store.
pub fn crashed_at<T: std::fmt::Debug>(store: Store, result: Result<T, Error>, point: FaultPoint) {
    let err = result.unwrap_err();
    assert!(
        matches!(err, Error::FaultInjected(p) if p == point),
        "{err}"
    );
    assert!(matches!(store.put(b"x", b"y"), Err(Error::Closed)));
    drop(store);
}

/// A copy of the store in `dir` with its newest segment cut to `len` bytes
/// (then grown back to `padded` bytes of zeros, if given).
pub fn cut_copy(dir: &Path, len: u64, padded: Option<u64>) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let seg = std::fs::OpenOptions::new()
        .write(true)
        .open(newest_segment(copy.path()))
        .unwrap();
    seg.set_len(len).unwrap();
    if let Some(padded) = padded {
        seg.set_len(padded).unwrap();
    }
    copy
}

pub fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

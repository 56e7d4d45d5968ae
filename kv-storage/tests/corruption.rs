//! Corruption is loud: damage inside the newest segment and a missing
//! sealed segment refuse to open (naming file and offset), while a torn tail
//! and a power-loss hole are cut, counted and logged at WARN.

mod common;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{files_with_ext, key, newest_segment, open, tiny};
use kv_storage::{Error, Options, Store};

/// Copies every file of `from` into a fresh temp dir.
fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.path().join(path.file_name().unwrap())).unwrap();
    }
    to
}

/// A fixed 40-byte value for key `i` (one-byte varints, 19-byte headers).
fn value(i: u64) -> Vec<u8> {
    format!("value-{i:05}-").into_bytes().repeat(4)[..40].to_vec()
}

/// Offset of the record holding key `i` (the first one in the file).
fn record_offset(bytes: &[u8], i: u64) -> u64 {
    let k = key(i);
    let at = bytes.windows(k.len()).position(|w| w == k).unwrap();
    (at - 19) as u64
}

fn write_keys(store: &Store, n: u64) {
    for i in 0..n {
        store.put(&key(i), &value(i)).unwrap();
    }
}

fn one_segment() -> Options {
    tiny(1 << 20, 0)
}

/// Flips a value byte of key 100's record in the newest segment of `dir`
/// and checks that open refuses, naming the segment and the record.
fn assert_flip_refuses(dir: &Path) {
    let segment = newest_segment(dir);
    let mut bytes = std::fs::read(&segment).unwrap();
    let at = record_offset(&bytes, 100);
    bytes[at as usize + 19 + 9 + 5] ^= 0x04;
    std::fs::write(&segment, &bytes).unwrap();
    match Store::open(dir, one_segment()) {
        Err(Error::Corrupted {
            segment: bad,
            offset,
            reason,
        }) => {
            assert_eq!(bad, segment);
            assert_eq!(offset, at, "{reason}");
            assert!(reason.contains("valid record"), "{reason}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(store) => panic!(
            "opened with {} of 200 keys: later acknowledged writes were silently dropped",
            store.stats().keys
        ),
    }
}

#[test]
fn a_bit_flip_in_the_middle_of_the_closed_newest_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &one_segment());
    write_keys(&store, 200);
    store.close().unwrap();
    assert_flip_refuses(dir.path());
}

#[test]
fn a_bit_flip_in_the_middle_of_a_pre_sized_newest_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &one_segment());
    write_keys(&store, 200);
    // As a crash leaves it: pre-sized, zeros after the last record.
    let copy = copy_dir(dir.path());
    drop(store);
    assert_flip_refuses(copy.path());
}

#[test]
fn a_deleted_sealed_segment_refuses_to_open_naming_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(700, 0);
    let store = open(dir.path(), &opts);
    write_keys(&store, 60);
    store.close().unwrap();
    let logs = files_with_ext(dir.path(), "log");
    assert!(logs.len() >= 4, "want several sealed segments");
    let gone = &logs[1];
    std::fs::remove_file(gone).unwrap();
    let _ = std::fs::remove_file(gone.with_extension("hint"));
    match Store::open(dir.path(), opts) {
        Err(Error::Corrupted {
            segment,
            offset,
            reason,
        }) => {
            assert_eq!(segment, logs[2], "names the segment after the gap");
            assert_eq!(offset, 0);
            assert!(reason.contains("missing"), "{reason}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(store) => panic!(
            "opened with {} of 60 keys although a segment is gone",
            store.stats().keys
        ),
    }
}

#[test]
fn a_deleted_newest_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let opts = tiny(700, 0);
    let store = open(dir.path(), &opts);
    write_keys(&store, 60);
    // A clean close writes the hints of every sealed segment.
    store.close().unwrap();
    let mut logs = files_with_ext(dir.path(), "log");
    let newest = logs.pop().unwrap();
    std::fs::remove_file(&newest).unwrap();
    match Store::open(dir.path(), opts) {
        Err(Error::Corrupted {
            segment, reason, ..
        }) => {
            assert_eq!(&segment, logs.last().unwrap(), "names the segment before");
            assert!(reason.contains("missing"), "{reason}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(store) => panic!(
            "opened with {} of 60 keys although the newest segment is gone",
            store.stats().keys
        ),
    }
}

/// Log lines written while `f` runs.
fn captured_logs(f: impl FnOnce()) -> String {
    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Capture(Arc::new(Mutex::new(Vec::new())));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
}

#[test]
fn a_torn_tail_is_cut_counted_and_logged_at_warn_with_its_byte_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &one_segment());
    write_keys(&store, 20);
    store.close().unwrap();
    // Half of a 21st record: what a kill -9 mid-append leaves.
    let segment = newest_segment(dir.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    let whole = bytes.clone();
    let first = record_offset(&whole, 0) as usize;
    bytes.extend_from_slice(&whole[first..first + 30]);
    std::fs::write(&segment, &bytes).unwrap();

    let mut truncated = 0;
    let logs = captured_logs(|| {
        let store = open(dir.path(), &one_segment());
        truncated = store.stats().truncated_tail_bytes;
        assert_eq!(store.stats().keys, 20);
    });
    assert_eq!(truncated, 30);
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("torn tail"), "{logs}");
    assert!(logs.contains("bytes=30"), "{logs}");
}

#[test]
fn a_power_loss_hole_before_later_records_is_a_torn_tail_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), &one_segment());
    write_keys(&store, 200);
    let copy = copy_dir(dir.path());
    drop(store);
    // The page at 4 KiB never reached the disk; later pages did.
    let segment = newest_segment(copy.path());
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[4096..8192].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    let store = open(copy.path(), &one_segment());
    let kept = store.stats().keys;
    assert!(kept > 0 && kept < 200, "kept {kept}");
    assert!(store.stats().truncated_tail_bytes > 0);
    for i in 0..200 {
        let got = store.get(&key(i)).unwrap();
        let want = (i < kept).then(|| value(i));
        assert_eq!(
            got.as_deref(),
            want.as_deref(),
            "key {i}: a prefix survives"
        );
    }
}

#[test]
fn a_sealed_segment_cut_underneath_the_store_is_an_error_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    // No hot cache: every get reads the disk.
    let opts = tiny(64 << 10, 0);
    let store = open(dir.path(), &opts);
    write_keys(&store, 3000);
    let sealed = files_with_ext(dir.path(), "log").remove(0);
    // Another process ignores the directory lock and cuts a sealed (mapped)
    // segment to one page: reading a mapped page wholly past the end of
    // the file raises SIGBUS, which would kill the process.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&sealed)
        .unwrap();
    file.set_len(4096).unwrap();

    let mut errors = 0;
    for i in 0..3000 {
        match store.get(&key(i)) {
            Ok(got) => assert_eq!(got.as_deref(), Some(&value(i)[..]), "key {i}"),
            Err(Error::Corrupted { segment, .. }) => {
                assert_eq!(segment, sealed);
                errors += 1;
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(errors > 0, "some keys lived in the cut part");
    // History for a follower reads the same file: an error, too.
    match store.entries_since(0, 1000) {
        Err(Error::Corrupted { segment, .. }) => assert_eq!(segment, sealed),
        other => panic!("unexpected {other:?}"),
    }
}

//! Crash test: a writer in a child process is `kill -9`ed at random moments,
//! many times; after each kill the parent reopens the store and checks that
//! every acknowledged write is there with the right value.
//!
//! The test binary plays both roles (`harness = false`): with
//! `KV_CRASH_CHILD_DIR` set it is the child, which performs the operations
//! numbered from `KV_CRASH_START` on and prints each operation's number after
//! the store acknowledged it, while a second thread compacts continuously so
//! that kills also land inside compactions. Operation `i` is a function of
//! `i` alone (a put of `value(i)` to key `i % KEYS`, or a delete), so the
//! parent knows the expected state after any prefix of operations.
//!
//! Acknowledged = returned `Ok`. Under `SyncPolicy::Never` that means handed
//! to the OS, which a process kill cannot lose. At most one operation beyond
//! the last acknowledged one may have happened (done but not yet printed);
//! the parent accepts either state for that operation's key.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kv_storage::{CompactionPolicy, HotCache, Options, Store, SyncPolicy};
use rand::Rng;

const KEYS: u64 = 150;
/// Kill points per run; every one is a separate child process.
const KILLS: u32 = 60;
/// Every `ALWAYS_EVERY`-th child runs with `SyncPolicy::Always`.
const ALWAYS_EVERY: u32 = 4;

fn options(always: bool) -> Options {
    Options {
        sync: if always {
            SyncPolicy::Always
        } else {
            SyncPolicy::Never
        },
        segment_bytes: 8 * 1024,
        hot_cache: Some(HotCache::new(64 * 1024)),
        compaction: CompactionPolicy::Auto {
            min_garbage_ratio: 0.3,
            min_sealed_segments: 2,
        },
        ..Options::default()
    }
}

fn key(i: u64) -> Vec<u8> {
    format!("key-{:04}", i % KEYS).into_bytes()
}

/// What operation `i` does: `Some(value)` = put, `None` = delete.
fn op(i: u64) -> Option<Vec<u8>> {
    if i % 7 == 3 {
        return None;
    }
    let mut v = format!("op-{i}-").into_bytes();
    v.extend(std::iter::repeat_n(
        b'a' + (i % 26) as u8,
        (i % 97) as usize,
    ));
    Some(v)
}

fn child(dir: &Path) {
    let start: u64 = std::env::var("KV_CRASH_START").unwrap().parse().unwrap();
    let always = std::env::var("KV_CRASH_ALWAYS").is_ok();
    let store = Arc::new(Store::open(dir, options(always)).expect("child open"));
    let compactor = store.clone();
    std::thread::spawn(move || {
        loop {
            let _ = compactor.compact();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut out = std::io::stdout().lock();
    for i in start.. {
        match op(i) {
            Some(v) => drop(store.put(&key(i), &v).expect("put")),
            None => drop(store.delete(&key(i)).expect("delete")),
        }
        writeln!(out, "{i}").expect("stdout");
    }
}

/// Expected state: key → index of the last operation applied to it.
#[derive(Default)]
struct Model {
    last_op: HashMap<Vec<u8>, u64>,
    applied: u64,
}

impl Model {
    fn apply_through(&mut self, end: u64) {
        for i in self.applied..end {
            self.last_op.insert(key(i), i);
        }
        self.applied = self.applied.max(end);
    }

    fn expected(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.last_op.get(k).and_then(|&i| op(i))
    }
}

/// Runs one child until killed; returns the acknowledged operation numbers.
fn run_child(dir: &Path, start: u64, always: bool, rng: &mut impl Rng) -> Vec<u64> {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.env("KV_CRASH_CHILD_DIR", dir)
        .env("KV_CRASH_START", start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if always {
        cmd.env("KV_CRASH_ALWAYS", "1");
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for line in BufReader::new(stdout).lines() {
            match line.map(|l| l.parse::<u64>()) {
                Ok(Ok(i)) => acked.push(i),
                _ => break,
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(rng.random_range(1..60)));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child must be killed, not exit: {status}"
    );
    reader.join().unwrap()
}

/// Reopens after a kill and checks the state; returns the next start.
fn verify(dir: &Path, model: &mut Model, start: u64, acked: &[u64]) -> u64 {
    for (n, &i) in acked.iter().enumerate() {
        assert_eq!(i, start + n as u64, "acks must be consecutive");
    }
    let done = start + acked.len() as u64;
    model.apply_through(done);
    let store = Store::open(dir, options(false)).expect("reopen after kill -9");
    let maybe = key(done);
    for k in 0..KEYS {
        let k = key(k);
        let got = store.get(&k).unwrap().map(|b| b.to_vec());
        let want = model.expected(&k);
        if got != want {
            // Only the one unacknowledged, possibly completed operation may differ.
            assert!(
                k == maybe && got == op(done),
                "key {} lost an acknowledged write",
                String::from_utf8_lossy(&k)
            );
        }
    }
    store.close().unwrap();
    done
}

/// Whether a kill left compaction files behind (outputs or a marker).
fn compaction_in_progress(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        name.ends_with(".marker") || name.starts_with("segment-") && name.ends_with(".log.tmp")
    })
}

/// Whether the newest segment ends in a zero byte: the pre-sized, unwritten
/// tail of the active segment (a record never ends in a zero byte here: its
/// value or key does not).
fn newest_segment_has_zero_tail(dir: &Path) -> bool {
    let newest = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max();
    newest.is_some_and(|p| std::fs::read(p).unwrap().last() == Some(&0))
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut model = Model::default();
    let (mut next, mut total_acked, mut mid_compaction) = (0u64, 0usize, 0);
    let mut zero_tails = 0;
    for round in 0..KILLS {
        let always = round % ALWAYS_EVERY == ALWAYS_EVERY - 1;
        let acked = run_child(dir.path(), next, always, &mut rng);
        total_acked += acked.len();
        mid_compaction += usize::from(compaction_in_progress(dir.path()));
        zero_tails += usize::from(newest_segment_has_zero_tail(dir.path()));
        next = verify(dir.path(), &mut model, next, &acked);
    }
    let store = Store::open(dir.path(), options(false)).unwrap();
    let stats = store.stats();
    println!(
        "crash test: {KILLS} kills ({mid_compaction} inside a compaction, \
         {zero_tails} leaving a pre-sized zero tail), {total_acked} acknowledged \
         operations, {} keys, {} segments",
        stats.keys, stats.segments
    );
    assert!(total_acked > 0, "no child ever acknowledged a write");
    assert!(zero_tails > 0, "no kill hit a pre-sized active segment");
}

fn main() {
    match std::env::var_os("KV_CRASH_CHILD_DIR") {
        Some(dir) => child(Path::new(&dir)),
        None => parent(),
    }
}

//! The writers, the ledger of acknowledged writes, and the end check of
//! every acknowledged write (and, for lost ones, the rollback files).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use kv_codec::Value;
use kv_node::{ClusterClient, Error, Written};
use kv_router::{AckMode, PartitionId};

use crate::cluster::PARTITIONS;

/// Pause after a failed write, so a writer does not spin on quick errors.
const FAILURE_PAUSE: Duration = Duration::from_millis(20);
/// Reads in flight during the end check.
const CHECK_CONCURRENCY: usize = 32;
/// Tries per key in the end check before it counts as unverified.
const CHECK_TRIES: u32 = 5;
/// Unverified reads after which the end check stops trying.
const GIVE_UP_AFTER: u64 = 100;
/// The longest the end check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// Who wrote a key: one of the `--writers`, or the probe of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Writes keys `w<w>-<i>` of every partition.
    Writer(u32),
    /// Writes keys `probe<p>-<i>` of partition `p` only, on its own
    /// connections, so a partition's unavailability is not hidden behind
    /// a writer waiting on another partition.
    Probe(PartitionId),
}

impl Source {
    /// The `i`-th key: each key is written once.
    fn key(self, index: u64) -> String {
        match self {
            Source::Writer(w) => format!("w{w}-{index}"),
            Source::Probe(p) => format!("probe{p}-{index}"),
        }
    }

    /// Whether this source writes its `i`-th key (a probe skips keys of
    /// other partitions).
    fn writes(self, key: &str) -> bool {
        match self {
            Source::Writer(_) => true,
            Source::Probe(p) => kv_router::partition_for(key.as_bytes(), PARTITIONS) == p,
        }
    }
}

/// The value written to `key`: distinct per key.
fn value(key: &str) -> String {
    format!("{key}=v")
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub source: Source,
    pub index: u64,
    /// Where the leader put it.
    pub written: Written,
    /// When the client got the acknowledgement.
    pub at: Instant,
}

impl Ack {
    pub fn key(&self) -> String {
        self.source.key(self.index)
    }
}

/// Every acknowledged write, in the order the acknowledgements arrived
/// (the time is taken under the lock, so `at` never decreases).
#[derive(Default)]
pub struct Ledger {
    acks: Mutex<Vec<Ack>>,
    failed: AtomicU64,
    unknown: AtomicU64,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, Vec<Ack>> {
        self.acks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, source: Source, index: u64, written: Written) {
        let mut acks = self.lock();
        let at = Instant::now();
        acks.push(Ack {
            source,
            index,
            written,
            at,
        });
    }

    fn failure(&self, e: &Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if matches!(e, Error::OutcomeUnknown { .. }) {
            self.unknown.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The first acknowledgement on `p` after `since` that `counts`.
    pub fn first_after(
        &self,
        p: PartitionId,
        since: Instant,
        counts: impl Fn(&Ack) -> bool,
    ) -> Option<Instant> {
        let acks = self.lock();
        let start = acks.partition_point(|a| a.at <= since);
        acks[start..]
            .iter()
            .find(|a| a.written.partition == p && counts(a))
            .map(|a| a.at)
    }

    /// The longest time without an acknowledgement on `p` between `from`
    /// and `to` (from `from` to the first one counts too); None without any.
    pub fn longest_gap(&self, p: PartitionId, from: Instant, to: Instant) -> Option<Duration> {
        let acks = self.lock();
        let start = acks.partition_point(|a| a.at <= from);
        let times = acks[start..]
            .iter()
            .take_while(|a| a.at <= to)
            .filter(|a| a.written.partition == p)
            .map(|a| a.at);
        let mut last = from;
        let mut longest = None;
        for at in times {
            longest = longest.max(Some(at - last));
            last = at;
        }
        longest
    }

    /// Every acknowledged write so far.
    pub fn acks(&self) -> Vec<Ack> {
        self.lock().clone()
    }

    /// Writes that failed, and how many of those had an unknown outcome.
    pub fn failures(&self) -> (u64, u64) {
        (
            self.failed.load(Ordering::Relaxed),
            self.unknown.load(Ordering::Relaxed),
        )
    }
}

/// The `--writers` tasks and one probe per partition, each with its own
/// client (its own connections: a node answers a connection's requests in
/// order). They stop when `stop` is set.
pub fn spawn_writers(
    writers: u32,
    client: impl Fn() -> ClusterClient,
    ledger: &Arc<Ledger>,
    acks: AckMode,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let sources = (0..writers)
        .map(Source::Writer)
        .chain((0..PARTITIONS).map(Source::Probe));
    sources
        .map(|source| {
            let (ledger, stop) = (Arc::clone(ledger), Arc::clone(stop));
            tokio::spawn(write_loop(source, client(), ledger, acks, stop))
        })
        .collect()
}

/// Writes the source's keys one at a time; a failed write is not retried
/// (the next key is written), only acknowledged ones are recorded.
async fn write_loop(
    source: Source,
    client: ClusterClient,
    ledger: Arc<Ledger>,
    acks: AckMode,
    stop: Arc<AtomicBool>,
) {
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let key = source.key(i);
        if !source.writes(&key) {
            continue;
        }
        let v = Value::from_user_input(&value(&key));
        match client.put_with(key.as_bytes(), &v, Some(acks)).await {
            Ok(written) => ledger.record(source, i, written),
            Err(e) => {
                ledger.failure(&e);
                tokio::time::sleep(FAILURE_PAUSE).await;
            }
        }
    }
}

/// What reading back one acknowledged write found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The value written.
    Same,
    /// No value (with one write per key there is no older value to find).
    Missing,
    /// A value never written to this key.
    Wrong(String),
    /// No fresh (leader) answer after a few tries.
    Unverified(String),
}

/// Reads every acknowledged write back through the client. Bounded: once
/// [`GIVE_UP_AFTER`] reads failed (the cluster is down) or
/// [`CHECK_TIMEOUT`] passed, the rest count as unverified untried.
pub async fn check_all(client: &ClusterClient, acks: &[Ack]) -> Vec<(Ack, Found)> {
    let budget = Budget {
        deadline: Instant::now() + CHECK_TIMEOUT,
        failed: AtomicU64::new(0),
    };
    let budget = &budget;
    futures::stream::iter(acks.iter().copied())
        .map(|ack| async move { (ack, check_one(client, &ack, budget).await) })
        .buffer_unordered(CHECK_CONCURRENCY)
        .collect()
        .await
}

/// What the end check may still spend.
struct Budget {
    deadline: Instant,
    failed: AtomicU64,
}

impl Budget {
    fn exhausted(&self) -> Option<String> {
        if self.failed.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
            Some(format!("not tried: {GIVE_UP_AFTER} reads had failed"))
        } else if Instant::now() > self.deadline {
            Some(format!(
                "not tried: the read-back took over {CHECK_TIMEOUT:?}"
            ))
        } else {
            None
        }
    }
}

async fn check_one(client: &ClusterClient, ack: &Ack, budget: &Budget) -> Found {
    if let Some(why) = budget.exhausted() {
        return Found::Unverified(why);
    }
    let mut why = String::new();
    for _ in 0..CHECK_TRIES {
        match client.get(ack.key().as_bytes()).await {
            Ok(read) if !read.stale => return compare(read.value, &value(&ack.key())),
            Ok(read) => why = format!("only a stale read (node {})", read.node),
            Err(e) => why = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    budget.failed.fetch_add(1, Ordering::Relaxed);
    Found::Unverified(why)
}

fn compare(read: Option<Value>, expected: &str) -> Found {
    match read.map(|v| v.render()) {
        None => Found::Missing,
        Some(v) if v == expected => Found::Same,
        Some(v) => Found::Wrong(v),
    }
}

/// The (partition, key) pairs in every rollback file of every node's
/// partition directories under `data` (`data/node_<id>/partition_<p>`).
pub fn rolled_back_keys(
    data: &Path,
    nodes: usize,
    partitions: u32,
) -> Result<HashSet<(PartitionId, Vec<u8>)>> {
    let mut keys = HashSet::new();
    for node in 0..nodes {
        for p in 0..partitions {
            let dir = data.join(format!("node_{node}/partition_{p}"));
            let files = kv_storage::rollback::list(&dir)
                .with_context(|| format!("listing rollback files in {}", dir.display()))?;
            for file in files {
                let rolled = kv_storage::rollback::read(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                keys.extend(rolled.entries.into_iter().map(|e| (p, e.key.to_vec())));
            }
        }
    }
    Ok(keys)
}

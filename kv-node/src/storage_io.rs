//! The blocking boundary: the one place async code calls into a store.
//!
//! # Why
//!
//! Every store call can block its thread: a get that misses the hot cache
//! reads a segment (and a failing disk can take seconds to say EIO), a
//! write may wait for group commit or roll a segment (trim, fdatasync,
//! create, directory fsync, all under the store's writer lock, which other
//! calls then wait for), `inspect` walks the cache, and validating a 16 MiB
//! value is CPU work. On a tokio worker thread any of these stalls every
//! connection and every partition scheduled on that worker. So nothing in
//! kv-node's async code touches a [`Store`](kv_storage::Store) or a
//! [`Replica`]'s blocking methods directly: it calls a function here, which
//! runs the call off the async workers (`blocking`): on a multi-thread
//! runtime with `block_in_place` (the worker turns into a blocking thread
//! for the call and hands its queued tasks to another worker), on a
//! current-thread runtime on the blocking pool.
//!
//! # Shape
//!
//! Call sites name the operation (`get`, `put`, `apply`, ...) and hand over
//! owned arguments; they never pass closures. That keeps the boundary
//! narrow enough that batching lives here, out of the server's sight:
//! client puts (single ones and a connection's pipelined groups) of one
//! partition that arrive at the same moment are written as one store batch
//! by flat combining ([`PutQueue`]), with no thread hop for a put that
//! arrives alone.
//!
//! `block_in_place` rather than `spawn_blocking` because the connection
//! handles its requests in order, one at a time: a hop to the blocking pool
//! and back per request (two thread wake-ups) measured 4–6× lower pipelined
//! put throughput, `block_in_place` none (a round-trip put still costs
//! about 1.4× what an inline one did). Its one limit: other futures of
//! the *same* task (a `select!` branch) wait for the call — in kv-node
//! those are only the shutdown signal, noticed once the call returns.
//! That limit matters for writes under `sync = "always"`: the RESP front
//! door runs a pipeline's SETs side by side in one task so they share one
//! group-commit fsync, so client writes of a store that syncs on every
//! write go to the blocking pool instead (`write`).
//!
//! Two reads are answered inline, because they take only short in-memory
//! locks (the key directory's and the hot cache's shard locks, which
//! writers hold only to update memory) and never do I/O: a `get` whose
//! value is in the hot cache or whose key does not exist, and `status`.
//! A `get` that must read a segment hops like everything else. Without
//! that, every pipelined hot read paid a thread hop (measured 10× lower
//! pipelined get throughput with `spawn_blocking`). `Replica::position` is cached in memory and
//! may be read anywhere.
//!
//! Client puts (and a follower's replicated batches, [`apply`]) are
//! written inline too when the write can only copy bytes
//! to the OS: a batch of at most 256 KiB of keys and values that the store
//! says is quick (`Store::write_is_quick`: no fsync to wait for under its
//! sync policy, no segment roll, the writer lock free). The thread
//! hand-off of `block_in_place`, once per batch, measured as the largest
//! cost of pipelined writes without fsync; writing inline lifted
//! redis-benchmark `-c 50` SET by about 1.5× and `-c 50 -P 16` SET by
//! 1.25–1.5× (bench/redis/README.md). A batch whose keys' locks are held
//! (a conditional write reading the old value) leaves the worker. What an
//! inline write can still wait for: such a lock taken right after that
//! check, the kernel's dirty-page throttling, or a key directory that
//! grows (a rehash).
//!
//! # Shutdown
//!
//! Every call that leaves the async worker holds a token of its replica's
//! `TaskTracker` (`Replica::blocking_call`) until it returns. Shutdown
//! cancels the tasks awaiting such calls, but a call on the blocking pool
//! runs on; `NodeServer::shutdown` waits for the tokens
//! (`Replica::blocking_calls_ended`) before it closes the stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kv_router::PartitionId;
use kv_storage::{SnapshotReader, Truncation};
use tokio::sync::oneshot;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::convert;
use crate::keyspace::ScanReply;
use crate::protocol::{
    Conditional, Entry, Epoch, KeyTtl, Location, Lsn, PartitionInfo, PartitionKeys, Position,
    Response, ScanSpec,
};
use crate::replica::Replica;

/// Why a store call through the boundary did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IoError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] kv_storage::Error),
    /// A value to put is not a valid kv-codec encoding.
    #[error("value is not a valid kv-codec encoding: {0}")]
    InvalidValue(String),
    /// The blocking task did not complete (it panicked, or the runtime is
    /// shutting down).
    #[error("store task failed: {0}")]
    Task(String),
}

/// Result of a store call through the boundary.
pub(crate) type IoResult<T> = std::result::Result<T, IoError>;

/// Runs `call` on `replica`'s store off the async workers and waits for
/// it; the call holds a token of the replica's blocking-call tracker while
/// it runs (see [`off_workers`]).
async fn blocking<T: Send + 'static>(
    replica: &Replica,
    call: impl FnOnce() -> IoResult<T> + Send + 'static,
) -> IoResult<T> {
    off_workers(tracked(replica.blocking_call(), call)).await
}

/// [`blocking`] for a call on several replicas' stores: it holds
/// `tokens`, one of each ([`tokens`]).
async fn blocking_all<T: Send + 'static>(
    tokens: Vec<TaskTrackerToken>,
    call: impl FnOnce() -> IoResult<T> + Send + 'static,
) -> IoResult<T> {
    off_workers(tracked(tokens, call)).await
}

/// A blocking-call token of each of `replicas`.
fn tokens(replicas: &[Arc<Replica>]) -> Vec<TaskTrackerToken> {
    replicas.iter().map(|r| r.blocking_call()).collect()
}

/// `call`, holding `in_flight` (blocking-call tokens) until it returns. A
/// request task that shutdown cancels stops awaiting a call on the
/// blocking pool, but the call runs on (it cannot be interrupted);
/// shutdown waits for the tokens (`Replica::blocking_calls_ended`) before
/// it closes the stores.
fn tracked<T>(
    in_flight: impl Send + 'static,
    call: impl FnOnce() -> IoResult<T> + Send + 'static,
) -> impl FnOnce() -> IoResult<T> + Send + 'static {
    move || {
        let result = call();
        drop(in_flight);
        result
    }
}

/// Runs `call` off the async workers and waits for it.
///
/// On a multi-thread runtime, `block_in_place`: this worker thread becomes
/// a blocking thread for the call and hands its queue of tasks to another
/// worker, so nothing else waits, and the call costs no hop when the
/// runtime is idle. On a current-thread runtime (where that is not
/// allowed), the blocking pool.
async fn off_workers<T: Send + 'static>(
    call: impl FnOnce() -> IoResult<T> + Send + 'static,
) -> IoResult<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if !cfg!(feature = "sim") && Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        return tokio::task::block_in_place(call);
    }
    crate::net::spawn_blocking(call)
        .await
        .map_err(|e| IoError::Task(e.to_string()))?
}

/// Runs a client write of `replica` off the async workers. Under
/// `SyncPolicy::Always` the write waits for an fsync, so it goes to the
/// blocking pool: writes that one task runs side by side (a RESP pipeline's
/// run of SETs) then wait together and share one group-commit fsync, which
/// `block_in_place` would serialise. Otherwise as [`blocking`].
async fn write<T: Send + 'static>(
    replica: &Replica,
    call: impl FnOnce() -> IoResult<T> + Send + 'static,
) -> IoResult<T> {
    if replica.store.sync_policy() != kv_storage::SyncPolicy::Always {
        return blocking(replica, call).await;
    }
    crate::net::spawn_blocking(tracked(replica.blocking_call(), call))
        .await
        .map_err(|e| IoError::Task(e.to_string()))?
}

/// The value of `key`: answered inline when memory can (a hot-cache hit,
/// or a key the directory does not have), else read on the blocking pool.
pub(crate) async fn get(replica: &Arc<Replica>, key: Bytes) -> IoResult<Option<Bytes>> {
    if let Some(answer) = replica.store.get_in_memory(&key) {
        return Ok(answer);
    }
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.get(&key)?)).await
}

/// Where `key`'s value is now: memory only (key directory and cache
/// lookups under short locks), so answered inline.
pub(crate) fn location(replica: &Replica, key: &[u8]) -> Location {
    replica.location(key)
}

/// Puts of one replica waiting to be written, and whether a writer is
/// draining them.
///
/// Concurrent requests (many connections with a put or a pipelined group
/// of puts in flight each) are written together by flat combining: a
/// request's puts join the queue; if no writer is draining it, that request
/// becomes the writer and writes everything queued as one group (one
/// `write(2)`, one sync); otherwise it just waits for its results. A writer
/// writes one batch, which holds its own puts, so its request is never held
/// up by later ones: puts that arrived meanwhile are handed to a drainer on
/// the blocking pool, which writes batches until the queue is empty. A put
/// that arrives alone pays a lock and a oneshot, not a thread hop.
#[derive(Default)]
pub(crate) struct PutQueue {
    waiting: parking_lot::Mutex<Vec<QueuedPuts>>,
    /// A writer or drainer owns the queue: every put in it will be written.
    draining: AtomicBool,
}

/// One request's puts waiting in a [`PutQueue`], with where their results
/// go.
type QueuedPuts = (Vec<(Bytes, Bytes)>, oneshot::Sender<Vec<IoResult<Position>>>);

impl PutQueue {
    /// Test hook: how many requests' puts wait in the queue.
    #[cfg(all(test, not(feature = "sim")))]
    pub(crate) fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    /// Takes the waiting puts; `None` (and the queue released) when there
    /// are none. Puts queued while the release happened are taken by
    /// whichever caller then claims the queue.
    fn take(&self) -> Option<Vec<QueuedPuts>> {
        loop {
            let batch = std::mem::take(&mut *self.waiting.lock());
            if !batch.is_empty() {
                return Some(batch);
            }
            self.draining.store(false, Ordering::Release);
            // A request that queued after the take saw the queue claimed
            // and waits for it: claim it again, unless another caller did.
            if self.waiting.lock().is_empty() || self.draining.swap(true, Ordering::AcqRel) {
                return None;
            }
        }
    }
}

/// Validates `value` as kv-codec, then writes it, together with the puts
/// other requests make at the same moment ([`PutQueue`]).
pub(crate) async fn put(replica: &Arc<Replica>, key: Bytes, value: Bytes) -> IoResult<Position> {
    put_group(replica, vec![(key, value)])
        .await
        .pop()
        .unwrap_or_else(|| Err(unanswered()))
}

/// Validates and writes a request's puts to one partition (a connection's
/// pipelined puts, or one put), together with the puts other requests make
/// at the same moment ([`PutQueue`]): one store batch (one `write(2)`, one
/// sync) for all of them; each put's own result, in order. A value that is
/// not valid kv-codec fails alone. When the store refuses the batch (a key
/// or value over its limits, or a failing store; a refused batch writes
/// nothing), the puts are written one by one, so each gets the answer it
/// would have got alone.
pub(crate) async fn put_group(
    replica: &Arc<Replica>,
    pairs: Vec<(Bytes, Bytes)>,
) -> Vec<IoResult<Position>> {
    let n = pairs.len();
    let queue = &replica.put_queue;
    let (tx, rx) = oneshot::channel();
    queue.waiting.lock().push((pairs, tx));
    if queue.draining.swap(true, Ordering::AcqRel) {
        // The queue's owner writes these puts too.
        return rx.await.unwrap_or_else(|_| unanswered_all(n));
    }
    // This request's puts are in the batch taken first (the queue is
    // claimed, so nobody else takes them).
    let Some(batch) = queue.take() else {
        return rx.await.unwrap_or_else(|_| unanswered_all(n));
    };
    let r = Arc::clone(replica);
    let written = if quick(replica, &batch) {
        let _in_flight = replica.blocking_call();
        write_queued(&r, batch);
        hand_off_rest(&r);
        Ok(())
    } else {
        write(replica, move || {
            write_queued(&r, batch);
            hand_off_rest(&r);
            Ok(())
        })
        .await
    };
    match (written, rx.await) {
        (_, Ok(results)) => results,
        (Err(e), Err(_)) => (0..n).map(|_| Err(IoError::Task(e.to_string()))).collect(),
        (Ok(()), Err(_)) => unanswered_all(n),
    }
}

/// The most bytes of keys and values a batch written on the async worker
/// itself may hold: bigger ones (whose validation and copies take longer)
/// leave the worker like any store call.
const INLINE_WRITE_MAX_BYTES: usize = 256 * 1024;

/// Whether a write of `records` records holding `bytes` of keys and values
/// may run on the async worker itself: it is small, and the store says it
/// would only copy bytes to the OS ([`kv_storage::Store::write_is_quick`]:
/// no fsync to wait for, no segment roll, the writer lock free). Leaving
/// the worker costs a thread hand-off per batch, which measured as the
/// largest cost of pipelined writes without fsync (bench/redis/README.md);
/// a `write(2)` into the page cache takes a few microseconds, as a socket
/// write does.
fn quick_write(replica: &Replica, records: usize, bytes: usize) -> bool {
    bytes <= INLINE_WRITE_MAX_BYTES && replica.store.write_is_quick(records, bytes)
}

/// Whether `batch` may be written on the async worker itself: a
/// [`quick_write`] none of whose keys' locks a conditional write holds.
/// Locks and writer are checked, not held: one taken between the check and
/// the write makes the worker wait for that one operation (its holder
/// never needs the worker to finish).
fn quick(replica: &Replica, batch: &[QueuedPuts]) -> bool {
    let pairs = || batch.iter().flat_map(|(pairs, _)| pairs);
    let records = pairs().count();
    let bytes: usize = pairs().map(|(k, v)| k.len() + v.len()).sum();
    quick_write(replica, records, bytes) && replica.keys_free_now(pairs().map(|(k, _)| &k[..]))
}

/// Puts that joined the queue while its owner wrote go to a drainer on
/// the blocking pool, so the owner's request is not held up by them; the
/// drainer writes batches until the queue is empty. Called by the owner
/// right after its write, in the same synchronous step, so a cancelled
/// request cannot leave the queue claimed.
fn hand_off_rest(r: &Arc<Replica>) {
    if let Some(more) = r.put_queue.take() {
        let drainer = Arc::clone(r);
        crate::net::spawn_blocking(tracked(r.blocking_call(), move || {
            write_queued(&drainer, more);
            while let Some(batch) = drainer.put_queue.take() {
                write_queued(&drainer, batch);
            }
            Ok(())
        }));
    }
}

fn unanswered() -> IoError {
    IoError::Task("a queued put got no result".into())
}

fn unanswered_all(n: usize) -> Vec<IoResult<Position>> {
    (0..n).map(|_| Err(unanswered())).collect()
}

/// Writes the queued puts of several requests as one group and answers
/// each request with its puts' results.
fn write_queued(r: &Replica, batch: Vec<QueuedPuts>) {
    let mut all = Vec::new();
    let mut requests = Vec::with_capacity(batch.len());
    for (pairs, tx) in batch {
        requests.push((pairs.len(), tx));
        all.extend(pairs);
    }
    let mut results = put_group_blocking(r, all).into_iter();
    for (n, tx) in requests {
        let _ = tx.send(results.by_ref().take(n).collect());
    }
}

/// Validates every value as kv-codec, then writes all pairs as one store
/// batch (atomic); the position of the last.
pub(crate) async fn put_batch(
    replica: &Arc<Replica>,
    pairs: Vec<(Bytes, Bytes)>,
) -> IoResult<Position> {
    let r = Arc::clone(replica);
    write(replica, move || {
        for (_, value) in &pairs {
            kv_codec::validate(value).map_err(|e| IoError::InvalidValue(e.to_string()))?;
        }
        let positions = r.put_batch(pairs)?;
        Ok(positions.last().copied().unwrap_or_else(|| r.position()))
    })
    .await
}

fn put_group_blocking(r: &Replica, pairs: Vec<(Bytes, Bytes)>) -> Vec<IoResult<Position>> {
    // `None`: valid, its result comes from the batch.
    let mut results = Vec::with_capacity(pairs.len());
    let mut valid = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        match kv_codec::validate(&value) {
            Ok(_) => {
                results.push(None);
                valid.push((key, value));
            }
            Err(e) => results.push(Some(Err(IoError::InvalidValue(e.to_string())))),
        }
    }
    let written: Vec<IoResult<Position>> = if valid.len() <= 1 {
        // Alone: the store's single put (no batch to build).
        valid
            .into_iter()
            .map(|(key, value)| Ok(r.put(key, value)?))
            .collect()
    } else {
        match r.put_batch(valid.clone()) {
            Ok(positions) => positions.into_iter().map(Ok).collect(),
            // Refused whole (a key or value over the limits): nothing was
            // written; one by one, each put gets its own answer.
            Err(_) => valid
                .into_iter()
                .map(|(key, value)| Ok(r.put(key, value)?))
                .collect(),
        }
    };
    let mut written = written.into_iter();
    results
        .into_iter()
        .map(|result| {
            result.unwrap_or_else(|| {
                written.next().unwrap_or_else(|| Err(unanswered()))
            })
        })
        .collect()
}

/// The values of `keys`, in order.
pub(crate) async fn get_many(
    replica: &Arc<Replica>,
    keys: Vec<Bytes>,
) -> IoResult<Vec<Option<Bytes>>> {
    let r = Arc::clone(replica);
    blocking(replica, move || {
        keys.iter()
            .map(|k| Ok(r.get(k)?))
            .collect::<IoResult<Vec<_>>>()
    })
    .await
}

/// One page of a scan of `replica`'s live keys ([`crate::keyspace`]).
pub(crate) async fn scan(replica: &Arc<Replica>, scan: ScanSpec) -> IoResult<ScanReply> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(crate::keyspace::scan_page(&r, &scan)?)).await
}

/// Validates `value` as kv-codec, then writes it expiring `ttl` from now
/// by the leader's clock.
pub(crate) async fn put_expiring(
    replica: &Arc<Replica>,
    key: Bytes,
    value: Bytes,
    ttl: Duration,
) -> IoResult<Position> {
    let r = Arc::clone(replica);
    write(replica, move || {
        kv_codec::validate(&value).map_err(|e| IoError::InvalidValue(e.to_string()))?;
        Ok(r.put_expiring(key, value, ttl)?)
    })
    .await
}

/// Sets or clears `key`'s expiry; whether anything was written.
pub(crate) async fn expire(
    replica: &Arc<Replica>,
    key: Bytes,
    ttl: Option<Duration>,
) -> IoResult<bool> {
    let r = Arc::clone(replica);
    write(replica, move || Ok(r.expire(key, ttl)?)).await
}

/// `key`'s time to live: memory only (key directory lookups under short
/// locks), so answered inline.
pub(crate) fn ttl(replica: &Replica, key: &[u8]) -> IoResult<KeyTtl> {
    Ok(replica.ttl(key)?)
}

/// Active expiry of one led partition: deletes up to `max_keys` expired
/// keys; how many.
pub(crate) async fn expire_due(replica: &Arc<Replica>, max_keys: usize) -> IoResult<usize> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.expire_due(max_keys)?)).await
}

/// Deletes `key`; whether it was live ([`Replica::delete`]).
pub(crate) async fn delete(replica: &Arc<Replica>, key: Bytes) -> IoResult<bool> {
    let r = Arc::clone(replica);
    write(replica, move || Ok(r.delete(key)?)).await
}

/// Runs a conditional or atomic write ([`crate::atomic`]) at this leader:
/// validates a value to set, then reads, decides and writes under the
/// key's lock.
pub(crate) async fn conditional(
    replica: &Arc<Replica>,
    partition: PartitionId,
    op: Conditional,
) -> IoResult<Response> {
    if let Conditional::Set { value, .. } = &op {
        kv_codec::validate(value).map_err(|e| IoError::InvalidValue(e.to_string()))?;
    }
    let r = Arc::clone(replica);
    write(replica, move || {
        Ok(crate::atomic::apply(&r, partition, op)?)
    })
    .await
}

/// Applies replicated entries (follower side): on the async worker when
/// the write is quick ([`quick_write`], as for client puts: a follower
/// applies every batch its leader sends, so a thread hand-off per batch
/// would cost it as much as it cost the leader), else off the workers.
pub(crate) async fn apply(replica: &Arc<Replica>, entries: Vec<Entry>) -> IoResult<()> {
    let bytes: usize = entries
        .iter()
        .map(|e| e.key.len() + e.value.as_ref().map_or(0, Bytes::len))
        .sum();
    if quick_write(replica, entries.len(), bytes) {
        let _in_flight = replica.blocking_call();
        return Ok(replica.apply(entries)?);
    }
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.apply(entries)?)).await
}

/// Starts staging a snapshot taken as of `last`.
pub(crate) async fn begin_snapshot(replica: &Arc<Replica>, last: Position) -> IoResult<()> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.begin_snapshot(last)?)).await
}

/// Stages a chunk of a snapshot.
pub(crate) async fn stage(replica: &Arc<Replica>, entries: Vec<Entry>) -> IoResult<()> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.stage(entries)?)).await
}

/// The next chunk of a snapshot being sent, sorted by LSN (`None` at the
/// end); the reader travels to the blocking thread and back.
pub(crate) async fn next_snapshot_chunk(
    replica: &Replica,
    mut reader: SnapshotReader,
) -> IoResult<(SnapshotReader, Option<Vec<Entry>>)> {
    blocking(replica, move || {
        let chunk = reader.next_chunk()?.map(|mut entries| {
            entries.sort_unstable_by_key(|e| e.position.lsn);
            convert::entries(entries)
        });
        Ok((reader, chunk))
    })
    .await
}

/// Starts a chunked snapshot of the replica's store.
pub(crate) async fn snapshot_reader(
    replica: &Arc<Replica>,
    max_chunk_bytes: usize,
) -> IoResult<SnapshotReader> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.store.snapshot_reader(max_chunk_bytes)?)).await
}

/// Persists a new epoch before a leader's first write.
pub(crate) async fn begin_epoch(replica: &Arc<Replica>, epoch: Epoch) -> IoResult<()> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.begin_epoch(epoch)?)).await
}

/// Truncates the history after `keep` (log matching), into a rollback file.
pub(crate) async fn truncate_after(replica: &Arc<Replica>, keep: Lsn) -> IoResult<Truncation> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.truncate_after(keep)?)).await
}

/// Where `epoch` ends in the replica's history (log matching).
pub(crate) async fn end_of_epoch(replica: &Arc<Replica>, epoch: Epoch) -> IoResult<Position> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.end_of_epoch(epoch))).await
}

/// [`Replica::match_point`], on the blocking pool.
pub(crate) async fn match_point(
    replica: &Arc<Replica>,
    epoch: Epoch,
) -> IoResult<(Position, bool)> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.match_point(epoch))).await
}

/// Drops an unfinished staged snapshot (its files are removed).
pub(crate) async fn abandon_snapshot(replica: &Arc<Replica>) {
    let r = Arc::clone(replica);
    let _ = blocking(replica, move || {
        r.abandon_snapshot();
        Ok(())
    })
    .await;
}

/// Switches a staged snapshot in.
pub(crate) async fn end_snapshot(replica: &Arc<Replica>) -> IoResult<()> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.end_snapshot()?)).await
}

/// History after `after` from the store, for a follower (`None`: compacted
/// away, a full resync is needed).
pub(crate) async fn history_after(
    replica: &Arc<Replica>,
    after: Lsn,
    max_entries: usize,
) -> IoResult<Option<Vec<Entry>>> {
    let r = Arc::clone(replica);
    blocking(replica, move || Ok(r.history_after(after, max_entries)?)).await
}

/// Every replica's hot keys.
pub(crate) async fn inspect(replicas: Vec<Arc<Replica>>) -> IoResult<Vec<PartitionKeys>> {
    blocking_all(tokens(&replicas), move || {
        let keys = replicas.iter().map(|r| PartitionKeys {
            partition: r.partition,
            role: r.role(),
            hot_keys: r.store.hot_keys(),
        });
        Ok(keys.collect())
    })
    .await
}

/// Every replica's figures.
pub(crate) async fn infos(replicas: Vec<Arc<Replica>>) -> IoResult<Vec<PartitionInfo>> {
    blocking_all(tokens(&replicas), move || Ok(replicas.iter().map(|r| r.info()).collect())).await
}

/// Compacts every store now.
pub(crate) async fn compact(replicas: Vec<Arc<Replica>>) -> IoResult<()> {
    blocking_all(tokens(&replicas), move || {
        for r in &replicas {
            r.store.compact()?;
        }
        Ok(())
    })
    .await
}

/// Shuts every store down (pending hints written, fsynced); the first
/// error is returned after all were tried.
pub(crate) async fn shutdown(replicas: Vec<Arc<Replica>>) -> IoResult<()> {
    blocking_all(tokens(&replicas), move || {
        let results: Vec<_> = replicas.iter().map(|r| r.store.shutdown()).collect();
        results.into_iter().try_for_each(|r| Ok(r?))
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use kv_router::Role;
    use kv_storage::{Options, Store};

    use super::*;

    /// Upper bound on how long the lock-holding thread waits to be told to
    /// let go: only reached when the test fails (a store call blocked the
    /// runtime), so the failure shows instead of a hang.
    const SAFETY_RELEASE: Duration = Duration::from_secs(10);

    /// What a test holds on another thread while a store call waits.
    #[derive(Clone, Copy)]
    enum Held {
        /// The store's writer lock (a slow disk under a segment roll).
        Writer,
        /// The lock of the key the call writes (a conditional write
        /// reading the old value).
        Key(&'static [u8]),
    }

    /// Holds `what` of `replica` on another thread until told to release
    /// it (or `SAFETY_RELEASE` passes).
    fn hold(
        replica: &Arc<Replica>,
        what: Held,
    ) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let r = Arc::clone(replica);
        let holder = std::thread::spawn(move || {
            let wait = move || {
                held_tx.send(()).unwrap();
                let _ = release_rx.recv_timeout(SAFETY_RELEASE);
            };
            match what {
                Held::Writer => {
                    let _guard = r.store.hold_writer();
                    wait();
                }
                Held::Key(key) => {
                    let _guard = r.hold_key(key);
                    wait();
                }
            }
        });
        held_rx.recv().unwrap();
        (release_tx, holder)
    }

    /// Runtimes with a single worker: current-thread (the blocking pool is
    /// used) and multi-thread (`block_in_place` is used).
    fn one_worker_runtimes() -> [tokio::runtime::Runtime; 2] {
        let current = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        [current, multi]
    }

    /// On a one-worker runtime, a store call waiting for the writer lock
    /// (a slow disk) must leave the runtime free: another task runs, and
    /// it is what lets the lock go. Were the call made inline, the other
    /// task would run only after the safety release, and the order of
    /// events would show it.
    fn assert_runtime_stays_free<T: Send + 'static>(
        held: Held,
        call: impl Fn(Arc<Replica>) -> Call<T>,
    ) {
        for rt in one_worker_runtimes() {
            assert_stays_free_on(&rt, held, &call);
        }
    }

    type Call<T> = futures::future::BoxFuture<'static, IoResult<T>>;

    fn assert_stays_free_on<T: Send + 'static>(
        rt: &tokio::runtime::Runtime,
        held: Held,
        call: impl Fn(Arc<Replica>) -> Call<T>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let replica = Arc::new(Replica::new(0, Role::Leader, store, 1 << 20));
        let (release, holder) = hold(&replica, held);
        let events = Arc::new(parking_lot::Mutex::new(Vec::new()));
        rt.block_on(async {
            let (store_call, log) = (call(Arc::clone(&replica)), Arc::clone(&events));
            let blocked = tokio::spawn(async move {
                let result = store_call.await;
                log.lock().push("store call done");
                result
            });
            // Let the store call start and block first (were it not yet
            // blocking, the test could only pass, never fail wrongly).
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let log = Arc::clone(&events);
            let other = tokio::spawn(async move {
                log.lock().push("other task ran");
                let _ = release.send(());
            });
            other.await.unwrap();
            blocked.await.unwrap().unwrap();
        });
        holder.join().unwrap();
        let flavor = rt.handle().runtime_flavor();
        let events = events.lock().clone();
        assert_eq!(events, ["other task ran", "store call done"], "{flavor:?}");
    }

    fn value() -> Bytes {
        Bytes::from(kv_codec::Value::Text("Rafi Widya".into()).encode())
    }

    #[test]
    fn a_put_waiting_on_the_store_leaves_the_runtime_free() {
        assert_runtime_stays_free(Held::Writer, |r| {
            Box::pin(async move { put(&r, Bytes::from_static(b"nama"), value()).await })
        });
    }

    /// Puts are written on the async worker when they are quick, but not
    /// when a conditional write holds their key: waiting for that lock
    /// would stall every task of the worker.
    #[test]
    fn a_put_whose_key_is_locked_leaves_the_runtime_free() {
        assert_runtime_stays_free(Held::Key(b"nama"), |r| {
            Box::pin(async move { put(&r, Bytes::from_static(b"nama"), value()).await })
        });
    }

    #[test]
    fn info_waiting_on_the_store_leaves_the_runtime_free() {
        assert_runtime_stays_free(Held::Writer, |r| {
            Box::pin(async move { infos(vec![r]).await })
        });
    }

    /// The backlog keeps entries only while a replication stream listens,
    /// and then keeps copies: a put's key and value are slices of the
    /// request's read buffer, which must not stay alive in the backlog.
    #[test]
    fn the_backlog_keeps_copies_and_only_while_a_stream_listens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let replica = Replica::new(0, Role::Leader, store, 1 << 20);
        replica.put(Bytes::from_static(b"alone"), value()).unwrap();
        assert!(
            replica.backlog_after(0, usize::MAX).is_err(),
            "nothing kept without a stream: read from the store"
        );
        let _stream = replica.subscribe_last();
        let mut request = bytes::BytesMut::from(&b"nama"[..]);
        request.extend_from_slice(&value());
        let request = request.freeze();
        let position = replica
            .put(request.slice(..4), request.slice(4..))
            .unwrap();
        let kept = replica.backlog_after(position.lsn - 1, usize::MAX).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(
            (&kept[0].key[..], kept[0].value.as_deref()),
            (&b"nama"[..], Some(&value()[..]))
        );
        assert!(request.is_unique(), "the backlog holds the request's buffer");
    }

    #[test]
    fn an_invalid_value_is_refused_before_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let replica = Arc::new(Replica::new(0, Role::Leader, store, 1 << 20));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let garbage = Bytes::from_static(&[0xff, 0x00, 0x13]);
        let result = rt.block_on(put(&replica, Bytes::from_static(b"k"), garbage));
        assert!(
            matches!(result, Err(IoError::InvalidValue(_))),
            "{result:?}"
        );
        assert_eq!(replica.store.last_lsn(), 0);
    }
}

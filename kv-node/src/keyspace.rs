//! The node's side of the keyspace requests ([`Keyspace`]): per-partition
//! scan pages, multi-key reads and atomic per-partition writes, and key
//! expiry.
//!
//! A scan page is one [`kv_storage::Store::scan_prefix`] step (the store's
//! guarantee: a key present for the whole scan is returned at least once),
//! capped at [`MAX_SCAN_COUNT`] keys examined and, with values, at
//! [`SCAN_REPLY_BUDGET_BYTES`] of reply (a page over the budget is taken
//! again with half the count, from the same cursor). Reads are served by
//! any ready replica (a follower's answer may be stale); `MSet`, `PutTtl`
//! and `Expire` only by the partition's leader.

use std::sync::Arc;

use bytes::Bytes;
use kv_router::PartitionId;
use kv_storage::Cursor;

use crate::error::ErrorCode;
use crate::protocol::{Keyspace, KeyspaceReply, Response, ScanEntry, ScanSpec};
use crate::replica::Replica;
use crate::replication::insync;
use crate::server::{
    Shared, answer_read, error_reply, io_error, not_hosted, ready_to_read, ready_to_write,
};
use crate::storage_io;

/// Most keys one scan page examines, whatever the client asks for.
pub(crate) const MAX_SCAN_COUNT: u32 = 1000;

/// Most value bytes one scan page carries (a page asked with values that
/// would carry more is taken again with half the count).
const SCAN_REPLY_BUDGET_BYTES: usize = 4 * 1024 * 1024;

/// Most keys of one `MGet` or `MSet`.
pub(crate) const MAX_KEYS_PER_REQUEST: usize = 10_000;

/// One page of a replica's keys.
#[derive(Debug)]
pub(crate) struct ScanReply {
    pub next: Option<u64>,
    pub entries: Vec<ScanEntry>,
}

/// Runs a keyspace request on this node.
pub(crate) async fn execute(shared: &Shared, op: Keyspace) -> Response {
    match op {
        Keyspace::Scan(mut spec) => {
            spec.count = spec.count.clamp(1, MAX_SCAN_COUNT);
            scan(shared, spec).await
        }
        Keyspace::MGet { partition, keys } => get_many(shared, partition, keys).await,
        Keyspace::MSet { partition, pairs } => put_many(shared, partition, pairs).await,
        Keyspace::PutTtl { .. } | Keyspace::Expire { .. } | Keyspace::Ttl { .. } => {
            crate::expiry::execute(shared, op).await
        }
    }
}

/// The replica of `p` on this node that may answer reads.
fn readable(shared: &Shared, p: PartitionId) -> Result<&Arc<Replica>, Response> {
    let r = shared
        .replicas
        .get(&p)
        .ok_or_else(|| not_hosted(shared, p))?;
    ready_to_read(shared, r, p)?;
    Ok(r)
}

/// The replica of `p` on this node that may take writes.
fn writable(shared: &Shared, p: PartitionId) -> Result<&Arc<Replica>, Response> {
    let r = shared
        .replicas
        .get(&p)
        .ok_or_else(|| not_hosted(shared, p))?;
    ready_to_write(shared, r, p)?;
    Ok(r)
}

fn invalid(message: String) -> Response {
    error_reply(ErrorCode::InvalidRequest, None, message)
}

/// Checks that `keys` are non-empty, not too many, and all of `p`.
fn check_keys<'a>(
    shared: &Shared,
    p: PartitionId,
    mut keys: impl ExactSizeIterator<Item = &'a Bytes>,
) -> Result<(), Response> {
    let n = keys.len();
    if n == 0 || n > MAX_KEYS_PER_REQUEST {
        return Err(invalid(format!(
            "a multi-key request carries 1 to {MAX_KEYS_PER_REQUEST} keys, not {n}"
        )));
    }
    let map = &shared.options.map;
    match keys.find(|k| k.is_empty() || map.partition_of(k) != p) {
        Some(k) if k.is_empty() => Err(invalid("key must not be empty".into())),
        Some(k) => Err(invalid(format!(
            "key {:?} is in partition {}, not {p}",
            String::from_utf8_lossy(k),
            map.partition_of(k)
        ))),
        None => Ok(()),
    }
}

async fn scan(shared: &Shared, spec: ScanSpec) -> Response {
    let p = spec.partition;
    let r = match readable(shared, p) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let read = async {
        match storage_io::scan(r, spec).await {
            Ok(page) => Response::Keyspace(KeyspaceReply::ScanPage {
                partition: p,
                next: page.next,
                entries: page.entries,
            }),
            Err(e) => io_error(Some(p), e),
        }
    };
    answer_read(shared, r, p, read).await
}

async fn get_many(shared: &Shared, p: PartitionId, keys: Vec<Bytes>) -> Response {
    let checked = check_keys(shared, p, keys.iter()).and_then(|()| readable(shared, p));
    let r = match checked {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let read = async {
        match storage_io::get_many(r, keys).await {
            Ok(values) => Response::Keyspace(KeyspaceReply::Values {
                partition: p,
                values,
            }),
            Err(e) => io_error(Some(p), e),
        }
    };
    answer_read(shared, r, p, read).await
}

async fn put_many(shared: &Shared, p: PartitionId, pairs: Vec<(Bytes, Bytes)>) -> Response {
    let keys = pairs.iter().map(|(k, _)| k);
    let checked = check_keys(shared, p, keys).and_then(|()| writable(shared, p));
    let r = match checked {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // Under the cluster's ack mode, as a plain put is.
    insync::acked(shared, r, p, None, || async {
        match storage_io::put_batch(r, pairs).await {
            Ok(position) => Ok((
                Response::Written {
                    partition: p,
                    position,
                },
                position,
            )),
            Err(e) => Err(io_error(Some(p), e)),
        }
    })
    .await
}

/// One scan page of `r` (blocking: called through `storage_io::scan`).
pub(crate) fn scan_page(r: &Replica, request: &ScanSpec) -> Result<ScanReply, kv_storage::Error> {
    let mut count = request.count.max(1) as usize;
    loop {
        let (keys, next) = aligned_keys(r, request, count)?;
        let keys = keys.into_iter();
        let entries = if request.values {
            with_values(r, keys)?
        } else {
            keys.map(|key| ScanEntry { key, value: None }).collect()
        };
        let bytes: usize = entries
            .iter()
            .map(|e| e.value.as_ref().map_or(0, Bytes::len))
            .sum();
        if bytes <= SCAN_REPLY_BUDGET_BYTES || count == 1 {
            return Ok(ScanReply { next, entries });
        }
        count /= 2;
    }
}

/// About `count` keys from the request's cursor, and a `next` whose low
/// `align` bits are zero: after the first page, the scan goes on (1, 2,
/// 4, ... keys a step) until its cursor lands on such a position, which
/// the end of every key-directory sub-table is.
fn aligned_keys(
    r: &Replica,
    request: &ScanSpec,
    count: usize,
) -> Result<(Vec<Bytes>, Option<u64>), kv_storage::Error> {
    let mask = (1u64 << request.align.min(32)) - 1;
    let first = r
        .store
        .scan_prefix(Cursor::from_u64(request.cursor), count, &request.prefix)?;
    let (mut keys, mut next, mut step) = (first.keys, first.next, 1);
    while let Some(at) = next.filter(|c| c.to_u64() & mask != 0) {
        let more = r.store.scan_prefix(at, step, &request.prefix)?;
        keys.extend(more.keys);
        next = more.next;
        step = (step * 2).min(MAX_SCAN_COUNT as usize);
    }
    Ok((keys, next.map(Cursor::to_u64)))
}

/// Pairs each key with its value; keys deleted since they were listed are
/// left out.
fn with_values(
    r: &Replica,
    keys: impl Iterator<Item = Bytes>,
) -> Result<Vec<ScanEntry>, kv_storage::Error> {
    let mut entries = Vec::new();
    for key in keys {
        // One pass over the keys: values read from disk stay out of the
        // hot cache (`Store::peek`).
        if let Some(value) = r.store.peek(&key)? {
            entries.push(ScanEntry {
                key,
                value: Some(value),
            });
        }
    }
    Ok(entries)
}

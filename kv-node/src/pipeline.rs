//! Group append: a connection's pipelined puts written as one batch per
//! partition.
//!
//! A client that pipelines sends many requests before reading a reply, so
//! one read of its socket often holds many puts. Written one at a time,
//! each would cost its own `write(2)` (and, under `sync = "always"`, its
//! own fdatasync), its own trip through the blocking boundary and its own
//! wake-up of the followers' streams. Instead, when the server takes a
//! plain put (`Put`: the cluster's default ack mode) it also takes the
//! puts that follow it *already read* (never waiting for more), up to
//! [`MAX_GROUP`] of them, and writes them here: one store batch per
//! partition, each put answered with its own position, in request order.
//!
//! Every put gets the answer it would have got alone: one that is not
//! valid kv-codec, or for a partition this node cannot write, fails by
//! itself; a batch the store refuses (a key over its limit) is written one
//! put at a time. Nothing is reordered that the client could observe: it
//! has no reply to any of the group's puts until all of them are written,
//! so any order among them is one it allowed, and puts of one partition
//! keep their order (the last put of a key wins, as sent).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use kv_router::PartitionId;

use crate::protocol::{RequestId, Response};
use crate::replica::Replica;
use crate::replication::insync;
use crate::server::{Shared, io_error, writable};
use crate::storage_io;

/// The most puts written as one group.
pub(crate) const MAX_GROUP: usize = 256;

/// One pipelined put: its request id, key and value.
pub(crate) type Put = (RequestId, Bytes, Bytes);

/// A put of a group waiting for its partition's batch: its place among
/// the group's answers, its key and value.
type Queued = (usize, Bytes, Bytes);

/// Writes `group` (a connection's puts, in request order) and answers each,
/// in the same order.
pub(crate) async fn put_group(shared: &Shared, group: Vec<Put>) -> Vec<(RequestId, Response)> {
    let mut replies: Vec<(RequestId, Option<Response>)> = Vec::with_capacity(group.len());
    // Per partition: the replica and, in request order, each put's index
    // in `replies` with its key and value.
    let mut batches: HashMap<PartitionId, (&Arc<Replica>, Vec<Queued>)> =
        HashMap::new();
    for (id, key, value) in group {
        match writable(shared, &key) {
            Ok((replica, p)) => {
                let at = replies.len();
                replies.push((id, None));
                batches
                    .entry(p)
                    .or_insert_with(|| (replica, Vec::new()))
                    .1
                    .push((at, key, value));
            }
            Err(refused) => replies.push((id, Some(refused))),
        }
    }
    let written = futures::future::join_all(
        batches
            .into_iter()
            .map(|(p, (replica, puts))| write_batch(shared, replica, p, puts)),
    )
    .await;
    for (at, reply) in written.into_iter().flatten() {
        if let Some(slot) = replies.get_mut(at) {
            slot.1 = Some(reply);
        }
    }
    replies
        .into_iter()
        .map(|(id, reply)| {
            let reply = reply.unwrap_or_else(|| {
                io_error(
                    None,
                    storage_io::IoError::Task("a put of the group got no answer".into()),
                )
            });
            (id, reply)
        })
        .collect()
}

/// Writes one partition's puts of a group as one batch; each put's index
/// and answer.
async fn write_batch(
    shared: &Shared,
    replica: &Arc<Replica>,
    p: PartitionId,
    puts: Vec<Queued>,
) -> Vec<(usize, Response)> {
    let (indices, pairs): (Vec<usize>, Vec<(Bytes, Bytes)>) =
        puts.into_iter().map(|(at, k, v)| (at, (k, v))).unzip();
    let answered = insync::acked_group(shared, replica, p, || async {
        let results = storage_io::put_group(replica, pairs).await;
        let last = results.iter().filter_map(|r| r.as_ref().ok()).max().copied();
        let replies = results
            .into_iter()
            .map(|r| match r {
                Ok(position) => Response::Written {
                    partition: p,
                    position,
                },
                Err(e) => io_error(Some(p), e),
            })
            .collect();
        (replies, last)
    })
    .await;
    match answered {
        Ok(replies) => indices.into_iter().zip(replies).collect(),
        Err(refused) => indices.into_iter().map(|at| (at, refused.clone())).collect(),
    }
}

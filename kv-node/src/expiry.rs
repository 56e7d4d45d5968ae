//! Key expiry on a node: the `PutTtl`, `Expire` and `Ttl` requests, and
//! active expiry.
//!
//! # Who decides
//!
//! The leader, as in Redis. Expiry times are absolute (unix ms by the
//! leader's clock, turned from the relative TTL a client sends when the
//! leader takes the write), stored in the record and replicated with the
//! entry, so a follower knows the same time. Every replica hides a key
//! whose time has passed by its own clock (reads, scans, `Ttl`), but only
//! the leader deletes it: [`start`] runs a task that, every
//! [`EXPIRY_TICK`], asks each partition this node leads and that is ready
//! for up to [`EXPIRE_BATCH_KEYS`] due keys, at most
//! [`EXPIRE_BATCHES_PER_TICK`] times (bounded work per tick: a store full
//! of expired keys is emptied over several ticks, never in one long
//! stall). The deletions are ordinary tombstones with the next LSNs, so
//! they reach followers through the normal stream. A leader that restarts
//! finds the expiry times in its records and deletes what fell due while
//! it was down.

use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, warn};

use crate::error::ErrorCode;
use crate::protocol::{Keyspace, KeyspaceReply, Response};
use crate::replica::Replica;
use crate::replication::insync;
use crate::server::{Shared, error_reply, io_error, readable, writable};
use crate::storage_io;

/// How often the leader looks for due keys.
pub(crate) const EXPIRY_TICK: Duration = Duration::from_millis(100);

/// Most keys one active-expiry step deletes (one store batch).
pub(crate) const EXPIRE_BATCH_KEYS: usize = 256;

/// Most steps per partition per tick; a step that deletes fewer than
/// [`EXPIRE_BATCH_KEYS`] keys ends the partition's turn.
pub(crate) const EXPIRE_BATCHES_PER_TICK: usize = 4;

/// Runs `PutTtl`, `Expire` or `Ttl` on this node.
pub(crate) async fn execute(shared: &Shared, op: Keyspace) -> Response {
    match op {
        Keyspace::PutTtl { key, value, ttl } => {
            if ttl.is_zero() {
                return invalid_ttl();
            }
            let (r, p) = match writable(shared, &key) {
                Ok(found) => found,
                Err(reply) => return reply,
            };
            // Writes here run under the cluster's ack mode, as a plain
            // put does.
            insync::acked(shared, r, p, None, || async {
                match storage_io::put_expiring(r, key, value, ttl).await {
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
        Keyspace::Expire { key, ttl } => {
            let (r, p) = match writable(shared, &key) {
                Ok(found) => found,
                Err(reply) => return reply,
            };
            insync::acked(shared, r, p, None, || async {
                match storage_io::expire(r, key, ttl).await {
                    // The replica's end includes the record written (if
                    // any): waiting for it covers that record.
                    Ok(changed) => Ok((
                        Response::Keyspace(KeyspaceReply::ExpiryChanged {
                            partition: p,
                            changed,
                        }),
                        r.position(),
                    )),
                    Err(e) => Err(io_error(Some(p), e)),
                }
            })
            .await
        }
        Keyspace::Ttl { key } => {
            let (r, p) = match readable(shared, &key) {
                Ok(found) => found,
                Err(reply) => return reply,
            };
            let read = async {
                match storage_io::ttl(r, &key) {
                    Ok(ttl) => Response::Keyspace(KeyspaceReply::Ttl { partition: p, ttl }),
                    Err(e) => io_error(Some(p), e),
                }
            };
            crate::server::answer_read(shared, r, p, read).await
        }
        other => error_reply(
            ErrorCode::Internal,
            None,
            format!("not an expiry request: {other:?}"),
        ),
    }
}

fn invalid_ttl() -> Response {
    error_reply(
        ErrorCode::InvalidRequest,
        None,
        "invalid expire time: a time to live must be positive".into(),
    )
}

/// Starts the active-expiry task of this node (it ends at shutdown).
pub(crate) fn start(shared: &Arc<Shared>) {
    let task_shared = Arc::clone(shared);
    shared.spawn_until_shutdown(async move {
        let mut tick = tokio::time::interval(EXPIRY_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            for replica in task_shared.replicas.values() {
                if leads(replica) {
                    expire_partition(replica).await;
                }
            }
        }
    });
}

/// Whether this replica decides expiry now: it leads and takes writes.
fn leads(replica: &Replica) -> bool {
    replica.machine().writable().is_ok()
}

/// One tick's bounded active expiry of one led partition.
async fn expire_partition(replica: &Arc<Replica>) {
    for _ in 0..EXPIRE_BATCHES_PER_TICK {
        match storage_io::expire_due(replica, EXPIRE_BATCH_KEYS).await {
            Ok(n) => {
                if n > 0 {
                    debug!(partition = replica.partition, keys = n, "expired keys");
                }
                if n < EXPIRE_BATCH_KEYS {
                    return;
                }
            }
            Err(e) => {
                warn!(partition = replica.partition, error = %e, "active expiry failed");
                return;
            }
        }
    }
}

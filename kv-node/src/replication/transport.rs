//! The tokio tasks around the sans-IO replication logic: terms, and serving
//! a subscription (source side); following a leader and a leader's
//! recovery are in [`super::pull`].
//! They move frames and call the replica; every decision is made in
//! [`super::machine`], [`super::source`], [`super::follower`] or
//! [`super::plan`].
//!
//! Each replica runs one *term* at a time ([`start_term`]): a role change
//! cancels every task of the old term (its token) before the new term's
//! tasks start.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use kv_router::{NodeId, PartitionId, Role};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::machine::{Effect, SubscribeAnswer};
use super::pull;
use super::source::{SourceStream, Step};
use crate::error::ErrorCode;
use crate::options::NodeOptions;
use crate::protocol::handshake::{self, Credentials};
use crate::protocol::{self, Conn, Entry, Epoch, PeerKind, Position, Request, RequestId, Response};
use crate::replica::Replica;
use crate::server::{Shared, error_reply};
use crate::storage_io;

/// Bytes of entries per stream message.
const BATCH_BYTES: usize = 1024 * 1024;
/// Entries read from the store per catch-up step.
const STORE_BATCH_ENTRIES: usize = 4096;
/// The shortest interval between an idle stream's heartbeats.
const MIN_HEARTBEAT: Duration = Duration::from_millis(10);
/// How long a recovering leader waits before asking its peers again.
pub(super) const RECOVERY_RETRY: Duration = Duration::from_millis(100);

/// Starts every hosted replica's first term, in its role in the map.
pub(crate) async fn start_replication(shared: &Arc<Shared>) {
    for replica in shared.replicas.values() {
        let p = replica.partition;
        let Some(role) = shared.options.map.role_of(shared.id(), p) else {
            continue;
        };
        let leader = shared.options.map.leader(p);
        start_term(shared, replica, role, leader, None, false).await;
    }
}

/// Ends `replica`'s current term and starts a new one as `role` (see
/// [`super::machine::ReplicaMachine::set_role`]). A leader with no peers
/// has begun its epoch when this returns; other work runs in the term's
/// tasks. `elected`: the control plane moved the leadership here (see
/// [`super::machine::ReplicaMachine::set_elected`]).
pub(crate) async fn start_term(
    shared: &Arc<Shared>,
    replica: &Arc<Replica>,
    role: Role,
    leader: Option<NodeId>,
    epoch: Option<Epoch>,
    elected: bool,
) {
    let me = shared.id();
    let p = replica.partition;
    let peers: Vec<NodeId> = shared
        .map
        .read()
        .replicas(p)
        .unwrap_or(&[])
        .iter()
        .copied()
        .filter(|&n| n != me)
        .collect();
    let token = replica.new_term(&shared.cancel);
    let effects = {
        let mut m = replica.machine();
        m.set_peers(peers);
        let effects = m.set_role(me, role, leader, epoch, replica.position());
        m.set_elected(elected);
        effects
    };
    info!(
        node = me,
        partition = p,
        ?role,
        ?leader,
        "replica term starts"
    );
    for effect in effects {
        if let Effect::BeginEpoch(epoch) = effect {
            begin_epoch(replica, epoch).await;
            continue;
        }
        let task = run_effect(Arc::clone(shared), Arc::clone(replica), effect);
        let token = token.clone();
        shared.tracker.spawn(async move {
            tokio::select! {
                _ = token.cancelled() => {}
                _ = task => {}
            }
        });
    }
}

/// Carries out one effect of a term's start.
async fn run_effect(shared: Arc<Shared>, replica: Arc<Replica>, effect: Effect) {
    match effect {
        Effect::Follow { leader } => pull::follow(shared, replica, leader).await,
        Effect::AskPositions { .. } | Effect::RetryLater | Effect::PullFrom { .. } => {
            pull::recover(shared, replica).await;
        }
        Effect::BeginEpoch(epoch) => begin_epoch(&replica, epoch).await,
        Effect::StopTasks => {}
    }
}

/// Persists a new leader epoch, retrying until the store takes it; the
/// replica takes writes from then on.
pub(super) async fn begin_epoch(replica: &Arc<Replica>, epoch: Epoch) {
    let p = replica.partition;
    loop {
        match storage_io::begin_epoch(replica, epoch).await {
            Ok(()) => {
                replica.machine().on_epoch_begun(epoch);
                info!(partition = p, epoch, position = ?replica.position(), "leader ready for writes in a new epoch");
                return;
            }
            Err(e) => {
                warn!(partition = p, epoch, error = %e, "persisting the new epoch failed; not taking writes");
                replica.set_problem(format!("persisting epoch {epoch} failed: {e}"));
            }
        }
        tokio::time::sleep(RECOVERY_RETRY).await;
    }
}

async fn send(conn: &mut Conn, id: RequestId, response: &Response) -> bool {
    let mut out = BytesMut::new();
    response.encode(id, &mut out);
    conn.send(out.freeze()).await.is_ok()
}

pub(super) async fn send_request(conn: &mut Conn, id: RequestId, request: &Request) -> bool {
    let mut out = BytesMut::new();
    request.encode(id, &mut out);
    conn.send(out.freeze()).await.is_ok()
}

/// Dials `node` as a peer: the handshake must show that the answer comes
/// from that node and, when this node holds the cluster secret, that it
/// holds it too; otherwise nothing is sent or applied.
pub(super) async fn connect(shared: &Shared, node: NodeId) -> Option<Conn> {
    connect_peer(&shared.options, node).await
}

/// [`connect`] with a node's options alone (the control plane dials
/// before the node's shared state exists).
pub(crate) async fn connect_peer(options: &NodeOptions, node: NodeId) -> Option<Conn> {
    let addr = options.map.addr(node)?;
    let mut conn = protocol::connect(addr, options.peer_timeout, options.max_frame_bytes)
        .await
        .ok()?;
    let credentials = Credentials {
        secret: options.secret.clone(),
        password: options.client_password.clone(),
    };
    let kind = PeerKind::Node(options.id);
    match handshake::dial(
        &mut conn,
        kind,
        Some(node),
        &credentials,
        options.peer_timeout,
    )
    .await
    {
        Ok(_) => Some(conn),
        Err(e) => {
            warn!(node = options.id, peer = node, %addr, error = %e, "peer handshake failed; not trusting this connection");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Source side
// ---------------------------------------------------------------------------

/// Who subscribes, and from where in their history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscriber {
    /// The subscribing node.
    pub from: NodeId,
    /// Its last entry's position.
    pub after: Position,
    /// The highest epoch it has seen.
    pub epoch: Epoch,
}

/// Serves one subscription on `conn` until either side goes away or this
/// replica's term ends.
pub(crate) async fn serve_subscription(
    shared: &Arc<Shared>,
    mut conn: Conn,
    id: RequestId,
    partition: PartitionId,
    sub: Subscriber,
) {
    let Some(replica) = shared.replicas.get(&partition).cloned() else {
        let msg = format!("node {} does not host partition {partition}", shared.id());
        send(&mut conn, id, &error_reply(ErrorCode::NotHosted, None, msg)).await;
        return;
    };
    let stop = replica.term_token().child_token();
    let (end, later) = match storage_io::match_point(&replica, sub.after.epoch).await {
        Ok(found) => found,
        Err(e) => {
            let msg = format!("partition {partition} on node {}: {e}", shared.id());
            send(&mut conn, id, &error_reply(ErrorCode::Storage, None, msg)).await;
            return;
        }
    };
    let answer = replica
        .machine()
        .on_subscribe(sub.epoch, sub.after, end, later);
    let (epoch, end, start) = match answer {
        SubscribeAnswer::Serve { epoch, end, from } => (epoch, end, from),
        SubscribeAnswer::Refuse(code, msg) => {
            debug!(partition, from = sub.from, ?code, %msg, "refusing a subscription");
            let msg = format!("partition {partition} on node {}: {msg}", shared.id());
            send(&mut conn, id, &error_reply(code, None, msg)).await;
            return;
        }
    };
    if end.lsn < sub.after.lsn {
        info!(partition, from = sub.from, after = ?sub.after, ?end, "subscriber's history diverges: it truncates after the match point");
    }
    let matched = Response::LogMatch {
        partition,
        epoch,
        end,
    };
    if !send(&mut conn, id, &matched).await {
        return;
    }
    debug!(
        partition,
        from = sub.from,
        start,
        "serving replication stream"
    );
    let from = sub.from;
    replica.follower_update(from, true, Some(sub.after));
    let (mut sink, stream) = conn.split();
    shared
        .tracker
        .spawn(read_acks(Arc::clone(&replica), from, stream, stop.clone()));
    let mut source = StreamSource {
        shared,
        replica: &replica,
        id,
        stream: SourceStream::new(start),
    };
    source.run(&mut sink, &stop).await;
    stop.cancel();
    replica.follower_update(from, false, None);
}

async fn read_acks(
    replica: Arc<Replica>,
    from: NodeId,
    mut stream: futures::stream::SplitStream<Conn>,
    stop: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            f = stream.next() => f,
        };
        let Some(Ok(frame)) = frame else { break };
        match Request::decode(frame.freeze()) {
            Ok((_, Request::Ack { applied, .. })) => {
                replica.follower_update(from, true, Some(applied));
                // Hook (acks): the in-sync set and `acks = "all"` waiters.
                replica.insync.on_ack(from, applied, replica.position());
            }
            other => {
                warn!(from, ?other, "unexpected message on a replication stream");
                break;
            }
        }
    }
    stop.cancel();
}

type Sink = futures::stream::SplitSink<Conn, bytes::Bytes>;

struct StreamSource<'a> {
    shared: &'a Shared,
    replica: &'a Arc<Replica>,
    id: RequestId,
    stream: SourceStream,
}

impl StreamSource<'_> {
    /// Streams until the follower goes away or the term ends; what to send
    /// is [`SourceStream`]'s decision.
    async fn run(&mut self, sink: &mut Sink, stop: &CancellationToken) {
        let mut last_rx = self.replica.subscribe_last();
        // A follower stays in sync by acking within `replica_lag_max_ms`
        // (`insync`), and an idle one acks only heartbeats: at least three
        // of them per lag window, so a short lag bound does not drop an
        // idle follower between two heartbeats (never below 10 ms: options
        // built in code may hold a lag the config would refuse).
        let lag_max = Duration::from_millis(self.shared.options.replication.replica_lag_max_ms);
        let heartbeat = self
            .shared
            .options
            .heartbeat_interval
            .min(lag_max / 3)
            .max(MIN_HEARTBEAT);
        // An immediate heartbeat tells the follower where the source is.
        if !self.send_entries(sink, &[]).await {
            return;
        }
        loop {
            let read = self.replica.backlog_after(self.stream.sent(), BATCH_BYTES);
            let mut step = self.stream.on_backlog(read);
            if step == Step::ReadHistory {
                let after = self.stream.sent();
                match storage_io::history_after(self.replica, after, STORE_BATCH_ENTRIES).await {
                    Ok(read) => step = self.stream.on_history(read),
                    Err(e) => {
                        warn!(partition = self.replica.partition, error = %e, "reading history for a follower failed");
                        return;
                    }
                }
            }
            let ok = match step {
                Step::Send(entries) => self.send_chunks(sink, &entries).await,
                Step::Snapshot => self.send_snapshot(sink, stop).await,
                Step::Wait | Step::ReadHistory => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        changed = last_rx.changed() => changed.is_ok(),
                        _ = tokio::time::sleep(heartbeat) => self.send_entries(sink, &[]).await,
                    }
                }
            };
            if !ok || stop.is_cancelled() {
                return;
            }
        }
    }

    async fn send_entries(&mut self, sink: &mut Sink, entries: &[Entry]) -> bool {
        let mut out = BytesMut::new();
        let last = self.replica.position();
        protocol::message::encode_entries(&mut out, self.id, self.replica.partition, last, entries);
        if let Some(e) = entries.last() {
            self.stream.sent_through(e.position.lsn);
        }
        sink.send(out.freeze()).await.is_ok()
    }

    async fn send_response(&mut self, sink: &mut Sink, response: Response) -> bool {
        let mut out = BytesMut::new();
        response.encode(self.id, &mut out);
        sink.send(out.freeze()).await.is_ok()
    }

    async fn send_chunks(&mut self, sink: &mut Sink, entries: &[Entry]) -> bool {
        for chunk in byte_chunks(entries, BATCH_BYTES) {
            if !self.send_entries(sink, chunk).await {
                return false;
            }
        }
        true
    }

    /// A full resync in bounded chunks, as of the store's position when it
    /// starts (kv-storage's `SnapshotReader`); the follower stages it and
    /// switches it in at `SnapshotEnd`, then streams what came after.
    async fn send_snapshot(&mut self, sink: &mut Sink, stop: &CancellationToken) -> bool {
        let partition = self.replica.partition;
        let mut reader = match storage_io::snapshot_reader(self.replica, BATCH_BYTES).await {
            Ok(reader) => reader,
            Err(e) => {
                warn!(partition, error = %e, "starting a snapshot failed");
                return false;
            }
        };
        let last = Position::from(reader.as_of());
        let reason = format!(
            "history after LSN {} was compacted away; sending every live record as of {last:?}",
            self.stream.sent()
        );
        info!(partition, %reason, "full resync");
        self.replica.count_full_resync();
        let start = Response::SnapshotStart {
            partition,
            last,
            reason,
        };
        if !self.send_response(sink, start).await {
            return false;
        }
        loop {
            if stop.is_cancelled() {
                return false;
            }
            let (back, chunk) = match storage_io::next_snapshot_chunk(self.replica, reader).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(partition, error = %e, "reading a snapshot chunk failed");
                    return false;
                }
            };
            reader = back;
            let Some(entries) = chunk else { break };
            for part in byte_chunks(&entries, BATCH_BYTES) {
                let mut out = BytesMut::new();
                protocol::message::encode_entries(&mut out, self.id, partition, last, part);
                if sink.send(out.freeze()).await.is_err() {
                    return false;
                }
            }
        }
        self.stream.snapshot_sent(last);
        self.send_response(sink, Response::SnapshotEnd { partition, last })
            .await
    }
}

/// Splits entries into runs of about `max_bytes` (at least one entry each).
fn byte_chunks(entries: &[Entry], max_bytes: usize) -> Vec<&[Entry]> {
    let mut chunks = Vec::new();
    let mut rest = entries;
    while !rest.is_empty() {
        let mut bytes = 0;
        let fits = rest
            .iter()
            .take_while(|e| {
                let size = e.key.len() + e.value.as_ref().map_or(0, |v| v.len()) + 32;
                let fits = bytes == 0 || bytes + size <= max_bytes;
                bytes += size;
                fits
            })
            .count();
        let Some((chunk, tail)) = rest.split_at_checked(fits.max(1)) else {
            break;
        };
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn byte_chunks_cover_all_entries_in_order() {
        let entries: Vec<Entry> = (1..=10)
            .map(|lsn| Entry {
                position: Position { epoch: 1, lsn },
                key: Bytes::from_static(b"k"),
                value: Some(Bytes::from(vec![0u8; 100])),
                expiry: None,
            })
            .collect();
        let chunks = byte_chunks(&entries, 300);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| !c.is_empty()));
        let flat: Vec<u64> = chunks
            .iter()
            .flat_map(|c| c.iter().map(|e| e.position.lsn))
            .collect();
        assert_eq!(flat, (1..=10).collect::<Vec<_>>());
        assert_eq!(byte_chunks(&entries, 1).len(), 10);
        assert!(byte_chunks(&[], 10).is_empty());
    }
}

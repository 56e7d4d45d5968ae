//! The tokio tasks around the sans-IO replication logic: serving a
//! subscription (source side), following a leader, and a leader's recovery.
//! They move frames and call the replica; every decision is made in
//! [`super::plan`] or [`super::follower`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use kv_router::{NodeId, PartitionId, Role};
use kv_storage::{Entry, Position, Since};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::backlog::BacklogMiss;
use super::follower::{Action, FollowerMachine, check_message};
use super::plan::{self, RecoveryStep, SubscribeDecision};
use crate::error::ErrorCode;
use crate::protocol::handshake::{self, Credentials};
use crate::protocol::{self, Conn, PeerKind, Request, RequestId, Response};
use crate::replica::Replica;
use crate::server::{Shared, error_reply};
use crate::storage_io;

/// Bytes of entries per stream message.
const BATCH_BYTES: usize = 1024 * 1024;
/// Entries read from the store per catch-up step.
const STORE_BATCH_ENTRIES: usize = 4096;
/// How long an empty leader waits before asking its followers again.
const RECOVERY_RETRY: Duration = Duration::from_millis(100);

/// Starts a follower task for every followed partition, and a recovery
/// task (which holds writes back) for every led partition with followers.
pub(crate) fn start_replication(shared: &Arc<Shared>) {
    for replica in shared.replicas.values() {
        let p = replica.partition;
        match replica.role {
            Role::Follower => {
                let Some(leader) = shared.options.map.leader(p) else {
                    continue;
                };
                let task = follow(Arc::clone(shared), Arc::clone(replica), leader);
                shared.spawn_until_shutdown(task);
            }
            Role::Leader => {
                if shared
                    .options
                    .map
                    .followers(p)
                    .is_some_and(|f| !f.is_empty())
                {
                    replica.set_recovering(true);
                    let task = recover(Arc::clone(shared), Arc::clone(replica));
                    shared.spawn_until_shutdown(task);
                }
            }
        }
    }
}

async fn send(conn: &mut Conn, id: RequestId, response: &Response) -> bool {
    let mut out = BytesMut::new();
    response.encode(id, &mut out);
    conn.send(out.freeze()).await.is_ok()
}

async fn send_request(conn: &mut Conn, id: RequestId, request: &Request) -> bool {
    let mut out = BytesMut::new();
    request.encode(id, &mut out);
    conn.send(out.freeze()).await.is_ok()
}

/// Dials `node` as a peer: the handshake must show that the answer comes
/// from that node and, when this node holds the cluster secret, that it
/// holds it too; otherwise nothing is sent or applied.
async fn connect(shared: &Shared, node: NodeId) -> Option<Conn> {
    let addr = shared.options.map.addr(node)?;
    let options = &shared.options;
    let mut conn = protocol::connect(addr, options.peer_timeout, options.max_frame_bytes)
        .await
        .ok()?;
    let credentials = Credentials {
        secret: options.secret.clone(),
        password: options.client_password.clone(),
    };
    let kind = PeerKind::Node(shared.id());
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
            warn!(node = shared.id(), peer = node, %addr, error = %e, "peer handshake failed; not trusting this connection");
            None
        }
    }
}

// ---------------------------------------------------------------------------
// Source side
// ---------------------------------------------------------------------------

/// Serves one subscription on `conn` until either side goes away.
pub(crate) async fn serve_subscription(
    shared: &Arc<Shared>,
    mut conn: Conn,
    id: RequestId,
    partition: PartitionId,
    from: NodeId,
    after: Position,
) {
    let Some(replica) = shared.replicas.get(&partition).cloned() else {
        let msg = format!("node {} does not host partition {partition}", shared.id());
        send(&mut conn, id, &error_reply(ErrorCode::NotHosted, None, msg)).await;
        return;
    };
    let own = replica.position();
    let refusal = match plan::on_subscribe(replica.state(), own, after) {
        SubscribeDecision::Stream => None,
        SubscribeDecision::Recovering => Some((ErrorCode::Recovering, "source is recovering")),
        SubscribeDecision::SubscriberAhead => {
            warn!(
                partition,
                from,
                ?after,
                ?own,
                "subscriber is ahead of this replica; refusing to stream (no-wipe rule)"
            );
            Some((ErrorCode::WouldRegress, "subscriber is ahead of the source"))
        }
    };
    if let Some((code, msg)) = refusal {
        let msg = format!("partition {partition} on node {}: {msg}", shared.id());
        send(&mut conn, id, &error_reply(code, None, msg)).await;
        return;
    }
    debug!(partition, from, ?after, "serving replication stream");
    replica.follower_update(from, true, Some(after));
    let (mut sink, stream) = conn.split();
    let stop = shared.cancel.child_token();
    shared
        .tracker
        .spawn(read_acks(Arc::clone(&replica), from, stream, stop.clone()));
    let mut source = StreamSource {
        shared,
        replica: &replica,
        id,
        sent: after.lsn,
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
    sent: u64,
}

impl StreamSource<'_> {
    async fn run(&mut self, sink: &mut Sink, stop: &CancellationToken) {
        let mut last_rx = self.replica.subscribe_last();
        let heartbeat = self.shared.options.heartbeat_interval;
        // An immediate heartbeat tells the follower where the source is.
        if !self.send_entries(sink, &[]).await {
            return;
        }
        loop {
            let ok = match self.replica.backlog_after(self.sent, BATCH_BYTES) {
                Ok(entries) if !entries.is_empty() => self.send_entries(sink, &entries).await,
                Ok(_) => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        changed = last_rx.changed() => changed.is_ok(),
                        _ = tokio::time::sleep(heartbeat) => self.send_entries(sink, &[]).await,
                    }
                }
                Err(BacklogMiss::Evicted) => self.catch_up_from_store(sink, stop).await,
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
            self.sent = e.position.lsn;
        }
        sink.send(out.freeze()).await.is_ok()
    }

    async fn send_response(&mut self, sink: &mut Sink, response: Response) -> bool {
        let mut out = BytesMut::new();
        response.encode(self.id, &mut out);
        sink.send(out.freeze()).await.is_ok()
    }

    /// The backlog no longer holds what the follower needs: read the
    /// store's history, or send a snapshot when that was compacted away.
    async fn catch_up_from_store(&mut self, sink: &mut Sink, stop: &CancellationToken) -> bool {
        let since = storage_io::history_after(self.replica, self.sent, STORE_BATCH_ENTRIES).await;
        match since {
            Ok(Since::Entries(entries)) if !entries.is_empty() => {
                self.send_chunks(sink, &entries).await
            }
            Ok(Since::Entries(_)) => {
                // Nothing newer on disk either; wait for a write.
                tokio::select! {
                    _ = stop.cancelled() => false,
                    _ = tokio::time::sleep(self.shared.options.heartbeat_interval) => true,
                }
            }
            Ok(Since::Snapshot { entries, last }) => self.send_snapshot(sink, entries, last).await,
            Err(e) => {
                warn!(partition = self.replica.partition, error = %e, "reading history for a follower failed");
                false
            }
        }
    }

    async fn send_chunks(&mut self, sink: &mut Sink, entries: &[Entry]) -> bool {
        for chunk in byte_chunks(entries, BATCH_BYTES) {
            if !self.send_entries(sink, chunk).await {
                return false;
            }
        }
        true
    }

    async fn send_snapshot(
        &mut self,
        sink: &mut Sink,
        entries: Vec<Entry>,
        last: Position,
    ) -> bool {
        let partition = self.replica.partition;
        let reason = format!(
            "history after LSN {} was compacted away; sending {} live records",
            self.sent,
            entries.len()
        );
        info!(partition, %reason, "full resync");
        self.replica.count_full_resync();
        let start = Response::SnapshotStart {
            partition,
            last,
            reason,
        };
        if !self.send_response(sink, start).await || !self.send_chunks(sink, &entries).await {
            return false;
        }
        self.sent = last.lsn;
        self.send_response(sink, Response::SnapshotEnd { partition, last })
            .await
    }
}

/// Splits entries into runs of about `max_bytes` (at least one entry each).
fn byte_chunks(entries: &[Entry], max_bytes: usize) -> Vec<&[Entry]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in entries.iter().enumerate() {
        let size = e.key.len() + e.value.as_ref().map_or(0, |v| v.len()) + 32;
        if i > start && bytes + size > max_bytes {
            chunks.push(&entries[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < entries.len() {
        chunks.push(&entries[start..]);
    }
    chunks
}

// ---------------------------------------------------------------------------
// Follower side
// ---------------------------------------------------------------------------

/// Follows `leader` for one partition until the node shuts down.
async fn follow(shared: Arc<Shared>, replica: Arc<Replica>, leader: NodeId) {
    let mut machine = FollowerMachine::new(Instant::now());
    loop {
        if let Some(at) = machine.next_tick() {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                _ = tokio::time::sleep_until(at.into()) => {}
            }
        }
        if machine.tick(Instant::now()) != Some(Action::Connect) {
            continue;
        }
        if let Some(conn) = connect(&shared, leader).await {
            let end = session(&shared, &replica, conn, &mut machine, None).await;
            debug!(
                partition = replica.partition,
                leader,
                ?end,
                "replication stream ended"
            );
        }
        replica.set_leader_view(false, None);
        machine.disconnected(Instant::now());
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SessionEnd {
    Cancelled,
    Disconnected(String),
    TargetReached,
}

/// One subscription to a source, applying what it streams, until it ends
/// or the replica reaches `target`.
async fn session(
    shared: &Shared,
    replica: &Arc<Replica>,
    mut conn: Conn,
    machine: &mut FollowerMachine,
    target: Option<Position>,
) -> SessionEnd {
    let Action::Subscribe { after } = machine.connected(replica.position()) else {
        return SessionEnd::Disconnected("machine refused to subscribe".into());
    };
    let subscribe = Request::Subscribe {
        partition: replica.partition,
        from: shared.id(),
        after,
    };
    if !send_request(&mut conn, 1, &subscribe).await {
        return SessionEnd::Disconnected("sending subscribe failed".into());
    }
    loop {
        let frame = tokio::select! {
            _ = shared.cancel.cancelled() => return SessionEnd::Cancelled,
            f = conn.next() => f,
        };
        let message = match frame.map(|f| f.map(|b| Response::decode(b.freeze()))) {
            Some(Ok(Ok((_, message)))) => message,
            Some(Ok(Err(e))) => return SessionEnd::Disconnected(format!("bad message: {e}")),
            Some(Err(e)) => return SessionEnd::Disconnected(format!("read failed: {e}")),
            None => return SessionEnd::Disconnected("source closed the stream".into()),
        };
        let max_frame = shared.options.max_frame_bytes;
        if let Err(reason) = check_message(replica.partition, &message, max_frame) {
            warn!(partition = replica.partition, %reason, "refusing a replication message");
            return SessionEnd::Disconnected(reason);
        }
        for action in machine.on_message(message, replica.position()) {
            if let Err(reason) = execute(replica, &mut conn, action).await {
                return SessionEnd::Disconnected(reason);
            }
        }
        replica.set_leader_view(true, Some(machine.source_last));
        note_resynced(replica, machine);
        if target.is_some_and(|t| replica.position() >= t) {
            return SessionEnd::TargetReached;
        }
    }
}

/// A follower resyncing after its damaged store was moved aside serves
/// again once it has caught up with its leader.
fn note_resynced(replica: &Replica, machine: &FollowerMachine) {
    let resyncing =
        replica.role == Role::Follower && replica.state() == protocol::ReplicaState::Recovering;
    if resyncing && !machine.in_snapshot() && replica.position() >= machine.source_last {
        replica.set_recovering(false);
        replica.set_problem(String::new());
        info!(partition = replica.partition, position = ?replica.position(), "follower resynced from its leader; serving again");
    }
}

async fn execute(replica: &Arc<Replica>, conn: &mut Conn, action: Action) -> Result<(), String> {
    let blocking = match action {
        Action::Apply(entries) => storage_io::apply(replica, entries).await,
        Action::BeginSnapshot => storage_io::begin_snapshot(replica).await,
        Action::EndSnapshot { last } => storage_io::end_snapshot(replica, last).await,
        Action::Ack => {
            let ack = Request::Ack {
                partition: replica.partition,
                applied: replica.position(),
            };
            return if send_request(conn, 1, &ack).await {
                Ok(())
            } else {
                Err("sending ack failed".into())
            };
        }
        Action::Disconnect { reason } => return Err(reason),
        Action::Connect | Action::Subscribe { .. } => return Ok(()),
    };
    blocking.map_err(|e| {
        warn!(partition = replica.partition, error = %e, "applying replicated data failed");
        format!("storage: {e}")
    })
}

// ---------------------------------------------------------------------------
// Leader recovery
// ---------------------------------------------------------------------------

/// Holds a led partition's writes back until it has caught up with its most
/// advanced reachable follower (see [`plan::recovery_step`]).
async fn recover(shared: Arc<Shared>, replica: Arc<Replica>) {
    let p = replica.partition;
    let followers: Vec<NodeId> = shared.options.map.followers(p).unwrap_or(&[]).to_vec();
    loop {
        let replies = ask_positions(&shared, p, &followers).await;
        let positions: Vec<Position> = replies.iter().map(|(_, pos)| *pos).collect();
        match plan::recovery_step(replica.position(), &positions, !followers.is_empty()) {
            RecoveryStep::Ready => {
                replica.set_recovering(false);
                info!(partition = p, position = ?replica.position(), "leader ready for writes");
                return;
            }
            RecoveryStep::Wait => {
                debug!(
                    partition = p,
                    "empty leader: waiting to hear from a follower"
                );
            }
            RecoveryStep::PullFrom(i) => {
                let (node, target) = replies[i];
                info!(partition = p, from = node, ?target, own = ?replica.position(), "leader is behind a follower; catching up before taking writes");
                if let Some(conn) = connect(&shared, node).await {
                    let mut machine = FollowerMachine::recovering(Instant::now());
                    let _ = machine.tick(Instant::now());
                    let end = session(&shared, &replica, conn, &mut machine, Some(target)).await;
                    match end {
                        SessionEnd::Cancelled => return,
                        SessionEnd::TargetReached => continue,
                        SessionEnd::Disconnected(reason) => {
                            warn!(partition = p, from = node, %reason, "catch-up from follower interrupted");
                        }
                    }
                }
            }
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(RECOVERY_RETRY) => {}
        }
    }
}

/// Asks each node for its position in partition `p`; silent nodes are left
/// out.
async fn ask_positions(
    shared: &Shared,
    p: PartitionId,
    nodes: &[NodeId],
) -> Vec<(NodeId, Position)> {
    let asks = nodes.iter().map(|&node| async move {
        let mut conn = connect(shared, node).await?;
        if !send_request(&mut conn, 1, &Request::Position { partition: p }).await {
            return None;
        }
        let frame = tokio::time::timeout(shared.options.peer_timeout, conn.next())
            .await
            .ok()??
            .ok()?;
        match Response::decode(frame.freeze()) {
            Ok((_, Response::Position { position, .. })) => Some((node, position)),
            _ => None,
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
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

//! `NodeClient`: an async client for one node.
//!
//! One TCP connection per client, shared by every task that holds a clone.
//! Requests are pipelined: a caller encodes its request straight into the
//! connection's outgoing buffer and takes a place at the back of its
//! in-flight queue, both under one short lock (so the wire order is the
//! queue order), and wakes the writer task only when the buffer was empty.
//! The writer swaps the buffer for its spare one and writes it whole: a
//! burst of requests goes out in one syscall, with no buffer or channel
//! message of its own per request (a oneshot carries each reply back). A
//! node answers a connection's requests in order,
//! so the reader task matches each read's worth of replies against the
//! front of the in-flight queue under one lock (else by id; a reply for a
//! request no longer waiting is dropped): no map, no lock held across an
//! await, and no timer per request. Deadlines
//! are checked by one sweep per connection (every [`SWEEP_EVERY`] or a
//! tenth of the timeout, whichever is shorter), so a request that gets no
//! reply within the timeout fails with [`Error::Timeout`] up to one sweep
//! late; a broken connection fails every request in flight with
//! [`Error::ConnectionClosed`] (for a write that may have left:
//! [`Error::OutcomeUnknown`]), and the next request dials again, so a
//! client recovers by itself when the node comes back. Each connection
//! opens with the handshake (presenting the password, if any); when the
//! last clone of a client is dropped its connection's tasks end and the
//! socket is closed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kv_router::{AckMode, ClusterMap, NodeId, PartitionId};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::error::{Error, ErrorCode, Result};
use crate::net::{OwnedReadHalf, OwnedWriteHalf};
use crate::protocol::control::{ControlReply, ControlRequest};
use crate::protocol::handshake::{self, Credentials, DialError};
use crate::protocol::{
    self, Conditional, Conn, FrameCodec, Location, NodeInfo, PartitionKeys, PeerKind, Position,
    Request, RequestId, Response, frame,
};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long to wait for a reply.
    pub request_timeout: Duration,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// The client password the nodes ask for, if any.
    pub password: Option<String>,
    /// How long a [`crate::ClusterClient`] request keeps retrying while
    /// its partition's leader moves (a failover, a transfer, a leader
    /// catching up) before it reports the error.
    pub failover_wait: Duration,
    /// How long a [`crate::ClusterClient`] read waits for a leader that
    /// answers but is not serving yet (its lease lapsed, or it is catching
    /// up) before a follower answers instead, flagged stale. A late lease
    /// renewal or a catch-up takes well under this; when the leader is
    /// being replaced, a stale answer now beats a fresh one seconds later.
    pub stale_read_after: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_frame_bytes: protocol::DEFAULT_MAX_FRAME_BYTES,
            password: None,
            failover_wait: Duration::from_secs(8),
            stale_read_after: Duration::from_secs(2),
        }
    }
}

/// The longest time between two deadline sweeps of a connection.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Why a request in flight got no reply.
#[derive(Debug, Clone, Copy)]
enum Unanswered {
    /// Its deadline passed.
    TimedOut,
}

/// A request sent (or queued to be sent) and not yet answered.
struct InFlight {
    id: RequestId,
    reply_tx: oneshot::Sender<std::result::Result<Response, Unanswered>>,
    deadline: Instant,
}

/// What callers, the writer, the reader and the sweep of one connection
/// share.
#[derive(Default)]
struct Shared {
    outbox: Mutex<Outbox>,
    /// Set (under the `outbox` lock) when the connection is broken.
    closed: AtomicBool,
    /// Wakes the writer: `unsent` stopped being empty, or the connection
    /// closed.
    wake_writer: Notify,
}

/// The connection's outgoing side, under one lock.
#[derive(Default)]
struct Outbox {
    /// Whole frames not yet taken by the writer.
    unsent: BytesMut,
    /// The requests in `unsent` or on the wire, in wire order. Dropping an
    /// entry's sender fails its request as "connection closed".
    in_flight: VecDeque<InFlight>,
}

/// Buffers over this size are not kept for reuse once written.
const KEEP_BUFFER_BYTES: usize = 1024 * 1024;

/// How much room the reader makes before each read.
const READ_CHUNK_BYTES: usize = 16 * 1024;

struct Connection {
    shared: Arc<Shared>,
    /// The writer, reader and sweep tasks: the reader would otherwise wait
    /// on the socket, the writer on its wake-up and the sweep on its timer
    /// for ever.
    tasks: [tokio::task::AbortHandle; 3],
}

impl Drop for Connection {
    /// The last user is gone: stop the connection's tasks; the socket
    /// closes with them.
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

struct Inner {
    node: NodeId,
    addr: String,
    options: ClientOptions,
    next_id: AtomicU64,
    /// The open connection, if any: every request looks here first.
    current: Mutex<Option<Arc<Connection>>>,
    /// Held while dialing, so concurrent requests dial once.
    dialing: tokio::sync::Mutex<()>,
}

/// An async, cloneable, pipelining client for one node.
#[derive(Clone)]
pub struct NodeClient {
    inner: Arc<Inner>,
    /// Set by [`NodeClient::at_leader`]: reads go out as `AtLeader` of
    /// this partition.
    at_leader: Option<PartitionId>,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient")
            .field("node", &self.inner.node)
            .field("addr", &self.inner.addr)
            .finish()
    }
}

impl NodeClient {
    /// A client for node `node` at `addr`. Connects lazily, on the first
    /// request.
    pub fn new(node: NodeId, addr: impl Into<String>, options: ClientOptions) -> NodeClient {
        NodeClient {
            inner: Arc::new(Inner {
                node,
                addr: addr.into(),
                options,
                next_id: AtomicU64::new(1),
                current: Mutex::new(None),
                dialing: tokio::sync::Mutex::new(()),
            }),
            at_leader: None,
        }
    }

    /// This client, its reads (`status`, `scan_partition`, `mget`, `ttl`)
    /// answered only if the node leads `partition` (`Request::AtLeader`):
    /// a follower answers `NotLeader`. Same connection.
    pub(crate) fn at_leader(&self, partition: PartitionId) -> NodeClient {
        NodeClient {
            inner: Arc::clone(&self.inner),
            at_leader: Some(partition),
        }
    }

    /// The node this client talks to.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// The open connection, without waiting when there is one.
    fn open_connection(&self) -> Option<Arc<Connection>> {
        let current = self.inner.current.lock();
        current
            .as_ref()
            .filter(|c| !c.shared.closed.load(Ordering::Acquire))
            .cloned()
    }

    async fn connection(&self) -> Result<Arc<Connection>> {
        if let Some(c) = self.open_connection() {
            return Ok(c);
        }
        let _dialing = self.inner.dialing.lock().await;
        // Another request may have dialed while this one waited.
        if let Some(c) = self.open_connection() {
            return Ok(c);
        }
        let c = Arc::new(self.dial().await?);
        *self.inner.current.lock() = Some(Arc::clone(&c));
        Ok(c)
    }

    async fn dial(&self) -> Result<Connection> {
        let inner = &self.inner;
        let (addr, options) = (inner.addr.as_str(), &inner.options);
        let mut framed =
            match protocol::connect(addr, options.connect_timeout, options.max_frame_bytes).await {
                Ok(framed) => framed,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(self.timeout(options.connect_timeout));
                }
                Err(source) => {
                    return Err(Error::Connect {
                        node: inner.node,
                        addr: inner.addr.clone(),
                        source,
                    });
                }
            };
        self.handshake(&mut framed).await?;
        // The handshake is over: from here the client reads and writes
        // the socket itself, frame by frame.
        let parts = framed.into_parts();
        let (read_half, write_half) = parts.io.into_split();
        let shared = Arc::new(Shared::default());
        let writer = tokio::spawn(write_loop(write_half, Arc::clone(&shared)));
        let reader = tokio::spawn(read_loop(
            read_half,
            parts.read_buf,
            parts.codec,
            Arc::clone(&shared),
        ));
        let sweep = SWEEP_EVERY.min(options.request_timeout / 10);
        let sweeper = tokio::spawn(sweep_loop(Arc::clone(&shared), sweep));
        Ok(Connection {
            shared,
            tasks: [
                writer.abort_handle(),
                reader.abort_handle(),
                sweeper.abort_handle(),
            ],
        })
    }

    /// Opens the connection as a client, presenting the password.
    async fn handshake(&self, conn: &mut Conn) -> Result<()> {
        let inner = &self.inner;
        let credentials = Credentials {
            secret: None,
            password: inner.options.password.clone(),
        };
        // Answered like a request: a node busy accepting many dialers at
        // once may take longer than a TCP connect.
        let within = inner.options.request_timeout;
        match handshake::dial(conn, PeerKind::Client, None, &credentials, within).await {
            Ok(_) => Ok(()),
            Err(DialError::Refused { code, message }) => Err(Error::Remote {
                code,
                message,
                leader: None,
            }),
            Err(DialError::TimedOut(after)) => Err(self.timeout(after)),
            Err(e @ (DialError::Failed(_) | DialError::Closed)) => Err(Error::Handshake {
                node: inner.node,
                addr: inner.addr.clone(),
                reason: match e {
                    DialError::Failed(reason) => reason,
                    _ => "the node closed the connection".into(),
                },
            }),
        }
    }

    fn timeout(&self, after: Duration) -> Error {
        Error::Timeout {
            node: self.inner.node,
            addr: self.inner.addr.clone(),
            after,
        }
    }

    fn closed(&self) -> Error {
        Error::ConnectionClosed {
            node: self.inner.node,
            addr: self.inner.addr.clone(),
        }
    }

    /// Sends one request and waits for its reply. An error reply becomes
    /// [`Error::Remote`].
    pub async fn request(&self, request: &Request) -> Result<Response> {
        let reply_rx = match self.at_leader {
            Some(partition) if request.is_leader_read() => {
                let wrapped = Request::AtLeader {
                    partition,
                    read: Box::new(request.clone()),
                };
                self.send(&wrapped).await?
            }
            _ => self.send(request).await?,
        };
        self.reply(reply_rx).await
    }

    /// Sends a write and waits for its reply. Once the write may have
    /// left, a timeout or a lost connection (or a leader that could not
    /// confirm replication) is [`Error::OutcomeUnknown`], never an error
    /// that reads as "not applied".
    pub(crate) async fn write(&self, request: &Request) -> Result<Response> {
        let reply_rx = self.send(request).await?;
        self.reply(reply_rx).await.map_err(|e| match e {
            Error::Timeout { .. }
            | Error::ConnectionClosed { .. }
            | Error::Remote {
                code: ErrorCode::OutcomeUnknown,
                ..
            } => Error::OutcomeUnknown {
                node: self.inner.node,
                reason: e.to_string(),
            },
            e => e,
        })
    }

    /// Queues `request` on the connection; errors here mean it was not sent.
    async fn send(&self, request: &Request) -> Result<ReplyRx> {
        let conn = self.connection().await?;
        let limit = self.inner.options.max_frame_bytes;
        let (reply_tx, reply_rx) = oneshot::channel();
        let wake_writer = {
            let mut outbox = conn.shared.outbox.lock();
            // The reader and writer set `closed` under this lock before
            // they drop the queue: a request never waits on a connection
            // already gone.
            if conn.shared.closed.load(Ordering::Acquire) {
                return Err(self.closed());
            }
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            let was_empty = outbox.unsent.is_empty();
            frame::put_frame(&mut outbox.unsent, limit, |out| request.encode(id, out)).map_err(
                |e| match e {
                    protocol::FrameError::TooLarge { len, limit } => {
                        Error::RequestTooLarge { bytes: len, limit }
                    }
                    _ => self.closed(),
                },
            )?;
            outbox.in_flight.push_back(InFlight {
                id,
                reply_tx,
                deadline: Instant::now() + self.inner.options.request_timeout,
            });
            was_empty
        };
        // A non-empty buffer already has a wake-up on its way.
        if wake_writer {
            conn.shared.wake_writer.notify_one();
        }
        Ok(reply_rx)
    }

    /// The reply a request sent with [`NodeClient::send`] gets.
    async fn reply(&self, reply_rx: ReplyRx) -> Result<Response> {
        match reply_rx.await {
            Ok(Ok(Response::Error {
                code,
                leader,
                message,
            })) => Err(Error::Remote {
                code,
                message,
                leader,
            }),
            Ok(Ok(response)) => Ok(response),
            Ok(Err(Unanswered::TimedOut)) => Err(self.timeout(self.inner.options.request_timeout)),
            Err(_) => Err(self.closed()),
        }
    }

    pub(crate) fn unexpected(&self, response: Response) -> Error {
        Error::UnexpectedReply {
            node: self.inner.node,
            what: format!("{response:?}"),
        }
    }

    /// Checks the node is alive; returns its id.
    pub async fn ping(&self) -> Result<NodeId> {
        match self.request(&Request::Ping).await? {
            Response::Pong { node, .. } => Ok(node),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reads a key's encoded value from this node's replica.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let key = Bytes::copy_from_slice(key);
        match self.request(&Request::Get { key }).await? {
            Response::Value { value, .. } => Ok(value),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reads a key at its partition's leader only (see
    /// [`Request::GetLeader`]): a follower answers `NotLeader`.
    pub async fn get_at_leader(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let key = Bytes::copy_from_slice(key);
        match self.request(&Request::GetLeader { key }).await? {
            Response::Value { value, .. } => Ok(value),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reads a key even from a leader whose lease lapsed (see
    /// [`Request::GetStale`]): the answer may be stale.
    pub async fn get_stale(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let key = Bytes::copy_from_slice(key);
        match self.request(&Request::GetStale { key }).await? {
            Response::Value { value, .. } => Ok(value),
            other => Err(self.unexpected(other)),
        }
    }

    /// Writes a key (the node must lead its partition).
    pub async fn put(&self, key: &[u8], value: Bytes) -> Result<Position> {
        let key = Bytes::copy_from_slice(key);
        self.written(&Request::Put { key, value }).await
    }

    /// Writes `value` (kv-codec encoded) under `key`, answered under
    /// `acks` instead of the cluster's default ack mode. With
    /// [`AckMode::All`], a refusal before the write is
    /// [`ErrorCode::NotEnoughReplicas`]; a write the leader could not
    /// confirm is [`Error::OutcomeUnknown`].
    pub async fn put_acks(&self, key: &[u8], value: Bytes, acks: AckMode) -> Result<Position> {
        let key = Bytes::copy_from_slice(key);
        self.written(&Request::PutAcks { key, value, acks }).await
    }

    async fn written(&self, request: &Request) -> Result<Position> {
        match self.write(request).await? {
            Response::Written { position, .. } => Ok(position),
            other => Err(self.unexpected(other)),
        }
    }

    /// Runs a write the leader decides atomically (the node must lead the
    /// key's partition); the reply is `Applied` or `Counter`.
    pub async fn conditional(&self, op: Conditional) -> Result<Response> {
        match self.write(&Request::Conditional(op)).await? {
            reply @ (Response::Applied { .. } | Response::Counter { .. }) => Ok(reply),
            other => Err(self.unexpected(other)),
        }
    }

    /// Deletes a key; true when it existed.
    pub async fn delete(&self, key: &[u8]) -> Result<bool> {
        let key = Bytes::copy_from_slice(key);
        self.deleted(&Request::Delete { key }).await
    }

    /// Deletes `key`, answered under `acks` (see [`NodeClient::put_acks`]).
    pub async fn delete_acks(&self, key: &[u8], acks: AckMode) -> Result<bool> {
        let key = Bytes::copy_from_slice(key);
        self.deleted(&Request::DeleteAcks { key, acks }).await
    }

    async fn deleted(&self, request: &Request) -> Result<bool> {
        match self.write(request).await? {
            Response::Deleted { existed, .. } => Ok(existed),
            other => Err(self.unexpected(other)),
        }
    }

    /// Where the key's value lives on this node, and its partition.
    pub async fn status(&self, key: &[u8]) -> Result<(PartitionId, Location)> {
        let key = Bytes::copy_from_slice(key);
        match self.request(&Request::Status { key }).await? {
            Response::Status {
                partition,
                location,
            } => Ok((partition, location)),
            other => Err(self.unexpected(other)),
        }
    }

    /// Each hosted partition's role and hot keys.
    pub async fn inspect(&self) -> Result<Vec<PartitionKeys>> {
        match self.request(&Request::Inspect).await? {
            Response::Inspect(parts) => Ok(parts),
            other => Err(self.unexpected(other)),
        }
    }

    /// The node's cluster map: every node and every partition's replicas.
    pub async fn cluster_map(&self) -> Result<ClusterMap> {
        match self.request(&Request::ClusterMap).await? {
            Response::ClusterMap(map) => Ok(map),
            other => Err(self.unexpected(other)),
        }
    }

    /// The node's partitions, roles, positions and replication state.
    pub async fn info(&self) -> Result<NodeInfo> {
        match self.request(&Request::Info).await? {
            Response::Info(info) => Ok(info),
            other => Err(self.unexpected(other)),
        }
    }

    /// A control-plane request (`docs/protocol.md`, "Control"): the
    /// controller's view, or an operator's transfer or promotion.
    pub async fn control(&self, request: &ControlRequest) -> Result<ControlReply> {
        let body = serde_json::to_vec(request).map_err(|e| Error::UnexpectedReply {
            node: self.inner.node,
            what: format!("control request not encodable: {e}"),
        })?;
        match self.request(&Request::Control(Bytes::from(body))).await? {
            Response::Control(body) => {
                serde_json::from_slice(&body).map_err(|e| Error::UnexpectedReply {
                    node: self.inner.node,
                    what: format!("bad control reply: {e}"),
                })
            }
            other => Err(self.unexpected(other)),
        }
    }
}

/// Where a request's reply (or why there is none) arrives.
type ReplyRx = oneshot::Receiver<std::result::Result<Response, Unanswered>>;

/// Marks the connection broken, fails every request in flight (their
/// senders drop: "connection closed") and lets the writer end.
fn close(shared: &Shared) {
    let mut outbox = shared.outbox.lock();
    shared.closed.store(true, Ordering::Release);
    outbox.in_flight.clear();
    outbox.unsent.clear();
    drop(outbox);
    shared.wake_writer.notify_one();
}

/// Writes whatever callers queued, a buffer at a time, until the
/// connection closes. Two buffers take turns: callers fill one while the
/// other is on its way out, so in steady state nothing is allocated.
async fn write_loop(mut socket: OwnedWriteHalf, shared: Arc<Shared>) {
    let mut out = BytesMut::new();
    loop {
        {
            let mut outbox = shared.outbox.lock();
            if shared.closed.load(Ordering::Acquire) {
                break;
            }
            std::mem::swap(&mut outbox.unsent, &mut out);
        }
        if out.is_empty() {
            // A wake-up sent since the swap is kept, not lost.
            shared.wake_writer.notified().await;
            continue;
        }
        if socket.write_all(&out).await.is_err() {
            break;
        }
        out.clear();
        if out.capacity() > KEEP_BUFFER_BYTES {
            out = BytesMut::new();
        }
    }
    // A write failure leaves the reader waiting on a healthy socket: fail
    // the requests in flight now rather than at their timeouts.
    close(&shared);
}

/// Reads replies and hands each to its request, one read's worth at a
/// time (one lock per read, the senders woken outside it).
async fn read_loop(
    mut socket: OwnedReadHalf,
    mut buf: BytesMut,
    mut codec: FrameCodec,
    shared: Arc<Shared>,
) {
    let mut replies = Vec::new();
    let mut answered = Vec::new();
    'reading: loop {
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => match Response::decode(frame.freeze()) {
                    Ok(reply) => replies.push(reply),
                    Err(_) => break 'reading,
                },
                Ok(None) => break,
                Err(_) => break 'reading,
            }
        }
        if !replies.is_empty() {
            {
                let mut outbox = shared.outbox.lock();
                for (id, response) in replies.drain(..) {
                    if let Some(tx) = take_in_flight(&mut outbox.in_flight, id) {
                        answered.push((tx, response));
                    }
                }
            }
            for (tx, response) in answered.drain(..) {
                let _ = tx.send(Ok(response));
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK_BYTES / 4 {
            buf.reserve(READ_CHUNK_BYTES);
        }
        match socket.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    close(&shared);
}

/// The connection's one deadline sweep; ends with the connection.
async fn sweep_loop(shared: Arc<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !shared.closed.load(Ordering::Acquire) {
        tick.tick().await;
        fail_expired(&mut shared.outbox.lock().in_flight, Instant::now());
    }
}

/// The waiting request `id`: the front of the queue when the node answers
/// in order (always, today); else found by id. `None` when it no longer
/// waits (it timed out).
fn take_in_flight(
    in_flight: &mut VecDeque<InFlight>,
    id: RequestId,
) -> Option<oneshot::Sender<std::result::Result<Response, Unanswered>>> {
    if in_flight.front().is_some_and(|f| f.id == id) {
        return in_flight.pop_front().map(|f| f.reply_tx);
    }
    let at = in_flight.iter().position(|f| f.id == id)?;
    in_flight.remove(at).map(|f| f.reply_tx)
}

/// Fails the requests whose deadline has passed by `now`. Deadlines grow
/// along the queue (each is its enqueue time plus the same timeout, taken
/// under the queue's lock), so only the front needs looking at.
fn fail_expired(in_flight: &mut VecDeque<InFlight>, now: Instant) {
    while in_flight.front().is_some_and(|f| f.deadline <= now) {
        if let Some(f) = in_flight.pop_front() {
            let _ = f.reply_tx.send(Err(Unanswered::TimedOut));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(ids: &[RequestId], deadline: Instant) -> (VecDeque<InFlight>, Vec<ReplyRx>) {
        let mut in_flight = VecDeque::new();
        let mut rxs = Vec::new();
        for &id in ids {
            let (reply_tx, rx) = oneshot::channel();
            in_flight.push_back(InFlight {
                id,
                reply_tx,
                deadline,
            });
            rxs.push(rx);
        }
        (in_flight, rxs)
    }

    #[test]
    fn replies_match_the_front_or_by_id_and_strays_are_dropped() {
        let (mut in_flight, _rxs) = queue(&[4, 5, 6], Instant::now());
        assert!(take_in_flight(&mut in_flight, 4).is_some());
        // Out of order (not today's nodes, but matched all the same).
        assert!(take_in_flight(&mut in_flight, 6).is_some());
        // A reply for a request no longer waiting.
        assert!(take_in_flight(&mut in_flight, 9).is_none());
        let left: Vec<RequestId> = in_flight.iter().map(|f| f.id).collect();
        assert_eq!(left, [5]);
    }

    #[test]
    fn the_sweep_fails_expired_requests_only() {
        let now = Instant::now();
        let (mut in_flight, mut rxs) = queue(&[1, 2], now);
        let (later, _) = oneshot::channel();
        in_flight.push_back(InFlight {
            id: 3,
            reply_tx: later,
            deadline: now + Duration::from_secs(60),
        });
        fail_expired(&mut in_flight, now);
        for rx in &mut rxs {
            assert!(matches!(rx.try_recv(), Ok(Err(Unanswered::TimedOut))));
        }
        let left: Vec<RequestId> = in_flight.iter().map(|f| f.id).collect();
        assert_eq!(left, [3]);
    }

    #[test]
    fn closing_fails_every_request_in_flight_and_drops_unsent_bytes() {
        let (in_flight, mut rxs) = queue(&[1, 2], Instant::now());
        let shared = Shared::default();
        {
            let mut outbox = shared.outbox.lock();
            outbox.in_flight = in_flight;
            outbox.unsent.extend_from_slice(b"frame");
        }
        close(&shared);
        assert!(shared.closed.load(Ordering::Acquire));
        assert!(shared.outbox.lock().unsent.is_empty());
        for rx in &mut rxs {
            assert!(matches!(
                rx.try_recv(),
                Err(oneshot::error::TryRecvError::Closed)
            ));
        }
    }
}

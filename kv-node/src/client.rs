//! `NodeClient`: an async client for one node.
//!
//! One TCP connection per client, shared by every task that holds a clone.
//! Requests are pipelined: each gets a fresh id, is queued to a writer task
//! (which flushes once the queue is empty, so a burst goes out in few
//! syscalls), and its reply is matched by id by a reader task. A request
//! that gets no reply within the timeout fails with [`Error::Timeout`]; a
//! broken connection fails every request in flight with
//! [`Error::ConnectionClosed`] (for a write that may have left:
//! [`Error::OutcomeUnknown`]), and the next request dials again, so a
//! client recovers by itself when the node comes back. Each connection
//! opens with the handshake (presenting the password, if any); when the
//! last clone of a client is dropped its connection's tasks end and the
//! socket is closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use kv_router::{AckMode, ClusterMap, NodeId, PartitionId};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorCode, Result};
use crate::protocol::handshake::{self, Credentials, DialError};
use crate::protocol::{
    self, Conditional, Conn, Location, NodeInfo, PartitionKeys, PeerKind, Position, Request,
    RequestId, Response,
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
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
            max_frame_bytes: protocol::DEFAULT_MAX_FRAME_BYTES,
            password: None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<RequestId, oneshot::Sender<Response>>>>;

struct Connection {
    queue_tx: mpsc::UnboundedSender<Bytes>,
    pending: Pending,
    closed: Arc<AtomicBool>,
    /// The reader task; it would otherwise wait on the socket for ever.
    reader: tokio::task::AbortHandle,
}

impl Drop for Connection {
    /// The last user is gone: stop the reader. The writer ends when the
    /// queue's sender (dropped with this) closes; the socket closes with
    /// the last of the two.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Inner {
    node: NodeId,
    addr: String,
    options: ClientOptions,
    next_id: AtomicU64,
    conn: tokio::sync::Mutex<Option<Arc<Connection>>>,
}

/// An async, cloneable, pipelining client for one node.
#[derive(Clone)]
pub struct NodeClient {
    inner: Arc<Inner>,
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
                conn: tokio::sync::Mutex::new(None),
            }),
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

    async fn connection(&self) -> Result<Arc<Connection>> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.closed.load(Ordering::Acquire)) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(self.dial().await?);
        *slot = Some(Arc::clone(&c));
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
        let (sink, stream) = framed.split();
        let (queue_tx, queue_rx) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(write_loop(
            sink,
            queue_rx,
            Arc::clone(&pending),
            Arc::clone(&closed),
        ));
        let reader = tokio::spawn(read_loop(stream, Arc::clone(&pending), Arc::clone(&closed)));
        Ok(Connection {
            queue_tx,
            pending,
            closed,
            reader: reader.abort_handle(),
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
            Err(DialError::Failed(reason)) => Err(Error::Handshake {
                node: inner.node,
                addr: inner.addr.clone(),
                reason,
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
        let (conn, id, reply_rx) = self.send(request).await?;
        self.reply(&conn, id, reply_rx).await
    }

    /// Sends a write and waits for its reply. Once the write may have
    /// left, a timeout or a lost connection (or a leader that could not
    /// confirm replication) is [`Error::OutcomeUnknown`], never an error
    /// that reads as "not applied".
    pub(crate) async fn write(&self, request: &Request) -> Result<Response> {
        let (conn, id, reply_rx) = self.send(request).await?;
        self.reply(&conn, id, reply_rx).await.map_err(|e| match e {
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
    async fn send(
        &self,
        request: &Request,
    ) -> Result<(Arc<Connection>, RequestId, oneshot::Receiver<Response>)> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut out = BytesMut::new();
        request.encode(id, &mut out);
        let limit = self.inner.options.max_frame_bytes;
        if out.len() > limit {
            return Err(Error::RequestTooLarge {
                bytes: out.len(),
                limit,
            });
        }
        let conn = self.connection().await?;
        let (reply_tx, reply_rx) = oneshot::channel();
        conn.pending.lock().insert(id, reply_tx);
        // The reader clears `pending` after setting `closed`: a request
        // registered too late sees the flag here instead of waiting out
        // the timeout.
        if conn.closed.load(Ordering::Acquire) {
            conn.pending.lock().remove(&id);
            return Err(self.closed());
        }
        if conn.queue_tx.send(out.freeze()).is_err() {
            conn.pending.lock().remove(&id);
            return Err(self.closed());
        }
        Ok((conn, id, reply_rx))
    }

    /// The reply to request `id`, sent on `conn`.
    async fn reply(
        &self,
        conn: &Connection,
        id: RequestId,
        reply_rx: oneshot::Receiver<Response>,
    ) -> Result<Response> {
        let after = self.inner.options.request_timeout;
        match tokio::time::timeout(after, reply_rx).await {
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
            Ok(Err(_)) => Err(self.closed()),
            Err(_) => {
                conn.pending.lock().remove(&id);
                Err(self.timeout(after))
            }
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
}

async fn write_loop(
    mut sink: futures::stream::SplitSink<Conn, Bytes>,
    mut queue_rx: mpsc::UnboundedReceiver<Bytes>,
    pending: Pending,
    closed: Arc<AtomicBool>,
) {
    'frames: while let Some(frame) = queue_rx.recv().await {
        if sink.feed(frame).await.is_err() {
            break;
        }
        while let Ok(more) = queue_rx.try_recv() {
            if sink.feed(more).await.is_err() {
                break 'frames;
            }
        }
        if sink.flush().await.is_err() || closed.load(Ordering::Acquire) {
            break;
        }
    }
    // A write failure leaves the reader waiting on a healthy socket: fail
    // the requests in flight now rather than at their timeouts.
    closed.store(true, Ordering::Release);
    pending.lock().clear();
}

async fn read_loop(
    mut stream: futures::stream::SplitStream<Conn>,
    pending: Pending,
    closed: Arc<AtomicBool>,
) {
    while let Some(Ok(frame)) = stream.next().await {
        match Response::decode(frame.freeze()) {
            Ok((id, response)) => {
                if let Some(tx) = pending.lock().remove(&id) {
                    let _ = tx.send(response);
                }
            }
            Err(_) => break,
        }
    }
    closed.store(true, Ordering::Release);
    // Dropping the senders fails every request in flight.
    pending.lock().clear();
}

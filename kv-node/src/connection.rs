//! Admitting connections: the accept loop, the server side of the
//! handshake, connection quotas and the read deadlines.
//!
//! Why it is built this way:
//!
//! - Accepting never waits for a free slot. A socket first takes one of a
//!   few handshake slots ([`NodeOptions::max_handshakes`]; when they are
//!   all taken the oldest pending handshake is dropped to make room) and
//!   must finish its handshake within [`NodeOptions::handshake_timeout`],
//!   so silent sockets cannot pile up in front of anyone: a real dialer
//!   finishes its handshake in a round trip, long before it would be the
//!   oldest.
//! - Only after the handshake does a connection take a slot, from the
//!   client quota or from the separate peer quota, so clients can never
//!   starve replication or the control plane. A dialer over its quota gets
//!   a `Busy` error reply at once instead of hanging.
//! - Peers prove the cluster secret ([`crate::auth`]); a peer connection is
//!   the only place replication requests are taken, and only from the node
//!   the handshake proved, for a partition it replicates.
//! - After the handshake a connection is closed when idle for
//!   [`NodeOptions::idle_timeout`], and when a request does not arrive
//!   completely within [`NodeOptions::request_deadline`] of its first
//!   byte (a slow sender cannot hold a slot or budget forever).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;
use kv_router::{NodeId, PartitionId};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::auth::{self, Exchange};
use crate::error::ErrorCode;
use crate::net::{TcpListener, TcpStream};
use crate::options::NodeOptions;
use crate::protocol::frame::FrameError;
use crate::protocol::handshake::{self, Handshake, Hello, PeerKind};
use crate::protocol::{self, ByteBudget, Conn, PROTOCOL_VERSION, Request, Response};
use crate::server::{Shared, error_reply, serve_connection};

/// The node's connection quotas and request-byte budget.
pub(crate) struct Limits {
    handshakes: Handshakes,
    clients: Arc<Semaphore>,
    peers: Arc<Semaphore>,
    /// Bytes of partly received requests, node-wide.
    pub budget: ByteBudget,
}

impl Limits {
    pub fn new(options: &NodeOptions) -> Limits {
        Limits {
            handshakes: Handshakes::new(options.max_handshakes),
            clients: Arc::new(Semaphore::new(options.max_connections)),
            peers: Arc::new(Semaphore::new(options.max_peer_connections)),
            budget: ByteBudget::new(options.max_inflight_request_bytes),
        }
    }
}

/// The handshakes under way, oldest first; each can be told to give up.
struct Handshakes {
    cap: usize,
    next: AtomicU64,
    pending: Mutex<VecDeque<(u64, CancellationToken)>>,
}

/// A handshake's place among the pending ones; leaving frees it.
struct HandshakeSlot<'a> {
    id: u64,
    handshakes: &'a Handshakes,
    evicted: CancellationToken,
}

impl Handshakes {
    fn new(cap: usize) -> Handshakes {
        Handshakes {
            cap: cap.max(1),
            next: AtomicU64::new(0),
            pending: Mutex::new(VecDeque::new()),
        }
    }

    /// A slot for a new handshake; the oldest pending one is told to give
    /// up when all are taken.
    fn enter(&self) -> HandshakeSlot<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = CancellationToken::new();
        let mut pending = self.pending.lock();
        while pending.len() >= self.cap {
            if let Some((_, oldest)) = pending.pop_front() {
                oldest.cancel();
            }
        }
        pending.push_back((id, evicted.clone()));
        HandshakeSlot {
            id,
            handshakes: self,
            evicted,
        }
    }
}

impl Drop for HandshakeSlot<'_> {
    fn drop(&mut self) {
        self.handshakes
            .pending
            .lock()
            .retain(|(id, _)| *id != self.id);
    }
}

/// Warns when the node listens beyond loopback without a cluster secret.
pub(crate) fn warn_if_exposed(options: &NodeOptions, local_addr: SocketAddr) {
    if !local_addr.ip().is_loopback() && options.secret.is_none() {
        warn!(
            node = options.id,
            %local_addr,
            "listening beyond loopback without a cluster secret: any process that reaches this port can act as a peer node; set [security] secret_file or KV_SECRET"
        );
    }
}

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    while let Some((socket, peer)) = accept_next(&shared, &listener).await {
        let task = admit(Arc::clone(&shared), socket, peer);
        shared.spawn_until_shutdown(task);
    }
}

/// The next accepted socket, or `None` at shutdown. Accept errors (out of
/// file descriptors, mostly) are logged and retried with a backoff that
/// doubles up to one second. Shared by the framed and the RESP listener.
pub(crate) async fn accept_next(
    shared: &Shared,
    listener: &TcpListener,
) -> Option<(TcpStream, SocketAddr)> {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shared.cancel.cancelled() => return None,
            a = listener.accept() => a,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(e) => {
                warn!(node = shared.id(), error = %e, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Runs the handshake of one accepted socket and then serves it.
async fn admit(shared: Arc<Shared>, socket: TcpStream, peer: SocketAddr) {
    let options = &shared.options;
    let mut conn = protocol::framed(
        socket,
        options.max_frame_bytes,
        shared.limits.budget.clone(),
    );
    let within = options.handshake_timeout;
    let slot = shared.limits.handshakes.enter();
    let admitted = tokio::select! {
        _ = slot.evicted.cancelled() => {
            debug!(%peer, "pending handshake dropped to make room for a newer one");
            return;
        }
        r = tokio::time::timeout(within, accept_handshake(&shared, &mut conn)) => match r {
            Ok(result) => result,
            Err(_) => Err(Refusal::Reply(
                ErrorCode::InvalidRequest,
                format!("no handshake within {within:?}"),
            )),
        },
    };
    drop(slot);
    match admitted {
        Ok((kind, permit)) => {
            serve_connection(Arc::clone(&shared), conn, peer, kind).await;
            drop(permit);
        }
        Err(Refusal::Gone) => debug!(%peer, "closed before its hello"),
        Err(Refusal::Reply(code, message)) => {
            if code == ErrorCode::Busy {
                info!(%peer, %message, "refusing a connection");
            } else {
                warn!(%peer, %message, "handshake refused");
            }
            let _ = handshake::send(&mut conn, &Handshake::Refused { code, message }).await;
        }
    }
}

/// Why a handshake did not admit the dialer.
enum Refusal {
    /// It went away before its hello (nothing to answer).
    Gone,
    /// Answer with this error and close.
    Reply(ErrorCode, String),
}

impl From<(ErrorCode, String)> for Refusal {
    fn from((code, message): (ErrorCode, String)) -> Refusal {
        Refusal::Reply(code, message)
    }
}

/// The node's side of the handshake: who the dialer is, whether it proved
/// it, and a slot from its quota.
async fn accept_handshake(
    shared: &Shared,
    conn: &mut Conn,
) -> Result<(PeerKind, OwnedSemaphorePermit), Refusal> {
    let hello = match conn.next().await {
        Some(Ok(frame)) => decode_hello(frame)?,
        Some(Err(e)) => return Err(frame_refusal(&e)),
        None => return Err(Refusal::Gone),
    };
    let options = &shared.options;
    let (kind, quota) = match hello.kind {
        PeerKind::Client => {
            check_password(options, &hello)?;
            (PeerKind::Client, &shared.limits.clients)
        }
        PeerKind::Node(node) => {
            prove_peer(shared, conn, node, &hello).await?;
            (PeerKind::Node(node), &shared.limits.peers)
        }
    };
    let Ok(permit) = Arc::clone(quota).try_acquire_owned() else {
        let (what, cap) = match kind {
            PeerKind::Client => ("client", options.max_connections),
            PeerKind::Node(_) => ("peer", options.max_peer_connections),
        };
        return Err(Refusal::Reply(
            ErrorCode::Busy,
            format!(
                "node {} is at its limit of {cap} {what} connections; try again later",
                options.id
            ),
        ));
    };
    handshake::send(conn, &Handshake::Welcome { node: options.id })
        .await
        .map_err(|e| (ErrorCode::InvalidRequest, e.to_string()))?;
    Ok((kind, permit))
}

fn decode_hello(frame: BytesMut) -> Result<Hello, Refusal> {
    match Handshake::decode(frame.freeze()) {
        Ok(Handshake::Hello(hello)) => Ok(hello),
        Err(e @ crate::ProtocolError::UnsupportedVersion { .. }) => {
            Err(Refusal::Reply(ErrorCode::UnsupportedVersion, e.to_string()))
        }
        _ => Err(Refusal::Reply(
            ErrorCode::InvalidRequest,
            format!(
                "a connection must open with a Hello handshake (protocol version {PROTOCOL_VERSION}); see docs/protocol.md"
            ),
        )),
    }
}

fn frame_refusal(e: &FrameError) -> Refusal {
    match e {
        FrameError::BudgetExhausted { .. } => Refusal::Reply(ErrorCode::Busy, e.to_string()),
        _ => Refusal::Reply(ErrorCode::InvalidRequest, e.to_string()),
    }
}

fn check_password(options: &NodeOptions, hello: &Hello) -> Result<(), Refusal> {
    match &options.client_password {
        Some(expected) if !auth::password_matches(expected, hello.password.as_deref()) => {
            Err(Refusal::Reply(
                ErrorCode::Unauthorized,
                "wrong or missing client password".into(),
            ))
        }
        _ => Ok(()),
    }
}

/// Challenges a dialer that says it is node `node`. Without a cluster
/// secret a peer is taken at its word, but must still know the client
/// password when one is set (or peers would be a way around it).
async fn prove_peer(
    shared: &Shared,
    conn: &mut Conn,
    node: NodeId,
    hello: &Hello,
) -> Result<(), Refusal> {
    let options = &shared.options;
    if options.map.node(node).is_none() || node == options.id {
        return Err(Refusal::Reply(
            ErrorCode::Unauthorized,
            format!("node {node} is not a peer in this cluster's map"),
        ));
    }
    if options.secret.is_none() {
        check_password(options, hello)?;
    }
    let exchange = Exchange {
        version: PROTOCOL_VERSION,
        dialer: node,
        server: options.id,
        dialer_nonce: hello.nonce,
        server_nonce: auth::nonce(),
    };
    let challenge = Handshake::Challenge {
        version: PROTOCOL_VERSION,
        node: options.id,
        nonce: exchange.server_nonce,
        proof: options
            .secret
            .as_ref()
            .map(|s| s.server_proof(&exchange).into()),
    };
    // A dialer that left mid-proof (it stopped, or gave up) is gone, not
    // refused.
    let refused = |e: handshake::DialError| match e {
        handshake::DialError::Closed => Refusal::Gone,
        e => Refusal::Reply(ErrorCode::InvalidRequest, e.to_string()),
    };
    handshake::send(conn, &challenge).await.map_err(refused)?;
    let Handshake::Proof(proof) = handshake::receive(conn).await.map_err(refused)? else {
        return Err(Refusal::Reply(
            ErrorCode::InvalidRequest,
            "expected a proof".into(),
        ));
    };
    match &options.secret {
        Some(secret) if !secret.verify_dialer(&exchange, &proof) => Err(Refusal::Reply(
            ErrorCode::Unauthorized,
            format!("the dialer claiming node {node} did not prove the cluster secret"),
        )),
        _ => Ok(()),
    }
}

/// The error reply for a request this connection may not make, if any:
/// replication requests only on a peer connection, and a subscription
/// only for the proven node itself, for a partition it replicates.
pub(crate) fn refusal(shared: &Shared, kind: PeerKind, request: &Request) -> Option<Response> {
    let message = match (kind, request) {
        (
            PeerKind::Node(node),
            Request::Subscribe {
                partition, from, ..
            },
        ) => subscription_refusal(shared, node, *from, *partition)?,
        (
            PeerKind::Client,
            Request::Subscribe { .. } | Request::Ack { .. } | Request::Position { .. },
        ) => "replication requests need an authenticated peer connection".to_string(),
        _ => return None,
    };
    warn!(node = shared.id(), ?kind, %message, "refusing a replication request");
    Some(error_reply(ErrorCode::Unauthorized, None, message))
}

fn subscription_refusal(
    shared: &Shared,
    node: NodeId,
    from: NodeId,
    partition: PartitionId,
) -> Option<String> {
    if from != node {
        return Some(format!("node {node} subscribed in the name of node {from}"));
    }
    let map = shared.map.read();
    let replicas = map.replicas(partition).unwrap_or(&[]);
    if !replicas.contains(&node) {
        return Some(format!(
            "node {node} holds no replica of partition {partition}"
        ));
    }
    None
}

/// How waiting for the next request ended.
pub(crate) enum Next {
    /// A whole frame.
    Frame(BytesMut),
    /// The socket closed, or the node is shutting down.
    Closed,
    /// The frame could not be read.
    Failed(FrameError),
    /// No request started within the idle timeout.
    Idle,
    /// A request started but did not complete within the deadline.
    Slow(Duration),
}

/// The idle timer of one connection. It is created once and only ever
/// pushed later, which tokio does without touching its timer wheel, so
/// waiting for a request costs no timer registration.
pub(crate) type IdleTimer = Pin<Box<Sleep>>;

/// A connection's idle timer.
pub(crate) fn idle_timer(options: &NodeOptions) -> IdleTimer {
    Box::pin(tokio::time::sleep(options.idle_timeout))
}

/// Waits for the next request frame under the idle timeout, then gives
/// it the request deadline from its first byte.
pub(crate) async fn read_frame(shared: &Shared, conn: &mut Conn, idle: &mut IdleTimer) -> Next {
    let options = &shared.options;
    let idle_deadline = Instant::now() + options.idle_timeout;
    idle.as_mut().reset(idle_deadline);
    loop {
        if conn.read_buffer().is_empty() {
            let readable = tokio::select! {
                _ = shared.cancel.cancelled() => return Next::Closed,
                _ = idle.as_mut() => return Next::Idle,
                r = crate::net::readable(conn.get_mut()) => r,
            };
            if readable.is_err() {
                return Next::Closed;
            }
        }
        let deadline = Instant::now() + options.request_deadline;
        let next = tokio::select! {
            _ = shared.cancel.cancelled() => return Next::Closed,
            n = tokio::time::timeout_at(deadline, conn.next()) => n,
        };
        match next {
            Ok(Some(Ok(frame))) => return Next::Frame(frame),
            Ok(Some(Err(e))) => return Next::Failed(e),
            Ok(None) => return Next::Closed,
            // Readiness without data: still idle, not slow.
            Err(_) if conn.read_buffer().is_empty() => {
                if Instant::now() >= idle_deadline {
                    return Next::Idle;
                }
            }
            Err(_) => return Next::Slow(options.request_deadline),
        }
    }
}

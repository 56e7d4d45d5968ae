//! The node server: lifecycle, serving admitted connections, request
//! dispatch.
//!
//! Lifecycle as in mini-redis: [`NodeServer::start`] takes a bound
//! listener (tests bind `127.0.0.1:0`), the accept loop, handshake and
//! connection quotas live in `connection`, and one cancellation token is
//! watched by every task. [`NodeHandle::shutdown`]
//! cancels it (tasks are dropped at their next await, so a peer that
//! stopped reading cannot hold it up), waits for the tasks and for blocking
//! store calls in flight, and shuts every store down (hints, fsync).
//!
//! Each connection owns one framed reader/writer. Requests on a connection
//! are handled in order (so a client reads its own writes) and replies are
//! written back in batches: the writer flushes only when no further request
//! is already buffered, which is what makes pipelining cheap. A frame that
//! is over the size limit or does not decode gets an error reply (request
//! id 0 when the id is unreadable) and the connection is closed; the node
//! keeps serving everyone else. A request the connection may not make
//! (replication on a client connection) is refused the same way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, SinkExt, StreamExt};
use kv_router::{AckMode, ClusterMap, NodeId, PartitionId, Role};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::connection::{self, IdleTimer, Limits, Next};
use crate::error::{Error, ErrorCode, ProtocolError, Result};
use crate::hosting::{self, Failed};
use crate::net::{TcpListener, TcpStream};
use crate::options::NodeOptions;
use crate::pipeline;
use crate::protocol::{
    self, Conn, Epoch, FrameError, Keyspace, NodeInfo, PartitionInfo, PeerKind, Request, RequestId,
    Response,
};
use crate::replica::Replica;
use crate::replication::machine::NotWritable;
use crate::replication::{insync, transport};
use crate::storage_io::{self, IoError};

/// State shared by every task of one node.
pub(crate) struct Shared {
    pub options: NodeOptions,
    pub replicas: BTreeMap<PartitionId, Arc<Replica>>,
    /// Hosted partitions whose store failed to open (see `hosting`).
    pub failed: BTreeMap<PartitionId, Failed>,
    pub cancel: CancellationToken,
    pub tracker: TaskTracker,
    pub limits: Limits,
    /// The map this node routes by: the config's until the control plane
    /// publishes a newer one.
    pub map: parking_lot::RwLock<Arc<ClusterMap>>,
    /// Held while a new map is applied, so two are never applied at once.
    pub map_change: tokio::sync::Mutex<()>,
    /// The control plane (`[control] failover`), when it runs.
    pub control: Option<Arc<crate::control::Control>>,
}

impl Shared {
    pub fn id(&self) -> NodeId {
        self.options.id
    }

    /// Every opened replica, for a call through `storage_io`.
    pub fn all_replicas(&self) -> Vec<Arc<Replica>> {
        self.replicas.values().cloned().collect()
    }

    /// Spawns a task that is dropped at its next await once shutdown
    /// begins, so a peer that stopped reading cannot hold shutdown up.
    pub fn spawn_until_shutdown(&self, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }
}

/// Starts node servers.
#[derive(Debug)]
pub struct NodeServer;

/// A running node. Dropping it does not stop the node; call
/// [`NodeHandle::shutdown`].
pub struct NodeHandle {
    local_addr: SocketAddr,
    resp_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("id", &self.shared.id())
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl NodeServer {
    /// Binds the node's address from the map and starts it.
    pub async fn bind(options: NodeOptions) -> Result<NodeHandle> {
        let addr = options
            .map
            .addr(options.id)
            .ok_or(Error::UnknownNode(options.id))?
            .to_string();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| Error::io(format!("binding {addr}"), e))?;
        NodeServer::start(options, listener).await
    }

    /// Opens the node's partition stores and serves `listener`.
    ///
    /// The map's address for this node is not used for binding; peers
    /// reach each other through the map, so a caller that binds port 0
    /// must publish the real port in every node's map first.
    pub async fn start(options: NodeOptions, listener: TcpListener) -> Result<NodeHandle> {
        if options.map.node(options.id).is_none() {
            return Err(Error::UnknownNode(options.id));
        }
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the listener address", e))?;
        let resp = bind_resp(options.resp_addr.as_deref()).await?;
        // The roles the controller last gave this node's replicas, if any.
        let roles = match options.control {
            Some(_) => crate::control::last_applied_map(&options),
            None => None,
        }
        .unwrap_or_else(|| options.map.clone());
        let opts = options.clone();
        let open_roles = roles.clone();
        let hosted = crate::net::spawn_blocking(move || hosting::open(&opts, &open_roles))
            .await
            .map_err(|e| Error::io("opening stores", std::io::Error::other(e)))??;
        connection::warn_if_exposed(&options, local_addr);
        let control = match &options.control {
            Some(config) => Some(Arc::new(crate::control::Control::open(&options, config).await?)),
            None => None,
        };
        let shared = Arc::new(Shared {
            limits: Limits::new(&options),
            map: parking_lot::RwLock::new(Arc::new(roles)),
            map_change: tokio::sync::Mutex::new(()),
            control,
            options,
            replicas: hosted.replicas,
            failed: hosted.failed,
            cancel: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        // With a control plane, replication terms start when the
        // controller's map arrives (a restarted node may no longer lead
        // what the config says it does).
        if shared.control.is_some() {
            crate::control::Control::start(&shared);
        } else {
            transport::start_replication(&shared).await;
        }
        crate::expiry::start(&shared);
        shared
            .tracker
            .spawn(connection::accept_loop(Arc::clone(&shared), listener));
        let resp_addr = resp.map(|(listener, addr)| {
            crate::resp::start(&shared, listener, addr.port());
            addr
        });
        info!(node = shared.id(), %local_addr, ?resp_addr, "node started");
        Ok(NodeHandle {
            local_addr,
            resp_addr,
            shared,
        })
    }
}

/// Binds the RESP listener when the node has one.
async fn bind_resp(addr: Option<&str>) -> Result<Option<(TcpListener, SocketAddr)>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("binding the RESP listener {addr}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the RESP listener address", e))?;
    Ok(Some((listener, local)))
}

impl NodeHandle {
    /// The address the node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the RESP2 listener listens on, when the node has one.
    pub fn resp_addr(&self) -> Option<SocketAddr> {
        self.resp_addr
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.shared.id()
    }

    /// The node's partitions, roles, positions, replication state and
    /// storage health. Reads every store's counters on the calling thread
    /// (the `Info` request does the same off the async workers).
    pub fn info(&self) -> NodeInfo {
        let partitions = self.shared.replicas.values().map(|r| r.info());
        node_info(&self.shared, partitions.collect())
    }

    /// The counters of this node's store for `partition` (writes, syncs,
    /// disk and cache use), or `None` when it hosts no replica of it.
    /// Reads the store's counters on the calling thread.
    pub fn store_stats(&self, partition: PartitionId) -> Option<kv_storage::Stats> {
        self.shared.replicas.get(&partition).map(|r| r.store.stats())
    }

    /// Compacts every store of this node now (normally a background job).
    pub async fn compact(&self) -> Result<()> {
        storage_io::compact(self.shared.all_replicas())
            .await
            .map_err(|e| node_error("compacting stores", e))
    }

    /// Changes this node's role for `partition` at run time, without a
    /// restart: the replica's replication tasks stop and those of the new
    /// role start. A new leader catches up with its most advanced
    /// reachable peer, then persists a new epoch (`epoch` if it is above
    /// every epoch seen, else the next one) before taking writes; a
    /// follower follows `leader`. For the control plane of the next
    /// issue and for tests; it does not change the cluster map, so
    /// clients learn the leader from `NotLeader` replies.
    #[doc(hidden)]
    pub async fn set_role(
        &self,
        partition: PartitionId,
        role: Role,
        leader: Option<NodeId>,
        epoch: Option<Epoch>,
    ) -> Result<()> {
        let Some(replica) = self.shared.replicas.get(&partition) else {
            return Err(Error::RoleChange {
                partition,
                reason: "this node has no open replica of it",
            });
        };
        if role == Role::Follower && leader.is_none_or(|l| l == self.id()) {
            return Err(Error::RoleChange {
                partition,
                reason: "a follower needs another node as its leader",
            });
        }
        transport::start_term(&self.shared, replica, role, leader, epoch, false).await;
        Ok(())
    }

    /// Stops the node. With a control plane it first hands its
    /// leaderships to in-sync followers (controlled shutdown: it stops
    /// taking writes, waits until they hold everything it wrote, and asks
    /// the controller to move them; at most a few seconds). Then it stops
    /// accepting, closes every connection and replication stream, waits
    /// for all tasks, and shuts every store down (hint files written,
    /// fsynced), so the next start reopens fast.
    pub async fn shutdown(self) -> Result<()> {
        crate::control::Control::stop(&self.shared, true).await;
        self.stop().await
    }

    /// [`NodeHandle::shutdown`] without handing leaderships over first:
    /// for stopping a whole cluster at once, where no node would be left
    /// to take them.
    pub async fn shutdown_without_handover(self) -> Result<()> {
        crate::control::Control::stop(&self.shared, false).await;
        self.stop().await
    }

    /// Stops the nodes of one cluster together, none handing its
    /// leaderships over (no node would be left to take them). Every
    /// control-plane member stops first and every node stops serving
    /// before any of them finishes, so no node is left calling a peer that
    /// is already gone; then each finishes as [`NodeHandle::shutdown`]
    /// does. Every node is stopped; the errors come with their node's id.
    pub async fn shutdown_together(nodes: Vec<NodeHandle>) -> Vec<(NodeId, Error)> {
        let stops = nodes
            .iter()
            .map(|n| crate::control::Control::stop(&n.shared, false));
        futures::future::join_all(stops).await;
        for node in &nodes {
            node.shared.cancel.cancel();
        }
        let mut errors = Vec::new();
        for node in nodes {
            let id = node.id();
            if let Err(e) = node.stop().await {
                errors.push((id, e));
            }
        }
        errors
    }

    async fn stop(self) -> Result<()> {
        self.shared.cancel.cancel();
        self.shared.tracker.close();
        self.shared.tracker.wait().await;
        let replicas = self.shared.all_replicas();
        // Every task has ended, but a cancelled request may have left a
        // store call running on the blocking pool: let those finish, so
        // they are not failed by the store closing under them.
        blocking_calls_ended(&replicas).await;
        // No request reaches a store any more: shut them down (pending
        // hint files written, fsynced). Dropping the node then closes them
        // and frees their directory locks, so a node restarted in the same
        // process can open them again.
        let result = storage_io::shutdown(replicas).await;
        info!(node = self.shared.id(), "node stopped");
        result.map_err(|e| node_error("syncing stores", e))
    }
}

/// A failed store call as the node's error.
fn node_error(context: &str, e: IoError) -> Error {
    match e {
        IoError::Store(e) => Error::from(e),
        e => Error::io(context, std::io::Error::other(e)),
    }
}

/// Longest wait for blocking store calls still in flight at shutdown.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// Waits (bounded by [`RELEASE_WAIT`]) until no blocking store call of
/// `replicas` runs any more.
async fn blocking_calls_ended(replicas: &[Arc<Replica>]) {
    let all = futures::future::join_all(replicas.iter().map(|r| r.blocking_calls_ended()));
    if tokio::time::timeout(RELEASE_WAIT, all).await.is_err() {
        warn!(
            wait = ?RELEASE_WAIT,
            "store calls still running at shutdown; their stores close when they end"
        );
    }
}

/// Accepts connections until shutdown, at most `max_connections` served
/// at once; `serve` runs each connection as a task that shutdown drops.
/// The RESP listener's loop (the framed protocol's, with handshakes and
/// quotas, is `connection::accept_loop`).
pub(crate) async fn accept_loop<F, Fut>(shared: Arc<Shared>, listener: TcpListener, serve: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(shared.options.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let Some((socket, peer)) = crate::connection::accept_next(&shared, &listener).await else {
            return;
        };
        let connection = serve(socket, peer);
        shared.spawn_until_shutdown(async move {
            connection.await;
            drop(permit);
        });
    }
}

/// Size of the per-connection buffer replies are encoded into.
const REPLY_BUFFER_BYTES: usize = 64 * 1024;

/// Serves requests on a connection that passed its handshake as `kind`.
pub(crate) async fn serve_connection(
    shared: Arc<Shared>,
    mut conn: Conn,
    peer: SocketAddr,
    kind: PeerKind,
) {
    let mut unflushed = false;
    let mut idle = connection::idle_timer(&shared.options);
    // Replies are encoded into one reused buffer (split off per reply).
    let mut out = BytesMut::with_capacity(REPLY_BUFFER_BYTES);
    // A frame read while gathering a group of puts that did not join it.
    let mut carried: Option<Next> = None;
    loop {
        let next = match carried.take() {
            Some(next) => next,
            None => match next_frame(&shared, &mut conn, &mut unflushed, &mut idle).await {
                Some(next) => next,
                None => break,
            },
        };
        let frame = match next {
            Next::Frame(frame) => frame.freeze(),
            Next::Closed => break,
            Next::Failed(e) => return refuse_frame(&mut conn, &e, peer).await,
            Next::Idle => {
                debug!(%peer, "idle connection closed");
                break;
            }
            Next::Slow(after) => {
                let err = ProtocolError::Invalid(format!(
                    "request not complete within {after:?} of its first byte"
                ));
                return reject(&mut conn, 0, &err, peer).await;
            }
        };
        let decoded = Request::decode(frame.clone());
        if let Ok((id, request)) = &decoded
            && let Some(reply) = connection::refusal(&shared, kind, request)
        {
            let mut out = BytesMut::new();
            reply.encode(*id, &mut out);
            let _ = conn.send(out.freeze()).await;
            return;
        }
        match decoded {
            Ok((
                id,
                Request::Subscribe {
                    partition,
                    from,
                    after,
                    epoch,
                },
            )) => {
                let _ = flush(&mut conn).await;
                let subscriber = transport::Subscriber { from, after, epoch };
                transport::serve_subscription(&shared, conn, id, partition, subscriber).await;
                return;
            }
            Ok((id, Request::Put { key, value })) => {
                let (group, next) = gather_puts(&shared, &mut conn, kind, (id, key, value));
                carried = next;
                for (id, response) in pipeline::put_group(&shared, group).await {
                    if reply(&mut conn, &mut out, id, &response).await.is_err() {
                        return;
                    }
                }
                unflushed = true;
            }
            Ok((id, Request::Control(body))) => {
                let response = crate::control::handle(&shared, kind, body).await;
                if reply(&mut conn, &mut out, id, &response).await.is_err() {
                    return;
                }
                unflushed = true;
            }
            Ok((id, request)) => {
                let response = dispatch(&shared, request).await;
                if reply(&mut conn, &mut out, id, &response).await.is_err() {
                    return;
                }
                unflushed = true;
            }
            Err(e) => {
                reject(&mut conn, request_id_of(&frame), &e, peer).await;
                return;
            }
        }
    }
    let _ = flush(&mut conn).await;
}

/// Queues one reply on the connection (flushed by the caller's loop).
async fn reply(
    conn: &mut Conn,
    out: &mut BytesMut,
    id: RequestId,
    response: &Response,
) -> Result<(), FrameError> {
    if out.capacity() < REPLY_BUFFER_BYTES / 4 {
        out.reserve(REPLY_BUFFER_BYTES);
    }
    response.encode(id, out);
    conn.feed(out.split().freeze()).await
}

/// `first` and the plain puts that follow it already read (never waiting
/// for more), up to [`pipeline::MAX_GROUP`]; and the first frame read that
/// is not one (or the end or failure of the stream), for the caller's loop.
fn gather_puts(
    shared: &Shared,
    conn: &mut Conn,
    kind: PeerKind,
    first: pipeline::Put,
) -> (Vec<pipeline::Put>, Option<Next>) {
    let mut group = vec![first];
    while group.len() < pipeline::MAX_GROUP {
        let frame = match conn.next().now_or_never() {
            None => break,
            Some(Some(Ok(frame))) => frame,
            Some(Some(Err(e))) => return (group, Some(Next::Failed(e))),
            Some(None) => return (group, Some(Next::Closed)),
        };
        let frame = frame.freeze();
        let joins = match Request::decode(frame.clone()) {
            Ok((id, request @ Request::Put { .. }))
                if connection::refusal(shared, kind, &request).is_none() =>
            {
                Some((id, request))
            }
            _ => None,
        };
        match joins {
            Some((id, Request::Put { key, value })) => group.push((id, key, value)),
            // Decoded again by the loop (the decoding above is dropped, so
            // this takes the bytes back without a copy).
            _ => return (group, Some(Next::Frame(BytesMut::from(frame)))),
        }
    }
    (group, None)
}

/// The next frame: taken straight from the buffer when one is there,
/// otherwise pending replies are flushed before waiting on the socket.
async fn next_frame(
    shared: &Shared,
    conn: &mut Conn,
    unflushed: &mut bool,
    idle: &mut IdleTimer,
) -> Option<Next> {
    if *unflushed {
        if let Some(ready) = conn.next().now_or_never() {
            return Some(match ready {
                Some(Ok(frame)) => Next::Frame(frame),
                Some(Err(e)) => Next::Failed(e),
                None => Next::Closed,
            });
        }
        if flush(conn).await.is_err() {
            return None;
        }
        *unflushed = false;
    }
    Some(connection::read_frame(shared, conn, idle).await)
}

async fn flush(conn: &mut Conn) -> Result<(), FrameError> {
    SinkExt::<Bytes>::flush(conn).await
}

/// Answers a frame that could not be read (too large, over the node's
/// budget for requests in flight) and closes the connection.
async fn refuse_frame(conn: &mut Conn, e: &FrameError, peer: SocketAddr) {
    let (code, err) = match e {
        FrameError::TooLarge { limit, .. } => (
            ErrorCode::InvalidRequest,
            ProtocolError::FrameTooLarge { limit: *limit },
        ),
        FrameError::BudgetExhausted { .. } => {
            (ErrorCode::Busy, ProtocolError::Invalid(e.to_string()))
        }
        FrameError::Io(_) => return,
    };
    warn!(%peer, error = %err, "closing the connection");
    let reply = error_reply(code, None, err.to_string());
    let mut out = BytesMut::new();
    reply.encode(0, &mut out);
    let _ = conn.send(out.freeze()).await;
}

/// The request id of a frame that failed to decode, when it has one.
fn request_id_of(frame: &Bytes) -> RequestId {
    frame
        .get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_be_bytes)
}

async fn reject(conn: &mut Conn, id: RequestId, err: &ProtocolError, peer: SocketAddr) {
    warn!(%peer, error = %err, "bad input; closing the connection");
    let reply = error_reply(ErrorCode::InvalidRequest, None, err.to_string());
    let mut out = BytesMut::new();
    reply.encode(id, &mut out);
    let _ = conn.send(out.freeze()).await;
}

pub(crate) fn error_reply(code: ErrorCode, leader: Option<NodeId>, message: String) -> Response {
    Response::Error {
        code,
        leader,
        message,
    }
}

async fn dispatch(shared: &Shared, request: Request) -> Response {
    match request {
        Request::Ping => Response::Pong {
            node: shared.id(),
            map_version: shared.map.read().version(),
        },
        Request::Get { key } => get(shared, key).await,
        Request::GetStale { key } => get_stale(shared, key).await,
        Request::GetLeader { key } => get_at_leader(shared, key).await,
        Request::Status { key } => status(shared, key).await,
        Request::Put { key, value } => put(shared, key, value, None).await,
        Request::Delete { key } => delete(shared, key, None).await,
        Request::PutAcks { key, value, acks } => put(shared, key, value, Some(acks)).await,
        Request::DeleteAcks { key, acks } => delete(shared, key, Some(acks)).await,
        Request::Inspect => match storage_io::inspect(shared.all_replicas()).await {
            Ok(keys) => Response::Inspect(keys),
            Err(e) => io_error(None, e),
        },
        Request::Info => info(shared).await,
        Request::ClusterMap => Response::ClusterMap(ClusterMap::clone(&shared.map.read())),
        Request::Position { partition } => match shared.replicas.get(&partition) {
            Some(r) => Response::Position {
                partition,
                role: r.role(),
                position: r.position(),
                epoch: r.machine().epoch(),
            },
            None => not_hosted(shared, partition),
        },
        Request::Conditional(op) => crate::atomic::execute(shared, op).await,
        Request::Keyspace(op) => crate::keyspace::execute(shared, op).await,
        Request::AtLeader { partition, read } => at_leader(shared, partition, *read).await,
        Request::Ack { .. } | Request::Subscribe { .. } | Request::Control(_) => error_reply(
            ErrorCode::InvalidRequest,
            None,
            "replication or control message outside its connection path".into(),
        ),
    }
}

pub(crate) fn not_hosted(shared: &Shared, partition: PartitionId) -> Response {
    if let Some(failed) = shared.failed.get(&partition) {
        let message = format!(
            "partition {partition} is failed on node {}: {}",
            shared.id(),
            failed.problem
        );
        return error_reply(ErrorCode::Storage, None, message);
    }
    let leader = shared.map.read().leader(partition);
    let message = match leader {
        Some(l) => format!(
            "node {} does not host partition {partition}; its leader is node {l}",
            shared.id()
        ),
        None => format!("partition {partition} does not exist"),
    };
    error_reply(ErrorCode::NotHosted, leader, message)
}

/// Finds the replica for a key, or the error reply saying why not.
pub(crate) fn replica_for<'a>(
    shared: &'a Shared,
    key: &[u8],
) -> Result<(&'a Arc<Replica>, PartitionId), Response> {
    if key.is_empty() {
        return Err(error_reply(
            ErrorCode::InvalidRequest,
            None,
            "key must not be empty".into(),
        ));
    }
    let p = shared.options.map.partition_of(key);
    match shared.replicas.get(&p) {
        Some(r) => Ok((r, p)),
        None => Err(not_hosted(shared, p)),
    }
}

/// The replica a read may go to: hosted here and not recovering.
pub(crate) fn readable<'a>(
    shared: &'a Shared,
    key: &[u8],
) -> Result<(&'a Arc<Replica>, PartitionId), Response> {
    let (r, p) = replica_for(shared, key)?;
    ready_to_read(shared, r, p)?;
    Ok((r, p))
}

/// Whether replica `r` of `p` may answer reads, or the error reply.
pub(crate) fn ready_to_read(shared: &Shared, r: &Replica, p: PartitionId) -> Result<(), Response> {
    // A recovering leader may be missing what its followers hold (it
    // restarted empty or behind), and a resyncing follower holds only part
    // of the history: neither answers reads, so the client falls back to
    // another replica.
    if r.state() == protocol::ReplicaState::Recovering {
        return Err(recovering(shared, p));
    }
    if r.role() == Role::Leader {
        if !lease_valid(shared) {
            return Err(no_lease(shared, p));
        }
        // The transfer's target may be leading already: a read here
        // could miss its writes.
        if r.handing_over.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(handing_over(shared, p));
        }
    }
    Ok(())
}

/// Whether this node's leaders hold a lease from the control plane (always
/// true without one).
fn lease_valid(shared: &Shared) -> bool {
    shared.control.as_ref().is_none_or(|c| c.lease_valid())
}

/// A leader whose lease lapsed: it may have been replaced, so it neither
/// writes nor answers leader reads until the controller renews the lease.
fn no_lease(shared: &Shared, p: PartitionId) -> Response {
    error_reply(
        ErrorCode::Recovering,
        None,
        format!(
            "node {} holds no lease from the controller for partition {p}: not serving as leader until it is renewed",
            shared.id()
        ),
    )
}

/// A read any ready replica answers; at the leader, only once its log is
/// on the in-sync replicas ([`insync::committed_read`]).
pub(crate) async fn get(shared: &Shared, key: Bytes) -> Response {
    match readable(shared, &key) {
        Ok((r, p)) => answer_read(shared, r, p, read_value(r, p, key)).await,
        Err(reply) => reply,
    }
}

/// `read`'s reply from replica `r` of `p`: at once on a follower (its
/// answer may be stale, and clients say so); on the leader only once what
/// it read is on the in-sync replicas ([`insync::committed_read`]), so no
/// read, whatever its kind, sees a write a failover could still lose.
pub(crate) async fn answer_read<Fut>(shared: &Shared, r: &Replica, p: PartitionId, read: Fut) -> Response
where
    Fut: Future<Output = Response>,
{
    if r.role() == Role::Leader {
        insync::committed_read(shared, r, p, read).await
    } else {
        read.await
    }
}

/// `read` if this node leads `partition` (`AtLeader`); else `NotLeader`
/// naming the leader, so the client refreshes its map.
async fn at_leader(shared: &Shared, partition: PartitionId, read: Request) -> Response {
    let target = match &read {
        Request::Status { key } | Request::Keyspace(Keyspace::Ttl { key }) => {
            Some(shared.options.map.partition_of(key))
        }
        Request::Keyspace(Keyspace::MGet { partition, .. }) => Some(*partition),
        Request::Keyspace(Keyspace::Scan(spec)) => Some(spec.partition),
        _ => None,
    };
    if target != Some(partition) {
        let message = format!("AtLeader of partition {partition} wraps a read of another partition");
        return error_reply(ErrorCode::InvalidRequest, None, message);
    }
    match shared.replicas.get(&partition) {
        Some(r) if r.role() == Role::Leader => Box::pin(dispatch(shared, read)).await,
        Some(r) => not_leader(shared, partition, r.machine().leader(), "read at"),
        None => not_hosted(shared, partition),
    }
}

/// A read only the partition's leader answers (`GetLeader`).
async fn get_at_leader(shared: &Shared, key: Bytes) -> Response {
    let (r, p) = match readable(shared, &key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    if r.role() != Role::Leader {
        return not_leader(shared, p, r.machine().leader(), "read at");
    }
    insync::committed_read(shared, r, p, read_value(r, p, key)).await
}

/// A read a leader answers without its lease (`GetStale`); a replica
/// still catching up does not answer it either.
async fn get_stale(shared: &Shared, key: Bytes) -> Response {
    let (r, p) = match replica_for(shared, &key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    if r.state() == protocol::ReplicaState::Recovering {
        return recovering(shared, p);
    }
    read_value(r, p, key).await
}

async fn read_value(r: &Arc<Replica>, p: PartitionId, key: Bytes) -> Response {
    match storage_io::get(r, key).await {
        Ok(value) => Response::Value {
            partition: p,
            value,
        },
        Err(e) => io_error(Some(p), e),
    }
}

async fn status(shared: &Shared, key: Bytes) -> Response {
    let (r, p) = match readable(shared, &key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    Response::Status {
        partition: p,
        location: storage_io::location(r, &key),
    }
}

fn recovering(shared: &Shared, p: PartitionId) -> Response {
    error_reply(
        ErrorCode::Recovering,
        Some(shared.id()),
        format!(
            "partition {p} is recovering on node {}: catching up from a follower before serving",
            shared.id()
        ),
    )
}

/// The replica a write may go to: hosted here, led here, and ready.
pub(crate) fn writable<'a>(
    shared: &'a Shared,
    key: &[u8],
) -> Result<(&'a Arc<Replica>, PartitionId), Response> {
    let (r, p) = replica_for(shared, key)?;
    ready_to_write(shared, r, p)?;
    Ok((r, p))
}

/// Whether replica `r` of `p` may take writes (it leads and is ready),
/// or the error reply.
pub(crate) fn ready_to_write(shared: &Shared, r: &Replica, p: PartitionId) -> Result<(), Response> {
    let writable = r.machine().writable();
    match writable {
        Ok(()) if !lease_valid(shared) => Err(no_lease(shared, p)),
        Ok(()) if r.handing_over.load(std::sync::atomic::Ordering::SeqCst) => {
            Err(handing_over(shared, p))
        }
        Ok(()) => Ok(()),
        Err(NotWritable::Recovering) => Err(recovering(shared, p)),
        Err(NotWritable::NotLeader(leader)) => Err(not_leader(shared, p, leader, "write to")),
        Err(NotWritable::EpochNotRecorded { epoch, recorded }) => Err(error_reply(
            ErrorCode::Recovering,
            Some(shared.id()),
            format!(
                "partition {p} leads in epoch {epoch} on node {}, which the controller has not \
                 recorded yet (its map is at epoch {recorded}): not taking writes until it has",
                shared.id()
            ),
        )),
    }
}

/// A leader handing `p` over (`kv cluster transfer`) takes no writes and
/// answers no leader reads meanwhile.
fn handing_over(shared: &Shared, p: PartitionId) -> Response {
    error_reply(
        ErrorCode::Recovering,
        None,
        format!(
            "node {} is handing partition {p}'s leadership over; retry shortly",
            shared.id()
        ),
    )
}

/// `NotLeader` for a request this follower of `p` may not answer: `to`
/// its leader, whom the reply names when known.
fn not_leader(shared: &Shared, p: PartitionId, leader: Option<NodeId>, to: &str) -> Response {
    let message = format!(
        "node {} is a follower of partition {p}; {to} its leader, node {}",
        shared.id(),
        leader.map_or_else(|| "?".to_string(), |l| l.to_string())
    );
    error_reply(ErrorCode::NotLeader, leader, message)
}

/// A put at the leader, answered under `acks` (`None`: the cluster's
/// default ack mode).
pub(crate) async fn put(
    shared: &Shared,
    key: Bytes,
    value: Bytes,
    acks: Option<AckMode>,
) -> Response {
    let (replica, p) = match writable(shared, &key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    insync::acked(shared, replica, p, acks, || async {
        match storage_io::put(replica, key, value).await {
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

/// A delete at the leader, answered under `acks` (as [`put`]).
pub(crate) async fn delete(shared: &Shared, key: Bytes, acks: Option<AckMode>) -> Response {
    let (replica, p) = match writable(shared, &key) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    insync::acked(shared, replica, p, acks, || async {
        match storage_io::delete(replica, key).await {
            // The replica's end, tombstone or not: a delete that found
            // no key answers from the leader's log as a read does, and
            // that log may hold a delete still waiting for its acks,
            // which a failover would undo (simulation seed 10400189). A
            // key that had expired here is not reported as existing, but
            // its tombstone is waited for.
            Ok(existed) => Ok((
                Response::Deleted {
                    partition: p,
                    existed,
                },
                replica.position(),
            )),
            Err(e) => Err(io_error(Some(p), e)),
        }
    })
    .await
}

/// The error reply for a store call that failed.
pub(crate) fn io_error(p: Option<PartitionId>, e: IoError) -> Response {
    use kv_storage::Error::{KeyTooLarge, NotDurable, ValueTooLarge};
    let code = match &e {
        IoError::Store(KeyTooLarge { .. } | ValueTooLarge { .. }) => ErrorCode::TooLarge,
        // Applied, but its fsync failed: it may or may not survive.
        IoError::Store(NotDurable { .. }) => ErrorCode::OutcomeUnknown,
        IoError::Store(_) => ErrorCode::Storage,
        IoError::InvalidValue(_) => ErrorCode::InvalidValue,
        IoError::Task(_) => ErrorCode::Internal,
    };
    debug!(partition = ?p, error = %e, "store call failed");
    let message = match p {
        Some(p) => format!("partition {p}: {e}"),
        None => e.to_string(),
    };
    error_reply(code, None, message)
}

async fn info(shared: &Shared) -> Response {
    match current_info(shared).await {
        Ok(info) => Response::Info(info),
        Err(e) => io_error(None, e),
    }
}

/// This node's `Info` now (store figures read through the boundary).
pub(crate) async fn current_info(shared: &Shared) -> Result<NodeInfo, IoError> {
    let partitions = storage_io::infos(shared.all_replicas()).await?;
    Ok(node_info(shared, partitions))
}

/// The node's `Info`: the opened replicas' figures plus the failed ones.
fn node_info(shared: &Shared, mut partitions: Vec<PartitionInfo>) -> NodeInfo {
    insync::mark_in_sync(shared, &mut partitions);
    for (&p, failed) in &shared.failed {
        partitions.push(PartitionInfo::failed(
            p,
            failed.role,
            failed.problem.clone(),
        ));
    }
    partitions.sort_by_key(|info| info.partition);
    NodeInfo {
        node: shared.id(),
        map_version: shared.options.map.version(),
        partitions,
    }
}

// Real sockets on a real runtime: not under the simulator.
#[cfg(all(test, not(feature = "sim")))]
mod tests;

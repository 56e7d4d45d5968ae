//! The RESP listener: accept loop and one task per client connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

use super::commands;
use super::frame::{self, COMMAND_SLACK_BYTES, Command, FrameError, Limits};
use super::reply::Reply;
use crate::client::ClientOptions;
use crate::cluster_client::ClusterClient;
use crate::net::{TcpListener, TcpStream};
use crate::server::{Shared, accept_loop};

/// State shared by every RESP connection of one node.
pub(crate) struct Front {
    pub shared: Arc<Shared>,
    /// Routes commands for partitions this node does not lead.
    pub cluster: ClusterClient,
    pub limits: Limits,
    pub started: Instant,
    pub port: u16,
    next_client_id: AtomicU64,
    pub connected: AtomicUsize,
    pub connections_received: AtomicU64,
    pub commands_processed: AtomicU64,
    pub forwarded: AtomicU64,
}

/// Per-connection state.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub id: u64,
    pub name: Option<String>,
    pub authenticated: bool,
    /// Set by `QUIT`: close after this reply.
    pub closing: bool,
}

/// Read buffer growth step.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Starts serving RESP on `listener` for the node in `shared`.
pub(crate) fn start(shared: &Arc<Shared>, listener: TcpListener, port: u16) {
    let options = &shared.options;
    let client_options = ClientOptions {
        connect_timeout: options.peer_timeout,
        max_frame_bytes: options.max_frame_bytes,
        // Forwarded commands are client requests to the other nodes: they
        // present the same password a client of this node must.
        password: options.client_password.clone(),
        ..ClientOptions::default()
    };
    let front = Arc::new(Front {
        shared: Arc::clone(shared),
        cluster: ClusterClient::new(options.map.clone(), client_options),
        limits: Limits {
            max_command_bytes: options.max_frame_bytes + COMMAND_SLACK_BYTES,
            ..Limits::default()
        },
        started: crate::net::now(),
        port,
        next_client_id: AtomicU64::new(1),
        connected: AtomicUsize::new(0),
        connections_received: AtomicU64::new(0),
        commands_processed: AtomicU64::new(0),
        forwarded: AtomicU64::new(0),
    });
    shared.tracker.spawn(accept_loop(
        Arc::clone(shared),
        listener,
        move |socket, peer| serve(Arc::clone(&front), socket, peer),
    ));
}

async fn serve(front: Arc<Front>, socket: TcpStream, peer: SocketAddr) {
    let _ = socket.set_nodelay(true);
    front.connected.fetch_add(1, Ordering::Relaxed);
    front.connections_received.fetch_add(1, Ordering::Relaxed);
    let mut session = Session {
        id: front.next_client_id.fetch_add(1, Ordering::Relaxed),
        authenticated: front.shared.options.client_password.is_none(),
        ..Session::default()
    };
    if let Err(reason) = run(&front, &mut session, socket).await {
        debug!(%peer, %reason, "RESP connection closed");
    }
    front.connected.fetch_sub(1, Ordering::Relaxed);
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
enum Closed {
    #[error("client disconnected")]
    Eof,
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol error: {0}")]
    Protocol(frame::FrameError),
    #[error("QUIT")]
    Quit,
}

/// Replies buffered past this size are written out before more commands
/// of the same batch run, so a pipeline of large reads holds bounded
/// memory.
const OUTPUT_FLUSH_BYTES: usize = 1024 * 1024;

/// Most commands parsed ahead into one batch.
const MAX_BATCH_COMMANDS: usize = 128;

/// Reads, runs every complete command in order, writes the batch of
/// replies (one write per batch, or per [`OUTPUT_FLUSH_BYTES`]), repeats.
async fn run(front: &Front, session: &mut Session, mut socket: TcpStream) -> Result<(), Closed> {
    let idle = front.shared.options.resp_idle_timeout;
    let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut out = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        if input.capacity() - input.len() < READ_CHUNK_BYTES / 4 {
            input.reserve(READ_CHUNK_BYTES);
        }
        let n = match tokio::time::timeout(idle, socket.read_buf(&mut input)).await {
            Ok(read) => read?,
            Err(_) => return Err(Closed::Idle(idle)),
        };
        if n == 0 {
            return Err(Closed::Eof);
        }
        let result = run_buffered(front, session, &mut input, &mut out, &mut socket).await;
        write_out(&mut socket, &mut out).await?;
        result?;
    }
}

async fn write_out(socket: &mut TcpStream, out: &mut BytesMut) -> Result<(), Closed> {
    if !out.is_empty() {
        socket.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Runs every complete command in `input`, appending replies to `out`
/// (written out early when it grows past [`OUTPUT_FLUSH_BYTES`]).
async fn run_buffered(
    front: &Front,
    session: &mut Session,
    input: &mut BytesMut,
    out: &mut BytesMut,
    socket: &mut TcpStream,
) -> Result<(), Closed> {
    loop {
        let (batch, error) = parse_batch(input, &front.limits);
        if batch.is_empty() && error.is_none() {
            return Ok(());
        }
        run_batch(front, session, &batch, out, socket).await?;
        if let Some(e) = error {
            Reply::err(format!("Protocol error: {e}")).encode(out);
            return Err(Closed::Protocol(e));
        }
    }
}

/// Up to [`MAX_BATCH_COMMANDS`] complete commands off `input` (empty
/// ones dropped), and the protocol error that stopped parsing, if any.
fn parse_batch(input: &mut BytesMut, limits: &Limits) -> (Vec<Command>, Option<FrameError>) {
    let mut batch = Vec::new();
    while batch.len() < MAX_BATCH_COMMANDS {
        match frame::parse(input, limits) {
            Ok(Some(command)) if command.is_empty() => {}
            Ok(Some(command)) => batch.push(command),
            Ok(None) => break,
            Err(e) => return (batch, Some(e)),
        }
    }
    (batch, None)
}

/// Runs a batch in order; a run of plain `GET`/`SET`s on distinct keys
/// runs side by side (see [`commands::concurrent_run`]). Replies keep the
/// command order.
async fn run_batch(
    front: &Front,
    session: &mut Session,
    batch: &[Command],
    out: &mut BytesMut,
    socket: &mut TcpStream,
) -> Result<(), Closed> {
    let mut rest = batch;
    while !rest.is_empty() {
        if out.len() >= OUTPUT_FLUSH_BYTES {
            write_out(socket, out).await?;
        }
        let n = if session.authenticated {
            commands::concurrent_run(rest)
        } else {
            0
        };
        let (now, later) = rest.split_at(n.max(1));
        rest = later;
        front
            .commands_processed
            .fetch_add(now.len() as u64, Ordering::Relaxed);
        if n > 1 {
            for reply in commands::execute_run(front, now).await {
                reply.encode(out);
            }
            continue;
        }
        for command in now {
            commands::execute(front, session, command.clone())
                .await
                .encode(out);
            if session.closing {
                return Err(Closed::Quit);
            }
        }
    }
    Ok(())
}

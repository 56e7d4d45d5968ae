//! The wire protocol: length-delimited frames carrying binary messages.
//!
//! Framing is [`frame::FrameCodec`]: a four-byte big-endian length and a
//! configurable maximum frame size; a frame over the limit is an error for
//! that connection before any of it is buffered, and buffers grow with the
//! bytes that arrived, never with the length announced. Every connection
//! opens with a [`handshake`]; after it, each frame holds one message
//! ([`message`]). The history types every side shares ([`Position`],
//! [`Entry`], [`Location`], [`Lsn`], [`Epoch`]) are defined here, with
//! their byte layout; the server converts them to and from kv-storage's
//! at its storage boundary.

mod conditional;
pub mod control;
pub mod frame;
pub mod handshake;
mod info;
mod keyspace;
pub mod limits;
mod map;
pub mod message;
mod types;
mod wire;

use std::time::Duration;

use tokio_util::codec::Framed;

use crate::net::TcpStream;

pub use frame::{ByteBudget, FrameCodec, FrameError};
pub use handshake::{PROTOCOL_VERSION, PeerKind};
pub use types::{Entry, Epoch, Location, Lsn, Position};

pub use message::{
    Conditional, FollowerInfo, Health, HistoryInfo, KeyTtl, Keyspace, KeyspaceReply, NodeInfo,
    PartitionInfo, PartitionKeys, ReplicaState, Request, RequestId, Response, ScanEntry, ScanSpec,
    SetTtl, SetWhen,
};

// Default maximum frame size (16 MiB): kv-storage's default value limit is
// derived from it, so it is defined once, in kv-limits.
pub use kv_limits::DEFAULT_MAX_FRAME_BYTES;

/// A framed kv connection.
pub(crate) type Conn = Framed<TcpStream, FrameCodec>;

/// Frames an accepted or dialled socket (Nagle off: replies are batched by
/// the writers themselves); partial frames are charged to `budget`.
pub(crate) fn framed(socket: TcpStream, max_frame_bytes: usize, budget: ByteBudget) -> Conn {
    let _ = socket.set_nodelay(true);
    Framed::new(socket, FrameCodec::new(max_frame_bytes, budget))
}

/// Dials `addr` within `timeout`; a timeout is an `io::ErrorKind::TimedOut`
/// error.
pub(crate) async fn connect(
    addr: &str,
    timeout: Duration,
    max_frame_bytes: usize,
) -> std::io::Result<Conn> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(socket) => Ok(framed(socket?, max_frame_bytes, ByteBudget::unlimited())),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

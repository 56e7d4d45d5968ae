//! The wire protocol: length-delimited frames carrying binary messages.
//!
//! Framing is tokio-util's [`LengthDelimitedCodec`] with a four-byte
//! big-endian length and a configurable maximum frame size; a frame over the
//! limit is an error for that connection before any of it is buffered.
//! Inside each frame is one message ([`message`]).

mod conditional;
mod info;
mod map;
pub mod message;
mod wire;

use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

pub use message::{
    Conditional, FollowerInfo, Health, NodeInfo, PartitionInfo, PartitionKeys, ReplicaState,
    Request, RequestId, Response, SetWhen,
};

/// Default maximum frame size: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// The frame codec used on every kv connection.
pub fn codec(max_frame_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max_frame_bytes)
        .new_codec()
}

/// A framed kv connection.
pub(crate) type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// Frames an accepted or dialled socket (Nagle off: replies are batched by
/// the writers themselves).
pub(crate) fn framed(socket: TcpStream, max_frame_bytes: usize) -> Conn {
    let _ = socket.set_nodelay(true);
    Framed::new(socket, codec(max_frame_bytes))
}

/// Dials `addr` within `timeout`; a timeout is an `io::ErrorKind::TimedOut`
/// error.
pub(crate) async fn connect(
    addr: &str,
    timeout: Duration,
    max_frame_bytes: usize,
) -> std::io::Result<Conn> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(socket) => Ok(framed(socket?, max_frame_bytes)),
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

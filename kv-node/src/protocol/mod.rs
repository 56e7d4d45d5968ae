//! The wire protocol: length-delimited frames carrying binary messages.
//!
//! Framing is tokio-util's [`LengthDelimitedCodec`] with a four-byte
//! big-endian length and a configurable maximum frame size; a frame over the
//! limit is an error for that connection before any of it is buffered.
//! Inside each frame is one message ([`message`]).

mod info;
pub mod message;
mod wire;

use tokio_util::codec::LengthDelimitedCodec;

pub use message::{
    FollowerInfo, NodeInfo, PartitionInfo, PartitionKeys, ReplicaState, Request, RequestId,
    Response,
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

//! The crate's error type and the wire error codes.

use std::time::Duration;

use kv_router::{NodeId, PartitionId};

/// What is wrong with a received frame. The connection that sent it is
/// closed after an error reply; other connections are unaffected.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The frame ended before a field it announces.
    #[error("truncated message: needed {needed} more bytes, {available} available")]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the frame.
        available: usize,
    },
    /// The first byte names no known message.
    #[error("unknown message type 0x{0:02x}")]
    UnknownMessage(u8),
    /// The message was complete but bytes followed it.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A field holds a value outside its domain.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The frame is larger than the configured maximum.
    #[error("frame too large (limit {limit} bytes)")]
    FrameTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The dialer speaks another protocol version.
    #[error("protocol version {got} is not supported; this node speaks version {supported}")]
    UnsupportedVersion {
        /// The version the dialer announced.
        got: u16,
        /// The version this node speaks.
        supported: u16,
    },
}

/// Error codes carried in an error reply, so a client can react by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// A write reached a replica that is not the partition's leader.
    NotLeader,
    /// The node hosts no replica of the key's partition.
    NotHosted,
    /// The value is not a valid kv-codec encoding.
    InvalidValue,
    /// The request is malformed (bad frame, bad field, empty key, ...).
    InvalidRequest,
    /// A key or value is over the storage limits.
    TooLarge,
    /// The leader is catching up from a follower and refuses writes for now.
    Recovering,
    /// The storage layer failed (I/O error, full disk, corruption, a store
    /// poisoned by an earlier failed fsync). A write answered with it was
    /// not applied; one applied whose fsync then failed is answered
    /// [`ErrorCode::OutcomeUnknown`].
    Storage,
    /// A replication request would move a replica backwards.
    WouldRegress,
    /// The node is shutting down.
    ShuttingDown,
    /// The handshake did not prove the cluster secret or the client
    /// password, or the request needs a peer connection.
    Unauthorized,
    /// The node is at a limit (connections, request bytes in flight): try
    /// again later.
    Busy,
    /// The dialer speaks another protocol version.
    UnsupportedVersion,
    /// A replication source's epoch is older than one the subscriber has
    /// seen: a newer leader superseded it.
    StaleEpoch,
    /// A write with `acks = "all"` was refused before it was applied: the
    /// partition's in-sync set is smaller than `min_insync_replicas`.
    NotEnoughReplicas,
    /// A write was applied on the leader but not confirmed: with
    /// `acks = "all"` not every in-sync replica acknowledged it (the set
    /// shrank below the minimum, or the wait timed out), or with
    /// `sync = "always"` its fsync failed. It may or may not survive.
    OutcomeUnknown,
    /// Anything else.
    Internal,
}

impl ErrorCode {
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ErrorCode::NotLeader => 1,
            ErrorCode::NotHosted => 2,
            ErrorCode::InvalidValue => 3,
            ErrorCode::InvalidRequest => 4,
            ErrorCode::TooLarge => 5,
            ErrorCode::Recovering => 6,
            ErrorCode::Storage => 7,
            ErrorCode::WouldRegress => 8,
            ErrorCode::ShuttingDown => 9,
            ErrorCode::Unauthorized => 10,
            ErrorCode::Busy => 11,
            ErrorCode::UnsupportedVersion => 12,
            ErrorCode::StaleEpoch => 0x40,
            ErrorCode::NotEnoughReplicas => 0x60,
            ErrorCode::OutcomeUnknown => 0x61,
            ErrorCode::Internal => 255,
        }
    }

    pub(crate) fn from_u8(b: u8) -> ErrorCode {
        match b {
            1 => ErrorCode::NotLeader,
            2 => ErrorCode::NotHosted,
            3 => ErrorCode::InvalidValue,
            4 => ErrorCode::InvalidRequest,
            5 => ErrorCode::TooLarge,
            6 => ErrorCode::Recovering,
            7 => ErrorCode::Storage,
            8 => ErrorCode::WouldRegress,
            9 => ErrorCode::ShuttingDown,
            10 => ErrorCode::Unauthorized,
            11 => ErrorCode::Busy,
            12 => ErrorCode::UnsupportedVersion,
            0x40 => ErrorCode::StaleEpoch,
            0x60 => ErrorCode::NotEnoughReplicas,
            0x61 => ErrorCode::OutcomeUnknown,
            _ => ErrorCode::Internal,
        }
    }
}

/// Every failure kv-node reports, shaped by how a caller reacts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node at `addr` could not be reached.
    #[error("cannot connect to node {node} at {addr}: {source}")]
    Connect {
        /// The node dialled.
        node: NodeId,
        /// Its address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// A write was sent, but whether it took effect is not known: no reply
    /// within the timeout, the connection broke after sending, or the
    /// leader applied it but could not confirm its in-sync replicas have
    /// it (`acks = "all"`). It may or may not have been applied; read the
    /// key to find out, and retry only if the write is idempotent.
    #[error(
        "write to node {node}: outcome unknown, it may or may not have been applied ({reason})"
    )]
    OutcomeUnknown {
        /// The node written to.
        node: NodeId,
        /// What happened.
        reason: String,
    },
    /// No reply within the request timeout.
    #[error("node {node} at {addr} did not answer within {after:?}")]
    Timeout {
        /// The node asked.
        node: NodeId,
        /// Its address.
        addr: String,
        /// The timeout.
        after: Duration,
    },
    /// The connection broke before the reply arrived.
    #[error("connection to node {node} at {addr} closed")]
    ConnectionClosed {
        /// The node.
        node: NodeId,
        /// Its address.
        addr: String,
    },
    /// The node answered with an error reply.
    #[error("{message}")]
    Remote {
        /// The kind of failure.
        code: ErrorCode,
        /// The node's message.
        message: String,
        /// The partition's leader, when the node knows it (for `NotLeader`).
        leader: Option<NodeId>,
    },
    /// A partition's leader cannot be reached, so a write cannot be accepted.
    #[error(
        "partition {partition}: leader node {node} is unavailable ({source}); write not applied"
    )]
    LeaderUnavailable {
        /// The partition written.
        partition: PartitionId,
        /// Its leader.
        node: NodeId,
        /// The failure talking to the leader.
        source: Box<Error>,
    },
    /// No replica of the partition answered a read.
    #[error("partition {partition}: no replica is reachable (last error: {source})")]
    PartitionUnavailable {
        /// The partition read.
        partition: PartitionId,
        /// The last failure.
        source: Box<Error>,
    },
    /// A stored value does not decode (written by a newer version?).
    #[error("stored value does not decode: {0}")]
    BadValue(kv_codec::DecodeError),
    /// The request does not fit in one frame (a value too large to send).
    #[error("request of {bytes} bytes exceeds the {limit}-byte frame limit (value too large)")]
    RequestTooLarge {
        /// The encoded request's size.
        bytes: usize,
        /// The frame limit.
        limit: usize,
    },
    /// The connection's opening handshake failed (not a refusal by the
    /// node, which is [`Error::Remote`]).
    #[error("handshake with node {node} at {addr} failed: {reason}")]
    Handshake {
        /// The node.
        node: NodeId,
        /// Its address.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The cluster secret is unusable.
    #[error("{0}")]
    BadSecret(String),
    /// The peer sent something that does not decode.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// The control plane refused or could not carry out a request (or
    /// the cluster runs without one).
    #[error("control plane: {0}")]
    Control(String),
    /// The peer answered with a reply of the wrong kind.
    #[error("unexpected reply from node {node}: {what}")]
    UnexpectedReply {
        /// The node.
        node: NodeId,
        /// What arrived.
        what: String,
    },
    /// The storage layer failed (feature `server`).
    #[cfg(feature = "server")]
    #[error("storage: {0}")]
    Storage(#[from] kv_storage::Error),
    /// The data directory was created for another cluster layout.
    #[error(
        "data directory {path} was created with {recorded}, but the configuration says {configured}; refusing to start (keys would map to other partitions)"
    )]
    LayoutMismatch {
        /// The data directory.
        path: String,
        /// What the directory records.
        recorded: String,
        /// What the configuration asks for.
        configured: String,
    },
    /// The configuration would move replicas the data directory holds.
    #[error(
        "data directory {path} holds replicas the configuration would move ({}); refusing to start. Moving replicas is the control plane's job; to keep them where they are, add [[placement]] entries with the old replicas (see README, Changing the cluster)",
        moves.join("; ")
    )]
    PlacementChanged {
        /// The data directory.
        path: String,
        /// One line per moved partition: `partition 1: [1, 2] -> [1, 3]`.
        moves: Vec<String>,
    },
    /// The cluster map places no replica for this partition (an invalid
    /// map: kv-router's validation prevents it).
    #[error("partition {0} has no replicas in the cluster map")]
    NoReplicas(PartitionId),
    /// A cluster scan cursor that no scan of this cluster hands out.
    #[error(
        "invalid scan cursor {cursor}: it names partition {partition}, but the cluster has {partitions}"
    )]
    InvalidCursor {
        /// The cursor given.
        cursor: u64,
        /// The partition it names.
        partition: u64,
        /// The cluster's partition count.
        partitions: u32,
    },
    /// The cluster map has no node with this id.
    #[error("node {0} is not in the cluster map")]
    UnknownNode(NodeId),
    /// A role change this node cannot make.
    #[error("cannot change the role of partition {partition}: {reason}")]
    RoleChange {
        /// The partition.
        partition: PartitionId,
        /// Why not.
        reason: &'static str,
    },
    /// A local I/O failure (binding, data directory).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the failure says the node could not be talked to at all
    /// (refused, timed out, connection lost): the cases where a read may
    /// fall back to a follower.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Timeout { .. }
                | Error::ConnectionClosed { .. }
                | Error::Handshake { .. }
        ) || matches!(
            self,
            Error::Remote {
                code: ErrorCode::ShuttingDown,
                ..
            }
        )
    }

    /// True when the node does not lead the partition (any more).
    pub fn is_not_leader(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                code: ErrorCode::NotLeader,
                ..
            }
        )
    }

    /// True for a leader that is catching up before taking writes: the
    /// same write succeeds once it is ready.
    pub fn is_recovering(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                code: ErrorCode::Recovering,
                ..
            }
        )
    }

    /// True when the node's store failed (a partition that failed to open,
    /// an I/O error, damaged data): another replica may answer a read.
    pub fn is_storage(&self) -> bool {
        matches!(
            self,
            Error::Remote {
                code: ErrorCode::Storage,
                ..
            }
        )
    }

    /// True when a partition store's directory is locked by another open
    /// store: another kv process is using the same data directory.
    pub fn is_locked(&self) -> bool {
        #[cfg(feature = "server")]
        if let Error::Storage(kv_storage::Error::Locked { .. }) = self {
            return true;
        }
        false
    }

    /// The code of the node's error reply, when the failure is one
    /// ([`Error::Remote`]).
    pub fn remote_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(all(test, feature = "server"))]
mod tests {
    use super::*;

    #[test]
    fn a_store_locked_by_another_is_told_apart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = kv_storage::Options::default();
        let _first = kv_storage::Store::open(dir.path(), options.clone()).expect("first open");
        let second = kv_storage::Store::open(dir.path(), options).map(|_| ());
        let locked = Error::from(second.expect_err("the directory is locked"));
        assert!(locked.is_locked(), "{locked}");
        assert!(!Error::from(kv_storage::Error::Closed).is_locked());
        assert!(!Error::UnknownNode(3).is_locked());
    }
}

//! Requests and replies, and their byte layout.
//!
//! Every frame body starts with a one-byte message type and an eight-byte
//! request id (big-endian), followed by the fields of that type in the order
//! they are declared below. Replies carry the id of the request they answer;
//! replication stream messages carry the id of the `Subscribe` that opened
//! the stream. `docs/protocol.md` lists every message byte by byte.
//!
//! | type | request      | fields |
//! |------|--------------|--------|
//! | 0x01 | Ping         | — |
//! | 0x02 | Get          | key: bytes |
//! | 0x03 | Put          | key: bytes, value: bytes (kv-codec encoding) |
//! | 0x04 | Delete       | key: bytes |
//! | 0x05 | Status       | key: bytes |
//! | 0x06 | Inspect      | — |
//! | 0x07 | Info         | — |
//! | 0x08 | Position     | partition: u32 |
//! | 0x09 | Subscribe    | partition: u32, from node: u32, after: position, epoch: u32 |
//! | 0x0A | Ack          | partition: u32, applied: position |
//! | 0x0B | GetStale     | key: bytes |
//! | 0x0C | GetLeader    | key: bytes |
//! | 0x0D | AtLeader     | partition: u32, then a read's type and fields (`Status`, or a `Keyspace` scan, mget or ttl) |
//! | 0x20 | ClusterMap   | — |
//! | 0x30 | Conditional  | see [`Conditional`] |
//! | 0x50-0x55 | Keyspace | see [`Keyspace`]: scan, mget, mset, put with ttl, expire, ttl |
//! | 0x60 | PutAcks      | acks: u8 (0 leader, 1 all), key: bytes, value: bytes |
//! | 0x61 | DeleteAcks   | acks: u8 (0 leader, 1 all), key: bytes |
//! | 0x70 | Control      | body: bytes (JSON, see [`super::control`]) |
//!
//! | type | reply         | fields |
//! |------|---------------|--------|
//! | 0x81 | Pong          | node: u32, map version: u64 |
//! | 0x82 | Value         | partition: u32, value: opt bytes |
//! | 0x83 | Written       | partition: u32, position |
//! | 0x84 | Deleted       | partition: u32, existed: bool |
//! | 0x85 | Status        | partition: u32, location: u8 (0 missing, 1 hot, 2 cold) |
//! | 0x86 | Inspect       | count: u32, then per partition: partition u32, role u8, count u32, keys: bytes… |
//! | 0x87 | Info          | see [`NodeInfo`] |
//! | 0x88 | Position      | partition: u32, role: u8, position, epoch: u32 |
//! | 0x89 | Entries       | partition: u32, leader last: position, count: u32, entries… |
//! | 0x8A | SnapshotStart | partition: u32, last: position, reason: string |
//! | 0x8B | SnapshotEnd   | partition: u32, last: position |
//! | 0xC0 | LogMatch      | partition: u32, epoch: u32, end: position |
//! | 0xA0 | ClusterMap    | see `map.rs`: version, partitions, rf, nodes, replicas |
//! | 0xB0 | Applied       | partition: u32, written: bool, old: opt bytes |
//! | 0xB1 | Counter       | partition: u32, value: i64 |
//! | 0xD0-0xD3 | Keyspace      | see [`KeyspaceReply`] |
//! | 0xE0 | Control       | body: bytes (JSON, see [`super::control`]) |
//! | 0xFF | Error         | code: u8, leader: opt u32, message: string |
//!
//! `PutAcks` and `DeleteAcks` are `Put` and `Delete` with an explicit ack
//! mode (the plain messages use the cluster's `[replication] acks`); they
//! are answered with `Written` and `Deleted`.
//!
//! Types 0x10-0x1F and 0x90-0x9F belong to the [`super::handshake`] that
//! opens every connection.
//!
//! A position is epoch u32 then LSN u64; an entry is a position, key bytes,
//! an optional value (absent = tombstone) and an optional expiry (the
//! history types' module, `types.rs`, lays them out field by field); a role
//! is 0 leader, 1 follower.

use bytes::{BufMut, Bytes, BytesMut};
use kv_router::{AckMode, ClusterMap, NodeId, PartitionId, Role};

pub use super::conditional::{Conditional, SetTtl, SetWhen};
pub use super::info::{
    FollowerInfo, Health, HistoryInfo, NodeInfo, PartitionInfo, PartitionKeys, ReplicaState,
};
use super::info::{decode_info, decode_inspect, encode_info, encode_inspect};
pub use super::keyspace::{KeyTtl, Keyspace, KeyspaceReply, ScanEntry, ScanSpec};
use super::map::{decode_map, encode_map};
use super::types::{
    Entry, Epoch, Location, MIN_ENTRY_BYTES, Position, get_entry, get_location, get_position,
    location_byte, put_entry, put_position,
};
use super::wire::{WireReader, WireWrite};
use crate::error::{ErrorCode, ProtocolError};

/// A request id, chosen by the client, echoed in the reply.
pub type RequestId = u64;

/// What a client (or a replica) asks a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Liveness check.
    Ping,
    /// Read a key.
    Get {
        /// The key.
        key: Bytes,
    },
    /// Read a key at its partition's leader only: a follower answers
    /// `NotLeader` (naming the leader), so an answer is never stale.
    GetLeader {
        /// The key.
        key: Bytes,
    },
    /// Read a key from a leader without a lease too (it may have been
    /// replaced, so the answer may be stale): the last resort of a client
    /// that reached no other replica.
    GetStale {
        /// The key.
        key: Bytes,
    },
    /// Write a key (leader only).
    Put {
        /// The key.
        key: Bytes,
        /// The kv-codec encoded value.
        value: Bytes,
    },
    /// Delete a key (leader only).
    Delete {
        /// The key.
        key: Bytes,
    },
    /// Where the key's value lives on this node.
    Status {
        /// The key.
        key: Bytes,
    },
    /// Each hosted partition's role and hot keys.
    Inspect,
    /// Partitions, roles, positions, lag and storage figures.
    Info,
    /// The replica's last applied position for one partition.
    Position {
        /// The partition.
        partition: PartitionId,
    },
    /// Open a replication stream of `partition` after position `after`.
    Subscribe {
        /// The partition.
        partition: PartitionId,
        /// The node asking.
        from: NodeId,
        /// The last position the asker has applied.
        after: Position,
        /// The highest epoch the asker has seen: a source whose own epoch
        /// is lower has been superseded and refuses (`StaleEpoch`).
        epoch: Epoch,
    },
    /// On a replication stream: the follower has applied up to `applied`.
    Ack {
        /// The partition.
        partition: PartitionId,
        /// The follower's last applied position.
        applied: Position,
    },
    /// The node's cluster map (nodes, addresses, every partition's
    /// replicas), so a client given one node can find them all.
    ClusterMap,
    /// A write the leader decides atomically (leader only).
    Conditional(Conditional),
    /// `Put` with an explicit ack mode instead of the cluster's default.
    PutAcks {
        /// The key.
        key: Bytes,
        /// The kv-codec encoded value.
        value: Bytes,
        /// When the leader may answer.
        acks: AckMode,
    },
    /// `Delete` with an explicit ack mode instead of the cluster's default.
    DeleteAcks {
        /// The key.
        key: Bytes,
        /// When the leader may answer.
        acks: AckMode,
    },
    /// Scan, multi-key and expiry requests.
    Keyspace(Keyspace),
    /// `read` answered only by `partition`'s leader: a follower answers
    /// `NotLeader` (naming the leader), so a client whose map missed a
    /// failover never takes a follower's answer for the leader's. `read`
    /// is `Status` or a keyspace `Scan`, `MGet` or `Ttl` (decoding
    /// refuses anything else).
    AtLeader {
        /// The partition whose leader must answer.
        partition: PartitionId,
        /// The read.
        read: Box<Request>,
    },
    /// A control-plane message (JSON, [`super::control::ControlRequest`]).
    Control(Bytes),
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Reply to `Ping`.
    Pong {
        /// The answering node.
        node: NodeId,
        /// Its cluster-map version.
        map_version: u64,
    },
    /// Reply to `Get`.
    Value {
        /// The key's partition.
        partition: PartitionId,
        /// The encoded value, or `None` when the key is absent.
        value: Option<Bytes>,
    },
    /// Reply to `Put`.
    Written {
        /// The key's partition.
        partition: PartitionId,
        /// The write's place in the partition's history.
        position: Position,
    },
    /// Reply to `Delete`.
    Deleted {
        /// The key's partition.
        partition: PartitionId,
        /// Whether the key existed.
        existed: bool,
    },
    /// Reply to `Status`.
    Status {
        /// The key's partition.
        partition: PartitionId,
        /// Hot, cold or missing on this replica.
        location: Location,
    },
    /// Reply to `Inspect`.
    Inspect(Vec<PartitionKeys>),
    /// Reply to `Info`.
    Info(NodeInfo),
    /// Reply to `Position`.
    Position {
        /// The partition.
        partition: PartitionId,
        /// This replica's role.
        role: Role,
        /// Its last applied position.
        position: Position,
        /// The highest epoch it has seen (a new leader begins above it).
        epoch: Epoch,
    },
    /// Stream: entries in LSN order.
    Entries {
        /// The partition.
        partition: PartitionId,
        /// The source's last position when it sent this batch.
        source_last: Position,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// Stream: a full snapshot follows (as `Entries`); the receiver clears
    /// its replica first.
    SnapshotStart {
        /// The partition.
        partition: PartitionId,
        /// The position the snapshot is current as of.
        last: Position,
        /// Why a full resync was needed.
        reason: String,
    },
    /// Stream: the snapshot is complete and current as of `last`.
    SnapshotEnd {
        /// The partition.
        partition: PartitionId,
        /// The position the snapshot is current as of.
        last: Position,
    },
    /// Stream: the first message of every replication stream (log
    /// matching, `docs/replication.md`). The source is at `epoch`; `end` is
    /// where the subscriber's last epoch ends in the source's history
    /// (the largest epoch at or below it that the source knows, and its
    /// last LSN there). The subscriber truncates after that point (or
    /// its own end of that epoch, if smaller), then streams.
    LogMatch {
        /// The partition.
        partition: PartitionId,
        /// The source's current epoch.
        epoch: Epoch,
        /// Where the subscriber's epoch ends in the source's history.
        end: Position,
    },
    /// Reply to `ClusterMap`.
    ClusterMap(ClusterMap),
    /// Reply to a conditional set.
    Applied {
        /// The key's partition.
        partition: PartitionId,
        /// Whether the value was written.
        written: bool,
        /// The old encoded value, when asked for and present.
        old: Option<Bytes>,
    },
    /// Reply to an increment: the new value.
    Counter {
        /// The key's partition.
        partition: PartitionId,
        /// The value after the increment.
        value: i64,
    },
    /// Reply to a keyspace request.
    Keyspace(KeyspaceReply),
    /// Reply to `Control` (JSON, [`super::control::ControlReply`]).
    Control(Bytes),
    /// Any request can fail with this.
    Error {
        /// The kind of failure.
        code: ErrorCode,
        /// The partition's leader, when relevant.
        leader: Option<NodeId>,
        /// A message for people.
        message: String,
    },
}

mod ty {
    pub const PING: u8 = 0x01;
    pub const GET: u8 = 0x02;
    pub const PUT: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const STATUS: u8 = 0x05;
    pub const INSPECT: u8 = 0x06;
    pub const INFO: u8 = 0x07;
    pub const POSITION: u8 = 0x08;
    pub const SUBSCRIBE: u8 = 0x09;
    pub const ACK: u8 = 0x0A;
    pub const GET_STALE: u8 = 0x0B;
    pub const GET_LEADER: u8 = 0x0C;
    pub const AT_LEADER: u8 = 0x0D;
    pub const CLUSTER_MAP: u8 = 0x20;
    pub const CONDITIONAL: u8 = 0x30;
    pub const PUT_ACKS: u8 = 0x60;
    pub const DELETE_ACKS: u8 = 0x61;
    pub const CONTROL: u8 = 0x70;
    pub const CONTROL_REPLY: u8 = 0xE0;
    pub const APPLIED: u8 = 0xB0;
    pub const COUNTER: u8 = 0xB1;
    pub const PONG: u8 = 0x81;
    pub const VALUE: u8 = 0x82;
    pub const WRITTEN: u8 = 0x83;
    pub const DELETED: u8 = 0x84;
    pub const STATUS_REPLY: u8 = 0x85;
    pub const INSPECT_REPLY: u8 = 0x86;
    pub const INFO_REPLY: u8 = 0x87;
    pub const POSITION_REPLY: u8 = 0x88;
    pub const ENTRIES: u8 = 0x89;
    pub const SNAPSHOT_START: u8 = 0x8A;
    pub const SNAPSHOT_END: u8 = 0x8B;
    pub const LOG_MATCH: u8 = 0xC0;
    pub const CLUSTER_MAP_REPLY: u8 = 0xA0;
    pub const ERROR: u8 = 0xFF;
}

/// A frame body's type byte and request id.
const HEADER_BYTES: usize = 9;

fn header(out: &mut BytesMut, ty: u8, id: RequestId) {
    out.put_u8(ty);
    out.put_u64(id);
}

pub(super) fn role_byte(role: Role) -> u8 {
    match role {
        Role::Leader => 0,
        Role::Follower => 1,
    }
}

pub(super) fn get_role(r: &mut WireReader) -> Result<Role, ProtocolError> {
    match r.u8()? {
        0 => Ok(Role::Leader),
        1 => Ok(Role::Follower),
        b => Err(ProtocolError::Invalid(format!("bad role byte {b}"))),
    }
}

fn ack_byte(acks: AckMode) -> u8 {
    match acks {
        AckMode::Leader => 0,
        AckMode::All => 1,
    }
}

fn get_acks(r: &mut WireReader) -> Result<AckMode, ProtocolError> {
    match r.u8()? {
        0 => Ok(AckMode::Leader),
        1 => Ok(AckMode::All),
        b => Err(ProtocolError::Invalid(format!("bad acks byte {b}"))),
    }
}

impl Request {
    /// Appends the frame body of this request with id `id` to `out`.
    pub fn encode(&self, id: RequestId, out: &mut BytesMut) {
        match self {
            Request::Ping => header(out, ty::PING, id),
            Request::Get { key } => keyed(out, ty::GET, id, key),
            Request::GetStale { key } => keyed(out, ty::GET_STALE, id, key),
            Request::GetLeader { key } => keyed(out, ty::GET_LEADER, id, key),
            Request::Delete { key } => keyed(out, ty::DELETE, id, key),
            Request::Status { key } => keyed(out, ty::STATUS, id, key),
            Request::Put { key, value } => {
                keyed(out, ty::PUT, id, key);
                out.put_bytes_field(value);
            }
            Request::Inspect => header(out, ty::INSPECT, id),
            Request::Info => header(out, ty::INFO, id),
            Request::ClusterMap => header(out, ty::CLUSTER_MAP, id),
            Request::Position { partition } => {
                header(out, ty::POSITION, id);
                out.put_u32(*partition);
            }
            Request::Subscribe {
                partition,
                from,
                after,
                epoch,
            } => {
                header(out, ty::SUBSCRIBE, id);
                out.put_u32(*partition);
                out.put_u32(*from);
                put_position(out, *after);
                out.put_u32(*epoch);
            }
            Request::Ack { partition, applied } => {
                header(out, ty::ACK, id);
                out.put_u32(*partition);
                put_position(out, *applied);
            }
            Request::Conditional(op) => {
                header(out, ty::CONDITIONAL, id);
                op.encode(out);
            }
            Request::PutAcks { key, value, acks } => {
                header(out, ty::PUT_ACKS, id);
                out.put_u8(ack_byte(*acks));
                out.put_bytes_field(key);
                out.put_bytes_field(value);
            }
            Request::DeleteAcks { key, acks } => {
                header(out, ty::DELETE_ACKS, id);
                out.put_u8(ack_byte(*acks));
                out.put_bytes_field(key);
            }
            Request::Keyspace(k) => {
                header(out, k.type_byte(), id);
                k.encode(out);
            }
            Request::Control(body) => {
                header(out, ty::CONTROL, id);
                out.put_bytes_field(body);
            }
            Request::AtLeader { partition, read } => {
                header(out, ty::AT_LEADER, id);
                out.put_u32(*partition);
                // The read's own type byte and fields, without its id.
                let mut inner = BytesMut::new();
                read.encode(id, &mut inner);
                if let (Some(&ty), Some(fields)) = (inner.first(), inner.get(HEADER_BYTES..)) {
                    out.put_u8(ty);
                    out.extend_from_slice(fields);
                }
            }
        }
    }

    /// Decodes one frame body into its id and request.
    pub fn decode(frame: Bytes) -> Result<(RequestId, Request), ProtocolError> {
        let mut r = WireReader::new(frame);
        let ty = r.u8()?;
        let id = r.u64()?;
        let request = Request::decode_body(ty, &mut r)?;
        r.finish()?;
        Ok((id, request))
    }

    /// Whether `AtLeader` may wrap this request: `Status`, or a keyspace
    /// `Scan`, `MGet` or `Ttl`.
    pub fn is_leader_read(&self) -> bool {
        matches!(
            self,
            Request::Status { .. }
                | Request::Keyspace(
                    Keyspace::Scan(_) | Keyspace::MGet { .. } | Keyspace::Ttl { .. }
                )
        )
    }

    /// The fields of a request of type `ty`.
    fn decode_body(ty: u8, r: &mut WireReader) -> Result<Request, ProtocolError> {
        let request = match ty {
            ty::AT_LEADER => {
                let partition = r.u32()?;
                let inner = r.u8()?;
                if inner == ty::AT_LEADER {
                    return Err(ProtocolError::Invalid("AtLeader inside AtLeader".into()));
                }
                let read = Request::decode_body(inner, r)?;
                if !read.is_leader_read() {
                    return Err(ProtocolError::Invalid(format!(
                        "AtLeader wraps a read (status, scan, mget or ttl), not {read:?}"
                    )));
                }
                Request::AtLeader {
                    partition,
                    read: Box::new(read),
                }
            }
            ty::PING => Request::Ping,
            ty::GET => Request::Get { key: r.bytes()? },
            ty::GET_STALE => Request::GetStale { key: r.bytes()? },
            ty::GET_LEADER => Request::GetLeader { key: r.bytes()? },
            ty::PUT => Request::Put {
                key: r.bytes()?,
                value: r.bytes()?,
            },
            ty::DELETE => Request::Delete { key: r.bytes()? },
            ty::STATUS => Request::Status { key: r.bytes()? },
            ty::INSPECT => Request::Inspect,
            ty::INFO => Request::Info,
            ty::CLUSTER_MAP => Request::ClusterMap,
            ty::POSITION => Request::Position {
                partition: r.u32()?,
            },
            ty::SUBSCRIBE => Request::Subscribe {
                partition: r.u32()?,
                from: r.u32()?,
                after: get_position(r)?,
                epoch: r.u32()?,
            },
            ty::ACK => Request::Ack {
                partition: r.u32()?,
                applied: get_position(r)?,
            },
            ty::CONDITIONAL => Request::Conditional(Conditional::decode(r)?),
            ty::PUT_ACKS => Request::PutAcks {
                acks: get_acks(r)?,
                key: r.bytes()?,
                value: r.bytes()?,
            },
            ty::DELETE_ACKS => Request::DeleteAcks {
                acks: get_acks(r)?,
                key: r.bytes()?,
            },
            t @ 0x50..=0x5F => Request::Keyspace(Keyspace::decode(t, r)?),
            ty::CONTROL => Request::Control(r.bytes()?),
            other => return Err(ProtocolError::UnknownMessage(other)),
        };
        Ok(request)
    }
}

fn keyed(out: &mut BytesMut, ty: u8, id: RequestId, key: &[u8]) {
    header(out, ty, id);
    out.put_bytes_field(key);
}

impl Response {
    /// Appends the frame body of this reply with id `id` to `out`.
    pub fn encode(&self, id: RequestId, out: &mut BytesMut) {
        match self {
            Response::Pong { node, map_version } => {
                header(out, ty::PONG, id);
                out.put_u32(*node);
                out.put_u64(*map_version);
            }
            Response::Value { partition, value } => {
                header(out, ty::VALUE, id);
                out.put_u32(*partition);
                out.put_opt_bytes(value.as_deref());
            }
            Response::Written {
                partition,
                position,
            } => {
                header(out, ty::WRITTEN, id);
                out.put_u32(*partition);
                put_position(out, *position);
            }
            Response::Deleted { partition, existed } => {
                header(out, ty::DELETED, id);
                out.put_u32(*partition);
                out.put_u8(u8::from(*existed));
            }
            Response::Status {
                partition,
                location,
            } => {
                header(out, ty::STATUS_REPLY, id);
                out.put_u32(*partition);
                out.put_u8(location_byte(*location));
            }
            Response::Inspect(parts) => {
                header(out, ty::INSPECT_REPLY, id);
                encode_inspect(out, parts);
            }
            Response::Info(info) => {
                header(out, ty::INFO_REPLY, id);
                encode_info(out, info);
            }
            Response::Position {
                partition,
                role,
                position,
                epoch,
            } => {
                header(out, ty::POSITION_REPLY, id);
                out.put_u32(*partition);
                out.put_u8(role_byte(*role));
                put_position(out, *position);
                out.put_u32(*epoch);
            }
            Response::Entries {
                partition,
                source_last,
                entries,
            } => encode_entries(out, id, *partition, *source_last, entries),
            Response::SnapshotStart {
                partition,
                last,
                reason,
            } => {
                header(out, ty::SNAPSHOT_START, id);
                out.put_u32(*partition);
                put_position(out, *last);
                out.put_str_field(reason);
            }
            Response::SnapshotEnd { partition, last } => {
                header(out, ty::SNAPSHOT_END, id);
                out.put_u32(*partition);
                put_position(out, *last);
            }
            Response::LogMatch {
                partition,
                epoch,
                end,
            } => {
                header(out, ty::LOG_MATCH, id);
                out.put_u32(*partition);
                out.put_u32(*epoch);
                put_position(out, *end);
            }
            Response::ClusterMap(map) => {
                header(out, ty::CLUSTER_MAP_REPLY, id);
                encode_map(out, map);
            }
            Response::Applied {
                partition,
                written,
                old,
            } => {
                header(out, ty::APPLIED, id);
                out.put_u32(*partition);
                out.put_u8(u8::from(*written));
                out.put_opt_bytes(old.as_deref());
            }
            Response::Counter { partition, value } => {
                header(out, ty::COUNTER, id);
                out.put_u32(*partition);
                out.put_i64(*value);
            }
            Response::Keyspace(k) => {
                header(out, k.type_byte(), id);
                k.encode(out);
            }
            Response::Control(body) => {
                header(out, ty::CONTROL_REPLY, id);
                out.put_bytes_field(body);
            }
            Response::Error {
                code,
                leader,
                message,
            } => {
                header(out, ty::ERROR, id);
                out.put_u8(code.to_u8());
                match leader {
                    Some(n) => {
                        out.put_u8(1);
                        out.put_u32(*n);
                    }
                    None => out.put_u8(0),
                }
                out.put_str_field(message);
            }
        }
    }

    /// Decodes one frame body into its id and reply.
    pub fn decode(frame: Bytes) -> Result<(RequestId, Response), ProtocolError> {
        let mut r = WireReader::new(frame);
        let ty = r.u8()?;
        let id = r.u64()?;
        let response = match ty {
            ty::PONG => Response::Pong {
                node: r.u32()?,
                map_version: r.u64()?,
            },
            ty::VALUE => Response::Value {
                partition: r.u32()?,
                value: r.opt_bytes()?,
            },
            ty::WRITTEN => Response::Written {
                partition: r.u32()?,
                position: get_position(&mut r)?,
            },
            ty::DELETED => Response::Deleted {
                partition: r.u32()?,
                existed: r.bool()?,
            },
            ty::STATUS_REPLY => Response::Status {
                partition: r.u32()?,
                location: get_location(&mut r)?,
            },
            ty::INSPECT_REPLY => Response::Inspect(decode_inspect(&mut r)?),
            ty::INFO_REPLY => Response::Info(decode_info(&mut r)?),
            ty::POSITION_REPLY => Response::Position {
                partition: r.u32()?,
                role: get_role(&mut r)?,
                position: get_position(&mut r)?,
                epoch: r.u32()?,
            },
            ty::ENTRIES => decode_entries(&mut r)?,
            ty::SNAPSHOT_START => Response::SnapshotStart {
                partition: r.u32()?,
                last: get_position(&mut r)?,
                reason: r.string()?,
            },
            ty::SNAPSHOT_END => Response::SnapshotEnd {
                partition: r.u32()?,
                last: get_position(&mut r)?,
            },
            ty::LOG_MATCH => Response::LogMatch {
                partition: r.u32()?,
                epoch: r.u32()?,
                end: get_position(&mut r)?,
            },
            ty::CLUSTER_MAP_REPLY => Response::ClusterMap(decode_map(&mut r)?),
            ty::APPLIED => Response::Applied {
                partition: r.u32()?,
                written: r.bool()?,
                old: r.opt_bytes()?,
            },
            ty::COUNTER => Response::Counter {
                partition: r.u32()?,
                value: r.u64()?.cast_signed(),
            },
            t @ 0xD0..=0xDF => Response::Keyspace(KeyspaceReply::decode(t, &mut r)?),
            ty::CONTROL_REPLY => Response::Control(r.bytes()?),
            ty::ERROR => decode_error(&mut r)?,
            other => return Err(ProtocolError::UnknownMessage(other)),
        };
        r.finish()?;
        Ok((id, response))
    }
}

/// Encodes an `Entries` stream message straight from a slice, so the
/// leader does not clone its backlog to send it.
pub(crate) fn encode_entries(
    out: &mut BytesMut,
    id: RequestId,
    partition: PartitionId,
    source_last: Position,
    entries: &[Entry],
) {
    header(out, ty::ENTRIES, id);
    out.put_u32(partition);
    put_position(out, source_last);
    out.put_u32(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    for e in entries {
        put_entry(out, e);
    }
}

fn decode_entries(r: &mut WireReader) -> Result<Response, ProtocolError> {
    let partition = r.u32()?;
    let source_last = get_position(r)?;
    let n = r.count(MIN_ENTRY_BYTES)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        entries.push(get_entry(r)?);
    }
    Ok(Response::Entries {
        partition,
        source_last,
        entries,
    })
}

fn decode_error(r: &mut WireReader) -> Result<Response, ProtocolError> {
    let code = ErrorCode::from_u8(r.u8()?);
    let leader = if r.bool()? { Some(r.u32()?) } else { None };
    Ok(Response::Error {
        code,
        leader,
        message: r.string()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::wire::hex;
    use super::*;

    fn request_hex(request: &Request) -> String {
        let mut out = BytesMut::new();
        request.encode(7, &mut out);
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn ack_mode_messages_byte_exact() {
        let cases = [
            (
                "put acks=all",
                Request::PutAcks {
                    key: Bytes::from_static(b"k"),
                    value: Bytes::from_static(b"v"),
                    acks: AckMode::All,
                },
                "60000000000000000701000000016b0000000176",
            ),
            (
                "delete acks=leader",
                Request::DeleteAcks {
                    key: Bytes::from_static(b"k"),
                    acks: AckMode::Leader,
                },
                "61000000000000000700000000016b",
            ),
        ];
        for (name, request, expected) in cases {
            assert_eq!(request_hex(&request), expected, "{name}");
            let mut out = BytesMut::new();
            request.encode(7, &mut out);
            assert_eq!(Request::decode(out.freeze()), Ok((7, request)), "{name}");
        }
    }

    #[test]
    fn at_leader_wraps_a_read_byte_exact_and_refuses_anything_else() {
        let wrap = |read: Request| Request::AtLeader {
            partition: 3,
            read: Box::new(read),
        };
        let status = wrap(Request::Status {
            key: Bytes::from_static(b"k"),
        });
        // type, id 7, partition 3, then Status's type and key, no id.
        assert_eq!(
            request_hex(&status),
            "0d00000000000000070000000305000000016b"
        );
        let ttl = wrap(Request::Keyspace(Keyspace::Ttl {
            key: Bytes::from_static(b"k"),
        }));
        for request in [status, ttl] {
            let mut out = BytesMut::new();
            request.encode(7, &mut out);
            assert_eq!(Request::decode(out.freeze()), Ok((7, request)));
        }
        let refused = [
            wrap(Request::Put {
                key: Bytes::from_static(b"k"),
                value: Bytes::from_static(b"v"),
            }),
            wrap(Request::Get {
                key: Bytes::from_static(b"k"),
            }),
            wrap(wrap(Request::Status {
                key: Bytes::from_static(b"k"),
            })),
        ];
        for request in refused {
            let mut out = BytesMut::new();
            request.encode(7, &mut out);
            assert!(
                matches!(
                    Request::decode(out.freeze()),
                    Err(ProtocolError::Invalid(_))
                ),
                "{request:?}"
            );
        }
    }

    fn entry(lsn: u64, value: Option<&'static [u8]>, expiry: Option<u64>) -> Entry {
        Entry {
            position: Position { epoch: 2, lsn },
            key: Bytes::from_static(b"k"),
            value: value.map(Bytes::from_static),
            expiry,
        }
    }

    #[test]
    fn entries_carry_the_leaders_expiry_byte_exact() {
        let cases = [
            (
                entry(1, Some(b"\x01"), Some(0x0102_0304_0506_0708)),
                "00 00 00 02 00 00 00 00 00 00 00 01 00 00 00 01 6b 01 00 00 00 01 01 01 01 02 03 04 05 06 07 08",
            ),
            (
                entry(2, Some(b"\x01"), None),
                "00 00 00 02 00 00 00 00 00 00 00 02 00 00 00 01 6b 01 00 00 00 01 01 00",
            ),
            (
                entry(3, None, None),
                "00 00 00 02 00 00 00 00 00 00 00 03 00 00 00 01 6b 00 00",
            ),
        ];
        for (e, expected) in cases {
            let mut one = BytesMut::new();
            put_entry(&mut one, &e);
            assert_eq!(hex(&one), expected);
            let reply = Response::Entries {
                partition: 1,
                source_last: e.position,
                entries: vec![e],
            };
            let mut out = BytesMut::new();
            reply.encode(4, &mut out);
            assert_eq!(Response::decode(out.freeze()).unwrap(), (4, reply));
        }
    }

    #[test]
    fn unknown_ack_byte_is_invalid() {
        let mut out = BytesMut::new();
        Request::DeleteAcks {
            key: Bytes::from_static(b"k"),
            acks: AckMode::All,
        }
        .encode(1, &mut out);
        out[9] = 2;
        assert!(matches!(
            Request::decode(out.freeze()),
            Err(ProtocolError::Invalid(_))
        ));
    }

    #[test]
    fn a_bad_expiry_byte_is_a_typed_error() {
        let mut out = BytesMut::new();
        encode_entries(&mut out, 4, 1, Position::default(), &[entry(1, None, None)]);
        let last = out.len() - 1;
        out[last] = 7;
        assert!(matches!(
            Response::decode(out.freeze()),
            Err(ProtocolError::Invalid(_))
        ));
    }
}

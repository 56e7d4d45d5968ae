//! The bodies of the `Inspect` and `Info` replies: what a node reports
//! about its partitions, and their byte layout (see `docs/protocol.md`).

use bytes::{BufMut, Bytes, BytesMut};
use kv_router::{NodeId, PartitionId, Role};

use super::message::{get_role, role_byte};
use super::types::{Epoch, Position, get_position, put_position};
use super::wire::{WireReader, WireWrite};
use crate::error::ProtocolError;

/// One partition's hot keys as `Inspect` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeys {
    /// The partition.
    pub partition: PartitionId,
    /// This node's role for it.
    pub role: Role,
    /// Keys whose values are in memory now, sorted.
    pub hot_keys: Vec<Bytes>,
}

/// A replica's health as a leader or follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaState {
    /// Serving reads, and writes if leader.
    Ready,
    /// A leader catching up from a follower before taking writes, or a
    /// follower resyncing from its leader (after its store was found
    /// damaged) before serving reads.
    Recovering,
    /// The store failed to open (see [`Health::problem`]); the partition
    /// is not served by this node.
    Failed,
}

/// A replica's storage health: what recovery cut, what failed since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Bytes cut from a torn tail of the newest segment at open.
    pub truncated_tail_bytes: u64,
    /// Errors in background store work (hints, compaction, interval fsync).
    pub background_errors: u64,
    /// A failed fsync made the store refuse writes until it is reopened.
    pub poisoned: bool,
    /// What is wrong, empty when nothing: why the store failed to open, or
    /// where its damaged directory was moved before a resync.
    pub problem: String,
}

/// A replica's history identity: its epoch and what log matching cut.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryInfo {
    /// The highest epoch this replica has seen (its own, as a leader).
    pub epoch: Epoch,
    /// Entries truncated by log matching since the node started, all kept
    /// in rollback files.
    pub rolled_back: u64,
    /// The rollback files under the replica's directory (paths), oldest
    /// first: every truncation ever made there.
    pub rollback_files: Vec<String>,
}

/// A follower as its leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerInfo {
    /// The follower's node.
    pub node: NodeId,
    /// Whether its replication stream is open now.
    pub connected: bool,
    /// The last position it acknowledged.
    pub acked: Position,
    /// Whether it is in the partition's in-sync set now (caught up with
    /// the leader within `replica_lag_max_ms`).
    pub in_sync: bool,
}

/// One hosted partition in `Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: PartitionId,
    /// This node's role.
    pub role: Role,
    /// Ready or recovering.
    pub state: ReplicaState,
    /// The last applied position.
    pub position: Position,
    /// Live keys.
    pub keys: u64,
    /// Bytes on disk.
    pub disk_bytes: u64,
    /// Keys in the hot cache.
    pub hot_keys: u64,
    /// Full resyncs this replica has taken part in since start.
    pub full_resyncs: u64,
    /// On a follower: whether it is streaming from its leader now.
    pub leader_connected: bool,
    /// On a follower: the leader's last position as last heard.
    pub leader_position: Position,
    /// On a leader: its followers.
    pub followers: Vec<FollowerInfo>,
    /// Storage health.
    pub health: Health,
    /// Epoch and rollbacks.
    pub history: HistoryInfo,
}

impl PartitionInfo {
    /// The followers in the in-sync set now, by id (reported by the
    /// partition's leader; the leader itself is always in the set).
    pub fn in_sync_followers(&self) -> Vec<NodeId> {
        self.followers
            .iter()
            .filter(|f| f.in_sync)
            .map(|f| f.node)
            .collect()
    }

    /// A partition whose store could not be opened: only the role and the
    /// reason are known.
    pub fn failed(partition: PartitionId, role: Role, problem: String) -> PartitionInfo {
        PartitionInfo {
            partition,
            role,
            state: ReplicaState::Failed,
            position: Position::default(),
            keys: 0,
            disk_bytes: 0,
            hot_keys: 0,
            full_resyncs: 0,
            leader_connected: false,
            leader_position: Position::default(),
            followers: Vec::new(),
            health: Health {
                problem,
                ..Health::default()
            },
            history: HistoryInfo::default(),
        }
    }
}

/// Reply to `Info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node.
    pub node: NodeId,
    /// Its cluster-map version.
    pub map_version: u64,
    /// One entry per hosted partition, ascending.
    pub partitions: Vec<PartitionInfo>,
}

pub(super) fn encode_inspect(out: &mut BytesMut, parts: &[PartitionKeys]) {
    out.put_u32(u32::try_from(parts.len()).unwrap_or(u32::MAX));
    for p in parts {
        out.put_u32(p.partition);
        out.put_u8(role_byte(p.role));
        out.put_u32(u32::try_from(p.hot_keys.len()).unwrap_or(u32::MAX));
        for k in &p.hot_keys {
            out.put_bytes_field(k);
        }
    }
}

pub(super) fn decode_inspect(r: &mut WireReader) -> Result<Vec<PartitionKeys>, ProtocolError> {
    let n = r.count(9)?;
    let mut parts = Vec::with_capacity(n);
    for _ in 0..n {
        let partition = r.u32()?;
        let role = get_role(r)?;
        let k = r.count(4)?;
        let mut hot_keys = Vec::with_capacity(k);
        for _ in 0..k {
            hot_keys.push(r.bytes()?);
        }
        parts.push(PartitionKeys {
            partition,
            role,
            hot_keys,
        });
    }
    Ok(parts)
}

pub(super) fn encode_info(out: &mut BytesMut, info: &NodeInfo) {
    out.put_u32(info.node);
    out.put_u64(info.map_version);
    out.put_u32(u32::try_from(info.partitions.len()).unwrap_or(u32::MAX));
    for p in &info.partitions {
        out.put_u32(p.partition);
        out.put_u8(role_byte(p.role));
        out.put_u8(match p.state {
            ReplicaState::Ready => 0,
            ReplicaState::Recovering => 1,
            ReplicaState::Failed => 2,
        });
        put_position(out, p.position);
        for n in [p.keys, p.disk_bytes, p.hot_keys, p.full_resyncs] {
            out.put_u64(n);
        }
        out.put_u8(u8::from(p.leader_connected));
        put_position(out, p.leader_position);
        out.put_u32(u32::try_from(p.followers.len()).unwrap_or(u32::MAX));
        for f in &p.followers {
            out.put_u32(f.node);
            out.put_u8(u8::from(f.connected));
            put_position(out, f.acked);
            out.put_u8(u8::from(f.in_sync));
        }
        encode_health(out, &p.health);
        encode_history(out, &p.history);
    }
}

fn encode_history(out: &mut BytesMut, h: &HistoryInfo) {
    out.put_u32(h.epoch);
    out.put_u64(h.rolled_back);
    out.put_u32(u32::try_from(h.rollback_files.len()).unwrap_or(u32::MAX));
    for f in &h.rollback_files {
        out.put_bytes_field(f.as_bytes());
    }
}

fn decode_history(r: &mut WireReader) -> Result<HistoryInfo, ProtocolError> {
    let epoch = r.u32()?;
    let rolled_back = r.u64()?;
    let n = r.count(4)?;
    let mut rollback_files = Vec::with_capacity(n);
    for _ in 0..n {
        rollback_files.push(String::from_utf8_lossy(&r.bytes()?).into_owned());
    }
    Ok(HistoryInfo {
        epoch,
        rolled_back,
        rollback_files,
    })
}

fn encode_health(out: &mut BytesMut, h: &Health) {
    out.put_u64(h.truncated_tail_bytes);
    out.put_u64(h.background_errors);
    out.put_u8(u8::from(h.poisoned));
    out.put_bytes_field(h.problem.as_bytes());
}

fn decode_health(r: &mut WireReader) -> Result<Health, ProtocolError> {
    Ok(Health {
        truncated_tail_bytes: r.u64()?,
        background_errors: r.u64()?,
        poisoned: r.bool()?,
        problem: String::from_utf8_lossy(&r.bytes()?).into_owned(),
    })
}

/// Smallest encoded `PartitionInfo`.
const MIN_PARTITION_INFO_BYTES: usize =
    4 + 1 + 1 + 12 + 32 + 1 + 12 + 4 + MIN_HEALTH_BYTES + MIN_HISTORY_BYTES;
/// Smallest encoded `HistoryInfo`: epoch, count, no files.
const MIN_HISTORY_BYTES: usize = 4 + 8 + 4;
/// Smallest encoded `Health`: two u64, a bool, an empty string.
const MIN_HEALTH_BYTES: usize = 8 + 8 + 1 + 4;

pub(super) fn decode_info(r: &mut WireReader) -> Result<NodeInfo, ProtocolError> {
    let node = r.u32()?;
    let map_version = r.u64()?;
    let n = r.count(MIN_PARTITION_INFO_BYTES)?;
    let mut partitions = Vec::with_capacity(n);
    for _ in 0..n {
        partitions.push(decode_partition_info(r)?);
    }
    Ok(NodeInfo {
        node,
        map_version,
        partitions,
    })
}

fn decode_partition_info(r: &mut WireReader) -> Result<PartitionInfo, ProtocolError> {
    let partition = r.u32()?;
    let role = get_role(r)?;
    let state = match r.u8()? {
        0 => ReplicaState::Ready,
        1 => ReplicaState::Recovering,
        2 => ReplicaState::Failed,
        b => return Err(ProtocolError::Invalid(format!("bad state byte {b}"))),
    };
    let position = get_position(r)?;
    let (keys, disk_bytes, hot_keys, full_resyncs) = (r.u64()?, r.u64()?, r.u64()?, r.u64()?);
    let leader_connected = r.bool()?;
    let leader_position = get_position(r)?;
    let n = r.count(18)?;
    let mut followers = Vec::with_capacity(n);
    for _ in 0..n {
        followers.push(FollowerInfo {
            node: r.u32()?,
            connected: r.bool()?,
            acked: get_position(r)?,
            in_sync: r.bool()?,
        });
    }
    Ok(PartitionInfo {
        partition,
        role,
        state,
        position,
        keys,
        disk_bytes,
        hot_keys,
        full_resyncs,
        leader_connected,
        leader_position,
        followers,
        health: decode_health(r)?,
        history: decode_history(r)?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Request, Response};
    use super::*;

    fn round_trip(response: Response) {
        let mut out = BytesMut::new();
        response.encode(77, &mut out);
        assert_eq!(Response::decode(out.freeze()).unwrap(), (77, response));
    }

    #[test]
    fn info_and_inspect_replies_round_trip() {
        let p = |epoch, lsn| Position { epoch, lsn };
        round_trip(Response::Info(NodeInfo {
            node: 2,
            map_version: 9,
            partitions: vec![
                PartitionInfo {
                    partition: 1,
                    role: Role::Leader,
                    state: ReplicaState::Recovering,
                    position: p(1, 40),
                    keys: 30,
                    disk_bytes: 4096,
                    hot_keys: 12,
                    full_resyncs: 1,
                    leader_connected: false,
                    leader_position: p(0, 0),
                    followers: vec![FollowerInfo {
                        node: 0,
                        connected: true,
                        acked: p(1, 38),
                        in_sync: true,
                    }],
                    health: Health {
                        truncated_tail_bytes: 30,
                        background_errors: 2,
                        poisoned: true,
                        problem: String::new(),
                    },
                    history: HistoryInfo {
                        epoch: 3,
                        rolled_back: 4,
                        rollback_files: vec!["rollback-0000000001.log".into()],
                    },
                },
                PartitionInfo {
                    partition: 3,
                    role: Role::Follower,
                    state: ReplicaState::Ready,
                    position: p(2, 7),
                    keys: 5,
                    disk_bytes: 100,
                    hot_keys: 0,
                    full_resyncs: 0,
                    leader_connected: true,
                    leader_position: p(2, 9),
                    followers: Vec::new(),
                    health: Health::default(),
                    history: HistoryInfo::default(),
                },
                PartitionInfo::failed(5, Role::Leader, "corrupted data in segment-3.log".into()),
            ],
        }));
        round_trip(Response::Inspect(vec![PartitionKeys {
            partition: 0,
            role: Role::Follower,
            hot_keys: vec![Bytes::from_static(b"nama"), Bytes::from_static(b"")],
        }]));
        // A truncated Info is an error, not a panic.
        let mut out = BytesMut::new();
        Response::Info(NodeInfo {
            node: 1,
            map_version: 1,
            partitions: Vec::new(),
        })
        .encode(1, &mut out);
        let cut = out.len() - 1;
        assert!(Response::decode(out.freeze().slice(..cut)).is_err());
        assert!(Request::decode(bytes::Bytes::from_static(&[0x07])).is_err());
    }
}

//! `ClusterClient`: routes requests through the cluster map.
//!
//! Writes go to the key's partition leader; if the leader cannot be
//! reached the write fails with [`Error::LeaderUnavailable`], naming the
//! partition and node; a write that was sent but got no answer (timeout,
//! connection lost) is [`Error::OutcomeUnknown`], never "not applied"
//! (the leader may have applied it) (replication is asynchronous, so no follower may
//! take writes without a failover). Reads go to the leader and, when it is
//! unreachable (or still recovering after a restart, or its store is
//! failed or damaged), fall back to the
//! followers in placement order; the answer
//! then says which node gave it and that it may be stale. Each node has one
//! pipelining [`NodeClient`], which redials by itself when a node comes
//! back. A write to a leader that is still catching up after a restart
//! (`Recovering`) is retried for a few seconds before the error is
//! returned.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kv_codec::Value;
use kv_router::{AckMode, ClusterMap, NodeId, PartitionId};

use crate::client::{ClientOptions, NodeClient};
use crate::error::{Error, Result};
use crate::protocol::{Conditional, Location, NodeInfo, PartitionKeys, Position, Response};

/// How long a write waits for a recovering leader (one that is catching up
/// from its followers after a restart) before giving up.
const RECOVERING_PATIENCE: Duration = Duration::from_secs(3);
const RECOVERING_RETRY: Duration = Duration::from_millis(50);

/// Runs a write, retrying while the leader answers `Recovering`.
pub(crate) async fn retry_recovering<T, F, Fut>(mut write: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let deadline = tokio::time::Instant::now() + RECOVERING_PATIENCE;
    loop {
        match write().await {
            Err(e) if e.is_recovering() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(RECOVERING_RETRY).await;
            }
            other => return other,
        }
    }
}

/// A read's answer and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Read<T> {
    /// The answer.
    pub value: T,
    /// The key's partition.
    pub partition: PartitionId,
    /// The node that answered.
    pub node: NodeId,
    /// True when a follower answered because the leader was unreachable or
    /// recovering: the answer may miss the latest writes.
    pub stale: bool,
}

/// An acknowledged write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The key's partition.
    pub partition: PartitionId,
    /// The leader that took it.
    pub node: NodeId,
    /// Its place in the partition's history.
    pub position: Position,
}

/// A client for a whole cluster.
#[derive(Debug, Clone)]
pub struct ClusterClient {
    map: ClusterMap,
    nodes: BTreeMap<NodeId, NodeClient>,
}

impl ClusterClient {
    /// A client for every node in `map`. Connects lazily.
    pub fn new(map: ClusterMap, options: ClientOptions) -> ClusterClient {
        let nodes = map
            .nodes()
            .iter()
            .map(|n| (n.id, NodeClient::new(n.id, n.addr.clone(), options.clone())))
            .collect();
        ClusterClient { map, nodes }
    }

    /// The map requests are routed with.
    pub fn map(&self) -> &ClusterMap {
        &self.map
    }

    /// The client for one node.
    pub fn node(&self, id: NodeId) -> Result<&NodeClient> {
        self.nodes.get(&id).ok_or(Error::UnknownNode(id))
    }

    /// Asks the leader, then the followers while nodes are unreachable.
    async fn read<T, F, Fut>(&self, key: &[u8], ask: F) -> Result<Read<T>>
    where
        F: Fn(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.read_partition(self.map.partition_of(key), ask).await
    }

    /// Asks `partition`'s leader, then its followers while nodes are
    /// unreachable (or recovering, or their store failed).
    pub(crate) async fn read_partition<T, F, Fut>(
        &self,
        partition: PartitionId,
        ask: F,
    ) -> Result<Read<T>>
    where
        F: Fn(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let replicas = self.map.replicas(partition).unwrap_or(&[]).to_vec();
        let mut last_err = None;
        for (i, node) in replicas.iter().enumerate() {
            match ask(self.node(*node)?.clone()).await {
                Ok(value) => {
                    return Ok(Read {
                        value,
                        partition,
                        node: *node,
                        stale: i > 0,
                    });
                }
                // A recovering leader may lack data its followers hold; a
                // damaged store's followers may hold a good copy.
                Err(e) if e.is_unreachable() || e.is_recovering() || e.is_storage() => {
                    last_err = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::PartitionUnavailable {
            partition,
            source: Box::new(last_err.unwrap_or(Error::NoReplicas(partition))),
        })
    }

    /// Reads and decodes a key's value.
    pub async fn get(&self, key: &[u8]) -> Result<Read<Option<Value>>> {
        let read = self
            .read(key, |c| {
                let key = Bytes::copy_from_slice(key);
                async move { c.get(&key).await }
            })
            .await?;
        let value = match &read.value {
            Some(bytes) => Some(kv_codec::decode(bytes).map_err(Error::BadValue)?),
            None => None,
        };
        Ok(Read {
            value,
            partition: read.partition,
            node: read.node,
            stale: read.stale,
        })
    }

    /// Where a key's value lives on the replica that answers.
    pub async fn status(&self, key: &[u8]) -> Result<Read<Location>> {
        self.read(key, |c| {
            let key = Bytes::copy_from_slice(key);
            async move { c.status(&key).await.map(|(_, location)| location) }
        })
        .await
    }

    pub(crate) async fn leader_of(&self, key: &[u8]) -> Result<(PartitionId, NodeId, &NodeClient)> {
        let partition = self.map.partition_of(key);
        let (leader, client) = self.leader(partition)?;
        Ok((partition, leader, client))
    }

    /// `partition`'s leader and its client.
    pub(crate) fn leader(&self, partition: PartitionId) -> Result<(NodeId, &NodeClient)> {
        let replicas = self.map.replicas(partition).unwrap_or(&[]);
        let leader = *replicas.first().ok_or(Error::NoReplicas(partition))?;
        Ok((leader, self.node(leader)?))
    }

    pub(crate) fn leader_error(partition: PartitionId, node: NodeId, e: Error) -> Error {
        if e.is_unreachable() {
            Error::LeaderUnavailable {
                partition,
                node,
                source: Box::new(e),
            }
        } else {
            e
        }
    }

    /// Encodes and writes a value through the partition leader.
    pub async fn put(&self, key: &[u8], value: &Value) -> Result<Written> {
        self.put_with(key, value, None).await
    }

    /// [`ClusterClient::put`] answered under `acks` (`None`: the
    /// cluster's default ack mode). With [`AckMode::All`] the reply comes
    /// once every in-sync replica has the write durable; see
    /// [`NodeClient::put_acks`] for the errors.
    pub async fn put_with(
        &self,
        key: &[u8],
        value: &Value,
        acks: Option<AckMode>,
    ) -> Result<Written> {
        let (partition, node, client) = self.leader_of(key).await?;
        let bytes = Bytes::from(value.encode());
        let put = || async {
            match acks {
                Some(acks) => client.put_acks(key, bytes.clone(), acks).await,
                None => client.put(key, bytes.clone()).await,
            }
        };
        match retry_recovering(put).await {
            Ok(position) => Ok(Written {
                partition,
                node,
                position,
            }),
            Err(e) => Err(Self::leader_error(partition, node, e)),
        }
    }

    /// Runs a write the partition leader decides atomically (`SET NX`,
    /// `INCRBY`, ...); the reply is `Applied` or `Counter`.
    pub async fn conditional(&self, op: Conditional) -> Result<Response> {
        let (partition, node, client) = self.leader_of(op.key()).await?;
        retry_recovering(|| client.conditional(op.clone()))
            .await
            .map_err(|e| Self::leader_error(partition, node, e))
    }

    /// Deletes a key through the partition leader; true when it existed.
    pub async fn delete(&self, key: &[u8]) -> Result<bool> {
        self.delete_with(key, None).await
    }

    /// [`ClusterClient::delete`] answered under `acks` (as
    /// [`ClusterClient::put_with`]).
    pub async fn delete_with(&self, key: &[u8], acks: Option<AckMode>) -> Result<bool> {
        let (partition, node, client) = self.leader_of(key).await?;
        let delete = || async {
            match acks {
                Some(acks) => client.delete_acks(key, acks).await,
                None => client.delete(key).await,
            }
        };
        retry_recovering(delete)
            .await
            .map_err(|e| Self::leader_error(partition, node, e))
    }

    /// One node's partitions with their roles and hot keys.
    pub async fn inspect(&self, node: NodeId) -> Result<Vec<PartitionKeys>> {
        self.node(node)?.inspect().await
    }

    /// One node's info.
    pub async fn node_info(&self, node: NodeId) -> Result<NodeInfo> {
        self.node(node)?.info().await
    }

    /// Every node's info, or the error talking to it, in id order.
    pub async fn cluster_info(&self) -> Vec<(NodeId, Result<NodeInfo>)> {
        let asks = self
            .nodes
            .iter()
            .map(|(id, c)| async move { (*id, c.info().await) });
        futures::future::join_all(asks).await
    }
}

//! `ClusterClient`: routes requests through the cluster map.
//!
//! The client keeps the newest map it has seen (clones share it). Writes
//! go to the key's partition leader; when the leader moved (`NotLeader`),
//! is not ready (`Recovering`, no lease, handing over) or cannot be
//! reached before anything was sent, the client asks every node for its
//! map, keeps the newest and tries again until `failover_wait` has passed
//! (a failover takes a few seconds); then the write fails with
//! [`Error::LeaderUnavailable`], naming the partition and node. A write
//! that was sent but got no answer (timeout, connection lost) is
//! [`Error::OutcomeUnknown`], never "not applied" (the leader may have
//! applied it), and is not retried.
//!
//! `get` reads at the leader with `GetLeader` (a follower refuses it, so
//! an old map never passes a follower's answer off as the leader's); when
//! the leader cannot answer, a follower does and the answer says which
//! node gave it and that it may be stale. A leader that answers but is not
//! serving yet (its lease lapsed, or it is catching up) is asked again
//! until `stale_read_after` has passed first, so a late lease renewal does
//! not turn reads stale. Other reads (status, scan, mget, ttl) go to the
//! leader wrapped in `AtLeader`, which a follower refuses the same way,
//! and fall back to the followers in placement order. Each
//! node has one pipelining [`NodeClient`], which redials by itself when a
//! node comes back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use bytes::Bytes;
use kv_codec::Value;
use kv_router::{AckMode, ClusterMap, NodeId, PartitionId};

use crate::client::{ClientOptions, NodeClient};
use crate::error::{Error, Result};
use crate::protocol::control::{ControlReply, ControlRequest, ControllerInfo};
use crate::protocol::{Conditional, Location, NodeInfo, PartitionKeys, Position, Response};

/// Pause between two attempts of a request whose leader is changing.
const RETRY_PAUSE: Duration = Duration::from_millis(50);

/// How long [`ClusterClient::refresh`] waits for each node's map.
const REFRESH_WAIT: Duration = Duration::from_secs(1);

/// Whether a failed request to a partition leader may succeed if sent
/// again, perhaps to another node: the leader moved (`NotLeader`), is not
/// ready (`Recovering`, or its lease lapsed), or could not be reached
/// before anything was sent (a write sent but unanswered is
/// `OutcomeUnknown`, never retried).
fn worth_retrying(e: &Error) -> bool {
    e.is_recovering() || e.is_unreachable() || e.is_not_leader()
}

/// An operator request's outcome.
fn done(reply: ControlReply) -> Result<(kv_router::MapVersion, Option<u64>)> {
    match reply {
        ControlReply::Done { version, behind } => Ok((version, behind)),
        ControlReply::Failed { message } => Err(Error::Control(message)),
        other => Err(Error::Control(format!("unexpected reply {other:?}"))),
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
///
/// Clones share one map: when one of them learns a newer map (after a
/// `NotLeader` reply, a leader it cannot reach, or [`ClusterClient::refresh`])
/// every clone routes by it.
#[derive(Debug, Clone)]
pub struct ClusterClient {
    map: Arc<RwLock<Arc<ClusterMap>>>,
    nodes: BTreeMap<NodeId, NodeClient>,
    /// How long a request keeps trying while its partition's leader moves.
    failover_wait: Duration,
    /// How long a read waits for a leader that is not serving yet.
    stale_read_after: Duration,
}

impl ClusterClient {
    /// A client for every node in `map`. Connects lazily.
    pub fn new(map: ClusterMap, options: ClientOptions) -> ClusterClient {
        let nodes = map
            .nodes()
            .iter()
            .map(|n| (n.id, NodeClient::new(n.id, n.addr.clone(), options.clone())))
            .collect();
        ClusterClient {
            map: Arc::new(RwLock::new(Arc::new(map))),
            nodes,
            failover_wait: options.failover_wait,
            stale_read_after: options.stale_read_after,
        }
    }

    /// The map requests are routed with now.
    pub fn map(&self) -> Arc<ClusterMap> {
        Arc::clone(&self.map.read())
    }

    /// Asks every node for its map and keeps the newest (highest version);
    /// true when it was newer than the one held. Nodes that do not answer
    /// within a second are skipped: a silent node (paused, cut off)
    /// does not hold up the refresh that routes around it.
    pub async fn refresh(&self) -> bool {
        let asks = self
            .nodes
            .values()
            .map(|c| tokio::time::timeout(REFRESH_WAIT, c.cluster_map()));
        let newest = futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .flatten()
            .max_by_key(ClusterMap::version);
        let Some(newest) = newest else { return false };
        let mut map = self.map.write();
        if newest.version() > map.version() && newest.partition_count() == map.partition_count() {
            *map = Arc::new(newest);
            true
        } else {
            false
        }
    }

    /// Runs `op` at `partition`'s leader; while the leader is moving (see
    /// `worth_retrying`) refreshes the map and tries again, until
    /// `failover_wait` has passed. Errors name the partition and node.
    pub(crate) async fn at_leader<T, F, Fut>(
        &self,
        partition: PartitionId,
        op: F,
    ) -> Result<(NodeId, T)>
    where
        F: Fn(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.failover_wait;
        loop {
            let (node, client) = self.leader(partition)?;
            match op(client).await {
                Ok(value) => return Ok((node, value)),
                Err(e) if worth_retrying(&e) && tokio::time::Instant::now() < deadline => {
                    if !self.refresh().await {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                }
                Err(e) => {
                    // A write the leader did not answer (or could not
                    // confirm) is not retried, but the leader may be gone
                    // (paused, cut off): the next request goes by the
                    // newest map, not to the same silent node again.
                    if matches!(e, Error::OutcomeUnknown { .. }) {
                        self.refresh().await;
                    }
                    return Err(Self::leader_error(partition, node, e));
                }
            }
        }
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
        self.read_partition(self.map().partition_of(key), ask).await
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
        self.read_replicas(partition, 0, false, ask).await
    }

    /// Asks `partition`'s replicas in placement order, the first `skip`
    /// left out, until one answers; an answer is flagged stale unless it
    /// came from the leader and `all_stale` is false. The leader is asked
    /// with `AtLeader`, so a node the map wrongly names as leader (the map
    /// missed a failover) answers `NotLeader`: the map is refreshed once
    /// and the new leader asked, or else the followers, flagged stale.
    async fn read_replicas<T, F, Fut>(
        &self,
        partition: PartitionId,
        skip: usize,
        all_stale: bool,
        ask: F,
    ) -> Result<Read<T>>
    where
        F: Fn(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut refreshed = false;
        'map: loop {
            let replicas = self.map().replicas(partition).unwrap_or(&[]).to_vec();
            let mut last_err = None;
            for (i, node) in replicas.iter().enumerate().skip(skip) {
                let client = self.node(*node)?;
                let at_leader = i == 0 && !all_stale;
                let answer = if at_leader {
                    self.unless_settling(&client.at_leader(partition), &ask)
                        .await
                } else {
                    ask(client.clone()).await
                };
                match answer {
                    Ok(value) => {
                        return Ok(Read {
                            value,
                            partition,
                            node: *node,
                            stale: !at_leader,
                        });
                    }
                    Err(e) if e.is_not_leader() && !refreshed && self.refresh().await => {
                        refreshed = true;
                        continue 'map;
                    }
                    // A recovering leader may lack data its followers hold;
                    // a damaged store's followers may hold a good copy.
                    Err(e)
                        if e.is_unreachable()
                            || e.is_recovering()
                            || e.is_storage()
                            || e.is_not_leader() =>
                    {
                        last_err = Some(e)
                    }
                    Err(e) => return Err(e),
                }
            }
            return Err(Error::PartitionUnavailable {
                partition,
                source: Box::new(last_err.unwrap_or(Error::NoReplicas(partition))),
            });
        }
    }

    /// Reads and decodes a key's value at the partition's leader. A
    /// leader that moved (`NotLeader`) makes the client refresh its map and
    /// ask the new one. When the leader cannot answer, a follower does and
    /// the answer is flagged stale; when no replica answers a normal read
    /// (the leader's lease lapsed and its followers are down: no controller
    /// majority), a replica is asked once more to answer without its
    /// lease, flagged stale too.
    pub async fn get(&self, key: &[u8]) -> Result<Read<Option<Value>>> {
        let read = match self.get_at_leader(key).await {
            Ok(read) => read,
            Err(e) if e.is_unreachable() => self.get_fallback(key, true).await?,
            Err(e) if e.is_recovering() || e.is_storage() || e.is_not_leader() => {
                self.get_fallback(key, false).await?
            }
            Err(e) => return Err(e),
        };
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

    /// The leader's answer to `GetLeader`, following one map refresh when
    /// the leader moved; else the error of the last attempt.
    async fn get_at_leader(&self, key: &[u8]) -> Result<Read<Option<Bytes>>> {
        let partition = self.map().partition_of(key);
        let mut refreshed = false;
        loop {
            let (node, client) = self.leader(partition)?;
            let at_leader = |c: NodeClient| {
                let key = Bytes::copy_from_slice(key);
                async move { c.get_at_leader(&key).await }
            };
            match self.unless_settling(&client, &at_leader).await {
                Ok(value) => {
                    return Ok(Read {
                        value,
                        partition,
                        node,
                        stale: false,
                    });
                }
                Err(e) if e.is_not_leader() && !refreshed && self.refresh().await => {
                    refreshed = true
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Any replica's answer, flagged stale: a follower's (the leader too,
    /// unless it was unreachable), or at last one a leader without a lease
    /// gives.
    async fn get_fallback(
        &self,
        key: &[u8],
        leader_unreachable: bool,
    ) -> Result<Read<Option<Bytes>>> {
        let partition = self.map().partition_of(key);
        let skip = usize::from(leader_unreachable);
        let key = Bytes::copy_from_slice(key);
        let any = self
            .read_replicas(partition, skip, true, |c| {
                let key = key.clone();
                async move { c.get(&key).await }
            })
            .await;
        match any {
            Err(e @ Error::PartitionUnavailable { .. }) => self
                .read_replicas(partition, skip, true, |c| {
                    let key = key.clone();
                    async move { c.get_stale(&key).await }
                })
                .await
                .map_err(|_| e),
            other => other,
        }
    }

    /// Where a key's value lives on the replica that answers.
    pub async fn status(&self, key: &[u8]) -> Result<Read<Location>> {
        self.read(key, |c| {
            let key = Bytes::copy_from_slice(key);
            async move { c.status(&key).await.map(|(_, location)| location) }
        })
        .await
    }

    /// Asks a leader, again while it answers `Recovering` (its lease
    /// lapsed, or it is catching up: a state that usually settles within
    /// moments) until `stale_read_after` has passed; the last answer.
    async fn unless_settling<T, F, Fut>(&self, leader: &NodeClient, ask: &F) -> Result<T>
    where
        F: Fn(NodeClient) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let deadline = tokio::time::Instant::now() + self.stale_read_after;
        loop {
            match ask(leader.clone()).await {
                Err(e) if e.is_recovering() && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await
                }
                answer => return answer,
            }
        }
    }

    /// `partition`'s leader in the current map and its client.
    pub(crate) fn leader(&self, partition: PartitionId) -> Result<(NodeId, NodeClient)> {
        let leader = self
            .map()
            .leader(partition)
            .ok_or(Error::NoReplicas(partition))?;
        Ok((leader, self.node(leader)?.clone()))
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
        let partition = self.map().partition_of(key);
        let bytes = Bytes::from(value.encode());
        let put = |client: NodeClient| {
            let bytes = bytes.clone();
            async move {
                match acks {
                    Some(acks) => client.put_acks(key, bytes, acks).await,
                    None => client.put(key, bytes).await,
                }
            }
        };
        let (node, position) = self.at_leader(partition, put).await?;
        Ok(Written {
            partition,
            node,
            position,
        })
    }

    /// Runs a write the partition leader decides atomically (`SET NX`,
    /// `INCRBY`, ...); the reply is `Applied` or `Counter`.
    pub async fn conditional(&self, op: Conditional) -> Result<Response> {
        let partition = self.map().partition_of(op.key());
        let run = |client: NodeClient| {
            let op = op.clone();
            async move { client.conditional(op).await }
        };
        Ok(self.at_leader(partition, run).await?.1)
    }

    /// Deletes a key through the partition leader; true when it existed.
    pub async fn delete(&self, key: &[u8]) -> Result<bool> {
        self.delete_with(key, None).await
    }

    /// [`ClusterClient::delete`] answered under `acks` (as
    /// [`ClusterClient::put_with`]).
    pub async fn delete_with(&self, key: &[u8], acks: Option<AckMode>) -> Result<bool> {
        let partition = self.map().partition_of(key);
        let delete = |client: NodeClient| async move {
            match acks {
                Some(acks) => client.delete_acks(key, acks).await,
                None => client.delete(key).await,
            }
        };
        Ok(self.at_leader(partition, delete).await?.1)
    }

    /// One node's partitions with their roles and hot keys.
    pub async fn inspect(&self, node: NodeId) -> Result<Vec<PartitionKeys>> {
        self.node(node)?.inspect().await
    }

    /// One node's info.
    pub async fn node_info(&self, node: NodeId) -> Result<NodeInfo> {
        self.node(node)?.info().await
    }

    /// The controller's view: from the controller leader when a node
    /// names one that answers, else from the first node that answers.
    pub async fn controller(&self) -> Result<ControllerInfo> {
        let asks = self
            .nodes
            .values()
            .map(|c| c.control(&ControlRequest::Info));
        let mut answers = Vec::new();
        let mut last_err = None;
        for reply in futures::future::join_all(asks).await {
            match reply {
                Ok(ControlReply::Info(info)) => answers.push(info),
                Ok(ControlReply::Failed { message }) => last_err = Some(Error::Control(message)),
                Ok(other) => last_err = Some(Error::Control(format!("unexpected reply {other:?}"))),
                Err(e) => last_err = Some(e),
            }
        }
        let leader = answers.iter().find(|i| i.leader == Some(i.node)).cloned();
        match leader.or_else(|| answers.into_iter().next()) {
            Some(info) => Ok(info),
            None => Err(last_err.unwrap_or(Error::Control("no node answered".into()))),
        }
    }

    /// Operator: makes `node` the leader of `partition`.
    ///
    /// Clean (`unclean` false, `kv cluster transfer`): asks the current
    /// leader, which stops taking writes for the partition, waits until
    /// `node` (an in-sync replica) holds everything, then has the
    /// controller elect it: nothing acknowledged is lost. Unclean (`kv
    /// cluster promote --unclean`): asks the controller directly, for any
    /// replica; what only the old leader held is lost. Returns the map
    /// version of the change and how many entries `node` lacked against
    /// the old leader's last position the controller heard of (`None`:
    /// not known); returns once this client's map shows the change (or
    /// the failover wait passed). The map is refreshed first, so a client
    /// that missed a failover asks the leader of now.
    pub async fn move_leader(
        &self,
        partition: PartitionId,
        node: NodeId,
        unclean: bool,
    ) -> Result<(kv_router::MapVersion, Option<u64>)> {
        let deadline = tokio::time::Instant::now() + self.failover_wait;
        self.refresh().await;
        let (version, behind) = if unclean {
            let request = ControlRequest::Promote {
                partition,
                node,
                unclean,
            };
            loop {
                // The controller may be between leaders: ask again.
                let target = match self.controller().await {
                    Ok(info) => info.leader,
                    Err(_) => None,
                };
                let reply = match target {
                    Some(leader) => Some(self.node(leader)?.control(&request).await?),
                    None => None,
                };
                match reply {
                    Some(ControlReply::NotController { .. }) | None
                        if tokio::time::Instant::now() < deadline =>
                    {
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    Some(reply) => break done(reply)?,
                    None => return Err(Error::Control("the controller has no leader".into())),
                }
            }
        } else {
            let request = ControlRequest::Transfer { partition, node };
            let (_, reply) = self
                .at_leader(partition, |client| {
                    let request = request.clone();
                    async move { client.control(&request).await }
                })
                .await?;
            done(reply)?
        };
        while self.map().version() < version && tokio::time::Instant::now() < deadline {
            if !self.refresh().await {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        Ok((version, behind))
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

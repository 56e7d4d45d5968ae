//! Control-plane messages between nodes: one request, one reply, over an
//! authenticated peer connection of the node's framed protocol (so they
//! count against the peer quota, never the clients'), and openraft's
//! network traits on top.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use kv_control::TypeConfig;
use kv_router::NodeId;
use kv_control::openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use kv_control::openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use kv_control::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use bytes::BytesMut;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::options::NodeOptions;
use crate::protocol::control::{ControlReply, ControlRequest, RaftRpc};
use crate::protocol::{Conn, Request, Response};
use crate::replication::transport;

/// A link to one peer for control messages: one connection, dialled on
/// first use and again after a failure; one request at a time.
pub(crate) struct PeerLink {
    options: NodeOptions,
    peer: NodeId,
    conn: Option<Conn>,
}

impl PeerLink {
    pub fn new(options: NodeOptions, peer: NodeId) -> PeerLink {
        PeerLink {
            options,
            peer,
            conn: None,
        }
    }

    /// Sends `request` and waits (up to `timeout`) for its reply. Any
    /// failure drops the connection, so the next call dials again.
    pub async fn call(
        &mut self,
        request: &ControlRequest,
        timeout: Duration,
    ) -> Result<ControlReply, String> {
        let result = tokio::time::timeout(timeout, self.exchange(request)).await;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no reply from node {} within {timeout:?}", self.peer)),
        };
        if outcome.is_err() {
            self.conn = None;
        }
        outcome
    }

    async fn exchange(&mut self, request: &ControlRequest) -> Result<ControlReply, String> {
        let body = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        if self.conn.is_none() {
            self.conn = transport::connect_peer(&self.options, self.peer).await;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(format!("node {} is unreachable", self.peer));
        };
        let mut out = BytesMut::new();
        Request::Control(Bytes::from(body)).encode(1, &mut out);
        conn.send(out.freeze())
            .await
            .map_err(|e| format!("sending to node {}: {e}", self.peer))?;
        let frame = match conn.next().await {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => return Err(format!("reading from node {}: {e}", self.peer)),
            None => return Err(format!("node {} closed the connection", self.peer)),
        };
        match Response::decode(frame.freeze()) {
            Ok((_, Response::Control(body))) => {
                serde_json::from_slice(&body).map_err(|e| format!("bad control reply: {e}"))
            }
            Ok((_, Response::Error { message, .. })) => Err(message),
            Ok((_, other)) => Err(format!("unexpected reply {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// openraft's network factory: a [`PeerLink`] per target.
pub(crate) struct Network {
    pub options: NodeOptions,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = RaftLink;

    async fn new_client(&mut self, target: NodeId, _node: &kv_control::openraft::EmptyNode) -> RaftLink {
        RaftLink {
            target,
            link: PeerLink::new(self.options.clone(), target),
        }
    }
}

/// One target's Raft RPCs.
pub(crate) struct RaftLink {
    target: NodeId,
    link: PeerLink,
}

type RpcError<E = kv_control::openraft::error::Infallible> =
    RPCError<NodeId, kv_control::openraft::EmptyNode, RaftError<NodeId, E>>;

impl RaftLink {
    async fn rpc<Req, Resp, E>(
        &mut self,
        rpc: RaftRpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RpcError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = serde_json::to_value(request)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let request = ControlRequest::Raft { rpc, body };
        let reply = self
            .link
            .call(&request, option.hard_ttl())
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&std::io::Error::other(e))))?;
        let body = match reply {
            ControlReply::Raft { body } => body,
            other => {
                let e = std::io::Error::other(format!("unexpected control reply {other:?}"));
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
        };
        let answer: Result<Resp, RaftError<NodeId, E>> = serde_json::from_value(body)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for RaftLink {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.rpc(RaftRpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        self.rpc(RaftRpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        self.rpc(RaftRpc::Vote, &rpc, &option).await
    }
}

/// Answers one Raft RPC with this node's Raft member.
pub(crate) async fn serve_rpc(
    raft: kv_control::Raft,
    rpc: RaftRpc,
    body: serde_json::Value,
) -> Result<serde_json::Value, String> {
    fn answer<T: Serialize>(t: T) -> Result<serde_json::Value, String> {
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    let bad = |e: serde_json::Error| format!("bad Raft request: {e}");
    match rpc {
        RaftRpc::Vote => answer(raft.vote(serde_json::from_value(body).map_err(bad)?).await),
        RaftRpc::Append => {
            answer(raft.append_entries(serde_json::from_value(body).map_err(bad)?).await)
        }
        RaftRpc::Snapshot => {
            answer(raft.install_snapshot(serde_json::from_value(body).map_err(bad)?).await)
        }
    }
}

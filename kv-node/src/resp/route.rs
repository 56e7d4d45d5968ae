//! Runs key operations on the partition leader: in process when this node
//! leads the key's partition (and is ready), otherwise through the node's
//! [`crate::ClusterClient`]. Both ways end in the same leader-side code
//! (`server::put`/`delete`/`read_key`, `atomic::execute`). Also maps kv
//! errors to Redis error replies.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use kv_codec::Value;

use super::connection::Front;
use super::reply::Reply;
use crate::atomic::{NOT_AN_INTEGER, OVERFLOW};
use crate::error::{Error, ErrorCode};
use crate::protocol::{Conditional, KeyTtl, Keyspace, KeyspaceReply, Response};
use crate::server;

/// True when this node leads `key`'s partition and is ready to serve it.
pub(crate) fn leads(front: &Front, key: &[u8]) -> bool {
    let p = front.shared.options.map.partition_of(key);
    front
        .shared
        .replicas
        .get(&p)
        .is_some_and(|r| r.machine().writable().is_ok())
}

/// An error reply from the local leader code as the error a remote node's
/// reply would have become.
fn local(response: Response) -> Result<Response, Error> {
    match response {
        Response::Error {
            code,
            leader,
            message,
        } => Err(Error::Remote {
            code,
            message,
            leader,
        }),
        other => Ok(other),
    }
}

fn unexpected(front: &Front, response: &Response) -> Error {
    Error::UnexpectedReply {
        node: front.shared.id(),
        what: format!("{response:?}"),
    }
}

fn forwarded(front: &Front) {
    front.forwarded.fetch_add(1, Ordering::Relaxed);
}

/// Reads a key: the bytes a Redis client gets back (see
/// [`Value::into_bytes`]), or `None` when absent.
pub(crate) async fn get(front: &Front, key: Bytes) -> Result<Option<Bytes>, Error> {
    let value = if leads(front, &key) {
        match local(server::get(&front.shared, key.clone()).await)? {
            Response::Value { value: None, .. } => None,
            // Text and bytes are answered as stored, without a copy.
            Response::Value {
                value: Some(bytes), ..
            } => match kv_codec::verbatim(&bytes) {
                Some(client) => return Ok(Some(bytes.slice(client))),
                None => Some(kv_codec::decode(&bytes).map_err(Error::BadValue)?),
            },
            other => return Err(unexpected(front, &other)),
        }
    } else {
        forwarded(front);
        front.cluster.get(&key).await?.value
    };
    Ok(value.map(|v| Bytes::from(v.into_bytes())))
}

/// Writes a value given as raw client bytes (classified by kv-codec).
pub(crate) async fn set(front: &Front, key: Bytes, raw: &[u8]) -> Result<(), Error> {
    let value = Value::from_bytes(raw);
    if leads(front, &key) {
        let encoded = Bytes::from(value.encode());
        local(server::put(&front.shared, key, encoded, None).await).map(|_| ())
    } else {
        forwarded(front);
        front.cluster.put(&key, &value).await.map(|_| ())
    }
}

/// Writes plain `SET`s of keys this node leads as one group (group append:
/// one store batch per partition, [`crate::pipeline`]); each one's result,
/// in order.
pub(crate) async fn set_group(front: &Front, sets: Vec<(Bytes, Bytes)>) -> Vec<Result<(), Error>> {
    let group = (0..)
        .zip(sets)
        .map(|(i, (key, raw))| (i, key, Bytes::from(Value::from_bytes(&raw).encode())))
        .collect();
    crate::pipeline::put_group(&front.shared, group)
        .await
        .into_iter()
        .map(|(_, reply)| local(reply).map(|_| ()))
        .collect()
}

/// Deletes a key; true when it existed.
pub(crate) async fn delete(front: &Front, key: Bytes) -> Result<bool, Error> {
    if leads(front, &key) {
        match local(server::delete(&front.shared, key, None).await)? {
            Response::Deleted { existed, .. } => Ok(existed),
            other => Err(unexpected(front, &other)),
        }
    } else {
        forwarded(front);
        front.cluster.delete(&key).await
    }
}

/// Runs a conditional or atomic write at the leader.
pub(crate) async fn conditional(front: &Front, op: Conditional) -> Result<Response, Error> {
    if leads(front, op.key()) {
        local(crate::atomic::execute(&front.shared, op).await)
    } else {
        forwarded(front);
        front.cluster.conditional(op).await
    }
}

/// Sets (`Some`) or clears (`None`) a key's expiry at the leader; whether
/// anything was written.
pub(crate) async fn expire(
    front: &Front,
    key: Bytes,
    ttl: Option<Duration>,
) -> Result<bool, Error> {
    if leads(front, &key) {
        let op = Keyspace::Expire { key, ttl };
        match local(crate::expiry::execute(&front.shared, op).await)? {
            Response::Keyspace(KeyspaceReply::ExpiryChanged { changed, .. }) => Ok(changed),
            other => Err(unexpected(front, &other)),
        }
    } else {
        forwarded(front);
        match ttl {
            Some(ttl) => front.cluster.expire(&key, ttl).await,
            None => front.cluster.persist(&key).await,
        }
    }
}

/// A key's time to live, from its leader (or a follower when the leader
/// is unreachable).
pub(crate) async fn ttl(front: &Front, key: Bytes) -> Result<KeyTtl, Error> {
    if leads(front, &key) {
        let op = Keyspace::Ttl { key };
        match local(crate::expiry::execute(&front.shared, op).await)? {
            Response::Keyspace(KeyspaceReply::Ttl { ttl, .. }) => Ok(ttl),
            other => Err(unexpected(front, &other)),
        }
    } else {
        forwarded(front);
        Ok(front.cluster.ttl(&key).await?.value)
    }
}

/// The Redis error reply for a kv error.
pub(crate) fn error_reply(e: &Error) -> Reply {
    match e {
        Error::Remote {
            code: ErrorCode::InvalidValue,
            message,
            ..
        } if message == NOT_AN_INTEGER || message == OVERFLOW => Reply::err(message),
        Error::Remote {
            code: ErrorCode::Recovering | ErrorCode::NotLeader | ErrorCode::ShuttingDown,
            ..
        }
        | Error::LeaderUnavailable { .. }
        | Error::PartitionUnavailable { .. } => Reply::Error(format!("TRYAGAIN {e}")),
        // Redis's own reply when `min-replicas-to-write` is not met.
        Error::Remote {
            code: ErrorCode::NotEnoughReplicas,
            ..
        } => Reply::Error(format!("NOREPLICAS {e}")),
        e if e.is_unreachable() => Reply::Error(format!("TRYAGAIN {e}")),
        e => Reply::err(e),
    }
}

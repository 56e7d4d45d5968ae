//! [`NodeClient`]'s keyspace requests: one partition's scan page, multi-key
//! reads and writes of one partition, and expiry.

use std::time::Duration;

use bytes::Bytes;
use kv_router::PartitionId;

use crate::client::NodeClient;
use crate::error::Result;
use crate::protocol::{
    KeyTtl, Keyspace, KeyspaceReply, Position, Request, Response, ScanEntry, ScanSpec,
};

/// One page of one partition's scan, as a node answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPage {
    /// The keys (with values when asked for).
    pub entries: Vec<ScanEntry>,
    /// The store cursor to resume at, or `None` when the partition is done.
    pub next: Option<u64>,
}

impl NodeClient {
    async fn keyspace(&self, op: Keyspace) -> Result<Response> {
        let writes = matches!(
            op,
            Keyspace::MSet { .. } | Keyspace::PutTtl { .. } | Keyspace::Expire { .. }
        );
        let request = Request::Keyspace(op);
        // A write whose reply was lost may have been applied: it is
        // `OutcomeUnknown`, which `ClusterClient` never sends again (the
        // simulation found a batch retried after a timeout applied twice,
        // the second time over a later write).
        if writes {
            self.write(&request).await
        } else {
            self.request(&request).await
        }
    }

    /// One page of a scan of a partition on this node (see [`ScanSpec`]:
    /// from a store cursor, keys with a prefix, values on request, the
    /// next cursor aligned as asked).
    pub async fn scan_partition(&self, spec: ScanSpec) -> Result<PartitionPage> {
        let op = Keyspace::Scan(spec);
        match self.keyspace(op).await? {
            Response::Keyspace(KeyspaceReply::ScanPage { next, entries, .. }) => {
                Ok(PartitionPage { entries, next })
            }
            other => Err(self.unexpected(other)),
        }
    }

    /// The encoded values of `keys`, which must all be in `partition`.
    pub async fn mget(
        &self,
        partition: PartitionId,
        keys: Vec<Bytes>,
    ) -> Result<Vec<Option<Bytes>>> {
        match self.keyspace(Keyspace::MGet { partition, keys }).await? {
            Response::Keyspace(KeyspaceReply::Values { values, .. }) => Ok(values),
            other => Err(self.unexpected(other)),
        }
    }

    /// Writes `pairs` (keys of `partition`, encoded values) atomically (the
    /// node must lead the partition); the position of the last.
    pub async fn mset(
        &self,
        partition: PartitionId,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> Result<Position> {
        match self.keyspace(Keyspace::MSet { partition, pairs }).await? {
            Response::Written { position, .. } => Ok(position),
            other => Err(self.unexpected(other)),
        }
    }

    /// Writes a key that expires `ttl` after the leader takes it.
    pub async fn put_ttl(&self, key: &[u8], value: Bytes, ttl: Duration) -> Result<Position> {
        let key = Bytes::copy_from_slice(key);
        match self.keyspace(Keyspace::PutTtl { key, value, ttl }).await? {
            Response::Written { position, .. } => Ok(position),
            other => Err(self.unexpected(other)),
        }
    }

    /// Sets (`Some`) or removes (`None`) a key's expiry; false when the key
    /// does not exist.
    pub async fn expire(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let key = Bytes::copy_from_slice(key);
        match self.keyspace(Keyspace::Expire { key, ttl }).await? {
            Response::Keyspace(KeyspaceReply::ExpiryChanged { changed, .. }) => Ok(changed),
            other => Err(self.unexpected(other)),
        }
    }

    /// A key's time to live on this node's replica.
    pub async fn ttl(&self, key: &[u8]) -> Result<KeyTtl> {
        let key = Bytes::copy_from_slice(key);
        match self.keyspace(Keyspace::Ttl { key }).await? {
            Response::Keyspace(KeyspaceReply::Ttl { ttl, .. }) => Ok(ttl),
            other => Err(self.unexpected(other)),
        }
    }
}

//! [`ClusterClient`]'s keyspace operations: a cluster-wide scan with one
//! opaque cursor, `mget`/`mset` grouped by partition, and expiry.
//!
//! # The cluster cursor
//!
//! A scan walks the partitions in order, each with the store's own scan
//! (a key present for the whole scan of a store is returned at least once,
//! whatever writes, compactions or restarts happen in between). A
//! [`ClusterCursor`] packs both into one `u64`, as a Redis client expects:
//! the partition in the top `b` bits (`b` = bits needed for the partition
//! count; none for one partition) and the store cursor's top `64 - b` bits
//! below it. No position is lost: the client asks each node for pages
//! whose store cursor has its low `b` bits zero (the node scans a few keys
//! further until it has), so a quiet cluster's scan returns every key
//! exactly once. A page's cursor always lies after the one it was asked
//! with, so a scan always ends; 0 is both the start and, handed back,
//! "done", as in Redis. A cursor that was not handed out resumes at a
//! position at or before the one it names, so it skips nothing.
//!
//! # Multi-key writes
//!
//! `mset` sends one batch per partition, to each leader at once: atomic per
//! partition (one store batch), **not** across partitions: when one
//! partition's leader fails, the others may have written.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::future::join_all;
use kv_codec::Value;
use kv_router::{NodeId, PartitionId};

use crate::client::NodeClient;
use crate::client_keyspace::PartitionPage;
use crate::cluster_client::{ClusterClient, Read, Written};
use crate::error::{Error, Result};
use crate::protocol::{KeyTtl, ScanEntry, ScanSpec};

/// Where a cluster-wide scan resumes: opaque, round-trips through a `u64`
/// (see the module docs). [`ClusterCursor::START`] is 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClusterCursor(u64);

impl ClusterCursor {
    /// The beginning of a scan.
    pub const START: ClusterCursor = ClusterCursor(0);

    /// A cursor from its `u64` form (as a page's `next` handed it out).
    pub fn from_u64(value: u64) -> ClusterCursor {
        ClusterCursor(value)
    }

    /// The `u64` form.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// Bits the partition takes for `partitions` partitions.
    fn partition_bits(partitions: u32) -> u32 {
        u32::BITS - partitions.saturating_sub(1).leading_zeros()
    }

    /// Packs partition `p` and store cursor `store`.
    fn pack(p: PartitionId, store: u64, partitions: u32) -> ClusterCursor {
        match Self::partition_bits(partitions) {
            0 => ClusterCursor(store),
            b => ClusterCursor((u64::from(p) << (64 - b)) | (store >> b)),
        }
    }

    /// The partition and store cursor to resume at.
    fn unpack(self, partitions: u32) -> Result<(PartitionId, u64)> {
        let (p, store) = match Self::partition_bits(partitions) {
            0 => (0, self.0),
            b => (self.0 >> (64 - b), self.0 << b),
        };
        match PartitionId::try_from(p) {
            Ok(p) if p < partitions => Ok((p, store)),
            _ => Err(Error::InvalidCursor {
                cursor: self.0,
                partition: p,
                partitions,
            }),
        }
    }
}

/// Most keys one cluster scan page examines, whatever `count` asks for
/// (so a page's memory stays bounded).
pub(crate) const MAX_PAGE_KEYS: u32 = 10_000;

/// What a scan page asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOptions {
    /// About how many keys to examine for the page (at most
    /// 10 000; each node examines at most 1000 per request).
    pub count: u32,
    /// Only keys starting with this (empty: every key).
    pub prefix: Bytes,
    /// Whether each key comes with its encoded value.
    pub values: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            count: 100,
            prefix: Bytes::new(),
            values: false,
        }
    }
}

/// One page of a cluster-wide scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys (with encoded values when asked for), in scan order.
    pub entries: Vec<ScanEntry>,
    /// Where to continue, or `None` when the scan is complete.
    pub next: Option<ClusterCursor>,
    /// True when a follower answered for some partition (its leader was
    /// unreachable): keys written lately may be missing.
    pub stale: bool,
}

impl ClusterClient {
    /// One page of a scan over every partition, from `cursor`
    /// ([`ClusterCursor::START`] to begin). Call again with `next` until
    /// it is `None`. A key present for the whole scan is returned at least
    /// once; a key written or deleted meanwhile may or may not be; a page
    /// may hold fewer keys than `count` (even none) before the end.
    pub async fn scan(&self, cursor: ClusterCursor, options: &ScanOptions) -> Result<KeyPage> {
        let partitions = self.map().partition_count();
        let count = options.count.clamp(1, MAX_PAGE_KEYS);
        let (mut p, mut store) = cursor.unpack(partitions)?;
        let mut page = KeyPage {
            entries: Vec::new(),
            next: None,
            stale: false,
        };
        loop {
            let want = count.saturating_sub(len_u32(&page.entries)).max(1);
            let read = self.scan_partition(p, store, want, options).await?;
            page.stale |= read.stale;
            page.entries.extend(read.value.entries);
            let next = match read.value.next {
                Some(next) => ClusterCursor::pack(p, next, partitions),
                None if p + 1 < partitions => ClusterCursor::pack(p + 1, 0, partitions),
                None => return Ok(page),
            };
            (p, store) = match read.value.next {
                Some(next) => (p, next),
                None => (p + 1, 0),
            };
            // Hand out only a cursor after the one asked with, so a scan
            // always ends; a full page may stop here.
            let full = len_u32(&page.entries) >= count;
            if next.0 > cursor.0 && (full || read.value.next.is_some()) {
                page.next = Some(next);
                return Ok(page);
            }
        }
    }

    async fn scan_partition(
        &self,
        p: PartitionId,
        store: u64,
        count: u32,
        options: &ScanOptions,
    ) -> Result<Read<PartitionPage>> {
        let partitions = self.map().partition_count();
        let align = u8::try_from(ClusterCursor::partition_bits(partitions)).unwrap_or(32);
        let spec = ScanSpec {
            partition: p,
            cursor: store,
            count,
            prefix: options.prefix.clone(),
            values: options.values,
            align,
        };
        self.read_partition(p, |c| {
            let spec = spec.clone();
            async move { c.scan_partition(spec).await }
        })
        .await
    }

    /// The values of `keys` (one answer per key, in order), read from each
    /// partition's leader (or a follower when it is unreachable, marked
    /// stale), one request per partition.
    pub async fn mget(&self, keys: &[&[u8]]) -> Result<Vec<Read<Option<Value>>>> {
        let groups = self.group(keys.iter().enumerate().map(|(i, k)| (i, *k)));
        let asks = groups.into_iter().map(|(p, group)| async move {
            let (slots, keys): (Vec<usize>, Vec<Bytes>) = group.into_iter().unzip();
            let read = self
                .read_partition(p, |c| {
                    let keys = keys.clone();
                    async move { c.mget(p, keys).await }
                })
                .await?;
            Ok::<_, Error>((slots, read))
        });
        let mut answers: Vec<Option<Read<Option<Value>>>> = vec![None; keys.len()];
        for result in join_all(asks).await {
            let (slots, read) = result?;
            for (slot, value) in slots.into_iter().zip(read.value) {
                let value = value.map(|b| kv_codec::decode(&b)).transpose();
                if let Some(answer) = answers.get_mut(slot) {
                    *answer = Some(Read {
                        value: value.map_err(Error::BadValue)?,
                        partition: read.partition,
                        node: read.node,
                        stale: read.stale,
                    });
                }
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.ok_or_else(|| Error::UnexpectedReply {
                    node: NodeId::MAX,
                    what: "a value missing from an mget reply".into(),
                })
            })
            .collect()
    }

    /// Writes every pair: one atomic batch per partition, sent to each
    /// leader at once. **Not atomic across partitions**: on an error, the
    /// batches of other partitions may have been written. Returns one
    /// [`Written`] per partition written.
    pub async fn mset(&self, pairs: &[(&[u8], &Value)]) -> Result<Vec<Written>> {
        let encoded = pairs
            .iter()
            .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::from(v.encode())));
        let mut groups: BTreeMap<PartitionId, Vec<(Bytes, Bytes)>> = BTreeMap::new();
        for (k, v) in encoded {
            groups
                .entry(self.map().partition_of(&k))
                .or_default()
                .push((k, v));
        }
        let writes = groups.into_iter().map(|(p, batch)| async move {
            let write = |client: NodeClient| {
                let batch = batch.clone();
                async move { client.mset(p, batch).await }
            };
            let (node, position) = self.at_leader(p, write).await?;
            Ok(Written {
                partition: p,
                node,
                position,
            })
        });
        join_all(writes).await.into_iter().collect()
    }

    /// Writes a value that expires `ttl` after the leader takes it.
    pub async fn put_ttl(&self, key: &[u8], value: &Value, ttl: Duration) -> Result<Written> {
        let partition = self.map().partition_of(key);
        let bytes = Bytes::from(value.encode());
        let write = |client: NodeClient| {
            let bytes = bytes.clone();
            async move { client.put_ttl(key, bytes, ttl).await }
        };
        let (node, position) = self.at_leader(partition, write).await?;
        Ok(Written {
            partition,
            node,
            position,
        })
    }

    /// Makes an existing key expire `ttl` from now (at once when zero);
    /// false when the key does not exist.
    pub async fn expire(&self, key: &[u8], ttl: Duration) -> Result<bool> {
        self.set_expiry(key, Some(ttl)).await
    }

    /// Removes a key's expiry; false when the key does not exist.
    pub async fn persist(&self, key: &[u8]) -> Result<bool> {
        self.set_expiry(key, None).await
    }

    async fn set_expiry(&self, key: &[u8], ttl: Option<Duration>) -> Result<bool> {
        let partition = self.map().partition_of(key);
        let write = |client: NodeClient| async move { client.expire(key, ttl).await };
        Ok(self.at_leader(partition, write).await?.1)
    }

    /// A key's time to live, from the leader (or a follower, by its own
    /// clock, when the leader is unreachable).
    pub async fn ttl(&self, key: &[u8]) -> Result<Read<KeyTtl>> {
        let p = self.map().partition_of(key);
        self.read_partition(p, |c| {
            let key = Bytes::copy_from_slice(key);
            async move { c.ttl(&key).await }
        })
        .await
    }

    /// `items` grouped by partition, in order within each group.
    fn group<'a, T>(
        &self,
        items: impl Iterator<Item = (T, &'a [u8])>,
    ) -> BTreeMap<PartitionId, Vec<(T, Bytes)>> {
        let mut groups: BTreeMap<PartitionId, Vec<(T, Bytes)>> = BTreeMap::new();
        for (tag, key) in items {
            let p = self.map().partition_of(key);
            groups
                .entry(p)
                .or_default()
                .push((tag, Bytes::copy_from_slice(key)));
        }
        groups
    }
}

fn len_u32<T>(items: &[T]) -> u32 {
    u32::try_from(items.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_pack_partition_above_store_position() {
        assert_eq!(ClusterCursor::partition_bits(1), 0);
        assert_eq!(ClusterCursor::partition_bits(2), 1);
        assert_eq!(ClusterCursor::partition_bits(4), 2);
        assert_eq!(ClusterCursor::partition_bits(5), 3);
        let c = ClusterCursor::pack(3, 0xABCD_0000_0000_0007, 4);
        assert_eq!(
            c.to_u64(),
            0xC000_0000_0000_0000 | (0xABCD_0000_0000_0007 >> 2)
        );
        // An unaligned store cursor loses its low bits: a point at or
        // before, never after; an aligned one round-trips.
        assert_eq!(c.unpack(4).unwrap(), (3, 0xABCD_0000_0000_0004));
        let aligned = ClusterCursor::pack(2, 0x1234_5678_9ABC_DEF0, 4);
        assert_eq!(aligned.unpack(4).unwrap(), (2, 0x1234_5678_9ABC_DEF0));
        assert_eq!(ClusterCursor::pack(0, 0, 4), ClusterCursor::START);
        assert_eq!(ClusterCursor::START.unpack(4).unwrap(), (0, 0));
        assert_eq!(ClusterCursor::pack(0, 77, 1).unpack(1).unwrap(), (0, 77));
        // Partition order is cursor order.
        let late_in_1 = ClusterCursor::pack(1, u64::MAX, 3);
        let start_of_2 = ClusterCursor::pack(2, 0, 3);
        assert!(late_in_1.to_u64() < start_of_2.to_u64());
    }

    #[test]
    fn a_cursor_naming_a_missing_partition_is_refused() {
        // Three partitions take two bits; partition 3 does not exist.
        let bad = ClusterCursor::from_u64(0xC000_0000_0000_0000);
        assert!(matches!(
            bad.unpack(3),
            Err(Error::InvalidCursor {
                partition: 3,
                partitions: 3,
                ..
            })
        ));
    }
}

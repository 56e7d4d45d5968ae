//! Recovery's queue of key-directory inserts for one shard.

use super::Loc;

/// Recovery inserts queued for one shard. Keys are copied into one buffer
/// as they arrive, so the bucket-ordered insert later reads them from cache
/// rather than at random from wherever they came from.
#[derive(Default)]
pub(crate) struct Batch {
    keys: Vec<u8>,
    pub(super) items: Vec<BatchItem>,
}

#[derive(Clone, Copy)]
pub(super) struct BatchItem {
    pub(super) hash: u64,
    key_at: u32,
    key_len: u32,
    pub(super) loc: Loc,
    pub(super) expiry: Option<u64>,
}

impl Batch {
    /// A batch sized for about `items` entries.
    pub(crate) fn with_capacity(items: usize) -> Batch {
        Batch {
            keys: Vec::with_capacity(items * 24),
            items: Vec::with_capacity(items),
        }
    }

    pub(crate) fn push(&mut self, hash: u64, key: &[u8], loc: Loc, expiry: Option<u64>) {
        let key_at = self.keys.len() as u32;
        self.keys.extend_from_slice(key);
        let key_len = key.len() as u32;
        self.items.push(BatchItem {
            hash,
            key_at,
            key_len,
            loc,
            expiry,
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Bytes of keys queued.
    pub(crate) fn key_bytes(&self) -> usize {
        self.keys.len()
    }

    /// The location queued as entry `i`.
    pub(crate) fn locs(&self) -> impl Iterator<Item = &Loc> {
        self.items.iter().map(|it| &it.loc)
    }

    pub(crate) fn clear(&mut self) {
        self.keys.clear();
        self.items.clear();
    }

    pub(super) fn key(&self, item: &BatchItem) -> &[u8] {
        let start = item.key_at as usize;
        self.keys
            .get(start..start + item.key_len as usize)
            .unwrap_or_default()
    }
}

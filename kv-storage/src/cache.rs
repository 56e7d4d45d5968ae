//! The hot cache: recently written or read values, bounded in bytes.
//!
//! One [`HotCache`] is a byte budget that several stores share (a node holds
//! one for all its partitions). Entries are keyed by (store, key) and tagged
//! with the LSN of the record they copy. The key directory stays the source of
//! truth: a lookup passes the LSN the directory currently holds and a cached
//! entry with any other LSN is ignored, so a racing reader that fills the
//! cache with an old value can never make another reader see it.
//!
//! Eviction is CLOCK (second chance): each entry has a referenced bit set by
//! hits; the hand clears set bits and evicts the first clear one. The cache is
//! split into [`CACHE_SHARDS`] shards, each with `capacity / CACHE_SHARDS` of
//! the budget; a hit takes only a shared lock (the referenced bit is atomic),
//! so hot reads do not block each other.
//!
//! Each entry is charged its key and value bytes plus
//! [`ENTRY_OVERHEAD_BYTES`]; values larger than a quarter of a shard's budget
//! are not cached.
//!
//! # Why hand-written, not `quick_cache`
//!
//! `benches/cache.rs` calls both as a store calls its cache (precomputed
//! key hash, LSN checked on a hit, the same byte charge), 100k keys of 16 +
//! 100 bytes, one thread, three runs on a shared 2-core machine (noisy: ranges
//! are over the runs). Time per operation, `quick_cache` ÷ this cache:
//! a hit 0.75–1.02×, a miss 0.63–1.35×, an insert that evicts 1.37–1.84×,
//! skewed read-through (get, insert on a miss, budget for a tenth of the
//! keys) 1.11–1.34×. `quick_cache` keeps more of a skewed working set (hit
//! ratio 0.52–0.53 against 0.45 here). So neither is faster across the
//! board, and every write inserts (the cache holds recently written
//! values), where `quick_cache` is slowest. It also lacks what the stores
//! need from one shared budget: per-store key and byte counts
//! (`Store::stats`), dropping one store's entries on close, and never
//! replacing a newer LSN with an older one (each would be a wrapper of
//! its own). `kv inspect`'s hot-key listing (`entries`) would survive a
//! swap (`quick_cache::sync::Cache::iter`, filtered by store, as here).
//! Revisit if the hit ratio starts to matter more than write cost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::Lsn;

/// Number of cache shards.
pub const CACHE_SHARDS: usize = 16;
/// Bookkeeping bytes charged per cached entry on top of key and value.
pub const ENTRY_OVERHEAD_BYTES: u64 = 128;

/// A byte budget for hot values, shared by the stores given a clone of it.
#[derive(Clone)]
pub struct HotCache {
    inner: Arc<CacheInner>,
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache")
            .field("capacity_bytes", &self.capacity_bytes())
            .field("used_bytes", &self.used_bytes())
            .finish()
    }
}

struct CacheInner {
    shards: Box<[RwLock<Shard>]>,
    capacity: u64,
    used: AtomicU64,
    next_store: AtomicU64,
}

/// Per-store counters of what that store has in the cache.
#[derive(Default)]
struct Account {
    keys: AtomicU64,
    bytes: AtomicU64,
}

struct Slot {
    store: u64,
    hash: u64,
    lsn: Lsn,
    /// Key followed by value.
    data: Bytes,
    key_len: usize,
    referenced: AtomicBool,
    account: Arc<Account>,
}

impl Slot {
    fn key(&self) -> &[u8] {
        self.data.get(..self.key_len).unwrap_or_default()
    }

    fn charge(&self) -> u64 {
        self.data.len() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

#[derive(Default)]
struct Shard {
    table: HashTable<u32>,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    hand: usize,
    used: u64,
}

impl Shard {
    fn find(&self, hash: u64, store: u64, key: &[u8]) -> Option<&Slot> {
        let idx = self.table.find(hash, |&i| self.is(i, store, key))?;
        self.slot(*idx)
    }

    fn slot(&self, idx: u32) -> Option<&Slot> {
        self.slots.get(idx as usize).and_then(Option::as_ref)
    }

    fn is(&self, idx: u32, store: u64, key: &[u8]) -> bool {
        self.slot(idx)
            .is_some_and(|s| s.store == store && s.key() == key)
    }

    /// Removes slot `idx`; returns the bytes freed.
    fn evict(&mut self, idx: u32) -> u64 {
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::take) else {
            return 0;
        };
        if let Ok(e) = self.table.find_entry(slot.hash, |&i| i == idx) {
            e.remove();
        }
        self.free.push(idx);
        let charge = slot.charge();
        slot.account.keys.fetch_sub(1, Ordering::Relaxed);
        slot.account.bytes.fetch_sub(charge, Ordering::Relaxed);
        self.used -= charge;
        charge
    }

    /// Gives slot `idx` (holding the same key) a newer value in place;
    /// returns the charge it had, or `data` back if the slot is empty.
    fn overwrite(&mut self, idx: u32, data: Bytes, key_len: usize, lsn: Lsn) -> Result<u64, Bytes> {
        let Some(slot) = self.slots.get_mut(idx as usize).and_then(Option::as_mut) else {
            return Err(data);
        };
        let old = slot.charge();
        slot.data = data;
        slot.key_len = key_len;
        slot.lsn = lsn;
        let new = slot.charge();
        slot.account.bytes.fetch_add(new, Ordering::Relaxed);
        slot.account.bytes.fetch_sub(old, Ordering::Relaxed);
        self.used = self.used + new - old;
        Ok(old)
    }

    /// CLOCK: evicts until `need` more bytes fit in `budget`; returns freed.
    fn make_room(&mut self, need: u64, budget: u64) -> u64 {
        let mut freed = 0;
        let mut steps = 2 * self.slots.len() + 1;
        while self.used + need > budget && steps > 0 && !self.slots.is_empty() {
            steps -= 1;
            self.hand = (self.hand + 1) % self.slots.len();
            let idx = self.hand as u32;
            match self.slot(idx) {
                None => continue,
                Some(s) if s.referenced.swap(false, Ordering::Relaxed) => continue,
                Some(_) => freed += self.evict(idx),
            }
        }
        freed
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "free-list indices always name an existing slot"
    )]
    fn put(&mut self, slot: Slot) {
        let hash = slot.hash;
        self.used += slot.charge();
        slot.account.keys.fetch_add(1, Ordering::Relaxed);
        slot.account
            .bytes
            .fetch_add(slot.charge(), Ordering::Relaxed);
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(slot);
                i
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        };
        let slots = &self.slots;
        let hasher = |&i: &u32| {
            slots
                .get(i as usize)
                .and_then(Option::as_ref)
                .map_or(0, |s| s.hash)
        };
        self.table.insert_unique(hash, idx, hasher);
    }
}

impl HotCache {
    /// A cache holding at most `capacity_bytes` (0 disables caching).
    pub fn new(capacity_bytes: u64) -> HotCache {
        HotCache {
            inner: Arc::new(CacheInner {
                shards: (0..CACHE_SHARDS)
                    .map(|_| RwLock::new(Shard::default()))
                    .collect(),
                capacity: capacity_bytes,
                used: AtomicU64::new(0),
                next_store: AtomicU64::new(1),
            }),
        }
    }

    /// The byte budget.
    pub fn capacity_bytes(&self) -> u64 {
        self.inner.capacity
    }

    /// Bytes charged by all entries now (≤ capacity).
    pub fn used_bytes(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// Registers a store; its entries are separate from other stores'.
    pub(crate) fn register(&self) -> StoreCache {
        StoreCache {
            cache: self.clone(),
            store: self.inner.next_store.fetch_add(1, Ordering::Relaxed),
            account: Arc::new(Account::default()),
        }
    }

    fn shard_budget(&self) -> u64 {
        self.inner.capacity / CACHE_SHARDS as u64
    }
}

/// One store's view of a shared [`HotCache`].
pub(crate) struct StoreCache {
    cache: HotCache,
    store: u64,
    account: Arc<Account>,
}

impl StoreCache {
    fn mix(&self, hash: u64) -> u64 {
        hash ^ self.store.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "the index is reduced modulo the number of shards"
    )]
    fn shard(&self, mixed: u64) -> &RwLock<Shard> {
        &self.cache.inner.shards[(mixed >> 40) as usize % CACHE_SHARDS]
    }

    /// The cached value of `key` if it is the record with `lsn`.
    pub(crate) fn get(&self, hash: u64, key: &[u8], lsn: Lsn) -> Option<Bytes> {
        let h = self.mix(hash);
        let shard = self.shard(h).read();
        let slot = shard.find(h, self.store, key).filter(|s| s.lsn == lsn)?;
        slot.referenced.store(true, Ordering::Relaxed);
        Some(slot.data.slice(slot.key_len..))
    }

    /// Whether the record with `lsn` of `key` is cached.
    pub(crate) fn contains(&self, hash: u64, key: &[u8], lsn: Lsn) -> bool {
        let h = self.mix(hash);
        let shard = self.shard(h).read();
        shard.find(h, self.store, key).is_some_and(|s| s.lsn == lsn)
    }

    /// Whether an entry of `len` key + value bytes would be cached at all.
    pub(crate) fn accepts(&self, len: usize) -> bool {
        len as u64 + ENTRY_OVERHEAD_BYTES <= self.cache.shard_budget() / 4
    }

    /// Caches `data` (= key followed by value) as the record with `lsn`,
    /// unless a newer record of the key is cached or it does not fit.
    pub(crate) fn insert(&self, hash: u64, data: Bytes, key_len: usize, lsn: Lsn) {
        let budget = self.cache.shard_budget();
        let charge = data.len() as u64 + ENTRY_OVERHEAD_BYTES;
        if !self.accepts(data.len()) {
            return;
        }
        let h = self.mix(hash);
        let mut shard = self.shard(h).write();
        let key = data.get(..key_len).unwrap_or_default();
        let existing = shard
            .table
            .find(h, |&i| shard.is(i, self.store, key))
            .copied();
        if let Some(idx) = existing {
            if shard.slot(idx).is_some_and(|s| s.lsn >= lsn) {
                return;
            }
            // An overwrite: the slot takes the new value in place (one
            // table probe instead of a removal and an insertion).
            match shard.overwrite(idx, data, key_len, lsn) {
                Ok(old) => {
                    let freed = old + shard.make_room(0, budget);
                    drop(shard);
                    self.adjust_used(charge, freed);
                    return;
                }
                Err(data) => return self.insert_new(shard, h, data, key_len, lsn, budget),
            }
        }
        self.insert_new(shard, h, data, key_len, lsn, budget);
    }

    /// [`StoreCache::insert`] of a key `shard` does not hold.
    fn insert_new(
        &self,
        mut shard: RwLockWriteGuard<'_, Shard>,
        h: u64,
        data: Bytes,
        key_len: usize,
        lsn: Lsn,
        budget: u64,
    ) {
        let charge = data.len() as u64 + ENTRY_OVERHEAD_BYTES;
        let freed = shard.make_room(charge, budget);
        let slot = Slot {
            store: self.store,
            hash: h,
            lsn,
            data,
            key_len,
            referenced: AtomicBool::new(false),
            account: self.account.clone(),
        };
        shard.put(slot);
        drop(shard);
        self.adjust_used(charge, freed);
    }

    fn adjust_used(&self, added: u64, freed: u64) {
        let used = &self.cache.inner.used;
        used.fetch_add(added, Ordering::Relaxed);
        used.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Drops `key` from the cache.
    pub(crate) fn remove(&self, hash: u64, key: &[u8]) {
        let h = self.mix(hash);
        let mut shard = self.shard(h).write();
        let existing = shard
            .table
            .find(h, |&i| shard.is(i, self.store, key))
            .copied();
        if let Some(idx) = existing {
            let freed = shard.evict(idx);
            drop(shard);
            self.adjust_used(0, freed);
        }
    }

    /// Every (key, LSN) of this store in the cache.
    pub(crate) fn entries(&self) -> Vec<(Bytes, Lsn)> {
        let mut out = Vec::new();
        for shard in self.cache.inner.shards.iter() {
            let shard = shard.read();
            let mine = shard
                .slots
                .iter()
                .flatten()
                .filter(|s| s.store == self.store);
            out.extend(mine.map(|s| (s.data.slice(..s.key_len), s.lsn)));
        }
        out
    }

    /// Drops every entry of this store.
    pub(crate) fn purge(&self) {
        for shard in self.cache.inner.shards.iter() {
            let mut shard = shard.write();
            let mine: Vec<u32> = (0..shard.slots.len() as u32)
                .filter(|&i| shard.slot(i).is_some_and(|s| s.store == self.store))
                .collect();
            let freed: u64 = mine.into_iter().map(|i| shard.evict(i)).sum();
            drop(shard);
            self.adjust_used(0, freed);
        }
    }

    /// (entries, bytes charged) of this store.
    pub(crate) fn usage(&self) -> (u64, u64) {
        let keys = self.account.keys.load(Ordering::Relaxed);
        (keys, self.account.bytes.load(Ordering::Relaxed))
    }
}

/// Benchmark hook: one store's view of a [`HotCache`], called as the
/// store calls it (`benches/cache.rs` compares it with `quick_cache`).
/// Not part of the supported API.
#[doc(hidden)]
pub struct CacheHandle(StoreCache);

impl HotCache {
    /// Benchmark hook: registers a store view ([`CacheHandle`]).
    #[doc(hidden)]
    pub fn bench_handle(&self) -> CacheHandle {
        CacheHandle(self.register())
    }
}

impl CacheHandle {
    /// The cached value of `key` (hashed to `hash`) if it is record `lsn`.
    pub fn get(&self, hash: u64, key: &[u8], lsn: Lsn) -> Option<Bytes> {
        self.0.get(hash, key, lsn)
    }

    /// Caches `data` (key then value) as record `lsn` of the key.
    pub fn insert(&self, hash: u64, data: Bytes, key_len: usize, lsn: Lsn) {
        self.0.insert(hash, data, key_len, lsn);
    }
}

impl Drop for StoreCache {
    fn drop(&mut self) {
        self.purge();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &[u8], value: &[u8]) -> Bytes {
        Bytes::from([key, value].concat())
    }

    #[test]
    fn get_requires_matching_lsn() {
        let cache = HotCache::new(1 << 20);
        let s = cache.register();
        s.insert(1, data(b"k", b"v1"), 1, 5);
        assert_eq!(s.get(1, b"k", 5).as_deref(), Some(&b"v1"[..]));
        assert_eq!(s.get(1, b"k", 6), None);
        s.insert(1, data(b"k", b"old"), 1, 4);
        assert_eq!(
            s.get(1, b"k", 5).as_deref(),
            Some(&b"v1"[..]),
            "older lsn ignored"
        );
        s.insert(1, data(b"k", b"v2"), 1, 6);
        assert_eq!(s.get(1, b"k", 6).as_deref(), Some(&b"v2"[..]));
        s.remove(1, b"k");
        assert!(!s.contains(1, b"k", 6));
        assert_eq!(cache.used_bytes(), 0);
    }

    #[test]
    fn stores_are_separate_and_share_the_budget() {
        let cache = HotCache::new(16 * 4096);
        let (a, b) = (cache.register(), cache.register());
        a.insert(9, data(b"k", b"a"), 1, 1);
        b.insert(9, data(b"k", b"b"), 1, 1);
        assert_eq!(a.get(9, b"k", 1).as_deref(), Some(&b"a"[..]));
        assert_eq!(b.get(9, b"k", 1).as_deref(), Some(&b"b"[..]));
        for i in 0..10_000u64 {
            a.insert(i * 7919, data(&i.to_le_bytes(), &[0; 100]), 8, 1);
        }
        assert!(cache.used_bytes() <= cache.capacity_bytes());
        assert_eq!(a.usage().1 + b.usage().1, cache.used_bytes());
        drop(a);
        assert_eq!(cache.used_bytes(), b.usage().1);
    }

    #[test]
    fn clock_keeps_referenced_entries() {
        let cache = HotCache::new(CACHE_SHARDS as u64 * 10 * (ENTRY_OVERHEAD_BYTES + 9));
        let s = cache.register();
        // Same shard for every key: vary only low hash bits.
        s.insert(0, data(b"hot", b"value!"), 3, 1);
        for i in 1..200u64 {
            assert!(s.get(0, b"hot", 1).is_some(), "hot key evicted at {i}");
            s.insert(i, data(&i.to_le_bytes()[..3], b"cold!!"), 3, 1);
        }
        assert!(cache.used_bytes() <= cache.capacity_bytes());
    }

    #[test]
    fn overwrites_in_place_keep_the_accounts_and_the_budget() {
        // One shard's budget fits a few entries of these sizes.
        let cache = HotCache::new(CACHE_SHARDS as u64 * 4 * (ENTRY_OVERHEAD_BYTES + 64));
        let s = cache.register();
        let charge = |len: usize| len as u64 + ENTRY_OVERHEAD_BYTES;
        s.insert(0, data(b"k", &[1; 10]), 1, 1);
        assert_eq!(s.usage(), (1, charge(11)));
        s.insert(0, data(b"k", &[2; 60]), 1, 2);
        assert_eq!(s.usage(), (1, charge(61)), "grown in place");
        assert_eq!(s.get(0, b"k", 2).as_deref(), Some(&[2; 60][..]));
        s.insert(0, data(b"k", &[3; 5]), 1, 3);
        assert_eq!(s.usage(), (1, charge(6)), "shrunk in place");
        assert_eq!(cache.used_bytes(), charge(6));
        // Overwrites that grow past the budget evict, and the totals agree.
        for lsn in 4..200u64 {
            s.insert(
                lsn % 7,
                data(&[lsn as u8 % 7], &vec![lsn as u8; (lsn % 64) as usize]),
                1,
                lsn,
            );
            assert!(cache.used_bytes() <= cache.capacity_bytes());
            assert_eq!(s.usage().1, cache.used_bytes());
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = HotCache::new(0);
        let s = cache.register();
        s.insert(1, data(b"k", b"v"), 1, 1);
        assert_eq!(s.get(1, b"k", 1), None);
        assert_eq!(s.usage(), (0, 0));
    }
}

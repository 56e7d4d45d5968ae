//! The key directory: key → where its latest record lives.
//!
//! Every live key has one [`Loc`] (segment, offset, length, LSN). The map is
//! split into [`SHARDS`] shards, each behind its own `RwLock`, so readers
//! never block each other and a writer blocks only readers of one shard for
//! the length of a hash-table update.
//!
//! # Hash order, for scans
//!
//! Keys are hashed with xxh3 and a *fixed* seed, so a key's hash is the same
//! in every process and on every replica: the hash space is the order a scan
//! walks in, and a scan cursor is simply the next hash position (see
//! `scan.rs`). The space is cut into contiguous ranges: a shard owns the
//! keys whose top [`SHARD_BITS`] bits are its index, and inside a shard
//! `2^depth` sub-tables each own the range given by the next `depth` bits.
//! Sub-tables are small (a shard doubles its depth when they average more
//! than [`SPLIT_AT`] keys), so one scan step hashes and sorts at most one
//! sub-table under one read lock. A split cuts every range in two halves and
//! never reorders ranges, so a cursor stays valid across splits, restarts
//! (different depths) and compaction (which moves records, not keys).
//! hashbrown is given a remix of the hash ([`table_hash`]) because the top
//! bits it uses for its control bytes are constant inside a sub-table.
//!
//! The price of a fixed seed: someone who can choose many keys of one
//! partition can choose colliding ones and slow that partition's table down
//! (a random per-process seed would stop that, but would give no cursor that
//! survives a restart or a failover to another replica).
//!
//! Memory: the target is ≤ 64 bytes per key beyond the key bytes. A shard is a
//! `hashbrown::HashTable<Slot>` whose 24-byte slot holds a 4-byte reference
//! into a key arena plus the 20-byte `Loc` (no per-key heap allocation). With
//! one control byte per bucket and a load factor between 7/16 and 7/8, that is
//! 29–57 bytes per key, plus one varint length byte per key in the arena.
//! Keys live in 64 KiB arena chunks (a key longer than a chunk gets its own);
//! removed keys leave garbage that is reclaimed by rebuilding the shard's
//! arena once garbage exceeds the live bytes.
//!
//! Recovery also stores tombstones here (flag bit in `Loc::len`) so that an
//! older value read later cannot resurrect a deleted key; they are swept out
//! with [`KeyDir::retain`] before the store opens. Recovery queues its
//! inserts per shard (`recovery_batch.rs`) and inserts each queue under one
//! lock; the key arena is `arena.rs`.
//!
//! Expiry: a key's expiry time (if any) is kept beside the tables, per
//! shard and under the same lock (`expiry.rs`), set and cleared together
//! with the key's location so the two never disagree. The directory itself
//! never hides an expired key; callers compare with their clock
//! ([`KeyDir::get_entry`]) or pass it in ([`KeyDir::scan_step`],
//! [`KeyDir::due`]).

use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::HashTable;
use hashbrown::hash_table::Entry;
use parking_lot::RwLock;

use crate::Lsn;
use crate::error::Error;
use crate::segment::SegmentId;

mod arena;
mod expiry;
mod recovery_batch;

use arena::{Arena, CHUNK_BYTES};
use expiry::Expiries;
pub(crate) use recovery_batch::Batch;
use recovery_batch::BatchItem;

/// Bits of the hash (the top ones) that pick the shard.
pub(crate) const SHARD_BITS: u32 = 4;
/// Number of shards.
pub(crate) const SHARDS: usize = 1 << SHARD_BITS;
/// A shard doubles its sub-tables when they average more keys than this.
pub(crate) const SPLIT_AT: usize = 512;
/// The fixed xxh3 seed of the key hash (see "Hash order, for scans").
const SEED: u64 = 0x6b76_7363_616e_0001;
const TOMBSTONE_BIT: u32 = 1 << 31;

/// Where a record lives. 20 bytes, 4-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub segment: SegmentId,
    pub offset: u32,
    len_flags: u32,
    lsn_lo: u32,
    lsn_hi: u32,
}

impl Loc {
    pub(crate) fn new(segment: SegmentId, offset: u32, len: u32, lsn: Lsn) -> Loc {
        Loc {
            segment,
            offset,
            len_flags: len & !TOMBSTONE_BIT,
            lsn_lo: lsn as u32,
            lsn_hi: (lsn >> 32) as u32,
        }
    }

    /// A recovery-time tombstone entry.
    pub(crate) fn tombstone(segment: SegmentId, offset: u32, len: u32, lsn: Lsn) -> Loc {
        let mut loc = Loc::new(segment, offset, len, lsn);
        loc.len_flags |= TOMBSTONE_BIT;
        loc
    }

    pub(crate) fn len(&self) -> u32 {
        self.len_flags & !TOMBSTONE_BIT
    }

    pub(crate) fn lsn(&self) -> Lsn {
        u64::from(self.lsn_hi) << 32 | u64::from(self.lsn_lo)
    }

    pub(crate) fn is_tombstone(&self) -> bool {
        self.len_flags & TOMBSTONE_BIT != 0
    }

    /// Same record location (ignores LSN and flags).
    pub(crate) fn same_place(&self, other: &Loc) -> bool {
        self.segment == other.segment && self.offset == other.offset
    }
}

/// Result of [`KeyDir::insert_newer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// The key was absent.
    Inserted,
    /// The key pointed at this older record.
    Replaced(Loc),
    /// The key already points at a record with an equal or higher LSN.
    Stale,
}

#[derive(Clone, Copy)]
struct Slot {
    key: u32,
    loc: Loc,
}

/// The hash hashbrown sees: a bijective remix whose low bits (bucket index)
/// and top bits (control byte) do not depend only on the bits that pick the
/// shard and sub-table.
fn table_hash(hash: u64) -> u64 {
    hash.rotate_left(32).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Index of the sub-table owning `hash` at `depth`.
fn sub_index(hash: u64, depth: u32) -> usize {
    match depth {
        0 => 0,
        d => ((hash << SHARD_BITS) >> (64 - d)) as usize,
    }
}

/// First hash after the range of sub-table `sub` of shard `shard` at
/// `depth`; `None` past the end of the hash space.
fn range_end(shard: usize, sub: usize, depth: u32) -> Option<u64> {
    let width_bits = 64 - SHARD_BITS - depth;
    let start = (shard as u64) << (64 - SHARD_BITS) | (sub as u64) << width_bits;
    start.checked_add(1u64 << width_bits)
}

/// Depth at which `keys` keys average at most [`SPLIT_AT`] per sub-table.
fn depth_for(keys: usize) -> u32 {
    let tables = keys.div_ceil(SPLIT_AT).max(1).next_power_of_two();
    tables.trailing_zeros().min(64 - SHARD_BITS - 1)
}

struct Shard {
    /// `2^depth` tables, in hash order.
    tables: Vec<HashTable<Slot>>,
    depth: u32,
    len: usize,
    arena: Arena,
    expiries: Expiries,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            tables: vec![HashTable::new()],
            depth: 0,
            len: 0,
            arena: Arena::default(),
            expiries: Expiries::default(),
        }
    }
}

impl Shard {
    fn table(&self, hash: u64) -> Option<&HashTable<Slot>> {
        self.tables.get(sub_index(hash, self.depth))
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Slot> {
        let table = self.table(hash)?;
        table.find(table_hash(hash), |s| self.arena.key(s.key) == key)
    }

    fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.tables.iter().flat_map(HashTable::iter)
    }

    /// Re-spreads the slots over `2^depth` tables (a deeper or equal
    /// depth), each pre-sized for `per_table` keys.
    fn split_to(&mut self, depth: u32, per_table: usize, seed: Seed) {
        if depth <= self.depth && per_table == 0 {
            return;
        }
        let depth = depth.max(self.depth);
        let count = 1usize << depth;
        let per_table = per_table.max(self.len / count + 1);
        let mut tables: Vec<HashTable<Slot>> = (0..count)
            .map(|_| HashTable::with_capacity(per_table))
            .collect();
        let arena = &self.arena;
        let rehash = |s: &Slot| table_hash(seed.hash(arena.key(s.key)));
        for slot in self.tables.drain(..).flat_map(HashTable::into_iter) {
            let hash = seed.hash(arena.key(slot.key));
            if let Some(t) = tables.get_mut(sub_index(hash, depth)) {
                t.insert_unique(table_hash(hash), slot, rehash);
            }
        }
        self.tables = tables;
        self.depth = depth;
    }

    /// Doubles the sub-tables once they average more than [`SPLIT_AT`].
    fn maybe_split(&mut self, seed: Seed) {
        if self.len > SPLIT_AT << self.depth {
            self.split_to(self.depth + 1, 0, seed);
        }
    }

    /// Rebuilds the arena when removed keys outweigh live ones.
    fn maybe_compact_arena(&mut self) {
        let arena = &self.arena;
        if arena.garbage < CHUNK_BYTES || arena.garbage < arena.live {
            return;
        }
        let mut fresh = Arena::default();
        let mut moved = Vec::new();
        let track = self.expiries.len() > 0;
        for slot in self.tables.iter_mut().flat_map(HashTable::iter_mut) {
            // Cannot fail: the fresh arena holds fewer bytes than the old one.
            if let Some(at) = fresh.push(self.arena.key(slot.key)) {
                if track {
                    moved.push((slot.key, at));
                }
                slot.key = at;
            }
        }
        self.arena = fresh;
        if track {
            self.expiries = self.expiries.remapped(moved.into_iter());
        }
    }
}

/// The sharded key directory.
pub(crate) struct KeyDir {
    shards: Box<[RwLock<Shard>]>,
    hasher: Seed,
    len: AtomicUsize,
}

#[derive(Clone, Copy)]
struct Seed(u64);

impl Seed {
    fn hash(self, key: &[u8]) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(key, self.0)
    }
}

impl KeyDir {
    pub(crate) fn new() -> KeyDir {
        KeyDir {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            hasher: Seed(SEED),
            len: AtomicUsize::new(0),
        }
    }

    /// The hash used for `key` here and in the hot cache.
    pub(crate) fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash(key)
    }

    /// Which shard `hash` belongs to.
    pub(crate) fn shard_index(&self, hash: u64) -> usize {
        (hash >> (64 - SHARD_BITS)) as usize
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "shard_index keeps the top SHARD_BITS bits: always below SHARDS"
    )]
    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[self.shard_index(hash)]
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Where `key` points, whether or not it has expired.
    #[cfg(test)]
    pub(crate) fn get(&self, hash: u64, key: &[u8]) -> Option<Loc> {
        self.shard(hash).read().find(hash, key).map(|s| s.loc)
    }

    /// Where `key` points and when it expires (unix ms), if it does.
    pub(crate) fn get_entry(&self, hash: u64, key: &[u8]) -> Option<(Loc, Option<u64>)> {
        let shard = self.shard(hash).read();
        let slot = shard.find(hash, key)?;
        Some((slot.loc, shard.expiries.get(slot.key)))
    }

    /// Fails if inserting a new key of `key_len` bytes could run out of arena
    /// address space. Writers call this before appending the record.
    pub(crate) fn check_room(&self, hash: u64, key_len: usize) -> Result<(), Error> {
        if self.shard(hash).read().arena.has_room(key_len) {
            return Ok(());
        }
        let mut shard = self.shard(hash).write();
        shard.maybe_compact_arena();
        match shard.arena.has_room(key_len) {
            true => Ok(()),
            false => Err(Error::KeyDirectoryFull { keys: self.len() }),
        }
    }

    /// Points `key` at `loc` (expiring at `expiry`), returning the previous
    /// location.
    pub(crate) fn insert(
        &self,
        hash: u64,
        key: &[u8],
        loc: Loc,
        expiry: Option<u64>,
    ) -> Result<Option<Loc>, Error> {
        self.upsert(hash, key, (loc, expiry), |_| true)
            .map(|u| match u {
                Upsert::Replaced(old) => Some(old),
                Upsert::Inserted | Upsert::Stale => None,
            })
    }

    /// Points `key` at `loc` (expiring at `expiry`) unless it points at an
    /// equal or newer LSN.
    pub(crate) fn insert_newer(
        &self,
        hash: u64,
        key: &[u8],
        loc: Loc,
        expiry: Option<u64>,
    ) -> Result<Upsert, Error> {
        self.upsert(hash, key, (loc, expiry), |old| loc.lsn() > old.lsn())
    }
    /// [`KeyDir::insert_newer`] for a batch of keys of one shard under one
    /// lock; `out[i]` receives the result for entry `i`. The inserts are done
    /// in the order of the sub-table and bucket each key lands in, so a large
    /// batch sweeps the tables in address order instead of missing the cache
    /// at random (the outcome does not depend on the order: the highest LSN
    /// wins).
    pub(crate) fn insert_newer_batch(
        &self,
        shard: usize,
        batch: &Batch,
        out: &mut Vec<Upsert>,
    ) -> Result<(), Error> {
        out.clear();
        out.resize(batch.len(), Upsert::Stale);
        let Some(lock) = self.shards.get(shard) else {
            return Ok(());
        };
        let mut guard = lock.write();
        let bucket_order = |it: &BatchItem| {
            let sub = sub_index(it.hash, guard.depth);
            let mask = guard
                .tables
                .get(sub)
                .map_or(0, |t| t.num_buckets().saturating_sub(1)) as u64;
            ((sub as u64) << 32) | (table_hash(it.hash) & mask)
        };
        let mut order: Vec<(u64, usize)> = batch
            .items
            .iter()
            .enumerate()
            .map(|(i, it)| (bucket_order(it), i))
            .collect();
        order.sort_unstable();
        let mut inserted = 0;
        for (_, i) in order {
            let (Some(it), Some(slot)) = (batch.items.get(i), out.get_mut(i)) else {
                continue;
            };
            let newer = |old: &Loc| it.loc.lsn() > old.lsn();
            let key = batch.key(it);
            let target = (it.loc, it.expiry);
            let result = Self::upsert_in(&mut guard, self.hasher, it.hash, key, target, newer);
            *slot = result.map_err(|()| Error::KeyDirectoryFull { keys: self.len() })?;
            inserted += usize::from(*slot == Upsert::Inserted);
        }
        self.len.fetch_add(inserted, Ordering::Relaxed);
        Ok(())
    }

    /// Insert-or-replace inside a locked shard (the expiry goes with the
    /// location); `Err` if the arena is full.
    fn upsert_in(
        shard: &mut Shard,
        seed: Seed,
        hash: u64,
        key: &[u8],
        (loc, expiry): (Loc, Option<u64>),
        replace: impl FnOnce(&Loc) -> bool,
    ) -> Result<Upsert, ()> {
        let Shard {
            tables,
            depth,
            arena,
            len,
            expiries,
        } = &mut *shard;
        let table = tables.get_mut(sub_index(hash, *depth)).ok_or(())?;
        let entry = table.entry(
            table_hash(hash),
            |s| arena.key(s.key) == key,
            |s| table_hash(seed.hash(arena.key(s.key))),
        );
        match entry {
            Entry::Occupied(mut e) => {
                let slot = e.get_mut();
                if !replace(&slot.loc) {
                    return Ok(Upsert::Stale);
                }
                expiries.set(slot.key, expiry);
                Ok(Upsert::Replaced(std::mem::replace(&mut slot.loc, loc)))
            }
            Entry::Vacant(e) => {
                let at = arena.push(key).ok_or(())?;
                e.insert(Slot { key: at, loc });
                expiries.set(at, expiry);
                *len += 1;
                shard.maybe_split(seed);
                Ok(Upsert::Inserted)
            }
        }
    }

    fn upsert(
        &self,
        hash: u64,
        key: &[u8],
        target: (Loc, Option<u64>),
        replace: impl FnOnce(&Loc) -> bool,
    ) -> Result<Upsert, Error> {
        let mut guard = self.shard(hash).write();
        let result = Self::upsert_in(&mut guard, self.hasher, hash, key, target, replace);
        let upsert = result.map_err(|()| Error::KeyDirectoryFull { keys: self.len() })?;
        if upsert == Upsert::Inserted {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        Ok(upsert)
    }

    /// Removes `key`, returning where it pointed.
    pub(crate) fn remove(&self, hash: u64, key: &[u8]) -> Option<Loc> {
        self.remove_where(hash, key, |_| true)
    }

    /// Removes `key` if it still points at the record at `at` (compaction
    /// dropping an expired record), returning where it pointed.
    pub(crate) fn remove_if(&self, hash: u64, key: &[u8], at: &Loc) -> Option<Loc> {
        self.remove_where(hash, key, |loc| loc.same_place(at))
    }

    fn remove_where(&self, hash: u64, key: &[u8], cond: impl FnOnce(&Loc) -> bool) -> Option<Loc> {
        let mut guard = self.shard(hash).write();
        let Shard {
            tables,
            depth,
            arena,
            len,
            expiries,
        } = &mut *guard;
        let table = tables.get_mut(sub_index(hash, *depth))?;
        let entry = table
            .find_entry(table_hash(hash), |s| arena.key(s.key) == key)
            .ok()?;
        if !cond(&entry.get().loc) {
            return None;
        }
        let (slot, _) = entry.remove();
        expiries.set(slot.key, None);
        arena.release(key.len());
        *len -= 1;
        self.len.fetch_sub(1, Ordering::Relaxed);
        guard.maybe_compact_arena();
        Some(slot.loc)
    }

    /// Moves `key` from `from` to `to` if it still points at `from`
    /// (compaction install). Returns whether it moved.
    pub(crate) fn replace_if(&self, hash: u64, key: &[u8], from: &Loc, to: Loc) -> bool {
        let mut guard = self.shard(hash).write();
        let Shard {
            tables,
            depth,
            arena,
            ..
        } = &mut *guard;
        let Some(table) = tables.get_mut(sub_index(hash, *depth)) else {
            return false;
        };
        match table.find_mut(table_hash(hash), |s| arena.key(s.key) == key) {
            Some(slot) if slot.loc.same_place(from) => {
                slot.loc = to;
                true
            }
            _ => false,
        }
    }

    /// Calls `f` for every entry (key, location, expiry), one shard
    /// (read-locked) at a time.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8], Loc, Option<u64>)) {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for slot in shard.slots() {
                f(
                    shard.arena.key(slot.key),
                    slot.loc,
                    shard.expiries.get(slot.key),
                );
            }
        }
    }

    /// Whether any key is due at `now` (expiry ≤ `now`).
    pub(crate) fn any_due(&self, now: u64) -> bool {
        let due = |s: &RwLock<Shard>| s.read().expiries.due(now).next().is_some();
        self.shards.iter().any(due)
    }

    /// Up to `max` keys of shard `shard` that are due at `now` (expiry ≤
    /// `now`), earliest first, passed to `f` with their hashes; returns how
    /// many were passed. `O(log n)` per key under one read lock.
    pub(crate) fn due(
        &self,
        shard: usize,
        now: u64,
        max: usize,
        mut f: impl FnMut(u64, &[u8]),
    ) -> usize {
        let Some(lock) = self.shards.get(shard) else {
            return 0;
        };
        let guard = lock.read();
        let mut passed = 0;
        for (_, key_ref) in guard.expiries.due(now).take(max) {
            let key = guard.arena.key(key_ref);
            f(self.hash(key), key);
            passed += 1;
        }
        passed
    }

    /// One scan step: the keys of the one sub-table that holds position
    /// `from`, with hashes at or after `from`, in hash order, at most
    /// `count` of them (more only when several keys share the last hash)
    /// passed to `f` with their hashes. Keys expired at `now` are skipped.
    /// Returns the position after the last key passed, or after the
    /// sub-table's range if all were, or `None` when that is past the end
    /// of the hash space.
    pub(crate) fn scan_step(
        &self,
        from: u64,
        count: usize,
        now: u64,
        mut f: impl FnMut(u64, &[u8]),
    ) -> Option<u64> {
        let shard_at = self.shard_index(from);
        let guard = self.shard(from).read();
        let sub = sub_index(from, guard.depth);
        let live = |s: &&Slot| guard.expiries.get(s.key).is_none_or(|at| at > now);
        let mut found: Vec<(u64, &[u8])> = guard
            .tables
            .get(sub)
            .into_iter()
            .flat_map(HashTable::iter)
            .filter(live)
            .map(|s| guard.arena.key(s.key))
            .map(|k| (self.hash(k), k))
            .filter(|(h, _)| *h >= from)
            .collect();
        found.sort_unstable();
        let Some(&(cut, _)) = found.get(count.max(1) - 1).filter(|_| found.len() > count) else {
            found.iter().for_each(|(h, k)| f(*h, k));
            return range_end(shard_at, sub, guard.depth);
        };
        let taken = found.iter().take_while(|(h, _)| *h <= cut);
        taken.for_each(|(h, k)| f(*h, k));
        cut.checked_add(1)
    }

    /// Keeps only entries for which `keep` is true.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&Loc) -> bool) {
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            let Shard {
                tables,
                arena,
                len,
                expiries,
                ..
            } = &mut *guard;
            let mut removed = 0;
            for table in tables.iter_mut() {
                table.retain(|slot| {
                    let k = keep(&slot.loc);
                    if !k {
                        expiries.set(slot.key, None);
                        arena.release(arena.key(slot.key).len());
                        removed += 1;
                    }
                    k
                });
            }
            *len -= removed;
            self.len.fetch_sub(removed, Ordering::Relaxed);
            guard.maybe_compact_arena();
        }
    }

    /// Removes every entry and frees the memory.
    pub(crate) fn clear(&self) {
        for shard in self.shards.iter() {
            *shard.write() = Shard::default();
        }
        self.len.store(0, Ordering::Relaxed);
    }

    /// Pre-sizes for `additional` more keys spread over the shards.
    pub(crate) fn reserve(&self, additional: usize) {
        let per_shard = additional / SHARDS + 1;
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            let depth = depth_for(guard.len + per_shard);
            let per_table = (guard.len + per_shard) >> depth;
            guard.split_to(depth, per_table + 1, self.hasher);
        }
    }

    /// Gives back the table memory pre-sizing overshot: recovery reserves
    /// room for every record it will load, overwritten and deleted ones
    /// included, so after an overwrite-heavy log the tables are larger than
    /// their keys need. Each table is cut to the smallest size that holds
    /// its keys — the size a table that grew one insert at a time would
    /// have — so the bytes per key after a reopen are those of a fresh load.
    /// A table already that small is left alone (no rehash).
    pub(crate) fn shrink_to_fit(&self) {
        let seed = self.hasher;
        for shard in self.shards.iter() {
            let mut guard = shard.write();
            let Shard { tables, arena, .. } = &mut *guard;
            for table in tables.iter_mut() {
                let rehash = |s: &Slot| table_hash(seed.hash(arena.key(s.key)));
                table.shrink_to(table.len(), rehash);
            }
        }
    }

    /// Heap bytes held (tables and arenas).
    pub(crate) fn memory_bytes(&self) -> usize {
        let shard_bytes = |s: &RwLock<Shard>| {
            let s = s.read();
            let tables: usize = s.tables.iter().map(HashTable::allocation_size).sum();
            let table_structs = s.tables.capacity() * std::mem::size_of::<HashTable<Slot>>();
            let arena = s.arena.bytes() + s.arena.chunks.capacity() * 24;
            tables + table_structs + arena + s.expiries.memory_bytes()
        };
        self.shards.iter().map(shard_bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(lsn: Lsn) -> Loc {
        Loc::new(1, lsn as u32, 10, lsn)
    }

    #[test]
    fn loc_is_small_and_roundtrips() {
        assert_eq!(std::mem::size_of::<Loc>(), 20);
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        let l = Loc::tombstone(7, 9, 100, u64::MAX - 1);
        assert_eq!(
            (l.segment, l.offset, l.len(), l.lsn()),
            (7, 9, 100, u64::MAX - 1)
        );
        assert!(l.is_tombstone());
        assert!(!Loc::new(7, 9, 100, 1).is_tombstone());
    }

    #[test]
    fn insert_get_remove() {
        let kd = KeyDir::new();
        let h = kd.hash(b"a");
        assert_eq!(kd.insert(h, b"a", loc(1), None).unwrap(), None);
        assert_eq!(kd.insert(h, b"a", loc(2), None).unwrap(), Some(loc(1)));
        assert_eq!(kd.get(h, b"a"), Some(loc(2)));
        assert_eq!(kd.get(kd.hash(b"b"), b"b"), None);
        assert_eq!(kd.len(), 1);
        assert_eq!(kd.remove(h, b"a"), Some(loc(2)));
        assert_eq!(kd.remove(h, b"a"), None);
        assert_eq!(kd.len(), 0);
    }

    #[test]
    fn insert_newer_keeps_highest_lsn() {
        let kd = KeyDir::new();
        let h = kd.hash(b"k");
        assert_eq!(
            kd.insert_newer(h, b"k", loc(5), None).unwrap(),
            Upsert::Inserted
        );
        assert_eq!(
            kd.insert_newer(h, b"k", loc(3), None).unwrap(),
            Upsert::Stale
        );
        assert_eq!(
            kd.insert_newer(h, b"k", loc(5), None).unwrap(),
            Upsert::Stale
        );
        assert_eq!(
            kd.insert_newer(h, b"k", loc(9), None).unwrap(),
            Upsert::Replaced(loc(5))
        );
    }

    #[test]
    fn many_keys_with_churn_and_arena_rebuild() {
        let kd = KeyDir::new();
        let key = |i: u32| format!("key-{i}-{}", "x".repeat((i % 40) as usize)).into_bytes();
        for i in 0..20_000 {
            let k = key(i);
            kd.insert(kd.hash(&k), &k, loc(u64::from(i) + 1), None)
                .unwrap();
        }
        for i in (0..20_000).filter(|i| i % 3 != 0) {
            let k = key(i);
            assert!(kd.remove(kd.hash(&k), &k).is_some());
        }
        for i in 0..20_000 {
            let k = key(i);
            let want = (i % 3 == 0).then(|| loc(u64::from(i) + 1));
            assert_eq!(kd.get(kd.hash(&k), &k), want, "key {i}");
        }
        let mut seen = 0;
        kd.for_each(|k, l, _| {
            assert_eq!(k, &key(l.lsn() as u32 - 1)[..]);
            seen += 1;
        });
        assert_eq!(seen, kd.len());
    }

    #[test]
    fn big_keys_get_their_own_chunk() {
        let kd = KeyDir::new();
        let big = vec![7u8; CHUNK_BYTES + 10];
        kd.insert(kd.hash(&big), &big, loc(1), None).unwrap();
        kd.insert(kd.hash(b"small"), b"small", loc(2), None)
            .unwrap();
        assert_eq!(kd.get(kd.hash(&big), &big), Some(loc(1)));
        assert_eq!(kd.get(kd.hash(b"small"), b"small"), Some(loc(2)));
    }

    #[test]
    fn retain_and_replace_if() {
        let kd = KeyDir::new();
        for i in 0..100u64 {
            let k = i.to_le_bytes();
            let l = if i % 2 == 0 {
                loc(i + 1)
            } else {
                Loc::tombstone(1, 0, 5, i + 1)
            };
            kd.insert(kd.hash(&k), &k, l, None).unwrap();
        }
        kd.retain(|l| !l.is_tombstone());
        assert_eq!(kd.len(), 50);
        let k = 4u64.to_le_bytes();
        let h = kd.hash(&k);
        assert!(!kd.replace_if(h, &k, &Loc::new(9, 9, 1, 5), loc(77)));
        assert!(kd.replace_if(h, &k, &loc(5), Loc::new(2, 0, 10, 5)));
        assert_eq!(kd.get(h, &k), Some(Loc::new(2, 0, 10, 5)));
    }

    /// Walks the whole hash space with `count` keys per step.
    fn scan_all(kd: &KeyDir, count: usize, mut between: impl FnMut()) -> Vec<(u64, Vec<u8>)> {
        let (mut out, mut from) = (Vec::new(), Some(0));
        while let Some(f) = from {
            from = kd.scan_step(f, count, 0, |h, k| out.push((h, k.to_vec())));
            between();
        }
        out
    }

    #[test]
    fn hash_is_the_same_in_every_keydir() {
        assert_eq!(KeyDir::new().hash(b"abc"), KeyDir::new().hash(b"abc"));
        assert_eq!(
            KeyDir::new().hash(b"abc"),
            xxhash_rust::xxh3::xxh3_64_with_seed(b"abc", SEED)
        );
    }

    #[test]
    fn scan_steps_return_each_key_once_in_hash_order() {
        let kd = KeyDir::new();
        for i in 0..20_000u64 {
            let k = i.to_be_bytes();
            kd.insert(kd.hash(&k), &k, loc(i + 1), None).unwrap();
        }
        assert!(
            kd.shards.iter().all(|s| s.read().depth >= 1),
            "shards split"
        );
        for count in [1, 7, 1000] {
            let got = scan_all(&kd, count, || {});
            assert_eq!(got.len(), 20_000, "count {count}");
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "count {count}");
        }
    }

    #[test]
    fn scan_survives_splits_between_steps() {
        let kd = KeyDir::new();
        let key = |i: u64| format!("k{i}").into_bytes();
        for i in 0..300 {
            kd.insert(kd.hash(&key(i)), &key(i), loc(i + 1), None)
                .unwrap();
        }
        let mut next = 300;
        let got = scan_all(&kd, 5, || {
            // Bounded, so the scan catches up and ends.
            for _ in 0..200.min(20_000 - next) {
                kd.insert(kd.hash(&key(next)), &key(next), loc(next + 1), None)
                    .unwrap();
                next += 1;
            }
        });
        assert!(
            kd.shards.iter().any(|s| s.read().depth >= 2),
            "splits happened"
        );
        let seen: std::collections::HashSet<_> = got.into_iter().map(|(_, k)| k).collect();
        assert!((0..300).all(|i| seen.contains(&key(i))));
    }

    #[test]
    fn expiries_follow_their_keys_through_replace_remove_retain_and_arena_rebuilds() {
        let kd = KeyDir::new();
        let key = |i: u64| format!("expiring-key-{i}-{}", "y".repeat(400)).into_bytes();
        let put = |i: u64, at: Option<u64>| kd.insert(kd.hash(&key(i)), &key(i), loc(i + 1), at);
        for i in 0..4000 {
            put(i, Some(10_000 + i)).unwrap();
        }
        let expiry = |i: u64| kd.get_entry(kd.hash(&key(i)), &key(i)).map(|(_, at)| at);
        // Replacing a key replaces (or clears) its expiry.
        put(1, None).unwrap();
        put(2, Some(5)).unwrap();
        assert_eq!(
            (expiry(1), expiry(2), expiry(3)),
            (Some(None), Some(Some(5)), Some(Some(10_003)))
        );
        // Removing most keys rebuilds the arenas (new key references).
        for i in (0..4000).filter(|i| i % 10 != 0) {
            kd.remove(kd.hash(&key(i)), &key(i)).unwrap();
        }
        for i in (0..4000).step_by(10) {
            assert_eq!(expiry(i), Some(Some(10_000 + i)), "key {i}");
        }
        assert_eq!(expiry(2), None);
        // Due keys, earliest first, only those present.
        let due = |now| {
            let mut out = Vec::new();
            for shard in 0..SHARDS {
                kd.due(shard, now, usize::MAX, |_, k| out.push(k.to_vec()));
            }
            out.sort();
            out
        };
        let mut want: Vec<_> = [0, 10, 20, 30].into_iter().map(key).collect();
        want.sort();
        assert_eq!(due(10_030), want);
        assert!(kd.any_due(10_000) && !kd.any_due(9_999));
        // A removal by location only happens at that location.
        let (k, h) = (key(10), kd.hash(&key(10)));
        assert_eq!(kd.remove_if(h, &k, &Loc::new(9, 9, 9, 9)), None);
        assert_eq!(kd.remove_if(h, &k, &loc(11)), Some(loc(11)));
        kd.retain(|l| l.lsn() != 21);
        assert_eq!(due(10_030), vec![key(0), key(30)]);
        // Scans skip keys expired at the time they are given.
        let mut seen = 0;
        let mut from = Some(0);
        while let Some(f) = from {
            from = kd.scan_step(f, 100, 10_030, |_, _| seen += 1);
        }
        assert_eq!(seen, kd.len() - 2);
    }
}

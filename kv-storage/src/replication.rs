//! Replication hooks: reading history on a leader, applying it on a follower.
//!
//! # The model
//!
//! A partition's history is a sequence of entries with strictly increasing
//! positions `(epoch, lsn)`. The leader assigns `lsn = last + 1` on every
//! `put` and `delete`; a follower `apply`s the leader's entries, keeping their
//! positions, and ignores any entry at or below its own `last_lsn`, so
//! re-delivery is harmless.
//!
//! The store keeps a *history floor*: every LSN above it is on disk, in log
//! segments, contiguously. `entries_since(after)` with `after ≥ floor` reads
//! those records back in order. Below the floor the history is gone —
//! compaction dropped overwritten records and tombstones, or this replica
//! received a snapshot instead of history — and the answer is a
//! [`Since::Snapshot`]: every live record, sorted by LSN, plus the position the
//! set is current as of. The floor rises with compaction (never above the
//! retention watermark, [`Store::set_retention`]), with gaps in applied
//! LSNs, and with snapshot installs; `clear` resets it to 0. Compaction also
//! keeps each key's newest version at or below the floor, so
//! [`Store::truncate_after`] works anywhere at or above it.
//!
//! # Full resynchronisation
//!
//! The source streams its live entries with a [`SnapshotReader`](crate::SnapshotReader)
//! (`snapshot.rs`: bounded chunks, no lock held between them, consistent
//! *as of* its start position together with the history after it); the
//! follower stages them with [`Store::begin_install`] and switches to them
//! atomically with [`Install::commit`](crate::Install::commit)
//! (`install.rs`), after which `last_position()` is the snapshot's position
//! even if the newest source entries were deletions. A source that dies
//! mid-transfer leaves the follower's old data intact.
//!
//! # Deliberate omissions
//!
//! - [`Since::Snapshot`] (the answer of `entries_since` below the floor) is
//!   still built in memory (`Vec<Entry>`) for callers that want one value;
//!   replication should use [`SnapshotReader`](crate::SnapshotReader) instead. Building it holds
//!   the writer lock while it walks the key directory (not while it reads
//!   values): writes pause for roughly 20 ms per million keys.
//! - `entries_since` returns at most `max_entries` entries regardless of
//!   their size; callers choose a count that fits their frame.

use std::ops::ControlFlow;

use bytes::Bytes;

use crate::durable;
use crate::error::Error;
use crate::inner::{Inner, RecordOp, Writer};
use crate::keydir::Loc;
use crate::record::{self, Kind};
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentKind};
use crate::{Entry, Lsn, Position, Since, Store};

impl Store {
    /// Entries with LSN greater than `after`, oldest first, at most
    /// `max_entries` (empty when up to date), or a snapshot of all live
    /// records when that history is no longer on disk. Safe to call during
    /// writes: the result is always a gap-free run starting at `after + 1`
    /// (possibly shorter than `max_entries` if a write or segment roll races
    /// with the read; ask again).
    ///
    /// An `after` beyond `last_lsn()` gets an empty answer: a replica that is
    /// ahead of this one (diverged history) must be detected by comparing
    /// positions, not by this call.
    pub fn entries_since(&self, after: Lsn, max_entries: usize) -> Result<Since, Error> {
        let inner = self.inner();
        inner.check_open()?;
        let segments = {
            let layout = inner.layout.read();
            if after < layout.floor {
                drop(layout);
                return snapshot(inner);
            }
            let logs = layout
                .segments
                .values()
                .filter(|s| s.header.kind == SegmentKind::Log);
            let newer = logs.filter(|s| s.max_lsn() > after);
            newer.map(|s| (s.clone(), s.len())).collect::<Vec<_>>()
        };
        let mut entries = Vec::new();
        for (seg, end) in segments {
            if entries.len() >= max_entries {
                break;
            }
            read_entries(&seg, after, end, max_entries, &mut entries)?;
        }
        Ok(Since::Entries(entries))
    }

    /// Sets the retention watermark: compaction keeps every history record
    /// with an LSN above `keep_after` (it merges only segments wholly at or
    /// below it), so the history floor never rises above it, a follower at
    /// or past it catches up from history (`Since::Entries`) and
    /// [`Store::truncate_after`] at or past it finds the older versions it
    /// needs. `None` (the default) lets compaction merge every sealed
    /// segment, as before. Kept in memory only: the owner (a leader that
    /// knows its followers' positions, or a snapshot source) sets it again
    /// after a reopen.
    pub fn set_retention(&self, keep_after: Option<Lsn>) {
        let mark = keep_after.unwrap_or(Lsn::MAX);
        self.inner()
            .retention
            .store(mark, std::sync::atomic::Ordering::Release);
    }

    /// The retention watermark set by [`Store::set_retention`].
    pub fn retention(&self) -> Option<Lsn> {
        let mark = self.inner().retention();
        (mark != Lsn::MAX).then_some(mark)
    }

    /// Follower side: writes `entry` with its own position if its LSN is above
    /// `last_lsn()` (returns `true`), else ignores it (`false`). A tombstone
    /// for an absent key is still recorded, so the LSN advances.
    pub fn apply(&self, entry: &Entry) -> Result<bool, Error> {
        self.apply_batch(std::slice::from_ref(entry))
            .map(|n| n == 1)
    }

    /// [`Store::apply`] for a batch in LSN order, with one sync for all of
    /// it under [`SyncPolicy::Always`](crate::SyncPolicy::Always) instead of
    /// one per entry. Returns how many entries were written (those above
    /// `last_lsn()` and above the entry before them). Every entry is
    /// checked first (an invalid one writes nothing). The entries are
    /// written the way [`Store::write_batch`] writes (one `write(2)`, all or
    /// none after a crash), in as few appends as the size limit of one
    /// append allows; a failed append writes nothing of itself and leaves
    /// the earlier appends in place.
    pub fn apply_batch(&self, entries: &[Entry]) -> Result<usize, Error> {
        let (applied, seq) = self.apply_unsynced(entries)?;
        if let Some(seq) = seq {
            self.inner().after_write(seq)?;
        }
        Ok(applied)
    }

    /// [`Store::apply_batch`] without the sync: the count written and the
    /// group-commit sequence to sync to (if anything was written).
    fn apply_unsynced(&self, entries: &[Entry]) -> Result<(usize, Option<u64>), Error> {
        let inner = self.inner();
        for entry in entries {
            check_entry(inner, entry)?;
        }
        let max = inner.max_append_bytes();
        let (mut applied, mut seq) = (0, None);
        let mut rest = entries;
        while !rest.is_empty() {
            let take = chunk_len(rest, max);
            let (chunk, tail) = rest.split_at(take);
            let (n, s) = self.apply_chunk(chunk)?;
            applied += n;
            seq = s.or(seq);
            rest = tail;
        }
        Ok((applied, seq))
    }

    /// Writes the fresh entries of `chunk` with one append.
    fn apply_chunk(&self, chunk: &[Entry]) -> Result<(usize, Option<u64>), Error> {
        let inner = self.inner();
        let (planned, seq) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            let planned = plan_applied(inner, &w, chunk);
            if planned.is_empty() {
                return Ok((0, None));
            }
            let epoch = planned.iter().map(|p| p.position.epoch).max();
            w.epoch = w.epoch.max(epoch.unwrap_or_default());
            let seq = inner.write_planned(&mut w, &planned)?;
            (planned, seq)
        };
        inner.cache_planned(&planned);
        Ok((planned.len(), Some(seq)))
    }

    /// Drops all data durably, keeping the highest epoch seen: afterwards
    /// `last_lsn()` is 0, the store and its epoch history are empty. (A
    /// full resync should use [`Store::begin_install`] instead, which never
    /// leaves the store half-empty.)
    pub fn clear(&self) -> Result<(), Error> {
        let inner = self.inner();
        let _compaction = inner.compaction_lock.lock();
        let mut w = inner.writer.lock();
        inner.check_writable()?;
        let _install = inner.install_lock.lock();
        let epochs = w.epochs.restarted(Position::default());
        epochs.save(&inner.dir)?;
        w.epochs = epochs;
        let (active, file) = inner.create_log_segment(Position::default(), true)?;
        let id = active.id;
        // Empty the key directory first: a reader then finds nothing, or an
        // old location whose segment is still in the layout.
        inner.keydir.clear();
        let old = {
            let mut layout = inner.layout.write();
            layout.floor = 0;
            layout.active = id;
            let old = std::mem::take(&mut layout.segments);
            layout.segments.insert(id, active.clone());
            old
        };
        inner
            .live_bytes
            .store(0, std::sync::atomic::Ordering::Relaxed);
        inner.cache.purge();
        (w.active, w.file, w.last) = (active, file, Position::default());
        (w.offset, w.allocated) = (SEGMENT_HEADER_BYTES, SEGMENT_HEADER_BYTES);
        inner.group.mark_synced(w.seq);
        drop(w);
        for seg in old.values() {
            segment::remove_files(&inner.dir, seg.id)?;
        }
        durable::sync_dir(&inner.dir)
    }
}

/// Rejects entries no store may hold.
fn check_entry(inner: &Inner, entry: &Entry) -> Result<(), Error> {
    inner.check_sizes(&entry.key, entry.value.as_ref().map_or(0, Bytes::len))?;
    if entry.position.lsn == 0 {
        return Err(Error::InvalidEntry {
            lsn: 0,
            reason: "lsn 0 is reserved",
        });
    }
    Ok(())
}

/// How many leading entries fit one append of at most `max` bytes (at
/// least one: a single entry always fits, its sizes were checked).
fn chunk_len(entries: &[Entry], max: u64) -> usize {
    let mut total = 0u64;
    let fits = entries.iter().take_while(|e| {
        let value = e.value.as_ref().map_or(0, Bytes::len);
        let has_expiry = e.value.is_some() && e.expiry.is_some();
        total += record::encoded_len(e.key.len(), value, has_expiry) as u64;
        total <= max
    });
    fits.count().max(1)
}

/// The records applying `entries` writes: those above the last LSN (and the
/// entry before), keeping their positions; a skipped-over LSN raises the
/// history floor.
fn plan_applied<'a>(inner: &Inner, w: &Writer, entries: &'a [Entry]) -> Vec<RecordOp<'a>> {
    let mut last = w.last.lsn;
    let mut planned = Vec::with_capacity(entries.len());
    for entry in entries {
        let lsn = entry.position.lsn;
        if lsn <= last {
            continue;
        }
        if lsn > last + 1 {
            let mut layout = inner.layout.write();
            layout.floor = layout.floor.max(lsn - 1);
        }
        last = lsn;
        let kind = match entry.value {
            Some(_) => Kind::Value,
            None => Kind::Tombstone,
        };
        planned.push(RecordOp {
            position: entry.position,
            kind,
            key: &entry.key,
            value: entry.value.as_deref().unwrap_or_default(),
            hash: inner.keydir.hash(&entry.key),
            expiry: entry.expiry.filter(|_| kind == Kind::Value),
        });
    }
    planned
}

/// Appends the entries of `seg` with LSN > `after` below offset `end`.
fn read_entries(
    seg: &Segment,
    after: Lsn,
    end: u64,
    max: usize,
    out: &mut Vec<Entry>,
) -> Result<(), Error> {
    let start = seg.scan_start(after);
    seg.for_each_record(start, end, |_, rec| {
        if rec.position.lsn > after && rec.kind != Kind::Marker {
            out.push(Entry {
                position: rec.position,
                key: Bytes::copy_from_slice(rec.key),
                value: (rec.kind == Kind::Value).then(|| Bytes::copy_from_slice(rec.value)),
                expiry: rec.expiry,
            });
        }
        match out.len() >= max {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    })
}

/// A snapshot of all live records, consistent as of the returned position
/// (keys already expired by this store's clock are left out).
fn snapshot(inner: &Inner) -> Result<Since, Error> {
    let (last, mut locs, segments) = {
        let w = inner.writer.lock();
        let _install = inner.install_lock.lock();
        let segments = inner.layout.read().segments.clone();
        let mut locs = Vec::with_capacity(inner.keydir.len());
        let now = inner.now();
        inner.keydir.for_each(|_, loc, expiry| {
            if expiry.is_none_or(|at| !crate::expiry::is_expired(at, now)) {
                locs.push(loc);
            }
        });
        (w.last, locs, segments)
    };
    locs.sort_unstable_by_key(Loc::lsn);
    let mut entries = Vec::with_capacity(locs.len());
    for loc in locs {
        let seg = segments
            .get(&loc.segment)
            .ok_or_else(|| Error::corrupted(&inner.dir, 0, "snapshot segment vanished"))?;
        let (bytes, info) = seg.read_record(u64::from(loc.offset), loc.len() as usize)?;
        entries.push(Entry {
            position: info.position,
            key: bytes.slice(info.key_start..info.key_start + info.key_len),
            value: Some(bytes.slice(info.value_range())),
            expiry: info.expiry,
        });
    }
    Ok(Since::Snapshot { entries, last })
}

//! The shared state behind a `Store` and its write and read paths.
//!
//! # Locks, in the order they may be taken
//!
//! 1. `compaction_lock` — one compaction, hint write or `clear` at a time.
//! 2. `writer` — serialises appends; owns the active file, LSN and epoch.
//! 3. `install_lock` — compaction's key-directory swap vs. snapshot reads.
//! 4. `layout` (RwLock) — the set of segment files and the history floor.
//! 5. key-directory shard locks, then hot-cache shard locks (leaf locks).
//!
//! Readers take only 4 and 5, in read mode, so they never wait for each other
//! and wait for a writer only while it updates one shard.
//!
//! # Write path
//!
//! Under the writer lock: encode the record (or a write batch's records,
//! back to back) into a reused buffer, hand it to the OS with one positional
//! `write(2)`, publish the new segment length, then update the key directory
//! (`batch.rs`: `write_planned`, shared by puts, deletes, batches and
//! replicated entries). After the lock: fill the hot cache and, for
//! `SyncPolicy::Always`, wait for group commit (`sync.rs`). A record is thus
//! in the OS before it is visible to readers, and visible before `put` returns.
//!
//! # Pre-sizing the active segment
//!
//! A write that grows a file makes its fdatasync commit the new file size to
//! the filesystem journal too; overwriting bytes inside the file's length
//! does not (on ext4 an append+fdatasync measured p50 65–101 µs, a write into
//! a pre-sized file 45–62 µs). So the active file is grown ahead of the
//! records, [`PRESIZE_CHUNK_BYTES`] at a time (never past `segment_bytes`
//! unless one record needs it), with `set_len`: a sparse extension, no
//! zeros are written (writing zeros or `fallocate` measured no faster). Only
//! the first fdatasync after an extension commits a size change; it comes
//! before any record in the new space is acknowledged under
//! `SyncPolicy::Always`, so the extension is durable when it must be.
//!
//! The writer therefore keeps two ends: `offset`, the end of the last record
//! (the *logical* end, published as `Segment::len`, used for reads, scans,
//! rolling and stats), and `allocated`, the file's length. The bytes between
//! are zeros. Before the segment is sealed (and on close) the file is cut
//! back to `offset` and fdatasynced, so sealed segments end at their last
//! record and a mapped file is never truncated. Recovery reads an all-zero
//! tail of the newest segment as its clean end (`recovery/load.rs`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::cache::StoreCache;
use crate::epochs::EpochHistory;
use crate::error::Error;
use crate::keydir::{KeyDir, Loc};
use crate::lock::DirLock;
use crate::options::{Options, SyncPolicy};
use crate::record::{self, Kind};
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentHeader, SegmentId, SegmentKind};
use crate::stats::{Counters, bump};
use crate::worker::Signal;
use crate::{Epoch, Lsn, Position};

/// Write buffers above this capacity are released after use.
const MAX_KEPT_BUFFER_BYTES: usize = 1 << 20;
/// The active segment file grows by this much at a time (see "Pre-sizing").
pub(crate) const PRESIZE_CHUNK_BYTES: u64 = 4 << 20;
/// A reader retries this often when a segment vanished under it (compaction
/// moved the key in between); more means something is wrong.
const MAX_READ_RETRIES: usize = 1000;

/// File length to grow the active segment to so that `end` fits: whole
/// chunks, but not past `segment_bytes` (the roll comes first) unless a
/// single record needs more.
pub(crate) fn presize_target(end: u64, segment_bytes: u64) -> u64 {
    let chunked = end.div_ceil(PRESIZE_CHUNK_BYTES) * PRESIZE_CHUNK_BYTES;
    chunked.min(segment_bytes.max(end))
}

/// Writes an append's bytes at `at` of the active segment (`path`); under
/// feature `sim` through the simulated disk, which may fail it.
fn append_at(file: &File, path: &Path, bytes: &[u8], at: u64) -> std::io::Result<()> {
    #[cfg(feature = "sim")]
    {
        crate::sim::append(file, path, bytes, at)
    }
    #[cfg(not(feature = "sim"))]
    {
        use std::os::unix::fs::FileExt;
        let _ = path;
        file.write_all_at(bytes, at)
    }
}

/// One record to append: see [`Inner::append_records`].
#[derive(Clone, Copy)]
pub(crate) struct RecordOp<'a> {
    pub position: Position,
    pub kind: Kind,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// The key's key-directory hash.
    pub hash: u64,
    /// When the key expires (unix ms); value records only.
    pub expiry: Option<u64>,
}

impl RecordOp<'_> {
    pub(crate) fn encoded_len(&self) -> u64 {
        let has_expiry = self.kind == Kind::Value && self.expiry.is_some();
        record::encoded_len(self.key.len(), self.value.len(), has_expiry) as u64
    }

    fn fields(&self) -> record::Fields<'_> {
        record::Fields {
            kind: self.kind,
            key: self.key,
            value: self.value,
            expiry: self.expiry,
        }
    }
}

/// Mutable state of the single writer.
pub(crate) struct Writer {
    pub active: Arc<Segment>,
    pub file: Arc<File>,
    /// End of the last complete record in the active segment.
    pub offset: u64,
    /// Length of the active file (≥ `offset`; zeros in between).
    pub allocated: u64,
    /// Position of the last record written or applied.
    pub last: Position,
    /// Epoch given to new `put`s and `delete`s: the highest seen.
    pub epoch: Epoch,
    /// Epoch → first LSN, as persisted in `EPOCHS` (`epochs.rs`).
    pub epochs: EpochHistory,
    /// Records written since open (group-commit sequence).
    pub seq: u64,
    pub buf: Vec<u8>,
}

/// The segment files of the store.
pub(crate) struct Layout {
    pub segments: BTreeMap<SegmentId, Arc<Segment>>,
    pub active: SegmentId,
    /// History at or below this LSN may be incomplete on disk.
    pub floor: Lsn,
}

impl Layout {
    pub(crate) fn get(&self, id: SegmentId) -> Option<&Arc<Segment>> {
        self.segments.get(&id)
    }

    /// Sealed segments (everything but the active one).
    pub(crate) fn sealed(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments.values().filter(move |s| s.id != self.active)
    }
}

/// Everything a store shares with its background threads.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: Options,
    pub writer: Mutex<Writer>,
    pub layout: RwLock<Layout>,
    pub keydir: KeyDir,
    pub cache: StoreCache,
    pub group: crate::sync::GroupCommit,
    pub closed: AtomicBool,
    pub counters: Counters,
    pub live_bytes: AtomicU64,
    pub next_segment: AtomicU32,
    pub compaction_lock: Mutex<()>,
    pub install_lock: Mutex<()>,
    /// Retention watermark: compaction keeps all history above it
    /// (`u64::MAX`: none set; see `Store::set_retention`).
    pub retention: AtomicU64,
    /// The shard where the next `expire_due` starts looking.
    pub expiry_cursor: AtomicUsize,
    pub signal: Signal,
    /// Test hook: the next data fsync fails (see `Store::fail_next_sync`).
    pub fail_next_sync: AtomicBool,
    pub _lock: DirLock,
}

impl Inner {
    /// The retention watermark (`Lsn::MAX` when none is set).
    pub(crate) fn retention(&self) -> Lsn {
        self.retention.load(Ordering::Acquire)
    }

    /// Fails if writes are not allowed now.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.group.is_poisoned() {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        match self.closed.load(Ordering::Acquire) {
            true => Err(Error::Closed),
            false => Ok(()),
        }
    }

    pub(crate) fn check_sizes(&self, key: &[u8], value_len: usize) -> Result<(), Error> {
        let (max_key, max_value) = (self.opts.max_key_bytes, self.opts.max_value_bytes);
        if key.len() > max_key {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: max_key,
            });
        }
        if value_len > max_value {
            return Err(Error::ValueTooLarge {
                len: value_len,
                max: max_value,
            });
        }
        Ok(())
    }

    /// Appends `ops` (in increasing LSN order) to the active segment with
    /// one `write(2)`, rolling first if they would not fit; every record but
    /// the last is flagged "batch continues", so recovery keeps all or none
    /// of them. Calls `placed(i, loc)` for each record once all are written.
    pub(crate) fn append_records(
        &self,
        w: &mut Writer,
        ops: &[RecordOp<'_>],
        mut placed: impl FnMut(usize, Loc),
    ) -> Result<(), Error> {
        let Some(last) = ops.last() else {
            return Ok(());
        };
        let len: u64 = ops.iter().map(RecordOp::encoded_len).sum();
        if w.offset > SEGMENT_HEADER_BYTES && w.offset + len > self.opts.segment_bytes {
            self.roll(w)?;
        }
        self.reserve(w, w.offset + len)?;
        w.buf.clear();
        for (i, op) in ops.iter().enumerate() {
            let more = i + 1 < ops.len();
            record::encode_in_batch(&mut w.buf, op.position, &op.fields(), more);
        }
        let start = w.offset;
        let written = append_at(&w.file, &w.active.path, &w.buf, start);
        if w.buf.capacity() > MAX_KEPT_BUFFER_BYTES {
            w.buf = Vec::new();
        }
        if let Err(e) = written {
            self.undo_partial_write(w);
            return Err(Error::io(&w.active.path, e));
        }
        bump(&self.counters.appends, 1);
        w.offset += len;
        w.seq += 1;
        w.last = last.position;
        let mut offset = start;
        for (i, op) in ops.iter().enumerate() {
            let rec_len = op.encoded_len();
            w.active
                .note_appended(offset, op.position, offset + rec_len);
            let loc = Loc::new(w.active.id, offset as u32, rec_len as u32, op.position.lsn);
            placed(i, loc);
            offset += rec_len;
        }
        bump(&self.counters.writes, ops.len() as u64);
        Ok(())
    }

    /// Cuts a partially written record so the segment ends at a record
    /// boundary; if even that fails, the store can no longer be trusted.
    fn undo_partial_write(&self, w: &mut Writer) {
        match w.file.set_len(w.offset) {
            Ok(()) => w.allocated = w.offset,
            Err(_) => self.group.poison(),
        }
    }

    /// Makes the active file at least `end` bytes long, growing it by whole
    /// chunks. The new length becomes durable with the next fdatasync of the
    /// file (fdatasync commits size changes), which under
    /// `SyncPolicy::Always` precedes the acknowledgement of any record
    /// written into the new space.
    fn reserve(&self, w: &mut Writer, end: u64) -> Result<(), Error> {
        if end <= w.allocated {
            return Ok(());
        }
        let target = presize_target(end, self.opts.segment_bytes);
        w.file
            .set_len(target)
            .map_err(|e| Error::io(&w.active.path, e))?;
        w.allocated = target;
        Ok(())
    }

    /// Cuts the pre-sized tail off the active file and fdatasyncs it, so the
    /// file ends at its last record: before sealing, and on close.
    pub(crate) fn trim_active(&self, w: &mut Writer) -> Result<(), Error> {
        w.file
            .set_len(w.offset)
            .map_err(|e| Error::io(&w.active.path, e))?;
        w.allocated = w.offset;
        self.fsync_active(w)
    }

    /// Seals the active segment (trim, fsync, map) and starts a new one.
    pub(crate) fn roll(&self, w: &mut Writer) -> Result<(), Error> {
        // Trimmed and durable before it is mapped (a mapped file is never
        // truncated) and before a newer segment exists (recovery expects a
        // zero tail only in the newest log segment).
        self.trim_active(w)?;
        let sealed = Arc::new(w.active.seal()?);
        let (active, file) = self.create_log_segment(w.last, false)?;
        let id = active.id;
        {
            let mut layout = self.layout.write();
            layout.segments.insert(sealed.id, sealed.clone());
            layout.segments.insert(id, active.clone());
            layout.active = id;
        }
        w.active = active;
        w.file = file;
        w.offset = SEGMENT_HEADER_BYTES;
        w.allocated = SEGMENT_HEADER_BYTES;
        self.signal.request_hint(sealed.id);
        Ok(())
    }

    /// Creates a new, empty log segment file durably (next id, header
    /// `base`), ready to be the active segment.
    pub(crate) fn create_log_segment(
        &self,
        base: Position,
        reset: bool,
    ) -> Result<(Arc<Segment>, Arc<File>), Error> {
        let header = SegmentHeader {
            id: self.next_segment.fetch_add(1, Ordering::SeqCst),
            kind: SegmentKind::Log,
            reset,
            base,
        };
        let (path, file) = segment::create_file(&self.dir, &header)?;
        let file = Arc::new(file);
        let active = Segment::active(path, header, file.clone(), SEGMENT_HEADER_BYTES);
        Ok((Arc::new(active), file))
    }

    /// fdatasync of the active file under the writer lock; poisons on error.
    pub(crate) fn fsync_active(&self, w: &Writer) -> Result<(), Error> {
        if let Err(e) = self.sync_file(&w.file, &w.active.path, w.offset) {
            self.group.poison();
            return Err(Error::io(&w.active.path, e));
        }
        bump(&self.counters.syncs, 1);
        self.group.mark_synced(w.seq);
        Ok(())
    }

    /// One group-commit fsync: returns the write sequence it covers.
    fn sync_once(&self) -> Result<u64, Error> {
        let (file, seq, path, end) = {
            let w = self.writer.lock();
            (w.file.clone(), w.seq, w.active.path.clone(), w.offset)
        };
        self.sync_file(&file, &path, end)
            .map_err(|e| Error::io(path, e))?;
        bump(&self.counters.syncs, 1);
        Ok(seq)
    }

    /// fdatasync of the active segment at `path` (its records ending at
    /// `end`), or the injected failure of a test. Under feature `sim` the
    /// simulated disk records it instead (`sim.rs`).
    fn sync_file(&self, file: &File, path: &Path, end: u64) -> std::io::Result<()> {
        if self.fail_next_sync.swap(false, Ordering::AcqRel) {
            return Err(std::io::Error::other("injected fsync failure"));
        }
        #[cfg(feature = "sim")]
        {
            let _ = file;
            crate::sim::sync_segment(path, end)
        }
        #[cfg(not(feature = "sim"))]
        {
            let _ = (path, end);
            file.sync_data()
        }
    }

    /// Makes every write up to `seq` durable (group commit).
    pub(crate) fn sync_to(&self, seq: u64) -> Result<(), Error> {
        self.group.wait(seq, || self.sync_once())
    }

    /// Applies the sync policy to a write with sequence `seq`.
    pub(crate) fn after_write(&self, seq: u64) -> Result<(), Error> {
        match self.opts.sync {
            SyncPolicy::Always => self.sync_to(seq).map_err(|e| Error::NotDurable {
                source: Box::new(e),
            }),
            SyncPolicy::Interval(_) | SyncPolicy::Never => Ok(()),
        }
    }

    /// Book-keeping after the key directory moved a key from `old`
    /// (now dead) to `new` (now live).
    pub(crate) fn note_replaced(&self, old: Option<Loc>, new: Option<&Loc>) {
        if let Some(new) = new {
            self.live_bytes
                .fetch_add(u64::from(new.len()), Ordering::Relaxed);
        }
        if let Some(old) = old {
            self.live_bytes
                .fetch_sub(u64::from(old.len()), Ordering::Relaxed);
            self.add_dead(old.segment, old.len());
        }
    }

    pub(crate) fn add_dead(&self, segment: SegmentId, len: u32) {
        if let Some(seg) = self.layout.read().get(segment) {
            seg.add_dead(u64::from(len));
        }
    }

    /// Caches a value just written, if the cache would take it.
    /// (With `Options::cache_writes` off, drops the key's older value.)
    pub(crate) fn cache_written(&self, hash: u64, key: &[u8], value: &[u8], lsn: Lsn) {
        if !self.opts.cache_writes {
            self.cache.remove(hash, key);
            return;
        }
        if self.cache.accepts(key.len() + value.len()) {
            let data = Bytes::from([key, value].concat());
            self.cache.insert(hash, data, key.len(), lsn);
        }
    }

    /// The current time by the store's clock (unix ms).
    pub(crate) fn now(&self) -> u64 {
        self.opts.clock.now_ms()
    }

    /// Where `key` points, unless it is absent or has expired.
    pub(crate) fn live_loc(&self, hash: u64, key: &[u8]) -> Option<Loc> {
        self.live_entry(hash, key).map(|(loc, _)| loc)
    }

    /// Where `key` points and when it expires, unless it is absent or has
    /// expired. The clock is read only for keys that have an expiry.
    pub(crate) fn live_entry(&self, hash: u64, key: &[u8]) -> Option<(Loc, Option<u64>)> {
        let (loc, expiry) = self.keydir.get_entry(hash, key)?;
        match expiry {
            Some(at) if crate::expiry::is_expired(at, self.now()) => None,
            _ => Some((loc, expiry)),
        }
    }

    /// The value of `key` from the cache or its segment.
    pub(crate) fn read_value(
        &self,
        hash: u64,
        key: &[u8],
        fill: Fill,
    ) -> Result<Option<Bytes>, Error> {
        Ok(self
            .read_current_with(hash, key, fill)?
            .map(|(value, _)| value))
    }

    /// The value of `key` and the LSN of the record it came from.
    pub(crate) fn read_current(
        &self,
        hash: u64,
        key: &[u8],
    ) -> Result<Option<(Bytes, Lsn)>, Error> {
        self.read_current_with(hash, key, Fill::Yes)
    }

    fn read_current_with(
        &self,
        hash: u64,
        key: &[u8],
        fill: Fill,
    ) -> Result<Option<(Bytes, Lsn)>, Error> {
        for _ in 0..MAX_READ_RETRIES {
            let Some(loc) = self.live_loc(hash, key) else {
                return Ok(None);
            };
            if let Some(value) = self.cache.get(hash, key, loc.lsn()) {
                bump(&self.counters.cache_hits, 1);
                return Ok(Some((value, loc.lsn())));
            }
            let segment = self.layout.read().get(loc.segment).cloned();
            let Some(segment) = segment else {
                std::thread::yield_now();
                continue;
            };
            bump(&self.counters.cache_misses, 1);
            let value = self.read_cold(&segment, hash, key, &loc, fill)?;
            return Ok(Some((value, loc.lsn())));
        }
        Err(Error::corrupted(
            &self.dir,
            0,
            "key keeps moving between segments",
        ))
    }

    /// The value of `key` if memory can answer: see `Store::get_in_memory`.
    pub(crate) fn read_in_memory(&self, hash: u64, key: &[u8]) -> Option<Option<Bytes>> {
        let Some(loc) = self.live_loc(hash, key) else {
            return Some(None);
        };
        let value = self.cache.get(hash, key, loc.lsn())?;
        bump(&self.counters.cache_hits, 1);
        Some(Some(value))
    }

    fn read_cold(
        &self,
        segment: &Segment,
        hash: u64,
        key: &[u8],
        loc: &Loc,
        fill: Fill,
    ) -> Result<Bytes, Error> {
        let offset = u64::from(loc.offset);
        let (bytes, info) = segment.read_record(offset, loc.len() as usize)?;
        let consistent =
            info.kind == Kind::Value && info.position.lsn == loc.lsn() && info.key(&bytes) == key;
        if !consistent {
            let why = "record does not match the key directory";
            return Err(Error::corrupted(&segment.path, offset, why));
        }
        let data = bytes.slice(info.key_start..info.value_range().end);
        if fill == Fill::Yes {
            self.cache.insert(hash, data.clone(), key.len(), loc.lsn());
        }
        Ok(data.slice(key.len()..))
    }
}

/// Whether a read from disk puts the value in the hot cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Yes: a `get`, likely to be asked again.
    Yes,
    /// No: a one-pass read (a scan with values), which would otherwise
    /// evict the working set and pay a cache insert per key.
    No,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presize_grows_by_whole_chunks_up_to_the_segment_size() {
        const MIB: u64 = 1 << 20;
        let chunk = PRESIZE_CHUNK_BYTES;
        assert_eq!(presize_target(33, 64 * MIB), chunk);
        assert_eq!(presize_target(chunk, 64 * MIB), chunk);
        assert_eq!(presize_target(chunk + 1, 64 * MIB), 2 * chunk);
        assert_eq!(presize_target(64 * MIB - 5, 64 * MIB), 64 * MIB);
        // Tiny segments are pre-sized to their size, not a whole chunk.
        assert_eq!(presize_target(100, 700), 700);
        // A record larger than a segment gets exactly the room it needs.
        assert_eq!(presize_target(900, 700), 900);
        assert_eq!(presize_target(64 * MIB + 7, 64 * MIB), 64 * MIB + 7);
    }
}

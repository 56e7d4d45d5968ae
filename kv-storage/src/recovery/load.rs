//! Loading segments into the key directory (see the parent module for what
//! recovery decides before and after): one task per segment, run in
//! parallel, each returning a [`Summary`] of the history facts it saw.

use std::collections::BTreeMap;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::tail::{self, Tail};
use crate::error::Error;
use crate::hint::{self, HintEntry};
use crate::keydir::{Batch, KeyDir, Loc, SHARDS, Upsert};
use crate::record::{Kind, RecordRef, decode};
use crate::segment::{self, SEGMENT_HEADER_BYTES, Scanner, Segment, SegmentId, SegmentKind};
use crate::{Epoch, Lsn, Position};
use tracing::warn;

/// Upper bound on threads used to load segments.
pub const MAX_RECOVERY_THREADS: usize = 4;
/// Below this many bytes to load, recovery stays on the calling thread.
const PARALLEL_MIN_BYTES: u64 = 8 << 20;

/// One segment to load.
pub(super) struct Task {
    pub seg: Arc<Segment>,
    /// The hint file's bytes, if there is one.
    pub hint: Option<Vec<u8>>,
    /// The newest log segment: lenient scan, truncation, becomes active.
    pub active: bool,
}

/// How a sealed segment was indexed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum HintUse {
    Used,
    /// A hint existed but was unusable.
    Fallback,
    /// No hint.
    Missing,
}

/// What loading one segment found.
pub(super) struct Summary {
    pub seg: Arc<Segment>,
    pub first: Option<Lsn>,
    pub top: Position,
    pub max_epoch: Epoch,
    /// Floor implied by gaps and markers inside the segment.
    pub floor: Lsn,
    /// Change in live bytes (order-independent: it telescopes).
    pub live: i64,
    /// Tombstones put into the key directory (to be swept).
    pub tombstones: u64,
    pub truncated: u64,
    pub hint: HintUse,
}

/// Records buffered per key-directory shard before one locked batch insert.
/// A batch is sorted by the hash-table bucket it lands in, so the inserts
/// sweep the table in address order instead of missing the cache at random.
const BATCH: usize = 16 * 1024;
/// A batch is also flushed once its keys take this many bytes.
const BATCH_KEY_BYTES: usize = 4 << 20;

/// Loads one segment into the key directory. `'a` covers the directory, the
/// segment map and the bytes keys are borrowed from.
struct SegmentLoad<'a> {
    keydir: &'a KeyDir,
    segments: &'a BTreeMap<SegmentId, Arc<Segment>>,
    prev: Lsn,
    checkpoints: Vec<(Lsn, u32)>,
    pending: Vec<Batch>,
    results: Vec<Upsert>,
    sum: Summary,
}

impl<'a> SegmentLoad<'a> {
    fn new(
        keydir: &'a KeyDir,
        segments: &'a BTreeMap<SegmentId, Arc<Segment>>,
        seg: &Arc<Segment>,
    ) -> SegmentLoad<'a> {
        let log = seg.header.kind == SegmentKind::Log;
        SegmentLoad {
            keydir,
            segments,
            prev: if log { seg.header.base.lsn } else { 0 },
            checkpoints: Vec::new(),
            pending: (0..SHARDS)
                .map(|_| Batch::with_capacity(batch_capacity(seg)))
                .collect(),
            results: Vec::new(),
            sum: Summary {
                seg: seg.clone(),
                first: None,
                top: Position::default(),
                max_epoch: 0,
                floor: 0,
                live: 0,
                tombstones: 0,
                truncated: 0,
                hint: HintUse::Missing,
            },
        }
    }

    /// The LSN ordering check restarts from the segment's beginning.
    fn restart_lsn(&mut self) -> Lsn {
        self.checkpoints.clear();
        self.sum.first = None;
        match self.is_log() {
            true => self.sum.seg.header.base.lsn,
            false => 0,
        }
    }

    fn is_log(&self) -> bool {
        self.sum.seg.header.kind == SegmentKind::Log
    }

    /// Takes one record into account.
    fn record(&mut self, rec: &HintEntry<'a>) -> Result<(), Error> {
        let lsn = rec.position.lsn;
        if lsn <= self.prev {
            let why = "record LSNs do not increase";
            return Err(Error::corrupted(&self.sum.seg.path, rec.offset, why));
        }
        if self.is_log() {
            if lsn > self.prev + 1 {
                self.sum.floor = self.sum.floor.max(lsn - 1);
            }
            segment::push_checkpoint(&mut self.checkpoints, rec.offset, lsn);
        }
        self.prev = lsn;
        self.sum.first.get_or_insert(lsn);
        self.sum.top = rec.position;
        self.sum.max_epoch = self.sum.max_epoch.max(rec.position.epoch);
        self.index(rec)
    }

    /// Queues the key-directory update for one record.
    fn index(&mut self, rec: &HintEntry<'a>) -> Result<(), Error> {
        let seg = &self.sum.seg;
        let (offset, len, lsn) = (rec.offset as u32, rec.len as u32, rec.position.lsn);
        let loc = match rec.kind {
            Kind::Value => Loc::new(seg.id, offset, len, lsn),
            Kind::Tombstone => Loc::tombstone(seg.id, offset, len, lsn),
            Kind::Marker => {
                self.sum.floor = self.sum.floor.max(lsn);
                seg.add_dead(rec.len);
                return Ok(());
            }
        };
        if loc.is_tombstone() {
            seg.add_dead(rec.len);
            self.sum.tombstones += 1;
        }
        let hash = self.keydir.hash(rec.key);
        let shard = self.keydir.shard_index(hash);
        #[expect(
            clippy::indexing_slicing,
            reason = "one queue per shard; shard_index is always below SHARDS"
        )]
        let queue = &mut self.pending[shard];
        queue.push(hash, rec.key, loc, rec.expiry);
        if queue.len() >= BATCH || queue.key_bytes() >= BATCH_KEY_BYTES {
            self.flush(shard)?;
        }
        Ok(())
    }

    /// Inserts one shard's queue and does the live/dead accounting.
    #[expect(
        clippy::indexing_slicing,
        reason = "one queue per shard; `shard` comes from shard_index, always below SHARDS"
    )]
    fn flush(&mut self, shard: usize) -> Result<(), Error> {
        let queue = std::mem::take(&mut self.pending[shard]);
        self.keydir
            .insert_newer_batch(shard, &queue, &mut self.results)?;
        for (loc, upsert) in queue.locs().zip(&self.results) {
            match *upsert {
                Upsert::Stale if !loc.is_tombstone() => self.sum.seg.add_dead(u64::from(loc.len())),
                Upsert::Stale => {}
                Upsert::Inserted => self.sum.live += live_len(loc),
                Upsert::Replaced(old) => {
                    self.sum.live += live_len(loc) - live_len(&old);
                    if !old.is_tombstone()
                        && let Some(s) = self.segments.get(&old.segment)
                    {
                        s.add_dead(u64::from(old.len()));
                    }
                }
            }
        }
        self.pending[shard] = queue;
        self.pending[shard].clear();
        Ok(())
    }

    fn finish(mut self) -> Result<Summary, Error> {
        for shard in 0..SHARDS {
            self.flush(shard)?;
        }
        let seg = &self.sum.seg;
        seg.note_max(self.sum.top);
        if self.is_log() {
            seg.set_checkpoints(std::mem::take(&mut self.checkpoints));
        }
        Ok(self.sum)
    }

    /// Indexes a sealed segment through its hint, or by a strict scan of
    /// its mapping.
    fn load_sealed(mut self, hint: Option<&'a [u8]>, map: &'a [u8]) -> Result<Summary, Error> {
        let seg = self.sum.seg.clone();
        if let Some(mut entries) = hint.and_then(|b| hint::entries(b, seg.id, seg.len())) {
            for e in entries.by_ref() {
                self.record(&e)?;
            }
            if entries.is_complete() {
                let size = hint.map_or(0, |b| b.len() as u64);
                seg.hint_bytes.store(size, Ordering::Relaxed);
                self.sum.hint = HintUse::Used;
                return self.finish();
            }
            // A structurally wrong hint with a valid checksum (a bug): scan the
            // segment as well; re-seeing a record by its LSN is harmless.
            self.prev = self.restart_lsn();
        }
        self.sum.hint = if hint.is_some() {
            HintUse::Fallback
        } else {
            HintUse::Missing
        };
        let mut offset = SEGMENT_HEADER_BYTES;
        while let Some(rest) = map.get(offset as usize..).filter(|r| !r.is_empty()) {
            let rec = decode(rest).map_err(|e| Error::corrupted(&seg.path, offset, e.reason()))?;
            self.record(&summary(offset, &rec))?;
            offset += rec.len as u64;
        }
        self.finish()
    }

    /// Indexes the newest log segment (`bytes` is the whole file),
    /// truncating a torn or corrupt tail; an all-zero tail is its clean end.
    ///
    /// The log ends after the last record that does not continue a write
    /// batch: the records of a batch a crash cut short are cut with the
    /// torn tail, so a batch survives whole or not at all.
    fn load_active(mut self, bytes: &'a [u8]) -> Result<Summary, Error> {
        let seg = self.sum.seg.clone();
        let file_len = bytes.len() as u64;
        let (mut end, mut last) = (SEGMENT_HEADER_BYTES, seg.header.base);
        let mut committed = SEGMENT_HEADER_BYTES;
        for (offset, rec) in Scanner::new(bytes, SEGMENT_HEADER_BYTES) {
            end = offset + rec.len as u64;
            last = last.max(rec.position);
            if !rec.batch_continues {
                committed = end;
            }
        }
        for (offset, rec) in Scanner::new(bytes, SEGMENT_HEADER_BYTES) {
            if offset >= committed {
                break;
            }
            self.record(&summary(offset, &rec))?;
        }
        let tail = bytes.get(end as usize..).unwrap_or_default();
        if committed < end || (end < file_len && !is_zero(tail)) {
            if let Tail::Corrupt { next, position } = tail::classify(bytes, end, last) {
                let why = format!(
                    "damaged record followed by a valid record at offset {next} (lsn {}); \
                     cutting here would drop acknowledged writes",
                    position.lsn
                );
                return Err(Error::corrupted(&seg.path, end, why));
            }
            let file = seg.active_file().ok_or(Error::Closed)?;
            file.set_len(committed)
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::io(&seg.path, e))?;
            #[cfg(feature = "sim")]
            crate::sim::synced(&seg.path, committed);
            self.sum.truncated = file_len - committed;
            warn!(
                segment = %seg.path.display(),
                offset = committed,
                bytes = file_len - committed,
                "torn tail of the newest segment truncated"
            );
        }
        seg.set_len(committed);
        self.finish()
    }
}

/// Whether every byte is zero: the unwritten rest of a pre-sized segment.
fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// Initial per-shard queue capacity for a segment (avoids regrowing).
fn batch_capacity(seg: &Segment) -> usize {
    let records = seg.len() / 64;
    (records as usize / SHARDS + 16).min(BATCH)
}

fn live_len(loc: &Loc) -> i64 {
    if loc.is_tombstone() {
        0
    } else {
        i64::from(loc.len())
    }
}

fn summary<'b>(offset: u64, rec: &RecordRef<'b>) -> HintEntry<'b> {
    HintEntry {
        position: rec.position,
        kind: rec.kind,
        key: rec.key,
        offset,
        len: rec.len as u64,
        expiry: rec.expiry,
    }
}

fn load(
    keydir: &KeyDir,
    segments: &BTreeMap<SegmentId, Arc<Segment>>,
    task: &Task,
) -> Result<Summary, Error> {
    let load = SegmentLoad::new(keydir, segments, &task.seg);
    if !task.active {
        let map = task.seg.mapped().unwrap_or_default();
        return load.load_sealed(task.hint.as_deref(), map);
    }
    let seg = &task.seg;
    let mut bytes = vec![0u8; seg.len() as usize];
    let file = seg.active_file().ok_or(Error::Closed)?;
    file.read_exact_at(&mut bytes, 0)
        .map_err(|e| Error::io(&seg.path, e))?;
    load.load_active(&bytes)
}

/// Runs the tasks, in parallel when there is enough to load.
pub(super) fn run_tasks(
    dir: &Path,
    keydir: &KeyDir,
    segments: &BTreeMap<SegmentId, Arc<Segment>>,
    mut tasks: Vec<Task>,
) -> Result<Vec<Summary>, Error> {
    tasks.sort_by_key(|t| std::cmp::Reverse(t.seg.len()));
    let bytes: u64 = tasks.iter().map(|t| t.seg.len()).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(tasks.len()).min(MAX_RECOVERY_THREADS);
    if threads <= 1 || bytes < PARALLEL_MIN_BYTES {
        return tasks.iter().map(|t| load(keydir, segments, t)).collect();
    }
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let worker = || -> Result<Vec<Summary>, Error> {
        let mut out = Vec::new();
        while let Some(task) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let result = load(keydir, segments, task);
            failed.fetch_or(result.is_err(), Ordering::Relaxed);
            out.push(result?);
        }
        Ok(out)
    };
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut out = Vec::with_capacity(tasks.len());
    for result in results {
        let panicked = || Error::corrupted(dir, 0, "recovery thread panicked");
        out.extend(result.map_err(|_| panicked())??);
    }
    Ok(out)
}

/// Sizes the key directory for the records about to be loaded: hinted
/// segments by their entry counts, the others by their length over their
/// average record size, sampled from their first records. (A guess of the
/// record size that is too small over-sizes the tables; `shrink_to_fit`
/// gives the excess back to the allocator afterwards, but not to the
/// system, so it would still show in the process's memory.)
pub(super) fn reserve(keydir: &KeyDir, tasks: &[Task]) {
    let (mut records, mut hinted_bytes) = (0u64, 0u64);
    for task in tasks {
        if let Some(count) = task.hint.as_deref().and_then(hint::entry_count) {
            records += u64::from(count);
            hinted_bytes += task.seg.len();
        }
    }
    let average = hinted_bytes.checked_div(records).unwrap_or(64).max(32);
    let unhinted: u64 = tasks
        .iter()
        .filter(|t| t.hint.is_none())
        .map(|t| t.seg.len() / sampled_record_bytes(&t.seg).unwrap_or(average).max(16))
        .sum();
    keydir.reserve((records + unhinted) as usize);
}

/// Bytes read from the start of a segment without a hint to estimate its
/// average record size.
const SAMPLE_BYTES: u64 = 64 << 10;

/// The average size of the complete records in the first
/// [`SAMPLE_BYTES`] of `seg` (`None` if there are none, or on a read error:
/// the load reports those).
fn sampled_record_bytes(seg: &Segment) -> Option<u64> {
    let len = seg.len().min(SEGMENT_HEADER_BYTES + SAMPLE_BYTES);
    let bytes = seg.read(0, len as usize).ok()?;
    let (mut count, mut end) = (0u64, SEGMENT_HEADER_BYTES);
    for (offset, rec) in Scanner::new(&bytes, SEGMENT_HEADER_BYTES) {
        count += 1;
        end = offset + rec.len as u64;
    }
    (end - SEGMENT_HEADER_BYTES).checked_div(count)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::record::{Kind, encode};
    use crate::segment::SegmentHeader;

    /// A log segment without a hint (the active one, say) of 2,000 records
    /// of ~200 bytes: recovery reserves room for about 2,000 keys, not for
    /// its length over a 64-byte guess (3× too many: tables the process
    /// would allocate, then give back only to its allocator).
    #[test]
    fn an_unhinted_segment_is_reserved_for_its_sampled_record_count() {
        let dir = tempfile::tempdir().unwrap();
        let header = SegmentHeader {
            id: 1,
            kind: SegmentKind::Log,
            reset: false,
            base: Position::default(),
        };
        let (path, file) = segment::create_file(dir.path(), &header).unwrap();
        let mut bytes = Vec::new();
        for lsn in 1..=2000u64 {
            let position = Position { epoch: 1, lsn };
            encode(
                &mut bytes,
                position,
                Kind::Value,
                &lsn.to_le_bytes(),
                &[7; 180],
            );
        }
        file.write_all_at(&bytes, SEGMENT_HEADER_BYTES).unwrap();
        let len = SEGMENT_HEADER_BYTES + bytes.len() as u64;
        let seg = Arc::new(Segment::active(path, header, Arc::new(file), len));
        let record_bytes = bytes.len() as u64 / 2000;
        assert_eq!(sampled_record_bytes(&seg), Some(record_bytes));
        let keydir = KeyDir::new();
        let task = Task {
            seg,
            hint: None,
            active: true,
        };
        reserve(&keydir, &[task]);
        let exact = KeyDir::new();
        exact.reserve(2000);
        let (reserved, needed) = (keydir.memory_bytes(), exact.memory_bytes());
        assert!(reserved <= needed * 5 / 4, "{reserved} > {needed}");
    }
}

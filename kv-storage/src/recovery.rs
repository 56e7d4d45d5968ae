//! Opening a store directory: from files on disk back to a key directory.
//!
//! # What recovery may find, and what it does
//!
//! The store only ever changes the directory in these durable steps, so a
//! crash leaves one of a few recognisable states:
//!
//! 1. `*.tmp` files — an unfinished new segment, hint, compaction output,
//!    marker or epoch file. Never referenced: deleted.
//! 2. `compaction-<n>.marker` — a compaction whose outputs are all durable was
//!    deleting its inputs. The listed inputs still present are deleted, then
//!    the marker. (Without a marker, every input is still there and outputs
//!    that made it to their final names are merely duplicates — see 5.)
//! 3. A log segment with the *reset* flag — `clear()` was removing old data.
//!    Every segment with a lower id is deleted.
//! 4. Hints without a segment — deleted.
//! 5. The remaining segments are loaded in id order. Sealed ones through
//!    their hint when it is valid (else by a strict scan: any bad record is
//!    [`Error::Corrupted`] naming file and offset), the newest *log* segment by
//!    a lenient scan: at the first record that is torn or fails its CRC the
//!    file is truncated, the cut bytes counted in
//!    `Stats::truncated_tail_bytes`. That segment becomes the active one.
//!
//! For each key the record with the highest LSN wins, whatever file it is in,
//! so duplicates left by an interrupted compaction resolve themselves, and a
//! tombstone keeps hiding older values it shadows (tombstones are kept in the
//! key directory during loading and swept out at the end).
//!
//! # History bookkeeping
//!
//! - `last` position: the highest LSN of any record *or segment header base*,
//!   so a compaction that dropped the newest records (say a final tombstone)
//!   cannot make LSNs go backwards.
//! - `floor`: every LSN above it is present in log segments, contiguous. It is
//!   raised by compacted segments (their base), by the base of the first log
//!   segment (older ones were compacted or cleared), by gaps between LSNs of
//!   consecutive log records (snapshot installs) and by marker records.
//! - epoch: the larger of the `EPOCH` file and any epoch seen on disk.
//!
//! # Speed
//!
//! Segments are loaded in parallel (one task per segment, largest first, on
//! up to [`MAX_RECOVERY_THREADS`] threads): the key directory is sharded and
//! "highest LSN wins" does not depend on the order records arrive in. Each
//! task returns a summary; the ordered facts (LSN continuity between log
//! segments, the floor) are derived from the summaries afterwards. The key
//! directory is sized up front from the hint entry counts, so it never
//! rehashes while loading.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Error;
use crate::hint::{self, HintEntry};
use crate::keydir::{Batch, KeyDir, Loc, SHARDS, Upsert};
use crate::meta;
use crate::record::{Kind, RecordRef, decode};
use crate::segment::{
    self, SEGMENT_HEADER_BYTES, Scanner, Segment, SegmentHeader, SegmentId, SegmentKind,
};
use crate::{Epoch, Lsn, Position};

/// Upper bound on threads used to load segments.
pub const MAX_RECOVERY_THREADS: usize = 4;
/// Below this many bytes to load, recovery stays on the calling thread.
const PARALLEL_MIN_BYTES: u64 = 8 << 20;

/// What `recover` hands to `Store::open`.
pub(crate) struct Recovered {
    pub segments: BTreeMap<SegmentId, Arc<Segment>>,
    pub active: Arc<Segment>,
    pub active_file: Arc<File>,
    pub active_len: u64,
    pub last: Position,
    pub epoch: Epoch,
    pub floor: Lsn,
    pub live_bytes: u64,
    pub truncated_tail_bytes: u64,
    pub hint_fallbacks: u64,
    pub missing_hints: Vec<SegmentId>,
    pub next_segment: SegmentId,
}

/// Files found in the directory.
#[derive(Default)]
struct Listing {
    logs: BTreeMap<SegmentId, PathBuf>,
    hints: BTreeMap<SegmentId, PathBuf>,
    markers: Vec<PathBuf>,
    temporaries: Vec<PathBuf>,
    max_id: SegmentId,
}

impl Listing {
    fn read(dir: &Path) -> Result<Listing, Error> {
        let mut listing = Listing::default();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            listing.add(name, entry.path());
        }
        Ok(listing)
    }

    fn add(&mut self, name: &str, path: PathBuf) {
        let mut see = |id: SegmentId| self.max_id = self.max_id.max(id);
        if let Some(stem) = name.strip_suffix(".tmp") {
            segment::parse_name(stem, "log")
                .or(segment::parse_name(stem, "hint"))
                .map(&mut see);
            meta::parse_marker_name(stem).map(&mut see);
            self.temporaries.push(path);
        } else if let Some(id) = segment::parse_name(name, "log") {
            see(id);
            self.logs.insert(id, path);
        } else if let Some(id) = segment::parse_name(name, "hint") {
            see(id);
            self.hints.insert(id, path);
        } else if let Some(id) = meta::parse_marker_name(name) {
            see(id);
            self.markers.push(path);
        }
    }

    /// Deletes a segment and its hint, if present.
    fn delete_segment(&mut self, id: SegmentId) -> Result<(), Error> {
        if let Some(path) = self.logs.remove(&id) {
            remove_file(&path)?;
        }
        if let Some(path) = self.hints.remove(&id) {
            remove_file(&path)?;
        }
        Ok(())
    }
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// A segment file with its decoded header.
struct SegmentFile {
    path: PathBuf,
    file: File,
    header: SegmentHeader,
    len: u64,
}

fn open_segment(id: SegmentId, path: &Path) -> Result<SegmentFile, Error> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut buf = [0u8; SEGMENT_HEADER_BYTES as usize];
    let header = match file.read_exact_at(&mut buf, 0) {
        Ok(()) => SegmentHeader::decode(&buf),
        Err(_) => Err("segment shorter than its header"),
    };
    let header = header.map_err(|why| Error::corrupted(path, 0, why))?;
    if header.id != id {
        return Err(Error::corrupted(
            path,
            0,
            "segment id differs from file name",
        ));
    }
    Ok(SegmentFile {
        path: path.to_path_buf(),
        file,
        header,
        len,
    })
}

/// Steps 1–4 of the module docs; returns the segment files to load.
fn tidy(dir: &Path, listing: &mut Listing) -> Result<BTreeMap<SegmentId, SegmentFile>, Error> {
    for path in std::mem::take(&mut listing.temporaries) {
        remove_file(&path)?;
    }
    for marker in std::mem::take(&mut listing.markers) {
        for id in meta::read_marker(&marker)? {
            listing.delete_segment(id)?;
        }
        remove_file(&marker)?;
    }
    let mut files = BTreeMap::new();
    for (&id, path) in &listing.logs {
        files.insert(id, open_segment(id, path)?);
    }
    let reset = files
        .values()
        .filter(|f| f.header.reset)
        .map(|f| f.header.id)
        .max();
    if let Some(reset) = reset {
        let older: Vec<SegmentId> = files.range(..reset).map(|(&id, _)| id).collect();
        for id in older {
            files.remove(&id);
            listing.delete_segment(id)?;
        }
    }
    let orphans: Vec<SegmentId> = listing
        .hints
        .keys()
        .filter(|id| !files.contains_key(id))
        .copied()
        .collect();
    for id in orphans {
        listing.delete_segment(id)?;
    }
    segment::sync_dir(dir)?;
    Ok(files)
}

/// One segment to load.
struct Task {
    seg: Arc<Segment>,
    /// The hint file's bytes, if there is one.
    hint: Option<Vec<u8>>,
    /// The newest log segment: lenient scan, truncation, becomes active.
    active: bool,
}

/// How a sealed segment was indexed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HintUse {
    Used,
    /// A hint existed but was unusable.
    Fallback,
    /// No hint.
    Missing,
}

/// What loading one segment found.
struct Summary {
    seg: Arc<Segment>,
    first: Option<Lsn>,
    top: Position,
    max_epoch: Epoch,
    /// Floor implied by gaps and markers inside the segment.
    floor: Lsn,
    /// Change in live bytes (order-independent: it telescopes).
    live: i64,
    /// Tombstones put into the key directory (to be swept).
    tombstones: u64,
    truncated: u64,
    hint: HintUse,
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
        let queue = &mut self.pending[shard];
        queue.push(hash, rec.key, loc);
        if queue.len() >= BATCH || queue.key_bytes() >= BATCH_KEY_BYTES {
            self.flush(shard)?;
        }
        Ok(())
    }

    /// Inserts one shard's queue and does the live/dead accounting.
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
    /// truncating a torn or corrupt tail.
    fn load_active(mut self, bytes: &'a [u8]) -> Result<Summary, Error> {
        let seg = self.sum.seg.clone();
        let file_len = bytes.len() as u64;
        let mut end = SEGMENT_HEADER_BYTES;
        for (offset, rec) in Scanner::new(bytes, SEGMENT_HEADER_BYTES) {
            self.record(&summary(offset, &rec))?;
            end = offset + rec.len as u64;
        }
        if end < file_len {
            let file = seg.active_file().ok_or(Error::Closed)?;
            file.set_len(end)
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::io(&seg.path, e))?;
            self.sum.truncated = file_len - end;
        }
        seg.set_len(end);
        self.finish()
    }
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
fn run_tasks(
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

/// History facts derived from all summaries.
struct History {
    last: Position,
    max_epoch: Epoch,
    floor: Lsn,
}

/// Merges summaries in segment-id order (see "History bookkeeping").
fn history(summaries: &mut [Summary]) -> Result<History, Error> {
    summaries.sort_by_key(|s| s.seg.id);
    let mut h = History {
        last: Position::default(),
        max_epoch: 0,
        floor: 0,
    };
    let mut log_end: Option<Lsn> = None;
    for s in summaries.iter() {
        let base = s.seg.header.base;
        for p in [base, s.top] {
            if p.lsn > h.last.lsn {
                h.last = p;
            }
        }
        h.max_epoch = h.max_epoch.max(s.max_epoch).max(base.epoch);
        h.floor = h.floor.max(s.floor);
        if s.seg.header.kind == SegmentKind::Compacted {
            h.floor = h.floor.max(base.lsn);
            continue;
        }
        if log_end.is_none_or(|end| base.lsn > end) {
            h.floor = h.floor.max(base.lsn);
        }
        if let (Some(end), Some(first)) = (log_end, s.first)
            && first <= end
        {
            let why = "LSNs overlap with the previous log segment";
            return Err(Error::corrupted(&s.seg.path, SEGMENT_HEADER_BYTES, why));
        }
        log_end = Some(log_end.unwrap_or(0).max(base.lsn).max(s.top.lsn));
    }
    Ok(h)
}

/// Sizes the key directory for the records about to be loaded.
fn reserve(keydir: &KeyDir, tasks: &[Task]) {
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
        .map(|t| t.seg.len())
        .sum();
    keydir.reserve((records + unhinted / average) as usize);
}

/// Recovers the store in `dir` into `keydir` (which must be empty).
pub(crate) fn recover(dir: &Path, keydir: &KeyDir) -> Result<Recovered, Error> {
    let mut listing = Listing::read(dir)?;
    let files = tidy(dir, &mut listing)?;
    let newest_log = files
        .values()
        .rev()
        .find(|f| f.header.kind == SegmentKind::Log);
    let newest_log = newest_log.map(|f| f.header.id);
    let mut segments = BTreeMap::new();
    let mut tasks = Vec::new();
    let mut active = None;
    for (id, f) in files {
        let file = Arc::new(f.file);
        let is_active = Some(id) == newest_log;
        let seg = match is_active {
            true => Arc::new(Segment::active(f.path, f.header, file.clone(), f.len)),
            false => Arc::new(Segment::sealed(f.path, f.header, file.clone())?),
        };
        let hint_path = listing.hints.remove(&id);
        let hint = match (is_active, hint_path) {
            (true, Some(path)) => {
                remove_file(&path)?;
                None
            }
            (_, path) => path.and_then(|p| std::fs::read(p).ok()),
        };
        if is_active {
            active = Some((seg.clone(), file));
        }
        segments.insert(id, seg.clone());
        tasks.push(Task {
            seg,
            hint,
            active: is_active,
        });
    }
    reserve(keydir, &tasks);
    let mut summaries = run_tasks(dir, keydir, &segments, tasks)?;
    if summaries.iter().any(|s| s.tombstones > 0) {
        keydir.retain(|loc| !loc.is_tombstone());
    }
    keydir.shrink_if_sparse();
    let h = history(&mut summaries)?;
    let mut next_segment = listing
        .max_id
        .checked_add(1)
        .ok_or_else(|| Error::corrupted(dir, 0, "segment ids exhausted"))?;
    let (active, active_file) = match active {
        Some(a) => a,
        None => new_active(dir, &mut next_segment, h.last, &mut segments)?,
    };
    let active_id = active.id;
    let sealed_without_hint = |s: &&Summary| s.hint != HintUse::Used && s.seg.id != active_id;
    Ok(Recovered {
        active_len: active.len(),
        active,
        active_file,
        last: h.last,
        epoch: meta::read_epoch(dir)?.max(h.max_epoch),
        floor: h.floor,
        live_bytes: summaries.iter().map(|s| s.live).sum::<i64>().max(0) as u64,
        truncated_tail_bytes: summaries.iter().map(|s| s.truncated).sum(),
        hint_fallbacks: summaries
            .iter()
            .filter(|s| s.hint == HintUse::Fallback)
            .count() as u64,
        missing_hints: summaries
            .iter()
            .filter(sealed_without_hint)
            .map(|s| s.seg.id)
            .collect(),
        segments,
        next_segment,
    })
}

/// Creates the first log segment (fresh directory, or only compacted
/// segments left).
fn new_active(
    dir: &Path,
    next: &mut SegmentId,
    base: Position,
    segments: &mut BTreeMap<SegmentId, Arc<Segment>>,
) -> Result<(Arc<Segment>, Arc<File>), Error> {
    let id = *next;
    *next += 1;
    let header = SegmentHeader {
        id,
        kind: SegmentKind::Log,
        reset: false,
        base,
    };
    let (path, file) = segment::create_file(dir, &header)?;
    let file = Arc::new(file);
    let seg = Arc::new(Segment::active(
        path,
        header,
        file.clone(),
        SEGMENT_HEADER_BYTES,
    ));
    segments.insert(id, seg.clone());
    Ok((seg, file))
}

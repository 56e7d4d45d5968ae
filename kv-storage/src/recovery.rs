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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;
use crate::hint::{self, HintEntry};
use crate::keydir::{KeyDir, Loc, Upsert};
use crate::meta;
use crate::record::Kind;
use crate::segment::{
    self, SEGMENT_HEADER_BYTES, ScanItem, Scanner, Segment, SegmentHeader, SegmentId, SegmentKind,
};
use crate::{Epoch, Lsn, Position};

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

/// Per-segment loading state.
struct SegmentCtx {
    /// LSN of the previous record (ordering check).
    prev: Lsn,
    checkpoints: Vec<(Lsn, u32)>,
    top: Position,
}

/// Accumulates the key directory and history facts while loading.
struct Loader<'a> {
    keydir: &'a KeyDir,
    segments: BTreeMap<SegmentId, Arc<Segment>>,
    live: u64,
    last: Position,
    max_epoch: Epoch,
    floor: Lsn,
    log_prev: Option<Lsn>,
    hint_fallbacks: u64,
    missing_hints: Vec<SegmentId>,
    truncated: u64,
}

impl<'a> Loader<'a> {
    fn new(keydir: &'a KeyDir) -> Loader<'a> {
        Loader {
            keydir,
            segments: BTreeMap::new(),
            live: 0,
            last: Position::default(),
            max_epoch: 0,
            floor: 0,
            log_prev: None,
            hint_fallbacks: 0,
            missing_hints: Vec::new(),
            truncated: 0,
        }
    }

    fn see_position(&mut self, position: Position) {
        if position.lsn > self.last.lsn {
            self.last = position;
        }
        self.max_epoch = self.max_epoch.max(position.epoch);
    }

    fn begin(&mut self, seg: &Segment) -> SegmentCtx {
        let base = seg.header.base;
        self.see_position(base);
        let mut prev = 0;
        match seg.header.kind {
            SegmentKind::Compacted => self.floor = self.floor.max(base.lsn),
            SegmentKind::Log => {
                if self.log_prev.is_none_or(|p| base.lsn > p) {
                    self.floor = self.floor.max(base.lsn);
                }
                prev = self.log_prev.unwrap_or(0).max(base.lsn);
            }
        }
        SegmentCtx {
            prev,
            checkpoints: Vec::new(),
            top: Position::default(),
        }
    }

    fn end(&mut self, seg: &Segment, ctx: SegmentCtx) {
        seg.note_max(ctx.top);
        if seg.header.kind == SegmentKind::Log {
            self.log_prev = Some(ctx.prev);
            seg.set_checkpoints(ctx.checkpoints);
        }
    }

    /// Takes one record into account.
    fn record(
        &mut self,
        seg: &Segment,
        ctx: &mut SegmentCtx,
        rec: &HintEntry<'_>,
    ) -> Result<(), Error> {
        let lsn = rec.position.lsn;
        if lsn <= ctx.prev {
            return Err(Error::corrupted(
                &seg.path,
                rec.offset,
                "record LSNs do not increase",
            ));
        }
        if seg.header.kind == SegmentKind::Log {
            if lsn > ctx.prev + 1 {
                self.floor = self.floor.max(lsn - 1);
            }
            segment::push_checkpoint(&mut ctx.checkpoints, rec.offset, lsn);
        }
        ctx.prev = lsn;
        ctx.top = rec.position;
        self.see_position(rec.position);
        self.index(seg, rec)
    }

    /// Updates the key directory and dead/live byte counts for one record.
    fn index(&mut self, seg: &Segment, rec: &HintEntry<'_>) -> Result<(), Error> {
        let (offset, len, lsn) = (rec.offset as u32, rec.len as u32, rec.position.lsn);
        let loc = match rec.kind {
            Kind::Value => Loc::new(seg.id, offset, len, lsn),
            Kind::Tombstone => Loc::tombstone(seg.id, offset, len, lsn),
            Kind::Marker => {
                self.floor = self.floor.max(lsn);
                seg.add_dead(rec.len);
                return Ok(());
            }
        };
        if loc.is_tombstone() {
            seg.add_dead(rec.len);
        }
        let hash = self.keydir.hash(rec.key);
        match self.keydir.insert_newer(hash, rec.key, loc)? {
            Upsert::Stale if !loc.is_tombstone() => seg.add_dead(rec.len),
            Upsert::Stale => {}
            Upsert::Inserted => self.add_live(&loc),
            Upsert::Replaced(old) => {
                self.add_live(&loc);
                if !old.is_tombstone() {
                    self.live -= u64::from(old.len());
                    self.dead_in(old.segment, seg, old.len());
                }
            }
        }
        Ok(())
    }

    fn add_live(&mut self, loc: &Loc) {
        if !loc.is_tombstone() {
            self.live += u64::from(loc.len());
        }
    }

    fn dead_in(&self, id: SegmentId, current: &Segment, len: u32) {
        match self.segments.get(&id) {
            Some(s) => s.add_dead(u64::from(len)),
            None if id == current.id => current.add_dead(u64::from(len)),
            None => {}
        }
    }

    /// Loads a sealed segment through its hint, or by a strict scan.
    fn load_sealed(&mut self, f: SegmentFile, hint_path: Option<&PathBuf>) -> Result<(), Error> {
        let seg = Arc::new(Segment::sealed(f.path, f.header, &f.file)?);
        let mut ctx = self.begin(&seg);
        let hint_bytes = match hint_path {
            Some(path) => std::fs::read(path).ok(),
            None => None,
        };
        let entries = hint_bytes
            .as_deref()
            .and_then(|b| hint::entries(b, seg.id, seg.len()));
        match entries {
            Some(entries) => {
                for e in entries {
                    self.record(&seg, &mut ctx, &e)?;
                }
                let size = hint_bytes.map_or(0, |b| b.len() as u64);
                seg.hint_bytes
                    .store(size, std::sync::atomic::Ordering::Relaxed);
            }
            None => {
                self.hint_fallbacks += u64::from(hint_path.is_some());
                self.missing_hints.push(seg.id);
                self.scan_strict(&seg, &mut ctx)?;
            }
        }
        self.end(&seg, ctx);
        self.segments.insert(seg.id, seg);
        Ok(())
    }

    fn scan_strict(&mut self, seg: &Segment, ctx: &mut SegmentCtx) -> Result<(), Error> {
        let bytes = seg.mapped().unwrap_or_default();
        for item in Scanner::new(bytes, SEGMENT_HEADER_BYTES) {
            match item {
                ScanItem::Record(offset, rec) => {
                    self.record(seg, ctx, &summary(offset, &rec))?;
                }
                ScanItem::Bad(offset, e) => {
                    return Err(Error::corrupted(&seg.path, offset, e.reason()));
                }
            }
        }
        Ok(())
    }

    /// Loads the newest log segment, truncating a torn or corrupt tail.
    fn load_active(&mut self, f: SegmentFile) -> Result<(Arc<Segment>, Arc<File>, u64), Error> {
        let mut bytes = vec![0u8; f.len as usize];
        f.file
            .read_exact_at(&mut bytes, 0)
            .map_err(|e| Error::io(&f.path, e))?;
        let file = Arc::new(f.file);
        let seg = Arc::new(Segment::active(f.path, f.header, file.clone(), f.len));
        let mut ctx = self.begin(&seg);
        let mut end = SEGMENT_HEADER_BYTES;
        for item in Scanner::new(&bytes, SEGMENT_HEADER_BYTES) {
            let ScanItem::Record(offset, rec) = item else {
                break;
            };
            self.record(&seg, &mut ctx, &summary(offset, &rec))?;
            end = offset + rec.len as u64;
        }
        self.end(&seg, ctx);
        if end < f.len {
            file.set_len(end)
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::io(&seg.path, e))?;
            self.truncated += f.len - end;
        }
        seg.set_len(end);
        self.segments.insert(seg.id, seg.clone());
        Ok((seg, file, end))
    }
}

fn summary<'b>(offset: u64, rec: &crate::record::RecordRef<'b>) -> HintEntry<'b> {
    HintEntry {
        position: rec.position,
        kind: rec.kind,
        key: rec.key,
        offset,
        len: rec.len as u64,
    }
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
    let mut loader = Loader::new(keydir);
    let mut active = None;
    for (id, f) in files {
        if Some(id) == newest_log {
            if let Some(path) = listing.hints.remove(&id) {
                remove_file(&path)?;
            }
            active = Some(loader.load_active(f)?);
        } else {
            loader.load_sealed(f, listing.hints.get(&id))?;
        }
    }
    keydir.retain(|loc| !loc.is_tombstone());
    let mut next_segment = listing
        .max_id
        .checked_add(1)
        .ok_or_else(|| Error::corrupted(dir, 0, "segment ids exhausted"))?;
    let (active, active_file, active_len) = match active {
        Some(a) => a,
        None => new_active(dir, &mut next_segment, loader.last, &mut loader.segments)?,
    };
    let epoch = meta::read_epoch(dir)?.max(loader.max_epoch);
    Ok(Recovered {
        segments: loader.segments,
        active,
        active_file,
        active_len,
        last: loader.last,
        epoch,
        floor: loader.floor,
        live_bytes: loader.live,
        truncated_tail_bytes: loader.truncated,
        hint_fallbacks: loader.hint_fallbacks,
        missing_hints: loader.missing_hints,
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
) -> Result<(Arc<Segment>, Arc<File>, u64), Error> {
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
    Ok((seg, file, SEGMENT_HEADER_BYTES))
}

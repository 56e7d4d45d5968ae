//! Opening a store directory: from files on disk back to a key directory.
//!
//! # What recovery may find, and what it does
//!
//! The store only ever changes the directory in these durable steps, so a
//! crash leaves one of a few recognisable states:
//!
//! 0. `staging/` — a snapshot install: finished if its `COMMIT` record is
//!    there, else removed (`install.rs`). Then `truncate-<n>.marker` — a
//!    truncation passed its commit point: it is finished (`truncate.rs`).
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
//!    a lenient scan up to the first record that is torn or fails its CRC.
//!    If every byte from there to the end of the file is zero, that is the
//!    clean end of the log: the unused part of a pre-sized file (see
//!    "Pre-sizing" in `inner.rs`), kept for later appends and not counted.
//!    If a valid, newer record follows the damage (and no whole zero
//!    sector lies before it), acknowledged history would be lost by a cut:
//!    that is [`Error::Corrupted`] at the damage (`tail.rs` says why a
//!    crash never leaves that shape). Otherwise it is a torn tail: the file
//!    is truncated there, the cut bytes (zeros after the damage included)
//!    are counted in `Stats::truncated_tail_bytes` and logged at WARN.
//!    That segment becomes the active one; appends continue at its last
//!    record.
//!
//!    Zeros cannot hide a record: a record's LSN (bytes 8..16) is never 0, so
//!    no record starts with 16 zero bytes, and a tail shorter than that is
//!    shorter than any record. A crash leaves zeros only where nothing was
//!    durably written (a pre-size, or pages never written back), so an
//!    all-zero tail holds no acknowledged write; a torn record followed by
//!    zeros is not all-zero and is cut as before.
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
//! - Consecutive log segments are contiguous: a log segment's base is its
//!   predecessor's last position (`Inner::roll` fsyncs the predecessor
//!   before creating it), so a base beyond the predecessor's last LSN means
//!   a segment in between is gone (deleted by hand, lost by the disk): that
//!   is [`Error::Corrupted`] naming the segment after the gap. A missing
//!   *newest* log segment shows too: the segment before it was sealed and
//!   has a hint, which the newest log segment never has. Deleting the
//!   *oldest* log segment leaves no trace and is not detected (that would
//!   need a manifest of segments).
//! - epoch history: the `EPOCHS` file (legacy: `EPOCH`), reconciled with
//!   the log's last position and highest epoch (`epochs.rs`).
//!
//! # Speed
//!
//! Segments are loaded in parallel (one task per segment, largest first, on
//! up to `load::MAX_RECOVERY_THREADS` threads): the key directory is sharded and
//! "highest LSN wins" does not depend on the order records arrive in. Each
//! task returns a summary; the ordered facts (LSN continuity between log
//! segments, the floor) are derived from the summaries afterwards. The key
//! directory is sized up front from the hint entry counts, so it never
//! rehashes while loading. Those counts include overwritten and deleted
//! records, so after loading each table is cut to the size its live keys
//! need (`KeyDir::shrink_to_fit`): a reopened store holds no more key
//! directory memory per key than one loaded fresh (the ≤ 64 B/key target),
//! at the price of one rehash of the tables that overshot.

mod load;
mod tail;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::durable;
use crate::epochs::EpochHistory;
use crate::error::Error;
use crate::keydir::KeyDir;
use crate::meta;
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentHeader, SegmentId, SegmentKind};
use crate::{Epoch, Lsn, Position};
use load::{HintUse, Summary, Task, reserve, run_tasks};

/// What `recover` hands to `Store::open`.
pub(crate) struct Recovered {
    pub segments: BTreeMap<SegmentId, Arc<Segment>>,
    pub active: Arc<Segment>,
    pub active_file: Arc<File>,
    /// End of the active segment's last record.
    pub active_len: u64,
    /// Length of the active file (≥ `active_len`; zeros in between).
    pub active_file_len: u64,
    pub last: Position,
    pub epochs: EpochHistory,
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
        if let Some(stem) = name.strip_suffix(durable::TMP_SUFFIX) {
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
        // The deletions must be durable before the marker that orders them
        // disappears, or a power loss could bring inputs back without it.
        durable::sync_dir(dir)?;
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
    durable::sync_dir(dir)?;
    Ok(files)
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
        match log_end {
            None => h.floor = h.floor.max(base.lsn),
            Some(end) if base.lsn > end => return Err(missing_history(s, end)),
            Some(_) => {}
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

/// A log segment starts after LSNs its predecessor does not hold: every
/// log segment's base is its predecessor's last position (`Inner::roll`),
/// so the records in between were in a segment that is gone.
fn missing_history(s: &Summary, end: Lsn) -> Error {
    let why = format!(
        "LSNs {}..={} are missing: the previous log segment ends at lsn {end} \
         but this one continues from lsn {} (was a segment deleted?)",
        end + 1,
        s.seg.header.base.lsn,
        s.seg.header.base.lsn
    );
    Error::corrupted(&s.seg.path, 0, why)
}

/// Recovers the store in `dir` into `keydir` (which must be empty).
pub(crate) fn recover(dir: &Path, keydir: &KeyDir) -> Result<Recovered, Error> {
    crate::install::finish_interrupted(dir)?;
    crate::truncate::finish_interrupted(dir)?;
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
            // Hints are written only for sealed segments, after the next
            // log segment exists durably (`Inner::roll`); the active one
            // never gets one. So the newest log segment having a hint
            // means a newer log segment is gone.
            (true, Some(_)) => {
                let why = "this segment was sealed (it has a hint) but no newer \
                           log segment exists: the newest segment is missing";
                return Err(Error::corrupted(&seg.path, 0, why));
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
    keydir.shrink_to_fit();
    let h = history(&mut summaries)?;
    let mut next_segment = listing
        .max_id
        .checked_add(1)
        .ok_or_else(|| Error::corrupted(dir, 0, "segment ids exhausted"))?;
    let (active, active_file) = match active {
        Some(a) => a,
        None => new_active(dir, &mut next_segment, h.last, &mut segments)?,
    };
    let active_file_len = active_file
        .metadata()
        .map_err(|e| Error::io(&active.path, e))?
        .len();
    let active_id = active.id;
    let sealed_without_hint = |s: &&Summary| s.hint != HintUse::Used && s.seg.id != active_id;
    Ok(Recovered {
        active_len: active.len(),
        active_file_len,
        active,
        active_file,
        last: h.last,
        epochs: EpochHistory::load(dir, h.last, h.max_epoch)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{self, Kind};
    use crate::{Options, Since, Store};

    fn pos(epoch: Epoch, lsn: Lsn) -> Position {
        Position { epoch, lsn }
    }

    /// A store as `Store::install_snapshot` left it before that writer was
    /// removed: a reset log segment holding the snapshot's values, then a
    /// `Kind::Marker` record at the snapshot's position. Markers are no
    /// longer written, but such files must still open: the marker sets
    /// the position and the history floor and is otherwise invisible.
    fn legacy_snapshot_store(dir: &Path) {
        let header = SegmentHeader {
            id: 1,
            kind: SegmentKind::Log,
            reset: true,
            base: Position::default(),
        };
        let mut bytes = header.encode().to_vec();
        record::encode(&mut bytes, pos(2, 3), Kind::Value, b"a", b"apple");
        record::encode(&mut bytes, pos(2, 5), Kind::Value, b"b", b"banana");
        record::encode(&mut bytes, pos(2, 9), Kind::Marker, b"", b"");
        std::fs::write(dir.join(segment::log_name(1)), bytes).unwrap();
    }

    #[test]
    fn a_legacy_snapshot_marker_sets_position_and_floor_only() {
        let dir = tempfile::tempdir().unwrap();
        legacy_snapshot_store(dir.path());
        for _reopen in 0..2 {
            let store = Store::open(dir.path(), Options::default()).unwrap();
            assert_eq!(store.last_position(), pos(2, 9));
            assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"apple"[..]));
            assert_eq!(store.get(b"").unwrap(), None);
            let Since::Snapshot { entries, last } = store.entries_since(0, 10).unwrap() else {
                panic!("history below the marker is not on disk");
            };
            assert_eq!(last, pos(2, 9));
            let keys: Vec<_> = entries.iter().map(|e| e.key.clone()).collect();
            assert_eq!(keys, [&b"a"[..], &b"b"[..]]);
            assert!(
                matches!(store.entries_since(9, 10).unwrap(), Since::Entries(e) if e.is_empty())
            );
            store.close().unwrap();
        }
        let store = Store::open(dir.path(), Options::default()).unwrap();
        assert_eq!(store.put(b"c", b"cherry").unwrap().lsn, 10);
        let Since::Entries(after) = store.entries_since(9, 10).unwrap() else {
            panic!("history after the marker is on disk");
        };
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].key.as_ref(), b"c");
    }
}

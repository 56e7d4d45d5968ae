//! Truncation: removing a divergent tail of the history.
//!
//! # Why and what
//!
//! Log matching (`Store::end_of_epoch`, `epochs.rs`) tells a follower the
//! last LSN it shares with its leader; every entry after it was written by
//! a leader whose history lost. [`Store::truncate_after`] removes those
//! entries, after saving them to a rollback file (`rollback.rs`), and puts
//! each affected key back to its version at the truncation point (or
//! removes it if it did not exist then).
//!
//! The entries above the history floor are all in log segments, in LSN
//! order (compaction only ever rewrites segments at or below the floor), so
//! the tail is: the end of one log segment `A` (from the first record above
//! the cut) and every later log segment. Sealed segments are never modified
//! (they may be mapped), so the records of `A` before the cut are copied,
//! byte for byte and at the same offsets, into a new log segment `N`, which
//! replaces `A` and everything after it and becomes the active segment.
//!
//! # Steps (each durable before the next)
//!
//! 1. *Rollback file*: every removed record, fsynced, renamed into
//!    `rollback/`.
//! 2. *Head*: `segment-N.log.tmp` = `A`'s header base and its records up
//!    to the cut (the last one's *batch continues* flag cleared, so a cut
//!    through a write batch keeps the part before it), fsynced.
//! 3. *Marker*: `truncate-N.marker` lists `A` and the later log segments.
//!    This is the commit point.
//! 4. *Rename* the head to `segment-N.log`; fsync the directory.
//! 5. *Switch* in memory: `N` becomes the active segment, keys move to their
//!    previous versions, the epoch history is trimmed (and saved).
//! 6. *Delete* the listed segments and their hints; fsync the directory.
//! 7. Delete the marker.
//!
//! # Crash at any point
//!
//! Recovery looks for truncation markers before anything else
//! ([`finish_interrupted`]): with a marker it renames a remaining
//! `segment-N.log.tmp`, deletes the listed segments, then the marker, so the
//! store opens truncated. Without one, the head is an ignored `.tmp` file
//! (deleted) and the store opens untruncated. The rollback file, once
//! renamed, is complete either way. An epoch-history row for a removed
//! epoch that was not yet trimmed is dropped on open (it starts beyond the
//! log's end).
//!
//! # Cost
//!
//! Rebuilding the affected keys reads every remaining segment once (the
//! older versions may be anywhere); the writer lock is held throughout.
//! Truncation is rare (a leader change with a divergent tail).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::durable;
use crate::error::Error;
use crate::fault::{self, FaultPoint};
use crate::inner::{Inner, Writer};
use crate::keydir::Loc;
use crate::meta;
use crate::record::{self, Kind};
use crate::rollback;
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentHeader, SegmentId, SegmentKind};
use crate::stats::bump;
use crate::{Lsn, Position, Store};

/// What [`Store::truncate_after`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The store's last position afterwards.
    pub kept: Position,
    /// How many entries were removed (and saved to the rollback file).
    pub removed: u64,
    /// The rollback file holding them (`None` if nothing was removed).
    pub rollback: Option<PathBuf>,
}

impl Store {
    /// Removes every entry with LSN above `position.lsn` (the epoch is not
    /// consulted), saving them first to a rollback file under
    /// `<dir>/rollback/` (see [`rollback`](crate::rollback)) and logging
    /// their count at WARN. Afterwards `last_position()` is the returned
    /// [`Truncation::kept`]: the entry at `position.lsn`, or, if that LSN
    /// falls in a gap of this store's history (LSNs it never received,
    /// e.g. before a snapshot position), the last entry before it. Each
    /// affected key shows its version as of that point (or is absent), and
    /// the epoch history ends there. Nothing to remove is a no-op.
    ///
    /// [`Error::HistoryGone`] if `position.lsn` is below the history floor
    /// (the older versions are gone): resynchronise with a snapshot instead.
    /// Crash-safe at every step: a store reopened after a crash is either
    /// untruncated or truncated, and its rollback file complete.
    pub fn truncate_after(&self, position: Position) -> Result<Truncation, Error> {
        run(self.inner(), position.lsn, None)
    }

    /// Test hook: truncates but stops at `point`, leaving the files as a
    /// crash there would; the store refuses further operations.
    #[doc(hidden)]
    pub fn truncate_after_until(
        &self,
        position: Position,
        point: FaultPoint,
    ) -> Result<Truncation, Error> {
        run(self.inner(), position.lsn, Some(point))
    }
}

/// The log segments a truncation replaces and where it cuts the first.
struct Plan {
    after: Lsn,
    /// Log segments holding LSNs above `after`, oldest first.
    doomed: Vec<Arc<Segment>>,
    /// Offset in the first doomed segment of its first record above `after`.
    cut: u64,
    /// Offset of the last record kept in that segment, if any.
    last_kept: Option<u64>,
    kept: Position,
    new_id: SegmentId,
}

impl Plan {
    fn first(&self) -> Result<&Arc<Segment>, Error> {
        self.doomed.first().ok_or(Error::Closed)
    }
}

fn run(inner: &Inner, after: Lsn, stop: Option<FaultPoint>) -> Result<Truncation, Error> {
    let _compaction = inner.compaction_lock.lock();
    let mut w = inner.writer.lock();
    inner.check_writable()?;
    if after >= w.last.lsn {
        return Ok(Truncation {
            kept: w.last,
            removed: 0,
            rollback: None,
        });
    }
    let result = truncate(inner, &mut w, after, stop);
    if matches!(result, Err(Error::FaultInjected(_))) {
        inner.closed.store(true, Ordering::Release);
    }
    result
}

fn truncate(
    inner: &Inner,
    w: &mut Writer,
    after: Lsn,
    stop: Option<FaultPoint>,
) -> Result<Truncation, Error> {
    let mut plan = plan(inner, after)?;
    let (rollback, removed, affected) = save_tail(inner, &mut plan)?;
    tracing::warn!(
        store = %inner.dir.display(),
        after,
        removed,
        rollback = %rollback.display(),
        "truncated a divergent history tail; removed entries saved to the rollback file"
    );
    fault::check(stop, FaultPoint::TruncateAfterRollback)?;
    let head = write_head(inner, &plan)?;
    fault::check(stop, FaultPoint::TruncateAfterHeadWritten)?;
    let ids: Vec<SegmentId> = plan.doomed.iter().map(|s| s.id).collect();
    meta::write_truncate_marker(&inner.dir, plan.new_id, &ids)?;
    fault::check(stop, FaultPoint::TruncateAfterMarker)?;
    let path = inner.dir.join(segment::log_name(plan.new_id));
    std::fs::rename(&head, &path).map_err(|e| Error::io(&path, e))?;
    durable::sync_dir(&inner.dir)?;
    fault::check(stop, FaultPoint::TruncateAfterRename)?;
    switch(inner, w, &plan, path, &affected)?;
    delete_segments(inner, &ids, stop)?;
    fault::check(stop, FaultPoint::TruncateAfterDeletes)?;
    let marker = inner.dir.join(meta::truncate_marker_name(plan.new_id));
    std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
    durable::sync_dir(&inner.dir)?;
    bump(&inner.counters.rolled_back_entries, removed);
    Ok(Truncation {
        kept: plan.kept,
        removed,
        rollback: Some(rollback),
    })
}

/// Finds the log segments to replace; [`Error::HistoryGone`] below the floor.
fn plan(inner: &Inner, after: Lsn) -> Result<Plan, Error> {
    let layout = inner.layout.read();
    let gone = || Error::HistoryGone {
        requested: after,
        floor: layout.floor,
    };
    if after < layout.floor {
        return Err(gone());
    }
    let logs = layout
        .segments
        .values()
        .filter(|s| s.header.kind == SegmentKind::Log);
    // A segment with no record above `after` is doomed too when its header
    // says it starts above it (an empty active segment after an earlier
    // truncation): kept, it would overlap the new head's LSNs.
    let doomed: Vec<_> = logs
        .filter(|s| s.max_position().lsn > after)
        .cloned()
        .collect();
    let first = doomed.first().ok_or_else(gone)?;
    if first.header.base.lsn > after {
        return Err(gone());
    }
    Ok(Plan {
        after,
        cut: first.len(),
        last_kept: None,
        kept: first.header.base,
        new_id: inner.next_segment.fetch_add(1, Ordering::SeqCst),
        doomed,
    })
}

/// Keys a truncation changes.
type Affected = HashSet<Vec<u8>>;

/// Step 1: writes every record above `after` to a rollback file, finds
/// where the first doomed segment is cut and which keys change.
fn save_tail(inner: &Inner, plan: &mut Plan) -> Result<(PathBuf, u64, Affected), Error> {
    let mut out = rollback::Writer::create(&inner.dir)?;
    let mut affected = Affected::new();
    let mut failed = Ok(());
    let doomed = plan.doomed.clone();
    for (i, seg) in doomed.iter().enumerate() {
        let start = match i {
            0 => seg.scan_start(plan.after),
            _ => SEGMENT_HEADER_BYTES,
        };
        seg.for_each_record(start, seg.len(), |offset, rec| {
            if rec.position.lsn <= plan.after {
                (plan.last_kept, plan.kept) = (Some(offset), rec.position);
                return ControlFlow::Continue(());
            }
            if i == 0 {
                plan.cut = plan.cut.min(offset);
            }
            if rec.kind == Kind::Marker {
                return ControlFlow::Continue(());
            }
            let value = (rec.kind == Kind::Value).then_some(rec.value);
            failed = out.add(rec.position, rec.key, value, rec.expiry);
            affected.insert(rec.key.to_vec());
            match failed {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        })?;
        std::mem::replace(&mut failed, Ok(()))?;
    }
    out.set_after(plan.kept);
    let (path, removed) = out.finish()?;
    Ok((path, removed, affected))
}

/// Step 2: the kept records of the first doomed segment, in a new segment
/// file under a `.tmp` name; returns that path.
fn write_head(inner: &Inner, plan: &Plan) -> Result<PathBuf, Error> {
    let first = plan.first()?;
    let header = SegmentHeader {
        id: plan.new_id,
        kind: SegmentKind::Log,
        reset: false,
        base: first.header.base,
    };
    let mut bytes = header.encode().to_vec();
    let head_len = plan.cut.saturating_sub(SEGMENT_HEADER_BYTES);
    bytes.extend_from_slice(&first.read(SEGMENT_HEADER_BYTES, head_len as usize)?);
    if let Some(last) = plan.last_kept {
        let rec = bytes.get_mut(last as usize..).unwrap_or_default();
        record::end_batch(rec).map_err(|e| Error::corrupted(&first.path, last, e.reason()))?;
    }
    let tmp = durable::tmp_path(&inner.dir, &segment::log_name(plan.new_id));
    durable::write_synced(&tmp, &bytes)?;
    Ok(tmp)
}

/// Step 5: the new head segment becomes the active one; keys move to it
/// or back to their versions at the cut; the epoch history is trimmed.
fn switch(
    inner: &Inner,
    w: &mut Writer,
    plan: &Plan,
    path: PathBuf,
    affected: &Affected,
) -> Result<(), Error> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    let file = Arc::new(file);
    let first = plan.first()?;
    let header = SegmentHeader {
        id: plan.new_id,
        base: first.header.base,
        ..first.header
    };
    let head = Arc::new(Segment::active(path, header, file.clone(), plan.cut));
    let _install = inner.install_lock.lock();
    inner.layout.write().segments.insert(head.id, head.clone());
    move_head_keys(inner, first, &head)?;
    restore_affected(inner, plan, affected)?;
    {
        let mut layout = inner.layout.write();
        for seg in &plan.doomed {
            layout.segments.remove(&seg.id);
        }
        layout.active = head.id;
        // A cut inside a gap keeps less than the floor promised: nothing
        // above `kept` is left, so the floor (never above the end) is it.
        layout.floor = layout.floor.min(plan.kept.lsn);
    }
    (w.active, w.file, w.last) = (head, file, plan.kept);
    (w.offset, w.allocated) = (plan.cut, plan.cut);
    let epochs = w.epochs.truncated(plan.kept.lsn);
    epochs.save(&inner.dir)?;
    w.epochs = epochs;
    Ok(())
}

/// Indexes the head's records and moves keys that pointed at them in the
/// old segment (same offsets) to the head.
fn move_head_keys(inner: &Inner, from: &Segment, head: &Segment) -> Result<(), Error> {
    head.for_each_record(SEGMENT_HEADER_BYTES, head.len(), |offset, rec| {
        let end = offset + rec.len as u64;
        head.note_appended(offset, rec.position, end);
        let old = Loc::new(from.id, offset as u32, rec.len as u32, rec.position.lsn);
        let new = Loc::new(head.id, offset as u32, rec.len as u32, rec.position.lsn);
        let hash = inner.keydir.hash(rec.key);
        if rec.kind != Kind::Value || !inner.keydir.replace_if(hash, rec.key, &old, new) {
            head.add_dead(rec.len as u64);
        }
        ControlFlow::Continue(())
    })
}

/// Points each affected key at its newest record at or below the cut, or
/// removes it if that is a deletion or there is none.
fn restore_affected(inner: &Inner, plan: &Plan, affected: &Affected) -> Result<(), Error> {
    let segments: Vec<_> = {
        let layout = inner.layout.read();
        let doomed = |s: &&Arc<Segment>| plan.doomed.iter().any(|d| d.id == s.id);
        layout
            .segments
            .values()
            .filter(|s| !doomed(s))
            .cloned()
            .collect()
    };
    let newest = newest_records(&segments, affected, plan.after)?;
    for key in affected {
        let hash = inner.keydir.hash(key);
        match newest.get(key.as_slice()) {
            Some(&(loc, Kind::Value, expiry)) => {
                let old = inner.keydir.insert(hash, key, loc, expiry)?;
                inner.note_replaced(old, Some(&loc));
            }
            _ => {
                let old = inner.keydir.remove(hash, key);
                inner.note_replaced(old, None);
            }
        }
        inner.cache.remove(hash, key);
    }
    Ok(())
}

/// A key's newest record: where it is, its kind and its expiry.
pub(crate) type Newest = (Loc, Kind, Option<u64>);

/// For each key in `keys`, its newest record (value, tombstone or marker
/// excluded) with LSN at most `max_lsn` in `segments`, and that record's
/// kind and expiry. Reads every record of every segment: for rare or background work
/// (truncation, compaction's older versions).
pub(crate) fn newest_records<'k>(
    segments: &[Arc<Segment>],
    keys: &'k HashSet<Vec<u8>>,
    max_lsn: Lsn,
) -> Result<HashMap<&'k [u8], Newest>, Error> {
    let mut newest: HashMap<&[u8], Newest> = HashMap::new();
    for seg in segments {
        seg.for_each_record(SEGMENT_HEADER_BYTES, seg.len(), |offset, rec| {
            let lsn = rec.position.lsn;
            let Some(key) = keys.get(rec.key) else {
                return ControlFlow::Continue(());
            };
            let newer = newest.get(key.as_slice()).is_none_or(|n| n.0.lsn() < lsn);
            if lsn <= max_lsn && rec.kind != Kind::Marker && newer {
                let loc = Loc::new(seg.id, offset as u32, rec.len as u32, lsn);
                newest.insert(key.as_slice(), (loc, rec.kind, rec.expiry));
            }
            ControlFlow::Continue(())
        })?;
    }
    Ok(newest)
}

/// Step 6: deletes the replaced segments and their hints.
fn delete_segments(
    inner: &Inner,
    ids: &[SegmentId],
    stop: Option<FaultPoint>,
) -> Result<(), Error> {
    for (i, &id) in ids.iter().enumerate() {
        segment::remove_files(&inner.dir, id)?;
        if i == 0 {
            fault::check(stop, FaultPoint::TruncateAfterFirstDelete)?;
        }
    }
    durable::sync_dir(&inner.dir)
}

/// Recovery's first step: finishes every truncation whose marker is
/// durable (see "Crash at any point").
pub(crate) fn finish_interrupted(dir: &Path) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut markers = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str());
        if let Some(id) = name.and_then(meta::parse_truncate_marker_name) {
            markers.push((id, path));
        }
    }
    markers.sort();
    for (id, marker) in markers {
        let head = dir.join(segment::log_name(id));
        let tmp = durable::tmp_path(dir, &segment::log_name(id));
        if tmp.exists() {
            std::fs::rename(&tmp, &head).map_err(|e| Error::io(&head, e))?;
        }
        for doomed in meta::read_truncate_marker(&marker)? {
            segment::remove_files(dir, doomed)?;
        }
        durable::sync_dir(dir)?;
        std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
        durable::sync_dir(dir)?;
    }
    Ok(())
}

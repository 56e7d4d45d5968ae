//! Compaction: merge sealed segments into new ones holding only the records
//! the store still needs.
//!
//! # What is kept
//!
//! The inputs are every compacted segment and the sealed log segments wholly
//! at or below the retention watermark (`Store::set_retention`; all of them
//! when none is set). So they hold *every* record with LSN ≤ `base`, the
//! highest position they cover, and none above it. The output keeps, for each
//! key, its newest record at or below `base` if that is a value: the current
//! version when the key directory points into the inputs, otherwise (the key
//! was written again above `base`) its newest older value, found by reading
//! the inputs. Everything else is dropped. That makes the history floor
//! (raised to `base`) mean one thing for both users of old history: every
//! record above it is still in the log (`entries_since`), and every key's
//! version *as of* any LSN at or above it can be rebuilt
//! (`Store::truncate_after`). The older values kept this way are not counted
//! as garbage (so they cannot trigger compaction by themselves); the next
//! compaction whose `base` passes their successor drops them.
//!
//! # The active segment
//!
//! An explicit `Store::compact` (`Scope::WithActive`) first seals the active
//! segment when it holds garbage (a dead record, or any key due to expire)
//! and, once sealed, would be an input (wholly at or below the watermark):
//! step 0 below. Without it a store smaller than one segment, and the newest
//! `segment_bytes` of a larger one, would keep every overwritten or deleted
//! value after `compact()`. The background policy (`Scope::Sealed`) leaves
//! the active segment alone: it compacts when sealed garbage passes its
//! ratio, and an early roll there would only make more, smaller segments.
//! Sealing a segment that holds no garbage would gain nothing, so it is not
//! done (an explicit compaction of a store without garbage stays a no-op).

//! # Steps (each durable before the next)
//!
//! 0. *Seal* (only `Scope::WithActive`, under the compaction lock, then
//!    the writer lock): an ordinary segment roll (`Inner::roll`: trim and
//!    fsync the active file, map it, create the next log segment durably).
//!    The sealed segment is then the newest input, so the inputs still hold
//!    every record at or below `base` (log segments are in LSN order) and
//!    the new active segment holds every record above it. A crash after it
//!    leaves a store that merely rolled early (its hint is rebuilt at
//!    open); fault point `AfterActiveSealed`.
//! 1. *Plan* (under the compaction lock): the inputs as above; `base` is the
//!    highest position any of them covers.
//! 2. *Write*: the records to keep (above), sorted by LSN, are copied byte
//!    for byte (CRC checked on the
//!    way) into `segment-<n>.log.tmp` files of at most `segment_bytes`, each
//!    with a compacted-kind header carrying `base`, and a hint next to it;
//!    both fsynced.
//! 3. *Rename* the outputs and hints to their final names; fsync the dir.
//! 4. *Install* in memory: map the outputs, add them to the layout, and move
//!    each key whose directory entry still points at the copied record.
//!    Keys written meanwhile keep their newer location; the copy becomes dead
//!    bytes in the output.
//! 5. *Marker*: `compaction-<n>.marker` listing the inputs, written
//!    atomically.
//! 6. *Retire*: drop the inputs from the layout and raise the history floor
//!    to `base`; delete input segments and hints; fsync the dir.
//! 7. Delete the marker.
//!
//! Readers and writers run during all of it: readers resolve a key to a
//! segment and retry if the segment vanished; writers only append to the
//! active segment, which is never an input (step 0 makes the old active
//! segment an input only after sealing it, under the writer lock, exactly as
//! a roll at the size limit does; writers wait for that roll only).
//!
//! # Crash at any point
//!
//! - Before 3 completes: `.tmp` files are deleted by recovery; outputs that
//!   were already renamed duplicate records of inputs that all still exist,
//!   and recovery keeps one copy per LSN. Nothing is lost or resurrected.
//! - After 5: recovery deletes whatever inputs remain, then the marker.
//!
//! # Tombstones
//!
//! A tombstone is never copied. That is safe because the inputs hold *every*
//! record at or below `base`: any older value the tombstone hides is in an
//! input too (the other segments only hold newer records), so it disappears
//! in the same compaction. The marker ensures recovery never sees a state in which
//! the tombstone's input is gone but an older value's input is not.
//!
//! # Expired keys
//!
//! A record whose key has expired by the store's clock when the plan is
//! made is not copied either, and at install the key leaves the key
//! directory (if it still points at that record), with no tombstone: for
//! the same reason as above, every older record of the key is an input and
//! goes too, so nothing can resurrect it. A store full of expired keys thus
//! gets its disk and key-directory space back from one compaction, even on
//! a follower, where no tombstones are written for them until the leader's
//! arrive. Inputs holding expired keys are worth compacting even without
//! other dead bytes. (On the leader, `Store::expire_due` usually deletes
//! expired keys first, with tombstones that replicate.)
//!
//! # Cost
//!
//! A full merge rewrites all live data of its inputs, so write
//! amplification is bounded by the garbage ratio that triggers it (with the
//! default 0.5, at most 2×). Finding older values reads the inputs once more
//! and the records above `base` once (their keys are held in a set). Memory:
//! 20 bytes per live record for the plan plus 28 per copied record until
//! install, plus the keys written above `base`.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::durable;
use crate::error::Error;
use crate::expiry::is_expired;
use crate::fault::{self, FaultPoint};
use crate::hint::HintBuilder;
use crate::inner::{Inner, Layout};
use crate::keydir::Loc;
use crate::meta;
use crate::record::{self, Kind};
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentHeader, SegmentId, SegmentKind};
use crate::stats::{CompactionStats, bump};
use crate::{Lsn, Position};

const WRITE_BUFFER_BYTES: usize = 1 << 20;
/// Records copied between checks of the shutdown flag.
const SHUTDOWN_CHECK_EVERY: usize = 1024;

/// Which segments a compaction may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only segments sealed already (the background policy).
    Sealed,
    /// Seal the active segment first when that reclaims something (an
    /// explicit `Store::compact`): step 0 of the module docs.
    WithActive,
}

/// Runs one compaction, optionally stopping at a fault point (tests).
pub(crate) fn compact(
    inner: &Inner,
    scope: Scope,
    stop: Option<FaultPoint>,
) -> Result<CompactionStats, Error> {
    let started = Instant::now();
    let _guard = inner.compaction_lock.lock();
    inner.check_writable()?;
    if scope == Scope::WithActive && seal_active(inner)? {
        crashed_at(inner, fault::check(stop, FaultPoint::AfterActiveSealed))?;
    }
    let Some(plan) = Plan::new(inner) else {
        return Ok(CompactionStats::default());
    };
    let (live, expired) = plan.records_to_keep(inner)?;
    let mut outputs = Outputs {
        expired,
        ..Outputs::default()
    };
    if let Err(e) = outputs.write(inner, &plan, &live) {
        outputs.abandon();
        return Err(e);
    }
    drop(live);
    let mut stats = crashed_at(inner, commit(inner, &plan, &outputs, stop))?;
    stats.duration = started.elapsed();
    Ok(stats)
}

/// A test stopped at a fault point leaves the files as a crash there
/// would: the store refuses further work.
fn crashed_at<T>(inner: &Inner, result: Result<T, Error>) -> Result<T, Error> {
    if matches!(result, Err(Error::FaultInjected(_))) {
        inner.closed.store(true, Ordering::Release);
    }
    result
}

/// Step 0: seals the active segment if it holds garbage (a dead record, or
/// a key due to expire, which may be in it) and, once sealed, would be an
/// input (wholly at or below the retention watermark). Returns whether it
/// did.
fn seal_active(inner: &Inner) -> Result<bool, Error> {
    let mut w = inner.writer.lock();
    inner.check_writable()?;
    let active = &w.active;
    let garbage = active.dead_bytes.load(Ordering::Relaxed) > 0
        || (w.offset > SEGMENT_HEADER_BYTES && inner.keydir.any_due(inner.now()));
    if !garbage || active.max_position().lsn > inner.retention() {
        return Ok(false);
    }
    inner.roll(&mut w)?;
    Ok(true)
}

/// The inputs of one compaction.
struct Plan {
    inputs: BTreeMap<SegmentId, Arc<Segment>>,
    base: Position,
    bytes_before: u64,
    /// The clock reading expiry is judged by.
    now: u64,
}

impl Plan {
    fn new(inner: &Inner) -> Option<Plan> {
        let now = inner.now();
        let layout = inner.layout.read();
        let inputs: BTreeMap<_, _> = eligible(&layout, inner.retention())
            .map(|s| (s.id, s.clone()))
            .collect();
        // Nothing to reclaim when no input holds a dead record (tombstones
        // count as dead): rewriting would copy every byte and free none.
        let nothing_dead = inputs
            .values()
            .all(|s| s.dead_bytes.load(Ordering::Relaxed) == 0);
        if inputs.is_empty() || (nothing_dead && !inner.keydir.any_due(now)) {
            return None;
        }
        let base = inputs
            .values()
            .map(|s| s.max_position())
            .max_by_key(|p| p.lsn)
            .unwrap_or_default();
        let bytes_before = inputs
            .values()
            .map(|s| s.len() + s.hint_bytes.load(Ordering::Relaxed))
            .sum();
        Some(Plan {
            inputs,
            base,
            bytes_before,
            now,
        })
    }

    /// The records to copy, in LSN order (see "What is kept"): the current
    /// versions the key directory points at in the inputs, then, for keys
    /// written again above `base`, their newest value at or below it; and
    /// apart, the current versions of keys expired at `self.now` (not
    /// copied, see "Expired keys").
    fn records_to_keep(&self, inner: &Inner) -> Result<(Vec<Keep>, Vec<Loc>), Error> {
        let (mut keep, mut expired) = (Vec::new(), Vec::new());
        inner.keydir.for_each(|_, loc, expiry| {
            if !self.inputs.contains_key(&loc.segment) {
                return;
            }
            match expiry.is_some_and(|at| is_expired(at, self.now)) {
                true => expired.push(loc),
                false => keep.push(Keep {
                    loc,
                    retained: false,
                }),
            }
        });
        let touched = self.keys_written_above_base(inner)?;
        if !touched.is_empty() {
            self.older_versions(&touched, &mut keep)?;
        }
        // A key written again between the two reads above is found twice
        // (as current, then as its own older version); and an interrupted
        // compaction can leave one record in two inputs. One copy per LSN,
        // the current one first.
        keep.sort_unstable_by_key(|k| (k.loc.lsn(), k.retained));
        keep.dedup_by_key(|k| k.loc.lsn());
        Ok((keep, expired))
    }

    /// Keys of every record above `base`: all of them are in log segments
    /// that are not inputs (read up to their current end, after the key
    /// directory was read, so no write in between is missed).
    fn keys_written_above_base(&self, inner: &Inner) -> Result<HashSet<Vec<u8>>, Error> {
        let logs: Vec<_> = {
            let layout = inner.layout.read();
            let not_input = |s: &&Arc<Segment>| !self.inputs.contains_key(&s.id);
            let logs = layout.segments.values().filter(not_input);
            logs.filter(|s| s.header.kind == SegmentKind::Log)
                .cloned()
                .collect()
        };
        let mut touched = HashSet::new();
        for seg in logs {
            seg.for_each_record(seg.scan_start(self.base.lsn), seg.len(), |_, rec| {
                if rec.position.lsn > self.base.lsn && rec.kind != Kind::Marker {
                    touched.insert(rec.key.to_vec());
                }
                ControlFlow::Continue(())
            })?;
        }
        Ok(touched)
    }

    /// Adds, for each key in `touched`, its newest record in the inputs if
    /// that is a value (a deletion is dropped with everything before it).
    fn older_versions(
        &self,
        touched: &HashSet<Vec<u8>>,
        keep: &mut Vec<Keep>,
    ) -> Result<(), Error> {
        let inputs: Vec<_> = self.inputs.values().cloned().collect();
        let newest = crate::truncate::newest_records(&inputs, touched, self.base.lsn)?;
        let values = newest
            .into_values()
            .filter(|(_, kind, _)| *kind == Kind::Value);
        keep.extend(values.map(|(loc, _, _)| Keep {
            loc,
            retained: true,
        }));
        Ok(())
    }

    fn input(&self, id: SegmentId) -> Option<&Arc<Segment>> {
        self.inputs.get(&id)
    }
}

/// A record to copy.
struct Keep {
    loc: Loc,
    /// An older version kept for truncation (no key points at it).
    retained: bool,
}

/// The segments the next compaction merges: every compacted segment and
/// the sealed log segments wholly at or below the retention watermark
/// (log segments are in LSN order, so these are a prefix of them).
pub(crate) fn eligible(layout: &Layout, retention: Lsn) -> impl Iterator<Item = &Arc<Segment>> {
    layout.sealed().filter(move |s| {
        s.header.kind == SegmentKind::Compacted || s.max_position().lsn <= retention
    })
}

/// One copied record: where it was, where it is, where its key is.
struct Move {
    from: Loc,
    to: Loc,
    retained: bool,
    key_at: u32,
    key_len: u32,
}

/// An output segment being written.
struct Output {
    id: SegmentId,
    file: BufWriter<File>,
    len: u64,
    hint: HintBuilder,
    top: Position,
    moves: Vec<Move>,
}

/// A finished (fsynced, still temporary) output.
struct Finished {
    id: SegmentId,
    len: u64,
    hint_len: u64,
    top: Position,
    moves: Vec<Move>,
}

fn tmp_path(inner: &Inner, name: String) -> PathBuf {
    durable::tmp_path(&inner.dir, &name)
}

#[derive(Default)]
struct Outputs {
    finished: Vec<Finished>,
    temporaries: Vec<PathBuf>,
    /// Records of expired keys, not copied: dropped at install.
    expired: Vec<Loc>,
}

impl Outputs {
    fn write(&mut self, inner: &Inner, plan: &Plan, live: &[Keep]) -> Result<(), Error> {
        let mut current: Option<Output> = None;
        for (i, keep) in live.iter().enumerate() {
            let from = &keep.loc;
            if i % SHUTDOWN_CHECK_EVERY == 0 && inner.signal.is_shutdown() {
                return Err(Error::Closed);
            }
            let len = u64::from(from.len());
            let full = current.as_ref().is_some_and(|o| {
                o.len > SEGMENT_HEADER_BYTES && o.len + len > inner.opts.segment_bytes
            });
            if full && let Some(out) = current.take() {
                let done = self.finish(inner, out)?;
                self.finished.push(done);
            }
            let out = match current.as_mut() {
                Some(out) => out,
                None => current.insert(self.create(inner, plan.base)?),
            };
            copy_record(inner, plan, keep, out)?;
        }
        if let Some(out) = current {
            let done = self.finish(inner, out)?;
            self.finished.push(done);
        }
        Ok(())
    }

    fn create(&mut self, inner: &Inner, base: Position) -> Result<Output, Error> {
        let id = inner.next_segment.fetch_add(1, Ordering::SeqCst);
        let path = tmp_path(inner, segment::log_name(id));
        self.temporaries.push(path.clone());
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, file);
        let header = SegmentHeader {
            id,
            kind: SegmentKind::Compacted,
            reset: false,
            base,
        };
        file.write_all(&header.encode())
            .map_err(|e| Error::io(&path, e))?;
        Ok(Output {
            id,
            file,
            len: SEGMENT_HEADER_BYTES,
            hint: HintBuilder::new(id),
            top: Position::default(),
            moves: Vec::new(),
        })
    }

    fn finish(&mut self, inner: &Inner, out: Output) -> Result<Finished, Error> {
        let path = tmp_path(inner, segment::log_name(out.id));
        let file = out
            .file
            .into_inner()
            .map_err(|e| Error::io(&path, e.into_error()))?;
        file.sync_data().map_err(|e| Error::io(&path, e))?;
        let hint = out.hint.finish(out.len);
        let hint_path = tmp_path(inner, segment::hint_name(out.id));
        self.temporaries.push(hint_path.clone());
        durable::write_synced(&hint_path, &hint)?;
        Ok(Finished {
            id: out.id,
            len: out.len,
            hint_len: hint.len() as u64,
            top: out.top,
            moves: out.moves,
        })
    }

    /// Removes temporary files after a failure before the renames.
    fn abandon(&self) {
        for path in &self.temporaries {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Copies the record at `keep` into `out`, verifying it.
fn copy_record(inner: &Inner, plan: &Plan, keep: &Keep, out: &mut Output) -> Result<(), Error> {
    let from = &keep.loc;
    let seg = plan.input(from.segment).ok_or(Error::Closed)?;
    let offset = u64::from(from.offset);
    let bytes = seg
        .mapped()
        .and_then(|m| m.get(from.offset as usize..(offset + u64::from(from.len())) as usize));
    let bad = |why: &str| Error::corrupted(&seg.path, offset, why);
    let bytes = bytes.ok_or_else(|| bad("record beyond segment end"))?;
    let rec = record::decode(bytes).map_err(|e| bad(e.reason()))?;
    if rec.len != bytes.len() || rec.position.lsn != from.lsn() {
        return Err(bad("record does not match the key directory"));
    }
    let path = || tmp_path(inner, segment::log_name(out.id));
    out.file
        .write_all(bytes)
        .map_err(|e| Error::io(path(), e))?;
    out.hint.push(rec.position, &rec.fields());
    let to = Loc::new(out.id, out.len as u32, from.len(), from.lsn());
    out.moves.push(Move {
        from: *from,
        to,
        retained: keep.retained,
        key_at: from.offset + rec.key_start as u32,
        key_len: rec.key.len() as u32,
    });
    out.len += bytes.len() as u64;
    out.top = rec.position;
    Ok(())
}

/// Steps 3–7 of the module docs.
fn commit(
    inner: &Inner,
    plan: &Plan,
    outputs: &Outputs,
    stop: Option<FaultPoint>,
) -> Result<CompactionStats, Error> {
    fault::check(stop, FaultPoint::AfterOutputsWritten)?;
    for (i, out) in outputs.finished.iter().enumerate() {
        for name in [segment::log_name(out.id), segment::hint_name(out.id)] {
            let to = inner.dir.join(&name);
            std::fs::rename(tmp_path(inner, name), &to).map_err(|e| Error::io(&to, e))?;
        }
        if i == 0 {
            fault::check(stop, FaultPoint::AfterFirstRename)?;
        }
    }
    durable::sync_dir(&inner.dir)?;
    fault::check(stop, FaultPoint::AfterRenames)?;
    install(inner, plan, outputs)?;
    let marker_id = inner.next_segment.fetch_add(1, Ordering::SeqCst);
    let inputs: Vec<SegmentId> = plan.inputs.keys().copied().collect();
    meta::write_marker(&inner.dir, marker_id, &inputs)?;
    fault::check(stop, FaultPoint::AfterMarker)?;
    retire(inner, plan);
    delete_inputs(inner, &inputs, stop)?;
    durable::sync_dir(&inner.dir)?;
    fault::check(stop, FaultPoint::AfterDeletes)?;
    let marker = inner.dir.join(meta::marker_name(marker_id));
    std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
    durable::sync_dir(&inner.dir)?;
    Ok(finish_stats(inner, plan, outputs))
}

/// Maps the outputs, adds them to the layout and moves keys to them; drops
/// the keys of expired records that were not copied.
fn install(inner: &Inner, plan: &Plan, outputs: &Outputs) -> Result<(), Error> {
    let expired = &outputs.expired;
    let outputs = &outputs.finished;
    let mut segments = Vec::with_capacity(outputs.len());
    for out in outputs {
        let path = inner.dir.join(segment::log_name(out.id));
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let header = SegmentHeader {
            id: out.id,
            kind: SegmentKind::Compacted,
            reset: false,
            base: plan.base,
        };
        let seg = Segment::sealed(path, header, Arc::new(file))?;
        seg.hint_bytes.store(out.hint_len, Ordering::Relaxed);
        seg.note_max(out.top);
        segments.push(Arc::new(seg));
    }
    let _install = inner.install_lock.lock();
    {
        let mut layout = inner.layout.write();
        for seg in &segments {
            layout.segments.insert(seg.id, seg.clone());
        }
    }
    for (out, seg) in outputs.iter().zip(&segments) {
        for mv in &out.moves {
            move_key(inner, plan, mv, seg);
        }
    }
    for loc in expired {
        drop_expired(inner, plan, loc);
    }
    Ok(())
}

/// Removes the key of the expired record at `loc` (not copied) from the
/// key directory, if it still points there.
fn drop_expired(inner: &Inner, plan: &Plan, loc: &Loc) {
    let start = loc.offset as usize;
    let bytes = plan
        .input(loc.segment)
        .and_then(|s| s.mapped())
        .and_then(|m| m.get(start..start + loc.len() as usize));
    let Some(rec) = bytes.and_then(|b| record::decode(b).ok()) else {
        return;
    };
    let hash = inner.keydir.hash(rec.key);
    if let Some(old) = inner.keydir.remove_if(hash, rec.key, loc) {
        inner
            .live_bytes
            .fetch_sub(u64::from(old.len()), Ordering::Relaxed);
        inner.cache.remove(hash, rec.key);
    }
}

fn move_key(inner: &Inner, plan: &Plan, mv: &Move, output: &Segment) {
    let key = plan
        .input(mv.from.segment)
        .and_then(|s| s.mapped())
        .and_then(|m| {
            let start = mv.key_at as usize;
            m.get(start..start + mv.key_len as usize)
        });
    let Some(key) = key else { return };
    if mv.retained {
        return;
    }
    let hash = inner.keydir.hash(key);
    if !inner.keydir.replace_if(hash, key, &mv.from, mv.to) {
        output.add_dead(u64::from(mv.to.len()));
    }
}

/// Removes the inputs from the layout and raises the history floor.
fn retire(inner: &Inner, plan: &Plan) {
    let mut layout = inner.layout.write();
    for id in plan.inputs.keys() {
        layout.segments.remove(id);
    }
    layout.floor = layout.floor.max(plan.base.lsn);
}

fn delete_inputs(
    inner: &Inner,
    inputs: &[SegmentId],
    stop: Option<FaultPoint>,
) -> Result<(), Error> {
    for (i, &id) in inputs.iter().enumerate() {
        segment::remove_files(&inner.dir, id)?;
        if i == 0 {
            fault::check(stop, FaultPoint::AfterFirstDelete)?;
        }
    }
    Ok(())
}

fn finish_stats(inner: &Inner, plan: &Plan, outputs: &Outputs) -> CompactionStats {
    let expired = outputs.expired.len();
    let outputs = &outputs.finished;
    let bytes_after: u64 = outputs.iter().map(|o| o.len + o.hint_len).sum();
    let records: usize = outputs.iter().map(|o| o.moves.len()).sum();
    let reclaimed = plan.bytes_before.saturating_sub(bytes_after);
    bump(&inner.counters.compactions, 1);
    bump(&inner.counters.reclaimed_bytes, reclaimed);
    CompactionStats {
        input_segments: plan.inputs.len() as u64,
        output_segments: outputs.len() as u64,
        records: records as u64,
        bytes_before: plan.bytes_before,
        bytes_after,
        reclaimed_bytes: reclaimed,
        expired_records: expired as u64,
        duration: Default::default(),
    }
}

//! Snapshot destination: a staged install that switches in atomically.
//!
//! # Why
//!
//! Installing a full snapshot by clearing the store and then applying
//! entries leaves a replica half-empty if the source dies mid-transfer.
//! [`Store::begin_install`] instead writes the incoming entries to a
//! staging directory beside the live data; the live data is untouched
//! until [`Install::commit`], which switches to the staged data in one
//! durable step. Dropping the [`Install`] (or a crash before that step)
//! leaves the old data as it was, and the next open removes the staging
//! directory.
//!
//! # Layout and steps
//!
//! `Install::add` buffers entries up to `segment_bytes`, sorts them by LSN
//! and writes them as a *compacted* segment (header base = `as_of`) with a
//! hint, fsynced, into `<dir>/staging/`. Then `commit`:
//!
//! 1. writes the last buffered segment and fsyncs the staging directory;
//! 2. writes `staging/COMMIT` (atomically): the commit point;
//! 3. deletes every live segment and hint file;
//! 4. moves the staged files into the store directory;
//! 5. saves the epoch history (it now starts at `as_of`);
//! 6. removes the staging directory;
//! 7. switches in memory: the staged segments plus a fresh active log
//!    segment, the key directory rebuilt from them, `last_position()` and
//!    the history floor set to `as_of`.
//!
//! Recovery finishes steps 3–6 when it finds `staging/COMMIT` and removes
//! the staging directory otherwise (`finish_interrupted`).
//!
//! # `staging/COMMIT`
//!
//! | offset | size  | field                                        |
//! |--------|-------|----------------------------------------------|
//! | 0      | 4     | magic `KVIC`                                 |
//! | 4      | 4     | `as_of` epoch (`u32`, LE)                    |
//! | 8      | 8     | `as_of` LSN (`u64`, LE)                      |
//! | 16     | 4     | number of staged segments `n` (`u32`, LE)    |
//! | 20     | 4 × n | staged segment ids (`u32`, LE)               |
//! | 20 + 4n| 4     | CRC-32 of every byte before it (LE)          |
//!
//! # Deliberate omissions
//!
//! Writes made to the store between `begin_install` and `commit` are
//! discarded by the commit. During step 7 the key directory is rebuilt in
//! place, so a concurrent reader may briefly miss keys (a replica being
//! resynchronised is not a consistent read source anyway).

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::durable;
use crate::epochs::EpochHistory;
use crate::error::Error;
use crate::fault::{self, FaultPoint};
use crate::hint::HintBuilder;
use crate::inner::{Inner, Writer};
use crate::keydir::{Loc, Upsert};
use crate::meta;
use crate::record::{self, Fields, Kind};
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentHeader, SegmentId, SegmentKind};
use crate::{Entry, Position, Store};

/// Subdirectory of a store directory where an install is staged.
pub const STAGING_DIR: &str = "staging";
const COMMIT_FILE: &str = "COMMIT";
const COMMIT_MAGIC: &[u8; 4] = b"KVIC";

/// A snapshot install in progress; see the module docs. Dropping it without
/// [`Install::commit`] abandons it (the live data was never touched).
pub struct Install {
    inner: Arc<Inner>,
    as_of: Position,
    staging: PathBuf,
    buf: Vec<Entry>,
    buf_bytes: u64,
    staged: Vec<SegmentId>,
    /// Committed, or stopped at a fault point: keep the staging directory.
    keep_staging: bool,
}

impl std::fmt::Debug for Install {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Install")
            .field("as_of", &self.as_of)
            .field("staged", &self.staged)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Starts installing a snapshot taken as of `as_of` (see
    /// [`SnapshotReader::as_of`](crate::SnapshotReader::as_of)). Entries
    /// go to a staging directory; the live data changes only at
    /// [`Install::commit`]. One install at a time: starting another
    /// discards an unfinished one.
    pub fn begin_install(&self, as_of: Position) -> Result<Install, Error> {
        let inner = self.inner();
        inner.check_writable()?;
        let staging = inner.dir.join(STAGING_DIR);
        remove_dir(&staging)?;
        std::fs::create_dir(&staging).map_err(|e| Error::io(&staging, e))?;
        durable::sync_dir(&inner.dir)?;
        Ok(Install {
            inner: self.inner_arc(),
            as_of,
            staging,
            buf: Vec::new(),
            buf_bytes: 0,
            staged: Vec::new(),
            keep_staging: false,
        })
    }
}

impl Install {
    /// The position the store will have after the commit.
    pub fn as_of(&self) -> Position {
        self.as_of
    }

    /// Stages `entries` (any order; duplicates of one LSN are kept once).
    /// Each must be a value with an LSN in `1..=as_of.lsn`
    /// ([`Error::InvalidEntry`] otherwise, and nothing of `entries` is
    /// staged).
    pub fn add(&mut self, entries: &[Entry]) -> Result<(), Error> {
        for e in entries {
            self.check(e)?;
        }
        for e in entries {
            let value = e.value.as_ref().map_or(0, Bytes::len);
            self.buf_bytes += record::encoded_len(e.key.len(), value, e.expiry.is_some()) as u64;
            self.buf.push(e.clone());
        }
        if self.buf_bytes >= self.inner.opts.segment_bytes {
            self.flush()?;
        }
        Ok(())
    }

    fn check(&self, e: &Entry) -> Result<(), Error> {
        let value = e.value.as_ref().ok_or(Error::InvalidEntry {
            lsn: e.position.lsn,
            reason: "a snapshot holds values only",
        })?;
        self.inner.check_sizes(&e.key, value.len())?;
        if e.position.lsn == 0 || e.position.lsn > self.as_of.lsn {
            return Err(Error::InvalidEntry {
                lsn: e.position.lsn,
                reason: "snapshot entry outside 1..=as_of",
            });
        }
        Ok(())
    }

    /// Writes the buffered entries as one staged segment and its hint.
    fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut entries = std::mem::take(&mut self.buf);
        self.buf_bytes = 0;
        entries.sort_unstable_by_key(|e| e.position.lsn);
        entries.dedup_by_key(|e| e.position.lsn);
        let id = self.inner.next_segment.fetch_add(1, Ordering::SeqCst);
        let mut bytes = staged_header(id, self.as_of).encode().to_vec();
        let mut hint = HintBuilder::new(id);
        for e in &entries {
            let value = e.value.as_deref().unwrap_or_default();
            let fields = Fields {
                kind: Kind::Value,
                key: &e.key,
                value,
                expiry: e.expiry,
            };
            record::encode_in_batch(&mut bytes, e.position, &fields, false);
            hint.push(e.position, &fields);
        }
        let hint = hint.finish(bytes.len() as u64);
        durable::write_synced(&self.staging.join(segment::log_name(id)), &bytes)?;
        durable::write_synced(&self.staging.join(segment::hint_name(id)), &hint)?;
        self.staged.push(id);
        Ok(())
    }

    /// Switches the store to the staged data (see the module docs): after
    /// it, the store holds exactly the staged entries, `last_position()`
    /// is `as_of` and so is the history floor.
    pub fn commit(self) -> Result<(), Error> {
        self.commit_inner(None)
    }

    /// Test hook: commits but stops at `point`, leaving the files as a
    /// crash there would; the store refuses further operations.
    #[doc(hidden)]
    pub fn commit_until(self, point: FaultPoint) -> Result<(), Error> {
        self.commit_inner(Some(point))
    }

    fn commit_inner(mut self, stop: Option<FaultPoint>) -> Result<(), Error> {
        let result = self.try_commit(stop);
        if matches!(result, Err(Error::FaultInjected(_))) {
            self.keep_staging = true;
            self.inner.closed.store(true, Ordering::Release);
        }
        result
    }

    fn try_commit(&mut self, stop: Option<FaultPoint>) -> Result<(), Error> {
        self.flush()?;
        durable::sync_dir(&self.staging)?;
        fault::check(stop, FaultPoint::InstallAfterChunksWritten)?;
        write_commit(&self.staging, self.as_of, &self.staged)?;
        fault::check(stop, FaultPoint::InstallAfterCommitMarker)?;
        let inner = &*self.inner;
        let _compaction = inner.compaction_lock.lock();
        let mut w = inner.writer.lock();
        inner.check_writable()?;
        let _install = inner.install_lock.lock();
        let epochs = w.epochs.restarted(self.as_of);
        self.keep_staging = true;
        apply_commit(&inner.dir, &self.staged, &epochs, stop)?;
        switch(inner, &mut w, self.as_of, &self.staged, epochs)
    }
}

impl Drop for Install {
    fn drop(&mut self) {
        if !self.keep_staging {
            let _ = remove_dir(&self.staging);
        }
    }
}

fn staged_header(id: SegmentId, as_of: Position) -> SegmentHeader {
    SegmentHeader {
        id,
        kind: SegmentKind::Compacted,
        reset: false,
        base: as_of,
    }
}

fn remove_dir(path: &Path) -> Result<(), Error> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn write_commit(staging: &Path, as_of: Position, staged: &[SegmentId]) -> Result<(), Error> {
    let mut bytes = COMMIT_MAGIC.to_vec();
    bytes.extend_from_slice(&as_of.epoch.to_le_bytes());
    bytes.extend_from_slice(&as_of.lsn.to_le_bytes());
    bytes.extend_from_slice(&(staged.len() as u32).to_le_bytes());
    for id in staged {
        bytes.extend_from_slice(&id.to_le_bytes());
    }
    durable::write_atomic(staging, COMMIT_FILE, &meta::with_crc(bytes))
}

/// The commit record, if the install passed its commit point.
fn read_commit(staging: &Path) -> Result<Option<(Position, Vec<SegmentId>)>, Error> {
    let path = staging.join(COMMIT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let decoded = decode_commit(&bytes);
    decoded
        .map(Some)
        .ok_or_else(|| Error::corrupted(&path, 0, "bad install COMMIT file"))
}

fn decode_commit(bytes: &[u8]) -> Option<(Position, Vec<SegmentId>)> {
    let body = meta::check_crc(bytes)?;
    if body.get(0..4)? != COMMIT_MAGIC {
        return None;
    }
    let as_of = Position {
        epoch: meta::le32(body, 4)?,
        lsn: meta::le64(body, 8)?,
    };
    let n = meta::le32(body, 16)? as usize;
    if body.len() != 20usize.checked_add(n.checked_mul(4)?)? {
        return None;
    }
    let ids = (0..n)
        .map(|i| meta::le32(body, 20 + 4 * i))
        .collect::<Option<_>>()?;
    Some((as_of, ids))
}

/// Steps 3–6: replaces the live files with the staged ones, durably.
/// Idempotent, so recovery can redo it after a crash part-way.
fn apply_commit(
    dir: &Path,
    staged: &[SegmentId],
    epochs: &EpochHistory,
    stop: Option<FaultPoint>,
) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let id = segment::parse_name(name, "log").or(segment::parse_name(name, "hint"));
        if id.is_some_and(|id| !staged.contains(&id)) {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    durable::sync_dir(dir)?;
    fault::check(stop, FaultPoint::InstallAfterOldDeleted)?;
    let staging = dir.join(STAGING_DIR);
    for &id in staged {
        for name in [segment::log_name(id), segment::hint_name(id)] {
            let from = staging.join(&name);
            if from.exists() {
                let to = dir.join(&name);
                std::fs::rename(&from, &to).map_err(|e| Error::io(&to, e))?;
            }
        }
    }
    durable::sync_dir(dir)?;
    fault::check(stop, FaultPoint::InstallAfterMoved)?;
    epochs.save(dir)?;
    remove_dir(&staging)?;
    durable::sync_dir(dir)
}

/// Step 7: the in-memory switch to the installed segments.
fn switch(
    inner: &Inner,
    w: &mut Writer,
    as_of: Position,
    staged: &[SegmentId],
    epochs: EpochHistory,
) -> Result<(), Error> {
    let mut segments = std::collections::BTreeMap::new();
    for &id in staged {
        let path = inner.dir.join(segment::log_name(id));
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let seg = Segment::sealed(path, staged_header(id, as_of), Arc::new(file))?;
        let hint_path = inner.dir.join(segment::hint_name(id));
        let hint_len = std::fs::metadata(&hint_path).map_or(0, |m| m.len());
        seg.hint_bytes.store(hint_len, Ordering::Relaxed);
        segments.insert(id, Arc::new(seg));
    }
    let (active, file) = inner.create_log_segment(as_of, false)?;
    let id = active.id;
    inner.keydir.clear();
    inner.cache.purge();
    inner.live_bytes.store(0, Ordering::Relaxed);
    for seg in segments.values() {
        index_segment(inner, seg)?;
    }
    segments.insert(id, active.clone());
    {
        let mut layout = inner.layout.write();
        layout.segments = segments;
        layout.active = id;
        layout.floor = as_of.lsn;
    }
    (w.active, w.file, w.last) = (active, file, as_of);
    (w.offset, w.allocated) = (SEGMENT_HEADER_BYTES, SEGMENT_HEADER_BYTES);
    w.epoch = w.epoch.max(epochs.max);
    w.epochs = epochs;
    inner.group.mark_synced(w.seq);
    Ok(())
}

/// Points the key directory at the records of an installed segment.
fn index_segment(inner: &Inner, seg: &Segment) -> Result<(), Error> {
    let mut failed = Ok(());
    seg.for_each_record(SEGMENT_HEADER_BYTES, seg.len(), |offset, rec| {
        seg.note_max(rec.position);
        let loc = Loc::new(seg.id, offset as u32, rec.len as u32, rec.position.lsn);
        match inner
            .keydir
            .insert_newer(inner.keydir.hash(rec.key), rec.key, loc, rec.expiry)
        {
            Ok(Upsert::Inserted) => inner.note_replaced(None, Some(&loc)),
            Ok(Upsert::Replaced(old)) => inner.note_replaced(Some(old), Some(&loc)),
            Ok(Upsert::Stale) => seg.add_dead(rec.len as u64),
            Err(e) => {
                failed = Err(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    failed
}

/// Recovery's first step: finishes an install past its commit point, or
/// removes an unfinished staging directory.
pub(crate) fn finish_interrupted(dir: &Path) -> Result<(), Error> {
    let staging = dir.join(STAGING_DIR);
    if !staging.exists() {
        return Ok(());
    }
    match read_commit(&staging)? {
        Some((as_of, staged)) => {
            let epochs = EpochHistory::load(dir, Position::default(), 0)?.restarted(as_of);
            apply_commit(dir, &staged, &epochs, None)
        }
        None => {
            remove_dir(&staging)?;
            durable::sync_dir(dir)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_record_roundtrip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let as_of = Position { epoch: 3, lsn: 99 };
        write_commit(dir.path(), as_of, &[7, 9]).unwrap();
        assert_eq!(read_commit(dir.path()).unwrap(), Some((as_of, vec![7, 9])));
        let path = dir.path().join(COMMIT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[9] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read_commit(dir.path()),
            Err(Error::Corrupted { .. })
        ));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(read_commit(empty.path()).unwrap(), None);
    }
}

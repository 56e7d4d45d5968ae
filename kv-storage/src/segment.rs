//! Segment files: `segment-<n>.log`, a 32-byte header followed by records.
//!
//! # Header layout
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 4    | magic `KVSG`                                                 |
//! | 4      | 1    | format version, 1                                            |
//! | 5      | 1    | kind: 1 = log (written by the store), 2 = compacted          |
//! | 6      | 1    | flags: bit 0 = reset (every segment with a lower id is void) |
//! | 7      | 1    | reserved, 0                                                  |
//! | 8      | 4    | segment id (`u32`, equals the number in the file name)        |
//! | 12     | 4    | base epoch (`u32`)                                           |
//! | 16     | 8    | base LSN (`u64`)                                             |
//! | 24     | 4    | reserved, 0                                                  |
//! | 28     | 4    | CRC-32 of bytes 0..28                                        |
//!
//! The *base position* says which history precedes or is summarised by the
//! file: for a log segment it is the store's last position when the segment
//! was created (its records all come after it); for a compacted segment it is
//! the highest position of the merged inputs (its records all come at or
//! before it). Recovery uses it to restore `last_lsn` when the newest records
//! were compacted away, and to know where the on-disk history begins.
//!
//! New segment files are written under a `.tmp` name, fsynced and renamed, so
//! a file with a final name always has a complete header.
//!
//! # Logical end and file length
//!
//! The active segment's file is grown ahead of its records in chunks (see
//! "Pre-sizing" in `inner.rs`), so its length may exceed the end of its last
//! record; the bytes in between are zeros (a sparse hole). A segment's
//! `Segment::len` is always that *logical* end: reads, scans, hints,
//! rolling and `Stats::disk_bytes` use it, never the file length. Before a
//! segment is sealed its file is cut back to the logical end and fdatasynced,
//! so a sealed segment — and every file written by older versions — has no
//! zero tail; only the newest log segment can have one after a crash, and
//! recovery treats it as the clean end of the log.
//!
//! # Reading: positional reads to serve, the mapping for compaction
//!
//! Everything a request or a follower reads — `get`, snapshot values,
//! history for `entries_since`, hint building — is read with positional
//! reads (`pread`), from sealed segments as well as the active one. A disk
//! that fails under a mapped page raises SIGBUS, which kills the whole
//! process (every partition); a failing `pread` is an `Error::Io` for that
//! one call, and a file shorter than the key directory expects is an
//! `Error::Corrupted`. One syscall per cold read is the price (a copy is
//! made either way).
//!
//! Sealed segments are still memory-mapped, for the two sequential,
//! whole-segment readers that are not on a request's path: recovery of a
//! sealed segment without a usable hint (at open) and compaction (copying
//! live records, then installing their keys). Those can still fault on a
//! failing disk or a file truncated by someone else; making them positional
//! too is future work (compaction would keep each moved key in memory or
//! re-read it at install). See `docs/architecture.md`, "Reading from disk".
//!
//! The mapping is sound because a segment is memory-mapped only once it is
//! *sealed*, and sealed files are immutable: nothing in this crate writes to, truncates or renames
//! over a sealed segment (recovery truncates only the newest log segment,
//! before it is ever mapped; the active segment's pre-sized tail is cut
//! before it is sealed and mapped; compaction writes new files and unlinks
//! old ones — unlinking leaves existing mappings valid). The directory lock
//! (`lock.rs`) keeps other kv-storage instances out. A process that ignores the
//! lock and truncates a mapped file could make a read fault; that is outside
//! the contract, as for every mmap-based store.

use std::fs::File;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use memmap2::Mmap;
use parking_lot::Mutex;

use crate::durable::TmpFile;
use crate::error::Error;
use crate::record::{self, DecodeError, RecordRef};
use crate::{Lsn, Position};

/// Segment number, as in `segment-<n>.log`.
pub(crate) type SegmentId = u32;

/// Length of the segment header.
pub(crate) const SEGMENT_HEADER_BYTES: u64 = 32;
const MAGIC: &[u8; 4] = b"KVSG";
const VERSION: u8 = 1;
const FLAG_RESET: u8 = 1;
/// A sparse (LSN, offset) index entry is kept every this many bytes, so
/// `entries_since` can start reading near the requested LSN.
const CHECKPOINT_BYTES: u64 = 64 * 1024;
/// Bytes per positional read when scanning a segment sequentially.
const SCAN_WINDOW_BYTES: u64 = 1 << 20;

/// Who wrote a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentKind {
    /// Appended by the store; records in LSN order, contiguous history.
    Log,
    /// Written by compaction; live records of merged segments, LSN order.
    Compacted,
}

/// The decoded 32-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub id: SegmentId,
    pub kind: SegmentKind,
    pub reset: bool,
    pub base: Position,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES as usize] {
        let mut h = [0u8; SEGMENT_HEADER_BYTES as usize];
        h[0..4].copy_from_slice(MAGIC);
        h[4] = VERSION;
        h[5] = match self.kind {
            SegmentKind::Log => 1,
            SegmentKind::Compacted => 2,
        };
        h[6] = if self.reset { FLAG_RESET } else { 0 };
        h[8..12].copy_from_slice(&self.id.to_le_bytes());
        h[12..16].copy_from_slice(&self.base.epoch.to_le_bytes());
        h[16..24].copy_from_slice(&self.base.lsn.to_le_bytes());
        let crc = crc32fast::hash(&h[0..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<SegmentHeader, &'static str> {
        let h: &[u8; 32] = buf
            .get(..32)
            .and_then(|b| b.try_into().ok())
            .ok_or("segment shorter than its header")?;
        let le32 = |at: usize| crate::meta::le32(h, at).ok_or("segment shorter than its header");
        if &h[0..4] != MAGIC {
            return Err("bad segment magic");
        }
        if crc32fast::hash(&h[0..28]) != le32(28)? {
            return Err("segment header checksum mismatch");
        }
        if h[4] != VERSION {
            return Err("unsupported segment format version");
        }
        let kind = match h[5] {
            1 => SegmentKind::Log,
            2 => SegmentKind::Compacted,
            _ => return Err("unknown segment kind"),
        };
        let mut lsn = [0u8; 8];
        lsn.copy_from_slice(&h[16..24]);
        Ok(SegmentHeader {
            id: le32(8)?,
            kind,
            reset: h[6] & FLAG_RESET != 0,
            base: Position {
                epoch: le32(12)?,
                lsn: u64::from_le_bytes(lsn),
            },
        })
    }
}

/// `segment-<n>.log`
pub(crate) fn log_name(id: SegmentId) -> String {
    format!("segment-{id:010}.log")
}

/// `segment-<n>.hint`
pub(crate) fn hint_name(id: SegmentId) -> String {
    format!("segment-{id:010}.hint")
}

/// Parses `segment-<n>.<ext>` into `n`.
pub(crate) fn parse_name(name: &str, ext: &str) -> Option<SegmentId> {
    let digits = name
        .strip_prefix("segment-")?
        .strip_suffix(ext)?
        .strip_suffix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// How a segment's bytes are read.
enum Data {
    /// Being appended: positional reads on the shared file.
    Active(Arc<File>),
    /// Sealed and immutable: memory-mapped (the file stays open for
    /// sequential scans that should not populate the mapping).
    Sealed { map: Mmap, file: Arc<File> },
}

/// One segment as the store sees it while open.
pub(crate) struct Segment {
    pub id: SegmentId,
    pub path: PathBuf,
    pub header: SegmentHeader,
    data: Data,
    /// Bytes of complete records plus the header (grows while active): the
    /// logical end, which the active file's length may exceed.
    len: AtomicU64,
    /// Highest LSN of a record in this segment (0 if none) and its epoch.
    max_lsn: AtomicU64,
    max_epoch: AtomicU32,
    /// Bytes of records that are overwritten, deleted, tombstones or markers.
    pub dead_bytes: AtomicU64,
    /// Size of the hint file, 0 if none.
    pub hint_bytes: AtomicU64,
    /// Sparse index: (first LSN at or after a checkpoint, its offset).
    checkpoints: Mutex<Vec<(Lsn, u32)>>,
}

impl Segment {
    /// A segment being appended through `file`, its records ending at `len`.
    pub(crate) fn active(
        path: PathBuf,
        header: SegmentHeader,
        file: Arc<File>,
        len: u64,
    ) -> Segment {
        #[cfg(feature = "sim")]
        crate::sim::opened(&path, len);
        Segment::with_data(path, header, Data::Active(file), len)
    }

    /// Maps a sealed segment file.
    pub(crate) fn sealed(
        path: PathBuf,
        header: SegmentHeader,
        file: Arc<File>,
    ) -> Result<Segment, Error> {
        let map = map_file(&path, &file)?;
        let len = map.len() as u64;
        Ok(Segment::with_data(
            path,
            header,
            Data::Sealed { map, file },
            len,
        ))
    }

    fn with_data(path: PathBuf, header: SegmentHeader, data: Data, len: u64) -> Segment {
        Segment {
            id: header.id,
            path,
            header,
            data,
            len: AtomicU64::new(len),
            max_lsn: AtomicU64::new(0),
            max_epoch: AtomicU32::new(0),
            dead_bytes: AtomicU64::new(0),
            hint_bytes: AtomicU64::new(0),
            checkpoints: Mutex::new(Vec::new()),
        }
    }

    /// The sealed (mapped) version of this active segment, keeping counters.
    pub(crate) fn seal(&self) -> Result<Segment, Error> {
        let Data::Active(file) = &self.data else {
            return Err(Error::corrupted(&self.path, 0, "segment sealed twice"));
        };
        let sealed = Segment::sealed(self.path.clone(), self.header, file.clone())?;
        if sealed.len() != self.len() {
            let why = "sealed segment file does not end at its last record";
            return Err(Error::corrupted(&self.path, sealed.len(), why));
        }
        sealed.copy_counters_from(self);
        Ok(sealed)
    }

    fn copy_counters_from(&self, other: &Segment) {
        self.note_max(other.max_position());
        let dead = other.dead_bytes.load(Ordering::Relaxed);
        self.dead_bytes.store(dead, Ordering::Relaxed);
        *self.checkpoints.lock() = other.checkpoints.lock().clone();
    }

    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    /// Sets the logical end of an active segment (recovery, after its scan).
    pub(crate) fn set_len(&self, len: u64) {
        self.len.store(len, Ordering::Release);
    }

    pub(crate) fn max_lsn(&self) -> Lsn {
        self.max_lsn.load(Ordering::Acquire)
    }

    /// The position of the newest record, or the header's base position if
    /// that is newer (compacted segments) or there is no record.
    pub(crate) fn max_position(&self) -> Position {
        let lsn = self.max_lsn();
        match lsn > self.header.base.lsn {
            true => Position {
                epoch: self.max_epoch.load(Ordering::Acquire),
                lsn,
            },
            false => self.header.base,
        }
    }

    /// Raises the newest-record position to `position` if it is newer.
    pub(crate) fn note_max(&self, position: Position) {
        if position.lsn > self.max_lsn() {
            self.max_epoch.store(position.epoch, Ordering::Release);
            self.max_lsn.store(position.lsn, Ordering::Release);
        }
    }

    /// Records that a record at `offset` with `position` now ends at `end`.
    /// Called by the single writer after the bytes are written.
    pub(crate) fn note_appended(&self, offset: u64, position: Position, end: u64) {
        self.note_record(offset, position.lsn);
        self.note_max(position);
        self.len.store(end, Ordering::Release);
    }

    /// Replaces the sparse index (recovery builds it without locking per record).
    pub(crate) fn set_checkpoints(&self, checkpoints: Vec<(Lsn, u32)>) {
        *self.checkpoints.lock() = checkpoints;
    }

    /// Adds a sparse-index entry if `offset` starts a new checkpoint window.
    pub(crate) fn note_record(&self, offset: u64, lsn: Lsn) {
        push_checkpoint(&mut self.checkpoints.lock(), offset, lsn);
    }

    /// Offset from which to scan for records with LSN greater than `after`.
    pub(crate) fn scan_start(&self, after: Lsn) -> u64 {
        let cps = self.checkpoints.lock();
        let idx = cps.partition_point(|&(lsn, _)| lsn <= after);
        match idx.checked_sub(1).and_then(|i| cps.get(i)) {
            Some(&(_, off)) => u64::from(off),
            None => SEGMENT_HEADER_BYTES,
        }
    }

    pub(crate) fn add_dead(&self, bytes: u64) {
        self.dead_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The mapped bytes of a sealed segment.
    pub(crate) fn mapped(&self) -> Option<&[u8]> {
        match &self.data {
            Data::Sealed { map, .. } => Some(map),
            Data::Active(_) => None,
        }
    }

    /// Reads `len` bytes at `offset` (a whole record) as owned bytes.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Result<Bytes, Error> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > self.len()) {
            let why = "record beyond segment end";
            return Err(Error::corrupted(&self.path, offset, why));
        }
        // Positional reads for sealed segments too: see "Reading" above.
        self.pread(offset, len)
    }

    /// The file of an active segment.
    pub(crate) fn active_file(&self) -> Option<&File> {
        match &self.data {
            Data::Active(file) => Some(file),
            Data::Sealed { .. } => None,
        }
    }

    fn file(&self) -> &File {
        match &self.data {
            Data::Active(file) | Data::Sealed { file, .. } => file,
        }
    }

    /// Reads `len` bytes at `offset` with a positional read.
    fn pread(&self, offset: u64, len: usize) -> Result<Bytes, Error> {
        let mut buf = vec![0u8; len];
        match self.file().read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(Bytes::from(buf)),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let why = "segment file is shorter than its records (cut underneath the store?)";
                Err(Error::corrupted(&self.path, offset, why))
            }
            Err(e) => Err(Error::io(&self.path, e)),
        }
    }

    /// Calls `f` for each record in `[start, end)`, which must hold only
    /// complete, valid records starting at a record boundary. Reads with
    /// positional reads in windows (never through the mapping: see
    /// "Reading" above).
    pub(crate) fn for_each_record(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(u64, &RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<(), Error> {
        let (mut offset, mut window) = (start, SCAN_WINDOW_BYTES);
        while offset < end {
            let want = (end - offset).min(window);
            let buf = self.pread(offset, want as usize)?;
            match self.walk(&buf, offset, &mut f)? {
                Walk::Stopped => return Ok(()),
                Walk::Consumed(0) if want == end - offset => return Err(self.incomplete(offset)),
                Walk::Consumed(0) => window *= 2,
                Walk::Consumed(n) => {
                    offset += n;
                    window = SCAN_WINDOW_BYTES;
                }
            }
        }
        Ok(())
    }

    fn incomplete(&self, at: u64) -> Error {
        Error::corrupted(&self.path, at, "record extends past the end")
    }

    /// Decodes records from `bytes` (which start at file offset `base`) until
    /// the end, an incomplete record, or `f` breaks.
    fn walk(
        &self,
        bytes: &[u8],
        base: u64,
        f: &mut impl FnMut(u64, &RecordRef<'_>) -> ControlFlow<()>,
    ) -> Result<Walk, Error> {
        let mut at = 0usize;
        while at < bytes.len() {
            let rest = bytes.get(at..).unwrap_or_default();
            let rec = match record::decode(rest) {
                Ok(rec) => rec,
                Err(DecodeError::Incomplete) => break,
                Err(e) => return Err(Error::corrupted(&self.path, base + at as u64, e.reason())),
            };
            if f(base + at as u64, &rec).is_break() {
                return Ok(Walk::Stopped);
            }
            at += rec.len;
        }
        Ok(Walk::Consumed(at as u64))
    }

    /// Reads and verifies the record at `offset`, `len` bytes long.
    pub(crate) fn read_record(
        &self,
        offset: u64,
        len: usize,
    ) -> Result<(Bytes, RecordInfo), Error> {
        let bytes = self.read(offset, len)?;
        let rec =
            record::decode(&bytes).map_err(|e| Error::corrupted(&self.path, offset, e.reason()))?;
        if rec.len != len {
            return Err(Error::corrupted(
                &self.path,
                offset,
                "record length differs from index",
            ));
        }
        let info = RecordInfo::of(&rec);
        Ok((bytes, info))
    }
}

enum Walk {
    Stopped,
    /// Bytes of complete records consumed from the buffer.
    Consumed(u64),
}

/// The owned facts about a decoded record, for callers holding its bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordInfo {
    pub position: Position,
    pub kind: record::Kind,
    pub key_start: usize,
    pub key_len: usize,
    pub value_len: usize,
    pub expiry: Option<u64>,
}

impl RecordInfo {
    pub(crate) fn of(rec: &RecordRef<'_>) -> RecordInfo {
        RecordInfo {
            position: rec.position,
            kind: rec.kind,
            key_start: rec.key_start,
            key_len: rec.key.len(),
            value_len: rec.value.len(),
            expiry: rec.expiry,
        }
    }

    pub(crate) fn key<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        bytes
            .get(self.key_start..self.key_start + self.key_len)
            .unwrap_or_default()
    }

    pub(crate) fn value_range(&self) -> std::ops::Range<usize> {
        let start = self.key_start + self.key_len;
        start..start + self.value_len
    }
}

/// Adds `(lsn, offset)` to a sparse index if `offset` opens a new window.
pub(crate) fn push_checkpoint(cps: &mut Vec<(Lsn, u32)>, offset: u64, lsn: Lsn) {
    let window = offset / CHECKPOINT_BYTES;
    let last_window = cps
        .last()
        .map(|&(_, off)| u64::from(off) / CHECKPOINT_BYTES);
    if last_window.is_none_or(|w| w < window) {
        cps.push((lsn, offset as u32));
    }
}

/// Memory-maps a sealed segment (or hint) file read-only.
#[allow(unsafe_code)]
pub(crate) fn map_file(path: &Path, file: &File) -> Result<Mmap, Error> {
    // SAFETY: the file is a sealed segment or hint: immutable for as long as
    // this store is open (see the module docs). This crate never writes to,
    // truncates or renames over it while mapped, and the directory lock keeps
    // other kv-storage instances out, so the mapped bytes cannot change or
    // disappear under us.
    unsafe { Mmap::map(file) }.map_err(|e| Error::io(path, e))
}

/// Iterates the valid records of a segment image from `start`, stopping at
/// the end or at the first bytes that are not a valid record (a torn tail).
pub(crate) struct Scanner<'a> {
    bytes: &'a [u8],
    offset: u64,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(bytes: &'a [u8], start: u64) -> Scanner<'a> {
        Scanner {
            bytes,
            offset: start,
        }
    }
}

impl<'a> Iterator for Scanner<'a> {
    type Item = (u64, RecordRef<'a>);

    fn next(&mut self) -> Option<(u64, RecordRef<'a>)> {
        let rest = self.bytes.get(self.offset as usize..)?;
        let rec = record::decode(rest).ok()?;
        let at = self.offset;
        self.offset += rec.len as u64;
        Some((at, rec))
    }
}

/// Creates a new segment file durably (`durable::TmpFile`: written as
/// `<name>.tmp`, fsynced, renamed, directory fsynced). Returns the open
/// file (for appending).
pub(crate) fn create_file(dir: &Path, header: &SegmentHeader) -> Result<(PathBuf, File), Error> {
    let tmp = TmpFile::create(dir, &log_name(header.id))?;
    let written = tmp.file().write_all_at(&header.encode(), 0);
    written.map_err(|e| Error::io(tmp.tmp_path(), e))?;
    tmp.commit()
}

/// Deletes segment `id`'s log and hint files in `dir`, if present (not
/// durable until the directory is fsynced).
pub(crate) fn remove_files(dir: &Path, id: SegmentId) -> Result<(), Error> {
    for name in [log_name(id), hint_name(id)] {
        let path = dir.join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_checks() {
        let h = SegmentHeader {
            id: 42,
            kind: SegmentKind::Compacted,
            reset: true,
            base: Position {
                epoch: 3,
                lsn: 1 << 40,
            },
        };
        let bytes = h.encode();
        assert_eq!(&bytes[0..4], b"KVSG");
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
        for i in 0..32 {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad).is_err(), "flip at {i}");
        }
        assert!(SegmentHeader::decode(&bytes[..31]).is_err());
    }

    #[test]
    fn names_roundtrip() {
        assert_eq!(log_name(7), "segment-0000000007.log");
        assert_eq!(parse_name(&log_name(7), "log"), Some(7));
        assert_eq!(parse_name(&hint_name(u32::MAX), "hint"), Some(u32::MAX));
        assert_eq!(parse_name("segment-12.log", "log"), Some(12));
        assert_eq!(parse_name("segment-.log", "log"), None);
        assert_eq!(parse_name("segment-1.log.tmp", "log"), None);
        assert_eq!(parse_name("segment-+1.log", "log"), None);
    }
}

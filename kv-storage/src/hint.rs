//! Hint files: `segment-<n>.hint`, an index of a sealed segment.
//!
//! Opening a store must rebuild the key directory. Reading a hint gives the
//! key, position and location of every record of a segment without reading
//! the values, so reopen time depends on the key bytes, not the data bytes.
//! A hint is an optimisation only: if it is missing, damaged or does not match
//! its segment, recovery scans the segment instead (and counts a fallback).
//!
//! # Byte layout
//!
//! All integers little-endian; varints are unsigned LEB128.
//!
//! | offset  | size | field                                              |
//! |---------|------|----------------------------------------------------|
//! | 0       | 4    | magic `KVHI`                                       |
//! | 4       | 1    | format version, 2 (1 is still read)                |
//! | 5       | 3    | reserved, 0                                        |
//! | 8       | 4    | segment id (`u32`)                                 |
//! | 12      | 8    | length of the segment file it describes (`u64`)    |
//! | 20      | 4    | number of entries (`u32`)                          |
//! | 24      | ..   | entries, one per record, in file order             |
//! | end − 4 | 4    | CRC-32 of every byte before it                     |
//!
//! Each entry: flags (`u8`, as in the record) · expiry (`u64`, unix ms; only
//! if flag bit 3 "has expiry" is set) · epoch (varint) · LSN minus the
//! previous entry's LSN (varint, ≥ 1; the first is relative to 0) · key
//! length (varint) · value length (varint) · key bytes.
//!
//! Version 1 (before expiry existed) is the same without the expiry field:
//! its entries never set bit 3 (a version-1 hint that does is refused and
//! its segment scanned instead). Version 1 hints are read as they are and
//! replaced only when compaction rewrites their segments.
//!
//! Offsets are implicit: records are contiguous from the end of the segment
//! header, and each record's length follows from its key and value lengths.
//! A 16-byte key costs 20 bytes of hint.
//!
//! Hints are written atomically: `<name>.tmp`, fsync, rename, fsync dir.

use std::ops::ControlFlow;
use std::path::Path;

use crate::error::Error;
use crate::record::{self, FLAG_EXPIRY, Fields, Kind, get_varint, put_varint};
use crate::segment::{self, SEGMENT_HEADER_BYTES, Segment, SegmentId};
use crate::{Lsn, Position};

const MAGIC: &[u8; 4] = b"KVHI";
/// The version written.
const VERSION: u8 = 2;
/// The version before per-key expiry, still read.
const VERSION_1: u8 = 1;
const HEADER_BYTES: usize = 24;

/// One record as described by a hint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HintEntry<'a> {
    pub position: Position,
    pub kind: Kind,
    pub key: &'a [u8],
    pub offset: u64,
    pub len: u64,
    /// When the key expires (unix ms), for value records that have one.
    pub expiry: Option<u64>,
}

/// Accumulates the hint of a segment, one record at a time, in file order.
pub(crate) struct HintBuilder {
    out: Vec<u8>,
    count: u32,
    prev_lsn: Lsn,
}

impl HintBuilder {
    pub(crate) fn new(id: SegmentId) -> HintBuilder {
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&[0; 12]);
        HintBuilder {
            out,
            count: 0,
            prev_lsn: 0,
        }
    }

    /// Adds the next record (its value's length; expiry only for value
    /// records); `false` if its LSN does not increase.
    pub(crate) fn push(&mut self, position: Position, rec: &Fields<'_>) -> bool {
        let (kind, key) = (rec.kind, rec.key);
        if position.lsn <= self.prev_lsn {
            return false;
        }
        let expiry = rec.expiry.filter(|_| kind == Kind::Value);
        let has_expiry = if expiry.is_some() { FLAG_EXPIRY } else { 0 };
        self.out.push(kind.to_flags() | has_expiry);
        if let Some(at) = expiry {
            self.out.extend_from_slice(&at.to_le_bytes());
        }
        let value_len = rec.value.len();
        put_varint(&mut self.out, u64::from(position.epoch));
        put_varint(&mut self.out, position.lsn - self.prev_lsn);
        put_varint(&mut self.out, key.len() as u64);
        put_varint(&mut self.out, value_len as u64);
        self.out.extend_from_slice(key);
        self.prev_lsn = position.lsn;
        self.count += 1;
        true
    }

    /// The finished hint for a segment file of `segment_len` bytes.
    pub(crate) fn finish(mut self, segment_len: u64) -> Vec<u8> {
        // The header (written by `new`) has room for both fields.
        if let Some(len) = self.out.get_mut(12..20) {
            len.copy_from_slice(&segment_len.to_le_bytes());
        }
        if let Some(count) = self.out.get_mut(20..24) {
            count.copy_from_slice(&self.count.to_le_bytes());
        }
        let crc = crc32fast::hash(&self.out);
        self.out.extend_from_slice(&crc.to_le_bytes());
        self.out
    }
}

/// Builds the hint of a sealed segment by reading it sequentially (not
/// through the mapping, so building hints does not pin the segment's pages).
///
/// Fails with `Corrupted` if the segment does not scan cleanly to its end.
pub(crate) fn build(seg: &Segment) -> Result<Vec<u8>, Error> {
    let mut builder = HintBuilder::new(seg.id);
    let mut failure = None;
    seg.for_each_record(SEGMENT_HEADER_BYTES, seg.len(), |offset, rec| {
        let expiry = rec.expiry.is_some();
        let canonical = rec.len == record::encoded_len(rec.key.len(), rec.value.len(), expiry);
        if canonical && builder.push(rec.position, &rec.fields()) {
            return ControlFlow::Continue(());
        }
        failure = Some(Error::corrupted(&seg.path, offset, "segment not indexable"));
        ControlFlow::Break(())
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(builder.finish(seg.len())),
    }
}

/// Writes a hint atomically; returns its size.
pub(crate) fn write(dir: &Path, id: SegmentId, bytes: &[u8]) -> Result<u64, Error> {
    crate::durable::write_atomic(dir, &segment::hint_name(id), bytes)?;
    Ok(bytes.len() as u64)
}

/// Checks the header and CRC of `bytes` against the segment it should
/// describe; returns the format version and the entry count.
fn check(bytes: &[u8], id: SegmentId, segment_len: u64) -> Option<(u8, u32)> {
    let body_len = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(body_len);
    let version = *body.get(4)?;
    let known = version == VERSION || version == VERSION_1;
    if body.len() < HEADER_BYTES || body.get(0..4)? != MAGIC || !known {
        return None;
    }
    let le = |r: std::ops::Range<usize>| {
        let bytes = body.get(r)?;
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    };
    if le(8..12)? != u64::from(id) || le(12..20)? != segment_len {
        return None;
    }
    if u64::from(crc32fast::hash(body)) != le_bytes(crc)? {
        return None;
    }
    Some((version, u32::try_from(le(20..24)?).ok()?))
}

fn le_bytes(b: &[u8]) -> Option<u64> {
    let arr: [u8; 4] = b.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(arr)))
}

/// The entry count a hint claims (unvalidated; for pre-sizing only).
pub(crate) fn entry_count(bytes: &[u8]) -> Option<u32> {
    let raw = bytes.get(20..24)?;
    Some(u32::from_le_bytes(raw.try_into().ok()?))
}

/// The entries of a hint, or `None` if the hint is damaged (checksum) or
/// does not describe this segment (id, length). The checksum covers every
/// byte, so a hint that passes was written whole by [`HintBuilder`]; after
/// iterating, [`Entries::is_complete`] confirms the structure matched too.
pub(crate) fn entries(bytes: &[u8], id: SegmentId, segment_len: u64) -> Option<Entries<'_>> {
    let (version, count) = check(bytes, id, segment_len)?;
    let body = bytes.get(HEADER_BYTES..bytes.len() - 4)?;
    let mut entries = Entries::new(body, count, segment_len);
    entries.expiry_allowed = version >= VERSION;
    Some(entries)
}

/// Iterator over hint entries (see [`entries`]).
pub(crate) struct Entries<'a> {
    body: &'a [u8],
    remaining: u32,
    pos: usize,
    offset: u64,
    lsn: Lsn,
    segment_len: u64,
    failed: bool,
    /// Whether entries may carry an expiry (version 2 on).
    expiry_allowed: bool,
}

impl<'a> Entries<'a> {
    fn new(body: &'a [u8], count: u32, segment_len: u64) -> Entries<'a> {
        Entries {
            body,
            remaining: count,
            pos: 0,
            offset: SEGMENT_HEADER_BYTES,
            lsn: 0,
            segment_len,
            failed: false,
            expiry_allowed: true,
        }
    }

    /// After the last entry: whether every entry parsed and they cover the
    /// whole segment exactly.
    pub(crate) fn is_complete(&self) -> bool {
        let exact = self.pos == self.body.len() && self.offset == self.segment_len;
        !self.failed && self.remaining == 0 && exact
    }

    fn parse(&mut self) -> Option<HintEntry<'a>> {
        let flags = *self.body.get(self.pos)?;
        let kind = Kind::from_flags(flags & !FLAG_EXPIRY)?;
        let mut pos = self.pos + 1;
        let expiry = match flags & FLAG_EXPIRY {
            0 => None,
            _ if !self.expiry_allowed || kind != Kind::Value => return None,
            _ => {
                let raw = self.body.get(pos..pos + 8)?;
                pos += 8;
                Some(u64::from_le_bytes(raw.try_into().ok()?))
            }
        };
        let mut varint = || get_varint(self.body, &mut pos, 10)?.ok();
        let epoch = u32::try_from(varint()?).ok()?;
        let delta = Some(varint()?).filter(|&d| d >= 1)?;
        let key_len = u32::try_from(varint()?).ok()? as usize;
        let value_len = u32::try_from(varint()?).ok()? as usize;
        let key = self.body.get(pos..pos.checked_add(key_len)?)?;
        let lsn = self.lsn.checked_add(delta)?;
        let len = record::encoded_len(key_len, value_len, expiry.is_some()) as u64;
        let entry = HintEntry {
            position: Position { epoch, lsn },
            kind,
            key,
            offset: self.offset,
            len,
            expiry,
        };
        self.pos = pos + key_len;
        self.lsn = lsn;
        self.offset = self.offset.checked_add(len)?;
        Some(entry)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = HintEntry<'a>;

    fn next(&mut self) -> Option<HintEntry<'a>> {
        if self.remaining == 0 {
            return None;
        }
        let entry = self.parse();
        self.remaining = if entry.is_some() {
            self.remaining - 1
        } else {
            u32::MAX
        };
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `img` to a file and opens it as a sealed segment with id 3.
    fn sealed(dir: &tempfile::TempDir, img: &[u8]) -> Segment {
        let path = dir.path().join("seg");
        std::fs::write(&path, img).unwrap();
        let file = std::sync::Arc::new(std::fs::File::open(&path).unwrap());
        let header = crate::segment::SegmentHeader {
            id: 3,
            kind: crate::segment::SegmentKind::Log,
            reset: false,
            base: Position::default(),
        };
        Segment::sealed(path, header, file).unwrap()
    }

    fn segment_image(records: &[(u64, Kind, &[u8], &[u8])]) -> Vec<u8> {
        let mut buf = vec![0u8; SEGMENT_HEADER_BYTES as usize];
        for &(lsn, kind, key, value) in records {
            let pos = Position { epoch: 1, lsn };
            record::encode(&mut buf, pos, kind, key, value);
        }
        buf
    }

    #[test]
    fn build_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let img = segment_image(&[
            (1, Kind::Value, b"a", b"one"),
            (2, Kind::Tombstone, b"a", b""),
            (5, Kind::Value, b"bb", &[9; 200]),
            (6, Kind::Marker, b"", b""),
        ]);
        let hint = build(&sealed(&dir, &img)).unwrap();
        let got: Vec<_> = entries(&hint, 3, img.len() as u64)
            .unwrap()
            .map(|e| (e.position.lsn, e.kind, e.key.to_vec(), e.offset, e.len))
            .collect();
        assert_eq!(got.len(), 4);
        let mut offset = SEGMENT_HEADER_BYTES;
        for (lsn, kind, key, off, len) in &got {
            let rec = record::decode(&img[*off as usize..]).unwrap();
            assert_eq!(
                (rec.position.lsn, rec.kind, rec.key),
                (*lsn, *kind, &key[..])
            );
            assert_eq!((*off, *len), (offset, rec.len as u64));
            offset += len;
        }
    }

    #[test]
    fn rejects_mismatch_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let img = segment_image(&[(1, Kind::Value, b"a", b"one"), (2, Kind::Value, b"b", b"")]);
        let hint = build(&sealed(&dir, &img)).unwrap();
        let len = img.len() as u64;
        let mut all = entries(&hint, 3, len).unwrap();
        assert_eq!(all.by_ref().count(), 2);
        assert!(all.is_complete());
        assert!(entries(&hint, 4, len).is_none(), "wrong segment id");
        assert!(entries(&hint, 3, len + 1).is_none(), "wrong length");
        for i in 0..hint.len() {
            let mut bad = hint.clone();
            bad[i] ^= 1;
            assert!(entries(&bad, 3, len).is_none(), "flip at {i}");
        }
        assert!(entries(&hint[..hint.len() - 1], 3, len).is_none());
    }

    #[test]
    fn build_refuses_a_damaged_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = segment_image(&[(1, Kind::Value, b"a", b"one")]);
        img.push(0);
        assert!(matches!(
            build(&sealed(&dir, &img)),
            Err(Error::Corrupted { .. })
        ));
    }

    /// A segment of one value record with an expiry and one without.
    fn expiring_image() -> Vec<u8> {
        let mut img = vec![0u8; SEGMENT_HEADER_BYTES as usize];
        let fields = record::Fields {
            kind: Kind::Value,
            key: b"ttl",
            value: b"soon",
            expiry: Some(0x0102_0304_0506_0708),
        };
        record::encode_in_batch(&mut img, Position { epoch: 1, lsn: 1 }, &fields, false);
        record::encode(
            &mut img,
            Position { epoch: 1, lsn: 2 },
            Kind::Value,
            b"p",
            b"v",
        );
        img
    }

    /// `hint` with its version byte set to `version` and the CRC redone.
    fn as_version(hint: &[u8], version: u8) -> Vec<u8> {
        let mut out = hint[..hint.len() - 4].to_vec();
        out[4] = version;
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    #[test]
    fn expiry_times_roundtrip_through_a_version_2_hint() {
        let dir = tempfile::tempdir().unwrap();
        let img = expiring_image();
        let hint = build(&sealed(&dir, &img)).unwrap();
        assert_eq!(hint[4], 2);
        let mut all = entries(&hint, 3, img.len() as u64).unwrap();
        let got: Vec<_> = all
            .by_ref()
            .map(|e| (e.key.to_vec(), e.expiry, e.len))
            .collect();
        assert!(all.is_complete());
        let first_len = record::encoded_len(3, 4, true) as u64;
        assert_eq!(
            got,
            [
                (b"ttl".to_vec(), Some(0x0102_0304_0506_0708), first_len),
                (b"p".to_vec(), None, record::encoded_len(1, 1, false) as u64),
            ]
        );
    }

    #[test]
    fn version_1_hints_still_read_but_may_not_carry_an_expiry() {
        let dir = tempfile::tempdir().unwrap();
        // Without expiries, version 1 and 2 entries are the same bytes.
        let img = segment_image(&[
            (1, Kind::Value, b"a", b"one"),
            (2, Kind::Tombstone, b"a", b""),
        ]);
        let v1 = as_version(&build(&sealed(&dir, &img)).unwrap(), 1);
        let mut all = entries(&v1, 3, img.len() as u64).unwrap();
        assert_eq!(all.by_ref().count(), 2);
        assert!(all.is_complete());
        // A version-1 hint with the expiry flag is not to be trusted.
        let img = expiring_image();
        let bad = as_version(&build(&sealed(&dir, &img)).unwrap(), 1);
        let mut all = entries(&bad, 3, img.len() as u64).unwrap();
        assert_eq!(all.by_ref().count(), 0);
        assert!(!all.is_complete());
        // Nor is an unknown version.
        assert!(entries(&as_version(&bad, 3), 3, img.len() as u64).is_none());
    }
}

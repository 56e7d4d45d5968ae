//! Small metadata files: the legacy `EPOCH` file and compaction markers
//! (the epoch history, `EPOCHS`, is described in `epochs.rs`).
//!
//! # `EPOCH` (12 bytes; legacy, read only when `EPOCHS` is missing)
//!
//! | offset | size | field                      |
//! |--------|------|----------------------------|
//! | 0      | 4    | magic `KVEP`               |
//! | 4      | 4    | epoch (`u32`, LE)          |
//! | 8      | 4    | CRC-32 of bytes 0..8 (LE)  |
//!
//! # `compaction-<n>.marker`
//!
//! Written by compaction after all its outputs are durable and renamed, and
//! before it deletes any input: it lists the input segments. If the process
//! dies while inputs are being deleted, recovery finishes the deletion (a
//! partial deletion could resurrect a deleted key: an input holding a
//! tombstone could be gone while an older input holding the value is not).
//!
//! | offset | size  | field                                  |
//! |--------|-------|----------------------------------------|
//! | 0      | 4     | magic `KVCM`                           |
//! | 4      | 4     | number of inputs `n` (`u32`, LE)        |
//! | 8      | 4 × n | input segment ids (`u32`, LE)           |
//! | 8 + 4n | 4     | CRC-32 of every byte before it (LE)     |
//!
//! # `truncate-<n>.marker`
//!
//! The same layout with magic `KVTM`: written by a truncation once the new
//! head segment `n` is durable (as `.tmp`); lists the log segments it
//! replaces. Recovery finishes the truncation (`truncate.rs`).
//!
//! All are written atomically ([`write_atomic`]: `<name>.tmp`, fsync,
//! rename, fsync dir).

use std::path::{Path, PathBuf};

use crate::Epoch;
use crate::durable::write_atomic;
use crate::error::Error;
use crate::segment::SegmentId;

/// Name of the epoch file.
pub(crate) const EPOCH_FILE: &str = "EPOCH";
const EPOCH_MAGIC: &[u8; 4] = b"KVEP";
const MARKER_MAGIC: &[u8; 4] = b"KVCM";
const TRUNCATE_MAGIC: &[u8; 4] = b"KVTM";

/// `compaction-<n>.marker`
pub(crate) fn marker_name(id: SegmentId) -> String {
    format!("compaction-{id:010}.marker")
}

/// `truncate-<n>.marker` (see `truncate.rs`; same layout, magic `KVTM`).
pub(crate) fn truncate_marker_name(id: SegmentId) -> String {
    format!("truncate-{id:010}.marker")
}

/// Parses a marker file name.
pub(crate) fn parse_marker_name(name: &str) -> Option<SegmentId> {
    parse_id(name, "compaction-")
}

/// Parses a truncation marker file name.
pub(crate) fn parse_truncate_marker_name(name: &str) -> Option<SegmentId> {
    parse_id(name, "truncate-")
}

fn parse_id(name: &str, prefix: &str) -> Option<SegmentId> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(".marker")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub(crate) fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

/// Splits off and checks the trailing CRC.
pub(crate) fn check_crc(bytes: &[u8]) -> Option<&[u8]> {
    let split = bytes.len().checked_sub(4)?;
    let (body, crc) = bytes.split_at(split);
    let crc = u32::from_le_bytes(crc.try_into().ok()?);
    (crc32fast::hash(body) == crc).then_some(body)
}

pub(crate) fn le32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

pub(crate) fn le64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Persists a legacy `EPOCH` file (tests of the upgrade path only: the
/// epoch now lives in `EPOCHS`, see `epochs.rs`).
#[cfg(test)]
pub(crate) fn write_epoch(dir: &Path, epoch: Epoch) -> Result<(), Error> {
    let mut bytes = EPOCH_MAGIC.to_vec();
    bytes.extend_from_slice(&epoch.to_le_bytes());
    write_atomic(dir, EPOCH_FILE, &with_crc(bytes))
}

/// Reads the epoch; a missing file means epoch 0.
pub(crate) fn read_epoch(dir: &Path) -> Result<Epoch, Error> {
    let path = dir.join(EPOCH_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let body = check_crc(&bytes).filter(|b| b.len() == 8 && b.get(0..4) == Some(EPOCH_MAGIC));
    let epoch = body.and_then(|b| le32(b, 4));
    epoch.ok_or_else(|| Error::corrupted(&path, 0, "bad EPOCH file"))
}

/// Writes a compaction marker listing `inputs`.
pub(crate) fn write_marker(dir: &Path, id: SegmentId, inputs: &[SegmentId]) -> Result<(), Error> {
    write_list(dir, &marker_name(id), MARKER_MAGIC, inputs)
}

/// Writes a truncation marker listing the segments to delete.
pub(crate) fn write_truncate_marker(
    dir: &Path,
    id: SegmentId,
    doomed: &[SegmentId],
) -> Result<(), Error> {
    write_list(dir, &truncate_marker_name(id), TRUNCATE_MAGIC, doomed)
}

fn write_list(dir: &Path, name: &str, magic: &[u8; 4], inputs: &[SegmentId]) -> Result<(), Error> {
    let mut bytes = magic.to_vec();
    bytes.extend_from_slice(&(inputs.len() as u32).to_le_bytes());
    for input in inputs {
        bytes.extend_from_slice(&input.to_le_bytes());
    }
    write_atomic(dir, name, &with_crc(bytes))
}

/// Reads the input list of a marker.
pub(crate) fn read_marker(path: &PathBuf) -> Result<Vec<SegmentId>, Error> {
    read_list(path, MARKER_MAGIC)
}

/// Reads the list of segments a truncation marker dooms.
pub(crate) fn read_truncate_marker(path: &PathBuf) -> Result<Vec<SegmentId>, Error> {
    read_list(path, TRUNCATE_MAGIC)
}

fn read_list(path: &PathBuf, magic: &[u8; 4]) -> Result<Vec<SegmentId>, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = || Error::corrupted(path, 0, "bad marker file");
    let body = check_crc(&bytes)
        .filter(|b| b.get(0..4) == Some(magic))
        .ok_or_else(bad)?;
    let n = le32(body, 4).ok_or_else(bad)? as usize;
    if body.len() != 8 + 4 * n {
        return Err(bad());
    }
    (0..n)
        .map(|i| le32(body, 8 + 4 * i).ok_or_else(bad))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_roundtrip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_epoch(dir.path()).unwrap(), 0);
        write_epoch(dir.path(), 7).unwrap();
        assert_eq!(read_epoch(dir.path()).unwrap(), 7);
        let path = dir.path().join(EPOCH_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[5] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            read_epoch(dir.path()),
            Err(Error::Corrupted { .. })
        ));
    }

    #[test]
    fn marker_roundtrip_and_names() {
        let dir = tempfile::tempdir().unwrap();
        write_marker(dir.path(), 12, &[3, 4, 9]).unwrap();
        let path = dir.path().join(marker_name(12));
        assert_eq!(read_marker(&path).unwrap(), vec![3, 4, 9]);
        assert_eq!(parse_marker_name(&marker_name(12)), Some(12));
        assert_eq!(parse_marker_name("compaction-.marker"), None);
        std::fs::write(&path, b"KVCM").unwrap();
        assert!(matches!(read_marker(&path), Err(Error::Corrupted { .. })));
    }
}

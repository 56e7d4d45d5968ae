//! Rollback files: what a truncation removed, kept so nothing disappears
//! silently.
//!
//! # Why
//!
//! When log matching finds that a replica holds entries the leader never
//! had (a divergent tail), [`Store::truncate_after`] removes them. Those
//! entries may be acknowledged writes of a deposed leader; as MongoDB does,
//! they are first written to a *rollback file* under `<store>/rollback/`,
//! fsynced before anything is removed, so an operator can inspect them
//! ([`read`], `kv inspect`) and re-apply what matters.
//!
//! # Format (`rollback/rollback-<n>.kvrb`, `n` counting up from 1)
//!
//! All integers little-endian. Header, 32 bytes:
//!
//! | offset | size | field                                             |
//! |--------|------|---------------------------------------------------|
//! | 0      | 4    | magic `KVRB`                                      |
//! | 4      | 1    | version, 1                                        |
//! | 5      | 3    | zero                                              |
//! | 8      | 4    | epoch of the position truncated after (kept)      |
//! | 12     | 8    | LSN of that position                              |
//! | 20     | 8    | number of entries `n`                             |
//! | 28     | 4    | CRC-32 of bytes 0..28                             |
//!
//! Then `n` entries, in LSN order:
//!
//! | size | field                                                  |
//! |------|--------------------------------------------------------|
//! | 4    | CRC-32 of the rest of the entry (from `body length`)   |
//! | 4    | body length `b` (bytes after this field)               |
//! | 4    | epoch                                                  |
//! | 8    | LSN                                                    |
//! | 1    | kind: 0 value, 1 tombstone (deletion), 2 value with an expiry |
//! | 8    | expiry (unix ms), only for kind 2                      |
//! | 4    | key length `k`                                         |
//! | k    | key                                                    |
//! | rest | value (empty for a tombstone)                          |
//!
//! The file is written as `.tmp`, fsynced, renamed and the directory
//! fsynced: a rollback file that exists is complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::durable::{self, TmpFile};
use crate::error::Error;
use crate::meta;
use crate::{Entry, Position, Store};

/// Subdirectory of a store directory holding rollback files.
pub const ROLLBACK_DIR: &str = "rollback";
const MAGIC: &[u8; 4] = b"KVRB";
const VERSION: u8 = 1;
const HEADER_BYTES: usize = 32;
/// Entry bytes before the key: CRC, body length, epoch, LSN, kind, key length.
const ENTRY_FIXED_BYTES: usize = 4 + 4 + 4 + 8 + 1 + 4;

/// A rollback file's contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RollbackFile {
    /// The position the store was truncated after (it kept this entry).
    pub truncated_after: Position,
    /// The removed entries, in LSN order.
    pub entries: Vec<Entry>,
}

/// The rollback files of the store in `store_dir`, oldest first (none if the
/// store never truncated).
pub fn list(store_dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = store_dir.join(ROLLBACK_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str());
        if let Some(n) = name.and_then(parse_name) {
            files.push((n, path));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// Reads and checks a rollback file; any damage is [`Error::Corrupted`].
pub fn read(path: &Path) -> Result<RollbackFile, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (truncated_after, n) = decode_header(&bytes).ok_or_else(|| bad(path, 0))?;
    let mut entries = Vec::new();
    let mut at = HEADER_BYTES;
    for _ in 0..n {
        let (entry, len) = decode_entry(&bytes, at).ok_or_else(|| bad(path, at))?;
        entries.push(entry);
        at += len;
    }
    if at != bytes.len() {
        return Err(bad(path, at));
    }
    Ok(RollbackFile {
        truncated_after,
        entries,
    })
}

fn bad(path: &Path, at: usize) -> Error {
    Error::corrupted(path, at as u64, "bad rollback file")
}

fn name(n: u64) -> String {
    format!("rollback-{n:010}.kvrb")
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("rollback-")?.strip_suffix(".kvrb")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn encode_header(after: Position, n: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&[VERSION, 0, 0, 0]);
    body.extend_from_slice(&after.epoch.to_le_bytes());
    body.extend_from_slice(&after.lsn.to_le_bytes());
    body.extend_from_slice(&n.to_le_bytes());
    let with_crc = meta::with_crc(body);
    for (dst, src) in h.iter_mut().zip(with_crc) {
        *dst = src;
    }
    h
}

fn decode_header(bytes: &[u8]) -> Option<(Position, u64)> {
    let body = meta::check_crc(bytes.get(..HEADER_BYTES)?)?;
    if body.get(0..4)? != MAGIC || body.get(4..8)? != [VERSION, 0, 0, 0] {
        return None;
    }
    let after = Position {
        epoch: meta::le32(body, 8)?,
        lsn: meta::le64(body, 12)?,
    };
    Some((after, meta::le64(body, 20)?))
}

/// Kind byte of a value with an expiry (followed by the expiry).
const KIND_EXPIRING: u8 = 2;

fn encode_entry(buf: &mut Vec<u8>, key: &[u8], value: Option<&[u8]>, removed: Removed) {
    let value_bytes = value.unwrap_or_default();
    let expiry = removed.expiry.filter(|_| value.is_some());
    let expiry_len = if expiry.is_some() { 8 } else { 0 };
    let body_len = ENTRY_FIXED_BYTES - 8 + expiry_len + key.len() + value_bytes.len();
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&removed.position.epoch.to_le_bytes());
    buf.extend_from_slice(&removed.position.lsn.to_le_bytes());
    match expiry {
        Some(at) => {
            buf.push(KIND_EXPIRING);
            buf.extend_from_slice(&at.to_le_bytes());
        }
        None => buf.push(u8::from(value.is_none())),
    }
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(value_bytes);
    let crc = crc32fast::hash(buf.get(start + 4..).unwrap_or_default());
    if let Some(head) = buf.get_mut(start..start + 4) {
        head.copy_from_slice(&crc.to_le_bytes());
    }
}

/// Decodes the entry at `at`; returns it and its encoded length.
fn decode_entry(bytes: &[u8], at: usize) -> Option<(Entry, usize)> {
    let crc = meta::le32(bytes, at)?;
    let body_len = meta::le32(bytes, at + 4)? as usize;
    let end = at.checked_add(8)?.checked_add(body_len)?;
    let checked = bytes.get(at + 4..end)?;
    if crc32fast::hash(checked) != crc || body_len < ENTRY_FIXED_BYTES - 8 {
        return None;
    }
    let body = bytes.get(at + 8..end)?;
    let position = Position {
        epoch: meta::le32(body, 0)?,
        lsn: meta::le64(body, 4)?,
    };
    let (tombstone, expiry) = match body.get(12)? {
        0 => (false, None),
        1 => (true, None),
        &KIND_EXPIRING => (false, Some(meta::le64(body, 13)?)),
        _ => return None,
    };
    let key_len_at = if expiry.is_some() { 21 } else { 13 };
    let key_len = meta::le32(body, key_len_at)? as usize;
    let key_start = key_len_at + 4;
    let key = body.get(key_start..key_start.checked_add(key_len)?)?;
    let value = body.get(key_start + key_len..)?;
    if tombstone && !value.is_empty() {
        return None;
    }
    let entry = Entry {
        position,
        key: Bytes::copy_from_slice(key),
        value: (!tombstone).then(|| Bytes::copy_from_slice(value)),
        expiry,
    };
    Some((entry, end - at))
}

/// Where a removed record was and when its value would have expired.
#[derive(Clone, Copy)]
struct Removed {
    position: Position,
    expiry: Option<u64>,
}

/// Writes one rollback file, entry by entry, then makes it durable.
pub(crate) struct Writer {
    dir: PathBuf,
    tmp: TmpFile,
    /// A second handle of `tmp`'s file, buffering the entries.
    out: BufWriter<File>,
    after: Position,
    count: u64,
    buf: Vec<u8>,
}

impl Writer {
    /// Starts the next rollback file of the store in `store_dir`.
    pub(crate) fn create(store_dir: &Path) -> Result<Writer, Error> {
        let dir = store_dir.join(ROLLBACK_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let last = list(store_dir)?.last().cloned();
        let n = last
            .as_deref()
            .and_then(|p| p.file_name()?.to_str().and_then(parse_name))
            .unwrap_or(0);
        let tmp = TmpFile::create(&dir, &name(n + 1))?;
        let io = |e| Error::io(tmp.tmp_path(), e);
        let mut out = BufWriter::new(tmp.file().try_clone().map_err(io)?);
        out.write_all(&[0; HEADER_BYTES]).map_err(io)?;
        Ok(Writer {
            dir,
            tmp,
            out,
            after: Position::default(),
            count: 0,
            buf: Vec::new(),
        })
    }

    /// Sets the position the store is truncated after (the header field).
    pub(crate) fn set_after(&mut self, after: Position) {
        self.after = after;
    }

    /// Appends one removed record (`value` `None`: a deletion; `expiry`
    /// is kept for values only).
    pub(crate) fn add(
        &mut self,
        position: Position,
        key: &[u8],
        value: Option<&[u8]>,
        expiry: Option<u64>,
    ) -> Result<(), Error> {
        self.buf.clear();
        encode_entry(&mut self.buf, key, value, Removed { position, expiry });
        self.count += 1;
        self.out
            .write_all(&self.buf)
            .map_err(|e| Error::io(self.tmp.tmp_path(), e))
    }

    /// Writes the header, fsyncs, renames into place and fsyncs the
    /// directory (and the store directory, which may have just gained
    /// `rollback/`); returns the final path and the entry count.
    pub(crate) fn finish(self) -> Result<(PathBuf, u64), Error> {
        let io = |e| Error::io(self.tmp.tmp_path(), e);
        let out = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        drop(out);
        let header = encode_header(self.after, self.count);
        self.tmp.file().write_all_at(&header, 0).map_err(io)?;
        let (path, _) = self.tmp.commit()?;
        if let Some(parent) = self.dir.parent() {
            durable::sync_dir(parent)?;
        }
        Ok((path, self.count))
    }
}

impl Store {
    /// The rollback files of this store, oldest first; read one with
    /// [`read`](crate::rollback::read).
    pub fn rollbacks(&self) -> Result<Vec<PathBuf>, Error> {
        list(&self.inner().dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: u32, lsn: u64) -> Position {
        Position { epoch, lsn }
    }

    #[test]
    fn roundtrip_and_numbering() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
        for round in 0..2u64 {
            let mut w = Writer::create(dir.path()).unwrap();
            w.set_after(pos(2, 10 + round));
            w.add(pos(3, 11), b"k1", Some(b"v1"), None).unwrap();
            w.add(pos(3, 12), b"k2", None, None).unwrap();
            w.add(pos(3, 13), b"k3", Some(b"v3"), Some(1_700_000_000_000))
                .unwrap();
            let (path, n) = w.finish().unwrap();
            assert_eq!(n, 3);
            assert!(path.ends_with(name(round + 1)));
        }
        let files = list(dir.path()).unwrap();
        assert_eq!(files.len(), 2);
        let file = read(&files[1]).unwrap();
        assert_eq!(file.truncated_after, pos(2, 11));
        assert_eq!(file.entries.len(), 3);
        assert_eq!(file.entries[0].expiry, None);
        assert_eq!(file.entries[2].value.as_deref(), Some(&b"v3"[..]));
        assert_eq!(file.entries[2].expiry, Some(1_700_000_000_000));
        assert_eq!(file.entries[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(
            (file.entries[1].key.as_ref(), file.entries[1].value.as_ref()),
            (&b"k2"[..], None)
        );
        assert_eq!(file.entries[1].position, pos(3, 12));
    }

    #[test]
    fn every_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(dir.path()).unwrap();
        w.set_after(pos(1, 4));
        w.add(pos(1, 5), b"key", Some(b"value"), None).unwrap();
        w.add(pos(1, 6), b"k2", Some(b"v2"), Some(42)).unwrap();
        let (path, _) = w.finish().unwrap();
        let good = std::fs::read(&path).unwrap();
        for i in 0..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            assert!(
                matches!(read(&path), Err(Error::Corrupted { .. })),
                "byte {i}"
            );
        }
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(
                matches!(read(&path), Err(Error::Corrupted { .. })),
                "cut {cut}"
            );
        }
    }
}

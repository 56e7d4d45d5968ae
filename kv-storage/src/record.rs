//! The log record: the unit every segment is made of.
//!
//! # Byte layout
//!
//! All integers little-endian. A record is self-checking: the CRC covers every
//! byte after it, so a torn or flipped record is detected, never misread.
//!
//! | offset | size | field                                                   |
//! |--------|------|---------------------------------------------------------|
//! | 0      | 4    | CRC-32 (IEEE, `crc32fast`) of bytes `4..len`             |
//! | 4      | 4    | epoch (`u32`)                                            |
//! | 8      | 8    | LSN (`u64`, never 0)                                     |
//! | 16     | 1–5  | key length, unsigned LEB128 varint (fits `u32`)          |
//! | ..     | 1–5  | value length, unsigned LEB128 varint (fits `u32`)        |
//! | ..     | 1    | flags: bit 0 tombstone, bit 1 marker, bit 2 batch        |
//! |        |      | continues, bit 3 has expiry, bits 4–7 zero               |
//! | ..     | 0/8  | expiry: unix time in ms (`u64`), only with bit 3         |
//! | ..     | k    | key bytes                                                |
//! | ..     | v    | value bytes (none for tombstones and markers)            |
//!
//! A 16-byte key with a 100-byte value takes 19 + 16 + 100 = 135 bytes, or
//! 143 with an expiry.
//!
//! No record starts with 16 zero bytes: its LSN (bytes 8..16) is never 0
//! (`decode` rejects it), and the shortest record is 19 bytes. Recovery relies
//! on this to read an all-zero tail of the newest segment (space pre-sized
//! but not yet written) as the end of the log, not as a record.
//!
//! Kinds: a *value* record sets a key; a *tombstone* deletes it; a *marker*
//! (empty key, no value) only records a position — earlier versions wrote
//! one when a follower installed a snapshot, to say "the history up to here
//! is summarised by the records before me". It is still read (recovery
//! raises the history floor to it) but no longer written: a staged install
//! records its position in segment headers instead (`install.rs`).
//!
//! *Batch continues* (bit 2) is set on every record of a write batch but its
//! last, all written with one `write(2)`: a newest segment whose last valid
//! record has it set ends in a batch the crash cut short, and recovery drops
//! that batch's records (all or none; see `recovery/load.rs`). Everywhere
//! else the bit means nothing. Segments written before batches existed never
//! set it, so they read unchanged.
//!
//! *Has expiry* (bit 3, format version 2 of the record, December 2026) may
//! be set on value records only: the key expires (reads stop returning it)
//! at the 8-byte time that follows the flags. A record without an expiry is
//! byte for byte what version 1 wrote, so segments written before expiry
//! existed read unchanged (frozen in `tests/golden/v1-2026-12/`).
//!
//! Varint lengths are canonical-agnostic (a longer-than-needed encoding is
//! accepted if the CRC matches) but limited to 5 bytes and to `u32`.

use crate::{Epoch, Lsn, Position};

/// Bytes before the length varints: CRC, epoch, LSN.
pub(crate) const FIXED_HEADER_BYTES: usize = 16;

const FLAG_TOMBSTONE: u8 = 1;
const FLAG_MARKER: u8 = 2;
const FLAG_BATCH_CONTINUES: u8 = 4;
/// Set on value records that carry an expiry time.
pub(crate) const FLAG_EXPIRY: u8 = 8;
/// Bytes of the expiry field when present.
const EXPIRY_BYTES: usize = 8;

/// What a record does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Sets `key` to `value`.
    Value,
    /// Deletes `key`.
    Tombstone,
    /// Records a position only; key and value empty. Legacy: written by
    /// the removed `Store::install_snapshot`, now only read (it sets the
    /// position and the history floor; see `recovery` tests). Snapshots
    /// complete through `Install` (`install.rs`) alone.
    Marker,
}

impl Kind {
    fn flags(self) -> u8 {
        match self {
            Kind::Value => 0,
            Kind::Tombstone => FLAG_TOMBSTONE,
            Kind::Marker => FLAG_MARKER,
        }
    }

    pub(crate) fn from_flags(flags: u8) -> Option<Kind> {
        match flags {
            0 => Some(Kind::Value),
            FLAG_TOMBSTONE => Some(Kind::Tombstone),
            FLAG_MARKER => Some(Kind::Marker),
            _ => None,
        }
    }

    pub(crate) fn to_flags(self) -> u8 {
        self.flags()
    }
}

/// A decoded record borrowing from the buffer it was read from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RecordRef<'a> {
    pub position: Position,
    pub kind: Kind,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Total encoded length.
    pub len: usize,
    /// Offset of the key inside the record (the value follows the key).
    pub key_start: usize,
    /// More records of the same write batch follow this one.
    pub batch_continues: bool,
    /// When the key expires (unix ms), for value records that have one.
    pub expiry: Option<u64>,
}

impl<'a> RecordRef<'a> {
    /// The fields to encode the same record again.
    pub(crate) fn fields(&self) -> Fields<'a> {
        Fields {
            kind: self.kind,
            key: self.key,
            value: self.value,
            expiry: self.expiry,
        }
    }
}

/// Why bytes did not decode as a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// The buffer ends before the record does (a torn tail, or a damaged
    /// length field that points past the end).
    Incomplete,
    /// The CRC does not match.
    Checksum,
    /// The CRC matched but a field is impossible.
    Malformed(&'static str),
}

impl DecodeError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            DecodeError::Incomplete => "record extends past the end of the file",
            DecodeError::Checksum => "record checksum mismatch",
            DecodeError::Malformed(why) => why,
        }
    }
}

/// Length of a varint encoding of `v`.
pub(crate) fn varint_len(v: u32) -> usize {
    match v {
        0..0x80 => 1,
        0x80..0x4000 => 2,
        0x4000..0x20_0000 => 3,
        0x20_0000..0x1000_0000 => 4,
        _ => 5,
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a varint of at most `max_bytes` bytes at `*pos`, advancing it.
/// `None` means "ran out of bytes"; `Some(Err)` means "too long".
pub(crate) fn get_varint(buf: &[u8], pos: &mut usize, max_bytes: usize) -> Option<Result<u64, ()>> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(Ok(value));
        }
    }
    Some(Err(()))
}

/// Encoded length of a record with these key and value lengths (and an
/// expiry field if `has_expiry`).
pub(crate) fn encoded_len(key_len: usize, value_len: usize, has_expiry: bool) -> usize {
    let k = u32::try_from(key_len).unwrap_or(u32::MAX);
    let v = u32::try_from(value_len).unwrap_or(u32::MAX);
    let expiry = if has_expiry { EXPIRY_BYTES } else { 0 };
    FIXED_HEADER_BYTES + varint_len(k) + varint_len(v) + 1 + expiry + key_len + value_len
}

/// The most bytes a record adds beyond its key and value (both lengths at
/// their longest varint, an expiry).
pub(crate) const MAX_OVERHEAD_BYTES: usize = FIXED_HEADER_BYTES + 5 + 5 + 1 + EXPIRY_BYTES;

/// What to encode: the record's fields besides its position.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fields<'a> {
    pub kind: Kind,
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Expiry time (unix ms); only value records carry one.
    pub expiry: Option<u64>,
}

/// Appends one encoded record to `buf` and returns its length. Callers
/// validate key and value sizes first (both fit `u32`).
#[cfg(test)]
pub(crate) fn encode(
    buf: &mut Vec<u8>,
    position: Position,
    kind: Kind,
    key: &[u8],
    value: &[u8],
) -> usize {
    let fields = Fields {
        kind,
        key,
        value,
        expiry: None,
    };
    encode_in_batch(buf, position, &fields, false)
}

/// [`encode`], marking the record as followed by more of its batch.
/// An expiry is written only on value records (callers never pass one
/// otherwise).
pub(crate) fn encode_in_batch(
    buf: &mut Vec<u8>,
    position: Position,
    fields: &Fields<'_>,
    batch_continues: bool,
) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&position.epoch.to_le_bytes());
    buf.extend_from_slice(&position.lsn.to_le_bytes());
    put_varint(buf, fields.key.len() as u64);
    put_varint(buf, fields.value.len() as u64);
    let more = if batch_continues {
        FLAG_BATCH_CONTINUES
    } else {
        0
    };
    let expiry = fields.expiry.filter(|_| fields.kind == Kind::Value);
    let has_expiry = if expiry.is_some() { FLAG_EXPIRY } else { 0 };
    buf.push(fields.kind.flags() | more | has_expiry);
    if let Some(at) = expiry {
        buf.extend_from_slice(&at.to_le_bytes());
    }
    buf.extend_from_slice(fields.key);
    buf.extend_from_slice(fields.value);
    // The four CRC bytes were pushed at `start` above.
    let crc = crc32fast::hash(buf.get(start + 4..).unwrap_or_default());
    if let Some(head) = buf.get_mut(start..start + 4) {
        head.copy_from_slice(&crc.to_le_bytes());
    }
    buf.len() - start
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn read_u64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at + 8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// Parsed fixed part of a record header.
struct Header {
    crc: u32,
    epoch: Epoch,
    lsn: Lsn,
    key_len: usize,
    value_len: usize,
    flags: u8,
    expiry: Option<u64>,
    /// Offset of the key: the header's length, expiry field included.
    key_start: usize,
}

fn decode_header(buf: &[u8]) -> Result<Header, DecodeError> {
    let crc = read_u32(buf, 0).ok_or(DecodeError::Incomplete)?;
    let epoch = read_u32(buf, 4).ok_or(DecodeError::Incomplete)?;
    let lsn = read_u64(buf, 8).ok_or(DecodeError::Incomplete)?;
    let mut pos = FIXED_HEADER_BYTES;
    let mut length = || match get_varint(buf, &mut pos, 5) {
        None => Err(DecodeError::Incomplete),
        Some(Err(())) => Err(DecodeError::Checksum),
        Some(Ok(v)) => u32::try_from(v)
            .map(|v| v as usize)
            .map_err(|_| DecodeError::Checksum),
    };
    let key_len = length()?;
    let value_len = length()?;
    let flags = *buf.get(pos).ok_or(DecodeError::Incomplete)?;
    pos += 1;
    let expiry = match flags & FLAG_EXPIRY {
        0 => None,
        _ => {
            let at = read_u64(buf, pos).ok_or(DecodeError::Incomplete)?;
            pos += EXPIRY_BYTES;
            Some(at)
        }
    };
    Ok(Header {
        crc,
        epoch,
        lsn,
        key_len,
        value_len,
        flags,
        expiry,
        key_start: pos,
    })
}

/// Decodes the record at the start of `buf` (which may continue past it).
///
/// Damaged length fields show up as `Checksum` or `Incomplete`: a length that
/// points past the end is `Incomplete`, anything else fails the CRC.
pub(crate) fn decode(buf: &[u8]) -> Result<RecordRef<'_>, DecodeError> {
    let h = decode_header(buf)?;
    let len = h
        .key_start
        .checked_add(h.key_len)
        .and_then(|n| n.checked_add(h.value_len))
        .ok_or(DecodeError::Incomplete)?;
    let body = buf.get(4..len).ok_or(DecodeError::Incomplete)?;
    if crc32fast::hash(body) != h.crc {
        return Err(DecodeError::Checksum);
    }
    let kind = Kind::from_flags(h.flags & !(FLAG_BATCH_CONTINUES | FLAG_EXPIRY))
        .ok_or(DecodeError::Malformed("unknown record flags"))?;
    validate(kind, &h)?;
    let key_start = h.key_start;
    let value_start = key_start + h.key_len;
    Ok(RecordRef {
        position: Position {
            epoch: h.epoch,
            lsn: h.lsn,
        },
        kind,
        key: buf
            .get(key_start..value_start)
            .ok_or(DecodeError::Incomplete)?,
        value: buf.get(value_start..len).ok_or(DecodeError::Incomplete)?,
        len,
        key_start,
        batch_continues: h.flags & FLAG_BATCH_CONTINUES != 0,
        expiry: h.expiry,
    })
}

/// Makes the whole record at the start of `rec` the last of its write
/// batch: clears the *batch continues* flag and recomputes the CRC, leaving
/// every other byte as it was. Used when a truncation cuts a batch, so that
/// recovery keeps the records before the cut.
pub(crate) fn end_batch(rec: &mut [u8]) -> Result<(), DecodeError> {
    let len = decode(rec)?.len;
    // The flags byte follows the two length varints.
    let mut flags_at = FIXED_HEADER_BYTES;
    for _ in 0..2 {
        let length = get_varint(rec, &mut flags_at, 5).ok_or(DecodeError::Incomplete)?;
        length.map_err(|()| DecodeError::Checksum)?;
    }
    let flags = rec.get_mut(flags_at).ok_or(DecodeError::Incomplete)?;
    *flags &= !FLAG_BATCH_CONTINUES;
    let crc = crc32fast::hash(rec.get(4..len).ok_or(DecodeError::Incomplete)?);
    let head = rec.get_mut(0..4).ok_or(DecodeError::Incomplete)?;
    head.copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

fn validate(kind: Kind, h: &Header) -> Result<(), DecodeError> {
    if h.lsn == 0 {
        return Err(DecodeError::Malformed("record with lsn 0"));
    }
    if kind != Kind::Value && h.value_len != 0 {
        return Err(DecodeError::Malformed(
            "tombstone or marker carries a value",
        ));
    }
    if kind != Kind::Value && h.expiry.is_some() {
        return Err(DecodeError::Malformed(
            "tombstone or marker carries an expiry",
        ));
    }
    if kind == Kind::Marker && h.key_len != 0 {
        return Err(DecodeError::Malformed("marker carries a key"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: Epoch, lsn: Lsn) -> Position {
        Position { epoch, lsn }
    }

    #[test]
    fn byte_exact_value_record() {
        let mut buf = Vec::new();
        let n = encode(&mut buf, pos(2, 5), Kind::Value, b"ab", b"xyz");
        assert_eq!(n, buf.len());
        assert_eq!(n, encoded_len(2, 3, false));
        let body = [
            2, 0, 0, 0, // epoch
            5, 0, 0, 0, 0, 0, 0, 0, // lsn
            2, 3, 0, // key len, value len, flags
            b'a', b'b', b'x', b'y', b'z',
        ];
        assert_eq!(&buf[4..], &body);
        assert_eq!(&buf[..4], &crc32fast::hash(&body).to_le_bytes());
    }

    #[test]
    fn roundtrip_all_kinds() {
        for (kind, key, value) in [
            (Kind::Value, &b"k"[..], &b"v"[..]),
            (Kind::Value, &b""[..], &[7u8; 300][..]),
            (Kind::Tombstone, &b"gone"[..], &b""[..]),
            (Kind::Marker, &b""[..], &b""[..]),
        ] {
            let mut buf = Vec::new();
            encode(&mut buf, pos(1, 9), kind, key, value);
            buf.extend_from_slice(b"trailing");
            let r = decode(&buf).unwrap();
            assert_eq!((r.kind, r.key, r.value), (kind, key, value));
            assert_eq!(r.position, pos(1, 9));
            assert_eq!(r.len, buf.len() - 8);
        }
    }

    fn assert_every_cut_is_incomplete(buf: &[u8]) {
        for cut in 0..buf.len() {
            assert_eq!(decode(&buf[..cut]).unwrap_err(), DecodeError::Incomplete);
        }
    }

    fn assert_every_flip_is_detected(buf: &[u8]) {
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.to_vec();
                bad[byte] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "flip at {byte}:{bit} not detected");
            }
        }
    }

    #[test]
    fn every_truncation_is_incomplete() {
        let mut buf = Vec::new();
        encode(&mut buf, pos(1, 1), Kind::Value, b"key", b"value");
        assert_every_cut_is_incomplete(&buf);
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode(&mut buf, pos(3, 77), Kind::Value, b"key", b"value!");
        assert_every_flip_is_detected(&buf);
    }

    #[test]
    fn varint_lengths_match_encoding() {
        for v in [
            0u32,
            1,
            127,
            128,
            16383,
            16384,
            0x1f_ffff,
            0x20_0000,
            u32::MAX,
        ] {
            let mut buf = Vec::new();
            put_varint(&mut buf, u64::from(v));
            assert_eq!(buf.len(), varint_len(v));
            let mut at = 0;
            assert_eq!(get_varint(&buf, &mut at, 5), Some(Ok(u64::from(v))));
        }
    }

    #[test]
    fn lsn_zero_is_malformed() {
        let mut buf = Vec::new();
        encode(&mut buf, pos(0, 0), Kind::Value, b"k", b"v");
        assert!(matches!(decode(&buf), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn end_batch_clears_only_the_flag() {
        for expiry in [None, Some(1_700_000_000_000)] {
            let fields = Fields {
                kind: Kind::Value,
                key: b"k",
                value: b"v",
                expiry,
            };
            let mut buf = Vec::new();
            encode_in_batch(&mut buf, pos(2, 9), &fields, true);
            end_batch(&mut buf).unwrap();
            let mut plain = Vec::new();
            encode_in_batch(&mut plain, pos(2, 9), &fields, false);
            assert_eq!(buf, plain);
            let rec = decode(&buf).unwrap();
            assert!(!rec.batch_continues);
            assert_eq!(rec.expiry, expiry);
        }
    }

    #[test]
    fn batch_flag_roundtrips_and_leaves_the_kind_alone() {
        for (kind, value) in [(Kind::Value, &b"v"[..]), (Kind::Tombstone, &b""[..])] {
            for more in [false, true] {
                let mut buf = Vec::new();
                let fields = Fields {
                    kind,
                    key: b"k",
                    value,
                    expiry: None,
                };
                encode_in_batch(&mut buf, pos(1, 3), &fields, more);
                let rec = decode(&buf).unwrap();
                assert_eq!((rec.kind, rec.batch_continues), (kind, more));
                assert_eq!(buf.len(), encoded_len(1, value.len(), false));
            }
        }
    }

    fn with_expiry(key: &'static [u8], value: &'static [u8], at: u64) -> Fields<'static> {
        Fields {
            kind: Kind::Value,
            key,
            value,
            expiry: Some(at),
        }
    }

    #[test]
    fn byte_exact_value_record_with_expiry() {
        let mut buf = Vec::new();
        let fields = with_expiry(b"ab", b"xyz", 0x0102_0304_0506_0708);
        let n = encode_in_batch(&mut buf, pos(2, 5), &fields, true);
        assert_eq!(n, encoded_len(2, 3, true));
        let body = [
            2, 0, 0, 0, // epoch
            5, 0, 0, 0, 0, 0, 0, 0, // lsn
            2, 3, 12, // key len, value len, flags: batch continues | expiry
            8, 7, 6, 5, 4, 3, 2, 1, // expiry
            b'a', b'b', b'x', b'y', b'z',
        ];
        assert_eq!(&buf[4..], &body);
        let rec = decode(&buf).unwrap();
        assert_eq!(rec.expiry, Some(0x0102_0304_0506_0708));
        assert_eq!((rec.key, rec.value, rec.len), (&b"ab"[..], &b"xyz"[..], n));
        assert!(rec.batch_continues);
    }

    #[test]
    fn a_record_without_expiry_is_byte_identical_to_version_1() {
        let mut old = Vec::new();
        encode(&mut old, pos(1, 2), Kind::Value, b"k", b"v");
        let mut new = Vec::new();
        let fields = Fields {
            kind: Kind::Value,
            key: b"k",
            value: b"v",
            expiry: None,
        };
        encode_in_batch(&mut new, pos(1, 2), &fields, false);
        assert_eq!(old, new);
        assert_eq!(decode(&new).unwrap().expiry, None);
    }

    #[test]
    fn expiry_records_detect_every_cut_and_flip() {
        let mut buf = Vec::new();
        encode_in_batch(&mut buf, pos(3, 7), &with_expiry(b"key", b"val", 99), false);
        assert_every_cut_is_incomplete(&buf);
        assert_every_flip_is_detected(&buf);
    }

    #[test]
    fn only_value_records_carry_an_expiry() {
        let mut buf = Vec::new();
        let tomb = Fields {
            kind: Kind::Tombstone,
            key: b"k",
            value: b"",
            expiry: Some(5),
        };
        // The encoder leaves it out...
        encode_in_batch(&mut buf, pos(1, 1), &tomb, false);
        assert_eq!(buf.len(), encoded_len(1, 0, false));
        // ...and the decoder refuses a tombstone that has one.
        buf.truncate(0);
        encode_in_batch(&mut buf, pos(1, 1), &with_expiry(b"k", b"", 5), false);
        buf[18] |= FLAG_TOMBSTONE;
        let crc = crc32fast::hash(&buf[4..]);
        buf[..4].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(decode(&buf), Err(DecodeError::Malformed(_))));
    }
}

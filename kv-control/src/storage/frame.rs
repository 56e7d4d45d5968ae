//! Checksummed records and file magics: the byte layout in the
//! [parent module's docs](super), field by field.
//!
//! [`step`] reads one record and says what it found. It does not decide
//! policy: the log cuts a [`Step::Torn`] tail and refuses a
//! [`Step::Corrupt`] record; a file written whole ([`decode_file`]) accepts
//! neither.

use std::io;

/// Bytes of a record's header: `len`, `crc`, `head_crc`.
pub(super) const HEADER_BYTES: usize = 12;

/// Bytes of a file's magic: a six-byte name, a zero, the format version.
pub(super) const MAGIC_BYTES: usize = 8;

/// `raft.log`'s magic, format version 1.
pub(super) const LOG_MAGIC: [u8; MAGIC_BYTES] = *b"KVCLOG\x00\x01";

/// `vote`'s magic, format version 1.
pub(super) const VOTE_MAGIC: [u8; MAGIC_BYTES] = *b"KVCVOT\x00\x01";

/// `snapshot`'s magic, format version 1.
pub(super) const SNAPSHOT_MAGIC: [u8; MAGIC_BYTES] = *b"KVCSNP\x00\x01";

/// Appends one record holding `payload` to `out`.
pub(super) fn encode(payload: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::try_from(payload.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record over 4 GiB"))?;
    let crc = crc32fast::hash(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&head_crc(len, crc).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
}

/// What [`step`] found at an offset.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step<'a> {
    /// A whole, intact record; the next one starts at `next`.
    Record {
        /// The record's payload.
        payload: &'a [u8],
        /// Offset of the byte after the record.
        next: usize,
    },
    /// The file ends exactly here.
    End,
    /// What a crash in the middle of the last append leaves: a header or
    /// payload cut short, a last record whose payload fails its checksum,
    /// or a zero-filled tail.
    Torn(&'static str),
    /// A damaged record that cannot be a torn append: a bad header with
    /// non-zero bytes after it, or a bad payload with bytes after it.
    Corrupt(&'static str),
}

/// Reads the record at `at` in `buf`.
pub(super) fn step(buf: &[u8], at: usize) -> Step<'_> {
    let rest = buf.get(at..).unwrap_or_default();
    if rest.is_empty() {
        return Step::End;
    }
    let (Some(len), Some(crc), Some(stored_head)) =
        (u32_at(rest, 0), u32_at(rest, 4), u32_at(rest, 8))
    else {
        return Step::Torn("record header cut short");
    };
    if head_crc(len, crc) != stored_head {
        return if rest.iter().all(|b| *b == 0) {
            Step::Torn("zero-filled tail")
        } else {
            Step::Corrupt("record header checksum mismatch")
        };
    }
    let end = HEADER_BYTES.saturating_add(len as usize);
    let Some(payload) = rest.get(HEADER_BYTES..end) else {
        return Step::Torn("record runs past the end of the file");
    };
    if crc32fast::hash(payload) != crc {
        return if end == rest.len() {
            Step::Torn("checksum mismatch in the last record")
        } else {
            Step::Corrupt("record checksum mismatch with records after it")
        };
    }
    Step::Record {
        payload,
        next: at.saturating_add(end),
    }
}

/// Where and why a whole file failed to decode.
#[derive(Debug)]
pub(super) struct Damage {
    /// Byte offset of the bad magic or record.
    pub(super) offset: u64,
    /// What check failed.
    pub(super) reason: String,
}

/// The payloads of a file written whole (`vote`, `snapshot`): its magic,
/// then records to the end. Any damage is an error: such a file is
/// renamed into place only once complete, so a torn one was never ours.
pub(super) fn decode_file<'a>(
    magic: &[u8; MAGIC_BYTES],
    buf: &'a [u8],
) -> Result<Vec<&'a [u8]>, Damage> {
    if buf.get(..MAGIC_BYTES) != Some(magic.as_slice()) {
        return Err(damage(
            0,
            "wrong magic: not this file kind, or an unknown format version",
        ));
    }
    let mut payloads = Vec::new();
    let mut at = MAGIC_BYTES;
    loop {
        match step(buf, at) {
            Step::Record { payload, next } => {
                payloads.push(payload);
                at = next;
            }
            Step::End => return Ok(payloads),
            Step::Torn(reason) | Step::Corrupt(reason) => return Err(damage(at, reason)),
        }
    }
}

fn damage(offset: usize, reason: &str) -> Damage {
    Damage {
        offset: offset as u64,
        reason: reason.to_owned(),
    }
}

/// The header's own checksum: crc32 of `len` and `crc`, little-endian.
fn head_crc(len: u32, crc: u32) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&crc.to_le_bytes());
    hasher.finalize()
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn record(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(payload, &mut out).unwrap();
        out
    }

    /// Byte-exact: a format change shows here as a diff.
    #[test]
    fn encoding_is_byte_exact() {
        let cases: [(&str, &[u8], &str); 2] = [
            ("empty", b"", "000000000000000069df2265"),
            ("abc", b"abc", "03000000c2412435753ceae1616263"),
        ];
        for (name, payload, want) in cases {
            assert_eq!(hex(&record(payload)), want, "{name}");
        }
    }

    #[test]
    fn step_reads_records_then_end() {
        let mut buf = record(b"one");
        buf.extend(record(b"two"));
        let Step::Record { payload, next } = step(&buf, 0) else {
            panic!()
        };
        assert_eq!((payload, next), (b"one".as_slice(), 15));
        assert_eq!(
            step(&buf, 15),
            Step::Record {
                payload: b"two",
                next: 30
            }
        );
        assert_eq!(step(&buf, 30), Step::End);
    }

    #[test]
    fn damage_is_torn_at_the_tail_and_corrupt_before_it() {
        let mut buf = record(b"one");
        buf.extend(record(b"two"));
        let mut flipped = buf.clone();
        flipped[13] ^= 1; // payload of the first record
        assert!(matches!(step(&flipped, 0), Step::Corrupt(_)));
        flipped = buf.clone();
        flipped[28] ^= 1; // payload of the last record
        assert!(matches!(step(&flipped, 15), Step::Torn(_)));
        flipped = buf.clone();
        flipped[0] ^= 0x40; // length of the first record: past the end
        assert!(matches!(step(&flipped, 0), Step::Corrupt(_)));
        let zeros = [0u8; 20];
        assert!(matches!(step(&zeros, 0), Step::Torn(_)));
        assert!(matches!(step(&buf[..20], 15), Step::Torn(_)));
    }

    #[test]
    fn decode_file_refuses_a_wrong_magic_and_any_damage() {
        let mut buf = VOTE_MAGIC.to_vec();
        buf.extend(record(b"v"));
        assert_eq!(
            decode_file(&VOTE_MAGIC, &buf).unwrap(),
            vec![b"v".as_slice()]
        );
        assert_eq!(decode_file(&LOG_MAGIC, &buf).unwrap_err().offset, 0);
        buf.pop();
        assert_eq!(decode_file(&VOTE_MAGIC, &buf).unwrap_err().offset, 8);
    }
}

//! A bounded cursor over untrusted input.
//!
//! Every read checks the remaining length first and returns
//! [`DecodeError::Truncated`] instead of indexing past the end; every length
//! read from the input is checked against what is left *before* anything is
//! allocated for it. Offsets in errors are absolute positions in the whole
//! input.

use crate::error::DecodeError;
use crate::varint;

/// Upper bound on elements preallocated for one V3 array or object. Counts
/// come from the input, and up to [`MAX_DEPTH`](crate::MAX_DEPTH) containers
/// can be open at once, so trusting each count (even capped by the remaining
/// bytes) could reserve `depth × input` slots; beyond this many elements the
/// collection grows as elements are actually decoded.
const PREALLOCATE_MAX_ITEMS: usize = 256;

/// Cursor over an input slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `bytes` at offset `pos`.
    pub(crate) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Reader { bytes, pos }
    }

    /// The absolute offset of the next byte.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn truncated(&self, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            offset: self.pos,
            needed,
            available: self.remaining(),
        }
    }

    /// Reads one byte.
    pub(crate) fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.pos).ok_or_else(|| self.truncated(1))?;
        self.pos += 1;
        Ok(byte)
    }

    /// Reads exactly `len` bytes.
    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or_else(|| self.truncated(len))?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| self.truncated(len))?;
        self.pos = end;
        Ok(slice)
    }

    /// Reads exactly `N` bytes into an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// Reads a minimal LEB128 varint.
    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        match varint::read(rest) {
            Ok((value, len)) => {
                self.pos += len;
                Ok(value)
            }
            Err(varint::ReadError::Incomplete) => Err(DecodeError::Truncated {
                offset: self.pos,
                needed: rest.len() + 1,
                available: rest.len(),
            }),
            Err(varint::ReadError::Bad(problem)) => Err(DecodeError::BadVarint {
                offset: self.pos,
                problem,
            }),
        }
    }

    /// Reads a varint byte length and checks that many bytes are left.
    pub(crate) fn length(&mut self) -> Result<usize, DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > self.remaining() {
            return Err(self.truncated(len));
        }
        Ok(len)
    }

    /// Reads a varint-length-prefixed UTF-8 string.
    pub(crate) fn str(&mut self) -> Result<&'a str, DecodeError> {
        let len = self.length()?;
        let start = self.pos;
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map_err(|e| DecodeError::InvalidUtf8 {
            offset: start + e.valid_up_to(),
        })
    }

    /// Reads a varint element count whose elements each take at least
    /// `min_item_bytes`, and checks the input can hold them. Returns the count
    /// and a safe capacity to preallocate.
    pub(crate) fn count(&mut self, min_item_bytes: usize) -> Result<(usize, usize), DecodeError> {
        let count = self.varint()?;
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        let needed = count.saturating_mul(min_item_bytes);
        if needed > self.remaining() {
            return Err(self.truncated(needed));
        }
        Ok((count, count.min(PREALLOCATE_MAX_ITEMS)))
    }

    /// Succeeds only if every byte was read.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                offset: self.pos,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_in_sequence_and_finishes() {
        let bytes = [9, 0x03, b'a', b'b', b'c', 0x81, 0x01];
        let mut reader = Reader::new(&bytes, 1);
        assert_eq!(reader.str(), Ok("abc"));
        assert_eq!(reader.varint(), Ok(129));
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn length_beyond_input_is_truncated_before_allocating() {
        // Claims u64::MAX bytes.
        let mut bytes = vec![0xff; 9];
        bytes.push(0x01);
        let mut reader = Reader::new(&bytes, 0);
        assert_eq!(
            reader.length(),
            Err(DecodeError::Truncated {
                offset: 10,
                needed: usize::MAX,
                available: 0
            })
        );
    }

    #[test]
    fn count_checks_minimum_item_size() {
        let bytes = [0x03, 0, 0, 0, 0, 0];
        assert_eq!(Reader::new(&bytes, 0).count(1), Ok((3, 3)));
        assert!(matches!(
            Reader::new(&bytes, 0).count(2),
            Err(DecodeError::Truncated {
                needed: 6,
                available: 5,
                ..
            })
        ));
    }

    #[test]
    fn count_preallocation_is_capped() {
        let mut bytes = vec![0xe8, 0x07]; // 1000
        bytes.resize(1002, 0);
        let (count, capacity) = Reader::new(&bytes, 0).count(1).unwrap();
        assert_eq!(count, 1000);
        assert_eq!(capacity, PREALLOCATE_MAX_ITEMS);
    }

    #[test]
    fn invalid_utf8_reports_absolute_offset() {
        let bytes = [0x03, b'a', 0xff, b'b'];
        let mut reader = Reader::new(&bytes, 0);
        assert_eq!(reader.str(), Err(DecodeError::InvalidUtf8 { offset: 2 }));
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let reader = Reader::new(&[1, 2, 3], 1);
        assert_eq!(
            reader.finish(),
            Err(DecodeError::TrailingBytes {
                offset: 1,
                count: 2
            })
        );
    }
}

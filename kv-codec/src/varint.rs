//! Unsigned LEB128 varints and zigzag mapping for signed integers.
//!
//! | value range            | bytes |
//! |------------------------|-------|
//! | `0 ..= 0x7f`           | 1     |
//! | `0x80 ..= 0x3fff`      | 2     |
//! | ...7 more bits per byte| ...   |
//! | up to `u64::MAX`       | 10    |
//!
//! Each byte carries 7 value bits, least significant group first; the high
//! bit (`0x80`) says another byte follows. Decoding accepts only the minimal
//! encoding (no trailing `0x00` group) and at most 10 bytes whose tenth byte is
//! `0x00` or `0x01`, so every `u64` has exactly one encoding.

use crate::error::VarintProblem;

/// The longest varint: `ceil(64 / 7)` bytes.
pub(crate) const MAX_VARINT_BYTES: usize = 10;

/// Appends the LEB128 encoding of `value` to `out`.
pub(crate) fn write(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        // Truncation to the low 7 bits is the point of the cast.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Maps a signed integer to an unsigned one so small magnitudes stay small:
/// 0 → 0, -1 → 1, 1 → 2, -2 → 3, ...
pub(crate) const fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub(crate) const fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Why [`read`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// The input ended inside the varint.
    Incomplete,
    /// The varint is malformed.
    Bad(VarintProblem),
}

/// Reads one varint from the start of `bytes`; returns it and its length.
pub(crate) fn read(bytes: &[u8]) -> Result<(u64, usize), ReadError> {
    let mut value = 0u64;
    for (index, &byte) in bytes.iter().take(MAX_VARINT_BYTES).enumerate() {
        if index == MAX_VARINT_BYTES - 1 && byte > 1 {
            return Err(ReadError::Bad(VarintProblem::Overflow));
        }
        value |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            if byte == 0 && index > 0 {
                return Err(ReadError::Bad(VarintProblem::Overlong));
            }
            return Ok((value, index + 1));
        }
    }
    // Fewer than 10 bytes, all with the continuation bit set (a tenth byte
    // with that bit is > 1 and was rejected above).
    Err(ReadError::Incomplete)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write(value, &mut out);
        out
    }

    #[test]
    fn boundaries_round_trip_with_expected_lengths() {
        let cases: [(u64, usize); 8] = [
            (0, 1),
            (0x7f, 1),
            (0x80, 2),
            (0x3fff, 2),
            (0x4000, 3),
            (u64::from(u32::MAX), 5),
            (1 << 63, 10),
            (u64::MAX, 10),
        ];
        for (value, len) in cases {
            let bytes = encoded(value);
            assert_eq!(bytes.len(), len, "length of {value:#x}");
            assert_eq!(read(&bytes), Ok((value, len)), "read of {value:#x}");
        }
    }

    #[test]
    fn rejects_overlong_overflow_and_incomplete() {
        let overlong = Err(ReadError::Bad(VarintProblem::Overlong));
        let overflow = Err(ReadError::Bad(VarintProblem::Overflow));
        assert_eq!(read(&[0x80, 0x00]), overlong);
        assert_eq!(read(&[0xff, 0x80, 0x00]), overlong);
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(read(&too_big), overflow);
        assert_eq!(read(&[0xff; 11]), overflow);
        assert_eq!(read(&[]), Err(ReadError::Incomplete));
        assert_eq!(read(&[0x80, 0x80]), Err(ReadError::Incomplete));
    }

    #[test]
    fn read_ignores_bytes_after_the_varint() {
        assert_eq!(read(&[0x05, 0xff, 0xff]), Ok((5, 1)));
    }

    #[test]
    fn zigzag_maps_small_magnitudes_to_small_codes() {
        let cases = [(0, 0), (-1, 1), (1, 2), (-2, 3), (i64::MAX, u64::MAX - 1)];
        for (signed, code) in cases {
            assert_eq!(zigzag(signed), code);
            assert_eq!(unzigzag(code), signed);
        }
        assert_eq!(zigzag(i64::MIN), u64::MAX);
        assert_eq!(unzigzag(u64::MAX), i64::MIN);
    }
}

//! The crate's one error type: why a byte string is not a valid encoded value.
//!
//! Every variant that points into the input carries `offset`, the absolute
//! byte position in the slice given to [`decode`](crate::decode) (the version
//! byte is offset 0). Callers usually react the same way to all of them (reject
//! the value), so the variants exist for diagnostics and tests, not for
//! recovery.

use thiserror::Error;

/// Why a varint could not be read (see [`DecodeError::BadVarint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintProblem {
    /// More bytes than the minimal encoding (a final `0x00` after a
    /// continuation byte). Rejected so that every value has exactly one
    /// encoding.
    Overlong,
    /// The value does not fit in 64 bits (tenth byte above `0x01`).
    Overflow,
}

impl std::fmt::Display for VarintProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VarintProblem::Overlong => "overlong encoding",
            VarintProblem::Overflow => "overflows u64",
        })
    }
}

/// A byte string that is not a valid encoded [`Value`](crate::Value).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input has no bytes at all (not even a version byte).
    #[error("empty input: no version byte")]
    Empty,
    /// The version byte names no schema this build can read.
    #[error("unknown schema version {0}")]
    UnknownVersion(u8),
    /// The input ends before a field that starts (or is announced) at `offset`.
    #[error("truncated at offset {offset}: needed {needed} bytes, {available} available")]
    Truncated {
        /// Where the missing field starts.
        offset: usize,
        /// Bytes the field needs (saturated to `usize::MAX` for absurd lengths).
        needed: usize,
        /// Bytes left in the input at `offset`.
        available: usize,
    },
    /// A string's bytes are not UTF-8; `offset` is the first bad byte.
    #[error("invalid UTF-8 at offset {offset}")]
    InvalidUtf8 {
        /// Position of the first byte that is not valid UTF-8.
        offset: usize,
    },
    /// A LEB128 varint starting at `offset` is malformed.
    #[error("bad varint at offset {offset}: {problem}")]
    BadVarint {
        /// Where the varint starts.
        offset: usize,
        /// What is wrong with it.
        problem: VarintProblem,
    },
    /// A complete value was read but bytes remain after it.
    #[error("{count} trailing bytes at offset {offset}")]
    TrailingBytes {
        /// Where the extra bytes start.
        offset: usize,
        /// How many extra bytes there are.
        count: usize,
    },
    /// A V3 array or object at `offset` is nested deeper than `max` levels.
    #[error("nesting deeper than {max} levels at offset {offset}")]
    TooDeep {
        /// Where the container that is one level too deep starts.
        offset: usize,
        /// The limit, [`MAX_DEPTH`](crate::MAX_DEPTH).
        max: usize,
    },
    /// A V3 node starts with a type tag that does not exist.
    #[error("unknown V3 type tag {tag:#04x} at offset {offset}")]
    UnknownTag {
        /// Where the tag byte is.
        offset: usize,
        /// The tag byte.
        tag: u8,
    },
    /// A V3 float is NaN or infinite, which JSON cannot represent.
    #[error("non-finite float at offset {offset}")]
    NonFiniteFloat {
        /// Where the float's tag byte is.
        offset: usize,
    },
    /// A V3 negative integer's magnitude is below `i64::MIN`.
    #[error("negative integer out of i64 range at offset {offset}")]
    IntegerOverflow {
        /// Where the integer's tag byte is.
        offset: usize,
    },
    /// A V3 object holds the same key twice.
    #[error("duplicate object key at offset {offset}")]
    DuplicateKey {
        /// Where the second occurrence of the key starts.
        offset: usize,
    },
    /// A V2 timestamp lies outside `0000-01-01 00:00:00` ..= `9999-12-31
    /// 23:59:59.999999`, so it has no canonical text form.
    #[error("timestamp {micros} µs out of range at offset {offset}")]
    TimestampOutOfRange {
        /// Where the timestamp varint starts.
        offset: usize,
        /// The decoded microseconds since the Unix epoch.
        micros: i64,
    },
}

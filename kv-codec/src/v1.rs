//! Schema V1: plain text.
//!
//! | offset | size     | field                                   |
//! |--------|----------|-----------------------------------------|
//! | 0      | 1        | version byte `0x01`                     |
//! | 1      | 1..=10   | text length in bytes, LEB128 varint     |
//! | ..     | length   | text, UTF-8                             |
//!
//! Nothing follows the text. Example: `Rafi Widya` is
//! `01 0a 52 61 66 69 20 57 69 64 79 61`.
//!
//! Frozen: this layout never changes; a new layout gets a new version byte.

use crate::error::DecodeError;
use crate::reader::Reader;
use crate::varint;

/// Appends the V1 payload (everything after the version byte).
pub(crate) fn encode(text: &str, out: &mut Vec<u8>) {
    varint::write(text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

/// Reads the V1 payload: the text, borrowed from the input.
pub(crate) fn read<'a>(reader: &mut Reader<'a>) -> Result<&'a str, DecodeError> {
    reader.str()
}

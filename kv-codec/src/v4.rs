//! Schema V4: opaque bytes.
//!
//! | offset | size     | field                                   |
//! |--------|----------|-----------------------------------------|
//! | 0      | 1        | version byte `0x04`                     |
//! | 1      | 1..=10   | byte length, LEB128 varint              |
//! | ..     | length   | the bytes, as given                     |
//!
//! Nothing follows the bytes. Example: the three bytes `ff 00 41` are
//! `04 03 ff 00 41`.
//!
//! V4 holds what is not text: [`crate::Value::from_bytes`] stores bytes
//! that are not valid UTF-8 here (RESP `SET` of binary data); bytes that are
//! text keep classifying as V1/V2/V3. The decoder accepts any bytes, so the
//! encoding stays canonical (`encode(decode(b)) == b`).
//!
//! Frozen: this layout never changes; a new layout gets a new version byte.

use crate::error::DecodeError;
use crate::reader::Reader;
use crate::varint;

/// Appends the V4 payload (everything after the version byte).
pub(crate) fn encode(bytes: &[u8], out: &mut Vec<u8>) {
    varint::write(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// Reads the V4 payload: the bytes, borrowed from the input.
pub(crate) fn read<'a>(reader: &mut Reader<'a>) -> Result<&'a [u8], DecodeError> {
    let len = reader.length()?;
    reader.take(len)
}

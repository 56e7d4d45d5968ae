//! Schema V2: an event, `{"data": <string>, "timestamp": <canonical time>}`.
//!
//! | offset | size     | field                                               |
//! |--------|----------|-----------------------------------------------------|
//! | 0      | 1        | version byte `0x02`                                 |
//! | 1      | 1..=10   | data length in bytes, LEB128 varint                 |
//! | ..     | length   | data, UTF-8                                         |
//! | ..     | 1..=10   | timestamp: microseconds since 1970-01-01 00:00:00 UTC wall clock, zigzag then LEB128 varint |
//!
//! Nothing follows the timestamp. The decoder rejects a timestamp outside
//! `0000-01-01 00:00:00` ..= `9999-12-31 23:59:59.999999`
//! ([`Timestamp::MIN`] ..= [`Timestamp::MAX`]), which has no canonical text.
//! Example: `{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}` is
//! `02 0e 75 73 65 72 3a 31 30 31 20 6c 6f 67 69 6e 80 e8 f8 bc d2 89 9c 06`.
//!
//! Frozen: this layout never changes; a new layout gets a new version byte.

use crate::error::DecodeError;
use crate::reader::Reader;
use crate::timestamp::Timestamp;
use crate::varint;

/// Appends the V2 payload (everything after the version byte).
pub(crate) fn encode(data: &str, timestamp: Timestamp, out: &mut Vec<u8>) {
    varint::write(data.len() as u64, out);
    out.extend_from_slice(data.as_bytes());
    varint::write(varint::zigzag(timestamp.micros()), out);
}

/// Reads the V2 payload: the data, borrowed from the input, and the time.
pub(crate) fn read<'a>(reader: &mut Reader<'a>) -> Result<(&'a str, Timestamp), DecodeError> {
    let data = reader.str()?;
    let offset = reader.offset();
    let micros = varint::unzigzag(reader.varint()?);
    let timestamp = Timestamp::from_micros(micros)
        .ok_or(DecodeError::TimestampOutOfRange { offset, micros })?;
    Ok((data, timestamp))
}

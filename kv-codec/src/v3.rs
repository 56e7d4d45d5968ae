//! Schema V3: any JSON value, as a compact binary tree (not JSON text).
//!
//! | offset | size   | field                          |
//! |--------|--------|--------------------------------|
//! | 0      | 1      | version byte `0x03`            |
//! | 1      | ..     | one node, the root             |
//!
//! A node is a one-byte type tag followed by its body:
//!
//! | tag    | node            | body                                                       |
//! |--------|-----------------|------------------------------------------------------------|
//! | `0x00` | `null`          | none                                                       |
//! | `0x01` | `false`         | none                                                       |
//! | `0x02` | `true`          | none                                                       |
//! | `0x03` | integer `n ≥ 0` | `n` as LEB128 varint (u64)                                 |
//! | `0x04` | integer `n < 0` | `-(n + 1)` as LEB128 varint (fits i64: `n ≥ i64::MIN`)     |
//! | `0x05` | float           | 8 bytes, IEEE 754 binary64, little-endian; finite only     |
//! | `0x06` | string          | byte length varint, then UTF-8                             |
//! | `0x07` | array           | element count varint, then that many nodes                 |
//! | `0x08` | object          | member count varint, then per member: key byte length varint, key UTF-8, value node |
//!
//! Object members keep their order; keys are unique (the decoder rejects a
//! repeated key). Integers are whatever `serde_json` parsed as an integer
//! (`-2^63 ..= 2^64-1`); every other number is an f64 (`1.0` stays a float,
//! `2022` stays an integer). Nesting is limited to [`MAX_DEPTH`] arrays and
//! objects. Together with the minimal varints this makes the encoding
//! canonical: re-encoding any decoded value gives back the same bytes.
//!
//! Example: `{"jurusan": "Sistem Informasi", "angkatan": 2022}` is
//! `03 08 02 07 6a 75 72 75 73 61 6e 06 10 53 69 73 74 65 6d 20 49 6e 66 6f
//! 72 6d 61 73 69 08 61 6e 67 6b 61 74 61 6e 03 e6 0f`.
//!
//! Frozen: this layout never changes; a new layout gets a new version byte.

use serde_json::{Number, Value as Json};

use crate::MAX_DEPTH;
use crate::error::DecodeError;
use crate::reader::Reader;
use crate::varint;
use crate::walk::{Leaf, Sink};

/// The node type tags.
mod tag {
    pub(super) const NULL: u8 = 0x00;
    pub(super) const FALSE: u8 = 0x01;
    pub(super) const TRUE: u8 = 0x02;
    pub(super) const UINT: u8 = 0x03;
    pub(super) const NEGINT: u8 = 0x04;
    pub(super) const FLOAT: u8 = 0x05;
    pub(super) const STRING: u8 = 0x06;
    pub(super) const ARRAY: u8 = 0x07;
    pub(super) const OBJECT: u8 = 0x08;
}

/// Fewest bytes an array element takes (a tag).
const MIN_ELEMENT_BYTES: usize = 1;
/// Fewest bytes an object member takes (key length varint and a value tag).
const MIN_MEMBER_BYTES: usize = 2;

/// Appends the V3 payload (everything after the version byte).
///
/// Never fails. A value nested deeper than [`MAX_DEPTH`] is encoded but will
/// be rejected by [`decode`]; classification never produces one.
pub(crate) fn encode(value: &Json, out: &mut Vec<u8>) {
    match value {
        Json::Null => out.push(tag::NULL),
        Json::Bool(false) => out.push(tag::FALSE),
        Json::Bool(true) => out.push(tag::TRUE),
        Json::Number(number) => encode_number(number, out),
        Json::String(text) => {
            out.push(tag::STRING);
            encode_str(text, out);
        }
        Json::Array(items) => {
            out.push(tag::ARRAY);
            varint::write(items.len() as u64, out);
            items.iter().for_each(|item| encode(item, out));
        }
        Json::Object(members) => {
            out.push(tag::OBJECT);
            varint::write(members.len() as u64, out);
            for (key, item) in members {
                encode_str(key, out);
                encode(item, out);
            }
        }
    }
}

fn encode_str(text: &str, out: &mut Vec<u8>) {
    varint::write(text.len() as u64, out);
    out.extend_from_slice(text.as_bytes());
}

fn encode_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(n) = number.as_u64() {
        out.push(tag::UINT);
        varint::write(n, out);
    } else if let Some(n) = number.as_i64() {
        // n < 0 here, and !n == -(n + 1) in two's complement.
        out.push(tag::NEGINT);
        varint::write(!n as u64, out);
    } else {
        // Without serde_json's `arbitrary_precision` feature (a unit test
        // checks it is off) every other Number is a finite f64.
        let float = number.as_f64().filter(|f| f.is_finite()).unwrap_or(0.0);
        out.push(tag::FLOAT);
        out.extend_from_slice(&float.to_le_bytes());
    }
}

/// Walks the V3 payload, handing what it reads to `sink`.
pub(crate) fn walk<'a, S: Sink<'a>>(
    reader: &mut Reader<'a>,
    sink: &mut S,
) -> Result<S::Node, DecodeError> {
    node(reader, sink, 0)
}

/// Walks one node; `depth` is the number of containers around it.
fn node<'a, S: Sink<'a>>(
    reader: &mut Reader<'a>,
    sink: &mut S,
    depth: usize,
) -> Result<S::Node, DecodeError> {
    let offset = reader.offset();
    let leaf = match reader.byte()? {
        tag::NULL => Leaf::Null,
        tag::FALSE => Leaf::Bool(false),
        tag::TRUE => Leaf::Bool(true),
        tag::UINT => Leaf::Number(reader.varint()?.into()),
        tag::NEGINT => Leaf::Number(negint(reader, offset)?),
        tag::FLOAT => Leaf::Number(float(reader, offset)?),
        tag::STRING => Leaf::String(reader.str()?),
        tag::ARRAY => return array(reader, sink, enter(depth, offset)?),
        tag::OBJECT => return object(reader, sink, enter(depth, offset)?),
        tag => return Err(DecodeError::UnknownTag { offset, tag }),
    };
    Ok(sink.leaf(leaf))
}

/// The depth inside a container that starts at `offset`, if allowed.
fn enter(depth: usize, offset: usize) -> Result<usize, DecodeError> {
    if depth >= MAX_DEPTH {
        return Err(DecodeError::TooDeep {
            offset,
            max: MAX_DEPTH,
        });
    }
    Ok(depth + 1)
}

fn negint(reader: &mut Reader<'_>, offset: usize) -> Result<Number, DecodeError> {
    let magnitude =
        i64::try_from(reader.varint()?).map_err(|_| DecodeError::IntegerOverflow { offset })?;
    Ok((!magnitude).into())
}

fn float(reader: &mut Reader<'_>, offset: usize) -> Result<Number, DecodeError> {
    let float = f64::from_le_bytes(reader.array()?);
    Number::from_f64(float).ok_or(DecodeError::NonFiniteFloat { offset })
}

fn array<'a, S: Sink<'a>>(
    reader: &mut Reader<'a>,
    sink: &mut S,
    depth: usize,
) -> Result<S::Node, DecodeError> {
    let (count, capacity) = reader.count(MIN_ELEMENT_BYTES)?;
    let mut items = sink.start_array(capacity);
    for _ in 0..count {
        let item = node(reader, sink, depth)?;
        sink.push(&mut items, item);
    }
    Ok(sink.end_array(items))
}

fn object<'a, S: Sink<'a>>(
    reader: &mut Reader<'a>,
    sink: &mut S,
    depth: usize,
) -> Result<S::Node, DecodeError> {
    let (count, capacity) = reader.count(MIN_MEMBER_BYTES)?;
    let mut members = sink.start_object(count, capacity);
    match (0..count).try_for_each(|_| member(reader, sink, &mut members, depth)) {
        Ok(()) => sink.end_object(members),
        Err(error) => Err(sink.abandon_object(members, error)),
    }
}

/// Walks one object member: key, value, then the duplicate-key check.
fn member<'a, S: Sink<'a>>(
    reader: &mut Reader<'a>,
    sink: &mut S,
    members: &mut S::Object,
    depth: usize,
) -> Result<(), DecodeError> {
    let offset = reader.offset();
    let key = reader.str()?;
    let item = node(reader, sink, depth)?;
    sink.insert(members, offset, key, item)
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_json_arbitrary_precision_is_off() {
        // With that feature, Numbers could hold values that are neither
        // i64/u64 nor finite f64, and encode_number would lose them.
        assert!(serde_json::from_str::<serde_json::Number>("1e400").is_err());
    }
}

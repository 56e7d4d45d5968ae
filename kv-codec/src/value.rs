//! [`Value`], the value model, and [`Schema`], its version tags.

use std::fmt;

use crate::error::DecodeError;
use crate::timestamp::Timestamp;
use crate::walk::{Build, walk};
use crate::{classify, render, v1, v2, v3, v4};

/// A schema version: the first byte of every encoded value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Schema {
    /// Plain text ([`Value::Text`]), version byte `0x01`.
    V1 = 1,
    /// Event with data and timestamp ([`Value::Event`]), version byte `0x02`.
    V2 = 2,
    /// JSON tree ([`Value::Json`]), version byte `0x03`.
    V3 = 3,
    /// Opaque bytes ([`Value::Bytes`]), version byte `0x04`.
    V4 = 4,
}

impl Schema {
    /// Every schema this build reads, oldest first.
    pub const ALL: [Schema; 4] = [Schema::V1, Schema::V2, Schema::V3, Schema::V4];

    /// The version byte that starts an encoding in this schema.
    pub const fn version(self) -> u8 {
        self as u8
    }

    /// The schema a version byte names, if this build knows it.
    pub const fn from_version(version: u8) -> Option<Schema> {
        match version {
            1 => Some(Schema::V1),
            2 => Some(Schema::V2),
            3 => Some(Schema::V3),
            4 => Some(Schema::V4),
            _ => None,
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}", self.version())
    }
}

/// A stored value in one of the four schemas.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Schema V1: any text that is not a JSON object or array.
    Text(String),
    /// Schema V2: an event `{"data": ..., "timestamp": "YYYY-MM-DD HH:MM:SS"}`.
    Event {
        /// The event payload.
        data: String,
        /// When the event happened.
        timestamp: Timestamp,
    },
    /// Schema V3: a JSON document; object members keep their order.
    /// Classification only produces objects and arrays here, but the codec
    /// round-trips any JSON value.
    Json(serde_json::Value),
    /// Schema V4: bytes that are not text (not valid UTF-8), kept as given.
    Bytes(Vec<u8>),
}

impl Value {
    /// Classifies user input into the schema that stores it without loss
    /// (see the [crate docs](crate#classification)).
    pub fn from_user_input(input: &str) -> Value {
        classify::classify(input)
    }

    /// Classifies raw bytes (a RESP `SET`): valid UTF-8 classifies exactly
    /// as [`Value::from_user_input`] does; anything else is V4
    /// [`Value::Bytes`].
    pub fn from_bytes(input: &[u8]) -> Value {
        match std::str::from_utf8(input) {
            Ok(text) => classify::classify(text),
            Err(_) => Value::Bytes(input.to_vec()),
        }
    }

    /// The bytes a byte-oriented client (RESP `GET`) gets back: the text of
    /// V1 and the bytes of V4 as stored, the display text of V2 and V3.
    /// For a value from [`Value::from_bytes`] this is the input for V1, V2
    /// and V4, and JSON equal to the input for V3.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Value::Text(text) => text.into_bytes(),
            Value::Bytes(bytes) => bytes,
            other => other.render().into_bytes(),
        }
    }

    /// The display text (what `get` shows). For a value from
    /// [`Value::from_user_input`] this is the input itself for V1 and V2, and
    /// JSON equal to the input for V3. V4 bytes are shown the way
    /// `redis-cli` shows binary strings: in double quotes, with `\\`, `\"`,
    /// `\n`, `\r`, `\t`, `\a`, `\b` escaped, printable ASCII as is and every
    /// other byte as `\xHH`.
    pub fn render(&self) -> String {
        /// `{"data": "", "timestamp": "YYYY-MM-DD HH:MM:SS.ffffff"}`
        const EVENT_FRAME: usize = 55;
        const JSON_GUESS: usize = 128;
        let capacity = match self {
            Value::Text(text) => return text.clone(),
            Value::Event { data, .. } => EVENT_FRAME + data.len(),
            Value::Json(_) => JSON_GUESS,
            Value::Bytes(bytes) => 2 + bytes.len() * 4,
        };
        let mut out = String::with_capacity(capacity);
        // Writing to a String cannot fail and the renderers add no errors of
        // their own (the same reasoning as `ToString`, without its unwrap).
        let _ = self.write_display(&mut out);
        out
    }

    /// The schema this value is stored in.
    pub fn schema(&self) -> Schema {
        match self {
            Value::Text(_) => Schema::V1,
            Value::Event { .. } => Schema::V2,
            Value::Json(_) => Schema::V3,
            Value::Bytes(_) => Schema::V4,
        }
    }

    /// Encodes this value: its version byte, then the schema's payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.size_hint());
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.schema().version());
        match self {
            Value::Text(text) => v1::encode(text, out),
            Value::Event { data, timestamp } => v2::encode(data, *timestamp, out),
            Value::Json(json) => v3::encode(json, out),
            Value::Bytes(bytes) => v4::encode(bytes, out),
        }
    }

    /// Writes the display text to any sink (monomorphized, so rendering to a
    /// `String` avoids the formatter's dynamic dispatch).
    fn write_display<W: fmt::Write + ?Sized>(&self, out: &mut W) -> fmt::Result {
        match self {
            Value::Text(text) => out.write_str(text),
            Value::Event { data, timestamp } => render::event(data, *timestamp, out),
            Value::Json(json) => render::json(json, out),
            Value::Bytes(bytes) => render::bytes(bytes, out),
        }
    }

    /// A guess at the encoded size, to allocate once in the common case.
    fn size_hint(&self) -> usize {
        const VERSION_AND_VARINTS: usize = 1 + 2 * crate::varint::MAX_VARINT_BYTES;
        const JSON_GUESS: usize = 64;
        match self {
            Value::Text(text) => VERSION_AND_VARINTS + text.len(),
            Value::Event { data, .. } => VERSION_AND_VARINTS + data.len(),
            Value::Json(_) => JSON_GUESS,
            Value::Bytes(bytes) => VERSION_AND_VARINTS + bytes.len(),
        }
    }

    /// Decodes one value that fills `bytes` exactly.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
        walk(bytes, &mut Build)
    }
}

/// Writes the display text, [`Value::render`].
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_display(f)
    }
}

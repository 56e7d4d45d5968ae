//! kv-codec: the value model of `kv` and its versioned binary schemas.
//!
//! A value a user `put`s is one of four kinds, each stored in its own schema:
//!
//! | schema | [`Value`] variant      | what                                              |
//! |--------|------------------------|---------------------------------------------------|
//! | V1     | [`Value::Text`]        | plain text: `Rafi Widya`                          |
//! | V2     | [`Value::Event`]       | `{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}`, the time kept as an integer |
//! | V3     | [`Value::Json`]        | any other JSON object or array, as a binary tree  |
//! | V4     | [`Value::Bytes`]       | bytes that are not UTF-8 text (a RESP `SET` of binary data), opaque |
//!
//! This crate owns the classification of input text into those kinds, the
//! binary encoding (one version byte, then the schema's payload), decoding
//! with typed errors, and the display text. It knows nothing about keys,
//! storage or the network: `kv-storage` stores the bytes opaquely, `kv-node`
//! calls [`validate`] on `put`.
//!
//! # Data flow and modules
//!
//! - `classify`: input text → [`Value`] ([`Value::from_user_input`]); raw
//!   bytes → [`Value`] ([`Value::from_bytes`]: UTF-8 as text, the rest V4).
//! - `value`: [`Value`] and [`Schema`]; [`encode`] writes the version byte and
//!   dispatches to `v1`, `v2`, `v3`, `v4`, which each document their byte layout
//!   (also collected in `docs/schema-evolution.md`).
//! - `varint` (LEB128, zigzag) and `reader` (a bounded cursor over untrusted
//!   bytes) underlie the schemas; [`decode`] runs them in reverse.
//! - `walk`: the one walk over an encoding that applies every decoding rule,
//!   with two sinks: one builds the [`Value`] ([`decode`]), the other builds
//!   nothing ([`validate`]), so the two cannot disagree.
//! - `timestamp`: [`Timestamp`], the V2 time and its canonical text form.
//! - `render`: [`Value`] → display text ([`Value::render`]), in the style of
//!   the original Python system: `{"jurusan": "Sistem Informasi", "angkatan": 2022}`.
//! - `error`: [`DecodeError`].
//!
//! # Classification
//!
//! Classification is lossless by construction. Input becomes V2 only if it is
//! a JSON object with exactly the members `"data"` then `"timestamp"`, both
//! strings, the timestamp canonical (`YYYY-MM-DD HH:MM:SS` with an optional
//! 1–6 digit fraction without trailing zeros), *and* rendering that event gives
//! back the input exactly. Any other JSON object or array is V3. Everything
//! else (plain text, JSON scalars like `"x"` or `42`, invalid JSON such as
//! `{"a": 1`) is V1, kept as is.
//!
//! # Invariants
//!
//! - For every string `s`, `v = Value::from_user_input(s)` satisfies
//!   `decode(&encode(&v)) == Ok(v)`; `v.render() == s` for V1 and V2; for V3,
//!   `v.render()` parses to the same `serde_json::Value` as `s` (same key
//!   order; integers in `-2^63 ..= 2^64-1` exactly, other numbers as the f64
//!   serde_json parses them to, e.g. `1.0` stays a float, `-0` becomes `-0.0`;
//!   for a repeated key the last value wins, at the first key's position).
//! - Encoding is infallible and canonical: every value has one encoding, and
//!   whenever `decode(b)` succeeds, `encode(&decode(b)?) == b`.
//! - Decoding never panics on any input, never allocates more than a constant
//!   factor of the input size, and bounds recursion by [`MAX_DEPTH`].
//! - Old schemas are frozen: their decoders never change and golden files in
//!   `tests/golden/` are decoded by a test forever. A new layout gets a new
//!   version byte.
//!
//! # Not here
//!
//! No compression, no checksums (storage records carry CRCs), no schema
//! negotiation, no I/O.
//!
//! # Example
//!
//! ```
//! use kv_codec::{Schema, Value, decode, encode};
//!
//! let input = r#"{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}"#;
//! let value = Value::from_user_input(input);
//! assert_eq!(value.schema(), Schema::V2);
//!
//! let bytes = encode(&value);
//! assert_eq!(bytes[0], 2); // version byte
//! assert!(bytes.len() < input.len());
//!
//! let back = decode(&bytes)?;
//! assert_eq!(back, value);
//! assert_eq!(back.render(), input);
//! # Ok::<(), kv_codec::DecodeError>(())
//! ```

// Library code never panics on input: no unwrap/expect, no unchecked
// indexing (exceptions carry `#[expect(..., reason = "...")]`). Tests may.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod classify;
mod error;
mod reader;
mod render;
mod timestamp;
mod v1;
mod v2;
mod v3;
mod v4;
mod value;
mod varint;
mod walk;

pub use error::{DecodeError, VarintProblem};
pub use timestamp::Timestamp;
pub use value::{Schema, Value};

/// Most arrays and objects a V3 value may nest (the root container is level
/// 1). Decoding rejects deeper input with [`DecodeError::TooDeep`], so hostile
/// bytes cannot exhaust the stack. Classification never produces deeper
/// values: `serde_json` itself refuses input nested deeper than 127.
pub const MAX_DEPTH: usize = 128;

/// Encodes `value`: its version byte, then the schema's payload.
pub fn encode(value: &Value) -> Vec<u8> {
    value.encode()
}

/// Decodes one value that fills `bytes` exactly.
///
/// # Errors
///
/// Any [`DecodeError`]: empty input, unknown version byte, truncated or
/// garbled payload, or bytes left over after the value.
pub fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    Value::decode(bytes)
}

/// Where the client's own bytes of an encoded V1 (text) or V4 (bytes) value
/// sit in `bytes`: exactly what [`Value::into_bytes`] of [`decode`]`(bytes)`
/// returns, found without building the value, so a server can answer with
/// a slice of what it stored. `None` for V2 and V3 values (their client form
/// is rendered) and for anything [`decode`] rejects.
///
/// ```
/// use kv_codec::{Value, encode, verbatim};
/// let stored = encode(&Value::Text("Rafi Widya".into()));
/// let range = verbatim(&stored).unwrap();
/// assert_eq!(&stored[range], b"Rafi Widya");
/// assert_eq!(verbatim(&encode(&Value::from_user_input("[1, 2]"))), None);
/// ```
pub fn verbatim(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let (&version, _) = bytes.split_first()?;
    let mut reader = reader::Reader::new(bytes, 1);
    let len = match Schema::from_version(version)? {
        Schema::V1 => v1::read(&mut reader).ok()?.len(),
        Schema::V4 => v4::read(&mut reader).ok()?.len(),
        Schema::V2 | Schema::V3 => return None,
    };
    reader.finish().ok()?;
    Some(bytes.len() - len..bytes.len())
}

/// Checks that `bytes` is a valid encoded value and returns its schema.
///
/// Applies exactly the checks of [`decode`], by the same code (one walk over
/// the bytes, which `decode` uses to build the value and this function to
/// build nothing), so it accepts exactly what `decode` accepts and fails with
/// the same [`DecodeError`]. It allocates nothing for V1, V2 and V4 values
/// and for V3 values whose objects have at most 16 members; the keys of
/// larger objects go on one scratch stack (slices of `bytes`), so duplicate
/// keys are found in `n log n`. Its cost is linear in the input otherwise.
///
/// # Errors
///
/// The same as [`decode`].
pub fn validate(bytes: &[u8]) -> Result<Schema, DecodeError> {
    walk::walk(bytes, &mut walk::Check::default())
}

//! Writes the partition leader decides atomically: the framed messages
//! behind RESP `SET … NX|XX|GET`, `GETSET` and `INCRBY`.
//!
//! A node that does not lead the key's partition forwards the whole
//! operation (not a read followed by a write), so the read, the decision and
//! the write happen under one lock at the leader. Layouts, after the common
//! type byte and request id:
//!
//! | type | message     | fields |
//! |------|-------------|--------|
//! | 0x30 | Conditional | op: u8 (0 set, 1 incr by), key: bytes, then for set: value: bytes, when: u8 (0 always, 1 if absent, 2 if present), get old: bool, ttl: u8 (0 clear, 1 keep, 2 after) and for 2 ttl ms: u64; for incr by: delta: i64 |
//!
//! An increment keeps the key's expiry, as Redis's `INCR` does; a set
//! clears it unless told to keep it (`KEEPTTL`) or to set one (`EX`/`PX`).
//! | 0xB0 | Applied     | partition: u32, written: bool, old: opt bytes (encoded value, only when asked for) |
//! | 0xB1 | Counter     | partition: u32, value: i64 (the new value) |

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{WireReader, WireWrite};
use crate::error::ProtocolError;

/// When a conditional set writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetWhen {
    /// Always (plain `SET … GET`, `GETSET`).
    Always,
    /// Only when the key is absent (`NX`).
    IfAbsent,
    /// Only when the key exists (`XX`).
    IfPresent,
}

/// What a conditional set does to the key's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTtl {
    /// The key no longer expires (a plain `SET`).
    Clear,
    /// The key keeps its expiry, if any (`KEEPTTL`).
    Keep,
    /// The key expires this long after the leader writes it (`EX`/`PX`).
    After(Duration),
}

/// An operation the leader reads, decides and writes under one lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    /// Set `key` to `value` if `when` allows; return the old encoded value
    /// when `get_old`.
    Set {
        /// The key.
        key: Bytes,
        /// The kv-codec encoded new value.
        value: Bytes,
        /// The condition.
        when: SetWhen,
        /// Whether the reply carries the old value.
        get_old: bool,
        /// The key's expiry after the write.
        ttl: SetTtl,
    },
    /// Add `delta` to the integer stored as V1 text at `key` (absent = 0).
    IncrBy {
        /// The key.
        key: Bytes,
        /// The amount to add.
        delta: i64,
    },
}

impl Conditional {
    /// The key the operation touches.
    pub fn key(&self) -> &Bytes {
        match self {
            Conditional::Set { key, .. } | Conditional::IncrBy { key, .. } => key,
        }
    }

    pub(super) fn encode(&self, out: &mut BytesMut) {
        match self {
            Conditional::Set {
                key,
                value,
                when,
                get_old,
                ttl,
            } => {
                out.put_u8(0);
                out.put_bytes_field(key);
                out.put_bytes_field(value);
                out.put_u8(match when {
                    SetWhen::Always => 0,
                    SetWhen::IfAbsent => 1,
                    SetWhen::IfPresent => 2,
                });
                out.put_u8(u8::from(*get_old));
                put_ttl(out, *ttl);
            }
            Conditional::IncrBy { key, delta } => {
                out.put_u8(1);
                out.put_bytes_field(key);
                out.put_i64(*delta);
            }
        }
    }

    pub(super) fn decode(r: &mut WireReader) -> Result<Conditional, ProtocolError> {
        match r.u8()? {
            0 => Ok(Conditional::Set {
                key: r.bytes()?,
                value: r.bytes()?,
                when: match r.u8()? {
                    0 => SetWhen::Always,
                    1 => SetWhen::IfAbsent,
                    2 => SetWhen::IfPresent,
                    b => return Err(ProtocolError::Invalid(format!("bad set condition {b}"))),
                },
                get_old: r.bool()?,
                ttl: get_ttl(r)?,
            }),
            1 => Ok(Conditional::IncrBy {
                key: r.bytes()?,
                delta: r.u64()?.cast_signed(),
            }),
            b => Err(ProtocolError::Invalid(format!(
                "bad conditional operation {b}"
            ))),
        }
    }
}

fn put_ttl(out: &mut BytesMut, ttl: SetTtl) {
    match ttl {
        SetTtl::Clear => out.put_u8(0),
        SetTtl::Keep => out.put_u8(1),
        SetTtl::After(d) => {
            out.put_u8(2);
            out.put_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        }
    }
}

fn get_ttl(r: &mut WireReader) -> Result<SetTtl, ProtocolError> {
    match r.u8()? {
        0 => Ok(SetTtl::Clear),
        1 => Ok(SetTtl::Keep),
        2 => Ok(SetTtl::After(Duration::from_millis(r.u64()?))),
        b => Err(ProtocolError::Invalid(format!("bad set ttl {b}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::hex;
    use super::super::{Request, Response};
    use super::*;

    #[test]
    fn conditional_messages_round_trip_byte_exact() {
        let set = Request::Conditional(Conditional::Set {
            key: Bytes::from_static(b"k"),
            value: Bytes::from_static(b"\x01\x01v"),
            when: SetWhen::IfAbsent,
            get_old: true,
            ttl: SetTtl::After(Duration::from_millis(258)),
        });
        let incr = Request::Conditional(Conditional::IncrBy {
            key: Bytes::from_static(b"k"),
            delta: -2,
        });
        let cases = [
            (
                set,
                "30 00 00 00 00 00 00 00 07 00 00 00 00 01 6b 00 00 00 03 01 01 76 01 01 02 00 00 00 00 00 00 01 02",
            ),
            (
                incr,
                "30 00 00 00 00 00 00 00 07 01 00 00 00 01 6b ff ff ff ff ff ff ff fe",
            ),
        ];
        for (request, expected) in cases {
            let mut out = BytesMut::new();
            request.encode(7, &mut out);
            assert_eq!(hex(&out), expected);
            assert_eq!(Request::decode(out.freeze()).unwrap(), (7, request));
        }
        let replies = [
            Response::Applied {
                partition: 3,
                written: false,
                old: Some(Bytes::from_static(b"\x01\x00")),
            },
            Response::Applied {
                partition: 0,
                written: true,
                old: None,
            },
            Response::Counter {
                partition: 1,
                value: i64::MIN,
            },
        ];
        for reply in replies {
            let mut out = BytesMut::new();
            reply.encode(9, &mut out);
            assert_eq!(Response::decode(out.freeze()).unwrap(), (9, reply));
        }
    }

    #[test]
    fn bad_condition_bytes_are_typed_errors() {
        let frame =
            Bytes::from_static(b"\x30\0\0\0\0\0\0\0\x01\x00\0\0\0\x01k\0\0\0\0\x07\x00\x00");
        assert!(matches!(
            Request::decode(frame),
            Err(ProtocolError::Invalid(_))
        ));
        let frame = Bytes::from_static(b"\x30\0\0\0\0\0\0\0\x01\x09");
        assert!(matches!(
            Request::decode(frame),
            Err(ProtocolError::Invalid(_))
        ));
        let frame =
            Bytes::from_static(b"\x30\0\0\0\0\0\0\0\x01\x00\0\0\0\x01k\0\0\0\0\x00\x00\x03");
        assert!(matches!(
            Request::decode(frame),
            Err(ProtocolError::Invalid(_))
        ));
    }
}

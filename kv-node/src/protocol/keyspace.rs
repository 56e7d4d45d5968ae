//! Keyspace messages: listing keys (per-partition scan), multi-key reads
//! and writes, and key expiry.
//!
//! A scan is per partition: a node answers for one partition it hosts, and
//! the [`crate::ClusterClient`] walks the partitions with one opaque
//! cluster cursor (`cluster_scan`). `MGet` and `MSet` carry keys of one
//! partition (the client groups them), so an `MSet` is one
//! [`kv_storage::Store::write_batch`] at the leader: atomic per partition,
//! never across partitions. Expiry times are relative on the wire
//! (milliseconds from when the leader takes the request), so a client's
//! clock does not matter; the leader turns them into its own absolute time.
//!
//! Layouts, after the common type byte and request id:
//!
//! | type | message       | fields |
//! |------|---------------|--------|
//! | 0x50 | Scan          | partition: u32, cursor: u64 (0 = start), count: u32, prefix: bytes, values: bool, align: u8 (0-32) |
//! | 0x51 | MGet          | partition: u32, n: u32, n × key: bytes |
//! | 0x52 | MSet          | partition: u32, n: u32, n × (key: bytes, value: bytes) |
//! | 0x53 | PutTtl        | key: bytes, value: bytes, ttl ms: u64 |
//! | 0x54 | Expire        | key: bytes, ttl ms: opt u64 (absent = persist) |
//! | 0x55 | Ttl           | key: bytes |
//! | 0xD0 | ScanPage      | partition: u32, next: u64 (0 = partition done), n: u32, n × (key: bytes, value: opt bytes) |
//! | 0xD1 | Values        | partition: u32, n: u32, n × value: opt bytes |
//! | 0xD2 | ExpiryChanged | partition: u32, changed: bool |
//! | 0xD3 | Ttl           | partition: u32, state: u8 (0 no key, 1 no expiry, 2 expires), remaining ms: u64 |
//!
//! `MSet` and `PutTtl` are answered with `Written` (0x83).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kv_router::PartitionId;

use super::wire::{WireReader, WireWrite};
use crate::error::ProtocolError;

/// Type bytes of the keyspace messages.
pub(super) mod ty {
    pub const SCAN: u8 = 0x50;
    pub const MGET: u8 = 0x51;
    pub const MSET: u8 = 0x52;
    pub const PUT_TTL: u8 = 0x53;
    pub const EXPIRE: u8 = 0x54;
    pub const TTL: u8 = 0x55;
    pub const SCAN_PAGE: u8 = 0xD0;
    pub const VALUES: u8 = 0xD1;
    pub const EXPIRY_CHANGED: u8 = 0xD2;
    pub const TTL_REPLY: u8 = 0xD3;
}

/// Smallest encoded key (or value): its length.
const MIN_FIELD_BYTES: usize = 4;

/// A keyspace request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyspace {
    /// One page of a scan of one partition's live keys.
    Scan(ScanSpec),
    /// The values of several keys of one partition.
    MGet {
        /// The partition every key belongs to.
        partition: PartitionId,
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// Writes several keys of one partition atomically (leader only).
    MSet {
        /// The partition every key belongs to.
        partition: PartitionId,
        /// Keys and their kv-codec encoded values, written in order.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// Writes a key that expires `ttl` after the leader takes it.
    PutTtl {
        /// The key.
        key: Bytes,
        /// The kv-codec encoded value.
        value: Bytes,
        /// Time to live (milliseconds on the wire).
        ttl: Duration,
    },
    /// Sets (`Some`) or removes (`None`) an existing key's expiry.
    Expire {
        /// The key.
        key: Bytes,
        /// Time to live from now; `None` makes the key persistent.
        ttl: Option<Duration>,
    },
    /// A key's remaining time to live.
    Ttl {
        /// The key.
        key: Bytes,
    },
}

/// One page of one partition's scan, as asked of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSpec {
    /// The partition.
    pub partition: PartitionId,
    /// The store cursor to resume at (0 = start).
    pub cursor: u64,
    /// About how many keys to examine (the node caps it).
    pub count: u32,
    /// Only keys starting with this (empty: all).
    pub prefix: Bytes,
    /// Whether the reply carries each key's encoded value.
    pub values: bool,
    /// The page's `next` must have this many low bits zero (the node
    /// scans on until it has), so a client may pack the cursor with
    /// fewer bits without losing a position; at most 32.
    pub align: u8,
}

/// One key of a scan page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanEntry {
    /// The key.
    pub key: Bytes,
    /// Its encoded value, when asked for.
    pub value: Option<Bytes>,
}

/// A key's time to live, as a replica sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// The key does not exist (or has expired).
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this long.
    Expires(Duration),
}

/// A reply to a keyspace request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyspaceReply {
    /// One page of a partition scan.
    ScanPage {
        /// The partition.
        partition: PartitionId,
        /// Where to resume, or `None` when the partition is done.
        next: Option<u64>,
        /// The keys (with values when asked for).
        entries: Vec<ScanEntry>,
    },
    /// Reply to `MGet`: one encoded value (or `None`) per key, in order.
    Values {
        /// The partition.
        partition: PartitionId,
        /// The values.
        values: Vec<Option<Bytes>>,
    },
    /// Reply to `Expire`: whether the key existed (and so was changed).
    ExpiryChanged {
        /// The key's partition.
        partition: PartitionId,
        /// False when the key does not exist.
        changed: bool,
    },
    /// Reply to `Ttl`.
    Ttl {
        /// The key's partition.
        partition: PartitionId,
        /// The key's time to live.
        ttl: KeyTtl,
    },
}

/// Milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Keyspace {
    /// The message's type byte.
    pub(super) fn type_byte(&self) -> u8 {
        match self {
            Keyspace::Scan(_) => ty::SCAN,
            Keyspace::MGet { .. } => ty::MGET,
            Keyspace::MSet { .. } => ty::MSET,
            Keyspace::PutTtl { .. } => ty::PUT_TTL,
            Keyspace::Expire { .. } => ty::EXPIRE,
            Keyspace::Ttl { .. } => ty::TTL,
        }
    }

    /// Appends the fields after the header.
    pub(super) fn encode(&self, out: &mut BytesMut) {
        match self {
            Keyspace::Scan(spec) => {
                out.put_u32(spec.partition);
                out.put_u64(spec.cursor);
                out.put_u32(spec.count);
                out.put_bytes_field(&spec.prefix);
                out.put_u8(u8::from(spec.values));
                out.put_u8(spec.align);
            }
            Keyspace::MGet { partition, keys } => {
                out.put_u32(*partition);
                put_count(out, keys.len());
                keys.iter().for_each(|k| out.put_bytes_field(k));
            }
            Keyspace::MSet { partition, pairs } => {
                out.put_u32(*partition);
                put_count(out, pairs.len());
                for (k, v) in pairs {
                    out.put_bytes_field(k);
                    out.put_bytes_field(v);
                }
            }
            Keyspace::PutTtl { key, value, ttl } => {
                out.put_bytes_field(key);
                out.put_bytes_field(value);
                out.put_u64(millis(*ttl));
            }
            Keyspace::Expire { key, ttl } => {
                out.put_bytes_field(key);
                put_opt_u64(out, ttl.map(millis));
            }
            Keyspace::Ttl { key } => out.put_bytes_field(key),
        }
    }

    /// Decodes the fields of a message of type `ty` (one of this module's).
    pub(super) fn decode(ty: u8, r: &mut WireReader) -> Result<Keyspace, ProtocolError> {
        Ok(match ty {
            ty::SCAN => Keyspace::Scan(ScanSpec {
                partition: r.u32()?,
                cursor: r.u64()?,
                count: r.u32()?,
                prefix: r.bytes()?,
                values: r.bool()?,
                align: match r.u8()? {
                    a @ 0..=32 => a,
                    a => return Err(ProtocolError::Invalid(format!("bad scan alignment {a}"))),
                },
            }),
            ty::MGET => {
                let partition = r.u32()?;
                let n = r.count(MIN_FIELD_BYTES)?;
                let keys = (0..n).map(|_| r.bytes()).collect::<Result<_, _>>()?;
                Keyspace::MGet { partition, keys }
            }
            ty::MSET => {
                let partition = r.u32()?;
                let n = r.count(2 * MIN_FIELD_BYTES)?;
                let pairs = (0..n)
                    .map(|_| Ok((r.bytes()?, r.bytes()?)))
                    .collect::<Result<_, ProtocolError>>()?;
                Keyspace::MSet { partition, pairs }
            }
            ty::PUT_TTL => Keyspace::PutTtl {
                key: r.bytes()?,
                value: r.bytes()?,
                ttl: Duration::from_millis(r.u64()?),
            },
            ty::EXPIRE => Keyspace::Expire {
                key: r.bytes()?,
                ttl: get_opt_u64(r)?.map(Duration::from_millis),
            },
            ty::TTL => Keyspace::Ttl { key: r.bytes()? },
            other => return Err(ProtocolError::UnknownMessage(other)),
        })
    }
}

impl KeyspaceReply {
    /// The message's type byte.
    pub(super) fn type_byte(&self) -> u8 {
        match self {
            KeyspaceReply::ScanPage { .. } => ty::SCAN_PAGE,
            KeyspaceReply::Values { .. } => ty::VALUES,
            KeyspaceReply::ExpiryChanged { .. } => ty::EXPIRY_CHANGED,
            KeyspaceReply::Ttl { .. } => ty::TTL_REPLY,
        }
    }

    /// Appends the fields after the header.
    pub(super) fn encode(&self, out: &mut BytesMut) {
        match self {
            KeyspaceReply::ScanPage {
                partition,
                next,
                entries,
            } => {
                out.put_u32(*partition);
                out.put_u64(next.unwrap_or(0));
                put_count(out, entries.len());
                for e in entries {
                    out.put_bytes_field(&e.key);
                    out.put_opt_bytes(e.value.as_deref());
                }
            }
            KeyspaceReply::Values { partition, values } => {
                out.put_u32(*partition);
                put_count(out, values.len());
                values.iter().for_each(|v| out.put_opt_bytes(v.as_deref()));
            }
            KeyspaceReply::ExpiryChanged { partition, changed } => {
                out.put_u32(*partition);
                out.put_u8(u8::from(*changed));
            }
            KeyspaceReply::Ttl { partition, ttl } => {
                out.put_u32(*partition);
                let (state, ms) = match ttl {
                    KeyTtl::Missing => (0, 0),
                    KeyTtl::Persistent => (1, 0),
                    KeyTtl::Expires(d) => (2, millis(*d)),
                };
                out.put_u8(state);
                out.put_u64(ms);
            }
        }
    }

    /// Decodes the fields of a reply of type `ty` (one of this module's).
    pub(super) fn decode(ty: u8, r: &mut WireReader) -> Result<KeyspaceReply, ProtocolError> {
        Ok(match ty {
            ty::SCAN_PAGE => {
                let partition = r.u32()?;
                let next = Some(r.u64()?).filter(|&n| n != 0);
                let n = r.count(MIN_FIELD_BYTES + 1)?;
                let entries = (0..n)
                    .map(|_| {
                        Ok(ScanEntry {
                            key: r.bytes()?,
                            value: r.opt_bytes()?,
                        })
                    })
                    .collect::<Result<_, ProtocolError>>()?;
                KeyspaceReply::ScanPage {
                    partition,
                    next,
                    entries,
                }
            }
            ty::VALUES => {
                let partition = r.u32()?;
                let n = r.count(1)?;
                let values = (0..n).map(|_| r.opt_bytes()).collect::<Result<_, _>>()?;
                KeyspaceReply::Values { partition, values }
            }
            ty::EXPIRY_CHANGED => KeyspaceReply::ExpiryChanged {
                partition: r.u32()?,
                changed: r.bool()?,
            },
            ty::TTL_REPLY => KeyspaceReply::Ttl {
                partition: r.u32()?,
                ttl: get_ttl(r)?,
            },
            other => return Err(ProtocolError::UnknownMessage(other)),
        })
    }
}

fn get_ttl(r: &mut WireReader) -> Result<KeyTtl, ProtocolError> {
    let state = r.u8()?;
    let ms = r.u64()?;
    match state {
        0 => Ok(KeyTtl::Missing),
        1 => Ok(KeyTtl::Persistent),
        2 => Ok(KeyTtl::Expires(Duration::from_millis(ms))),
        b => Err(ProtocolError::Invalid(format!("bad ttl state {b}"))),
    }
}

fn put_count(out: &mut BytesMut, n: usize) {
    out.put_u32(u32::try_from(n).unwrap_or(u32::MAX));
}

fn put_opt_u64(out: &mut BytesMut, v: Option<u64>) {
    match v {
        Some(v) => {
            out.put_u8(1);
            out.put_u64(v);
        }
        None => out.put_u8(0),
    }
}

fn get_opt_u64(r: &mut WireReader) -> Result<Option<u64>, ProtocolError> {
    if r.bool()? {
        Ok(Some(r.u64()?))
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::hex;
    use super::super::{Request, Response};
    use super::*;

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn keyspace_requests_round_trip_byte_exact() {
        let cases = [
            (
                Keyspace::Scan(ScanSpec {
                    partition: 2,
                    cursor: 0x0102,
                    count: 10,
                    prefix: b(b"u:"),
                    values: true,
                    align: 2,
                }),
                "50 00 00 00 00 00 00 00 07 00 00 00 02 00 00 00 00 00 00 01 02 00 00 00 0a 00 00 00 02 75 3a 01 02",
            ),
            (
                Keyspace::MGet {
                    partition: 1,
                    keys: vec![b(b"a"), b(b"bc")],
                },
                "51 00 00 00 00 00 00 00 07 00 00 00 01 00 00 00 02 00 00 00 01 61 00 00 00 02 62 63",
            ),
            (
                Keyspace::MSet {
                    partition: 0,
                    pairs: vec![(b(b"a"), b(b"\x01\x01v"))],
                },
                "52 00 00 00 00 00 00 00 07 00 00 00 00 00 00 00 01 00 00 00 01 61 00 00 00 03 01 01 76",
            ),
            (
                Keyspace::PutTtl {
                    key: b(b"k"),
                    value: b(b"\x01"),
                    ttl: Duration::from_millis(1500),
                },
                "53 00 00 00 00 00 00 00 07 00 00 00 01 6b 00 00 00 01 01 00 00 00 00 00 00 05 dc",
            ),
            (
                Keyspace::Expire {
                    key: b(b"k"),
                    ttl: Some(Duration::from_secs(10)),
                },
                "54 00 00 00 00 00 00 00 07 00 00 00 01 6b 01 00 00 00 00 00 00 27 10",
            ),
            (
                Keyspace::Expire {
                    key: b(b"k"),
                    ttl: None,
                },
                "54 00 00 00 00 00 00 00 07 00 00 00 01 6b 00",
            ),
            (
                Keyspace::Ttl { key: b(b"k") },
                "55 00 00 00 00 00 00 00 07 00 00 00 01 6b",
            ),
        ];
        for (message, expected) in cases {
            let request = Request::Keyspace(message);
            let mut out = BytesMut::new();
            request.encode(7, &mut out);
            assert_eq!(hex(&out), expected, "{request:?}");
            assert_eq!(Request::decode(out.freeze()).unwrap(), (7, request));
        }
    }

    #[test]
    fn keyspace_replies_round_trip_byte_exact() {
        let cases = [
            (
                KeyspaceReply::ScanPage {
                    partition: 1,
                    next: Some(9),
                    entries: vec![
                        ScanEntry {
                            key: b(b"a"),
                            value: None,
                        },
                        ScanEntry {
                            key: b(b"b"),
                            value: Some(b(b"\x01")),
                        },
                    ],
                },
                "d0 00 00 00 00 00 00 00 05 00 00 00 01 00 00 00 00 00 00 00 09 00 00 00 02 00 00 00 01 61 00 00 00 00 01 62 01 00 00 00 01 01",
            ),
            (
                KeyspaceReply::ScanPage {
                    partition: 0,
                    next: None,
                    entries: vec![],
                },
                "d0 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
            ),
            (
                KeyspaceReply::Values {
                    partition: 3,
                    values: vec![None, Some(b(b"\x02"))],
                },
                "d1 00 00 00 00 00 00 00 05 00 00 00 03 00 00 00 02 00 01 00 00 00 01 02",
            ),
            (
                KeyspaceReply::ExpiryChanged {
                    partition: 3,
                    changed: true,
                },
                "d2 00 00 00 00 00 00 00 05 00 00 00 03 01",
            ),
            (
                KeyspaceReply::Ttl {
                    partition: 3,
                    ttl: KeyTtl::Expires(Duration::from_millis(258)),
                },
                "d3 00 00 00 00 00 00 00 05 00 00 00 03 02 00 00 00 00 00 00 01 02",
            ),
            (
                KeyspaceReply::Ttl {
                    partition: 3,
                    ttl: KeyTtl::Missing,
                },
                "d3 00 00 00 00 00 00 00 05 00 00 00 03 00 00 00 00 00 00 00 00 00",
            ),
        ];
        for (message, expected) in cases {
            let reply = Response::Keyspace(message);
            let mut out = BytesMut::new();
            reply.encode(5, &mut out);
            assert_eq!(hex(&out), expected, "{reply:?}");
            assert_eq!(Response::decode(out.freeze()).unwrap(), (5, reply));
        }
    }

    #[test]
    fn hostile_counts_and_bytes_are_typed_errors() {
        // An MGet announcing 2^32-1 keys in a frame holding none.
        let frame = b(b"\x51\0\0\0\0\0\0\0\x01\0\0\0\0\xff\xff\xff\xff");
        assert!(matches!(
            Request::decode(frame),
            Err(ProtocolError::Truncated { .. })
        ));
        let bad_ttl = b(b"\xd3\0\0\0\0\0\0\0\x01\0\0\0\0\x07\0\0\0\0\0\0\0\0");
        assert!(matches!(
            Response::decode(bad_ttl),
            Err(ProtocolError::Invalid(_))
        ));
        let bad_bool = b(b"\x50\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\0\x02\0");
        assert!(matches!(
            Request::decode(bad_bool),
            Err(ProtocolError::Invalid(_))
        ));
        let bad_align =
            b(b"\x50\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\0\0\0\0\x00\x21");
        assert!(matches!(
            Request::decode(bad_align),
            Err(ProtocolError::Invalid(_))
        ));
        let unknown = b(b"\x5f\0\0\0\0\0\0\0\x01");
        assert!(matches!(
            Request::decode(unknown),
            Err(ProtocolError::UnknownMessage(0x5f))
        ));
    }
}

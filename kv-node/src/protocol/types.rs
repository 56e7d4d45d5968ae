//! The history types the protocol carries, and their byte layout.
//!
//! A partition's history is a run of entries at increasing positions
//! `(epoch, lsn)`. Clients see positions in `Written` replies, operators in
//! `info`, replicas stream whole entries; so these types belong to the
//! protocol, and kv-node's client half uses them without kv-storage (the
//! `server` feature off builds no store at all).
//!
//! kv-storage has its own `Position`, `Entry` and `Location`: the store is
//! a library any project can embed and must not learn kv-node's wire, and
//! the wire must not change when the store's structs do. The two meet at
//! one place, the storage boundary (`crate::convert`, server only), as
//! field-by-field `From` conversions: no logic is written twice, and a
//! field added on one side fails to compile there until it is decided
//! whether it travels.
//!
//! Per type:
//! - [`Lsn`] and [`Epoch`] are plain integers, so they are aliases here as
//!   in kv-storage (a conversion of a `u64` into a `u64` says nothing);
//!   they fix the widths on the wire, and a storage type of another width
//!   would fail to convert.
//! - [`Position`] and [`Entry`] are separate wire types with conversions
//!   both ways (replication reads entries from one store and applies them
//!   to another, through the wire).
//! - [`Location`] is a separate wire type converted one way (the store
//!   answers, the wire reports), with its byte code here.
//!
//! Byte layout (all integers big-endian):
//!
//! | type       | bytes |
//! |------------|-------|
//! | position   | epoch u32, lsn u64 (12 bytes) |
//! | entry      | position, key (u32 length + bytes), value (u8 present, then u32 length + bytes), expiry (u8 present, then unix ms u64) |
//! | location   | u8: 0 missing, 1 hot, 2 cold |

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{WireReader, WireWrite};
use crate::error::ProtocolError;

/// Per-partition sequence number: strictly increasing, 0 = nothing written.
pub type Lsn = u64;

/// The leader epoch of a partition's history: only grows (bumped by leader
/// changes). Not the cluster map's version ([`kv_router::MapVersion`]).
pub type Epoch = u32;

/// A point in a partition's history. Ordered by epoch, then LSN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The epoch the entry was written in.
    pub epoch: Epoch,
    /// The entry's sequence number.
    pub lsn: Lsn,
}

/// One entry of a partition's history, as replicated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where it sits in the history.
    pub position: Position,
    /// The key.
    pub key: Bytes,
    /// The value, or `None` for a deletion (tombstone).
    pub value: Option<Bytes>,
    /// When the key expires (unix ms), for a value that does; a follower
    /// stores the same time. Always `None` for deletions.
    pub expiry: Option<u64>,
}

/// Where a key's value is on the replica that answered `Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// In the hot cache (memory).
    Hot,
    /// Only on disk.
    Cold,
    /// No such key.
    Missing,
}

/// Smallest encoded entry: position (12) + key length (4) + two option
/// bytes (value, expiry).
pub(super) const MIN_ENTRY_BYTES: usize = 18;

pub(super) fn put_position(out: &mut BytesMut, p: Position) {
    out.put_u32(p.epoch);
    out.put_u64(p.lsn);
}

pub(super) fn get_position(r: &mut WireReader) -> Result<Position, ProtocolError> {
    Ok(Position {
        epoch: r.u32()?,
        lsn: r.u64()?,
    })
}

pub(super) fn location_byte(location: Location) -> u8 {
    match location {
        Location::Missing => 0,
        Location::Hot => 1,
        Location::Cold => 2,
    }
}

pub(super) fn get_location(r: &mut WireReader) -> Result<Location, ProtocolError> {
    match r.u8()? {
        0 => Ok(Location::Missing),
        1 => Ok(Location::Hot),
        2 => Ok(Location::Cold),
        b => Err(ProtocolError::Invalid(format!("bad location byte {b}"))),
    }
}

pub(super) fn put_entry(out: &mut BytesMut, e: &Entry) {
    put_position(out, e.position);
    out.put_bytes_field(&e.key);
    out.put_opt_bytes(e.value.as_deref());
    match e.expiry {
        Some(at) => {
            out.put_u8(1);
            out.put_u64(at);
        }
        None => out.put_u8(0),
    }
}

pub(super) fn get_entry(r: &mut WireReader) -> Result<Entry, ProtocolError> {
    Ok(Entry {
        position: get_position(r)?,
        key: r.bytes()?,
        value: r.opt_bytes()?,
        expiry: if r.bool()? { Some(r.u64()?) } else { None },
    })
}

//! The storage boundary's type conversions: kv-storage's history types to
//! and from the protocol's ([`crate::protocol`] owns them; its `types`
//! module says why they are separate types).
//!
//! Every conversion is a field-by-field move (an entry's key and value are
//! `Bytes`, so nothing is copied). They are used only where kv-node calls
//! its stores: `replica` (writes, applies, history reads, positions),
//! `storage_io` (snapshot chunks), the snapshot source in
//! `replication::transport`, and the replication simulator, which drives
//! stores directly.

use crate::protocol::{Entry, Location, Position};

impl From<kv_storage::Position> for Position {
    fn from(p: kv_storage::Position) -> Self {
        Position {
            epoch: p.epoch,
            lsn: p.lsn,
        }
    }
}

impl From<Position> for kv_storage::Position {
    fn from(p: Position) -> Self {
        kv_storage::Position {
            epoch: p.epoch,
            lsn: p.lsn,
        }
    }
}

impl From<kv_storage::Entry> for Entry {
    fn from(e: kv_storage::Entry) -> Self {
        Entry {
            position: e.position.into(),
            key: e.key,
            value: e.value,
            expiry: e.expiry,
        }
    }
}

impl From<Entry> for kv_storage::Entry {
    fn from(e: Entry) -> Self {
        kv_storage::Entry {
            position: e.position.into(),
            key: e.key,
            value: e.value,
            expiry: e.expiry,
        }
    }
}

impl From<kv_storage::Location> for Location {
    fn from(location: kv_storage::Location) -> Self {
        match location {
            kv_storage::Location::Hot => Location::Hot,
            kv_storage::Location::Cold => Location::Cold,
            kv_storage::Location::Missing => Location::Missing,
        }
    }
}

/// Converts a run of entries (a store's answer, or entries to apply).
pub(crate) fn entries<A: Into<B>, B>(run: Vec<A>) -> Vec<B> {
    run.into_iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn entries_survive_the_round_trip_field_for_field() {
        let wire = Entry {
            position: Position { epoch: 3, lsn: 41 },
            key: Bytes::from_static(b"k"),
            value: Some(Bytes::from_static(b"v")),
            expiry: Some(1_700_000_000_000),
        };
        let stored = kv_storage::Entry::from(wire.clone());
        assert_eq!(stored.position, kv_storage::Position { epoch: 3, lsn: 41 });
        assert_eq!(stored.expiry, wire.expiry);
        assert_eq!(Entry::from(stored), wire);
    }

    proptest::proptest! {
        // Replication compares wire positions where the store compares its
        // own: the two orders must agree.
        #[test]
        fn positions_order_the_same_on_both_sides(a: (u32, u64), b: (u32, u64)) {
            let stored = |(epoch, lsn)| kv_storage::Position { epoch, lsn };
            let (sa, sb) = (stored(a), stored(b));
            proptest::prop_assert_eq!(Position::from(sa).cmp(&Position::from(sb)), sa.cmp(&sb));
            proptest::prop_assert_eq!(kv_storage::Position::from(Position::from(sa)), sa);
        }
    }

    #[test]
    fn locations_keep_their_meaning() {
        let cases = [
            (kv_storage::Location::Hot, Location::Hot),
            (kv_storage::Location::Cold, Location::Cold),
            (kv_storage::Location::Missing, Location::Missing),
        ];
        for (stored, wire) in cases {
            assert_eq!(Location::from(stored), wire);
        }
    }
}

//! Key and value limits derived from the frame limit.
//!
//! An entry travels in several envelopes: a `Put` request from the client,
//! then an `Entries` message to each follower (live stream, catch-up from
//! the store, and snapshot chunks all use `Entries`, one entry per message
//! at worst). The largest envelope is `Entries` with one entry, so the
//! limits are chosen for it: a key of [`max_key_bytes`] and a value of
//! [`max_value_bytes`] in one `Entries` message leave exactly
//! [`RESP_MARGIN_BYTES`] of the frame unused, room for the RESP front
//! door's command around the same value. A write the node accepts can
//! therefore always be replicated; one over the limits is refused up front
//! with `TooLarge`.

/// Bytes an `Entries` message with one entry adds around its key and
/// value: type 1, request id 8, partition 4, source position 12, count 4,
/// then the entry's position 12, key length 4, value-present byte 1,
/// value length 4 and expiry 9 (present byte and unix ms).
pub const ENTRIES_ENVELOPE_BYTES: usize = 1 + 8 + 4 + 12 + 4 + 12 + 4 + 1 + 4 + 9;

/// Frame bytes left unused by the largest entry, for RESP's envelope.
pub const RESP_MARGIN_BYTES: usize = 4096;

// The longest key (64 KiB, kv-storage's default too), defined once in
// kv-limits.
pub use kv_limits::MAX_KEY_BYTES;

/// Longest key.
pub fn max_key_bytes() -> usize {
    MAX_KEY_BYTES
}

/// Longest encoded value under a frame limit of `max_frame_bytes`: what is
/// left after the longest key, the `Entries` envelope and the RESP margin
/// (16,707,525 bytes for the default 16 MiB frame).
pub fn max_value_bytes(max_frame_bytes: usize) -> usize {
    max_frame_bytes
        .saturating_sub(max_key_bytes())
        .saturating_sub(ENTRIES_ENVELOPE_BYTES)
        .saturating_sub(RESP_MARGIN_BYTES)
}

#[cfg(test)]
mod tests {
    use bytes::{Bytes, BytesMut};

    use super::*;
    use crate::protocol::message::encode_entries;
    use crate::protocol::{DEFAULT_MAX_FRAME_BYTES, Entry, Position};

    #[test]
    fn the_largest_entry_fits_its_envelope_with_the_margin_left() {
        let frame = DEFAULT_MAX_FRAME_BYTES;
        assert_eq!(max_value_bytes(frame), 16_707_525);
        let entry = Entry {
            position: Position { epoch: 1, lsn: 1 },
            key: Bytes::from(vec![b'k'; max_key_bytes()]),
            value: Some(Bytes::from(vec![0u8; max_value_bytes(frame)])),
            expiry: Some(u64::MAX),
        };
        let mut out = BytesMut::new();
        encode_entries(&mut out, 1, 0, entry.position, std::slice::from_ref(&entry));
        assert_eq!(out.len() + RESP_MARGIN_BYTES, frame);
    }
}

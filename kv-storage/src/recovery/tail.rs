//! Telling a torn tail of the newest log segment from corruption.
//!
//! The lenient scan of the newest segment stops at the first bytes that are
//! not a valid record. What follows decides what they are:
//!
//! - **Nothing valid** (a partial record, zeros, garbage, or the end of the
//!   file): a *torn tail*. A `kill -9` or power loss mid-append leaves exactly
//!   this, because appends are serialised under the writer lock and each is
//!   one positional `write(2)` at the end of the previous record: file
//!   offsets grow with LSNs, and nothing is ever written after a record that
//!   is still incomplete. The tail is cut.
//! - **A valid later record** (CRC good, LSN above the last good one, epoch
//!   not below it): the damage sits *inside* the history, so cutting there
//!   would drop records that were acknowledged (and, under
//!   `SyncPolicy::Always`, fsynced). That is *corruption*: open fails with
//!   `Error::Corrupted` naming the file and the offset of the damage.
//! - **A valid later record, but an all-zero 512-byte sector before it**:
//!   the one way a crash legitimately leaves valid bytes after a hole. On
//!   power loss the kernel may have written back a later page of the file
//!   but not an earlier one (pages reach the disk in any order), and the
//!   unwritten part of the pre-sized file reads as zeros. Nothing after such
//!   a hole was covered by an fsync (an fdatasync flushes every dirty page of
//!   the file, the hole included), so nothing after it was promised: it is a
//!   torn tail, cut like any other. A bit flip never zeroes a whole sector,
//!   so real damage is still reported. (A disk that zeroes whole sectors is
//!   indistinguishable from a power loss, and is read as one.)
//!
//! Group commit does not change this: its fsync covers every write made
//! before it started, i.e. a prefix of the file, so after any crash the
//! durable part is a prefix and the rest is one of the shapes above.
//!
//! A file cut short (say, cut in half by hand) ends after its last valid
//! record, which is exactly what a crash leaves: it reads as a torn tail.
//! The cut is logged at WARN with its byte count and counted in
//! `Stats::truncated_tail_bytes`, never silent.

use crate::Position;
use crate::record::{FIXED_HEADER_BYTES, decode};

/// Write-back and torn-write granularity assumed for a crash: a sector.
const SECTOR_BYTES: u64 = 512;
/// A candidate record's LSN may be at most this far above the last good
/// one. Real jumps (snapshot installs, replication gaps) are far smaller;
/// random bytes almost never pass, so the CRC is rarely computed in vain.
const MAX_LSN_JUMP: u64 = 1 << 40;

/// What the bytes after the last valid record of the newest segment are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tail {
    /// A crash left them: cut the file at the last valid record.
    Torn,
    /// Damage followed by a valid record starting at `next`.
    Corrupt {
        /// File offset of the first valid record after the damage.
        next: u64,
        /// Its position.
        position: Position,
    },
}

/// Classifies `bytes[end..]` (`bytes` is the whole file; `end` the end of the
/// last valid record, whose position is `last`).
pub(super) fn classify(bytes: &[u8], end: u64, last: Position) -> Tail {
    let Some((next, position)) = next_record(bytes, end, last) else {
        return Tail::Torn;
    };
    if has_zero_sector(bytes, end, next) {
        return Tail::Torn;
    }
    Tail::Corrupt { next, position }
}

/// The first offset after `end` where a valid record newer than `last`
/// starts.
fn next_record(bytes: &[u8], end: u64, last: Position) -> Option<(u64, Position)> {
    let start = usize::try_from(end).ok()?.checked_add(1)?;
    (start..bytes.len()).find_map(|at| {
        let rest = bytes.get(at..)?;
        if !plausible(rest, last) {
            return None;
        }
        let rec = decode(rest).ok()?;
        let newer = rec.position.lsn > last.lsn && rec.position.epoch >= last.epoch;
        newer.then_some((at as u64, rec.position))
    })
}

/// A cheap look at the fixed header before the CRC is computed.
fn plausible(rest: &[u8], last: Position) -> bool {
    let Some(lsn) = rest.get(8..FIXED_HEADER_BYTES) else {
        return false;
    };
    let lsn = u64::from_le_bytes(lsn.try_into().unwrap_or_default());
    lsn > last.lsn && lsn - last.lsn <= MAX_LSN_JUMP
}

/// Whether a whole sector-aligned run of zeros lies inside `[from, to)`.
fn has_zero_sector(bytes: &[u8], from: u64, to: u64) -> bool {
    let mut sector = from.div_ceil(SECTOR_BYTES) * SECTOR_BYTES;
    while sector + SECTOR_BYTES <= to {
        let range = sector as usize..(sector + SECTOR_BYTES) as usize;
        if bytes.get(range).is_some_and(|s| s.iter().all(|&b| b == 0)) {
            return true;
        }
        sector += SECTOR_BYTES;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Kind, encode};

    fn pos(lsn: u64) -> Position {
        Position { epoch: 1, lsn }
    }

    /// Records with LSNs `lsns`, each with a 100-byte value; returns the
    /// image and the offsets the records start at.
    fn image(lsns: &[u64]) -> (Vec<u8>, Vec<u64>) {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for &lsn in lsns {
            offsets.push(out.len() as u64);
            encode(&mut out, pos(lsn), Kind::Value, b"key", &[b'v'; 100]);
        }
        (out, offsets)
    }

    #[test]
    fn a_partial_last_record_followed_by_zeros_is_torn() {
        let (mut bytes, offsets) = image(&[1, 2, 3]);
        bytes.truncate(offsets[2] as usize + 30);
        bytes.resize(8192, 0);
        assert_eq!(classify(&bytes, offsets[2], pos(2)), Tail::Torn);
    }

    #[test]
    fn a_flipped_record_followed_by_a_valid_one_is_corrupt() {
        let (mut bytes, offsets) = image(&[1, 2, 3]);
        bytes[offsets[1] as usize + 40] ^= 0x10;
        let found = classify(&bytes, offsets[1], pos(1));
        let want = Tail::Corrupt {
            next: offsets[2],
            position: pos(3),
        };
        assert_eq!(found, want);
    }

    #[test]
    fn a_zero_sector_before_the_later_record_is_a_crash_hole() {
        let (mut bytes, offsets) = image(&(1..=20).collect::<Vec<_>>());
        // Records 5.. land in a page that was never written back.
        let hole = 512..1024;
        bytes[hole.clone()].fill(0);
        let bad = *offsets
            .iter()
            .rfind(|&&o| o < hole.start as u64)
            .unwrap_or(&0);
        let lsn = offsets.iter().position(|&o| o == bad).unwrap_or(0) as u64;
        assert_eq!(classify(&bytes, bad, pos(lsn)), Tail::Torn);
    }

    #[test]
    fn older_records_after_the_damage_do_not_count() {
        let (mut bytes, offsets) = image(&[5, 6, 2]);
        bytes[offsets[1] as usize + 40] ^= 0x10;
        assert_eq!(classify(&bytes, offsets[1], pos(5)), Tail::Torn);
    }
}

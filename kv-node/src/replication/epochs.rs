//! Log matching by leader epochs (Kafka KIP-101, KIP-279): what a
//! subscriber keeps of its history.
//!
//! Every replica's store keeps its *epoch history* (kv-storage: epoch →
//! first LSN). Two replicas whose histories agree on where epoch `e` ends
//! hold the same entries up to there, because one epoch has one leader and
//! that leader numbers its entries once. So when a replica subscribes with
//! its last entry at `(e, l)`:
//!
//! 1. the source answers with its `Store::end_of_epoch(e)`: the largest
//!    epoch `e' <= e` it knows and the last LSN it holds in `e'`;
//! 2. the subscriber asks its own store where `e'` ends, and keeps
//!    [`truncation_point`]: the smaller of the two ends (its own may be
//!    shorter when it holds an epoch between `e'` and `e` that the source
//!    never saw: entries of a leader deposed before they reached anyone
//!    else);
//! 3. the source streams after `min(l, end)`; a subscriber that cut below
//!    that, or whose own history ends `e'` in another epoch, resubscribes
//!    from its new last entry (the next answer settles it).
//!
//! What is cut goes to a rollback file (kv-storage), never silently away.

use crate::protocol::{Lsn, Position};

/// What a subscriber keeps, given the source's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// Everything after this LSN goes (equal to the subscriber's last LSN
    /// when nothing needs to).
    pub keep: Lsn,
    /// Whether the answer settles the match. When the subscriber's history
    /// ends the source's epoch in another epoch, it cuts to the smaller end
    /// and asks again with its new last entry (KIP-279).
    pub settled: bool,
}

/// What a subscriber at `own_last` keeps, given the source's answer
/// `source_end` and its own store's end of that answer's epoch.
pub fn truncation_point(own_last: Position, own_end: Position, source_end: Position) -> Truncation {
    Truncation {
        keep: source_end.lsn.min(own_end.lsn).min(own_last.lsn),
        settled: own_end.epoch == source_end.epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(epoch: u32, lsn: Lsn) -> Position {
        Position { epoch, lsn }
    }

    #[test]
    fn truncation_point_table() {
        // (own last, own end of the source's epoch, source end, kept LSN,
        // settled, scenario)
        let cases = [
            (
                p(1, 8),
                p(1, 8),
                p(1, 5),
                5,
                true,
                "leader restarted behind",
            ),
            (
                p(1, 5),
                p(1, 5),
                p(1, 8),
                5,
                true,
                "follower behind keeps all",
            ),
            (
                p(2, 5),
                p(1, 3),
                p(1, 10),
                3,
                true,
                "own epoch 2 unknown to the source (deposed leader)",
            ),
            (
                p(2, 9),
                p(2, 9),
                p(2, 7),
                7,
                true,
                "same epoch, source shorter",
            ),
            (
                p(3, 6),
                p(1, 4),
                p(2, 10),
                4,
                false,
                "source's epoch 2 unknown here: cut to own epoch 1, ask again",
            ),
            (p(1, 4), p(0, 0), p(0, 0), 0, true, "nothing in common"),
            (p(0, 0), p(0, 0), p(0, 0), 0, true, "both empty"),
        ];
        for (last, own_end, source, keep, settled, name) in cases {
            let want = Truncation { keep, settled };
            assert_eq!(truncation_point(last, own_end, source), want, "{name}");
        }
    }
}

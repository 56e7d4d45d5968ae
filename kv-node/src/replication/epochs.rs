//! Log matching by leader epochs (Kafka KIP-101, KIP-279), as pure
//! functions of epoch histories.
//!
//! Every replica's store keeps its *epoch history*: for each epoch in which
//! it took writes as leader or received entries, the first LSN of that
//! epoch, ascending. Two replicas whose histories agree on where epoch `e`
//! ends hold the same entries up to there, because one epoch has one leader
//! and that leader numbers its entries once. So when a replica subscribes
//! with its last entry at `(e, l)`:
//!
//! 1. the source answers with [`end_of_epoch`] of `e` in *its* history: the
//!    largest epoch `e' <= e` it knows and the last LSN it holds in `e'`;
//! 2. the subscriber truncates everything after [`truncation_point`]: the
//!    smaller of the source's end of `e'` and its own end of `e'` (its own
//!    may be shorter when it holds an epoch between `e'` and `e` that the
//!    source never saw: entries of a leader that was deposed before they
//!    reached anyone else);
//! 3. the source streams after `min(l, end)`; a subscriber that truncated
//!    below that resubscribes from its new last entry and matches at once.
//!
//! What is cut goes to a rollback file (kv-storage), never silently away.

use kv_storage::{Epoch, Lsn, Position};

/// One row of an epoch history: `epoch` starts at LSN `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochStart {
    /// The epoch.
    pub epoch: Epoch,
    /// The first LSN written in it (one past the last LSN before it).
    pub first: Lsn,
}

/// Where epoch `epoch` ends in a history: the largest epoch `e' <= epoch`
/// the history has and the last LSN it holds in `e'` (`last` bounds it).
/// `(0, 0)` when the history has no epoch at or below `epoch`, meaning
/// nothing matches.
pub fn end_of_epoch(history: &[EpochStart], last: Position, epoch: Epoch) -> Position {
    let Some(i) = history.iter().rposition(|s| s.epoch <= epoch) else {
        return Position::default();
    };
    let Some(found) = history.get(i) else {
        return Position::default();
    };
    let end = match history.get(i + 1) {
        Some(next) => next.first.saturating_sub(1),
        None => last.lsn,
    };
    Position {
        epoch: found.epoch,
        lsn: end.min(last.lsn),
    }
}

/// What a subscriber keeps, given the source's answer (see the module doc).
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

/// What a subscriber at `own_last` with `own_history` keeps, given the
/// source's answer `source_end`.
pub fn truncation_point(
    own_history: &[EpochStart],
    own_last: Position,
    source_end: Position,
) -> Truncation {
    let own_end = end_of_epoch(own_history, own_last, source_end.epoch);
    Truncation {
        keep: source_end.lsn.min(own_end.lsn).min(own_last.lsn),
        settled: own_end.epoch == source_end.epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(rows: &[(Epoch, Lsn)]) -> Vec<EpochStart> {
        rows.iter()
            .map(|&(epoch, first)| EpochStart { epoch, first })
            .collect()
    }

    fn p(epoch: Epoch, lsn: Lsn) -> Position {
        Position { epoch, lsn }
    }

    #[test]
    fn end_of_epoch_table() {
        let hist = h(&[(1, 1), (3, 11), (4, 21)]);
        let last = p(4, 25);
        let cases = [
            // (asked epoch, expected answer)
            (0, p(0, 0)),
            (1, p(1, 10)),
            (2, p(1, 10)),
            (3, p(3, 20)),
            (4, p(4, 25)),
            (9, p(4, 25)),
        ];
        for (asked, want) in cases {
            assert_eq!(end_of_epoch(&hist, last, asked), want, "epoch {asked}");
        }
        assert_eq!(end_of_epoch(&[], p(0, 0), 3), p(0, 0));
        // An epoch begun without entries ends before it began.
        let empty_epoch = h(&[(1, 1), (2, 6), (3, 6)]);
        assert_eq!(end_of_epoch(&empty_epoch, p(3, 9), 2), p(2, 5));
    }

    #[test]
    fn truncation_point_table() {
        // (own history, own last, source end, kept LSN, settled, scenario)
        let cases = [
            (
                h(&[(1, 1)]),
                p(1, 8),
                p(1, 5),
                5,
                true,
                "leader restarted behind",
            ),
            (
                h(&[(1, 1)]),
                p(1, 5),
                p(1, 8),
                5,
                true,
                "follower behind keeps all",
            ),
            (
                h(&[(1, 1), (2, 4)]),
                p(2, 5),
                p(1, 10),
                3,
                true,
                "own epoch 2 unknown to the source (deposed leader)",
            ),
            (
                h(&[(1, 1), (2, 6)]),
                p(2, 9),
                p(2, 7),
                7,
                true,
                "same epoch, source shorter",
            ),
            (
                h(&[(1, 1), (3, 5)]),
                p(3, 6),
                p(2, 10),
                4,
                false,
                "source's epoch 2 unknown here: cut to own epoch 1, ask again",
            ),
            (h(&[(1, 1)]), p(1, 4), p(0, 0), 0, true, "nothing in common"),
            (h(&[]), p(0, 0), p(0, 0), 0, true, "both empty"),
        ];
        for (hist, last, source, keep, settled, name) in cases {
            let want = Truncation { keep, settled };
            assert_eq!(truncation_point(&hist, last, source), want, "{name}");
        }
    }
}

//! The source side's decisions, pure functions of positions.
//!
//! When a replica subscribes after position `after`, the source (a leader,
//! or a follower serving a recovering leader) either refuses, or streams
//! incrementally from `after`. Whether the increments come from the
//! in-memory backlog, from the store's history, or as a full snapshot is
//! decided as the stream goes (the backlog may evict while a follower lags).

use kv_storage::Position;

use crate::protocol::ReplicaState;

/// The answer to a subscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeDecision {
    /// Stream entries after the subscriber's position.
    Stream,
    /// The source is itself catching up; try again later.
    Recovering,
    /// The subscriber holds history the source does not have: streaming
    /// (or a snapshot) would move it backwards, so refuse (no-wipe rule).
    SubscriberAhead,
}

/// Decides whether a source at `source` in state `state` may serve a
/// replica that has applied up to `after`.
pub fn on_subscribe(state: ReplicaState, source: Position, after: Position) -> SubscribeDecision {
    if after.lsn > source.lsn || after.epoch > source.epoch {
        return SubscribeDecision::SubscriberAhead;
    }
    match state {
        // A failed replica has no store to stream from (and is never a
        // `Replica`); treat it as not ready.
        ReplicaState::Recovering | ReplicaState::Failed => SubscribeDecision::Recovering,
        ReplicaState::Ready => SubscribeDecision::Stream,
    }
}

/// What a recovering leader learned from asking its followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryStep {
    /// Pull from this follower (index into the replies) until its position.
    PullFrom(usize),
    /// Nothing to catch up: take writes.
    Ready,
    /// Keep refusing writes and ask again: the leader has no data and no
    /// follower answered, so it cannot tell a new partition from a lost disk.
    Wait,
}

/// Decides a leader's next recovery step from its own position and the
/// positions its reachable followers reported.
pub fn recovery_step(own: Position, replies: &[Position], has_followers: bool) -> RecoveryStep {
    let best = replies
        .iter()
        .enumerate()
        .max_by_key(|(_, p)| **p)
        .map(|(i, p)| (i, *p));
    match best {
        Some((i, p)) if p > own => RecoveryStep::PullFrom(i),
        Some(_) => RecoveryStep::Ready,
        None if own.lsn == 0 && has_followers => RecoveryStep::Wait,
        None => RecoveryStep::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(epoch: u32, lsn: u64) -> Position {
        Position { epoch, lsn }
    }

    #[test]
    fn subscriber_ahead_is_refused_even_when_ready() {
        assert_eq!(
            on_subscribe(ReplicaState::Ready, p(1, 10), p(1, 11)),
            SubscribeDecision::SubscriberAhead
        );
        assert_eq!(
            on_subscribe(ReplicaState::Ready, p(1, 10), p(2, 3)),
            SubscribeDecision::SubscriberAhead
        );
        assert_eq!(
            on_subscribe(ReplicaState::Ready, p(0, 0), p(1, 1)),
            SubscribeDecision::SubscriberAhead
        );
    }

    #[test]
    fn recovering_source_defers_and_ready_source_streams() {
        assert_eq!(
            on_subscribe(ReplicaState::Recovering, p(1, 10), p(1, 3)),
            SubscribeDecision::Recovering
        );
        assert_eq!(
            on_subscribe(ReplicaState::Ready, p(1, 10), p(1, 10)),
            SubscribeDecision::Stream
        );
        assert_eq!(
            on_subscribe(ReplicaState::Ready, p(1, 10), p(0, 0)),
            SubscribeDecision::Stream
        );
    }

    #[test]
    fn empty_leader_waits_for_a_follower_and_pulls_from_the_most_advanced() {
        assert_eq!(recovery_step(p(0, 0), &[], true), RecoveryStep::Wait);
        assert_eq!(recovery_step(p(0, 0), &[], false), RecoveryStep::Ready);
        assert_eq!(
            recovery_step(p(0, 0), &[p(1, 5), p(1, 9), p(1, 7)], true),
            RecoveryStep::PullFrom(1)
        );
        assert_eq!(
            recovery_step(p(0, 0), &[p(0, 0)], true),
            RecoveryStep::Ready
        );
    }

    #[test]
    fn leader_with_data_proceeds_when_followers_are_behind_or_silent() {
        assert_eq!(recovery_step(p(1, 50), &[], true), RecoveryStep::Ready);
        assert_eq!(
            recovery_step(p(1, 50), &[p(1, 49)], true),
            RecoveryStep::Ready
        );
        assert_eq!(
            recovery_step(p(1, 50), &[p(1, 51)], true),
            RecoveryStep::PullFrom(0)
        );
    }
}

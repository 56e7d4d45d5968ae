//! A recovering leader's next step, a pure function of positions (used
//! by [`super::machine::ReplicaMachine::on_positions`]).

use crate::protocol::Position;

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

//! In-sync replicas and `acks = "all"`: which followers of a led partition
//! are in sync, and waiting until a write is durable on all of them.
//!
//! # Model
//!
//! Kafka's definition of the in-sync set (ISR): a follower is in sync
//! while it has *caught up with the leader's end at some point in the last
//! `replica_lag_max_ms`*. A follower acknowledges after every applied
//! batch and every heartbeat (`Ack` carries its last applied position,
//! written under its own sync policy before the ack is sent), so:
//!
//! - an ack at or past the leader's end at that moment means caught up now;
//! - an ack at or past the leader's end *at the previous ack* means the
//!   follower was caught up as of that previous ack. Under a steady stream
//!   of writes the leader's end always runs ahead of any ack; this second
//!   rule keeps a follower that keeps pace in the set (Kafka's
//!   `lastFetchLeaderLogEndOffset`).
//!
//! A follower that stops acking, or keeps acking without ever reaching the
//! end it was shown, leaves the set `replica_lag_max_ms` after it was last
//! caught up. A follower never heard from since the leader started is out.
//! The leader always counts itself.
//!
//! A write with `acks = "all"` is first admitted: when the set (leader
//! included) is smaller than `min_insync_replicas` it is refused before it
//! is applied. Once written it waits until every member of the set *at
//! that moment* has acknowledged it; members that drop out stop being
//! waited for, so a dead follower delays writes by at most
//! `replica_lag_max_ms`. If the set falls below the minimum during the
//! wait, or the wait outlives its deadline, the write is on the leader but
//! its replication is not known: the caller reports "outcome unknown".
//!
//! The decisions are pure functions of the recorded acks and an injected
//! `now` ([`Tracker`]); [`InSync`] adds the lock and the wake-up that the
//! tokio side waits on.
//!
//! # Not here
//!
//! The set is the leader's own view, kept in memory: it starts empty (the
//! leader alone) at every start and every role change (a new term). The control plane will own it (DESIGN §9).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kv_router::{AckMode, NodeId, PartitionId, ReplicationConfig};
use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::warn;

use crate::error::ErrorCode;
use crate::protocol::{PartitionInfo, Position, Response};
use crate::replica::Replica;
use crate::server::{Shared, error_reply};

/// The ISR settings a leader applies (from the `[replication]` table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckPolicy {
    /// The ack mode of writes that do not ask for one.
    pub default_acks: AckMode,
    /// Writes with [`AckMode::All`] need at least this many in-sync
    /// replicas, the leader included.
    pub min_insync: usize,
    /// How long a follower stays in sync after it last caught up.
    pub lag_max: Duration,
}

impl From<&ReplicationConfig> for AckPolicy {
    fn from(c: &ReplicationConfig) -> Self {
        AckPolicy {
            default_acks: c.acks,
            min_insync: usize::try_from(c.min_insync_replicas).unwrap_or(usize::MAX),
            lag_max: Duration::from_millis(c.replica_lag_max_ms),
        }
    }
}

/// What one follower's acks told the leader.
#[derive(Debug, Clone, Copy)]
struct FollowerSync {
    /// Its last acknowledged (durable) position.
    acked: Position,
    /// The last time it had caught up with the leader's end.
    caught_up_at: Option<Instant>,
    /// When its previous ack arrived, and the leader's end then.
    last_ack: Option<(Instant, Position)>,
}

/// Where an `acks = "all"` write stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Every in-sync follower has it.
    Done,
    /// Waiting for these in-sync followers; look again on the next ack or
    /// at `recheck` (when the first of them would drop out of the set).
    Waiting {
        /// In-sync followers that have not acknowledged the write yet.
        missing: Vec<NodeId>,
        /// When the set may next shrink without an ack.
        recheck: Option<Instant>,
    },
    /// The in-sync set, leader included, is smaller than required.
    TooFew {
        /// Its size now.
        in_sync: usize,
    },
}

/// The sans-IO core: per-follower acks and the ISR decisions.
#[derive(Debug, Default)]
pub struct Tracker {
    followers: BTreeMap<NodeId, FollowerSync>,
    /// Followers the control plane's committed in-sync set holds: waited
    /// for whatever their lag, until the controller records them out (so
    /// an `acks = "all"` write never skips a replica that could still be
    /// elected).
    pinned: BTreeSet<NodeId>,
}

impl Tracker {
    /// Records an `Ack` of `acked` from `node`, received at `now` when the
    /// leader's last position was `leader_end`.
    pub fn on_ack(&mut self, node: NodeId, acked: Position, leader_end: Position, now: Instant) {
        let f = self.followers.entry(node).or_insert(FollowerSync {
            acked,
            caught_up_at: None,
            last_ack: None,
        });
        f.acked = acked;
        if acked >= leader_end {
            f.caught_up_at = Some(now);
        } else if let Some((then, end_then)) = f.last_ack
            && acked >= end_then
        {
            f.caught_up_at = f.caught_up_at.max(Some(then));
        }
        f.last_ack = Some((now, leader_end));
    }

    /// Whether `node` is in sync at `now`.
    pub fn is_in_sync(&self, node: NodeId, now: Instant, lag_max: Duration) -> bool {
        self.followers
            .get(&node)
            .and_then(|f| f.caught_up_at)
            .is_some_and(|at| now.saturating_duration_since(at) <= lag_max)
    }

    /// The in-sync followers at `now` (the leader not included), by id.
    pub fn in_sync(&self, now: Instant, lag_max: Duration) -> Vec<NodeId> {
        self.followers
            .keys()
            .copied()
            .filter(|&n| self.is_in_sync(n, now, lag_max))
            .collect()
    }

    /// The followers an `acks = "all"` write waits for: the in-sync ones
    /// and the pinned ones, by id.
    fn members(&self, now: Instant, lag_max: Duration) -> Vec<NodeId> {
        let mut members: BTreeSet<NodeId> = self.in_sync(now, lag_max).into_iter().collect();
        members.extend(self.pinned.iter().copied());
        members.into_iter().collect()
    }

    /// Pins `nodes` (the committed in-sync set's followers), replacing the
    /// earlier pins.
    pub fn pin(&mut self, nodes: impl IntoIterator<Item = NodeId>) {
        self.pinned = nodes.into_iter().collect();
    }

    /// Whether a write may be applied now with `acks = "all"`: `Err` with
    /// the set's size (leader included) when it is below the minimum.
    /// Counted by the followers' own acks: a pinned follower that stopped
    /// acking is still waited for, but does not admit a write.
    pub fn admit(&self, now: Instant, policy: &AckPolicy) -> Result<(), usize> {
        let size = self.in_sync(now, policy.lag_max).len() + 1;
        if size < policy.min_insync {
            Err(size)
        } else {
            Ok(())
        }
    }

    /// Where a write at `position` stands at `now`.
    pub fn progress(&self, position: Position, now: Instant, policy: &AckPolicy) -> Progress {
        let members = self.members(now, policy.lag_max);
        if members.len() + 1 < policy.min_insync {
            return Progress::TooFew {
                in_sync: members.len() + 1,
            };
        }
        let missing: Vec<NodeId> = members
            .into_iter()
            .filter(|n| self.followers.get(n).is_none_or(|f| f.acked < position))
            .collect();
        if missing.is_empty() {
            return Progress::Done;
        }
        // When a missing follower would drop out of the set; a pinned
        // one past that time stays in, so its past time is no reason to
        // look again (waking for it would spin).
        let recheck = missing
            .iter()
            .filter_map(|n| self.followers.get(n).and_then(|f| f.caught_up_at))
            .filter_map(|at| at.checked_add(policy.lag_max + Duration::from_millis(1)))
            .filter(|&at| at > now)
            .min();
        Progress::Waiting { missing, recheck }
    }
}

/// Why an `acks = "all"` wait ended without every in-sync replica having
/// the write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// The set shrank below `min_insync_replicas` after the write was
    /// applied on the leader.
    #[error(
        "written on the leader, but the in-sync set shrank to {in_sync} replica(s), below \
         min_insync_replicas = {min}; outcome unknown (the write may be lost if the leader fails)"
    )]
    TooFewAfterWrite {
        /// The set's size, leader included.
        in_sync: usize,
        /// The configured minimum.
        min: usize,
    },
    /// The replica's term ended (a role change or shutdown) while waiting.
    #[error(
        "written on the leader, but its term ended (a role change or shutdown) before every \
         in-sync follower acknowledged it; outcome unknown"
    )]
    TermEnded,
    /// The in-sync followers did not all acknowledge within the deadline.
    #[error(
        "written on the leader, but in-sync follower(s) {missing:?} did not acknowledge it \
         within {after:?}; outcome unknown"
    )]
    TimedOut {
        /// The followers still missing.
        missing: Vec<NodeId>,
        /// How long the write waited.
        after: Duration,
    },
}

/// One led partition's ISR state, shared by the ack readers (one per
/// follower stream) and the writers waiting on them.
#[derive(Debug)]
pub struct InSync {
    tracker: Mutex<Tracker>,
    /// Bumped on every ack, so waiters look again.
    acked_tx: watch::Sender<u64>,
}

impl Default for InSync {
    fn default() -> Self {
        InSync {
            tracker: Mutex::new(Tracker::default()),
            acked_tx: watch::channel(0).0,
        }
    }
}

impl InSync {
    /// Records a follower's ack (see [`Tracker::on_ack`]) and wakes the
    /// writers waiting for acks.
    pub fn on_ack(&self, node: NodeId, acked: Position, leader_end: Position) {
        self.tracker
            .lock()
            .on_ack(node, acked, leader_end, crate::net::now());
        self.acked_tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Forgets every follower: a new term (a role change) starts with the
    /// leader alone in its set, as a leader start does.
    pub fn reset(&self) {
        *self.tracker.lock() = Tracker::default();
        self.acked_tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Pins the followers of the control plane's committed in-sync set
    /// (see [`Tracker::pin`]) and wakes the waiting writers.
    pub fn pin(&self, nodes: impl IntoIterator<Item = NodeId>) {
        self.tracker.lock().pin(nodes);
        self.acked_tx.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until each of `nodes` has acknowledged `position` (true), or
    /// `deadline` passes (false).
    pub async fn wait_acked(
        &self,
        nodes: &[NodeId],
        position: Position,
        deadline: tokio::time::Instant,
    ) -> bool {
        loop {
            // Subscribed before looking, so an ack in between still wakes us.
            let mut acked_rx = self.acked_tx.subscribe();
            let done = {
                let t = self.tracker.lock();
                let has = |n: &NodeId| t.followers.get(n).is_some_and(|f| f.acked >= position);
                nodes.iter().all(has)
            };
            if done {
                return true;
            }
            match tokio::time::timeout_at(deadline, acked_rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return false,
            }
        }
    }

    /// The pinned followers (the committed in-sync set's, see
    /// [`Tracker::pin`]).
    pub fn pinned(&self) -> Vec<NodeId> {
        self.tracker.lock().pinned.iter().copied().collect()
    }

    /// The followers in sync now by their own acks (pins aside).
    pub fn in_sync_now(&self, lag_max: Duration) -> Vec<NodeId> {
        self.tracker.lock().in_sync(crate::net::now(), lag_max)
    }

    /// Whether `node` is in sync now.
    pub fn is_in_sync(&self, node: NodeId, lag_max: Duration) -> bool {
        self.tracker
            .lock()
            .is_in_sync(node, crate::net::now(), lag_max)
    }

    /// `Err` with the set's size when a write with `acks = "all"` must be
    /// refused now.
    pub fn admit(&self, policy: &AckPolicy) -> Result<(), usize> {
        self.tracker.lock().admit(crate::net::now(), policy)
    }

    /// [`InSync::wait_for`] within the term `term` belongs to: when the
    /// term ends first the wait ends with [`WaitError::TermEnded`].
    ///
    /// A new term cancels the old token and then resets the set, which
    /// wakes this wait with nobody left to wait for: that must read as
    /// "term ended", never as "every follower has it".
    pub async fn wait_in_term(
        &self,
        position: Position,
        policy: &AckPolicy,
        deadline: tokio::time::Instant,
        term: &tokio_util::sync::CancellationToken,
    ) -> Result<(), WaitError> {
        let waited = tokio::select! {
            biased;
            () = term.cancelled() => Err(WaitError::TermEnded),
            waited = self.wait_for(position, policy, deadline) => waited,
        };
        match waited {
            Ok(()) if term.is_cancelled() => Err(WaitError::TermEnded),
            other => other,
        }
    }

    /// Waits until every in-sync follower has acknowledged `position`, the
    /// set falls below the minimum, or `deadline` passes.
    pub async fn wait_for(
        &self,
        position: Position,
        policy: &AckPolicy,
        deadline: tokio::time::Instant,
    ) -> Result<(), WaitError> {
        let started = tokio::time::Instant::now();
        loop {
            // Subscribed before looking, so an ack in between still wakes us.
            let mut acked_rx = self.acked_tx.subscribe();
            let progress = self
                .tracker
                .lock()
                .progress(position, crate::net::now(), policy);
            let (missing, recheck) = match progress {
                Progress::Done => return Ok(()),
                Progress::TooFew { in_sync } => {
                    let min = policy.min_insync;
                    return Err(WaitError::TooFewAfterWrite { in_sync, min });
                }
                Progress::Waiting { missing, recheck } => (missing, recheck),
            };
            let wake = recheck.map_or(deadline, |at| deadline.min(at.into()));
            tokio::select! {
                _ = acked_rx.changed() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                let after = started.elapsed();
                return Err(WaitError::TimedOut { missing, after });
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The write path's hooks (called by `server` and `atomic`)
// ---------------------------------------------------------------------------

/// Runs one leader write under its ack mode (`acks`, or the cluster's
/// default): for `all`, refuses it before `write` runs when the in-sync
/// set is too small, and after it waits until the set has the position
/// `write` returns. `write` answers with its reply and that position (or
/// its error reply).
pub(crate) async fn acked<Fut>(
    shared: &Shared,
    replica: &Replica,
    partition: PartitionId,
    acks: Option<AckMode>,
    write: impl FnOnce() -> Fut,
) -> Response
where
    Fut: Future<Output = Result<(Response, Position), Response>>,
{
    let policy = match admit(shared, replica, partition, acks) {
        Ok(policy) => policy,
        Err(reply) => return reply,
    };
    // The term the write is admitted in: if it ends before the followers
    // confirm, the outcome is unknown.
    let term = replica.term_token();
    match write().await {
        Ok((reply, position)) => match replicated(shared, replica, position, policy, term).await {
            Ok(()) => reply,
            Err(unknown) => unknown,
        },
        Err(reply) => reply,
    }
}

/// Runs a group of leader writes of one partition (a connection's
/// pipelined puts) under the cluster's default ack mode, as [`acked`]
/// runs one: admitted once, and for `all` answered once the group's last
/// position is on every in-sync replica (which then holds every earlier
/// one). `write` gives each write's reply and the last position written,
/// if any; when the wait fails, every write that succeeded is answered
/// "outcome unknown". `Err`: the refusal that answers every write.
pub(crate) async fn acked_group<Fut>(
    shared: &Shared,
    replica: &Replica,
    partition: PartitionId,
    write: impl FnOnce() -> Fut,
) -> Result<Vec<Response>, Response>
where
    Fut: Future<Output = (Vec<Response>, Option<Position>)>,
{
    let policy = admit(shared, replica, partition, None)?;
    let term = replica.term_token();
    let (mut replies, last) = write().await;
    if let Some(last) = last
        && let Err(unknown) = replicated(shared, replica, last, policy, term).await
    {
        for reply in &mut replies {
            if matches!(reply, Response::Written { .. }) {
                *reply = unknown.clone();
            }
        }
    }
    Ok(replies)
}

/// Decides a leader write's ack mode and, for `all`, refuses it when the
/// in-sync set is too small. `Ok(Some(policy))`: wait after writing.
fn admit(
    shared: &Shared,
    replica: &Replica,
    partition: PartitionId,
    acks: Option<AckMode>,
) -> Result<Option<AckPolicy>, Response> {
    let policy = AckPolicy::from(&shared.options.replication);
    if acks.unwrap_or(policy.default_acks) == AckMode::Leader {
        return Ok(None);
    }
    match replica.insync.admit(&policy) {
        Ok(()) => Ok(Some(policy)),
        Err(in_sync) => {
            let message = format!(
                "partition {partition}: {in_sync} in-sync replica(s), leader included, fewer \
                 than min_insync_replicas = {}; write not applied",
                policy.min_insync
            );
            Err(error_reply(ErrorCode::NotEnoughReplicas, None, message))
        }
    }
}

/// Waits until the write at `position` is on every in-sync replica (at
/// once when `policy` is `None`: `acks = "leader"`); `Err`: the "outcome
/// unknown" error reply.
async fn replicated(
    shared: &Shared,
    replica: &Replica,
    position: Position,
    policy: Option<AckPolicy>,
    term: tokio_util::sync::CancellationToken,
) -> Result<(), Response> {
    let Some(policy) = policy else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + shared.options.ack_timeout;
    // A role change ends the term (`term`, taken before the write): this
    // replica's followers and their acks are no longer its own, so the
    // wait cannot be answered.
    let waited = replica
        .insync
        .wait_in_term(position, &policy, deadline, &term)
        .await;
    waited.map_err(|e| {
        warn!(partition = replica.partition, error = %e, "acks = all write not confirmed");
        let message = format!("partition {}: {e}", replica.partition);
        error_reply(ErrorCode::OutcomeUnknown, None, message)
    })
}

/// A leader read's wait, when the cluster's configured default is
/// `acks = "all"`: until everything in the leader's log when `read` ran is on
/// every in-sync follower, so a read never answers with a write that a
/// failover could still lose (the write may be waiting for its own acks,
/// or may never be shipped: its fsync failed). The read index of Raft,
/// with the in-sync set as the quorum. Immediate when the set has
/// nothing to wait for, and with `acks = "leader"`. `Err`: the reply for
/// a leader that cannot confirm its log (its term ended, its followers
/// did not acknowledge within the ack timeout, or the set is below
/// `min_insync_replicas`, where what the leader alone holds may vanish
/// with its power: simulation seed 4100078; or an fsync failed on the
/// leader, poisoning its store): `Recovering`, which a client asks again
/// and then answers from another replica.
pub(crate) async fn committed_read<Fut>(
    shared: &Shared,
    replica: &Replica,
    partition: PartitionId,
    read: Fut,
) -> Response
where
    Fut: Future<Output = Response>,
{
    let policy = AckPolicy::from(&shared.options.replication);
    if policy.default_acks == AckMode::Leader {
        return read.await;
    }
    let term = replica.term_token();
    let reply = read.await;
    if matches!(reply, Response::Error { .. }) {
        return reply;
    }
    let end = replica.position();
    let deadline = tokio::time::Instant::now() + shared.options.ack_timeout;
    let waited = replica
        .insync
        .wait_in_term(end, &policy, deadline, &term)
        .await;
    // Checked after the read: a write the read saw whose fsync failed
    // since may vanish with the leader's power, and when the leader is
    // its set's only member nobody else holds it (simulation seed
    // 10405052).
    if replica.store.is_poisoned() {
        return error_reply(
            ErrorCode::Recovering,
            None,
            format!(
                "partition {partition}: read not answered: an fsync failed on the leader, so what \
                 it holds may not be durable"
            ),
        );
    }
    match waited {
        Ok(()) => reply,
        Err(e) => error_reply(
            ErrorCode::Recovering,
            None,
            format!(
                "partition {partition}: read not answered: the leader cannot confirm its log is on \
                 its in-sync replicas ({e})"
            ),
        ),
    }
}

/// Marks the followers in `partitions` (this node's `info`) that are in
/// sync now.
pub(crate) fn mark_in_sync(shared: &Shared, partitions: &mut [PartitionInfo]) {
    let lag_max = AckPolicy::from(&shared.options.replication).lag_max;
    for info in partitions {
        let Some(replica) = shared.replicas.get(&info.partition) else {
            continue;
        };
        for f in &mut info.followers {
            f.in_sync = replica.insync.is_in_sync(f.node, lag_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_millis(1000);

    fn pos(lsn: u64) -> Position {
        Position { epoch: 1, lsn }
    }

    fn policy(min_insync: usize) -> AckPolicy {
        AckPolicy {
            default_acks: AckMode::All,
            min_insync,
            lag_max: LAG,
        }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn unseen_followers_are_out_and_the_leader_counts_itself() {
        let t = Tracker::default();
        let now = Instant::now();
        assert!(t.in_sync(now, LAG).is_empty());
        assert_eq!(t.admit(now, &policy(1)), Ok(()));
        assert_eq!(t.admit(now, &policy(2)), Err(1));
        assert_eq!(t.progress(pos(5), now, &policy(1)), Progress::Done);
    }

    #[test]
    fn caught_up_follower_is_in_until_lag_max_passes() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.on_ack(1, pos(10), pos(10), t0);
        assert_eq!(t.in_sync(ms(t0, 1000), LAG), vec![1]);
        assert!(t.in_sync(ms(t0, 1001), LAG).is_empty());
    }

    #[test]
    fn follower_keeping_pace_with_a_moving_end_stays_in() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        // Every ack is behind the end now but reaches the end shown at
        // the previous ack.
        t.on_ack(1, pos(10), pos(10), t0);
        for i in 1..=10u64 {
            t.on_ack(1, pos(10 * i), pos(10 * i + 5), ms(t0, 600 * i));
        }
        assert_eq!(t.in_sync(ms(t0, 6000), LAG), vec![1]);
    }

    #[test]
    fn follower_that_never_reaches_the_end_drops_out() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.on_ack(1, pos(10), pos(10), t0);
        // Acks keep coming, but always short of the end shown before.
        for i in 1..=5u64 {
            t.on_ack(1, pos(10 + i), pos(100 * i), ms(t0, 400 * i));
        }
        assert!(t.in_sync(ms(t0, 2000), LAG).is_empty());
    }

    #[test]
    fn write_waits_for_every_in_sync_follower() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.on_ack(1, pos(4), pos(4), t0);
        t.on_ack(2, pos(4), pos(4), t0);
        let p = policy(1);
        let waiting = t.progress(pos(5), ms(t0, 10), &p);
        assert_eq!(
            waiting,
            Progress::Waiting {
                missing: vec![1, 2],
                recheck: Some(ms(t0, 1001)),
            }
        );
        t.on_ack(1, pos(5), pos(5), ms(t0, 20));
        assert!(matches!(
            t.progress(pos(5), ms(t0, 20), &p),
            Progress::Waiting { ref missing, .. } if missing == &vec![2]
        ));
        t.on_ack(2, pos(5), pos(5), ms(t0, 30));
        assert_eq!(t.progress(pos(5), ms(t0, 30), &p), Progress::Done);
    }

    #[test]
    fn a_member_that_drops_out_is_no_longer_waited_for() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.on_ack(1, pos(4), pos(4), t0);
        t.on_ack(2, pos(4), pos(4), t0);
        t.on_ack(1, pos(5), pos(5), ms(t0, 500));
        // Follower 2 went silent at t0: out after LAG, so the write is done.
        assert_eq!(t.progress(pos(5), ms(t0, 1001), &policy(1)), Progress::Done);
        // With two required, the shrink leaves too few instead.
        assert_eq!(
            t.progress(pos(5), ms(t0, 1001), &policy(3)),
            Progress::TooFew { in_sync: 2 }
        );
    }

    /// A pinned member stays waited for after it lags past `lag_max`; the
    /// time it would have dropped out is behind, so it is no reason to
    /// look again: a recheck in the past made `wait_for` spin (found by
    /// the simulation with clocks at their own rates).
    #[test]
    fn a_lagging_pinned_member_asks_for_no_recheck_in_the_past() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.on_ack(1, pos(4), pos(4), t0);
        t.on_ack(2, pos(4), pos(4), t0);
        t.pin([2]);
        t.on_ack(1, pos(5), pos(5), ms(t0, 500));
        let now = ms(t0, 1500);
        assert_eq!(
            t.progress(pos(5), now, &policy(1)),
            Progress::Waiting {
                missing: vec![2],
                recheck: None,
            }
        );
        // A member that can still drop out is rechecked when it would.
        t.on_ack(3, pos(4), pos(4), ms(t0, 1200));
        assert_eq!(
            t.progress(pos(5), now, &policy(1)),
            Progress::Waiting {
                missing: vec![2, 3],
                recheck: Some(ms(t0, 2201)),
            }
        );
    }

    #[test]
    fn follower_rejoins_after_catching_up() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        t.on_ack(1, pos(4), pos(4), t0);
        assert!(t.in_sync(ms(t0, 3000), LAG).is_empty());
        t.on_ack(1, pos(40), pos(90), ms(t0, 3000));
        assert!(t.in_sync(ms(t0, 3000), LAG).is_empty());
        t.on_ack(1, pos(90), pos(95), ms(t0, 3100));
        assert_eq!(t.in_sync(ms(t0, 3100), LAG), vec![1]);
    }

    #[test]
    fn an_older_epoch_at_a_higher_lsn_has_not_got_the_write() {
        let t0 = Instant::now();
        let mut t = Tracker::default();
        let divergent = Position { epoch: 1, lsn: 9 };
        let write = Position { epoch: 2, lsn: 6 };
        t.on_ack(1, divergent, divergent, t0);
        assert!(matches!(
            t.progress(write, t0, &policy(1)),
            Progress::Waiting { .. }
        ));
    }

    #[tokio::test]
    async fn wait_ends_on_ack_and_at_the_deadline() {
        let sync = std::sync::Arc::new(InSync::default());
        sync.on_ack(1, pos(1), pos(1));
        let p = AckPolicy {
            lag_max: Duration::from_secs(3600),
            ..policy(1)
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        let waiter = {
            let sync = std::sync::Arc::clone(&sync);
            tokio::spawn(async move { sync.wait_for(pos(2), &p, deadline).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        sync.on_ack(1, pos(2), pos(2));
        assert_eq!(waiter.await.ok(), Some(Ok(())));
        let soon = tokio::time::Instant::now();
        let timed_out = sync.wait_for(pos(3), &p, soon).await;
        assert!(
            matches!(timed_out, Err(WaitError::TimedOut { missing, .. }) if missing == vec![1])
        );
    }

    /// The soak found this: a role change cancels the term and resets the
    /// set, and the reset left a waiter with nobody to wait for, so it
    /// could answer "every in-sync replica has it" for a write no follower
    /// had. The wait must end as "term ended", every time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_term_that_ends_during_the_wait_never_reads_as_replicated() {
        let p = AckPolicy {
            lag_max: Duration::from_secs(3600),
            ..policy(1)
        };
        for _ in 0..200 {
            let sync = std::sync::Arc::new(InSync::default());
            sync.on_ack(1, pos(1), pos(1));
            sync.pin([1]);
            let term = tokio_util::sync::CancellationToken::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
            let waiter = {
                let (sync, term) = (std::sync::Arc::clone(&sync), term.clone());
                tokio::spawn(async move { sync.wait_in_term(pos(2), &p, deadline, &term).await })
            };
            tokio::task::yield_now().await;
            // what `Replica::new_term` does
            term.cancel();
            sync.reset();
            assert_eq!(waiter.await.ok(), Some(Err(WaitError::TermEnded)));
        }
        // A term already over when the wait starts ends it at once.
        let sync = InSync::default();
        let term = tokio_util::sync::CancellationToken::new();
        term.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        let waited = sync.wait_in_term(pos(2), &p, deadline, &term).await;
        assert_eq!(waited, Err(WaitError::TermEnded));
    }

    #[tokio::test]
    async fn wait_acked_waits_for_each_named_node() {
        let sync = std::sync::Arc::new(InSync::default());
        sync.on_ack(1, pos(2), pos(2));
        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
        let waiter = {
            let sync = std::sync::Arc::clone(&sync);
            tokio::spawn(async move { sync.wait_acked(&[1, 2], pos(2), far).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "node 2 has not acked");
        sync.on_ack(2, pos(2), pos(2));
        assert_eq!(waiter.await.ok(), Some(true));
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(!sync.wait_acked(&[1], pos(3), soon).await);
    }
}

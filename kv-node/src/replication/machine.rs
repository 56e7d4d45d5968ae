//! One partition replica's replication state, as a sans-IO machine.
//!
//! [`ReplicaMachine`] owns what a replica *is* for its partition — its
//! role, its leader, its peers, whether it is ready, the highest epoch it
//! has seen, and the term of its current role — and makes every decision
//! that depends on them: what a role change starts and stops, when a new
//! leader is ready and which epoch it begins, whether a subscriber may be
//! served and where its history matches ours, whether a write may be
//! taken. It never touches a socket, a clock or a store: callers feed it
//! events and carry out the [`Effect`]s it returns (the tokio tasks in
//! `transport`, which move bytes and call the store through `storage_io`).
//!
//! # Roles and terms
//!
//! Every [`ReplicaMachine::set_role`] (and the start of the node, which is
//! the first) opens a new *term*: the transport stops every replication
//! task of the old term (following, recovering, serving subscriptions) and
//! starts what the new one needs. A leader is `Recovering` until it has
//! caught up with its most advanced reachable peer (DESIGN §5: a leader
//! that restarted behind never wipes its followers) and has persisted a
//! new epoch, strictly greater than any it has seen, *before* its first
//! write (DESIGN §9). A follower follows its leader.
//!
//! # Fencing
//!
//! A subscriber sends the highest epoch it has seen. A source whose own
//! epoch is lower has been superseded by a newer leader and refuses to
//! serve ([`SubscribeAnswer::Refuse`] with `StaleEpoch`); the follower side
//! ([`super::follower`]) symmetrically refuses a source older than itself.

use kv_router::{NodeId, Role};

use super::plan::{self, RecoveryStep};
use crate::error::ErrorCode;
use crate::protocol::{Epoch, Position, ReplicaState};

/// What the transport must do for the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Stop every replication task of earlier terms.
    StopTasks,
    /// Follow `leader`: subscribe to it and apply what it streams.
    Follow {
        /// The partition's leader.
        leader: NodeId,
    },
    /// Ask these peers for their positions, then call
    /// [`ReplicaMachine::on_positions`].
    AskPositions {
        /// The partition's other replicas.
        peers: Vec<NodeId>,
    },
    /// Pull from `node` until this replica reaches `target`, then ask
    /// again.
    PullFrom {
        /// The peer to pull from.
        node: NodeId,
        /// Its position when asked.
        target: Position,
    },
    /// Ask again after a pause (no peer answered, and this replica is
    /// empty).
    RetryLater,
    /// Persist `epoch` as the store's new epoch (with its first LSN in the
    /// epoch history), then call [`ReplicaMachine::on_epoch_begun`].
    BeginEpoch(Epoch),
}

/// The answer to a subscribe request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeAnswer {
    /// Send `LogMatch { epoch, end }`, then stream entries after `from`.
    Serve {
        /// This source's epoch.
        epoch: Epoch,
        /// Where the subscriber's last epoch ends in this history.
        end: Position,
        /// The LSN the stream starts after.
        from: u64,
    },
    /// Refuse with this code and reason.
    Refuse(ErrorCode, String),
}

/// A peer's answer to a recovering leader's position question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerPosition {
    /// The peer.
    pub node: NodeId,
    /// Its last entry's position.
    pub position: Position,
    /// The highest epoch it has seen.
    pub epoch: Epoch,
}

/// Why a write is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotWritable {
    /// This replica follows; the leader, if known.
    NotLeader(Option<NodeId>),
    /// This replica leads but is not ready yet.
    Recovering,
    /// This replica leads in `epoch`, which the control plane has not
    /// recorded yet (see [`ReplicaMachine::set_recorded_epoch`]).
    EpochNotRecorded {
        /// The epoch it leads in.
        epoch: Epoch,
        /// The partition's epoch in the control plane's map.
        recorded: Epoch,
    },
}

/// One partition replica's role, epoch and readiness.
#[derive(Debug, Clone)]
pub struct ReplicaMachine {
    role: Role,
    leader: Option<NodeId>,
    peers: Vec<NodeId>,
    /// A leader not ready for writes yet.
    recovering: bool,
    /// A follower resyncing after its damaged store was moved aside.
    resyncing: bool,
    epoch: Epoch,
    /// The epoch a caller asked the next leadership to begin (if higher).
    wanted_epoch: Epoch,
    /// The control plane elected this leader (see
    /// [`ReplicaMachine::set_elected`]).
    elected: bool,
    /// The partition's epoch in the control plane's map, when there is a
    /// control plane (see [`ReplicaMachine::set_recorded_epoch`]).
    recorded: Option<Epoch>,
    term: u64,
}

impl ReplicaMachine {
    /// A replica that will play `role` once its first term starts (a
    /// leader is not writable until then); `epoch` is the store's epoch
    /// and `peers` the partition's other replicas.
    pub fn new(role: Role, epoch: Epoch, peers: Vec<NodeId>) -> ReplicaMachine {
        ReplicaMachine {
            role,
            leader: None,
            peers,
            recovering: role == Role::Leader,
            resyncing: false,
            epoch,
            wanted_epoch: 0,
            elected: false,
            recorded: None,
            term: 0,
        }
    }

    /// This replica's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The partition's leader as this replica knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The partition's other replicas (the followers, when leading).
    pub fn peers(&self) -> &[NodeId] {
        &self.peers
    }

    /// The highest epoch seen.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The current term (grows with every role change).
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Sets the partition's other replicas.
    pub fn set_peers(&mut self, peers: Vec<NodeId>) {
        self.peers = peers;
    }

    /// Ready or recovering.
    pub fn state(&self) -> ReplicaState {
        if self.recovering || self.resyncing {
            ReplicaState::Recovering
        } else {
            ReplicaState::Ready
        }
    }

    /// Starts a new term as `role`. A leader's `leader` is itself (`me`);
    /// a follower's must be given. `epoch`, when given, is the epoch a
    /// new leader begins (if it is above every epoch seen).
    pub fn set_role(
        &mut self,
        me: NodeId,
        role: Role,
        leader: Option<NodeId>,
        epoch: Option<Epoch>,
        position: Position,
    ) -> Vec<Effect> {
        self.term += 1;
        self.role = role;
        self.wanted_epoch = epoch.unwrap_or(0);
        self.elected = false;
        let mut effects = vec![Effect::StopTasks];
        match role {
            Role::Leader => {
                self.leader = Some(me);
                self.recovering = true;
                self.resyncing = false;
                effects.push(self.first_leader_step(position));
            }
            Role::Follower => {
                self.leader = leader;
                self.recovering = false;
                if let Some(leader) = leader {
                    effects.push(Effect::Follow { leader });
                }
            }
        }
        effects
    }

    fn first_leader_step(&self, position: Position) -> Effect {
        if self.peers.is_empty() {
            return self.begin_epoch([position.epoch]);
        }
        Effect::AskPositions {
            peers: self.peers.clone(),
        }
    }

    /// Marks this term's leadership as one the control plane elected from
    /// the in-sync set (or an operator promoted): when no peer answers, an
    /// empty replica begins its epoch rather than waiting, since the
    /// controller, not a restart, chose it. A leader that only restarted
    /// into its old leadership is not elected and keeps the no-wipe wait.
    pub fn set_elected(&mut self, elected: bool) {
        self.elected = elected;
    }

    /// A recovering leader heard its peers' positions (silent peers left
    /// out): pull from the most advanced if it is ahead, else begin the
    /// new epoch.
    pub fn on_positions(&mut self, own: Position, replies: &[PeerPosition]) -> Effect {
        let positions: Vec<Position> = replies.iter().map(|r| r.position).collect();
        let wait_for_peers = !self.peers.is_empty() && !self.elected;
        let step = plan::recovery_step(own, &positions, wait_for_peers);
        match step {
            RecoveryStep::PullFrom(i) => match replies.get(i) {
                Some(r) => Effect::PullFrom {
                    node: r.node,
                    target: r.position,
                },
                None => Effect::RetryLater,
            },
            RecoveryStep::Wait => Effect::RetryLater,
            RecoveryStep::Ready => {
                let heard = replies.iter().map(|r| r.epoch.max(r.position.epoch));
                self.begin_epoch(heard.chain([own.epoch]))
            }
        }
    }

    /// The epoch a new leadership begins: above everything seen here and
    /// every epoch given (its own position's, its peers').
    fn begin_epoch(&self, epochs: impl IntoIterator<Item = Epoch>) -> Effect {
        let seen = epochs.into_iter().fold(self.epoch, Epoch::max);
        Effect::BeginEpoch(self.wanted_epoch.max(seen.saturating_add(1)))
    }

    /// The store persisted `epoch`: a leader takes writes from now on.
    pub fn on_epoch_begun(&mut self, epoch: Epoch) {
        self.observe_epoch(epoch);
        if self.role == Role::Leader {
            self.recovering = false;
        }
    }

    /// An epoch was seen (in a source's `LogMatch` or applied entries).
    pub fn observe_epoch(&mut self, epoch: Epoch) {
        self.epoch = self.epoch.max(epoch);
    }

    /// A follower whose store was found damaged resyncs before serving
    /// reads (`recovering`), and serves again once caught up.
    pub fn set_resyncing(&mut self, resyncing: bool) {
        self.resyncing = resyncing && self.role == Role::Follower;
    }

    /// Whether this follower is resyncing.
    pub fn resyncing(&self) -> bool {
        self.resyncing
    }

    /// The partition's epoch as the control plane's map records it (from
    /// every map this node applies). Under a control plane a leader takes
    /// writes only in an epoch the map has recorded: every later election
    /// then begins above it (it picks an epoch above the record), so two
    /// leaders never write in one epoch, even when this leader began its
    /// epoch on its own (a restart, a start from the seeded map) and then
    /// fell silent before the controller heard of it. Without a control
    /// plane (never called) the map has one possible leader per partition
    /// and nothing is required.
    pub fn set_recorded_epoch(&mut self, epoch: Epoch) {
        self.recorded = Some(epoch);
    }

    /// Whether a client write may be taken now.
    pub fn writable(&self) -> Result<(), NotWritable> {
        match (self.role, self.recovering || self.resyncing) {
            (Role::Follower, _) => Err(NotWritable::NotLeader(self.leader)),
            (Role::Leader, true) => Err(NotWritable::Recovering),
            (Role::Leader, false) => match self.recorded {
                Some(recorded) if recorded < self.epoch => Err(NotWritable::EpochNotRecorded {
                    epoch: self.epoch,
                    recorded,
                }),
                _ => Ok(()),
            },
        }
    }

    /// A peer subscribes after `after`, having seen `their_epoch`; `end`
    /// is where `after.epoch` ends in this replica's history (its store's
    /// `end_of_epoch`), and `later` whether this history holds an epoch
    /// after `end`'s.
    pub fn on_subscribe(
        &self,
        their_epoch: Epoch,
        after: Position,
        end: Position,
        later: bool,
    ) -> SubscribeAnswer {
        if self.recovering || self.resyncing {
            let why = "source is recovering".to_string();
            return SubscribeAnswer::Refuse(ErrorCode::Recovering, why);
        }
        if their_epoch > self.epoch {
            let why = format!(
                "source at epoch {} was superseded: the subscriber has seen epoch {their_epoch}",
                self.epoch
            );
            return SubscribeAnswer::Refuse(ErrorCode::StaleEpoch, why);
        }
        // A subscriber past `end` truncates to it, which is right only if
        // a later epoch began here after `end`: its entries past it were
        // never taken by the leader of that epoch. Without one, this
        // replica is behind the subscriber (it lost an unsynced tail, or
        // has not caught up yet), and the subscriber may hold
        // acknowledged writes it lacks (found by the simulation).
        if end.lsn < after.lsn && !later {
            let why = format!(
                "source is behind the subscriber: its history ends at {end:?}, in its newest \
                 epoch, before the subscriber's last entry {after:?}"
            );
            return SubscribeAnswer::Refuse(ErrorCode::Recovering, why);
        }
        SubscribeAnswer::Serve {
            epoch: self.epoch,
            end,
            from: after.lsn.min(end.lsn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(epoch: Epoch, lsn: u64) -> Position {
        Position { epoch, lsn }
    }

    fn peer(node: NodeId, position: Position, epoch: Epoch) -> PeerPosition {
        PeerPosition {
            node,
            position,
            epoch,
        }
    }

    #[test]
    fn a_lone_leader_begins_a_higher_epoch_before_taking_writes() {
        let mut m = ReplicaMachine::new(Role::Leader, 4, Vec::new());
        let effects = m.set_role(0, Role::Leader, None, None, p(4, 10));
        assert_eq!(effects, vec![Effect::StopTasks, Effect::BeginEpoch(5)]);
        assert_eq!(m.writable(), Err(NotWritable::Recovering));
        m.on_epoch_begun(5);
        assert_eq!(m.writable(), Ok(()));
        assert_eq!(m.epoch(), 5);
    }

    #[test]
    fn a_leader_with_peers_catches_up_then_begins_above_every_epoch_heard() {
        let mut m = ReplicaMachine::new(Role::Leader, 2, vec![1, 2]);
        let effects = m.set_role(0, Role::Leader, None, None, p(2, 5));
        assert_eq!(effects[1], Effect::AskPositions { peers: vec![1, 2] });
        let replies = [peer(1, p(2, 9), 2), peer(2, p(2, 7), 2)];
        assert_eq!(
            m.on_positions(p(2, 5), &replies),
            Effect::PullFrom {
                node: 1,
                target: p(2, 9)
            }
        );
        assert_eq!(
            m.on_positions(p(2, 9), &[peer(1, p(2, 9), 2), peer(2, p(3, 7), 3)]),
            Effect::PullFrom {
                node: 2,
                target: p(3, 7)
            },
            "a higher epoch is more advanced even with a lower LSN"
        );
        assert_eq!(m.on_positions(p(3, 7), &replies), Effect::BeginEpoch(4));
        // A peer that began an epoch without writing in it still counts.
        let silent = [peer(1, p(2, 9), 6)];
        assert_eq!(m.on_positions(p(3, 9), &silent), Effect::BeginEpoch(7));
        assert_eq!(m.on_positions(p(0, 0), &[]), Effect::RetryLater);
        // ...unless the control plane elected it: it begins at once.
        m.set_elected(true);
        assert!(matches!(m.on_positions(p(0, 0), &[]), Effect::BeginEpoch(_)));
    }

    #[test]
    fn a_requested_epoch_is_used_only_when_above_everything_seen() {
        let mut m = ReplicaMachine::new(Role::Leader, 3, Vec::new());
        let effects = m.set_role(0, Role::Leader, None, Some(9), p(3, 1));
        assert_eq!(effects[1], Effect::BeginEpoch(9));
        let effects = m.set_role(0, Role::Leader, None, Some(2), p(3, 1));
        assert_eq!(effects[1], Effect::BeginEpoch(4));
    }

    #[test]
    fn under_a_control_plane_a_leader_writes_only_in_a_recorded_epoch() {
        let mut m = ReplicaMachine::new(Role::Leader, 1, Vec::new());
        m.set_recorded_epoch(1);
        // Restarted into its old leadership: it begins above what it saw,
        // which the map does not hold yet.
        let effects = m.set_role(0, Role::Leader, None, Some(1), p(1, 4));
        assert_eq!(effects[1], Effect::BeginEpoch(2));
        m.on_epoch_begun(2);
        assert_eq!(
            m.writable(),
            Err(NotWritable::EpochNotRecorded {
                epoch: 2,
                recorded: 1
            })
        );
        assert_eq!(m.state(), ReplicaState::Ready, "it still serves reads");
        m.set_recorded_epoch(2);
        assert_eq!(m.writable(), Ok(()));
        // Elected at the map's epoch: writable as soon as it has begun.
        let mut m = ReplicaMachine::new(Role::Follower, 2, vec![0]);
        m.set_recorded_epoch(3);
        let effects = m.set_role(1, Role::Leader, None, Some(3), p(2, 4));
        assert_eq!(effects[1], Effect::AskPositions { peers: vec![0] });
        m.set_elected(true);
        assert_eq!(m.on_positions(p(2, 4), &[]), Effect::BeginEpoch(3));
        m.on_epoch_begun(3);
        assert_eq!(m.writable(), Ok(()));
        // Without a control plane nothing is recorded, nothing required.
        let mut m = ReplicaMachine::new(Role::Leader, 7, Vec::new());
        m.set_role(0, Role::Leader, None, None, p(7, 1));
        m.on_epoch_begun(8);
        assert_eq!(m.writable(), Ok(()));
    }

    #[test]
    fn role_changes_open_terms_and_move_writability() {
        let mut m = ReplicaMachine::new(Role::Leader, 1, vec![1]);
        m.set_role(0, Role::Leader, None, None, p(1, 3));
        m.on_epoch_begun(2);
        assert_eq!(m.writable(), Ok(()));
        let term = m.term();
        let effects = m.set_role(0, Role::Follower, Some(1), None, p(2, 3));
        assert_eq!(
            effects,
            vec![Effect::StopTasks, Effect::Follow { leader: 1 }]
        );
        assert!(m.term() > term);
        assert_eq!(m.writable(), Err(NotWritable::NotLeader(Some(1))));
        assert_eq!(m.state(), ReplicaState::Ready);
        // Back to leading: a new epoch again, above the one it led.
        let effects = m.set_role(0, Role::Leader, None, None, p(2, 3));
        assert_eq!(effects[1], Effect::AskPositions { peers: vec![1] });
        assert_eq!(
            m.on_positions(p(2, 3), &[peer(1, p(2, 3), 2)]),
            Effect::BeginEpoch(3)
        );
    }

    #[test]
    fn subscribe_answers_with_log_matching_and_fences_stale_sources() {
        // History here: epoch 1 from LSN 1, epoch 3 from LSN 6, at (4, 7).
        let mut m = ReplicaMachine::new(Role::Leader, 3, vec![1]);
        m.set_role(0, Role::Leader, None, None, p(3, 7));
        let refused = m.on_subscribe(1, p(1, 8), p(1, 5), true);
        assert!(matches!(
            refused,
            SubscribeAnswer::Refuse(ErrorCode::Recovering, _)
        ));
        m.on_epoch_begun(4);
        // A follower that kept epoch 1 up to LSN 8: epoch 1 ended at 5 here.
        assert_eq!(
            m.on_subscribe(1, p(1, 8), p(1, 5), true),
            SubscribeAnswer::Serve {
                epoch: 4,
                end: p(1, 5),
                from: 5
            }
        );
        // A follower that is behind in the current history streams on.
        assert_eq!(
            m.on_subscribe(3, p(3, 6), p(3, 7), false),
            SubscribeAnswer::Serve {
                epoch: 4,
                end: p(3, 7),
                from: 6
            }
        );
        let stale = m.on_subscribe(5, p(3, 6), p(3, 7), false);
        assert!(matches!(
            stale,
            SubscribeAnswer::Refuse(ErrorCode::StaleEpoch, _)
        ));
    }

    /// A source whose history ends before the subscriber's last entry, in
    /// its newest epoch, is behind (it lost an unsynced tail): it must not
    /// have the subscriber truncate what it lacks. Found by the
    /// simulation (seed 3101467 of the `all` profile), where a follower
    /// restarted after a power loss had its more advanced peer cut 598
    /// entries, an acknowledged `acks = "all"` write among them.
    #[test]
    fn a_source_behind_in_its_newest_epoch_refuses_rather_than_truncate() {
        let mut m = ReplicaMachine::new(Role::Follower, 1, vec![0]);
        m.set_role(1, Role::Follower, Some(0), None, p(1, 0));
        let behind = m.on_subscribe(1, p(1, 598), p(1, 0), false);
        assert!(
            matches!(behind, SubscribeAnswer::Refuse(ErrorCode::Recovering, ref why) if why.contains("behind")),
            "{behind:?}"
        );
        // With a later epoch after the end, the subscriber's tail diverges.
        assert_eq!(
            m.on_subscribe(1, p(1, 598), p(1, 0), true),
            SubscribeAnswer::Serve {
                epoch: 1,
                end: p(1, 0),
                from: 0
            }
        );
    }
}

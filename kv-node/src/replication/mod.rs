//! Asynchronous leader→follower replication.
//!
//! # Model
//!
//! Each partition's history is a sequence of entries numbered by LSN and
//! stamped with an epoch; a replica's position is its last applied
//! `(epoch, LSN)`. The leader assigns positions as it writes, acknowledges
//! the client after its own local write, and streams entries to followers
//! in the background: replication is asynchronous, so a follower may lag
//! and an acknowledged write may be missing from followers for a while.
//!
//! A follower subscribes with its position. The leader serves the entries
//! after it from the in-memory [`backlog::Backlog`] while they are there,
//! from its store's history when they were evicted, and with a full
//! snapshot when the store compacted that history away. After catching up
//! the stream carries live writes, and a heartbeat when idle so the
//! follower (and `info`) knows the leader's position. Followers apply
//! entries in LSN order (idempotent by LSN, so a replayed batch is
//! harmless) and acknowledge; the leader reports each follower's lag.
//!
//! # Guarantees and deliberate omissions
//!
//! - The leader never waits for a follower: the stream task awaits the
//!   socket, so a slow follower only slows its own stream, and the memory
//!   the leader spends on it is the bounded backlog plus one batch.
//! - No-wipe rule: a replica never replaces its data with a history behind
//!   its own. A source refuses a subscriber that is ahead of it
//!   ([`plan::on_subscribe`]) and a follower refuses a snapshot older than
//!   itself ([`follower::FollowerMachine`]).
//! - A leader that starts empty or behind first asks its followers for
//!   their positions and pulls from the most advanced before it takes
//!   writes ([`plan::recovery_step`]); until then it refuses reads too (it
//!   may lack what they hold), so clients read a follower. An empty leader
//!   whose followers are all unreachable keeps refusing (it cannot tell a
//!   new partition from a lost disk).
//! - Writes may ask to wait for followers (`acks = "all"`): the in-sync
//!   set and the waiting live in [`insync`], fed by the acks the stream
//!   reads; the stream itself never waits for a write.
//! - Not yet: failover (a follower is never promoted), divergent-tail
//!   truncation.
//!
//! The decisions live in sans-IO code ([`follower`], [`plan`]); the tokio
//! tasks in `transport` only move bytes and call the store.

pub mod backlog;
pub mod follower;
pub mod insync;
pub mod plan;
pub(crate) mod transport;

//! Asynchronous leader→follower replication (`docs/replication.md`).
//!
//! # Model
//!
//! Each partition's history is a sequence of entries numbered by LSN and
//! stamped with the epoch of the leader that wrote them; a replica's
//! position is its last applied `(epoch, LSN)`. The leader assigns
//! positions as it writes, acknowledges the client after its own local
//! write, and streams entries to followers in the background: replication
//! is asynchronous, so a follower may lag and an acknowledged write may be
//! missing from followers for a while.
//!
//! A follower subscribes with its position and the highest epoch it has
//! seen. The source answers with log matching first (where the
//! follower's epoch ends in its history, [`epochs`]): the follower
//! truncates a divergent tail into a rollback file, then the source
//! serves the entries after the match from the in-memory
//! [`backlog::Backlog`] while they are there, from its store's history
//! when they were evicted, and with a full snapshot when the store
//! compacted that history away. After catching up the stream carries live
//! writes, and a heartbeat when idle. Followers apply entries in LSN order
//! (idempotent by LSN) and acknowledge; the leader reports each follower's
//! lag.
//!
//! # Guarantees and deliberate omissions
//!
//! - The leader never waits for a follower: the stream task awaits the
//!   socket, so a slow follower only slows its own stream.
//! - Every leadership begins a new epoch, persisted before its first
//!   write and above every epoch the replica has seen
//!   ([`machine::ReplicaMachine`]); a source older than its subscriber is
//!   refused both ways (fencing).
//! - No-wipe rule: a follower refuses a snapshot older than itself
//!   ([`follower::FollowerMachine`]). A leader that starts empty or behind
//!   first asks its peers for their positions and pulls from the most
//!   advanced before it takes writes ([`plan::recovery_step`]); until then
//!   it refuses reads too. An empty leader whose peers are all unreachable
//!   keeps refusing (it cannot tell a new partition from a lost disk).
//! - Nothing is truncated silently: rollback files, counted in `info`.
//! - Roles change at run time (`NodeHandle::set_role`): a role change ends
//!   the replica's *term* (every task of it) and starts the new one.
//! - Writes may ask to wait for followers (`acks = "all"`): the in-sync
//!   set and the waiting live in [`insync`], fed by the acks the stream
//!   reads; the stream itself never waits for a write.
//! - Not yet: failover (nothing elects a leader).
//!
//! The decisions live in sans-IO code ([`machine`], [`source`],
//! [`follower`], [`epochs`], [`plan`]); the tokio tasks in `transport`
//! only move bytes and call the store.

pub mod backlog;
pub mod epochs;
pub mod follower;
pub mod insync;
pub mod machine;
pub mod plan;
mod pull;
#[cfg(test)]
mod sim;
pub mod source;
pub(crate) mod transport;

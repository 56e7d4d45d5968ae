//! The pulling side of replication, as tokio tasks: a follower following
//! its leader, and a new leader catching up from its most advanced peer
//! before it begins its epoch. They move frames and call the replica; the
//! decisions are [`super::follower::FollowerMachine`]'s and
//! [`super::machine::ReplicaMachine`]'s.

use std::sync::Arc;

use futures::StreamExt;
use kv_router::{NodeId, PartitionId};
use tracing::{debug, info, warn};

use super::follower::{Action, FollowerMachine, Local, check_message};
use super::machine::{Effect, PeerPosition};
use super::transport::{RECOVERY_RETRY, begin_epoch, connect, send_request};
use crate::protocol::{Conn, Position, Request, Response};
use crate::replica::Replica;
use crate::server::Shared;
use crate::storage_io;

/// Follows `leader` for one partition until the term ends.
pub(super) async fn follow(shared: Arc<Shared>, replica: Arc<Replica>, leader: NodeId) {
    let mut machine = FollowerMachine::new(crate::net::now());
    loop {
        if let Some(at) = machine.next_tick() {
            tokio::time::sleep_until(at.into()).await;
        }
        if machine.tick(crate::net::now()) != Some(Action::Connect) {
            continue;
        }
        if let Some(conn) = connect(&shared, leader).await {
            let end = session(&shared, &replica, conn, &mut machine, None).await;
            abandon_unfinished_snapshot(&replica, &machine).await;
            debug!(
                partition = replica.partition,
                leader,
                ?end,
                "replication stream ended"
            );
        }
        replica.set_leader_view(false, None);
        machine.disconnected(crate::net::now());
    }
}

/// A stream that broke inside a snapshot leaves it staged: drop it (the
/// live data was never touched).
async fn abandon_unfinished_snapshot(replica: &Arc<Replica>, machine: &FollowerMachine) {
    if machine.in_snapshot() {
        warn!(
            partition = replica.partition,
            "snapshot interrupted; the replica keeps its data"
        );
        storage_io::abandon_snapshot(replica).await;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SessionEnd {
    Disconnected(String),
    TargetReached,
}

/// The replica as the follower machine sees it now; for a `LogMatch`,
/// with its own end of the answer's epoch.
async fn local_view(replica: &Arc<Replica>, message: &Response) -> Result<Local, String> {
    let own_end = match message {
        Response::LogMatch { end, .. } => storage_io::end_of_epoch(replica, end.epoch)
            .await
            .map(Some)
            .map_err(|e| format!("storage: {e}"))?,
        _ => None,
    };
    Ok(Local {
        position: replica.position(),
        epoch: replica.machine().epoch(),
        own_end,
    })
}

/// One subscription to a source, applying what it streams, until it ends
/// or the replica reaches `target`.
async fn session(
    shared: &Shared,
    replica: &Arc<Replica>,
    mut conn: Conn,
    machine: &mut FollowerMachine,
    target: Option<Position>,
) -> SessionEnd {
    let epoch = replica.machine().epoch();
    let Action::Subscribe { after, epoch } = machine.connected(replica.position(), epoch) else {
        return SessionEnd::Disconnected("machine refused to subscribe".into());
    };
    let subscribe = Request::Subscribe {
        partition: replica.partition,
        from: shared.id(),
        after,
        epoch,
    };
    if !send_request(&mut conn, 1, &subscribe).await {
        return SessionEnd::Disconnected("sending subscribe failed".into());
    }
    loop {
        let message = match conn
            .next()
            .await
            .map(|f| f.map(|b| Response::decode(b.freeze())))
        {
            Some(Ok(Ok((_, message)))) => message,
            Some(Ok(Err(e))) => return SessionEnd::Disconnected(format!("bad message: {e}")),
            Some(Err(e)) => return SessionEnd::Disconnected(format!("read failed: {e}")),
            None => return SessionEnd::Disconnected("source closed the stream".into()),
        };
        let max_frame = shared.options.max_frame_bytes;
        if let Err(reason) = check_message(replica.partition, &message, max_frame) {
            warn!(partition = replica.partition, %reason, "refusing a replication message");
            return SessionEnd::Disconnected(reason);
        }
        // An `Entries` (a heartbeat too) says where the source ends now.
        let source_end_known = matches!(message, Response::Entries { .. });
        let local = match local_view(replica, &message).await {
            Ok(local) => local,
            Err(reason) => return SessionEnd::Disconnected(reason),
        };
        let actions = machine.on_message(message, local);
        for action in actions {
            if let Err(reason) = execute(replica, &mut conn, action).await {
                return SessionEnd::Disconnected(reason);
            }
        }
        if machine.is_matched() {
            replica.set_leader_view(true, Some(machine.source_last));
        }
        note_resynced(replica, machine);
        if target.is_some_and(|t| replica.position() >= t) {
            return SessionEnd::TargetReached;
        }
        // The source no longer holds the target (log matching cut it from
        // its history after it answered the position question: it follows
        // a newer leader now) and this replica has everything it has: end,
        // so the recovery asks the peers again instead of waiting forever.
        let has_all = source_end_known && replica.position() >= machine.source_last;
        if target.is_some_and(|t| machine.source_last < t) && has_all {
            return SessionEnd::TargetReached;
        }
    }
}

/// A follower resyncing after its damaged store was moved aside serves
/// again once it has caught up with its leader.
fn note_resynced(replica: &Replica, machine: &FollowerMachine) {
    let resyncing = replica.machine().resyncing();
    let caught_up = machine.is_matched() && replica.position() >= machine.source_last;
    if resyncing && !machine.in_snapshot() && caught_up {
        replica.machine().set_resyncing(false);
        replica.set_problem(String::new());
        info!(partition = replica.partition, position = ?replica.position(), "follower resynced from its leader; serving again");
    }
}

async fn execute(replica: &Arc<Replica>, conn: &mut Conn, action: Action) -> Result<(), String> {
    let blocking = match action {
        Action::Apply(entries) => storage_io::apply(replica, entries).await,
        Action::BeginSnapshot { last } => storage_io::begin_snapshot(replica, last).await,
        Action::Stage(entries) => storage_io::stage(replica, entries).await,
        Action::EndSnapshot { .. } => storage_io::end_snapshot(replica).await,
        Action::Truncate { keep } => {
            warn!(partition = replica.partition, keep, position = ?replica.position(), "log matching: truncating this replica's divergent tail into a rollback file");
            storage_io::truncate_after(replica, keep).await.map(|cut| {
                warn!(partition = replica.partition, removed = cut.removed, rollback = ?cut.rollback, "divergent tail truncated");
            })
        }
        Action::SeenEpoch(epoch) => {
            replica.machine().observe_epoch(epoch);
            return Ok(());
        }
        Action::Ack => {
            let ack = Request::Ack {
                partition: replica.partition,
                applied: replica.position(),
            };
            return if send_request(conn, 1, &ack).await {
                Ok(())
            } else {
                Err("sending ack failed".into())
            };
        }
        Action::Disconnect { reason } => return Err(reason),
        Action::Connect | Action::Subscribe { .. } => return Ok(()),
    };
    blocking.map_err(|e| {
        warn!(partition = replica.partition, error = %e, "applying replicated data failed");
        format!("storage: {e}")
    })
}

/// A new leader's recovery: catch up with its most advanced reachable
/// peer, then begin a new epoch (the decisions are the machine's:
/// [`super::machine::ReplicaMachine::on_positions`]).
pub(super) async fn recover(shared: Arc<Shared>, replica: Arc<Replica>) {
    let p = replica.partition;
    loop {
        let peers = replica.machine().peers().to_vec();
        let replies = ask_positions(&shared, p, &peers).await;
        let effect = replica.machine().on_positions(replica.position(), &replies);
        match effect {
            Effect::BeginEpoch(epoch) => return begin_epoch(&replica, epoch).await,
            Effect::PullFrom { node, target } => {
                info!(partition = p, from = node, ?target, own = ?replica.position(), "leader is behind a peer; catching up before taking writes");
                if let Some(conn) = connect(&shared, node).await {
                    let mut machine = FollowerMachine::recovering(crate::net::now());
                    let _ = machine.tick(crate::net::now());
                    let end = session(&shared, &replica, conn, &mut machine, Some(target)).await;
                    abandon_unfinished_snapshot(&replica, &machine).await;
                    if let SessionEnd::Disconnected(reason) = end {
                        warn!(partition = p, from = node, %reason, "catch-up from peer interrupted");
                    } else if replica.position() >= target {
                        continue;
                    }
                    // (else the peer lost the target: ask again after a pause)
                }
            }
            _ => debug!(
                partition = p,
                "recovering leader: waiting to hear from a peer"
            ),
        }
        tokio::time::sleep(RECOVERY_RETRY).await;
    }
}

/// Asks each node for its position in partition `p`; silent nodes are left
/// out.
async fn ask_positions(shared: &Shared, p: PartitionId, nodes: &[NodeId]) -> Vec<PeerPosition> {
    let asks = nodes.iter().map(|&node| async move {
        let mut conn = connect(shared, node).await?;
        if !send_request(&mut conn, 1, &Request::Position { partition: p }).await {
            return None;
        }
        let frame = tokio::time::timeout(shared.options.peer_timeout, conn.next())
            .await
            .ok()??
            .ok()?;
        match Response::decode(frame.freeze()) {
            Ok((
                _,
                Response::Position {
                    position, epoch, ..
                },
            )) => Some(PeerPosition {
                node,
                position,
                epoch,
            }),
            _ => None,
        }
    });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

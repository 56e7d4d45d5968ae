//! The node's half of the control plane (DESIGN §9, `docs/replication.md`
//! "Failover").
//!
//! - **Voters** (the lowest three ids unless `[control] voters` names
//!   them) run an openraft member whose state machine is kv-control's
//!   cluster map, persisted under `<data_dir>/controller/`. The member
//!   that leads the group is *the controller*: it seeds the map from the
//!   config on the first start, watches heartbeats, elects partition
//!   leaders and records in-sync sets (kv-control's `failover::plan`).
//! - **Every node** heartbeats to the controller every `heartbeat_ms`
//!   with its replicas' positions and, for partitions it leads, its
//!   in-sync set. The controller confirms its own leadership with a
//!   quorum (so a deposed controller grants nothing) and answers with a
//!   *lease*: the node's leaders take writes and leader reads for
//!   `lease_ms` from when the heartbeat was sent. The answer carries the
//!   map when it is newer than the node's; the node applies it *before*
//!   taking the lease, starting a new replication term for every replica
//!   whose role or leader changed.
//! - A node stopping (`NodeHandle::shutdown`) gives its lease up, waits
//!   for its in-sync followers to hold everything it wrote, and says so in
//!   a last heartbeat: the controller hands its leaderships over at once
//!   (controlled shutdown).

mod member;
mod network;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kv_control::failover::{self, ReplicaReport, Timing};
use kv_control::storage::StateMachine;
use kv_control::{Command, ControlState, Liveness, Reply};
use kv_router::{ControlConfig, MapVersion, NodeId, PartitionId, Role};
use kv_control::openraft::ServerState;
use parking_lot::Mutex;
use tracing::{debug, info, warn};

pub(crate) use network::PeerLink;
use member::Member;
use network::Network;

use crate::error::{Error, ErrorCode, Result};
use crate::options::NodeOptions;
use crate::protocol::control::{
    ControlReply, ControlRequest, ControllerInfo, PartitionView,
};
use crate::protocol::{PeerKind, Response};
use crate::replica::Replica;
use crate::replication::transport;
use crate::server::{Shared, error_reply};

/// A controller leader that has heard from no quorum for this long is
/// reported as no leader.
const QUORUM_SILENCE_MS: u64 = 1000;

/// How often the controller leader looks for failed nodes.
const TICK: Duration = Duration::from_millis(100);

/// The control plane as one node runs it.
pub(crate) struct Control {
    config: ControlConfig,
    voters: Vec<NodeId>,
    timing: Timing,
    /// This node's Raft member, on a voter.
    raft: Option<Member>,
    machine: Option<StateMachine>,
    /// Until when this node's leaders may take writes.
    lease_until: Mutex<Option<Instant>>,
    /// The map version this node has applied.
    applied: Mutex<MapVersion>,
    stopping: AtomicBool,
    /// The controller leader's view of the nodes, for the Raft term it
    /// leads in.
    liveness: Mutex<Option<(u64, Liveness)>>,
    /// Held by the controller leader while it decides and commits
    /// elections, and while it answers a heartbeat: a node is never
    /// granted a lease between the decision that it failed and the commit
    /// of the map that moves its leaderships (the heartbeat's reply then
    /// carries that map, which the node applies before taking the lease).
    deciding: tokio::sync::Mutex<()>,
    /// The controller leader as last heard of.
    hint: Mutex<Option<NodeId>>,
}

impl Control {
    /// Opens the Raft member of a voter (its storage under
    /// `<data_dir>/controller/`); other nodes only heartbeat.
    pub async fn open(options: &NodeOptions, config: &ControlConfig) -> Result<Control> {
        let voters = config.voters_among(options.map.nodes());
        let (raft, machine) = if voters.contains(&options.id) {
            let (raft, machine) = open_raft(options, &voters).await?;
            (Some(Member::new(raft)), Some(machine))
        } else {
            (None, None)
        };
        Ok(Control {
            config: config.clone(),
            timing: Timing {
                lease: Duration::from_millis(config.lease_ms),
                margin: Duration::from_millis(config.margin_ms),
            },
            voters,
            raft,
            machine,
            lease_until: Mutex::new(None),
            applied: Mutex::new(0),
            stopping: AtomicBool::new(false),
            liveness: Mutex::new(None),
            deciding: tokio::sync::Mutex::new(()),
            hint: Mutex::new(None),
        })
    }

    /// Whether this node's leaders may take writes and leader reads now.
    pub fn lease_valid(&self) -> bool {
        self.lease_until
            .lock()
            .is_some_and(|until| crate::net::now() < until)
    }

    /// Starts the heartbeat loop, and the controller loop on a voter.
    pub fn start(shared: &Arc<Shared>) {
        let Some(control) = shared.control.clone() else {
            return;
        };
        shared.spawn_until_shutdown(heartbeat_loop(Arc::clone(shared), Arc::clone(&control)));
        if control.raft.is_some() {
            shared.spawn_until_shutdown(controller_loop(Arc::clone(shared), control));
        }
    }

    /// Controlled shutdown: stop taking writes, let the in-sync followers
    /// catch up, ask the controller to hand the leaderships over, and wait
    /// (bounded, and only while the controller answers) until it has; then
    /// stop the Raft member. With `handover` false only the last step.
    pub async fn stop(shared: &Arc<Shared>, handover: bool) {
        let Some(control) = shared.control.clone() else {
            return;
        };
        control.stopping.store(true, Ordering::SeqCst);
        *control.lease_until.lock() = None;
        let lag_max = Duration::from_millis(shared.options.replication.replica_lag_max_ms);
        // Only a partition with an in-sync follower can be handed over.
        let led: Vec<Arc<Replica>> = shared
            .replicas
            .values()
            .filter(|r| r.role() == Role::Leader && !r.insync.in_sync_now(lag_max).is_empty())
            .cloned()
            .collect();
        if handover && !led.is_empty() {
            let deadline = crate::net::now() + HANDOVER_WAIT;
            followers_caught_up(&led, lag_max, deadline).await;
            let mut links = Links::new();
            let mut handed_over = false;
            while crate::net::now() < deadline && !handed_over {
                if heartbeat_once(shared, &control, &mut links).await.is_err() {
                    break;
                }
                handed_over = led.iter().all(|r| r.role() == Role::Follower);
                if !handed_over {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            if handed_over {
                info!(node = shared.id(), partitions = led.len(), "leaderships handed over before stopping");
            } else {
                warn!(node = shared.id(), "stopping before every leadership was handed over");
            }
        }
        if let Some(raft) = &control.raft {
            raft.stop().await;
        }
    }

    /// The voters to ask for the controller leader, in order: the one last
    /// heard of as leader first, then the others.
    fn controller_candidates(&self) -> Vec<NodeId> {
        let hint = *self.hint.lock();
        let others = self.voters.iter().copied().filter(|&v| Some(v) != hint);
        hint.into_iter().chain(others).collect()
    }

    /// The controller's view, as this node knows it.
    fn info(&self, node: NodeId) -> ControllerInfo {
        let (leader, term) = match &self.raft {
            Some(raft) => {
                let m = raft.metrics();
                // A leader cut off from its quorum still believes it leads
                // (openraft keeps the role until it hears of a newer
                // term); it cannot commit, so it is not shown as leader.
                let cut_off = m.state == ServerState::Leader
                    && m.millis_since_quorum_ack.is_none_or(|ms| ms > QUORUM_SILENCE_MS);
                let leader = if cut_off { None } else { m.current_leader };
                (leader, m.current_term)
            }
            None => (*self.hint.lock(), 0),
        };
        let state = self.machine.as_ref().map(StateMachine::state);
        let partitions = state
            .as_ref()
            .map(|s| {
                s.partitions
                    .iter()
                    .enumerate()
                    .map(|(p, r)| PartitionView {
                        partition: u32::try_from(p).unwrap_or(u32::MAX),
                        replicas: r.replicas.clone(),
                        epoch: r.epoch,
                        isr: r.isr.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        ControllerInfo {
            node,
            leader,
            term,
            voters: self.voters.clone(),
            version: *self.applied.lock(),
            partitions,
        }
    }
}

/// How long a stopping node waits for its followers and the handover.
const HANDOVER_WAIT: Duration = Duration::from_secs(5);

async fn open_raft(
    options: &NodeOptions,
    voters: &[NodeId],
) -> Result<(kv_control::Raft, StateMachine)> {
    let dir = options.data_dir.join("controller");
    let open_dir = dir.clone();
    let (log, machine) = crate::net::spawn_blocking(move || kv_control::storage::open(&open_dir))
        .await
        .map_err(|e| Error::io("opening the controller storage", std::io::Error::other(e)))?
        .map_err(|e| Error::io(format!("opening {}", dir.display()), std::io::Error::other(e)))?;
    let config = kv_control::openraft::Config {
        cluster_name: "kv".into(),
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        ..Default::default()
    }
    .validate()
    .map_err(|e| Error::io("controller settings", std::io::Error::other(e)))?;
    let network = Network {
        options: options.clone(),
    };
    let raft = kv_control::Raft::new(options.id, Arc::new(config), network, log, machine.clone())
        .await
        .map_err(|e| Error::io("starting the controller", std::io::Error::other(e)))?;
    let members: std::collections::BTreeSet<NodeId> = voters.iter().copied().collect();
    // Every voter proposes the same membership on its first start;
    // openraft makes that safe.
    let initialized = raft
        .is_initialized()
        .await
        .map_err(|e| Error::io("starting the controller", std::io::Error::other(e)))?;
    if !initialized && let Err(e) = raft.initialize(members).await {
        debug!(node = options.id, error = %e, "controller initialized by another voter");
    }
    Ok((raft, machine))
}

// ---------------------------------------------------------------------------
// Heartbeats (every node)
// ---------------------------------------------------------------------------

async fn heartbeat_loop(shared: Arc<Shared>, control: Arc<Control>) {
    let every = Duration::from_millis(control.config.heartbeat_ms);
    let mut links = Links::new();
    loop {
        if !control.stopping.load(Ordering::SeqCst) {
            let _ = heartbeat_once(&shared, &control, &mut links).await;
        }
        tokio::time::sleep(every).await;
    }
}

/// Open links to the voters, by id.
type Links = std::collections::BTreeMap<NodeId, PeerLink>;

/// One heartbeat to the controller leader (trying the voters in turn when
/// the leader is not known). Applies a newer map, then takes the lease.
async fn heartbeat_once(
    shared: &Arc<Shared>,
    control: &Control,
    links: &mut Links,
) -> std::result::Result<(), String> {
    let stopping = control.stopping.load(Ordering::SeqCst);
    let replicas = serde_json::to_value(reports(shared)).map_err(|e| e.to_string())?;
    let request = ControlRequest::Heartbeat {
        node: shared.id(),
        map_version: *control.applied.lock(),
        replicas: replicas.clone(),
        stopping,
    };
    let candidates = control.controller_candidates();
    let timeout = Duration::from_millis(control.config.lease_ms / 2);
    let mut last_err = String::from("no voter answered");
    for target in candidates {
        let sent = crate::net::now();
        let reply = if target == shared.id() {
            // Bounded like a remote call: the controller may be busy
            // committing an election (see `Control::deciding`).
            let applied = *control.applied.lock();
            let own = heartbeat(control, shared.id(), applied, replicas.clone(), stopping);
            tokio::time::timeout(timeout, own)
                .await
                .map_err(|_| format!("this node's controller did not answer within {timeout:?}"))
        } else {
            links
                .entry(target)
                .or_insert_with(|| PeerLink::new(shared.options.clone(), target))
                .call(&request, timeout)
                .await
        };
        match reply {
            Ok(ControlReply::Heartbeat { lease_ms, state }) => {
                *control.hint.lock() = Some(target);
                if let Some(state) = state {
                    match serde_json::from_value::<ControlState>(state) {
                        Ok(state) => apply_state(shared, control, &state).await,
                        Err(e) => return Err(format!("bad map from the controller: {e}")),
                    }
                }
                if !control.stopping.load(Ordering::SeqCst) {
                    *control.lease_until.lock() = Some(sent + Duration::from_millis(lease_ms));
                }
                return Ok(());
            }
            Ok(ControlReply::NotController { leader }) => {
                *control.hint.lock() = leader;
                last_err = format!("node {target} is not the controller");
            }
            Ok(other) => last_err = format!("unexpected heartbeat reply {other:?}"),
            Err(e) => last_err = e,
        }
    }
    debug!(node = shared.id(), error = %last_err, "heartbeat not answered");
    Err(last_err)
}

/// What this node reports about its replicas.
fn reports(shared: &Shared) -> Vec<ReplicaReport> {
    let lag_max = Duration::from_millis(shared.options.replication.replica_lag_max_ms);
    let me = shared.id();
    shared
        .replicas
        .values()
        .map(|r| {
            let position = r.position();
            let machine = r.machine();
            // A new leader has heard from no follower yet: a set that
            // drops a committed member is reported only once followers had
            // the time to count as in sync (so a leadership change does not
            // empty the committed set); one that only adds members at once.
            let leads = machine.role() == Role::Leader && machine.writable().is_ok();
            let in_sync = leads.then(|| r.insync.in_sync_now(lag_max)).and_then(|mut set| {
                let grows = r.insync.pinned().iter().all(|n| set.contains(n));
                set.push(me);
                (grows || r.term_age() >= lag_max).then_some(set)
            });
            ReplicaReport {
                partition: r.partition,
                position: (position.epoch, position.lsn),
                epoch: machine.epoch(),
                in_sync,
            }
        })
        .collect()
}

/// Makes the replicas follow `state` when it is newer than what this
/// node applied: a new term for every replica whose role or leader
/// changed, and the committed in-sync sets pinned on its leaders.
async fn apply_state(shared: &Arc<Shared>, control: &Control, state: &ControlState) {
    let _guard = shared.map_change.lock().await;
    if state.version <= *control.applied.lock() {
        return;
    }
    let Some(map) = state.map(&shared.options.map) else {
        warn!(node = shared.id(), version = state.version, "the controller's map does not fit this node's config; ignored");
        return;
    };
    *shared.map.write() = Arc::new(map);
    let me = shared.id();
    for replica in shared.replicas.values() {
        let p = replica.partition;
        let Some(record) = state.partition(p) else { continue };
        let Some(leader) = record.leader() else { continue };
        let role = if leader == me { Role::Leader } else { Role::Follower };
        let (current_role, current_leader, started) = {
            let mut m = replica.machine();
            if role == Role::Leader {
                m.set_recorded_epoch(record.epoch);
            }
            (m.role(), m.leader(), m.term() > 0)
        };
        let unchanged = started
            && current_role == role
            && (role == Role::Leader || current_leader == Some(leader));
        if !unchanged {
            if started && current_leader != Some(leader) {
                info!(node = me, partition = p, leader, epoch = record.epoch, "partition leader changed");
            }
            let epoch = (role == Role::Leader).then_some(record.epoch);
            // Moved here from another node (an election, a transfer), not
            // a restart into the leadership this node already had.
            let elected = started && current_leader.is_some_and(|l| l != me);
            transport::start_term(shared, replica, role, Some(leader), epoch, elected).await;
        }
        if role == Role::Leader {
            replica
                .insync
                .pin(record.isr.iter().copied().filter(|&n| n != me));
        }
    }
    *control.applied.lock() = state.version;
    remember(shared, state).await;
}

/// The file a node keeps the last map it applied in, so that after a
/// restart it opens its stores in the roles the controller gave them
/// (a damaged follower store is then resynced, not reported failed).
const LAST_MAP_FILE: &str = "CONTROL_MAP";

/// Writes `state` as this node's last applied map (best effort: a node
/// without it starts from the config's roles and waits for the map).
async fn remember(shared: &Shared, state: &ControlState) {
    let Ok(bytes) = serde_json::to_vec(state) else {
        return;
    };
    let dir = shared.options.data_dir.clone();
    let written = crate::net::spawn_blocking(move || {
        kv_storage::durable::write_atomic(&dir, LAST_MAP_FILE, &bytes)
    })
    .await;
    if let Ok(Err(e)) = written {
        warn!(node = shared.id(), error = %e, "could not keep the applied map");
    }
}

/// The map this node last applied (see [`LAST_MAP_FILE`]), laid over the
/// config's map, when there is one that fits it.
pub(crate) fn last_applied_map(options: &NodeOptions) -> Option<kv_router::ClusterMap> {
    let bytes = std::fs::read(options.data_dir.join(LAST_MAP_FILE)).ok()?;
    let state: ControlState = serde_json::from_slice(&bytes).ok()?;
    let map = state.map(&options.map)?;
    // Only the leaders may differ from the config: a config that moves
    // replicas is checked (and refused) against the config itself.
    let same_replicas = (0..map.partition_count()).all(|p| {
        let mut ours = map.replicas(p).unwrap_or(&[]).to_vec();
        let mut configured = options.map.replicas(p).unwrap_or(&[]).to_vec();
        ours.sort_unstable();
        configured.sort_unstable();
        ours == configured
    });
    same_replicas.then_some(map)
}

// ---------------------------------------------------------------------------
// The controller (voters)
// ---------------------------------------------------------------------------

async fn controller_loop(shared: Arc<Shared>, control: Arc<Control>) {
    let (Some(raft), Some(machine)) = (control.raft.as_ref(), control.machine.clone()) else {
        return;
    };
    let me = shared.id();
    let mut known_leader = None;
    loop {
        tokio::time::sleep(TICK).await;
        let metrics = raft.metrics();
        if metrics.current_leader != known_leader {
            known_leader = metrics.current_leader;
            info!(node = me, controller = ?known_leader, term = metrics.current_term, "controller leader changed");
        }
        if metrics.state != ServerState::Leader {
            *control.liveness.lock() = None;
            continue;
        }
        let _deciding = control.deciding.lock().await;
        let state = machine.state();
        let commands = if state.is_initialized() {
            let now = crate::net::now();
            let mut live = control.liveness.lock();
            let liveness = liveness_of_term(&mut live, metrics.current_term);
            failover::plan(&state, liveness, now, &control.timing)
        } else {
            vec![ControlState::init_from(&shared.options.map)]
        };
        for command in commands {
            if propose(raft, me, command).await.is_none() {
                return;
            }
        }
    }
}

/// Proposes `command` and logs what came of it; `None` when the member
/// is stopping.
async fn propose(raft: &Member, me: NodeId, command: Command) -> Option<()> {
    let election = matches!(command, Command::Elect { .. });
    let proposed = command.clone();
    match raft.call(|raft| async move { raft.client_write(proposed).await }).await? {
        Ok(written) => match written.data {
            Reply::Applied { version } if election => {
                info!(node = me, ?command, version, "controller elected a partition leader");
            }
            Reply::Applied { .. } => {}
            Reply::Refused(why) => debug!(node = me, ?command, %why, "controller command refused"),
        },
        Err(e) => debug!(node = me, error = %e, "controller command not committed"),
    }
    Some(())
}

// ---------------------------------------------------------------------------
// Serving control requests
// ---------------------------------------------------------------------------

/// Answers a `Control` request that arrived on a connection of `kind`.
pub(crate) async fn handle(shared: &Arc<Shared>, kind: PeerKind, body: Bytes) -> Response {
    let request: ControlRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_reply(
                ErrorCode::InvalidRequest,
                None,
                format!("bad control request: {e}"),
            );
        }
    };
    let peer_only = matches!(
        request,
        ControlRequest::Raft { .. } | ControlRequest::Heartbeat { .. }
    );
    if peer_only && kind == PeerKind::Client {
        return error_reply(
            ErrorCode::Unauthorized,
            None,
            "Raft messages and heartbeats need an authenticated peer connection".into(),
        );
    }
    if let (PeerKind::Node(from), ControlRequest::Heartbeat { node, .. }) = (kind, &request)
        && from != *node
    {
        return error_reply(
            ErrorCode::Unauthorized,
            None,
            format!("node {from} sent a heartbeat in the name of node {node}"),
        );
    }
    let Some(control) = shared.control.clone() else {
        return error_reply(
            ErrorCode::InvalidRequest,
            None,
            "this cluster runs without a control plane ([control] failover = false)".into(),
        );
    };
    let reply = handle_local(shared, &control, request).await;
    match serde_json::to_vec(&reply) {
        Ok(body) => Response::Control(Bytes::from(body)),
        Err(e) => error_reply(ErrorCode::Internal, None, e.to_string()),
    }
}

async fn handle_local(shared: &Arc<Shared>, control: &Control, request: ControlRequest) -> ControlReply {
    let failed = |message: String| ControlReply::Failed { message };
    match request {
        ControlRequest::Info => ControlReply::Info(control.info(shared.id())),
        ControlRequest::Raft { rpc, body } => match &control.raft {
            Some(raft) => match raft.call(|raft| network::serve_rpc(raft, rpc, body)).await {
                Some(Ok(body)) => ControlReply::Raft { body },
                Some(Err(e)) => failed(e),
                // The member is stopping: no answer at all. The peer's
                // member is likely stopping too (a whole cluster stops
                // together) and drops the call unanswered; otherwise it
                // times out, as with any node gone. The connection closes
                // when this node stops.
                None => std::future::pending().await,
            },
            None => failed(format!("node {} is not a controller voter", shared.id())),
        },
        ControlRequest::Heartbeat {
            node,
            map_version,
            replicas,
            stopping,
        } => heartbeat(control, node, map_version, replicas, stopping).await,
        ControlRequest::Transfer { partition, node } => {
            transfer(shared, control, partition, node).await
        }
        ControlRequest::Promote {
            partition,
            node,
            unclean,
        } => promote(control, partition, node, unclean).await,
    }
}

/// A node's heartbeat, at the controller leader: confirm the leadership
/// with a quorum (a deposed controller grants nothing), record the node,
/// grant the lease and send the map when the node's is older.
async fn heartbeat(
    control: &Control,
    node: NodeId,
    map_version: MapVersion,
    replicas: serde_json::Value,
    stopping: bool,
) -> ControlReply {
    let Some(raft) = leading(control) else {
        return not_controller(control);
    };
    let _deciding = control.deciding.lock().await;
    let received = crate::net::now();
    let confirmed = raft
        .call(|raft| async move { raft.ensure_linearizable().await })
        .await;
    if !matches!(confirmed, Some(Ok(_))) {
        return not_controller(control);
    }
    let reports: Vec<ReplicaReport> = serde_json::from_value(replicas).unwrap_or_default();
    {
        let term = raft.metrics().current_term;
        let mut live = control.liveness.lock();
        let liveness = liveness_of_term(&mut live, term);
        if stopping {
            liveness.departed(node);
        } else {
            liveness.heard(node, received, reports);
        }
    }
    let state = control.machine.as_ref().map(StateMachine::state);
    let newer = state
        .filter(|s| s.version > map_version)
        .and_then(|s| serde_json::to_value(s).ok());
    ControlReply::Heartbeat {
        lease_ms: if stopping { 0 } else { control.config.lease_ms },
        state: newer,
    }
}

/// The view of the nodes for the Raft term this node leads in: a fresh one
/// (every node given a whole failure timeout from now) when the term
/// changed, even if this node led an earlier term too (another controller
/// may have granted leases in between).
fn liveness_of_term(live: &mut Option<(u64, Liveness)>, term: u64) -> &mut Liveness {
    if live.as_ref().is_none_or(|(t, _)| *t != term) {
        *live = None;
    }
    &mut live.get_or_insert_with(|| (term, Liveness::new(crate::net::now()))).1
}

/// This node's Raft member, when it leads the controller group.
fn leading(control: &Control) -> Option<&Member> {
    let raft = control.raft.as_ref()?;
    (raft.metrics().state == ServerState::Leader).then_some(raft)
}

fn not_controller(control: &Control) -> ControlReply {
    let leader = match &control.raft {
        Some(raft) => raft.metrics().current_leader,
        None => *control.hint.lock(),
    };
    ControlReply::NotController { leader }
}

/// `kv cluster transfer` at the partition's leader: stop taking writes
/// for it, wait until `node` holds everything written, then have the
/// controller elect `node`. On any failure the leader takes writes again.
async fn transfer(
    shared: &Arc<Shared>,
    control: &Control,
    partition: PartitionId,
    node: NodeId,
) -> ControlReply {
    let failed = |message: String| ControlReply::Failed { message };
    let Some(replica) = shared.replicas.get(&partition) else {
        return failed(format!("node {} holds no replica of partition {partition}", shared.id()));
    };
    if replica.role() != Role::Leader {
        return failed(format!("node {} does not lead partition {partition}", shared.id()));
    }
    let holds = shared
        .map
        .read()
        .replicas(partition)
        .is_some_and(|r| r.contains(&node));
    if !holds {
        return failed(format!("node {node} holds no replica of partition {partition}"));
    }
    let lag_max = Duration::from_millis(shared.options.replication.replica_lag_max_ms);
    if !replica.insync.in_sync_now(lag_max).contains(&node) {
        return failed(format!("node {node} is not in sync for partition {partition}; only an in-sync replica takes over without losing writes (or use promote --unclean)"));
    }
    replica.handing_over.store(true, Ordering::SeqCst);
    let end = replica.position();
    let deadline = tokio::time::Instant::now() + HANDOVER_WAIT;
    if !replica.insync.wait_acked(&[node], end, deadline).await {
        replica.handing_over.store(false, Ordering::SeqCst);
        return failed(format!("node {node} did not catch up within {HANDOVER_WAIT:?}; partition {partition} stays here"));
    }
    let reply = ask_controller(shared, control, partition, node).await;
    match &reply {
        ControlReply::Done { .. } => {
            // Follow the new map at once rather than at the next heartbeat.
            let _ = heartbeat_once(shared, control, &mut Links::new()).await;
        }
        _ => replica.handing_over.store(false, Ordering::SeqCst),
    }
    reply
}

/// Asks the controller leader (this node's own member when it leads) for
/// a clean election of `node` in `partition`, trying the voters in turn.
async fn ask_controller(
    shared: &Arc<Shared>,
    control: &Control,
    partition: PartitionId,
    node: NodeId,
) -> ControlReply {
    let request = ControlRequest::Promote {
        partition,
        node,
        unclean: false,
    };
    let candidates = control.controller_candidates();
    let timeout = Duration::from_secs(2);
    let mut last = ControlReply::Failed {
        message: "no controller voter answered".into(),
    };
    for target in candidates {
        let reply = if target == shared.id() {
            promote(control, partition, node, false).await
        } else {
            match PeerLink::new(shared.options.clone(), target).call(&request, timeout).await {
                Ok(reply) => reply,
                Err(message) => ControlReply::Failed { message },
            }
        };
        match reply {
            ControlReply::NotController { .. } | ControlReply::Failed { .. } => last = reply,
            done => return done,
        }
    }
    last
}

/// An election an operator asked for: clean (from a transfer: the target
/// must be in the in-sync set) or unclean (`kv cluster promote --unclean`).
async fn promote(
    control: &Control,
    partition: PartitionId,
    node: NodeId,
    unclean: bool,
) -> ControlReply {
    let (Some(raft), Some(machine)) = (leading(control), control.machine.as_ref()) else {
        return not_controller(control);
    };
    let state = machine.state();
    let Some(record) = state.partition(partition) else {
        return ControlReply::Failed {
            message: format!("partition {partition} does not exist"),
        };
    };
    if record.leader() == Some(node) {
        return ControlReply::Done {
            version: state.version,
            behind: Some(0),
        };
    }
    // A clean move comes from a transfer, which waited until `node` held
    // everything; an unclean one lacks what the old leader last reported.
    let behind = if unclean {
        control
            .liveness
            .lock()
            .as_ref()
            .and_then(|(_, live)| live.behind(partition, node, record.leader()?))
    } else {
        Some(0)
    };
    let isr = if unclean {
        vec![node]
    } else {
        record.isr.clone()
    };
    let command = Command::Elect {
        partition,
        leader: node,
        epoch: record.epoch + 1,
        isr,
        expect_epoch: record.epoch,
        unclean,
    };
    let Some(written) = raft
        .call(|raft| async move { raft.client_write(command).await })
        .await
    else {
        return ControlReply::Failed {
            message: "the controller is stopping".into(),
        };
    };
    match written {
        Ok(written) => match written.data {
            Reply::Applied { version } => {
                info!(partition, leader = node, unclean, ?behind, version, "operator moved a partition leader");
                ControlReply::Done { version, behind }
            }
            Reply::Refused(message) => ControlReply::Failed { message },
        },
        Err(e) => ControlReply::Failed {
            message: e.to_string(),
        },
    }
}

/// Waits (until `deadline`) until every in-sync follower of each of `led`
/// has acknowledged the leader's last position.
async fn followers_caught_up(led: &[Arc<Replica>], lag_max: Duration, deadline: Instant) {
    let deadline = tokio::time::Instant::from_std(deadline);
    for replica in led {
        let followers = replica.insync.in_sync_now(lag_max);
        let _ = replica
            .insync
            .wait_acked(&followers, replica.position(), deadline)
            .await;
    }
}

//! Client histories against a real cluster under faults, checked with
//! kv-check: five `ClusterClient` processes put (every value unique),
//! batch (`mset`), delete and read four keys (one per partition) while a
//! seeded nemesis moves leaderships (`transfer`), restarts nodes with a
//! controlled shutdown and, in one scenario, stops nodes without handing
//! their leaderships over. Every request's invocation and completion is
//! recorded; the first writes and,
//! once the cluster has healed, a final leader read of every key are in
//! the history too.
//!
//! Checked, never more than one node down (each partition keeps an
//! in-sync replica): leader reads and writes are linearizable per key (so
//! no acknowledged write is lost), no read returns a value nobody wrote,
//! and every replica ends holding what its leader answers. Two scenarios:
//! `acks = "all"` under every fault; `acks = "leader"` under planned
//! moves only (those lose nothing either).
//!
//! The schedule comes from a seed (printed on failure, with the whole
//! history saved to the temp directory); timing is real, so a seed does
//! not replay bit for bit: this is a fault test, not the deterministic
//! simulation (`tests/sim.rs`). `KV_HISTORY_SEEDS=N KV_HISTORY_FROM=S`
//! runs more seeds.
// Real sockets on a real runtime: not under the simulator (feature `sim`).
#![cfg(not(feature = "sim"))]

mod common;
mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TestCluster;
use kv_check::{Call, CheckOptions, History, Op, Outcome};
use kv_node::{ClusterClient, NodeOptions};
use kv_router::{AckMode, ClusterConfig, ControlConfig, NodeId};
use workload::{Acked, Process, Rng};

fn acks_all_with_control(o: &mut NodeOptions) {
    o.control = Some(ControlConfig::default());
    o.replication.acks = AckMode::All;
}

fn acks_leader_with_control(o: &mut NodeOptions) {
    o.control = Some(ControlConfig::default());
    o.replication.acks = AckMode::Leader;
}

/// What a run promises, and the faults that keep the promise.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// `acks = "all"`: transfers, controlled restarts and stops without
    /// handover lose no acknowledged write.
    AcksAll,
    /// `acks = "leader"`: only planned moves (transfers, controlled
    /// restarts), which lose no acknowledged write either.
    AcksLeaderPlanned,
}

/// Nanoseconds since the test began.
fn at(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One client process: random puts, batches, deletes and reads of `keys`
/// until `stop`; returns its operations and its acknowledged puts.
async fn client_process(
    process: u32,
    client: ClusterClient,
    keys: Arc<Vec<String>>,
    start: Instant,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> (Vec<Op<String, String>>, Vec<Acked>) {
    let mut me = Process::new(process, seed);
    me.batches = true;
    let mut ops = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        ops.extend(me.step(&client, &keys, || at(start)).await);
        tokio::time::sleep(me.pause()).await;
    }
    (ops, me.acked)
}

/// The faults: every 0.4 to 1 s one of a leadership transfer, a
/// controlled restart, or (`AcksAll` only) a stop without handover and a
/// restart once a new leader took over; at most one node is down at a
/// time.
async fn nemesis(
    cluster: &mut TestCluster,
    client: &ClusterClient,
    rng: &mut Rng,
    scenario: Scenario,
    rounds: u32,
) {
    let nodes = cluster.map.nodes().len() as u64;
    let faults = match scenario {
        Scenario::AcksAll => 3,
        Scenario::AcksLeaderPlanned => 2,
    };
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(400 + rng.below(600))).await;
        let node = rng.below(nodes) as NodeId;
        match rng.below(faults) {
            0 => {
                let map = client.map();
                let p = rng.below(u64::from(map.partition_count())) as u32;
                if let Some(&target) = map.replicas(p).and_then(|r| r.get(1)) {
                    let _ = client.move_leader(p, target, false).await;
                }
            }
            1 => {
                cluster.stop(node).await;
                tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
                cluster.restart(node).await;
            }
            _ => {
                let handle = cluster.nodes[node as usize].take().unwrap();
                handle.shutdown_without_handover().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2_000 + rng.below(1_500))).await;
                cluster.restart(node).await;
            }
        }
    }
}

/// The process id of the first writes and the final reads.
const FINAL: u32 = 99;

async fn run_seed(scenario: Scenario, seed: u64) {
    let tweak = match scenario {
        Scenario::AcksAll => acks_all_with_control,
        Scenario::AcksLeaderPlanned => acks_leader_with_control,
    };
    let mut cluster = TestCluster::start_with(ClusterConfig::default_topology(), tweak).await;
    let client = cluster.client();
    let keys: Vec<String> = (0..cluster.map.partition_count())
        .flat_map(|p| common::keys_in(&cluster.map, p, 1, "history"))
        .collect();
    let keys = Arc::new(keys);
    // Every partition takes writes before the clients start; these first
    // writes are in the history too.
    let start = Instant::now();
    let mut ops = Vec::new();
    for key in keys.iter() {
        let invoked = at(start);
        common::put_named(&client, [key]).await;
        ops.push(Op {
            process: FINAL,
            key: key.clone(),
            call: Call::Put(key.clone()),
            invoked,
            returned: Some(at(start)),
            outcome: Outcome::Ok,
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    let processes: Vec<_> = (0..5)
        .map(|process| {
            tokio::spawn(client_process(
                process,
                cluster.client(),
                Arc::clone(&keys),
                start,
                Arc::clone(&stop),
                seed * 31 + u64::from(process),
            ))
        })
        .collect();
    let mut rng = Rng::new(seed);
    nemesis(&mut cluster, &client, &mut rng, scenario, 8).await;
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for p in processes {
        let (done, puts) = p.await.unwrap();
        ops.extend(done);
        acked.extend(puts);
    }
    if let Err(e) = workload::one_writer_per_epoch(&acked) {
        panic!("{scenario:?} seed {seed}: more than one writer per epoch:\n{e}");
    }

    // Healed: every node runs. The final leader reads join the history.
    cluster.wait_replicated(Duration::from_secs(20)).await;
    for key in keys.iter() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (invoked, read) = loop {
            let invoked = at(start);
            match client.get(key.as_bytes()).await {
                Ok(read) if !read.stale => break (invoked, read),
                other => assert!(
                    Instant::now() < deadline,
                    "{scenario:?} seed {seed}: no leader answered for {key}: {other:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        ops.push(Op {
            process: FINAL,
            key: key.clone(),
            call: Call::Get,
            invoked,
            returned: Some(at(start)),
            outcome: Outcome::Value(read.value.map(|v| v.render())),
        });
    }
    // Every replica holds what its leader answered.
    let map = client.map();
    for op in ops
        .iter()
        .filter(|op| op.process == FINAL && op.call == Call::Get)
    {
        let Outcome::Value(leader_has) = &op.outcome else {
            unreachable!("final reads are answered")
        };
        let p = map.partition_of(op.key.as_bytes());
        for &node in map.replicas(p).unwrap() {
            let held = client.node(node).unwrap().get(op.key.as_bytes()).await;
            let held = held
                .unwrap_or_else(|e| {
                    panic!(
                        "{scenario:?} seed {seed}: node {node} did not answer for {}: {e}",
                        op.key
                    )
                })
                .map(|b| kv_codec::decode(&b).unwrap().render());
            assert_eq!(
                &held, leader_has,
                "{scenario:?} seed {seed}: node {node} differs on {}",
                op.key
            );
        }
    }
    eprintln!("{scenario:?} seed {seed}: {} ops checked", ops.len());
    let history = History::from_ops(ops).expect("the recorder keeps ops consistent");
    let report = kv_check::check(&history, &CheckOptions::default());
    if !report.is_ok() {
        let path = std::env::temp_dir().join(format!("kv-history-seed-{seed}.txt"));
        let lines: Vec<String> = history.ops().iter().map(|o| o.to_string()).collect();
        let saved = std::fs::write(&path, lines.join("\n"));
        panic!(
            "{scenario:?} seed {seed} (whole history: {} {saved:?}):\n{report}",
            path.display()
        );
    }
    cluster.shutdown().await;
}

/// The seeds to run: 1 to 4; `KV_HISTORY_SEEDS=N` (and
/// `KV_HISTORY_FROM=S`, default 1) runs N seeds from S instead, for long
/// runs.
fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map_or(default, |v| v.parse().expect("a number"))
    };
    let from = var("KV_HISTORY_FROM", 1);
    from..from + var("KV_HISTORY_SEEDS", 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_with_acks_all_under_crashes_and_moves_are_linearizable() {
    for seed in seeds() {
        run_seed(Scenario::AcksAll, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histories_with_acks_leader_under_planned_moves_are_linearizable() {
    for seed in seeds() {
        run_seed(Scenario::AcksLeaderPlanned, seed).await;
    }
}

/// The one-writer-per-epoch check both history tests apply to their
/// acknowledged puts: two nodes writing one partition's epoch, or two puts
/// at one position, fail it; leaders taking turns in rising epochs pass.
#[test]
fn the_one_writer_per_epoch_check_fails_on_two_writers() {
    use kv_node::protocol::Position;
    let put = |partition, epoch, lsn, node, value: &str| Acked {
        partition,
        position: Position { epoch, lsn },
        node,
        key: "k".into(),
        value: value.into(),
        leader_only: false,
        at: 0,
    };
    let turns = [
        put(0, 1, 1, 0, "a"),
        put(0, 2, 2, 1, "b"),
        put(1, 1, 1, 1, "c"),
    ];
    assert_eq!(workload::one_writer_per_epoch(&turns), Ok(()));

    let two_writers = [put(0, 2, 5, 0, "a"), put(0, 2, 6, 1, "b")];
    let e = workload::one_writer_per_epoch(&two_writers).unwrap_err();
    assert!(e.contains("node 0 and node 1"), "{e}");

    let one_position = [put(0, 2, 5, 0, "a"), put(0, 2, 5, 0, "b")];
    let e = workload::one_writer_per_epoch(&one_position).unwrap_err();
    assert!(e.contains("two puts acknowledged there"), "{e}");
}

//! The client workload both history tests share (`history.rs` on real
//! sockets, `sim.rs` under turmoil): a seeded generator and one recorded
//! operation at a time, checked later with kv-check.

use kv_check::{Call, Op, Outcome};
use kv_codec::Value;
use std::collections::BTreeMap;
use std::time::Duration;

use kv_node::protocol::Position;
use kv_node::{ClusterClient, Error, ErrorCode};
use kv_router::{AckMode, NodeId, PartitionId};

/// xorshift64*: a schedule is named by its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number in `0..n` from the high bits, which are better spread
    /// than the low bits `below` keeps (it stays as it is, since the
    /// fixed seeds' schedules depend on it).
    #[allow(dead_code)] // Only the simulation uses it.
    pub fn pick(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A write's outcome as the client reports it: failed only for the
/// errors documented as "not applied" (no leader could be reached before
/// anything was sent; too few in-sync replicas to accept it; the store
/// failed before applying it).
pub fn written(result: Result<(), Error>) -> Outcome<String> {
    match result {
        Ok(()) => Outcome::Ok,
        Err(
            Error::LeaderUnavailable { .. }
            | Error::Remote {
                code: ErrorCode::NotEnoughReplicas | ErrorCode::Storage,
                ..
            },
        ) => Outcome::Failed,
        Err(_) => Outcome::Unknown,
    }
}

/// An acknowledged put: where the leader said it wrote the value.
#[derive(Clone, Debug)]
pub struct Acked {
    pub partition: PartitionId,
    pub position: Position,
    pub node: NodeId,
    pub key: String,
    pub value: String,
    /// Acknowledged under `acks = "leader"`: on the leader only, so a
    /// failover may cut it from that leader (into a rollback file).
    #[allow(dead_code)] // Only the simulation's rollback check reads it.
    pub leader_only: bool,
    /// When the acknowledgement arrived (the history's clock).
    #[allow(dead_code)] // Only the simulation's rollback check reads it.
    pub at: u64,
}

/// One writer per epoch: no two nodes acknowledged writes of one
/// partition in the same epoch, and no two acknowledged puts share a
/// position. `Err`: each violation, one line each.
pub fn one_writer_per_epoch(acked: &[Acked]) -> Result<(), String> {
    let mut writers: BTreeMap<(PartitionId, u32), NodeId> = BTreeMap::new();
    let mut at: BTreeMap<(PartitionId, Position), &Acked> = BTreeMap::new();
    let mut problems = Vec::new();
    for a in acked {
        let writer = *writers
            .entry((a.partition, a.position.epoch))
            .or_insert(a.node);
        if writer != a.node {
            problems.push(format!(
                "partition {} epoch {}: writes acknowledged by node {writer} and node {} ({:?})",
                a.partition, a.position.epoch, a.node, a
            ));
        }
        if let Some(other) = at.insert((a.partition, a.position), a) {
            problems.push(format!(
                "partition {} position {:?}: two puts acknowledged there: {} = {} by node {} and {} = {} by node {}",
                a.partition, a.position, other.key, other.value, other.node, a.key, a.value, a.node
            ));
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("\n")),
    }
}

/// One client process's operations: half puts (each value unique, named
/// after the process and `count`), a tenth deletes, the rest reads; or
/// only puts, with `acks = "leader"` ([`Process::leader_acks`]).
pub struct Process {
    pub id: u32,
    pub rng: Rng,
    /// Puts sent so far.
    pub count: u64,
    /// The puts acknowledged so far (for [`one_writer_per_epoch`]).
    pub acked: Vec<Acked>,
    /// Only put, with `acks = "leader"` (recorded as unknown: a failover
    /// may lose such a put), for the rollback-file check.
    pub leader_acks: bool,
    /// One operation in ten is a batch (`mset`) of up to three keys
    /// instead of a put.
    pub batches: bool,
    /// One operation in ten is a put with a time to live of 5 ms to
    /// 1.5 s ([`ClusterClient::put_ttl`]) instead of a plain put (not with
    /// [`Process::leader_acks`]), recorded as [`Call::PutTtl`] with the
    /// time to live in nanoseconds (both history tests' unit).
    pub ttls: bool,
}

impl Process {
    pub fn new(id: u32, seed: u64) -> Process {
        Process {
            id,
            rng: Rng::new(seed),
            count: 0,
            acked: Vec::new(),
            leader_acks: false,
            batches: false,
            ttls: false,
        }
    }

    /// Sends one random operation on one of `keys` and records it, times
    /// by `now`: one op, or one per key of a batch. A write that failed is
    /// recorded as failed when the error says it was not applied (the
    /// client's contract, which the check then holds it to), else as
    /// unknown; a failed read says nothing.
    pub async fn step(
        &mut self,
        client: &ClusterClient,
        keys: &[String],
        now: impl Fn() -> u64,
    ) -> Vec<Op<String, String>> {
        let key = keys[self.rng.below(keys.len() as u64) as usize].clone();
        let invoked = now();
        let kind = self.rng.below(10);
        if self.batches && !self.leader_acks && kind == 0 {
            return self.batch(client, keys, key, &now).await;
        }
        let (call, outcome) = match kind {
            _ if self.leader_acks || kind <= 4 => {
                self.count += 1;
                let value = format!("p{}-{}", self.id, self.count);
                let leader_only = self.leader_acks;
                let acks = leader_only.then_some(AckMode::Leader);
                let ttl = (self.ttls && !leader_only && kind == 4).then(|| self.ttl());
                let typed = Value::from_user_input(&value);
                let put = match ttl {
                    Some(ttl) => client.put_ttl(key.as_bytes(), &typed, ttl).await,
                    None => client.put_with(key.as_bytes(), &typed, acks).await,
                };
                if let Ok(w) = &put {
                    self.acked.push(Acked {
                        partition: w.partition,
                        position: w.position,
                        node: w.node,
                        key: key.clone(),
                        value: value.clone(),
                        leader_only,
                        at: now(),
                    });
                }
                let outcome = match written(put.map(|_| ())) {
                    // On the leader only: a failover may lose it.
                    Outcome::Ok if leader_only => Outcome::Unknown,
                    outcome => outcome,
                };
                let call = match ttl {
                    Some(ttl) => Call::PutTtl(value, ttl.as_nanos() as u64),
                    None => Call::Put(value),
                };
                (call, outcome)
            }
            5 => (
                Call::Delete,
                written(client.delete(key.as_bytes()).await.map(|_| ())),
            ),
            _ => match client.get(key.as_bytes()).await {
                Ok(read) => {
                    let call = if read.stale {
                        Call::StaleGet
                    } else {
                        Call::Get
                    };
                    (call, Outcome::Value(read.value.map(|v| v.render())))
                }
                Err(_) => (Call::Get, Outcome::Unknown),
            },
        };
        let returned = (!matches!(outcome, Outcome::Unknown)).then(&now);
        vec![Op {
            process: self.id,
            key,
            call,
            invoked,
            returned,
            outcome,
        }]
    }

    /// A batch (`mset`) of `first` and one or two other keys (fewer when a
    /// draw repeats a key), each with a unique value: one put op per key,
    /// all with the batch's interval and outcome. An error is "not applied" only for a batch within one
    /// partition: across partitions, another partition's part may have
    /// been written (`ClusterClient::mset`).
    async fn batch(
        &mut self,
        client: &ClusterClient,
        keys: &[String],
        first: String,
        now: &impl Fn() -> u64,
    ) -> Vec<Op<String, String>> {
        let invoked = now();
        let mut batch = vec![first];
        for _ in 0..1 + self.rng.below(2) {
            let key = &keys[self.rng.below(keys.len() as u64) as usize];
            if !batch.contains(key) {
                batch.push(key.clone());
            }
        }
        let values: Vec<(String, Value)> = batch
            .iter()
            .map(|_| {
                self.count += 1;
                let value = format!("p{}-{}", self.id, self.count);
                let typed = Value::from_user_input(&value);
                (value, typed)
            })
            .collect();
        let pairs: Vec<(&[u8], &Value)> = batch
            .iter()
            .zip(&values)
            .map(|(k, (_, v))| (k.as_bytes(), v))
            .collect();
        let map = client.map();
        let one_partition = batch
            .iter()
            .all(|k| map.partition_of(k.as_bytes()) == map.partition_of(batch[0].as_bytes()));
        let outcome = match written(client.mset(&pairs).await.map(|_| ())) {
            Outcome::Failed if !one_partition => Outcome::Unknown,
            outcome => outcome,
        };
        let returned = (!matches!(outcome, Outcome::Unknown)).then(now);
        batch
            .into_iter()
            .zip(values)
            .map(|(key, (value, _))| Op {
                process: self.id,
                key,
                call: Call::Put(value),
                invoked,
                returned,
                outcome: outcome.clone(),
            })
            .collect()
    }

    /// A time to live: 5 to 100 ms (the ones that may expire before the
    /// key is written again), 100 to 500 ms or 500 ms to 1.5 s (nearly
    /// all overwritten first; reads until then must find them), a third
    /// each.
    fn ttl(&mut self) -> Duration {
        let ms = match self.rng.below(3) {
            0 => 5 + self.rng.below(95),
            1 => 100 + self.rng.below(400),
            _ => 500 + self.rng.below(1_000),
        };
        Duration::from_millis(ms)
    }

    /// A pause of 0 to 3 ms before the next operation.
    pub fn pause(&mut self) -> Duration {
        Duration::from_millis(self.rng.below(4))
    }
}

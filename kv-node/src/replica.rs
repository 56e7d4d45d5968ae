//! One hosted partition replica: its store, its backlog and its
//! replication bookkeeping.
//!
//! Every change to the store goes through a [`Replica`] method so that the
//! backlog sees it and stream tasks are woken (`watch` of the gap-free last
//! LSN, so no wake-up is ever lost between a check and a wait).
//!
//! Client writes on a leader take a striped per-key read-write lock: a
//! read-modify-write ([`Replica::update`]: `INCR`, `SET NX`) holds it
//! exclusively, so it is atomic against every other write of the same key;
//! plain puts and deletes hold it shared, so they never wait for each other
//! and concurrent writers keep sharing one group-commit fsync (the lock is
//! held across the store call, fsync included).
//!
//! The methods block (disk reads, writes, fsync, the store's writer lock):
//! async code calls them only through `storage_io`. The replica's position
//! is cached here, updated by those methods, so `position()` never waits
//! for the store's writer lock and is safe on an async worker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kv_router::{NodeId, PartitionId, Role};
use kv_storage::{Entry, Expiry, Location, Lsn, Position, Since, Store, Ttl, WriteBatch};
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::protocol::{FollowerInfo, Health, KeyTtl, PartitionInfo, ReplicaState, SetTtl};
use crate::replication::backlog::{Backlog, BacklogMiss};

/// The key of the marker entry a follower writes at the end of a snapshot
/// so that its position becomes the snapshot's position even when the
/// newest entries of that history were tombstones (which a snapshot does
/// not carry). User keys are never empty, so the marker cannot collide.
pub(crate) const SNAPSHOT_MARKER_KEY: &[u8] = b"";

/// Number of per-key lock stripes of a replica.
const KEY_LOCK_STRIPES: usize = 64;

/// What a read-modify-write decides, given the current value.
pub(crate) enum Update<T> {
    /// Leave the key as it is; answer `T`.
    Keep(T),
    /// Store this encoded value; answer `T`.
    Put(Bytes, T),
}

pub(crate) struct Replica {
    pub partition: PartitionId,
    key_locks: [RwLock<()>; KEY_LOCK_STRIPES],
    pub role: Role,
    pub store: Arc<Store>,
    backlog: Mutex<Backlog>,
    last_tx: watch::Sender<Lsn>,
    recovering: AtomicBool,
    full_resyncs: AtomicU64,
    followers: Mutex<BTreeMap<NodeId, FollowerInfo>>,
    leader_view: Mutex<(bool, Position)>,
    /// The store's last position, as of the last change made through here.
    position: Mutex<Position>,
    /// What is wrong with this replica, empty when nothing.
    problem: Mutex<String>,
}

impl Replica {
    pub fn new(partition: PartitionId, role: Role, store: Store, backlog_bytes: usize) -> Replica {
        let position = store.last_position();
        let last = position.lsn;
        Replica {
            partition,
            key_locks: std::array::from_fn(|_| RwLock::new(())),
            role,
            store: Arc::new(store),
            backlog: Mutex::new(Backlog::new(last, backlog_bytes)),
            last_tx: watch::channel(last).0,
            recovering: AtomicBool::new(false),
            full_resyncs: AtomicU64::new(0),
            followers: Mutex::new(BTreeMap::new()),
            leader_view: Mutex::new((false, Position::default())),
            position: Mutex::new(position),
            problem: Mutex::new(String::new()),
        }
    }

    /// The last position written or applied (cached: never blocks).
    pub fn position(&self) -> Position {
        *self.position.lock()
    }

    /// Re-reads the store's position after a change (blocking).
    fn refresh_position(&self) {
        let now = self.store.last_position();
        let mut cached = self.position.lock();
        // Concurrent writers may refresh out of order; the store's position
        // only grows except through `begin_snapshot`, which sets it.
        *cached = (*cached).max(now);
    }

    /// Records what is wrong with this replica (shown by `info`).
    pub fn set_problem(&self, problem: String) {
        *self.problem.lock() = problem;
    }

    pub fn state(&self) -> ReplicaState {
        if self.recovering.load(Ordering::Acquire) {
            ReplicaState::Recovering
        } else {
            ReplicaState::Ready
        }
    }

    pub fn set_recovering(&self, recovering: bool) {
        self.recovering.store(recovering, Ordering::Release);
    }

    /// A receiver of the gap-free last LSN, for stream tasks to wait on.
    pub fn subscribe_last(&self) -> watch::Receiver<Lsn> {
        self.last_tx.subscribe()
    }

    fn record(&self, entry: Entry) {
        let mut backlog = self.backlog.lock();
        if backlog.push(entry) {
            let last = backlog.last();
            drop(backlog);
            self.last_tx.send_replace(last);
        }
    }

    fn stripe(&self, key: &[u8]) -> usize {
        // The high half: the low bits already chose the partition.
        ((kv_router::key_hash(key) >> 32) % KEY_LOCK_STRIPES as u64) as usize
    }

    fn stripe_lock(&self, stripe: usize) -> &RwLock<()> {
        &self.key_locks[stripe % KEY_LOCK_STRIPES]
    }

    fn key_lock(&self, key: &[u8]) -> &RwLock<()> {
        self.stripe_lock(self.stripe(key))
    }

    pub fn put(&self, key: Bytes, value: Bytes) -> Result<Position, kv_storage::Error> {
        let _key = self.key_lock(&key).read();
        self.put_locked(key, value, None)
    }

    /// Writes a key that expires `ttl` from now by this replica's clock.
    pub fn put_expiring(
        &self,
        key: Bytes,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Position, kv_storage::Error> {
        let _key = self.key_lock(&key).read();
        let at = self.expiry_at(ttl);
        self.put_locked(key, value, Some(at))
    }

    /// The unix time (ms) `ttl` from now by the store's clock.
    fn expiry_at(&self, ttl: Duration) -> u64 {
        Expiry::After(ttl).at(self.store.now_ms())
    }

    fn put_locked(
        &self,
        key: Bytes,
        value: Bytes,
        expiry: Option<u64>,
    ) -> Result<Position, kv_storage::Error> {
        let written = match expiry {
            Some(at) => self.store.put_with_expiry(&key, &value, Expiry::At(at)),
            None => self.store.put(&key, &value),
        };
        // Even a failed put may have written (a failed fsync after it).
        self.refresh_position();
        let position = written?;
        self.record(Entry {
            position,
            key,
            value: Some(value),
            expiry,
        });
        Ok(position)
    }

    /// Reads `key`, lets `decide` choose, and writes what it chose (with
    /// the expiry `ttl` says), with no other client write of `key` in
    /// between.
    pub fn update<T>(
        &self,
        key: Bytes,
        ttl: SetTtl,
        decide: impl FnOnce(Option<Bytes>) -> Update<T>,
    ) -> Result<T, kv_storage::Error> {
        let _key = self.key_lock(&key).write();
        match decide(self.store.get(&key)?) {
            Update::Keep(answer) => Ok(answer),
            Update::Put(value, answer) => {
                let expiry = self.resolve_ttl(&key, ttl)?;
                self.put_locked(key, value, expiry).map(|_| answer)
            }
        }
    }

    /// The expiry a write of `key` gets under `ttl` (the key's lock held).
    fn resolve_ttl(&self, key: &[u8], ttl: SetTtl) -> Result<Option<u64>, kv_storage::Error> {
        Ok(match ttl {
            SetTtl::Clear => None,
            SetTtl::After(d) => Some(self.expiry_at(d)),
            SetTtl::Keep => match self.store.expiry(key)? {
                Ttl::ExpiresAt(at) => Some(at),
                Ttl::Missing | Ttl::Persistent => None,
            },
        })
    }

    /// Sets (`Some`: `ttl` from now, deleting the key when zero) or clears
    /// (`None`) an existing key's expiry; false when nothing was written
    /// (no such key, or clearing an expiry it does not have).
    pub fn expire(&self, key: Bytes, ttl: Option<Duration>) -> Result<bool, kv_storage::Error> {
        let _key = self.key_lock(&key).read();
        let expiry = ttl.map(|d| Expiry::At(self.expiry_at(d)));
        let written = self.store.expire(&key, expiry);
        self.refresh_position();
        match written? {
            Some(entry) => {
                self.record(entry);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// A key's time to live by this replica's clock (memory only).
    pub fn ttl(&self, key: &[u8]) -> Result<KeyTtl, kv_storage::Error> {
        let now = self.store.now_ms();
        Ok(match self.store.expiry(key)? {
            Ttl::Missing => KeyTtl::Missing,
            Ttl::Persistent => KeyTtl::Persistent,
            Ttl::ExpiresAt(at) => KeyTtl::Expires(Duration::from_millis(at.saturating_sub(now))),
        })
    }

    /// Active expiry (leader only): deletes up to `max_keys` keys whose
    /// time has come, with tombstones that replicate like any delete.
    /// Returns how many.
    pub fn expire_due(&self, max_keys: usize) -> Result<usize, kv_storage::Error> {
        let deleted = self.store.expire_due(max_keys);
        self.refresh_position();
        let deleted = deleted?;
        let n = deleted.len();
        deleted.into_iter().for_each(|e| self.record(e));
        Ok(n)
    }

    /// Writes every pair with one store batch (one `write(2)`, one sync,
    /// all or none after a crash), holding each key's lock shared.
    pub fn put_batch(&self, pairs: Vec<(Bytes, Bytes)>) -> Result<Position, kv_storage::Error> {
        let mut stripes: Vec<usize> = pairs.iter().map(|(k, _)| self.stripe(k)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        // Taken in stripe order, so two batches never wait on each other.
        let _locks: Vec<_> = stripes
            .iter()
            .map(|&s| self.stripe_lock(s).read())
            .collect();
        let mut batch = WriteBatch::new();
        for (key, value) in &pairs {
            batch.put(key, value);
        }
        let written = self.store.write_batch(&batch);
        self.refresh_position();
        let Some(last) = written? else {
            return Ok(self.position());
        };
        // A batch of puts writes every record, with consecutive LSNs.
        let first = last.lsn + 1 - pairs.len() as u64;
        for (lsn, (key, value)) in (first..).zip(pairs) {
            let position = Position { lsn, ..last };
            self.record(Entry {
                position,
                key,
                value: Some(value),
                expiry: None,
            });
        }
        Ok(last)
    }

    pub fn delete(&self, key: Bytes) -> Result<bool, kv_storage::Error> {
        let _key = self.key_lock(&key).read();
        let deleted = self.store.delete(&key);
        self.refresh_position();
        match deleted? {
            Some(position) => {
                self.record(Entry {
                    position,
                    key,
                    value: None,
                    expiry: None,
                });
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, kv_storage::Error> {
        self.store.get(key)
    }

    pub fn location(&self, key: &[u8]) -> Location {
        self.store.location(key)
    }

    /// Applies replicated entries in order (idempotent by LSN), with one
    /// sync for the batch; the store raises its epoch to the entries'.
    pub fn apply(&self, entries: Vec<Entry>) -> Result<(), kv_storage::Error> {
        let before = self.store.last_lsn();
        let result = self.store.apply_batch(&entries);
        self.refresh_position();
        // Whatever was written, even before an error, goes to the backlog.
        let last = self.store.last_lsn();
        for entry in entries {
            let lsn = entry.position.lsn;
            if lsn > before && lsn <= last {
                self.record(entry);
            }
        }
        result.map(|_| ())
    }

    /// Drops all data before a snapshot is installed.
    pub fn begin_snapshot(&self) -> Result<(), kv_storage::Error> {
        self.full_resyncs.fetch_add(1, Ordering::Relaxed);
        self.backlog.lock().suspend();
        let cleared = self.store.clear();
        *self.position.lock() = self.store.last_position();
        cleared
    }

    /// Completes a snapshot: the replica's position becomes `last`.
    pub fn end_snapshot(&self, last: Position) -> Result<(), kv_storage::Error> {
        if self.store.last_position() < last {
            let marker = Entry {
                position: last,
                key: Bytes::from_static(SNAPSHOT_MARKER_KEY),
                value: None,
                expiry: None,
            };
            self.store.apply(&marker)?;
        }
        self.refresh_position();
        let lsn = self.store.last_lsn();
        self.backlog.lock().reset(lsn);
        self.last_tx.send_replace(lsn);
        Ok(())
    }

    /// Entries after `after` from the backlog, at most about `max_bytes`.
    pub fn backlog_after(&self, after: Lsn, max_bytes: usize) -> Result<Vec<Entry>, BacklogMiss> {
        self.backlog.lock().read_after(after, max_bytes)
    }

    /// Entries after `after` from the store's history, or a snapshot.
    pub fn history_after(&self, after: Lsn, max: usize) -> Result<Since, kv_storage::Error> {
        self.store.entries_since(after, max)
    }

    pub fn count_full_resync(&self) {
        self.full_resyncs.fetch_add(1, Ordering::Relaxed);
    }

    pub fn follower_update(&self, node: NodeId, connected: bool, acked: Option<Position>) {
        let mut followers = self.followers.lock();
        let f = followers.entry(node).or_insert_with(|| unseen(node));
        f.connected = connected;
        if let Some(p) = acked {
            f.acked = p;
        }
    }

    pub fn set_leader_view(&self, connected: bool, leader: Option<Position>) {
        let mut view = self.leader_view.lock();
        view.0 = connected;
        if let Some(p) = leader {
            view.1 = p;
        }
    }

    /// This replica's figures; `followers_of_map` are the partition's
    /// followers in the map, reported (with what their streams told us)
    /// only when this replica leads.
    pub fn info(&self, followers_of_map: &[NodeId]) -> PartitionInfo {
        let stats = self.store.stats();
        let followers = match self.role {
            Role::Leader => {
                let known = self.followers.lock();
                followers_of_map
                    .iter()
                    .map(|&n| known.get(&n).cloned().unwrap_or_else(|| unseen(n)))
                    .collect()
            }
            Role::Follower => Vec::new(),
        };
        let (leader_connected, leader_position) = *self.leader_view.lock();
        PartitionInfo {
            partition: self.partition,
            role: self.role,
            state: self.state(),
            position: self.position(),
            keys: stats.keys,
            disk_bytes: stats.disk_bytes,
            hot_keys: stats.hot_keys,
            full_resyncs: self.full_resyncs.load(Ordering::Relaxed),
            leader_connected,
            leader_position,
            followers,
            health: Health {
                truncated_tail_bytes: stats.truncated_tail_bytes,
                background_errors: stats.background_errors,
                poisoned: stats.poisoned,
                problem: self.problem.lock().clone(),
            },
        }
    }
}

/// A follower no stream has been heard from.
fn unseen(node: NodeId) -> FollowerInfo {
    FollowerInfo {
        node,
        connected: false,
        acked: Position::default(),
    }
}

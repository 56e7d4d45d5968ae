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
//!
//! This is where the node meets its store, so it is where history types
//! cross: kv-storage's `Position`, `Entry` and `Location` come in, the
//! protocol's go out (and entries to apply go the other way), by the
//! `From` conversions in `convert`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use kv_router::{NodeId, PartitionId, Role};
use kv_storage::{Expiry, Install, Since, Store, Truncation, Ttl, WriteBatch};
use parking_lot::{Mutex, MutexGuard, RwLock};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::convert;
use crate::protocol::{
    Entry, Epoch, FollowerInfo, Health, HistoryInfo, KeyTtl, Location, Lsn, PartitionInfo,
    Position, ReplicaState, SetTtl,
};
use crate::replication::backlog::{Backlog, BacklogMiss};
use crate::replication::insync::InSync;
use crate::replication::machine::ReplicaMachine;

/// Number of per-key lock stripes of a replica.
const KEY_LOCK_STRIPES: usize = 64;

/// `entry` with its key and value copied into one allocation of their own
/// (see [`Replica::record_all`]).
fn detached(entry: Entry) -> Entry {
    let key_len = entry.key.len();
    let mut bytes = Vec::with_capacity(key_len + entry.value.as_ref().map_or(0, Bytes::len));
    bytes.extend_from_slice(&entry.key);
    if let Some(v) = &entry.value {
        bytes.extend_from_slice(v);
    }
    let bytes = Bytes::from(bytes);
    Entry {
        key: bytes.slice(..key_len),
        value: entry.value.map(|_| bytes.slice(key_len..)),
        ..entry
    }
}

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
    pub store: Arc<Store>,
    backlog: Mutex<Backlog>,
    last_tx: watch::Sender<Lsn>,
    /// Role, epoch, readiness: every replication decision.
    machine: Mutex<ReplicaMachine>,
    /// A snapshot being staged beside the live data (switched in at its
    /// end; dropped, with the live data untouched, if the stream breaks).
    install: Mutex<Option<Install>>,
    /// Cancelled when the current term ends (a role change or shutdown):
    /// every replication task of the term watches it.
    term_cancel: Mutex<CancellationToken>,
    full_resyncs: AtomicU64,
    /// A leader handing its leadership over (`kv cluster transfer`): no
    /// writes until the term ends (or the handover fails).
    pub handing_over: AtomicBool,
    /// When the current term started.
    term_started: Mutex<std::time::Instant>,
    followers: Mutex<BTreeMap<NodeId, FollowerInfo>>,
    leader_view: Mutex<(bool, Position)>,
    /// The store's last position, as of the last change made through here.
    position: Mutex<Position>,
    /// What is wrong with this replica, empty when nothing.
    problem: Mutex<String>,
    /// Hook (acks): on a leader, its followers' acks and the in-sync set.
    pub insync: InSync,
    /// Every blocking store call on this replica (`storage_io`) holds a
    /// token of this tracker while it runs, so shutdown can wait for the
    /// calls a cancelled task left running on the blocking pool.
    blocking_calls: TaskTracker,
    /// Client puts of concurrent requests waiting to be written together
    /// (`storage_io::put_group`).
    pub(crate) put_queue: crate::storage_io::PutQueue,
}

impl Replica {
    /// A replica playing `role` until its first term starts
    /// (`transport::start_replication`).
    pub fn new(partition: PartitionId, role: Role, store: Store, backlog_bytes: usize) -> Replica {
        let position = Position::from(store.last_position());
        let last = position.lsn;
        let machine = ReplicaMachine::new(role, store.epoch(), Vec::new());
        Replica {
            partition,
            key_locks: std::array::from_fn(|_| RwLock::new(())),
            store: Arc::new(store),
            backlog: Mutex::new(Backlog::new(last, backlog_bytes)),
            last_tx: watch::channel(last).0,
            machine: Mutex::new(machine),
            install: Mutex::new(None),
            term_cancel: Mutex::new(CancellationToken::new()),
            full_resyncs: AtomicU64::new(0),
            handing_over: AtomicBool::new(false),
            term_started: Mutex::new(crate::net::now()),
            followers: Mutex::new(BTreeMap::new()),
            leader_view: Mutex::new((false, Position::default())),
            position: Mutex::new(position),
            problem: Mutex::new(String::new()),
            insync: InSync::default(),
            blocking_calls: TaskTracker::new(),
            put_queue: crate::storage_io::PutQueue::default(),
        }
    }

    /// A token a blocking store call holds while it runs (`storage_io`).
    pub(crate) fn blocking_call(&self) -> TaskTrackerToken {
        self.blocking_calls.token()
    }

    /// Test hook: how many blocking store calls on this replica run now.
    #[cfg(all(test, not(feature = "sim")))]
    pub(crate) fn blocking_calls_running(&self) -> usize {
        self.blocking_calls.len()
    }

    /// Waits until no blocking store call on this replica is running (for
    /// shutdown: a cancelled request may have left one on the blocking
    /// pool). Calls started later are still tracked, but not waited for.
    pub(crate) async fn blocking_calls_ended(&self) {
        self.blocking_calls.close();
        self.blocking_calls.wait().await;
    }

    /// The last position written or applied (cached: never blocks).
    pub fn position(&self) -> Position {
        *self.position.lock()
    }

    /// Re-reads the store's position after a change (blocking).
    fn refresh_position(&self) {
        let now = self.store.last_position().into();
        let mut cached = self.position.lock();
        // Concurrent writers may refresh out of order; the store's position
        // only grows except through a truncation or a snapshot install,
        // which set it.
        *cached = (*cached).max(now);
    }

    /// Records what is wrong with this replica (shown by `info`).
    pub fn set_problem(&self, problem: String) {
        *self.problem.lock() = problem;
    }

    /// The replication machine (role, epoch, readiness), locked briefly.
    pub fn machine(&self) -> MutexGuard<'_, ReplicaMachine> {
        self.machine.lock()
    }

    pub fn state(&self) -> ReplicaState {
        self.machine().state()
    }

    pub fn role(&self) -> Role {
        self.machine().role()
    }

    /// Ends the current term's tasks and returns the new term's token, a
    /// child of `parent` (the node's shutdown token).
    pub fn new_term(&self, parent: &CancellationToken) -> CancellationToken {
        let token = parent.child_token();
        let old = std::mem::replace(&mut *self.term_cancel.lock(), token.clone());
        old.cancel();
        self.insync.reset();
        self.handing_over.store(false, Ordering::SeqCst);
        *self.term_started.lock() = crate::net::now();
        token
    }

    /// How long the current term has run, by the runtime's clock (the one
    /// `term_started` was read from: under the simulation or a paused
    /// tokio clock the system clock's `elapsed` would not move with it).
    pub fn term_age(&self) -> std::time::Duration {
        crate::net::now().saturating_duration_since(*self.term_started.lock())
    }

    /// The current term's token.
    pub fn term_token(&self) -> CancellationToken {
        self.term_cancel.lock().clone()
    }

    /// Where `epoch` ends in this replica's history (log matching;
    /// blocking: the store's writer lock).
    pub fn end_of_epoch(&self, epoch: Epoch) -> Position {
        self.store.end_of_epoch(epoch).into()
    }

    /// Log matching at a source: where `epoch` ends here
    /// ([`Replica::end_of_epoch`]), and whether this history holds an
    /// epoch after that end's (blocking). Only then does it show that a
    /// subscriber's entries past the end diverge; without one, this
    /// replica may just be behind (it lost an unsynced tail).
    pub fn match_point(&self, epoch: Epoch) -> (Position, bool) {
        let end = self.end_of_epoch(epoch);
        let later = self.store.epoch_history().iter().any(|&(e, _)| e > end.epoch);
        (end, later)
    }

    /// Persists `epoch` as the store's new epoch, with its first LSN in the
    /// epoch history (blocking), so every write from now on is stamped
    /// with it.
    pub fn begin_epoch(&self, epoch: Epoch) -> Result<(), kv_storage::Error> {
        self.store.begin_epoch(epoch).map(|_| ())
    }

    /// Truncates the history after `keep` (blocking); the entries cut go
    /// to a rollback file (kv-storage logs them at WARN). The backlog
    /// restarts at the new end.
    pub fn truncate_after(&self, keep: Lsn) -> Result<Truncation, kv_storage::Error> {
        let at = kv_storage::Position {
            epoch: 0,
            lsn: keep,
        };
        let cut = self.store.truncate_after(at);
        *self.position.lock() = self.store.last_position().into();
        let lsn = self.store.last_lsn();
        self.backlog.lock().reset(lsn);
        self.last_tx.send_replace(lsn);
        cut
    }

    /// A receiver of the gap-free last LSN, for stream tasks to wait on.
    pub fn subscribe_last(&self) -> watch::Receiver<Lsn> {
        self.last_tx.subscribe()
    }

    fn record(&self, entry: Entry) {
        self.record_all(std::iter::once(entry));
    }

    /// Records `entries` (in LSN order) under one lock of the backlog, and
    /// wakes the followers' streams once.
    ///
    /// While no replication stream is subscribed (a partition without
    /// followers, or followers not connected), nothing is kept: the window
    /// restarts after these entries, and a stream that subscribes later
    /// reads what precedes the window from the store. Kept entries are
    /// copies: the key and value a request hands over are slices of its
    /// connection's read buffer, and holding them would keep the whole
    /// buffer alive, uncounted by the backlog's byte bound (and make the
    /// connection allocate a fresh buffer for every read).
    fn record_all(&self, entries: impl IntoIterator<Item = Entry>) {
        let mut backlog = self.backlog.lock();
        let last_before = backlog.last();
        if self.last_tx.receiver_count() == 0 {
            let end = entries
                .into_iter()
                .map(|e| e.position.lsn)
                .fold(last_before, Lsn::max);
            if end > last_before {
                backlog.reset(end);
                drop(backlog);
                self.last_tx.send_replace(end);
            }
            return;
        }
        for entry in entries {
            backlog.push(detached(entry));
        }
        let last = backlog.last();
        if last > last_before {
            drop(backlog);
            self.last_tx.send_replace(last);
        }
    }

    fn stripe(&self, key: &[u8]) -> usize {
        // The high half: the low bits already chose the partition.
        ((kv_router::key_hash(key) >> 32) % KEY_LOCK_STRIPES as u64) as usize
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "the index is reduced modulo the array's length"
    )]
    fn stripe_lock(&self, stripe: usize) -> &RwLock<()> {
        &self.key_locks[stripe % KEY_LOCK_STRIPES]
    }

    /// Whether no writer holds the lock of any of `keys` now (a
    /// conditional write holds its key's lock while it reads the old value,
    /// perhaps from disk). A hint for [`crate::storage_io`]'s choice of
    /// thread: the answer may change before the caller takes the locks.
    pub(crate) fn keys_free_now<'a>(&self, mut keys: impl Iterator<Item = &'a [u8]>) -> bool {
        keys.all(|k| self.key_lock(k).try_read().is_some())
    }

    fn key_lock(&self, key: &[u8]) -> &RwLock<()> {
        self.stripe_lock(self.stripe(key))
    }

    /// Test hook: holds `key`'s lock exclusively, so a write of it waits
    /// (in the replica, not in the store) until the guard is dropped.
    #[cfg(test)]
    pub(crate) fn hold_key(&self, key: &[u8]) -> impl Sized + '_ {
        self.key_lock(key).write()
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
        let position = Position::from(written?);
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
                self.record(entry.into());
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
        deleted.into_iter().for_each(|e| self.record(e.into()));
        Ok(n)
    }

    /// Writes every pair with one store batch (one `write(2)`, one sync,
    /// all or none after a crash), holding each key's lock shared; each
    /// pair's position, in order.
    pub fn put_batch(
        &self,
        pairs: Vec<(Bytes, Bytes)>,
    ) -> Result<Vec<Position>, kv_storage::Error> {
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
        let Some(last) = written?.map(Position::from) else {
            return Ok(Vec::new());
        };
        // A batch of puts writes every record, with consecutive LSNs.
        let first = last.lsn + 1 - pairs.len() as u64;
        let positions: Vec<Position> = (first..=last.lsn)
            .map(|lsn| Position { lsn, ..last })
            .collect();
        self.record_all(positions.iter().zip(pairs).map(|(&position, (key, value))| Entry {
            position,
            key,
            value: Some(value),
            expiry: None,
        }));
        Ok(positions)
    }

    /// Deletes `key`; whether it was live (an expired key gets a
    /// tombstone too, and counts as not live).
    pub fn delete(&self, key: Bytes) -> Result<bool, kv_storage::Error> {
        let _key = self.key_lock(&key).read();
        let deleted = self.store.delete(&key);
        self.refresh_position();
        match deleted? {
            // An expired key still gets its tombstone, replicated: a
            // replica whose clock is behind still shows the key.
            Some(deleted) => {
                self.record(Entry {
                    position: deleted.position.into(),
                    key,
                    value: None,
                    expiry: None,
                });
                Ok(deleted.live)
            }
            None => Ok(false),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, kv_storage::Error> {
        self.store.get(key)
    }

    pub fn location(&self, key: &[u8]) -> Location {
        self.store.location(key).into()
    }

    /// Applies replicated entries in order (idempotent by LSN), with one
    /// sync for the batch; the store raises its epoch to the entries'.
    pub fn apply(&self, entries: Vec<Entry>) -> Result<(), kv_storage::Error> {
        let before = self.store.last_lsn();
        let entries: Vec<kv_storage::Entry> = convert::entries(entries);
        let result = self.store.apply_batch(&entries);
        self.refresh_position();
        let epoch = self.store.epoch();
        self.machine().observe_epoch(epoch);
        // Whatever was written, even before an error, goes to the backlog.
        let last = self.store.last_lsn();
        self.record_all(entries.into_iter().filter_map(|entry| {
            let lsn = entry.position.lsn;
            (lsn > before && lsn <= last).then(|| entry.into())
        }));
        result.map(|_| ())
    }

    /// Starts staging a full snapshot taken as of `last` beside the live
    /// data, which stays as it is until [`Replica::end_snapshot`].
    pub fn begin_snapshot(&self, last: Position) -> Result<(), kv_storage::Error> {
        self.full_resyncs.fetch_add(1, Ordering::Relaxed);
        let install = self.store.begin_install(last.into())?;
        *self.install.lock() = Some(install);
        Ok(())
    }

    /// Stages a chunk of the snapshot.
    pub fn stage(&self, entries: Vec<Entry>) -> Result<(), kv_storage::Error> {
        match self.install.lock().as_mut() {
            Some(install) => install.add(&convert::entries(entries)),
            None => Err(kv_storage::Error::InvalidEntry {
                lsn: entries.first().map_or(0, |e| e.position.lsn),
                reason: "snapshot entries outside a snapshot",
            }),
        }
    }

    /// Switches the staged snapshot in: the replica's position becomes
    /// its `as_of` position.
    pub fn end_snapshot(&self) -> Result<(), kv_storage::Error> {
        let install = self.install.lock().take();
        let committed = match install {
            Some(install) => install.commit(),
            None => Err(kv_storage::Error::InvalidEntry {
                lsn: 0,
                reason: "snapshot end without a snapshot",
            }),
        };
        *self.position.lock() = self.store.last_position().into();
        let lsn = self.store.last_lsn();
        self.backlog.lock().reset(lsn);
        self.last_tx.send_replace(lsn);
        committed
    }

    /// Abandons a snapshot left unfinished (its stream broke): the staged
    /// files go, the live data was never touched.
    pub fn abandon_snapshot(&self) {
        self.install.lock().take();
    }

    /// Entries after `after` from the backlog, at most about `max_bytes`.
    pub fn backlog_after(&self, after: Lsn, max_bytes: usize) -> Result<Vec<Entry>, BacklogMiss> {
        self.backlog.lock().read_after(after, max_bytes)
    }

    /// Up to `max` entries after `after` from the store's history, or
    /// `None` when that history was compacted away (a full resync is
    /// needed). Checks the history floor first, so that the store never
    /// builds its in-memory snapshot (`Since::Snapshot`) for a stream:
    /// full resyncs use the chunked `SnapshotReader`.
    pub fn history_after(
        &self,
        after: Lsn,
        max: usize,
    ) -> Result<Option<Vec<Entry>>, kv_storage::Error> {
        if after < self.store.stats().history_floor {
            return Ok(None);
        }
        match self.store.entries_since(after, max)? {
            Since::Entries(entries) => Ok(Some(convert::entries(entries))),
            Since::Snapshot { .. } => Ok(None),
        }
    }

    pub fn count_full_resync(&self) {
        self.full_resyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// The one place a source learns where a follower is: the position
    /// it subscribed from, then each `Ack` (its applied position). Kept for
    /// `info` and lag; and compaction keeps the history after the slowest
    /// follower heard from (the store's retention watermark), so a lagging
    /// follower catches up from history instead of a snapshot.
    pub fn follower_update(&self, node: NodeId, connected: bool, acked: Option<Position>) {
        let mut followers = self.followers.lock();
        let f = followers.entry(node).or_insert_with(|| unseen(node));
        f.connected = connected;
        if let Some(p) = acked {
            f.acked = p;
        }
        let slowest = followers.values().map(|f| f.acked.lsn).min();
        self.store.set_retention(slowest);
    }

    pub fn set_leader_view(&self, connected: bool, leader: Option<Position>) {
        let mut view = self.leader_view.lock();
        view.0 = connected;
        if let Some(p) = leader {
            view.1 = p;
        }
    }

    /// This replica's figures; its followers (with what their streams told
    /// us) only when it leads.
    pub fn info(&self) -> PartitionInfo {
        let stats = self.store.stats();
        let (role, peers, epoch) = {
            let m = self.machine();
            (m.role(), m.peers().to_vec(), m.epoch())
        };
        let followers = match role {
            Role::Leader => {
                let known = self.followers.lock();
                peers
                    .iter()
                    .map(|&n| known.get(&n).cloned().unwrap_or_else(|| unseen(n)))
                    .collect()
            }
            Role::Follower => Vec::new(),
        };
        let (leader_connected, leader_position) = *self.leader_view.lock();
        let rollback_files = self.store.rollbacks().unwrap_or_default();
        let rollback_files = rollback_files.iter().map(|f| f.display().to_string());
        PartitionInfo {
            partition: self.partition,
            role,
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
            history: HistoryInfo {
                epoch: epoch.max(self.store.epoch()),
                rolled_back: stats.rolled_back_entries,
                rollback_files: rollback_files.collect(),
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
        in_sync: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-sync set's shrink waits for `term_age` (`control::reports`),
    /// so it must read the clock the term's start was read from. With
    /// the system clock's `elapsed` a paused (or simulated) runtime's
    /// terms never aged, and a lagging follower was never reported out.
    #[tokio::test(start_paused = true)]
    async fn a_term_ages_by_the_runtimes_clock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), kv_storage::Options::default()).unwrap();
        let replica = Replica::new(0, Role::Leader, store, 1 << 20);
        replica.new_term(&CancellationToken::new());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(
            replica.term_age() >= Duration::from_secs(3),
            "term age {:?} after 3 s",
            replica.term_age()
        );
        replica.new_term(&CancellationToken::new());
        assert!(replica.term_age() < Duration::from_secs(1));
    }
}

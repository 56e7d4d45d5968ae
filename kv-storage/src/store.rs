//! `Store`: the public face of one partition's store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::cache::HotCache;
use crate::compaction::{self, Scope};
use crate::error::Error;
use crate::fault::FaultPoint;
use crate::inner::{Fill, Inner, Layout, RecordOp, Writer};
use crate::keydir::KeyDir;
use crate::lock::DirLock;
use crate::options::{DEFAULT_HOT_CACHE_BYTES, Options};
use crate::record::Kind;
use crate::recovery;
use crate::stats::{CompactionStats, Counters, Stats, bump, read};
use crate::worker::{self, Signal};
use crate::{Deleted, Epoch, Location, Lsn, Position};

/// One partition's log-structured store. `Send + Sync`: share it as
/// `Arc<Store>`; readers run concurrently, writers are serialised.
pub struct Store {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir`: takes the directory
    /// lock, recovers the key directory from hints and segments, and starts
    /// the background threads.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Store, Error> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let keydir = KeyDir::new();
        let rec = recovery::recover(&dir, &keydir)?;
        let cache = options
            .hot_cache
            .clone()
            .unwrap_or_else(|| HotCache::new(DEFAULT_HOT_CACHE_BYTES));
        let counters = Counters::default();
        bump(&counters.truncated_tail_bytes, rec.truncated_tail_bytes);
        bump(&counters.hint_fallbacks, rec.hint_fallbacks);
        let signal = Signal::default();
        for id in &rec.missing_hints {
            signal.request_hint(*id);
        }
        let writer = Writer {
            active: rec.active.clone(),
            file: rec.active_file,
            offset: rec.active_len,
            allocated: rec.active_file_len,
            last: rec.last,
            epoch: rec.epochs.max,
            epochs: rec.epochs,
            seq: 0,
            buf: Vec::with_capacity(4096),
        };
        let layout = Layout {
            segments: rec.segments,
            active: rec.active.id,
            floor: rec.floor,
        };
        let inner = Arc::new(Inner {
            dir,
            opts: options,
            writer: Mutex::new(writer),
            layout: RwLock::new(layout),
            keydir,
            cache: cache.register(),
            group: Default::default(),
            closed: AtomicBool::new(false),
            counters,
            live_bytes: AtomicU64::new(rec.live_bytes),
            next_segment: AtomicU32::new(rec.next_segment),
            compaction_lock: Mutex::new(()),
            install_lock: Mutex::new(()),
            retention: AtomicU64::new(Lsn::MAX),
            expiry_cursor: Default::default(),
            signal,
            fail_next_sync: AtomicBool::new(false),
            _lock: lock,
        });
        let threads = worker::spawn(&inner)?;
        Ok(Store {
            inner,
            threads: Mutex::new(threads),
        })
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// A shared handle on the state, for objects that outlive a borrow
    /// (snapshot readers, installs).
    pub(crate) fn inner_arc(&self) -> Arc<Inner> {
        self.inner.clone()
    }

    /// Writes `key = value` with the next LSN and the current epoch. When it
    /// returns, the record has been handed to the OS (and fsynced under
    /// `SyncPolicy::Always`).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<Position, Error> {
        self.put_expiring(key, value, None)
    }

    /// [`Store::put`], with an optional expiry (see `expiry.rs`).
    pub(crate) fn put_expiring(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: Option<crate::Expiry>,
    ) -> Result<Position, Error> {
        let inner = &*self.inner;
        inner.check_sizes(key, value.len())?;
        let hash = inner.keydir.hash(key);
        let (position, seq) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            let mut op = next_op(&w, Kind::Value, key, value, hash);
            op.expiry = expiry.map(|e| e.at(inner.now()));
            (op.position, inner.write_planned(&mut w, &[op])?)
        };
        inner.cache_written(hash, key, value, position.lsn);
        inner.after_write(seq)?;
        Ok(position)
    }

    /// Deletes `key`: writes a tombstone and returns what it did, or
    /// returns `None` without writing anything if the key is absent.
    ///
    /// A key whose expiry has passed by this store's clock, but which
    /// [`Store::expire_due`] has not deleted yet, gets a tombstone too
    /// ([`Deleted::live`] false): a replica whose clock is behind still
    /// shows it, and so would this store after its clock stepped back, so
    /// only a tombstone makes the delete hold everywhere.
    pub fn delete(&self, key: &[u8]) -> Result<Option<Deleted>, Error> {
        let inner = &*self.inner;
        inner.check_sizes(key, 0)?;
        let hash = inner.keydir.hash(key);
        let (deleted, seq) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            if inner.keydir.get_entry(hash, key).is_none() {
                return Ok(None);
            }
            let live = inner.live_loc(hash, key).is_some();
            let op = next_op(&w, Kind::Tombstone, key, &[], hash);
            let position = op.position;
            (
                Deleted { position, live },
                inner.write_planned(&mut w, &[op])?,
            )
        };
        inner.cache.remove(hash, key);
        inner.after_write(seq)?;
        Ok(Some(deleted))
    }

    /// The current value of `key`: from the hot cache if it is there, else
    /// from its segment (and then cached).
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.read_value(inner.keydir.hash(key), key, Fill::Yes)
    }

    /// The current value of `key`, as [`Store::get`], without putting a
    /// value read from disk into the hot cache: for one-pass reads such as
    /// a scan with values ([`Iter::with_values`](crate::Iter::with_values)
    /// uses it), which would otherwise push out the keys that are read
    /// again and pay a cache insert per key.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    pub fn peek(&self, key: &[u8]) -> Result<Option<Bytes>, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        inner.read_value(inner.keydir.hash(key), key, Fill::No)
    }

    /// The current value of `key` if it can be answered from memory alone:
    /// `Some(Some(value))` from the hot cache, `Some(None)` when the key
    /// directory has no such key, `None` when the value is only on disk
    /// (call [`Store::get`]). Takes only short in-memory locks and never
    /// does I/O, so async code may call it inline.
    pub fn get_in_memory(&self, key: &[u8]) -> Option<Option<Bytes>> {
        let inner = &*self.inner;
        inner.check_open().ok()?;
        inner.read_in_memory(inner.keydir.hash(key), key)
    }

    /// Where the value of `key` is now: `Hot` only if it is in memory.
    pub fn location(&self, key: &[u8]) -> Location {
        let inner = &*self.inner;
        let hash = inner.keydir.hash(key);
        match inner.live_loc(hash, key) {
            None => Location::Missing,
            Some(loc) if inner.cache.contains(hash, key, loc.lsn()) => Location::Hot,
            Some(_) => Location::Cold,
        }
    }

    /// Keys whose current values are in the hot cache now, sorted.
    pub fn hot_keys(&self) -> Vec<Bytes> {
        let inner = &*self.inner;
        let mut keys: Vec<Bytes> = inner
            .cache
            .entries()
            .into_iter()
            .filter(|(key, lsn)| {
                let loc = inner.live_loc(inner.keydir.hash(key), key);
                loc.is_some_and(|l| l.lsn() == *lsn)
            })
            .map(|(key, _)| key)
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Number of keys in the key directory: keys that expired but were not
    /// yet removed (by [`Store::expire_due`] or compaction) still count.
    pub fn len(&self) -> usize {
        self.inner.keydir.len()
    }

    /// Whether there are no live keys.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Position of the last record written or applied (`(0, 0)` if none).
    pub fn last_position(&self) -> Position {
        self.inner.writer.lock().last
    }

    /// LSN of the last record written or applied (0 if none).
    pub fn last_lsn(&self) -> Lsn {
        self.last_position().lsn
    }

    /// The epoch new writes get.
    pub fn epoch(&self) -> Epoch {
        self.inner.writer.lock().epoch
    }

    /// Whether an fsync failed ([`Error::Poisoned`]): what was written
    /// since the last good fsync may be gone after a power loss, although
    /// reads still find it. Writes are refused until the store is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.inner.group.is_poisoned()
    }

    /// When this store fsyncs (the policy it was opened with).
    pub fn sync_policy(&self) -> crate::SyncPolicy {
        self.inner.opts.sync
    }

    /// Whether writing `records` records holding `payload_bytes` of keys
    /// and values in all (one batch of puts, deletes or replicated
    /// entries) would, right now, only copy bytes to the OS: the sync
    /// policy does not wait for an fsync, nobody holds the writer lock, and
    /// the records fit in the active segment (no roll, which fsyncs and
    /// creates files). A hint for callers that choose where to run a write
    /// (an async server runs quick ones on its own thread): another writer
    /// may change the answer before the write, and a `write(2)` into the
    /// page cache can still be slowed by the kernel's dirty-page limits.
    ///
    /// ```
    /// use kv_storage::{Options, Store, SyncPolicy};
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path(), Options { sync: SyncPolicy::Never, ..Options::default() })?;
    /// assert!(store.write_is_quick(1, 103));
    /// let always = tempfile::tempdir()?;
    /// let durable = Store::open(always.path(), Options { sync: SyncPolicy::Always, ..Options::default() })?;
    /// assert!(!durable.write_is_quick(1, 103));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_is_quick(&self, records: usize, payload_bytes: usize) -> bool {
        let inner = &*self.inner;
        if inner.opts.sync == crate::SyncPolicy::Always {
            return false;
        }
        let len = records
            .saturating_mul(crate::record::MAX_OVERHEAD_BYTES)
            .saturating_add(payload_bytes) as u64;
        let Some(w) = inner.writer.try_lock() else {
            return false;
        };
        w.offset.saturating_add(len) <= inner.opts.segment_bytes
    }

    /// fsyncs everything written so far (shares the fsync with concurrent
    /// `Always` writers).
    pub fn sync(&self) -> Result<(), Error> {
        let inner = &*self.inner;
        inner.check_writable()?;
        let seq = inner.writer.lock().seq;
        inner.sync_to(seq)
    }

    /// Merges all sealed segments now, sealing the active segment first
    /// when it holds garbage (overwritten or deleted records, expired keys)
    /// so that a store smaller than one segment shrinks too. The background
    /// thread runs the same code on sealed segments only. Returns what it
    /// did; an empty result if there was nothing to do.
    pub fn compact(&self) -> Result<CompactionStats, Error> {
        compaction::compact(&self.inner, Scope::WithActive, None)
    }

    /// Test hook: compacts but stops at `point`, leaving the files as a crash
    /// there would; the store refuses further operations.
    #[doc(hidden)]
    pub fn compact_until(&self, point: FaultPoint) -> Result<CompactionStats, Error> {
        compaction::compact(&self.inner, Scope::WithActive, Some(point))
    }

    /// Test hook: makes the next fsync of segment data fail, as a disk error
    /// would, to exercise poisoning.
    #[doc(hidden)]
    pub fn fail_next_sync(&self) {
        self.inner.fail_next_sync.store(true, Ordering::Release);
    }

    /// Test hook: holds the writer lock until the guard is dropped, as a
    /// slow disk under a segment roll would; writes and `stats` wait.
    #[doc(hidden)]
    pub fn hold_writer(&self) -> impl Sized + '_ {
        self.inner.writer.lock()
    }

    /// Test hook: writes pending hint files now.
    #[doc(hidden)]
    pub fn write_pending_hints(&self) -> Result<(), Error> {
        let ids: Vec<_> = self.inner.layout.read().sealed().map(|s| s.id).collect();
        ids.into_iter()
            .try_for_each(|id| worker::write_hint(&self.inner, id))
    }

    /// A snapshot of counters and sizes.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let (last, epoch) = {
            let w = inner.writer.lock();
            (w.last, w.epoch)
        };
        let (segments, disk_bytes, floor) = {
            let layout = inner.layout.read();
            let disk = layout
                .segments
                .values()
                .map(|s| s.len() + s.hint_bytes.load(Ordering::Relaxed));
            (layout.segments.len() as u64, disk.sum(), layout.floor)
        };
        let (hot_keys, hot_bytes) = inner.cache.usage();
        Stats {
            keys: inner.keydir.len() as u64,
            live_bytes: inner.live_bytes.load(Ordering::Relaxed),
            disk_bytes,
            segments,
            hot_keys,
            hot_bytes,
            last_lsn: last.lsn,
            epoch,
            history_floor: floor,
            truncated_tail_bytes: read(&c.truncated_tail_bytes),
            hint_fallbacks: read(&c.hint_fallbacks),
            compactions: read(&c.compactions),
            reclaimed_bytes: read(&c.reclaimed_bytes),
            syncs: read(&c.syncs),
            writes: read(&c.writes),
            appends: read(&c.appends),
            cache_hits: read(&c.cache_hits),
            cache_misses: read(&c.cache_misses),
            keydir_bytes: inner.keydir.memory_bytes() as u64,
            background_errors: read(&c.background_errors),
            rolled_back_entries: read(&c.rolled_back_entries),
            poisoned: inner.group.is_poisoned(),
            expired_keys: read(&c.expired_keys),
        }
    }

    /// Stops the background threads (writing pending hints first), fsyncs,
    /// and makes every later call fail with [`Error::Closed`]. Idempotent;
    /// for stores shared through an `Arc`, where [`Store::close`] is not
    /// possible.
    pub fn shutdown(&self) -> Result<(), Error> {
        self.stop_threads(true);
        let inner = &*self.inner;
        let mut w = inner.writer.lock();
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let result = match inner.group.is_poisoned() {
            true => Err(Error::Poisoned),
            false => inner.trim_active(&mut w),
        };
        drop(w);
        inner.cache.purge();
        result
    }

    /// Flushes, fsyncs and stops background threads; releases the directory
    /// lock. Dropping a store does the same on a best-effort basis.
    pub fn close(self) -> Result<(), Error> {
        self.shutdown()
    }

    fn stop_threads(&self, drain: bool) {
        self.inner.signal.shutdown(drain);
        let threads = std::mem::take(&mut *self.threads.lock());
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The record a `put` or `delete` writes next: the next LSN, the current
/// epoch, no expiry.
pub(crate) fn next_op<'a>(
    w: &Writer,
    kind: Kind,
    key: &'a [u8],
    value: &'a [u8],
    hash: u64,
) -> RecordOp<'a> {
    let position = Position {
        epoch: w.epoch,
        lsn: w.last.lsn + 1,
    };
    RecordOp {
        position,
        kind,
        key,
        value,
        hash,
        expiry: None,
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop_threads(false);
        let inner = &*self.inner;
        if !inner.closed.swap(true, Ordering::AcqRel) && !inner.group.is_poisoned() {
            let mut w = inner.writer.lock();
            let _ = inner.trim_active(&mut w);
        }
        inner.cache.purge();
    }
}

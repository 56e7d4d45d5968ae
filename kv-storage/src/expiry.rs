//! Per-key expiry: writing keys that expire, changing or clearing an
//! expiry, asking for it, and deleting keys whose time has come.
//!
//! # The model (Redis's, for a replicated log)
//!
//! An expiry is an absolute time in unix milliseconds, stored in the key's
//! value record (`record.rs`, flag bit 3), so it survives restarts, moves
//! with the record through compaction and travels to followers in
//! [`Entry::expiry`]. A key is *expired* once the store's clock
//! ([`Options::clock`](crate::Options::clock)) reads its expiry time or
//! later.
//!
//! Reads never return an expired key: `get`, `get_in_memory`, `location`,
//! `scan`, `iter`, `hot_keys` and `expiry` hide it, by this store's clock.
//! A read never writes. The key stays in the key directory, and its record
//! on disk, until one of two things removes it:
//!
//! - [`Store::expire_due`], called by whoever decides expiry (the
//!   partition's leader, on a timer): it writes an ordinary tombstone for
//!   each expired key, with the next LSN, so the deletion replicates like
//!   any other. Followers never call it; they hide expired keys with their
//!   own clock until the leader's tombstone arrives.
//! - Compaction, which does not copy expired records (on any replica; the
//!   key is gone from this replica's directory afterwards, without a
//!   tombstone; see `compaction.rs`).
//!
//! [`Store::len`] counts keys until they are removed (expired ones too).
//!
//! # Cost
//!
//! A key without an expiry costs nothing extra, in memory or on disk. One
//! with an expiry costs 8 bytes per record and about 60 bytes of memory
//! (`keydir/expiry.rs`). [`Store::expire`] rewrites the whole value (the
//! expiry lives in the value's record).

use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::inner::{Inner, RecordOp};
use crate::keydir::SHARDS;
use crate::record::Kind;
use crate::stats::bump;
use crate::store::{Store, next_op};
use crate::{Entry, Position};

/// How many times [`Store::expire`] re-reads a value that keeps changing
/// under it before it reads it under the writer lock.
const EXPIRE_OPTIMISTIC_TRIES: usize = 8;

/// When a key expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Expiry {
    /// At this unix time, in milliseconds.
    At(u64),
    /// This long after the write, by the store's clock (rounded down to
    /// whole milliseconds).
    After(Duration),
}

impl Expiry {
    /// The unix time (ms) this expiry means when the clock reads `now`.
    pub fn at(self, now: u64) -> u64 {
        match self {
            Expiry::At(at) => at,
            Expiry::After(d) => {
                now.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }
}

/// What [`Store::expiry`] knows about a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// No such key (or it has expired).
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key exists and expires at this unix time (ms), which is later
    /// than the store's clock read when asked.
    ExpiresAt(u64),
}

impl Ttl {
    /// Milliseconds left at `now` (`None` unless [`Ttl::ExpiresAt`]).
    pub fn remaining_ms(self, now: u64) -> Option<u64> {
        match self {
            Ttl::ExpiresAt(at) => Some(at.saturating_sub(now)),
            Ttl::Missing | Ttl::Persistent => None,
        }
    }
}

/// Whether a key expiring at `at` has expired when the clock reads `now`.
pub(crate) fn is_expired(at: u64, now: u64) -> bool {
    at <= now
}

impl Store {
    /// Writes `key = value`, expiring at `expiry` (by the store's clock),
    /// like [`Store::put`] otherwise. An expiry already past is accepted:
    /// the key is then hidden at once and removed later (see
    /// [`Store::expire_due`]).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use std::time::Duration;
    /// use kv_storage::{Clock, Expiry, Options, Store, Ttl};
    ///
    /// # fn main() -> Result<(), kv_storage::Error> {
    /// let now = Arc::new(AtomicU64::new(1_000_000));
    /// let time = now.clone();
    /// let clock = Clock::from_fn(move || time.load(Ordering::Relaxed));
    /// let dir = tempfile::tempdir().expect("temp dir");
    /// let store = Store::open(dir.path(), Options { clock, ..Options::default() })?;
    ///
    /// store.put_with_expiry(b"session", b"abc", Expiry::After(Duration::from_secs(10)))?;
    /// assert_eq!(store.expiry(b"session")?, Ttl::ExpiresAt(1_010_000));
    /// store.put(b"name", b"Rafi")?;
    /// assert_eq!(store.expiry(b"name")?, Ttl::Persistent);
    ///
    /// now.store(1_010_000, Ordering::Relaxed); // ten seconds later
    /// assert_eq!(store.get(b"session")?, None);
    /// assert_eq!(store.expiry(b"session")?, Ttl::Missing);
    /// // The leader deletes expired keys with ordinary, replicated tombstones.
    /// let deleted = store.expire_due(100)?;
    /// assert_eq!(deleted.len(), 1);
    /// assert_eq!(deleted[0].value, None);
    ///
    /// // Give a key an expiry, then take it away again (Redis PERSIST).
    /// store.expire(b"name", Some(Expiry::At(2_000_000)))?;
    /// assert_eq!(store.expiry(b"name")?, Ttl::ExpiresAt(2_000_000));
    /// store.expire(b"name", None)?;
    /// assert_eq!(store.expiry(b"name")?, Ttl::Persistent);
    /// # Ok(())
    /// # }
    /// ```
    pub fn put_with_expiry(
        &self,
        key: &[u8],
        value: &[u8],
        expiry: Expiry,
    ) -> Result<Position, Error> {
        self.put_expiring(key, value, Some(expiry))
    }

    /// Sets (`Some`) or clears (`None`) the expiry of `key`, by writing its
    /// value again with the new expiry (a new record with the next LSN, so
    /// the change replicates). An expiry at or before the store's clock
    /// deletes the key instead (a tombstone), as Redis's `EXPIRE` with a
    /// time in the past does. Returns the entry written, for a replication
    /// backlog, or `None` without writing when the key is absent (or
    /// expired), or when clearing the expiry of a key that has none.
    pub fn expire(&self, key: &[u8], expiry: Option<Expiry>) -> Result<Option<Entry>, Error> {
        let inner = self.inner();
        inner.check_sizes(key, 0)?;
        let hash = inner.keydir.hash(key);
        let mut attempt = 0;
        loop {
            let read = match attempt < EXPIRE_OPTIMISTIC_TRIES {
                false => None,
                true => match inner.read_current(hash, key)? {
                    None => return Ok(None),
                    Some(read) => Some(read),
                },
            };
            if let Some(done) = self.expire_step(hash, key, expiry, read)? {
                return Ok(done);
            }
            attempt += 1;
        }
    }

    /// One attempt of [`Store::expire`]: `read` is the value and LSN read
    /// before taking the writer lock (`None`: read it under the lock).
    /// Returns `None` if the key changed since `read` (try again).
    #[allow(clippy::type_complexity)]
    fn expire_step(
        &self,
        hash: u64,
        key: &[u8],
        expiry: Option<Expiry>,
        read: Option<(Bytes, u64)>,
    ) -> Result<Option<Option<Entry>>, Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock();
        inner.check_writable()?;
        let Some((loc, current)) = inner.live_entry(hash, key) else {
            return Ok(Some(None));
        };
        if expiry.is_none() && current.is_none() {
            return Ok(Some(None));
        }
        let value = match read {
            Some((value, lsn)) if lsn == loc.lsn() => value,
            Some(_) => return Ok(None),
            None => match inner.read_current(hash, key)? {
                Some((value, _)) => value,
                None => return Ok(Some(None)),
            },
        };
        let now = inner.now();
        let at = expiry.map(|e| e.at(now));
        let expired = at.is_some_and(|at| is_expired(at, now));
        let (kind, value) = match expired {
            true => (Kind::Tombstone, Bytes::new()),
            false => (Kind::Value, value),
        };
        let mut op = next_op(&w, kind, key, &value, hash);
        op.expiry = at.filter(|_| !expired);
        let seq = inner.write_planned(&mut w, &[op])?;
        drop(w);
        inner.cache_planned(&[op]);
        inner.after_write(seq)?;
        Ok(Some(Some(entry_of(&op))))
    }

    /// What the store knows about the expiry of `key`, by its clock. Takes
    /// only short in-memory locks and never does I/O.
    pub fn expiry(&self, key: &[u8]) -> Result<Ttl, Error> {
        let inner = self.inner();
        inner.check_open()?;
        Ok(match inner.live_entry(inner.keydir.hash(key), key) {
            None => Ttl::Missing,
            Some((_, None)) => Ttl::Persistent,
            Some((_, Some(at))) => Ttl::ExpiresAt(at),
        })
    }

    /// The time by the store's clock, in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.inner().now()
    }

    /// Active expiry, for the replica that decides it (a partition's
    /// leader; never a follower): finds up to `max_keys` keys that have
    /// expired by the store's clock, earliest first, and deletes them with
    /// ordinary tombstones (next LSNs, one `write(2)` and, under
    /// `SyncPolicy::Always`, one fsync for all of them). Returns the
    /// tombstones written, for a replication backlog; fewer than `max_keys`
    /// means no more keys are due now.
    ///
    /// Bounded work, so it can run on every tick: finding the keys costs
    /// `O(log n)` each (each key-directory shard keeps its expiring keys
    /// ordered by time) plus one read lock per shard visited; the write is
    /// also bounded by the size of one append (a segment).
    pub fn expire_due(&self, max_keys: usize) -> Result<Vec<Entry>, Error> {
        let inner = self.inner();
        inner.check_writable()?;
        let now = inner.now();
        let due = inner.due_keys(now, max_keys);
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let (planned, seq) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            let planned = plan_expired(inner, &w, &due, now);
            if planned.is_empty() {
                return Ok(Vec::new());
            }
            (planned.clone(), inner.write_planned(&mut w, &planned)?)
        };
        inner.cache_planned(&planned);
        bump(&inner.counters.expired_keys, planned.len() as u64);
        inner.after_write(seq)?;
        Ok(planned.iter().map(entry_of).collect())
    }
}

impl Inner {
    /// Up to `max` keys due at `now`, with their hashes, from the shards in
    /// turn (starting where the last call stopped, so no shard starves),
    /// within the byte budget of one append.
    fn due_keys(&self, now: u64, max: usize) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut budget = self.max_append_bytes();
        let first = self
            .expiry_cursor
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for i in 0..SHARDS {
            let shard = (first + i) % SHARDS;
            let want = max.saturating_sub(out.len());
            if want == 0 || budget == 0 {
                break;
            }
            self.keydir.due(shard, now, want, |hash, key| {
                let len = crate::record::encoded_len(key.len(), 0, false) as u64;
                if len <= budget {
                    budget -= len;
                    out.push((hash, key.to_vec()));
                }
            });
        }
        out
    }
}

/// Tombstones for the keys of `due` that are still expired now (a write
/// since they were found may have renewed them).
fn plan_expired<'a>(
    inner: &Inner,
    w: &crate::inner::Writer,
    due: &'a [(u64, Vec<u8>)],
    now: u64,
) -> Vec<RecordOp<'a>> {
    let mut planned: Vec<RecordOp<'a>> = Vec::with_capacity(due.len());
    for (hash, key) in due {
        let still_due = match inner.keydir.get_entry(*hash, key) {
            Some((_, Some(at))) => is_expired(at, now),
            _ => false,
        };
        if still_due {
            let mut op = next_op(w, Kind::Tombstone, key, &[], *hash);
            op.position.lsn += planned.len() as u64;
            planned.push(op);
        }
    }
    planned
}

/// The replicated form of a record just written.
fn entry_of(op: &RecordOp<'_>) -> Entry {
    Entry {
        position: op.position,
        key: Bytes::copy_from_slice(op.key),
        value: (op.kind == Kind::Value).then(|| Bytes::copy_from_slice(op.value)),
        expiry: op.expiry.filter(|_| op.kind == Kind::Value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_expiries_resolve_against_the_clock_and_saturate() {
        assert_eq!(Expiry::After(Duration::from_millis(1500)).at(10), 1510);
        assert_eq!(Expiry::After(Duration::from_micros(999)).at(10), 10);
        assert_eq!(Expiry::After(Duration::MAX).at(10), u64::MAX);
        assert_eq!(Expiry::At(7).at(10), 7);
        assert!(is_expired(10, 10) && !is_expired(11, 10));
        assert_eq!(Ttl::ExpiresAt(15).remaining_ms(10), Some(5));
        assert_eq!(Ttl::ExpiresAt(15).remaining_ms(20), Some(0));
        assert_eq!(Ttl::Persistent.remaining_ms(10), None);
    }
}

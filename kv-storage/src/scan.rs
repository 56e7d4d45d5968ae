//! Listing keys: [`Store::scan`] with a resumable [`Cursor`], and
//! [`Store::iter`] on top of it.
//!
//! # The guarantee (Redis SCAN's)
//!
//! A full scan — from [`Cursor::START`] until `next` is `None` — returns
//! every key that was present for the whole scan at least once. A key
//! written or deleted during the scan may or may not be returned, and a key
//! may be returned more than once. This holds across concurrent writes,
//! compaction, key-directory growth and even a restart of the store between
//! calls, and no lock is held between calls.
//!
//! # How
//!
//! Keys are walked in the order of their 64-bit key-directory hash (xxh3
//! with a fixed seed, so the order is the same in every process; see
//! `keydir.rs`). A cursor is the next hash position: everything before it
//! has been returned. Each step read-locks one shard, takes one small
//! sub-table's keys at or after the cursor, sorts them by hash and hands
//! over the first `count`, then releases the lock. A key's hash never
//! changes, so a key present throughout is at a position the cursor has
//! not yet passed until it is returned. Keys sharing one hash are returned
//! in the same step, so a cursor never falls between them.
//!
//! Memory: a call holds at most `count` keys (plus the few sharing the last
//! hash) and one sub-table's worth of references; [`Iter`] holds one page.
//!
//! Work per call is bounded by `count`: keys examined and filtered out by a
//! prefix count against it, as with Redis's `COUNT` and `MATCH`, so a page
//! may hold fewer keys than asked for (even none) before the scan is done.

use std::vec;

use bytes::Bytes;

use crate::error::Error;
use crate::store::Store;

/// Keys fetched per page by [`Iter`].
const ITER_PAGE_KEYS: usize = 256;

/// Where a scan resumes. Opaque, but it round-trips through a `u64` (for a
/// wire protocol): [`Cursor::START`] is 0, and no cursor a scan hands back
/// as `next` is ever 0, so a protocol may use 0 for "done" as Redis does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cursor(u64);

impl Cursor {
    /// The beginning of a scan.
    pub const START: Cursor = Cursor(0);

    /// A cursor from its `u64` form (any value is a valid place to resume).
    pub fn from_u64(value: u64) -> Cursor {
        Cursor(value)
    }

    /// The `u64` form of this cursor.
    pub fn to_u64(self) -> u64 {
        self.0
    }
}

/// One page of a scan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Keys in this page, in scan (hash) order.
    pub keys: Vec<Bytes>,
    /// Where to continue, or `None` when the scan is complete.
    pub next: Option<Cursor>,
}

impl Store {
    /// One page of a scan over the live keys, starting at `cursor`: examines
    /// about `count` keys (at least 1). Keys that have expired by the
    /// store's clock are skipped (and not counted). Start with [`Cursor::START`] and call
    /// again with `next` until it is `None`. See the module docs for the
    /// guarantee (every key present throughout is returned at least once).
    pub fn scan(&self, cursor: Cursor, count: usize) -> Result<ScanPage, Error> {
        self.scan_prefix(cursor, count, b"")
    }

    /// [`Store::scan`] returning only keys that start with `prefix`. Keys
    /// filtered out count against `count`, so a page may be empty before
    /// the scan is done.
    pub fn scan_prefix(
        &self,
        cursor: Cursor,
        count: usize,
        prefix: &[u8],
    ) -> Result<ScanPage, Error> {
        let inner = self.inner();
        inner.check_open()?;
        let count = count.max(1);
        let (mut examined, mut keys, mut from) = (0, Vec::new(), cursor.0);
        let now = inner.now();
        while examined < count {
            let step = inner
                .keydir
                .scan_step(from, count - examined, now, |_, key| {
                    examined += 1;
                    if key.starts_with(prefix) {
                        keys.push(Bytes::copy_from_slice(key));
                    }
                });
            match step {
                Some(next) => from = next,
                None => return Ok(ScanPage { keys, next: None }),
            }
        }
        let next = Some(Cursor(from));
        Ok(ScanPage { keys, next })
    }

    /// Every live key, a page at a time (see [`Store::scan`] for what a key
    /// written during the iteration does). Read values with
    /// [`Store::get`], or use [`Iter::with_values`].
    pub fn iter(&self) -> Iter<'_> {
        self.iter_prefix(b"")
    }

    /// [`Store::iter`] over the keys starting with `prefix`.
    pub fn iter_prefix(&self, prefix: &[u8]) -> Iter<'_> {
        Iter {
            store: self,
            prefix: prefix.to_vec(),
            page: Vec::new().into_iter(),
            next: Some(Cursor::START),
        }
    }
}

/// Iterator over a store's live keys (expired ones are skipped); see
/// [`Store::iter`]. Holds one page of
/// keys and no lock. Yields an error (and then ends) if the store is closed.
#[derive(Debug)]
pub struct Iter<'a> {
    store: &'a Store,
    prefix: Vec<u8>,
    page: vec::IntoIter<Bytes>,
    next: Option<Cursor>,
}

impl<'a> Iter<'a> {
    /// Pairs each key with its value, read on demand ([`Store::peek`]: a
    /// value read from disk does not go into the hot cache); keys deleted
    /// since they were listed are skipped.
    pub fn with_values(self) -> impl Iterator<Item = Result<(Bytes, Bytes), Error>> + 'a {
        let store = self.store;
        self.filter_map(move |key| match key {
            Err(e) => Some(Err(e)),
            Ok(key) => store.peek(&key).map(|v| v.map(|v| (key, v))).transpose(),
        })
    }
}

impl Iterator for Iter<'_> {
    type Item = Result<Bytes, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(key) = self.page.next() {
                return Some(Ok(key));
            }
            let cursor = self.next.take()?;
            match self.store.scan_prefix(cursor, ITER_PAGE_KEYS, &self.prefix) {
                Ok(page) => {
                    self.page = page.keys.into_iter();
                    self.next = page.next;
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

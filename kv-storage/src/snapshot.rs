//! Snapshot source: every live entry, in bounded chunks, as of a position.
//!
//! # Why
//!
//! A follower whose history is gone on the leader (below its history floor)
//! needs a full copy. Building it as one `Vec` of every live entry costs a
//! copy of all live data in memory and a write pause while the key directory
//! is walked under the writer lock. [`SnapshotReader`] instead walks the key
//! directory with the stable scan cursor (`scan.rs`), a few hundred keys per
//! step under one shard's read lock, reads their values from the segments
//! without any lock held, and hands them out in chunks of about
//! `max_chunk_bytes`. Writers never wait for it.
//!
//! # Consistency rule
//!
//! The snapshot is taken *as of* `as_of = last_position()` at its start.
//! While it runs, keys keep changing. A key whose current entry has an LSN
//! above `as_of` when the reader reaches it is **skipped**; a key deleted
//! before the reader reaches it is absent. Every such change has an LSN above
//! `as_of`, so the receiver, after installing the snapshot (its position
//! becomes `as_of`), applies `entries_since(as_of)` and ends with exactly
//! the source's state. The history above `as_of` must still be there by
//! then: set the retention watermark ([`Store::set_retention`]) to at most
//! `as_of` for the duration. (Between the install and that catch-up the
//! receiver's state is not a state the source ever had.)
//!
//! A key present throughout is returned at least once and, if the scan
//! visits it twice (the cursor's guarantee allows that), with the same
//! entry both times; the installer drops such duplicates.

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Error;
use crate::inner::Inner;
use crate::record::Kind;
use crate::{Entry, Position, Store};

/// Keys taken from the key directory per step.
const STEP_KEYS: usize = 256;
/// A reader retries this often when a key's segment vanished under it.
const MAX_READ_RETRIES: usize = 1000;

/// Streams a store's live entries in bounded chunks; see the module docs.
/// Holds no lock between calls and at most about one chunk of entries.
pub struct SnapshotReader {
    inner: Arc<Inner>,
    as_of: Position,
    max_chunk_bytes: usize,
    /// Next hash position of the scan; `None` when done.
    cursor: Option<u64>,
    /// Most entries ever held at once (for tests and benchmarks).
    peak_entries: usize,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("as_of", &self.as_of)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Starts a chunked snapshot of every live entry as of
    /// `last_position()` now; each chunk holds entries of about
    /// `max_chunk_bytes` of keys and values (at least one entry).
    pub fn snapshot_reader(&self, max_chunk_bytes: usize) -> Result<SnapshotReader, Error> {
        let inner = self.inner();
        inner.check_open()?;
        let as_of = inner.writer.lock().last;
        Ok(SnapshotReader {
            inner: self.inner_arc(),
            as_of,
            max_chunk_bytes: max_chunk_bytes.max(1),
            cursor: Some(0),
            peak_entries: 0,
        })
    }
}

impl SnapshotReader {
    /// The position the snapshot is taken as of: the receiver's position
    /// after installing it.
    pub fn as_of(&self) -> Position {
        self.as_of
    }

    /// The most entries one chunk has held so far.
    pub fn peak_entries(&self) -> usize {
        self.peak_entries
    }

    /// The next chunk (entries in scan order, not LSN order), or `None`
    /// when every key has been visited.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<Entry>>, Error> {
        let Some(mut from) = self.cursor else {
            return Ok(None);
        };
        let (mut chunk, mut bytes) = (Vec::new(), 0usize);
        while bytes < self.max_chunk_bytes {
            let mut keys: Vec<(u64, Bytes)> = Vec::with_capacity(STEP_KEYS);
            let now = self.inner.now();
            let next = self
                .inner
                .keydir
                .scan_step(from, STEP_KEYS, now, |hash, key| {
                    keys.push((hash, Bytes::copy_from_slice(key)));
                });
            for (hash, key) in keys {
                if let Some(entry) = self.read_entry(hash, key)? {
                    bytes += entry.key.len() + entry.value.as_ref().map_or(0, Bytes::len);
                    chunk.push(entry);
                }
            }
            match next {
                Some(n) => from = n,
                None => {
                    self.cursor = None;
                    break;
                }
            }
            self.cursor = Some(from);
        }
        self.peak_entries = self.peak_entries.max(chunk.len());
        match (chunk.is_empty(), self.cursor) {
            (true, None) => Ok(None),
            _ => Ok(Some(chunk)),
        }
    }

    /// The current entry of `key` if it is live and not newer than `as_of`.
    fn read_entry(&self, hash: u64, key: Bytes) -> Result<Option<Entry>, Error> {
        let inner = &*self.inner;
        inner.check_open()?;
        for _ in 0..MAX_READ_RETRIES {
            let Some((loc, expiry)) = inner.live_entry(hash, &key) else {
                return Ok(None);
            };
            if loc.lsn() > self.as_of.lsn {
                return Ok(None);
            }
            let Some(seg) = inner.layout.read().get(loc.segment).cloned() else {
                std::thread::yield_now();
                continue;
            };
            let offset = u64::from(loc.offset);
            let (bytes, info) = seg.read_record(offset, loc.len() as usize)?;
            if info.kind != Kind::Value || info.key(&bytes) != key || info.position.lsn != loc.lsn()
            {
                let why = "record does not match the key directory";
                return Err(Error::corrupted(&seg.path, offset, why));
            }
            return Ok(Some(Entry {
                position: info.position,
                key,
                value: Some(bytes.slice(info.value_range())),
                expiry,
            }));
        }
        Err(Error::corrupted(
            &inner.dir,
            0,
            "key keeps moving between segments",
        ))
    }
}

impl Iterator for SnapshotReader {
    type Item = Result<Vec<Entry>, Error>;

    /// Ends after the first error.
    fn next(&mut self) -> Option<Self::Item> {
        let chunk = self.next_chunk();
        if chunk.is_err() {
            self.cursor = None;
        }
        chunk.transpose()
    }
}

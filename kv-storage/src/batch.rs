//! Write batches: several puts and deletes with one `write(2)`, one sync,
//! and all or none of them after a crash.
//!
//! # How a batch is made atomic
//!
//! The batch's records are encoded back to back, each with its own LSN
//! (consecutive), and every record but the last carries the *batch
//! continues* flag (`record.rs`). They go to the OS in one positional
//! `write(2)` under the writer lock, after a roll if they would not fit the
//! active segment, so a batch never spans segments. A crash can still leave
//! any prefix of that write on disk; recovery of the newest segment
//! (`recovery/load.rs`) ends the log at the last record *without* the flag,
//! so a cut-short batch disappears entirely, as a torn single record does.
//!
//! # What a batch is not
//!
//! Not isolated: readers may see some of a batch's keys updated before the
//! rest while it is being indexed (for a few microseconds). Not a
//! transaction: there are no conditions. A follower receives the records as
//! ordinary entries; [`Store::apply_batch`] writes what it is given in the
//! same all-or-none way, so a batch the leader replicates in one message
//! lands atomically there too.

use std::collections::HashMap;

use crate::Position;
use crate::error::Error;
use crate::expiry::{Expiry, is_expired};
use crate::inner::{Inner, RecordOp, Writer};
use crate::keydir::Loc;
use crate::record::{self, Kind};
use crate::store::Store;

/// Puts and deletes to write together with [`Store::write_batch`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
}

/// One operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Op {
    key: Vec<u8>,
    /// `None` for a deletion.
    value: Option<Vec<u8>>,
    expiry: Option<Expiry>,
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Adds `key = value`.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.push(key.as_ref(), Some(value.as_ref()), None)
    }

    /// Adds `key = value` expiring at `expiry` (see
    /// [`Store::put_with_expiry`]; an [`Expiry::After`] counts from when
    /// the batch is written).
    pub fn put_with_expiry(
        &mut self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        expiry: Expiry,
    ) -> &mut WriteBatch {
        self.push(key.as_ref(), Some(value.as_ref()), Some(expiry))
    }

    /// Adds a deletion of `key` (written only if the key exists and has not
    /// expired when the batch is written, counting the batch's own earlier
    /// puts).
    pub fn delete(&mut self, key: impl AsRef<[u8]>) -> &mut WriteBatch {
        self.push(key.as_ref(), None, None)
    }

    fn push(&mut self, key: &[u8], value: Option<&[u8]>, expiry: Option<Expiry>) -> &mut Self {
        self.ops.push(Op {
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
            expiry,
        });
        self
    }

    /// Number of operations added.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

impl Store {
    /// Writes every operation of `batch` in order, each with the next LSN
    /// and the current epoch, with one `write(2)` and (under
    /// [`SyncPolicy::Always`](crate::SyncPolicy::Always)) one fsync. After a
    /// crash either all of the batch is there or none of it. Returns the
    /// position of the last record written, or `None` if nothing was (an
    /// empty batch, or only deletions of absent keys). Sizes are checked
    /// first: a rejected batch writes nothing.
    pub fn write_batch(&self, batch: &WriteBatch) -> Result<Option<Position>, Error> {
        let inner = self.inner();
        for op in &batch.ops {
            inner.check_sizes(&op.key, op.value.as_ref().map_or(0, Vec::len))?;
        }
        let hashes: Vec<u64> = batch
            .ops
            .iter()
            .map(|op| inner.keydir.hash(&op.key))
            .collect();
        let (planned, seq) = {
            let mut w = inner.writer.lock();
            inner.check_writable()?;
            let planned = plan_batch(inner, &w, batch, &hashes);
            let seq = inner.write_planned(&mut w, &planned)?;
            (planned, seq)
        };
        inner.cache_planned(&planned);
        inner.after_write(seq)?;
        Ok(planned.last().map(|p| p.position))
    }
}

/// The records `batch` writes now: deletions of keys absent at that point
/// of the batch are dropped.
fn plan_batch<'a>(
    inner: &Inner,
    w: &Writer,
    batch: &'a WriteBatch,
    hashes: &[u64],
) -> Vec<RecordOp<'a>> {
    // Which keys the batch itself has put or deleted so far: needed only
    // to decide whether a later deletion writes anything.
    let has_deletes = batch.ops.iter().any(|op| op.value.is_none());
    let now = inner.now();
    let mut present: HashMap<&[u8], bool> = HashMap::new();
    let mut planned = Vec::with_capacity(batch.ops.len());
    for (op, &hash) in batch.ops.iter().zip(hashes) {
        let (key, value) = (&op.key, &op.value);
        let exists = |p: &HashMap<&[u8], bool>| match p.get(key.as_slice()) {
            Some(&known) => known,
            None => inner.live_loc(hash, key).is_some(),
        };
        let kind = match value {
            Some(_) => Kind::Value,
            None if exists(&present) => Kind::Tombstone,
            None => continue,
        };
        let expiry = op.expiry.map(|e| e.at(now));
        if has_deletes {
            let live = kind == Kind::Value && expiry.is_none_or(|at| !is_expired(at, now));
            present.insert(key, live);
        }
        let position = Position {
            epoch: w.epoch,
            lsn: w.last.lsn + 1 + planned.len() as u64,
        };
        let value = value.as_deref().unwrap_or_default();
        planned.push(RecordOp {
            position,
            kind,
            key,
            value,
            hash,
            expiry,
        });
    }
    planned
}

impl Inner {
    /// The most one append may write: a segment, or one largest record.
    pub(crate) fn max_append_bytes(&self) -> u64 {
        let (key, value) = (self.opts.max_key_bytes, self.opts.max_value_bytes);
        let record = record::encoded_len(key, value, true);
        self.opts.segment_bytes.max(record as u64)
    }

    /// Writes `planned` (one `write(2)`, all or none after a crash) and
    /// indexes it, first recording any new epoch in the epoch history; returns the group-commit sequence to sync to. Called
    /// under the writer lock. An index failure after the write poisons the
    /// store (reopening indexes the log again).
    pub(crate) fn write_planned(
        &self,
        w: &mut Writer,
        planned: &[RecordOp<'_>],
    ) -> Result<u64, Error> {
        let len: u64 = planned.iter().map(RecordOp::encoded_len).sum();
        let max = self.max_append_bytes();
        if len > max {
            return Err(Error::BatchTooLarge { len, max });
        }
        for p in planned.iter().filter(|p| p.kind == Kind::Value) {
            self.keydir.check_room(p.hash, p.key.len())?;
        }
        if let Some(epochs) = w.epochs.noted(planned.iter().map(|p| p.position))? {
            epochs.save(&self.dir)?;
            w.epochs = epochs;
        }
        let mut indexed = Ok(());
        self.append_records(w, planned, |i, loc| {
            let Some(p) = planned.get(i) else { return };
            if indexed.is_ok() {
                indexed = self.index_record(p, loc);
            }
        })?;
        if let Err(e) = indexed {
            self.group.poison();
            return Err(e);
        }
        Ok(w.seq)
    }

    /// Points the key directory at the record of `op`, just written at
    /// `loc`.
    pub(crate) fn index_record(&self, op: &RecordOp<'_>, loc: Loc) -> Result<(), Error> {
        let (hash, key) = (op.hash, op.key);
        match op.kind {
            Kind::Value => {
                let old = self.keydir.insert(hash, key, loc, op.expiry)?;
                self.note_replaced(old, Some(&loc));
            }
            Kind::Tombstone | Kind::Marker => {
                let old = self.keydir.remove(hash, key);
                self.note_replaced(old, None);
                self.add_dead(loc.segment, loc.len());
            }
        }
        Ok(())
    }

    /// Updates the hot cache for records written (after the writer lock).
    pub(crate) fn cache_planned(&self, planned: &[RecordOp<'_>]) {
        for p in planned {
            match p.kind {
                Kind::Value => self.cache_written(p.hash, p.key, p.value, p.position.lsn),
                Kind::Tombstone | Kind::Marker => self.cache.remove(p.hash, p.key),
            }
        }
    }
}

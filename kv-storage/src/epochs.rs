//! Epoch history: which epoch each stretch of the log was written in.
//!
//! # Why
//!
//! A partition's history is a sequence of entries stamped `(epoch, lsn)`.
//! Two replicas can hold different entries under the same LSN only if they
//! were written by different leaders, i.e. in different epochs. To find the
//! point where two histories part (log matching, Kafka's KIP-101), a replica
//! must answer "where does epoch `e` end in *your* log?" without scanning
//! it: that is this small table, epoch → first LSN, one row per epoch that
//! holds (or is about to hold) entries, kept in its own file `EPOCHS` so the
//! record format stays untouched.
//!
//! # Rules
//!
//! - Rows are strictly increasing in epoch and non-decreasing in first LSN;
//!   epoch `e` covers `[first(e), first(next) - 1]`, the last row up to
//!   `last_lsn()`.
//! - A row is added *before* the first record of its epoch is written
//!   ([`EpochHistory::noted`], called on every write path), and by
//!   [`Store::begin_epoch`](crate::Store::begin_epoch) before a leader's
//!   first write.
//! - A row whose epoch holds no records yet (first LSN beyond the log) is
//!   dropped when an entry of an *older* epoch arrives at that LSN or a newer
//!   epoch begins there (as Kafka's leader-epoch cache does): such a row
//!   would otherwise claim LSNs written in another epoch.
//! - `max` remembers the highest epoch ever seen, even if its row was
//!   dropped, so a new leader epoch is always strictly greater.
//! - On open the rows are reconciled with the log: a row starting beyond
//!   `last_lsn()` is dropped (its records were lost with an unsynced tail or
//!   truncated, or its epoch was begun and never written; `max` keeps it).
//!
//! # `EPOCHS` file (written atomically: `.tmp`, fsync, rename, fsync dir)
//!
//! | offset  | size   | field                                     |
//! |---------|--------|-------------------------------------------|
//! | 0       | 4      | magic `KVEH`                              |
//! | 4       | 4      | highest epoch seen (`u32`, LE)            |
//! | 8       | 4      | number of rows `n` (`u32`, LE)            |
//! | 12      | 12 × n | rows: epoch (`u32`, LE), first LSN (`u64`, LE) |
//! | 12 + 12n| 4      | CRC-32 of every byte before it (LE)       |
//!
//! Stores written before this file existed have only the legacy `EPOCH`
//! file (the highest epoch); their history is taken to be one row, the
//! newest record's epoch from LSN 1 (epochs were never bumped before).

use std::path::Path;

use crate::durable;
use crate::error::Error;
use crate::meta;
use crate::{Epoch, Lsn, Position, Store};

/// Name of the epoch-history file.
pub(crate) const EPOCHS_FILE: &str = "EPOCHS";
const MAGIC: &[u8; 4] = b"KVEH";
const ROW_BYTES: usize = 12;

/// Epoch → first LSN, plus the highest epoch seen. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct EpochHistory {
    /// Highest epoch ever seen or begun.
    pub max: Epoch,
    /// `(epoch, first lsn)`, increasing.
    pub rows: Vec<(Epoch, Lsn)>,
}

impl EpochHistory {
    /// The epoch of the newest row, if any.
    fn last_epoch(&self) -> Option<Epoch> {
        self.rows.last().map(|r| r.0)
    }

    /// Drops trailing rows of epochs newer than `epoch` that hold no
    /// records below `next` (they start at or after it).
    fn drop_empty_after(&mut self, epoch: Epoch, next: Lsn) {
        while let Some(&(e, first)) = self.rows.last() {
            if e <= epoch || first < next {
                break;
            }
            self.rows.pop();
        }
    }

    /// The history after writing records at `positions` (in LSN order), or
    /// `None` if it does not change. An entry whose epoch is older than
    /// epochs already holding records below it is rejected.
    pub(crate) fn noted(
        &self,
        positions: impl Iterator<Item = Position>,
    ) -> Result<Option<EpochHistory>, Error> {
        let mut next: Option<EpochHistory> = None;
        for p in positions {
            let current = next.as_ref().unwrap_or(self);
            if current.last_epoch() == Some(p.epoch) {
                continue;
            }
            let mut h = current.clone();
            h.drop_empty_after(p.epoch, p.lsn);
            if h.last_epoch().is_some_and(|e| e > p.epoch) {
                return Err(Error::InvalidEntry {
                    lsn: p.lsn,
                    reason: "entry's epoch is older than the epoch of earlier entries",
                });
            }
            if h.last_epoch() != Some(p.epoch) {
                h.rows.push((p.epoch, p.lsn));
            }
            h.max = h.max.max(p.epoch);
            next = Some(h);
        }
        Ok(next)
    }

    /// The history after a leader begins `epoch` with `next` as its first
    /// LSN; [`Error::EpochRegression`] unless `epoch` is above every epoch
    /// seen.
    pub(crate) fn begun(&self, epoch: Epoch, next: Lsn) -> Result<EpochHistory, Error> {
        let fresh = self.rows.is_empty() && self.max == 0 && epoch == 0;
        if epoch <= self.max && !fresh {
            return Err(Error::EpochRegression {
                current: self.max,
                requested: epoch,
            });
        }
        let mut h = self.clone();
        h.drop_empty_after(Epoch::MIN, next);
        h.rows.push((epoch, next));
        h.max = epoch;
        Ok(h)
    }

    /// The history after every entry above `lsn` is removed.
    pub(crate) fn truncated(&self, lsn: Lsn) -> EpochHistory {
        let mut h = self.clone();
        h.rows.retain(|&(_, first)| first <= lsn);
        h
    }

    /// The history of a store whose log was replaced by a snapshot as of
    /// `as_of`: nothing is known before it.
    pub(crate) fn restarted(&self, as_of: Position) -> EpochHistory {
        let rows = match as_of.lsn {
            0 => Vec::new(),
            lsn => vec![(as_of.epoch, lsn)],
        };
        EpochHistory {
            max: self.max.max(as_of.epoch),
            rows,
        }
    }

    /// Where `epoch` ends in this history (see `Store::end_of_epoch`).
    pub(crate) fn end_of(&self, epoch: Epoch, last: Position) -> Position {
        let Some(i) = self.rows.iter().rposition(|&(e, _)| e <= epoch) else {
            let first = self.rows.first().map_or(last.lsn + 1, |r| r.1);
            return Position {
                epoch,
                lsn: first.saturating_sub(1),
            };
        };
        let found = self.rows.get(i).map_or(0, |r| r.0);
        let lsn = match self.rows.get(i + 1) {
            Some(&(_, next_first)) => next_first.saturating_sub(1),
            None => last.lsn,
        };
        Position { epoch: found, lsn }
    }

    /// Drops rows that start beyond the log's last LSN: their records were
    /// lost with an unsynced tail, removed by a truncation that crashed
    /// before saving the history, or never written (an epoch begun but
    /// unused; `max` still remembers it, and its first write adds the row
    /// again).
    pub(crate) fn reconciled(mut self, last: Position, log_max_epoch: Epoch) -> EpochHistory {
        self.rows.retain(|&(_, first)| first <= last.lsn);
        self.max = self.max.max(log_max_epoch);
        self
    }

    /// Loads the history of `dir`, falling back to the legacy `EPOCH` file.
    pub(crate) fn load(dir: &Path, last: Position, log_max_epoch: Epoch) -> Result<Self, Error> {
        let path = dir.join(EPOCHS_FILE);
        let h = match std::fs::read(&path) {
            Ok(bytes) => {
                decode(&bytes).ok_or_else(|| Error::corrupted(&path, 0, "bad EPOCHS file"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => legacy(dir, last)?,
            Err(e) => return Err(Error::io(&path, e)),
        };
        Ok(h.reconciled(last, log_max_epoch))
    }

    /// Persists the history atomically and durably.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), Error> {
        durable::write_atomic(dir, EPOCHS_FILE, &encode(self))
    }
}

/// The history of a store written before `EPOCHS` existed.
fn legacy(dir: &Path, last: Position) -> Result<EpochHistory, Error> {
    let rows = match last.lsn {
        0 => Vec::new(),
        _ => vec![(last.epoch, 1)],
    };
    Ok(EpochHistory {
        max: meta::read_epoch(dir)?,
        rows,
    })
}

fn encode(h: &EpochHistory) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&h.max.to_le_bytes());
    bytes.extend_from_slice(&(h.rows.len() as u32).to_le_bytes());
    for (epoch, first) in &h.rows {
        bytes.extend_from_slice(&epoch.to_le_bytes());
        bytes.extend_from_slice(&first.to_le_bytes());
    }
    meta::with_crc(bytes)
}

fn decode(bytes: &[u8]) -> Option<EpochHistory> {
    let body = meta::check_crc(bytes)?;
    if body.get(0..4)? != MAGIC {
        return None;
    }
    let max = meta::le32(body, 4)?;
    let n = meta::le32(body, 8)? as usize;
    let rows_bytes = body.get(12..)?;
    if rows_bytes.len() != n.checked_mul(ROW_BYTES)? {
        return None;
    }
    let rows = rows_bytes
        .chunks_exact(ROW_BYTES)
        .map(|row| Some((meta::le32(row, 0)?, meta::le64(row, 4)?)))
        .collect::<Option<Vec<_>>>()?;
    Some(EpochHistory { max, rows })
}

impl Store {
    /// Starts a new leader epoch, durably, before any write in it: `epoch`
    /// must be greater than every epoch this store has seen
    /// ([`Error::EpochRegression`] otherwise). Its first LSN is
    /// `last_lsn() + 1` (returned); `put`, `delete` and write batches from
    /// now on are stamped with it. An earlier epoch that never got a record
    /// is dropped from the history.
    pub fn begin_epoch(&self, epoch: Epoch) -> Result<Lsn, Error> {
        let inner = self.inner();
        let mut w = inner.writer.lock();
        inner.check_writable()?;
        let first = w.last.lsn + 1;
        let epochs = w.epochs.begun(epoch, first)?;
        epochs.save(&inner.dir)?;
        w.epochs = epochs;
        w.epoch = epoch;
        Ok(first)
    }

    /// The epoch history: `(epoch, first LSN)` for every epoch this store
    /// holds entries of (the newest may have none yet), oldest first. After
    /// a snapshot install it starts at the snapshot's position.
    pub fn epoch_history(&self) -> Vec<(Epoch, Lsn)> {
        self.inner().writer.lock().epochs.rows.clone()
    }

    /// Log matching (Kafka's OffsetsForLeaderEpoch, KIP-101): for a
    /// subscriber whose last entry is in `epoch`, where that epoch ends in
    /// this store's history.
    ///
    /// - The answer's `epoch` is the largest epoch `e ≤ epoch` in this
    ///   store's history, and its `lsn` the last LSN of `e` here: the first
    ///   LSN of the next epoch minus one, or `last_lsn()` if `e` is the
    ///   newest. The subscriber keeps its entries up to
    ///   `min(answer.lsn, its own end of answer.epoch)` and truncates the
    ///   rest ([`Store::truncate_after`]).
    /// - An `epoch` newer than any here is answered with the newest epoch
    ///   and `last_lsn()` (a subscriber ahead of this store truncates to
    ///   it).
    /// - An `epoch` older than every epoch here (or any epoch on an empty
    ///   store) is answered with `epoch` itself and the LSN before this
    ///   store's first known epoch starts (`last_lsn()` on an empty store,
    ///   0 when nothing was ever written): none of the subscriber's entries
    ///   of that epoch can be trusted past it. If that LSN is below this
    ///   store's history floor, `entries_since` answers with a snapshot.
    pub fn end_of_epoch(&self, epoch: Epoch) -> Position {
        let w = self.inner().writer.lock();
        w.epochs.end_of(epoch, w.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(epoch: Epoch, lsn: Lsn) -> Position {
        Position { epoch, lsn }
    }

    fn hist(max: Epoch, rows: &[(Epoch, Lsn)]) -> EpochHistory {
        EpochHistory {
            max,
            rows: rows.to_vec(),
        }
    }

    #[test]
    fn file_roundtrip_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let h = hist(9, &[(1, 1), (4, 30), (7, 31)]);
        h.save(dir.path()).unwrap();
        let loaded = EpochHistory::load(dir.path(), pos(7, 40), 7).unwrap();
        assert_eq!(loaded, h);
        let path = dir.path().join(EPOCHS_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[14] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = EpochHistory::load(dir.path(), pos(7, 40), 7).unwrap_err();
        assert!(matches!(err, Error::Corrupted { .. }), "{err}");
    }

    #[test]
    fn legacy_store_gets_one_row() {
        let dir = tempfile::tempdir().unwrap();
        meta::write_epoch(dir.path(), 3).unwrap();
        let h = EpochHistory::load(dir.path(), pos(3, 12), 3).unwrap();
        assert_eq!(h, hist(3, &[(3, 1)]));
        let empty = tempfile::tempdir().unwrap();
        let h = EpochHistory::load(empty.path(), pos(0, 0), 0).unwrap();
        assert_eq!(h, hist(0, &[]));
    }

    #[test]
    fn noted_adds_rows_once_per_epoch_and_drops_empty_ones() {
        let h = EpochHistory::default();
        let h = h
            .noted([pos(0, 1), pos(0, 2)].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(h, hist(0, &[(0, 1)]));
        assert_eq!(h.noted([pos(0, 3)].into_iter()).unwrap(), None);
        // A leader began epoch 5 at 3 but wrote nothing; a newer leader
        // then sends epoch-0 entries at 3 and 4, then epoch 6.
        let h = h.begun(5, 3).unwrap();
        assert_eq!(h, hist(5, &[(0, 1), (5, 3)]));
        assert_eq!(h.end_of(5, pos(0, 2)), pos(5, 2));
        assert_eq!(h.end_of(4, pos(0, 2)), pos(0, 2));
        let h = h.noted([pos(0, 3), pos(0, 4), pos(6, 5)].into_iter());
        assert_eq!(h.unwrap().unwrap(), hist(6, &[(0, 1), (6, 5)]));
    }

    #[test]
    fn noted_rejects_an_epoch_going_backwards() {
        let h = hist(4, &[(2, 1), (4, 5)]);
        let err = h.noted([pos(3, 7)].into_iter()).unwrap_err();
        assert!(matches!(err, Error::InvalidEntry { lsn: 7, .. }), "{err}");
    }

    #[test]
    fn begun_must_be_above_every_epoch_seen() {
        let h = hist(7, &[(2, 1)]);
        let err = h.begun(7, 4).unwrap_err();
        assert!(matches!(
            err,
            Error::EpochRegression {
                current: 7,
                requested: 7
            }
        ));
        assert_eq!(h.begun(8, 4).unwrap(), hist(8, &[(2, 1), (8, 4)]));
        // Beginning twice with no write in between keeps only the newest.
        let twice = h.begun(8, 4).unwrap().begun(9, 4).unwrap();
        assert_eq!(twice, hist(9, &[(2, 1), (9, 4)]));
    }

    #[test]
    fn reconciled_drops_rows_beyond_the_log() {
        // Epoch 5 began at 11 (maybe wrote), but the log now ends at 8.
        let h = hist(6, &[(3, 1), (5, 11), (6, 12)]).reconciled(pos(3, 8), 3);
        assert_eq!(h, hist(6, &[(3, 1)]));
        let h = hist(5, &[(3, 1), (5, 9)]).reconciled(pos(5, 9), 5);
        assert_eq!(h, hist(5, &[(3, 1), (5, 9)]));
    }

    #[test]
    fn truncated_and_restarted() {
        let h = hist(6, &[(1, 1), (3, 10), (6, 20)]);
        assert_eq!(h.truncated(19), hist(6, &[(1, 1), (3, 10)]));
        assert_eq!(h.truncated(20), h);
        assert_eq!(h.restarted(pos(8, 50)), hist(8, &[(8, 50)]));
        assert_eq!(h.restarted(pos(0, 0)), hist(6, &[]));
    }
}

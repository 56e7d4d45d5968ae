//! The crate's one error type, shaped by how a caller reacts to it.
//!
//! - `KeyTooLarge` / `ValueTooLarge` / `BatchTooLarge`: the request is
//!   wrong; reject it (nothing was written).
//! - `Io`: the operating system failed; a write that returns it was not
//!   applied (a partly written record is cut, or cut by recovery).
//! - `NotDurable`: a write was applied (readers see it) but its fsync
//!   failed under `SyncPolicy::Always`; whether it survives a crash is
//!   unknown, and the store is poisoned.
//! - `Corrupted`: the data on disk is damaged; a human has to look. The store
//!   never returns a wrong value instead.
//! - `Locked`: another `Store` (in this or another process) owns the directory.
//! - `EpochRegression`: a new leader epoch was not above every epoch seen.
//! - `HistoryGone`: a truncation point is below the history floor; the
//!   caller falls back to a full resync.
//! - `Poisoned`: an fsync failed earlier; the store refuses writes from then on
//!   because the kernel may have dropped dirty pages (see fsyncgate).
//! - `Closed`: the store was shut down.

use std::path::PathBuf;

use crate::{Epoch, Lsn};

/// Everything that can go wrong in kv-storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A key is longer than `Options::max_key_bytes`.
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLarge {
        /// Length of the rejected key.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A value is longer than `Options::max_value_bytes`.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Length of the rejected value.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// An operating-system call on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is damaged: a record, header, hint or marker failed its checks.
    #[error("corrupted data in {} at offset {offset}: {reason}", segment.display())]
    Corrupted {
        /// The damaged file (usually a `segment-<n>.log`).
        segment: PathBuf,
        /// Byte offset of the bad record or header in that file.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// Another open store holds the directory lock.
    #[error("store directory {} is locked by another open store", dir.display())]
    Locked {
        /// The store directory.
        dir: PathBuf,
    },
    /// `begin_epoch` was asked for an epoch not above every epoch seen.
    #[error("a new epoch must be greater than {current}, requested {requested}")]
    EpochRegression {
        /// The store's epoch.
        current: Epoch,
        /// The rejected epoch.
        requested: Epoch,
    },
    /// The options cannot work (e.g. a segment size above the 1 GiB format cap).
    #[error("invalid options: {reason}")]
    InvalidOptions {
        /// What is wrong.
        reason: String,
    },
    /// The in-memory key directory ran out of addressable arena space.
    #[error("key directory is full ({keys} keys)")]
    KeyDirectoryFull {
        /// Keys held when the insert failed.
        keys: usize,
    },
    /// An entry handed to `apply` is invalid (e.g. LSN 0).
    #[error("invalid entry at lsn {lsn}: {reason}")]
    InvalidEntry {
        /// The entry's LSN.
        lsn: Lsn,
        /// What is wrong.
        reason: &'static str,
    },
    /// A write batch encodes to more bytes than one append may take (the
    /// larger of `Options::segment_bytes` and the largest single record).
    #[error("write batch of {len} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge {
        /// Encoded size of the batch.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// `truncate_after` was asked to cut below the history floor: the older
    /// versions it would need to restore are gone (compacted, or replaced
    /// by a snapshot). Resynchronise fully instead.
    #[error("cannot truncate after lsn {requested}: history is only kept above lsn {floor}")]
    HistoryGone {
        /// The LSN asked to truncate after.
        requested: Lsn,
        /// The store's history floor.
        floor: Lsn,
    },
    /// The store was shut down; no further operations are accepted.
    #[error("store is closed")]
    Closed,
    /// An earlier fsync failed, so durability can no longer be promised; the
    /// store refuses writes until it is reopened (recovery re-reads the disk).
    #[error("store is poisoned by an earlier failed fsync; reopen it")]
    Poisoned,
    /// The write was applied (readers see it, replication may ship it),
    /// but the fsync that `SyncPolicy::Always` waits for failed (`source`),
    /// so a crash may lose it: whether it survives is unknown. The store
    /// is poisoned. Every other error of a write means it was not applied.
    #[error("write applied, but not made durable: {source}")]
    NotDurable {
        /// Why the fsync did not happen.
        source: Box<Error>,
    },
    /// Test-only: compaction was stopped at an injected fault point.
    #[doc(hidden)]
    #[error("fault injected at {0:?}")]
    FaultInjected(crate::FaultPoint),
}

impl Error {
    /// Builds an [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Corrupted`].
    pub(crate) fn corrupted(
        segment: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Error {
        Error::Corrupted {
            segment: segment.into(),
            offset,
            reason: reason.into(),
        }
    }
}

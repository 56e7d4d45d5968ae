//! Test-only fault points: stop compaction (or a truncation, or a snapshot
//! install) between two durable steps, leaving
//! the files exactly as a crash at that moment would, so tests can reopen and
//! check that nothing was lost. Not part of the supported API.

use crate::error::Error;

/// A point where `Store::compact_until` (or another `_until` hook) stops.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// An explicit compaction sealed the active segment (step 0).
    AfterActiveSealed,
    /// Outputs and their hints are written and fsynced under `.tmp` names.
    AfterOutputsWritten,
    /// The first output file has been renamed to its final name.
    AfterFirstRename,
    /// All outputs are renamed and the directory fsynced.
    AfterRenames,
    /// The compaction marker listing the inputs is durable.
    AfterMarker,
    /// The first input file has been deleted.
    AfterFirstDelete,
    /// All inputs are deleted; only the marker remains.
    AfterDeletes,
    /// Truncation: the rollback file is durable.
    TruncateAfterRollback,
    /// Truncation: the new head segment is durable under its `.tmp` name.
    TruncateAfterHeadWritten,
    /// Truncation: the truncation marker is durable (the commit point).
    TruncateAfterMarker,
    /// Truncation: the head segment has its final name.
    TruncateAfterRename,
    /// Truncation: the first replaced segment has been deleted.
    TruncateAfterFirstDelete,
    /// Truncation: every replaced segment is deleted; the marker remains.
    TruncateAfterDeletes,
    /// Install: every staged segment is durable; no commit record yet.
    InstallAfterChunksWritten,
    /// Install: `staging/COMMIT` is durable (the commit point).
    InstallAfterCommitMarker,
    /// Install: the old segment files are deleted.
    InstallAfterOldDeleted,
    /// Install: the staged files are in the store directory.
    InstallAfterMoved,
}

impl FaultPoint {
    /// Every truncation fault point, in the order `truncate_after` reaches
    /// them.
    pub const TRUNCATION: [FaultPoint; 6] = [
        FaultPoint::TruncateAfterRollback,
        FaultPoint::TruncateAfterHeadWritten,
        FaultPoint::TruncateAfterMarker,
        FaultPoint::TruncateAfterRename,
        FaultPoint::TruncateAfterFirstDelete,
        FaultPoint::TruncateAfterDeletes,
    ];

    /// Every snapshot-install fault point, in the order `Install::commit`
    /// reaches them.
    pub const INSTALL: [FaultPoint; 4] = [
        FaultPoint::InstallAfterChunksWritten,
        FaultPoint::InstallAfterCommitMarker,
        FaultPoint::InstallAfterOldDeleted,
        FaultPoint::InstallAfterMoved,
    ];

    /// Every compaction fault point, in the order compaction reaches them.
    pub const ALL: [FaultPoint; 7] = [
        FaultPoint::AfterActiveSealed,
        FaultPoint::AfterOutputsWritten,
        FaultPoint::AfterFirstRename,
        FaultPoint::AfterRenames,
        FaultPoint::AfterMarker,
        FaultPoint::AfterFirstDelete,
        FaultPoint::AfterDeletes,
    ];
}

/// Fails with `FaultInjected` if `stop` is `here`.
pub(crate) fn check(stop: Option<FaultPoint>, here: FaultPoint) -> Result<(), Error> {
    match stop {
        Some(point) if point == here => Err(Error::FaultInjected(here)),
        _ => Ok(()),
    }
}

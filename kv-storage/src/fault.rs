//! Test-only fault points: stop compaction between two durable steps, leaving
//! the files exactly as a crash at that moment would, so tests can reopen and
//! check that nothing was lost. Not part of the supported API.

use crate::error::Error;

/// A point inside compaction where `Store::compact_until` stops.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultPoint {
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
}

impl FaultPoint {
    /// Every fault point, in the order compaction reaches them.
    pub const ALL: [FaultPoint; 6] = [
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

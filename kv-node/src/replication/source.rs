//! The source side of one replication stream, sans-IO: what to send next.
//!
//! After log matching, a source streams the entries after the point
//! `from` it agreed on. Where they come from is decided step by step, as
//! the follower's position and the source's memory change:
//!
//! 1. the in-memory backlog, while it still holds the next entry;
//! 2. else the store's history (one bounded read at a time);
//! 3. else, when compaction removed that history, a full snapshot, after
//!    which the stream resumes after the snapshot's position;
//! 4. with nothing to send, wait for a write or the heartbeat interval
//!    (an empty `Entries` carrying the source's position).
//!
//! [`SourceStream`] makes those choices from what the backlog and the
//! store answered; the transport reads them and moves the bytes.

use crate::protocol::{Entry, Lsn, Position};

use super::backlog::BacklogMiss;

/// What the source does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these entries.
    Send(Vec<Entry>),
    /// The backlog lost them: read the store's history after
    /// [`SourceStream::sent`], then call [`SourceStream::on_history`].
    ReadHistory,
    /// The history is gone: send a full snapshot, then call
    /// [`SourceStream::snapshot_sent`].
    Snapshot,
    /// Nothing to send: wait for a write, or heartbeat.
    Wait,
}

/// One stream's progress: the last LSN sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStream {
    sent: Lsn,
}

impl SourceStream {
    /// A stream that starts after `from`.
    pub fn new(from: Lsn) -> SourceStream {
        SourceStream { sent: from }
    }

    /// The last LSN sent (the follower has it or will).
    pub fn sent(&self) -> Lsn {
        self.sent
    }

    /// The backlog's answer for the entries after [`Self::sent`].
    pub fn on_backlog(&self, read: Result<Vec<Entry>, BacklogMiss>) -> Step {
        match read {
            Ok(entries) if entries.is_empty() => Step::Wait,
            Ok(entries) => Step::Send(entries),
            Err(BacklogMiss::Evicted) => Step::ReadHistory,
        }
    }

    /// The store's answer: entries after [`Self::sent`], or `None` when
    /// compaction removed them.
    pub fn on_history(&self, read: Option<Vec<Entry>>) -> Step {
        match read {
            None => Step::Snapshot,
            Some(entries) if entries.is_empty() => Step::Wait,
            Some(entries) => Step::Send(entries),
        }
    }

    /// Entries up to `lsn` were sent.
    pub fn sent_through(&mut self, lsn: Lsn) {
        self.sent = self.sent.max(lsn);
    }

    /// A snapshot as of `as_of` was sent: the stream resumes after it.
    pub fn snapshot_sent(&mut self, as_of: Position) {
        self.sent = as_of.lsn;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn entries(lsns: std::ops::RangeInclusive<Lsn>) -> Vec<Entry> {
        lsns.map(|lsn| Entry {
            position: Position { epoch: 1, lsn },
            key: Bytes::from_static(b"k"),
            value: None,
            expiry: None,
        })
        .collect()
    }

    #[test]
    fn backlog_then_history_then_snapshot() {
        let mut s = SourceStream::new(5);
        assert_eq!(s.on_backlog(Ok(entries(6..=7))), Step::Send(entries(6..=7)));
        s.sent_through(7);
        assert_eq!(s.sent(), 7);
        assert_eq!(s.on_backlog(Ok(Vec::new())), Step::Wait);
        assert_eq!(s.on_backlog(Err(BacklogMiss::Evicted)), Step::ReadHistory);
        assert_eq!(
            s.on_history(Some(entries(8..=9))),
            Step::Send(entries(8..=9))
        );
        assert_eq!(s.on_history(Some(Vec::new())), Step::Wait);
        assert_eq!(s.on_history(None), Step::Snapshot);
        s.snapshot_sent(Position { epoch: 2, lsn: 40 });
        assert_eq!(s.sent(), 40);
        s.sent_through(3);
        assert_eq!(s.sent(), 40, "never moves back");
    }
}

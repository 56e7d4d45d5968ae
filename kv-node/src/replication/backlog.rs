//! The leader's in-memory replication backlog.
//!
//! A bounded window of the most recent entries of one partition, in LSN
//! order without gaps, from which live followers are served without
//! touching disk. Writers may finish out of LSN order (two concurrent puts
//! get LSNs 5 and 6 from the store, and 6 may be pushed first), so an entry
//! that arrives early waits in `early` until the gap before it closes; only
//! the gap-free prefix is ever served. The window is bounded in bytes: the
//! oldest entries are dropped first, and a follower that needs one of them
//! is served from the store instead (or a snapshot).

use std::collections::{BTreeMap, VecDeque};

use crate::protocol::{Entry, Lsn};

/// Bytes an entry is charged for beyond its key and value.
const ENTRY_OVERHEAD_BYTES: usize = 64;
/// Entries that arrived ahead of a gap are dropped beyond this many.
const MAX_EARLY_ENTRIES: usize = 65_536;

/// What a reader asked for is no longer (or not yet) in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BacklogMiss {
    /// The entries were evicted (or precede the window): read the store.
    Evicted,
}

/// A bounded, gap-free window of recent entries.
#[derive(Debug)]
pub struct Backlog {
    window: VecDeque<Entry>,
    early: BTreeMap<Lsn, Entry>,
    /// The LSN the next in-order entry must carry.
    next: Lsn,
    bytes: usize,
    max_bytes: usize,
    accepting: bool,
}

fn charge(e: &Entry) -> usize {
    e.key.len() + e.value.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD_BYTES
}

impl Backlog {
    /// An empty window whose first entry will be `last + 1`.
    pub fn new(last: Lsn, max_bytes: usize) -> Backlog {
        Backlog {
            window: VecDeque::new(),
            early: BTreeMap::new(),
            next: last + 1,
            bytes: 0,
            max_bytes,
            accepting: true,
        }
    }

    /// Forgets everything; the next entry accepted is `last + 1`.
    pub fn reset(&mut self, last: Lsn) {
        *self = Backlog::new(last, self.max_bytes);
    }

    /// Stops accepting entries (while a snapshot is installed, whose LSNs
    /// have gaps) until the next [`Backlog::reset`].
    pub fn suspend(&mut self) {
        self.reset(0);
        self.accepting = false;
    }

    /// The last LSN of the gap-free prefix.
    pub fn last(&self) -> Lsn {
        self.next - 1
    }

    /// Adds a written entry. Returns true when the gap-free prefix grew.
    pub fn push(&mut self, entry: Entry) -> bool {
        if !self.accepting || entry.position.lsn < self.next {
            return false;
        }
        if entry.position.lsn > self.next {
            if self.early.len() < MAX_EARLY_ENTRIES {
                self.early.insert(entry.position.lsn, entry);
            }
            return false;
        }
        self.append(entry);
        while let Some(e) = self.early.remove(&self.next) {
            self.append(e);
        }
        self.early.retain(|&lsn, _| lsn > self.next);
        self.evict();
        true
    }

    fn append(&mut self, entry: Entry) {
        self.next = entry.position.lsn + 1;
        self.bytes += charge(&entry);
        self.window.push_back(entry);
    }

    fn evict(&mut self) {
        while self.bytes > self.max_bytes && self.window.len() > 1 {
            if let Some(e) = self.window.pop_front() {
                self.bytes -= charge(&e);
            }
        }
    }

    /// Entries with LSN greater than `after`, in order, about `max_bytes`
    /// of them (always at least one when any is there); empty when `after`
    /// is at the end of the window.
    pub fn read_after(&self, after: Lsn, max_bytes: usize) -> Result<Vec<Entry>, BacklogMiss> {
        if after >= self.last() {
            return Ok(Vec::new());
        }
        let first = match self.window.front() {
            Some(e) => e.position.lsn,
            None => return Err(BacklogMiss::Evicted),
        };
        if after + 1 < first {
            return Err(BacklogMiss::Evicted);
        }
        let skip = (after + 1 - first) as usize;
        let mut budget = max_bytes;
        let mut out = Vec::new();
        for e in self.window.iter().skip(skip) {
            let cost = charge(e);
            if !out.is_empty() && cost > budget {
                break;
            }
            budget = budget.saturating_sub(cost);
            out.push(e.clone());
        }
        Ok(out)
    }

    /// Bytes currently held (for stats and tests).
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::Position;

    fn entry(lsn: Lsn, len: usize) -> Entry {
        Entry {
            position: Position { epoch: 1, lsn },
            key: Bytes::from(format!("k{lsn}")),
            value: Some(Bytes::from(vec![b'v'; len])),
            expiry: None,
        }
    }

    #[test]
    fn serves_in_order_after_out_of_order_pushes() {
        let mut b = Backlog::new(0, 1 << 20);
        assert!(!b.push(entry(2, 1)));
        assert_eq!(b.last(), 0);
        assert!(b.push(entry(1, 1)));
        assert_eq!(b.last(), 2);
        let got: Vec<Lsn> = b
            .read_after(0, 1 << 20)
            .unwrap()
            .iter()
            .map(|e| e.position.lsn)
            .collect();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(b.read_after(2, 1 << 20).unwrap(), vec![]);
    }

    #[test]
    fn bounded_in_bytes_and_reports_eviction() {
        let mut b = Backlog::new(0, 10_000);
        for lsn in 1..=1000 {
            b.push(entry(lsn, 100));
        }
        assert!(b.bytes() <= 10_000);
        assert_eq!(b.read_after(0, 1 << 20), Err(BacklogMiss::Evicted));
        let tail = b.read_after(995, 1 << 20).unwrap();
        assert_eq!(tail.len(), 5);
        assert_eq!(tail[0].position.lsn, 996);
        // A byte budget smaller than one entry still yields one.
        assert_eq!(b.read_after(995, 1).unwrap().len(), 1);
        assert_eq!(b.read_after(995, 2 * charge(&tail[0])).unwrap().len(), 2);
    }

    #[test]
    fn suspended_backlog_ignores_entries_until_reset() {
        let mut b = Backlog::new(5, 1 << 20);
        b.suspend();
        assert!(!b.push(entry(1, 1)));
        b.reset(9);
        assert!(b.push(entry(10, 1)));
        assert_eq!(b.read_after(9, 1 << 20).unwrap().len(), 1);
        assert_eq!(b.read_after(3, 1 << 20), Err(BacklogMiss::Evicted));
    }

    #[test]
    fn stale_entries_are_ignored() {
        let mut b = Backlog::new(10, 1 << 20);
        assert!(!b.push(entry(3, 1)));
        assert_eq!(b.last(), 10);
    }
}

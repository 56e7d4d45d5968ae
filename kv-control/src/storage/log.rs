//! The Raft log: `raft.log`, an append-only file of checksummed records,
//! replayed into memory on open; and the vote, in its own file.
//!
//! Two locks: `file` is held for the whole of every write (so writes are
//! serialised, as openraft requires, and a reader never waits for an
//! fsync), `mem` only for moments. Lock order: `file`, then `mem`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kv_storage::durable::write_atomic;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    LogId, OptionalSend, RaftLogId, RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::frame::{self, LOG_MAGIC, MAGIC_BYTES, Step, VOTE_MAGIC};
use super::{LOG_FILE, OpenError, VOTE_FILE, blocking, corrupted, io_error};
use crate::TypeConfig;

/// Compaction waits for at least this many dead items (entries removed
/// by truncate or purge, superseded `Committed` records)...
pub(super) const COMPACT_MIN_DEAD: u64 = 1000;

/// ...and for the live records to fill less than half the file.
const COMPACT_LIVE_FRACTION_DENOMINATOR: u64 = 2;

/// Entries per `Entries` record when compaction rewrites the log.
const COMPACT_ENTRIES_PER_RECORD: usize = 1024;

/// One log record's payload (serde_json, externally tagged).
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
enum Record<C: RaftTypeConfig> {
    /// Entries appended, in index order.
    Entries(Vec<C::Entry>),
    /// Entries from this log id's index on were deleted.
    TruncateFrom(LogId<C::NodeId>),
    /// Entries up to this log id's index were deleted, and it is the last
    /// purged log id.
    PurgeUpto(LogId<C::NodeId>),
    /// The last committed log id.
    Committed(Option<LogId<C::NodeId>>),
}

/// openraft's log storage ([`RaftLogStorage`], [`RaftLogReader`]) over
/// `raft.log` and `vote`. Clones share one log.
///
/// Generic only so that openraft's conformance suite (which needs a
/// `u64` node id) can run it; kv uses `LogStore<TypeConfig>`.
pub struct LogStore<C: RaftTypeConfig = TypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        LogStore {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<C: RaftTypeConfig> {
    dir: PathBuf,
    file: Mutex<LogFile>,
    mem: Mutex<LogMem<C>>,
}

/// The open log file.
struct LogFile {
    file: File,
    len: u64,
    /// A write or fsync failed: the file's tail is unknown (the kernel may
    /// have dropped dirty pages), so every later write is refused until a
    /// restart replays the file.
    poisoned: bool,
}

/// The log as replayed: live entries, pointers, the vote, and the
/// counters that decide compaction.
struct LogMem<C: RaftTypeConfig> {
    entries: BTreeMap<u64, Live<C::Entry>>,
    last_purged: Option<LogId<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    vote: Option<Vote<C::NodeId>>,
    dead: u64,
    live_bytes: u64,
}

/// A live entry and its share of the bytes of the record that wrote it
/// (an estimate, for the compaction rule only).
struct Live<E> {
    entry: E,
    bytes: u64,
}

impl<C: RaftTypeConfig> LogMem<C>
where
    C::Entry: Clone,
{
    fn new() -> Self {
        LogMem {
            entries: BTreeMap::new(),
            last_purged: None,
            committed: None,
            vote: None,
            dead: 0,
            live_bytes: MAGIC_BYTES as u64,
        }
    }

    /// Applies one record, written or replayed, of `bytes` bytes.
    fn apply(&mut self, record: Record<C>, bytes: u64) {
        match record {
            Record::Entries(entries) => {
                let share = bytes / (entries.len().max(1) as u64);
                for entry in entries {
                    let index = entry.get_log_id().index;
                    if let Some(old) = self.entries.insert(
                        index,
                        Live {
                            entry,
                            bytes: share,
                        },
                    ) {
                        self.forget(old.bytes);
                    }
                    self.live_bytes = self.live_bytes.saturating_add(share);
                }
            }
            Record::TruncateFrom(log_id) => {
                let gone = self.entries.split_off(&log_id.index);
                gone.values().for_each(|l| self.forget(l.bytes));
            }
            Record::PurgeUpto(log_id) => {
                let keep = match log_id.index.checked_add(1) {
                    Some(next) => self.entries.split_off(&next),
                    None => BTreeMap::new(),
                };
                let gone = std::mem::replace(&mut self.entries, keep);
                gone.values().for_each(|l| self.forget(l.bytes));
                if self.last_purged.as_ref() < Some(&log_id) {
                    self.last_purged = Some(log_id);
                }
            }
            Record::Committed(committed) => {
                if self.committed.is_some() {
                    self.dead = self.dead.saturating_add(1); // the one it supersedes
                }
                self.committed = committed;
            }
        }
    }

    fn forget(&mut self, bytes: u64) {
        self.dead = self.dead.saturating_add(1);
        self.live_bytes = self.live_bytes.saturating_sub(bytes);
    }

    fn should_compact(&self, file_len: u64) -> bool {
        self.dead > COMPACT_MIN_DEAD
            && self
                .live_bytes
                .saturating_mul(COMPACT_LIVE_FRACTION_DENOMINATOR)
                < file_len
    }

    /// The whole log as a fresh file: magic, the purge point, the live
    /// entries, the committed pointer.
    fn image(&self) -> io::Result<Vec<u8>> {
        let mut out = LOG_MAGIC.to_vec();
        if let Some(purged) = &self.last_purged {
            encode_record::<C>(&Record::PurgeUpto(purged.clone()), &mut out)?;
        }
        let entries: Vec<C::Entry> = self.entries.values().map(|l| l.entry.clone()).collect();
        for chunk in entries.chunks(COMPACT_ENTRIES_PER_RECORD) {
            encode_record::<C>(&Record::Entries(chunk.to_vec()), &mut out)?;
        }
        if self.committed.is_some() {
            encode_record::<C>(&Record::Committed(self.committed.clone()), &mut out)?;
        }
        Ok(out)
    }

    fn last_log_id(&self) -> Option<LogId<C::NodeId>> {
        let last = self.entries.last_key_value();
        last.map(|(_, l)| l.entry.get_log_id().clone())
            .or_else(|| self.last_purged.clone())
    }

    fn range(&self, start: u64, end: Option<u64>) -> Vec<C::Entry> {
        let live = match end {
            Some(end) if end <= start => return Vec::new(),
            Some(end) => self.entries.range(start..end),
            None => self.entries.range(start..),
        };
        live.map(|(_, l)| l.entry.clone()).collect()
    }
}

fn encode_record<C: RaftTypeConfig>(record: &Record<C>, out: &mut Vec<u8>) -> io::Result<()> {
    frame::encode(&serde_json::to_vec(record)?, out)
}

impl LogFile {
    fn open(path: &Path) -> io::Result<LogFile> {
        let file = OpenOptions::new().append(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(LogFile {
            file,
            len,
            poisoned: false,
        })
    }

    /// Writes `bytes` at the end and fsyncs them.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(
                "an earlier log write failed; restart to recover the log",
            ));
        }
        let written = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        if written.is_err() {
            self.poisoned = true;
        }
        written?;
        self.len = self.len.saturating_add(bytes.len() as u64);
        Ok(())
    }
}

impl<C: RaftTypeConfig> Shared<C>
where
    C::Entry: Clone,
{
    /// Appends `record` durably, then applies it in memory; compacts the
    /// file if dead records dominate.
    fn write(&self, record: Record<C>) -> io::Result<()> {
        let mut file = self.file.lock();
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes)?;
        file.append(&bytes)?;
        let mut mem = self.mem.lock();
        mem.apply(record, bytes.len() as u64);
        if mem.should_compact(file.len) {
            let image = mem.image();
            drop(mem);
            self.compact(&mut file, image);
        }
        Ok(())
    }

    /// Replaces `raft.log` by `image` (see the module docs). The record
    /// that triggered it is durable either way, so a failure here is not
    /// the caller's: it is logged and poisons the log, because after a
    /// failed rename or directory fsync the name may point at either file.
    fn compact(&self, file: &mut LogFile, image: io::Result<Vec<u8>>) {
        let rewritten = image.and_then(|image| {
            write_atomic(&self.dir, LOG_FILE, &image).map_err(io::Error::other)?;
            LogFile::open(&self.dir.join(LOG_FILE))
        });
        match rewritten {
            Ok(new_file) => {
                let mut mem = self.mem.lock();
                mem.dead = 0;
                mem.live_bytes = new_file.len;
                tracing::info!(
                    bytes = new_file.len,
                    old_bytes = file.len,
                    "compacted the Raft log"
                );
                *file = new_file;
            }
            Err(e) => {
                tracing::error!(error = %e, "Raft log compaction failed; refusing further writes");
                file.poisoned = true;
            }
        }
    }

    fn save_vote(&self, vote: Vote<C::NodeId>) -> io::Result<()> {
        let _serialised = self.file.lock();
        let mut out = VOTE_MAGIC.to_vec();
        frame::encode(&serde_json::to_vec(&vote)?, &mut out)?;
        write_atomic(&self.dir, VOTE_FILE, &out).map_err(io::Error::other)?;
        self.mem.lock().vote = Some(vote);
        Ok(())
    }
}

/// Opens `dir/raft.log` (creating it) and `dir/vote`.
pub(super) fn open<C: RaftTypeConfig>(dir: &Path) -> Result<LogStore<C>, OpenError>
where
    C::Entry: Clone,
{
    let path = dir.join(LOG_FILE);
    if !path.exists() {
        write_atomic(dir, LOG_FILE, &LOG_MAGIC)?;
    }
    let buf = std::fs::read(&path).map_err(|e| io_error(&path, e))?;
    let mut mem = replay::<C>(dir, &path, &buf)?;
    mem.vote = read_vote::<C>(dir)?;
    let file = LogFile::open(&path).map_err(|e| io_error(&path, e))?;
    let shared = Shared {
        dir: dir.to_path_buf(),
        file: Mutex::new(file),
        mem: Mutex::new(mem),
    };
    Ok(LogStore {
        shared: Arc::new(shared),
    })
}

/// Replays `buf`, the log file's bytes; cuts a torn tail off the file.
fn replay<C: RaftTypeConfig>(dir: &Path, path: &Path, buf: &[u8]) -> Result<LogMem<C>, OpenError>
where
    C::Entry: Clone,
{
    let mut mem = LogMem::new();
    if buf.get(..MAGIC_BYTES) != Some(LOG_MAGIC.as_slice()) {
        if !LOG_MAGIC.starts_with(buf) {
            return Err(corrupted(
                path,
                0,
                "wrong magic: not a kv-control log, or an unknown version",
            ));
        }
        tracing::warn!(path = %path.display(), bytes = buf.len(), "Raft log magic cut short; starting an empty log");
        write_atomic(dir, LOG_FILE, &LOG_MAGIC)?;
        return Ok(mem);
    }
    let mut at = MAGIC_BYTES;
    loop {
        match frame::step(buf, at) {
            Step::Record { payload, next } => {
                let record = serde_json::from_slice(payload)
                    .map_err(|e| corrupted(path, at, &format!("undecodable record: {e}")))?;
                mem.apply(record, (next - at) as u64);
                at = next;
            }
            Step::End => return Ok(mem),
            Step::Torn(reason) => {
                cut(path, at, buf.len(), reason)?;
                return Ok(mem);
            }
            Step::Corrupt(reason) => return Err(corrupted(path, at, reason)),
        }
    }
}

/// Truncates the log file to `at`, its last whole record, and fsyncs it.
fn cut(path: &Path, at: usize, len: usize, reason: &str) -> Result<(), OpenError> {
    tracing::warn!(
        path = %path.display(), offset = at, dropped_bytes = len - at, reason,
        "cutting a torn tail off the Raft log (a crash during an append)"
    );
    let file = OpenOptions::new().write(true).open(path);
    let cut = file.and_then(|f| {
        f.set_len(at as u64)?;
        f.sync_all()
    });
    cut.map_err(|e| io_error(path, e))
}

fn read_vote<C: RaftTypeConfig>(dir: &Path) -> Result<Option<Vote<C::NodeId>>, OpenError> {
    let path = dir.join(VOTE_FILE);
    let buf = match std::fs::read(&path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path, e)),
    };
    let payloads = frame::decode_file(&VOTE_MAGIC, &buf)
        .map_err(|d| corrupted(&path, d.offset as usize, &d.reason))?;
    let [payload] = payloads.as_slice() else {
        return Err(corrupted(
            &path,
            MAGIC_BYTES,
            "a vote file holds exactly one record",
        ));
    };
    let vote = serde_json::from_slice(payload)
        .map_err(|e| corrupted(&path, MAGIC_BYTES, &format!("undecodable vote: {e}")))?;
    Ok(Some(vote))
}

impl<C: RaftTypeConfig> LogStore<C>
where
    C::Entry: Clone,
{
    async fn write(&self, record: Record<C>) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        blocking(move || shared.write(record)).await
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => match s.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(e) => e.checked_add(1),
            Bound::Excluded(e) => Some(*e),
            Bound::Unbounded => None,
        };
        Ok(self.shared.mem.lock().range(start, end))
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let mem = self.shared.mem.lock();
        Ok(LogState {
            last_purged_log_id: mem.last_purged.clone(),
            last_log_id: mem.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        let vote = vote.clone();
        let saved = blocking(move || shared.save_vote(vote)).await;
        Ok(saved.map_err(|e| StorageIOError::write_vote(&e))?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.shared.mem.lock().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let saved = self.write(Record::Committed(committed)).await;
        Ok(saved.map_err(|e| StorageIOError::write(&e))?)
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.shared.mem.lock().committed.clone())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        if entries.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        // `write` returns once the record is fsynced: only then is the
        // callback told.
        match self.write(Record::Entries(entries)).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let error = StorageIOError::write_logs(&e);
                callback.log_io_completed(Err(e));
                Err(error.into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let written = self.write(Record::TruncateFrom(log_id)).await;
        Ok(written.map_err(|e| StorageIOError::write_logs(&e))?)
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let written = self.write(Record::PurgeUpto(log_id)).await;
        Ok(written.map_err(|e| StorageIOError::write_logs(&e))?)
    }
}

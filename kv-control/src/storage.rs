//! openraft's storage for the control plane: the Raft log, the vote and
//! the state machine's snapshots, under one directory, crash-safe.
//!
//! [`open`] returns a [`LogStore`] (openraft's `RaftLogStorage`) and a
//! [`StateMachine`] (its `RaftStateMachine`). Nothing is acknowledged to
//! openraft before it is on disk: an append calls openraft back only after
//! its record is fsynced; a vote, a truncation, a purge, a committed
//! pointer and a snapshot are durable before their call returns.
//!
//! # Files
//!
//! `dir` (kv-node passes `<data_dir>/controller/`) holds three files:
//!
//! | file       | written                                   | contents |
//! |------------|-------------------------------------------|----------|
//! | `raft.log` | appended, one record per call, fsynced    | magic `KVCLOG\0\x01`, then log records |
//! | `vote`     | replaced atomically (`write_atomic`)      | magic `KVCVOT\0\x01`, one record: the vote |
//! | `snapshot` | replaced atomically (`write_atomic`)      | magic `KVCSNP\0\x01`, two records: metadata, data |
//!
//! A magic is 8 bytes: a six-byte file kind, a zero byte, and the format
//! version (1). A `<name>.tmp` left by a crash inside `write_atomic` is
//! deleted on open (the next write would replace it anyway).
//!
//! # A record
//!
//! | offset | size  | field      | meaning |
//! |--------|-------|------------|---------|
//! | 0      | 4     | `len`      | payload length in bytes, u32 little-endian |
//! | 4      | 4     | `crc`      | crc32 (IEEE, as crc32fast) of the payload, u32 LE |
//! | 8      | 4     | `head_crc` | crc32 of bytes 0..8 (`len` then `crc`), u32 LE |
//! | 12     | `len` | payload    | serde_json (below) |
//!
//! `head_crc` lets recovery trust `len`: without it, a flipped bit in the
//! length of a record in the middle could make it seem to run past the end
//! of the file, and be cut as if torn, with the good records after it.
//!
//! # Payloads
//!
//! A log record's payload is one of, externally tagged:
//! `{"Entries":[entry, ..]}` (entries appended, openraft's `Entry` serde),
//! `{"TruncateFrom":log_id}` (entries from its index on deleted),
//! `{"PurgeUpto":log_id}` (entries up to its index deleted; the last purged
//! log id) and `{"Committed":log_id or null}`. `vote` holds openraft's
//! `Vote`; `snapshot` holds openraft's `SnapshotMeta`, then the snapshot
//! data: `{"last_applied", "membership", "state"}`, the same bytes a
//! snapshot sends to another node.
//!
//! # Recovery
//!
//! [`open`] replays `raft.log` into memory, record by record:
//!
//! - a record cut short (header or payload), a last record whose payload
//!   fails its checksum, or a zero-filled tail is what a crash during an
//!   append leaves: the file is cut back to the last whole record, fsynced,
//!   and a `warn!` logged. That record was never acknowledged.
//! - a record with records after it that fails a check, or a header that
//!   fails its checksum with non-zero bytes after it, cannot come from a
//!   torn append: [`OpenError::Corrupted`], and nothing is guessed.
//! - a damaged `vote` or `snapshot` is always corruption: they are renamed
//!   into place only when complete.
//!
//! The state machine starts from `snapshot` (or empty) and openraft
//! re-applies the log's entries after it up to the saved committed log id.
//!
//! # Compaction
//!
//! Truncated and purged entries and superseded committed pointers stay in
//! the file as dead bytes. Once there are more than 1000 such items and
//! the live records fill less than half the file, the live log (purge
//! point, entries, committed pointer) is written to a new file that
//! replaces `raft.log` atomically (`write_atomic`: fsync, rename, fsync
//! the directory).
//!
//! # Failures
//!
//! A failed write or fsync of `raft.log` poisons the log: the file's tail
//! is unknown (the kernel may have dropped the dirty pages), so every
//! later write fails until a restart replays the file. Blocking file I/O
//! runs on tokio's blocking pool.

mod frame;
mod log;
mod machine;

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};

use openraft::{Entry, RaftTypeConfig};

pub use log::LogStore;
pub use machine::StateMachine;

use crate::{Command, Reply, TypeConfig};

/// The log's file name in the storage directory.
const LOG_FILE: &str = "raft.log";
/// The vote's file name.
const VOTE_FILE: &str = "vote";
/// The current snapshot's file name.
const SNAPSHOT_FILE: &str = "snapshot";

/// Why [`open`] failed. (After open, failures reach openraft as its own
/// `StorageError`, which stops the Raft node.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// An operating-system call on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Creating or replacing a file durably failed.
    #[error(transparent)]
    Durable(#[from] kv_storage::Error),
    /// A file is damaged in a way a crash cannot explain; a human has to
    /// look (the node can also be rebuilt from its peers).
    #[error("corrupted {} at offset {offset}: {reason}", file.display())]
    Corrupted {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the bad magic or record.
        offset: u64,
        /// What check failed.
        reason: String,
    },
}

/// Opens (creating if absent) the controller's storage in `dir`; recovers
/// from a crash (see the module docs). Blocking: from async code, call it
/// through `spawn_blocking`.
pub fn open(dir: &Path) -> Result<(LogStore, StateMachine), OpenError> {
    open_as::<TypeConfig>(dir)
}

/// [`open`] for any type config with kv's commands: openraft's
/// conformance suite needs a `u64` node id.
pub(crate) fn open_as<C>(dir: &Path) -> Result<(LogStore<C>, StateMachine<C>), OpenError>
where
    C: RaftTypeConfig<D = Command, R = Reply, Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
{
    create_dir(dir)?;
    for name in [LOG_FILE, VOTE_FILE, SNAPSHOT_FILE] {
        remove_leftover(&dir.join(format!("{name}.tmp")))?;
    }
    Ok((log::open(dir)?, machine::open(dir)?))
}

/// Creates `dir` if absent and makes its entry durable.
fn create_dir(dir: &Path) -> Result<(), OpenError> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        kv_storage::durable::sync_dir(parent)?;
    }
    Ok(())
}

fn remove_leftover(path: &Path) -> Result<(), OpenError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(path, e)),
    }
}

fn io_error(path: &Path, source: io::Error) -> OpenError {
    OpenError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupted(file: &Path, offset: usize, reason: &str) -> OpenError {
    OpenError::Corrupted {
        file: file.to_path_buf(),
        offset: offset as u64,
        reason: reason.to_owned(),
    }
}

/// Runs blocking file I/O on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    // Under `sim` (a turmoil simulation) the call runs inline, as a task
    // on the simulated host's thread: a pool thread would finish in wall
    // time, in whichever simulated tick it landed.
    #[cfg(feature = "sim")]
    let handle = tokio::task::spawn(async move { f() });
    #[cfg(not(feature = "sim"))]
    let handle = tokio::task::spawn_blocking(f);
    handle.await.map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use openraft::StorageIOError;
    use openraft::testing::{StoreBuilder, Suite};
    use tempfile::TempDir;

    use super::*;

    openraft::declare_raft_types!(
        /// kv's types with the `u64` node id openraft's suite needs.
        pub SuiteConfig:
            D = Command,
            R = Reply,
            NodeId = u64,
            Node = openraft::EmptyNode,
            SnapshotData = std::io::Cursor<Vec<u8>>,
    );

    struct Builder;

    impl StoreBuilder<SuiteConfig, LogStore<SuiteConfig>, StateMachine<SuiteConfig>, TempDir>
        for Builder
    {
        async fn build(
            &self,
        ) -> Result<
            (TempDir, LogStore<SuiteConfig>, StateMachine<SuiteConfig>),
            openraft::StorageError<u64>,
        > {
            let dir = tempfile::tempdir().map_err(|e| StorageIOError::read(&e))?;
            let (log, sm) = open_as(dir.path()).map_err(|e| StorageIOError::read(&e))?;
            Ok((dir, log, sm))
        }
    }

    /// openraft's own conformance suite (it runs its own runtimes).
    #[test]
    fn openraft_suite() {
        Suite::test_all(Builder).unwrap();
    }

    #[test]
    fn open_creates_the_directory_and_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        let controller = dir.path().join("data").join("controller");
        open(&controller).unwrap();
        let log = std::fs::read(controller.join(LOG_FILE)).unwrap();
        assert_eq!(log, b"KVCLOG\x00\x01");
        assert!(!controller.join(VOTE_FILE).exists());
        assert!(!controller.join(SNAPSHOT_FILE).exists());
    }

    #[test]
    fn open_refuses_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOG_FILE), b"not a kv log").unwrap();
        let err = open(dir.path()).err().unwrap();
        assert!(
            matches!(err, OpenError::Corrupted { offset: 0, .. }),
            "{err}"
        );
    }
}

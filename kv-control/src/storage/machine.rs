//! The state machine: [`ControlState`] in memory, made durable by
//! snapshots in `dir/snapshot` (the log holds everything after one).
//!
//! Two locks: `snapshot` serialises building and installing snapshots
//! (so the file never goes back to an older one), `applied` guards the
//! state for moments. Lock order: `snapshot`, then `applied`.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kv_storage::durable::write_atomic;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftTypeConfig, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::frame::{self, MAGIC_BYTES, SNAPSHOT_MAGIC};
use super::{OpenError, SNAPSHOT_FILE, blocking, corrupted, io_error};
use crate::{Command, ControlState, Reply, TypeConfig};

/// openraft's state machine ([`RaftStateMachine`], and its own
/// [`RaftSnapshotBuilder`]) over [`ControlState`]. Clones share one state.
///
/// Generic only so that openraft's conformance suite (which needs a
/// `u64` node id) can run it; kv uses `StateMachine<TypeConfig>`.
pub struct StateMachine<C: RaftTypeConfig = TypeConfig> {
    shared: Arc<Shared<C>>,
}

impl<C: RaftTypeConfig> Clone for StateMachine<C> {
    fn clone(&self) -> Self {
        StateMachine {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<C: RaftTypeConfig> {
    dir: PathBuf,
    snapshot: Mutex<()>,
    applied: Mutex<Applied<C>>,
    state_tx: watch::Sender<ControlState>,
}

/// What a snapshot holds and sends: everything applied, up to
/// `last_applied`. Its serde_json is a snapshot's data.
#[derive(Serialize, Deserialize)]
#[serde(bound = "")]
struct Applied<C: RaftTypeConfig> {
    last_applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    state: ControlState,
}

impl<C: RaftTypeConfig> Clone for Applied<C> {
    fn clone(&self) -> Self {
        Applied {
            last_applied: self.last_applied.clone(),
            membership: self.membership.clone(),
            state: self.state.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Applied<C> {
    /// Decodes a snapshot's data, which must agree with its `meta`.
    fn decode(meta: &SnapshotMeta<C::NodeId, C::Node>, data: &[u8]) -> Result<Self, String> {
        let applied: Applied<C> =
            serde_json::from_slice(data).map_err(|e| format!("undecodable snapshot data: {e}"))?;
        if applied.last_applied != meta.last_log_id || applied.membership != meta.last_membership {
            return Err("snapshot data disagree with its metadata".to_owned());
        }
        Ok(applied)
    }
}

impl<C> StateMachine<C>
where
    C: RaftTypeConfig,
{
    /// A copy of the current applied state.
    pub fn state(&self) -> ControlState {
        self.shared.applied.lock().state.clone()
    }

    /// A receiver of the applied state, updated after every `apply` and
    /// every installed snapshot.
    pub fn subscribe(&self) -> watch::Receiver<ControlState> {
        self.shared.state_tx.subscribe()
    }

    /// Replaces the in-memory state and tells the subscribers.
    fn replace(&self, applied: Applied<C>) {
        let mut current = self.shared.applied.lock();
        self.shared.state_tx.send_replace(applied.state.clone());
        *current = applied;
    }
}

/// Opens the state machine from `dir/snapshot`, or empty without one.
pub(super) fn open<C: RaftTypeConfig>(dir: &Path) -> Result<StateMachine<C>, OpenError> {
    let path = dir.join(SNAPSHOT_FILE);
    let applied = match read_snapshot::<C>(dir)? {
        Some((meta, data)) => Applied::decode(&meta, &data)
            .map_err(|reason| corrupted(&path, MAGIC_BYTES, &reason))?,
        None => Applied {
            last_applied: None,
            membership: StoredMembership::default(),
            state: ControlState::default(),
        },
    };
    let (state_tx, _) = watch::channel(applied.state.clone());
    let shared = Shared {
        dir: dir.to_path_buf(),
        snapshot: Mutex::new(()),
        applied: Mutex::new(applied),
        state_tx,
    };
    Ok(StateMachine {
        shared: Arc::new(shared),
    })
}

/// A snapshot file's contents: its metadata and its data.
type SnapshotFile<C> = (
    SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>,
    Vec<u8>,
);

/// `dir/snapshot`'s metadata and data, if the file exists.
fn read_snapshot<C: RaftTypeConfig>(dir: &Path) -> Result<Option<SnapshotFile<C>>, OpenError> {
    let path = dir.join(SNAPSHOT_FILE);
    let buf = match std::fs::read(&path) {
        Ok(buf) => buf,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&path, e)),
    };
    let payloads = frame::decode_file(&SNAPSHOT_MAGIC, &buf)
        .map_err(|d| corrupted(&path, d.offset as usize, &d.reason))?;
    let [meta, data] = payloads.as_slice() else {
        return Err(corrupted(
            &path,
            MAGIC_BYTES,
            "a snapshot file holds exactly two records",
        ));
    };
    let meta = serde_json::from_slice(meta).map_err(|e| {
        corrupted(
            &path,
            MAGIC_BYTES,
            &format!("undecodable snapshot meta: {e}"),
        )
    })?;
    Ok(Some((meta, data.to_vec())))
}

/// Makes `meta` and `data` the current snapshot, atomically.
fn write_snapshot<C: RaftTypeConfig>(
    dir: &Path,
    meta: &SnapshotMeta<C::NodeId, C::Node>,
    data: &[u8],
) -> io::Result<()> {
    let mut out = SNAPSHOT_MAGIC.to_vec();
    frame::encode(&serde_json::to_vec(meta)?, &mut out)?;
    frame::encode(data, &mut out)?;
    write_atomic(dir, SNAPSHOT_FILE, &out).map_err(io::Error::other)
}

/// A snapshot id: the last log id it holds, and when it was built.
fn snapshot_id<NID: openraft::NodeId>(last: &Option<LogId<NID>>) -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    match last {
        Some(id) => format!("{}-{}-{millis}", id.leader_id, id.index),
        None => format!("none-{millis}"),
    }
}

impl<C: RaftTypeConfig> Shared<C> {
    /// Builds a snapshot of the current state and makes it the current
    /// snapshot file.
    fn build(&self) -> io::Result<Snapshot<C>>
    where
        C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>>,
    {
        let _serialised = self.snapshot.lock();
        let applied = self.applied.lock().clone();
        let data = serde_json::to_vec(&applied)?;
        let meta = SnapshotMeta {
            snapshot_id: snapshot_id(&applied.last_applied),
            last_log_id: applied.last_applied,
            last_membership: applied.membership,
        };
        write_snapshot::<C>(&self.dir, &meta, &data)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<C> RaftSnapshotBuilder<C> for StateMachine<C>
where
    C: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>>,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        let built = blocking(move || shared.build()).await;
        Ok(built.map_err(|e| StorageIOError::write_snapshot(None, &e))?)
    }
}

impl<C> RaftStateMachine<C> for StateMachine<C>
where
    C: RaftTypeConfig<D = Command, R = Reply, Entry = Entry<C>, SnapshotData = Cursor<Vec<u8>>>,
{
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let applied = self.shared.applied.lock();
        Ok((applied.last_applied.clone(), applied.membership.clone()))
    }

    /// Applies in memory only (durability is the log's and the
    /// snapshots'). A blank or membership entry changes no map and
    /// replies [`Reply::Applied`] with the unchanged version.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.shared.applied.lock();
        let mut replies = Vec::new();
        for entry in entries {
            let reply = match entry.payload {
                EntryPayload::Normal(command) => applied.state.apply(&command),
                EntryPayload::Blank => Reply::Applied {
                    version: applied.state.version,
                },
                EntryPayload::Membership(membership) => {
                    applied.membership =
                        StoredMembership::new(Some(entry.log_id.clone()), membership);
                    Reply::Applied {
                        version: applied.state.version,
                    }
                }
            };
            applied.last_applied = Some(entry.log_id);
            replies.push(reply);
        }
        self.shared.state_tx.send_replace(applied.state.clone());
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Checks the received data, makes it the current snapshot file, then
    /// replaces the in-memory state with it.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let data = snapshot.into_inner();
        let signature = Some(meta.signature());
        let applied = Applied::<C>::decode(meta, &data).map_err(|reason| {
            StorageIOError::read_snapshot(
                signature.clone(),
                &io::Error::new(io::ErrorKind::InvalidData, reason),
            )
        })?;
        let this = self.clone();
        let meta = meta.clone();
        let installed = blocking(move || {
            let _serialised = this.shared.snapshot.lock();
            write_snapshot::<C>(&this.shared.dir, &meta, &data)?;
            this.replace(applied);
            Ok(())
        })
        .await;
        Ok(installed.map_err(|e| StorageIOError::write_snapshot(signature, &e))?)
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let shared = Arc::clone(&self.shared);
        let read = blocking(move || {
            let _serialised = shared.snapshot.lock();
            read_snapshot::<C>(&shared.dir).map_err(io::Error::other)
        })
        .await;
        let current = read.map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

//! The disk as a simulation sees it (feature `sim`; kv-node's turmoil
//! simulation enables it, a production build never does).
//!
//! Every file a store writes is made durable before anything depends on
//! it (`durable::write_atomic`, fsync then rename), except one: the
//! active log segment, which is appended to and fdatasynced by the sync
//! policy. With this feature a store does not fdatasync that segment. It
//! records instead, in a process-wide table, how far the segment is
//! durable: its logical end at the last sync (or when it was created or
//! opened). A power loss is then [`lose_unsynced`]: each active segment
//! keeps its durable bytes plus a prefix of the rest, chosen by the
//! caller (all of it, none, or a torn record), and the file's tail after
//! that prefix reads as zeros, as a pre-sized file's never-written pages
//! do. Skipping the real fdatasync changes nothing a process can observe
//! and keeps a simulation fast and in simulated time.
//!
//! Faults are armed per directory with [`set_faults`]: every data sync of
//! a store under it fails (the store is poisoned, as after a real EIO), or
//! every append fails with `ENOSPC` after writing half its bytes (a full
//! disk; the store cuts the partial record).
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use kv_storage::{Options, Store, SyncPolicy, sim};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), Options {
//!     sync: SyncPolicy::Never,
//!     ..Options::default()
//! })?;
//! store.put(b"k", b"durable")?;
//! store.sync()?;
//! store.put(b"k", b"lost")?;
//! let durable = sim::durable_under(dir.path());
//! drop(store); // a crash: the process goes; what it wrote is in the page cache
//! sim::lose_unsynced(&durable, |_unsynced| 0)?; // the power goes too
//! let store = Store::open(dir.path(), Options::default())?;
//! assert_eq!(store.get(b"k")?.as_deref(), Some(&b"durable"[..]));
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The faults armed for the stores under one directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every data sync fails with an I/O error.
    pub fail_syncs: bool,
    /// Every append writes half its bytes, then fails with `ENOSPC`.
    pub disk_full: bool,
}

#[derive(Default)]
struct Disk {
    /// Active log segments: path → durable end (bytes).
    durable: BTreeMap<PathBuf, u64>,
    /// Armed faults by directory.
    faults: BTreeMap<PathBuf, Faults>,
}

static DISK: Mutex<Disk> = Mutex::new(Disk {
    durable: BTreeMap::new(),
    faults: BTreeMap::new(),
});

fn disk() -> std::sync::MutexGuard<'static, Disk> {
    DISK.lock().unwrap_or_else(|p| p.into_inner())
}

/// A segment became active with `len` bytes of records. New files are
/// durable whole (they are created with fsync and rename); a file opened
/// again after a crash keeps its older durable end: bytes it held only
/// in the page cache are still not on the disk.
pub(crate) fn opened(path: &Path, len: u64) {
    let mut disk = disk();
    let end = disk.durable.get(path).map_or(len, |&d| d.min(len));
    disk.durable.insert(path.to_path_buf(), end);
}

/// The segment's data up to `end` is durable (a data sync of it).
pub(crate) fn synced(path: &Path, end: u64) {
    disk().durable.insert(path.to_path_buf(), end);
}

/// The faults armed for `path`'s directory or one above it.
fn faults_for(path: &Path) -> Faults {
    let disk = disk();
    let mut out = Faults::default();
    for (dir, f) in &disk.faults {
        if path.starts_with(dir) {
            out.fail_syncs |= f.fail_syncs;
            out.disk_full |= f.disk_full;
        }
    }
    out
}

/// A data sync of the active segment at `path`, which then ends at `end`:
/// recorded, or the armed failure.
pub(crate) fn sync_segment(path: &Path, end: u64) -> std::io::Result<()> {
    if faults_for(path).fail_syncs {
        return Err(std::io::Error::other("simulated fsync failure"));
    }
    synced(path, end);
    Ok(())
}

/// `file.write_all_at(bytes, at)` for an append to the segment at `path`,
/// or, with a full disk armed, half of it and then `ENOSPC`.
pub(crate) fn append(
    file: &std::fs::File,
    path: &Path,
    bytes: &[u8],
    at: u64,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    if faults_for(path).disk_full {
        file.write_all_at(bytes.get(..bytes.len() / 2).unwrap_or_default(), at)?;
        return Err(std::io::Error::from_raw_os_error(28));
    }
    file.write_all_at(bytes, at)
}

/// Arms `faults` for every store under `dir` (all off disarms them).
pub fn set_faults(dir: &Path, faults: Faults) {
    let mut disk = disk();
    if faults == Faults::default() {
        disk.faults.remove(dir);
    } else {
        disk.faults.insert(dir.to_path_buf(), faults);
    }
}

/// The active log segments under `dir` (at any depth) and how far each is
/// durable: take it just before a simulated crash, since closing a store
/// syncs it.
pub fn durable_under(dir: &Path) -> Vec<(PathBuf, u64)> {
    disk()
        .durable
        .iter()
        .filter(|(p, _)| p.starts_with(dir))
        .map(|(p, &end)| (p.clone(), end))
        .collect()
}

/// The process crashed at the moment `durable` (from [`durable_under`])
/// was taken: the syncs its stores did since (closing a store syncs it,
/// a killed process does not) are undone, and the bytes they covered
/// are in the page cache only. A power loss is [`lose_unsynced`].
pub fn crashed(durable: &[(PathBuf, u64)]) {
    let mut disk = disk();
    for (path, end) in durable {
        disk.durable.insert(path.clone(), *end);
    }
}

/// What [`lose_unsynced`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Segments that held bytes past their durable end.
    pub segments: usize,
    /// Bytes written past the durable ends, in all.
    pub unsynced: u64,
    /// Of those, the bytes that were lost (zeroed).
    pub lost: u64,
}

/// Where the data of a file `len` bytes long ends, at or after `from`:
/// after its last non-zero byte (a pre-sized tail is zeros).
fn data_end(file: &std::fs::File, from: u64, len: u64) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    if len <= from {
        return Ok(from);
    }
    let mut bytes = vec![0u8; (len - from) as usize];
    file.read_exact_at(&mut bytes, from)?;
    Ok(from
        + bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1))
}

/// A power loss for the segments in `durable` (from [`durable_under`];
/// their stores must be closed): each keeps its durable bytes and then
/// `keep(unsynced)` of the `unsynced` bytes written after them (a torn
/// record when the cut falls inside one); the rest of the file reads as
/// zeros. What survives is durable from then on. Segments
/// deleted since are skipped.
pub fn lose_unsynced(
    durable: &[(PathBuf, u64)],
    mut keep: impl FnMut(u64) -> u64,
) -> std::io::Result<Lost> {
    let mut lost = Lost::default();
    for (path, end) in durable {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let unsynced = data_end(&file, *end, len)? - end;
        if unsynced == 0 {
            continue;
        }
        let kept = keep(unsynced).min(unsynced);
        file.set_len(end + kept)?;
        file.set_len(len)?;
        synced(path, end + kept);
        lost.segments += 1;
        lost.unsynced += unsynced;
        lost.lost += unsynced - kept;
    }
    Ok(lost)
}

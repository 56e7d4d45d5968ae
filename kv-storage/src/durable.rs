//! Durable file writes: the one place that creates a file crash-safely.
//!
//! A file that must exist either complete or not at all (a segment header,
//! a hint, a marker, `EPOCHS`, a rollback file, kv-node's `LAYOUT`) is
//! written in four steps:
//!
//! 1. create `<name>.tmp` in the same directory and write it;
//! 2. fsync the file, so its bytes are on disk before its name is;
//! 3. rename it to `<name>` (atomic within a directory);
//! 4. fsync the directory, so the rename itself survives a power loss.
//!
//! A crash before step 3 leaves only a `.tmp` file: recovery deletes those
//! in a store's directory (`recovery::Listing`); elsewhere (`rollback/`, a
//! node's `LAYOUT.tmp`) the next write of that name truncates it. After
//! step 4 the file is complete. Skipping step
//! 2 could leave a complete-looking name over missing bytes; skipping
//! step 4 could lose the file after the caller was told it exists.
//!
//! [`write_atomic`] does all four for bytes in memory; `TmpFile` is the
//! same for a file written piece by piece or kept open afterwards (a new
//! segment). Multi-file protocols (compaction, truncation) that must order
//! several renames around their markers use `write_synced` for steps 1–2
//! and do their renames themselves, then [`sync_dir`].

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Suffix of a file still being written (see the module docs).
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// `dir/<name>.tmp`.
pub(crate) fn tmp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{TMP_SUFFIX}"))
}

/// Writes `bytes` to `dir/name` atomically and durably: written as
/// `name.tmp`, fsynced, renamed over `name`, directory fsynced. After a
/// crash, `dir/name` holds either its old contents or all of `bytes`.
///
/// kv-node writes its data directory's `LAYOUT` file with this, so the
/// crash-safety rules live in one place.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let tmp = TmpFile::create(dir, name)?;
    let written = (&tmp.file).write_all(bytes);
    written.map_err(|e| Error::io(&tmp.tmp, e))?;
    tmp.commit().map(|_| ())
}

/// fsyncs a directory so created, renamed or removed entries in it are
/// durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Creates (or replaces) `path`, writes `bytes` and fsyncs it: steps 1–2
/// only. The caller renames it into place later, in the order its own
/// crash protocol needs, and fsyncs the directory.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let written = File::create(path).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    written.map_err(|e| Error::io(path, e))
}

/// A file being written as `dir/<name>.tmp`, renamed to `dir/<name>` by
/// [`TmpFile::commit`]. Dropped uncommitted, it leaves the `.tmp` file
/// for recovery (or the caller) to delete.
pub(crate) struct TmpFile {
    dir: PathBuf,
    path: PathBuf,
    tmp: PathBuf,
    file: File,
}

impl TmpFile {
    /// Creates `dir/<name>.tmp` (truncating a leftover one), open for
    /// reading and writing.
    pub(crate) fn create(dir: &Path, name: &str) -> Result<TmpFile, Error> {
        let tmp = tmp_path(dir, name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(TmpFile {
            dir: dir.to_path_buf(),
            path: dir.join(name),
            tmp,
            file,
        })
    }

    /// The open file (`&File` implements `Write`; positional writes go
    /// through `FileExt`).
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The temporary path, for error messages.
    pub(crate) fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs the file, renames it to its final name and fsyncs the
    /// directory; returns the final path and the still open file.
    pub(crate) fn commit(self) -> Result<(PathBuf, File), Error> {
        self.file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        sync_dir(&self.dir)?;
        Ok((self.path, self.file))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    #[test]
    fn write_atomic_replaces_whole_and_leaves_no_tmp() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "F", b"first version").unwrap();
        write_atomic(dir.path(), "F", b"second").unwrap();
        assert_eq!(std::fs::read(dir.path().join("F")).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["F"]);
    }

    #[test]
    fn an_uncommitted_tmp_file_is_not_under_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = TmpFile::create(dir.path(), "seg").unwrap();
        tmp.file().write_all_at(b"header", 0).unwrap();
        assert!(!dir.path().join("seg").exists());
        assert_eq!(tmp.tmp_path(), tmp_path(dir.path(), "seg"));
        let (path, file) = tmp.commit().unwrap();
        assert_eq!(path, dir.path().join("seg"));
        assert!(!tmp_path(dir.path(), "seg").exists());
        let mut read_back = [0u8; 6];
        file.read_exact_at(&mut read_back, 0).unwrap();
        assert_eq!(&read_back, b"header");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such-dir");
        let err = write_atomic(&missing, "F", b"x").unwrap_err();
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        assert!(matches!(sync_dir(&missing), Err(Error::Io { .. })));
    }
}

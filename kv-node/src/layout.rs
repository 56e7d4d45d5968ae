//! The layout record in a node's data directory.
//!
//! On first start a node writes `<data_dir>/LAYOUT` with the partition
//! count and replication factor it was created with. A later start with a
//! different partition count would silently send existing keys to other
//! partitions, so it is refused before any store is opened or created.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

const LAYOUT_FILE: &str = "LAYOUT";

/// The recorded layout of a data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Number of partitions.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u32,
}

impl Layout {
    fn describe(&self) -> String {
        format!(
            "partitions = {}, replication_factor = {}",
            self.partitions, self.replication_factor
        )
    }

    fn parse(text: &str) -> Option<Layout> {
        let mut partitions = None;
        let mut rf = None;
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            let v = v.trim().parse().ok()?;
            match k.trim() {
                "partitions" => partitions = Some(v),
                "replication_factor" => rf = Some(v),
                _ => {}
            }
        }
        Some(Layout {
            partitions: partitions?,
            replication_factor: rf?,
        })
    }
}

/// Checks `dir` against `wanted`, recording it when the directory is new.
/// Touches nothing when the recorded partition count differs.
pub fn check_or_record(dir: &Path, wanted: Layout) -> Result<()> {
    let path = dir.join(LAYOUT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let recorded = Layout::parse(&text).ok_or_else(|| Error::LayoutMismatch {
                path: dir.display().to_string(),
                recorded: format!("an unreadable {LAYOUT_FILE} file"),
                configured: wanted.describe(),
            })?;
            if recorded.partitions != wanted.partitions {
                return Err(Error::LayoutMismatch {
                    path: dir.display().to_string(),
                    recorded: recorded.describe(),
                    configured: wanted.describe(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => record(dir, wanted),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn record(dir: &Path, layout: Layout) -> Result<()> {
    let ctx = |what: &str| format!("{what} {}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| Error::io(ctx("creating"), e))?;
    let tmp = dir.join(format!("{LAYOUT_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(ctx("writing layout in"), e))?;
    writeln!(f, "{}", layout.describe().replace(", ", "\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(ctx("writing layout in"), e))?;
    std::fs::rename(&tmp, dir.join(LAYOUT_FILE))
        .map_err(|e| Error::io(ctx("writing layout in"), e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(ctx("syncing"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_then_accepts_same_and_refuses_other_partition_count() {
        let dir = tempfile::tempdir().unwrap();
        let four = Layout {
            partitions: 4,
            replication_factor: 2,
        };
        check_or_record(dir.path(), four).unwrap();
        check_or_record(dir.path(), four).unwrap();
        let eight = Layout {
            partitions: 8,
            ..four
        };
        let err = check_or_record(dir.path(), eight).unwrap_err();
        assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
        assert!(err.to_string().contains("partitions = 4"), "{err}");
        let text = std::fs::read_to_string(dir.path().join(LAYOUT_FILE)).unwrap();
        assert_eq!(Layout::parse(&text), Some(four));
    }
}

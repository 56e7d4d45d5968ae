//! The layout record in a node's data directory.
//!
//! On first start a node writes `<data_dir>/LAYOUT` with the partition
//! count, the replication factor and the placement (every partition's
//! replicas, leader first) it was created with. A later start with a
//! different partition count would silently send existing keys to other
//! partitions, and one with another placement would silently move
//! replicas (a new `[[nodes]]` entry changes the placement formula); both
//! are refused before any store is opened or created. Moving replicas is
//! the control plane's job; until then `[[placement]]` entries pin the
//! recorded placement.
//!
//! The file is `key = value` lines, every value one unsigned integer:
//!
//! ```text
//! partitions = 4
//! replication_factor = 2
//! replica.0.0 = 0
//! replica.0.1 = 1
//! replica.1.0 = 1
//! ```
//!
//! `replica.P.I = N`: replica I of partition P (0 = leader) is on node N.
//! A file written before placement was recorded (no `replica.` lines)
//! still opens; the placement is added to it on that start. Older
//! binaries skip the `replica.` lines (they ignore unknown keys whose
//! value is a number), so a data directory can still be opened by the
//! version before.

use std::collections::BTreeMap;
use std::path::Path;

use kv_router::{ClusterMap, NodeId};

use crate::error::{Error, Result};

const LAYOUT_FILE: &str = "LAYOUT";
const REPLICA_KEY: &str = "replica.";

/// The recorded layout of a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Number of partitions.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: u32,
    /// Replicas of each partition (index = partition), leader first;
    /// empty when read from a file that predates placement records.
    pub placement: Vec<Vec<NodeId>>,
}

impl Layout {
    /// The layout a node started with `map` records.
    pub fn of(map: &ClusterMap) -> Layout {
        Layout {
            partitions: map.partition_count(),
            replication_factor: map.replication_factor(),
            placement: (0..map.partition_count())
                .map(|p| map.replicas(p).unwrap_or(&[]).to_vec())
                .collect(),
        }
    }

    fn describe(&self) -> String {
        format!(
            "partitions = {}, replication_factor = {}",
            self.partitions, self.replication_factor
        )
    }

    fn to_text(&self) -> String {
        let mut lines = vec![
            format!("partitions = {}", self.partitions),
            format!("replication_factor = {}", self.replication_factor),
        ];
        for (p, replicas) in self.placement.iter().enumerate() {
            for (i, node) in replicas.iter().enumerate() {
                lines.push(format!("{REPLICA_KEY}{p}.{i} = {node}"));
            }
        }
        lines.push(String::new());
        lines.join("\n")
    }

    fn parse(text: &str) -> Option<Layout> {
        let mut partitions = None;
        let mut rf = None;
        let mut replicas: BTreeMap<(u32, u32), NodeId> = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=')?;
            let v: u32 = v.trim().parse().ok()?;
            match k.trim() {
                "partitions" => partitions = Some(v),
                "replication_factor" => rf = Some(v),
                k => {
                    if let Some((p, i)) =
                        k.strip_prefix(REPLICA_KEY).and_then(|r| r.split_once('.'))
                    {
                        replicas.insert((p.parse().ok()?, i.parse().ok()?), v);
                    }
                }
            }
        }
        let partitions = partitions?;
        Some(Layout {
            partitions,
            replication_factor: rf?,
            placement: placement(partitions, &replicas)?,
        })
    }

    /// One line per partition whose replicas differ between `self`
    /// (recorded) and `wanted`: `partition 1: [1, 2] -> [1, 3]`.
    fn moves_to(&self, wanted: &Layout) -> Vec<String> {
        self.placement
            .iter()
            .zip(&wanted.placement)
            .enumerate()
            .filter(|(_, (old, new))| old != new)
            .map(|(p, (old, new))| format!("partition {p}: [{}] -> [{}]", ids(old), ids(new)))
            .collect()
    }
}

/// Rebuilds the per-partition lists from `replica.P.I` entries: none
/// (an old file), or every partition with replicas 0..k and nothing else.
fn placement(partitions: u32, replicas: &BTreeMap<(u32, u32), NodeId>) -> Option<Vec<Vec<NodeId>>> {
    if replicas.is_empty() {
        return Some(Vec::new());
    }
    let mut placement = vec![Vec::new(); usize::try_from(partitions).ok()?];
    for (&(p, i), &node) in replicas {
        let list = placement.get_mut(usize::try_from(p).ok()?)?;
        if list.len() != usize::try_from(i).ok()? {
            return None;
        }
        list.push(node);
    }
    placement.iter().all(|l| !l.is_empty()).then_some(placement)
}

fn ids(list: &[NodeId]) -> String {
    let ids: Vec<String> = list.iter().map(ToString::to_string).collect();
    ids.join(", ")
}

/// Checks `dir` against `wanted`, recording it when the directory is new
/// (or its record predates placement). Touches nothing when the recorded
/// partition count or placement differs.
pub fn check_or_record(dir: &Path, wanted: &Layout) -> Result<()> {
    let path = dir.join(LAYOUT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return record(dir, wanted),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
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
    if recorded.placement.is_empty() {
        return record(dir, wanted);
    }
    let moves = recorded.moves_to(wanted);
    if moves.is_empty() {
        Ok(())
    } else {
        Err(Error::PlacementChanged {
            path: dir.display().to_string(),
            moves,
        })
    }
}

/// Writes `LAYOUT` crash-safely, by the store's own rule
/// ([`kv_storage::durable::write_atomic`]).
fn record(dir: &Path, layout: &Layout) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    kv_storage::durable::write_atomic(dir, LAYOUT_FILE, layout.to_text().as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(partitions: u32, placement: &[&[NodeId]]) -> Layout {
        Layout {
            partitions,
            replication_factor: 2,
            placement: placement.iter().map(|r| r.to_vec()).collect(),
        }
    }

    #[test]
    fn records_then_accepts_same_and_refuses_other_partition_count() {
        let dir = tempfile::tempdir().unwrap();
        let four = layout(4, &[&[0, 1], &[1, 2], &[2, 0], &[0, 1]]);
        check_or_record(dir.path(), &four).unwrap();
        check_or_record(dir.path(), &four).unwrap();
        let eight = layout(8, &[]);
        let err = check_or_record(dir.path(), &eight).unwrap_err();
        assert!(matches!(err, Error::LayoutMismatch { .. }), "{err}");
        assert!(err.to_string().contains("partitions = 4"), "{err}");
        let text = std::fs::read_to_string(dir.path().join(LAYOUT_FILE)).unwrap();
        assert_eq!(Layout::parse(&text), Some(four));
    }

    #[test]
    fn another_placement_is_refused_with_the_moves() {
        let dir = tempfile::tempdir().unwrap();
        let three_nodes = layout(4, &[&[0, 1], &[1, 2], &[2, 0], &[0, 1]]);
        check_or_record(dir.path(), &three_nodes).unwrap();
        let before = std::fs::read(dir.path().join(LAYOUT_FILE)).unwrap();
        let four_nodes = layout(4, &[&[0, 1], &[1, 2], &[2, 3], &[3, 0]]);
        let err = check_or_record(dir.path(), &four_nodes).unwrap_err();
        match &err {
            Error::PlacementChanged { moves, .. } => assert_eq!(
                moves,
                &[
                    "partition 2: [2, 0] -> [2, 3]",
                    "partition 3: [0, 1] -> [3, 0]"
                ]
            ),
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("[[placement]]"), "{err}");
        assert_eq!(std::fs::read(dir.path().join(LAYOUT_FILE)).unwrap(), before);
    }

    /// The format written before placement was recorded (frozen here).
    #[test]
    fn an_old_layout_without_placement_opens_and_gains_it() {
        let dir = tempfile::tempdir().unwrap();
        let old = "partitions = 4\nreplication_factor = 2\n";
        std::fs::write(dir.path().join(LAYOUT_FILE), old).unwrap();
        let now = layout(4, &[&[0, 1], &[1, 2], &[2, 0], &[0, 1]]);
        check_or_record(dir.path(), &now).unwrap();
        let text = std::fs::read_to_string(dir.path().join(LAYOUT_FILE)).unwrap();
        assert!(
            text.starts_with(old) && text.ends_with("replica.3.0 = 0\nreplica.3.1 = 1\n"),
            "{text}"
        );
        assert_eq!(Layout::parse(&text), Some(now));
    }

    #[test]
    fn a_placement_with_holes_is_unreadable() {
        let head = "partitions = 2\nreplication_factor = 1\n";
        for lines in [
            "replica.1.0 = 0\n",
            "replica.0.0 = 0\nreplica.1.1 = 0\n",
            "replica.0.0 = 0\nreplica.1.0 = 1\nreplica.2.0 = 1\n",
            "replica.0.0 = x\n",
        ] {
            assert_eq!(Layout::parse(&format!("{head}{lines}")), None, "{lines}");
        }
        let whole = Layout::parse(&format!("{head}replica.0.0 = 1\nreplica.1.0 = 0\n"));
        assert_eq!(whole.map(|l| l.placement), Some(vec![vec![1], vec![0]]));
    }

    /// Every line is `key = number`: what the version before this one
    /// parses (it skips unknown keys), so it can still open the directory.
    #[test]
    fn every_line_keeps_the_old_key_equals_number_shape() {
        let text = layout(2, &[&[0, 1], &[1, 0]]).to_text();
        assert!(
            text.starts_with("partitions = 2\nreplication_factor = 2\n"),
            "{text}"
        );
        for line in text.lines() {
            let (_, v) = line.split_once('=').unwrap();
            assert!(v.trim().parse::<u32>().is_ok(), "{line}");
        }
    }
}

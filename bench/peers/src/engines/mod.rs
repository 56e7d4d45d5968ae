//! The four engines behind one small trait, each set up the way its authors
//! recommend for the workload.

mod fjall_db;
mod kv;
mod redb_db;
mod sled_db;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;

use crate::data::{Key, Value};

pub use fjall_db::Fjall;
pub use kv::KvStorage;
pub use redb_db::Redb;
pub use sled_db::Sled;

/// Cache budget given to every engine.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Extra figures an engine reports (name → number).
pub type Extras = BTreeMap<String, f64>;

/// How an engine is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Bulk load and reads: no per-operation fsync.
    Bulk,
    /// Every acknowledged put is durable.
    Durable,
}

/// Checks values one key at a time (an engine may keep a read transaction).
pub trait Reader {
    /// Whether `key` holds exactly `expected`.
    fn check(&mut self, key: &[u8], expected: &[u8]) -> Result<bool>;
}

/// One storage engine under test.
pub trait Engine: Sized + Send + Sync {
    /// Opens (creating if needed) the engine's data in `dir`.
    fn open(dir: &Path, mode: Mode) -> Result<Self>;

    /// Writes `item(0..n)` and makes them durable with one sync at the end.
    fn load(&self, n: u64, item: &dyn Fn(u64) -> (Key, Value)) -> Result<()>;

    /// Writes one pair and returns only once it is durable.
    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()>;

    /// Writes `pairs` as one atomic batch and returns once it is durable
    /// (the engine's batch write with its durable commit).
    fn durable_batch(&self, pairs: &[(Key, Value)]) -> Result<()>;

    /// A value checker for one thread.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;

    /// Figures worth reporting right after open (e.g. memory of an index).
    fn open_extras(&self, _n: u64) -> Result<Extras> {
        Ok(Extras::new())
    }

    /// Engine counters worth reporting after a durable run.
    fn counters(&self) -> Extras {
        Extras::new()
    }

    /// Maintenance after a reopen (kv-storage: compaction); returns figures.
    fn after_reopen(&self, _dir: &Path) -> Result<Extras> {
        Ok(Extras::new())
    }

    /// Closes cleanly (flushing whatever the engine flushes on close).
    fn close(self) -> Result<()>;
}

/// Checks that keys `0..n` of `seed` hold their values (`what` names them
/// in the error).
pub fn check_keys(reader: &mut (dyn Reader + '_), seed: u64, n: u64, what: &str) -> Result<()> {
    for i in 0..n {
        let k = crate::data::key(seed, i);
        anyhow::ensure!(
            reader.check(&k, &crate::data::value(&k))?,
            "{what} key {i} wrong or missing"
        );
    }
    Ok(())
}

/// Checker for engines whose `get` needs no per-thread state.
pub struct GetReader<F>(pub F);

impl<F: FnMut(&[u8], &[u8]) -> Result<bool>> Reader for GetReader<F> {
    fn check(&mut self, key: &[u8], expected: &[u8]) -> Result<bool> {
        (self.0)(key, expected)
    }
}

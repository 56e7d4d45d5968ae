//! kv-storage: `SyncPolicy::Never` for bulk work (one `sync()` at the end),
//! `SyncPolicy::Always` (group commit) for durable puts; default 64 MiB
//! segments, default (automatic) compaction policy and a 64 MiB hot cache.

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, ensure};
use kv_storage::{Options, Store, SyncPolicy};

use super::{CACHE_BYTES, Engine, Extras, GetReader, Mode, Reader};
use crate::data::{Key, LOAD_SEED, Value};

/// kv-storage under test.
pub struct KvStorage(Store);

impl Engine for KvStorage {
    fn open(dir: &Path, mode: Mode) -> Result<Self> {
        let options = Options {
            sync: match mode {
                Mode::Bulk => SyncPolicy::Never,
                Mode::Durable => SyncPolicy::Always,
            },
            hot_cache: Some(kv_storage::HotCache::new(CACHE_BYTES)),
            ..Options::default()
        };
        Ok(KvStorage(Store::open(dir, options)?))
    }

    fn load(&self, n: u64, item: &dyn Fn(u64) -> (Key, Value)) -> Result<()> {
        for i in 0..n {
            let (k, v) = item(i);
            self.0.put(&k, &v)?;
        }
        Ok(self.0.sync()?)
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value)?;
        Ok(())
    }

    fn durable_batch(&self, pairs: &[(Key, Value)]) -> Result<()> {
        let mut batch = kv_storage::WriteBatch::new();
        for (k, v) in pairs {
            batch.put(k, v);
        }
        self.0.write_batch(&batch)?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(GetReader(|key: &[u8], expected: &[u8]| {
            Ok(self.0.get(key)?.is_some_and(|v| v == expected))
        })))
    }

    fn open_extras(&self, n: u64) -> Result<Extras> {
        let stats = self.0.stats();
        ensure!(
            stats.keys == n,
            "kv-storage has {} keys, expected {n}",
            stats.keys
        );
        let per_key = stats.keydir_bytes as f64 / n.max(1) as f64;
        Ok(Extras::from([
            ("keydir_stats_bytes_per_key".into(), per_key),
            ("hint_fallbacks".into(), stats.hint_fallbacks as f64),
            ("segments".into(), stats.segments as f64),
            ("stats_disk_bytes".into(), stats.disk_bytes as f64),
        ]))
    }

    fn counters(&self) -> Extras {
        let stats = self.0.stats();
        Extras::from([
            ("syncs".into(), stats.syncs as f64),
            ("writes".into(), stats.writes as f64),
        ])
    }

    /// Compacts, then checks every loaded key is still there and right.
    fn after_reopen(&self, dir: &Path) -> Result<Extras> {
        let n = self.0.len() as u64;
        let started = Instant::now();
        let c = self.0.compact()?;
        let secs = started.elapsed().as_secs_f64();
        let (allocated, apparent) = crate::sys::disk_usage(dir)?;
        let log_bytes = bytes_of(dir, ".log")?;
        let hint_bytes = bytes_of(dir, ".hint")?;
        super::check_keys(&mut *self.reader()?, LOAD_SEED, n, "compacted")?;
        Ok(Extras::from([
            ("compact_secs".into(), secs),
            ("compact_input_segments".into(), c.input_segments as f64),
            ("compact_records".into(), c.records as f64),
            ("compact_disk_bytes".into(), allocated as f64),
            ("compact_disk_apparent_bytes".into(), apparent as f64),
            ("compact_log_bytes".into(), log_bytes as f64),
            ("compact_hint_bytes".into(), hint_bytes as f64),
            (
                "compact_stats_disk_bytes".into(),
                self.0.stats().disk_bytes as f64,
            ),
        ]))
    }

    fn close(self) -> Result<()> {
        Ok(self.0.close()?)
    }
}

/// Total length of the files in `dir` whose names end with `suffix`.
fn bytes_of(dir: &Path, suffix: &str) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().ends_with(suffix) {
            total += entry.metadata()?.len();
        }
    }
    Ok(total)
}

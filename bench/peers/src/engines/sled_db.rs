//! sled 0.34: `Mode::HighThroughput`, 64 MiB cache, no compression, default
//! background flush every 500 ms. Bulk load ends with one `flush()`; a
//! durable put is `insert` then `flush()` (sled's fsync of its log).

use std::path::Path;

use anyhow::Result;
use sled::{Config, Db};

use super::{CACHE_BYTES, Engine, GetReader, Mode, Reader};
use crate::data::{Key, Value};

/// sled under test.
pub struct Sled(Db);

impl Engine for Sled {
    fn open(dir: &Path, _mode: Mode) -> Result<Self> {
        let db = Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        Ok(Sled(db))
    }

    fn load(&self, n: u64, item: &dyn Fn(u64) -> (Key, Value)) -> Result<()> {
        for i in 0..n {
            let (k, v) = item(i);
            self.0.insert(&k[..], &v[..])?;
        }
        self.0.flush()?;
        Ok(())
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.insert(key, value)?;
        self.0.flush()?;
        Ok(())
    }

    fn durable_batch(&self, pairs: &[(Key, Value)]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(&k[..], &v[..]);
        }
        self.0.apply_batch(batch)?;
        self.0.flush()?;
        Ok(())
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(GetReader(|key: &[u8], expected: &[u8]| {
            Ok(self.0.get(key)?.is_some_and(|v| &*v == expected))
        })))
    }

    fn close(self) -> Result<()> {
        self.0.flush()?;
        drop(self.0);
        Ok(())
    }
}

//! redb 4: one table `&[u8] → &[u8]`, 64 MiB cache. Bulk load is one write
//! transaction committed with `Durability::Immediate` (redb's recommended way
//! to load: per-put transactions would each fsync). Reads share one read
//! transaction per thread. A durable put is one write transaction with
//! `Durability::Immediate` (redb's default).

use std::path::{Path, PathBuf};

use anyhow::Result;
use redb::{Database, ReadOnlyTable, ReadableDatabase, TableDefinition};

use super::{CACHE_BYTES, Engine, Mode, Reader};
use crate::data::{Key, Value};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

/// redb under test.
pub struct Redb(Database);

fn file(dir: &Path) -> PathBuf {
    dir.join("bench.redb")
}

impl Engine for Redb {
    fn open(dir: &Path, _mode: Mode) -> Result<Self> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES as usize)
            .create(file(dir))?;
        Ok(Redb(db))
    }

    fn load(&self, n: u64, item: &dyn Fn(u64) -> (Key, Value)) -> Result<()> {
        let txn = self.0.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for i in 0..n {
                let (k, v) = item(i);
                table.insert(&k[..], &v[..])?;
            }
        }
        Ok(txn.commit()?)
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let txn = self.0.begin_write()?;
        txn.open_table(TABLE)?.insert(key, value)?;
        Ok(txn.commit()?)
    }

    fn durable_batch(&self, pairs: &[(Key, Value)]) -> Result<()> {
        let txn = self.0.begin_write()?;
        {
            let mut table = txn.open_table(TABLE)?;
            for (k, v) in pairs {
                table.insert(&k[..], &v[..])?;
            }
        }
        Ok(txn.commit()?)
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        let table = self.0.begin_read()?.open_table(TABLE)?;
        Ok(Box::new(RedbReader(table)))
    }

    fn close(self) -> Result<()> {
        drop(self.0);
        Ok(())
    }
}

struct RedbReader(ReadOnlyTable<&'static [u8], &'static [u8]>);

impl Reader for RedbReader {
    fn check(&mut self, key: &[u8], expected: &[u8]) -> Result<bool> {
        Ok(self.0.get(key)?.is_some_and(|v| v.value() == expected))
    }
}

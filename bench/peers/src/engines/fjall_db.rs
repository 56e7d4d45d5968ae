//! fjall 3: one keyspace with default options and a 64 MiB block cache.
//! Each `insert` writes its journal entry to the OS (fjall's default,
//! `manual_journal_persist = false`), like kv-storage's one `write(2)` per
//! put; durability comes from `Database::persist(PersistMode::SyncAll)`.

use std::path::Path;

use anyhow::Result;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{CACHE_BYTES, Engine, GetReader, Mode, Reader};
use crate::data::{Key, Value};

/// fjall under test.
pub struct Fjall {
    db: Database,
    items: Keyspace,
}

impl Engine for Fjall {
    fn open(dir: &Path, _mode: Mode) -> Result<Self> {
        let db = Database::builder(dir).cache_size(CACHE_BYTES).open()?;
        let items = db.keyspace("bench", KeyspaceCreateOptions::default)?;
        Ok(Fjall { db, items })
    }

    fn load(&self, n: u64, item: &dyn Fn(u64) -> (Key, Value)) -> Result<()> {
        for i in 0..n {
            let (k, v) = item(i);
            self.items.insert(&k[..], &v[..])?;
        }
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    fn durable_put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.items.insert(key, value)?;
        Ok(self.db.persist(PersistMode::SyncAll)?)
    }

    fn durable_batch(&self, pairs: &[(Key, Value)]) -> Result<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (k, v) in pairs {
            batch.insert(&self.items, &k[..], &v[..]);
        }
        Ok(batch.commit()?)
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(GetReader(|key: &[u8], expected: &[u8]| {
            Ok(self.items.get(key)?.is_some_and(|v| &*v == expected))
        })))
    }

    fn close(self) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        drop(self.items);
        drop(self.db);
        Ok(())
    }
}

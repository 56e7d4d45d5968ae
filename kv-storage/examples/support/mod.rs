//! Shared by the memory examples: a store of `keys` entries in a temporary
//! directory, and the process's resident set size.

use bytes::Bytes;
use kv_storage::{Entry, Options, Position, Store, SyncPolicy};

/// Value size of every entry [`filled_store`] writes.
pub const VALUE_BYTES: usize = 100;

/// The number of keys from the first command-line argument (default 1M).
pub fn keys_arg() -> u64 {
    std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000)
}

/// A store in a new temporary directory holding `keys` entries
/// (`key-00000000`…, `VALUE_BYTES` each), applied from LSN 2 on so that
/// LSN 1 is below the history floor and `entries_since(0)` answers with
/// every live entry in memory (the old way to list a store).
pub fn filled_store(keys: u64) -> Result<(tempfile::TempDir, Store), kv_storage::Error> {
    let dir = tempfile::tempdir().map_err(|e| kv_storage::Error::Io {
        path: "tmp".into(),
        source: e,
    })?;
    let opts = Options {
        sync: SyncPolicy::Never,
        ..Options::default()
    };
    let store = Store::open(dir.path(), opts)?;
    let value = Bytes::from(vec![b'v'; VALUE_BYTES]);
    let mut batch = Vec::with_capacity(1000);
    for i in 0..keys {
        batch.push(Entry {
            position: Position {
                epoch: 1,
                lsn: i + 2,
            },
            key: Bytes::from(format!("key-{i:08}")),
            value: Some(value.clone()),
            expiry: None,
        });
        if batch.len() == 1000 {
            store.apply_batch(&batch)?;
            batch.clear();
        }
    }
    store.apply_batch(&batch)?;
    Ok((dir, store))
}

/// `VmRSS` from `/proc/self/status` in bytes (Linux only; 0 elsewhere).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    let kib = line.and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok());
    kib.unwrap_or(0) * 1024
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

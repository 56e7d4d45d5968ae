//! kv-storage: the per-partition log-structured store (work in progress).

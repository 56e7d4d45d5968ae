//! Keys of one partition (shared by `common` and the simulation, which
//! cannot use `common`'s real sockets).

use kv_router::ClusterMap;

/// `n` distinct keys of partition `p` under `map`, named `{salt}-{i}`.
pub fn keys_in(map: &ClusterMap, p: u32, n: usize, salt: &str) -> Vec<String> {
    (0..)
        .map(|i| format!("{salt}-{i}"))
        .filter(|k| map.partition_of(k.as_bytes()) == p)
        .take(n)
        .collect()
}

//! What the harness reads from the OS: memory of this process, disk usage of
//! a directory, load average; and latency percentiles.

use std::path::Path;
use std::time::Duration;

/// A `Vm*` field of `/proc/self/status` in bytes (0 if unavailable).
pub fn proc_status_bytes(field: &str) -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Peak resident set size of this process so far.
pub fn peak_rss() -> u64 {
    proc_status_bytes("VmHWM")
}

/// Current resident set size of this process.
pub fn rss() -> u64 {
    proc_status_bytes("VmRSS")
}

/// Disk usage of everything under `dir`: (allocated bytes, apparent bytes).
pub fn disk_usage(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let (allocated, apparent) = match meta.is_dir() {
            true => disk_usage(&entry.path())?,
            false => (meta.blocks() * 512, meta.len()),
        };
        total.0 += allocated;
        total.1 += apparent;
    }
    Ok(total)
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

/// The `q`-quantile (0..=1) of `samples` in microseconds (sorts them).
pub fn percentile_us(samples: &mut [Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_unstable();
    let rank = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[rank.min(samples.len() - 1)].as_secs_f64() * 1e6
}

/// Last `git` commit of the kv-storage sources measured, with `+dirty` when that
/// directory has uncommitted changes ("unknown" outside a git checkout;
/// `PEERS_KV_REVISION` overrides it, e.g. when building from an export).
pub fn kv_storage_revision() -> String {
    if let Ok(rev) = std::env::var("PEERS_KV_REVISION") {
        return rev;
    }
    let crate_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../kv-storage");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .current_dir(crate_dir)
            .args(args)
            .output();
        out.ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = git(&["log", "-1", "--format=%h", "--", "."]) else {
        return "unknown".to_string();
    };
    match git(&["status", "--porcelain", "--", "."]) {
        Some(changes) if !changes.is_empty() => format!("{commit}+dirty"),
        _ => commit,
    }
}

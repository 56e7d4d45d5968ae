//! The command line: global options and subcommands.
//!
//! The data commands (`put`, `get`, `del`, `status`, `inspect`, `cluster`)
//! are [`crate::command::Command`], the same enum the shell parses its
//! lines into, flattened in here, so a one-shot command and a shell line
//! are parsed by the same code.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kv_router::NodeId;

use crate::command::Command;

/// `kv`: a distributed key-value store.
///
/// With no command, starts an embedded cluster (3 nodes, 4 partitions,
/// replication factor 2, real TCP on 127.0.0.1, data in ./data) and opens
/// the shell.
#[derive(Debug, Parser)]
#[command(name = "kv", version)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do; the shell when absent.
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalOpts {
    /// Data directory of the embedded cluster [default: ./data]; node N
    /// keeps its partitions in DIR/node_N unless the config names a
    /// data_dir.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Cluster config (TOML) for the embedded cluster, `kv node` and
    /// `kv serve`: nodes, addresses, partitions, storage settings.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "cluster")]
    pub config: Option<PathBuf>,

    /// Connect to the running cluster this config describes instead of
    /// starting an embedded one.
    #[arg(long, global = true, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Open the interactive shell (the default).
    Shell,
    /// Run one node of a cluster in the foreground until SIGINT or SIGTERM.
    Node(NodeArgs),
    /// Run every node of a config in this process, without a shell, until
    /// SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Generate load and report throughput and latency percentiles.
    Bench(BenchArgs),
    /// A data command, the same as in the shell.
    #[command(flatten)]
    Data(Command),
}

/// `kv node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The id of the node to run, as listed in the config's [[nodes]].
    #[arg(long)]
    pub id: NodeId,

    /// Also serve RESP2 (redis-cli, Redis client libraries) on ADDR,
    /// e.g. 127.0.0.1:6379; overrides the node's resp_addr in the config.
    #[arg(long, value_name = "ADDR")]
    pub resp: Option<String>,
}

/// `kv serve`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Also serve RESP2 on ADDR from the first node (any node serves any
    /// key); overrides that node's resp_addr in the config.
    #[arg(long, value_name = "ADDR")]
    pub resp: Option<String>,
}

/// `kv bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Concurrent clients, each with its own connections.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub clients: u32,
    /// Operations in total, over all clients.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: u64,
    /// Bytes per written value.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=(8 << 20)))]
    pub value_size: u32,
    /// Fraction of operations that are reads (0.0 to 1.0).
    #[arg(long, default_value_t = 0.5, value_parser = parse_ratio)]
    pub read_ratio: f64,
    /// Distinct keys the operations pick from; they are written once
    /// before the timed run when there are reads.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Ok(_) => Err("must be between 0.0 and 1.0".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kv").chain(args.iter().copied()))
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        let before = parse(&["--data-dir", "d", "get", "k"]).unwrap();
        let after = parse(&["get", "k", "--data-dir", "d"]).unwrap();
        for cli in [before, after] {
            assert_eq!(cli.global.data_dir, Some(PathBuf::from("d")));
            assert!(matches!(cli.command, Some(Sub::Data(Command::Get { .. }))));
        }
    }

    #[test]
    fn config_and_cluster_conflict_and_bench_checks_ranges() {
        assert!(parse(&["--config", "a", "--cluster", "b"]).is_err());
        assert!(parse(&["bench", "--read-ratio", "1.5"]).is_err());
        assert!(parse(&["bench", "--clients", "0"]).is_err());
        let cli = parse(&["bench", "--clients", "4", "--read-ratio", "0.9"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Sub::Bench(BenchArgs { clients: 4, .. }))
        ));
        assert!(parse(&[]).unwrap().command.is_none());
    }
}

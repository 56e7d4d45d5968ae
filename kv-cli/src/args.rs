//! The command line: global options and subcommands.
//!
//! The data commands (`put`, `get`, `del`, `status`, `inspect`, `cluster`)
//! are [`crate::command::Command`], the same enum the shell parses its
//! lines into, flattened in here, so a one-shot command and a shell line
//! are parsed by the same code.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use kv_router::NodeId;

use crate::command::Command;

/// `kv`: a distributed key-value store.
///
/// With no command, opens the shell: on the cluster another `kv` runs from
/// this directory (its `data/cluster.toml`), else on an embedded cluster
/// it starts (3 nodes, 4 partitions, replication factor 2, real TCP on
/// 127.0.0.1, data in ./data).
#[derive(Debug, Parser)]
#[command(name = "kv", version)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// Shell options, for the shell started with no command.
    #[command(flatten)]
    pub shell: ShellArgs,
    /// What to do; the shell when absent.
    #[command(subcommand)]
    pub command: Option<Sub>,
}

/// How answers are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Lines for people (the shell's format).
    #[default]
    Text,
    /// One JSON object per answer, one per line.
    Json,
}

/// How log lines (stderr) are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Plain lines; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Data directory of the embedded cluster [default: ./data]; node N
    /// keeps its partitions in DIR/node_N unless the config names a
    /// data_dir. A running shell writes DIR/cluster.toml.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Cluster config (TOML) for the embedded cluster, `kv node` and
    /// `kv serve`: nodes, addresses, partitions, storage settings.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "cluster")]
    pub config: Option<PathBuf>,

    /// Talk to a running cluster: its config file, or host:port of any
    /// node (the map is fetched from it).
    #[arg(long, global = true, env = "KV_CLUSTER", value_name = "FILE|HOST:PORT")]
    pub cluster: Option<String>,

    /// Answers as text, or as one JSON object per answer.
    #[arg(
        short,
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub output: OutputFormat,

    /// Print values exactly as stored: no "" for empty values, no escaping.
    #[arg(long, global = true)]
    pub raw: bool,

    /// Log lines (on stderr, level from RUST_LOG) as text or JSON.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

/// Options of the shell.
#[derive(Debug, Clone, Default, Args)]
pub struct ShellArgs {
    /// When reading a script from stdin, go on after a failed line (the
    /// exit code still says a line failed); on a terminal it always does.
    #[arg(long)]
    pub keep_going: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Open the interactive shell (the default).
    Shell(ShellArgs),
    /// Create the embedded cluster's data directory (the shell also does),
    /// then stop.
    Init,
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

/// The subcommands that run nodes: `--cluster` (talk to a running
/// cluster), `-o` and `--raw` do not apply to them, so their help hides
/// them.
const NODE_COMMANDS: [&str; 2] = ["node", "serve"];
const NOT_FOR_NODES: [&str; 3] = ["cluster", "output", "raw"];

/// The clap command with per-subcommand help: options that do not apply
/// to a subcommand are hidden from its help.
pub fn command() -> clap::Command {
    let cmd = Cli::command();
    let hidden: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| NOT_FOR_NODES.contains(&a.get_id().as_str()))
        .map(|a| a.clone().hide(true))
        .collect();
    // A subcommand that already has an argument does not get the global
    // one: these hidden copies still parse, but stay out of the help.
    NODE_COMMANDS.into_iter().fold(cmd, |cmd, name| {
        cmd.mut_subcommand(name, |sub| sub.args(hidden.clone()))
    })
}

/// Parses the process arguments (exits with 2 on a usage error, 0 for
/// `--help`). The subcommand name is case-insensitive, and a mistyped one
/// gets a "did you mean".
pub fn parse() -> Cli {
    let cmd = command();
    let args = match normalize(&cmd, std::env::args_os().collect()) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(i32::from(crate::error::EXIT_USAGE));
        }
    };
    let matches = cmd.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Global options that take a value as the next argument.
const VALUE_OPTIONS: [&str; 6] = [
    "--data-dir",
    "--config",
    "--cluster",
    "-o",
    "--output",
    "--log-format",
];

/// Lower-cases the subcommand name when that makes it known (`kv GET k`),
/// and refuses an unknown one with the nearest name.
fn normalize(cmd: &clap::Command, mut args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let names: Vec<&str> = cmd
        .get_subcommands()
        .flat_map(|s| std::iter::once(s.get_name()).chain(s.get_all_aliases()))
        .collect();
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        if VALUE_OPTIONS.contains(&arg) {
            i += 2;
            continue;
        }
        if arg.starts_with('-') {
            i += 1;
            continue;
        }
        if names.contains(&arg) || arg == "help" {
            return Ok(args);
        }
        let lower = arg.to_lowercase();
        if names.contains(&lower.as_str()) {
            args[i] = lower.into();
            return Ok(args);
        }
        return Err(match crate::command::closest_command(arg) {
            Some(near) => format!("unknown command '{arg}'; did you mean '{near}'? (kv --help)"),
            None => format!("unknown command '{arg}' (kv --help)"),
        });
    }
    Ok(args)
}

/// `kv node`.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The id of the node to run, as listed in the config's `[[nodes]]`.
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
    /// Key prefix (default: `bench:RANDOM:`, RANDOM 8 hex digits); printed at
    /// the start.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// Delete the bench's keys afterwards (also after Ctrl-C).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub cleanup: bool,
    /// Print the results as one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Ack mode of the timed writes: `leader` or `all` (default: the
    /// cluster's `[replication] acks`).
    #[arg(long, value_name = "MODE")]
    pub acks: Option<kv_router::AckMode>,
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
    fn subcommand_names_are_case_insensitive_and_typos_get_a_suggestion() {
        let norm = |args: &[&str]| {
            let args = std::iter::once("kv").chain(args.iter().copied());
            normalize(&command(), args.map(OsString::from).collect()).map(|v| {
                v.into_iter()
                    .map(|a| a.into_string().unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(norm(&["GET", "K"]).unwrap(), ["kv", "get", "K"]);
        assert_eq!(
            norm(&["--cluster", "Get", "-o", "json", "Put", "k", "V"]).unwrap(),
            ["kv", "--cluster", "Get", "-o", "json", "put", "k", "V"]
        );
        assert_eq!(
            norm(&["gte", "k"]).unwrap_err(),
            "unknown command 'gte'; did you mean 'get'? (kv --help)"
        );
        assert_eq!(norm(&["--raw"]).unwrap(), ["kv", "--raw"]);
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

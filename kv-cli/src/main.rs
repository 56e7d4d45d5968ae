//! `kv`: the command-line tool of the kv store.
//!
//! One binary, several ways in (DESIGN §7):
//!
//! - `kv` / `kv shell`: the interactive shell ([`shell`]) against an
//!   embedded cluster started in this process ([`cluster::Embedded`]: the
//!   default topology, or `--config`, data in `--data-dir`, default
//!   `./data`), or against a running cluster with `--cluster FILE`.
//! - `kv put|get|del|status|inspect|cluster ...`: one-shot data commands,
//!   parsed and run by the same code as shell lines ([`command`]) and
//!   printed by [`output`]; exit code 0 ok, 1 not found, 2 usage or config
//!   error, 3 other failure ([`error`]).
//! - `kv node --config FILE --id N` and `kv serve`: node processes
//!   ([`serve`]).
//! - `kv bench`: load generator ([`bench`]).
//!
//! Only this crate prints. Logs (tracing) go to stderr at level `warn`
//! unless `RUST_LOG` says otherwise.

mod args;
mod bench;
mod cluster;
mod command;
mod error;
mod output;
mod security;
mod serve;
mod shell;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use tokio::runtime::Runtime;

use crate::args::{BenchArgs, Cli, GlobalOpts, Sub};
use crate::cluster::{DEFAULT_DATA_DIR, Session};
use crate::command::Command;
use crate::error::{CliError, EXIT_NOT_FOUND};

fn main() -> ExitCode {
    // Usage errors exit with code 2 from here, `--help` with 0.
    let cli = Cli::parse();
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&CliError::failed("starting the async runtime", e)),
    };
    match run(&rt, cli) {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

fn report(e: &CliError) -> ExitCode {
    eprintln!("error: {e}");
    e.exit_code()
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(rt: &Runtime, cli: Cli) -> Result<ExitCode, CliError> {
    let global = cli.global;
    let data_dir = global
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    match cli.command {
        None | Some(Sub::Shell) => shell_main(rt, &global, &data_dir),
        Some(Sub::Node(node)) => rt
            .block_on(serve::node(&global, node.id, &data_dir))
            .map(ok),
        Some(Sub::Serve) => rt.block_on(serve::serve(&global, &data_dir)).map(ok),
        Some(Sub::Bench(args)) => bench_main(rt, &global, &args),
        Some(Sub::Data(command)) => one_shot(rt, &global, &data_dir, &command),
    }
}

fn ok(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

fn shell_main(rt: &Runtime, global: &GlobalOpts, data_dir: &Path) -> Result<ExitCode, CliError> {
    let session = rt.block_on(Session::open(global, data_dir))?;
    let result = shell::run(rt, &session, data_dir);
    let closed = rt.block_on(session.close());
    result.and(closed).map(ok)
}

/// Runs one data command; the answer goes to stdout, notes to stderr.
fn one_shot(
    rt: &Runtime,
    global: &GlobalOpts,
    data_dir: &Path,
    command: &Command,
) -> Result<ExitCode, CliError> {
    let session = rt.block_on(Session::open(global, data_dir))?;
    let reply = rt.block_on(command::execute(&session.client, command));
    let map = session.client.map().clone();
    let closed = rt.block_on(session.close());
    let rendered = output::render(&reply?, &map);
    closed?;
    for line in &rendered.lines {
        println!("{line}");
    }
    for note in &rendered.notes {
        eprintln!("{note}");
    }
    Ok(if rendered.found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_FOUND)
    })
}

/// Benchmarks `--cluster`, or an embedded cluster on `--data-dir` or, by
/// default, on a temporary directory removed afterwards.
fn bench_main(rt: &Runtime, global: &GlobalOpts, args: &BenchArgs) -> Result<ExitCode, CliError> {
    let temp = match (&global.data_dir, &global.cluster) {
        (None, None) => Some(
            tempfile::Builder::new()
                .prefix("kv-bench-")
                .tempdir()
                .map_err(|e| CliError::failed("creating a temporary data directory", e))?,
        ),
        _ => None,
    };
    let data_dir = match (&temp, &global.data_dir) {
        (Some(t), _) => t.path().to_path_buf(),
        (None, Some(d)) => d.clone(),
        (None, None) => PathBuf::from(DEFAULT_DATA_DIR),
    };
    let session = rt.block_on(Session::open(global, &data_dir))?;
    let mut target = session.describe();
    if session.embedded.is_some() {
        target.push_str(&format!(", data in {}", data_dir.display()));
    }
    let result = rt.block_on(bench::run(
        args,
        session.client.map(),
        &session.client_options,
        &target,
    ));
    let closed = rt.block_on(session.close());
    result.and(closed).map(ok)
}

//! `kv`: the command-line tool of the kv store.
//!
//! One binary, several ways in (DESIGN §7):
//!
//! - `kv` / `kv shell`: the interactive shell ([`shell`]) on the cluster
//!   another `kv` runs from this directory (its cluster file), on
//!   `--cluster FILE|HOST:PORT` (or `KV_CLUSTER`), or else on an embedded
//!   cluster started in this process ([`cluster::Embedded`]: the default
//!   topology, or `--config`, data in `--data-dir`, default `./data`),
//!   whose cluster file it writes while it runs.
//! - `kv init`: creates the embedded cluster's data directory and stops.
//! - `kv put|get|del|status|inspect|cluster ...`: one-shot data commands,
//!   parsed and run by the same code as shell lines ([`command`]) and
//!   printed by [`output`] (or as JSON by [`json`] with `-o json`); they
//!   never create a cluster. Exit code 0 ok, 1 not found, 2 usage or
//!   config error, 3 other failure or a node down ([`error`]). A closed
//!   stdout (`| head`) ends quietly.
//! - `kv node --config FILE --id N` and `kv serve`: node processes
//!   ([`serve`]); `--resp ADDR` adds a RESP2 listener (redis-cli, Redis
//!   client libraries). The embedded cluster always opens one (banner).
//!   `KV_PASSWORD` overrides the config's `[security] client_password`.
//! - `kv bench`: load generator ([`mod@bench`]).
//!
//! Only this crate prints. Logs (tracing) go to stderr at level `warn`
//! unless `RUST_LOG` says otherwise, coloured only on a terminal, as JSON
//! with `--log-format json`.

mod args;
mod bench;
mod cluster;
mod command;
mod error;
mod json;
mod keyspace;
mod output;
mod security;
mod serve;
mod shell;
mod signals;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tokio::runtime::Runtime;

use crate::args::{BenchArgs, Cli, GlobalOpts, LogFormat, OutputFormat, Sub};
use crate::cluster::{DEFAULT_DATA_DIR, Session, Start};
use crate::command::{Command, Stdin};
use crate::error::{CliError, EXIT_FAILED, EXIT_NOT_FOUND};
use crate::output::{Out, Outcome};

/// mimalloc rather than the system allocator: under many connections
/// glibc's malloc took about a fifth of a node's CPU in arena-lock
/// waits and chunk splitting (perf, pipelined SET; see
/// `bench/redis/README.md`). redis-server ships with jemalloc for the
/// same reason.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Usage errors exit with code 2 from here, `--help` with 0.
    let cli = args::parse();
    let one_shot = matches!(cli.command, Some(Sub::Data(_) | Sub::Init));
    init_logging(cli.global.log_format, one_shot);
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

/// Logs on stderr, level `warn` unless `RUST_LOG` says otherwise (`error`
/// for a one-shot command); colour only when stderr is a terminal.
fn init_logging(format: LogFormat, one_shot: bool) {
    use tracing_subscriber::EnvFilter;
    // openraft's own warnings are routine (a vote that crossed another, a
    // peer that is down); kv logs what matters of the control plane itself.
    // A one-shot command answers with its output, its error and its exit
    // code: the embedded nodes it starts and stops again around it would
    // only add what their peers did meanwhile (a peer that closed first, a
    // Raft heartbeat cut off by the stop), so it logs only errors, none of
    // openraft's (its replication tasks outlive a member's shutdown and
    // report the peer that stopped first).
    let default = if one_shot {
        "error,openraft=off"
    } else {
        "warn,openraft=error"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(rt: &Runtime, cli: Cli) -> Result<ExitCode, CliError> {
    let global = cli.global;
    let data_dir = global
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    match cli.command {
        None => shell_main(rt, &global, &data_dir, cli.shell.keep_going),
        Some(Sub::Shell(args)) => shell_main(
            rt,
            &global,
            &data_dir,
            args.keep_going || cli.shell.keep_going,
        ),
        Some(Sub::Init) => init(rt, &global, &data_dir),
        Some(Sub::Node(node)) => rt.block_on(serve::node(&global, &node, &data_dir)).map(ok),
        Some(Sub::Serve(args)) => rt
            .block_on(serve::serve(&global, args.resp.as_deref(), &data_dir))
            .map(ok),
        Some(Sub::Bench(args)) => bench_main(rt, &global, &args),
        Some(Sub::Data(command)) => one_shot(rt, &global, &data_dir, command),
    }
}

/// Exit code after Ctrl-C, as shells report a SIGINT death.
const EXIT_INTERRUPTED: u8 = 130;

fn ok(_: ()) -> ExitCode {
    ExitCode::SUCCESS
}

fn shell_main(
    rt: &Runtime,
    global: &GlobalOpts,
    data_dir: &Path,
    keep_going: bool,
) -> Result<ExitCode, CliError> {
    let session = rt.block_on(Session::open(global, data_dir, Start::Create))?;
    let file = match &session.embedded {
        Some(embedded) => {
            let config = cluster::embedded_config(global)?;
            Some(cluster::ClusterFile::write(&config, embedded, data_dir)?)
        }
        None => None,
    };
    let options = shell::Options {
        output: global.output,
        raw: global.raw,
        keep_going,
    };
    let result = shell::run(rt, &session, data_dir, options);
    drop(file);
    let closed = rt.block_on(session.close());
    let code = result?;
    closed.map(|()| code)
}

/// `kv init`: creates the embedded cluster's data directory (or finds it,
/// or finds the cluster running), then stops.
fn init(rt: &Runtime, global: &GlobalOpts, data_dir: &Path) -> Result<ExitCode, CliError> {
    let session = rt.block_on(Session::open(global, data_dir, Start::Create))?;
    let line = match &session.embedded {
        Some(e) => format!("{}, data in {}; ready", session.describe(), e.data()),
        None => format!("already running: {}", session.describe()),
    };
    rt.block_on(session.close())?;
    Out::stdout().line(line);
    Ok(ExitCode::SUCCESS)
}

/// Runs one data command; the answer goes to stdout, notes to stderr.
fn one_shot(
    rt: &Runtime,
    global: &GlobalOpts,
    data_dir: &Path,
    command: Command,
) -> Result<ExitCode, CliError> {
    let command = command::resolve_value(command, Stdin::Allowed)?;
    let session = rt.block_on(Session::open(global, data_dir, Start::ExistingOnly))?;
    let reply = rt.block_on(command::execute(&session.client, &command));
    let map = session.client.map().clone();
    let closed = rt.block_on(session.close());
    let reply = reply?;
    closed?;
    let rendered = output::render(&reply, &map, global.raw);
    let mut out = Out::stdout();
    match global.output {
        OutputFormat::Text => {
            for line in &rendered.lines {
                out.line(line);
            }
            for note in &rendered.notes {
                eprintln!("{note}");
            }
        }
        OutputFormat::Json => {
            out.line(json::answer(&command, &reply, &map));
        }
    }
    Ok(exit_code(rendered.outcome))
}

fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Outcome::Ok => ExitCode::SUCCESS,
        Outcome::NotFound => ExitCode::from(EXIT_NOT_FOUND),
        Outcome::Degraded => ExitCode::from(EXIT_FAILED),
    }
}

/// Benchmarks `--cluster`, or an embedded cluster on `--data-dir` or, by
/// default, on a temporary directory removed afterwards (Ctrl-C too).
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
    let session = rt.block_on(Session::open(global, &data_dir, Start::Create))?;
    let mut target = session.describe();
    if let Some(e) = &session.embedded {
        target.push_str(&format!(", data in {}", e.data()));
    }
    let result = rt.block_on(bench::run(
        args,
        &session.client.map(),
        &session.client_options,
        &target,
        temp.is_some(),
    ));
    let closed = rt.block_on(session.close());
    drop(temp);
    let ending = result?;
    closed?;
    Ok(match ending {
        bench::Ending::Complete => ExitCode::SUCCESS,
        bench::Ending::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
    })
}

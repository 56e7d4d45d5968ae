//! The interactive shell, and its plain line-by-line form for scripts.
//!
//! On a terminal, lines are read with rustyline: line editing, history
//! across runs (in `~/.kv_history`, else in the data directory; a history
//! file that cannot be read or written is silently skipped), tab
//! completion of command names, greyed argument hints as you type (as
//! redis-cli does), and continuation lines (`... `) while a line ends in a
//! backslash or inside a quote. When stdin is not a terminal, lines are
//! read one by one with no prompt and no banner, so `kv < script.txt`
//! prints only the answers. Every answer and note, and `(error) <message>`
//! for a failed line, goes to stdout. On a terminal the shell goes on after
//! errors; a script stops at the first failed line unless `--keep-going`,
//! and exits non-zero when any line failed.

use std::borrow::Cow;
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};
use tokio::runtime::Runtime;

use crate::args::OutputFormat;
use crate::cluster::Session;
use crate::command::{self, Parsed, ShellCommand, Stdin};
use crate::error::{CliError, EXIT_FAILED};
use crate::json;
use crate::output::{self, Out, Outcome};

const PROMPT: &str = "kv> ";
const HISTORY_FILE: &str = ".kv_history";
const HISTORY_ENTRIES: usize = 1000;

/// Whether to keep reading after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// How the shell prints and when it stops.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Text or JSON answers.
    pub output: OutputFormat,
    /// Values exactly as stored.
    pub raw: bool,
    /// A script goes on after a failed line.
    pub keep_going: bool,
}

/// What one line did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineResult {
    flow: Flow,
    failed: bool,
}

/// Runs the shell until `exit`, `quit` or end of input. The caller shuts
/// the session down afterwards. Returns the exit code: 0, or 3 when a
/// line of a script failed.
pub fn run(
    rt: &Runtime,
    session: &Session,
    data_dir: &Path,
    options: Options,
) -> Result<ExitCode, CliError> {
    // A cluster with no node answering is an error before the first line.
    let down = rt.block_on(session.down_nodes())?;
    if std::io::stdin().is_terminal() {
        interactive(rt, session, data_dir, &down, options).map(|()| ExitCode::SUCCESS)
    } else {
        piped(rt, session, options)
    }
}

fn piped(rt: &Runtime, session: &Session, options: Options) -> Result<ExitCode, CliError> {
    let stdin = std::io::stdin();
    let mut out = Out::stdout();
    let mut failed = false;
    let mut pending = String::new();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| CliError::failed("reading stdin", e))?;
        pending.push_str(&line);
        if command::is_incomplete(&pending) {
            pending.push('\n');
            continue;
        }
        let result = handle_line(
            rt,
            session,
            &std::mem::take(&mut pending),
            &mut out,
            options,
        );
        failed |= result.failed;
        if result.flow == Flow::Exit || (result.failed && !options.keep_going) {
            break;
        }
    }
    if !pending.is_empty() {
        failed |= handle_line(rt, session, &pending, &mut out, options).failed;
    }
    Ok(if failed && !out.is_closed() {
        ExitCode::from(EXIT_FAILED)
    } else {
        ExitCode::SUCCESS
    })
}

fn interactive(
    rt: &Runtime,
    session: &Session,
    data_dir: &Path,
    down: &[String],
    options: Options,
) -> Result<(), CliError> {
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .max_history_size(HISTORY_ENTRIES)
        .map_err(|e| CliError::failed("configuring line editing", e))?
        .build();
    let mut editor: Editor<ShellHelper, DefaultHistory> =
        Editor::with_config(config).map_err(|e| CliError::failed("opening the terminal", e))?;
    editor.set_helper(Some(ShellHelper {
        names: command::command_names(),
    }));
    let history = history_path(data_dir);
    let _ = editor.load_history(&history);
    let mut out = Out::stdout();
    out.line(banner(session, down));
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if handle_line(rt, session, &line, &mut out, options).flow == Flow::Exit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::failed("reading a line", e)),
        }
    }
    let _ = editor.save_history(&history);
    Ok(())
}

fn history_path(data_dir: &Path) -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(HISTORY_FILE),
        _ => data_dir.join(HISTORY_FILE),
    }
}

fn banner(session: &Session, down: &[String]) -> String {
    let addrs: Vec<String> = session
        .client
        .map()
        .nodes()
        .iter()
        .map(|n| format!("node {} {}", n.id, n.addr))
        .collect();
    let mut lines = vec![format!(
        "kv {}: {}",
        env!("CARGO_PKG_VERSION"),
        session.describe()
    )];
    if let Some(embedded) = &session.embedded {
        lines.push(format!("data in {}", embedded.data()));
    }
    lines.push(addrs.join(", "));
    let resp = session.resp_addrs();
    if !resp.is_empty() {
        lines.push(format!("RESP (redis-cli -p PORT): {}", resp.join(", ")));
    }
    lines.extend(down.iter().map(|d| format!("warning: {d}")));
    lines.push("type help for the commands; exit, quit or Ctrl-D to leave".to_string());
    lines.join("\n")
}

/// Parses and runs one line, printing its answer.
fn handle_line(
    rt: &Runtime,
    session: &Session,
    line: &str,
    out: &mut Out,
    options: Options,
) -> LineResult {
    let (text, flow, failed) = match command::parse_line(line) {
        Ok(Parsed::Empty) => (Vec::new(), Flow::Continue, false),
        Ok(Parsed::Text(help)) => (vec![help], Flow::Continue, false),
        Ok(Parsed::Command(ShellCommand::Exit)) => (Vec::new(), Flow::Exit, false),
        Ok(Parsed::Command(ShellCommand::Help)) => {
            (vec![command::help_text()], Flow::Continue, false)
        }
        Ok(Parsed::Command(ShellCommand::Data(cmd))) => {
            let (text, failed) = run_command(rt, session, cmd, options);
            (text, Flow::Continue, failed)
        }
        Err(e) => (vec![error_text(&e, options)], Flow::Continue, true),
    };
    let written = text.iter().all(|t| out.line(t));
    LineResult {
        // Nobody reads our answers any more (closed pipe): stop.
        flow: if written { flow } else { Flow::Exit },
        failed,
    }
}

/// Runs a data command: its printed lines, and whether it failed.
fn run_command(
    rt: &Runtime,
    session: &Session,
    cmd: command::Command,
    options: Options,
) -> (Vec<String>, bool) {
    let reply = command::resolve_value(cmd, Stdin::Refused).and_then(|cmd| {
        rt.block_on(command::execute(&session.client, &cmd))
            .map(|reply| (cmd, reply))
    });
    let (cmd, reply) = match reply {
        Ok(done) => done,
        Err(e) => return (vec![error_text(&e, options)], true),
    };
    let map = session.client.map();
    let rendered = output::render(&reply, &map, options.raw);
    let failed = rendered.outcome == Outcome::Degraded;
    let mut text = Vec::new();
    match options.output {
        OutputFormat::Text => {
            text.extend(rendered.lines);
            text.extend(rendered.notes);
        }
        OutputFormat::Json => text.push(json::answer(&cmd, &reply, &map).to_string()),
    }
    (text, failed)
}

fn error_text(e: &CliError, options: Options) -> String {
    match options.output {
        OutputFormat::Text => format!("(error) {e}"),
        OutputFormat::Json => json::error(&e.to_string()).to_string(),
    }
}

/// Tab completion of the command name (the first word).
struct ShellHelper {
    names: Vec<String>,
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(complete_command(
            &self.names,
            line.get(..pos).unwrap_or(line),
        ))
    }
}

/// The start of the word being completed and its candidates; only the
/// first word of a line is a command name.
fn complete_command(names: &[String], before_cursor: &str) -> (usize, Vec<String>) {
    let start = before_cursor.len() - before_cursor.trim_start().len();
    let word = &before_cursor[start..];
    if word.contains(char::is_whitespace) {
        return (start, Vec::new());
    }
    let matches = names
        .iter()
        .filter(|n| n.starts_with(word))
        .map(|n| format!("{n} "))
        .collect();
    (start, matches)
}

impl Hinter for ShellHelper {
    type Hint = String;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<String> {
        if pos < line.len() {
            return None;
        }
        argument_hint(line)
    }
}

/// redis-cli's hint: after a command name and a space, its arguments
/// still to type, e.g. `put k` → ` <VALUE>`.
fn argument_hint(line: &str) -> Option<String> {
    let mut words = line.split_whitespace();
    let name = words.next()?.to_lowercase();
    let typed = words.count();
    if !line.contains(char::is_whitespace) {
        return None;
    }
    let usage = command::argument_usage(&name)?;
    let rest: Vec<&str> = usage.split_whitespace().skip(typed).collect();
    if rest.is_empty() {
        return None;
    }
    let sep = if line.ends_with(char::is_whitespace) {
        ""
    } else {
        " "
    };
    Some(format!("{sep}{}", rest.join(" ")))
}

impl Highlighter for ShellHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[90m{hint}\x1b[0m"))
    }
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        Ok(if command::is_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_only_the_first_word() {
        let names = command::command_names();
        let (start, found) = complete_command(&names, "  st");
        assert_eq!((start, found), (2, vec!["status ".to_string()]));
        let (_, found) = complete_command(&names, "e");
        assert_eq!(found, vec!["exit ".to_string(), "expire ".to_string()]);
        let (_, found) = complete_command(&names, "get sta");
        assert!(found.is_empty());
        let (_, all) = complete_command(&names, "");
        assert_eq!(all.len(), names.len());
    }

    #[test]
    fn hints_show_the_arguments_still_to_type() {
        let put = "<KEY> <VALUE> [--ttl <DURATION>]";
        assert_eq!(argument_hint("put ").as_deref(), Some(put));
        assert_eq!(
            argument_hint("PUT k").as_deref(),
            Some(" <VALUE> [--ttl <DURATION>]")
        );
        assert_eq!(
            argument_hint("put k ").as_deref(),
            Some("<VALUE> [--ttl <DURATION>]")
        );
        assert_eq!(argument_hint("put k v --ttl 5s"), None);
        assert_eq!(argument_hint("get k"), None);
        assert_eq!(
            argument_hint("scan ").as_deref(),
            Some("[PREFIX] [--limit <N>]")
        );
        assert_eq!(argument_hint("inspect ").as_deref(), Some("<NODE>"));
        assert_eq!(argument_hint("put"), None);
        assert_eq!(argument_hint("nosuch "), None);
    }
}

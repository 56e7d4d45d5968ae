//! The interactive shell, and its plain line-by-line form for scripts.
//!
//! On a terminal, lines are read with rustyline: line editing, history
//! across runs (in `~/.kv_history`, else in the data directory; a history
//! file that cannot be read or written is silently skipped), and tab
//! completion of command names. When stdin is not a terminal, lines are
//! read one by one with no prompt and no banner, so `kv < script.txt`
//! prints only the answers. Every answer and note, and `(error) <message>`
//! for a failed line, goes to stdout; the shell goes on after errors.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};
use tokio::runtime::Runtime;

use crate::cluster::Session;
use crate::command::{self, Parsed, ShellCommand};
use crate::error::CliError;
use crate::output;

const PROMPT: &str = "kv> ";
const HISTORY_FILE: &str = ".kv_history";
const HISTORY_ENTRIES: usize = 1000;

/// Whether to keep reading after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Exit,
}

/// Runs the shell until `exit`, `quit` or end of input. The caller shuts
/// the session down afterwards.
pub fn run(rt: &Runtime, session: &Session, data_dir: &Path) -> Result<(), CliError> {
    if std::io::stdin().is_terminal() {
        interactive(rt, session, data_dir)
    } else {
        piped(rt, session)
    }
}

fn piped(rt: &Runtime, session: &Session) -> Result<(), CliError> {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| CliError::failed("reading stdin", e))?;
        if handle_line(rt, session, &line, &mut out) == Flow::Exit {
            break;
        }
    }
    Ok(())
}

fn interactive(rt: &Runtime, session: &Session, data_dir: &Path) -> Result<(), CliError> {
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
    println!("{}", banner(session, data_dir));
    let mut out = std::io::stdout();
    loop {
        match editor.readline(PROMPT) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if handle_line(rt, session, &line, &mut out) == Flow::Exit {
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

fn banner(session: &Session, data_dir: &Path) -> String {
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
    if session.embedded.is_some() {
        lines.push(format!("data in {}", data_dir.display()));
    }
    lines.push(addrs.join(", "));
    let resp = session.resp_addrs();
    if !resp.is_empty() {
        lines.push(format!("RESP (redis-cli -p PORT): {}", resp.join(", ")));
    }
    lines.push("type help for the commands; exit, quit or Ctrl-D to leave".to_string());
    lines.join("\n")
}

/// Parses and runs one line, printing its answer.
fn handle_line(rt: &Runtime, session: &Session, line: &str, out: &mut impl Write) -> Flow {
    let mut text = Vec::new();
    let flow = match command::parse_line(line) {
        Ok(Parsed::Empty) => Flow::Continue,
        Ok(Parsed::Text(help)) => {
            text.push(help);
            Flow::Continue
        }
        Ok(Parsed::Command(ShellCommand::Exit)) => Flow::Exit,
        Ok(Parsed::Command(ShellCommand::Help)) => {
            text.push(command::help_text());
            Flow::Continue
        }
        Ok(Parsed::Command(ShellCommand::Data(cmd))) => {
            match rt.block_on(command::execute(&session.client, &cmd)) {
                Ok(reply) => {
                    let rendered = output::render(&reply, session.client.map());
                    text.extend(rendered.lines);
                    text.extend(rendered.notes);
                }
                Err(e) => text.push(format!("(error) {e}")),
            }
            Flow::Continue
        }
        Err(e) => {
            text.push(format!("(error) {e}"));
            Flow::Continue
        }
    };
    let written = text.iter().try_for_each(|t| writeln!(out, "{t}"));
    match written.and_then(|()| out.flush()) {
        Ok(()) => flow,
        // Nobody reads our answers any more (closed pipe): stop.
        Err(_) => Flow::Exit,
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
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

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
        assert_eq!(found, vec!["exit ".to_string()]);
        let (_, found) = complete_command(&names, "get sta");
        assert!(found.is_empty());
        let (_, all) = complete_command(&names, "");
        assert_eq!(all.len(), names.len());
    }
}

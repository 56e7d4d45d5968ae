//! The data commands, shared by the shell and the one-shot command line.
//!
//! [`Command`] is one clap subcommand enum: `kv get KEY` parses it from the
//! process arguments (flattened into [`crate::args::Sub`]) and the shell
//! parses each line into it with [`parse_line`], after splitting the line
//! with POSIX shell quoting (`shell-words`). [`execute`] runs a command
//! against a [`ClusterClient`] and returns a [`Reply`]; how a reply is
//! printed is [`crate::output`]'s business.

use clap::{CommandFactory, Parser, Subcommand};
use kv_codec::Value;
use kv_node::protocol::{NodeInfo, PartitionKeys};
use kv_node::{ClusterClient, Read};
use kv_router::NodeId;
use kv_storage::Location;

use crate::error::CliError;

/// A command that talks to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Store a value: plain text, an event {"data": ..., "timestamp": ...}
    /// or any JSON object or array (quote it: put k '{"a": 1}').
    Put {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
        /// The value.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print a key's value.
    Get {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
    /// Delete a key.
    #[command(visible_alias = "delete")]
    Del {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
    /// Where a key's value lives (HOT_STORAGE, COLD_STORAGE or NOT_FOUND),
    /// its partition, leader and replicas.
    Status {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
    /// A node's partitions, its role in each and the keys in hot storage.
    Inspect {
        /// The node id.
        node: NodeId,
    },
    /// Nodes and their health; per partition the leader, followers, LSNs
    /// and replication lag.
    Cluster,
}

fn parse_key(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("a key must not be empty".to_string())
    } else {
        Ok(s.to_string())
    }
}

/// One shell line.
#[derive(Debug, Parser)]
#[command(multicall = true, disable_help_subcommand = true)]
struct ShellLine {
    #[command(subcommand)]
    command: ShellCommand,
}

/// What a shell line asks for.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ShellCommand {
    /// A data command.
    #[command(flatten)]
    Data(Command),
    /// List the commands.
    Help,
    /// Leave the shell (an embedded cluster is shut down cleanly).
    #[command(visible_alias = "quit")]
    Exit,
}

/// What the shell should do with a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Nothing to do (empty line or only a comment).
    Empty,
    /// Run this.
    Command(ShellCommand),
    /// Print this text (`get --help`).
    Text(String),
}

/// Parses one shell line with POSIX quoting; `#` starts a comment.
pub fn parse_line(line: &str) -> Result<Parsed, CliError> {
    let words =
        shell_words::split(line).map_err(|e| CliError::Usage(format!("{e} (check the quotes)")))?;
    if words.is_empty() {
        return Ok(Parsed::Empty);
    }
    match ShellLine::try_parse_from(&words) {
        Ok(parsed) => Ok(Parsed::Command(parsed.command)),
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            Ok(Parsed::Text(e.render().to_string().trim_end().to_string()))
        }
        Err(e) => Err(usage_error(&e)),
    }
}

/// A clap error as one line: its message, then the usage when clap gives
/// one.
fn usage_error(e: &clap::Error) -> CliError {
    if e.kind() == clap::error::ErrorKind::InvalidSubcommand
        && let Some(clap::error::ContextValue::String(name)) =
            e.get(clap::error::ContextKind::InvalidSubcommand)
    {
        return CliError::Usage(format!("unknown command '{name}'; type help"));
    }
    let text = e.render().to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    match text.lines().find_map(|l| l.strip_prefix("Usage: ")) {
        Some(usage) => CliError::Usage(format!("{message}; usage: {usage}")),
        None => CliError::Usage(message.to_string()),
    }
}

/// Every command name the shell knows, for tab completion.
pub fn command_names() -> Vec<String> {
    let mut names = Vec::new();
    for sub in ShellLine::command().get_subcommands() {
        names.push(sub.get_name().to_string());
        names.extend(sub.get_visible_aliases().map(str::to_string));
    }
    names.sort();
    names
}

/// The shell's `help` text: one line per command with its usage.
pub fn help_text() -> String {
    let mut cmd = ShellLine::command();
    let mut lines = Vec::new();
    for sub in cmd.get_subcommands_mut() {
        let usage = sub.render_usage().to_string();
        let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_string();
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let about = about.lines().next().unwrap_or_default().to_string();
        lines.push(format!("  {usage:<22} {about}"));
    }
    lines.push("Quote with ' or \" as in a POSIX shell; `COMMAND --help` for details.".into());
    lines.join("\n")
}

/// The answer to a command, before it is printed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A write was acknowledged by the leader.
    Stored,
    /// A read.
    Value(Read<Option<Value>>),
    /// A delete: whether the key existed.
    Deleted(bool),
    /// Where a key lives, with the partition's placement.
    Status {
        /// The answer and who gave it.
        read: Read<Location>,
        /// The partition's replicas, leader first.
        replicas: Vec<NodeId>,
    },
    /// A node's partitions and hot keys.
    Inspect {
        /// The node asked.
        node: NodeId,
        /// Its partitions.
        partitions: Vec<PartitionKeys>,
    },
    /// Every node's info (or the error reaching it).
    Cluster(Vec<(NodeId, Result<NodeInfo, String>)>),
}

/// Runs a data command.
pub async fn execute(client: &ClusterClient, command: &Command) -> Result<Reply, CliError> {
    let reply = match command {
        Command::Put { key, value } => {
            client
                .put(key.as_bytes(), &Value::from_user_input(value))
                .await?;
            Reply::Stored
        }
        Command::Get { key } => Reply::Value(client.get(key.as_bytes()).await?),
        Command::Del { key } => Reply::Deleted(client.delete(key.as_bytes()).await?),
        Command::Status { key } => {
            let read = client.status(key.as_bytes()).await?;
            let replicas = client
                .map()
                .replicas(read.partition)
                .unwrap_or(&[])
                .to_vec();
            Reply::Status { read, replicas }
        }
        Command::Inspect { node } => {
            let partitions = client.inspect(*node).await?;
            Reply::Inspect {
                node: *node,
                partitions,
            }
        }
        Command::Cluster => Reply::Cluster(
            client
                .cluster_info()
                .await
                .into_iter()
                .map(|(id, info)| (id, info.map_err(|e| e.to_string())))
                .collect(),
        ),
    };
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(line: &str) -> ShellCommand {
        match parse_line(line) {
            Ok(Parsed::Command(c)) => c,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    fn usage(line: &str) -> String {
        match parse_line(line) {
            Err(CliError::Usage(m)) => m,
            other => panic!("{line:?} gave {other:?}"),
        }
    }

    #[test]
    fn seed_lines_parse_with_posix_quoting_and_comments() {
        let put = |k: &str, v: &str| {
            ShellCommand::Data(Command::Put {
                key: k.into(),
                value: v.into(),
            })
        };
        assert_eq!(
            command(r#"put nama "Rafi Widya""#),
            put("nama", "Rafi Widya")
        );
        assert_eq!(
            command(r#"put user:101:profile '{"jurusan": "Sistem Informasi", "angkatan": 2022}'"#),
            put(
                "user:101:profile",
                r#"{"jurusan": "Sistem Informasi", "angkatan": 2022}"#
            )
        );
        assert_eq!(command("put k -5"), put("k", "-5"));
        assert_eq!(
            command("inspect 1 # node_id bisa disesuaikan (0, 1, atau 2)"),
            ShellCommand::Data(Command::Inspect { node: 1 })
        );
        assert_eq!(command("quit"), ShellCommand::Exit);
        assert_eq!(command("exit"), ShellCommand::Exit);
        assert_eq!(
            command("delete k"),
            ShellCommand::Data(Command::Del { key: "k".into() })
        );
        assert_eq!(parse_line("   ").unwrap(), Parsed::Empty);
        assert_eq!(parse_line("# just a comment").unwrap(), Parsed::Empty);
    }

    #[test]
    fn mistakes_are_one_line_usage_errors() {
        assert_eq!(
            usage("frobnicate x"),
            "unknown command 'frobnicate'; type help"
        );
        let missing = usage("get");
        assert!(
            missing.contains("<KEY>") && missing.contains("usage: get <KEY>"),
            "{missing}"
        );
        assert!(usage("get a b").contains("unexpected argument 'b'"));
        assert!(usage("get ''").contains("must not be empty"));
        assert!(usage("inspect x").contains("invalid value 'x'"));
        assert!(usage("put k 'unterminated").contains("quote"));
        for line in ["get", "get a b", "inspect x", "put"] {
            assert!(!usage(line).contains('\n'), "{line}");
        }
    }

    #[test]
    fn help_lists_every_command_and_completion_knows_aliases() {
        let help = help_text();
        for name in [
            "put", "get", "del", "status", "inspect", "cluster", "help", "exit",
        ] {
            assert!(
                help.contains(&format!("  {name}")),
                "{name} missing from\n{help}"
            );
        }
        let names = command_names();
        assert!(names.contains(&"quit".to_string()) && names.contains(&"delete".to_string()));
        assert!(
            matches!(parse_line("get --help"), Ok(Parsed::Text(t)) if t.contains("Usage: get <KEY>"))
        );
    }
}

//! The data commands, shared by the shell and the one-shot command line.
//!
//! [`Command`] is one clap subcommand enum: `kv get KEY` parses it from the
//! process arguments (flattened into [`crate::args::Sub`]) and the shell
//! parses each line into it with [`parse_line`], after splitting the line
//! with POSIX shell quoting (`shell-words`). Command names are
//! case-insensitive (`GET k`); `#` starts a comment only at the start of a
//! line (`put color #ff0000` stores `#ff0000`); [`is_incomplete`] tells the
//! shell that a line ending in a backslash or inside a quote goes on.
//! [`resolve_value`] reads `put k -` (stdin) and `put k @file` values.
//! [`execute`] runs a command against a [`ClusterClient`] and returns a
//! [`Reply`]; how a reply is printed is [`crate::output`]'s business.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use kv_codec::Value;
use kv_node::protocol::control::ControllerInfo;
use kv_node::protocol::{HistoryInfo, KeyTtl, NodeInfo, PartitionKeys};
use kv_node::{ClusterClient, Location, Read};
use kv_router::{AckMode, NodeId, PartitionId};

use crate::error::CliError;
use crate::keyspace::{self, KeyList, parse_duration, parse_ttl};

/// A command that talks to the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Store a value: plain text, an event {"data": ..., "timestamp": ...}
    /// or any JSON object or array (quote it: put k '{"a": 1}').
    #[command(override_usage = "put <KEY> <VALUE> [--ttl <DURATION>]")]
    Put {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
        /// The value; `-` reads it from stdin (one-shot only), `@FILE` from
        /// a file (`@@x` stores `@x`).
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// The value's bytes when read from stdin or a file: UTF-8 text
        /// classifies as typed input does, anything else is stored as V4
        /// opaque bytes.
        #[arg(skip)]
        raw: Option<Vec<u8>>,
        /// When the write is acknowledged: `leader` (after the leader's
        /// write) or `all` (after every in-sync replica has it); default:
        /// the cluster's `[replication] acks`.
        #[arg(long, value_name = "MODE", conflicts_with = "ttl")]
        acks: Option<AckMode>,
        /// Expire the key after this long (500ms, 10s, 5m, 2h, 1d).
        #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
        ttl: Option<Duration>,
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
        /// When the delete is acknowledged (as for `put`).
        #[arg(long, value_name = "MODE")]
        acks: Option<AckMode>,
    },
    /// Where a key's value lives (HOT_STORAGE, COLD_STORAGE or NOT_FOUND),
    /// its partition, leader and replicas.
    Status {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
    /// A node's partitions, its role in each, the keys in hot storage and
    /// the rollback files of its replicas.
    Inspect {
        /// The node id.
        node: NodeId,
    },
    /// Nodes and their health, the controller (leader, term, voters); per
    /// partition the leader, epoch, followers, LSNs, lag and in-sync set.
    /// `cluster transfer P NODE` and `cluster promote P NODE --unclean`
    /// move a partition's leadership.
    Cluster {
        /// What to change (nothing: show the cluster).
        #[command(subcommand)]
        action: Option<ClusterAction>,
    },
    /// List keys through every partition, in scan order (a key present for
    /// the whole scan is listed at least once).
    #[command(override_usage = "scan [PREFIX] [--limit <N>]")]
    Scan {
        /// Only keys starting with this.
        prefix: Option<String>,
        /// Stop after N keys.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// List the keys starting with PREFIX, sorted (small sets: at most
    /// 1000; use scan for more).
    Keys {
        /// The prefix ('' for every key).
        prefix: String,
    },
    /// Print several keys' values, one line each ((nil) when missing).
    Mget {
        /// The keys.
        #[arg(required = true, value_parser = parse_key)]
        keys: Vec<String>,
    },
    /// Store several values: mset K1 V1 K2 V2 ... (atomic within a
    /// partition, not across partitions).
    Mset {
        /// Keys and values, alternating.
        #[arg(required = true, num_args = 2.., allow_hyphen_values = true, value_name = "KEY VALUE")]
        pairs: Vec<String>,
    },
    /// A key's remaining time to live (`persistent` when it has none).
    Ttl {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
    /// Make a key expire after DURATION (500ms, 10s, 5m, 2h, 1d; 0s
    /// deletes it now).
    Expire {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
        /// How long from now.
        #[arg(value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Remove a key's expiry.
    Persist {
        /// The key.
        #[arg(value_parser = parse_key)]
        key: String,
    },
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

impl Command {
    /// The key the command is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            Command::Put { key, .. }
            | Command::Get { key }
            | Command::Del { key, .. }
            | Command::Status { key }
            | Command::Ttl { key }
            | Command::Expire { key, .. }
            | Command::Persist { key } => Some(key),
            Command::Inspect { .. }
            | Command::Cluster { .. }
            | Command::Scan { .. }
            | Command::Keys { .. }
            | Command::Mget { .. }
            | Command::Mset { .. } => None,
        }
    }
}

/// A change of partition leadership (`kv cluster transfer|promote`).
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ClusterAction {
    /// Hand partition P's leadership to NODE, an in-sync replica: the
    /// leader stops taking writes for it, waits until NODE has everything,
    /// then the controller makes NODE the leader. Nothing is lost.
    Transfer {
        /// The partition.
        partition: PartitionId,
        /// Its new leader.
        node: NodeId,
    },
    /// Make NODE the leader of partition P although it is not in the
    /// in-sync set (the partition has no in-sync replica left). Entries
    /// only the old leader held are lost; the answer says how many NODE
    /// lacked.
    Promote {
        /// The partition.
        partition: PartitionId,
        /// Its new leader.
        node: NodeId,
        /// Required: say that losing writes is accepted.
        #[arg(long, required = true)]
        unclean: bool,
    },
}

/// Quoting state while walking a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Walks `text` with POSIX quoting. Returns the text with every `#` that
/// would start a comment mid-line escaped (so it stays literal), the
/// quote open at the end, and whether the text ends in a backslash that
/// escapes the end of the line.
fn scan(text: &str) -> (String, Quote, bool) {
    let mut out = String::with_capacity(text.len());
    let (mut quote, mut escaped, mut word_start) = (Quote::None, false, true);
    for (i, c) in text.char_indices() {
        let rest = &text[i + c.len_utf8()..];
        if escaped {
            escaped = false;
        } else {
            match (quote, c) {
                (Quote::None | Quote::Double, '\\') => escaped = true,
                (Quote::None, '\'') => quote = Quote::Single,
                (Quote::None, '"') => quote = Quote::Double,
                (Quote::Single, '\'') | (Quote::Double, '"') => quote = Quote::None,
                (Quote::None, '#') if word_start && !starts_comment(rest) => out.push('\\'),
                _ => {}
            }
        }
        word_start = quote == Quote::None && !escaped && c.is_whitespace();
        out.push(c);
    }
    (out, quote, escaped)
}

/// A `#` word followed by whitespace starts a trailing comment (`inspect 1
/// # note`, as the original seed scripts write); `#ff0000` is a value.
fn starts_comment(after_hash: &str) -> bool {
    after_hash.starts_with(char::is_whitespace)
}

/// Whether `text` goes on on the next line: it ends inside a quote, or in
/// a backslash.
pub fn is_incomplete(text: &str) -> bool {
    if text.trim_start().starts_with('#') {
        return false;
    }
    let (_, quote, trailing_backslash) = scan(text);
    quote != Quote::None || trailing_backslash
}

/// Parses one shell line (possibly several physical lines joined by
/// newlines) with POSIX quoting; `#` at the start of the line makes it a
/// comment.
pub fn parse_line(line: &str) -> Result<Parsed, CliError> {
    if line.trim_start().starts_with('#') {
        return Ok(Parsed::Empty);
    }
    let (protected, _, _) = scan(line);
    let mut words = shell_words::split(&protected)
        .map_err(|e| CliError::Usage(format!("{e} (check the quotes)")))?;
    let Some(first) = words.first_mut() else {
        return Ok(Parsed::Empty);
    };
    let lower = first.to_lowercase();
    if command_names().contains(&lower) {
        *first = lower;
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
    use clap::error::{ContextKind, ContextValue};
    if e.kind() == clap::error::ErrorKind::InvalidSubcommand
        && let Some(ContextValue::String(name)) = e.get(ContextKind::InvalidSubcommand)
    {
        let suggestion = match closest_command(name) {
            Some(s) => format!("did you mean '{s}'? "),
            None => String::new(),
        };
        return CliError::Usage(format!("unknown command '{name}'; {suggestion}type help"));
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

/// The command name nearest to a mistyped `name` (at most two edits, a
/// swap of neighbours counting as one), for "did you mean".
pub fn closest_command(name: &str) -> Option<String> {
    let name = name.to_lowercase();
    command_names()
        .into_iter()
        .map(|c| (edit_distance(&name, &c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: insertions, deletions,
/// substitutions and swaps of adjacent characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Three rows of the table: two rows back (for swaps), the last, this.
    let mut before: Vec<usize> = Vec::new();
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut row = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let mut best = (last[j + 1] + 1).min(row[j] + 1).min(last[j] + cost);
            let (prev_a, prev_b) = (i.checked_sub(1), j.checked_sub(1));
            let swapped = prev_a.and_then(|k| a.get(k)) == Some(&cb)
                && prev_b.and_then(|k| b.get(k)) == Some(&ca);
            if let (true, Some(&two_back)) = (swapped, prev_b.and_then(|k| before.get(k))) {
                best = best.min(two_back + 1);
            }
            row[j + 1] = best;
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
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

/// The arguments a command takes, as its usage shows them (`<KEY>
/// <VALUE>` for `put`), for the shell's hints.
pub fn argument_usage(name: &str) -> Option<String> {
    let mut cmd = ShellLine::command();
    let sub = cmd.find_subcommand_mut(name)?;
    let usage = sub.render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage);
    let args = usage.split_once(' ').map_or("", |(_, rest)| rest);
    // Options (`put --acks all`) are for `put --help`; the hint shows
    // the positional arguments.
    let args = args.trim().trim_start_matches("[OPTIONS]");
    Some(args.trim().to_string())
}

/// Where a `put` value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// `-` reads the value from stdin (one-shot commands).
    Allowed,
    /// stdin carries the commands (the shell): `-` is refused.
    Refused,
}

/// Replaces a `put` value `-` (stdin) or `@FILE` with what it names
/// (`@@x` is the literal `@x`); other commands are returned unchanged.
/// Bytes read that are not UTF-8 are stored as V4 opaque bytes.
pub fn resolve_value(command: Command, stdin: Stdin) -> Result<Command, CliError> {
    let Command::Put {
        key,
        value,
        acks,
        ttl,
        ..
    } = command
    else {
        return Ok(command);
    };
    let value = if value == "-" {
        if stdin == Stdin::Refused {
            return Err(CliError::Usage(
                "put KEY - reads stdin, which carries the shell's commands; use put KEY @FILE"
                    .into(),
            ));
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut bytes)
            .map_err(|e| CliError::failed("reading the value from stdin", e))?;
        return Ok(Command::Put {
            key,
            value,
            raw: Some(bytes),
            acks,
            ttl,
        });
    } else if let Some(literal) = value.strip_prefix("@@") {
        format!("@{literal}")
    } else if let Some(path) = value.strip_prefix('@') {
        let bytes = std::fs::read(path).map_err(|e| {
            CliError::Usage(format!(
                "cannot read the value file {path}: {e} (to store a value starting with @, write @@)"
            ))
        })?;
        return Ok(Command::Put {
            key,
            value,
            raw: Some(bytes),
            acks,
            ttl,
        });
    } else {
        value
    };
    Ok(Command::Put {
        key,
        value,
        raw: None,
        acks,
        ttl,
    })
}

/// The shell's `help` text: one line per command with its usage.
pub fn help_text() -> String {
    let mut cmd = ShellLine::command();
    let mut lines = Vec::new();
    for sub in cmd.get_subcommands_mut() {
        let usage = sub.render_usage().to_string();
        let mut usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_string();
        for alias in sub.get_visible_aliases() {
            usage.push_str(&format!(", {alias}"));
        }
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let about = about.lines().next().unwrap_or_default().to_string();
        lines.push(format!("  {usage:<22} {about}"));
    }
    lines.push(
        "Quote with ' or \" as in a POSIX shell; a line ending in \\ or inside a quote goes on."
            .into(),
    );
    lines.push("Commands are case-insensitive; a comment starts with # and a space (#ff0000 is a value); `COMMAND --help` for details.".into());
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
        /// The in-sync set, leader first (`None`: the leader did not say).
        in_sync: Option<Vec<NodeId>>,
    },
    /// A node's partitions and hot keys.
    Inspect {
        /// The node asked.
        node: NodeId,
        /// Its partitions.
        partitions: Vec<PartitionKeys>,
        /// Each partition's replication history on that node (rollback
        /// files), when its info answered.
        histories: BTreeMap<PartitionId, HistoryInfo>,
    },
    /// Every node's info (or the error reaching it), and the controller's
    /// view (or why there is none).
    Cluster {
        /// Each node's info.
        infos: Vec<(NodeId, Result<NodeInfo, String>)>,
        /// The controller's view.
        controller: Result<ControllerInfo, String>,
    },
    /// A partition's leadership moved.
    Moved {
        /// The partition.
        partition: PartitionId,
        /// Its new leader.
        node: NodeId,
        /// The map version of the change.
        version: u64,
        /// Entries the new leader lacked (what an unclean promotion lost),
        /// when known.
        behind: Option<u64>,
        /// Whether it was an unclean promotion.
        unclean: bool,
    },
    /// Keys listed by `scan` or `keys`.
    Keys(KeyList),
    /// `mget`: one read per key, in order.
    Values(Vec<Read<Option<Value>>>),
    /// A key's time to live.
    Ttl(Read<KeyTtl>),
    /// `expire`/`persist`: false when the key does not exist.
    ExpiryChanged(bool),
}

/// Partition `p`'s in-sync set as its leader reports it (leader first),
/// or `None` when the leader does not answer.
async fn in_sync_set(
    client: &ClusterClient,
    p: PartitionId,
    replicas: &[NodeId],
) -> Option<Vec<NodeId>> {
    let &leader = replicas.first()?;
    let info = client.node_info(leader).await.ok()?;
    let part = info.partitions.iter().find(|i| i.partition == p)?;
    Some(
        std::iter::once(leader)
            .chain(part.in_sync_followers())
            .collect(),
    )
}

/// Runs a data command.
pub async fn execute(client: &ClusterClient, command: &Command) -> Result<Reply, CliError> {
    let reply = match command {
        Command::Put {
            key,
            value,
            raw,
            acks,
            ttl,
        } => {
            let value = match raw {
                Some(bytes) => Value::from_bytes(bytes),
                None => Value::from_user_input(value),
            };
            // `--acks` and `--ttl` are exclusive (the command line refuses both).
            match ttl {
                Some(ttl) => client.put_ttl(key.as_bytes(), &value, *ttl).await?,
                None => client.put_with(key.as_bytes(), &value, *acks).await?,
            };
            Reply::Stored
        }
        Command::Scan { prefix, limit } => {
            let prefix = prefix.as_deref().unwrap_or_default();
            Reply::Keys(keyspace::scan(client, prefix, *limit).await?)
        }
        Command::Keys { prefix } => Reply::Keys(keyspace::keys(client, prefix).await?),
        Command::Mget { keys } => Reply::Values(keyspace::mget(client, keys).await?),
        Command::Mset { pairs } => {
            keyspace::mset(client, pairs).await?;
            Reply::Stored
        }
        Command::Ttl { key } => Reply::Ttl(client.ttl(key.as_bytes()).await?),
        Command::Expire { key, ttl } => {
            Reply::ExpiryChanged(client.expire(key.as_bytes(), *ttl).await?)
        }
        Command::Persist { key } => Reply::ExpiryChanged(client.persist(key.as_bytes()).await?),
        Command::Get { key } => Reply::Value(client.get(key.as_bytes()).await?),
        Command::Del { key, acks } => {
            Reply::Deleted(client.delete_with(key.as_bytes(), *acks).await?)
        }
        Command::Status { key } => {
            // Asked with `AtLeader`: a map that missed a failover or a
            // transfer (a new process starts from the config's) is
            // refreshed, so the line names the leader of now.
            let read = client.status(key.as_bytes()).await?;
            let replicas = client
                .map()
                .replicas(read.partition)
                .unwrap_or(&[])
                .to_vec();
            let in_sync = in_sync_set(client, read.partition, &replicas).await;
            Reply::Status {
                read,
                replicas,
                in_sync,
            }
        }
        Command::Inspect { node } => {
            if client.map().node(*node).is_none() {
                let ids: Vec<String> = client
                    .map()
                    .nodes()
                    .iter()
                    .map(|n| n.id.to_string())
                    .collect();
                return Err(CliError::Usage(format!(
                    "node {node} is not in the cluster; its nodes are {}",
                    ids.join(", ")
                )));
            }
            let partitions = client.inspect(*node).await?;
            // Rollback files come with the node's info; inspect still
            // answers (without them) if that fails.
            let histories = match client.node_info(*node).await {
                Ok(info) => info
                    .partitions
                    .into_iter()
                    .map(|p| (p.partition, p.history))
                    .collect(),
                Err(_) => BTreeMap::new(),
            };
            Reply::Inspect {
                node: *node,
                partitions,
                histories,
            }
        }
        Command::Cluster { action: None } => {
            // Show the leaders the controller has chosen, not the ones this
            // client started with.
            client.refresh().await;
            let infos = client
                .cluster_info()
                .await
                .into_iter()
                .map(|(id, info)| (id, info.map_err(|e| e.to_string())))
                .collect();
            let controller = client.controller().await.map_err(|e| e.to_string());
            Reply::Cluster { infos, controller }
        }
        Command::Cluster {
            action: Some(action),
        } => {
            let (partition, node, unclean) = match *action {
                ClusterAction::Transfer { partition, node } => (partition, node, false),
                ClusterAction::Promote {
                    partition, node, ..
                } => (partition, node, true),
            };
            let (version, behind) = client.move_leader(partition, node, unclean).await?;
            Reply::Moved {
                partition,
                node,
                version,
                behind,
                unclean,
            }
        }
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
    fn acks_option_on_put_and_del() {
        assert_eq!(
            command("put --acks all k v"),
            ShellCommand::Data(Command::Put {
                key: "k".into(),
                value: "v".into(),
                raw: None,
                acks: Some(AckMode::All),
                ttl: None,
            })
        );
        assert_eq!(
            command("del --acks leader k"),
            ShellCommand::Data(Command::Del {
                key: "k".into(),
                acks: Some(AckMode::Leader),
            })
        );
        assert!(usage("put --acks quorum k v").contains("quorum"));
        assert!(usage("put --acks all --ttl 10s k v").contains("cannot be used with"));
    }

    #[test]
    fn seed_lines_parse_with_posix_quoting_and_comments() {
        let put = |k: &str, v: &str| {
            ShellCommand::Data(Command::Put {
                key: k.into(),
                value: v.into(),
                raw: None,
                acks: None,
                ttl: None,
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
            ShellCommand::Data(Command::Del {
                key: "k".into(),
                acks: None
            })
        );
        assert_eq!(command("put color #ff0000"), put("color", "#ff0000"));
        assert_eq!(command("put c a#b"), put("c", "a#b"));
        assert_eq!(command("put c '#x' # note"), put("c", "#x"));
        assert_eq!(command("put c \"a # b\""), put("c", "a # b"));
        assert_eq!(
            command("GET nama"),
            ShellCommand::Data(Command::Get { key: "nama".into() })
        );
        assert_eq!(command("Put NAMA x"), put("NAMA", "x"));
        assert_eq!(command("put k 'two\nlines'"), put("k", "two\nlines"));
        assert_eq!(command("put k \\\n  value"), put("k", "value"));
        assert!(is_incomplete("put k 'open") && is_incomplete("put k \"open"));
        assert!(is_incomplete("put k \\") && !is_incomplete("put k \\\\"));
        assert!(!is_incomplete("put k 'closed'") && !is_incomplete("# it's"));
        assert!(!is_incomplete("put k \"it's\""));
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
        assert_eq!(
            usage("gte k"),
            "unknown command 'gte'; did you mean 'get'? type help"
        );
        assert_eq!(
            usage("stauts k"),
            "unknown command 'stauts'; did you mean 'status'? type help"
        );
        assert_eq!(usage("zzz"), "unknown command 'zzz'; type help");
        assert_eq!(edit_distance("gte", "get"), 1);
        assert_eq!(edit_distance("", "get"), 3);
        assert_eq!(edit_distance("inspcet", "inspect"), 1);
        assert_eq!(edit_distance("sttaus", "status"), 1);
        assert_eq!(edit_distance("stat", "status"), 2);
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
        assert!(help.contains("  exit, quit "), "{help}");
        let names = command_names();
        assert!(names.contains(&"quit".to_string()) && names.contains(&"delete".to_string()));
        assert!(
            matches!(parse_line("get --help"), Ok(Parsed::Text(t)) if t.contains("Usage: get <KEY>"))
        );
    }
}

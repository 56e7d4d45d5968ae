//! The command table kv answers over RESP, and `COMMAND` (`COUNT`,
//! `INFO`, `DOCS`), which reports it: enough for redis-cli's hints and for
//! client libraries that look commands up.

use bytes::Bytes;

use super::commands::lossy;
use super::reply::Reply;

/// One command kv answers: what `COMMAND` and `COMMAND DOCS` report and
/// what dispatch checks.
pub(crate) struct Spec {
    name: &'static str,
    /// Redis arity: `n` exactly `n` arguments (name included), `-n` at
    /// least `n`.
    arity: i64,
    flags: &'static [&'static str],
    /// First key, last key (-1: the last argument), step.
    keys: (i64, i64, i64),
    group: &'static str,
    summary: &'static str,
    /// Arguments for hints: `name:type`, `?` optional, `*` multiple;
    /// `A|B` is a choice of tokens.
    args: &'static [&'static str],
}

impl Spec {
    pub(crate) fn arity_ok(&self, n: usize) -> bool {
        let n = n as i64;
        if self.arity >= 0 {
            n == self.arity
        } else {
            n >= -self.arity
        }
    }
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const C: &[&str] = &["fast", "no-auth"];
const S: &[&str] = &["loading", "stale"];

macro_rules! spec {
    ($name:literal, $arity:expr, $flags:expr, $keys:expr, $group:literal, $summary:literal, [$($arg:literal),*]) => {
        Spec { name: $name, arity: $arity, flags: $flags, keys: $keys, group: $group, summary: $summary, args: &[$($arg),*] }
    };
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);

static COMMANDS: &[Spec] = &[
    spec!(
        "auth",
        -2,
        C,
        NO_KEYS,
        "connection",
        "Authenticates the connection.",
        ["?username:string", "password:string"]
    ),
    spec!(
        "client",
        -2,
        S,
        NO_KEYS,
        "connection",
        "SETNAME, GETNAME, ID, SETINFO.",
        ["subcommand:string", "?*arg:string"]
    ),
    spec!(
        "command",
        -1,
        S,
        NO_KEYS,
        "server",
        "Returns detailed information about commands.",
        ["?COUNT|DOCS", "?*command-name:string"]
    ),
    spec!(
        "config",
        -2,
        S,
        NO_KEYS,
        "server",
        "CONFIG GET (kv has no settable parameters).",
        ["GET", "*parameter:string"]
    ),
    spec!(
        "dbsize",
        1,
        R,
        NO_KEYS,
        "server",
        "Returns the number of keys in the cluster.",
        []
    ),
    spec!(
        "decr",
        2,
        W,
        ONE_KEY,
        "string",
        "Decrements the integer value of a key by one.",
        ["key:key"]
    ),
    spec!(
        "decrby",
        3,
        W,
        ONE_KEY,
        "string",
        "Decrements a number from the integer value of a key.",
        ["key:key", "decrement:integer"]
    ),
    spec!(
        "del",
        -2,
        W,
        ALL_KEYS,
        "generic",
        "Deletes one or more keys.",
        ["*key:key"]
    ),
    spec!(
        "echo",
        2,
        C,
        NO_KEYS,
        "connection",
        "Returns the given string.",
        ["message:string"]
    ),
    spec!(
        "exists",
        -2,
        R,
        ALL_KEYS,
        "generic",
        "Determines whether one or more keys exist.",
        ["*key:key"]
    ),
    spec!(
        "expire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "Sets the expiration time of a key in seconds (0 or less deletes it).",
        ["key:key", "seconds:integer"]
    ),
    spec!(
        "get",
        2,
        R,
        ONE_KEY,
        "string",
        "Returns the string value of a key.",
        ["key:key"]
    ),
    spec!(
        "getset",
        3,
        W,
        ONE_KEY,
        "string",
        "Returns the previous value of a key after setting it.",
        ["key:key", "value:string"]
    ),
    spec!(
        "hello",
        -1,
        C,
        NO_KEYS,
        "connection",
        "Handshakes (protocol 2 only).",
        [
            "?protover:integer",
            "?AUTH",
            "?username:string",
            "?password:string"
        ]
    ),
    spec!(
        "incr",
        2,
        W,
        ONE_KEY,
        "string",
        "Increments the integer value of a key by one.",
        ["key:key"]
    ),
    spec!(
        "incrby",
        3,
        W,
        ONE_KEY,
        "string",
        "Increments the integer value of a key by a number.",
        ["key:key", "increment:integer"]
    ),
    spec!(
        "info",
        -1,
        S,
        NO_KEYS,
        "server",
        "Returns information and statistics about the node.",
        ["?*section:string"]
    ),
    spec!(
        "keys",
        2,
        &["readonly"],
        NO_KEYS,
        "generic",
        "Returns all key names that match a pattern (a full cluster scan).",
        ["pattern:pattern"]
    ),
    spec!(
        "mget",
        -2,
        R,
        ALL_KEYS,
        "string",
        "Returns the values of one or more keys.",
        ["*key:key"]
    ),
    spec!(
        "mset",
        -3,
        W,
        (1, -1, 2),
        "string",
        "Sets the values of one or more keys (not atomic across partitions).",
        ["*key:key", "value:string"]
    ),
    spec!(
        "persist",
        2,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "Removes the expiration time of a key.",
        ["key:key"]
    ),
    spec!(
        "pexpire",
        -3,
        &["write", "fast"],
        ONE_KEY,
        "generic",
        "Sets the expiration time of a key in milliseconds.",
        ["key:key", "milliseconds:integer"]
    ),
    spec!(
        "ping",
        -1,
        C,
        NO_KEYS,
        "connection",
        "Returns the server's liveliness response.",
        ["?message:string"]
    ),
    spec!(
        "pttl",
        2,
        R,
        ONE_KEY,
        "generic",
        "Returns the expiration time in milliseconds of a key.",
        ["key:key"]
    ),
    spec!(
        "quit",
        -1,
        C,
        NO_KEYS,
        "connection",
        "Closes the connection.",
        []
    ),
    spec!(
        "reset",
        1,
        C,
        NO_KEYS,
        "connection",
        "Resets the connection.",
        []
    ),
    spec!(
        "scan",
        -2,
        &["readonly"],
        NO_KEYS,
        "generic",
        "Iterates over the key names in the cluster.",
        [
            "cursor:integer",
            "?MATCH",
            "?pattern:pattern",
            "?COUNT",
            "?count:integer",
            "?TYPE",
            "?type:string"
        ]
    ),
    spec!(
        "select",
        2,
        C,
        NO_KEYS,
        "connection",
        "Changes the selected database (only 0 exists).",
        ["index:integer"]
    ),
    spec!(
        "set",
        -3,
        W,
        ONE_KEY,
        "string",
        "Sets the string value of a key, optionally with an expiry.",
        [
            "key:key",
            "value:string",
            "?NX|XX",
            "?GET",
            "?EX|PX|EXAT|PXAT|KEEPTTL",
            "?time:integer"
        ]
    ),
    spec!(
        "strlen",
        2,
        R,
        ONE_KEY,
        "string",
        "Returns the length of a string value.",
        ["key:key"]
    ),
    spec!(
        "ttl",
        2,
        R,
        ONE_KEY,
        "generic",
        "Returns the expiration time in seconds of a key.",
        ["key:key"]
    ),
];

/// The table entry for a lowercase command name.
pub(crate) fn spec(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.name == name)
}

pub(crate) fn command(args: &[Bytes]) -> Reply {
    let sub = args
        .first()
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    let wanted = |s: &&Spec| {
        args.len() < 2
            || args
                .iter()
                .skip(1)
                .any(|a| a.eq_ignore_ascii_case(s.name.as_bytes()))
    };
    match sub.as_slice() {
        b"" => Reply::Array(COMMANDS.iter().map(command_info).collect()),
        b"COUNT" => Reply::Integer(COMMANDS.len() as i64),
        b"INFO" => Reply::Array(COMMANDS.iter().filter(wanted).map(command_info).collect()),
        b"DOCS" => Reply::Array(
            COMMANDS
                .iter()
                .filter(wanted)
                .flat_map(|s| [Reply::bulk(s.name), command_docs(s)])
                .collect(),
        ),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            lossy(args.first().map_or(&[][..], |a| a.as_ref()))
        )),
    }
}

fn command_info(s: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::bulk(s.name),
        Reply::Integer(s.arity),
        Reply::Array(s.flags.iter().map(|f| Reply::Status(f)).collect()),
        Reply::Integer(s.keys.0),
        Reply::Integer(s.keys.1),
        Reply::Integer(s.keys.2),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn command_docs(s: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::bulk("summary"),
        Reply::bulk(s.summary),
        Reply::bulk("since"),
        Reply::bulk("1.0.0"),
        Reply::bulk("group"),
        Reply::bulk(s.group),
        Reply::bulk("arguments"),
        Reply::Array(s.args.iter().map(|a| argument_doc(a)).collect()),
    ])
}

/// One argument of `COMMAND DOCS`, from the table's short form.
fn argument_doc(arg: &str) -> Reply {
    let optional = arg.starts_with('?');
    let rest = arg.trim_start_matches('?');
    let multiple = rest.starts_with('*');
    let rest = rest.trim_start_matches('*');
    let mut fields = Vec::new();
    let token = |t: &str| {
        Reply::Array(vec![
            Reply::bulk("name"),
            Reply::bulk(t.to_ascii_lowercase()),
            Reply::bulk("type"),
            Reply::bulk("pure-token"),
            Reply::bulk("token"),
            Reply::bulk(t.to_string()),
        ])
    };
    if let Some((name, ty)) = rest.split_once(':') {
        fields.extend([
            Reply::bulk(name.to_string()),
            Reply::bulk("type"),
            Reply::bulk(ty.to_string()),
        ]);
    } else if rest.contains('|') {
        let choices = rest.split('|').map(token).collect();
        fields.extend([
            Reply::bulk("condition"),
            Reply::bulk("type"),
            Reply::bulk("oneof"),
        ]);
        fields.extend([Reply::bulk("arguments"), Reply::Array(choices)]);
    } else {
        fields.extend([
            Reply::bulk(rest.to_ascii_lowercase()),
            Reply::bulk("type"),
            Reply::bulk("pure-token"),
        ]);
        fields.extend([Reply::bulk("token"), Reply::bulk(rest.to_string())]);
    }
    fields.insert(0, Reply::bulk("name"));
    let flags: Vec<&str> = [(optional, "optional"), (multiple, "multiple")]
        .into_iter()
        .filter_map(|(on, f)| on.then_some(f))
        .collect();
    if !flags.is_empty() {
        fields.extend([
            Reply::bulk("flags"),
            Reply::Array(flags.into_iter().map(Reply::Status).collect()),
        ]);
    }
    Reply::Array(fields)
}

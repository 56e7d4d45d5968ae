//! Command dispatch and the key commands.
//!
//! Every command is checked against the table in `admin` (name and arity,
//! Redis style) before it runs, so unknown commands and wrong argument
//! counts get Redis's exact wording.

use std::collections::HashSet;

use bytes::Bytes;
use futures::future::join_all;

use super::connection::{Front, Session};
use super::expiry::{self, Unit};
use super::frame::Command;
use super::reply::{OK, Reply};
use super::route::{self, error_reply};
use super::{admin, table};
use crate::atomic::{NOT_AN_INTEGER, parse_strict_i64};
use crate::protocol::{Conditional, Response, SetTtl, SetWhen};

/// Runs one command and returns its reply.
pub(crate) async fn execute(front: &Front, session: &mut Session, args: Command) -> Reply {
    let name = args
        .first()
        .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
        .unwrap_or_default();
    let Some(spec) = table::spec(&name) else {
        return unknown_command(&args);
    };
    if !spec.arity_ok(args.len()) {
        return Reply::err(format!("wrong number of arguments for '{name}' command"));
    }
    if !session.authenticated && !matches!(name.as_str(), "auth" | "hello" | "quit" | "reset") {
        return Reply::Error("NOAUTH Authentication required.".into());
    }
    let rest = args.get(1..).unwrap_or_default();
    match name.as_str() {
        "get" => get(front, rest).await,
        "set" => set(front, rest).await,
        "getset" => getset(front, rest).await,
        "del" => del(front, rest).await,
        "exists" => exists(front, rest).await,
        "mget" => mget(front, rest).await,
        "mset" => mset(front, rest).await,
        "strlen" => strlen(front, rest).await,
        "scan" => super::scan::scan(front, rest).await,
        "keys" => super::scan::keys(front, rest).await,
        "expire" => expiry::expire(front, rest, Unit::Seconds).await,
        "pexpire" => expiry::expire(front, rest, Unit::Millis).await,
        "ttl" => expiry::ttl(front, rest, Unit::Seconds).await,
        "pttl" => expiry::ttl(front, rest, Unit::Millis).await,
        "persist" => expiry::persist(front, rest).await,
        "incr" => incr_by(front, rest, 1).await,
        "decr" => incr_by(front, rest, -1).await,
        "incrby" => incr_by_arg(front, rest, false).await,
        "decrby" => incr_by_arg(front, rest, true).await,
        _ => admin::execute(front, session, &name, rest).await,
    }
}

/// The key of a plain `GET k` or `SET k v` (no options): the commands a
/// batch may run side by side.
fn simple_key(args: &Command) -> Option<&Bytes> {
    let (name, rest) = args.split_first()?;
    let get = name.eq_ignore_ascii_case(b"GET") && rest.len() == 1;
    let set = name.eq_ignore_ascii_case(b"SET") && rest.len() == 2;
    (get || set).then(|| rest.first()).flatten()
}

/// How many commands at the start of `commands` may run concurrently:
/// plain `GET`/`SET`s on distinct keys, at most [`MAX_CONCURRENT_RUN`].
/// Commands on one key stay in order; commands on different keys commute
/// for this connection, and their writes are acknowledged together, so a
/// pipeline of `SET`s shares fsyncs (group commit) and forwarded requests
/// go to the leaders pipelined instead of one round trip each. (Another
/// client may see a later `SET` of the run before an earlier one.)
pub(crate) fn concurrent_run(commands: &[Command]) -> usize {
    let mut keys = HashSet::new();
    commands
        .iter()
        .take(MAX_CONCURRENT_RUN)
        .take_while(|c| simple_key(c).is_some_and(|k| keys.insert(k.clone())))
        .count()
}

/// Longest run of commands executed side by side.
const MAX_CONCURRENT_RUN: usize = 32;

/// Runs a run of commands [`concurrent_run`] accepted (an authenticated
/// session); their replies, in order. The `SET`s this node can write
/// itself go to the store as one group (one batch per partition); the
/// rest (`GET`s, `SET`s forwarded to other leaders) run side by side with
/// it.
pub(crate) async fn execute_run(front: &Front, run: &[Command]) -> Vec<Reply> {
    // The local SETs' places in the run and their keys and values; the
    // other commands with their places.
    let (mut at, mut sets, mut others) = (Vec::new(), Vec::new(), Vec::new());
    for (i, command) in run.iter().enumerate() {
        match local_set(front, command) {
            Some(set) => {
                at.push(i);
                sets.push(set);
            }
            None => others.push((i, command)),
        }
    }
    let (written, replies) = futures::join!(
        route::set_group(front, sets),
        join_all(others.iter().map(|(_, c)| execute_simple(front, c)))
    );
    let mut out: Vec<Option<Reply>> = run.iter().map(|_| None).collect();
    let written = written.into_iter().map(|w| match w {
        Ok(()) => OK,
        Err(e) => error_reply(&e),
    });
    let placed = at.into_iter().zip(written);
    for (i, reply) in placed.chain(others.into_iter().map(|(i, _)| i).zip(replies)) {
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(reply);
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Reply::err("internal error: a command got no reply")))
        .collect()
}

/// The key and value of a plain `SET k v` this node can write itself.
fn local_set(front: &Front, args: &Command) -> Option<(Bytes, Bytes)> {
    match args.as_slice() {
        [name, key, value]
            if name.eq_ignore_ascii_case(b"SET") && route::leads(front, key) =>
        {
            Some((key.clone(), value.clone()))
        }
        _ => None,
    }
}

/// Runs a command [`concurrent_run`] accepted (an authenticated session).
pub(crate) async fn execute_simple(front: &Front, args: &Command) -> Reply {
    let rest = args.get(1..).unwrap_or_default();
    match args.first() {
        Some(name) if name.eq_ignore_ascii_case(b"GET") => get(front, rest).await,
        _ => set(front, rest).await,
    }
}

/// Redis's reply to a command it does not know.
fn unknown_command(args: &Command) -> Reply {
    let name = args.first().map(|n| lossy(n)).unwrap_or_default();
    let mut listed = String::new();
    for arg in args.iter().skip(1) {
        let room = 128usize.saturating_sub(listed.len());
        let arg: String = lossy(arg).chars().take(room).collect();
        listed.push_str(&format!("'{arg}' "));
        if listed.len() >= 128 {
            break;
        }
    }
    let name: String = name.chars().take(128).collect();
    Reply::err(format!(
        "unknown command '{name}', with args beginning with: {listed}"
    ))
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn syntax_error() -> Reply {
    Reply::err("syntax error")
}

fn arg(args: &[Bytes], i: usize) -> Bytes {
    args.get(i).cloned().unwrap_or_default()
}

async fn get(front: &Front, args: &[Bytes]) -> Reply {
    match route::get(front, arg(args, 0)).await {
        Ok(value) => Reply::Bulk(value),
        Err(e) => error_reply(&e),
    }
}

/// `SET` options, parsed.
#[derive(Default)]
struct SetOptions {
    when: Option<SetWhen>,
    get: bool,
    ttl: Option<SetTtl>,
}

fn set_options(options: &[Bytes]) -> Result<SetOptions, Reply> {
    let mut parsed = SetOptions::default();
    let mut i = 0;
    while let Some(option) = options.get(i) {
        if let Some((ttl, used)) = expiry::set_option(options, i)? {
            if parsed.ttl.replace(ttl).is_some() {
                return Err(syntax_error());
            }
            i += used;
            continue;
        }
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if parsed.when.is_none() => parsed.when = Some(SetWhen::IfAbsent),
            b"XX" if parsed.when.is_none() => parsed.when = Some(SetWhen::IfPresent),
            b"GET" => parsed.get = true,
            _ => return Err(syntax_error()),
        }
        i += 1;
    }
    Ok(parsed)
}

async fn set(front: &Front, args: &[Bytes]) -> Reply {
    let (key, value) = (arg(args, 0), arg(args, 1));
    let options = match set_options(args.get(2..).unwrap_or_default()) {
        Ok(o) => o,
        Err(reply) => return reply,
    };
    if options.when.is_none() && !options.get && options.ttl.is_none() {
        return match route::set(front, key, &value).await {
            Ok(()) => OK,
            Err(e) => error_reply(&e),
        };
    }
    let op = Conditional::Set {
        key,
        value: Bytes::from(kv_codec::Value::from_bytes(&value).encode()),
        when: options.when.unwrap_or(SetWhen::Always),
        get_old: options.get,
        ttl: options.ttl.unwrap_or(SetTtl::Clear),
    };
    match route::conditional(front, op).await {
        Ok(Response::Applied { old, .. }) if options.get => old_value(old),
        Ok(Response::Applied { written: true, .. }) => OK,
        Ok(Response::Applied { written: false, .. }) => Reply::nil(),
        Ok(other) => Reply::err(format!("unexpected reply {other:?}")),
        Err(e) => error_reply(&e),
    }
}

/// An old encoded value as the bytes a client reads.
fn old_value(old: Option<Bytes>) -> Reply {
    match old.map(|b| kv_codec::decode(&b)) {
        None => Reply::nil(),
        Some(Ok(v)) => Reply::bulk(v.into_bytes()),
        Some(Err(e)) => Reply::err(format!("stored value does not decode: {e}")),
    }
}

async fn getset(front: &Front, args: &[Bytes]) -> Reply {
    let mut with_get = args.to_vec();
    with_get.push(Bytes::from_static(b"GET"));
    set(front, &with_get).await
}

async fn del(front: &Front, keys: &[Bytes]) -> Reply {
    let deletes = keys.iter().map(|k| route::delete(front, k.clone()));
    let mut count = 0;
    for result in join_all(deletes).await {
        match result {
            Ok(existed) => count += i64::from(existed),
            Err(e) => return error_reply(&e),
        }
    }
    Reply::Integer(count)
}

async fn exists(front: &Front, keys: &[Bytes]) -> Reply {
    let reads = keys.iter().map(|k| route::get(front, k.clone()));
    let mut count = 0;
    for result in join_all(reads).await {
        match result {
            Ok(value) => count += i64::from(value.is_some()),
            Err(e) => return error_reply(&e),
        }
    }
    Reply::Integer(count)
}

async fn mget(front: &Front, keys: &[Bytes]) -> Reply {
    let reads = keys.iter().map(|k| route::get(front, k.clone()));
    let mut values = Vec::with_capacity(keys.len());
    for result in join_all(reads).await {
        match result {
            Ok(value) => values.push(Reply::Bulk(value)),
            Err(e) => return error_reply(&e),
        }
    }
    Reply::Array(values)
}

/// `MSET`: one atomic batch per partition, written at each leader (not
/// atomic across partitions).
async fn mset(front: &Front, pairs: &[Bytes]) -> Reply {
    if !pairs.len().is_multiple_of(2) {
        return Reply::err("wrong number of arguments for 'mset' command");
    }
    let values: Vec<(&[u8], kv_codec::Value)> = pairs
        .chunks_exact(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.as_ref(), kv_codec::Value::from_bytes(v))),
            _ => None,
        })
        .collect();
    if values.iter().any(|(k, _)| k.is_empty()) {
        return Reply::err("key must not be empty");
    }
    let refs: Vec<(&[u8], &kv_codec::Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    match front.cluster.mset(&refs).await {
        Ok(_) => OK,
        Err(e) => error_reply(&e),
    }
}

async fn strlen(front: &Front, args: &[Bytes]) -> Reply {
    match route::get(front, arg(args, 0)).await {
        Ok(value) => Reply::Integer(value.map_or(0, |v| v.len() as i64)),
        Err(e) => error_reply(&e),
    }
}

async fn incr_by_arg(front: &Front, args: &[Bytes], negate: bool) -> Reply {
    let Some(delta) = parse_strict_i64(&arg(args, 1)) else {
        return Reply::err(NOT_AN_INTEGER);
    };
    let delta = if negate {
        match delta.checked_neg() {
            Some(d) => d,
            None => return Reply::err("decrement would overflow"),
        }
    } else {
        delta
    };
    incr_by(front, args, delta).await
}

async fn incr_by(front: &Front, args: &[Bytes], delta: i64) -> Reply {
    let op = Conditional::IncrBy {
        key: arg(args, 0),
        delta,
    };
    match route::conditional(front, op).await {
        Ok(Response::Counter { value, .. }) => Reply::Integer(value),
        Ok(other) => Reply::err(format!("unexpected reply {other:?}")),
        Err(e) => error_reply(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(words: &[&str]) -> Command {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn concurrent_runs_stop_at_a_repeated_key_or_another_command() {
        let batch = [
            cmd(&["SET", "a", "1"]),
            cmd(&["get", "b"]),
            cmd(&["SET", "c", "1"]),
            cmd(&["GET", "a"]),
            cmd(&["SET", "d", "1"]),
        ];
        assert_eq!(concurrent_run(&batch), 3);
        assert_eq!(concurrent_run(&batch[3..]), 2);
        let options = [cmd(&["SET", "a", "1", "NX"]), cmd(&["GET", "b"])];
        assert_eq!(concurrent_run(&options), 0);
        let other = [cmd(&["INCR", "a"]), cmd(&["GET", "b"])];
        assert_eq!(concurrent_run(&other), 0);
        let many: Vec<Command> = (0..100).map(|i| cmd(&["GET", &i.to_string()])).collect();
        assert_eq!(concurrent_run(&many), MAX_CONCURRENT_RUN);
    }
}

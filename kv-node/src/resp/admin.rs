//! The connection and server commands: `PING`, `ECHO`, `QUIT`, `RESET`,
//! `SELECT`, `AUTH`, `HELLO`, `CLIENT`, `CONFIG GET`; `DBSIZE`/`INFO`
//! (`info`) and `COMMAND` (`table`) are dispatched from here.

use bytes::Bytes;
use kv_router::SyncMode;

use super::commands::lossy;
use super::connection::{Front, Session};
use super::reply::{OK, Reply};
use super::{info, table};

/// Runs a command that is not a key command.
pub(crate) async fn execute(
    front: &Front,
    session: &mut Session,
    name: &str,
    args: &[Bytes],
) -> Reply {
    match name {
        "ping" => args
            .first()
            .map_or(Reply::Status("PONG"), |m| Reply::bulk(m.clone())),
        "echo" => Reply::bulk(args.first().cloned().unwrap_or_default()),
        "quit" => {
            session.closing = true;
            OK
        }
        "reset" => {
            session.name = None;
            session.authenticated = front.shared.options.client_password.is_none();
            Reply::Status("RESET")
        }
        "select" => match args.first().map(|a| a.as_ref()) {
            Some(b"0") => OK,
            _ => Reply::err("DB index is out of range"),
        },
        "auth" => auth(front, session, args),
        "hello" => hello(front, session, args),
        "client" => client(session, args),
        "dbsize" => info::dbsize(front).await,
        "info" => info::info(front, args).await,
        "command" => table::command(args),
        "config" => config(front, args),
        _ => Reply::err(format!("command '{name}' has no handler")),
    }
}

/// Checks a password against the configured one (users other than
/// `default` do not exist).
fn check_password(front: &Front, session: &mut Session, user: &[u8], pass: &[u8]) -> Reply {
    let Some(expected) = &front.shared.options.client_password else {
        return Reply::err(
            "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        );
    };
    let presented = std::str::from_utf8(pass).ok();
    if user == b"default" && crate::auth::password_matches(expected, presented) {
        session.authenticated = true;
        OK
    } else {
        Reply::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    }
}

fn auth(front: &Front, session: &mut Session, args: &[Bytes]) -> Reply {
    match args {
        [pass] => check_password(front, session, b"default", pass),
        [user, pass] => check_password(front, session, user, pass),
        _ => Reply::err("syntax error"),
    }
}

fn hello(front: &Front, session: &mut Session, args: &[Bytes]) -> Reply {
    if let Some(version) = args.first() {
        match version.as_ref() {
            b"2" => {}
            b"3" => return Reply::Error("NOPROTO unsupported protocol version".into()),
            _ => return Reply::err("Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 1;
    while let Some(option) = args.get(i) {
        match (
            option.to_ascii_uppercase().as_slice(),
            args.get(i + 1),
            args.get(i + 2),
        ) {
            (b"AUTH", Some(user), Some(pass)) => {
                if let Reply::Error(e) = check_password(front, session, user, pass) {
                    return Reply::Error(e);
                }
                i += 3;
            }
            (b"SETNAME", Some(name), _) => {
                session.name = Some(lossy(name));
                i += 2;
            }
            _ => return Reply::err(format!("Syntax error in HELLO option '{}'", lossy(option))),
        }
    }
    if !session.authenticated {
        return Reply::Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    Reply::Array(vec![
        Reply::bulk("server"),
        Reply::bulk("redis"),
        Reply::bulk("version"),
        Reply::bulk(REDIS_VERSION),
        Reply::bulk("proto"),
        Reply::Integer(2),
        Reply::bulk("id"),
        Reply::Integer(session.id as i64),
        Reply::bulk("mode"),
        Reply::bulk("standalone"),
        Reply::bulk("role"),
        Reply::bulk("master"),
        Reply::bulk("modules"),
        Reply::Array(Vec::new()),
    ])
}

/// The Redis version kv reports, for clients that check features by it.
pub(crate) const REDIS_VERSION: &str = "7.0.0";

fn client(session: &mut Session, args: &[Bytes]) -> Reply {
    let sub = args
        .first()
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_default();
    match (sub.as_slice(), args.get(1)) {
        (b"SETNAME", Some(name)) if args.len() == 2 => {
            if name.iter().any(|b| *b <= b' ' || *b > b'~') {
                return Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                );
            }
            session.name = (!name.is_empty()).then(|| lossy(name));
            OK
        }
        (b"GETNAME", None) => Reply::Bulk(session.name.clone().map(Bytes::from)),
        (b"ID", None) => Reply::Integer(session.id as i64),
        (b"SETINFO", Some(_)) if args.len() == 3 => OK,
        _ => Reply::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            lossy(args.first().map_or(&[][..], |a| a.as_ref()))
        )),
    }
}

/// `CONFIG GET`: the persistence parameters redis-benchmark asks for,
/// answered from kv's sync policy (`save` is always empty: kv has no
/// snapshots); every other parameter matches nothing (an empty list, as
/// Redis answers for an unknown parameter).
fn config(front: &Front, args: &[Bytes]) -> Reply {
    match args.first().map(|s| s.to_ascii_uppercase()).as_deref() {
        Some(b"GET") if args.len() >= 2 => {
            let sync = front.shared.options.storage.sync;
            let known = [
                ("save", ""),
                (
                    "appendonly",
                    if sync == SyncMode::Never { "no" } else { "yes" },
                ),
                (
                    "appendfsync",
                    match sync {
                        SyncMode::Always => "always",
                        SyncMode::Interval => "everysec",
                        SyncMode::Never => "no",
                    },
                ),
            ];
            let asked = |name: &str| {
                args.iter()
                    .skip(1)
                    .any(|a| a.eq_ignore_ascii_case(name.as_bytes()))
            };
            Reply::strings(
                known
                    .into_iter()
                    .filter(|(k, _)| asked(k))
                    .flat_map(|(k, v)| [k, v]),
            )
        }
        _ => Reply::err("kv supports only CONFIG GET"),
    }
}

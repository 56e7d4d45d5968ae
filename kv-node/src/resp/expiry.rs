//! Key expiry over RESP: `EXPIRE`, `PEXPIRE`, `TTL`, `PTTL`, `PERSIST`,
//! and the expiry options of `SET` (`EX`, `PX`, `EXAT`, `PXAT`,
//! `KEEPTTL`).
//!
//! Replies follow Redis: `TTL`/`PTTL` answer -2 for no key, -1 for a key
//! without expiry, else the time left (`TTL` in seconds, rounded as Redis
//! rounds); `EXPIRE` answers 1 when the key exists (a time of zero or less
//! deletes it), 0 when it does not; `PERSIST` 1 when an expiry was removed.
//! Expiry is decided by the key's leader (see `crate::expiry`); `EXAT` and
//! `PXAT` are turned into a time to live by this node's clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::connection::Front;
use super::reply::Reply;
use super::route::{self, error_reply};
use crate::atomic::{NOT_AN_INTEGER, parse_strict_i64};
use crate::protocol::{KeyTtl, SetTtl};

/// Unit of a time argument.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    Seconds,
    Millis,
}

fn invalid_expire(command: &str) -> Reply {
    Reply::err(format!("invalid expire time in '{command}' command"))
}

/// Milliseconds of a time argument, Redis-strict; `None` if it is not an
/// integer, `Some(Err)` when it overflows.
fn millis(arg: &[u8], unit: Unit, command: &str) -> Result<i64, Reply> {
    let n = parse_strict_i64(arg).ok_or_else(|| Reply::err(NOT_AN_INTEGER))?;
    match unit {
        Unit::Seconds => n.checked_mul(1000).ok_or_else(|| invalid_expire(command)),
        Unit::Millis => Ok(n),
    }
}

/// Unix time now, in milliseconds, by this node's clock.
fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Parses the expiry option at `options[i]` of `SET` (`EX`, `PX`, `EXAT`,
/// `PXAT` take the next argument); `Ok(None)` when it is not one.
pub(crate) fn set_option(options: &[Bytes], i: usize) -> Result<Option<(SetTtl, usize)>, Reply> {
    let Some(option) = options.get(i) else {
        return Ok(None);
    };
    let upper = option.to_ascii_uppercase();
    let (unit, absolute) = match upper.as_slice() {
        b"KEEPTTL" => return Ok(Some((SetTtl::Keep, 1))),
        b"EX" => (Unit::Seconds, false),
        b"PX" => (Unit::Millis, false),
        b"EXAT" => (Unit::Seconds, true),
        b"PXAT" => (Unit::Millis, true),
        _ => return Ok(None),
    };
    let value = options
        .get(i + 1)
        .ok_or_else(|| Reply::err("syntax error"))?;
    let ms = millis(value, unit, "set")?;
    if ms <= 0 {
        return Err(invalid_expire("set"));
    }
    // An absolute time already past leaves the key expiring at once.
    let ms = if absolute { (ms - now_ms()).max(1) } else { ms };
    Ok(Some((
        SetTtl::After(Duration::from_millis(ms.unsigned_abs())),
        2,
    )))
}

/// `EXPIRE key seconds` / `PEXPIRE key milliseconds`.
pub(crate) async fn expire(front: &Front, args: &[Bytes], unit: Unit) -> Reply {
    let command = match unit {
        Unit::Seconds => "expire",
        Unit::Millis => "pexpire",
    };
    if args.len() > 2 {
        return Reply::err(format!(
            "kv does not support {} options (NX, XX, GT, LT)",
            command.to_ascii_uppercase()
        ));
    }
    let key = args.first().cloned().unwrap_or_default();
    let ms = match millis(args.get(1).map_or(&[][..], |a| a.as_ref()), unit, command) {
        Ok(ms) => ms,
        Err(reply) => return reply,
    };
    // Zero or less deletes the key, as in Redis.
    let ttl = Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    match route::expire(front, key, Some(ttl)).await {
        Ok(changed) => Reply::Integer(i64::from(changed)),
        Err(e) => error_reply(&e),
    }
}

/// `PERSIST key`.
pub(crate) async fn persist(front: &Front, args: &[Bytes]) -> Reply {
    let key = args.first().cloned().unwrap_or_default();
    match route::expire(front, key, None).await {
        Ok(changed) => Reply::Integer(i64::from(changed)),
        Err(e) => error_reply(&e),
    }
}

/// `TTL key` / `PTTL key`.
pub(crate) async fn ttl(front: &Front, args: &[Bytes], unit: Unit) -> Reply {
    let key = args.first().cloned().unwrap_or_default();
    match route::ttl(front, key).await {
        Ok(KeyTtl::Missing) => Reply::Integer(-2),
        Ok(KeyTtl::Persistent) => Reply::Integer(-1),
        Ok(KeyTtl::Expires(left)) => {
            let ms = i64::try_from(left.as_millis()).unwrap_or(i64::MAX);
            Reply::Integer(match unit {
                Unit::Millis => ms,
                Unit::Seconds => ms.saturating_add(500) / 1000,
            })
        }
        Err(e) => error_reply(&e),
    }
}

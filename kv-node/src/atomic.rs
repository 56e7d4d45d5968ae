//! Conditional and atomic writes, executed at the partition leader.
//!
//! [`execute`] is the one code path for `SET … NX|XX|GET`, `GETSET` and
//! `INCRBY`: the RESP front door calls it directly when this node leads
//! the key's partition, and the framed `Conditional` request (sent by a
//! node that does not lead it) reaches the same function through
//! dispatch. The read, the decision and the write run under the replica's
//! per-key lock ([`Replica::update`]), so two increments never both read
//! the same value.

use bytes::Bytes;
use kv_codec::Value;
use kv_router::PartitionId;

use crate::error::ErrorCode;
use crate::protocol::{Conditional, Response, SetTtl, SetWhen};
use crate::replica::{Replica, Update};
use crate::replication::insync;
use crate::server::{Shared, error_reply, io_error, writable};
use crate::storage_io;

/// The message (and Redis error text) for a value that is not an integer.
pub const NOT_AN_INTEGER: &str = "value is not an integer or out of range";
/// The message (and Redis error text) for an increment that overflows.
pub const OVERFLOW: &str = "increment or decrement would overflow";

/// Runs `op` on this node, which must lead the key's partition.
pub(crate) async fn execute(shared: &Shared, op: Conditional) -> Response {
    let (replica, p) = match writable(shared, op.key()) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    // Hook (acks): conditional writes follow the cluster's ack mode.
    insync::acked(shared, replica, p, None, || async {
        match storage_io::conditional(replica, p, op).await {
            Ok(response) => Ok((response, replica.position())),
            Err(e) => Err(io_error(Some(p), e)),
        }
    })
    .await
}

/// Reads, decides and writes `op` under the key's lock (blocking: called
/// through [`storage_io::conditional`]).
pub(crate) fn apply(
    r: &Replica,
    p: PartitionId,
    op: Conditional,
) -> Result<Response, kv_storage::Error> {
    match op {
        Conditional::Set {
            key,
            value,
            when,
            get_old,
            ttl,
        } => r.update(key, ttl, |old| decide_set(p, old, value, when, get_old)),
        // Redis's INCR keeps the key's expiry.
        Conditional::IncrBy { key, delta } => {
            r.update(key, SetTtl::Keep, |old| decide_incr(p, old, delta))
        }
    }
}

fn decide_set(
    partition: PartitionId,
    old: Option<Bytes>,
    value: Bytes,
    when: SetWhen,
    get_old: bool,
) -> Update<Response> {
    let write = match when {
        SetWhen::Always => true,
        SetWhen::IfAbsent => old.is_none(),
        SetWhen::IfPresent => old.is_some(),
    };
    let reply = Response::Applied {
        partition,
        written: write,
        old: old.filter(|_| get_old),
    };
    if write {
        Update::Put(value, reply)
    } else {
        Update::Keep(reply)
    }
}

fn decide_incr(partition: PartitionId, old: Option<Bytes>, delta: i64) -> Update<Response> {
    let current = match old.as_deref().map(parse_integer) {
        None => 0,
        Some(Some(n)) => n,
        Some(None) => return Update::Keep(invalid(NOT_AN_INTEGER)),
    };
    let Some(next) = current.checked_add(delta) else {
        return Update::Keep(invalid(OVERFLOW));
    };
    let encoded = Bytes::from(Value::Text(next.to_string()).encode());
    Update::Put(
        encoded,
        Response::Counter {
            partition,
            value: next,
        },
    )
}

fn invalid(message: &str) -> Response {
    error_reply(ErrorCode::InvalidValue, None, message.to_string())
}

/// The integer an encoded value holds: V1 text in Redis's strict form
/// (optional `-`, digits, no leading zeros or spaces, fits an i64).
fn parse_integer(encoded: &[u8]) -> Option<i64> {
    match kv_codec::decode(encoded).ok()? {
        Value::Text(text) => parse_strict_i64(text.as_bytes()),
        _ => None,
    }
}

/// Parses an i64 the way Redis's `string2ll` does: no sign but `-`, no
/// leading zeros, no spaces, at most 20 bytes.
pub(crate) fn parse_strict_i64(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let leading_zero = digits.len() > 1 && digits.first() == Some(&b'0');
    if digits.is_empty() || leading_zero || text == b"-0" || text.len() > 20 {
        return None;
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_integers_as_redis_parses_them() {
        for (text, expected) in [
            ("0", Some(0)),
            ("-7", Some(-7)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("007", None),
            ("-0", None),
            ("+1", None),
            (" 1", None),
            ("1 ", None),
            ("", None),
            ("-", None),
            ("1.5", None),
        ] {
            assert_eq!(parse_strict_i64(text.as_bytes()), expected, "{text:?}");
        }
    }

    #[test]
    fn increments_decide_from_the_old_value() {
        let enc = |s: &str| Bytes::from(Value::from_user_input(s).encode());
        assert!(matches!(
            decide_incr(0, None, 5),
            Update::Put(_, Response::Counter { value: 5, .. })
        ));
        assert!(matches!(
            decide_incr(0, Some(enc("41")), 1),
            Update::Put(_, Response::Counter { value: 42, .. })
        ));
        assert!(matches!(
            decide_incr(0, Some(enc("abc")), 1),
            Update::Keep(Response::Error { .. })
        ));
        assert!(matches!(
            decide_incr(0, Some(enc(&i64::MAX.to_string())), 1),
            Update::Keep(Response::Error { .. })
        ));
    }

    #[test]
    fn set_conditions_decide_whether_to_write() {
        let old = Some(Bytes::from_static(b"\x01\x01a"));
        let v = Bytes::from_static(b"\x01\x01b");
        assert!(matches!(
            decide_set(0, old.clone(), v.clone(), SetWhen::IfAbsent, true),
            Update::Keep(Response::Applied {
                written: false,
                old: Some(_),
                ..
            })
        ));
        assert!(matches!(
            decide_set(0, None, v.clone(), SetWhen::IfPresent, false),
            Update::Keep(Response::Applied {
                written: false,
                old: None,
                ..
            })
        ));
        assert!(matches!(
            decide_set(0, old, v, SetWhen::Always, false),
            Update::Put(
                _,
                Response::Applied {
                    written: true,
                    old: None,
                    ..
                }
            )
        ));
    }
}

//! The keyspace commands: `scan`, `keys`, `mget`, `mset`, `ttl`, `expire`,
//! `persist` (and `put --ttl`): running them against a [`ClusterClient`]
//! and printing their answers.
//!
//! `scan [PREFIX] [--limit N]` pages through every partition with one
//! cluster cursor and lists keys in scan order (a key present for the
//! whole scan is listed at least once). `keys PREFIX` is for small sets:
//! sorted, and capped at [`KEYS_LIMIT`] with a note saying so. Durations
//! are written `500ms`, `10s`, `5m`, `2h`, `1d` (a bare number is
//! seconds).

use std::time::Duration;

use bytes::Bytes;
use kv_codec::Value;
use kv_node::protocol::KeyTtl;
use kv_node::{ClusterClient, ClusterCursor, Read, ScanOptions};
use serde_json::{Value as Json, json};

use crate::command::Reply;
use crate::error::CliError;
use crate::output::{Outcome, Rendered, escape, value_text};

/// Most keys `keys PREFIX` lists.
pub const KEYS_LIMIT: usize = 1000;

/// Keys examined per scan page.
const PAGE_KEYS: u32 = 500;

/// Keys listed by `scan` or `keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyList {
    /// The keys, in scan order (`scan`) or sorted (`keys`).
    pub keys: Vec<Bytes>,
    /// The limit that cut the listing short, if one did.
    pub cut_at: Option<usize>,
    /// True when a follower answered for some partition.
    pub stale: bool,
}

/// Parses a duration: a number and a unit `ms`, `s`, `m`, `h` or `d` (a
/// bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (write 500ms, 10s, 5m, 2h or 1d)"))?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("'{text}' is too long a duration"))
}

/// [`parse_duration`], refusing zero (a key cannot be written already
/// expired).
pub fn parse_ttl(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err(format!("'{text}': a time to live must be positive")),
        d => Ok(d),
    }
}

/// Lists keys starting with `prefix` through the whole cluster, stopping
/// after `limit` keys (then `cut_at` is set if more remained).
pub async fn scan(
    client: &ClusterClient,
    prefix: &str,
    limit: Option<usize>,
) -> Result<KeyList, CliError> {
    let options = ScanOptions {
        count: PAGE_KEYS,
        prefix: Bytes::copy_from_slice(prefix.as_bytes()),
        values: false,
    };
    let mut list = KeyList {
        keys: Vec::new(),
        cut_at: None,
        stale: false,
    };
    let mut cursor = ClusterCursor::START;
    loop {
        let page = client.scan(cursor, &options).await?;
        list.stale |= page.stale;
        list.keys.extend(page.entries.into_iter().map(|e| e.key));
        if let Some(limit) = limit.filter(|&l| list.keys.len() > l) {
            list.keys.truncate(limit);
            list.cut_at = Some(limit);
            return Ok(list);
        }
        match page.next {
            Some(next) => cursor = next,
            None => return Ok(list),
        }
    }
}

/// `keys PREFIX`: at most [`KEYS_LIMIT`], sorted.
pub async fn keys(client: &ClusterClient, prefix: &str) -> Result<KeyList, CliError> {
    let mut list = scan(client, prefix, Some(KEYS_LIMIT)).await?;
    list.keys.sort();
    Ok(list)
}

/// `mget k1 k2 …`: each key with its read.
pub async fn mget(
    client: &ClusterClient,
    keys: &[String],
) -> Result<Vec<Read<Option<Value>>>, CliError> {
    let keys: Vec<&[u8]> = keys.iter().map(String::as_bytes).collect();
    Ok(client.mget(&keys).await?)
}

/// `mset k1 v1 k2 v2 …`: values typed as `put` types them.
pub async fn mset(client: &ClusterClient, pairs: &[String]) -> Result<(), CliError> {
    if !pairs.len().is_multiple_of(2) || pairs.is_empty() {
        return Err(CliError::Usage(
            "mset takes pairs: mset KEY VALUE [KEY VALUE ...]".into(),
        ));
    }
    let values: Vec<(&[u8], Value)> = pairs
        .chunks_exact(2)
        .filter_map(|c| match c {
            [k, v] => Some((k.as_bytes(), Value::from_user_input(v))),
            _ => None,
        })
        .collect();
    if values.iter().any(|(k, _)| k.is_empty()) {
        return Err(CliError::Usage("a key must not be empty".into()));
    }
    let refs: Vec<(&[u8], &Value)> = values.iter().map(|(k, v)| (*k, v)).collect();
    client.mset(&refs).await?;
    Ok(())
}

/// The lines of a key listing: each key quoted as redis-cli quotes when it
/// needs it, then a note when a limit cut it short.
pub fn render_keys(list: &KeyList, limit_hint: &str) -> Rendered {
    let lines = list.keys.iter().map(|k| key_text(k)).collect();
    let mut notes = Vec::new();
    if list.keys.is_empty() {
        notes.push("(empty)".to_string());
    }
    if let Some(n) = list.cut_at {
        notes.push(format!("(stopped at {n} keys; {limit_hint})"));
    }
    if list.stale {
        notes.push(
            "(possibly stale: some partitions answered by a follower, their leader unavailable)"
                .into(),
        );
    }
    Rendered {
        lines,
        notes,
        outcome: Outcome::Ok,
    }
}

/// A key as listed: as is when it is plain printable UTF-8, else quoted
/// with escapes.
fn key_text(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '"') => s.into(),
        _ => escape(key),
    }
}

/// `mget`: one line per key, its value or `(nil)`.
pub fn render_values(reads: &[Read<Option<Value>>], raw: bool) -> Rendered {
    let lines = reads
        .iter()
        .map(|r| {
            r.value
                .as_ref()
                .map_or_else(|| "(nil)".into(), |v| value_text(v, raw))
        })
        .collect();
    let mut notes = Vec::new();
    if reads.iter().any(|r| r.stale) {
        notes.push(
            "(possibly stale: some keys answered by a follower, their leader unavailable)".into(),
        );
    }
    Rendered {
        lines,
        notes,
        outcome: Outcome::Ok,
    }
}

/// A remaining time as `ttl` prints it: seconds with milliseconds.
pub fn ttl_text(remaining: Duration) -> String {
    format!("{}.{:03}s", remaining.as_secs(), remaining.subsec_millis())
}

/// `ttl`: the remaining time, `persistent`, or `(nil)` for no key.
pub fn render_ttl(ttl: &Read<KeyTtl>) -> Rendered {
    let (lines, notes, outcome) = match ttl.value {
        KeyTtl::Expires(d) => (vec![ttl_text(d)], vec![], Outcome::Ok),
        KeyTtl::Persistent => (vec!["persistent".to_string()], vec![], Outcome::Ok),
        KeyTtl::Missing => (vec![], vec!["(nil)".to_string()], Outcome::NotFound),
    };
    Rendered {
        lines,
        notes,
        outcome,
    }
}

/// The JSON answer of a keyspace reply, `None` for other replies.
pub fn json_answer(key: &str, keys: &[String], reply: &Reply) -> Option<Json> {
    let answer = match reply {
        Reply::Keys(list) => {
            let names: Vec<String> = list
                .keys
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            json!({"keys": names, "count": names.len(), "truncated": list.cut_at.is_some(), "stale": list.stale})
        }
        Reply::Values(reads) => {
            let values: Vec<Json> = keys
                .iter()
                .zip(reads)
                .map(|(k, r)| json!({"key": k, "found": r.value.is_some(), "value": r.value.as_ref().map_or(Json::Null, crate::json::value), "stale": r.stale}))
                .collect();
            json!({ "values": values })
        }
        Reply::Ttl(read) => {
            let ms = match read.value {
                KeyTtl::Expires(d) => Json::from(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                _ => Json::Null,
            };
            let found = read.value != KeyTtl::Missing;
            json!({"key": key, "found": found, "ttl_ms": ms, "persistent": read.value == KeyTtl::Persistent})
        }
        Reply::ExpiryChanged(changed) => json!({"key": key, "changed": changed}),
        _ => return None,
    };
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_people_write() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("10", 10_000),
            ("5m", 300_000),
            ("2h", 7_200_000),
            ("1d", 86_400_000),
            ("0s", 0),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "10x", "-5s", "1.5s", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(ttl_text(Duration::from_millis(9_870)), "9.870s");
        assert!(parse_ttl("0s").is_err() && parse_ttl("1ms").is_ok());
    }

    #[test]
    fn odd_keys_are_listed_quoted() {
        assert_eq!(key_text(b"user:1"), "user:1");
        assert_eq!(key_text(b"a b"), "a b");
        assert_eq!(key_text(b"tab\there"), "\"tab\\there\"");
        assert_eq!(key_text(b"\xff"), "\"\\xff\"");
    }
}

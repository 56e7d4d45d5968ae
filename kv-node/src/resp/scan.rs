//! `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]` and `KEYS pattern`.
//!
//! Both walk the whole cluster with the node's [`crate::ClusterClient`]
//! scan ([`crate::ClusterCursor`]: one `u64` cursor across partitions, the
//! guarantee of Redis's `SCAN`: a key present for the whole scan is
//! returned at least once). `MATCH` is filtered here, on the node, with
//! Redis's glob rules ([`glob_match`]); the pattern's literal prefix (up to
//! its first `*`, `?`, `[` or `\`) goes to the partitions as a prefix scan,
//! so `MATCH user:*` examines only `user:` keys. As in Redis, `COUNT` is
//! how many keys to examine, so a page may hold fewer (even none) before
//! the cursor comes back as 0. `TYPE string` is accepted (every kv value
//! reads as a string); another type gives an empty page.

use bytes::Bytes;

use super::connection::Front;
use super::reply::Reply;
use super::route::error_reply;
use crate::error::Error;
use crate::{ClusterCursor, ScanOptions};

/// Keys examined per page when `SCAN` has no `COUNT` (Redis's default).
const DEFAULT_COUNT: u32 = 10;

/// Keys examined per page by `KEYS`.
const KEYS_PAGE: u32 = 1000;

/// `SCAN`'s options, parsed.
struct ScanArgs {
    cursor: ClusterCursor,
    pattern: Option<Bytes>,
    count: u32,
    other_type: bool,
}

fn parse(args: &[Bytes]) -> Result<ScanArgs, Reply> {
    let cursor = std::str::from_utf8(args.first().map_or(&[][..], |a| a.as_ref()))
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::err("invalid cursor"))?;
    let mut parsed = ScanArgs {
        cursor: ClusterCursor::from_u64(cursor),
        pattern: None,
        count: DEFAULT_COUNT,
        other_type: false,
    };
    let mut options = args.get(1..).unwrap_or_default().iter();
    while let Some(option) = options.next() {
        let value = options.next().ok_or_else(|| Reply::err("syntax error"))?;
        match option.to_ascii_uppercase().as_slice() {
            b"MATCH" => parsed.pattern = Some(value.clone()),
            b"COUNT" => parsed.count = parse_count(value)?,
            b"TYPE" => parsed.other_type = !value.eq_ignore_ascii_case(b"string"),
            _ => return Err(Reply::err("syntax error")),
        }
    }
    Ok(parsed)
}

fn parse_count(value: &[u8]) -> Result<u32, Reply> {
    let n = std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| Reply::err("value is not an integer or out of range"))?;
    if n < 1 {
        return Err(Reply::err("syntax error"));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// The literal prefix of a glob pattern: everything before its first
/// special character.
fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let end = pattern
        .iter()
        .position(|b| matches!(b, b'*' | b'?' | b'[' | b'\\'))
        .unwrap_or(pattern.len());
    pattern.get(..end).unwrap_or_default()
}

/// Whether every key with the pattern's literal prefix matches (the
/// pattern is that prefix and one trailing `*`).
fn is_prefix_glob(pattern: &[u8]) -> bool {
    let prefix = literal_prefix(pattern);
    pattern.len() == prefix.len() + 1 && pattern.last() == Some(&b'*')
}

/// Scan options for `pattern`, and whether keys still need the glob.
fn scan_options(pattern: Option<&Bytes>, count: u32) -> (ScanOptions, bool) {
    let pattern = pattern.map_or(&b"*"[..], |p| p.as_ref());
    let options = ScanOptions {
        count,
        prefix: Bytes::copy_from_slice(literal_prefix(pattern)),
        values: false,
    };
    (options, !is_prefix_glob(pattern))
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`.
pub(crate) async fn scan(front: &Front, args: &[Bytes]) -> Reply {
    let parsed = match parse(args) {
        Ok(p) => p,
        Err(reply) => return reply,
    };
    let (options, glob) = scan_options(parsed.pattern.as_ref(), parsed.count);
    let page = match front.cluster.scan(parsed.cursor, &options).await {
        Ok(page) => page,
        Err(e) => return scan_error(&e),
    };
    let pattern = parsed.pattern.unwrap_or_default();
    let keys = page
        .entries
        .into_iter()
        .filter(|e| !parsed.other_type && (!glob || glob_match(&pattern, &e.key)))
        .map(|e| Reply::Bulk(Some(e.key)))
        .collect();
    let next = page.next.map_or(0, ClusterCursor::to_u64);
    Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(keys)])
}

/// `KEYS pattern`: every matching key (a full scan, as costly as Redis's
/// `KEYS`).
pub(crate) async fn keys(front: &Front, args: &[Bytes]) -> Reply {
    let pattern = args.first().cloned().unwrap_or_default();
    let (options, glob) = scan_options(Some(&pattern), KEYS_PAGE);
    let mut cursor = ClusterCursor::START;
    let mut found = Vec::new();
    loop {
        let page = match front.cluster.scan(cursor, &options).await {
            Ok(page) => page,
            Err(e) => return scan_error(&e),
        };
        let matching = page
            .entries
            .into_iter()
            .filter(|e| !glob || glob_match(&pattern, &e.key));
        found.extend(matching.map(|e| Reply::Bulk(Some(e.key))));
        match page.next {
            Some(next) => cursor = next,
            None => return Reply::Array(found),
        }
    }
}

fn scan_error(e: &Error) -> Reply {
    match e {
        Error::InvalidCursor { .. } => Reply::err("invalid cursor"),
        e => error_reply(e),
    }
}

/// Redis's glob match (`stringmatchlen`): `*` any run, `?` any byte,
/// `[abc]`, `[^a]`, `[a-z]` classes, `\x` a literal `x`.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Backtracking over the last `*` only: linear in practice, and never
    // exponential (each `*` restarts from one saved point).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
                continue;
            }
            Some(_) => {
                if let Some(after) = match_one(pattern, p, text.get(t).copied()) {
                    p = after;
                    t += 1;
                    continue;
                }
            }
            None => {}
        }
        match star {
            Some((sp, st)) => {
                star = Some((sp, st + 1));
                p = sp + 1;
                t = st + 1;
            }
            None => return false,
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|&b| b == b'*')
}

/// Matches one pattern element at `p` (not `*`) against byte `c`; the
/// pattern position after the element when it matches.
fn match_one(pattern: &[u8], p: usize, c: Option<u8>) -> Option<usize> {
    let c = c?;
    match pattern.get(p)? {
        b'?' => Some(p + 1),
        b'\\' if p + 1 < pattern.len() => (pattern.get(p + 1) == Some(&c)).then_some(p + 2),
        b'[' => match_class(pattern, p + 1, c),
        &literal => (literal == c).then_some(p + 1),
    }
}

/// Matches a `[...]` class starting after its `[` at `p`.
fn match_class(pattern: &[u8], mut p: usize, c: u8) -> Option<usize> {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        match pattern.get(p) {
            // An unclosed class ends at the pattern's end, as in Redis.
            None => break,
            Some(b']') => {
                p += 1;
                break;
            }
            Some(b'\\') if p + 1 < pattern.len() => {
                hit |= pattern.get(p + 1) == Some(&c);
                p += 2;
            }
            Some(&lo) if pattern.get(p + 1) == Some(&b'-') && p + 2 < pattern.len() => {
                let hi = pattern.get(p + 2).copied().unwrap_or(lo);
                let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                hit |= (lo..=hi).contains(&c);
                p += 3;
            }
            Some(&b) => {
                hit |= b == c;
                p += 1;
            }
        }
    }
    (hit != negate).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_follows_redis_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "anything", true),
            ("user:*", "user:1", true),
            ("user:*", "use", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h*llo", "heeeello", true),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[b-a]llo", "hallo", true),
            ("h[a-b]llo", "hcllo", false),
            ("h\\*llo", "h*llo", true),
            ("h\\*llo", "hello", false),
            ("*a*b*c*", "xxaxxbxxcxx", true),
            ("*a*b*c*", "xxaxxcxxbxx", false),
            ("a*", "b", false),
            ("", "", true),
            ("", "a", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                *expected,
                "{pattern:?} vs {text:?}"
            );
        }
    }

    #[test]
    fn a_pattern_scans_by_its_literal_prefix() {
        assert_eq!(literal_prefix(b"user:*"), b"user:");
        assert_eq!(literal_prefix(b"u?er*"), b"u");
        assert_eq!(literal_prefix(b"*x"), b"");
        assert_eq!(literal_prefix(b"plain"), b"plain");
        assert!(is_prefix_glob(b"user:*"));
        assert!(is_prefix_glob(b"*"));
        assert!(!is_prefix_glob(b"user:*:name"));
        assert!(!is_prefix_glob(b"plain"));
        let (options, glob) = scan_options(Some(&Bytes::from_static(b"user:*")), 5);
        assert_eq!(
            (options.prefix.as_ref(), options.count, glob),
            (&b"user:"[..], 5, false)
        );
        let (options, glob) = scan_options(None, 10);
        assert_eq!((options.prefix.as_ref(), glob), (&b""[..], false));
        let (_, glob) = scan_options(Some(&Bytes::from_static(b"plain")), 10);
        assert!(glob, "an exact pattern still matches only the whole key");
    }
}

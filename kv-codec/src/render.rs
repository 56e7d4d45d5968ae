//! Text for display: the form `get` shows.
//!
//! JSON is written the way the original Python system wrote it
//! (`json.dumps` defaults, except that non-ASCII is kept as UTF-8 rather than
//! `\u` escaped): `", "` between items, `": "` after keys, no other
//! whitespace, object members in stored order. Strings escape only `"`, `\`
//! and control characters (`\b \f \n \r \t`, others as `\u00XX` in lowercase
//! hex); everything else, including non-ASCII, is written as is. Numbers use
//! `serde_json`'s formatting: integers as digits, floats in the shortest form
//! that parses back to the same f64 (`1.0`, `0.1`, `1e+20`, `2.5e-7`).
//!
//! The V2 rendering is part of the classification contract: an input is V2
//! only if rendering the parsed event reproduces it exactly.
//!
//! Everything writes to any `fmt::Write`, so `Value`'s `Display` streams into
//! a formatter and classification compares against the input without
//! allocating ([`MatchesText`]). The writers never fail on their own; an
//! error only passes on one from the sink.

use std::fmt::{self, Write};

use serde_json::Value as Json;

use crate::timestamp::Timestamp;

/// Writes V4 bytes as `redis-cli` shows a binary string (its `sdscatrepr`
/// form): `"\xff\x00A\n"`.
pub(crate) fn bytes<W: Write + ?Sized>(bytes: &[u8], out: &mut W) -> fmt::Result {
    out.write_char('"')?;
    for &b in bytes {
        match b {
            b'\\' => out.write_str("\\\\")?,
            b'"' => out.write_str("\\\"")?,
            b'\n' => out.write_str("\\n")?,
            b'\r' => out.write_str("\\r")?,
            b'\t' => out.write_str("\\t")?,
            0x07 => out.write_str("\\a")?,
            0x08 => out.write_str("\\b")?,
            b' '..=b'~' => out.write_char(char::from(b))?,
            other => write!(out, "\\x{other:02x}")?,
        }
    }
    out.write_char('"')
}

/// Writes the display text of a V3 JSON value.
pub(crate) fn json<W: Write + ?Sized>(value: &Json, out: &mut W) -> fmt::Result {
    match value {
        Json::Null => out.write_str("null"),
        Json::Bool(flag) => out.write_str(if *flag { "true" } else { "false" }),
        Json::Number(number) => write!(out, "{number}"),
        Json::String(text) => string(text, out),
        Json::Array(items) => {
            out.write_char('[')?;
            for (index, item) in items.iter().enumerate() {
                separator(index, out)?;
                json(item, out)?;
            }
            out.write_char(']')
        }
        Json::Object(members) => {
            out.write_char('{')?;
            for (index, (key, item)) in members.iter().enumerate() {
                separator(index, out)?;
                member(key, out)?;
                json(item, out)?;
            }
            out.write_char('}')
        }
    }
}

/// Writes the display text of a V2 event.
pub(crate) fn event<W: Write + ?Sized>(
    data: &str,
    timestamp: Timestamp,
    out: &mut W,
) -> fmt::Result {
    out.write_char('{')?;
    member("data", out)?;
    string(data, out)?;
    separator(1, out)?;
    member("timestamp", out)?;
    out.write_char('"')?;
    out.write_str(timestamp.canonical().as_str())?;
    out.write_str("\"}")
}

fn separator<W: Write + ?Sized>(index: usize, out: &mut W) -> fmt::Result {
    if index > 0 {
        out.write_str(", ")?;
    }
    Ok(())
}

fn member<W: Write + ?Sized>(key: &str, out: &mut W) -> fmt::Result {
    string(key, out)?;
    out.write_str(": ")
}

/// Writes `text` as a quoted JSON string, copying unescaped runs whole.
fn string<W: Write + ?Sized>(text: &str, out: &mut W) -> fmt::Result {
    out.write_char('"')?;
    let mut run_start = 0;
    // Every byte that needs an escape is ASCII, so the run boundaries below
    // are char boundaries.
    for (index, byte) in text.bytes().enumerate() {
        if byte >= b' ' && byte != b'"' && byte != b'\\' {
            continue;
        }
        out.write_str(text.get(run_start..index).unwrap_or_default())?;
        escape(byte, out)?;
        run_start = index + 1;
    }
    out.write_str(text.get(run_start..).unwrap_or_default())?;
    out.write_char('"')
}

fn escape<W: Write + ?Sized>(byte: u8, out: &mut W) -> fmt::Result {
    match byte {
        b'"' => out.write_str("\\\""),
        b'\\' => out.write_str("\\\\"),
        b'\n' => out.write_str("\\n"),
        b'\r' => out.write_str("\\r"),
        b'\t' => out.write_str("\\t"),
        0x08 => out.write_str("\\b"),
        0x0c => out.write_str("\\f"),
        control => write!(out, "\\u{control:04x}"),
    }
}

/// A `fmt::Write` sink that checks the text written equals `expected`,
/// stopping at the first difference. Lets classification compare a rendering
/// with the input without building it.
pub(crate) struct MatchesText<'a> {
    rest: &'a str,
}

impl<'a> MatchesText<'a> {
    /// Runs `write` against `expected`; true if it wrote exactly that text.
    pub(crate) fn check(expected: &'a str, write: impl FnOnce(&mut Self) -> fmt::Result) -> bool {
        let mut sink = MatchesText { rest: expected };
        write(&mut sink).is_ok() && sink.rest.is_empty()
    }
}

impl Write for MatchesText<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.rest = self.rest.strip_prefix(text).ok_or(fmt::Error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(value: Json) -> String {
        let mut out = String::new();
        json(&value, &mut out).unwrap();
        out
    }

    #[test]
    fn python_separators_and_utf8_kept() {
        let value = serde_json::json!({"jurusan": "Sistem Informasi", "angkatan": 2022, "kota": "Bandung – Jawa", "l": [1, [], {}]});
        assert_eq!(
            shown(value),
            r#"{"jurusan": "Sistem Informasi", "angkatan": 2022, "kota": "Bandung – Jawa", "l": [1, [], {}]}"#
        );
    }

    #[test]
    fn escapes_match_serde_json() {
        let text: String = (0u8..0x80)
            .map(char::from)
            .chain("é€😀\u{2028}".chars())
            .collect();
        let mut ours = String::new();
        string(&text, &mut ours).unwrap();
        assert_eq!(ours, serde_json::to_string(&text).unwrap());
    }

    #[test]
    fn numbers_keep_their_kind() {
        let value: Json =
            serde_json::from_str("[0, -1, 1.0, 0.1, 1e20, -0.0, 2.5e-7, 18446744073709551615]")
                .unwrap();
        assert_eq!(
            shown(value),
            "[0, -1, 1.0, 0.1, 1e+20, -0.0, 2.5e-7, 18446744073709551615]"
        );
    }
}

#[cfg(test)]
mod matches_tests {
    use super::*;

    #[test]
    fn matches_exact_text_only() {
        let write = |out: &mut MatchesText<'_>| string("a\"b", out);
        assert!(MatchesText::check("\"a\\\"b\"", write));
        assert!(!MatchesText::check("\"a\\\"b\" ", write));
        assert!(!MatchesText::check("\"a\\\"", write));
        assert!(!MatchesText::check("", write));
    }
}

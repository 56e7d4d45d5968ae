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

use serde_json::Value as Json;

use crate::timestamp::Timestamp;

/// Appends the display text of a V3 JSON value.
pub(crate) fn json(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Json::Number(number) => out.push_str(&number.to_string()),
        Json::String(text) => string(text, out),
        Json::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                separator(index, out);
                json(item, out);
            }
            out.push(']');
        }
        Json::Object(members) => {
            out.push('{');
            for (index, (key, item)) in members.iter().enumerate() {
                separator(index, out);
                member(key, out);
                json(item, out);
            }
            out.push('}');
        }
    }
}

/// Appends the display text of a V2 event.
pub(crate) fn event(data: &str, timestamp: Timestamp, out: &mut String) {
    out.push('{');
    member("data", out);
    string(data, out);
    separator(1, out);
    member("timestamp", out);
    out.push('"');
    out.push_str(&timestamp.to_string());
    out.push_str("\"}");
}

fn separator(index: usize, out: &mut String) {
    if index > 0 {
        out.push_str(", ");
    }
}

fn member(key: &str, out: &mut String) {
    string(key, out);
    out.push_str(": ");
}

/// Appends `text` as a quoted JSON string.
fn string(text: &str, out: &mut String) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            control if control < ' ' => control_escape(control, out),
            other => out.push(other),
        }
    }
    out.push('"');
}

fn control_escape(control: char, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let code = control as usize;
    out.push_str("\\u00");
    out.push(char::from(HEX[(code >> 4) & 0xf]));
    out.push(char::from(HEX[code & 0xf]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(value: Json) -> String {
        let mut out = String::new();
        json(&value, &mut out);
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
        string(&text, &mut ours);
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

//! Classification table: which schema each input lands in, and that the
//! stored value gives the input back.

use kv_codec::{Schema, Value, decode, encode};
use serde_json::Value as Json;

const TS: &str = "2025-06-22 10:30:00";

fn event_text(data: &str, timestamp: &str) -> String {
    format!(r#"{{"data": "{data}", "timestamp": "{timestamp}"}}"#)
}

fn nested(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

fn table() -> Vec<(&'static str, String, Schema)> {
    let s = |text: &str| text.to_owned();
    vec![
        // The seed's three examples.
        ("seed text", s("Rafi Widya"), Schema::V1),
        ("seed event", event_text("user:101 login", TS), Schema::V2),
        (
            "seed json",
            s(r#"{"jurusan": "Sistem Informasi", "angkatan": 2022}"#),
            Schema::V3,
        ),
        // V2 only for the exact event shape.
        (
            "fractional timestamp",
            event_text("x", "2025-06-22 10:30:00.5"),
            Schema::V2,
        ),
        (
            "microsecond timestamp",
            event_text("x", "2025-06-22 10:30:00.000001"),
            Schema::V2,
        ),
        ("empty data", event_text("", TS), Schema::V2),
        (
            "non-ascii data",
            event_text("pembayaran ✓ é", TS),
            Schema::V2,
        ),
        (
            "escaped data",
            event_text(r#"a\"b\\c\n\t\u0001"#, TS),
            Schema::V2,
        ),
        (
            "year 0000",
            event_text("x", "0000-01-01 00:00:00"),
            Schema::V2,
        ),
        (
            "year 9999",
            event_text("x", "9999-12-31 23:59:59.999999"),
            Schema::V2,
        ),
        (
            "extra field",
            s(r#"{"data": "x", "timestamp": "2025-06-22 10:30:00", "extra": 1}"#),
            Schema::V3,
        ),
        ("only data", s(r#"{"data": "x"}"#), Schema::V3),
        (
            "ISO T separator",
            event_text("x", "2025-06-22T10:30:00"),
            Schema::V3,
        ),
        (
            "month 13",
            event_text("x", "2025-13-01 00:00:00"),
            Schema::V3,
        ),
        (
            "Feb 29 of a non-leap year",
            event_text("x", "2025-02-29 00:00:00"),
            Schema::V3,
        ),
        (
            "trailing fraction zero",
            event_text("x", "2025-06-22 10:30:00.50"),
            Schema::V3,
        ),
        (
            "seven fraction digits",
            event_text("x", "2025-06-22 10:30:00.1234567"),
            Schema::V3,
        ),
        (
            "time zone suffix",
            event_text("x", "2025-06-22 10:30:00Z"),
            Schema::V3,
        ),
        (
            "compact spacing",
            s(r#"{"data":"x","timestamp":"2025-06-22 10:30:00"}"#),
            Schema::V3,
        ),
        (
            "keys in other order",
            s(r#"{"timestamp": "2025-06-22 10:30:00", "data": "x"}"#),
            Schema::V3,
        ),
        (
            "numeric timestamp",
            s(r#"{"data": "x", "timestamp": 1750588200}"#),
            Schema::V3,
        ),
        (
            "non-string data",
            s(r#"{"data": 1, "timestamp": "2025-06-22 10:30:00"}"#),
            Schema::V3,
        ),
        (
            "unicode escape in data",
            event_text(r"\u0041", TS),
            Schema::V3,
        ),
        ("escaped slash in data", event_text(r"a\/b", TS), Schema::V3),
        (
            "duplicate key",
            s(r#"{"data": "x", "data": "y", "timestamp": "2025-06-22 10:30:00"}"#),
            Schema::V3,
        ),
        (
            "leading space",
            format!(" {}", event_text("x", TS)),
            Schema::V3,
        ),
        (
            "trailing newline",
            format!("{}\n", event_text("x", TS)),
            Schema::V3,
        ),
        // Other JSON containers are V3.
        ("array", s("[1, 2, 3]"), Schema::V3),
        (
            "array of events",
            format!("[{}]", event_text("x", TS)),
            Schema::V3,
        ),
        ("empty array", s("[]"), Schema::V3),
        ("empty object", s("{}"), Schema::V3),
        (
            "compact object",
            s(r#"{"a":1,"b":[true,null]}"#),
            Schema::V3,
        ),
        ("pretty object", s("{\n  \"a\": 1.0\n}"), Schema::V3),
        ("huge integer", s("[18446744073709551616]"), Schema::V3),
        ("127 levels", nested(127), Schema::V3),
        // Everything else is text, kept as is.
        ("json-looking invalid", s(r#"{"a": 1"#), Schema::V1),
        ("trailing garbage", s(r#"{"a": 1}}"#), Schema::V1),
        ("single quotes", s("{'a': 1}"), Schema::V1),
        ("json string", s(r#""x""#), Schema::V1),
        ("json number", s("42"), Schema::V1),
        ("json float", s("1.5"), Schema::V1),
        ("json null", s("null"), Schema::V1),
        ("json true", s("true"), Schema::V1),
        ("empty", s(""), Schema::V1),
        ("spaces", s("   "), Schema::V1),
        ("number out of f64 range", s("[1e400]"), Schema::V1),
        (
            "128 levels (beyond serde_json's limit)",
            nested(128),
            Schema::V1,
        ),
        ("control characters", s("a\u{0}b\tc\n"), Schema::V1),
        ("brace text", s("{not json}"), Schema::V1),
    ]
}

#[test]
fn inputs_land_in_the_expected_schema() {
    for (name, input, schema) in table() {
        let value = Value::from_user_input(&input);
        assert_eq!(value.schema(), schema, "{name}: {input:?}");
    }
}

#[test]
fn stored_values_give_the_input_back() {
    for (name, input, _) in table() {
        let value = Value::from_user_input(&input);
        let back = decode(&encode(&value)).unwrap();
        assert_eq!(back, value, "{name}: decode(encode(v))");
        let shown = back.render();
        match back.schema() {
            Schema::V1 | Schema::V2 => assert_eq!(shown, input, "{name}"),
            Schema::V3 => {
                let expected: Json = serde_json::from_str(&input).unwrap();
                let actual: Json = serde_json::from_str(&shown).unwrap();
                assert_eq!(actual, expected, "{name}: {shown}");
            }
            Schema::V4 => panic!("{name}: text classified as V4"),
        }
    }
}

#[test]
fn v3_renders_in_python_style() {
    let cases = [
        (
            r#"{"a":1,"b":[true,null]}"#,
            r#"{"a": 1, "b": [true, null]}"#,
        ),
        ("{\n  \"a\": 1.0\n}", r#"{"a": 1.0}"#),
        (r#"{"b": 1, "a": 2}"#, r#"{"b": 1, "a": 2}"#),
        (r#"["\u00e9", "\u0041"]"#, r#"["é", "A"]"#),
        ("[1E2, -0, 1e-400]", "[100.0, -0.0, 0.0]"),
        ("[18446744073709551616]", "[1.8446744073709552e+19]"),
        (r#"{"a": 1, "a": 2, "b": 3}"#, r#"{"a": 2, "b": 3}"#),
    ];
    for (input, shown) in cases {
        assert_eq!(Value::from_user_input(input).render(), shown, "{input}");
    }
}

#[test]
fn seed_event_fields() {
    let value = Value::from_user_input(&event_text("user:101 login", TS));
    let Value::Event { data, timestamp } = value else {
        panic!("not an event: {value:?}");
    };
    assert_eq!(data, "user:101 login");
    assert_eq!(timestamp.micros(), 1_750_588_200_000_000);
    assert_eq!(timestamp.to_string(), TS);
}

#[test]
fn bytes_that_are_not_utf8_are_v4_and_text_bytes_are_not() {
    let cases: [(&[u8], Schema); 5] = [
        (b"Rafi Widya", Schema::V1),
        (b"{\"a\": 1}", Schema::V3),
        (b"\xff", Schema::V4),
        (b"caf\xc3", Schema::V4),
        (b"", Schema::V1),
    ];
    for (bytes, schema) in cases {
        let value = Value::from_bytes(bytes);
        assert_eq!(value.schema(), schema, "{bytes:?}");
    }
    assert_eq!(
        Value::from_bytes(b"a\x00\xff\"\\\n").render(),
        r#""a\x00\xff\"\\\n""#
    );
}

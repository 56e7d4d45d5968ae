//! Byte-exact encoder table: each case is a name, a value and the expected
//! hex, so any change to a layout shows up as a readable diff.

mod common;

use common::{hex, unhex};
use kv_codec::{Timestamp, Value, decode, encode};
use serde_json::{Value as Json, json};

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn event(data: &str, micros: i64) -> Value {
    let timestamp = Timestamp::from_micros(micros).unwrap();
    Value::Event {
        data: data.into(),
        timestamp,
    }
}

fn doc(json: Json) -> Value {
    Value::Json(json)
}

fn cases() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        // V1: 01, length, UTF-8.
        ("v1 empty", text(""), "01 00"),
        (
            "v1 seed",
            text("Rafi Widya"),
            "01 0a 52 61 66 69 20 57 69 64 79 61",
        ),
        ("v1 non-ascii", text("é"), "01 02 c3 a9"),
        ("v1 json scalar", text("42"), "01 02 34 32"),
        // V4: 04, length, bytes as given.
        ("v4 empty", Value::Bytes(Vec::new()), "04 00"),
        (
            "v4 binary",
            Value::Bytes(vec![0xff, 0x00, 0x41]),
            "04 03 ff 00 41",
        ),
        // V2: 02, data length, data, zigzag varint microseconds.
        ("v2 epoch", event("", 0), "02 00 00"),
        ("v2 one µs before epoch", event("", -1), "02 00 01"),
        ("v2 one µs after epoch", event("", 1), "02 00 02"),
        ("v2 one second", event("x", 1_000_000), "02 01 78 80 89 7a"),
        (
            "v2 seed",
            event("user:101 login", 1_750_588_200_000_000),
            "02 0e 75 73 65 72 3a 31 30 31 20 6c 6f 67 69 6e 80 e8 f8 bc d2 89 9c 06",
        ),
        (
            "v2 min",
            Value::Event {
                data: String::new(),
                timestamp: Timestamp::MIN,
            },
            "02 00 ff ff b7 91 b5 b0 ee dc 01",
        ),
        (
            "v2 max",
            Value::Event {
                data: String::new(),
                timestamp: Timestamp::MAX,
            },
            "02 00 fe ff 9a c7 99 83 a2 84 07",
        ),
        // V3: 03, then tagged nodes.
        ("v3 null", doc(json!(null)), "03 00"),
        ("v3 false", doc(json!(false)), "03 01"),
        ("v3 true", doc(json!(true)), "03 02"),
        ("v3 zero", doc(json!(0)), "03 03 00"),
        ("v3 127", doc(json!(127)), "03 03 7f"),
        ("v3 128", doc(json!(128)), "03 03 80 01"),
        ("v3 2022", doc(json!(2022)), "03 03 e6 0f"),
        (
            "v3 u64 max",
            doc(json!(u64::MAX)),
            "03 03 ff ff ff ff ff ff ff ff ff 01",
        ),
        ("v3 -1", doc(json!(-1)), "03 04 00"),
        ("v3 -129", doc(json!(-129)), "03 04 80 01"),
        (
            "v3 i64 min",
            doc(json!(i64::MIN)),
            "03 04 ff ff ff ff ff ff ff ff 7f",
        ),
        ("v3 1.0", doc(json!(1.0)), "03 05 00 00 00 00 00 00 f0 3f"),
        ("v3 -0.0", doc(json!(-0.0)), "03 05 00 00 00 00 00 00 00 80"),
        ("v3 0.1", doc(json!(0.1)), "03 05 9a 99 99 99 99 99 b9 3f"),
        ("v3 empty string", doc(json!("")), "03 06 00"),
        ("v3 string", doc(json!("é")), "03 06 02 c3 a9"),
        ("v3 empty array", doc(json!([])), "03 07 00"),
        ("v3 empty object", doc(json!({})), "03 08 00"),
        (
            "v3 nested array",
            doc(json!([null, [true]])),
            "03 07 02 00 07 01 02",
        ),
        (
            "v3 nested object",
            doc(json!({"a": {"b": 1}})),
            "03 08 01 01 61 08 01 01 62 03 01",
        ),
        (
            "v3 key order kept",
            doc(json!({"b": 1, "a": 2})),
            "03 08 02 01 62 03 01 01 61 03 02",
        ),
        (
            "v3 seed",
            doc(json!({"jurusan": "Sistem Informasi", "angkatan": 2022})),
            "03 08 02 07 6a 75 72 75 73 61 6e 06 10 53 69 73 74 65 6d 20 49 6e 66 6f \
             72 6d 61 73 69 08 61 6e 67 6b 61 74 61 6e 03 e6 0f",
        ),
    ]
}

#[test]
fn encoder_writes_the_table() {
    for (name, value, expected) in cases() {
        assert_eq!(hex(&encode(&value)), hex(&unhex(expected)), "{name}");
    }
}

#[test]
fn decoder_reads_the_table() {
    for (name, value, expected) in cases() {
        assert_eq!(decode(&unhex(expected)), Ok(value), "{name}");
    }
}

#[test]
fn encode_into_appends() {
    let mut out = vec![0xaa];
    text("hi").encode_into(&mut out);
    assert_eq!(hex(&out), "aa 01 02 68 69");
}

//! Frozen golden files: data written by earlier builds must decode forever,
//! to the same value and the same text. Also pins the encoders: the current
//! encoder must still produce these bytes.

mod common;

use kv_codec::{Schema, Timestamp, Value, decode, encode, validate};
use serde_json::json;

struct Golden {
    name: &'static str,
    bin: &'static [u8],
    text: &'static str,
    schema: Schema,
    expected: fn() -> Value,
}

fn timestamp(micros: i64) -> Timestamp {
    Timestamp::from_micros(micros).unwrap()
}

const GOLDENS: [Golden; 5] = [
    Golden {
        name: "v1",
        bin: include_bytes!("golden/v1.bin"),
        text: include_str!("golden/v1.txt"),
        schema: Schema::V1,
        expected: || Value::Text("Rafi Widya".into()),
    },
    Golden {
        name: "v2",
        bin: include_bytes!("golden/v2.bin"),
        text: include_str!("golden/v2.txt"),
        schema: Schema::V2,
        expected: || Value::Event {
            data: "user:101 login".into(),
            // `date -u -d '2025-06-22 10:30:00' +%s` = 1750588200
            timestamp: timestamp(1_750_588_200_000_000),
        },
    },
    Golden {
        name: "v2-rich",
        bin: include_bytes!("golden/v2-rich.bin"),
        text: include_str!("golden/v2-rich.txt"),
        schema: Schema::V2,
        expected: || Value::Event {
            data: "pembayaran Rp 50.000 – \"lunas\" ✓".into(),
            timestamp: timestamp(-999_999),
        },
    },
    Golden {
        name: "v3",
        bin: include_bytes!("golden/v3.bin"),
        text: include_str!("golden/v3.txt"),
        schema: Schema::V3,
        expected: || Value::Json(json!({"jurusan": "Sistem Informasi", "angkatan": 2022})),
    },
    Golden {
        name: "v3-rich",
        bin: include_bytes!("golden/v3-rich.bin"),
        text: include_str!("golden/v3-rich.txt"),
        schema: Schema::V3,
        expected: rich_v3,
    },
];

fn rich_v3() -> Value {
    Value::Json(json!({
        "nama": "Rafi Widya",
        "kota": "Yogyakarta – DIY 🏫",
        "aktif": true,
        "cuti": false,
        "catatan": null,
        "nilai": [90, -3, 0, 3.75, 1.0, -0.5, 1e20, 2.5e-7],
        "batas": [u64::MAX, i64::MIN],
        "kosong": {"string": "", "array": [], "object": {}},
        "escape": "tab\tquote\"backslash\\\\newline\n",
        "bersarang": [[[{"a": [{"b": null}]}]]]
    }))
}

#[test]
fn golden_files_decode_to_the_expected_values() {
    for golden in &GOLDENS {
        let value = decode(golden.bin).unwrap_or_else(|e| panic!("{}: {e}", golden.name));
        assert_eq!(value, (golden.expected)(), "{}: decoded value", golden.name);
        assert_eq!(value.schema(), golden.schema, "{}: schema", golden.name);
        assert_eq!(validate(golden.bin), Ok(golden.schema), "{}", golden.name);
    }
}

#[test]
fn golden_files_render_their_source_text() {
    for golden in &GOLDENS {
        let value = decode(golden.bin).unwrap();
        assert_eq!(
            value.render(),
            golden.text,
            "{}: rendered text",
            golden.name
        );
    }
}

#[test]
fn source_texts_still_classify_and_encode_to_the_golden_bytes() {
    for golden in &GOLDENS {
        let value = Value::from_user_input(golden.text);
        assert_eq!(
            value.schema(),
            golden.schema,
            "{}: classification",
            golden.name
        );
        assert_eq!(
            common::hex(&encode(&value)),
            common::hex(golden.bin),
            "{}: encoder output changed",
            golden.name
        );
    }
}

#[test]
fn golden_files_start_with_their_version_byte() {
    for golden in &GOLDENS {
        assert_eq!(
            golden.bin.first(),
            Some(&golden.schema.version()),
            "{}",
            golden.name
        );
    }
}

/// V4 holds bytes, not text: its golden case is the raw input (`v4.raw`),
/// its encoding (`v4.bin`) and its display text in redis-cli's escaped form
/// (`v4.txt`).
#[test]
fn golden_v4_decodes_renders_and_classifies() {
    let raw: &[u8] = include_bytes!("golden/v4.raw");
    let bin: &[u8] = include_bytes!("golden/v4.bin");
    let text = include_str!("golden/v4.txt");
    let value = decode(bin).unwrap();
    assert_eq!(value, Value::Bytes(raw.to_vec()));
    assert_eq!(value.schema(), Schema::V4);
    assert_eq!(validate(bin), Ok(Schema::V4));
    assert_eq!(bin.first(), Some(&Schema::V4.version()));
    assert_eq!(value.render(), text);
    let classified = Value::from_bytes(raw);
    assert_eq!(common::hex(&encode(&classified)), common::hex(bin));
    assert_eq!(classified.into_bytes(), raw);
}

/// Bytes that are text keep classifying as V1–V3, so a RESP `SET` of the
/// golden texts stores exactly the golden bytes.
#[test]
fn golden_texts_as_bytes_keep_their_schema() {
    for golden in &GOLDENS {
        let value = Value::from_bytes(golden.text.as_bytes());
        assert_eq!(value.schema(), golden.schema, "{}", golden.name);
        assert_eq!(
            common::hex(&encode(&value)),
            common::hex(golden.bin),
            "{}",
            golden.name
        );
    }
}

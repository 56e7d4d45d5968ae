//! Strategies and helpers shared by the integration tests.
#![allow(dead_code)]

use kv_codec::{Schema, Timestamp, Value};
use proptest::prelude::*;
use serde_json::{Number, Value as Json};

/// Any JSON number serde_json can hold: u64, i64, finite f64.
pub fn arb_number() -> impl Strategy<Value = Json> {
    prop_oneof![
        any::<u64>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Json::Number)),
        // Floats that look like integers: 1.0, -0.0, 2022.0.
        (-3000i32..3000).prop_map(|n| Json::from(f64::from(n))),
        Just(Json::from(-0.0f64)),
    ]
}

/// Short strings with a bias to empty, ASCII, escapes and non-ASCII.
pub fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z]{1,8}",
        "[\"\\\\\n\t\u{0}\u{1f}é€😀 ]{0,6}",
        any::<String>(),
    ]
}

/// Any JSON value, nested up to 6 levels.
pub fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        arb_number(),
        arb_string().prop_map(Json::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((arb_string(), inner), 0..6)
                .prop_map(|members| Json::Object(members.into_iter().collect())),
        ]
    })
}

/// A JSON object or array (what classification turns into V3).
pub fn arb_container() -> impl Strategy<Value = Json> {
    arb_json().prop_filter("object or array", |json| {
        json.is_object() || json.is_array()
    })
}

/// Any representable timestamp, biased to the edges and to "now".
pub fn arb_timestamp() -> impl Strategy<Value = Timestamp> {
    let (min, max) = (Timestamp::MIN.micros(), Timestamp::MAX.micros());
    prop_oneof![
        min..=max,
        1_600_000_000_000_000i64..1_900_000_000_000_000,
        // Whole seconds, so the text has no fraction.
        (min / 1_000_000..=max / 1_000_000).prop_map(|s| s * 1_000_000),
        Just(min),
        Just(max),
        Just(0),
    ]
    .prop_filter_map("in range", Timestamp::from_micros)
}

/// Any value of any schema.
pub fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<String>().prop_map(Value::Text),
        (arb_string(), arb_timestamp())
            .prop_map(|(data, timestamp)| Value::Event { data, timestamp }),
        arb_json().prop_map(Value::Json),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
    ]
}

/// Hostile input: arbitrary bytes; an arbitrary payload after a version byte
/// (the known ones and their neighbours); a V3 payload of mostly valid tags
/// and tiny counts (three quarters of the bytes are 0..=9), so decoding
/// reaches deep into the tree decoder.
pub fn arb_hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let payload = || prop::collection::vec(any::<u8>(), 0..256);
    prop_oneof![
        payload(),
        (0u8..=5, payload()).prop_map(|(version, payload)| {
            let mut bytes = vec![version];
            bytes.extend_from_slice(&payload);
            bytes
        }),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|raw| {
            let mut bytes = vec![Schema::V3.version()];
            bytes.extend(raw.iter().map(|&b| if b < 0xc0 { b % 10 } else { b }));
            bytes
        }),
    ]
}

/// `depth` arrays nested in each other around `inner`.
pub fn nested_arrays(depth: usize, inner: Json) -> Json {
    (0..depth).fold(inner, |json, _| Json::Array(vec![json]))
}

/// `depth` single-member objects nested in each other around `inner`.
pub fn nested_objects(depth: usize, inner: Json) -> Json {
    (0..depth).fold(inner, |json, level| {
        let mut members = serde_json::Map::new();
        members.insert(format!("k{level}"), json);
        Json::Object(members)
    })
}

/// Lowercase hex with a space between bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses hex written as by [`hex`] (spaces optional).
pub fn unhex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// A ~1 KB V3 document (encoded) of nested objects and arrays, as the
/// benchmark validates.
pub fn nested_document() -> Json {
    let people: Vec<Json> = (0..10)
        .map(|i| {
            serde_json::json!({
                "id": i,
                "nama": format!("Mahasiswa {i}"),
                "aktif": i % 2 == 0,
                "nilai": [90, 85.5, -3, null],
                "alamat": {"kota": "Yogyakarta", "kode": 55281}
            })
        })
        .collect();
    serde_json::json!({"jurusan": "Sistem Informasi", "angkatan": 2022, "mahasiswa": people})
}

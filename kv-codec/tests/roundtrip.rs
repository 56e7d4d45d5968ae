//! Property tests: every value survives encode → decode, and classification
//! followed by storage gives the input back.
//!
//! What "gives back" means, exactly: V1 and V2 render to the input byte for
//! byte. V3 renders to JSON that `serde_json` parses to a value equal to the
//! input's: same key order, integers in `-2^63 ..= 2^64-1` exactly (kind
//! kept: `2022` stays an integer, `1.0` stays a float), every other number as
//! the f64 serde_json parses it to, bit for bit (checked by re-encoding).

mod common;

use common::{
    arb_container, arb_json, arb_string, arb_timestamp, arb_value, nested_arrays, nested_objects,
};
use kv_codec::{DecodeError, MAX_DEPTH, Schema, Value, decode, encode, validate};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Asserts the storage round trip and that re-encoding is byte-identical.
fn assert_round_trip(value: &Value) {
    let bytes = encode(value);
    let back = decode(&bytes).unwrap();
    assert_eq!(&back, value);
    assert_eq!(encode(&back), bytes, "re-encoding differs");
    assert_eq!(validate(&bytes), Ok(value.schema()));
}

/// Asserts what classification promises for `input`.
fn assert_classification_round_trip(input: &str) {
    let value = Value::from_user_input(input);
    assert_round_trip(&value);
    let shown = decode(&encode(&value)).unwrap().render();
    match value.schema() {
        Schema::V1 | Schema::V2 => assert_eq!(shown, input),
        Schema::V4 => unreachable!("text never classifies as V4"),
        Schema::V3 => {
            let expected: Json = serde_json::from_str(input).unwrap();
            let actual: Json = serde_json::from_str(&shown).unwrap();
            assert_eq!(actual, expected);
            // Same numbers bit for bit (f64 `==` alone would equate 0.0 and -0.0).
            assert_eq!(encode(&Value::Json(actual)), encode(&Value::Json(expected)));
        }
    }
}

/// JSON text in several styles: compact, pretty, and our render style.
fn arb_json_text() -> impl Strategy<Value = String> {
    (arb_container(), 0..3u8).prop_map(|(json, style)| match style {
        0 => serde_json::to_string(&json).unwrap(),
        1 => serde_json::to_string_pretty(&json).unwrap(),
        _ => Value::Json(json).render(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v1_round_trips(text in any::<String>()) {
        let value = Value::Text(text.clone());
        assert_round_trip(&value);
        prop_assert_eq!(value.render(), text);
    }

    #[test]
    fn v2_round_trips(data in arb_string(), timestamp in arb_timestamp()) {
        let value = Value::Event { data, timestamp };
        assert_round_trip(&value);
        // The rendering classifies back to the same event.
        prop_assert_eq!(Value::from_user_input(&value.render()), value);
    }

    #[test]
    fn v3_round_trips(json in arb_json()) {
        let value = Value::Json(json.clone());
        assert_round_trip(&value);
        // The rendering parses back to the same JSON, numbers bit for bit.
        let reparsed: Json = serde_json::from_str(&value.render()).unwrap();
        prop_assert_eq!(encode(&Value::Json(reparsed)), encode(&value));
    }

    #[test]
    fn v4_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let value = Value::Bytes(bytes.clone());
        assert_round_trip(&value);
        prop_assert_eq!(value.into_bytes(), bytes);
    }

    /// A RESP `SET` of any bytes: text classifies as shell input does, the
    /// rest is V4, and the bytes a client reads back are the input for
    /// V1, V2 and V4 (and the same JSON for V3).
    #[test]
    fn bytes_classification_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let value = Value::from_bytes(&bytes);
        assert_round_trip(&value);
        match std::str::from_utf8(&bytes) {
            Ok(text) => {
                prop_assert_eq!(&value, &Value::from_user_input(text));
                assert_classification_round_trip(text);
            }
            Err(_) => {
                prop_assert_eq!(value.schema(), Schema::V4);
                prop_assert_eq!(value.into_bytes(), bytes);
            }
        }
    }

    #[test]
    fn any_value_round_trips(value in arb_value()) {
        assert_round_trip(&value);
        prop_assert_eq!(value.to_string(), value.render());
    }

    #[test]
    fn classification_round_trips_arbitrary_text(input in any::<String>()) {
        assert_classification_round_trip(&input);
    }

    #[test]
    fn classification_round_trips_json_text(input in arb_json_text()) {
        assert_classification_round_trip(&input);
        prop_assert_ne!(Value::from_user_input(&input).schema(), Schema::V1);
    }

    #[test]
    fn classification_round_trips_event_like_text(
        data in arb_string(),
        timestamp in arb_timestamp(),
        edit in 0..6u8,
    ) {
        let canonical = Value::Event { data, timestamp }.render();
        let input = match edit {
            0 => canonical,
            1 => canonical.replace(": ", ":"),
            2 => canonical.replacen(' ', "T", 1),
            3 => format!("{canonical} "),
            4 => canonical.replace("\"}", ".0\"}"),
            _ => canonical.replacen('}', ", \"x\": 1}", 1),
        };
        assert_classification_round_trip(&input);
    }

    #[test]
    fn classification_round_trips_broken_json(input in arb_json_text(), cut in any::<prop::sample::Index>()) {
        // Cut at a char boundary: mostly invalid JSON, which must stay V1 text.
        let boundaries: Vec<usize> = input.char_indices().map(|(i, _)| i).collect();
        let end = boundaries[cut.index(boundaries.len())];
        assert_classification_round_trip(&input[..end]);
    }
}

#[test]
fn nesting_up_to_max_depth_round_trips() {
    for depth in [1, 2, MAX_DEPTH - 1, MAX_DEPTH] {
        assert_round_trip(&Value::Json(nested_arrays(depth, Json::Null)));
        assert_round_trip(&Value::Json(nested_objects(depth, Json::from(1))));
    }
}

#[test]
fn nesting_beyond_max_depth_is_rejected_on_decode() {
    for json in [
        nested_arrays(MAX_DEPTH + 1, Json::Null),
        nested_objects(MAX_DEPTH + 1, Json::Null),
    ] {
        let bytes = encode(&Value::Json(json));
        assert!(matches!(
            decode(&bytes),
            Err(DecodeError::TooDeep { max: MAX_DEPTH, .. })
        ));
    }
}

#[test]
fn deepest_text_serde_json_accepts_is_within_max_depth() {
    let deepest = 127;
    let input = "[".repeat(deepest) + &"]".repeat(deepest);
    let value = Value::from_user_input(&input);
    assert_eq!(value.schema(), Schema::V3);
    assert!(deepest <= MAX_DEPTH);
    assert_classification_round_trip(&input);
}

#[test]
fn integer_and_float_extremes_round_trip() {
    let input = r#"[0, 18446744073709551615, -9223372036854775808, 1.0, -0.0, 5e-324, 1.7976931348623157e+308, -1.7976931348623157e+308, 0.1]"#;
    let value = Value::from_user_input(input);
    assert_eq!(value.render(), input);
    assert_classification_round_trip(input);
}

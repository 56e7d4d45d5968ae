//! `validate` must agree with `decode` on every input: the same schema when
//! decoding succeeds, the same `DecodeError` (variant and fields) when it
//! fails. And it must not build the value: a counting allocator checks it
//! allocates nothing for V1, V2, V4 and V3 values with small objects.
//!
//! The case counts default high; `PROPTEST_CASES` overrides them (e.g.
//! `PROPTEST_CASES=20000 cargo test -p kv-codec --test validate`).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::{arb_hostile_bytes, arb_number, arb_value, nested_document, unhex};
use kv_codec::{DecodeError, Schema, Value, decode, encode, validate, verbatim};
use proptest::prelude::*;
use serde_json::Value as Json;

/// Counts the allocations made by the current thread (tests run in parallel
/// threads, so a global count would mix them up).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the slot may be gone while a thread shuts down.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

#[expect(unsafe_code, reason = "a global allocator is an unsafe trait")]
// SAFETY: forwards every call to `System` unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (including reallocations) `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    let after = ALLOCATIONS.with(Cell::get);
    (out, after - before)
}

/// The property: `validate` is `decode` without the value.
fn agrees(bytes: &[u8]) -> Result<(), TestCaseError> {
    let decoded = decode(bytes).map(|value| value.schema());
    prop_assert_eq!(validate(bytes), decoded, "input {:02x?}", bytes);
    // `verbatim` finds exactly the client bytes of V1 and V4 values.
    let client = decode(bytes)
        .ok()
        .filter(|v| matches!(v, Value::Text(_) | Value::Bytes(_)))
        .map(Value::into_bytes);
    let found = verbatim(bytes)
        .and_then(|r| bytes.get(r))
        .map(<[u8]>::to_vec);
    prop_assert_eq!(found, client, "input {:02x?}", bytes);
    Ok(())
}

/// `cases` unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// A V3 tree as bytes can hold it: objects may repeat keys, which no
/// `serde_json::Value` can, and may be larger than `arb_json` makes them.
#[derive(Debug, Clone)]
enum Raw {
    Leaf(Json),
    Array(Vec<Raw>),
    Object(Vec<(String, Raw)>),
}

/// Keys from a tiny alphabet (so repeats are common) or a wider one.
fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[ab]{0,2}", 1 => "[a-z]{1,6}", 1 => any::<String>()]
}

fn arb_raw() -> impl Strategy<Value = Raw> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        arb_number(),
        "[a-z]{0,4}".prop_map(Json::String),
    ]
    .prop_map(Raw::Leaf);
    leaf.prop_recursive(4, 256, 40, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..24).prop_map(Raw::Array),
            prop::collection::vec((arb_key(), inner.clone()), 0..40).prop_map(Raw::Object),
            // Large objects with distinct keys, so their members' own errors
            // are reached too.
            prop::collection::vec(inner, 17..40).prop_map(|items| {
                let members = items.into_iter().enumerate();
                Raw::Object(members.map(|(i, item)| (format!("k{i}"), item)).collect())
            }),
        ]
    })
}

fn leb128(mut n: usize, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Writes `raw` as a V3 node (layout in `src/v3.rs`).
fn encode_raw(raw: &Raw, out: &mut Vec<u8>) {
    match raw {
        Raw::Leaf(json) => out.extend_from_slice(&encode(&Value::Json(json.clone()))[1..]),
        Raw::Array(items) => {
            out.push(0x07);
            leb128(items.len(), out);
            items.iter().for_each(|item| encode_raw(item, out));
        }
        Raw::Object(members) => {
            out.push(0x08);
            leb128(members.len(), out);
            for (key, item) in members {
                leb128(key.len(), out);
                out.extend_from_slice(key.as_bytes());
                encode_raw(item, out);
            }
        }
    }
}

fn raw_bytes(raw: &Raw) -> Vec<u8> {
    let mut bytes = vec![Schema::V3.version()];
    encode_raw(raw, &mut bytes);
    bytes
}

/// One edit of an encoding.
#[derive(Debug, Clone)]
enum Edit {
    Flip(prop::sample::Index, u8),
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn arb_edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<prop::sample::Index>(), 0..8u8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<prop::sample::Index>().prop_map(Edit::Remove),
        any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 0..4)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        if bytes.is_empty() {
            break;
        }
        match edit {
            Edit::Flip(at, bit) => {
                let at = at.index(bytes.len());
                bytes[at] ^= 1 << bit;
            }
            Edit::Set(at, byte) => {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
            Edit::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
            Edit::Remove(at) => {
                bytes.remove(at.index(bytes.len()));
            }
            Edit::Truncate(at) => bytes.truncate(at.index(bytes.len())),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(config(8192))]

    #[test]
    fn agrees_on_hostile_bytes(bytes in arb_hostile_bytes()) {
        agrees(&bytes)?;
    }

    #[test]
    fn agrees_on_mutated_encodings_of_every_schema(value in arb_value(), edits in arb_edits()) {
        agrees(&apply(encode(&value), &edits))?;
    }


    #[test]
    fn validate_allocates_nothing_but_for_large_objects(value in arb_value(), edits in arb_edits()) {
        // `arb_json` objects have at most 5 members: no allocation.
        let bytes = encode(&value);
        let (_, count) = allocations(|| validate(&bytes));
        prop_assert_eq!(count, 0);
        // An edit may turn a count into a large one: the key scratch stack
        // then allocates, a few times at most (it grows by doubling).
        let bytes = apply(bytes, &edits);
        let (_, count) = allocations(|| validate(&bytes));
        prop_assert!(count <= 4, "{} allocations for {:02x?}", count, bytes);
    }
}

proptest! {
    // Larger trees, slower cases.
    #![proptest_config(config(2048))]

    #[test]
    fn agrees_on_mutated_v3_trees_with_repeated_keys(raw in arb_raw(), edits in arb_edits()) {
        agrees(&apply(raw_bytes(&raw), &edits))?;
    }
}

/// Members `k0`, `k1`, ... with `null` values, then `extra` appended raw.
fn large_object(members: usize, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut raw: Vec<(String, Raw)> = (0..members)
        .map(|i| (format!("k{i}"), Raw::Leaf(Json::Null)))
        .collect();
    raw.extend(
        extra
            .iter()
            .map(|(key, hex)| (key.to_string(), Raw::Leaf(decode_leaf(hex)))),
    );
    raw_bytes(&Raw::Object(raw))
}

fn decode_leaf(hex: &str) -> Json {
    let mut bytes = vec![Schema::V3.version()];
    bytes.extend(unhex(hex));
    match decode(&bytes) {
        Ok(Value::Json(json)) => json,
        other => panic!("{hex}: {other:?}"),
    }
}

#[test]
fn large_objects_report_the_first_error_in_input_order() {
    // 20 members (more than are checked on the stack), a repeated key
    // after them: DuplicateKey at the second `k3`.
    let repeated = large_object(20, &[("k3", "00")]);
    let offset = repeated.len() - 4; // 02 6b 33 00
    let expected = Err(DecodeError::DuplicateKey { offset });
    assert_eq!(decode(&repeated).map(|v| v.schema()), expected);
    assert_eq!(validate(&repeated), expected);

    // A repeated key and, after it, a member whose value is garbage: the
    // repeated key comes first.
    let mut then_garbage = repeated.clone();
    then_garbage[2] += 1; // one more member
    then_garbage.extend_from_slice(&[0x01, b'z', 0x09]);
    assert_eq!(validate(&then_garbage), expected);
    assert_eq!(decode(&then_garbage).map(|v| v.schema()), expected);

    // Garbage before the repeated key: the garbage comes first.
    let mut garbage_first = large_object(20, &[]);
    garbage_first[2] += 2;
    garbage_first.extend_from_slice(&[0x01, b'z', 0x09, 0x02, b'k', b'3', 0x00]);
    let expected = Err(DecodeError::UnknownTag {
        offset: garbage_first.len() - 5,
        tag: 9,
    });
    assert_eq!(validate(&garbage_first), expected);
    assert_eq!(decode(&garbage_first).map(|v| v.schema()), expected);
}

#[test]
fn golden_files_validate() {
    let goldens: [(&[u8], Schema); 6] = [
        (include_bytes!("golden/v1.bin"), Schema::V1),
        (include_bytes!("golden/v2.bin"), Schema::V2),
        (include_bytes!("golden/v2-rich.bin"), Schema::V2),
        (include_bytes!("golden/v3.bin"), Schema::V3),
        (include_bytes!("golden/v3-rich.bin"), Schema::V3),
        (include_bytes!("golden/v4.bin"), Schema::V4),
    ];
    for (bytes, schema) in goldens {
        let (result, count) = allocations(|| validate(bytes));
        assert_eq!(result, Ok(schema));
        assert_eq!(count, 0, "{schema} golden file allocated");
    }
}

#[test]
fn allocations_of_validate_and_decode() {
    let text = encode(&Value::Text("x".repeat(100)));
    let event = encode(&Value::from_user_input(
        r#"{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}"#,
    ));
    let document = encode(&Value::Json(nested_document()));
    assert!((900..1200).contains(&document.len()), "{}", document.len());
    for bytes in [&text, &event, &document] {
        let (result, count) = allocations(|| validate(bytes));
        assert!(result.is_ok());
        assert_eq!(count, 0);
    }
    // decode of the document allocates a lot (which is the point).
    let (_, decode_count) = allocations(|| decode(&document));
    assert!(decode_count > 50, "{decode_count}");

    // A large object: one allocation for its keys, however many objects.
    let large = large_object(200, &[]);
    let (result, count) = allocations(|| validate(&large));
    assert_eq!(result, Ok(Schema::V3));
    assert_eq!(count, 1);
    let many_large = raw_bytes(&Raw::Array(vec![
        Raw::Object(
            (0..100)
                .map(|i| (format!("k{i}"), Raw::Leaf(Json::Null)))
                .collect()
        );
        10
    ]));
    let (result, count) = allocations(|| validate(&many_large));
    assert_eq!(result, Ok(Schema::V3));
    assert_eq!(count, 1);
}

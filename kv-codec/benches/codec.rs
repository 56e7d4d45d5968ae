//! Encode and decode throughput of each schema on the seed examples, plus
//! classification and rendering (the `put` and `get` paths), and `validate`
//! (what a node runs on every write) against `decode` on the same inputs.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use kv_codec::{Value, decode, encode, validate};

#[path = "../tests/common/mod.rs"]
mod common;

const SEEDS: [(&str, &str); 3] = [
    ("v1", "Rafi Widya"),
    (
        "v2",
        r#"{"data": "user:101 login", "timestamp": "2025-06-22 10:30:00"}"#,
    ),
    ("v3", r#"{"jurusan": "Sistem Informasi", "angkatan": 2022}"#),
];

fn codec(c: &mut Criterion) {
    for (name, text) in SEEDS {
        let value = Value::from_user_input(text);
        let bytes = encode(&value);
        let mut buffer = Vec::with_capacity(64);
        c.bench_function(&format!("encode/{name}"), |b| {
            b.iter(|| encode(black_box(&value)))
        });
        c.bench_function(&format!("encode_into/{name}"), |b| {
            b.iter(|| {
                buffer.clear();
                black_box(&value).encode_into(&mut buffer);
                black_box(buffer.len())
            })
        });
        c.bench_function(&format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&bytes)))
        });
        c.bench_function(&format!("classify/{name}"), |b| {
            b.iter(|| Value::from_user_input(black_box(text)))
        });
        c.bench_function(&format!("render/{name}"), |b| {
            b.iter(|| black_box(&value).render())
        });
    }
}

/// `validate` and `decode` side by side, in one group so one run compares
/// them: a 100-byte text (V1), an event (V2) and a ~1 KB nested JSON (V3).
fn validate_vs_decode(c: &mut Criterion) {
    let inputs = [
        ("v1_text_100b", Value::Text("x".repeat(100))),
        ("v2_event", Value::from_user_input(SEEDS[1].1)),
        ("v3_json_1kb", Value::Json(common::nested_document())),
    ];
    let mut group = c.benchmark_group("validate_vs_decode");
    for (name, value) in inputs {
        let bytes = encode(&value);
        group.bench_function(format!("validate/{name}"), |b| {
            b.iter(|| validate(black_box(&bytes)))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| decode(black_box(&bytes)))
        });
    }
    group.finish();
}

mod group {
    // criterion_group! generates an undocumented `pub fn`.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::codec, super::validate_vs_decode);
}
criterion_main!(group::benches);

//! Encode and decode throughput of each schema on the seed examples, plus
//! classification and rendering (the `put` and `get` paths).

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use kv_codec::{Value, decode, encode};

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

mod group {
    // criterion_group! generates an undocumented `pub fn`.
    #![allow(missing_docs)]
    criterion::criterion_group!(benches, super::codec);
}
criterion_main!(group::benches);

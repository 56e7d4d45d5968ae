//! Hostile input: random and mutated bytes fed to `decode` must give `Ok` or
//! a typed `Err`, never a panic, a stack overflow or a huge allocation. When
//! garbage does decode, the encoding must be canonical (re-encoding gives the
//! same bytes), which also shows the decoder accepted nothing it cannot write.

mod common;

use common::{arb_hostile_bytes, arb_value, unhex};
use kv_codec::{DecodeError, MAX_DEPTH, Schema, Value, VarintProblem, decode, encode, validate};
use proptest::prelude::*;

const GOLDEN_BINS: [&[u8]; 5] = [
    include_bytes!("golden/v1.bin"),
    include_bytes!("golden/v2.bin"),
    include_bytes!("golden/v2-rich.bin"),
    include_bytes!("golden/v3.bin"),
    include_bytes!("golden/v3-rich.bin"),
];

/// Decodes `bytes`; when it succeeds, checks canonicity and `validate`.
fn check(bytes: &[u8]) -> Result<Value, DecodeError> {
    let result = decode(bytes);
    match &result {
        Ok(value) => {
            assert_eq!(encode(value), bytes, "decoded bytes are not canonical");
            assert_eq!(validate(bytes), Ok(value.schema()));
        }
        Err(error) => assert_eq!(validate(bytes), Err(error.clone())),
    }
    result
}

/// Every strict prefix of a valid encoding is empty or truncated.
fn assert_prefixes_truncated(bytes: &[u8]) {
    for end in 0..bytes.len() {
        let result = check(&bytes[..end]);
        assert!(
            matches!(
                result,
                Err(DecodeError::Empty | DecodeError::Truncated { .. })
            ),
            "prefix of {end} bytes: {result:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6144))]

    #[test]
    fn hostile_bytes_never_panic(bytes in arb_hostile_bytes()) {
        let _ = check(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mutated_encodings_never_panic(
        value in arb_value(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    ) {
        let mut bytes = encode(&value);
        for (index, byte, kind) in edits {
            let at = index.index(bytes.len());
            match kind {
                0 => bytes[at] = byte,
                1 => bytes[at] ^= 1 << (byte % 8),
                _ => bytes.insert(at, byte),
            }
        }
        let _ = check(&bytes);
    }

    #[test]
    fn truncated_encodings_are_truncated(value in arb_value()) {
        assert_prefixes_truncated(&encode(&value));
    }

    #[test]
    fn extended_encodings_have_trailing_bytes(value in arb_value(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode(&value);
        let offset = bytes.len();
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(check(&bytes), Err(DecodeError::TrailingBytes { offset, count: extra.len() }));
    }
}

#[test]
fn golden_files_truncated_at_every_offset() {
    for bytes in GOLDEN_BINS {
        assert_prefixes_truncated(bytes);
    }
}

#[test]
fn golden_files_with_every_byte_changed() {
    for bytes in GOLDEN_BINS {
        for at in 0..bytes.len() {
            for replacement in [
                0x00,
                0x01,
                0x7f,
                0x80,
                0xff,
                bytes[at] ^ 0x01,
                bytes[at] ^ 0x80,
            ] {
                let mut mutated = bytes.to_vec();
                mutated[at] = replacement;
                let _ = check(&mutated);
            }
        }
    }
}

/// Hand-made hostile inputs and the exact error each must give.
#[test]
fn hostile_inputs_give_typed_errors() {
    let u64_max_varint = "ff ff ff ff ff ff ff ff ff 01";
    let cases: Vec<(&str, String, DecodeError)> = vec![
        ("empty", String::new(), DecodeError::Empty),
        ("version 0", "00".into(), DecodeError::UnknownVersion(0)),
        ("version 5", "05 00".into(), DecodeError::UnknownVersion(5)),
        (
            "v4 short",
            "04 05 ff 00".into(),
            DecodeError::Truncated {
                offset: 2,
                needed: 5,
                available: 2,
            },
        ),
        (
            "v4 trailing",
            "04 01 ff 00".into(),
            DecodeError::TrailingBytes {
                offset: 3,
                count: 1,
            },
        ),
        ("version 255", "ff".into(), DecodeError::UnknownVersion(255)),
        (
            "v1 no length",
            "01".into(),
            DecodeError::Truncated {
                offset: 1,
                needed: 1,
                available: 0,
            },
        ),
        (
            "v1 short",
            "01 05 61 62".into(),
            DecodeError::Truncated {
                offset: 2,
                needed: 5,
                available: 2,
            },
        ),
        (
            "v1 length u64::MAX",
            format!("01 {u64_max_varint}"),
            DecodeError::Truncated {
                offset: 11,
                needed: usize::MAX,
                available: 0,
            },
        ),
        (
            "v1 bad utf-8",
            "01 03 61 c3 28".into(),
            DecodeError::InvalidUtf8 { offset: 3 },
        ),
        (
            "v1 surrogate",
            "01 03 ed a0 80".into(),
            DecodeError::InvalidUtf8 { offset: 2 },
        ),
        (
            "v1 overlong length",
            "01 80 00".into(),
            DecodeError::BadVarint {
                offset: 1,
                problem: VarintProblem::Overlong,
            },
        ),
        (
            "v1 length over 64 bits",
            "01 ff ff ff ff ff ff ff ff ff 02".into(),
            DecodeError::BadVarint {
                offset: 1,
                problem: VarintProblem::Overflow,
            },
        ),
        (
            "v1 trailing",
            "01 00 00".into(),
            DecodeError::TrailingBytes {
                offset: 2,
                count: 1,
            },
        ),
        (
            "v2 no timestamp",
            "02 00".into(),
            DecodeError::Truncated {
                offset: 2,
                needed: 1,
                available: 0,
            },
        ),
        (
            "v2 timestamp beyond 9999",
            "02 00 80 80 80 80 80 80 80 80 80 01".into(),
            DecodeError::TimestampOutOfRange {
                offset: 2,
                micros: i64::MAX / 2 + 1,
            },
        ),
        (
            "v2 timestamp before 0000",
            format!("02 00 {u64_max_varint}"),
            DecodeError::TimestampOutOfRange {
                offset: 2,
                micros: i64::MIN,
            },
        ),
        (
            "v3 no root",
            "03".into(),
            DecodeError::Truncated {
                offset: 1,
                needed: 1,
                available: 0,
            },
        ),
        (
            "v3 unknown tag",
            "03 09".into(),
            DecodeError::UnknownTag { offset: 1, tag: 9 },
        ),
        (
            "v3 nested unknown tag",
            "03 07 01 ff".into(),
            DecodeError::UnknownTag {
                offset: 3,
                tag: 0xff,
            },
        ),
        (
            "v3 NaN",
            "03 05 00 00 00 00 00 00 f8 7f".into(),
            DecodeError::NonFiniteFloat { offset: 1 },
        ),
        (
            "v3 infinity",
            "03 05 00 00 00 00 00 00 f0 ff".into(),
            DecodeError::NonFiniteFloat { offset: 1 },
        ),
        (
            "v3 short float",
            "03 05 00 00".into(),
            DecodeError::Truncated {
                offset: 2,
                needed: 8,
                available: 2,
            },
        ),
        (
            "v3 negint below i64::MIN",
            "03 04 80 80 80 80 80 80 80 80 80 01".into(),
            DecodeError::IntegerOverflow { offset: 1 },
        ),
        (
            "v3 array count u64::MAX",
            format!("03 07 {u64_max_varint}"),
            DecodeError::Truncated {
                offset: 12,
                needed: usize::MAX,
                available: 0,
            },
        ),
        (
            "v3 array count beyond input",
            "03 07 05 00 00".into(),
            DecodeError::Truncated {
                offset: 3,
                needed: 5,
                available: 2,
            },
        ),
        (
            "v3 object count beyond input",
            "03 08 02 01 61 00".into(),
            DecodeError::Truncated {
                offset: 3,
                needed: 4,
                available: 3,
            },
        ),
        (
            "v3 duplicate key",
            "03 08 02 01 61 00 01 61 02".into(),
            DecodeError::DuplicateKey { offset: 6 },
        ),
        (
            "v3 bad utf-8 key",
            "03 08 01 01 ff 00".into(),
            DecodeError::InvalidUtf8 { offset: 4 },
        ),
        (
            "v3 trailing",
            "03 00 00".into(),
            DecodeError::TrailingBytes {
                offset: 2,
                count: 1,
            },
        ),
    ];
    for (name, hex, expected) in cases {
        assert_eq!(check(&unhex(&hex)), Err(expected), "{name}");
    }
}

#[test]
fn very_deep_nesting_is_rejected_without_recursing() {
    // 100 000 nested one-element arrays (and objects): would overflow the
    // stack of a decoder that recursed without a limit.
    let levels = 100_000;
    let mut arrays = vec![Schema::V3.version()];
    arrays.extend(std::iter::repeat_n([0x07, 0x01], levels).flatten());
    arrays.push(0x00);
    let mut objects = vec![Schema::V3.version()];
    objects.extend(std::iter::repeat_n([0x08, 0x01, 0x00], levels).flatten());
    objects.push(0x00);
    for (bytes, step) in [(arrays, 2), (objects, 3)] {
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::TooDeep {
                offset: 1 + step * MAX_DEPTH,
                max: MAX_DEPTH
            })
        );
    }
}

#[test]
fn nested_huge_counts_fail_with_a_typed_error() {
    // Every level claims as many elements as bytes remain. The decoder must
    // not trust those counts for preallocation: with `MAX_DEPTH` open
    // containers that could reserve depth × input × size_of::<Json>() bytes.
    // (Linux overcommit hides untouched reservations, so this test cannot see
    // memory; the cap itself is unit-tested in `reader.rs`. This checks that
    // such input ends in a typed error.)
    let filler = 1 << 20;
    let mut bytes = vec![Schema::V3.version()];
    for level in 0..MAX_DEPTH {
        bytes.push(0x07);
        let claimed = (MAX_DEPTH - level) * 4 + filler;
        bytes.extend_from_slice(&leb128(claimed as u64));
    }
    bytes.resize(bytes.len() + filler, 0x00);
    assert!(matches!(decode(&bytes), Err(DecodeError::Truncated { .. })));
}

fn leb128(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

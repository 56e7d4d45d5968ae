//! Byte sizes in the config: an integer (`67108864`) or a string with a unit
//! (`"64MiB"`, `"64 MiB"`, `"512KiB"`, `"1GiB"`, `"100MB"`, `"1000000"`).
//!
//! Binary units (KiB, MiB, GiB, TiB) are powers of 1024, decimal units
//! (KB, MB, GB, TB) powers of 1000, `B` or no unit means bytes. Units are
//! matched without regard to case. Only whole numbers are accepted.
//!
//! # Why hand-written, not `parse-size` or `bytesize`
//!
//! Both read a superset of these forms, so a swap would start accepting
//! sizes this parser rejects (the `rejects` test): `parse-size` (1.1) takes
//! fractions and exponents (`"1.5GiB"`, `"14.2e+8"`, rounded), unit
//! letters without the `B` (`"64 M"`, `"2ki"`), digit grouping
//! (`"1_000"`, `"1 000"`) and PiB/EiB; it does keep KB decimal and KiB
//! binary, case-insensitive, and reports overflow. `bytesize` (`FromStr`,
//! 1.3 and 2.0) multiplies as `f64` and casts, so a fraction is accepted
//! and an overflow (`"17179869184GiB"`) silently becomes `u64::MAX`
//! instead of an error, and integers above 2^53 with a unit lose
//! precision. Keeping a config file's meaning exact matters more than
//! the 40 lines below.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};

/// Units a size string may carry, with their multipliers.
const UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
];

const EXPECTED: &str = "expected a whole number of bytes with an optional unit (B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), e.g. \"64MiB\"";

/// A size as written in the TOML, before it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawSize {
    /// A TOML integer (may be negative: rejected later with a clear message).
    Int(i64),
    /// A TOML string such as `"64MiB"`.
    Text(String),
    /// A float or boolean, kept so the error can be a `BadSize` naming the
    /// field like every other bad size.
    Invalid(String),
}

impl RawSize {
    /// The size in bytes, or a reason why it is not one. Zero is accepted
    /// here; range checks belong to the field.
    pub(crate) fn to_bytes(&self) -> Result<u64, String> {
        match self {
            RawSize::Int(n) => u64::try_from(*n).map_err(|_| "must not be negative".to_string()),
            RawSize::Text(s) => parse_size(s),
            RawSize::Invalid(_) => Err(EXPECTED.to_string()),
        }
    }
}

impl fmt::Display for RawSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawSize::Int(n) => write!(f, "{n}"),
            RawSize::Text(s) => write!(f, "{s:?}"),
            RawSize::Invalid(s) => f.write_str(s),
        }
    }
}

/// Parses `"64MiB"`, `"64 MiB"`, `"4096"`, `"1GB"` into bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("must not be negative".to_string());
    }
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(EXPECTED.to_string());
    }
    let unit = unit.trim().to_ascii_lowercase();
    let Some(&(_, multiplier)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(EXPECTED.to_string());
    };
    let number: u64 = digits.parse().map_err(|_| "is too large".to_string())?;
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "is too large".to_string())
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawSizeVisitor)
    }
}

struct RawSizeVisitor;

impl Visitor<'_> for RawSizeVisitor {
    type Value = RawSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte size: an integer or a string such as \"64MiB\"")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawSize, E> {
        Ok(RawSize::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawSize, E> {
        match i64::try_from(v) {
            Ok(v) => Ok(RawSize::Int(v)),
            Err(_) => Ok(RawSize::Text(v.to_string())),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawSize, E> {
        Ok(RawSize::Invalid(v.to_string()))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawSize, E> {
        Ok(RawSize::Invalid(v.to_string()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawSize, E> {
        Ok(RawSize::Text(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("1000000", 1_000_000),
            ("4096B", 4096),
            ("4096 b", 4096),
            ("512KiB", 512 * 1024),
            ("64MiB", 64 << 20),
            ("64 MiB", 64 << 20),
            ("  64 mib ", 64 << 20),
            ("1GiB", 1 << 30),
            ("2TiB", 2 << 40),
            ("100KB", 100_000),
            ("100MB", 100_000_000),
            ("3GB", 3_000_000_000),
            ("1TB", 1_000_000_000_000),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(*bytes), "{text}");
        }
    }

    #[test]
    fn rejects() {
        for text in [
            "", "MiB", "-1", "-64MiB", "1.5GiB", "64 M", "64MiBs", "sixty", "64 Mi B", "0x10",
            "1_000",
        ] {
            assert!(parse_size(text).is_err(), "{text:?} should be rejected");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_size("18446744073709551616"),
            Err("is too large".to_string())
        );
        assert_eq!(
            parse_size("17179869184GiB"),
            Err("is too large".to_string())
        );
    }

    #[test]
    fn raw_int() {
        assert_eq!(RawSize::Int(7).to_bytes(), Ok(7));
        assert!(RawSize::Int(-7).to_bytes().is_err());
    }
}

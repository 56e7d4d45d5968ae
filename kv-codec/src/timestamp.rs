//! [`Timestamp`]: the V2 event time, microseconds on a UTC wall clock.
//!
//! The canonical text form is `YYYY-MM-DD HH:MM:SS[.fraction]`: four-digit
//! year, a valid calendar date and time (no leap second), and an optional
//! fraction of 1 to 6 digits without trailing zeros. With that rule each
//! timestamp has exactly one text form, so parsing and printing round-trip
//! byte for byte, which is what lets V2 classification be lossless.
//! Calendar arithmetic is done by `jiff` on civil (time-zone free) date-times.

use std::fmt;

use jiff::SignedDuration;
use jiff::civil::{DateTime, date};

/// The instant the micro counts start from: 1970-01-01 00:00:00.
const UNIX_EPOCH: DateTime = date(1970, 1, 1).at(0, 0, 0, 0);

/// Microseconds of `0000-01-01 00:00:00`.
const MIN_MICROS: i64 = -62_167_219_200_000_000;
/// Microseconds of `9999-12-31 23:59:59.999999`.
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// Length of `YYYY-MM-DD HH:MM:SS`.
const SECONDS_LEN: usize = 19;
/// Most fraction digits (microseconds).
const MAX_FRACTION_DIGITS: usize = 6;

/// A point in time: microseconds since 1970-01-01 00:00:00 on a UTC wall
/// clock, always within [`Timestamp::MIN`] ..= [`Timestamp::MAX`] so that it
/// has a canonical text form. `Display` prints that form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// `0000-01-01 00:00:00`, the earliest timestamp with a 4-digit year.
    pub const MIN: Timestamp = Timestamp(MIN_MICROS);
    /// `9999-12-31 23:59:59.999999`, the latest timestamp with a 4-digit year.
    pub const MAX: Timestamp = Timestamp(MAX_MICROS);

    /// The timestamp `micros` microseconds after the Unix epoch, or `None`
    /// outside [`Timestamp::MIN`] ..= [`Timestamp::MAX`].
    pub const fn from_micros(micros: i64) -> Option<Timestamp> {
        if micros >= MIN_MICROS && micros <= MAX_MICROS {
            Some(Timestamp(micros))
        } else {
            None
        }
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// Parses the canonical form `YYYY-MM-DD HH:MM:SS[.fraction]` and nothing
    /// else: no `T`, no zone, no trailing fraction zeros, no invalid dates.
    pub fn parse_canonical(text: &str) -> Option<Timestamp> {
        let bytes = text.as_bytes();
        let (head, fraction) = split_fraction(bytes)?;
        if !separators_ok(head) {
            return None;
        }
        let field = |start, len| digits(head.get(start..start + len)?);
        let datetime = DateTime::new(
            i16::try_from(field(0, 4)?).ok()?,
            i8::try_from(field(5, 2)?).ok()?,
            i8::try_from(field(8, 2)?).ok()?,
            i8::try_from(field(11, 2)?).ok()?,
            i8::try_from(field(14, 2)?).ok()?,
            i8::try_from(field(17, 2)?).ok()?,
            fraction_nanos(fraction)?,
        )
        .ok()?;
        let micros = datetime.duration_since(UNIX_EPOCH).as_micros();
        Timestamp::from_micros(i64::try_from(micros).ok()?)
    }

    /// The canonical text, without allocating.
    pub(crate) fn canonical(self) -> Canonical {
        let mut text = Canonical::default();
        text.push_datetime(self.civil());
        text
    }

    /// The civil date-time this timestamp names.
    fn civil(self) -> DateTime {
        // In range by construction: MIN..=MAX lies inside jiff's civil range,
        // so the fallback is never used.
        UNIX_EPOCH
            .checked_add(SignedDuration::from_micros(self.0))
            .unwrap_or(DateTime::MAX)
    }
}

/// Splits `YYYY-MM-DD HH:MM:SS` from the digits after an optional `.`
/// (`None` when there is no `.`).
fn split_fraction(bytes: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let head = bytes.get(..SECONDS_LEN)?;
    match bytes.get(SECONDS_LEN..)? {
        [] => Some((head, None)),
        [b'.', fraction @ ..] => Some((head, Some(fraction))),
        _ => None,
    }
}

/// Checks the fixed punctuation of `YYYY-MM-DD HH:MM:SS`.
fn separators_ok(head: &[u8]) -> bool {
    [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')]
        .iter()
        .all(|&(index, want)| head.get(index) == Some(&want))
}

/// Parses a non-empty run of ASCII digits (at most 6, so no overflow).
fn digits(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > MAX_FRACTION_DIGITS {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, &byte| {
        byte.is_ascii_digit()
            .then(|| acc * 10 + u32::from(byte - b'0'))
    })
}

/// Nanoseconds of a canonical fraction: absent, or 1..=6 digits not ending
/// in 0.
fn fraction_nanos(fraction: Option<&[u8]>) -> Option<i32> {
    let Some(fraction) = fraction else {
        return Some(0);
    };
    if fraction.last() == Some(&b'0') {
        return None;
    }
    let value = digits(fraction)?;
    let scale = 10u32.pow((9 - fraction.len()) as u32);
    i32::try_from(value * scale).ok()
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.canonical().as_str())
    }
}

/// The canonical text of a timestamp, built on the stack (at most 26 bytes).
#[derive(Default)]
pub(crate) struct Canonical {
    bytes: [u8; SECONDS_LEN + 1 + MAX_FRACTION_DIGITS],
    len: usize,
}

impl Canonical {
    fn push_datetime(&mut self, dt: DateTime) {
        // Years are 0..=9999 by construction and the other fields small and
        // non-negative, so the casts keep their values.
        self.push_digits(dt.year() as u32, 4);
        self.push(b'-');
        self.push_digits(dt.month() as u32, 2);
        self.push(b'-');
        self.push_digits(dt.day() as u32, 2);
        self.push(b' ');
        self.push_digits(dt.hour() as u32, 2);
        self.push(b':');
        self.push_digits(dt.minute() as u32, 2);
        self.push(b':');
        self.push_digits(dt.second() as u32, 2);
        self.push_fraction(dt.subsec_nanosecond() as u32 / 1_000);
    }

    /// `.` and the microseconds without trailing zeros; nothing for 0.
    fn push_fraction(&mut self, micros: u32) {
        if micros == 0 {
            return;
        }
        let (mut value, mut width) = (micros, MAX_FRACTION_DIGITS as u32);
        while value % 10 == 0 {
            value /= 10;
            width -= 1;
        }
        self.push(b'.');
        self.push_digits(value, width);
    }

    /// `value` as exactly `width` decimal digits, zero-padded.
    fn push_digits(&mut self, value: u32, width: u32) {
        for place in (0..width).rev() {
            self.push(b'0' + (value / 10u32.pow(place) % 10) as u8);
        }
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever pushed.
        std::str::from_utf8(self.bytes.get(..self.len).unwrap_or_default()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Option<i64> {
        Timestamp::parse_canonical(text).map(Timestamp::micros)
    }

    #[test]
    fn range_constants_match_the_calendar() {
        let min = date(0, 1, 1).at(0, 0, 0, 0).duration_since(UNIX_EPOCH);
        let max = date(9999, 12, 31)
            .at(23, 59, 59, 999_999_000)
            .duration_since(UNIX_EPOCH);
        assert_eq!(min.as_micros(), i128::from(MIN_MICROS));
        assert_eq!(max.as_micros(), i128::from(MAX_MICROS));
        assert_eq!(Timestamp::MIN.to_string(), "0000-01-01 00:00:00");
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31 23:59:59.999999");
        assert_eq!(Timestamp::from_micros(MIN_MICROS - 1), None);
        assert_eq!(Timestamp::from_micros(MAX_MICROS + 1), None);
    }

    #[test]
    fn parses_canonical_forms() {
        assert_eq!(parse("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse("1970-01-01 00:00:01.5"), Some(1_500_000));
        assert_eq!(parse("1969-12-31 23:59:59.999999"), Some(-1));
        assert_eq!(parse("2025-06-22 10:30:00"), Some(1_750_588_200_000_000));
        assert_eq!(
            parse("2024-02-29 00:00:00.000001"),
            Some(1_709_164_800_000_001)
        );
    }

    #[test]
    fn rejects_non_canonical_forms() {
        for text in [
            "",
            "2025-06-22T10:30:00",
            "2025-06-22 10:30",
            "2025-06-22 10:30:00Z",
            "2025-06-22 10:30:00.",
            "2025-06-22 10:30:00.50",
            "2025-06-22 10:30:00.0",
            "2025-06-22 10:30:00.1234567",
            "2025-13-01 00:00:00",
            "2025-02-29 00:00:00",
            "2025-06-31 00:00:00",
            "2025-06-22 24:00:00",
            "2025-06-22 10:60:00",
            "2025-06-22 10:30:60",
            "25-06-22 10:30:00",
            "+025-06-22 10:30:00",
            "2025-6-22 10:30:00 ",
            "2025/06/22 10:30:00",
            "2025-06-22  10:30:0",
            "２０２５-06-22 10:30:00",
        ] {
            assert_eq!(parse(text), None, "{text:?} must not parse");
        }
    }

    #[test]
    fn display_trims_fraction_zeros() {
        let show = |micros| Timestamp::from_micros(micros).map(|t| t.to_string());
        assert_eq!(show(0).as_deref(), Some("1970-01-01 00:00:00"));
        assert_eq!(show(100_000).as_deref(), Some("1970-01-01 00:00:00.1"));
        assert_eq!(show(120).as_deref(), Some("1970-01-01 00:00:00.00012"));
        assert_eq!(show(-1).as_deref(), Some("1969-12-31 23:59:59.999999"));
    }
}

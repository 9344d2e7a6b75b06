//! Human units in scenario and config files: sizes (`250kB`, `1MiB`), rates (`10Mbit/s`, `2MB/s`) and
//! durations (`150ms`, `10s`).
//!
//! Decimal SI prefixes mean powers of 1000 (`kB` = 1 000 bytes, `MB` = 10⁶); binary ones
//! powers of 1024 (`KiB`, `MiB`, `GiB`). Rates are kept in bits per second. Numbers may have
//! a fraction (`2.5MB`); the result is rounded to the nearest unit (byte, bit/s, nanosecond).

use core::fmt;

use crate::time::Span;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A number of bytes, written `100MB`, `250kB`, `64KiB` or a bare integer (bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

/// A rate in bits per second, written `10Mbit/s`, `2MB/s`, `500kbps`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct BitRate(pub u64);

/// A duration, written `150ms`, `10s`, `2min`, `1h`, `20us`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub Span);

const SIZE_UNITS: &[(&str, f64)] = &[
    ("B", 1.0),
    ("kB", 1e3),
    ("KB", 1e3),
    ("MB", 1e6),
    ("GB", 1e9),
    ("KiB", 1024.0),
    ("MiB", 1048576.0),
    ("GiB", 1073741824.0),
];

const RATE_UNITS: &[(&str, f64)] = &[
    ("bit/s", 1.0),
    ("kbit/s", 1e3),
    ("Mbit/s", 1e6),
    ("Gbit/s", 1e9),
    ("bps", 1.0),
    ("kbps", 1e3),
    ("Mbps", 1e6),
    ("Gbps", 1e9),
    ("B/s", 8.0),
    ("kB/s", 8e3),
    ("MB/s", 8e6),
    ("GB/s", 8e9),
    ("KiB/s", 8.0 * 1024.0),
    ("MiB/s", 8.0 * 1048576.0),
];

const TIME_UNITS: &[(&str, f64)] =
    &[("ns", 1.0), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("min", 60e9), ("h", 3600e9)];

/// Splits `"2.5 MB"` into (2.5, "MB") and scales by the unit's factor.
fn parse_with(text: &str, units: &[(&str, f64)], what: &str, bare_ok: bool) -> Result<f64, String> {
    let s = text.trim();
    if s.starts_with('-') {
        return Err(format!("invalid {what} '{text}': must not be negative"));
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_')).unwrap_or(s.len());
    let (num, unit) = (s[..split].replace('_', ""), s[split..].trim());
    let value: f64 =
        num.parse().map_err(|_| format!("invalid {what} '{text}': expected a number and a unit"))?;
    if unit.is_empty() {
        if bare_ok {
            return Ok(value);
        }
        let names: Vec<&str> = units.iter().map(|u| u.0).collect();
        return Err(format!("invalid {what} '{text}': needs a unit ({})", names.join(", ")));
    }
    match units.iter().find(|(name, _)| *name == unit) {
        Some((_, factor)) => Ok(value * factor),
        None => {
            let names: Vec<&str> = units.iter().map(|u| u.0).collect();
            Err(format!("invalid {what} '{text}': unknown unit '{unit}' (use {})", names.join(", ")))
        }
    }
}

fn to_u64(v: f64, text: &str, what: &str) -> Result<u64, String> {
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("invalid {what} '{text}': out of range"));
    }
    Ok(v.round() as u64)
}

impl Bytes {
    /// Parses a size: a whole number of bytes (`2.5kB` is, `1.5` is not).
    pub fn parse(text: &str) -> Result<Self, String> {
        let v = parse_with(text, SIZE_UNITS, "size", true)?;
        // A few ulps of slack: `1.234567891GB` is a whole number that f64 scaling may miss.
        if (v - v.round()).abs() > (v * 4.0 * f64::EPSILON).max(1e-6) {
            return Err(format!("invalid size '{text}': not a whole number of bytes"));
        }
        to_u64(v, text, "size").map(Self)
    }
}

impl BitRate {
    /// Parses a rate.
    pub fn parse(text: &str) -> Result<Self, String> {
        to_u64(parse_with(text, RATE_UNITS, "rate", false)?, text, "rate").map(Self)
    }
}

impl Duration {
    /// Parses a duration.
    pub fn parse(text: &str) -> Result<Self, String> {
        to_u64(parse_with(text, TIME_UNITS, "duration", false)?, text, "duration")
            .map(|ns| Self(Span::from_nanos(ns)))
    }

    /// Seconds as a float.
    pub fn secs(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scaled(self.0, ["GB", "MB", "kB", "B"]))
    }
}

impl fmt::Display for BitRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scaled(self.0, ["Gbit/s", "Mbit/s", "kbit/s", "bit/s"]))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&scaled(self.0.as_nanos(), ["s", "ms", "us", "ns"]))
    }
}

/// `v` in the largest of the units (10⁹, 10⁶, 10³, 1 of the base) it reaches, exactly.
fn scaled(v: u64, units: [&str; 4]) -> String {
    match [1_000_000_000, 1_000_000, 1_000].iter().zip(units).find(|(scale, _)| v >= **scale) {
        Some((&scale, unit)) => format!("{}{unit}", trim(v, scale)),
        None => format!("{v}{}", units[3]),
    }
}

/// `whole` units of `scale` with the remainder as decimals, no trailing zeros: exact, so a
/// value written out and parsed back is the same value (a sweep's policy overrides rely on it).
fn trim(v: u64, scale: u64) -> String {
    let (whole, frac) = (v / scale, v % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let digits = scale.ilog10() as usize;
    let decimals = format!("{frac:0digits$}");
    format!("{whole}.{}", decimals.trim_end_matches('0'))
}

struct UnitVisitor<T>(fn(&str) -> Result<T, String>, &'static str, bool);

impl<T> Visitor<'_> for UnitVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.0)(v).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        if self.2 { (self.0)(&v.to_string()).map_err(E::custom) } else { self.visit_str(&v.to_string()) }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        Err(E::custom(format!("invalid value {v}: must not be negative")))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        if v < 0.0 {
            return Err(E::custom(format!("invalid value {v}: must not be negative")));
        }
        self.visit_str(&v.to_string())
    }
}

macro_rules! serde_unit {
    ($t:ty, $expecting:literal, $bare:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(UnitVisitor(<$t>::parse, $expecting, $bare))
            }
        }
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

serde_unit!(Bytes, "a size such as 250kB or 100MB", true);
serde_unit!(BitRate, "a rate such as 10Mbit/s or 2MB/s", false);
serde_unit!(Duration, "a duration such as 150ms or 10s", false);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_decimal_and_binary_prefixes() {
        assert_eq!(Bytes::parse("100MB"), Ok(Bytes(100_000_000)));
        assert_eq!(Bytes::parse("250kB"), Ok(Bytes(250_000)));
        assert_eq!(Bytes::parse("1MiB"), Ok(Bytes(1_048_576)));
        assert_eq!(Bytes::parse("2.5 KiB"), Ok(Bytes(2_560)));
        assert_eq!(Bytes::parse("5000"), Ok(Bytes(5_000)));
        assert!(Bytes::parse("12XB").unwrap_err().contains("unknown unit 'XB'"));
        assert!(Bytes::parse("MB").is_err());
    }

    #[test]
    fn rates_are_bits_per_second() {
        assert_eq!(BitRate::parse("10Mbit/s"), Ok(BitRate(10_000_000)));
        assert_eq!(BitRate::parse("2MB/s"), Ok(BitRate(16_000_000)));
        assert_eq!(BitRate::parse("500kbps"), Ok(BitRate(500_000)));
        assert!(BitRate::parse("10").unwrap_err().contains("needs a unit"));
    }

    #[test]
    fn durations_become_spans() {
        assert_eq!(Duration::parse("150ms"), Ok(Duration(Span::from_millis(150))));
        assert_eq!(Duration::parse("10s"), Ok(Duration(Span::from_secs(10))));
        assert_eq!(Duration::parse("2min"), Ok(Duration(Span::from_secs(120))));
        assert_eq!(Duration::parse("0.5s"), Ok(Duration(Span::from_millis(500))));
    }

    #[test]
    fn display_round_trips_through_parse() {
        for s in ["100MB", "250kB", "5kB", "1.5GB", "999B"] {
            let b = Bytes::parse(s).unwrap();
            assert_eq!(Bytes::parse(&b.to_string()), Ok(b), "{s}");
        }
        for s in ["10Mbit/s", "2.5Gbit/s", "64kbit/s"] {
            let r = BitRate::parse(s).unwrap();
            assert_eq!(BitRate::parse(&r.to_string()), Ok(r));
        }
        for s in ["150ms", "10s", "20us", "7ns"] {
            let d = Duration::parse(s).unwrap();
            assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
    }

    proptest::proptest! {
        // Exact up to 2^50 units (about 13 days in nanoseconds, a petabyte in bytes): beyond
        // that an f64 no longer holds every integer the text can name.
        #[test]
        fn every_value_survives_display_and_parse(v in 0u64..(1 << 50)) {
            proptest::prop_assert_eq!(Bytes::parse(&Bytes(v).to_string()), Ok(Bytes(v)));
            proptest::prop_assert_eq!(BitRate::parse(&BitRate(v).to_string()), Ok(BitRate(v)));
            let d = Duration(Span::from_nanos(v));
            proptest::prop_assert_eq!(Duration::parse(&d.to_string()), Ok(d));
        }
    }
}

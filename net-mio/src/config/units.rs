//! Durations and rates with human units, as config values.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::Rate;

/// A duration: a number of seconds or a string with a unit.
#[derive(Debug)]
pub(super) struct Secs(pub(super) Duration);

/// A rate as written: a number of bytes per second or a string with a unit (0 allowed here,
/// refused with a named error by `resolve`).
#[derive(Debug)]
pub(super) struct RawRate(pub(super) u64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr("a duration such as 20, \"20s\" or \"500ms\"", parse_duration)).map(Secs)
    }
}

impl<'de> Deserialize<'de> for RawRate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumOrStr("a rate such as 2097152, \"2MiB/s\" or \"8Mbit/s\"", parse_rate))
            .map(RawRate)
    }
}

/// Visits a number (taken as the base unit) or a string parsed by `.1`.
struct NumOrStr<T>(&'static str, fn(&str) -> Result<T, String>);

impl<T: FromF64> Visitor<'_> for NumOrStr<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        (self.1)(&v.to_string()).map_err(E::custom)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        (self.1)(&v.to_string()).map_err(E::custom)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::from_f64(v).ok_or_else(|| E::custom(format!("{v} is not a valid value; expected {}", self.0)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        (self.1)(v).map_err(E::custom)
    }
}

trait FromF64: Sized {
    fn from_f64(v: f64) -> Option<Self>;
}

impl FromF64 for Duration {
    fn from_f64(v: f64) -> Option<Self> {
        Duration::try_from_secs_f64(v).ok()
    }
}

impl FromF64 for u64 {
    fn from_f64(v: f64) -> Option<Self> {
        (0.0..1.8e19).contains(&v).then_some(v as u64)
    }
}

/// Parses `20`, `20s`, `1.5s`, `500ms`, `2m`, `1h` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = split_number(s)?;
    let secs = match unit {
        "" | "s" | "sec" | "secs" => num,
        "ms" => num / 1000.0,
        "m" | "min" => num * 60.0,
        "h" => num * 3600.0,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is out of range"))
}

/// Parses a rate: `1000`, `2MiB/s`, `500 kB/s`, `1.5MB`, `8Mbit/s` into bytes per second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let (num, unit) = split_number(s)?;
    let unit = unit.strip_suffix("/s").or_else(|| unit.strip_suffix("ps")).unwrap_or(unit).trim();
    let factor: f64 = match unit {
        "" | "B" => 1.0,
        "kB" | "KB" | "k" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KiB" | "kiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "bit" => 1.0 / 8.0,
        "kbit" | "Kbit" => 1e3 / 8.0,
        "Mbit" => 1e6 / 8.0,
        "Gbit" => 1e9 / 8.0,
        _ => {
            return Err(format!(
                "'{s}': unknown unit '{unit}' (use B, kB, KiB, MB, MiB, GB, GiB or kbit, Mbit, Gbit, optionally with /s)"
            ));
        }
    };
    let bytes = num * factor;
    if !(0.0..1.8e19).contains(&bytes) {
        return Err(format!("'{s}' is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Splits `"2.5 MiB/s"` into `(2.5, "MiB/s")`; the number must be non-negative and finite.
fn split_number(s: &str) -> Result<(f64, &str), String> {
    let s = s.trim();
    let end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let num: f64 = num.parse().map_err(|_| format!("'{s}' does not start with a number"))?;
    if !num.is_finite() {
        return Err(format!("'{s}' is out of range"));
    }
    Ok((num, unit.trim()))
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        human_rate(self.0, f)
    }
}

/// Formats bytes per second with a binary unit (`2.00 MiB/s`).
fn human_rate(bps: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    const UNITS: [&str; 4] = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
    let mut v = bps as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { write!(f, "{bps} B/s") } else { write!(f, "{v:.2} {}", UNITS[u]) }
}

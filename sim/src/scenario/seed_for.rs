//! `seed_for:`, how long a viewer stays to serve after its download is complete: a duration
//! (`2min`: every viewer stays exactly that long) or `{ exponential: 2min }` (independently
//! exponential with that mean; Qiu and Srikant's model of seeds that leave). `{ fixed: 2min }`
//! is the first written out.

use core::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::units::Duration;

/// How long a viewer serves after it completed; absent from a scenario, it stays until the
/// run ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedFor {
    /// Exactly this long.
    Fixed(Duration),
    /// Exponentially distributed with this mean.
    Exponential(Duration),
}

impl SeedFor {
    /// The stay as written (the fixed time, or the mean).
    pub fn time(self) -> Duration {
        match self {
            Self::Fixed(d) | Self::Exponential(d) => d,
        }
    }
}

impl<'de> Deserialize<'de> for SeedFor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SeedForVisitor)
    }
}

impl Serialize for SeedFor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        match self {
            Self::Fixed(d) => m.serialize_entry("fixed", d)?,
            Self::Exponential(d) => m.serialize_entry("exponential", d)?,
        }
        m.end()
    }
}

const KINDS: &[&str] = &["fixed", "exponential"];

struct SeedForVisitor;

impl<'de> Visitor<'de> for SeedForVisitor {
    type Value = SeedFor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as 2min, or { exponential: 2min }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<SeedFor, E> {
        Duration::parse(v).map(SeedFor::Fixed).map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SeedFor, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("empty map: write a duration or { exponential: 2min }"));
        };
        let value = match key.as_str() {
            "fixed" => SeedFor::Fixed(map.next_value()?),
            "exponential" => SeedFor::Exponential(map.next_value()?),
            other => return Err(de::Error::unknown_variant(other, KINDS)),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!("'{extra}': give one distribution")));
        }
        Ok(value)
    }
}

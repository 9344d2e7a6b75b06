//! `arrivals:` as plain YAML (`all_at_once` or a one-key map), not YAML `!tags`.

use core::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::Arrivals;
use crate::units::Duration;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Uniform {
    window: Duration,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Poisson {
    rate: f64,
}

/// The value of `{ all_at_once: }`, which must be empty: a window or rate given there
/// would otherwise be dropped without a word.
struct NoParameters;

impl<'de> Deserialize<'de> for NoParameters {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Empty;
        impl<'de> Visitor<'de> for Empty {
            type Value = NoParameters;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("nothing (all_at_once takes no parameters)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<NoParameters, E> {
                Ok(NoParameters)
            }
            fn visit_none<E: de::Error>(self) -> Result<NoParameters, E> {
                Ok(NoParameters)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NoParameters, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(NoParameters),
                    Some(key) => Err(de::Error::custom(format!("'{key}': all_at_once takes no parameters"))),
                }
            }
        }
        d.deserialize_any(Empty)
    }
}

const KINDS: &[&str] = &["all_at_once", "uniform", "poisson", "at"];

struct ArrivalsVisitor;

impl<'de> Visitor<'de> for ArrivalsVisitor {
    type Value = Arrivals;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("all_at_once, { uniform: { window: ... } }, { poisson: { rate: ... } } or { at: [...] }")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Arrivals, E> {
        match v {
            "all_at_once" => Ok(Arrivals::AllAtOnce),
            other => Err(E::unknown_variant(other, KINDS)),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Arrivals, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("empty map: name one arrival process"));
        };
        let value = match key.as_str() {
            "all_at_once" => {
                map.next_value::<NoParameters>()?;
                Arrivals::AllAtOnce
            }
            "uniform" => Arrivals::Uniform { window: map.next_value::<Uniform>()?.window },
            "poisson" => Arrivals::Poisson { rate: map.next_value::<Poisson>()?.rate },
            "at" => Arrivals::At(map.next_value::<Vec<Duration>>()?),
            other => return Err(de::Error::unknown_variant(other, KINDS)),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!("'{extra}': only one arrival process may be given")));
        }
        Ok(value)
    }
}

impl<'de> Deserialize<'de> for Arrivals {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ArrivalsVisitor)
    }
}

/// Written as it is read: `all_at_once`, or a one-key map. (A derived impl wrote YAML
/// `!tags`, which the reader above refuses, so a scenario written out could not be read
/// back; `pdtp-node lab` writes the scenario it runs.)
impl Serialize for Arrivals {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Arrivals::AllAtOnce => s.serialize_str("all_at_once"),
            &Arrivals::Uniform { window } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("uniform", &Uniform { window })?;
                m.end()
            }
            &Arrivals::Poisson { rate } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("poisson", &Poisson { rate })?;
                m.end()
            }
            Arrivals::At(times) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("at", times)?;
                m.end()
            }
        }
    }
}

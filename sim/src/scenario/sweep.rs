//! `sweep:`, a grid of runs: every variant × chunk size × policy × tracker processing time ×
//! seed.
//!
//! Policies and variants are *overlays*: a name and keys laid over the scenario (a policy's
//! keys over its `policy:` section, a variant's over the whole scenario) and parsed again by
//! the same types, so no key list is written twice and an unknown key is named as usual. A
//! variant's key may be a dotted path (`content.size: 50MB`, `arrivals.uniform.window: 2s`)
//! to set one value deep in the scenario; a plain key replaces its whole value (`arrivals:
//! { poisson: { rate: 5 } }`). Variants make a family of scenarios out of one file: a policy
//! tuned on one family can be judged on another it never saw.

use serde::{Deserialize, Deserializer, Serialize};

use super::{PolicySpec, Scenario, ScenarioError};
use crate::units::{Bytes, Duration};

/// A grid of runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sweep {
    /// Scenario variants (default: the scenario itself).
    #[serde(default, deserialize_with = "axis::named_variants")]
    pub variants: Vec<Named>,
    /// Chunk sizes (default: the content's).
    #[serde(default, deserialize_with = "axis::sizes")]
    pub chunk_sizes: Vec<Bytes>,
    /// Policies (default: the scenario's).
    #[serde(default, deserialize_with = "axis::named_policies")]
    pub policies: Vec<Named>,
    /// Seeds (default: the scenario's).
    #[serde(default, deserialize_with = "axis::seeds")]
    pub seeds: Vec<u64>,
    /// Tracker processing times per message (default: the scenario's `tracker.processing`).
    /// When given, each cell's policy label gets ` @<processing>` appended.
    #[serde(default, deserialize_with = "axis::processing")]
    pub tracker_processing: Vec<Duration>,
}

/// A named overlay: a sweep's policy (keys of `policy:`) or variant (keys of the scenario).
#[derive(Clone, Debug, PartialEq)]
pub struct Named {
    /// Label in reports.
    pub name: String,
    /// The keys it sets, as written.
    pub overrides: serde_norway::Mapping,
}

/// One cell of a sweep: its parameters and the concrete scenario to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// The cell's variant (`default` when the sweep names none).
    pub variant: String,
    /// The cell's chunk size.
    pub chunk_size: Bytes,
    /// The cell's policy name (`default` when the sweep names none).
    pub policy: String,
    /// The cell's seed.
    pub seed: u64,
    /// The scenario with the cell's parameters applied and `sweep` removed.
    pub scenario: Scenario,
}

/// Grid axes given as lists: an empty one would quietly mean "the scenario's own value",
/// which leaving the key out already says. (The YAML error's path stops at `sweep`, so each
/// axis names itself.)
mod axis {
    use serde::{Deserialize, Deserializer};

    use super::{Bytes, Duration, Named};

    fn non_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
        axis: &str,
    ) -> Result<Vec<T>, D::Error> {
        let v = Vec::<T>::deserialize(d)?;
        if v.is_empty() {
            let why = format!("{axis} is an empty list (leave the key out to use the scenario's own value)");
            return Err(serde::de::Error::custom(why));
        }
        Ok(v)
    }

    pub(super) fn named_variants<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Named>, D::Error> {
        non_empty(d, "variants")
    }

    pub(super) fn sizes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Bytes>, D::Error> {
        non_empty(d, "chunk_sizes")
    }

    pub(super) fn named_policies<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Named>, D::Error> {
        non_empty(d, "policies")
    }

    pub(super) fn seeds<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        non_empty(d, "seeds")
    }

    pub(super) fn processing<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        non_empty(d, "tracker_processing")
    }
}

impl Named {
    fn default_axis() -> Self {
        Self { name: "default".into(), overrides: serde_norway::Mapping::new() }
    }

    /// `base` with this policy's keys set; an unknown key or a value of the wrong kind is
    /// named (`unknown field `chnk`, expected one of ...`).
    pub fn apply_policy(&self, base: &PolicySpec) -> Result<PolicySpec, String> {
        if self.overrides.is_empty() {
            return Ok(base.clone());
        }
        let merged = overlay(base, &self.overrides)?;
        serde_norway::from_value(merged).map_err(|e| e.to_string())
    }

    /// `base` (without its sweep) with this variant's keys set, checked like a file: the
    /// error names the key (`peers[0].upload: must be > 0`).
    pub fn apply_scenario(&self, base: &Scenario) -> Result<Scenario, String> {
        let mut plain = base.clone();
        plain.sweep = None;
        if self.overrides.is_empty() {
            return Ok(plain);
        }
        if self.overrides.contains_key("sweep") {
            return Err("sweep: a variant cannot hold a sweep".into());
        }
        let merged = overlay(&plain, &self.overrides)?;
        let s: Scenario = serde_norway::from_value(merged).map_err(|e| e.to_string().replace('\n', " "))?;
        s.validate()?;
        Ok(s)
    }
}

/// `base` written out as YAML values with `overrides` laid over it: a plain key replaces its
/// value, a dotted key (`content.size`) sets one value inside nested maps. Units print
/// exactly (`units::tests`), so the base survives the round trip.
fn overlay<T: Serialize>(base: &T, overrides: &serde_norway::Mapping) -> Result<serde_norway::Value, String> {
    use serde_norway::Value;
    let mut merged = match serde_norway::to_value(base) {
        Ok(v @ Value::Mapping(_)) => v,
        Ok(_) | Err(_) => return Err("the base cannot be written out".into()),
    };
    for (k, v) in overrides {
        let key = k.as_str().ok_or_else(|| format!("{k:?}: a key must be a string"))?;
        let path: Vec<&str> = key.split('.').collect();
        let mut at = &mut merged;
        for (depth, part) in path.iter().enumerate() {
            let Value::Mapping(map) = at else {
                return Err(format!("{key}: '{}' is not a map", path[..depth].join(".")));
            };
            if depth + 1 == path.len() {
                map.insert(Value::String((*part).to_owned()), v.clone());
                break;
            }
            at = map
                .entry(Value::String((*part).to_owned()))
                .or_insert_with(|| Value::Mapping(Default::default()));
            if at.is_null() {
                *at = Value::Mapping(Default::default());
            }
        }
    }
    Ok(merged)
}

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut overrides = serde_norway::Mapping::deserialize(d)?;
        let name = match overrides.remove("name") {
            Some(serde_norway::Value::String(n)) => n,
            Some(_) => return Err(D::Error::custom("name: expected a string")),
            None => return Err(D::Error::missing_field("name")),
        };
        Ok(Self { name, overrides })
    }
}

impl Serialize for Named {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut all = serde_norway::Mapping::new();
        all.insert("name".into(), self.name.clone().into());
        all.extend(self.overrides.clone());
        all.serialize(s)
    }
}

impl Scenario {
    /// Expands `sweep` into concrete cells (one cell, the scenario itself, without a sweep).
    /// Fails only for an overlay that [`Scenario::validate`] would have refused.
    pub fn cells(&self) -> Result<Vec<Cell>, ScenarioError> {
        let Some(sweep) = &self.sweep else {
            let mut base = self.clone();
            base.sweep = None;
            return Ok(vec![Cell {
                variant: "default".into(),
                chunk_size: self.content.chunk_size,
                policy: "default".into(),
                seed: self.seed,
                scenario: base,
            }]);
        };
        let one = [Named::default_axis()];
        let variants: &[Named] = if sweep.variants.is_empty() { &one } else { &sweep.variants };
        let policies: &[Named] = if sweep.policies.is_empty() { &one } else { &sweep.policies };
        let processing: Vec<Option<Duration>> = if sweep.tracker_processing.is_empty() {
            vec![None]
        } else {
            sweep.tracker_processing.iter().copied().map(Some).collect()
        };
        let mut cells = Vec::new();
        for v in variants {
            let mut base = v
                .apply_scenario(self)
                .map_err(|e| ScenarioError(format!("sweep.variants ('{}'): {e}", v.name)))?;
            if !sweep.variants.is_empty() {
                base.name = Some(format!("{}/{}", self.label(), v.name));
            }
            let sizes = if sweep.chunk_sizes.is_empty() {
                vec![base.content.chunk_size]
            } else {
                sweep.chunk_sizes.clone()
            };
            let seeds = if sweep.seeds.is_empty() { vec![base.seed] } else { sweep.seeds.clone() };
            for &size in &sizes {
                for p in policies {
                    for &work in &processing {
                        for &seed in &seeds {
                            let mut s = base.clone();
                            s.content.chunk_size = size;
                            s.seed = seed;
                            s.policy = p
                                .apply_policy(&s.policy)
                                .map_err(|e| ScenarioError(format!("sweep.policies ('{}'): {e}", p.name)))?;
                            let mut policy = p.name.clone();
                            if let Some(w) = work {
                                s.tracker.processing = w;
                                policy = format!("{policy} @{w}");
                            }
                            cells.push(Cell {
                                variant: v.name.clone(),
                                chunk_size: size,
                                policy,
                                seed,
                                scenario: s,
                            });
                        }
                    }
                }
            }
        }
        Ok(cells)
    }
}

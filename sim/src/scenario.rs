//! Scenario files: what to simulate, in YAML with human units (schema: `docs/simulator.md`).
//!
//! Loading is two steps: serde parses the YAML into typed records and rejects unknown keys
//! (naming the key and where it was), then [`Scenario::validate`] checks values and names the
//! field that is wrong. Neither step panics on any input.

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use pdtp_core::policy::PolicySpec;

use crate::units::{BitRate, Bytes, Duration};

mod arrivals;
mod seed_for;
mod sweep;
mod validate;

pub use seed_for::SeedFor;
pub use sweep::{Cell, Named, Sweep};

/// One simulation (or, with `sweep`, a grid of them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// A name for reports; defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// The run's only source of randomness (`--seed` overrides it).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated time after which the run stops, finished or not.
    #[serde(default = "default_time_limit")]
    pub time_limit: Duration,
    /// What is distributed.
    pub content: Content,
    /// The origin's seeds.
    pub seeds: Seeds,
    /// Viewer classes.
    pub peers: Vec<PeerClass>,
    /// When viewers arrive.
    #[serde(default)]
    pub arrivals: Arrivals,
    /// Viewers leaving (and perhaps returning) before the end.
    #[serde(default)]
    pub churn: Option<Churn>,
    /// How long a viewer stays to serve once its download is complete (absent: until the
    /// run ends). `pdtp-node get --seed-for` is the same setting on a real viewer.
    #[serde(default)]
    pub seed_for: Option<SeedFor>,
    /// The tracker's scheduling policy (the vocabulary `pdtp-node`'s config shares).
    #[serde(default)]
    pub policy: PolicySpec,
    /// The tracker's link and processing cost.
    #[serde(default)]
    pub tracker: TrackerSpec,
    /// Per-transfer fault probabilities.
    #[serde(default)]
    pub faults: FaultSpec,
    /// What links carry besides payload: `ideal` (nothing) or `tcp` (frame headers and
    /// acknowledgements; docs/simulator.md, "The wire").
    #[serde(default)]
    pub wire: crate::network::Wire,
    /// A grid of runs over chunk sizes × policies × seeds.
    #[serde(default)]
    pub sweep: Option<Sweep>,
}

/// The content: an on-demand file, or a live stream when `live` is present.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// File size (on demand only; a live stream's size is bitrate × duration).
    #[serde(default)]
    pub size: Option<Bytes>,
    /// Chunk size.
    pub chunk_size: Bytes,
    /// Present for a live stream.
    #[serde(default)]
    pub live: Option<Live>,
}

/// Live-stream parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Live {
    /// The stream's bitrate.
    pub bitrate: BitRate,
    /// Playback buffer: how far behind the live edge viewers start playing.
    pub buffer: Duration,
    /// How long the stream runs.
    pub duration: Duration,
}

/// The origin's seeds (all identical).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seeds {
    /// How many seeds.
    #[serde(default = "one")]
    pub count: u32,
    /// Upload capacity of each seed.
    pub upload: BitRate,
    /// Download capacity of each seed.
    #[serde(default = "default_seed_download")]
    pub download: BitRate,
    /// One-way access latency of each seed.
    #[serde(default = "default_seed_latency")]
    pub latency: Duration,
    /// Each seed states `upload` to the tracker, as `pdtp-node seed --uplink` does, so it is
    /// scheduled at that rate from its first copy (default: no, the tracker measures it).
    #[serde(default)]
    pub states_uplink: bool,
}

/// A class of viewers with the same capacities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerClass {
    /// A label for reports; defaults to `class<i>`.
    #[serde(default)]
    pub name: Option<String>,
    /// How many viewers of this class.
    pub count: u32,
    /// Upload capacity.
    pub upload: BitRate,
    /// Download capacity.
    pub download: BitRate,
    /// One-way access latency.
    #[serde(default = "default_peer_latency")]
    pub latency: Duration,
}

/// When viewers arrive.
///
/// Written `all_at_once`, `{ uniform: { window: 10s } }`, `{ poisson: { rate: 50 } }` or
/// `{ at: [0s, 1.5s, …] }`.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Arrivals {
    /// Everyone at time zero.
    #[default]
    AllAtOnce,
    /// Independently uniform over `[0, window)`.
    Uniform {
        /// The arrival window.
        window: Duration,
    },
    /// A Poisson process of `rate` arrivals per second.
    Poisson {
        /// Mean arrivals per second.
        rate: f64,
    },
    /// Given times: viewer `k` (in the order the `peers:` classes list them) arrives at the
    /// `k`-th, one per viewer. A recorded trace replayed; the lab runs the model's other
    /// seeds on the arrivals its real viewers follow (docs/lab.md).
    At(Vec<Duration>),
}

/// Viewers leaving early: each viewer independently leaves with probability `leave`, after
/// an exponentially distributed time online (mean `stay`); a leaver returns with probability
/// `rejoin` after an exponential absence (mean `away`), keeping what it had stored.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// Probability that a viewer leaves before the run ends.
    pub leave: f64,
    /// Mean time online before leaving.
    pub stay: Duration,
    /// Probability that a leaver comes back.
    #[serde(default)]
    pub rejoin: f64,
    /// Mean absence of a returning viewer.
    #[serde(default = "default_away")]
    pub away: Duration,
}

/// The tracker's network link and per-message processing cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackerSpec {
    /// CPU time per message handled; messages queue behind each other.
    pub processing: Duration,
    /// Upload and download capacity of the tracker's link.
    pub bandwidth: BitRate,
    /// One-way access latency.
    pub latency: Duration,
}

/// Per-transfer fault probabilities (chunk data only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultSpec {
    /// Probability that a chunk transfer fails (the connection breaks).
    pub failure: f64,
    /// Probability that a chunk arrives corrupted.
    pub corruption: f64,
}

/// A scenario that could not be loaded: one line naming the file and the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioError(pub String);

impl Default for TrackerSpec {
    fn default() -> Self {
        Self {
            processing: Duration(pdtp_core::Span::from_micros(20)),
            bandwidth: BitRate(1_000_000_000),
            latency: Duration(pdtp_core::Span::from_millis(5)),
        }
    }
}

fn default_seed() -> u64 {
    1
}
fn default_time_limit() -> Duration {
    Duration(pdtp_core::Span::from_secs(3600))
}
fn one() -> u32 {
    1
}
fn default_seed_download() -> BitRate {
    BitRate(1_000_000_000)
}
fn default_seed_latency() -> Duration {
    Duration(pdtp_core::Span::from_millis(5))
}
fn default_peer_latency() -> Duration {
    Duration(pdtp_core::Span::from_millis(20))
}
fn default_away() -> Duration {
    Duration(pdtp_core::Span::from_secs(30))
}

/// Nesting a scenario may use in flow style (`[...]`, `{...}`); the parser's time grows with
/// the square of the depth, so a file of a few hundred kilobytes of brackets would take
/// minutes. Real scenarios nest three or four levels.
const MAX_NESTING: usize = 64;

/// The line on which flow brackets first nest deeper than [`MAX_NESTING`], if they do.
/// Brackets inside quotes (on one line) and comments do not count; a plain scalar's do, which
/// can only make a real (shallow) scenario look deeper by the few it holds.
fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut line, mut quote, mut comment, mut prev) = (0usize, 1usize, None, false, ' ');
    let mut escaped = false;
    for c in text.chars() {
        match c {
            '\n' => {
                // Quotes are closed at the line's end too: an apostrophe in a plain scalar
                // (`name: viewer's`) must not hide the rest of the file.
                line += 1;
                comment = false;
                quote = None;
                escaped = false;
            }
            _ if comment => {}
            // `\"` inside a double-quoted string does not close it.
            _ if escaped => escaped = false,
            '\\' if quote == Some('"') => escaped = true,
            '\'' | '"' if quote == Some(c) => quote = None,
            _ if quote.is_some() => {}
            // A quote opens a quoted scalar only at a token's start: an apostrophe inside a
            // plain scalar (`name: Bob's laptop`) is just a character.
            '\'' | '"' if prev.is_whitespace() || matches!(prev, '[' | '{' | ',' | ':') => quote = Some(c),
            '#' if prev.is_whitespace() => comment = true,
            '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        prev = c;
    }
    None
}

impl Scenario {
    /// Reads, parses and validates a scenario file; errors start with the path.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let cannot = |why: String| ScenarioError(format!("{}: cannot read: {why}", path.display()));
        // A FIFO or a device would block or never end; a scenario is a regular file.
        let meta = std::fs::metadata(path).map_err(|e| cannot(e.to_string()))?;
        if !meta.is_file() {
            return Err(cannot("not a regular file".into()));
        }
        let text = std::fs::read_to_string(path).map_err(|e| cannot(e.to_string()))?;
        let mut s = Self::from_yaml(&text, &path.display().to_string())?;
        if s.name.is_none() {
            s.name = path.file_stem().map(|n| n.to_string_lossy().into_owned());
        }
        Ok(s)
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        // Editors on some systems start a UTF-8 file with a byte-order mark; the parser would
        // read it as part of the first key.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if let Some(line) = too_deep(text) {
            return Err(ScenarioError(format!(
                "{origin}: line {line}: brackets nested more than {MAX_NESTING} deep"
            )));
        }
        let s: Scenario = serde_norway::from_str(text)
            .map_err(|e| ScenarioError(format!("{origin}: {}", describe_yaml_error(&e))))?;
        s.validate().map_err(|e| ScenarioError(format!("{origin}: {e}")))?;
        Ok(s)
    }

    /// Total number of viewers over all classes.
    pub fn peer_count(&self) -> u64 {
        self.peers.iter().map(|c| u64::from(c.count)).sum()
    }

    /// Each viewer's class and its index in `peers`, in viewer order: the engine numbers
    /// viewers class by class, so viewer `p` (`peer<p>`, record `p`) is the `p`-th item.
    pub fn viewer_classes(&self) -> impl Iterator<Item = (usize, &PeerClass)> {
        self.peers.iter().enumerate().flat_map(|(i, c)| std::iter::repeat_n((i, c), c.count as usize))
    }

    /// The content's size in bytes (for live: bitrate × duration).
    pub fn file_bytes(&self) -> u64 {
        match (&self.content.live, self.content.size) {
            (Some(l), _) => ((l.bitrate.0 as f64 / 8.0) * l.duration.secs()).round() as u64,
            (None, Some(s)) => s.0,
            (None, None) => 0,
        }
    }

    /// The label used in reports.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or("scenario")
    }
}

/// serde_norway's message already names the path (`peers[1]: unknown field ...`) and the
/// line; keep it on one line.
fn describe_yaml_error(e: &serde_norway::Error) -> String {
    e.to_string().replace('\n', " ")
}

#[cfg(test)]
mod tests;

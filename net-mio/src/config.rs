//! The YAML configuration of `pdtp-node`: the original DistribuStream keys plus ours.
//!
//! Original keys: `vhost`, `host`, `port` (6086), `quiet`, `file_root`, `chunk_size`,
//! `listen_port` (8000). Ours: `seed_key`, `seed_identity` (the file with a seed's signing
//! key, made on first use), `tracker_identity` (the file with the tracker's link key, made on
//! first use), `tracker_key` (the link key a seed or `get` requires of its tracker), `policy` (the tracker's scheduling policy, in the
//! simulator's vocabulary: [`PolicySpec`]), `max_connections` (1024), `max_connections_per_address` (64; loopback exempt),
//! `max_downloads_per_address` (64; loopback exempt), `trust_records` (100 000), `state_file` (the tracker's bans, kept
//! across restarts; none by default),
//! `hello_timeout` (10 s), `reach_probe` (3 s; 0: off: how long the tracker's connect-back
//! probe of a joining node's listening port may take before the node counts as unreachable),
//! `max_upload_rate` / `max_download_rate` (optional, bytes per second), `uplink` (a seed's
//! uplink, stated to the tracker: optional), `sendfile` (a seed sends chunk payloads with
//! `sendfile(2)`; off by default) and `debug`.
//!
//! Every key is optional; unknown keys are refused. Errors name the file and the key:
//! `conf/x.yml: unknown key 'prot' (did you mean 'port'?)`, `conf/x.yml: chunk_size: must be > 0`.
//!
//! Durations are a number of seconds or a string with a unit (`500ms`, `20s`, `2m`). Rates are
//! a number of bytes per second or a string with a unit: `2MiB/s`, `500 kB/s`, `8Mbit/s`.
//! `chunk_size` is a number of bytes or a size with a unit (`250kB`). Inside `policy:` the
//! units are the simulator's (`20s`, `500ms`: a duration needs its unit there), so a block
//! copied from a scenario reads the same in both.

mod units;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pdtp_core::policy::PolicySpec;
use pdtp_core::units::Bytes;
use serde::{Deserialize, Serialize};

use crate::secure::LinkKey;

use units::{RawRate, Secs};
pub use units::{parse_duration, parse_rate};

/// The largest chunk we accept: a chunk is held in memory while it moves and is verified.
pub const MAX_CHUNK_SIZE: u32 = 16 * 1024 * 1024;

/// Bytes per chunk of a file unless the config says otherwise: the size the simulator's
/// on-demand family measured best with the built-in policy (docs/results.md).
pub const DEFAULT_CHUNK_SIZE: u32 = 250_000;

/// Bytes per chunk of a live stream unless the config says otherwise: half the file size,
/// so a chunk is fresh sooner (at 250 kB the built-in policy's continuity fell to 0.94 on
/// the live family's 4 s buffer at 0.9 r_max; 0.997 at 125 kB).
pub const DEFAULT_LIVE_CHUNK_SIZE: u32 = 125_000;

/// A resolved configuration: every key present, defaults applied, values validated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Config {
    /// The name the tracker identifies as (in URLs and on the stats page); `None`: `host`.
    pub vhost: Option<String>,
    /// Address the tracker binds to and peers connect to. Default `127.0.0.1`.
    pub host: String,
    /// Tracker port (default 6086); the stats page listens on `port + 1`.
    pub port: u16,
    /// Log only warnings and errors.
    pub quiet: bool,
    /// Directory a seed publishes (required by `seed`). Relative paths are taken from the
    /// current directory, as the original did.
    pub file_root: Option<PathBuf>,
    /// Bytes per chunk of a published file (the last chunk is short).
    pub chunk_size: u32,
    /// Bytes per chunk of a live stream (`seed --live`).
    pub live_chunk_size: u32,
    /// Port a peer listens on for other peers (default 8000; the next free one if taken).
    pub listen_port: u16,
    /// Shared secret a seed proves to the tracker; `None` on the tracker refuses every seed.
    pub seed_key: Option<String>,
    /// The file holding a seed's signing key (made on first use); `None`:
    /// [`crate::identity::default_path`].
    pub seed_identity: Option<PathBuf>,
    /// The file holding the tracker's link key (made on first use); `None`:
    /// [`crate::identity::tracker_identity_path`].
    pub tracker_identity: Option<PathBuf>,
    /// The link key a seed or `get` requires its tracker to prove (a `#key=` in a URL says
    /// the same); `None`: the one remembered from first use, else any.
    pub tracker_key: Option<LinkKey>,
    /// Where a tracker keeps what must outlive a restart (its bans); none: nothing kept.
    pub state_file: Option<PathBuf>,
    /// The tracker's scheduling policy: the `policy:` section of a simulator scenario, with
    /// the same keys, units, defaults and validation.
    pub policy: PolicySpec,
    /// Connections a process accepts at once; more are refused.
    pub max_connections: usize,
    /// Connections one address may hold at the tracker (0: no cap; loopback exempt).
    pub max_connections_per_address: u32,
    /// Orders all identities of one address may hold as takers at once (0: no cap;
    /// loopback exempt).
    pub max_downloads_per_address: u32,
    /// Trust records the tracker keeps of identities that left (100 000; the oldest
    /// departures' go first past it).
    pub trust_records: usize,
    /// A connection that has not said hello within this time is closed.
    pub hello_timeout: Duration,
    /// The tracker's connect-back probe of each listening node: how long its connection may
    /// take to open before the node counts as unreachable (behind a NAT or a firewall); `None`
    /// (`reach_probe: 0`): no probes, every node that says it listens is dialled.
    pub reach_probe: Option<Duration>,
    /// Cap on bytes per second uploaded (all connections together).
    pub max_upload_rate: Option<Rate>,
    /// Cap on bytes per second downloaded (all connections together).
    pub max_download_rate: Option<Rate>,
    /// A seed's uplink, if its operator knows it: stated to the tracker in every publish, so
    /// the seed is scheduled at that rate from its first copy (docs/runtime.md).
    pub uplink: Option<Rate>,
    /// A seed sends chunk payloads straight from its files with `sendfile(2)` instead of
    /// reading them into memory first (off by default: see docs/performance.md).
    pub sendfile: bool,
    /// Extra diagnostics (debug logs, the original's debug.yml).
    pub debug: bool,
}

/// A rate in bytes per second, non-zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Rate(pub u64);

/// Why a configuration cannot be used; the message names the file and the key.
///
/// `Value`'s key is a path for nested keys (`policy.max_uploads`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The YAML is malformed or not a mapping.
    #[error("{file}: {detail}")]
    Syntax {
        /// The file.
        file: String,
        /// What the parser said.
        detail: String,
    },
    /// A key we do not know (a typo, usually).
    #[error("{file}: unknown key '{key}'{hint}")]
    UnknownKey {
        /// The file.
        file: String,
        /// The key as written.
        key: String,
        /// ` (did you mean 'port'?)` or empty.
        hint: String,
    },
    /// A known key with an unusable value.
    #[error("{file}: {key}: {detail}")]
    Value {
        /// The file.
        file: String,
        /// The key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },
}

/// The file as written: every key optional, nothing else allowed.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    vhost: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    quiet: Option<bool>,
    file_root: Option<PathBuf>,
    chunk_size: Option<Bytes>,
    live_chunk_size: Option<Bytes>,
    listen_port: Option<u16>,
    seed_key: Option<String>,
    seed_identity: Option<PathBuf>,
    tracker_identity: Option<PathBuf>,
    tracker_key: Option<String>,
    state_file: Option<PathBuf>,
    policy: Option<PolicySpec>,
    max_connections: Option<usize>,
    max_connections_per_address: Option<u32>,
    max_downloads_per_address: Option<u32>,
    trust_records: Option<usize>,
    hello_timeout: Option<Secs>,
    reach_probe: Option<Secs>,
    max_upload_rate: Option<RawRate>,
    max_download_rate: Option<RawRate>,
    uplink: Option<RawRate>,
    sendfile: Option<bool>,
    debug: Option<bool>,
}

/// Keys that moved under `policy:` when the tracker took the simulator's policy vocabulary;
/// an old config gets told where they went instead of "unknown key".
const MOVED_TO_POLICY: &[&str] = &["max_transfers", "max_uploads", "max_downloads", "stall_timeout"];

/// Every key [`RawConfig`] accepts, for the unknown-key message.
const KEYS: &[&str] = &[
    "vhost",
    "host",
    "port",
    "quiet",
    "file_root",
    "chunk_size",
    "live_chunk_size",
    "listen_port",
    "seed_key",
    "seed_identity",
    "tracker_identity",
    "tracker_key",
    "state_file",
    "policy",
    "max_connections",
    "max_connections_per_address",
    "max_downloads_per_address",
    "trust_records",
    "hello_timeout",
    "reach_probe",
    "max_upload_rate",
    "max_download_rate",
    "uplink",
    "sendfile",
    "debug",
];

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { file: file.clone(), source })?;
        Self::parse(&file, &text)
    }

    /// Parses and validates configuration text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let syntax = |detail: String| ConfigError::Syntax { file: file.to_owned(), detail };
        let value: serde_norway::Value = serde_norway::from_str(text).map_err(|e| syntax(e.to_string()))?;
        let raw = match value {
            // An empty file (or only comments) means "all defaults".
            serde_norway::Value::Null => RawConfig::default(),
            serde_norway::Value::Mapping(map) => {
                // Check keys first so a typo gets its own message, then each value on its own
                // so a type error names its key.
                for key in map.keys() {
                    let name = key.as_str().map_or_else(|| format!("{key:?}"), str::to_owned);
                    if MOVED_TO_POLICY.contains(&name.as_str()) {
                        return Err(ConfigError::Value {
                            file: file.to_owned(),
                            detail: format!(
                                "now a key of the policy section: write it as `policy: {{ {name}: … }}`"
                            ),
                            key: name,
                        });
                    }
                    if !KEYS.contains(&name.as_str()) {
                        let hint =
                            closest(&name).map(|k| format!(" (did you mean '{k}'?)")).unwrap_or_default();
                        return Err(ConfigError::UnknownKey { file: file.to_owned(), key: name, hint });
                    }
                }
                for (key, v) in &map {
                    check_one(file, key.as_str().unwrap_or_default(), v)?;
                }
                serde_norway::from_value(serde_norway::Value::Mapping(map))
                    .map_err(|e| syntax(e.to_string()))?
            }
            _ => return Err(syntax("expected a mapping of key: value lines".to_owned())),
        };
        raw.resolve(file)
    }

    /// The stats page port (`port + 1`; validation guarantees it exists).
    pub fn stats_port(&self) -> u16 {
        self.port.saturating_add(1)
    }

    /// The name the tracker goes by: `vhost`, else `host`.
    pub fn public_name(&self) -> &str {
        self.vhost.as_deref().unwrap_or(&self.host)
    }
}

impl Default for Config {
    fn default() -> Self {
        // Resolving an empty raw config cannot fail: every default is valid.
        RawConfig::default().resolve("<defaults>").unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}

impl RawConfig {
    fn resolve(self, file: &str) -> Result<Config, ConfigError> {
        let bad = |key: &str, detail: &str| ConfigError::Value {
            file: file.to_owned(),
            key: key.to_owned(),
            detail: detail.to_owned(),
        };
        let port = self.port.unwrap_or(6086);
        if port == u16::MAX {
            return Err(bad("port", "must be < 65535 (the stats page listens on port + 1)"));
        }
        let chunk = |key: &str, v: Option<Bytes>, default: u32| match v.map_or(u64::from(default), |b| b.0) {
            0 => Err(bad(key, "must be > 0")),
            c if c > u64::from(MAX_CHUNK_SIZE) => {
                Err(bad(key, &format!("must be at most {MAX_CHUNK_SIZE} bytes (16 MiB)")))
            }
            // Checked just above to be in 1..=MAX_CHUNK_SIZE.
            c => Ok(c as u32),
        };
        let chunk_size = chunk("chunk_size", self.chunk_size, DEFAULT_CHUNK_SIZE)?;
        let live_chunk_size = chunk("live_chunk_size", self.live_chunk_size, DEFAULT_LIVE_CHUNK_SIZE)?;
        let host = self.host.unwrap_or_else(|| "127.0.0.1".to_owned());
        if host.trim().is_empty() {
            return Err(bad("host", "must not be empty"));
        }
        if self.vhost.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(bad("vhost", "must not be empty (leave it out to use host)"));
        }
        if self.file_root.as_deref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(bad("file_root", "must not be empty"));
        }
        if self.state_file.as_deref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(bad("state_file", "must not be empty (leave it out to keep nothing)"));
        }
        if self.seed_identity.as_deref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(bad("seed_identity", "must not be empty (leave it out for the default)"));
        }
        if self.tracker_identity.as_deref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(bad("tracker_identity", "must not be empty (leave it out for the default)"));
        }
        let tracker_key = match self.tracker_key.as_deref().map(str::parse::<LinkKey>) {
            Some(Err(why)) => return Err(bad("tracker_key", why)),
            Some(Ok(k)) => Some(k),
            None => None,
        };
        if self.seed_key.as_deref().is_some_and(|k| k.len() < 16) {
            return Err(bad("seed_key", "must be at least 16 characters"));
        }
        let policy = self.policy.unwrap_or_default();
        policy.validate().map_err(|e| bad(&format!("policy.{}", e.key), &e.detail))?;
        let hello_timeout = self.hello_timeout.map_or(Duration::from_secs(10), |s| s.0);
        if hello_timeout.is_zero() {
            return Err(bad("hello_timeout", "must be > 0"));
        }
        let max_connections = self.max_connections.unwrap_or(1024);
        if max_connections == 0 {
            return Err(bad("max_connections", "must be > 0"));
        }
        let rate = |key: &'static str, r: Option<RawRate>| match r {
            Some(RawRate(0)) => Err(bad(key, "must be > 0 (leave it out for no limit)")),
            r => Ok(r.map(|r| Rate(r.0))),
        };
        Ok(Config {
            vhost: self.vhost,
            host,
            port,
            quiet: self.quiet.unwrap_or(false),
            file_root: self.file_root,
            chunk_size,
            live_chunk_size,
            listen_port: self.listen_port.unwrap_or(8000),
            seed_key: self.seed_key,
            seed_identity: self.seed_identity,
            tracker_identity: self.tracker_identity,
            tracker_key,
            state_file: self.state_file,
            policy,
            max_connections,
            max_connections_per_address: self.max_connections_per_address.unwrap_or(64),
            max_downloads_per_address: self.max_downloads_per_address.unwrap_or(64),
            trust_records: match self.trust_records {
                Some(0) => return Err(bad("trust_records", "must be at least 1")),
                n => n.unwrap_or(100_000),
            },
            hello_timeout,
            reach_probe: Some(self.reach_probe.map_or(Duration::from_secs(3), |s| s.0))
                .filter(|d| !d.is_zero()),
            max_upload_rate: rate("max_upload_rate", self.max_upload_rate)?,
            max_download_rate: rate("max_download_rate", self.max_download_rate)?,
            uplink: match self.uplink {
                Some(RawRate(0)) => return Err(bad("uplink", "must be > 0 (leave it out if not known)")),
                r => r.map(|r| Rate(r.0)),
            },
            sendfile: self.sendfile.unwrap_or(false),
            debug: self.debug.unwrap_or(false),
        })
    }
}

/// Deserializes one value with the type its key expects, so the error names the key.
fn check_one(file: &str, key: &str, v: &serde_norway::Value) -> Result<(), ConfigError> {
    fn try_as<T: serde::de::DeserializeOwned>(v: &serde_norway::Value) -> Result<(), String> {
        serde_norway::from_value::<T>(v.clone()).map(drop).map_err(|e| {
            // Say what a person would, not the Rust type.
            e.to_string()
                .replace("expected u16", "expected a port number (0 to 65535)")
                .replace("expected u32", "expected a whole number")
                .replace("expected u64", "expected a whole number")
                .replace("expected usize", "expected a whole number")
        })
    }
    let (key, result): (&str, _) = match key {
        "vhost" => ("vhost", try_as::<Option<String>>(v)),
        "host" => ("host", try_as::<Option<String>>(v)),
        "port" => ("port", try_as::<Option<u16>>(v)),
        "quiet" => ("quiet", try_as::<Option<bool>>(v)),
        "file_root" => ("file_root", try_as::<Option<PathBuf>>(v)),
        "chunk_size" => ("chunk_size", try_as::<Option<Bytes>>(v)),
        "live_chunk_size" => ("live_chunk_size", try_as::<Option<Bytes>>(v)),
        "listen_port" => ("listen_port", try_as::<Option<u16>>(v)),
        "seed_key" => ("seed_key", try_as::<Option<String>>(v)),
        "seed_identity" => ("seed_identity", try_as::<Option<PathBuf>>(v)),
        "tracker_identity" => ("tracker_identity", try_as::<Option<PathBuf>>(v)),
        "tracker_key" => ("tracker_key", try_as::<Option<String>>(v)),
        "state_file" => ("state_file", try_as::<Option<PathBuf>>(v)),
        "policy" => return check_policy(file, v),
        "max_connections" => ("max_connections", try_as::<Option<usize>>(v)),
        "max_connections_per_address" => ("max_connections_per_address", try_as::<Option<u32>>(v)),
        "max_downloads_per_address" => ("max_downloads_per_address", try_as::<Option<u32>>(v)),
        "hello_timeout" => ("hello_timeout", try_as::<Option<Secs>>(v)),
        "reach_probe" => ("reach_probe", try_as::<Option<Secs>>(v)),
        "max_upload_rate" => ("max_upload_rate", try_as::<Option<RawRate>>(v)),
        "max_download_rate" => ("max_download_rate", try_as::<Option<RawRate>>(v)),
        "uplink" => ("uplink", try_as::<Option<RawRate>>(v)),
        "trust_records" => ("trust_records", try_as::<Option<usize>>(v)),
        "sendfile" => ("sendfile", try_as::<Option<bool>>(v)),
        "debug" => ("debug", try_as::<Option<bool>>(v)),
        _ => return Ok(()),
    };
    result.map_err(|detail| ConfigError::Value { file: file.to_owned(), key: key.to_owned(), detail })
}

/// Checks the `policy:` section one key at a time, so an error names `policy.<key>`.
fn check_policy(file: &str, v: &serde_norway::Value) -> Result<(), ConfigError> {
    let serde_norway::Value::Mapping(map) = v else {
        return match v {
            serde_norway::Value::Null => Ok(()),
            _ => Err(ConfigError::Value {
                file: file.to_owned(),
                key: "policy".to_owned(),
                detail: "expected a mapping of key: value lines (as a scenario's policy section)".to_owned(),
            }),
        };
    };
    for (k, v) in map {
        let one = serde_norway::Mapping::from_iter([(k.clone(), v.clone())]);
        if let Err(e) = serde_norway::from_value::<PolicySpec>(serde_norway::Value::Mapping(one)) {
            let name = k.as_str().map_or_else(|| format!("{k:?}"), str::to_owned);
            let detail = e.to_string().replace("expected u32", "expected a whole number");
            return Err(ConfigError::Value { file: file.to_owned(), key: format!("policy.{name}"), detail });
        }
    }
    Ok(())
}

/// The known key closest to a typo, if any is within two edits.
fn closest(key: &str) -> Option<&'static str> {
    KEYS.iter().map(|k| (edit_distance(key, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;

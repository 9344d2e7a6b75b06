//! Which link key a seed or `get` requires of its tracker, and trust on first use.
//!
//! A key pinned by the user (`#key=` in a URL, `tracker_key` in a config) is required as
//! given. Otherwise the key remembered for the tracker's `HOST:PORT` in `known_trackers` is
//! required; with none remembered, the first tracker to prove a key is believed, and its key
//! is written down at once so that every later connection to that address requires it.

use std::path::PathBuf;

use pdtp_core::Endpoint;
use pdtp_net_mio::driver::{NodeId, Runtime};
use pdtp_net_mio::identity::KnownTrackers;
use pdtp_net_mio::secure::{LinkKey, SecureError};

use crate::roles::say;

/// A node's tracker pin: what it requires, and whether to remember what it learns.
pub struct TrackerPin {
    /// The key required of the tracker (`None`: any, remembered on first use).
    pub key: Option<LinkKey>,
    /// Where and under which name to remember a key learned on first use.
    remember: Option<(PathBuf, String)>,
    /// Where the required key came from, for error messages.
    from: Option<String>,
    /// What to tell the user about a key remembered on first use.
    notice: Option<String>,
}

impl TrackerPin {
    /// The pin for the tracker at `tracker`: `pinned` if given, else the key remembered in
    /// `known` (`None`: remember nothing).
    pub fn new(tracker: &Endpoint, pinned: Option<LinkKey>, known: Option<PathBuf>) -> Result<Self, String> {
        let name = if tracker.host.contains(':') {
            format!("[{}]:{}", tracker.host, tracker.port)
        } else {
            format!("{}:{}", tracker.host, tracker.port)
        };
        if pinned.is_some() {
            return Ok(Self { key: pinned, remember: None, from: None, notice: None });
        }
        let Some(file) = known else {
            return Ok(Self { key: None, remember: None, from: None, notice: None });
        };
        match KnownTrackers::load(&file)?.get(&name) {
            Some(key) => {
                let from = format!("remembered for {name} on first use, in {}", file.display());
                Ok(Self { key: Some(key), remember: None, from: Some(from), notice: None })
            }
            None => Ok(Self { key: None, remember: Some((file, name)), from: None, notice: None }),
        }
    }

    /// Writes down the key node `id`'s tracker proved, once, if this is its first use (at
    /// once: the next connection requires it); [`TrackerPin::tell`] says so.
    pub fn remember_learned(&mut self, rt: &Runtime, id: NodeId) -> Result<(), String> {
        let Some(key) = rt.tracker_key(id) else { return Ok(()) };
        let Some((file, name)) = self.remember.take() else { return Ok(()) };
        KnownTrackers::remember(&file, &name, &key)?;
        self.notice = Some(format!(
            "first use of the tracker at {name}: its link key {key} remembered in {} (later runs require it)",
            file.display()
        ));
        Ok(())
    }

    /// Tells the user about a key remembered on first use, once (a `get` does when it is
    /// done, so that a failure stays one line).
    pub fn tell(&mut self) {
        if let Some(line) = self.notice.take() {
            say!("{line}");
        }
    }

    /// `failure` with a hint when node `id`'s tracker proved another key than the one
    /// remembered in `known_trackers` (a tracker whose key changed on purpose needs that
    /// line deleted).
    pub fn explain(&self, rt: &Runtime, id: NodeId, failure: String) -> String {
        match (&self.from, rt.link_failure(id)) {
            (Some(from), Some(SecureError::WrongKey { .. })) => format!(
                "{failure} (the key {from}: if the tracker's key changed on purpose, delete that line or pin the new key with #key=KEY)"
            ),
            _ => failure,
        }
    }
}

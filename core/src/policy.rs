//! The scheduling policy as people write it: the `policy:` section of a simulator scenario and
//! of `pdtp-node`'s config file.
//!
//! One vocabulary for both worlds: the simulator and the node parse this type, check it with
//! [`PolicySpec::validate`] and hand it to the tracker with [`PolicySpec::apply`], so a policy
//! measured in the simulator is the policy the node runs, key for key. The keys, units and
//! defaults are documented in `docs/simulator.md` ("Scenario files") and `conf/example.yml`.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::time::Span;
use crate::tracker::{ChunkPolicy, GiverPolicy, Limits, OriginPolicy, Policy, TrackerConfig, UploadSlots};
use crate::units::Duration;

/// The `policy:` section: how the tracker schedules transfers.
///
/// Every key is optional (a missing one takes its default) and an unknown key is refused by
/// the parser, naming it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySpec {
    /// Which wanted chunk is scheduled next.
    pub chunk: ChunkPolicy,
    /// Which holder gives it.
    pub giver: GiverPolicy,
    /// Transfers per node, scheduled or moving.
    pub max_transfers: u32,
    /// Transfers a node gives at once (at most `max_transfers`).
    pub max_uploads: u32,
    /// Transfers a node takes at once (at most `max_transfers`).
    pub max_downloads: u32,
    /// A transfer not started within this is given up by its taker and rescheduled.
    pub stall_timeout: Duration,
    /// How much the origin gives: like any holder, or each chunk about once.
    pub origin: OriginPolicy,
    /// Set: a node's upload slots follow its measured upload rate so that one copy takes about
    /// this long (at least one, at most `max_uploads`). Unset: every node has `max_uploads`.
    pub copy_time: Option<Duration>,
    /// Live: chunks appended longer ago than this are not scheduled (they would miss their
    /// playback deadline); usually the viewers' playback buffer. Unset: the whole window.
    pub live_deadline: Option<Duration>,
    /// Order a giver's next upload shortly before its current one is expected to end, so a
    /// one-slot uplink does not idle for the control round trip between chunks.
    pub queue_ahead: bool,
    /// With `copy_time`: upload slots of a node whose upload rate is not measured yet.
    pub unmeasured_slots: u32,
    /// Live: order a chunk only from a giver expected to land it before `live_deadline`.
    pub deadline_givers: bool,
    /// Live: each viewer's next this-many wanted chunks go first, in order (0: off).
    pub urgent_chunks: u32,
    /// With `copy_time`: the copy time that sets upload slots after a copy of a live content
    /// (unset: `copy_time`).
    pub live_copy_time: Option<Duration>,
}

/// A policy value that cannot be used: the key (as written in the `policy:` section) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {detail}")]
pub struct PolicyError {
    /// The key, e.g. `max_uploads`.
    pub key: &'static str,
    /// What is wrong with its value.
    pub detail: String,
}

/// The built-in policy: what a scenario without a `policy:` section and a node config
/// without one run. Chosen on the simulator's on-demand family and judged on swarms the
/// choice never saw (`scenarios/family/`, docs/results.md "The built-in policy"): rarest
/// chunk first, the giver expected to deliver fastest, upload slots that follow measured
/// rates so a copy takes about a second, queue-ahead, 24 transfers per node (16 up, 10
/// down), the origin unrestricted (fastest completion; `frugal` is cheaper but slower, and
/// starves live streams). For live contents, chosen on the live grid's tune half and judged
/// on its held-out half (`scenarios/livegrid*.yml`, docs/results.md "Live grid"): each
/// viewer's next 4 chunks first, in order, and half a second per copy.
impl Default for PolicySpec {
    fn default() -> Self {
        Self {
            chunk: ChunkPolicy::RarestFirst,
            giver: GiverPolicy::Fastest,
            max_transfers: 24,
            max_uploads: 16,
            max_downloads: 10,
            stall_timeout: Duration(Span::from_secs(20)),
            origin: OriginPolicy::Unrestricted,
            copy_time: Some(Duration(Span::from_secs(1))),
            live_deadline: None,
            queue_ahead: true,
            unmeasured_slots: 2,
            deadline_givers: false,
            urgent_chunks: 4,
            live_copy_time: Some(Duration(Span::from_millis(500))),
        }
    }
}

impl PolicySpec {
    /// The original DistribuStream tracker's limits (10 transfers, 5 up, 5 down, fixed
    /// slots) with rarest-first chunks and the least-loaded giver: the built-in policy until
    /// the family measurement, kept for comparisons.
    pub fn original_limits() -> Self {
        Self {
            giver: GiverPolicy::LeastLoaded,
            max_transfers: 10,
            max_uploads: 5,
            max_downloads: 5,
            copy_time: None,
            queue_ahead: false,
            urgent_chunks: 0,
            live_copy_time: None,
            ..Self::default()
        }
    }
}

impl PolicySpec {
    /// Checks every value; the error names the first bad key.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |key, detail: &str| Err(PolicyError { key, detail: detail.to_owned() });
        for (key, v) in [
            ("max_transfers", self.max_transfers),
            ("max_uploads", self.max_uploads),
            ("max_downloads", self.max_downloads),
            ("unmeasured_slots", self.unmeasured_slots),
        ] {
            if v == 0 {
                return bad(key, "must be > 0");
            }
            // The tracker counts transfers per node in 16 bits.
            if v > u32::from(u16::MAX) {
                return bad(key, &format!("must be at most {}", u16::MAX));
            }
        }
        if self.stall_timeout.0.as_nanos() == 0 {
            return bad("stall_timeout", "must be > 0");
        }
        if self.live_copy_time.is_some_and(|t| t.0.as_nanos() == 0) {
            return bad("live_copy_time", "must be > 0 (leave it out for copy_time)");
        }
        if self.copy_time.is_some_and(|t| t.0.as_nanos() == 0) {
            return bad("copy_time", "must be > 0 (leave it out for fixed upload slots)");
        }
        if self.live_deadline.is_some_and(|t| t.0.as_nanos() == 0) {
            return bad("live_deadline", "must be > 0 (leave it out to schedule the whole window)");
        }
        if self.max_uploads > self.max_transfers {
            return bad("max_uploads", &format!("must be ≤ max_transfers ({})", self.max_transfers));
        }
        if self.max_downloads > self.max_transfers {
            return bad("max_downloads", &format!("must be ≤ max_transfers ({})", self.max_transfers));
        }
        Ok(())
    }

    /// Sets every scheduling field of `config` from this policy (limits for peers and seeds
    /// alike, timeouts, slots, live rules, the three choices); the rest of `config` is kept.
    pub fn apply(&self, config: &mut TrackerConfig) {
        // `validate` bounds the counts to u16; a value past it saturates.
        let count = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
        config.limits = Limits {
            max_transfers: count(self.max_transfers),
            max_uploads: count(self.max_uploads),
            max_downloads: count(self.max_downloads),
        };
        config.seed_limits = config.limits;
        config.stall_timeout = self.stall_timeout.0;
        config.upload_slots = match self.copy_time {
            Some(t) => UploadSlots::Measured { copy_time: t.0 },
            None => UploadSlots::Fixed,
        };
        config.unmeasured_slots = count(self.unmeasured_slots);
        config.live_deadline = self.live_deadline.map(|d| d.0);
        config.queue_ahead = self.queue_ahead;
        config.deadline_givers = self.deadline_givers;
        config.urgent_chunks = self.urgent_chunks;
        config.live_copy_time = self.live_copy_time.map(|d| d.0);
        config.policy = Policy { chunk: self.chunk, giver: self.giver, origin: self.origin };
    }
}

impl PolicySpec {
    /// The policy `config` runs, in this vocabulary: what [`PolicySpec::apply`] would have
    /// set. Seeds' limits are not part of it (`apply` gives seeds the peers' limits).
    pub fn of(config: &TrackerConfig) -> Self {
        Self {
            chunk: config.policy.chunk,
            giver: config.policy.giver,
            max_transfers: u32::from(config.limits.max_transfers),
            max_uploads: u32::from(config.limits.max_uploads),
            max_downloads: u32::from(config.limits.max_downloads),
            stall_timeout: Duration(config.stall_timeout),
            origin: config.policy.origin,
            copy_time: match config.upload_slots {
                UploadSlots::Measured { copy_time } => Some(Duration(copy_time)),
                UploadSlots::Fixed => None,
            },
            live_deadline: config.live_deadline.map(Duration),
            queue_ahead: config.queue_ahead,
            unmeasured_slots: u32::from(config.unmeasured_slots),
            deadline_givers: config.deadline_givers,
            urgent_chunks: config.urgent_chunks,
            live_copy_time: config.live_copy_time.map(Duration),
        }
    }
}

/// One line in the section's own keys and units, e.g. `chunk: rarest_first, giver: fastest,
/// …, copy_time: 1s` (unset options are left out), for logs and the stats page.
impl fmt::Display for PolicySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chunk: {}, giver: {}, max_transfers: {}, max_uploads: {}, max_downloads: {}, \
             stall_timeout: {}, origin: {}",
            self.chunk.name(),
            self.giver.name(),
            self.max_transfers,
            self.max_uploads,
            self.max_downloads,
            self.stall_timeout,
            self.origin.name(),
        )?;
        if let Some(t) = self.copy_time {
            write!(f, ", copy_time: {t}, unmeasured_slots: {}", self.unmeasured_slots)?;
        }
        if let Some(t) = self.live_copy_time {
            write!(f, ", live_copy_time: {t}")?;
        }
        if let Some(t) = self.live_deadline {
            write!(f, ", live_deadline: {t}, deadline_givers: {}", self.deadline_givers)?;
        }
        if self.urgent_chunks > 0 {
            write!(f, ", urgent_chunks: {}", self.urgent_chunks)?;
        }
        write!(f, ", queue_ahead: {}", self.queue_ahead)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_sets_every_scheduling_field() {
        let spec = PolicySpec {
            chunk: ChunkPolicy::InOrder,
            giver: GiverPolicy::Fastest,
            max_transfers: 24,
            max_uploads: 16,
            max_downloads: 8,
            stall_timeout: Duration(Span::from_secs(2)),
            origin: OriginPolicy::Frugal,
            copy_time: Some(Duration(Span::from_millis(500))),
            live_deadline: Some(Duration(Span::from_millis(3500))),
            queue_ahead: true,
            unmeasured_slots: 3,
            deadline_givers: true,
            urgent_chunks: 4,
            live_copy_time: Some(Duration(Span::from_millis(250))),
        };
        let mut c = TrackerConfig::with_key(b"k".to_vec());
        spec.apply(&mut c);
        let limits = Limits { max_transfers: 24, max_uploads: 16, max_downloads: 8 };
        assert_eq!((c.limits, c.seed_limits), (limits, limits));
        assert_eq!(c.stall_timeout, Span::from_secs(2));
        assert_eq!(c.upload_slots, UploadSlots::Measured { copy_time: Span::from_millis(500) });
        assert_eq!(c.unmeasured_slots, 3);
        assert_eq!(c.live_deadline, Some(Span::from_millis(3500)));
        assert!(c.queue_ahead && c.deadline_givers);
        assert_eq!((c.urgent_chunks, c.live_copy_time), (4, Some(Span::from_millis(250))));
        let choices =
            Policy { chunk: ChunkPolicy::InOrder, giver: GiverPolicy::Fastest, origin: OriginPolicy::Frugal };
        assert_eq!(c.policy, choices);
        assert_eq!(PolicySpec::of(&c), spec);
        // Unset options go back to their off state.
        PolicySpec::original_limits().apply(&mut c);
        assert_eq!(PolicySpec::of(&c), PolicySpec::original_limits());
        assert_eq!((c.upload_slots, c.live_deadline), (UploadSlots::Fixed, None));
    }

    #[test]
    fn validation_names_the_key() {
        let mut p = PolicySpec { max_uploads: 25, ..PolicySpec::default() };
        assert_eq!(p.validate().unwrap_err().to_string(), "max_uploads: must be ≤ max_transfers (24)");
        p.max_uploads = 0;
        assert_eq!(p.validate().unwrap_err().key, "max_uploads");
        p = PolicySpec { max_transfers: 70_000, ..PolicySpec::default() };
        assert_eq!(p.validate().unwrap_err().to_string(), "max_transfers: must be at most 65535");
        p = PolicySpec { copy_time: Some(Duration(Span::ZERO)), ..PolicySpec::default() };
        assert_eq!(p.validate().unwrap_err().key, "copy_time");
        assert_eq!(PolicySpec::default().validate(), Ok(()));
    }

    #[test]
    fn display_uses_the_files_keys_and_units() {
        let p = PolicySpec::default();
        let line = p.to_string();
        assert!(line.starts_with("chunk: rarest_first, giver: fastest, max_transfers: 24"), "{line}");
        assert!(line.contains("stall_timeout: 20s") && line.contains("copy_time: 1s"), "{line}");
        assert!(!line.contains("live_deadline"), "{line}");
    }
}

//! Tracker configuration and scheduling policies.

use serde::{Deserialize, Serialize};

use crate::time::Span;

/// Per-node transfer limits (the original: 10 transfers, 5 moving data).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Outstanding orders in both directions together.
    pub max_transfers: u16,
    /// Outstanding orders as giver.
    pub max_uploads: u16,
    /// Outstanding orders as taker.
    pub max_downloads: u16,
}

/// How the tracker picks which chunk a taker gets next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChunkPolicy {
    /// Lowest wanted chunk first: streaming viewers play in order.
    InOrder,
    /// Fewest copies (held plus in flight) among a sample of candidates.
    RarestFirst,
    /// A uniformly random candidate.
    Random,
}

/// How the tracker picks which holder gives a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GiverPolicy {
    /// A random holder with a free upload slot (the original's choice).
    Random,
    /// The holder with the fewest active uploads.
    LeastLoaded,
    /// The holder the taker trusts most (direct plus one-hop trust).
    Trust,
    /// The holder expected to deliver this copy fastest: its measured upload rate divided by
    /// its uploads after this one (holders not yet measured count at the sample's mean rate).
    Fastest,
}

/// How many uploads a node may run at once, within its [`Limits::max_uploads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadSlots {
    /// Always `max_uploads`.
    Fixed,
    /// Follow the node's measured upload rate so that one copy takes about `copy_time`:
    /// `floor(rate · copy_time / chunk_size) + 1` slots (at most `max_uploads`). A slow uplink
    /// gets one or two uploads, so each copy completes quickly; a fast one gets many, so the
    /// control round trip between a slot's chunks does not leave its uplink idle. Nodes not
    /// measured yet get [`TrackerConfig::unmeasured_slots`].
    Measured {
        /// The target time for one chunk copy.
        copy_time: Span,
    },
}

/// How much the origin (seeds) gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginPolicy {
    /// Seeds serve like any holder (fastest completion).
    Unrestricted,
    /// Seeds serve a chunk only while no peer holds or is receiving it, so each chunk leaves
    /// the origin about once (cheapest origin).
    Frugal,
}

/// The scheduling policy: three independent choices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Chunk choice.
    pub chunk: ChunkPolicy,
    /// Giver choice.
    pub giver: GiverPolicy,
    /// Origin behaviour.
    pub origin: OriginPolicy,
}

/// Everything a [`super::Tracker`] needs to know up front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Secret shared with authorised seeds; publishes must prove it.
    pub seed_key: Vec<u8>,
    /// Limits for peers.
    pub limits: Limits,
    /// Limits for seeds (the origin often has more upload than a peer).
    pub seed_limits: Limits,
    /// Takers give up on an order not started within this (and report it failed).
    pub stall_timeout: Span,
    /// Takers give up on a copy not finished within this after it started. An order whose
    /// taker has not reported within `stall_timeout + transfer_timeout` is cancelled and
    /// rescheduled (a taker that stopped reporting).
    pub transfer_timeout: Span,
    /// How often stalled orders are swept.
    pub sweep_interval: Span,
    /// A connection that has not said `Hello` within this is closed.
    pub hello_timeout: Span,
    /// Connections beyond this are refused.
    pub max_connections: u32,
    /// Connections from one address beyond this are refused with `Overloaded`, so one host
    /// cannot take the whole table with many identities (0: no cap). An IPv6 address counts
    /// as its /64, which one host can draw fresh addresses from. Loopback addresses, the
    /// tracker's own host, are exempt.
    pub max_connections_per_host: u32,
    /// Orders one address may hold as taker at once, all its identities together (0: no
    /// cap), so many identities from one host cannot take the swarm's upload slots however
    /// many it opens; counted like `max_connections_per_host`, loopback exempt.
    pub max_downloads_per_host: u32,
    /// A giver banned for bad copies also bans its address: a new identity from it starts
    /// banned (identities are free; addresses are not; an IPv6 address bans its /64).
    /// Loopback is exempt.
    pub ban_hosts: bool,
    /// Trust records kept (one per identity that gave or took a copy): past this, the records
    /// of the identities that left longest ago are dropped, a tenth at a time, and a returning
    /// one starts afresh. Connected identities keep theirs, and bans are kept apart.
    pub trust_records: usize,
    /// The scheduling policy.
    pub policy: Policy,
    /// Verified failures after which a giver whose failures exceed half its transfers is banned.
    pub ban_after_failures: u32,
    /// Holders examined per chunk when choosing a giver.
    pub giver_sample: u32,
    /// Candidate chunks examined per scheduling attempt.
    pub chunk_sample: u32,
    /// Upload slots per node: fixed, or following its measured upload rate.
    pub upload_slots: UploadSlots,
    /// With [`UploadSlots::Measured`], the upload slots of a node whose rate is not measured
    /// yet (at most `max_uploads`). Its uplink is unknown: a couple of uploads measure it
    /// without swamping a slow one (granting `max_uploads` let a new 2 Mbit/s viewer take
    /// sixteen uploads at once, each crawling for seconds; docs/results.md, live).
    pub unmeasured_slots: u16,
    /// Live streams: a chunk appended longer ago than this is no longer scheduled, since it
    /// would reach a viewer after its playback deadline (set it to the viewers' playback
    /// buffer). Viewers that fell behind then fetch chunks they can still play in time
    /// instead of spending bandwidth on late ones. It also bounds a viewer's join chunk: it goes
    /// past a measured holder's rate slots only if expected to land before this deadline.
    /// `None`: every chunk in the window.
    pub live_deadline: Option<Span>,
    /// Order a giver's next upload before its current one ends (the original's "10
    /// transfers, 5 moving data"): when a started upload is expected to finish within the
    /// measured order lead time (order sent → data moving), the giver gets one slot more
    /// until that upload completes, so its uplink does not idle for the control round trip
    /// between chunks. Needs measured upload rates; unmeasured givers are not queued ahead.
    pub queue_ahead: bool,
    /// Live with a `live_deadline`: a chunk is ordered only from a giver expected to land it
    /// before `append + live_deadline` (its measured rate shared with its uploads after this
    /// one, plus the order lead time). Unmeasured givers always qualify.
    pub deadline_givers: bool,
    /// Live: a viewer's next this-many chunks (from the first it still wants) are ordered
    /// first and in order, before the chunk policy ranks the rest: they are the ones its
    /// player needs soonest. 0: off.
    pub urgent_chunks: u32,
    /// With [`UploadSlots::Measured`]: the copy time after a copy of a live content, where
    /// each hop of a fresh chunk's relay tree counts against the viewers' buffer (`None`: the
    /// same copy time as files).
    pub live_copy_time: Option<Span>,
    /// Probe each node that says it listens with a connection of the tracker's own to the
    /// address it joined from and the port it named, and treat it as a node that does not
    /// listen if that connection has not opened within this ([`super::reach`]): a node behind
    /// a NAT is then dialled by nobody and dials reachable takers itself. `None`: no probes,
    /// every listening node is taken at its word (the simulator's nodes are all reachable).
    pub reach_probe: Option<Span>,
}

impl Limits {
    /// The original PDTP limits: 10 transfers, 5 each way.
    pub const DEFAULT: Self = Self { max_transfers: 10, max_uploads: 5, max_downloads: 5 };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Policy {
    /// Fastest completion: rarest chunk first, least-loaded giver, origin unrestricted.
    pub const TIME_FIRST: Self = Self {
        chunk: ChunkPolicy::RarestFirst,
        giver: GiverPolicy::LeastLoaded,
        origin: OriginPolicy::Unrestricted,
    };
    /// Cheapest origin: rarest chunk first, least-loaded giver, origin frugal.
    pub const ORIGIN_FRUGAL: Self = Self {
        chunk: ChunkPolicy::RarestFirst,
        giver: GiverPolicy::LeastLoaded,
        origin: OriginPolicy::Frugal,
    };
    /// Streaming viewers: chunks in order, least-loaded giver.
    pub const STREAMING: Self = Self {
        chunk: ChunkPolicy::InOrder,
        giver: GiverPolicy::LeastLoaded,
        origin: OriginPolicy::Unrestricted,
    };
}

impl ChunkPolicy {
    /// The name used in config and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::InOrder => "in_order",
            Self::RarestFirst => "rarest_first",
            Self::Random => "random",
        }
    }
}

impl GiverPolicy {
    /// The name used in config and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::LeastLoaded => "least_loaded",
            Self::Trust => "trust",
            Self::Fastest => "fastest",
        }
    }
}

impl OriginPolicy {
    /// The name used in config and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unrestricted => "unrestricted",
            Self::Frugal => "frugal",
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Self::TIME_FIRST
    }
}

impl TrackerConfig {
    /// Defaults from the original PDTP, with the given seed key.
    pub fn with_key(seed_key: impl Into<Vec<u8>>) -> Self {
        Self {
            seed_key: seed_key.into(),
            limits: Limits::DEFAULT,
            seed_limits: Limits::DEFAULT,
            stall_timeout: Span::from_secs(20),
            transfer_timeout: Span::from_secs(120),
            sweep_interval: Span::from_secs(2),
            hello_timeout: Span::from_secs(10),
            max_connections: 4096,
            max_connections_per_host: 64,
            max_downloads_per_host: 64,
            ban_hosts: true,
            trust_records: 100_000,
            policy: Policy::default(),
            ban_after_failures: 3,
            giver_sample: 6,
            chunk_sample: 8,
            upload_slots: UploadSlots::Fixed,
            unmeasured_slots: 2,
            live_deadline: None,
            queue_ahead: false,
            deadline_givers: false,
            urgent_chunks: 0,
            live_copy_time: None,
            reach_probe: None,
        }
    }
}

//! What the stats page shows: a plain, serializable picture of a node at one instant.
//!
//! The tracker adapter fills it (the page never reaches into the machines); the same struct
//! is the `/stats.json` body and the source of the HTML page and `/metrics`.

use pdtp_core::policy::PolicySpec;
use serde::{Deserialize, Serialize};

/// Everything the stats page shows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// The node's public name (vhost, else host).
    pub node: String,
    /// `tracker`, `seed` or `peer`.
    pub role: String,
    /// Software version.
    pub version: String,
    /// Seconds since the node started.
    pub uptime_s: f64,
    /// Connected peers and seeds.
    pub peers: Vec<PeerStats>,
    /// Published files and live streams.
    pub files: Vec<FileStats>,
    /// Transfers scheduled or moving now.
    pub transfers: Vec<TransferStats>,
    /// Counters since start.
    pub totals: Totals,
    /// Configured rate caps.
    pub limits: LimitStats,
    /// The scheduling policy the tracker runs (`None` on other roles).
    pub policy: Option<PolicyStats>,
    /// Rates reached.
    pub rates: RateStats,
}

/// One connected peer or seed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    /// Peer id.
    pub id: u32,
    /// Remote address (`ip:port`).
    pub addr: String,
    /// `seed` or `peer`.
    pub role: String,
    /// Uploads in progress.
    pub uploads: u32,
    /// Downloads in progress.
    pub downloads: u32,
    /// Bytes it has served to others.
    pub bytes_up: u64,
    /// Bytes it has taken from others.
    pub bytes_down: u64,
    /// Trust in 0..=1 (verified ÷ attempted transfers it gave, smoothed).
    pub trust: f64,
    /// Its upload rate as the tracker measured it from verified copies, bit/s (0: not yet).
    #[serde(default)]
    pub up_rate_bps: f64,
    /// Upload slots the policy gives it now (0: the policy's fixed count).
    #[serde(default)]
    pub up_slots: u32,
    /// Whether the tracker stopped scheduling it.
    pub banned: bool,
    /// What the tracker's connect-back probe found: `false` for a node behind a NAT or a
    /// firewall, which nobody dials (it dials reachable takers); `None`: not probed (yet).
    #[serde(default)]
    pub reachable: Option<bool>,
}

/// One published content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileStats {
    /// Path under the seed's root (as in the URL).
    pub path: String,
    /// Bytes (published so far, for live content).
    pub size: u64,
    /// Bytes per chunk.
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunks: u32,
    /// Whether it is a live stream.
    pub live: bool,
    /// Peers that want or hold it.
    pub peers: u32,
    /// Chunks held by peers ÷ (chunks × peers), in 0..=1.
    pub progress: f64,
    /// Peers holding every chunk.
    pub complete: u32,
    /// Bytes of it the origin uploaded.
    pub origin_bytes: u64,
    /// Bytes of it peers uploaded to each other.
    pub peer_bytes: u64,
    /// Live, from measured uplinks (`pdtp_core::bounds`): the highest rate the swarm can
    /// carry, bit/s; absent until the seed's uplink is measured and a viewer is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r_max_bps: Option<f64>,
    /// Live: the stream's rate ÷ `r_max_bps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_vs_r_max: Option<f64>,
    /// Live: the lag floor, ⌈log₂(N+1)⌉ copy times of a chunk at the mean measured uplink, s;
    /// a viewer's buffer should be at least `pdtp_core::bounds::BUFFER_MARGIN` (1.5) × it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_floor_s: Option<f64>,
    /// On demand, while chunks are wanted: bytes still to copy to the nodes that want them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_bytes: Option<u64>,
    /// On demand: the origin's and the swarm's measured uplinks summed, bit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_bps: Option<f64>,
    /// On demand: the least time the rest can take at those uplinks, s
    /// (`pdtp_core::tracker::OnDemandBound`); absent while the origin is unmeasured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_s: Option<f64>,
    /// Bytes verified per second since the page's previous snapshot, in bit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput_bps: Option<f64>,
    /// On demand: the rest at that throughput, s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_s: Option<f64>,
    /// The origin's share of the bytes verified so far, 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_share: Option<f64>,
}

/// One transfer ordered and not yet reported finished (the tracker hears of a copy's start
/// only with its end, so it cannot tell waiting orders from moving ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TransferStats {
    /// Content path.
    pub file: String,
    /// Chunk index.
    pub chunk: u32,
    /// Giving peer id.
    pub giver: u32,
    /// Taking peer id.
    pub taker: u32,
    /// Seconds since it was ordered.
    pub age_s: f64,
}

/// Counters since start.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Payload bytes uploaded by seeds (what the origin paid).
    pub origin_bytes: u64,
    /// Payload bytes peers uploaded to each other.
    pub peer_bytes: u64,
    /// Transfers verified.
    pub transfers_completed: u64,
    /// Transfers that failed (corrupt, stalled, closed).
    pub transfers_failed: u64,
    /// Chunks that failed verification.
    pub chunks_corrupt: u64,
    /// Connections refused because of the connection cap.
    pub connections_refused: u64,
}

/// The tracker's scheduling policy, in the keys and units of a config's `policy:` section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyStats {
    /// The chunk size the tracker's config names for files (the one the policy was chosen
    /// for; each file's own is in its row).
    pub chunk_size: u32,
    /// The same for live streams.
    pub live_chunk_size: u32,
    /// Every policy setting.
    pub settings: PolicySpec,
}

/// Configured rate caps (`None`: unlimited).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitStats {
    /// Upload cap in bytes per second.
    pub max_upload_rate: Option<u64>,
    /// Download cap in bytes per second.
    pub max_download_rate: Option<u64>,
}

/// Rates reached, in bytes per second.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateStats {
    /// Upload rate over the last window.
    pub upload: f64,
    /// Download rate over the last window.
    pub download: f64,
    /// Highest upload rate seen.
    pub peak_upload: f64,
    /// Highest download rate seen.
    pub peak_download: f64,
}

impl StatsSnapshot {
    /// Share of all uploaded payload that peers (not the origin) carried, in 0..=1.
    pub fn peer_share(&self) -> f64 {
        let total = self.totals.origin_bytes + self.totals.peer_bytes;
        if total == 0 { 0.0 } else { self.totals.peer_bytes as f64 / total as f64 }
    }
}

//! Read-only snapshots of the tracker for stats pages and reports.

use super::Tracker;
use super::state::{Content, NodeIdx};
use crate::bounds::{Feasibility, LiveBounds, LiveSwarm, RATE_MARGIN};
use crate::ids::{ChunkIndex, ContentId, Endpoint, PeerId, Token};
use crate::time::{Span, Time};
use crate::wire::{ErrorCode, Message, Notice, Role};

/// One node as the stats page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeStats {
    /// Its id.
    pub peer: PeerId,
    /// Peer or seed.
    pub role: Role,
    /// Where it listens, if it does (and its probe did not find it unreachable).
    pub endpoint: Option<Endpoint>,
    /// What the tracker's reachability probe found (`None`: not probed, or not yet).
    pub reachable: Option<bool>,
    /// Outstanding orders as giver.
    pub uploads: u16,
    /// Outstanding orders as taker.
    pub downloads: u16,
    /// Verified bytes it gave.
    pub bytes_up: u64,
    /// Verified bytes it received.
    pub bytes_down: u64,
    /// Chunks it holds, summed over contents.
    pub chunks_held: u64,
    /// Whether it is banned as a giver.
    pub banned: bool,
    /// Laplace-smoothed success ratio as a giver.
    pub reputation: f64,
    /// Its upload rate as measured from verified copies, bytes/s (0 until measured).
    pub up_rate: f64,
    /// Upload slots it may fill now (outstanding orders as giver at most; 0: the policy's
    /// fixed count).
    pub up_slots: u16,
    /// When it said hello.
    pub joined: Time,
}

/// One content as the stats page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentStats {
    /// Its id.
    pub content: ContentId,
    /// Its path.
    pub path: String,
    /// Total bytes (so far, for live).
    pub size: u64,
    /// Chunk size.
    pub chunk_size: u32,
    /// Chunks (so far, for live).
    pub chunks: u32,
    /// Whether it is live.
    pub live: bool,
    /// Copies held, summed over chunks (a full copy counts `chunks`).
    pub chunk_copies: u64,
    /// Verified bytes served by seeds.
    pub bytes_from_origin: u64,
    /// Verified bytes served by peers.
    pub bytes_from_peers: u64,
    /// Peers that completed it.
    pub completions: u32,
    /// Live, once the publishing seed's uplink is measured and a viewer is there: r_max and
    /// the lag floor from the measured uplinks (the seed's and its viewers'; a viewer not
    /// measured yet counts as 0). Downloads are not measured, so `download_short` is false.
    pub live_bounds: Option<LiveBounds>,
    /// On demand, while someone still wants chunks of it: the rest measured against what
    /// the measured uplinks can carry.
    pub on_demand: Option<OnDemandBound>,
}

/// The distance to the bound of an on-demand content, from measured uplinks. A node not
/// measured yet counts as 0, so until the swarm's uplinks are measured `bound_s` is longer
/// than the true bound: the least time at the uplinks measured so far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnDemandBound {
    /// Chunk bytes still to be copied to the nodes that want them (waiting or under way).
    pub remaining_bytes: u64,
    /// Bytes of chunks no peer holds yet, which only the origin can give.
    pub origin_only_bytes: u64,
    /// The origin's measured uplink, bit/s.
    pub origin_up_bps: f64,
    /// The origin's and every node's holding or wanting it, summed, bit/s.
    pub capacity_bps: f64,
    /// The least time the rest can take (Kumar–Ross's terms for what is left): the larger
    /// of remaining ÷ capacity and origin-only ÷ the origin's uplink; none while the
    /// origin is unmeasured.
    pub bound_s: Option<f64>,
}

/// One transfer ordered and not yet finished, as the stats page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct ActiveTransfer {
    /// The order's token.
    pub token: Token,
    /// Who gives the chunk.
    pub giver: PeerId,
    /// Who takes it.
    pub taker: PeerId,
    /// The content.
    pub content: ContentId,
    /// Its path.
    pub path: String,
    /// The chunk.
    pub chunk: ChunkIndex,
    /// When the tracker ordered it (its start is known only when it completes).
    pub ordered: Time,
}

/// A snapshot of the tracker.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackerStats {
    /// Welcomed nodes, in id order.
    pub nodes: Vec<NodeStats>,
    /// Published contents, in id order.
    pub contents: Vec<ContentStats>,
    /// Transfers ordered and not yet finished.
    pub active_transfers: usize,
    /// The same transfers, oldest order first (ties by token).
    pub transfers: Vec<ActiveTransfer>,
    /// Open connections (welcomed or not).
    pub connections: usize,
    /// Scheduling decisions made so far.
    pub decisions: u64,
}

/// A seed is told again about an unchanged verdict no sooner than this.
const ADVICE_EVERY: Span = Span::from_secs(30);

impl Tracker {
    /// Tells the seed of each live stream, in a `Warning`, when the stream moves past what
    /// its swarm's measured uplinks can carry (and when it is back within): the seed's
    /// operator is the one who can lower the bitrate or add upload, and nothing else would
    /// say so before viewers stall. Sent when the verdict changes, a worse one at once, a
    /// better one after [`ADVICE_EVERY`] (measured rates wobble).
    pub(super) fn advise_live_seeds(&mut self, now: Time) {
        for ci in 0..self.contents.len() {
            let c = &self.contents[ci];
            let Some(b) = c.manifest.live.and(self.live_bounds(c)) else { continue };
            let verdict = b.feasibility();
            let due = match c.advised {
                None => verdict != Feasibility::Fits,
                Some((last, at)) => {
                    verdict > last || (verdict < last && now.saturating_since(at) >= ADVICE_EVERY)
                }
            };
            let Some(conn) = self.by_id.get(&c.publisher).and_then(|&i| self.node(i)).map(|n| n.conn) else {
                continue;
            };
            if !due {
                continue;
            }
            let (path, viewers) = (c.manifest.path.clone(), c.viewers.len());
            let rate = c.manifest.live.map_or(0, |l| l.bitrate_bps) as f64 / 1e6;
            let bounds = format!(
                "r_max {:.2} Mbit/s from the measured uplinks of the origin and {viewers} viewers; the \
                 stream at {rate:.2} Mbit/s is {:.2} × r_max",
                b.r_max_bps / 1e6,
                b.load
            );
            // (Under a tenth of a second, as on loopback, the buffer is not worth a word.)
            let buffer = Some(b.buffer_that_fits())
                .filter(|&s| s >= 0.1)
                .map(|s| format!(" (viewers need a buffer of at least {s:.1} s at this chunk size)"))
                .unwrap_or_default();
            let detail = match verdict {
                Feasibility::Infeasible => format!(
                    "live stream '{path}': {bounds}: the swarm cannot carry it to every viewer; lower \
                     the bitrate or add upload{buffer}"
                ),
                Feasibility::PastMargin => format!(
                    "live stream '{path}': {bounds}, past the {RATE_MARGIN} × r_max the live targets hold to: \
                     expect stalls{buffer}"
                ),
                Feasibility::Fits => {
                    format!("live stream '{path}': {bounds}: within what the swarm carries again")
                }
            };
            self.contents[ci].advised = Some((verdict, now));
            self.send(conn, Message::Warning(Notice::new(ErrorCode::Overloaded, detail)));
        }
    }

    /// [`ContentStats::on_demand`] of `c`.
    fn on_demand_bound(&self, c: &Content) -> Option<OnDemandBound> {
        if c.manifest.is_live() {
            return None;
        }
        let chunk_bytes = |i: usize| u64::from(c.manifest.geometry.chunk_len(i as ChunkIndex));
        let (mut remaining_bytes, mut origin_only_bytes) = (0, 0);
        for i in 0..c.num_chunks() as usize {
            let wanted = u64::from(c.pending_count[i]) + u64::from(c.inflight_count[i]);
            remaining_bytes += wanted * chunk_bytes(i);
            if wanted > 0 && c.peer_holder_count[i] == 0 {
                origin_only_bytes += chunk_bytes(i);
            }
        }
        if remaining_bytes == 0 {
            return None;
        }
        // Measured rates are bytes per second.
        let rate = |idx: usize| f64::from(self.up_rates.get(idx).copied().unwrap_or(0.0)) * 8.0;
        let origin_up_bps = self.by_id.get(&c.publisher).map_or(0.0, |&i| rate(i.0 as usize));
        let capacity_bps: f64 = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].as_ref().is_some_and(|n| n.content(c.id).is_some() || n.id == c.publisher)
            })
            .map(rate)
            .sum();
        let bound_s = (origin_up_bps > 0.0).then(|| {
            let bits = |b: u64| b as f64 * 8.0;
            (bits(remaining_bytes) / capacity_bps).max(bits(origin_only_bytes) / origin_up_bps)
        });
        Some(OnDemandBound { remaining_bytes, origin_only_bytes, origin_up_bps, capacity_bps, bound_s })
    }

    /// [`ContentStats::live_bounds`] of `c`.
    fn live_bounds(&self, c: &Content) -> Option<LiveBounds> {
        let live = c.manifest.live?;
        // Measured rates are bytes per second.
        let rate = |idx: NodeIdx| f64::from(self.up_rates.get(idx.0 as usize).copied().unwrap_or(0.0)) * 8.0;
        let origin = rate(*self.by_id.get(&c.publisher)?);
        let viewers: f64 = c.viewers.iter().map(|&v| rate(v)).sum();
        (origin > 0.0 && !c.viewers.is_empty()).then(|| {
            LiveBounds::of(&LiveSwarm {
                origin_up_bps: origin,
                peer_ups_bps: viewers,
                d_min_bps: f64::INFINITY,
                n: c.viewers.len() as u64,
                bitrate_bps: live.bitrate_bps as f64,
                chunk_bytes: u64::from(c.manifest.geometry.chunk_size),
            })
        })
    }

    /// A snapshot for the stats page. O(nodes + chunks): not for hot paths.
    pub fn stats(&self) -> TrackerStats {
        let nodes = self
            .by_id
            .values()
            .filter_map(|&idx| Some((idx, self.node(idx)?)))
            .map(|(idx, n)| (self.loads[idx.0 as usize], self.up_rates.get(idx.0 as usize), n))
            .map(|(load, rate, n)| NodeStats {
                peer: n.id,
                role: n.role,
                endpoint: n.endpoint.clone(),
                reachable: n.reachable,
                uploads: load.up,
                downloads: load.down,
                bytes_up: n.bytes_up,
                bytes_down: n.bytes_down,
                chunks_held: n.contents.iter().map(|c| u64::from(c.have.count())).sum(),
                banned: load.banned,
                reputation: self.trust.giver(n.id).reputation(),
                up_rate: rate.copied().map_or(0.0, f64::from),
                up_slots: load.up_slots,
                joined: n.joined,
            })
            .collect();
        let contents = self
            .contents
            .iter()
            .map(|c| ContentStats {
                content: c.id,
                path: c.manifest.path.clone(),
                size: c.manifest.geometry.size,
                chunk_size: c.manifest.geometry.chunk_size,
                chunks: c.num_chunks(),
                live: c.manifest.is_live(),
                chunk_copies: c.holder_count.iter().map(|&h| u64::from(h)).sum(),
                bytes_from_origin: c.bytes_from_origin,
                bytes_from_peers: c.bytes_from_peers,
                completions: c.completions,
                live_bounds: self.live_bounds(c),
                on_demand: self.on_demand_bound(c),
            })
            .collect();
        let mut transfers: Vec<ActiveTransfer> = self
            .transfers
            .iter()
            .map(|(token, t)| ActiveTransfer {
                token,
                giver: t.giver_id,
                taker: self.node(t.taker).map_or(PeerId(u32::MAX), |n| n.id),
                content: t.content,
                path: self
                    .contents
                    .iter()
                    .find(|c| c.id == t.content)
                    .map_or_else(String::new, |c| c.manifest.path.clone()),
                chunk: t.chunk,
                ordered: t.ordered,
            })
            .collect();
        transfers.sort_by_key(|t| (t.ordered, t.token));
        TrackerStats {
            nodes,
            contents,
            active_transfers: self.transfers.len(),
            transfers,
            connections: self.conns.len(),
            decisions: self.decisions,
        }
    }
}

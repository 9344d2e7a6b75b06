//! What a run measured: the physical bounds, a recorder the engine feeds, and the typed
//! per-run record that reports and plots read (STYLE 19). Every metric is defined once, in
//! `docs/simulator.md`; the doc comments here repeat the definition and the unit.

use pdtp_core::{ChunkIndex, Time};
use serde::Serialize;

use crate::node::NodeEvent;

mod stream;

pub use stream::StreamClock;

/// The Kumar–Ross lower bound on the time for `n` peers to all hold a file, in seconds:
/// `T_min = max(F/u_s, F/d_min, N·F/(u_s + Σu_i))` with `F` in bits (bytes × 8) and
/// capacities in bit/s. No schedule can finish every peer earlier.
pub fn t_min_s(file_bytes: u64, origin_up_bps: f64, peer_ups_bps: f64, d_min_bps: f64, n: u64) -> f64 {
    let f = file_bytes as f64 * 8.0;
    let a = f / origin_up_bps;
    let b = f / d_min_bps;
    let c = n as f64 * f / (origin_up_bps + peer_ups_bps);
    a.max(b).max(c)
}

/// The Kumar–Ross bound counted from when each viewer arrived, in seconds from time zero:
/// viewer `i` (upload `u_i`, download `d_i`, arrival `a_i`) can upload only from `a_i` and
/// hold the file no sooner than `a_i + F/d_i`, so the last viewer is done no sooner than the
/// largest of `F/u_s`, `max_i (a_i + F/d_i)` and the `T` at which the capacity present since
/// time zero, `u_s·T + Σ u_i·(T − a_i)`, has carried the `N·F` bits every viewer needs.
/// (Where that `T` falls before the last arrival, the second term is larger anyway.)
/// `viewers` gives `(a_i, u_i, d_i)` in seconds and bit/s.
pub fn t_arrivals_s(file_bytes: u64, origin_up_bps: f64, viewers: &[(f64, f64, f64)]) -> f64 {
    let f = file_bytes as f64 * 8.0;
    let n = viewers.len() as f64;
    let (up, weighted) = viewers.iter().fold((0.0, 0.0), |(u, w), &(a, ui, _)| (u + ui, w + ui * a));
    let capacity = (n * f + weighted) / (origin_up_bps + up);
    let last = viewers.iter().map(|&(a, _, d)| a + f / d).fold(0.0, f64::max);
    (f / origin_up_bps).max(last).max(capacity)
}

pub use pdtp_core::bounds::r_max_bps;

/// Nearest-rank percentile of sorted values (`q` in 0..=1); `None` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One viewer's record, written as a CSV row.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PeerRecord {
    /// Viewer index.
    pub peer: u32,
    /// Its class label.
    pub class: String,
    /// First arrival, seconds since the start.
    pub arrival_s: Option<f64>,
    /// When it held everything, seconds since the start.
    pub done_s: Option<f64>,
    /// `done_s − arrival_s`: the download time the viewer experienced, seconds.
    pub completion_s: Option<f64>,
    /// When it left for the last time (churn without a return, or its `seed_for` over),
    /// seconds since the start; empty if it was there at the end of the run.
    pub departed_s: Option<f64>,
    /// Chunk payload bytes it uploaded.
    pub uploaded_bytes: u64,
    /// Chunk payload bytes it downloaded.
    pub downloaded_bytes: u64,
    /// Times it left (churn).
    pub departures: u32,
    /// Times its player restarted after losing the tracker (not departures: the viewer
    /// stayed, and chunks due meanwhile count as missed).
    pub restarts: u32,
    /// Chunks that failed verification.
    pub rejected_chunks: u32,
    /// Live: playback startup delay, seconds.
    pub startup_s: Option<f64>,
    /// Live: share of due chunks present by their playback deadline.
    pub continuity: Option<f64>,
    /// Live: chunks whose playback deadline passed while the viewer was there.
    pub due_chunks: Option<u64>,
    /// Live: of those, chunks present by their deadline.
    pub on_time_chunks: Option<u64>,
    /// Live: playback stalls (runs of late chunks).
    pub stalls: Option<u32>,
    /// Live: mean time from a chunk's production to its in-order arrival, seconds.
    pub live_lag_s: Option<f64>,
}

/// The recorder the engine feeds while a run goes.
#[derive(Debug)]
pub struct Recorder {
    peers: Vec<PeerState>,
    stream: Option<StreamClock>,
    tracker_buckets: Vec<u64>,
    /// Messages the tracker handled (not sent) per one-second bucket.
    handled_buckets: Vec<u64>,
    origin_buckets: Vec<u64>,
    tracker_bytes: u64,
    tracker_msgs: u64,
    payload_bytes: u64,
    origin_bytes: u64,
    failures: u64,
}

#[derive(Debug, Default)]
struct PeerState {
    class: String,
    arrival: Option<Time>,
    done: Option<Time>,
    online_since: Option<Time>,
    gone: Option<Time>,
    departures: u32,
    restarts: u32,
    rejected: u32,
    uploaded: u64,
    downloaded: u64,
    play: stream::PlayState,
}

impl Recorder {
    /// A recorder for viewers of the given class labels; `stream` for live content.
    pub fn new(classes: Vec<String>, stream: Option<StreamClock>) -> Self {
        Self {
            peers: classes.into_iter().map(|class| PeerState { class, ..PeerState::default() }).collect(),
            stream,
            tracker_buckets: Vec::new(),
            handled_buckets: Vec::new(),
            origin_buckets: Vec::new(),
            tracker_bytes: 0,
            tracker_msgs: 0,
            payload_bytes: 0,
            origin_bytes: 0,
            failures: 0,
        }
    }

    /// Viewer `p` came online.
    pub fn arrive(&mut self, p: u32, now: Time) {
        let s = &mut self.peers[p as usize];
        s.arrival.get_or_insert(now);
        s.online_since = Some(now);
        s.gone = None;
        s.play.arrive(now);
    }

    /// Viewer `p` went offline.
    pub fn leave(&mut self, p: u32, now: Time) {
        let s = &mut self.peers[p as usize];
        s.departures += 1;
        s.gone = Some(now);
        s.online_since = None;
        s.play.leave(now);
    }

    /// Viewer `p`'s player restarted (it lost the tracker); it stays present throughout.
    pub fn restart(&mut self, p: u32) {
        self.peers[p as usize].restarts += 1;
    }

    /// Whether viewer `p` has completed.
    pub fn is_done(&self, p: u32) -> bool {
        self.peers[p as usize].done.is_some()
    }

    /// An event from viewer `p`'s machine.
    pub fn peer_event(&mut self, p: u32, now: Time, ev: NodeEvent) {
        let s = &mut self.peers[p as usize];
        match ev {
            NodeEvent::Completed => {
                s.done.get_or_insert(now);
            }
            NodeEvent::ChunkRejected { .. } => s.rejected += 1,
            NodeEvent::TransferFailed => self.failures += 1,
            NodeEvent::InOrder { chunk } => {
                if let (Some(clock), Some(arrival)) = (&self.stream, s.arrival) {
                    s.play.in_order(clock, arrival, chunk, now);
                }
            }
            _ => {}
        }
    }

    /// A failure seen by a non-viewer (seed or tracker).
    pub fn failure(&mut self) {
        self.failures += 1;
    }

    /// A message handled or sent by the tracker, of `bytes` on the wire.
    pub fn tracker_message(&mut self, now: Time, bytes: u64) {
        self.tracker_msgs += 1;
        self.tracker_bytes += bytes;
        bump(&mut self.tracker_buckets, now, 1);
    }

    /// A message the tracker handled (received and processed), of `bytes` on the wire:
    /// counted as a tracker message and in the handled-per-second buckets.
    pub fn tracker_handled(&mut self, now: Time, bytes: u64) {
        self.tracker_message(now, bytes);
        bump(&mut self.handled_buckets, now, 1);
    }

    /// A chunk payload of `bytes` delivered from `from` to `to` (viewer indexes; `None`
    /// for a seed). `origin` marks a seed as the sender.
    pub fn payload(&mut self, now: Time, from: Option<u32>, to: Option<u32>, bytes: u64, origin: bool) {
        self.payload_bytes += bytes;
        if origin {
            self.origin_bytes += bytes;
            bump(&mut self.origin_buckets, now, bytes);
        }
        if let Some(f) = from {
            self.peers[f as usize].uploaded += bytes;
        }
        if let Some(t) = to {
            self.peers[t as usize].downloaded += bytes;
        }
    }

    /// Ends the run at `end` and computes the summary.
    pub fn finish(self, end: Time) -> Measured {
        let stream = self.stream;
        let records: Vec<PeerRecord> = self
            .peers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let play = stream.as_ref().and_then(|c| s.play.summary(c, s.gone.unwrap_or(end)));
                PeerRecord {
                    peer: i as u32,
                    class: s.class.clone(),
                    arrival_s: s.arrival.map(Time::as_secs_f64),
                    done_s: s.done.map(Time::as_secs_f64),
                    departed_s: s.gone.map(Time::as_secs_f64),
                    completion_s: s.done.zip(s.arrival).map(|(d, a)| (d - a).as_secs_f64()),
                    uploaded_bytes: s.uploaded,
                    downloaded_bytes: s.downloaded,
                    departures: s.departures,
                    restarts: s.restarts,
                    rejected_chunks: s.rejected,
                    startup_s: play.as_ref().and_then(|p| p.startup_s),
                    // Nothing due while the viewer was there (it came back after the end): no
                    // share to report, rather than a perfect one.
                    continuity: play.as_ref().filter(|p| p.due > 0).map(|p| p.continuity),
                    due_chunks: play.as_ref().map(|p| p.due),
                    on_time_chunks: play.as_ref().map(|p| p.on_time),
                    stalls: play.as_ref().map(|p| p.stalls),
                    live_lag_s: play.as_ref().and_then(|p| p.mean_lag_s),
                }
            })
            .collect();
        let makespan = self.peers.iter().filter_map(|s| s.done).max().map(Time::as_secs_f64);
        Measured {
            records,
            makespan_s: makespan,
            tracker_msgs: self.tracker_msgs,
            tracker_bytes: self.tracker_bytes,
            tracker_msgs_per_s_peak: self.tracker_buckets.iter().copied().max().unwrap_or(0),
            tracker_handled_per_s_peak: self.handled_buckets.iter().copied().max().unwrap_or(0),
            payload_bytes: self.payload_bytes,
            origin_bytes: self.origin_bytes,
            origin_per_s: self.origin_buckets,
            failures: self.failures,
        }
    }
}

/// Raw totals of a finished run, before they are related to the scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// One record per viewer.
    pub records: Vec<PeerRecord>,
    /// When the last viewer completed, seconds (none if none did).
    pub makespan_s: Option<f64>,
    /// Messages handled or sent by the tracker.
    pub tracker_msgs: u64,
    /// Bytes of those messages, both directions.
    pub tracker_bytes: u64,
    /// Most tracker messages in any one-second bucket.
    pub tracker_msgs_per_s_peak: u64,
    /// Most messages the tracker handled in any one-second bucket.
    pub tracker_handled_per_s_peak: u64,
    /// Chunk payload bytes delivered.
    pub payload_bytes: u64,
    /// Chunk payload bytes uploaded by seeds.
    pub origin_bytes: u64,
    /// Origin payload bytes per one-second bucket.
    pub origin_per_s: Vec<u64>,
    /// Failed transfers seen.
    pub failures: u64,
}

fn bump(buckets: &mut Vec<u64>, now: Time, by: u64) {
    let b = (now.as_nanos() / 1_000_000_000) as usize;
    if buckets.len() <= b {
        buckets.resize(b + 1, 0);
    }
    buckets[b] += by;
}

/// Index helper for live chunk math.
pub(crate) fn chunk_f(c: ChunkIndex) -> f64 {
    f64::from(c)
}

#[cfg(test)]
mod tests;

//! Reports: the typed per-run record (`report.json`), the per-viewer CSV, SVG plots and the
//! terminal table. Same scenario and seed give byte-identical output apart from the three
//! wall-clock fields (`events_per_s`, `wall_s`, `peak_rss_bytes`): everything else comes from
//! ordered containers, and floats are printed by serde_json's shortest round-trip format.

use std::fmt::Write as _;
use std::path::Path;

use pdtp_core::bounds::{LiveBounds, LiveSwarm, SteadySwarm};
use serde::Serialize;

use crate::engine::{EndReason, RunOutput};
use crate::metrics::{PeerRecord, percentile, r_max_bps, t_arrivals_s, t_min_s};
use crate::plot::{self, Chart, Series};
use pdtp_core::tracker::{ChunkPolicy, GiverPolicy};

use crate::scenario::{Arrivals, PolicySpec, Scenario};

mod host;

pub use host::{Stopwatch, peak_rss_bytes};

/// The physical bounds of a scenario, before anything runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bounds {
    /// Kumar–Ross lower bound on the time for every viewer to hold the content, seconds.
    pub t_min_s: f64,
    /// Highest stream bitrate every viewer can sustain, bit/s.
    pub r_max_bps: f64,
    /// Total origin upload u_s, bit/s.
    pub origin_up_bps: f64,
    /// Sum of viewer uploads Σu_i, bit/s.
    pub peer_up_bps: f64,
    /// Slowest viewer download d_min, bit/s.
    pub d_min_bps: f64,
}

impl Bounds {
    /// The bounds of `s` (u_s is the sum over its seeds).
    pub fn of(s: &Scenario) -> Self {
        let origin = f64::from(s.seeds.count) * s.seeds.upload.0 as f64;
        let peers: f64 = s.peers.iter().map(|c| f64::from(c.count) * c.upload.0 as f64).sum();
        let d_min = s.peers.iter().map(|c| c.download.0).min().unwrap_or(0) as f64;
        let n = s.peer_count();
        Self {
            t_min_s: t_min_s(s.file_bytes(), origin, peers, d_min, n),
            r_max_bps: r_max_bps(origin, peers, n),
            origin_up_bps: origin,
            peer_up_bps: peers,
            d_min_bps: d_min,
        }
    }

    /// An on-demand scenario in Qiu and Srikant's steady state (Poisson arrivals, viewers
    /// that leave after `seed_for`, no churn): the swarm the fluid model takes.
    pub fn steady(&self, s: &Scenario) -> Option<SteadySwarm> {
        let (Arrivals::Poisson { rate }, Some(seed_for), None, None) =
            (&s.arrivals, s.seed_for, &s.churn, &s.content.live)
        else {
            return None;
        };
        let n = s.peer_count().max(1) as f64;
        let file_bits = s.file_bytes() as f64 * 8.0;
        let link_download_s =
            s.peers.iter().map(|c| f64::from(c.count) * file_bits / c.download.0.max(1) as f64).sum::<f64>()
                / n;
        Some(SteadySwarm {
            arrivals_per_s: *rate,
            file_bits,
            mean_up_bps: self.peer_up_bps / n,
            origin_up_bps: self.origin_up_bps,
            mean_seed_s: seed_for.time().secs(),
            link_download_s,
        })
    }

    /// A live scenario's bounds: r_max, the copy time and the lag floor.
    pub fn live(&self, s: &Scenario) -> Option<LiveBounds> {
        let live = s.content.live.as_ref()?;
        Some(LiveBounds::of(&LiveSwarm {
            origin_up_bps: self.origin_up_bps,
            peer_ups_bps: self.peer_up_bps,
            d_min_bps: self.d_min_bps,
            n: s.peer_count(),
            bitrate_bps: live.bitrate.0 as f64,
            chunk_bytes: s.content.chunk_size.0,
        }))
    }
}

/// A steady-state run against the fluid model ([`Bounds::steady`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SteadyState {
    /// The fluid model's mean download time, seconds (`pdtp_core::bounds::SteadySwarm`).
    pub fluid_download_s: f64,
    /// Its downlink bound, seconds: the mean time at each viewer's own downlink rate. Where
    /// `fluid_download_s` is above it, upload is the model's limit.
    pub link_download_s: f64,
    /// The mean download time (done − arrival) of the middle half of the viewers by
    /// arrival, seconds: the first quarter meets a swarm still filling (only the origin at
    /// first), the last a swarm draining (seeds and no newcomers), neither the steady state.
    pub mean_download_s: f64,
    /// `mean_download_s ÷ fluid_download_s`.
    pub ratio: f64,
    /// The share of the swarm's upload (viewers and origin) that moving the arrivals' demand
    /// took at the measured mean download time (`SteadySwarm::upload_use`): 1 where the fluid
    /// model is upload-bound, below where the run left upload idle.
    pub upload_use: f64,
    /// Viewers in the mean.
    pub viewers: u64,
}

/// p50/p90/p99/max of a distribution, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread4 {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// p50/p99 of a distribution, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread2 {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// p10/p50/p90 of a ratio.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread3 {
    /// 10th percentile.
    pub p10: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
}

/// One run's results (`report.json`; a sweep writes `{"cells": [Report, ...]}`).
///
/// The keys up to `r_max_bps` are the ones issue 3 fixes; units are in the names.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Policy label (the sweep's name for it, or `default`).
    pub policy: String,
    /// Chunk choice of the policy.
    pub chunk_choice: ChunkPolicy,
    /// Giver choice of the policy.
    pub giver_choice: GiverPolicy,
    /// Every setting of the policy the run used (a sweep cell's overrides applied), in the
    /// scenario file's keys and units.
    pub policy_settings: PolicySpec,
    /// RNG seed of the run.
    pub seed: u64,
    /// Viewers N.
    pub peers: u64,
    /// Content size F, bytes.
    pub file_bytes: u64,
    /// Chunk size, bytes.
    pub chunk_bytes: u64,
    /// Kumar–Ross lower bound, seconds.
    pub t_min_s: f64,
    /// Per-viewer completion time (done − arrival) over the viewers that completed, seconds.
    pub completion_s: Option<Spread4>,
    /// Makespan ÷ T_min (makespan: when the last viewer completed, from time zero); on
    /// demand only, and only when every viewer completed.
    pub ratio_to_t_min: Option<f64>,
    /// On demand, every viewer arrived once and stayed: the Kumar–Ross bound counted from
    /// each viewer's arrival (`metrics::t_arrivals_s`), seconds from time zero; T_min
    /// assumes everyone is there at time zero.
    pub t_arrivals_s: Option<f64>,
    /// Makespan ÷ `t_arrivals_s`: what the scheduling loses, the arrival window aside.
    pub ratio_to_t_arrivals: Option<f64>,
    /// Poisson arrivals and `seed_for`, no churn, every viewer done: the mean download time
    /// against Qiu and Srikant's fluid model.
    pub steady_state: Option<SteadyState>,
    /// Chunk payload bytes uploaded by seeds.
    pub origin_bytes: u64,
    /// origin_bytes ÷ F.
    pub origin_copies: f64,
    /// origin_bytes ÷ (N·F): what the origin paid relative to unicast.
    pub origin_cost_fraction: f64,
    /// Tracker wire bytes, both directions ÷ chunk payload bytes delivered.
    pub control_overhead: Option<f64>,
    /// Most messages the tracker handled or sent in one simulated second.
    pub tracker_msgs_per_s_peak: u64,
    /// Most messages the tracker handled (received and processed) in one simulated second.
    pub tracker_handled_per_s_peak: u64,
    /// The tracker's processing time per handled message, seconds (`tracker.processing`).
    pub tracker_processing_s: f64,
    /// The busiest simulated second's share spent processing messages: handled messages ×
    /// `tracker.processing` (≥ 1: messages queued for the tracker; 0 when processing is free).
    pub tracker_busy_peak: f64,
    /// Events the engine processed.
    pub events: u64,
    /// Events per wall-clock second (wall-clock field).
    pub events_per_s: f64,
    /// Wall-clock seconds of the run (wall-clock field).
    pub wall_s: f64,
    /// Peak resident memory of the process, bytes (wall-clock field; VmHWM).
    pub peak_rss_bytes: Option<u64>,
    /// Live: share of due chunks (over all viewers) present by their playback deadline;
    /// `null` when no chunk was due.
    pub continuity_index: Option<f64>,
    /// Live: playback startup delay over viewers that started, seconds.
    pub startup_s: Option<Spread2>,
    /// Live: the same over viewers that arrived after the first buffer (buffer + one chunk
    /// time from the start), seconds.
    pub startup_late_s: Option<Spread2>,
    /// Live: playback stalls, summed over viewers.
    pub stalls: Option<u64>,
    /// Live: per-viewer mean lag of in-order arrival behind production, seconds.
    pub live_lag_s: Option<Spread2>,
    /// r_max = min(u_s, (u_s + Σu_i)/N), bit/s.
    pub r_max_bps: f64,
    /// Live: the stream's bitrate ÷ r_max.
    pub load_vs_r_max: Option<f64>,
    /// Live: the lag floor, ⌈log₂(N+1)⌉ copy times of a chunk at the mean uplink, seconds
    /// (`pdtp_core::bounds::LiveBounds`).
    pub live_floor_s: Option<f64>,
    /// When the last viewer completed, seconds from time zero.
    pub makespan_s: Option<f64>,
    /// Viewers that completed.
    pub peers_completed: u64,
    /// Chunk payload bytes delivered (all senders).
    pub payload_bytes: u64,
    /// Tracker wire bytes, both directions.
    pub tracker_bytes: u64,
    /// Tracker messages handled or sent.
    pub tracker_msgs: u64,
    /// Viewers' uploaded ÷ downloaded payload bytes.
    pub share_ratio: Option<Spread3>,
    /// Transfers reported failed.
    pub failures: u64,
    /// Messages dropped because their connection had gone.
    pub dropped_messages: u64,
    /// Network rate recomputations.
    pub rate_recomputations: u64,
    /// Simulated seconds at the end.
    pub sim_time_s: f64,
    /// Why the run ended.
    pub end_reason: EndReason,
}

/// Everything a finished run leaves for the writers.
#[derive(Clone, Debug, PartialEq)]
pub struct RunResult {
    /// The summary.
    pub report: Report,
    /// One row per viewer.
    pub peers: Vec<PeerRecord>,
    /// Origin payload bytes per simulated second.
    pub origin_per_s: Vec<u64>,
}

/// [`SteadyState`] of a run whose viewers all completed.
fn steady_state(fluid: &SteadySwarm, records: &[PeerRecord]) -> Option<SteadyState> {
    let mut runs: Vec<(f64, f64)> = records.iter().filter_map(|r| r.arrival_s.zip(r.completion_s)).collect();
    runs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let middle = &runs[runs.len() / 4..runs.len() * 3 / 4];
    if middle.is_empty() {
        return None;
    }
    let mean = middle.iter().map(|r| r.1).sum::<f64>() / middle.len() as f64;
    let predicted = fluid.fluid_download_s();
    Some(SteadyState {
        fluid_download_s: predicted,
        link_download_s: fluid.link_download_s,
        mean_download_s: mean,
        ratio: mean / predicted,
        upload_use: fluid.upload_use(mean),
        viewers: middle.len() as u64,
    })
}

impl RunResult {
    /// Relates a run's output to its scenario; `policy` labels it; `wall_s` is measured by
    /// the caller (the only wall-clock input).
    pub fn new(s: &Scenario, policy: &str, out: RunOutput, wall_s: f64) -> Self {
        let b = Bounds::of(s);
        let m = out.measured;
        let n = s.peer_count();
        let f = s.file_bytes();
        let mut done: Vec<f64> = m.records.iter().filter_map(|r| r.completion_s).collect();
        done.sort_by(f64::total_cmp);
        let completion = spread4(&done);
        let live = s.content.live.is_some();
        let sorted = |v: Vec<f64>| {
            let mut v = v;
            v.sort_by(f64::total_cmp);
            v
        };
        let startup = sorted(m.records.iter().filter_map(|r| r.startup_s).collect());
        // Viewers that arrived once a buffer and a chunk time of the stream existed: the
        // ones that could start at the live edge rather than wait for the stream's start.
        let first_buffer = s.content.live.as_ref().map_or(0.0, |l| {
            l.buffer.secs() + s.content.chunk_size.0 as f64 * 8.0 / l.bitrate.0.max(1) as f64
        });
        let startup_late = sorted(
            m.records
                .iter()
                .filter(|r| r.arrival_s.is_some_and(|a| a >= first_buffer))
                .filter_map(|r| r.startup_s)
                .collect(),
        );
        let lag = sorted(m.records.iter().filter_map(|r| r.live_lag_s).collect());
        let (due, on_time) = m.records.iter().fold((0u64, 0u64), |(d, o), r| {
            (d + r.due_chunks.unwrap_or(0), o + r.on_time_chunks.unwrap_or(0))
        });
        let ratios = sorted(
            m.records
                .iter()
                .filter(|r| r.downloaded_bytes > 0)
                .map(|r| r.uploaded_bytes as f64 / r.downloaded_bytes as f64)
                .collect(),
        );
        let processing_s = s.tracker.processing.0.as_secs_f64();
        let t_arrivals = if live || m.records.iter().any(|r| r.departures > 0) {
            None
        } else {
            let viewers: Option<Vec<(f64, f64, f64)>> = m
                .records
                .iter()
                .zip(s.viewer_classes())
                .map(|(r, (_, c))| r.arrival_s.map(|a| (a, c.upload.0 as f64, c.download.0 as f64)))
                .collect();
            viewers.map(|v| t_arrivals_s(f, b.origin_up_bps, &v))
        };
        let all_done = !live && done.len() as u64 == n;
        let report = Report {
            scenario: s.label().to_string(),
            policy: policy.to_string(),
            chunk_choice: s.policy.chunk,
            giver_choice: s.policy.giver,
            policy_settings: s.policy.clone(),
            seed: s.seed,
            peers: n,
            file_bytes: f,
            chunk_bytes: s.content.chunk_size.0,
            t_min_s: b.t_min_s,
            completion_s: completion,
            ratio_to_t_min: m.makespan_s.filter(|_| all_done).map(|t| t / b.t_min_s),
            t_arrivals_s: t_arrivals,
            ratio_to_t_arrivals: m.makespan_s.filter(|_| all_done).zip(t_arrivals).map(|(t, b)| t / b),
            steady_state: b.steady(s).filter(|_| all_done).and_then(|f| steady_state(&f, &m.records)),
            origin_bytes: m.origin_bytes,
            origin_copies: ratio(m.origin_bytes as f64, f as f64),
            origin_cost_fraction: ratio(m.origin_bytes as f64, n as f64 * f as f64),
            control_overhead: (m.payload_bytes > 0).then(|| m.tracker_bytes as f64 / m.payload_bytes as f64),
            tracker_msgs_per_s_peak: m.tracker_msgs_per_s_peak,
            tracker_handled_per_s_peak: m.tracker_handled_per_s_peak,
            tracker_processing_s: processing_s,
            tracker_busy_peak: m.tracker_handled_per_s_peak as f64 * processing_s,
            events: out.events,
            events_per_s: if wall_s > 0.0 { out.events as f64 / wall_s } else { 0.0 },
            wall_s,
            peak_rss_bytes: peak_rss_bytes(),
            // Nothing due (a stream over before any playback began): no share to give.
            continuity_index: (live && due > 0).then(|| on_time as f64 / due as f64),
            startup_s: if live { spread2(&startup) } else { None },
            startup_late_s: if live { spread2(&startup_late) } else { None },
            stalls: live.then(|| m.records.iter().map(|r| u64::from(r.stalls.unwrap_or(0))).sum()),
            live_lag_s: if live { spread2(&lag) } else { None },
            r_max_bps: b.r_max_bps,
            load_vs_r_max: s.content.live.map(|l| l.bitrate.0 as f64 / b.r_max_bps),
            live_floor_s: b.live(s).map(|l| l.floor_s),
            makespan_s: m.makespan_s,
            peers_completed: done.len() as u64,
            payload_bytes: m.payload_bytes,
            tracker_bytes: m.tracker_bytes,
            tracker_msgs: m.tracker_msgs,
            share_ratio: (!ratios.is_empty()).then(|| Spread3 {
                p10: percentile(&ratios, 0.1).unwrap_or(0.0),
                p50: percentile(&ratios, 0.5).unwrap_or(0.0),
                p90: percentile(&ratios, 0.9).unwrap_or(0.0),
            }),
            failures: m.failures,
            dropped_messages: out.dropped_messages,
            rate_recomputations: out.rate_recomputations,
            sim_time_s: out.end.as_secs_f64(),
            end_reason: out.reason,
        };
        Self { report, peers: m.records, origin_per_s: m.origin_per_s }
    }

    /// Writes `report.json`, `peers.csv`, `completion_cdf.svg` and `origin_upload.svg`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        write_file(dir, "report.json", to_json(&self.report)?)?;
        write_file(dir, "peers.csv", peers_csv(&self.peers))?;
        write_file(dir, "completion_cdf.svg", completion_cdf(&self.report, &self.peers))?;
        write_file(dir, "origin_upload.svg", origin_upload(&self.report, &self.origin_per_s))?;
        Ok(())
    }
}

/// Writes `name` in `dir`; an error names the file (`out/report.json: Is a directory`).
fn write_file(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> std::io::Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, contents)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Pretty JSON of any record, newline-terminated.
pub fn to_json<T: Serialize>(v: &T) -> std::io::Result<String> {
    let mut s = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    s.push('\n');
    Ok(s)
}

/// Writes a sweep: `report.json` as `{"cells": [...]}`, `sweep.csv` and `sweep.svg`.
pub fn write_sweep(dir: &Path, cells: &[Report]) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Cells<'a> {
        cells: &'a [Report],
    }
    std::fs::create_dir_all(dir)?;
    write_file(dir, "report.json", to_json(&Cells { cells })?)?;
    let mut csv = String::from(
        "scenario,chunk_bytes,policy,seed,ratio_to_t_min,p50_s,max_s,origin_copies,control_overhead,tracker_msgs_per_s_peak,tracker_busy_peak,continuity_index,end_reason\n",
    );
    for c in cells {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            c.scenario.replace(',', ";"),
            c.chunk_bytes,
            c.policy,
            c.seed,
            opt(c.ratio_to_t_min),
            opt(c.completion_s.map(|x| x.p50)),
            opt(c.completion_s.map(|x| x.max)),
            c.origin_copies,
            opt(c.control_overhead),
            c.tracker_msgs_per_s_peak,
            c.tracker_busy_peak,
            opt(c.continuity_index),
            c.end_reason.name()
        );
    }
    write_file(dir, "sweep.csv", csv)?;
    write_file(dir, "sweep.svg", sweep_chart(cells))?;
    Ok(())
}

/// A readable table of one or more reports for the terminal.
pub fn table(reports: &[Report]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>10} {:<14} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>10} {:>8} {:>8}",
        "chunk",
        "policy",
        "seed",
        "T_min s",
        "p50 s",
        "max s",
        "span s",
        "×T_min",
        "origin×",
        "ctl ovh",
        "trk msg/s",
        "trk busy",
        "cont."
    );
    for r in reports {
        let _ = writeln!(
            s,
            "{:>10} {:<14} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8.3} {:>9} {:>10} {:>8.2} {:>8}",
            crate::units::Bytes(r.chunk_bytes).to_string(),
            r.policy,
            r.seed,
            // A stream is judged against r_max (the line under the table), not T_min.
            fix(Some(r.t_min_s).filter(|_| r.load_vs_r_max.is_none()), 2),
            fix(r.completion_s.map(|c| c.p50), 2),
            fix(r.completion_s.map(|c| c.max), 2),
            // The span of a run that did not finish would be its last finisher's, not its last.
            fix(r.makespan_s.filter(|_| r.end_reason == EndReason::AllDone), 2),
            fix(r.ratio_to_t_min, 3),
            r.origin_copies,
            fix(r.control_overhead, 4),
            r.tracker_msgs_per_s_peak,
            r.tracker_busy_peak,
            fix(r.continuity_index, 4),
        );
    }
    // Column key, then what a row cannot show: live playback, and runs that did not end
    // with every viewer done.
    let _ = writeln!(
        s,
        "  (p50/max: completion, arrival to done; span: when the last viewer was done; ×T_min: span ÷ T_min)"
    );
    for r in reports {
        let cell = format!("{} {} seed {}", crate::units::Bytes(r.chunk_bytes), r.policy, r.seed);
        if let Some(load) = r.load_vs_r_max {
            // Each figure on its own: a stream nobody started playing still gets its line.
            let pair =
                |v: Option<Spread2>| v.map_or("-".to_string(), |v| format!("{:.2}/{:.2} s", v.p50, v.p99));
            let _ = writeln!(
                s,
                "  {cell}: live at {load:.2} × r_max ({:.2} Mbit/s): continuity {}, startup p50/p99 {}, lag p50/p99 {}, {} stalls",
                r.r_max_bps / 1e6,
                fix(r.continuity_index, 4),
                pair(r.startup_s),
                pair(r.live_lag_s),
                r.stalls.map_or("-".to_string(), |n| n.to_string()),
            );
        }
        if let (Some(t), Some(ratio)) = (r.t_arrivals_s, r.ratio_to_t_arrivals) {
            let _ = writeln!(
                s,
                "  {cell}: the bound counted from each viewer's arrival is {t:.2} s; the span is {ratio:.3} × it"
            );
        }
        if r.end_reason != EndReason::AllDone {
            let _ = writeln!(
                s,
                "  {cell}: ended ({}) at {:.2} s with {} of {} viewers done",
                r.end_reason.name(),
                r.sim_time_s,
                r.peers_completed,
                r.peers
            );
        }
    }
    s
}

/// The per-viewer CSV.
pub fn peers_csv(rows: &[PeerRecord]) -> String {
    let mut s = String::from(
        "peer,class,arrival_s,done_s,completion_s,departed_s,uploaded_bytes,downloaded_bytes,departures,restarts,rejected_chunks,startup_s,continuity,stalls,live_lag_s\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.peer,
            r.class.replace(',', ";"),
            opt(r.arrival_s),
            opt(r.done_s),
            opt(r.completion_s),
            opt(r.departed_s),
            r.uploaded_bytes,
            r.downloaded_bytes,
            r.departures,
            r.restarts,
            r.rejected_chunks,
            opt(r.startup_s),
            opt(r.continuity),
            r.stalls.map_or(String::new(), |v| v.to_string()),
            opt(r.live_lag_s),
        );
    }
    s
}

fn completion_cdf(r: &Report, rows: &[PeerRecord]) -> String {
    let mut done: Vec<f64> = rows.iter().filter_map(|p| p.done_s).collect();
    done.sort_by(f64::total_cmp);
    let n = rows.len().max(1) as f64;
    let mut points = vec![(0.0, 0.0)];
    points.extend(done.iter().enumerate().map(|(i, &t)| (t, (i + 1) as f64 / n)));
    plot::svg(&Chart {
        title: &format!("{}: viewers done over time", r.scenario),
        x_label: "time since start (s)",
        y_label: "fraction of viewers done",
        log_x: false,
        steps: true,
        series: vec![Series { label: r.policy.clone(), points }],
        marker: Some((r.t_min_s, "T_min".into())),
    })
}

fn origin_upload(r: &Report, per_s: &[u64]) -> String {
    // Each bucket is drawn as a step over [i, i + 1).
    let mut points: Vec<(f64, f64)> =
        per_s.iter().enumerate().map(|(i, &b)| (i as f64, b as f64 * 8.0 / 1e6)).collect();
    if let Some(&(x, y)) = points.last() {
        points.push((x + 1.0, y));
    }
    plot::svg(&Chart {
        title: &format!("{}: origin upload", r.scenario),
        x_label: "time since start (s)",
        y_label: "origin payload upload (Mbit/s, 1 s buckets)",
        log_x: false,
        steps: true,
        series: vec![Series { label: "seeds".into(), points }],
        marker: None,
    })
}

fn sweep_chart(cells: &[Report]) -> String {
    // One line per policy: mean ratio to T_min over seeds, per chunk size.
    let mut policies: Vec<&str> = Vec::new();
    for c in cells {
        if !policies.contains(&c.policy.as_str()) {
            policies.push(&c.policy);
        }
    }
    let series = policies
        .iter()
        .map(|&p| {
            let mut by_size: std::collections::BTreeMap<u64, (f64, u32)> = std::collections::BTreeMap::new();
            for c in cells.iter().filter(|c| c.policy == p) {
                if let Some(v) = c.ratio_to_t_min {
                    let e = by_size.entry(c.chunk_bytes).or_insert((0.0, 0));
                    e.0 += v;
                    e.1 += 1;
                }
            }
            let points = by_size.into_iter().map(|(k, (sum, n))| (k as f64, sum / f64::from(n))).collect();
            Series { label: p.to_string(), points }
        })
        .collect();
    let title = cells.first().map_or("sweep".to_string(), |c| format!("{}: chunk size sweep", c.scenario));
    plot::svg(&Chart {
        title: &title,
        x_label: "chunk size (bytes, log scale)",
        y_label: "makespan / T_min (mean over seeds)",
        log_x: true,
        steps: false,
        series,
        marker: None,
    })
}

/// p50/p90/p99/max of sorted values (nearest rank, `metrics::percentile`); `None` when empty.
pub fn spread4(sorted: &[f64]) -> Option<Spread4> {
    Some(Spread4 {
        p50: percentile(sorted, 0.5)?,
        p90: percentile(sorted, 0.9)?,
        p99: percentile(sorted, 0.99)?,
        max: *sorted.last()?,
    })
}

/// p50/p99 of an ascending list (nearest rank), `None` if empty.
pub fn spread2(sorted: &[f64]) -> Option<Spread2> {
    Some(Spread2 { p50: percentile(sorted, 0.5)?, p99: percentile(sorted, 0.99)? })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| x.to_string())
}

fn fix(v: Option<f64>, digits: usize) -> String {
    v.map_or("-".to_string(), |x| format!("{x:.digits$}"))
}

#[cfg(test)]
mod tests;

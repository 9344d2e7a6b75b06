//! The real run's figures under the simulator's key names (`report.json`), the per-viewer
//! CSV, and the comparison with the simulator (`compare.json`, the terminal table).
//!
//! Percentiles come from the simulator's own `metrics::percentile` (nearest rank), so both
//! sides use one definition.

use std::fmt::Write as _;

use pdtp_core::Time;
use pdtp_sim::metrics::{PeerRecord, Recorder, StreamClock, percentile};
use pdtp_sim::node::NodeEvent;
use pdtp_sim::report::{Report, Spread2, Spread4, spread2, spread4};
use pdtp_sim::scenario::Scenario;
use serde::Serialize;

use super::netns::QdiscTotals;
use super::plan::Plan;
use super::swarm::{CpuUse, OriginSample, RealRun};

/// The real side's `report.json`: the simulator's keys where they apply, plus `lab`.
#[derive(Clone, Debug, Serialize)]
pub struct RealReport {
    pub scenario: String,
    pub policy: String,
    pub peers: u64,
    pub file_bytes: u64,
    pub chunk_bytes: u64,
    /// The Kumar–Ross bound of the scenario both sides ran (after `--scale`).
    pub t_min_s: f64,
    /// Per viewer: done (its `get --report`) − arrival (when the lab started it).
    pub completion_s: Option<Spread4>,
    /// Makespan ÷ T_min, when every viewer completed.
    pub ratio_to_t_min: Option<f64>,
    /// Payload bytes the seeds uploaded (the tracker's `totals.origin_bytes`).
    pub origin_bytes: u64,
    pub origin_copies: f64,
    pub origin_cost_fraction: f64,
    /// Payload bytes moved by seeds and viewers, as the tracker accounted them.
    pub payload_bytes: u64,
    /// When the last viewer completed, seconds from time zero (the seeds had published).
    pub makespan_s: Option<f64>,
    pub peers_completed: u64,
    /// `all_done` or `time_limit`, as in the simulator.
    pub end_reason: &'static str,
    /// Live: chunks played by their deadline ÷ chunks due, over all viewers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuity_index: Option<f64>,
    /// Live: playback start − arrival, over viewers that started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_s: Option<Spread2>,
    /// Live: per viewer, the mean of (playable in order − produced); over viewers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_lag_s: Option<Spread2>,
    pub lab: LabInfo,
}

/// How, where and when the real side ran.
#[derive(Clone, Debug, Serialize)]
pub struct LabInfo {
    /// `--scale`: every bandwidth divided by it, on both sides.
    pub scale: f64,
    /// `--tcp`: the congestion control every node's TCP used.
    pub tcp: String,
    /// The one-way latency the simulator gave every node (the real links add about that).
    pub sim_latency_s: f64,
    /// When the lab started, unix seconds.
    pub started_unix_s: f64,
    /// The whole command, simulator and setup included, seconds.
    pub wall_s: f64,
    /// Cores (`nproc`), kernel release, and the 1-minute load average before the run.
    pub nproc: usize,
    pub kernel: String,
    pub load_avg_before: Option<f64>,
    /// Share of all cores' time busy from time zero to the last completion.
    pub machine_busy: Option<f64>,
    /// CPU seconds by role over the run.
    pub cpu_s: CpuUse,
    /// What the `tc tbf` shapers did (drops mean queues overflowed).
    pub shapers: QdiscTotals,
    /// Viewers whose copy held exactly the content's bytes.
    pub copies_identical: u64,
    /// Viewers whose `get` verified exactly the content's size.
    pub verified_exact: u64,
}

/// One viewer's row in `real_peers.csv`.
#[derive(Clone, Debug)]
pub struct RealPeer {
    pub peer: usize,
    pub class: String,
    pub arrival_s: Option<f64>,
    pub done_s: Option<f64>,
    pub completion_s: Option<f64>,
    pub verified_bytes: Option<u64>,
    pub identical: Option<bool>,
    pub uploaded_bytes: Option<u64>,
    /// Live: this viewer's playback, by the simulator's definitions.
    pub continuity: Option<f64>,
    pub startup_s: Option<f64>,
    pub live_lag_s: Option<f64>,
}

/// The real run's report and rows.
pub fn real_report(
    lab_s: &Scenario,
    plan: &Plan,
    run: &RealRun,
    info: LabInfo,
) -> (RealReport, Vec<RealPeer>) {
    let t0 = run.t0_unix_s;
    let rows: Vec<RealPeer> = plan
        .viewers
        .iter()
        .zip(&run.viewers)
        .enumerate()
        .map(|(k, (p, v))| {
            let done = v.report.as_ref().map(|r| r.done_unix_s);
            RealPeer {
                peer: k,
                class: p.class.clone(),
                arrival_s: v.arrival_unix_s.map(|a| a - t0),
                done_s: done.map(|d| d - t0),
                completion_s: done.zip(v.arrival_unix_s).map(|(d, a)| d - a),
                verified_bytes: v.report.as_ref().map(|r| r.verified_bytes),
                identical: v.identical,
                uploaded_bytes: v.uploaded_bytes,
                continuity: None,
                startup_s: None,
                live_lag_s: None,
            }
        })
        .collect();
    let mut rows = rows;
    let chunk_bytes = lab_s.content.chunk_size.0;
    let playback = StreamClock::of(lab_s).map(|clock| playback(clock, chunk_bytes, plan, run));
    if let Some(records) = &playback {
        for (row, rec) in rows.iter_mut().zip(records) {
            row.continuity = rec.continuity;
            row.startup_s = rec.startup_s;
            row.live_lag_s = rec.live_lag_s;
        }
    }
    let live = |f: fn(&PeerRecord) -> Option<f64>| {
        let mut v: Vec<f64> = playback.iter().flatten().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        spread2(&v)
    };
    let (due, on_time) = playback
        .iter()
        .flatten()
        .fold((0u64, 0u64), |(d, o), r| (d + r.due_chunks.unwrap_or(0), o + r.on_time_chunks.unwrap_or(0)));
    let mut completion: Vec<f64> = rows.iter().filter_map(|r| r.completion_s).collect();
    completion.sort_by(f64::total_cmp);
    let makespan = rows.iter().filter_map(|r| r.done_s).max_by(f64::total_cmp);
    let f = lab_s.file_bytes();
    let n = lab_s.peer_count();
    let t_min = pdtp_sim::report::Bounds::of(lab_s).t_min_s;
    let origin = run.totals.origin_bytes;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let mut info = info;
    info.copies_identical = rows.iter().filter(|r| r.identical == Some(true)).count() as u64;
    info.verified_exact = rows.iter().filter(|r| r.verified_bytes == Some(f)).count() as u64;
    let report = RealReport {
        scenario: lab_s.label().to_owned(),
        policy: "default".into(),
        peers: n,
        file_bytes: f,
        chunk_bytes: lab_s.content.chunk_size.0,
        t_min_s: t_min,
        completion_s: spread4(&completion),
        ratio_to_t_min: makespan.filter(|_| run.all_done).map(|m| m / t_min),
        origin_bytes: origin,
        origin_copies: ratio(origin as f64, f as f64),
        origin_cost_fraction: ratio(origin as f64, n as f64 * f as f64),
        payload_bytes: origin + run.totals.peer_bytes,
        makespan_s: makespan,
        peers_completed: completion.len() as u64,
        end_reason: if run.all_done { "all_done" } else { "time_limit" },
        continuity_index: (playback.is_some() && due > 0).then(|| on_time as f64 / due as f64),
        startup_s: live(|r| r.startup_s),
        live_lag_s: live(|r| r.live_lag_s),
        lab: info,
    };
    (report, rows)
}

/// Each viewer's playback of the live stream, by the simulator's own accounting: the
/// `Recorder` is fed the lab's arrivals and the times each chunk became playable in order
/// (from the viewers' `get --report`), on the same clock (seconds from time zero, when the
/// stream's first byte went to the seed).
fn playback(clock: StreamClock, chunk_bytes: u64, plan: &Plan, run: &RealRun) -> Vec<PeerRecord> {
    let t0 = run.t0_unix_s;
    let at = |unix: f64| Time::from_nanos(((unix - t0).max(0.0) * 1e9).round() as u64);
    let mut rec = Recorder::new(plan.viewers.iter().map(|p| p.class.clone()).collect(), Some(clock));
    for (k, v) in run.viewers.iter().enumerate() {
        let p = k as u32;
        let Some(arrival) = v.arrival_unix_s else { continue };
        rec.arrive(p, at(arrival));
        let Some(report) = &v.report else { continue };
        // A delivery's chunk: the one its first byte is in (each chunk is delivered whole).
        let chunk_bytes = chunk_bytes.max(1);
        let mut last = None;
        for &(offset, t) in &report.deliveries {
            let chunk = u32::try_from(offset / chunk_bytes).unwrap_or(u32::MAX);
            if last != Some(chunk) {
                rec.peer_event(p, at(t), NodeEvent::InOrder { chunk });
                last = Some(chunk);
            }
        }
        rec.peer_event(p, at(report.done_unix_s), NodeEvent::Completed);
    }
    rec.finish(at(run.end_unix_s)).records
}

/// `real_peers.csv`: one row per viewer, times in seconds from time zero.
pub fn real_peers_csv(rows: &[RealPeer]) -> String {
    let mut s = String::from(
        "peer,class,arrival_s,done_s,completion_s,verified_bytes,identical,uploaded_bytes,continuity,startup_s,live_lag_s\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.6}"));
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.peer,
            r.class.replace(',', ";"),
            opt(r.arrival_s),
            opt(r.done_s),
            opt(r.completion_s),
            r.verified_bytes.map_or(String::new(), |b| b.to_string()),
            r.identical.map_or(String::new(), |b| b.to_string()),
            r.uploaded_bytes.map_or(String::new(), |b| b.to_string()),
            opt(r.continuity),
            opt(r.startup_s),
            opt(r.live_lag_s),
        );
    }
    s
}

/// `origin.csv`: the bytes the origin had given by each whole second of the run, on both
/// sides (`sim_origin_bytes` from the simulator's per-second counts, `real_origin_bytes`
/// interpolated between the lab's reads of the tracker; empty past its last read), so a
/// gap in origin copies can be placed in time: the start, the bulk or the tail. Beside
/// them, the tracker's view of the real seed at the read nearest each second (uploads under
/// way, the slots the policy gives it, its measured uplink in bit/s), which says why.
pub fn origin_csv(sim_per_s: &[u64], real: &[OriginSample]) -> String {
    let mut s = String::from(
        "t_s,sim_origin_bytes,real_origin_bytes,real_seed_uploads,real_seed_slots,real_seed_rate_bps\n",
    );
    let last_real = real.last().map_or(0.0, |r| r.t_s);
    let seconds = sim_per_s.len().max(last_real.floor() as usize + 1);
    let mut sim = 0u64;
    for t in 0..=seconds {
        let at = t as f64;
        let bytes = interpolate(real, at).map_or(String::new(), |b| b.to_string());
        let seed = real
            .iter()
            .filter(|r| (r.t_s - at).abs() <= 0.5)
            .min_by(|a, b| (a.t_s - at).abs().total_cmp(&(b.t_s - at).abs()))
            .map_or(",,".to_owned(), |r| {
                format!("{},{},{:.0}", r.seed_uploads, r.seed_slots, r.seed_rate_bps)
            });
        let _ = writeln!(s, "{t},{sim},{bytes},{seed}");
        sim += sim_per_s.get(t).copied().unwrap_or(0);
    }
    s
}

/// The origin's count at `t` on a line through the reads (time-ordered) from zero at time
/// zero; after the last read, none.
fn interpolate(samples: &[OriginSample], t: f64) -> Option<u64> {
    let after = samples.iter().position(|r| r.t_s >= t)?;
    let b = |k: usize| samples[k].origin_bytes as f64;
    if after == 0 {
        let t1 = samples[0].t_s;
        return Some(if t1 <= 0.0 { b(0) } else { (b(0) * (t / t1).max(0.0)).round() } as u64);
    }
    let (t0, t1) = (samples[after - 1].t_s, samples[after].t_s);
    let w = if t1 > t0 { (t - t0) / (t1 - t0) } else { 1.0 };
    Some((b(after - 1) + (b(after) - b(after - 1)) * w).round() as u64)
}

/// The figures both sides have (the live ones for a live stream only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub completion_s: Spread3,
    pub makespan_s: Option<f64>,
    pub origin_copies: Option<f64>,
    pub continuity_index: Option<f64>,
    pub startup_s: Percentiles2,
    pub live_lag_s: Percentiles2,
}

/// p50/p99, either of which may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles2 {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

impl From<Option<Spread2>> for Percentiles2 {
    fn from(s: Option<Spread2>) -> Self {
        Self { p50: s.map(|s| s.p50), p99: s.map(|s| s.p99) }
    }
}

/// p50/p90/max, any of which may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Spread3 {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub max: Option<f64>,
}

/// Completion and uploads by viewer class, for finding where the two sides part.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassFigures {
    pub class: String,
    pub viewers: usize,
    pub sim: Spread3,
    pub real: Spread3,
    /// Payload bytes the class's viewers gave, in all.
    pub sim_uploaded_bytes: u64,
    pub real_uploaded_bytes: u64,
}

/// `compare.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compare {
    pub sim: Figures,
    pub real: Figures,
    /// real ÷ sim.
    pub ratio: Figures,
    /// real − sim.
    pub diff: Figures,
    /// The simulator over several scenario seeds: its own spread.
    pub sim_seeds: SeedRange,
    pub by_class: Vec<ClassFigures>,
}

/// The simulator's figures over consecutive scenario seeds (`seeds[0]` is the scenario's
/// own, the run `sim` reports; the others run on its arrival times, which the real viewers
/// follow): each figure's least, mean and greatest.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeedRange {
    pub seeds: Vec<u64>,
    pub min: Figures,
    pub mean: Figures,
    pub max: Figures,
}

impl SeedRange {
    fn of(seeds: &[u64], all: &[Figures]) -> Self {
        let fold = |f: fn(f64, f64) -> f64| {
            all.iter()
                .skip(1)
                .fold(all.first().copied().unwrap_or_default(), |a, b| a.zip(b, |x, y| Some(f(x, y))))
        };
        let n = all.len().max(1) as f64;
        Self {
            seeds: seeds.to_vec(),
            min: fold(f64::min),
            mean: fold(|x, y| x + y).map(|sum| sum / n),
            max: fold(f64::max),
        }
    }
}

/// The simulator's figures over `seeds` (`over_seeds[k]` ran `seeds[k]`): `lab --sim-only`.
pub fn seed_range(seeds: &[u64], over_seeds: &[Report]) -> SeedRange {
    SeedRange::of(seeds, &over_seeds.iter().map(Figures::of_sim).collect::<Vec<_>>())
}

/// `seed_range` as a table: each figure's least, mean and greatest over the seeds.
pub fn seed_table(r: &SeedRange) -> String {
    let mut s = String::new();
    let num = |v: Option<f64>, d: usize| v.map_or("-".to_owned(), |x| format!("{x:.d$}"));
    let _ =
        writeln!(s, "{:<18} {:>9} {:>9} {:>9}   ({} seeds)", "", "least", "mean", "greatest", r.seeds.len());
    for (name, pick, d, _) in figure_rows(r.mean.continuity_index.is_some()) {
        let _ = writeln!(
            s,
            "{name:<18} {:>9} {:>9} {:>9}",
            num(pick(&r.min), d),
            num(pick(&r.mean), d),
            num(pick(&r.max), d)
        );
    }
    s
}

/// A figure's row: its name, how to read it, its decimals, and whether two runs of it are
/// compared by difference rather than ratio.
type FigureRow = (&'static str, fn(&Figures) -> Option<f64>, usize, bool);

/// The rows the tables show: the on-demand ones, and the live ones for a live stream.
fn figure_rows(live: bool) -> Vec<FigureRow> {
    let mut rows: Vec<FigureRow> = vec![
        ("completion p50 s", |f| f.completion_s.p50, 2, false),
        ("completion p90 s", |f| f.completion_s.p90, 2, false),
        ("completion max s", |f| f.completion_s.max, 2, false),
        ("makespan s", |f| f.makespan_s, 2, false),
        ("origin copies", |f| f.origin_copies, 3, true),
    ];
    if live {
        rows.extend([
            ("continuity", (|f: &Figures| f.continuity_index) as fn(&Figures) -> Option<f64>, 4, true),
            ("startup p50 s", |f| f.startup_s.p50, 2, false),
            ("startup p99 s", |f| f.startup_s.p99, 2, false),
            ("live lag p50 s", |f| f.live_lag_s.p50, 2, false),
            ("live lag p99 s", |f| f.live_lag_s.p99, 2, false),
        ]);
    }
    rows
}

/// Both sides' shared figures, their ratio and difference, and the simulator's figures over
/// `seeds` (`over_seeds[k]` ran `seeds[k]`).
pub fn compare(
    sim: &Report,
    sim_peers: &[PeerRecord],
    real: &RealReport,
    rows: &[RealPeer],
    seeds: &[u64],
    over_seeds: &[Report],
) -> Compare {
    let s = Figures::of_sim(sim);
    let r = Figures {
        continuity_index: real.continuity_index,
        startup_s: real.startup_s.into(),
        live_lag_s: real.live_lag_s.into(),
        ..Figures::of(real.completion_s, real.makespan_s, real.origin_copies)
    };
    let ratio = s.zip(&r, |a, b| (a > 0.0).then(|| b / a));
    let diff = s.zip(&r, |a, b| Some(b - a));
    let mut classes: Vec<String> = Vec::new();
    for row in rows {
        if !classes.contains(&row.class) {
            classes.push(row.class.clone());
        }
    }
    let by_class = classes
        .into_iter()
        .map(|class| {
            let sim_c = spread3(sim_peers.iter().filter(|p| p.class == class).filter_map(|p| p.completion_s));
            let ours: Vec<&RealPeer> = rows.iter().filter(|p| p.class == class).collect();
            let real_c = spread3(ours.iter().filter_map(|p| p.completion_s));
            let sim_up = sim_peers.iter().filter(|p| p.class == class).map(|p| p.uploaded_bytes).sum();
            let real_up = ours.iter().filter_map(|p| p.uploaded_bytes).sum();
            ClassFigures {
                class,
                viewers: ours.len(),
                sim: sim_c,
                real: real_c,
                sim_uploaded_bytes: sim_up,
                real_uploaded_bytes: real_up,
            }
        })
        .collect();
    Compare {
        sim: s,
        real: r,
        ratio,
        diff,
        sim_seeds: SeedRange::of(seeds, &over_seeds.iter().map(Figures::of_sim).collect::<Vec<_>>()),
        by_class,
    }
}

fn spread3(values: impl Iterator<Item = f64>) -> Spread3 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    Spread3 { p50: percentile(&v, 0.5), p90: percentile(&v, 0.9), max: v.last().copied() }
}

impl Figures {
    /// The simulator's figures from its report.
    fn of_sim(sim: &Report) -> Self {
        Self {
            continuity_index: sim.continuity_index,
            startup_s: sim.startup_s.into(),
            live_lag_s: sim.live_lag_s.into(),
            ..Figures::of(sim.completion_s, sim.makespan_s, sim.origin_copies)
        }
    }

    /// One side's figures from its report's fields.
    fn of(completion: Option<Spread4>, makespan_s: Option<f64>, origin_copies: f64) -> Self {
        Self {
            completion_s: Spread3 {
                p50: completion.map(|c| c.p50),
                p90: completion.map(|c| c.p90),
                max: completion.map(|c| c.max),
            },
            makespan_s,
            origin_copies: Some(origin_copies),
            ..Self::default()
        }
    }

    /// Each figure present, through `f`.
    fn map(&self, f: impl Fn(f64) -> f64) -> Self {
        self.zip(self, |a, _| Some(f(a)))
    }

    fn zip(&self, other: &Self, f: impl Fn(f64, f64) -> Option<f64>) -> Self {
        let both = |a: Option<f64>, b: Option<f64>| a.zip(b).and_then(|(a, b)| f(a, b));
        Self {
            completion_s: Spread3 {
                p50: both(self.completion_s.p50, other.completion_s.p50),
                p90: both(self.completion_s.p90, other.completion_s.p90),
                max: both(self.completion_s.max, other.completion_s.max),
            },
            makespan_s: both(self.makespan_s, other.makespan_s),
            origin_copies: both(self.origin_copies, other.origin_copies),
            continuity_index: both(self.continuity_index, other.continuity_index),
            startup_s: Percentiles2 {
                p50: both(self.startup_s.p50, other.startup_s.p50),
                p99: both(self.startup_s.p99, other.startup_s.p99),
            },
            live_lag_s: Percentiles2 {
                p50: both(self.live_lag_s.p50, other.live_lag_s.p50),
                p99: both(self.live_lag_s.p99, other.live_lag_s.p99),
            },
        }
    }
}

/// The terminal summary: one row per shared figure (the simulator's run, its range over
/// seeds, the real run, their ratio or difference), then what the real run looked like.
pub fn table(c: &Compare, real: &RealReport) -> String {
    let mut s = String::new();
    let num = |v: Option<f64>, d: usize| v.map_or("-".to_owned(), |x| format!("{x:.d$}"));
    let range = |lo: Option<f64>, hi: Option<f64>, d: usize| match (lo, hi) {
        (Some(lo), Some(hi)) => format!("{lo:.d$}–{hi:.d$}"),
        _ => "-".to_owned(),
    };
    let seeds = format!("sim, {} seeds", c.sim_seeds.seeds.len());
    let _ =
        writeln!(s, "{:<18} {:>9} {seeds:>17} {:>9} {:>9} {:>9}", "", "sim", "its mean", "real", "real/sim");
    let rows = figure_rows(c.sim.continuity_index.is_some() || c.real.continuity_index.is_some());
    let (lo, mean, hi) = (&c.sim_seeds.min, &c.sim_seeds.mean, &c.sim_seeds.max);
    for (name, pick, d, is_diff) in rows {
        let cmp = match (is_diff, pick(if is_diff { &c.diff } else { &c.ratio })) {
            (true, Some(x)) => format!("{x:+.d$}"),
            (false, x) => num(x, 3),
            (true, None) => "-".to_owned(),
        };
        let (sim, real) = (num(pick(&c.sim), d), num(pick(&c.real), d));
        let _ = writeln!(
            s,
            "{name:<18} {sim:>9} {:>17} {:>9} {real:>9} {cmp:>9}",
            range(pick(lo), pick(hi), d),
            num(pick(mean), d)
        );
    }
    let l = &real.lab;
    let wire = if real.payload_bytes > 0 {
        format!("{:.3}", l.shapers.uplink_bytes as f64 / real.payload_bytes as f64)
    } else {
        "-".to_owned()
    };
    let _ = writeln!(
        s,
        "real: {}/{} viewers done, {}; wire bytes ÷ payload {wire}; shapers dropped {} packets; machine busy {}; scale {}",
        real.peers_completed,
        real.peers,
        // A live recording lacks what its player skipped: continuity judges it, not bytes.
        if real.continuity_index.is_some() {
            "live recordings judged by continuity".to_owned()
        } else {
            format!("{} copies identical", l.copies_identical)
        },
        l.shapers.dropped,
        l.machine_busy.map_or("-".to_owned(), |b| format!("{:.0} %", b * 100.0)),
        l.scale
    );
    s
}

/// Busy and total CPU ticks of the whole machine so far (`/proc/stat`), for [`busy_share`].
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    // idle and iowait are the 4th and 5th fields.
    let idle = v.get(3)? + v.get(4)?;
    Some((total - idle, total))
}

/// The share of CPU time busy between two [`cpu_ticks`] readings.
pub fn busy_share(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (a?, b?);
    (t1 > t0).then(|| (b1 - b0) as f64 / (t1 - t0) as f64)
}

/// The 1-minute load average (`/proc/loadavg`).
pub fn load_avg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_range_holds_each_figures_least_mean_and_greatest() {
        let run = |copies: f64, p50: Option<f64>| Figures {
            origin_copies: Some(copies),
            completion_s: Spread3 { p50, p90: None, max: None },
            ..Figures::default()
        };
        let r =
            SeedRange::of(&[4, 5, 6], &[run(2.0, Some(30.0)), run(6.0, Some(33.0)), run(1.0, Some(36.0))]);
        assert_eq!(r.seeds, [4, 5, 6]);
        assert_eq!(
            (r.min.origin_copies, r.mean.origin_copies, r.max.origin_copies),
            (Some(1.0), Some(3.0), Some(6.0))
        );
        assert_eq!((r.min.completion_s.p50, r.max.completion_s.p50), (Some(30.0), Some(36.0)));
        assert_eq!(r.mean.completion_s.p50, Some(33.0));
        // A figure one side lacks stays missing.
        assert_eq!((r.min.continuity_index, r.mean.completion_s.max), (None, None));
    }

    #[test]
    fn origin_csv_puts_both_sides_on_whole_seconds() {
        // The simulator gave 10 bytes in second 0 and 30 in second 1; the lab read 5 at
        // 0.5 s and 45 at 2.5 s.
        let read = |t_s: f64, origin_bytes: u64, seed_slots: u32| OriginSample {
            t_s,
            origin_bytes,
            seed_uploads: 1,
            seed_slots,
            seed_rate_bps: 8e6,
        };
        let csv = origin_csv(&[10, 30], &[read(0.5, 5, 2), read(2.5, 45, 9)]);
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(
            rows[0],
            "t_s,sim_origin_bytes,real_origin_bytes,real_seed_uploads,real_seed_slots,real_seed_rate_bps"
        );
        // The seed's columns come from a read within half a second, else stay empty.
        assert_eq!(
            rows[1..],
            ["0,0,0,1,2,8000000", "1,10,15,1,2,8000000", "2,40,35,1,9,8000000", "3,40,,1,9,8000000"]
        );
    }
}

//! The real side of a lab run: the tracker, the seeds and the viewers as `pdtp-node`
//! processes in their namespaces, started on the plan's schedule, watched until every
//! viewer reported its download complete (or the time limit), then stopped.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pdtp_net_mio::stats::{StatsSnapshot, Totals};
use pdtp_sim::adapters::TRANSFER_TIMEOUT;
use pdtp_sim::scenario::Scenario;

use super::netns::{Lab, QdiscTotals};
use super::plan::{PEER_PORT, Plan, Role, TRACKER_PORT};
use crate::get_report::{GetReport, unix_now};

/// The published file's name under the seeds' `file_root` (and the URL's path).
const CONTENT: &str = "content.bin";

/// How often the lab looks at its processes and the viewers' report files.
const POLL: Duration = Duration::from_millis(10);

/// How long the tracker and the seeds may take to come up and publish.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// How long, after the last viewer completed, the tracker may take to account for every
/// verified byte (its last `Completed` reports are on their way).
const ACCOUNTING_LIMIT: Duration = Duration::from_secs(5);

/// Where a run keeps its files.
pub struct Dirs {
    /// Configs, the content and the viewers' copies and reports (removed copies excepted).
    pub work: PathBuf,
    /// One stderr log per process.
    pub logs: PathBuf,
    /// The scenario both sides run (the tracker and seeds take policy and chunk size from it).
    pub scenario: PathBuf,
}

/// One viewer's run: when the lab started it and what it reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewerRun {
    /// When the lab started its `get`, unix seconds.
    pub arrival_unix_s: Option<f64>,
    /// Its `--report`, once it wrote one.
    pub report: Option<GetReport>,
    /// Whether its copy held exactly the content's bytes (checked after the run).
    pub identical: Option<bool>,
}

/// What the real run measured.
#[derive(Clone, Debug)]
pub struct RealRun {
    /// When the seeds had published and viewers could start: time zero, unix seconds.
    pub t0_unix_s: f64,
    /// In viewer order.
    pub viewers: Vec<ViewerRun>,
    /// The tracker's counters once every verified byte was accounted for (or its limit).
    pub totals: Totals,
    /// Whether every viewer completed before the scenario's time limit.
    pub all_done: bool,
    /// CPU seconds used by the tracker, the seeds and the viewers.
    pub cpu_s: CpuUse,
    /// What the shapers did.
    pub qdisc: QdiscTotals,
    /// Share of the machine's CPU time busy (all cores) from time zero to the end.
    pub machine_busy: Option<f64>,
}

/// CPU seconds (user + system) by role.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct CpuUse {
    pub tracker: f64,
    pub seeds: f64,
    pub viewers: f64,
}

/// Runs the plan on real processes; `exe` is the `pdtp-node` binary. Stops early, cleaning
/// up, when `stop` is set (Ctrl-C) or anything fails.
pub fn run(
    plan: &Plan,
    lab_s: &Scenario,
    dirs: &Dirs,
    exe: &Path,
    stop: &AtomicBool,
) -> Result<RealRun, String> {
    let mut lab = Lab::new();
    let out = run_in(&mut lab, plan, lab_s, dirs, exe, stop);
    let failed = lab.cleanup();
    if !failed.is_empty() {
        return Err(format!("the lab could not remove everything it made: {}", failed.join("; ")));
    }
    let mut out = out?;
    let source = dirs.work.join("files").join(CONTENT);
    for (k, v) in out.viewers.iter_mut().enumerate() {
        let copy = dirs.work.join(format!("v{k}.bin"));
        if v.report.is_some() {
            v.identical = Some(crate::demo::same_bytes(&source, &copy).unwrap_or(false));
        }
        // The copies have been compared; 50 of them would fill the disk over a few runs.
        let _ = std::fs::remove_file(&copy);
    }
    let _ = std::fs::remove_file(&source);
    Ok(out)
}

fn run_in(
    lab: &mut Lab,
    plan: &Plan,
    lab_s: &Scenario,
    dirs: &Dirs,
    exe: &Path,
    stop: &AtomicBool,
) -> Result<RealRun, String> {
    let watch = Watch { stop };
    lab.build(&plan.nodes)?;
    watch.check()?;
    let files = dirs.work.join("files");
    std::fs::create_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
    let size = lab_s.file_bytes();
    let len = usize::try_from(size).map_err(|_| "content.size: too large for this machine".to_owned())?;
    crate::demo::write_random_file(&files.join(CONTENT), len, lab_s.seed)
        .map_err(|e| format!("writing the content: {e}"))?;

    let tracker = plan.tracker();
    let stats = SocketAddr::new(tracker.ip.into(), TRACKER_PORT + 1);
    let key = format!("lab-key-{:016x}", pdtp_net_mio::driver::random_seed());
    let tracker_conf = dirs.work.join("tracker.yml");
    let conf = format!("host: {}\nport: {TRACKER_PORT}\nquiet: true\nseed_key: {key}\n", tracker.ip);
    write(&tracker_conf, &conf)?;
    let from = dirs.scenario.as_os_str();
    let t = lab.spawn(
        &tracker.name,
        exe,
        &args(&[
            "tracker".as_ref(),
            "--conf".as_ref(),
            tracker_conf.as_os_str(),
            "--policy-from".as_ref(),
            from,
        ]),
        &dirs.logs.join("tracker.log"),
    )?;
    watch.until(lab, dirs, STARTUP_LIMIT, "the tracker did not answer on its stats page", |lab| {
        lab.fetch(&tracker.name, stats, "/stats.json").is_ok()
    })?;

    let seed_conf = dirs.work.join("seed.yml");
    let conf = format!(
        "host: {}\nport: {TRACKER_PORT}\nquiet: true\nseed_key: {key}\nfile_root: {}\nlisten_port: {PEER_PORT}\n",
        tracker.ip,
        files.display()
    );
    write(&seed_conf, &conf)?;
    let mut seeds = Vec::new();
    for n in plan.nodes.iter().filter(|n| n.role == Role::Seed) {
        let a = args(&[
            "seed".as_ref(),
            "--conf".as_ref(),
            seed_conf.as_os_str(),
            "--policy-from".as_ref(),
            from,
        ]);
        seeds.push(lab.spawn(&n.name, exe, &a, &dirs.logs.join(format!("{}.log", n.name)))?);
    }
    let seed_count = seeds.len();
    watch.until(lab, dirs, STARTUP_LIMIT, "the seeds did not publish the content", |lab| {
        published(lab, &tracker.name, stats, size, seed_count)
    })?;

    // Time zero: the content is there. The simulator's seeds publish within a millisecond
    // of its time zero, so viewers arriving at a given time find it in both.
    let t0 = unix_now();
    let busy0 = super::collect::cpu_ticks();
    let url = format!("pdtp://{}:{TRACKER_PORT}/{CONTENT}", tracker.ip);
    // Viewers stay to serve until the lab ends the run (the scenario's `seed_for` absent),
    // or as long as it says.
    let seed_for = plan.seed_for.unwrap_or(std_duration(lab_s.time_limit.0) + Duration::from_secs(60));
    let mut viewers = vec![ViewerRun::default(); plan.viewers.len()];
    let mut procs = vec![None; plan.viewers.len()];
    let limit = t0 + lab_s.time_limit.0.as_secs_f64();
    // Viewers in the order they arrive (viewer order is class by class, arrivals are not).
    let mut order: Vec<usize> = (0..plan.viewers.len()).collect();
    order.sort_by(|&a, &b| plan.viewers[a].arrival_s.total_cmp(&plan.viewers[b].arrival_s));
    let mut next = 0;
    let mut done = 0;
    while done < viewers.len() && unix_now() < limit {
        watch.check()?;
        let now = unix_now();
        while next < order.len() && t0 + plan.viewers[order[next]].arrival_s <= now {
            let k = order[next];
            let node = &plan.nodes[plan.viewers[k].node];
            let a = args(&[
                "get".as_ref(),
                url.as_ref(),
                "-o".as_ref(),
                dirs.work.join(format!("v{k}.bin")).as_os_str(),
                "--listen".as_ref(),
                PEER_PORT.to_string().as_ref(),
                "--stall-timeout".as_ref(),
                millis(std_duration(TRANSFER_TIMEOUT)).as_ref(),
                "--seed-for".as_ref(),
                millis(seed_for).as_ref(),
                "--report".as_ref(),
                report_path(dirs, k).as_os_str(),
            ]);
            viewers[k].arrival_unix_s = Some(unix_now());
            procs[k] = Some(lab.spawn(&node.name, exe, &a, &dirs.logs.join(format!("{}.log", node.name)))?);
            next += 1;
        }
        for &k in &order[..next] {
            let v = &mut viewers[k];
            if v.report.is_none() && report_path(dirs, k).exists() {
                v.report = Some(GetReport::read(&report_path(dirs, k))?);
                done += 1;
            }
        }
        if let Some((node, status)) = lab.exited() {
            // A viewer with a finite seed_for leaves after it reported; anything else ending
            // is a failure of the run.
            let reported = node.strip_prefix('v').and_then(|k| k.parse::<usize>().ok()).is_some_and(|k| {
                viewers.get(k).is_some_and(|v| v.report.is_some()) || report_path(dirs, k).exists()
            });
            if !(reported && status.success()) {
                return Err(format!("{node} exited ({status}) during the run: {}", last_line(dirs, &node)));
            }
        }
        let wake = order
            .get(next)
            .map(|&k| &plan.viewers[k])
            .map_or(POLL.as_secs_f64(), |v| t0 + v.arrival_s - unix_now());
        std::thread::sleep(POLL.min(Duration::from_secs_f64(wake.max(0.0))));
    }
    let busy1 = super::collect::cpu_ticks();

    // The viewers' last reports may still be on their way to the tracker.
    let want = size * done as u64;
    let mut snapshot = None;
    watch
        .until(lab, dirs, ACCOUNTING_LIMIT, "", |lab| {
            snapshot = tracker_stats(lab, &tracker.name, stats).ok();
            snapshot.as_ref().is_some_and(|s| s.totals.origin_bytes + s.totals.peer_bytes >= want)
        })
        .or_else(|e| if e.is_empty() { Ok(()) } else { Err(e) })?;
    let totals = snapshot.map(|s| s.totals).ok_or("the tracker's stats page did not answer at the end")?;

    let cpu = |i: usize| lab.cpu_s(i).unwrap_or(0.0);
    let cpu_s = CpuUse {
        tracker: cpu(t),
        seeds: seeds.iter().map(|&i| cpu(i)).sum(),
        viewers: procs.iter().flatten().map(|&i| cpu(i)).sum(),
    };
    let qdisc = lab.qdisc_totals(&plan.nodes);
    Ok(RealRun {
        t0_unix_s: t0,
        all_done: done == viewers.len(),
        viewers,
        totals,
        cpu_s,
        qdisc,
        machine_busy: super::collect::busy_share(busy0, busy1),
    })
}

/// Ctrl-C, failed processes and deadlines, checked while waiting.
struct Watch<'a> {
    stop: &'a AtomicBool,
}

impl Watch<'_> {
    fn check(&self) -> Result<(), String> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted; every namespace and process of the lab removed".into());
        }
        Ok(())
    }

    /// Polls `ready` until it holds; fails with `what` after `limit`, or at once when a
    /// process exits or Ctrl-C is pressed.
    fn until(
        &self,
        lab: &mut Lab,
        dirs: &Dirs,
        limit: Duration,
        what: &str,
        mut ready: impl FnMut(&mut Lab) -> bool,
    ) -> Result<(), String> {
        let end = unix_now() + limit.as_secs_f64();
        loop {
            self.check()?;
            if ready(lab) {
                return Ok(());
            }
            if let Some((node, status)) = lab.exited() {
                return Err(format!("{node} exited ({status}): {}", last_line(dirs, &node)));
            }
            if unix_now() > end {
                return Err(what.to_owned());
            }
            std::thread::sleep(POLL * 5);
        }
    }
}

/// Whether the tracker lists the content with its full size, published by every seed.
fn published(lab: &mut Lab, tracker: &str, stats: SocketAddr, size: u64, seeds: usize) -> bool {
    let Ok(s) = tracker_stats(lab, tracker, stats) else { return false };
    let seeds_connected = s.peers.iter().filter(|p| p.role == "seed").count();
    seeds_connected >= seeds && s.files.iter().any(|f| f.path == CONTENT && f.size == size)
}

fn tracker_stats(lab: &Lab, tracker: &str, stats: SocketAddr) -> Result<StatsSnapshot, String> {
    let body = lab.fetch(tracker, stats, "/stats.json")?;
    serde_json::from_str(&body).map_err(|e| format!("the tracker's /stats.json: {e}"))
}

fn report_path(dirs: &Dirs, k: usize) -> PathBuf {
    dirs.work.join(format!("v{k}.json"))
}

/// The last line a process wrote to its log, to say why it stopped.
fn last_line(dirs: &Dirs, node: &str) -> String {
    let name = if node == "t" { "tracker".to_owned() } else { node.to_owned() };
    let log = dirs.logs.join(format!("{name}.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(nothing logged)");
    format!("{line} (log: {})", log.display())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn args(a: &[&std::ffi::OsStr]) -> Vec<OsString> {
    a.iter().map(|s| s.to_os_string()).collect()
}

/// A duration as `get` takes it, in whole milliseconds (at least 1).
fn millis(d: Duration) -> String {
    format!("{}ms", d.as_millis().max(1))
}

/// `Span` → `std::time::Duration`.
fn std_duration(s: pdtp_core::Span) -> Duration {
    Duration::from_nanos(s.as_nanos())
}

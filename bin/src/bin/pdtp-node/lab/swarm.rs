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
    /// Payload bytes it gave other viewers, as the tracker counted them at the end.
    pub uploaded_bytes: Option<u64>,
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
    let out = Real { lab: &mut lab, plan, lab_s, dirs, exe, stop }.run();
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

/// One real run under way.
struct Real<'a> {
    lab: &'a mut Lab,
    plan: &'a Plan,
    lab_s: &'a Scenario,
    dirs: &'a Dirs,
    exe: &'a Path,
    stop: &'a AtomicBool,
}

/// The tracker and seeds, once the content is published.
struct Servers {
    tracker: usize,
    seeds: Vec<usize>,
    /// The tracker's stats page.
    stats: SocketAddr,
}

/// The viewers' side of a run.
struct Viewers {
    runs: Vec<ViewerRun>,
    /// Each started viewer's process index.
    procs: Vec<usize>,
    done: usize,
}

impl Real<'_> {
    fn run(mut self) -> Result<RealRun, String> {
        self.lab.build(&self.plan.nodes)?;
        self.check()?;
        let servers = self.start_servers()?;
        // Time zero: the content is there. The simulator's seeds publish a few of its 80 µs
        // round trips after its time zero, so viewers arriving at a given time find it in both.
        let t0 = unix_now();
        let busy0 = super::collect::cpu_ticks();
        let viewers = self.run_viewers(t0)?;
        let busy1 = super::collect::cpu_ticks();
        let snapshot = self.settle(&servers, viewers.done)?;
        let mut runs = viewers.runs;
        for (v, p) in runs.iter_mut().zip(&self.plan.viewers) {
            let addr = format!("{}:", self.plan.nodes[p.node].ip);
            v.uploaded_bytes = snapshot.peers.iter().find(|s| s.addr.starts_with(&addr)).map(|s| s.bytes_up);
        }
        let lab = &*self.lab;
        let cpu = |i: usize| lab.cpu_s(i).unwrap_or(0.0);
        let cpu_s = CpuUse {
            tracker: cpu(servers.tracker),
            seeds: servers.seeds.iter().map(|&i| cpu(i)).sum(),
            viewers: viewers.procs.iter().map(|&i| cpu(i)).sum(),
        };
        Ok(RealRun {
            t0_unix_s: t0,
            all_done: viewers.done == runs.len(),
            viewers: runs,
            totals: snapshot.totals,
            cpu_s,
            qdisc: lab.qdisc_totals(&self.plan.nodes),
            machine_busy: super::collect::busy_share(busy0, busy1),
        })
    }

    /// Writes the content and the configs, starts the tracker, then the seeds, and waits
    /// until the tracker lists the content as published by every seed.
    fn start_servers(&mut self) -> Result<Servers, String> {
        let dirs = self.dirs;
        let files = dirs.work.join("files");
        std::fs::create_dir_all(&files).map_err(|e| format!("{}: {e}", files.display()))?;
        let size = self.lab_s.file_bytes();
        let len = usize::try_from(size).map_err(|_| "content.size: too large for this machine".to_owned())?;
        crate::demo::write_random_file(&files.join(CONTENT), len, self.lab_s.seed)
            .map_err(|e| format!("writing the content: {e}"))?;

        let tracker = self.plan.tracker();
        let stats = SocketAddr::new(tracker.ip.into(), TRACKER_PORT + 1);
        let key = format!("lab-key-{:016x}", pdtp_net_mio::driver::random_seed());
        let conf = dirs.work.join("tracker.yml");
        write(&conf, &format!("host: {}\nport: {TRACKER_PORT}\nquiet: true\nseed_key: {key}\n", tracker.ip))?;
        let from = dirs.scenario.as_os_str();
        let a =
            args(&["tracker".as_ref(), "--conf".as_ref(), conf.as_os_str(), "--policy-from".as_ref(), from]);
        let t = self.lab.spawn(&tracker.name, self.exe, &a, &dirs.logs.join("tracker.log"))?;
        let ready =
            self.until(STARTUP_LIMIT, |lab| lab.fetch(&tracker.name, stats, "/stats.json").is_ok())?;
        if !ready {
            return Err("the tracker did not answer on its stats page".into());
        }

        let conf = dirs.work.join("seed.yml");
        let text = format!(
            "host: {}\nport: {TRACKER_PORT}\nquiet: true\nseed_key: {key}\nfile_root: '{}'\nlisten_port: {PEER_PORT}\n",
            tracker.ip,
            // Single-quoted YAML: a path with spaces or `: ` stays one string.
            files.display().to_string().replace('\'', "''")
        );
        write(&conf, &text)?;
        let mut seeds = Vec::new();
        for n in self.plan.nodes.iter().filter(|n| n.role == Role::Seed) {
            let a =
                args(&["seed".as_ref(), "--conf".as_ref(), conf.as_os_str(), "--policy-from".as_ref(), from]);
            seeds.push(self.lab.spawn(&n.name, self.exe, &a, &dirs.logs.join(format!("{}.log", n.name)))?);
        }
        let count = seeds.len();
        if !self.until(STARTUP_LIMIT, |lab| published(lab, &tracker.name, stats, size, count))? {
            return Err("the seeds did not publish the content".into());
        }
        Ok(Servers { tracker: t, seeds, stats })
    }

    /// Starts each viewer at its arrival time and collects its report, until every viewer
    /// reported or the scenario's time limit passed.
    fn run_viewers(&mut self, t0: f64) -> Result<Viewers, String> {
        let (plan, dirs) = (self.plan, self.dirs);
        let url = format!("pdtp://{}:{TRACKER_PORT}/{CONTENT}", plan.tracker().ip);
        // Viewers stay to serve until the lab ends the run (the scenario's `seed_for`
        // absent), or as long as it says.
        let limit_s = self.lab_s.time_limit.0.as_secs_f64();
        let seed_for = plan.seed_for.unwrap_or(Duration::from_secs_f64(limit_s + 60.0));
        // Viewers in the order they arrive (viewer order is class by class, arrivals are not).
        let mut order: Vec<usize> = (0..plan.viewers.len()).collect();
        order.sort_by(|&a, &b| plan.viewers[a].arrival_s.total_cmp(&plan.viewers[b].arrival_s));
        // A report left in DIR by an earlier run would count as done at once.
        for k in 0..order.len() {
            let _ = std::fs::remove_file(report_path(dirs, k));
        }
        let mut v = Viewers { runs: vec![ViewerRun::default(); order.len()], procs: Vec::new(), done: 0 };
        let mut next = 0;
        while v.done < order.len() && unix_now() < t0 + limit_s {
            self.check()?;
            while let Some(&k) = order.get(next).filter(|&&k| t0 + plan.viewers[k].arrival_s <= unix_now()) {
                let a = args(&[
                    "get".as_ref(),
                    url.as_ref(),
                    "-o".as_ref(),
                    dirs.work.join(format!("v{k}.bin")).as_os_str(),
                    "--listen".as_ref(),
                    PEER_PORT.to_string().as_ref(),
                    "--stall-timeout".as_ref(),
                    millis(Duration::from_nanos(TRANSFER_TIMEOUT.as_nanos())).as_ref(),
                    "--seed-for".as_ref(),
                    millis(seed_for).as_ref(),
                    "--report".as_ref(),
                    report_path(dirs, k).as_os_str(),
                ]);
                let node = &plan.nodes[plan.viewers[k].node];
                v.runs[k].arrival_unix_s = Some(unix_now());
                v.procs.push(self.lab.spawn(
                    &node.name,
                    self.exe,
                    &a,
                    &dirs.logs.join(format!("{}.log", node.name)),
                )?);
                next += 1;
            }
            for &k in &order[..next] {
                if v.runs[k].report.is_none() && report_path(dirs, k).exists() {
                    v.runs[k].report = Some(GetReport::read(&report_path(dirs, k))?);
                    v.done += 1;
                }
            }
            self.check_exits()?;
            let wake =
                order.get(next).map_or(POLL.as_secs_f64(), |&k| t0 + plan.viewers[k].arrival_s - unix_now());
            std::thread::sleep(POLL.min(Duration::from_secs_f64(wake.max(0.0))));
        }
        Ok(v)
    }

    /// The tracker's stats once it has accounted for every byte the `done` viewers verified
    /// (their last reports may still be on their way), or after [`ACCOUNTING_LIMIT`] as
    /// they are then.
    fn settle(&mut self, servers: &Servers, done: usize) -> Result<StatsSnapshot, String> {
        let want = self.lab_s.file_bytes() * done as u64;
        let (name, stats) = (self.plan.tracker().name.clone(), servers.stats);
        let mut snapshot = None;
        self.until(ACCOUNTING_LIMIT, |lab| {
            snapshot = tracker_stats(lab, &name, stats).ok();
            snapshot.as_ref().is_some_and(|s| s.totals.origin_bytes + s.totals.peer_bytes >= want)
        })?;
        snapshot.ok_or_else(|| "the tracker's stats page did not answer at the end".into())
    }

    /// Ctrl-C (or SIGTERM) ends the run.
    fn check(&self) -> Result<(), String> {
        if self.stop.load(Ordering::Relaxed) {
            return Err("interrupted; every namespace and process of the lab removed".into());
        }
        Ok(())
    }

    /// Fails if a process ended that should not have: any but a viewer that reported its
    /// download complete and then left cleanly (a fixed `seed_for` over).
    fn check_exits(&mut self) -> Result<(), String> {
        while let Some((node, status)) = self.lab.exited() {
            let viewer = node.strip_prefix('v').and_then(|k| k.parse::<usize>().ok());
            let reported = viewer.is_some_and(|k| report_path(self.dirs, k).exists());
            if !(reported && status.success()) {
                return Err(format!(
                    "{node} exited ({status}) during the run: {}",
                    last_line(self.dirs, &node)
                ));
            }
        }
        Ok(())
    }

    /// Polls `ready` until it holds (`true`) or `limit` passes (`false`); fails at once
    /// when a process ends that should not have, or on Ctrl-C.
    fn until(&mut self, limit: Duration, mut ready: impl FnMut(&mut Lab) -> bool) -> Result<bool, String> {
        let end = unix_now() + limit.as_secs_f64();
        loop {
            self.check()?;
            if ready(self.lab) {
                return Ok(true);
            }
            self.check_exits()?;
            if unix_now() > end {
                return Ok(false);
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

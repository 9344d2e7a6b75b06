//! The real side of a lab run: the tracker, the seeds and the viewers as `pdtp-node`
//! processes in their namespaces, started on the plan's schedule, watched until every
//! viewer reported its download complete (or the time limit), then stopped.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ChildStdin;
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

/// A live stream's path (`seed --live`), and its source: the bytes the lab feeds the seed.
const STREAM: &str = "stream";
const STREAM_SOURCE: &str = "stream.src";

/// How often the lab writes what is due of a live stream to the seed.
const FEED_STEP: Duration = Duration::from_millis(5);

/// How often the lab looks at its processes and the viewers' report files.
const POLL: Duration = Duration::from_millis(10);

/// How often the lab reads the tracker's origin count during a run (`origin.csv`).
const SAMPLE: f64 = 1.0;

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
    /// When the seeds had published and viewers could start: time zero, unix seconds (for
    /// a live stream, also when its first byte went to the seed).
    pub t0_unix_s: f64,
    /// When the lab stopped waiting for viewers, unix seconds.
    pub end_unix_s: f64,
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
    /// The tracker's count of bytes the origin gave and its view of the (first) seed, read
    /// about once a second during the run.
    pub origin_timeline: Vec<OriginSample>,
}

/// One read of the tracker during a run (`origin.csv`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct OriginSample {
    /// Seconds since time zero.
    pub t_s: f64,
    /// Bytes the origin gave so far.
    pub origin_bytes: u64,
    /// The seed's uploads under way, the upload slots the policy gives it, and its uplink as
    /// the tracker measures it (bit/s; 0 until measured).
    pub seed_uploads: u32,
    pub seed_slots: u32,
    pub seed_rate_bps: f64,
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
    tcp: &str,
    stop: &AtomicBool,
) -> Result<RealRun, String> {
    let mut lab = Lab::new();
    let out = Real { lab: &mut lab, plan, lab_s, dirs, exe, tcp, stop }.run();
    let failed = lab.cleanup();
    if !failed.is_empty() {
        return Err(format!("the lab could not remove everything it made: {}", failed.join("; ")));
    }
    let mut out = out?;
    let live = lab_s.content.live.is_some();
    let source = if live { dirs.work.join(STREAM_SOURCE) } else { dirs.work.join("files").join(CONTENT) };
    for (k, v) in out.viewers.iter_mut().enumerate() {
        let copy = dirs.work.join(format!("v{k}.bin"));
        // A live recording lacks the chunks its player skipped: the playback figures judge it.
        if v.report.is_some() && !live {
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
    tcp: &'a str,
    stop: &'a AtomicBool,
}

/// The tracker and seeds, once the content is published.
struct Servers {
    tracker: usize,
    seeds: Vec<usize>,
    /// A live seed's stdin, to feed the stream into.
    feed: Option<ChildStdin>,
    /// The tracker's stats page.
    stats: SocketAddr,
}

/// The viewers' side of a run.
struct Viewers {
    runs: Vec<ViewerRun>,
    /// Each started viewer's process index.
    procs: Vec<usize>,
    done: usize,
    /// See [`RealRun::origin_timeline`].
    origin_timeline: Vec<OriginSample>,
}

impl Real<'_> {
    fn run(mut self) -> Result<RealRun, String> {
        self.lab.build(&self.plan.nodes, self.tcp)?;
        self.check()?;
        let mut servers = self.start_servers()?;
        // Time zero: the content is there (a live stream: published, and its first byte on
        // the way). The simulator's seeds publish a few of its 80 µs round trips after its
        // time zero, so viewers arriving at a given time find it in both.
        let t0 = unix_now();
        let busy0 = super::collect::cpu_ticks();
        let viewers = match servers.feed.take() {
            Some(pipe) => self.run_live(t0, pipe, servers.stats),
            None => self.run_viewers(t0, servers.stats),
        }?;
        let end = unix_now();
        let busy1 = super::collect::cpu_ticks();
        let verified = viewers.runs.iter().filter_map(|v| v.report.as_ref()).map(|r| r.verified_bytes).sum();
        let snapshot = self.settle(&servers, verified)?;
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
            end_unix_s: end,
            all_done: viewers.done == runs.len(),
            viewers: runs,
            totals: snapshot.totals,
            cpu_s,
            qdisc: lab.qdisc_totals(&self.plan.nodes),
            machine_busy: super::collect::busy_share(busy0, busy1),
            origin_timeline: viewers.origin_timeline,
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
        let live = self.lab_s.content.live;
        // A file goes where the seeds publish it; a stream's bytes wait for the feed.
        let content = if live.is_some() { dirs.work.join(STREAM_SOURCE) } else { files.join(CONTENT) };
        crate::demo::write_random_file(&content, len, self.lab_s.seed)
            .map_err(|e| format!("writing the content: {e}"))?;

        let tracker = self.plan.tracker();
        let stats = SocketAddr::new(tracker.ip.into(), TRACKER_PORT + 1);
        let key = format!("lab-key-{:016x}", pdtp_net_mio::driver::random_seed());
        let conf = dirs.work.join("tracker.yml");
        // The run's own tracker key, which the seeds and viewers pin (`link_key`).
        let identity = tracker_identity(dirs);
        let link_key = pdtp_net_mio::identity::load_or_create_tracker_key(&identity)?.public();
        write(
            &conf,
            &format!(
                "host: {}\nport: {TRACKER_PORT}\nquiet: true\nseed_key: {key}\ntracker_identity: '{}'\n",
                tracker.ip,
                identity.display().to_string().replace('\'', "''")
            ),
        )?;
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
            "host: {}\nport: {TRACKER_PORT}\nquiet: true\nseed_key: {key}\nfile_root: '{}'\nlisten_port: {PEER_PORT}\n\
             seed_identity: '{}'\ntracker_key: {link_key}\n",
            tracker.ip,
            // Single-quoted YAML: a path with spaces or `: ` stays one string.
            files.display().to_string().replace('\'', "''"),
            // The lab's seeds sign with a key of the run's own, not the user's identity.
            dirs.work.join("seed-identity").display().to_string().replace('\'', "''")
        );
        write(&conf, &text)?;
        let mut seeds = Vec::new();
        let mut feed = None;
        for n in self.plan.nodes.iter().filter(|n| n.role == Role::Seed) {
            let mut a =
                args(&["seed".as_ref(), "--conf".as_ref(), conf.as_os_str(), "--policy-from".as_ref(), from]);
            let log = dirs.logs.join(format!("{}.log", n.name));
            // The uplink its shaper gives it, stated as the simulator's seeds state it.
            if self.lab_s.seeds.states_uplink {
                let uplink = format!("{}bit/s", self.lab_s.seeds.upload.0);
                a.extend(args(&["--uplink".as_ref(), uplink.as_ref()]));
            }
            match live {
                Some(l) => {
                    let bitrate = format!("{}bit/s", l.bitrate.0);
                    a.extend(args(&[
                        "--live".as_ref(),
                        STREAM.as_ref(),
                        "--bitrate".as_ref(),
                        bitrate.as_ref(),
                    ]));
                    let (i, pipe) = self.lab.spawn_fed(&n.name, self.exe, &a, &log)?;
                    seeds.push(i);
                    feed = Some(pipe);
                }
                None => seeds.push(self.lab.spawn(&n.name, self.exe, &a, &log)?),
            }
        }
        let count = seeds.len();
        let (path, size) = if live.is_some() { (STREAM, None) } else { (CONTENT, Some(size)) };
        if !self.until(STARTUP_LIMIT, |lab| published(lab, &tracker.name, stats, path, size, count))? {
            return Err("the seeds did not publish the content".into());
        }
        Ok(Servers { tracker: t, seeds, feed, stats })
    }

    /// Starts each viewer at its arrival time and collects its report, until every viewer
    /// reported or the scenario's time limit passed.
    fn run_viewers(&mut self, t0: f64, stats: SocketAddr) -> Result<Viewers, String> {
        let (plan, dirs) = (self.plan, self.dirs);
        let live = self.lab_s.content.live;
        let path = if live.is_some() { STREAM } else { CONTENT };
        let link_key = pdtp_net_mio::identity::load_or_create_tracker_key(&tracker_identity(dirs))?.public();
        let url = format!("pdtp://{}:{TRACKER_PORT}/{path}#key={link_key}", plan.tracker().ip);
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
        let mut v = Viewers {
            runs: vec![ViewerRun::default(); order.len()],
            procs: Vec::new(),
            done: 0,
            origin_timeline: Vec::new(),
        };
        let tracker = &plan.tracker().name;
        let mut next_sample = t0;
        let mut next = 0;
        while v.done < order.len() && unix_now() < t0 + limit_s {
            self.check()?;
            while let Some(&k) = order.get(next).filter(|&&k| t0 + plan.viewers[k].arrival_s <= unix_now()) {
                let mut a = args(&[
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
                    // Each viewer a machine of its own: its first use of the URL.
                    "--known-seeds".as_ref(),
                    dirs.work.join(format!("v{k}.known_seeds")).as_os_str(),
                ]);
                // A live viewer plays with the scenario's buffer, as the simulator's do.
                if let Some(l) = live {
                    let buffer = millis(Duration::from_nanos(l.buffer.0.as_nanos()));
                    a.extend(args(&["--buffer".as_ref(), buffer.as_ref()]));
                }
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
            if unix_now() >= next_sample {
                // A missed read (the tracker busy) leaves a gap, not a failure.
                if let Ok(s) = tracker_stats(self.lab, tracker, stats) {
                    let seed = s.peers.iter().find(|p| p.role == "seed");
                    v.origin_timeline.push(OriginSample {
                        t_s: unix_now() - t0,
                        origin_bytes: s.totals.origin_bytes,
                        seed_uploads: seed.map_or(0, |p| p.uploads),
                        seed_slots: seed.map_or(0, |p| p.up_slots),
                        seed_rate_bps: seed.map_or(0.0, |p| p.up_rate_bps),
                    });
                }
                next_sample += SAMPLE;
            }
            self.check_exits()?;
            let wake =
                order.get(next).map_or(POLL.as_secs_f64(), |&k| t0 + plan.viewers[k].arrival_s - unix_now());
            std::thread::sleep(POLL.min(Duration::from_secs_f64(wake.max(0.0))));
        }
        Ok(v)
    }

    /// The viewers' side of a live run: the stream fed to the seed at its bitrate by a
    /// thread of its own while the viewers come and go as in [`Real::run_viewers`].
    fn run_live(&mut self, t0: f64, pipe: ChildStdin, stats: SocketAddr) -> Result<Viewers, String> {
        let source = self.dirs.work.join(STREAM_SOURCE);
        let (bytes, bitrate) = (self.lab_s.file_bytes(), self.lab_s.content.live.map_or(0, |l| l.bitrate.0));
        let (stop, over) = (self.stop, AtomicBool::new(false));
        std::thread::scope(|scope| {
            let feeder = scope.spawn(|| feed(pipe, &source, bytes, bitrate, t0, &[stop, &over]));
            let viewers = self.run_viewers(t0, stats);
            over.store(true, Ordering::Relaxed);
            let fed = feeder.join().unwrap_or_else(|_| Err("the stream feeder panicked".into()));
            // A feed cut short by the run's own end is no error; one that failed before is.
            match (viewers, fed) {
                (Ok(v), Err(e)) if v.done < v.runs.len() => Err(format!("feeding the live stream: {e}")),
                (v, _) => v,
            }
        })
    }

    /// The tracker's stats once it has accounted for the `want` bytes the viewers that
    /// finished verified (their last reports may still be on their way), or after
    /// [`ACCOUNTING_LIMIT`] as they are then.
    fn settle(&mut self, servers: &Servers, want: u64) -> Result<StatsSnapshot, String> {
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

/// Whether the tracker lists `path` (with its full `size`, for a file), published by every
/// seed.
fn published(
    lab: &mut Lab,
    tracker: &str,
    stats: SocketAddr,
    path: &str,
    size: Option<u64>,
    seeds: usize,
) -> bool {
    let Ok(s) = tracker_stats(lab, tracker, stats) else { return false };
    let seeds_connected = s.peers.iter().filter(|p| p.role == "seed").count();
    seeds_connected >= seeds && s.files.iter().any(|f| f.path == path && size.is_none_or(|n| f.size == n))
}

/// Writes the stream in `source` (`bytes` long) to a live seed's stdin at `bitrate_bps`:
/// by `t` seconds after `t0` the first `t · bitrate / 8` bytes have gone, so chunk `i` is
/// whole at `(i + 1)` chunk times, when the simulator's source produces it. Closes the pipe
/// at the end (the seed then ends the stream), or early when any of `stop` is set.
fn feed(
    mut pipe: ChildStdin,
    source: &Path,
    bytes: u64,
    bitrate_bps: u64,
    t0: f64,
    stop: &[&AtomicBool],
) -> Result<(), String> {
    let mut src = std::io::BufReader::new(std::fs::File::open(source).map_err(|e| e.to_string())?);
    let mut buf = Vec::new();
    let mut sent = 0u64;
    while sent < bytes {
        if stop.iter().any(|s| s.load(Ordering::Relaxed)) {
            return Err("stopped before the stream's end".into());
        }
        let due = (((unix_now() - t0).max(0.0) * bitrate_bps as f64 / 8.0) as u64).min(bytes);
        if due > sent {
            buf.resize(usize::try_from(due - sent).map_err(|e| e.to_string())?, 0);
            src.read_exact(&mut buf).map_err(|e| format!("{}: {e}", source.display()))?;
            pipe.write_all(&buf).map_err(|e| format!("the live seed's stdin: {e}"))?;
            pipe.flush().map_err(|e| format!("the live seed's stdin: {e}"))?;
            sent = due;
        }
        std::thread::sleep(FEED_STEP);
    }
    Ok(())
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

/// The run's tracker key file (made by the first call, read by the next).
fn tracker_identity(dirs: &Dirs) -> PathBuf {
    dirs.work.join("tracker-identity")
}

//! `pdtp-node lab`: the real binary runs scenarios/lab/ci.yml in network namespaces (as root,
//! with `ip` and `tc`; CI is root), cleans up after itself and after Ctrl-C, and refuses what
//! it cannot run with one line (no root needed for those).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pdtp-node");

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/lab").join(name)
}

/// Whether this test can build namespaces; if not, says so on stderr (the test then checks
/// nothing more, visibly: CI runs as root, so there it always runs).
fn can_run_the_lab(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    let tools = ["ip", "tc"].iter().all(|t| Command::new(t).arg("-V").output().is_ok());
    if !(root && tools) {
        eprintln!("{test}: NOT RUN: needs root and iproute2 (ip, tc); root: {root}, tools: {tools}");
    }
    root && tools
}

fn lab(scenario: &Path, out: &Path) -> Output {
    Command::new(BIN).arg("lab").arg(scenario).arg("--out").arg(out).output().unwrap()
}

/// The lab namespaces whose names carry `pid` (every one a lab run by `pid` made).
fn namespaces_of(pid: u32) -> Vec<String> {
    let prefix = format!("pdtplab{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The CI scenario on real processes: both reports and the comparison have their keys,
/// every viewer verified exactly the file and holds an identical copy, the origin sent at
/// least one copy and at most one per viewer, and nothing is left behind, neither by this
/// run nor by an earlier lab killed outright (SIGKILL, no cleanup), which this run sweeps.
#[test]
fn the_ci_scenario_runs_on_real_processes_and_leaves_nothing_behind() {
    if !can_run_the_lab("the_ci_scenario_runs_on_real_processes_and_leaves_nothing_behind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let killed_out = dir.path().join("killed");
    let mut killed = Command::new(BIN)
        .arg("lab")
        .arg(scenario("ci.yml"))
        .arg("--out")
        .arg(&killed_out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !killed_out.join("logs/v0.log").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "the lab to kill started no viewer");
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.kill().unwrap();
    // Not reaped yet: the sweep must see a killed lab's zombie as gone. (Only a lab sweeps,
    // and nothing but the sweep would remove these.)
    assert!(!namespaces_of(killed.id()).is_empty());

    let out = dir.path().join("out");
    let mut child = Command::new(BIN)
        .arg("lab")
        .arg(scenario("ci.yml"))
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(240) {
            // Bounds the test only; SIGTERM lets the lab clean up first.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.success(), "lab failed: {stderr}");
    assert!(namespaces_of(pid).is_empty(), "left behind: {:?}", namespaces_of(pid));
    assert!(namespaces_of(killed.id()).is_empty(), "the killed lab's left: {:?}", namespaces_of(killed.id()));
    killed.wait().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("completion p50 s") && table.contains("origin copies"), "{table}");

    let real = json(&out.join("report.json"));
    let file = real["file_bytes"].as_u64().unwrap();
    assert_eq!(file, 4_000_000);
    assert_eq!(real["peers"], 8);
    assert_eq!(real["peers_completed"], 8);
    assert_eq!(real["end_reason"], "all_done");
    for key in ["p50", "p90", "p99", "max"] {
        assert!(real["completion_s"][key].as_f64().unwrap() > 0.0, "completion_s.{key}");
    }
    let copies = real["origin_copies"].as_f64().unwrap();
    assert!((1.0..=8.0).contains(&copies), "origin_copies {copies}");
    assert_eq!(real["payload_bytes"].as_u64().unwrap(), 8 * file, "the tracker accounted every byte");
    assert_eq!(real["lab"]["copies_identical"], 8);
    assert_eq!(real["lab"]["verified_exact"], 8);
    assert_eq!(real["lab"]["tcp"], "cubic");
    for live in ["continuity_index", "startup_s", "live_lag_s"] {
        assert!(real.get(live).is_none(), "{live} in an on-demand report");
    }

    let sim = json(&out.join("sim/report.json"));
    assert_eq!(sim["peers_completed"], 8);
    let cmp = json(&out.join("compare.json"));
    for side in ["sim", "real", "ratio", "diff"] {
        for key in ["p50", "p90", "max"] {
            assert!(cmp[side]["completion_s"][key].is_f64(), "{side}.completion_s.{key}");
        }
        assert!(cmp[side]["origin_copies"].is_f64() && cmp[side]["makespan_s"].is_f64(), "{side}");
    }
    assert_eq!(cmp["real"]["completion_s"]["p50"], real["completion_s"]["p50"]);
    assert_eq!(cmp["sim"]["completion_s"]["max"], sim["completion_s"]["max"]);
    // The simulator over eight seeds, the scenario's own (ci.yml: 3) first: its run lies in
    // the range.
    let range = &cmp["sim_seeds"];
    assert_eq!(range["seeds"], serde_json::json!([3, 4, 5, 6, 7, 8, 9, 10]));
    for key in ["p50", "max"] {
        let (lo, mean, hi) = (
            range["min"]["completion_s"][key].as_f64().unwrap(),
            range["mean"]["completion_s"][key].as_f64().unwrap(),
            range["max"]["completion_s"][key].as_f64().unwrap(),
        );
        let own = sim["completion_s"][key].as_f64().unwrap();
        assert!(lo <= own && own <= hi && lo <= mean && mean <= hi, "{key}: {lo} {own} {mean} {hi}");
    }

    let csv = std::fs::read_to_string(out.join("real_peers.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 8);
    for row in rows {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f[5], "4000000", "{row}");
        assert_eq!(f[6], "true", "{row}");
        // Arrival as the simulator drew it (within the 2 s window), completion after it.
        let (arrival, done): (f64, f64) = (f[2].parse().unwrap(), f[3].parse().unwrap());
        assert!((0.0..2.5).contains(&arrival) && done > arrival, "{row}");
    }
    // The origin's bytes second by second: the simulator's column ends at its total, the
    // lab's reads of the tracker never fall and never pass the tracker's final count.
    let csv = std::fs::read_to_string(out.join("origin.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("t_s,sim_origin_bytes,real_origin_bytes,real_seed_uploads,real_seed_slots,real_seed_rate_bps")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.last().unwrap()[1], sim["origin_bytes"].to_string());
    let real_col: Vec<u64> = rows.iter().filter_map(|r| r[2].parse().ok()).collect();
    assert!(real_col.len() >= 2, "{csv}");
    assert!(real_col.windows(2).all(|w| w[0] <= w[1]), "{csv}");
    assert!(*real_col.last().unwrap() <= real["origin_bytes"].as_u64().unwrap(), "{csv}");
    // The seed was read while it served: some second shows it with uploads under way.
    assert!(rows.iter().any(|r| r[3].parse::<u32>().is_ok_and(|u| u > 0)), "{csv}");
    // The copies were compared and removed; the logs stay.
    assert!(!out.join("work/v0.bin").exists());
    assert!(out.join("logs/tracker.log").exists());
}

/// A live stream on real processes: the lab feeds the seed at the bitrate, the viewers play
/// with the scenario's buffer, and both sides report continuity, startup and lag by the
/// simulator's definitions (the real side from the viewers' delivery times).
#[test]
fn a_live_stream_runs_on_real_processes_with_playback_figures() {
    if !can_run_the_lab("a_live_stream_runs_on_real_processes_with_playback_figures") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = lab(&scenario("ci_live.yml"), &out);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "lab failed: {stderr}");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(table.contains("continuity") && table.contains("live lag p99 s"), "{table}");
    let real = json(&out.join("report.json"));
    assert_eq!(real["peers_completed"], 6);
    let continuity = real["continuity_index"].as_f64().unwrap();
    // Every chunk comes, nearly every one on time: a viewer starved, or a clock off by a
    // stream's worth, would be far below.
    assert!((0.9..=1.0).contains(&continuity), "continuity {continuity}");
    for key in ["startup_s", "live_lag_s"] {
        let (p50, p99) = (real[key]["p50"].as_f64().unwrap(), real[key]["p99"].as_f64().unwrap());
        assert!(0.0 < p50 && p50 <= p99 && p99 < 10.0, "{key}: {p50} / {p99}");
    }
    let copies = real["origin_copies"].as_f64().unwrap();
    assert!((0.9..=6.0).contains(&copies), "origin_copies {copies}");
    let cmp = json(&out.join("compare.json"));
    for side in ["sim", "real"] {
        assert!(cmp[side]["continuity_index"].is_f64(), "{side}.continuity_index");
        assert!(cmp[side]["startup_s"]["p99"].is_f64() && cmp[side]["live_lag_s"]["p50"].is_f64(), "{side}");
    }
    let csv = std::fs::read_to_string(out.join("real_peers.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",continuity,startup_s,live_lag_s"));
    assert!(csv.lines().skip(1).all(|row| !row.split(',').nth(8).unwrap().is_empty()), "{csv}");
}

/// Ctrl-C (SIGINT) in the middle of a run: the lab stops, says so in one line, exits 1 and
/// leaves no namespace or process behind.
#[test]
fn ctrl_c_stops_the_lab_and_it_removes_what_it_made() {
    if !can_run_the_lab("ctrl_c_stops_the_lab_and_it_removes_what_it_made") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("lab")
        .arg(scenario("ci.yml"))
        .arg("--out")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until the viewers run (their reports' directory has logs), then interrupt.
    let started = Instant::now();
    while !dir.path().join("logs/v0.log").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no viewer started");
        assert!(child.try_wait().unwrap().is_none(), "the lab ended before any viewer started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!namespaces_of(pid).is_empty(), "no namespace while viewers run");
    let pids_in_lab: Vec<String> = namespaces_of(pid)
        .iter()
        .flat_map(|ns| {
            let out = Command::new("ip").args(["netns", "pids", ns]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    assert!(!pids_in_lab.is_empty(), "no process in the lab's namespaces");
    Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("pdtp-node: interrupted")), "{stderr}");
    assert!(namespaces_of(pid).is_empty(), "left behind: {:?}", namespaces_of(pid));
    for p in pids_in_lab {
        assert!(!Path::new(&format!("/proc/{p}")).exists() || zombie_or_gone(&p), "process {p} still runs");
    }
}

/// A pid that still shows in /proc only as a zombie of someone else's (or was reused by an
/// unrelated process) is not one of ours running.
fn zombie_or_gone(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    stat.rsplit_once(')').is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'))
        || comm.trim() != "pdtp-node"
}

fn one_line_error(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("pdtp-node: "), "{stderr}");
    stderr
}

/// What the lab cannot run is refused before anything is made, root or not.
#[test]
fn live_streams_from_two_seeds_and_crowds_over_50_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live.yml");
    std::fs::write(
        &live,
        "content: { chunk_size: 100kB, live: { bitrate: 1Mbit/s, buffer: 4s, duration: 1min } }
seeds: { count: 2, upload: 20Mbit/s }
peers: [ { count: 5, download: 10Mbit/s, upload: 2Mbit/s } ]
",
    )
    .unwrap();
    let e = one_line_error(&lab(&live, &dir.path().join("o1")));
    assert!(e.contains("the lab runs a live stream from one seed (seeds.count: 1)"), "{e}");

    let crowd = dir.path().join("crowd.yml");
    let text = std::fs::read_to_string(scenario("ci.yml")).unwrap().replace("count: 4,", "count: 30,");
    std::fs::write(&crowd, text).unwrap();
    let e = one_line_error(&lab(&crowd, &dir.path().join("o2")));
    assert!(e.contains("the lab runs at most 50 viewers on this machine (scenario has 60)"), "{e}");
    let out = Command::new(BIN)
        .arg("lab")
        .arg(scenario("ci.yml"))
        .args(["--tcp", "no_such_cc", "--out"])
        .arg(dir.path().join("o3"))
        .output()
        .unwrap();
    let e = one_line_error(&out);
    assert!(e.contains("--tcp no_such_cc: this kernel's TCP has no such congestion control"), "{e}");
    // Refused before anything was written.
    for o in ["o1", "o2", "o3"] {
        assert!(!dir.path().join(o).exists(), "{o}");
    }
}

/// Without root the lab says so in one line (as root, the test drops to `nobody` with
/// setpriv to see it; without setpriv it says it did not run).
#[test]
fn without_root_the_lab_says_it_needs_root() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = if rustix::process::geteuid().is_root() {
        let setpriv = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN, "lab"])
            .arg(scenario("ci.yml"))
            .arg("--out")
            .arg(&out)
            .output();
        match setpriv {
            Ok(o) => o,
            Err(e) => {
                eprintln!("without_root_the_lab_says_it_needs_root: NOT RUN: no setpriv to drop root ({e})");
                return;
            }
        }
    } else {
        lab(&scenario("ci.yml"), &out)
    };
    let e = one_line_error(&output);
    assert!(e.contains("the lab needs root"), "{e}");
    assert!(!out.exists());
}

/// `--sim-only` runs the model's side alone, with no root, no namespaces and no kernel check: the seeds'
/// range in `sim_seeds.json` and no real report; and `sim/replayed.yml`, from which `sim
/// run --seed N` replays the other seeds exactly (the range's mean is the scenario's own
/// run and those replays, to the last digit).
#[test]
fn sim_only_predicts_without_a_real_swarm_and_each_seed_replays() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pred");
    let run = Command::new(BIN)
        // A congestion control no kernel has: the model's side asks nothing of the kernel.
        .args(["lab", "--sim-seeds", "3", "--sim-only", "--tcp", "no-such-cc", "--out"])
        .arg(&out)
        .arg(scenario("ci.yml"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(String::from_utf8_lossy(&run.stdout).contains("origin copies"));
    assert!(!out.join("report.json").exists() && !out.join("work").exists(), "no real run");
    let range = json(&out.join("sim_seeds.json"));
    let seeds: Vec<u64> = range["seeds"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
    assert_eq!(seeds.len(), 3);
    let mut p50s = vec![json(&out.join("sim/report.json"))["completion_s"]["p50"].as_f64().unwrap()];
    for seed in &seeds[1..] {
        let replay = dir.path().join(format!("replay{seed}"));
        let status = Command::new(env!("CARGO_BIN_EXE_pdtp-sim"))
            .args(["run", "--quiet", "--seed", &seed.to_string(), "--out"])
            .arg(&replay)
            .arg(out.join("sim/replayed.yml"))
            .status()
            .unwrap();
        assert!(status.success());
        p50s.push(json(&replay.join("report.json"))["completion_s"]["p50"].as_f64().unwrap());
    }
    let mean = p50s.iter().sum::<f64>() / 3.0;
    let reported = range["mean"]["completion_s"]["p50"].as_f64().unwrap();
    assert!((mean - reported).abs() < 1e-9, "replays' mean p50 {mean} against the range's {reported}");
}

//! `pdtp-node lab SCENARIO --out DIR`: runs a scenario (a file or a live stream) on real `pdtp-node`
//! processes on this machine (one network namespace per node, `tc tbf` caps on every link)
//! and in the simulator, and compares the two (docs/lab.md).
//!
//! ```text
//! scenario ──▶ lab scenario (latencies 20 µs, bandwidths ÷ scale) ──▶ DIR/sim/scenario.yml
//!                 │                                   │
//!                 ▼                                   ▼
//!          simulator run ── arrivals ──▶ real run: namespaces, tracker, seeds, viewers
//!          DIR/sim/report.json              DIR/report.json, DIR/real_peers.csv
//!                 └──────────────┬────────────────────┘
//!                                ▼
//!                         DIR/compare.json, the table
//! ```
//!
//! A live stream is fed to the seed's stdin at its bitrate (`swarm`); each viewer's
//! `get --report` lists when each chunk became playable in order, and `collect` computes
//! continuity, startup and lag from that with the simulator's own `metrics::Recorder`.

mod collect;
mod netns;
mod plan;
mod swarm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use pdtp_core::Span;
use pdtp_sim::adapters::core_factory;
use pdtp_sim::report::to_json;
use pdtp_sim::runner;
use pdtp_sim::scenario::{Arrivals, Scenario};
use pdtp_sim::units::Duration;

use crate::get_report::unix_now;

/// `lab`'s arguments, as typed.
pub struct Args {
    pub scenario: PathBuf,
    pub out: PathBuf,
    pub scale: f64,
    /// Simulator runs over consecutive scenario seeds, the scenario's own first (at least 1).
    pub sim_seeds: u64,
    /// The nodes' TCP congestion control.
    pub tcp: String,
    /// Stop after the simulator's side.
    pub sim_only: bool,
}

/// Runs the lab; every error is one line, and nothing the lab made outlives it.
pub fn run(args: &Args) -> Result<(), String> {
    let started = unix_now();
    let original = Scenario::load(&args.scenario).map_err(|e| e.to_string())?;
    plan::refuse(&original)?;
    if args.sim_seeds == 0 {
        return Err("lab: --sim-seeds must be at least 1 (the scenario's own seed)".to_owned());
    }
    if !args.sim_only {
        netns::check_congestion_control(&args.tcp)?;
    }
    if original.sweep.is_some() {
        eprintln!(
            "pdtp-node: lab: {}: runs the scenario itself; its sweep: grid is ignored",
            args.scenario.display()
        );
    }
    let lab_s = plan::lab_scenario(&original, args.scale)?;
    let stop = Arc::new(AtomicBool::new(false));
    // The model's side alone touches no namespace and keeps Ctrl-C's default (it has no
    // real swarm to stop and clean up).
    if !args.sim_only {
        netns::check_environment()?;
        // From here on, Ctrl-C and SIGTERM only raise this flag: the run stops at its next
        // check and removes what it made instead of dying with namespaces and processes left.
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .map_err(|e| format!("signal handler: {e}"))?;
        }
        for ns in netns::sweep_stale() {
            eprintln!("pdtp-node: lab: removed {ns}, left by a lab that was killed");
        }
    }

    let out = &args.out;
    let dirs = swarm::Dirs {
        work: out.join("work"),
        logs: out.join("logs"),
        scenario: out.join("sim/scenario.yml"),
    };
    let made = if args.sim_only {
        vec![out.join("sim")]
    } else {
        vec![out.join("sim"), dirs.work.clone(), dirs.logs.clone()]
    };
    for d in made {
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    // The scenario both sides run, written out and read back: the tracker and seeds take
    // their policy and chunk size from this file, and `sim run DIR/sim/scenario.yml`
    // replays the simulator's side.
    let yaml = serde_norway::to_string(&lab_s).map_err(|e| format!("writing the lab scenario: {e}"))?;
    write(&dirs.scenario, &yaml)?;
    let lab_s = Scenario::load(&dirs.scenario).map_err(|e| e.to_string())?;

    let sim = runner::run(&lab_s, "default", core_factory().as_mut(), &mut |_, _, _| {});
    sim.write(&out.join("sim")).map_err(|e| e.to_string())?;
    let plan = plan::plan(&lab_s, &sim.peers)?;
    // One seed is one draw: the range over seeds shows how far the model's own figures move
    // with its tie-breaks and timing draws, which a single real run can land anywhere in.
    // Every seed keeps the arrivals the real viewers follow (the scenario's own seed's): with
    // Poisson arrivals the draw of arrival times moves the origin's share more than anything
    // the model and the real node can disagree on.
    let seeds: Vec<u64> = (0..args.sim_seeds).map(|k| lab_s.seed.wrapping_add(k)).collect();
    let arrivals =
        plan.viewers.iter().map(|v| Duration(Span::from_nanos((v.arrival_s * 1e9).round() as u64)));
    let replayed = Scenario { arrivals: Arrivals::At(arrivals.collect()), ..lab_s.clone() };
    // `sim run DIR/sim/replayed.yml --seed N` replays any of them.
    let replayed_yaml =
        serde_norway::to_string(&replayed).map_err(|e| format!("writing the replayed scenario: {e}"))?;
    write(&out.join("sim/replayed.yml"), &replayed_yaml)?;
    let over_seeds: Vec<pdtp_sim::report::Report> = seeds
        .iter()
        .map(|&seed| {
            if seed == lab_s.seed {
                return sim.report.clone();
            }
            let s = Scenario { seed, ..replayed.clone() };
            runner::run(&s, "default", core_factory().as_mut(), &mut |_, _, _| {}).report
        })
        .collect();
    if args.sim_only {
        let range = collect::seed_range(&seeds, &over_seeds);
        write(&out.join("sim_seeds.json"), &to_json(&range).map_err(|e| e.to_string())?)?;
        print!("{}", collect::seed_table(&range));
        return Ok(());
    }

    let exe = std::env::current_exe().map_err(|e| format!("finding the pdtp-node binary: {e}"))?;
    let load_before = collect::load_avg();
    eprintln!(
        "pdtp-node: lab: {} viewers of {} on real processes (the simulator's makespan: {}) …",
        plan.viewers.len(),
        pdtp_sim::units::Bytes(lab_s.file_bytes()),
        sim.report.makespan_s.map_or("-".to_owned(), |m| format!("{m:.2} s"))
    );
    let real = swarm::run(&plan, &lab_s, &dirs, &exe, &args.tcp, &stop)?;
    let info = collect::LabInfo {
        scale: args.scale,
        tcp: args.tcp.clone(),
        sim_latency_s: plan::LAB_LATENCY.as_secs_f64(),
        started_unix_s: started,
        wall_s: unix_now() - started,
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
        load_avg_before: load_before,
        machine_busy: real.machine_busy,
        cpu_s: real.cpu_s,
        shapers: real.qdisc,
        copies_identical: 0,
        verified_exact: 0,
    };
    let (report, rows) = collect::real_report(&lab_s, &plan, &real, info);
    let cmp = collect::compare(&sim.report, &sim.peers, &report, &rows, &seeds, &over_seeds);
    write(&out.join("report.json"), &to_json(&report).map_err(|e| e.to_string())?)?;
    write(&out.join("real_peers.csv"), &collect::real_peers_csv(&rows))?;
    write(&out.join("origin.csv"), &collect::origin_csv(&sim.origin_per_s, &real.origin_timeline))?;
    write(&out.join("compare.json"), &to_json(&cmp).map_err(|e| e.to_string())?)?;
    print!("{}", collect::table(&cmp, &report));
    if !real.all_done {
        return Err(format!(
            "{} of {} viewers completed within the scenario's time_limit ({})",
            report.peers_completed, report.peers, lab_s.time_limit
        ));
    }
    // A live recording lacks what its player skipped; continuity judges it instead.
    if lab_s.content.live.is_none() && report.lab.copies_identical != report.peers {
        return Err(format!(
            "{} of {} copies differ from the content",
            report.peers - report.lab.copies_identical,
            report.peers
        ));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

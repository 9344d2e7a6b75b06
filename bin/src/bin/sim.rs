//! `sim`: the PDTP simulator's command line.
//!
//! ```text
//! sim run   SCENARIO [--seed N] [--out DIR] [--quiet]
//! sim sweep SCENARIO [--out DIR] [--jobs N]   (N defaults to the number of cores)
//! sim check SCENARIO
//! sim gate  [BASELINES] [--quick] [--jobs N]   (BASELINES defaults to scenarios/baselines.yml)
//! ```
//! Exit codes: 0 success, 1 the gate failed (a figure worse than its baseline), 2 bad input
//! (one line naming the problem).

// The binary may use threads (sweep cells) and the wall clock (progress); the determinism
// guard in clippy.toml is for core and sim.
#![allow(clippy::disallowed_methods)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use pdtp_core::bounds::{BUFFER_MARGIN, Feasibility, LiveBounds, RATE_MARGIN};
use pdtp_sim::adapters::core_factory;
use pdtp_sim::gate::{self, Baselines};
use pdtp_sim::report::{self, Bounds, Report, RunResult};
use pdtp_sim::runner;
use pdtp_sim::scenario::{Arrivals, Scenario};
use pdtp_sim::units::{BitRate, Bytes};

// mimalloc asks the kernel for transparent huge pages (this machine grants them only on
// request), and the 10 000-viewer run, which touches over a gigabyte at random, is about a
// fifth faster with it; the 1 000-viewer run is unchanged (measured 2026-11-27; docs/performance.md
// in git history).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "sim", version, about = "Deterministic simulator of a PDTP swarm")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one scenario and print its results.
    Run {
        /// The scenario file (YAML).
        scenario: PathBuf,
        /// Override the scenario's RNG seed (replays one run).
        // Negative numbers are parsed as values, so `--seed -1` is refused naming `--seed`.
        #[arg(long, allow_negative_numbers = true)]
        seed: Option<u64>,
        /// Write report.json, peers.csv and SVG plots here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print nothing but errors.
        #[arg(long)]
        quiet: bool,
    },
    /// Run every cell of the scenario's `sweep:` grid.
    Sweep {
        /// The scenario file (YAML); its `sweep:` section gives the grid (without one, a
        /// single cell: the scenario itself).
        scenario: PathBuf,
        /// Write report.json ({"cells": [...]}), sweep.csv and sweep.svg here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Cells to run in parallel (default: one per core).
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
    },
    /// Validate a scenario and print its summary and bounds.
    Check {
        /// The scenario file (YAML).
        scenario: PathBuf,
    },
    /// Run the regression gate: every scenario of the baselines file, each figure against
    /// its baseline and tolerance; exits 1 if any is worse.
    Gate {
        /// The baselines file.
        #[arg(default_value = "scenarios/baselines.yml")]
        baselines: PathBuf,
        /// Only the quick entries (what the test suite runs).
        #[arg(long)]
        quick: bool,
        /// Runs at once (default: one per core).
        #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..))]
        jobs: Option<u32>,
    },
}

enum Failure {
    Input(String),
    /// The gate ran and a figure was worse than its baseline (the table is printed).
    GateFailed,
}

fn main() -> ExitCode {
    keep_freed_memory();
    // `--version` names the protocol the simulated machines speak.
    let version =
        format!("{} (PDTP protocol {})", env!("CARGO_PKG_VERSION"), pdtp_core::wire::PROTOCOL_VERSION);
    let parsed = Cli::command().version(version).try_get_matches().and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        // Help and version go to stdout; `sim` alone gets the whole usage.
        Err(e)
            if !e.use_stderr()
                || e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
        // Like every other bad input: one line naming the problem.
        Err(e) => {
            // clap's message is its first paragraph (a list of missing arguments runs over
            // several lines), then usage.
            let text = e.render().to_string();
            let message: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            eprintln!("sim: {} (sim --help for usage)", message.join(" ").trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let result = match cli.cmd {
        Cmd::Run { scenario, seed, out, quiet } => run(&scenario, seed, out.as_deref(), quiet),
        Cmd::Sweep { scenario, out, jobs } => sweep(&scenario, out.as_deref(), jobs.map(|j| j as usize)),
        Cmd::Check { scenario } => load(&scenario).map(|s| print!("{}", summary(&s))),
        Cmd::Gate { baselines, quick, jobs } => gate(&baselines, quick, jobs.map(|j| j as usize)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(msg)) => {
            eprintln!("sim: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::GateFailed) => ExitCode::from(1),
    }
}

/// `sim gate`: every run of every entry (cells in parallel, each deterministic), then the table.
fn gate(path: &Path, quick_only: bool, jobs: Option<usize>) -> Result<(), Failure> {
    let b = Baselines::load(path).map_err(|e| Failure::Input(e.0))?;
    let entries: Vec<&gate::Entry> =
        b.quick.iter().chain(if quick_only { &b.full[..0] } else { &b.full[..] }).collect();
    let runs: Vec<(usize, Scenario)> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| e.runs().map(|rs| rs.into_iter().map(move |s| (i, s))))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Input(e.0))?
        .into_iter()
        .flatten()
        .collect();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    println!("gate: {} entries, {} runs ({})", entries.len(), runs.len(), path.display());
    let progress = Progress::new(false, runs.len() as u64, "runs done");
    let done = AtomicU64::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Failure::Input(format!("--jobs {jobs}: {e}")))?;
    let results: Vec<(usize, RunResult)> = pool.install(|| {
        use rayon::prelude::*;
        runs.par_iter()
            .map(|(i, s)| {
                let r = gate::run_one(s);
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.update(n, || s.label().to_owned());
                (*i, r)
            })
            .collect()
    });
    progress.finish();
    let rows: Vec<gate::Row> = entries
        .iter()
        .enumerate()
        .flat_map(|(i, e)| {
            let mine: Vec<RunResult> =
                results.iter().filter(|(j, _)| *j == i).map(|(_, r)| r.clone()).collect();
            e.judge(&mine)
        })
        .collect();
    print!("{}", gate::table(&rows));
    if gate::passes(&rows) { Ok(()) } else { Err(Failure::GateFailed) }
}

/// Asks mimalloc to keep the memory the simulator frees instead of handing it back to the
/// kernel after a second: the 10 000-viewer run frees and reuses memory all along, and each
/// reuse of a returned page costs a fault that clears a whole 2 MiB huge page (3.9 % of its
/// main thread, measured 2026-11-28: docs/performance.md in git history). mimalloc reads the
/// option from the environment when the process starts, and setting it in-process needs
/// `unsafe`, so the binary starts itself again once with it set. A value the user set is kept.
#[cfg(unix)]
fn keep_freed_memory() {
    const PURGE_DELAY: &str = "MIMALLOC_PURGE_DELAY";
    // mimalloc also reads the option by its older name, and matches names in any case.
    let user_set = std::env::vars_os().any(|(key, _)| {
        let key = key.to_string_lossy();
        ["MIMALLOC_PURGE_DELAY", "MIMALLOC_RESET_DELAY"].iter().any(|name| key.eq_ignore_ascii_case(name))
    });
    if user_set {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut args = std::env::args_os();
    let mut again = std::process::Command::new(exe);
    // The name it was called by, so help and errors read the same through a symlink.
    if let Some(name) = args.next() {
        std::os::unix::process::CommandExt::arg0(&mut again, name);
    }
    let err = std::os::unix::process::CommandExt::exec(again.args(args).env(PURGE_DELAY, "-1"));
    // Only a failed exec returns; the run goes on as it is, just slower to reuse memory.
    eprintln!("sim: cannot restart with {PURGE_DELAY} set ({err}); going on without");
}

#[cfg(not(unix))]
fn keep_freed_memory() {}

fn load(path: &Path) -> Result<Scenario, Failure> {
    Scenario::load(path).map_err(|e| Failure::Input(e.0))
}

fn run(path: &Path, seed: Option<u64>, out: Option<&Path>, quiet: bool) -> Result<(), Failure> {
    let mut s = load(path)?;
    if let Some(seed) = seed {
        s.seed = seed;
    }
    if s.sweep.take().is_some() && !quiet {
        eprintln!(
            "sim: note: `run` ignores the file's sweep: section and runs the scenario once (`sim sweep` runs the grid)"
        );
    }
    prepare_out(out)?;
    if !quiet {
        print!("{}", summary(&s));
    }
    let mut factory = core_factory();
    let progress = Progress::new(quiet, s.peer_count(), "viewers done");
    let result = runner::run(&s, "default", factory.as_mut(), &mut |now, events, done| {
        progress.update(done, || format!("sim {:.1} s, {events} events", now.as_secs_f64()))
    });
    progress.finish();
    if !quiet {
        print!("{}", report::table(std::slice::from_ref(&result.report)));
    }
    if let Some(dir) = out {
        write(dir, |d| result.write(d))?;
    }
    Ok(())
}

fn sweep(path: &Path, out: Option<&Path>, jobs: Option<usize>) -> Result<(), Failure> {
    let s = load(path)?;
    // Cells are independent and each is deterministic, so using every core changes only
    // the wall time.
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let cells = s.cells().map_err(|e| Failure::Input(e.to_string()))?;
    prepare_out(out)?;
    print!("{}", summary(&s));
    println!("sweep: {} cells", cells.len());
    let progress = Progress::new(false, cells.len() as u64, "cells done");
    let done = AtomicU64::new(0);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .map_err(|e| Failure::Input(format!("--jobs {jobs}: {e}")))?;
    let results: Vec<RunResult> = pool.install(|| {
        use rayon::prelude::*;
        cells
            .par_iter()
            .map(|cell| {
                let mut factory = core_factory();
                let result = runner::run(&cell.scenario, &cell.policy, factory.as_mut(), &mut |_, _, _| {
                    progress.update(done.load(Ordering::Relaxed), String::new)
                });
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.update(finished, String::new);
                result
            })
            .collect()
    });
    progress.finish();
    let reports: Vec<Report> = results.into_iter().map(|r| r.report).collect();
    print!("{}", report::table(&reports));
    if let Some(dir) = out {
        write(dir, |d| report::write_sweep(d, &reports))?;
    }
    Ok(())
}

/// Creates the output directory before a run, so a bad `--out` costs no run.
fn prepare_out(out: Option<&Path>) -> Result<(), Failure> {
    let Some(dir) = out else { return Ok(()) };
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Input(format!("--out {}: cannot create: {e}", dir.display())))
}

fn write(dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<(), Failure> {
    // The error names the file that could not be written.
    f(dir).map_err(|e| Failure::Input(format!("--out {}: cannot write: {e}", dir.display())))
}

/// The scenario in a few lines, with its physical bounds.
fn summary(s: &Scenario) -> String {
    let b = Bounds::of(s);
    let chunks = s.file_bytes().div_ceil(s.content.chunk_size.0.max(1));
    let mut out = format!("scenario {} (seed {})\n", s.label(), s.seed);
    match &s.content.live {
        Some(l) => {
            out += &format!(
                "  content: live stream at {} for {}, buffer {}, {} chunks of {}\n",
                l.bitrate, l.duration, l.buffer, chunks, s.content.chunk_size
            )
        }
        None => {
            out += &format!(
                "  content: {} on demand, {} chunks of {}\n",
                Bytes(s.file_bytes()),
                chunks,
                s.content.chunk_size
            )
        }
    }
    out += &format!("  seeds: {} × {} up\n", s.seeds.count, s.seeds.upload);
    for (i, c) in s.peers.iter().enumerate() {
        let name = c.name.clone().unwrap_or_else(|| format!("class{i}"));
        out += &format!(
            "  peers: {} × {name}: {} down / {} up, {} latency\n",
            c.count, c.download, c.upload, c.latency
        );
    }
    out += &match &s.arrivals {
        Arrivals::AllAtOnce => "  arrivals: all at once\n".to_string(),
        Arrivals::Uniform { window } => format!("  arrivals: uniform over {window}\n"),
        Arrivals::Poisson { rate } => format!("  arrivals: Poisson, {rate}/s\n"),
        Arrivals::At(times) => {
            let last = times.iter().max().map_or("-".to_owned(), ToString::to_string);
            format!("  arrivals: {} given times, the last at {last}\n", times.len())
        }
    };
    out += &format!(
        "  policy: chunk {}, giver {}, {} transfers ({} up / {} down) per peer\n",
        s.policy.chunk.name(),
        s.policy.giver.name(),
        s.policy.max_transfers,
        s.policy.max_uploads,
        s.policy.max_downloads
    );
    let caps = format!(
        "u_s {}, Σu_i {}, d_min {}, N {}",
        BitRate(b.origin_up_bps as u64),
        BitRate(b.peer_up_bps as u64),
        BitRate(b.d_min_bps as u64),
        s.peer_count()
    );
    out += &match &s.content.live {
        None => format!("  bounds: T_min = {:.2} s ({caps})\n", b.t_min_s),
        Some(l) => format!(
            "  bounds: r_max = {} ({caps}); the stream runs at {:.3} × r_max\n",
            BitRate(b.r_max_bps as u64),
            l.bitrate.0 as f64 / b.r_max_bps
        ),
    };
    if let (Some(l), Some(lb)) = (&s.content.live, b.live(s)) {
        out += &live_feasibility(&lb, l.buffer.secs(), s.content.chunk_size.0);
    }
    if let Some(f) = b.steady(s) {
        out += &format!(
            "  steady state (Qiu–Srikant fluid model): mean download {:.2} s ({:.2} s at the downlinks' \
             rate; seeds stay {} on average)\n",
            f.fluid_download_s(),
            f.link_download_s,
            s.seed_for
                .map(|d| d.time())
                .filter(|d| d.secs() > 0.0)
                .map_or("0s".to_string(), |d| d.to_string()),
        );
    }
    out
}

/// The lag floor of a live scenario, and a warning for each way it is out of the live
/// targets' reach, with the chunk size or buffer that would fit (docs/simulator.md, "Live
/// feasibility").
fn live_feasibility(b: &LiveBounds, buffer_s: f64, chunk: u64) -> String {
    let mut out = format!(
        "  lag floor: {:.2} s = {} copy times of {:.3} s (one {} chunk at the mean uplink; ⌈log₂(N+1)⌉ hops); \
         the {buffer_s} s buffer is {:.2} × it\n",
        b.floor_s,
        b.depth,
        b.copy_s,
        Bytes(chunk),
        buffer_s / b.floor_s
    );
    match b.feasibility() {
        Feasibility::Infeasible => {
            out += &format!(
                "  warning: the stream needs {:.2} × r_max: the swarm cannot carry it to every viewer at any chunk size\n",
                b.load
            )
        }
        Feasibility::PastMargin => {
            out += &format!(
                "  warning: the stream runs at {:.3} × r_max, past the {RATE_MARGIN} × r_max the live targets hold to\n",
                b.load
            )
        }
        Feasibility::Fits => {}
    }
    if b.download_short {
        out += "  warning: the slowest viewers' download is below the stream's rate: they cannot play it\n";
    }
    if buffer_s < b.buffer_that_fits() {
        // Whole kilobytes, rounded down, read better than the exact figure.
        let fit = b.chunk_that_fits(chunk, buffer_s) / 1000 * 1000;
        out += &format!(
            "  warning: the buffer covers less than {BUFFER_MARGIN} × the lag floor: chunks of at most {} \
             would fit it, or a buffer of {:.2} s at this chunk size\n",
            Bytes(fit),
            b.buffer_that_fits()
        );
    }
    out
}

/// A progress bar on stderr, only on a terminal and only once a run has taken a second.
struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
}

impl Progress {
    /// A bar of `total` steps, labelled `what` (`viewers done`, `cells done`).
    fn new(quiet: bool, total: u64, what: &str) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::hidden();
            bar.set_length(total);
            if let Ok(style) =
                ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what}  {{msg}}"))
            {
                bar.set_style(style);
            }
            bar
        });
        Self { bar, started: Instant::now() }
    }

    /// `done` steps so far; `msg` (made only when the bar is drawn) goes beside the bar.
    fn update(&self, done: u64, msg: impl FnOnce() -> String) {
        let Some(bar) = &self.bar else { return };
        if self.started.elapsed() < Duration::from_secs(1) {
            return;
        }
        if bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        // Never backwards: two cells' threads may report out of order.
        bar.set_position(done.max(bar.position()));
        bar.set_message(msg());
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

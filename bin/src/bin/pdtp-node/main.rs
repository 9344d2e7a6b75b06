//! `pdtp-node`: run a PDTP tracker, seed or viewer (`get`) on real sockets, or a whole demo
//! swarm on loopback.
//!
//! Errors print one line naming what to fix and exit with status 1 (2 for usage errors,
//! from clap). Logs go to stderr through `tracing`: warnings only by default, more with
//! `--verbose` (`-vv` for debug) or `RUST_LOG`.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]
#![forbid(unsafe_code)]

mod demo;
mod get_report;
mod lab;
mod roles;
mod tracker_trust;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// PDTP peercasting: one origin, many viewers sharing chunks, a tracker scheduling every
/// transfer.
#[derive(Debug, Parser)]
#[command(name = "pdtp-node", version, about)]
struct Cli {
    /// More logs on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a tracker (and its stats page on port + 1).
    Tracker {
        /// The YAML config (conf/example.yml shows every key).
        #[arg(long)]
        conf: PathBuf,
        /// Run the policy and chunk size of this simulator scenario instead of the config's
        /// (e.g. scenarios/flashcrowd.yml).
        #[arg(long, value_name = "SCENARIO")]
        policy_from: Option<PathBuf>,
    },
    /// Publish every file under file_root (and optionally a live stream from stdin).
    Seed {
        /// The YAML config: host/port of the tracker, file_root, chunk_size, seed_key.
        #[arg(long)]
        conf: PathBuf,
        /// Publish a live stream read from stdin under this path.
        #[arg(long, value_name = "NAME")]
        live: Option<String>,
        /// The live stream's bitrate (e.g. 1.2Mbit/s), told to viewers so their players join
        /// half a buffer behind the newest chunk (with --live).
        #[arg(long, value_name = "RATE", requires = "live")]
        bitrate: Option<String>,
        /// Cap on what the origin sends (e.g. 2MiB/s); overrides the config.
        #[arg(long, value_name = "RATE")]
        max_upload_rate: Option<String>,
        /// This seed's uplink (e.g. 16Mbit/s), stated to the tracker so it schedules the seed
        /// at that rate from its first copy instead of measuring its way up; overrides the
        /// config's `uplink`.
        #[arg(long, value_name = "RATE")]
        uplink: Option<String>,
        /// Chunk files in this simulator scenario's chunk size instead of the config's (as the
        /// tracker's --policy-from).
        #[arg(long, value_name = "SCENARIO")]
        policy_from: Option<PathBuf>,
    },
    /// Download pdtp://host[:port]/path, verifying every chunk.
    Get {
        /// The URL, as pdtp://tracker.example.org:6086/show.mp4.
        url: String,
        /// Output file, or - for stdout (a FIFO works too); default: the file's name here.
        /// A file grows as FILE.part and is renamed to FILE once every chunk is verified; a
        /// FILE.part left by an interrupted get is resumed (no --force needed): its chunks
        /// that hash right against the manifest are kept, the rest are fetched. A live stream
        /// does not resume: it is recorded from the live edge and leaves FILE.part alone.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        flags: roles::GetFlags,
    },
    /// Run a scenario (a file or a live stream) on real pdtp-node processes here (one network
    /// namespace per node, tc caps on every link) and in the simulator, and compare them
    /// (needs root; docs/lab.md).
    Lab {
        /// The scenario file, as `sim run` takes it (at most 50 viewers; a live stream from one
        /// seed).
        scenario: PathBuf,
        /// Write report.json (real), sim/report.json, compare.json and real_peers.csv here.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Divide every bandwidth (seeds, viewers, tracker) by this, on both sides, so the
        /// swarm fits the machine.
        #[arg(long, default_value_t = 1.0, value_name = "F")]
        scale: f64,
        /// Also run the simulator with this many scenario seeds (the scenario's own and the
        /// ones after it), each on the real viewers' arrival times, and report their range:
        /// what the model itself varies by.
        #[arg(long, default_value_t = 8, value_name = "N")]
        sim_seeds: u64,
        /// The TCP congestion control every node uses (one the kernel lists in
        /// net.ipv4.tcp_available_congestion_control). CUBIC, Linux's default, keeps a shaped
        /// link busy as the simulator's links are (docs/lab.md).
        #[arg(long, default_value = "cubic", value_name = "NAME")]
        tcp: String,
        /// Run only the simulator's side (no root needed): DIR/sim/ and DIR/sim_seeds.json,
        /// the model's prediction for the real run.
        #[arg(long)]
        sim_only: bool,
    },
    /// Tracker, seed and N peers on loopback with a generated file, in one process.
    Demo {
        /// Number of peers.
        #[arg(long, default_value_t = 10)]
        peers: usize,
        /// Size of the generated file in bytes.
        #[arg(long, default_value_t = 16 * 1024 * 1024)]
        size: u64,
        /// Bytes per chunk (default: the built-in chunk size for files).
        #[arg(long, default_value_t = pdtp_net_mio::config::DEFAULT_CHUNK_SIZE)]
        chunk_size: u32,
        /// Cap on what the seed (the origin) sends, e.g. 2MiB/s.
        #[arg(long, value_name = "RATE")]
        origin_rate: Option<String>,
        /// Cap on what each peer sends, e.g. 1MiB/s.
        #[arg(long, value_name = "RATE")]
        peer_upload_rate: Option<String>,
        /// Print one JSON object instead of a summary.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    // `--version` names the protocol this node speaks (peers of another version are refused).
    let version =
        format!("{} (PDTP protocol {})", env!("CARGO_PKG_VERSION"), pdtp_core::wire::PROTOCOL_VERSION);
    let matches = Cli::command().version(version).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Tracker { conf, policy_from } => roles::tracker(&conf, policy_from.as_deref(), cli.verbose),
        Command::Seed { conf, live, bitrate, max_upload_rate, uplink, policy_from } => {
            let flags = roles::SeedFlags {
                live,
                bitrate: bitrate.as_deref(),
                upload: max_upload_rate.as_deref(),
                uplink: uplink.as_deref(),
                policy_from: policy_from.as_deref(),
            };
            roles::seed(&conf, &flags, cli.verbose)
        }
        Command::Get { url, output, flags } => {
            init_logs(cli.verbose, false, false);
            roles::get(&url, output, &flags)
        }
        Command::Lab { scenario, out, scale, sim_seeds, tcp, sim_only } => {
            init_logs(cli.verbose, false, false);
            lab::run(&lab::Args { scenario, out, scale, sim_seeds, tcp, sim_only })
        }
        Command::Demo { peers, size, chunk_size, origin_rate, peer_upload_rate, json } => {
            init_logs(cli.verbose, false, false);
            let caps = demo::Caps { origin: origin_rate, peer_upload: peer_upload_rate };
            demo::run(peers, size, chunk_size, &caps, json)
        }
    };
    if let Err(e) = result {
        eprintln!("pdtp-node: {e}");
        std::process::exit(1);
    }
}

/// Logs to stderr: warnings by default, `quiet` keeps it there, `debug` or `-vv` adds debug.
fn init_logs(verbose: u8, quiet: bool, debug: bool) {
    let level = match (verbose, quiet, debug) {
        (_, _, true) | (2.., _, _) => "debug",
        (1, _, _) => "info",
        (0, _, _) => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A second initialisation (never happens here) would only be refused; nothing to do then.
    // A failed write is dropped: by default the subscriber reports it with `eprintln!`,
    // which panics when stderr is gone, and a node must outlive its terminal.
    // Colours only on a terminal: a log redirected to a file or read by a program gets text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .try_init();
}

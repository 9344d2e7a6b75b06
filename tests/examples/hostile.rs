//! Issue 17's probes rerun against release processes: for each, a fresh `pdtp-node` tracker
//! and seed on loopback, the hostile clients started, then an honest `get` of the same file
//! timed while they act. Prints one row per probe: the honest download's wall time (median
//! of `--runs`), its ratio to a clean run's, whether every copy was exact, and what the
//! attackers got. A measurement, not a test: docs/security.md quotes its table.
//!
//! ```sh
//! cargo build --release --bin pdtp-node
//! cargo run --release -p pdtp-tests --example hostile -- [--bin target/release/pdtp-node] [--size 5000000] [--runs 3]
//! ```
//!
//! `HOSTILE_ONLY=NAME` runs one probe (and the clean one) with the honest `get`'s log on
//! stderr; `HOSTILE_TRACKER_LOG=FILE` writes the tracker's orders and outcomes (its trace
//! log) to FILE, the last run's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods, clippy::print_stdout)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use pdtp_core::wire::{AskInfo, Hello, PROTOCOL_VERSION, Role};
use pdtp_core::{Message, PeerId};
use pdtp_tests::{KEY, Lie, LyingTaker, MuteGiver, TrackerLink, node_command, write_random_file};

/// An honest download slower than this counts as failed (and is killed).
const GET_LIMIT: Duration = Duration::from_secs(120);

struct Args {
    bin: String,
    size: usize,
    runs: usize,
}

fn args() -> Args {
    let mut a = Args { bin: "target/release/pdtp-node".into(), size: 5_000_000, runs: 3 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--bin" => a.bin = v,
            "--size" => a.size = v.parse().expect("--size: bytes"),
            "--runs" => a.runs = v.parse().expect("--runs: a count"),
            _ => panic!("unknown option {k} (--bin, --size, --runs)"),
        }
    }
    a
}

/// A tracker and a seed as processes, publishing `f.bin` from `dir/root`.
struct Origin {
    tracker: Child,
    seed: Child,
    addr: SocketAddr,
    stats: SocketAddr,
}

impl Origin {
    fn start(bin: &str, dir: &Path) -> Self {
        let port = free_port();
        let conf = dir.join("conf.yml");
        std::fs::write(
            &conf,
            format!(
                "host: 127.0.0.1\nport: {port}\nquiet: true\nfile_root: {}\nlisten_port: {}\nseed_key: {KEY}\ntracker_identity: {}\n",
                dir.join("root").display(),
                free_port(),
                dir.join("tracker-identity").display(),
            ),
        )
        .unwrap();
        let spawn = |role: &str, log: Option<std::ffi::OsString>| {
            let mut c = node_command(bin);
            c.args([role, "--conf"]).arg(&conf).stdout(Stdio::null()).stderr(Stdio::null());
            if let Some(log) = log {
                c.env("RUST_LOG", "pdtp_net_mio::driver::tracker=trace")
                    .stderr(std::fs::File::create(log).unwrap());
            }
            c.spawn().unwrap_or_else(|e| panic!("{bin} {role}: {e}"))
        };
        let tracker = spawn("tracker", std::env::var_os("HOSTILE_TRACKER_LOG"));
        let stats: SocketAddr = format!("127.0.0.1:{}", port + 1).parse().unwrap();
        wait_for(|| stats_json(stats).is_some(), "the tracker's stats page");
        let seed = spawn("seed", None);
        let me = Self { tracker, seed, addr: format!("127.0.0.1:{port}").parse().unwrap(), stats };
        wait_for(
            || stats_json(stats).is_some_and(|s| s["files"].as_array().is_some_and(|c| !c.is_empty())),
            "the seed's publish",
        );
        me
    }

    fn url(&self) -> String {
        format!("pdtp://{}/f.bin", self.addr)
    }

    /// The tracker's resident memory (VmRSS), in MiB.
    fn tracker_rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.tracker.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }

    /// Whether the tracker lists the seed as banned.
    fn seed_banned(&self) -> bool {
        stats_json(self.stats).is_some_and(|s| {
            s["peers"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n["role"] == "seed" && n["banned"] == true))
        })
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        for c in [&mut self.tracker, &mut self.seed] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(mut ok: impl FnMut() -> bool, what: &str) {
    let end = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stats_json(addr: SocketAddr) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /stats.json HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    serde_json::from_str(body.split_once("\r\n\r\n")?.1).ok()
}

/// One hostile client, pumped between the honest download's polls.
trait Attacker {
    fn pump(&mut self);
    /// What it got, for the table.
    fn tally(&self) -> usize;
}

/// A fake peer's tracker link, asking for `f.bin`.
fn join(origin: &Origin, id: u32, port: Option<u16>) -> TrackerLink {
    let mut link = TrackerLink::connect(origin.addr, None);
    let hello = Hello { version: PROTOCOL_VERSION, peer_id: PeerId(id), listen_port: port, role: Role::Peer };
    link.send(&Message::Hello(hello));
    link.send(&Message::AskInfo(AskInfo { path: "f.bin".into() }));
    link
}

impl Attacker for LyingTaker {
    fn pump(&mut self) {
        LyingTaker::pump(self);
    }
    fn tally(&self) -> usize {
        self.orders
    }
}

impl Attacker for MuteGiver {
    fn pump(&mut self) {
        MuteGiver::pump(self);
    }
    fn tally(&self) -> usize {
        self.gets.len()
    }
}

/// Says `Hello` and then sends the start of a control frame that announces 16 MiB and never
/// comes (a length prefix of 16 MiB and four bytes), or (`frame: false`) nothing at all.
struct Hanger {
    link: TrackerLink,
    sent: bool,
    frame: bool,
}

impl Attacker for Hanger {
    fn pump(&mut self) {
        self.link.pump();
        if self.frame && !self.sent && self.link.is_open() {
            // A varint length of 16 MiB - 1 (0xff 0xff 0xff 0x07), then four bytes of it.
            self.link.send_plain(&[0xff, 0xff, 0xff, 0x07, 1, 2, 3, 4]);
            self.sent = true;
        }
    }
    fn tally(&self) -> usize {
        usize::from(!self.link.is_closed())
    }
}

/// A real `get` of the file, stopped with SIGSTOP once it has started receiving: a frozen
/// honest peer holding whatever it was ordered.
struct Frozen {
    child: Child,
}

impl Attacker for Frozen {
    fn pump(&mut self) {}
    fn tally(&self) -> usize {
        0
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-CONT", &self.child.id().to_string()]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Probe {
    name: &'static str,
    what: &'static str,
    start: fn(&Origin, &Path, &str) -> Vec<Box<dyn Attacker>>,
}

/// `n` attackers made by `make` from their number.
fn each(n: u32, make: impl FnMut(u32) -> Box<dyn Attacker>) -> Vec<Box<dyn Attacker>> {
    (0..n).map(make).collect()
}

/// `n` takers (ids from 9000) that ask for the file and lie about every order.
fn lying(o: &Origin, lie: Lie, n: u32) -> Vec<Box<dyn Attacker>> {
    each(n, |i| Box::new(LyingTaker { link: join(o, 9000 + i, None), lie, orders: 0 }))
}

/// `n` links (ids from `first_id`) that say `Hello` and then hang (`frame`: halfway into a
/// 16 MiB control frame).
fn hanging(o: &Origin, n: u32, first_id: u32, frame: bool) -> Vec<Box<dyn Attacker>> {
    each(n, |i| Box::new(Hanger { link: join(o, first_id + i, None), sent: false, frame }))
}

/// A `get` of the origin's file to `out`, serving for `seed_for` after it completes.
fn get_command(bin: &str, origin: &Origin, out: &Path, seed_for: &str) -> std::process::Command {
    let mut c = node_command(bin);
    c.args(["get", &origin.url(), "--listen", "0", "--seed-for", seed_for, "--known-trackers", "none"])
        .args(["--known-seeds", "none", "-o"])
        .arg(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "clean", what: "nobody else", start: |_, _, _| Vec::new() },
        Probe {
            name: "silent takers",
            what: "5 takers that ask for everything and never fetch",
            start: |o, _, _| lying(o, Lie::Silent, 5),
        },
        Probe {
            name: "instant failures",
            what: "5 takers that report every order failed at once",
            start: |o, _, _| lying(o, Lie::Fails, 5),
        },
        Probe {
            name: "false bad-hash reports",
            what: "7 takers that report every order done with a wrong hash, never fetching",
            start: |o, _, _| lying(o, Lie::Slanders, 7),
        },
        Probe {
            name: "mute givers",
            what: "5 identities that claim every chunk and never send",
            start: |o, _, _| {
                each(5, |i| {
                    let (listener, port) = MuteGiver::listener();
                    Box::new(MuteGiver::new(join(o, 9100 + i, Some(port)), listener))
                })
            },
        },
        Probe {
            name: "frozen peer",
            what: "an honest get stopped (SIGSTOP) 0.3 s into its download",
            start: |o, d, bin| {
                let child = get_command(bin, o, &d.join("frozen.bin"), "10m").spawn().unwrap();
                std::thread::sleep(Duration::from_millis(300));
                let _ = std::process::Command::new("kill").args(["-STOP", &child.id().to_string()]).status();
                vec![Box::new(Frozen { child })]
            },
        },
        Probe {
            name: "hanging frames",
            what: "60 links that announce a 16 MiB frame and send 4 bytes of it",
            start: |o, _, _| hanging(o, 60, 9200, true),
        },
        Probe {
            name: "idle links",
            what: "60 links that say Hello and nothing more (one address's cap is 64)",
            start: |o, _, _| hanging(o, 60, 9300, false),
        },
    ]
}

/// Times one honest `get` while `attackers` are pumped; returns (wall, exact).
fn honest_get(
    bin: &str,
    origin: &Origin,
    dir: &Path,
    source: &[u8],
    attackers: &mut [Box<dyn Attacker>],
) -> (f64, bool) {
    let out = dir.join("honest.bin");
    let _ = std::fs::remove_file(&out);
    let t0 = Instant::now();
    // HOSTILE_ONLY=NAME runs that probe alone with the honest get's log on stderr.
    let log = std::env::var_os("HOSTILE_ONLY").is_some();
    let mut get = get_command(bin, origin, &out, "0s");
    if log {
        get.arg("-vv").stderr(Stdio::inherit());
    }
    let mut child = get.spawn().unwrap();
    let status = loop {
        for a in attackers.iter_mut() {
            a.pump();
        }
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > GET_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let wall = t0.elapsed().as_secs_f64();
    let exact = status.is_some_and(|s| s.success()) && std::fs::read(&out).is_ok_and(|b| b == source);
    (wall, exact)
}

fn main() {
    let args = args();
    let bin = std::fs::canonicalize(&args.bin)
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build --release --bin pdtp-node)", args.bin));
    let bin = bin.to_str().unwrap().to_owned();
    println!("honest `get` of {} bytes on loopback, median of {} runs per probe\n", args.size, args.runs);
    println!(
        "| probe | attackers | honest get: median (min–max) | ÷ clean | every copy exact | orders, Gets or open links the attackers got | tracker RSS | seed banned |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut clean = None;
    let only = std::env::var("HOSTILE_ONLY").ok();
    for p in probes().into_iter().filter(|p| only.as_deref().is_none_or(|o| o == p.name || p.name == "clean"))
    {
        let mut walls = Vec::new();
        let (mut exact, mut got, mut rss, mut banned) = (true, 0, 0.0f64, false);
        for run in 0..args.runs {
            let dir = tempfile::tempdir().unwrap();
            let source = write_random_file(&dir.path().join("root"), "f.bin", args.size, 17 + run as u64);
            let origin = Origin::start(&bin, dir.path());
            let mut attackers = (p.start)(&origin, dir.path(), &bin);
            // Let them settle in (orders given, frames announced) before the honest viewer comes.
            let settle = Instant::now();
            while settle.elapsed() < Duration::from_millis(500) {
                attackers.iter_mut().for_each(|a| a.pump());
                std::thread::sleep(Duration::from_millis(2));
            }
            let (wall, ok) = honest_get(&bin, &origin, dir.path(), &source, &mut attackers);
            walls.push(wall);
            exact &= ok;
            got += attackers.iter().map(|a| a.tally()).sum::<usize>();
            rss = rss.max(origin.tracker_rss_mib());
            banned |= origin.seed_banned();
        }
        walls.sort_by(f64::total_cmp);
        let median = walls[walls.len() / 2];
        let base = *clean.get_or_insert(median);
        println!(
            "| {} | {} | {:.2} s ({:.2}–{:.2}) | {:.2} | {} | {} | {:.1} MiB | {} |",
            p.name,
            p.what,
            median,
            walls[0],
            walls[walls.len() - 1],
            median / base,
            if exact { "yes" } else { "**no**" },
            got,
            rss,
            if banned { "**yes**" } else { "no" },
        );
    }
}

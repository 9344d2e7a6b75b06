//! Peers behind NAT, for real: network namespaces with two home routers that masquerade
//! (nft), a public tracker, seed and viewer, and two viewers behind each router. The
//! tracker's connect-back probe finds the viewers behind NAT unreachable; they take from the
//! public seed and viewer by dialling them, and give to the public viewer by dialling it
//! (connection reversal), so the swarm completes with no failed transfer. Needs root, `ip`
//! and `nft` (CI is root; `.ci/run` installs nftables).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_pdtp-node");
const TRACKER_IP: &str = "10.99.0.2";
const PUBLIC_VIEWER_IP: &str = "10.99.0.3";
const PORT: u16 = 16086;
const KEY: &str = "nat-test-seed-key-0123";
const FILE_BYTES: usize = 2_000_000;
/// The private network behind both routers (the same one, as homes have).
const LAN: &str = "192.168.1";

/// The test's namespaces and processes; dropping it kills the processes and deletes the
/// namespaces (with their links and rules).
struct Net {
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Net {
    fn new(tag: &str) -> Self {
        Self {
            prefix: format!("pdtpnat{}{tag}", std::process::id()),
            namespaces: Vec::new(),
            children: Vec::new(),
        }
    }

    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    fn add(&mut self, name: &str) {
        let ns = self.ns(name);
        run("ip", &["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
    }

    /// A namespace on the public network (the hub's bridge) at `ip`.
    fn public(&mut self, name: &str, ip: &str) {
        self.add(name);
        let (hub, ns) = (self.ns("hub"), self.ns(name));
        run("ip", &["-n", &hub, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        run("ip", &["-n", &hub, "link", "set", name, "master", "br0", "up"]);
        run("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
    }

    /// A home router: public address `wan_ip`, the private network behind it on bridge
    /// `lan`, and masquerade with a firewall that drops new connections from outside, to it
    /// and through it, without a word (no reset), as home routers do. A `symmetric` router
    /// gives each connection a random public port, whatever its local port (no two
    /// destinations see one mapping), which no hole punch gets through.
    fn router(&mut self, name: &str, wan_ip: &str, symmetric: bool) {
        self.public(name, wan_ip);
        let ns = self.ns(name);
        run("ip", &["netns", "exec", &ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        run("ip", &["-n", &ns, "link", "add", "lan", "type", "bridge"]);
        run("ip", &["-n", &ns, "addr", "add", &format!("{LAN}.1/24"), "dev", "lan"]);
        run("ip", &["-n", &ns, "link", "set", "lan", "up"]);
        let masquerade = if symmetric { "masquerade random" } else { "masquerade" };
        let rules = format!(
            "table ip nat {{\n chain post {{\n  type nat hook postrouting priority srcnat; policy accept;\n  \
                     oifname \"eth0\" {masquerade}\n }}\n}}\ntable ip filter {{\n chain inbound {{\n  \
                     type filter hook forward priority filter; policy accept;\n  iifname \"eth0\" ct state new drop\n }}\n \
                     chain to_router {{\n  type filter hook input priority filter; policy accept;\n  \
                     iifname \"eth0\" ct state new drop\n }}\n}}\n"
        );
        let mut nft = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        nft.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
        assert!(nft.wait().unwrap().success(), "nft rules in {ns}");
    }

    /// A host at `ip` on `router`'s private network.
    fn home(&mut self, name: &str, router: &str, ip: &str) {
        self.add(name);
        let (r, ns) = (self.ns(router), self.ns(name));
        run("ip", &["-n", &r, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", &ns]);
        run("ip", &["-n", &r, "link", "set", name, "master", "lan", "up"]);
        run("ip", &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
        run("ip", &["-n", &ns, "route", "add", "default", "via", &format!("{LAN}.1")]);
    }

    /// Runs `pdtp-node ARGS` in namespace `name`, its stderr to `log`.
    fn spawn(&mut self, name: &str, args: &[&str], log: &Path) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(name), BIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    /// GETs `path` from the tracker's stats page, from inside its namespace.
    fn stats(&self, path: &str) -> Option<String> {
        let ns_file = Path::new("/run/netns").join(self.ns("pub"));
        let addr: SocketAddr = format!("{TRACKER_IP}:{}", PORT + 1).parse().unwrap();
        let path = path.to_owned();
        let get = move || -> Option<String> {
            let ns = File::open(&ns_file).ok()?;
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .ok()?;
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
            write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
            let mut text = String::new();
            c.read_to_string(&mut text).ok()?;
            text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
        };
        std::thread::spawn(get).join().ok().flatten()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(tool: &str, args: &[&str]) {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(out.status.success(), "{tool} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn can_run(test: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    let tools =
        ["ip", "nft"].iter().all(|t| Command::new(t).arg("-V").output().is_ok_and(|o| o.status.success()));
    if !(root && tools) {
        assert!(
            std::env::var_os("PDTP_CI").is_none(),
            "{test}: needs root, ip and nft (.ci/run installs nftables)"
        );
        eprintln!("{test}: NOT RUN: needs root, ip and nft; root: {root}, tools: {tools}");
    }
    root && tools
}

fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// What the tracker's stats page said at the end of a swarm run by [`swarm`].
struct Ended {
    peers: Vec<serde_json::Value>,
    totals: serde_json::Value,
}

/// A slow public seed (300 kB/s) and a public tracker; four viewers behind two routers
/// (`a1`, `a2` behind one, `b1`, `b2` behind the other, on the same private /24) start
/// together, with `symmetric_viewer` a fifth (`c1`) behind a symmetric router, and with
/// `public_viewer` one more on the public network 1.5 s later. Every viewer must finish
/// with an identical copy; returns the tracker's view.
fn swarm(tag: &str, public_viewer: bool, symmetric_viewer: bool) -> Ended {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("root");
    std::fs::create_dir(&root).unwrap();
    let content: Vec<u8> = (0..FILE_BYTES).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(root.join("show.bin"), &content).unwrap();

    let mut net = Net::new(tag);
    net.add("hub");
    let hub = net.ns("hub");
    run("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"]);
    run("ip", &["-n", &hub, "link", "set", "br0", "up"]);
    net.public("pub", TRACKER_IP);
    net.public("pv", PUBLIC_VIEWER_IP);
    net.router("ra", "10.99.0.11", false);
    net.router("rb", "10.99.0.12", false);
    for (host, router, ip) in [("a1", "ra", 2), ("a2", "ra", 3), ("b1", "rb", 2), ("b2", "rb", 3)] {
        net.home(host, router, &format!("{LAN}.{ip}"));
    }
    if symmetric_viewer {
        net.router("rc", "10.99.0.13", true);
        net.home("c1", "rc", &format!("{LAN}.2"));
    }

    let identity = d.join("tracker-identity");
    let link_key = pdtp_net_mio::identity::load_or_create_tracker_key(&identity).unwrap().public();
    let common = format!("host: {TRACKER_IP}\nport: {PORT}\nseed_key: {KEY}\nchunk_size: 65536\n");
    let tracker_conf = d.join("tracker.yml");
    std::fs::write(&tracker_conf, format!("{common}tracker_identity: '{}'\n", identity.display())).unwrap();
    // The seed's uplink is slow, so viewers must share.
    let seed_conf = d.join("seed.yml");
    let seed_text = format!(
        "{common}file_root: '{}'\nseed_identity: '{}'\ntracker_key: {link_key}\nmax_upload_rate: 300kB/s\nquiet: true\n",
        root.display(),
        d.join("seed-identity").display()
    );
    std::fs::write(&seed_conf, seed_text).unwrap();
    let tracker_log = d.join("tracker.log");
    net.spawn("pub", &["tracker", "--conf", tracker_conf.to_str().unwrap()], &tracker_log);
    let up = until(Duration::from_secs(10), || net.stats("/stats.json").is_some());
    assert!(up, "tracker: {}", log_tail(&tracker_log));
    net.spawn("pub", &["seed", "--conf", seed_conf.to_str().unwrap()], &d.join("seed.log"));
    let published = || net.stats("/stats.json").is_some_and(|s| s.contains("\"show.bin\""));
    assert!(until(Duration::from_secs(10), published), "seed: {}", log_tail(&d.join("seed.log")));

    let url = format!("pdtp://{TRACKER_IP}:{PORT}/show.bin#key={link_key}");
    let get = |net: &mut Net, name: &str| {
        let (out, report) = (d.join(format!("{name}.bin")), d.join(format!("{name}.json")));
        let known = d.join(format!("{name}.known_seeds"));
        let args = [
            "get",
            &url,
            "-o",
            out.to_str().unwrap(),
            "--listen",
            "0",
            "--seed-for",
            "120s",
            "--report",
            report.to_str().unwrap(),
            "--known-seeds",
            known.to_str().unwrap(),
        ];
        net.spawn(name, &args, &d.join(format!("{name}.log")));
    };
    let mut viewers = vec!["a1", "a2", "b1", "b2"];
    if symmetric_viewer {
        viewers.push("c1");
    }
    for name in &viewers {
        get(&mut net, name);
    }
    if public_viewer {
        // It comes a moment later, when those behind NAT hold chunks it needs.
        std::thread::sleep(Duration::from_millis(1500));
        get(&mut net, "pv");
        viewers.push("pv");
    }
    let done = || viewers.iter().all(|n| d.join(format!("{n}.json")).exists());
    let logs = || {
        viewers.iter().map(|n| format!("{n}: {}", log_tail(&d.join(format!("{n}.log"))))).collect::<Vec<_>>()
    };
    assert!(until(Duration::from_secs(90), done), "not every viewer finished: {:#?}", logs());
    for n in &viewers {
        assert!(std::fs::read(d.join(format!("{n}.bin"))).unwrap() == content, "{n}'s copy differs");
    }
    std::thread::sleep(Duration::from_millis(1200)); // the stats snapshot is rebuilt each second
    let stats: serde_json::Value = serde_json::from_str(&net.stats("/stats.json").unwrap()).unwrap();
    if let Some(keep) = std::env::var_os("PDTP_NAT_KEEP") {
        // For counting pairs from the tracker's trace log (docs/results.md, "Peers behind NAT").
        let keep = Path::new(&keep).join(tag);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&tracker_log, keep.join("tracker.log")).unwrap();
        std::fs::write(keep.join("stats.json"), stats.to_string()).unwrap();
    }
    let totals = stats["totals"].clone();
    let verified = totals["origin_bytes"].as_u64().unwrap() + totals["peer_bytes"].as_u64().unwrap();
    assert_eq!(verified, viewers.len() as u64 * FILE_BYTES as u64, "{totals}");
    Ended { peers: stats["peers"].as_array().unwrap().clone(), totals }
}

fn reachable(peers: &[serde_json::Value], is: bool) -> Vec<&serde_json::Value> {
    peers.iter().filter(|p| p["reachable"] == serde_json::json!(is)).collect()
}

/// Viewers behind NAT give to the public viewer by dialling it (connection reversal).
#[test]
fn viewers_behind_nat_take_and_give_through_the_public_ones() {
    if !can_run("viewers_behind_nat_take_and_give_through_the_public_ones") {
        return;
    }
    let Ended { peers, totals } = swarm("r", true, false);
    let behind = reachable(&peers, false);
    assert_eq!(
        (behind.len(), reachable(&peers, true).len()),
        (4, 2),
        "four behind NAT, the seed and a viewer public: {peers:#?}"
    );
    let given: u64 = behind.iter().map(|p| p["bytes_up"].as_u64().unwrap()).sum();
    assert!(given > 0, "viewers behind NAT gave nothing: {peers:#?}");
    assert!(peers.iter().all(|p| p["banned"] == serde_json::json!(false)), "{peers:#?}");
    eprintln!("behind NAT gave {given} bytes; {totals}");
}

/// With nobody public but the seed, viewers behind two NATs give to each other only through
/// hole punches: both ends dial at once from their listening ports. Pairs no punch gets
/// through (two viewers behind one router, which does not hairpin; a viewer behind a
/// symmetric router with anyone) fail once, are remembered, and cost neither end.
#[test]
fn viewers_behind_two_nats_punch_through_to_each_other() {
    if !can_run("viewers_behind_two_nats_punch_through_to_each_other") {
        return;
    }
    let Ended { peers, totals } = swarm("p", false, true);
    assert_eq!(reachable(&peers, false).len(), 5, "{peers:#?}");
    assert!(totals["peer_bytes"].as_u64().unwrap() > 0, "no viewer gave to another: {totals}");
    assert!(peers.iter().all(|p| p["banned"] == serde_json::json!(false)), "{peers:#?}");
    // Each pair that cannot connect fails once: the two behind one router each, and the
    // symmetric one with each of the other four.
    assert!(totals["transfers_failed"].as_u64().unwrap() <= 6, "{totals}");
    eprintln!("{totals}");
}

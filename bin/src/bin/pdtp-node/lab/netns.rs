//! The lab's network and processes: one network namespace per node, each joined by a veth
//! pair to a bridge in a hub namespace, `tc tbf` caps on both ends of every veth, the
//! `pdtp-node` processes started inside, and the guard that removes all of it.
//!
//! ```text
//!   ns <id>-t        ns <id>-s0        ns <id>-v0   …        (one per node)
//!   eth0 10.77.0.1   eth0 10.77.0.2   eth0 10.77.0.3
//!    | tbf: upload     | tbf: upload     | tbf: upload
//!    t                 s0                v0                  (hub's veth ends)
//!    | tbf: download   | tbf: download   | tbf: download
//!   ------------------- br0, ns <id>-hub ---------------------
//! ```
//!
//! Nothing is created in the namespace the lab runs in: the veth pairs are made in the hub
//! with their other end placed straight into the node's namespace, so the host's own
//! interfaces and routes are never touched.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::plan::NodePlan;

/// Every lab namespace's name starts with this, then the lab's process id.
pub const PREFIX: &str = "pdtplab";

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The node side of every veth (each node has its own namespace, so the name repeats).
const NODE_DEV: &str = "eth0";

/// One jiffy of this kernel (CONFIG_HZ = 250): tc-tbf(8) asks for a burst of at least
/// rate / HZ so the shaper can reach its rate between timer ticks.
const TICK: f64 = 1.0 / 250.0;

/// Two full Ethernet frames: the smallest burst that passes a full-size packet with room.
const MIN_BURST: u64 = 2 * 1514;

/// The queue a shaper may hold, in seconds of its rate. The nodes' TCP (BBR here) keeps a
/// few packets per connection queued, and a node with several uploads keeps several
/// connections busy: at one second and 256 KiB, 2 Mbit/s uplinks with five uploads dropped
/// hundreds of packets a run; at two seconds and 1 MiB none did (docs/lab.md). Drops are
/// counted in the report.
const QUEUE_S: f64 = 2.0;

/// The smallest queue (on the slowest links two seconds is only a few chunks).
const MIN_QUEUE: u64 = 1024 * 1024;

/// The sysctls of TCP congestion control: a namespace's default, and the host's list of
/// those other namespaces may choose.
const DEFAULT_CC: &str = "net/ipv4/tcp_congestion_control";
const ALLOWED_CC: &str = "net/ipv4/tcp_allowed_congestion_control";
const AVAILABLE_CC: &str = "net/ipv4/tcp_available_congestion_control";

/// Checks that this kernel has the congestion control `tcp` (`--tcp`).
pub fn check_congestion_control(tcp: &str) -> Result<(), String> {
    let available = read_sysctl(AVAILABLE_CC)?;
    if !available.split_whitespace().any(|a| a == tcp) {
        return Err(format!(
            "lab: --tcp {tcp}: this kernel's TCP has no such congestion control (it has: {available})"
        ));
    }
    Ok(())
}

/// A sysctl of the calling thread's network namespace (`net/...`, under /proc/sys).
fn read_sysctl(key: &str) -> Result<String, String> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn write_sysctl(key: &str, value: &str) -> Result<(), String> {
    let path = Path::new("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|e| format!("writing `{value}` to {}: {e}", path.display()))
}

/// Checks what the lab needs before it changes anything: root, `ip` and `tc`.
pub fn check_environment() -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("the lab needs root (network namespaces, tc); run it with sudo".into());
    }
    for tool in ["ip", "tc"] {
        match Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("the lab needs the '{tool}' command (apt-get install iproute2)"));
            }
            Err(e) => return Err(format!("cannot run '{tool}': {e}")),
        }
    }
    Ok(())
}

/// Removes namespaces (and kills the processes in them) that an earlier lab left behind
/// when it was killed outright (SIGKILL, power loss): those whose lab process is gone. A
/// namespace whose lab is still running (another `pdtp-node lab` at the same time) is left
/// alone. Returns the namespaces removed.
pub fn sweep_stale() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else { return Vec::new() };
    let mut removed = Vec::new();
    let mut names: Vec<String> = dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
    names.sort();
    for name in names {
        let Some(pid) = lab_pid(&name) else { continue };
        if pid == std::process::id() || is_lab_process(pid) {
            continue;
        }
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &name]).output() {
            for p in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Some(p) = p.parse().ok().and_then(rustix::process::Pid::from_raw) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
        }
        if ip(&["netns", "del", &name]).is_ok() {
            removed.push(name);
        }
    }
    removed
}

/// The lab process id in a namespace name `pdtplab<pid>-<node>`, if it is one.
fn lab_pid(name: &str) -> Option<u32> {
    let (pid, node) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if node.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether `pid` is a running `pdtp-node` (a lab); a reused pid of another program is not,
/// nor a killed lab that its parent has not reaped yet (a zombie).
fn is_lab_process(pid: u32) -> bool {
    let named = std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "pdtp-node");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    named && !zombie
}

/// One process the lab started.
struct Proc {
    node: String,
    child: Child,
    exited: Option<ExitStatus>,
}

/// The lab's namespaces and processes; dropping it kills and reaps every process, then
/// deletes every namespace (which takes the veths, the bridge and the qdiscs with it).
pub struct Lab {
    id: String,
    namespaces: Vec<String>,
    procs: Vec<Proc>,
}

impl Lab {
    /// A lab named after this process, with nothing made yet.
    pub fn new() -> Self {
        Self { id: format!("{PREFIX}{}", std::process::id()), namespaces: Vec::new(), procs: Vec::new() }
    }

    /// The namespace of node `name` (`t`, `s0`, `v12`, or `hub`).
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.id)
    }

    /// Makes the hub with its bridge, then each node's namespace, veth, address and caps,
    /// with `tcp` as its TCP congestion control.
    pub fn build(&mut self, nodes: &[NodePlan], tcp: &str) -> Result<(), String> {
        self.allow_congestion_control(tcp)?;
        let hub = self.ns("hub");
        self.add_namespace(&hub).map_err(|e| {
            format!("cannot make network namespaces ({e}); the lab needs root and a kernel with network namespaces")
        })?;
        ip(&["-n", &hub, "link", "add", "name", "br0", "type", "bridge"])?;
        ip(&["-n", &hub, "link", "set", "dev", "br0", "up"])?;
        for n in nodes {
            let ns = self.ns(&n.name);
            self.add_namespace(&ns)?;
            ip(&[
                "-n", &hub, "link", "add", "name", &n.name, "type", "veth", "peer", "name", NODE_DEV,
                "netns", &ns,
            ])?;
            ip(&["-n", &hub, "link", "set", "dev", &n.name, "master", "br0", "up"])?;
            ip(&["-n", &ns, "link", "set", "dev", NODE_DEV, "address", &mac(n.ip)])?;
            ip(&["-n", &ns, "addr", "add", &format!("{}/16", n.ip), "dev", NODE_DEV])?;
            ip(&["-n", &ns, "link", "set", "dev", NODE_DEV, "up"])?;
            // The tracker's stats page is read from inside its namespace, over lo.
            ip(&["-n", &ns, "link", "set", "dev", "lo", "up"])?;
            shape(&ns, NODE_DEV, n.up_bps)?;
            shape(&hub, &n.name, n.down_bps)?;
            self.set_congestion_control(&n.name, tcp)?;
        }
        self.fix_neighbours(nodes)
    }

    /// Gives every namespace a permanent neighbour entry (IP → MAC) for every other node,
    /// so no ARP crosses the shaped links. An ARP request and its reply would wait in the
    /// same queues as the chunks, and a reply later than the kernel's patience (three
    /// tries a second apart) drops the connection's SYN: measured, a tenth of the peer
    /// connections took 3–37 s to open (TCP's SYN backoff) and some failed with "No route
    /// to host". On the internet the neighbours a host resolves sit on its own LAN, not
    /// behind its access link.
    fn fix_neighbours(&self, nodes: &[NodePlan]) -> Result<(), String> {
        for n in nodes {
            let batch: String = nodes
                .iter()
                .filter(|o| o.ip != n.ip)
                .map(|o| {
                    format!("neigh replace {} lladdr {} dev {NODE_DEV} nud permanent\n", o.ip, mac(o.ip))
                })
                .collect();
            ip_batch(&self.ns(&n.name), &batch)?;
        }
        Ok(())
    }

    /// A namespace other than the host's may only pick a congestion control the host lists
    /// as allowed (`tcp_allowed_congestion_control`; the host's own default always is). If
    /// `tcp` is not, the lab adds it and leaves it there: putting the list back at the end
    /// would pull it from under another lab building its namespaces at that moment, and
    /// the change only lets unprivileged sockets choose `tcp` too.
    fn allow_congestion_control(&self, tcp: &str) -> Result<(), String> {
        let allowed = read_sysctl(ALLOWED_CC)?;
        if allowed.split_whitespace().any(|a| a == tcp) {
            return Ok(());
        }
        write_sysctl(ALLOWED_CC, &format!("{allowed} {tcp}"))?;
        eprintln!(
            "pdtp-node: lab: added {tcp} to the host's {ALLOWED_CC} (it was `{allowed}`), so namespaces may use it"
        );
        Ok(())
    }

    /// Sets node `name`'s namespace's default congestion control (its sysctls are its own:
    /// a thread that enters it reads and writes them) and reads it back.
    fn set_congestion_control(&self, name: &str, tcp: &str) -> Result<(), String> {
        let set = || -> Result<String, String> {
            self.enter(name)?;
            write_sysctl(DEFAULT_CC, tcp)?;
            read_sysctl(DEFAULT_CC)
        };
        let now = std::thread::scope(|s| s.spawn(set).join()).map_err(|_| "the sysctl writer panicked")??;
        if now != tcp {
            return Err(format!("{name}: {DEFAULT_CC} is `{now}` after setting `{tcp}`"));
        }
        Ok(())
    }

    /// Moves the calling thread into node `name`'s network namespace.
    fn enter(&self, name: &str) -> Result<(), String> {
        let ns_path = Path::new(NETNS_DIR).join(self.ns(name));
        let ns = File::open(&ns_path).map_err(|e| format!("{}: {e}", ns_path.display()))?;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| format!("entering {}: {e}", ns_path.display()))
    }

    fn add_namespace(&mut self, ns: &str) -> Result<(), String> {
        ip(&["netns", "add", ns])?;
        self.namespaces.push(ns.to_owned());
        Ok(())
    }

    /// Starts `exe args…` in node `name`'s namespace, its stderr to `log`, in a process group
    /// of its own (a Ctrl-C at the terminal reaches the lab, which then stops everything in
    /// order). Returns its index for [`Lab::exited`] and [`Lab::cpu_s`].
    pub fn spawn(&mut self, name: &str, exe: &Path, args: &[OsString], log: &Path) -> Result<usize, String> {
        self.spawn_with(name, exe, args, log, Stdio::null())
    }

    /// Like [`Lab::spawn`], with a pipe to the process's stdin (a live seed's stream).
    pub fn spawn_fed(
        &mut self,
        name: &str,
        exe: &Path,
        args: &[OsString],
        log: &Path,
    ) -> Result<(usize, ChildStdin), String> {
        let i = self.spawn_with(name, exe, args, log, Stdio::piped())?;
        let stdin = self.procs[i].child.stdin.take().ok_or("no pipe to the live seed's stdin")?;
        Ok((i, stdin))
    }

    fn spawn_with(
        &mut self,
        name: &str,
        exe: &Path,
        args: &[OsString],
        log: &Path,
        stdin: Stdio,
    ) -> Result<usize, String> {
        let err = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(name)])
            .arg(exe)
            .args(args)
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {} in its namespace: {e}", exe.display()))?;
        self.procs.push(Proc { node: name.to_owned(), child, exited: None });
        Ok(self.procs.len() - 1)
    }

    /// A process that has exited since the last call: its node and status.
    pub fn exited(&mut self) -> Option<(String, ExitStatus)> {
        for p in &mut self.procs {
            if p.exited.is_none() {
                if let Ok(Some(status)) = p.child.try_wait() {
                    p.exited = Some(status);
                    return Some((p.node.clone(), status));
                }
            }
        }
        None
    }

    /// CPU seconds (user + system) process `i` has used so far; `None` once it is gone.
    pub fn cpu_s(&self, i: usize) -> Option<f64> {
        let p = self.procs.get(i)?;
        if p.exited.is_some() {
            return None;
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", p.child.id())).ok()?;
        // Fields after the command name (which may hold spaces, hence the last ')'):
        // state is field 3, utime 14 and stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / rustix::param::clock_ticks_per_second() as f64)
    }

    /// GETs `path` from `addr` inside node `name`'s namespace (the lab itself runs outside
    /// every lab network): a thread enters the namespace, connects, and ends with the answer.
    pub fn fetch(&self, name: &str, addr: SocketAddr, path: &str) -> Result<String, String> {
        let get = || -> std::io::Result<String> {
            let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
            c.set_read_timeout(Some(Duration::from_secs(3)))?;
            write!(c, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
            let mut text = String::new();
            c.read_to_string(&mut text)?;
            Ok(text)
        };
        let inside =
            || self.enter(name).and_then(|()| get().map_err(|e| format!("http://{addr}{path}: {e}")));
        let text = std::thread::scope(|s| s.spawn(inside).join())
            .map_err(|_| "the stats reader panicked".to_owned())??;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            let status = head.lines().next().unwrap_or("no answer");
            return Err(format!("http://{addr}{path}: {status}"));
        }
        Ok(body.to_owned())
    }

    /// What every shaper did, over all the lab's links.
    pub fn qdisc_totals(&self, nodes: &[NodePlan]) -> QdiscTotals {
        let mut t = QdiscTotals::default();
        let hub = self.ns("hub");
        for n in nodes {
            for (ns, dev, up) in [(self.ns(&n.name), NODE_DEV, true), (hub.clone(), n.name.as_str(), false)] {
                if let Some(c) = qdisc_counters(&ns, dev) {
                    t.dropped += c.dropped;
                    t.overlimits += c.overlimits;
                    if up {
                        t.uplink_bytes += c.uplink_bytes;
                    }
                }
            }
        }
        t
    }

    /// Kills and reaps every process, then deletes every namespace; returns what failed.
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        for p in &mut self.procs {
            if p.exited.is_none() {
                // Already gone is fine; anything else is reported.
                let _ = p.child.kill();
                if let Err(e) = p.child.wait() {
                    failed.push(format!("waiting for {}: {e}", p.node));
                }
            }
        }
        self.procs.clear();
        // Nodes first, the hub (and its bridge) last.
        while let Some(ns) = self.namespaces.pop() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                failed.push(e);
            }
        }
        failed
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for e in self.cleanup() {
            eprintln!("pdtp-node: lab cleanup: {e}");
        }
    }
}

/// What the shapers did over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QdiscTotals {
    /// Packets dropped because a shaper's queue was full.
    pub dropped: u64,
    /// Times a shaper held a packet back for lack of tokens.
    pub overlimits: u64,
    /// Bytes the nodes' upload shapers passed: every frame on the wire (Ethernet, IP and
    /// TCP headers, acknowledgements, control messages, the stats page's answers), which
    /// the caps are charged for; the simulator charges chunk frames and control messages.
    pub uplink_bytes: u64,
}

/// `tc qdisc add … tbf` on `dev` in `ns`: `rate_bps` with a burst of one tick's worth of
/// traffic (at least two frames) and a queue of [`QUEUE_S`] of it.
fn shape(ns: &str, dev: &str, rate_bps: u64) -> Result<(), String> {
    let (burst, limit) = tbf_sizes(rate_bps);
    let args = ["-n", ns, "qdisc", "add", "dev", dev, "root", "tbf"];
    let (rate, burst, limit) = (format!("{rate_bps}bit"), burst.to_string(), limit.to_string());
    run(
        "tc",
        &args.iter().copied().chain(["rate", &rate, "burst", &burst, "limit", &limit]).collect::<Vec<_>>(),
    )
}

/// A tbf's burst and queue limit in bytes for `rate_bps`.
pub fn tbf_sizes(rate_bps: u64) -> (u64, u64) {
    let bytes_per_s = rate_bps as f64 / 8.0;
    let burst = ((bytes_per_s * TICK) as u64).max(MIN_BURST);
    let limit = ((bytes_per_s * QUEUE_S) as u64).max(MIN_QUEUE);
    (burst, limit)
}

/// The counters of the tbf on `dev` in `ns`, from `tc -s -j` (`uplink_bytes`: all it sent).
fn qdisc_counters(ns: &str, dev: &str) -> Option<QdiscTotals> {
    let out = Command::new("tc").args(["-n", ns, "-s", "-j", "qdisc", "show", "dev", dev]).output().ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let q = v.as_array()?.iter().find(|q| q["kind"] == "tbf")?;
    Some(QdiscTotals {
        dropped: q["drops"].as_u64()?,
        overlimits: q["overlimits"].as_u64()?,
        uplink_bytes: q["bytes"].as_u64()?,
    })
}

/// Runs `ip args…`; an error carries the command and what it printed.
fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

/// `ip -n ns -batch -` with `commands` (one per line) on its stdin.
fn ip_batch(ns: &str, commands: &str) -> Result<(), String> {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip: {e}"))?;
    let written = child.stdin.take().map(|mut i| i.write_all(commands.as_bytes()));
    let out = child.wait_with_output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() && matches!(written, Some(Ok(()))) {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ");
    Err(format!("'ip -n {ns} -batch -' failed: {why}"))
}

/// A node's MAC address, made from its IPv4 address (locally administered, unicast).
fn mac(ip: std::net::Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("02:00:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

fn run(tool: &str, args: &[&str]) -> Result<(), String> {
    let out =
        Command::new(tool).args(args).stdin(Stdio::null()).output().map_err(|e| format!("{tool}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let why = String::from_utf8_lossy(&out.stderr).trim().replace('\n', "; ");
    Err(format!("'{tool} {}' failed: {why}", args.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_namespace_names_give_a_pid() {
        assert_eq!(lab_pid("pdtplab1234-v12"), Some(1234));
        assert_eq!(lab_pid("pdtplab1234-hub"), Some(1234));
        assert_eq!(lab_pid("pdtplab1234"), None);
        assert_eq!(lab_pid("pdtplab12x4-v1"), None);
        assert_eq!(lab_pid("pdtplab1234-"), None);
        assert_eq!(lab_pid("other1234-v1"), None);
    }

    #[test]
    fn a_shaper_bursts_one_tick_and_queues_two_seconds() {
        // 1 Gbit/s: 125 MB/s → a 4 ms tick is 500 kB; the queue 250 MB.
        assert_eq!(tbf_sizes(1_000_000_000), (500_000, 250_000_000));
        // 2 Mbit/s: a tick is 1 kB, below two frames; two seconds 500 kB, below the floor.
        assert_eq!(tbf_sizes(2_000_000), (MIN_BURST, MIN_QUEUE));
    }
}

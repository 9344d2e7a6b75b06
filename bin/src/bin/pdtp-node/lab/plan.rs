//! What the lab runs, from the scenario: which scenarios it takes, the scenario both sides
//! run (latencies fixed, bandwidths scaled), and the nodes with their addresses, caps and
//! arrival times.

use std::net::Ipv4Addr;

use pdtp_core::Span;
use pdtp_sim::metrics::PeerRecord;
use pdtp_sim::scenario::{Scenario, SeedFor};
use pdtp_sim::units::{BitRate, Duration};

/// The most viewers the lab starts on this machine (2 cores, ~one process per viewer).
pub const MAX_VIEWERS: u64 = 50;

/// The one-way access latency the simulator gives every node in a lab run (a path is two
/// of them: 40 µs one way, 80 µs a round trip), what a TCP round trip between two lab
/// namespaces measured with idle links, applications included (0.08 ms median; 0.06 ms on
/// loopback), so both sides model the same links. The scenario's own latencies are dropped:
/// the kernel has no netem to add them (docs/lab.md).
pub const LAB_LATENCY: Span = Span::from_micros(20);

/// The tracker's port inside its namespace (its stats page is on the next one).
pub const TRACKER_PORT: u16 = 6086;

/// The port every seed and viewer listens on for peers (each has an address of its own).
pub const PEER_PORT: u16 = 8000;

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Tracker,
    Seed,
    Viewer,
}

/// One node: its namespace suffix, address and link caps (bit/s; the download cap is what
/// the hub side of its veth sends it).
#[derive(Clone, Debug, PartialEq)]
pub struct NodePlan {
    /// `t`, `s0`, `v12`: the namespace is `<lab id>-<name>`, the hub's end of its veth is
    /// called the same.
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub up_bps: u64,
    pub down_bps: u64,
}

/// One viewer: its node, class label and arrival (seconds after the seeds published).
#[derive(Clone, Debug, PartialEq)]
pub struct ViewerPlan {
    /// Index into [`Plan::nodes`].
    pub node: usize,
    pub class: String,
    pub arrival_s: f64,
}

/// Everything the lab starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Tracker first, then the seeds, then the viewers in the simulator's viewer order.
    pub nodes: Vec<NodePlan>,
    /// In viewer order (viewer `k` is the simulator's `peer<k>`).
    pub viewers: Vec<ViewerPlan>,
    /// How long a complete viewer keeps serving (`None`: until the lab ends the run).
    pub seed_for: Option<std::time::Duration>,
}

/// Refuses what the lab cannot run faithfully yet, each with one line saying what.
pub fn refuse(s: &Scenario) -> Result<(), String> {
    let name = s.label();
    if s.content.live.is_some() && s.seeds.count > 1 {
        return Err(format!("{name}: the lab runs a live stream from one seed (seeds.count: 1)"));
    }
    let n = s.peer_count();
    if n > MAX_VIEWERS {
        return Err(format!(
            "{name}: the lab runs at most {MAX_VIEWERS} viewers on this machine (scenario has {n})"
        ));
    }
    if s.churn.is_some() {
        return Err(format!("{name}: the lab does not run churn yet (remove churn:)"));
    }
    if s.faults.failure > 0.0 || s.faults.corruption > 0.0 {
        return Err(format!("{name}: the lab cannot inject faults (set faults: to 0)"));
    }
    if let Some(SeedFor::Exponential(_)) = s.seed_for {
        return Err(format!("{name}: the lab takes seed_for as a fixed time only, not exponential"));
    }
    Ok(())
}

/// The scenario both sides run: every latency [`LAB_LATENCY`], every bandwidth divided by
/// `scale` (rounded to the bit/s), links that carry TCP's headers and acknowledgements as
/// the lab's veths do (`wire: tcp`), and no sweep. Fails if a bandwidth would reach zero.
pub fn lab_scenario(s: &Scenario, scale: f64) -> Result<Scenario, String> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(format!("--scale {scale}: must be a number > 0 (bandwidths are divided by it)"));
    }
    let div = |what: &str, r: BitRate| -> Result<BitRate, String> {
        let v = (r.0 as f64 / scale).round();
        if v < 1.0 {
            return Err(format!("--scale {scale}: {what} ({r}) would be below 1 bit/s"));
        }
        Ok(BitRate(v as u64))
    };
    let mut l = s.clone();
    l.sweep = None;
    l.wire = pdtp_sim::network::Wire::Tcp;
    let latency = Duration(LAB_LATENCY);
    l.seeds.upload = div("seeds.upload", s.seeds.upload)?;
    l.seeds.download = div("seeds.download", s.seeds.download)?;
    l.seeds.latency = latency;
    for (i, c) in l.peers.iter_mut().enumerate() {
        c.upload = div(&format!("peers[{i}].upload"), c.upload)?;
        c.download = div(&format!("peers[{i}].download"), c.download)?;
        c.latency = latency;
    }
    l.tracker.bandwidth = div("tracker.bandwidth", s.tracker.bandwidth)?;
    l.tracker.latency = latency;
    l.validate().map_err(|e| format!("{} at --scale {scale}: {e}", s.label()))?;
    Ok(l)
}

/// The nodes and arrivals of `lab` (the scenario [`lab_scenario`] made), with each viewer's
/// arrival taken from the simulator's own run of it (`sim_peers`, one record per viewer), so
/// both sides see the same arrival times.
pub fn plan(lab: &Scenario, sim_peers: &[PeerRecord]) -> Result<Plan, String> {
    let mut nodes = Vec::new();
    let mut add = |name: String, role, up: BitRate, down: BitRate| {
        let k = nodes.len();
        nodes.push(NodePlan { name, role, ip: address(k), up_bps: up.0, down_bps: down.0 });
        k
    };
    add("t".into(), Role::Tracker, lab.tracker.bandwidth, lab.tracker.bandwidth);
    for i in 0..lab.seeds.count {
        add(format!("s{i}"), Role::Seed, lab.seeds.upload, lab.seeds.download);
    }
    let classes: Vec<_> = lab.viewer_classes().collect();
    if classes.len() != sim_peers.len() {
        return Err(format!(
            "the simulator reported {} viewers for a scenario of {}",
            sim_peers.len(),
            classes.len()
        ));
    }
    let mut viewers = Vec::new();
    for (k, ((i, class), rec)) in classes.into_iter().zip(sim_peers).enumerate() {
        let node = add(format!("v{k}"), Role::Viewer, class.upload, class.download);
        // Without churn every viewer arrives once; the record has its time.
        let arrival_s = rec.arrival_s.ok_or_else(|| format!("the simulator never started viewer {k}"))?;
        let class = class.name.clone().unwrap_or_else(|| format!("class{i}"));
        viewers.push(ViewerPlan { node, class, arrival_s });
    }
    let seed_for = lab.seed_for.map(|f| std::time::Duration::from_nanos(f.time().0.as_nanos()));
    Ok(Plan { nodes, viewers, seed_for })
}

/// Node `k`'s address on the lab's /16: 10.77.0.1, 10.77.0.2, … (k < 65 000).
fn address(k: usize) -> Ipv4Addr {
    let k = k + 1;
    Ipv4Addr::new(10, 77, (k / 256) as u8, (k % 256) as u8)
}

impl Plan {
    /// The tracker's node.
    pub fn tracker(&self) -> &NodePlan {
        &self.nodes[0]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BASE: &str = "
content: { size: 2MB, chunk_size: 100kB }
seeds: { upload: 20Mbit/s }
peers:
  - { name: slow, count: 2, download: 10Mbit/s, upload: 2Mbit/s, latency: 25ms }
  - { count: 1, download: 50Mbit/s, upload: 8Mbit/s }
arrivals: { uniform: { window: 1s } }
";

    #[test]
    fn the_lab_scenario_scales_every_bandwidth_and_fixes_every_latency() {
        let s = Scenario::from_yaml(BASE, "t").unwrap();
        let l = lab_scenario(&s, 4.0).unwrap();
        assert_eq!(l.seeds.upload, BitRate(5_000_000));
        assert_eq!(l.seeds.download, BitRate(250_000_000));
        assert_eq!(l.peers[0].upload, BitRate(500_000));
        assert_eq!(l.peers[1].download, BitRate(12_500_000));
        assert_eq!(l.tracker.bandwidth, BitRate(250_000_000));
        assert!(l.peers.iter().all(|c| c.latency.0 == LAB_LATENCY));
        assert_eq!((l.seeds.latency.0, l.tracker.latency.0), (LAB_LATENCY, LAB_LATENCY));
        assert_eq!(l.wire, pdtp_sim::network::Wire::Tcp);
        assert!(lab_scenario(&s, 0.0).is_err());
        assert!(lab_scenario(&s, 1e12).is_err());
        assert!(lab_scenario(&s, f64::NAN).is_err());
    }

    #[test]
    fn the_plan_numbers_nodes_and_takes_the_simulators_arrivals() {
        let s = Scenario::from_yaml(BASE, "t").unwrap();
        let recs: Vec<PeerRecord> = (0..3)
            .map(|k| PeerRecord { arrival_s: Some(0.25 * f64::from(k)), ..Default::default() })
            .collect();
        let p = plan(&s, &recs).unwrap();
        let names: Vec<&str> = p.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["t", "s0", "v0", "v1", "v2"]);
        assert_eq!(p.tracker().ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(p.nodes[4].ip, Ipv4Addr::new(10, 77, 0, 5));
        assert_eq!((p.nodes[2].up_bps, p.nodes[2].down_bps), (2_000_000, 10_000_000));
        let classes: Vec<&str> = p.viewers.iter().map(|v| v.class.as_str()).collect();
        assert_eq!(classes, ["slow", "slow", "class1"]);
        assert_eq!(p.viewers[2].arrival_s, 0.5);
        assert!(plan(&s, &recs[..2]).is_err());
        assert_eq!(address(300), Ipv4Addr::new(10, 77, 1, 45));
    }

    #[test]
    fn live_from_two_seeds_churn_faults_and_crowds_are_refused_with_one_line() {
        let live = "content: { chunk_size: 100kB, live: { bitrate: 1Mbit/s, buffer: 4s, duration: 1min } }
seeds: { count: 2, upload: 20Mbit/s }
peers: [ { count: 2, download: 10Mbit/s, upload: 2Mbit/s } ]";
        let e = refuse(&Scenario::from_yaml(live, "t").unwrap()).unwrap_err();
        assert!(e.contains("the lab runs a live stream from one seed"), "{e}");
        // From one seed it runs.
        let one = live.replace("count: 2, upload: 20", "count: 1, upload: 20");
        assert!(refuse(&Scenario::from_yaml(&one, "t").unwrap()).is_ok());
        let crowd = BASE.replace("count: 1,", "count: 60,");
        let e = refuse(&Scenario::from_yaml(&crowd, "t").unwrap()).unwrap_err();
        assert!(e.contains("at most 50 viewers") && e.contains("(scenario has 62)"), "{e}");
        let churn = format!("{BASE}churn: {{ leave: 0.1, stay: 10s }}\n");
        assert!(refuse(&Scenario::from_yaml(&churn, "t").unwrap()).unwrap_err().contains("churn"));
        let faults = format!("{BASE}faults: {{ corruption: 0.1 }}\n");
        assert!(refuse(&Scenario::from_yaml(&faults, "t").unwrap()).unwrap_err().contains("faults"));
        assert!(refuse(&Scenario::from_yaml(BASE, "t").unwrap()).is_ok());
    }
}

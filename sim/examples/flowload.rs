//! Load for the network model alone, at flash-crowd scale: `nodes` viewers each keep
//! `per_node` chunk downloads going from random other viewers, replacing each as it ends,
//! until `total` chunks have moved. Prints completions per wall second.
//!
//! `cargo run --release -p pdtp-sim --example flowload -- [nodes] [per_node] [total]`

// An example measures wall time; the simulator itself never does.
#![allow(clippy::disallowed_methods)]

use pdtp_core::{Span, Time};
use pdtp_sim::network::{Faults, Network, NodeIx};

fn main() {
    let arg = |i: usize, d: u64| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (nodes, per_node, total) = (arg(1, 1000), arg(2, 5), arg(3, 400_000));
    let mut net = Network::new(Faults::default(), 1);
    let caps = [(5_000_000, 20_000_000), (10_000_000, 50_000_000), (40_000_000, 100_000_000)];
    let ix: Vec<NodeIx> = (0..nodes)
        .map(|i| net.add_node(caps[i as usize % 3].0, caps[i as usize % 3].1, Span::from_millis(20)))
        .collect();
    let mut x: u64 = 42;
    let mut pick = |not: u64| loop {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let p = (x >> 33) % nodes;
        if p != not {
            return p;
        }
    };
    for d in 0..nodes {
        for _ in 0..per_node {
            net.start_flow(Time::ZERO, ix[pick(d) as usize], ix[d as usize], 250_000, d);
        }
    }
    let started = std::time::Instant::now();
    let mut done = 0u64;
    let mut now = Time::ZERO;
    while done < total {
        let Some(t) = net.poll_timeout() else { break };
        now = t;
        net.handle_timeout(now);
        while let Some(c) = net.poll_completion() {
            done += 1;
            let d = c.tag;
            net.start_flow(now, ix[pick(d) as usize], ix[d as usize], 250_000, d);
        }
    }
    let wall = started.elapsed().as_secs_f64();
    println!(
        "{nodes} nodes × {per_node} flows: {done} completions in {wall:.2} s wall ({:.0}/s), {} recomputations ({} full), sim time {:.1} s",
        done as f64 / wall,
        net.recomputations(),
        net.full_recomputations(),
        now.as_secs_f64()
    );
}

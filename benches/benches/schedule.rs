//! Tracker scheduling throughput: decisions per second at steady state.
//!
//! A seed publishes 1 000 chunks; N peers each provide a random contiguous half and request
//! the whole file. The measured loop completes outstanding transfers (a `Completed` with the
//! right hash; until protocol version 2 a `Started` came first), each of which frees slots and makes the tracker schedule again; the figure
//! is scheduling decisions (orders made) per second of tracker time, including encoding-free
//! message handling and draining its outputs.

// A benchmark measures wall time by definition.
#![allow(clippy::disallowed_methods, clippy::expect_used)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pdtp_core::tracker::{Tracker, TrackerConfig};
use pdtp_core::wire::{Completed, Hello, Interest, Message, PROTOCOL_VERSION, Publish, Role, Side};
use pdtp_core::{ByteRange, ConnId, Digest, Geometry, Manifest, PeerId, Time, Transmit, auth};
use rand_core::{Rng as _, SeedableRng};

const CHUNKS: u32 = 1000;
const CHUNK: u32 = 1000;
const KEY: &[u8] = b"bench";

struct Swarm {
    tracker: Tracker,
    /// (taker connection, token, chunk) of orders not yet completed.
    outstanding: VecDeque<(ConnId, pdtp_core::Token, u32)>,
    hashes: Vec<Digest>,
}

fn hello(tr: &mut Tracker, id: u32, role: Role) -> (ConnId, [u8; 16]) {
    let conn = tr.accept(Time::ZERO, format!("h{id}")).expect("under the connection limit");
    let h = Hello { version: PROTOCOL_VERSION, peer_id: PeerId(id), listen_port: Some(1), role };
    tr.handle_message(Time::ZERO, conn, Message::Hello(h));
    let mut nonce = [0; 16];
    while let Some(t) = tr.poll_transmit() {
        if let Transmit::Send { msg: Message::Welcome(w), .. } = t {
            nonce = w.nonce;
        }
    }
    (conn, nonce)
}

fn build(peers: u32) -> Swarm {
    let mut cfg = TrackerConfig::with_key(KEY);
    cfg.max_connections = peers + 10;
    let mut tracker = Tracker::new(cfg, pdtp_core::Rng::seed_from_u64(1));
    let hashes: Vec<Digest> = (0..CHUNKS).map(|i| Digest::of(&i.to_be_bytes())).collect();
    let manifest = Manifest {
        path: "bench.bin".into(),
        geometry: Geometry::new(u64::from(CHUNKS) * u64::from(CHUNK), CHUNK),
        hashes: hashes.clone(),
        live: None,
    };
    let (seed, nonce) = hello(&mut tracker, 0, Role::Seed);
    let proof = auth::publish_proof(KEY, &nonce, &manifest, None);
    tracker.handle_message(
        Time::ZERO,
        seed,
        Message::Publish(Box::new(Publish { manifest, proof, signature: None, uplink_bps: None })),
    );
    // Ids are hashes of the path (docs/protocol.md §1): ask the tracker, do not assume 0.
    let content = tracker.content_id("bench.bin").expect("the bench file is published");
    let mut rng = pdtp_core::Rng::seed_from_u64(2);
    let mut swarm = Swarm { tracker, outstanding: VecDeque::new(), hashes };
    for id in 1..=peers {
        let (conn, _) = hello(&mut swarm.tracker, id, Role::Peer);
        let start = u64::from(rng.next_u32() % (CHUNKS / 2)) * u64::from(CHUNK);
        let half = ByteRange::new(start, start + u64::from(CHUNKS / 2 * CHUNK));
        swarm.tracker.handle_message(Time::ZERO, conn, Message::Provide(Interest::range(content, half)));
        swarm.tracker.handle_message(Time::ZERO, conn, Message::Request(Interest::all(content)));
        collect(&mut swarm);
    }
    swarm
}

fn collect(swarm: &mut Swarm) {
    while let Some(t) = swarm.tracker.poll_transmit() {
        if let Transmit::Send { conn, msg: Message::Transfer(o) } = t
            && o.side == Side::Taker
        {
            swarm.outstanding.push_back((conn, o.token, o.chunk));
        }
    }
    while swarm.tracker.poll_event().is_some() {}
}

fn bench_decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker_schedule");
    group.throughput(Throughput::Elements(1));
    for peers in [1_000u32, 10_000] {
        let mut swarm = build(peers);
        group.bench_function(format!("decisions_{peers}_peers_{CHUNKS}_chunks"), |b| {
            b.iter_custom(|iters| {
                // Counts decisions, not completions: the figure is time per decision.
                let mut spent = Duration::ZERO;
                let mut decided = 0u64;
                while decided < iters {
                    if swarm.outstanding.is_empty() {
                        swarm = build(peers);
                    }
                    let before = swarm.tracker.decisions();
                    let start = Instant::now();
                    for _ in 0..64 {
                        let Some((conn, token, chunk)) = swarm.outstanding.pop_front() else { break };
                        let hash = Some(swarm.hashes[chunk as usize]);
                        swarm.tracker.handle_message(
                            Time::ZERO,
                            conn,
                            Message::Completed(Completed { token, hash, copy_us: 0 }),
                        );
                        collect(&mut swarm);
                    }
                    spent += start.elapsed();
                    decided += swarm.tracker.decisions() - before;
                    if swarm.tracker.decisions() == before && swarm.outstanding.is_empty() {
                        swarm = build(peers);
                    }
                }
                // Scale to exactly `iters` decisions.
                spent.mul_f64(iters as f64 / decided.max(1) as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_decisions);
criterion_main!(benches);

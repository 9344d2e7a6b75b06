//! Tracker + Seed + Peers, all real machines, through the harness's network (random 1-50 ms
//! per message, FIFO per connection, so orders and peer requests race as they do for real).

#![allow(clippy::unwrap_used)]

mod harness;

use harness::{Options, PeerSpec, Swarm};
use pdtp_core::Span;
use pdtp_core::node::NodeEvent;
use pdtp_core::peer::PeerEvent;

const SIZE: usize = 50_001;

fn world(n: usize, corrupt: &[usize]) -> Swarm {
    let mut s = Swarm::new(Options { seed: 3, ..Options::default() });
    for k in 0..n {
        s.add_peer(PeerSpec { corrupt: corrupt.contains(&k), listen: k % 3 != 2, ..PeerSpec::default() });
    }
    s.drive();
    s
}

fn publish_and_get(s: &mut Swarm) {
    s.publish("f", harness::file_bytes(SIZE, 0), 1_000);
    s.drive();
    for node in s.alive_peers() {
        s.get(node, "f");
    }
    s.drive();
    s.assert_ok();
}

/// The offsets of a peer's deliveries, in order.
fn delivered_offsets(events: &[PeerEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| if let PeerEvent::Deliver { offset, .. } = e { Some(*offset) } else { None })
        .collect()
}

/// Every peer (corrupting ones too: they download honestly) delivered the whole file.
fn check_all(s: &Swarm) {
    let content = s.seed.content("f").unwrap();
    for (k, slot) in s.peers.iter().enumerate() {
        let got = slot.delivered.get(&content).copied().unwrap_or(0);
        assert_eq!(got, SIZE as u64, "peer {} got {got} bytes", k + 2);
        assert!(slot.completed.contains_key(&content), "peer {} not complete", k + 2);
    }
}

#[test]
fn swarm_with_real_tracker() {
    let mut s = world(12, &[]);
    let start = s.now;
    publish_and_get(&mut s);
    check_all(&s);
    s.check_complete().unwrap();
    let up: u64 = s.peers.iter().map(|p| p.machine.as_ref().unwrap().stats().bytes_uploaded).sum();
    let from_seed = s.seed.stats().bytes_uploaded;
    assert_eq!(up + from_seed, 12 * SIZE as u64, "every byte moved once");
    assert!(up > from_seed, "peers carried most of the load");
    let problems: Vec<_> = s
        .peers
        .iter()
        .flat_map(|p| &p.events)
        .filter(|e| matches!(e, PeerEvent::Node(NodeEvent::TransferFailed { .. } | NodeEvent::Problem(_))))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    // 51 chunks, at most 5 downloads per peer, each transfer about four 1-50 ms hops.
    let content = s.seed.content("f").unwrap();
    for p in &s.peers {
        let done = p.completed[&content];
        assert!(done <= start + Span::from_secs(3), "completed at {done:?}");
    }
}

#[test]
fn swarm_with_corrupt_peers() {
    let mut s = world(10, &[0, 4]);
    publish_and_get(&mut s);
    check_all(&s);
    let rejected = s
        .peers
        .iter()
        .flat_map(|p| &p.events)
        .filter(|e| matches!(e, PeerEvent::ChunkRejected { .. }))
        .count();
    assert!(rejected > 0, "the corrupting peers were asked to give something");
}

#[test]
fn live_with_real_tracker() {
    let mut s = world(6, &[]);
    s.start_live("live", 500);
    s.drive();
    for _ in 0..5 {
        assert!(s.push_live("live"));
        s.drive();
    }
    for node in s.alive_peers() {
        s.get(node, "live");
    }
    s.drive();
    for _ in 5..200 {
        s.advance(Span::from_secs(1));
        assert!(s.push_live("live"));
        for p in &s.peers {
            assert!(p.machine.as_ref().unwrap().store().chunk_count() <= 64);
        }
    }
    s.drive();
    s.assert_ok();
    for (k, p) in s.peers.iter().enumerate() {
        let offs = delivered_offsets(&p.events);
        assert!(offs.windows(2).all(|x| x[1] == x[0] + 500), "peer {} gaps: {:?}", k + 2, offs);
        assert!(offs.len() >= 190, "peer {} delivered {}", k + 2, offs.len());
    }
    assert_eq!(s.seed.store().chunk_count(), 64, "the seed keeps its live window");
}

/// The tracker crashes in the middle of a download and a new one starts with nothing known:
/// the seed publishes again, the peers ask again and announce what they hold, and everyone
/// completes with exact bytes (the harness checks every delivery and order).
#[test]
fn a_swarm_carries_on_after_its_tracker_restarts() {
    let mut s = world(6, &[]);
    s.publish("f", harness::file_bytes(SIZE, 0), 1_000);
    s.drive();
    for node in s.alive_peers() {
        s.get(node, "f");
    }
    s.run_steps(300);
    let partway = s.peers.iter().filter(|p| !p.completed.is_empty()).count();
    assert!(partway < 6, "everyone finished before the restart: the test proves nothing");
    s.restart_tracker();
    s.drive();
    s.assert_ok();
    check_all(&s);
}

/// The same for a live stream: chunks made while the tracker is away are announced with the
/// stream when it is back, and every viewer delivers every chunk in order.
#[test]
fn a_live_stream_carries_on_after_its_tracker_restarts() {
    live_through_an_outage(world(4, &[]), Swarm::restart_tracker);
}

/// The seed's tracker link drops while the same tracker runs on, and the seed makes chunks
/// before it is back: the tracker takes the longer manifest it publishes again as an append
/// (it refused it before), and later appends follow on, so every viewer delivers every chunk.
/// The seed signs, so the new chunks must extend its signed chain, at the tracker and at
/// every viewer.
#[test]
fn a_live_seed_back_on_a_running_tracker_with_new_chunks_carries_on() {
    let mut s = Swarm::new(Options { seed: 3, seed_signs: Some([5; 32]), ..Options::default() });
    for _ in 0..4 {
        s.add_peer(PeerSpec::default());
    }
    s.drive();
    live_through_an_outage(s, Swarm::drop_seed_tracker_link);
}

/// A 40-chunk live stream to every peer of `s`, with `outage` at chunk 15: every viewer
/// must deliver every chunk, in order.
fn live_through_an_outage(mut s: Swarm, outage: fn(&mut Swarm)) {
    s.start_live("live", 500);
    s.drive();
    for node in s.alive_peers() {
        s.get(node, "live");
    }
    for i in 0..40 {
        if i == 15 {
            outage(&mut s);
        }
        s.advance(Span::from_millis(500));
        assert!(s.push_live("live"));
    }
    s.drive();
    s.assert_ok();
    let content = s.seed.content("live").unwrap();
    for (k, p) in s.peers.iter().enumerate() {
        let offs = delivered_offsets(&p.events);
        assert!(offs.windows(2).all(|w| w[1] == w[0] + 500), "peer {} skipped or reordered: {offs:?}", k + 2);
        assert_eq!(offs.last().copied(), Some(39 * 500), "peer {} stopped at {:?}", k + 2, offs.last());
        assert!(p.delivered.contains_key(&content));
    }
}

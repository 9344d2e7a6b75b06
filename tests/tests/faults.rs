//! Faults on real sockets: a peer killed mid-download, a peer corrupting what it serves, a
//! seed with the wrong key, a malformed frame, a frame trickled in.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The trickling test paces its writes by the wall clock, as a real slow sender would.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use pdtp_core::tracker::TrackerConfig;
use pdtp_net_mio::driver::{Node, RateLimits, Runtime, Status, Swarm};
use pdtp_tests::{KEY, TrackerLink, run_polling, write_random_file};

const LIMIT: Duration = Duration::from_secs(30);

fn held(rt: &Runtime, id: pdtp_net_mio::driver::NodeId) -> (u32, u32) {
    match rt.node(id) {
        Some(Node::Peer(p)) => p.progress(),
        _ => (0, 0),
    }
}

#[test]
fn a_peer_killed_mid_download_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 1_000_000, 2);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    // A slow origin, so the swarm is still busy when the victim dies.
    swarm.add_seed(&root, KEY, RateLimits { upload: Some(1 << 20), download: None }).unwrap();
    let outs: Vec<_> = (0..6).map(|i| dir.path().join(format!("p{i}"))).collect();
    let peers: Vec<_> = outs.iter().map(|o| swarm.add_peer("f.bin", o, false).unwrap()).collect();
    let victim = peers[0];
    assert!(swarm.rt.run_until(LIMIT, |rt| held(rt, victim).0 >= 2).unwrap());
    let (got, of) = held(&swarm.rt, victim);
    assert!(got < of, "the victim must die mid-download ({got}/{of})");
    assert!(swarm.rt.remove(victim).is_some());
    let rest = &peers[1..];
    assert!(swarm.run_until_finished(rest, LIMIT).unwrap(), "the others did not finish");
    for (p, out) in rest.iter().zip(&outs[1..]) {
        assert_eq!(swarm.rt.status(*p), Some(Status::Done));
        assert!(std::fs::read(out).unwrap() == source, "{} differs", out.display());
    }
}

#[test]
fn a_corrupting_peer_is_detected_others_finish_and_it_loses_trust() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 1_500_000, 3);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    // The corrupting peer gets the whole file first, so it holds every chunk the others want.
    let bad_out = dir.path().join("bad");
    let bad = swarm.add_peer("f.bin", &bad_out, true).unwrap();
    assert!(swarm.run_until_finished(&[bad], LIMIT).unwrap());
    assert_eq!(swarm.rt.status(bad), Some(Status::Done), "it downloads correctly; it only serves badly");
    let outs: Vec<_> = (0..5).map(|i| dir.path().join(format!("p{i}"))).collect();
    let peers: Vec<_> = outs.iter().map(|o| swarm.add_peer("f.bin", o, false).unwrap()).collect();
    assert!(swarm.run_until_finished(&peers, LIMIT).unwrap(), "the honest peers did not finish");
    let mut rejected = 0;
    for (p, out) in peers.iter().zip(&outs) {
        assert_eq!(swarm.rt.status(*p), Some(Status::Done));
        assert!(std::fs::read(out).unwrap() == source, "{} differs", out.display());
        if let Some(Node::Peer(n)) = swarm.rt.node(*p) {
            rejected += n.rejected();
        }
    }
    assert!(rejected > 0, "no corrupt chunk reached an honest peer: the test proved nothing");
    let stats = swarm.tracker().unwrap().tracker().stats();
    let bad_id = match swarm.rt.node(bad) {
        Some(Node::Peer(p)) => p.peer().peer_id(),
        _ => unreachable!(),
    };
    let rep = |id| stats.nodes.iter().find(|n| n.peer == id).map(|n| (n.reputation, n.banned)).unwrap();
    let (bad_rep, _) = rep(bad_id);
    for p in &peers {
        let Some(Node::Peer(n)) = swarm.rt.node(*p) else { unreachable!() };
        let (good_rep, banned) = rep(n.peer().peer_id());
        assert!(!banned);
        assert!(bad_rep < good_rep, "corrupting peer {bad_rep} vs honest {good_rep}");
    }
    assert!(swarm.tracker().unwrap().totals().chunks_corrupt > 0);
}

#[test]
fn a_seed_with_the_wrong_key_is_refused_and_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    write_random_file(&root, "f.bin", 10_000, 4);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 4096).unwrap();
    let seed = swarm.add_seed(&root, "not-the-tracker-key-at-all", RateLimits::default()).unwrap();
    assert!(swarm.run_until_finished(&[seed], LIMIT).unwrap());
    match swarm.rt.status(seed) {
        Some(Status::Failed(why)) => assert!(why.contains("refused"), "{why}"),
        other => panic!("seed not refused: {other:?}"),
    }
    assert!(swarm.tracker().unwrap().tracker().stats().contents.is_empty());
    let peer = swarm.add_peer("f.bin", &dir.path().join("out"), false).unwrap();
    assert!(swarm.run_until_finished(&[peer], LIMIT).unwrap());
    match swarm.rt.status(peer) {
        Some(Status::Failed(why)) => assert!(why.contains("has no file 'f.bin'"), "{why}"),
        other => panic!("peer got something: {other:?}"),
    }
}

#[test]
fn a_malformed_frame_closes_that_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 300_000, 5);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    // Inside an encrypted link, a frame of kind 9 (no such kind), then garbage.
    let mut link = TrackerLink::connect(swarm.tracker_addr, Some(swarm.tracker_key));
    link.send_plain(&[0, 0, 0, 3, 9, 1, 2, 0xff, 0xff]);
    let mut reply = Vec::new();
    let closed = run_polling(&mut swarm.rt, LIMIT, || {
        reply.extend(link.pump());
        link.is_closed()
    });
    assert!(closed, "the tracker kept the malformed connection open");
    // The reply is one Error before the close.
    assert!(matches!(reply[..], [pdtp_core::Message::Error(_)]), "no error before the close: {reply:?}");
    let out = dir.path().join("out");
    let peer = swarm.add_peer("f.bin", &out, false).unwrap();
    assert!(swarm.run_until_finished(&[peer], LIMIT).unwrap());
    assert_eq!(swarm.rt.status(peer), Some(Status::Done), "the tracker still serves others");
    assert!(std::fs::read(out).unwrap() == source);
}

#[test]
fn silent_connections_are_capped_and_timed_out_and_the_tracker_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 100_000, 6);
    let mut swarm =
        Swarm::with_limits(TrackerConfig::with_key(KEY), 16 * 1024, 16, Duration::from_millis(300)).unwrap();
    // 40 connections that never say anything.
    let mut idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(swarm.tracker_addr).unwrap()).collect();
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let mut closed = vec![false; idle.len()];
    let all_closed = run_polling(&mut swarm.rt, LIMIT, || {
        for (s, c) in idle.iter_mut().zip(closed.iter_mut()) {
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Ok(0) => *c = true,
                Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => *c = true,
                _ => {}
            }
        }
        closed.iter().all(|c| *c)
    });
    assert!(all_closed, "silent connections were kept: {closed:?}");
    assert!(swarm.rt.refused() > 0, "nothing was refused at the cap of 16");
    // The tracker still works for a real seed and peer.
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let out = dir.path().join("out");
    let peer = swarm.add_peer("f.bin", &out, false).unwrap();
    assert!(swarm.run_until_finished(&[peer], LIMIT).unwrap());
    assert_eq!(swarm.rt.status(peer), Some(Status::Done));
    assert!(std::fs::read(out).unwrap() == source);
}

/// A peer that says `Hello` and then trickles a record of its encrypted link (announced at
/// 65 535 bytes, a byte every 200 ms) held its connection for as long as it liked. Past the grace of 10 s a frame must
/// have come at 256 B/s or more: the trickler is closed, a frame arriving at 1 kB/s beside it
/// is not (the rule is a rate, not a deadline), and the tracker serves a download meanwhile.
#[test]
fn a_frame_trickled_under_the_minimum_rate_closes_its_connection() {
    use pdtp_core::wire::{Hello, PROTOCOL_VERSION, Role};
    use std::time::Instant;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let source = write_random_file(&root, "f.bin", 100_000, 7);
    let mut swarm = Swarm::new(TrackerConfig::with_key(KEY), 16 * 1024).unwrap();
    swarm.add_seed(&root, KEY, RateLimits::default()).unwrap();
    let open_frame = |swarm: &mut Swarm| {
        let mut link = TrackerLink::connect(swarm.tracker_addr, Some(swarm.tracker_key));
        let hello = Hello {
            version: PROTOCOL_VERSION,
            peer_id: swarm.reserve_id(),
            listen_port: None,
            role: Role::Peer,
        };
        link.send(&pdtp_core::Message::Hello(hello));
        assert!(run_polling(&mut swarm.rt, LIMIT, || {
            link.pump();
            link.is_open()
        }));
        // A record announced at 65 535 bytes (the most a record holds), body to follow in
        // clear: the bytes a trickler holds the tracker's buffer with.
        link.stream.write_all(&[0xff, 0xff]).unwrap();
        link
    };
    let mut slow = open_frame(&mut swarm);
    let mut steady = open_frame(&mut swarm);
    let is_closed = |l: &mut TrackerLink| {
        l.pump();
        l.is_closed()
    };
    let start = Instant::now();
    let (mut slow_sent, mut steady_sent) = (0u64, 0u64);
    let closed = run_polling(&mut swarm.rt, LIMIT, || {
        let ms = start.elapsed().as_millis() as u64;
        // Ignore write errors: the tracker may have closed the connection already.
        while slow_sent < ms / 200 {
            let _ = slow.stream.write(&[0]);
            slow_sent += 1;
        }
        while steady_sent < ms {
            let _ = steady.stream.write(&[0]);
            steady_sent += 1;
        }
        is_closed(&mut slow)
    });
    assert!(closed, "a frame trickled at 5 B/s kept its connection for {:?}", start.elapsed());
    assert!(start.elapsed() >= Duration::from_secs(10), "closed before the grace: {:?}", start.elapsed());
    assert!(!is_closed(&mut steady), "a frame arriving at 1 kB/s was closed");
    let out = dir.path().join("out");
    let peer = swarm.add_peer("f.bin", &out, false).unwrap();
    assert!(swarm.run_until_finished(&[peer], LIMIT).unwrap());
    assert_eq!(swarm.rt.status(peer), Some(Status::Done));
    assert!(std::fs::read(out).unwrap() == source);
}

//! Tracker + Seed + Peers, all real machines, through an in-memory network with fixed
//! per-link latency (1-50 ms, so orders and peer requests race as they do for real).
//!
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use pdtp_core::memstore::MemStore;
use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
use pdtp_core::seed::{Seed, SeedConfig, SeedEvent};
use pdtp_core::tracker::{Tracker, TrackerConfig};
use pdtp_core::{ConnId, Digest, Endpoint, Geometry, Manifest, Message, PeerId, Span, Time, Transmit};
use rand_core::SeedableRng;

// node index: 0 tracker, 1 seed, 2.. peers
struct World {
    now: Time,
    tracker: Tracker,
    seed: Seed<MemStore>,
    peers: Vec<Peer<MemStore>>,
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    queue: std::collections::BTreeMap<(Time, u64), (usize, ConnId, Message)>,
    seq: u64,
    closes: VecDeque<(usize, ConnId)>,
    peer_events: Vec<Vec<PeerEvent>>,
    seed_events: Vec<SeedEvent>,
    live_chunk_bytes: BTreeMap<u32, Bytes>,
    done_at: Vec<Option<Time>>,
}

impl World {
    fn transmits(&mut self, i: usize) -> Vec<Transmit> {
        let mut v = Vec::new();
        loop {
            let t = match i {
                0 => self.tracker.poll_transmit(),
                1 => self.seed.poll_transmit(),
                _ => self.peers[i - 2].poll_transmit(),
            };
            match t {
                Some(t) => v.push(t),
                None => return v,
            }
        }
    }
    fn deliver(&mut self, i: usize, conn: ConnId, msg: Message) {
        let now = self.now;
        match i {
            0 => self.tracker.handle_message(now, conn, msg),
            1 => self.seed.handle_message(now, conn, msg),
            _ => self.peers[i - 2].handle_message(now, conn, msg),
        }
    }
    fn closed(&mut self, i: usize, conn: ConnId) {
        let now = self.now;
        match i {
            0 => self.tracker.handle_closed(now, conn),
            1 => self.seed.handle_closed(now, conn),
            _ => self.peers[i - 2].handle_closed(now, conn),
        }
    }
    fn run(&mut self) {
        for _ in 0..1_000_000 {
            let n = self.peers.len() + 2;
            for i in 0..n {
                for t in self.transmits(i) {
                    match t {
                        Transmit::Connect { conn, endpoint } => {
                            let j: usize = if endpoint.host == "tracker" {
                                0
                            } else {
                                endpoint.host[1..].parse().unwrap()
                            };
                            let now = self.now;
                            let c2 = match j {
                                0 => self.tracker.accept(now, format!("n{i}")).unwrap(),
                                1 => self.seed.accept(now),
                                _ => self.peers[j - 2].accept(now),
                            };
                            self.links.insert((i, conn), (j, c2));
                            self.links.insert((j, c2), (i, conn));
                            match i {
                                1 => self.seed.handle_connected(now, conn),
                                _ => self.peers[i - 2].handle_connected(now, conn),
                            }
                        }
                        Transmit::Send { conn, msg } => {
                            if let Some(&(j, c2)) = self.links.get(&(i, conn)) {
                                let lat = Span::from_millis(1 + ((i * 7 + j * 13) % 50) as u64);
                                self.seq += 1;
                                self.queue.insert((self.now + lat, self.seq), (j, c2, msg));
                            }
                        }
                        Transmit::Close { conn, .. } => {
                            if let Some((j, c2)) = self.links.remove(&(i, conn)) {
                                self.links.remove(&(j, c2));
                                self.closes.push_back((j, c2));
                            }
                        }
                    }
                }
            }
            while let Some(e) = self.seed.poll_event() {
                self.seed_events.push(e);
            }
            for (k, p) in self.peers.iter_mut().enumerate() {
                while let Some(e) = p.poll_event() {
                    if matches!(e, PeerEvent::DownloadComplete { .. }) {
                        self.done_at[k] = Some(self.now);
                    }
                    self.peer_events[k].push(e);
                }
            }
            while let Some(_e) = self.tracker.poll_event() {}
            if let Some((j, c)) = self.closes.pop_front() {
                self.closed(j, c);
                continue;
            }
            let next_msg = self.queue.keys().next().copied();
            // quiet: advance to next timer
            let next = [self.tracker.poll_timeout(), self.seed.poll_timeout()]
                .into_iter()
                .chain(self.peers.iter().map(|p| p.poll_timeout()))
                .flatten()
                .min();
            if let Some(k) = next_msg
                && next.is_none_or(|t| k.0 <= t)
            {
                let (j, c, m) = self.queue.remove(&k).unwrap();
                self.now = self.now.max(k.0);
                self.deliver(j, c, m);
                continue;
            }
            match next {
                Some(t) if t <= self.now + Span::from_secs(200) => {
                    self.now = t.max(self.now);
                    let now = self.now;
                    self.tracker.handle_timeout(now);
                    self.seed.handle_timeout(now);
                    for p in &mut self.peers {
                        p.handle_timeout(now);
                    }
                }
                _ => return,
            }
        }
        panic!("no quiescence");
    }
}

fn world(n: usize, corrupt: &[usize]) -> World {
    let now = Time::ZERO;
    let tracker = Tracker::new(TrackerConfig::with_key(b"k".to_vec()), pdtp_core::Rng::seed_from_u64(1));
    let tep = Endpoint { host: "tracker".into(), port: 6086 };
    let mut sc = SeedConfig::new(PeerId(1), tep.clone(), b"k".to_vec());
    sc.listen_port = Some(9);
    let seed = Seed::new(now, sc, MemStore::new().with_file("f", data()), pdtp_core::Rng::seed_from_u64(2));
    let peers = (0..n)
        .map(|k| {
            let mut c = PeerConfig::new(PeerId(k as u32 + 2), tep.clone());
            c.listen_port = if k % 3 == 2 { None } else { Some(9) };
            c.corrupt_uploads = corrupt.contains(&k);
            Peer::new(now, c, MemStore::new(), pdtp_core::Rng::seed_from_u64(10 + k as u64))
        })
        .collect();
    World {
        now,
        tracker,
        seed,
        peers,
        links: BTreeMap::new(),
        queue: std::collections::BTreeMap::new(),
        seq: 0,
        closes: VecDeque::new(),
        peer_events: vec![Vec::new(); n],
        seed_events: Vec::new(),
        live_chunk_bytes: BTreeMap::new(),
        done_at: vec![None; n],
    }
}

fn data() -> Bytes {
    (0..50_001u32).map(|i| (i * 13 % 251) as u8).collect::<Vec<_>>().into()
}

fn manifest(d: &[u8]) -> Manifest {
    let g = Geometry::new(d.len() as u64, 1_000);
    let hashes = (0..g.num_chunks())
        .map(|i| {
            let r = g.chunk_bytes(i);
            Digest::of(&d[r.start as usize..r.end as usize])
        })
        .collect();
    Manifest { path: "f".into(), geometry: g, hashes, live: None }
}

fn check_all(w: &World, d: &Bytes) {
    for (k, evs) in w.peer_events.iter().enumerate() {
        let mut out = Vec::new();
        for e in evs {
            if let PeerEvent::Deliver { offset, payload: pdtp_core::Payload::Real(b), .. } = e {
                assert_eq!(*offset as usize, out.len());
                out.extend_from_slice(b);
            }
        }
        assert!(
            out == d.to_vec(),
            "peer {k} got {} of {} bytes; events tail {:?}",
            out.len(),
            d.len(),
            &evs[evs.len().saturating_sub(5)..]
        );
        assert!(evs.iter().any(|e| matches!(e, PeerEvent::DownloadComplete { .. })));
    }
}

#[test]
fn swarm_with_real_tracker() {
    let d = data();
    let mut w = world(12, &[]);
    w.run();
    let now = w.now;
    w.seed.publish(now, manifest(&d));
    w.run();
    let now = w.now;
    for p in &mut w.peers {
        p.get(now, "f");
    }
    w.run();
    check_all(&w, &d);
    let up: u64 = w.peers.iter().map(|p| p.stats().bytes_uploaded).sum();
    assert_eq!(up + w.seed.stats().bytes_uploaded, 12 * d.len() as u64, "every byte moved once");
    assert!(up > w.seed.stats().bytes_uploaded, "peers carried most of the load");
    let problems: Vec<_> = w
        .peer_events
        .iter()
        .flatten()
        .filter(|e| matches!(e, PeerEvent::TransferFailed { .. } | PeerEvent::Problem(_)))
        .collect();
    assert!(problems.is_empty(), "{problems:?}");
    // 51 chunks, at most 5 downloads per peer, each transfer about four 1-50 ms hops.
    assert!(w.done_at.iter().all(|t| t.is_some_and(|t| t <= now + Span::from_secs(3))), "{:?}", w.done_at);
}

#[test]
fn swarm_with_corrupt_peers() {
    let d = data();
    let mut w = world(10, &[0, 4]);
    w.run();
    let now = w.now;
    w.seed.publish(now, manifest(&d));
    w.run();
    let now = w.now;
    for p in &mut w.peers {
        p.get(now, "f");
    }
    w.run();
    check_all(&w, &d);
    let rejected =
        w.peer_events.iter().flatten().filter(|e| matches!(e, PeerEvent::ChunkRejected { .. })).count();
    assert!(rejected > 0, "the corrupting peers were asked to give something");
}

#[test]
fn live_with_real_tracker() {
    let mut w = world(6, &[]);
    w.run();
    let now = w.now;
    w.seed.start_live(now, "live", 500, 4_000);
    w.run();
    let content = w.seed.content("live").unwrap();
    let push = |w: &mut World, i: u32| {
        let b = Bytes::from(vec![i as u8; 500]);
        w.seed.store_mut().put(content, i, b.clone());
        let now = w.now;
        w.seed.push_live_chunk(now, "live", 500, Digest::of(&b));
        w.live_chunk_bytes.insert(i, b);
        w.run();
    };
    for i in 0..5 {
        push(&mut w, i);
    }
    let now = w.now;
    for p in &mut w.peers {
        p.get(now, "live");
    }
    w.run();
    for i in 5..200 {
        w.now += Span::from_millis(1000);
        push(&mut w, i);
        for p in &w.peers {
            assert!(p.store().chunk_count() <= 64);
        }
    }
    for (k, evs) in w.peer_events.iter().enumerate() {
        let offs: Vec<u64> = evs
            .iter()
            .filter_map(|e| if let PeerEvent::Deliver { offset, .. } = e { Some(*offset) } else { None })
            .collect();
        assert!(offs.windows(2).all(|x| x[1] == x[0] + 500), "peer {k} gaps: {:?}", offs);
        assert!(offs.len() >= 190, "peer {k} delivered {}", offs.len());
    }
    assert_eq!(w.seed.store().chunk_count(), 64, "the seed keeps its live window");
}

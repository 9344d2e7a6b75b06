//! A deterministic harness for the whole swarm: 1 tracker + 1 seed + N peers, all real
//! machines over `MemStore` (real bytes), wired through a simulated network with virtual time
//! (STYLE 14).
//!
//! * Every connection is a pair of FIFO directions: a message gets a random delay from a
//!   seeded ChaCha generator but never overtakes an earlier one on the same direction (TCP
//!   keeps order), while different connections interleave arbitrarily.
//! * [`Swarm::step`] jumps to the earliest deadline (a message delivery or any machine's
//!   `poll_timeout`), [`Swarm::drive`] runs to quiescence and [`Swarm::drive_bounded`]
//!   reports a livelock instead of spinning.
//! * Faults: [`Swarm::drop_link`] breaks a connection (in-flight messages are lost, both ends
//!   see it close), [`Swarm::kill`] crashes a peer, [`Swarm::reseed`] changes the delays.
//! * Invariants are checked as the run goes and collected in [`Swarm::violations`]: giver
//!   orders against the giver's real store, bans, per-node limits, delivered bytes, live
//!   windows. See [`Swarm::check_order`] for the one race that is excused.
//!
//! Node indexes: 0 the tracker, 1 the seed, 2.. the peers; a node's `PeerId` is its index.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use pdtp_core::memstore::MemStore;
use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
use pdtp_core::seed::{Seed, SeedConfig, SeedEvent};
use pdtp_core::tracker::{Tracker, TrackerConfig, TrackerEvent};
use pdtp_core::wire::{Interest, Role, Side};
use pdtp_core::{
    ChunkIndex, ConnId, ContentId, Digest, Endpoint, Geometry, Manifest, Message, Payload, PeerId, Span,
    Time, Transmit,
};
use rand_core::{Rng as _, SeedableRng};

/// The tracker's node index.
pub const TRACKER: usize = 0;
/// The seed's node index.
pub const SEED: usize = 1;
/// The key the seed publishes with.
pub const KEY: &[u8] = b"harness-key";

/// How a swarm is built.
#[derive(Clone, Debug)]
pub struct Options {
    /// The tracker's configuration (its key is replaced by [`KEY`]).
    pub tracker: TrackerConfig,
    /// Shortest one-way message delay.
    pub delay_min: Span,
    /// Longest one-way message delay.
    pub delay_max: Span,
    /// Seeds the network's delays and every machine's generator.
    pub seed: u64,
    /// Live chunks the seed keeps.
    pub seed_live_window: u32,
    /// The seed signs what it publishes with this key (its secret).
    pub seed_signs: Option<[u8; 32]>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tracker: TrackerConfig::with_key(KEY),
            delay_min: Span::from_millis(1),
            delay_max: Span::from_millis(50),
            seed: 0,
            seed_live_window: 64,
            seed_signs: None,
        }
    }
}

/// How a peer behaves.
#[derive(Clone, Copy, Debug)]
pub struct PeerSpec {
    /// Flips a byte of every chunk it serves.
    pub corrupt: bool,
    /// Accepts peer links (otherwise the tracker orders `Put`s from it).
    pub listen: bool,
    /// Live chunks it keeps.
    pub live_window: u32,
    /// A transfer not under way this long after its order fails.
    pub stall_timeout: Span,
    /// A transfer under way but not finished this long after it started fails.
    pub transfer_timeout: Span,
    /// How long a peer request waits for its matching order.
    pub order_wait: Span,
}

impl Default for PeerSpec {
    fn default() -> Self {
        Self {
            corrupt: false,
            listen: true,
            live_window: 64,
            stall_timeout: Span::from_secs(20),
            transfer_timeout: Span::from_secs(120),
            order_wait: Span::from_secs(5),
        }
    }
}

/// `drive_bounded` ran out of steps with work still pending.
#[derive(Debug, PartialEq, Eq)]
pub struct Livelock {
    /// Steps taken.
    pub steps: usize,
    /// Virtual time reached.
    pub now: Time,
}

/// One peer and what the harness saw of it.
pub struct PeerSlot {
    /// The machine; `None` once killed.
    pub machine: Option<Peer<MemStore>>,
    /// How it was built.
    pub spec: PeerSpec,
    /// Its tracker link is gone (nothing more will be scheduled for it).
    pub tracker_lost: bool,
    /// Paths it called `get` for.
    pub gets: BTreeSet<String>,
    /// Every event it reported.
    pub events: Vec<PeerEvent>,
    /// Next byte offset expected per content (deliveries are checked on the fly).
    pub delivered: BTreeMap<ContentId, u64>,
    /// Contents it reported complete, and when.
    pub completed: BTreeMap<ContentId, Time>,
}

/// A live stream's source bytes.
#[derive(Debug)]
struct LiveSource {
    chunk_size: u32,
    chunks: Vec<Bytes>,
}

/// One simulated TCP connection.
#[derive(Debug)]
struct Link {
    ends: [(usize, ConnId); 2],
    open: [bool; 2],
    /// Broken by the network: in-flight messages are lost.
    broken: bool,
    /// The latest delivery time scheduled towards each end (FIFO per direction).
    last: [Time; 2],
}

#[derive(Debug)]
enum Delivery {
    Msg { link: u64, to: usize, msg: Message },
    Closed { link: u64, to: usize },
}

/// The whole swarm under test.
pub struct Swarm {
    /// Virtual time.
    pub now: Time,
    /// The tracker machine.
    pub tracker: Tracker,
    /// The seed machine.
    pub seed: Seed<MemStore>,
    /// Peers by `node - 2`.
    pub peers: Vec<PeerSlot>,
    /// Every tracker event, in order.
    pub tracker_events: Vec<TrackerEvent>,
    /// Every seed event, in order.
    pub seed_events: Vec<SeedEvent>,
    /// Givers banned so far.
    pub banned: BTreeSet<PeerId>,
    /// Invariant violations seen so far (a test asserts this stays empty).
    pub violations: Vec<String>,
    /// Giver orders checked against a store that held the chunk.
    pub orders_checked: u64,
    /// Giver orders excused by a documented race (see [`Swarm::check_order`]).
    pub orders_excused: u64,
    /// Steps taken.
    pub steps: usize,
    /// Messages delivered.
    pub delivered_msgs: u64,
    /// Delivery times of every message, in delivery order, tagged with (link, direction):
    /// kept only when `trace` is set (the harness's own tests read it).
    pub trace: Option<Vec<(u64, usize, Time, u64)>>,
    opts: Options,
    net: pdtp_core::Rng,
    links: BTreeMap<u64, Link>,
    next_link: u64,
    endpoints: BTreeMap<(usize, ConnId), (u64, usize)>,
    queue: BTreeMap<(Time, u64), Delivery>,
    seq: u64,
    files: BTreeMap<String, Bytes>,
    live: BTreeMap<String, LiveSource>,
}

/// Where the seed and the peers find the tracker.
pub fn tracker_endpoint() -> Endpoint {
    Endpoint { host: "tracker".into(), port: 6086 }
}

/// Deterministic file bytes.
pub fn file_bytes(len: usize, salt: u8) -> Bytes {
    (0..len).map(|i| ((i * 31 + usize::from(salt) * 7) % 251) as u8).collect::<Vec<_>>().into()
}

/// The manifest of `data` at `path`.
pub fn manifest(path: &str, data: &[u8], chunk_size: u32) -> Manifest {
    let g = Geometry::new(data.len() as u64, chunk_size);
    let hashes = (0..g.num_chunks())
        .map(|i| {
            let r = g.chunk_bytes(i);
            Digest::of(&data[r.start as usize..r.end as usize])
        })
        .collect();
    Manifest { path: path.into(), geometry: g, hashes, live: None }
}

/// The bytes of live chunk `i`.
pub fn live_bytes(i: ChunkIndex, len: u32) -> Bytes {
    (0..len).map(|k| (i.wrapping_mul(13).wrapping_add(k) % 256) as u8).collect::<Vec<_>>().into()
}

impl Swarm {
    /// A tracker and a seed, both connected and welcomed (the handshake is driven).
    pub fn new(opts: Options) -> Self {
        let mut tcfg = opts.tracker.clone();
        tcfg.seed_key = KEY.to_vec();
        let now = Time::ZERO;
        let mut scfg = SeedConfig::new(PeerId(SEED as u32), tracker_endpoint(), KEY);
        scfg.listen_port = Some(9);
        scfg.live_window = opts.seed_live_window;
        scfg.signing_key = opts.seed_signs.map(pdtp_core::signing::SigningKey::from_secret);
        let mut swarm = Self {
            now,
            tracker: Tracker::new(tcfg, pdtp_core::Rng::seed_from_u64(opts.seed ^ 0x7a11)),
            seed: Seed::new(now, scfg, MemStore::new(), pdtp_core::Rng::seed_from_u64(opts.seed ^ 0x5eed)),
            peers: Vec::new(),
            tracker_events: Vec::new(),
            seed_events: Vec::new(),
            banned: BTreeSet::new(),
            violations: Vec::new(),
            orders_checked: 0,
            orders_excused: 0,
            steps: 0,
            delivered_msgs: 0,
            trace: None,
            net: pdtp_core::Rng::seed_from_u64(opts.seed),
            opts,
            links: BTreeMap::new(),
            next_link: 0,
            endpoints: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            files: BTreeMap::new(),
            live: BTreeMap::new(),
        };
        swarm.drive();
        swarm
    }

    /// Adds a peer (it connects to the tracker on the next step); returns its node index.
    pub fn add_peer(&mut self, spec: PeerSpec) -> usize {
        let node = self.peers.len() + 2;
        let mut c = PeerConfig::new(PeerId(node as u32), tracker_endpoint());
        c.listen_port = spec.listen.then_some(9);
        c.corrupt_uploads = spec.corrupt;
        c.live_window = spec.live_window;
        c.stall_timeout = spec.stall_timeout;
        c.transfer_timeout = spec.transfer_timeout;
        c.order_wait = spec.order_wait;
        let rng = pdtp_core::Rng::seed_from_u64(self.opts.seed.wrapping_mul(1_000_003) ^ node as u64);
        self.peers.push(PeerSlot {
            machine: Some(Peer::new(self.now, c, MemStore::new(), rng)),
            spec,
            tracker_lost: false,
            gets: BTreeSet::new(),
            events: Vec::new(),
            delivered: BTreeMap::new(),
            completed: BTreeMap::new(),
        });
        node
    }

    /// The peer at `node`, if alive.
    pub fn peer(&self, node: usize) -> Option<&Peer<MemStore>> {
        self.peers.get(node.checked_sub(2)?)?.machine.as_ref()
    }

    /// Node indexes of the peers still alive.
    pub fn alive_peers(&self) -> Vec<usize> {
        (0..self.peers.len()).filter(|&k| self.peers[k].machine.is_some()).map(|k| k + 2).collect()
    }

    /// Publishes `data` at `path` from the seed (the seed's store gets the file first).
    pub fn publish(&mut self, path: &str, data: Bytes, chunk_size: u32) {
        let store = std::mem::take(self.seed.store_mut());
        *self.seed.store_mut() = store.with_file(path, data.clone());
        let m = manifest(path, &data, chunk_size);
        self.files.insert(path.to_string(), data);
        self.seed.publish(self.now, m);
    }

    /// Starts a live stream at `path`.
    pub fn start_live(&mut self, path: &str, chunk_size: u32) {
        self.live.insert(path.to_string(), LiveSource { chunk_size, chunks: Vec::new() });
        self.seed.start_live(self.now, path, chunk_size, u64::from(chunk_size) * 8);
    }

    /// The seed stores and announces the next live chunk; false if the stream is not published yet.
    pub fn push_live(&mut self, path: &str) -> bool {
        let (Some(content), Some(i)) = (self.seed.content(path), self.seed.next_live_chunk(path)) else {
            return false;
        };
        let Some(src) = self.live.get_mut(path) else { return false };
        let b = live_bytes(i, src.chunk_size);
        assert_eq!(i as usize, src.chunks.len(), "live chunks are numbered densely");
        src.chunks.push(b.clone());
        self.seed.store_mut().put(content, i, b.clone());
        self.seed.push_live_chunk(self.now, path, b.len() as u32, Digest::of(&b));
        true
    }

    /// Live chunks pushed so far at `path`.
    pub fn live_len(&self, path: &str) -> usize {
        self.live.get(path).map_or(0, |s| s.chunks.len())
    }

    /// The peer at `node` starts downloading `path` (no-op for a dead peer).
    pub fn get(&mut self, node: usize, path: &str) {
        let now = self.now;
        let slot = &mut self.peers[node - 2];
        if let Some(p) = slot.machine.as_mut() {
            p.get(now, path);
            slot.gets.insert(path.to_string());
        }
    }

    /// Replaces the network's generator: different delays, different interleavings.
    pub fn reseed(&mut self, seed: u64) {
        self.net = pdtp_core::Rng::seed_from_u64(seed);
    }

    /// Open links, as ids for [`drop_link`](Self::drop_link); the seed's tracker link is
    /// left out (without it nothing can be published).
    pub fn droppable_links(&self) -> Vec<u64> {
        self.links
            .iter()
            .filter(|(_, l)| !l.broken && l.open.iter().any(|&o| o))
            .filter(|(_, l)| {
                let nodes = [l.ends[0].0, l.ends[1].0];
                !(nodes.contains(&TRACKER) && nodes.contains(&SEED))
            })
            .map(|(&id, _)| id)
            .collect()
    }

    /// The network breaks link `id`: messages in flight are lost and both ends see it close.
    pub fn drop_link(&mut self, id: u64) {
        let Some(l) = self.links.get_mut(&id) else { return };
        l.broken = true;
        let open = l.open;
        for (end, is_open) in open.into_iter().enumerate() {
            if is_open {
                let at = self.now + self.delay();
                self.push(at, Delivery::Closed { link: id, to: end });
            }
        }
    }

    /// The network breaks the seed's tracker link while the tracker runs on; the seed
    /// reconnects as after an outage.
    pub fn drop_seed_tracker_link(&mut self) {
        let seed_link = self.links.iter().find(|(_, l)| {
            let nodes = [l.ends[0].0, l.ends[1].0];
            !l.broken && nodes.contains(&TRACKER) && nodes.contains(&SEED)
        });
        if let Some((&id, _)) = seed_link {
            self.drop_link(id);
        }
    }

    /// Crashes the tracker and starts a new one with the same configuration and nothing
    /// known: every tracker link closes at its other end, and the seed and the peers are left
    /// to reconnect, publish and announce again.
    pub fn restart_tracker(&mut self) {
        let config = self.tracker.config().clone();
        self.tracker = Tracker::new(config, pdtp_core::Rng::seed_from_u64(self.opts.seed ^ 0x7a12));
        let ids: Vec<u64> =
            self.endpoints.iter().filter(|((n, _), _)| *n == TRACKER).map(|(_, &(l, _))| l).collect();
        for id in ids {
            self.close_end(id, TRACKER);
        }
    }

    /// Crashes the peer at `node`: its machine is gone, its links close at the other ends.
    pub fn kill(&mut self, node: usize) {
        let Some(slot) = self.peers.get_mut(node - 2) else { return };
        if slot.machine.take().is_none() {
            return;
        }
        let ids: Vec<u64> =
            self.endpoints.iter().filter(|((n, _), _)| *n == node).map(|(_, &(l, _))| l).collect();
        for id in ids {
            self.close_end(id, node);
        }
    }

    /// Earliest pending deadline: a delivery or a machine's timer.
    pub fn next_deadline(&self) -> Option<Time> {
        let msg = self.queue.keys().next().map(|k| k.0);
        [msg, self.next_timer()].into_iter().flatten().min()
    }

    /// One step: route pending output, jump to the earliest deadline, deliver that message
    /// or fire the due timers, route again, check the step invariants. False when quiescent.
    pub fn step(&mut self) -> bool {
        self.flush();
        let next_msg = self.queue.keys().next().map(|k| k.0);
        let Some(t) = [next_msg, self.next_timer()].into_iter().flatten().min() else { return false };
        self.now = self.now.max(t);
        if next_msg.is_some_and(|m| m <= t) {
            let (&key, _) = self.queue.iter().next().expect("non-empty");
            let d = self.queue.remove(&key).expect("present");
            self.deliver(key.1, d);
        } else {
            self.fire_timers();
        }
        self.flush();
        self.steps += 1;
        self.check_step();
        true
    }

    /// Runs to quiescence; panics on a livelock (2 million steps).
    pub fn drive(&mut self) {
        if let Err(l) = self.drive_bounded(2_000_000) {
            panic!("swarm did not quiesce: {l:?}");
        }
    }

    /// Runs at most `max_steps` steps; `Ok(steps)` if it went quiet, `Err` otherwise.
    pub fn drive_bounded(&mut self, max_steps: usize) -> Result<usize, Livelock> {
        for i in 0..max_steps {
            if !self.step() {
                return Ok(i);
            }
        }
        self.flush();
        if self.next_deadline().is_none() {
            return Ok(max_steps);
        }
        Err(Livelock { steps: max_steps, now: self.now })
    }

    /// Runs up to `k` steps (deliveries or timer firings).
    pub fn run_steps(&mut self, k: usize) {
        for _ in 0..k {
            if !self.step() {
                return;
            }
        }
    }

    /// Lets `d` of virtual time pass: every deadline up to then is handled.
    pub fn advance(&mut self, d: Span) {
        let target = self.now + d;
        for _ in 0..1_000_000 {
            self.flush();
            match self.next_deadline() {
                Some(t) if t <= target => {
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(target);
    }

    /// Every surviving honest peer that kept its tracker link has delivered each on-demand
    /// file it asked for, byte for byte (checked on the fly), and reported it complete.
    pub fn check_complete(&self) -> Result<(), String> {
        for (k, slot) in self.peers.iter().enumerate() {
            if slot.machine.is_none() || slot.spec.corrupt || slot.tracker_lost {
                continue;
            }
            for path in &slot.gets {
                let Some(data) = self.files.get(path) else { continue };
                let Some(content) = self.seed.content(path) else {
                    return Err(format!("{path} never published"));
                };
                let got = slot.delivered.get(&content).copied().unwrap_or(0);
                if got != data.len() as u64 || !slot.completed.contains_key(&content) {
                    let tail = &slot.events[slot.events.len().saturating_sub(6)..];
                    return Err(format!(
                        "peer {} got {got} of {} bytes of {path} (complete: {}); last events {tail:?}",
                        k + 2,
                        data.len(),
                        slot.completed.contains_key(&content)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Panics with every violation seen so far, if any.
    pub fn assert_ok(&self) {
        assert!(
            self.violations.is_empty(),
            "{} violations, first: {:#?}",
            self.violations.len(),
            &self.violations[..self.violations.len().min(5)]
        );
    }

    // ---- the network ----

    fn delay(&mut self) -> Span {
        let (lo, hi) = (self.opts.delay_min.as_nanos(), self.opts.delay_max.as_nanos());
        let spread = hi.saturating_sub(lo);
        let r = if spread == 0 { 0 } else { self.net.next_u64() % (spread + 1) };
        Span::from_nanos(lo + r)
    }

    fn push(&mut self, at: Time, d: Delivery) {
        self.seq += 1;
        self.queue.insert((at, self.seq), d);
    }

    /// Schedules towards end `to` of `link`, after everything already sent that way.
    fn push_fifo(&mut self, id: u64, to: usize, d: Delivery) {
        let at = self.now + self.delay();
        let Some(l) = self.links.get_mut(&id) else { return };
        let at = at.max(l.last[to]);
        l.last[to] = at;
        self.push(at, d);
    }

    /// End `node` of link `id` closes: the other end sees it after the data already sent.
    fn close_end(&mut self, id: u64, node: usize) {
        let Some(l) = self.links.get_mut(&id) else { return };
        let end = if l.ends[0].0 == node && l.open[0] { 0 } else { 1 };
        if !l.open[end] {
            return;
        }
        l.open[end] = false;
        let me = l.ends[end];
        let other = 1 - end;
        let notify = l.open[other] && !l.broken;
        self.endpoints.remove(&me);
        if notify {
            self.push_fifo(id, other, Delivery::Closed { link: id, to: other });
        }
    }

    fn connect(&mut self, from: usize, conn: ConnId, endpoint: &Endpoint) {
        let target =
            if endpoint.host == "tracker" { Some(TRACKER) } else { endpoint.host[1..].parse::<usize>().ok() };
        let now = self.now;
        let accepted = match target {
            Some(TRACKER) => self.tracker.accept(now, format!("n{from}")).ok().map(|c| (TRACKER, c)),
            Some(SEED) => self.seed.accept(now).ok().map(|c| (SEED, c)),
            Some(j) => self
                .peers
                .get_mut(j.wrapping_sub(2))
                .and_then(|s| s.machine.as_mut())
                .and_then(|p| p.accept(now).ok())
                .map(|c| (j, c)),
            None => None,
        };
        let id = self.next_link;
        self.next_link += 1;
        match accepted {
            Some(remote) => {
                self.links.insert(
                    id,
                    Link { ends: [(from, conn), remote], open: [true, true], broken: false, last: [now; 2] },
                );
                self.endpoints.insert((from, conn), (id, 0));
                self.endpoints.insert(remote, (id, 1));
                self.with_node(from, |n, now| n.connected(now, conn));
            }
            None => {
                // Refused: the connector learns it after a round trip.
                let dead = (target.unwrap_or(usize::MAX), ConnId(u32::MAX));
                self.links.insert(
                    id,
                    Link { ends: [(from, conn), dead], open: [true, false], broken: false, last: [now; 2] },
                );
                self.endpoints.insert((from, conn), (id, 0));
                let at = self.now + self.delay();
                self.push(at, Delivery::Closed { link: id, to: 0 });
            }
        }
    }

    fn route(&mut self, from: usize, t: Transmit) {
        match t {
            Transmit::Connect { conn, endpoint, .. } => self.connect(from, conn, &endpoint),
            Transmit::Send { conn, msg } => {
                let Some(&(id, end)) = self.endpoints.get(&(from, conn)) else { return };
                let l = &self.links[&id];
                let other = 1 - end;
                if l.broken || !l.open[other] {
                    return;
                }
                if from == TRACKER
                    && let Message::Transfer(o) = &msg
                    && o.side == Side::Giver
                {
                    let giver = l.ends[other].0;
                    self.check_order(giver, o.content, o.chunk);
                }
                self.push_fifo(id, other, Delivery::Msg { link: id, to: other, msg });
            }
            Transmit::Close { conn, .. } => {
                if let Some(&(id, _)) = self.endpoints.get(&(from, conn)) {
                    self.close_end(id, from);
                }
            }
        }
    }

    fn deliver(&mut self, seq: u64, d: Delivery) {
        match d {
            Delivery::Msg { link, to, msg } => {
                let Some(l) = self.links.get(&link) else { return };
                if l.broken || !l.open[to] {
                    return;
                }
                let (node, conn) = l.ends[to];
                if let Some(tr) = self.trace.as_mut() {
                    tr.push((link, to, self.now, seq));
                }
                self.delivered_msgs += 1;
                self.with_node(node, |n, now| n.message(now, conn, msg));
            }
            Delivery::Closed { link, to } => {
                let Some(l) = self.links.get_mut(&link) else { return };
                if !l.open[to] {
                    return;
                }
                l.open[to] = false;
                let (node, conn) = l.ends[to];
                let other = l.ends[1 - to].0;
                self.endpoints.remove(&(node, conn));
                if node >= 2 && other == TRACKER {
                    self.peers[node - 2].tracker_lost = true;
                }
                self.with_node(node, |n, now| n.closed(now, conn));
            }
        }
    }

    // ---- the machines ----

    fn with_node(&mut self, node: usize, f: impl FnOnce(AnyNode<'_>, Time)) {
        let now = self.now;
        match node {
            TRACKER => f(AnyNode::Tracker(&mut self.tracker), now),
            SEED => f(AnyNode::Seed(&mut self.seed), now),
            k => {
                if let Some(p) = self.peers.get_mut(k - 2).and_then(|s| s.machine.as_mut()) {
                    f(AnyNode::Peer(p), now)
                }
            }
        }
    }

    fn next_timer(&self) -> Option<Time> {
        let peers = self.peers.iter().filter_map(|s| s.machine.as_ref()).filter_map(|p| p.poll_timeout());
        [self.tracker.poll_timeout(), self.seed.poll_timeout()].into_iter().flatten().chain(peers).min()
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        if self.tracker.poll_timeout().is_some_and(|t| t <= now) {
            self.tracker.handle_timeout(now);
        }
        if self.seed.poll_timeout().is_some_and(|t| t <= now) {
            self.seed.handle_timeout(now);
        }
        for p in self.peers.iter_mut().filter_map(|s| s.machine.as_mut()) {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        }
    }

    /// Routes every output until all machines are quiet (no time passes). Seeds and peers
    /// go first, so an `Unprovide` they produced is in flight before the tracker's orders
    /// are checked.
    pub fn flush(&mut self) {
        loop {
            let mut moved = false;
            while let Some(t) = self.seed.poll_transmit() {
                moved = true;
                self.route(SEED, t);
            }
            for k in 0..self.peers.len() {
                while let Some(t) = self.peers[k].machine.as_mut().and_then(|p| p.poll_transmit()) {
                    moved = true;
                    self.route(k + 2, t);
                }
            }
            self.drain_events();
            while let Some(t) = self.tracker.poll_transmit() {
                moved = true;
                self.route(TRACKER, t);
            }
            self.drain_tracker_events();
            if !moved {
                return;
            }
        }
    }

    fn drain_events(&mut self) {
        while let Some(e) = self.seed.poll_event() {
            self.seed_events.push(e);
        }
        for k in 0..self.peers.len() {
            while let Some(e) = self.peers[k].machine.as_mut().and_then(|p| p.poll_event()) {
                self.on_peer_event(k, &e);
                self.peers[k].events.push(e);
            }
        }
    }

    fn drain_tracker_events(&mut self) {
        while let Some(e) = self.tracker.poll_event() {
            match &e {
                TrackerEvent::Banned { peer } => {
                    self.banned.insert(*peer);
                }
                TrackerEvent::Ordered { giver, token, chunk, .. } if self.banned.contains(giver) => {
                    self.violations.push(format!(
                        "t={:?}: order {token:?} of chunk {chunk} from {giver:?}, banned earlier",
                        self.now
                    ));
                }
                _ => {}
            }
            self.tracker_events.push(e);
        }
    }

    /// A peer event: deliveries must be the source's bytes, contiguous (on-demand: from 0;
    /// live: from the join point, skipping forward only when the window slid).
    fn on_peer_event(&mut self, k: usize, e: &PeerEvent) {
        match e {
            PeerEvent::Deliver { content, offset, payload } => {
                let bytes = match payload {
                    Payload::Real(b) => b.clone(),
                    Payload::Virtual { .. } => {
                        return self.violations.push(format!("peer {}: virtual payload delivered", k + 2));
                    }
                };
                let (expected, live) = self.source(*content, *offset, bytes.len());
                let next = self.peers[k].delivered.get(content).copied();
                let in_order = match (next, live) {
                    (None, false) => *offset == 0,
                    (Some(n), false) => *offset == n,
                    (None, true) => true,
                    (Some(n), true) => *offset >= n,
                };
                if !in_order {
                    self.violations.push(format!(
                        "peer {}: delivery at {offset} of content {} after {next:?}",
                        k + 2,
                        content.0
                    ));
                }
                if expected.as_deref() != Some(&bytes[..]) {
                    self.violations.push(format!(
                        "peer {}: {} delivered bytes at {offset} of content {} differ from the source",
                        k + 2,
                        bytes.len(),
                        content.0
                    ));
                }
                self.peers[k].delivered.insert(*content, offset + bytes.len() as u64);
            }
            PeerEvent::DownloadComplete { content } => {
                self.peers[k].completed.insert(*content, self.now);
            }
            PeerEvent::TrackerLost { .. } => self.peers[k].tracker_lost = true,
            _ => {}
        }
    }

    /// The source bytes at `offset..offset+len` of a content, and whether it is live.
    fn source(&self, content: ContentId, offset: u64, len: usize) -> (Option<Vec<u8>>, bool) {
        for (path, data) in &self.files {
            if self.seed.content(path) == Some(content) {
                let r = offset as usize..offset as usize + len;
                return (data.get(r).map(<[u8]>::to_vec), false);
            }
        }
        for (path, src) in &self.live {
            if self.seed.content(path) == Some(content) {
                let cs = u64::from(src.chunk_size);
                if offset % cs != 0 {
                    return (None, true);
                }
                let mut v = Vec::new();
                let mut i = (offset / cs) as usize;
                while v.len() < len {
                    let Some(c) = src.chunks.get(i) else { return (None, true) };
                    v.extend_from_slice(c);
                    i += 1;
                }
                return (Some(v), true);
            }
        }
        (None, false)
    }

    /// The tracker orders `giver` to give `chunk`: the giver's real store must hold it.
    ///
    /// Excused races (counted in `orders_excused`), each a message the tracker has not seen
    /// yet and that makes the order harmless (the giver refuses it and unprovides, or the
    /// tracker cancels it):
    /// * the giver was killed and its link's close is still in flight;
    /// * the giver's `Unprovide` covering the chunk (a live window slid, or a copy dropped),
    ///   or the seed's `AppendChunks` moving its window past the chunk, is in flight to the
    ///   tracker;
    /// * the seed's `Published` for the content is still in flight (the seed opens its
    ///   store when it arrives, before the order behind it on the same connection).
    pub fn check_order(&mut self, giver: usize, content: ContentId, chunk: ChunkIndex) {
        let held = match giver {
            SEED => Some(self.seed.store().contains(content, chunk)),
            TRACKER => Some(false),
            k => self
                .peers
                .get(k - 2)
                .and_then(|s| s.machine.as_ref())
                .map(|p| p.store().contains(content, chunk)),
        };
        match held {
            Some(true) => self.orders_checked += 1,
            None => self.orders_excused += 1,
            Some(false) if self.race_in_flight(giver, content, chunk) => self.orders_excused += 1,
            Some(false) => self.violations.push(format!(
                "t={:?}: tracker ordered node {giver} to give chunk {chunk} of content {} it does not hold",
                self.now, content.0
            )),
        }
    }

    fn race_in_flight(&self, giver: usize, content: ContentId, chunk: ChunkIndex) -> bool {
        let cs = self.chunk_size(content);
        let covers = |i: &Interest| {
            i.content == content
                && i.range.is_none_or(|r| {
                    let start = u64::from(chunk) * cs;
                    r.start <= start && r.end.is_none_or(|e| e > start)
                })
        };
        self.queue.values().any(|d| {
            let Delivery::Msg { link, to, msg } = d else { return false };
            let Some(l) = self.links.get(link) else { return false };
            let (dest, from) = (l.ends[*to].0, l.ends[1 - *to].0);
            match msg {
                Message::Unprovide(i) => dest == TRACKER && from == giver && covers(i),
                Message::AppendChunks(a) => {
                    dest == TRACKER && from == giver && a.content == content && a.window_start > chunk
                }
                Message::Published(p) => dest == giver && p.content == content,
                _ => false,
            }
        })
    }

    fn chunk_size(&self, content: ContentId) -> u64 {
        for (path, src) in &self.live {
            if self.seed.content(path) == Some(content) {
                return u64::from(src.chunk_size);
            }
        }
        self.tracker
            .stats()
            .contents
            .iter()
            .find(|c| c.content == content)
            .map_or(1, |c| u64::from(c.chunk_size))
    }

    /// After every step: per-node limits, and live viewers' windows.
    fn check_step(&mut self) {
        let cfg = self.tracker.config().clone();
        for n in self.tracker.stats().nodes {
            let l = if n.role == Role::Seed { cfg.seed_limits } else { cfg.limits };
            if n.uploads > l.max_uploads
                || n.downloads > l.max_downloads
                || n.uploads + n.downloads > l.max_transfers
            {
                self.violations.push(format!(
                    "t={:?}: {:?} has {} uploads and {} downloads, limits {l:?}",
                    self.now, n.peer, n.uploads, n.downloads
                ));
            }
        }
        for (k, slot) in self.peers.iter().enumerate() {
            let Some(p) = slot.machine.as_ref() else { continue };
            let live_only = !slot.gets.is_empty() && slot.gets.iter().all(|g| self.live.contains_key(g));
            if live_only && p.store().chunk_count() > slot.spec.live_window as usize {
                self.violations.push(format!(
                    "t={:?}: peer {} holds {} chunks, live window {}",
                    self.now,
                    k + 2,
                    p.store().chunk_count(),
                    slot.spec.live_window
                ));
            }
        }
    }
}

/// One machine of any role, for the few calls every role has.
enum AnyNode<'a> {
    Tracker(&'a mut Tracker),
    Seed(&'a mut Seed<MemStore>),
    Peer(&'a mut Peer<MemStore>),
}

impl AnyNode<'_> {
    fn message(self, now: Time, conn: ConnId, msg: Message) {
        match self {
            Self::Tracker(t) => t.handle_message(now, conn, msg),
            Self::Seed(s) => s.handle_message(now, conn, msg),
            Self::Peer(p) => p.handle_message(now, conn, msg),
        }
    }

    fn closed(self, now: Time, conn: ConnId) {
        match self {
            Self::Tracker(t) => t.handle_closed(now, conn),
            Self::Seed(s) => s.handle_closed(now, conn),
            Self::Peer(p) => p.handle_closed(now, conn),
        }
    }

    fn connected(self, now: Time, conn: ConnId) {
        match self {
            Self::Tracker(_) => {}
            Self::Seed(s) => s.handle_connected(now, conn),
            Self::Peer(p) => p.handle_connected(now, conn),
        }
    }
}

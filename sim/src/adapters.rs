//! Adapters from `pdtp_core`'s `Tracker`, `Seed` and `Peer` to [`SimNode`].
//!
//! Each adapter is a thin forwarder: it builds the real machine when the node starts, hands
//! it a [`VirtualStore`] (presence bits and digests, no bytes), forwards every input, and
//! turns the machine's events into the [`NodeEvent`]s the metrics read. The simulator never
//! re-implements protocol logic; only the live source's clock lives here, because a real seed
//! gets its chunks from a camera, not from the protocol.

use pdtp_core::memstore::VirtualStore;
// Core's events shared by peers and seeds; `NodeEvent` in this file is the simulator's own.
use pdtp_core::node::NodeEvent as EngineEvent;
use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
use pdtp_core::seed::{Seed, SeedConfig, SeedEvent};
use pdtp_core::tracker::{Tracker, TrackerConfig};
use pdtp_core::{ChunkIndex, ConnId, ContentId, Endpoint, Geometry, Message, PeerId, Time, Transmit};
use rand_core::SeedableRng;

use crate::node::{NodeEvent, NodeFactory, NodeSpec, PEER_PORT, Role, SimNode, TRACKER_PORT};
use crate::scenario::Scenario;
use crate::store::{virtual_digest, virtual_manifest};

/// The factory that builds real core machines for a run.
pub fn core_factory() -> Box<dyn NodeFactory> {
    Box::new(CoreFactory)
}

struct CoreFactory;

impl NodeFactory for CoreFactory {
    fn build(&mut self, spec: &NodeSpec<'_>) -> Box<dyn SimNode> {
        let tracker = Endpoint { host: spec.tracker_host.to_string(), port: TRACKER_PORT };
        match spec.role {
            Role::Tracker => Box::new(TrackerNode {
                tracker: Tracker::new(tracker_config(spec.scenario, spec.seed_key), rng(spec.rng_seed)),
            }),
            Role::Seed => {
                let mut config =
                    SeedConfig::new(PeerId(SEED_ID_BASE + spec.index), tracker, spec.seed_key.to_vec());
                config.listen_port = Some(PEER_PORT);
                config.stall_timeout = spec.scenario.policy.stall_timeout.0;
                config.transfer_timeout = TRANSFER_TIMEOUT;
                // The simulated tracker never goes away; a link it closes is final.
                config.tracker_retry = None;
                let seeds = &spec.scenario.seeds;
                config.uplink_bps = seeds.states_uplink.then_some(seeds.upload.0);
                Box::new(SeedNode {
                    config,
                    rng_seed: spec.rng_seed,
                    path: spec.content_path.to_string(),
                    scenario_live: spec.scenario.content.live.map(|l| LiveSource {
                        chunk_size: spec.scenario.content.chunk_size.0 as u32,
                        bitrate_bps: l.bitrate.0,
                        total_bytes: spec.scenario.file_bytes(),
                        chunk_ns: spec.scenario.content.chunk_size.0 as f64 * 8.0 / l.bitrate.0 as f64 * 1e9,
                        next: 0,
                        next_at: Time::NEVER,
                    }),
                    geometry: Geometry::new(
                        spec.scenario.file_bytes(),
                        spec.scenario.content.chunk_size.0 as u32,
                    ),
                    machine: None,
                    store: Some(VirtualStore::origin()),
                    content: None,
                })
            }
            Role::Peer => {
                let mut config = PeerConfig::new(PeerId(spec.index + 1), tracker);
                config.listen_port = Some(PEER_PORT);
                config.stall_timeout = spec.scenario.policy.stall_timeout.0;
                config.transfer_timeout = TRANSFER_TIMEOUT;
                config.tracker_retry = None;
                // Only when and where chunks are delivered is measured, not their bytes.
                config.deliver_payloads = false;
                // A viewer's player skips what its buffer has passed, and joins at least half
                // its buffer behind the newest chunk (the core's rule, from the stream's
                // bitrate in its manifest).
                config.playback_deadline = spec.scenario.content.live.map(|l| l.buffer.0);
                let chunk_size = spec.scenario.content.chunk_size.0.max(1);
                Box::new(PeerNode {
                    config,
                    rng_seed: spec.rng_seed,
                    path: spec.content_path.to_string(),
                    chunk_size,
                    last_chunk: spec.scenario.file_bytes().div_ceil(chunk_size).saturating_sub(1)
                        as ChunkIndex,
                    live: spec.scenario.content.live.is_some(),
                    machine: None,
                    store: Some(VirtualStore::new()),
                    starts: 0,
                    queued: None,
                    now: Time::ZERO,
                    retry_at: None,
                    content: None,
                    completed: false,
                })
            }
        }
    }
}

/// How long a viewer told `UnknownUrl` waits before asking again.
///
/// Seeds start at time zero, but their `Publish` reaches the tracker only after their own
/// connect, `Hello`/`Welcome` and `Publish` trips; a viewer arriving at (nearly) the same
/// time can ask first and be told the path is unknown. A person (or a player) would try
/// again; without this the viewer waited forever and the run ended `quiescent`.
pub const UNKNOWN_URL_RETRY: pdtp_core::Span = pdtp_core::Span::from_millis(250);

/// How long a transfer under way may run before it fails, on every node (the core's
/// default, set here so scenario validation can refuse a chunk that could not reach a
/// viewer in time).
pub const TRANSFER_TIMEOUT: pdtp_core::Span = pdtp_core::Span::from_secs(120);

/// Seeds' peer ids start here so they never collide with viewers' (`index + 1`).
const SEED_ID_BASE: u32 = 4_000_000_000;

fn rng(seed: u64) -> pdtp_core::Rng {
    pdtp_core::Rng::seed_from_u64(seed)
}

/// The tracker configuration a scenario asks for.
pub fn tracker_config(scenario: &Scenario, key: &[u8]) -> TrackerConfig {
    let mut config = TrackerConfig::with_key(key.to_vec());
    scenario.policy.apply(&mut config);
    config.transfer_timeout = TRANSFER_TIMEOUT;
    config.max_connections = u32::try_from(scenario.peer_count() + 64).unwrap_or(u32::MAX);
    config
}

struct TrackerNode {
    tracker: Tracker,
}

impl SimNode for TrackerNode {
    fn start(&mut self, _now: Time) {}
    fn stop(&mut self, _now: Time) {}
    fn accept(&mut self, now: Time, remote_host: &str) -> Option<ConnId> {
        self.tracker.accept(now, remote_host.to_string()).ok()
    }
    fn handle_connected(&mut self, _now: Time, _conn: ConnId) {}
    fn handle_closed(&mut self, now: Time, conn: ConnId) {
        self.tracker.handle_closed(now, conn);
    }
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        self.tracker.handle_message(now, conn, msg);
    }
    fn handle_timeout(&mut self, now: Time) {
        self.tracker.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.tracker.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        // The metrics count payload bytes from the network model; tracker events are only
        // drained so they do not pile up.
        while self.tracker.poll_event().is_some() {}
        None
    }
    fn poll_timeout(&self) -> Option<Time> {
        self.tracker.poll_timeout()
    }
}

/// The live source feeding a seed: chunk `i` exists at `(i + 1) · chunk_time`.
struct LiveSource {
    chunk_size: u32,
    bitrate_bps: u64,
    total_bytes: u64,
    /// τ in nanoseconds; chunk `i` is pushed at `round((i + 1) · τ)`, as the metrics' stream
    /// clock assumes.
    chunk_ns: f64,
    next: ChunkIndex,
    next_at: Time,
}

impl LiveSource {
    /// When chunk `i` is complete at the source.
    fn produced(&self, i: ChunkIndex) -> Time {
        Time::from_nanos(((f64::from(i) + 1.0) * self.chunk_ns).round() as u64)
    }
}

struct SeedNode {
    config: SeedConfig,
    rng_seed: u64,
    path: String,
    scenario_live: Option<LiveSource>,
    geometry: Geometry,
    machine: Option<Seed<VirtualStore>>,
    /// The store while the machine is down (kept across restarts).
    store: Option<VirtualStore>,
    content: Option<ContentId>,
}

impl SeedNode {
    fn push_due_chunks(&mut self, now: Time) {
        let (Some(seed), Some(live), Some(content)) =
            (self.machine.as_mut(), self.scenario_live.as_mut(), self.content)
        else {
            return;
        };
        while live.next_at <= now {
            let start = u64::from(live.next) * u64::from(live.chunk_size);
            if start >= live.total_bytes {
                live.next_at = Time::NEVER;
                break;
            }
            let len = (live.total_bytes - start).min(u64::from(live.chunk_size)) as u32;
            let digest = virtual_digest(&self.path, live.next);
            seed.store_mut().put(content, live.next, len, digest);
            seed.push_live_chunk(now, &self.path, len, digest);
            live.next += 1;
            live.next_at = live.produced(live.next);
        }
    }
}

impl SimNode for SeedNode {
    fn start(&mut self, now: Time) {
        let store = self.store.take().unwrap_or_else(VirtualStore::origin);
        let mut seed = Seed::new(now, self.config.clone(), store, rng(self.rng_seed));
        match &mut self.scenario_live {
            Some(live) => {
                seed.start_live(now, &self.path, live.chunk_size, live.bitrate_bps);
                live.next_at = live.produced(0);
            }
            None => seed.publish(now, virtual_manifest(&self.path, self.geometry, None)),
        }
        self.machine = Some(seed);
    }
    fn stop(&mut self, _now: Time) {
        self.store = self.machine.take().map(Seed::into_store);
    }
    fn accept(&mut self, now: Time, _remote_host: &str) -> Option<ConnId> {
        self.machine.as_mut().and_then(|m| m.accept(now).ok())
    }
    fn handle_connected(&mut self, now: Time, conn: ConnId) {
        if let Some(m) = self.machine.as_mut() {
            m.handle_connected(now, conn);
        }
    }
    fn handle_closed(&mut self, now: Time, conn: ConnId) {
        if let Some(m) = self.machine.as_mut() {
            m.handle_closed(now, conn);
        }
    }
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        if let Some(m) = self.machine.as_mut() {
            m.handle_message(now, conn, msg);
        }
    }
    fn handle_timeout(&mut self, now: Time) {
        if let Some(m) = self.machine.as_mut() {
            m.handle_timeout(now);
        }
        self.push_due_chunks(now);
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.machine.as_mut()?.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        let seed = self.machine.as_mut()?;
        while let Some(e) = seed.poll_event() {
            match e {
                SeedEvent::Published { content, .. } => self.content = Some(content),
                SeedEvent::Node(EngineEvent::TransferFailed { .. }) => {
                    return Some(NodeEvent::TransferFailed);
                }
                _ => {}
            }
        }
        None
    }
    fn poll_timeout(&self) -> Option<Time> {
        let machine = self.machine.as_ref()?.poll_timeout();
        let live = self.scenario_live.as_ref().filter(|_| self.content.is_some()).map(|l| l.next_at);
        match (machine, live) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b).filter(|&t| t != Time::NEVER),
        }
    }
}

struct PeerNode {
    config: PeerConfig,
    rng_seed: u64,
    path: String,
    chunk_size: u64,
    last_chunk: ChunkIndex,
    live: bool,
    machine: Option<Peer<VirtualStore>>,
    /// The store while the machine is down (kept across churn).
    store: Option<VirtualStore>,
    /// How many times the node started (each start draws a fresh generator).
    starts: u64,
    /// An event to report on the next poll.
    queued: Option<NodeEvent>,
    /// The time of the last message handled (when an `UnknownUrl` drained after it came).
    now: Time,
    /// When to ask for the content again after `UnknownUrl` ([`UNKNOWN_URL_RETRY`]).
    retry_at: Option<Time>,
    /// Live: the stream's content id, once the manifest came (to read the delivery cursor).
    content: Option<ContentId>,
    /// `Completed` was reported by the current machine.
    completed: bool,
}

impl PeerNode {
    /// Live: `Completed` once delivery has passed the stream's last chunk, whether the chunk
    /// was played or skipped (the player had passed it); reported once per machine.
    fn live_done(&mut self) -> Option<NodeEvent> {
        if !self.live || self.completed {
            return None;
        }
        let next = self.machine.as_ref()?.delivery_cursor(self.content?)?;
        (next > self.last_chunk).then(|| {
            self.completed = true;
            NodeEvent::Completed
        })
    }
}

impl SimNode for PeerNode {
    fn start(&mut self, now: Time) {
        let store = self.store.take().unwrap_or_default();
        let seed = self.rng_seed.wrapping_add(self.starts);
        self.starts += 1;
        let mut peer = Peer::new(now, self.config.clone(), store, rng(seed));
        peer.get(now, &self.path);
        self.machine = Some(peer);
        self.retry_at = None;
        self.completed = false;
    }
    fn stop(&mut self, _now: Time) {
        self.retry_at = None;
        // A returning viewer starts a new machine; its store is kept, but the new machine
        // does not scan it (see docs/simulator.md).
        self.store = self.machine.take().map(Peer::into_store);
    }
    fn accept(&mut self, now: Time, _remote_host: &str) -> Option<ConnId> {
        self.machine.as_mut().and_then(|m| m.accept(now).ok())
    }
    fn handle_connected(&mut self, now: Time, conn: ConnId) {
        if let Some(m) = self.machine.as_mut() {
            m.handle_connected(now, conn);
        }
    }
    fn handle_closed(&mut self, now: Time, conn: ConnId) {
        if let Some(m) = self.machine.as_mut() {
            m.handle_closed(now, conn);
        }
    }
    fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        self.now = now;
        if let Some(m) = self.machine.as_mut() {
            m.handle_message(now, conn, msg);
        }
    }
    fn handle_timeout(&mut self, now: Time) {
        if let Some(m) = self.machine.as_mut() {
            if self.retry_at.is_some_and(|t| t <= now) {
                self.retry_at = None;
                m.get(now, &self.path);
            }
            m.handle_timeout(now);
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.machine.as_mut()?.poll_transmit()
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        if let Some(ev) = self.queued.take() {
            return Some(ev);
        }
        let peer = self.machine.as_mut()?;
        while let Some(e) = peer.poll_event() {
            let ev = match e {
                PeerEvent::ChunkVerified { chunk, .. } => NodeEvent::ChunkVerified { chunk },
                PeerEvent::ChunkRejected { chunk, .. } => NodeEvent::ChunkRejected { chunk },
                PeerEvent::Node(EngineEvent::TransferFailed { .. }) => NodeEvent::TransferFailed,
                PeerEvent::DownloadComplete { .. } if !self.live => {
                    self.completed = true;
                    NodeEvent::Completed
                }
                // A player that lost its tracker before it was done tries again, as a person
                // would restart it (`pdtp-node get` stops and says so).
                PeerEvent::TrackerLost { .. } if !self.completed => NodeEvent::TrackerLost,
                PeerEvent::UnknownUrl { .. } => {
                    // Read by the engine's `poll_timeout` right after this drain.
                    self.retry_at = Some(self.now + UNKNOWN_URL_RETRY);
                    continue;
                }
                PeerEvent::ManifestReceived { content, .. } => {
                    self.content = Some(content);
                    continue;
                }
                PeerEvent::Deliver { offset, payload, .. } => {
                    let chunk = (offset / self.chunk_size) as ChunkIndex;
                    drop(payload);
                    // A live viewer is done once it played the stream's last chunk.
                    self.queued = self.live_done();
                    NodeEvent::InOrder { chunk }
                }
                _ => continue,
            };
            return Some(ev);
        }
        // Or once it skipped past it.
        self.live_done()
    }
    fn poll_timeout(&self) -> Option<Time> {
        let machine = self.machine.as_ref()?.poll_timeout();
        match (machine, self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

//! The seed (origin) machine: authenticates to the tracker, publishes contents (on demand
//! or live) and serves chunks exactly as a peer's giver side does.
//!
//! ```text
//!  app               Seed                       tracker
//!   |                 |-- Hello(role: Seed) ------>|
//!   |                 |<-- Welcome(nonce) ---------|
//!   | publish(m) ---->|-- Publish(m, proof) ------>|   proof = auth::publish_proof(key, nonce, m, uplink)
//!   |                 |<-- Published(path, id) ----|   store.open(id, &m)
//!   |<- Published     |                            |
//!   | push_live_chunk>|-- AppendChunks(.., proof) ->|  proof = auth::append_proof(..)
//! ```
//!
//! Storage is keyed by `ContentId`, which the seed learns only from `Published`: the seed
//! calls [`ChunkStore::open`] with the id and the manifest then, and drivers bind the file
//! at `manifest.path` (under their file root) to that id inside `open`. Live chunks are
//! stored by the driver under the published id before it calls
//! [`Seed::push_live_chunk`].

mod live;

use std::collections::{BTreeMap, BTreeSet};

use crate::auth::publish_proof;
use crate::bitset::BitSet;
use crate::ids::{ConnId, ContentId, Endpoint, PeerId};
use crate::manifest::Manifest;
use crate::node::{Content, Node, NodeConfig, NodeEvent, NodeStats, Up};
use crate::output::Transmit;
use crate::signing::{Chain, SigningKey};
use crate::store::ChunkStore;
use crate::time::{Span, Time};
use crate::wire::{ErrorCode, Message, Notice, Publish, Published, Role};

/// How a seed behaves; [`SeedConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct SeedConfig {
    /// Our id in the swarm.
    pub peer_id: PeerId,
    /// The port we accept peer links on, if any.
    pub listen_port: Option<u16>,
    /// Where the tracker listens.
    pub tracker: Endpoint,
    /// The seed key shared with the tracker (never sent).
    pub key: Vec<u8>,
    /// A giver order whose taker never asked this long after it arrived is forgotten (20 s).
    pub stall_timeout: Span,
    /// A served chunk whose verdict never came is forgotten after this (120 s).
    pub transfer_timeout: Span,
    /// How long a peer request waits for its matching order (default 5 s).
    pub order_wait: Span,
    /// Peer links with no transfer for this long are closed (default 30 s).
    pub link_idle: Span,
    /// Chunks of a live stream kept (and offered) behind the live edge (default 64).
    pub live_window: u32,
    /// Signs every manifest and live append (`signing`), so viewers that pin its public
    /// key need not trust the tracker; `None`: unsigned.
    pub signing_key: Option<SigningKey>,
    /// A tracker lost after its welcome is reconnected to, backing off up to this between
    /// attempts (default 30 s), and everything is published again; `None`: a lost tracker
    /// is final (`SeedEvent::TrackerLost`).
    pub tracker_retry: Option<Span>,
    /// The uplink this seed gives the swarm, in bits/s on the wire, if its operator knows it:
    /// stated in every publish, so the tracker schedules the seed at that rate from its first
    /// copy (`Publish::uplink_bps`). `None` (the default): the tracker measures it.
    pub uplink_bps: Option<u64>,
}

impl SeedConfig {
    /// The defaults for `peer_id` with seed key `key`, talking to `tracker`.
    pub fn new(peer_id: PeerId, tracker: Endpoint, key: impl Into<Vec<u8>>) -> Self {
        Self {
            peer_id,
            listen_port: None,
            tracker,
            key: key.into(),
            stall_timeout: Span::from_secs(20),
            transfer_timeout: Span::from_secs(120),
            order_wait: Span::from_secs(5),
            link_idle: Span::from_secs(30),
            live_window: 64,
            signing_key: None,
            tracker_retry: Some(Span::from_secs(30)),
            uplink_bps: None,
        }
    }
}

/// What a seed reports to its application, drained with [`Seed::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SeedEvent {
    /// The tracker accepted our `Hello`.
    Welcomed,
    /// A publish was accepted.
    Published {
        /// The manifest's path.
        path: String,
        /// The id the tracker assigned.
        content: ContentId,
    },
    /// The tracker refused us (bad key or manifest); the connection is closed.
    Refused(Notice),
    /// The tracker link is gone.
    TrackerLost,
    /// The tracker warns about something we publish (a live stream past what its swarm can
    /// carry, and when it is back within): for the operator, not a fault of this node.
    TrackerWarning(Notice),
    /// An event of the engine seeds share with peers: a chunk served, a rejecting verdict on
    /// one, a failed transfer, a problem.
    Node(NodeEvent),
}

impl From<NodeEvent> for SeedEvent {
    fn from(e: NodeEvent) -> Self {
        SeedEvent::Node(e)
    }
}

/// The seed machine (see the module docs).
///
/// Getters: [`peer_id`](Self::peer_id), [`content`](Self::content), [`stats`](Self::stats),
/// [`window_start`](Self::window_start), [`store`](Self::store). Inputs: `handle_*`.
/// Commands: [`publish`](Self::publish), [`start_live`](Self::start_live),
/// [`push_live_chunk`](Self::push_live_chunk), [`accept`](Self::accept). Outputs: `poll_*`.
pub struct Seed<S> {
    node: Node<S, SeedEvent>,
    /// Reserved for randomised choices; every random decision must come from here.
    #[allow(dead_code)]
    rng: crate::Rng,
    key: Vec<u8>,
    uplink_bps: Option<u64>,
    signer: Option<SigningKey>,
    /// Each live stream's signed chain so far, by path.
    chains: BTreeMap<String, Chain>,
    live_window: u32,
    /// Manifests to publish once welcomed.
    queued: Vec<Manifest>,
    /// Manifests sent, awaiting `Published`.
    sent: Vec<Manifest>,
    /// Published paths.
    published: BTreeMap<String, ContentId>,
    /// Live streams ended (their end mark goes out again after a tracker outage).
    ended: BTreeSet<String>,
    /// Paths published again (a new version) whose `Published` has not come yet.
    replacing: BTreeSet<String>,
}

impl<S: ChunkStore> Seed<S> {
    /// A seed that starts by connecting to its tracker (a `Connect` is queued).
    pub fn new(now: Time, config: SeedConfig, store: S, rng: crate::Rng) -> Self {
        let cfg = NodeConfig {
            peer_id: config.peer_id,
            listen_port: config.listen_port,
            role: Role::Seed,
            tracker: config.tracker,
            stall_timeout: config.stall_timeout,
            transfer_timeout: config.transfer_timeout,
            progress_timeout: None,
            order_wait: config.order_wait,
            link_idle: config.link_idle,
            corrupt_uploads: false,
            tracker_retry: config.tracker_retry,
        };
        Self {
            node: Node::new(now, cfg, store),
            rng,
            key: config.key,
            uplink_bps: config.uplink_bps,
            signer: config.signing_key,
            chains: BTreeMap::new(),
            live_window: config.live_window.max(1),
            queued: Vec::new(),
            sent: Vec::new(),
            published: BTreeMap::new(),
            ended: BTreeSet::new(),
            replacing: BTreeSet::new(),
        }
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.node.cfg.peer_id
    }

    /// The secret of the peer link with id `id` that an order of ours awaits (the driver
    /// seals an accepted peer link with it; `None`: no such order, yet).
    pub fn link_key(&self, id: &[u8; 16]) -> Option<crate::wire::LinkSecret> {
        self.node.link_key(id)
    }

    /// The chunk store.
    pub fn store(&self) -> &S {
        &self.node.store
    }

    /// Ends the machine and hands back its store (a driver restarting a seed after churn).
    ///
    /// A new machine built on it starts with an empty chunk bitset: it does not scan the
    /// store, so chunks already there are fetched again (and overwritten) if ordered.
    pub fn into_store(self) -> S {
        self.node.store
    }

    /// The chunk store, mutably (a live driver stores new chunks through it).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.node.store
    }

    /// Withdraws every published file whose bytes changed since it was published (the
    /// store's [`ChunkStore::changed`]): each is unprovided at the tracker and reported as
    /// [`NodeEvent::Withdrawn`], as when a taker's request finds it changed. A driver calls
    /// this now and then, so a change is noticed while nobody downloads.
    pub fn withdraw_changed(&mut self, now: Time) {
        self.node.withdraw_changed(now);
    }

    /// The content id a published path got.
    pub fn content(&self, path: &str) -> Option<ContentId> {
        self.published.get(path).copied()
    }

    /// Transfer counters (bytes and chunks served).
    pub fn stats(&self) -> NodeStats {
        self.node.stats
    }

    /// Transfers in progress.
    pub fn active_transfers(&self) -> usize {
        self.node.active_transfers()
    }

    /// Publishes a content: now if welcomed, otherwise as soon as the tracker welcomes us.
    /// A path published before gets a new version: the old one is served until the tracker
    /// takes the new one, then dropped (the new one has its own content id, or the old one's
    /// when the manifest is the same).
    pub fn publish(&mut self, now: Time, manifest: Manifest) {
        if let Err(e) = manifest.check() {
            let n = Notice::new(ErrorCode::Malformed, format!("{}: {e}", manifest.path));
            return self.node.emit(NodeEvent::Problem(n));
        }
        if self.published.contains_key(&manifest.path) {
            // The old version is served on until the tracker takes the new one.
            self.replacing.insert(manifest.path.clone());
        }
        if self.node.welcomed() {
            self.send_publish(now, manifest);
        } else {
            self.queued.push(manifest);
        }
    }

    /// Registers a peer link the driver accepted and returns its handle, or the notice to
    /// send before closing it when the connection table is full.
    pub fn accept(&mut self, now: Time) -> Result<ConnId, Notice> {
        self.node.accept(now)
    }

    /// An outgoing connection (`Transmit::Connect`) succeeded.
    pub fn handle_connected(&mut self, now: Time, conn: ConnId) {
        self.node.handle_connected(now, conn);
    }

    /// A connection failed or the remote closed it.
    pub fn handle_closed(&mut self, now: Time, conn: ConnId) {
        let up = self.node.handle_closed(now, conn);
        self.up(now, up);
    }

    /// A message arrived on `conn`.
    pub fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        let up = self.node.handle_message(now, conn, msg);
        self.up(now, up);
        self.node.rearm(now);
    }

    /// Fires the timers that are due; an early or repeated call does nothing.
    pub fn handle_timeout(&mut self, now: Time) {
        self.node.handle_timeout(now);
    }

    /// The next transmission for the driver, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<SeedEvent> {
        self.node.events.pop_front()
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do.
    ///
    /// It changes on every `handle_*` call and on `accept`: giver orders waiting for their
    /// taker or their verdict, peer requests held for their order, and link activity.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.node.poll_timeout()
    }

    fn send_publish(&mut self, now: Time, manifest: Manifest) {
        let Some(nonce) = self.node.nonce else { return self.queued.push(manifest) };
        let proof = publish_proof(&self.key, &nonce, &manifest, self.uplink_bps);
        let chain = Chain::of(&manifest);
        let signature = self.signer.as_ref().map(|k| k.sign(&chain.statement(manifest.geometry.size, false)));
        if manifest.is_live() {
            self.chains.insert(manifest.path.trim_start_matches('/').to_string(), chain);
        }
        let publish = Publish { manifest: manifest.clone(), proof, signature, uplink_bps: self.uplink_bps };
        self.node.send_tracker(now, Message::Publish(Box::new(publish)));
        self.sent.push(manifest);
    }

    fn up(&mut self, now: Time, up: Up) {
        match up {
            Up::None => {}
            Up::Welcomed => {
                self.node.events.push_back(SeedEvent::Welcomed);
                for m in std::mem::take(&mut self.queued) {
                    self.send_publish(now, m);
                }
                // Back after a tracker outage: publish everything again, live streams with
                // every chunk made meanwhile.
                let again: Vec<Manifest> = self
                    .published
                    .values()
                    .filter_map(|id| self.node.contents.get(id))
                    .map(|c| c.manifest.clone())
                    .collect();
                for m in again {
                    self.send_publish(now, m);
                }
            }
            Up::TrackerDown => {
                // Publishes the lost tracker never answered go out again at the welcome.
                self.queued.append(&mut self.sent);
            }
            Up::Tracker(Message::Published(p)) => self.on_published(now, p),
            Up::Tracker(Message::Warning(n)) => self.node.events.push_back(SeedEvent::TrackerWarning(n)),
            Up::Tracker(other) => {
                let n =
                    Notice::new(ErrorCode::Unexpected, format!("tracker sent {} to a seed", other.kind()));
                self.node.emit(NodeEvent::Problem(n));
            }
            Up::TrackerLost(notice) => {
                match notice {
                    Some(n) if matches!(n.code, ErrorCode::Unauthorized | ErrorCode::Malformed) => {
                        self.node.events.push_back(SeedEvent::Refused(n));
                    }
                    Some(n) => self.node.emit(NodeEvent::Problem(n)),
                    None => {}
                }
                self.node.events.push_back(SeedEvent::TrackerLost);
            }
        }
    }

    fn on_published(&mut self, now: Time, p: Published) {
        let Some(i) = self.sent.iter().position(|m| m.path == p.path) else {
            let n = Notice::new(ErrorCode::Unexpected, format!("published {} was not asked for", p.path));
            return self.node.emit(NodeEvent::Problem(n));
        };
        let manifest = self.sent.remove(i);
        if self.replacing.remove(&p.path)
            && let Some(old) = self.published.remove(&p.path)
        {
            self.node.contents.remove(&old);
            self.ended.remove(&p.path);
        }
        match self.published.get(&p.path) {
            // Published again to a tracker back after an outage: same id, nothing to open.
            Some(&id) if id == p.content => {
                if self.ended.contains(&p.path) {
                    self.end_live(now, &p.path);
                }
                return;
            }
            Some(_) => {
                let detail = format!(
                    "the tracker gives {} another content id than before its restart (a rare clash of ids); \
                     restart the seed",
                    p.path
                );
                return self
                    .node
                    .events
                    .push_back(SeedEvent::Refused(Notice::new(ErrorCode::Unexpected, detail)));
            }
            None => {}
        }
        if let Err(e) = self.node.store.open(p.content, &manifest) {
            let n = Notice::new(ErrorCode::Unexpected, format!("{}: {e}", p.path));
            return self.node.emit(NodeEvent::Problem(n));
        }
        let have = BitSet::full(manifest.num_chunks());
        self.node.contents.insert(p.content, Content { manifest, have });
        self.published.insert(p.path.clone(), p.content);
        self.node.events.push_back(SeedEvent::Published { path: p.path, content: p.content });
    }
}

//! The peer (viewer) machine: asks for a content, takes chunks the tracker schedules,
//! verifies them, serves what it holds, and delivers bytes in order.
//!
//! ```text
//!  app            Peer                         tracker / other peers
//!   | get(path) -->|-- AskInfo ------------------->|
//!   |              |<-- TellInfo(manifest) --------|
//!   |<- ManifestReceived                            |
//!   |              |-- Request(all | live edge..) ->|
//!   |              |<-- Transfer(token, Taker) ----|
//!   |              |== Hello, Get(token) =========> giver
//!   |              |<== Data ====================== giver
//!   |              |   verify length + SHA-256, store
//!   |              |-- Completed(hash, copy_us) -->|
//!   |<- ChunkVerified, Deliver (in byte order), DownloadComplete
//! ```
//!
//! Memory stays independent of the content size: per content the peer keeps the manifest's
//! hashes and one bit per chunk; payloads live in the driver's [`ChunkStore`] and are read
//! back one at a time when a gap in the delivery order fills (see [`Peer::poll_event`]).
//!
//! # Driving a peer
//!
//! ```
//! use pdtp_core::memstore::MemStore;
//! use pdtp_core::peer::{Peer, PeerConfig, PeerEvent};
//! use pdtp_core::wire::Welcome;
//! use pdtp_core::{Endpoint, Message, PeerId, Time, Transmit};
//! use rand_core::SeedableRng;
//!
//! let tracker = Endpoint { host: "127.0.0.1".into(), port: 6086 };
//! let now = Time::ZERO;
//! let rng = pdtp_core::Rng::seed_from_u64(1);
//! let mut peer = Peer::new(now, PeerConfig::new(PeerId(1), tracker), MemStore::new(), rng);
//! peer.get(now, "show.mp4"); // queued until the tracker welcomes us
//!
//! // The driver opens the connection the machine asked for, under the machine's handle...
//! let Some(Transmit::Connect { conn, .. }) = peer.poll_transmit() else { unreachable!() };
//! peer.handle_connected(now, conn);
//! assert!(matches!(peer.poll_transmit(), Some(Transmit::Send { msg: Message::Hello(_), .. })));
//!
//! // ...feeds it what arrives, drains transmissions and events...
//! peer.handle_message(now, conn, Message::Welcome(Welcome { peer_id: PeerId(1), nonce: [0; 16] }));
//! assert!(matches!(peer.poll_transmit(), Some(Transmit::Send { msg: Message::AskInfo(_), .. })));
//! assert_eq!(peer.poll_event(), Some(PeerEvent::Welcomed));
//!
//! // ...and sleeps until the next input or `poll_timeout()` (nothing pending yet).
//! assert_eq!(peer.poll_timeout(), None);
//! ```

mod config;
mod delivery;
mod download;
mod resume;

pub use config::{PeerConfig, PeerEvent};

use std::collections::BTreeMap;

use crate::chunks::ByteRange;
use crate::ids::{ChunkIndex, ConnId, ContentId, PeerId};
use crate::node::{Node, NodeConfig, NodeEvent, NodeStats, Up};
use crate::output::Transmit;
use crate::payload::Payload;
use crate::signing::SeedKey;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{AskInfo, ErrorCode, Interest, Message, Notice, Role};

use download::Download;

/// The peer machine (see the module docs for the message flow).
///
/// Getters: [`peer_id`](Self::peer_id), [`progress`](Self::progress), [`stats`](Self::stats),
/// [`active_transfers`](Self::active_transfers), [`store`](Self::store).
/// Inputs: `handle_*`. Commands: [`get`](Self::get), [`accept`](Self::accept).
/// Outputs: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
/// [`poll_timeout`](Self::poll_timeout).
pub struct Peer<S> {
    node: Node<S, PeerEvent>,
    /// Reserved for randomised choices; every random decision must come from here.
    #[allow(dead_code)]
    rng: crate::Rng,
    live_window: u32,
    seed_key: Option<SeedKey>,
    playback_deadline: Option<crate::time::Span>,
    live_join_back: u32,
    /// Paths to ask about once welcomed.
    pending: Vec<String>,
    /// Paths asked about, awaiting `TellInfo`.
    asked: Vec<String>,
    downloads: BTreeMap<ContentId, Download>,
    /// Verified payloads not delivered yet, within [`DELIVER_AHEAD`] bytes of the delivery
    /// point, so chunks arriving a little out of order are delivered without a read back.
    ahead: BTreeMap<(ContentId, ChunkIndex), Payload>,
    /// Bytes in `ahead`.
    ahead_bytes: usize,
    /// [`PeerConfig::deliver_payloads`].
    deliver_payloads: bool,
    /// Downloads a tracker back from an outage did not know yet (their seed had not
    /// published again): asked again at this time.
    reask_at: Option<Time>,
    /// The latest `now` seen, for outputs produced while polling.
    now: Time,
}

/// Verified payloads kept in memory ahead of in-order delivery (with
/// [`PeerConfig::deliver_payloads`]): chunks that arrive up to this far out of order are
/// delivered from memory, not written and read back (a stream output through the store's
/// cache file ran at 0.3 × curl: docs/performance.md).
pub const DELIVER_AHEAD: usize = 4 << 20;

/// How often a download the tracker does not know after an outage is asked about again.
const REASK: crate::time::Span = crate::time::Span::from_secs(1);

impl<S: ChunkStore> Peer<S> {
    /// A peer that starts by connecting to its tracker (a `Connect` is queued).
    pub fn new(now: Time, config: PeerConfig, store: S, rng: crate::Rng) -> Self {
        let cfg = NodeConfig {
            peer_id: config.peer_id,
            listen_port: config.listen_port,
            role: Role::Peer,
            tracker: config.tracker,
            stall_timeout: config.stall_timeout,
            transfer_timeout: config.transfer_timeout,
            progress_timeout: config.progress_timeout,
            order_wait: config.order_wait,
            link_idle: config.link_idle,
            corrupt_uploads: config.corrupt_uploads,
            tracker_retry: config.tracker_retry,
        };
        Self {
            node: Node::new(now, cfg, store),
            rng,
            live_window: config.live_window.max(1),
            seed_key: config.seed_key,
            playback_deadline: config.playback_deadline,
            live_join_back: config.live_join_back,
            pending: Vec::new(),
            asked: Vec::new(),
            downloads: BTreeMap::new(),
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            deliver_payloads: config.deliver_payloads,
            reask_at: None,
            now,
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

    /// Ends the machine and hands back its store (a driver restarting a peer after churn).
    ///
    /// A new machine built on it holds only the chunks the store offers as
    /// [`ChunkStore::leftovers`] and that verify (none for the in-memory stores once asked):
    /// other chunks already there are fetched again (and overwritten) if ordered.
    pub fn into_store(self) -> S {
        self.node.store
    }

    /// The chunk store, mutably (drivers that also write to it, tests).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.node.store
    }

    /// Chunks verified and held, and chunks described, for a content we download.
    pub fn progress(&self, content: ContentId) -> Option<(u32, u32)> {
        let c = self.node.contents.get(&content)?;
        Some((c.have.count(), c.manifest.num_chunks()))
    }

    /// Whether chunk `chunk` of `content` is verified and held (a leftover from an earlier
    /// run counts only once it hashed right).
    pub fn holds(&self, content: ContentId, chunk: ChunkIndex) -> bool {
        self.node.contents.get(&content).is_some_and(|c| c.have.contains(chunk))
    }

    /// The root hash of a file's manifest ([`crate::Manifest::root`]); `None` before the
    /// manifest or for a live stream (its root changes with every append).
    pub fn content_root(&self, content: ContentId) -> Option<crate::Digest> {
        let m = &self.node.contents.get(&content)?.manifest;
        (!m.is_live()).then(|| m.root())
    }

    /// A content's size in bytes, once its manifest came (for a live one, so far).
    pub fn content_size(&self, content: ContentId) -> Option<u64> {
        self.node.contents.get(&content).map(|c| c.manifest.geometry.size)
    }

    /// The chunk that holds byte `offset` of `content` and that chunk's first byte; `None`
    /// past the end or before the manifest.
    pub fn chunk_at(&self, content: ContentId, offset: u64) -> Option<(ChunkIndex, u64)> {
        let g = self.node.contents.get(&content)?.manifest.geometry;
        if offset >= g.size || g.chunk_size == 0 {
            return None;
        }
        let chunk = ChunkIndex::try_from(offset / u64::from(g.chunk_size)).ok()?;
        Some((chunk, g.chunk_bytes(chunk).start))
    }

    /// The viewer now plays an on-demand `content` from byte `offset` (a player seeked, or
    /// asked for bytes not held yet): the tracker is told with a `Request` from the first
    /// chunk not held at or after it, which it takes as the viewer's playback position and
    /// schedules from first (docs/protocol.md, "Playback position"). Nothing is sent when
    /// every chunk from there on is held, for a live content (its position is the live
    /// edge), or for a download already complete.
    pub fn seek(&mut self, now: Time, content: ContentId, offset: u64) {
        self.now = now;
        if !self.downloads.get(&content).is_some_and(|d| !d.live && !d.complete_sent) {
            return;
        }
        let Some((first, _)) = self.chunk_at(content, offset) else { return };
        let Some(c) = self.node.contents.get(&content) else { return };
        let n = c.manifest.num_chunks();
        let Some(missing) = (first..n).find(|&i| !c.have.contains(i)) else { return };
        let from = c.manifest.geometry.chunk_bytes(missing).start;
        self.node.send_tracker(now, Message::Request(Interest::range(content, ByteRange::from(from))));
    }

    /// The next chunk to be delivered in order, for a content we download.
    pub fn delivery_cursor(&self, content: ContentId) -> Option<ChunkIndex> {
        self.downloads.get(&content).map(|d| d.next)
    }

    /// Transfer counters (bytes and chunks up and down).
    pub fn stats(&self) -> NodeStats {
        self.node.stats
    }

    /// Transfers in progress, either side.
    pub fn active_transfers(&self) -> usize {
        self.node.active_transfers()
    }

    /// Open peer links.
    pub fn peer_links(&self) -> usize {
        self.node.peer_links()
    }

    /// Switches whether `Deliver` carries the chunk's bytes ([`PeerConfig::deliver_payloads`]),
    /// for an application that learns where the bytes go only from the manifest (a live
    /// stream recorded to a file goes through an in-order writer).
    pub fn set_deliver_payloads(&mut self, on: bool) {
        self.deliver_payloads = on;
        if !on {
            self.ahead.clear();
            self.ahead_bytes = 0;
        }
    }

    /// Starts downloading `path`: asks the tracker now, or as soon as it welcomes us.
    pub fn get(&mut self, now: Time, path: &str) {
        self.now = now;
        // Paths are named without a leading `/` (docs/protocol.md §1).
        let path = path.trim_start_matches('/');
        let known = self.pending.iter().chain(&self.asked).any(|p| p == path)
            || self.downloads.values().any(|d| d.path == path);
        if known {
            return;
        }
        if self.node.welcomed() {
            self.ask(now, path.to_string());
        } else {
            self.pending.push(path.to_string());
        }
    }

    /// Registers a peer link the driver accepted and returns its handle, or the notice to
    /// send before closing it when the connection table is full.
    pub fn accept(&mut self, now: Time) -> Result<ConnId, Notice> {
        self.now = now;
        self.node.accept(now)
    }

    /// An outgoing connection (`Transmit::Connect`) succeeded.
    pub fn handle_connected(&mut self, now: Time, conn: ConnId) {
        self.now = now;
        self.node.handle_connected(now, conn);
    }

    /// A connection failed or the remote closed it.
    pub fn handle_closed(&mut self, now: Time, conn: ConnId) {
        self.now = now;
        let up = self.node.handle_closed(now, conn);
        self.up(now, up);
    }

    /// Bytes arrived on peer link `conn` (part of a frame, or whole ones): the copies under
    /// way on it are moving (see [`PeerConfig::progress_timeout`]).
    pub fn handle_progress(&mut self, now: Time, conn: ConnId) {
        self.now = now;
        self.node.handle_progress(now, conn);
        self.node.rearm(now);
    }

    /// A message arrived on `conn`.
    pub fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) {
        self.now = now;
        let up = self.node.handle_message(now, conn, msg);
        self.up(now, up);
        self.drain_arrivals(now);
        self.node.rearm(now);
    }

    /// Fires the timers that are due (watchdogs, held requests, idle links); an early or
    /// repeated call does nothing.
    pub fn handle_timeout(&mut self, now: Time) {
        self.now = now;
        self.node.handle_timeout(now);
        self.skip_late_all(now);
        if self.reask_at.is_some_and(|at| at <= now) && self.node.welcomed() {
            self.reask_at = None;
            for path in std::mem::take(&mut self.pending) {
                self.ask(now, path);
            }
        }
    }

    /// The next transmission for the driver, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.poll_transmit()
    }

    /// The next event for the application.
    ///
    /// Queued events come first; then in-order delivery: while the next undelivered chunk
    /// is held, each call reads it (from a one-slot cache or the store) and returns a
    /// `Deliver`; an on-demand content, or a live one whose seed ended it, ends with
    /// `DownloadComplete`. Only one payload is
    /// read per call, so a large gap filling at once costs no memory.
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        if let Some(e) = self.node.events.pop_front() {
            return Some(e);
        }
        self.pump()
    }

    /// The earliest time [`handle_timeout`](Self::handle_timeout) has work to do.
    ///
    /// It changes on every `handle_*` call and on `accept`: new or finished orders (stall and
    /// transfer watchdogs), peer requests held for their order (`order_wait`), and link
    /// activity (`link_idle`); and for a live download held at a missing chunk, the instant
    /// its playback deadline passes (`playback_deadline`).
    pub fn poll_timeout(&self) -> Option<Time> {
        [self.node.poll_timeout(), self.next_skip(), self.reask_at].into_iter().flatten().min()
    }

    fn push(&mut self, e: PeerEvent) {
        self.node.events.push_back(e);
    }

    fn ask(&mut self, now: Time, path: String) {
        self.node.send_tracker(now, Message::AskInfo(AskInfo { path: path.clone() }));
        self.asked.push(path);
    }

    fn up(&mut self, now: Time, up: Up) {
        match up {
            Up::None => {}
            Up::Welcomed => {
                self.push(PeerEvent::Welcomed);
                // Back after a tracker outage: ask about every download again too; each answer
                // re-announces what we hold and want (`rejoin`).
                let mut paths = std::mem::take(&mut self.pending);
                for d in self.downloads.values() {
                    if !paths.contains(&d.path) {
                        paths.push(d.path.clone());
                    }
                }
                for path in paths {
                    self.ask(now, path);
                }
            }
            Up::TrackerDown => {
                // Questions the lost tracker never answered are asked again at the welcome.
                self.pending.append(&mut self.asked);
            }
            Up::Tracker(msg) => self.tracker_message(now, msg),
            Up::TrackerLost(notice) => {
                if let Some(n) = &notice {
                    self.node.emit(NodeEvent::Problem(n.clone()));
                }
                self.push(PeerEvent::TrackerLost { notice });
            }
        }
    }

    fn tracker_message(&mut self, now: Time, msg: Message) {
        match msg {
            Message::TellInfo(t) => self.on_tell_info(now, *t),
            Message::AppendChunks(a) => self.on_append(now, *a),
            Message::Warning(n) if n.code == ErrorCode::UnknownUrl => self.on_unknown_url(n),
            Message::Warning(n) if n.code == ErrorCode::Withdrawn => {
                self.push(PeerEvent::Withdrawn { detail: n.detail })
            }
            Message::Warning(n) => self.node.emit(NodeEvent::Problem(n)),
            other => {
                let n =
                    Notice::new(ErrorCode::Unexpected, format!("tracker sent {} to a peer", other.kind()));
                self.node.emit(NodeEvent::Problem(n));
            }
        }
    }

    fn on_unknown_url(&mut self, n: Notice) {
        // The detail names the path; fall back to the only outstanding question.
        let i = self
            .asked
            .iter()
            .position(|p| n.detail == *p)
            .or_else(|| self.asked.iter().position(|p| n.detail.contains(p.as_str())))
            .or_else(|| (self.asked.len() == 1).then_some(0));
        match i {
            Some(i) => {
                let path = self.asked.remove(i);
                if self.downloads.values().any(|d| d.path == path) {
                    // A tracker back from an outage, before our seed published again: the
                    // download goes on and asks again each second (`REASK`).
                    self.pending.push(path);
                    self.reask_at = Some(self.now + REASK);
                } else {
                    self.push(PeerEvent::UnknownUrl { path });
                }
            }
            None => self.node.emit(NodeEvent::Problem(n)),
        }
    }
}

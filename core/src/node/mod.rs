//! What seeds and peers share: peer links, the giver side, token bookkeeping and timers.
//!
//! A `Node` is the transfer engine inside both [`crate::peer::Peer`] and
//! [`crate::seed::Seed`]. It owns the connection table, the orders the tracker sent us (as
//! giver or taker), peer requests waiting for their order, the chunk store and the outputs.
//! The roles add what is theirs on top: a peer its downloads and in-order delivery, a seed its
//! publishing. Everything the giver does lives here once (`giver.rs`); the taker's transfer
//! mechanics (`taker.rs`) too, handing each verified or rejected chunk up to the role.

mod giver;
mod links;
mod orders;
mod peer_index;
mod route;
mod taker;
mod timers;
mod transfer;

use std::collections::{BTreeMap, VecDeque};

use crate::bitset::BitSet;
use crate::ids::{ChunkIndex, ConnId, ContentId, Endpoint, PeerId, Token};
use crate::manifest::Manifest;
use crate::output::{Dial, Transmit};
use crate::payload::Payload;
use crate::store::ChunkStore;
use crate::time::{Span, Time};
use crate::wire::{Hello, Interest, LinkSecret, Message, Notice, PROTOCOL_VERSION, Role};

pub(crate) use links::LinkKind;
use links::Links;
use orders::Orders;
use timers::{Timer, TimerTable};

/// Counters a driver or the simulator reads for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Payload bytes sent to takers.
    pub bytes_uploaded: u64,
    /// Payload bytes received and verified.
    pub bytes_downloaded: u64,
    /// Chunks served to takers.
    pub chunks_uploaded: u64,
    /// Chunks received and verified.
    pub chunks_verified: u64,
    /// Chunks received that failed verification.
    pub chunks_rejected: u64,
    /// Transfers that failed (refused, link lost, watchdog).
    pub transfers_failed: u64,
}

/// What peers and seeds both report, from the engine they share.
///
/// Declared once here and carried whole by [`PeerEvent::Node`](crate::peer::PeerEvent::Node)
/// and [`SeedEvent::Node`](crate::seed::SeedEvent::Node), so a driver can handle the giver's
/// events and problems of either role with one match.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// We served a chunk to a taker.
    Uploaded {
        /// Which content.
        content: ContentId,
        /// Which chunk.
        chunk: ChunkIndex,
        /// The taker.
        to: PeerId,
        /// Payload bytes sent.
        bytes: u32,
    },
    /// The tracker said a taker's copy of a chunk we served did not verify.
    VerdictRejected {
        /// Which content.
        content: ContentId,
        /// Which chunk.
        chunk: ChunkIndex,
        /// The taker.
        to: PeerId,
        /// Whether our stored copy turned out corrupt (and was dropped).
        dropped: bool,
    },
    /// A transfer ended without moving a verified chunk.
    TransferFailed {
        /// The transfer.
        token: Token,
        /// Why, for people.
        reason: String,
    },
    /// A warning or error we received or sent.
    Problem(Notice),
    /// We stopped serving a content: its bytes changed under us (`why`), and every chunk of
    /// it was unprovided at the tracker.
    Withdrawn {
        /// Which content.
        content: ContentId,
        /// What changed, for the operator.
        why: String,
    },
    /// The tracker link went down after we had been welcomed; we connect again at
    /// `retry_in` from now (and again, backing off, until it answers). Transfers between
    /// peers go on meanwhile; nothing new is scheduled.
    TrackerDown {
        /// The tracker's reason, if it sent one.
        notice: Option<Notice>,
        /// When the next attempt is, from now.
        retry_in: Span,
    },
}

/// Settings the engine needs from either role's config.
#[derive(Clone, Debug)]
pub(crate) struct NodeConfig {
    pub peer_id: PeerId,
    pub listen_port: Option<u16>,
    pub role: Role,
    pub tracker: Endpoint,
    pub stall_timeout: Span,
    pub transfer_timeout: Span,
    /// A copy under way fails when no byte of it has arrived for this long (the driver
    /// reports bytes with [`Node::handle_progress`]); `None`: only `transfer_timeout`.
    pub progress_timeout: Option<Span>,
    pub order_wait: Span,
    pub link_idle: Span,
    pub corrupt_uploads: bool,
    /// Reconnect to a tracker lost after a welcome, backing off up to this between attempts;
    /// `None`: a lost tracker is final.
    pub tracker_retry: Option<Span>,
}

/// A content this node knows: its manifest and the chunks it holds.
#[derive(Clone, Debug)]
pub(crate) struct Content {
    pub manifest: Manifest,
    pub have: BitSet,
}

/// What the engine hands up to its role after a message.
#[derive(Debug)]
pub(crate) enum Up {
    /// Nothing for the role.
    None,
    /// The tracker welcomed us.
    Welcomed,
    /// A tracker message the engine does not handle itself.
    Tracker(Message),
    /// The tracker link is gone for good (closed by it, or by us after its `Error`): before
    /// any welcome, after a refusal (`Unauthorized`, `BadVersion`, `Malformed`), or with
    /// reconnection off.
    TrackerLost(Option<Notice>),
    /// The tracker link is gone and a reconnection is scheduled; the role keeps its state and
    /// re-announces it at the next `Welcomed`.
    TrackerDown,
}

/// A chunk that arrived as taker, after verification.
#[derive(Debug)]
pub(crate) struct Arrival {
    pub content: ContentId,
    pub chunk: ChunkIndex,
    pub from: PeerId,
    pub payload: Payload,
    /// Whether length and digest matched the manifest (and the chunk was stored).
    pub verified: bool,
}

/// The shared transfer engine (see the module docs).
pub(crate) struct Node<S, E> {
    pub cfg: NodeConfig,
    pub store: S,
    pub tracker: Option<ConnId>,
    /// The tracker's nonce, once welcomed.
    pub nonce: Option<[u8; 16]>,
    pub contents: BTreeMap<ContentId, Content>,
    pub events: VecDeque<E>,
    pub stats: NodeStats,
    /// Chunks that arrived as taker since the role last drained this.
    pub arrivals: Vec<Arrival>,
    links: Links,
    orders: Orders,
    out: VecDeque<Transmit>,
    timers: TimerTable,
    /// No peer link can be idle before this (a lower bound; see `sweep_idle`).
    idle_check: Option<Time>,
    /// Whether a tracker ever welcomed us (only then is a lost tracker retried).
    pub ever_welcomed: bool,
    /// Reconnection attempts since the tracker was last up.
    retries: u32,
    /// When the next reconnection attempt is due.
    retry_at: Option<Time>,
}

impl<S: ChunkStore, E: From<NodeEvent>> Node<S, E> {
    /// A node that starts connecting to its tracker.
    pub fn new(now: Time, cfg: NodeConfig, store: S) -> Self {
        let mut node = Self {
            tracker: None,
            nonce: None,
            contents: BTreeMap::new(),
            events: VecDeque::new(),
            stats: NodeStats::default(),
            arrivals: Vec::new(),
            links: Links::default(),
            orders: Orders::default(),
            out: VecDeque::new(),
            timers: TimerTable::default(),
            idle_check: None,
            ever_welcomed: false,
            retries: 0,
            retry_at: None,
            cfg,
            store,
        };
        node.connect_tracker(now);
        node
    }

    /// Opens a tracker link (`Connect`); a full table leaves it to the next retry.
    fn connect_tracker(&mut self, now: Time) {
        let Some(conn) = self.links.alloc(now, LinkKind::Tracker, None) else { return };
        self.tracker = Some(conn);
        // From our listening port: the tracker learns where a NAT in front of us maps it.
        let dial = Dial::FromListenPort;
        self.out.push_back(Transmit::Connect { conn, endpoint: self.cfg.tracker.clone(), key: None, dial });
    }

    /// The tracker link is gone (`notice`: its reason, if it gave one): a reconnection is
    /// scheduled if we had been welcomed, reconnection is on and the reason is not a refusal
    /// that a retry would only repeat.
    pub(crate) fn tracker_gone(&mut self, now: Time, notice: Option<Notice>) -> Up {
        self.tracker = None;
        self.nonce = None;
        use crate::wire::ErrorCode::{BadVersion, Malformed, Unauthorized};
        let refused =
            notice.as_ref().is_some_and(|n| matches!(n.code, Unauthorized | BadVersion | Malformed));
        let Some(max) = self.cfg.tracker_retry.filter(|_| self.ever_welcomed && !refused) else {
            return Up::TrackerLost(notice);
        };
        self.retries += 1;
        let retry_in = retry_delay(self.cfg.peer_id, self.retries, max);
        self.retry_at = Some(now + retry_in);
        self.emit(NodeEvent::TrackerDown { notice, retry_in });
        self.rearm(now);
        Up::TrackerDown
    }

    /// Emits an engine event.
    pub fn emit(&mut self, ev: NodeEvent) {
        self.events.push_back(E::from(ev));
    }

    /// Sends a message on a connection.
    pub fn send(&mut self, now: Time, conn: ConnId, msg: Message) {
        self.links.touch(conn, now);
        self.out.push_back(Transmit::Send { conn, msg });
    }

    /// Sends a message to the tracker, if it is connected; returns whether it was sent.
    pub fn send_tracker(&mut self, now: Time, msg: Message) -> bool {
        match self.tracker {
            Some(conn) if self.links.get(conn).is_some_and(|l| l.connected) => {
                self.send(now, conn, msg);
                true
            }
            _ => false,
        }
    }

    /// Whether the tracker welcomed us and the link is still up.
    pub fn welcomed(&self) -> bool {
        self.nonce.is_some() && self.tracker.is_some()
    }

    /// Next transmission for the driver.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The earliest timer deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    /// Whether the node holds chunk `chunk` of `content`.
    pub fn holds(&self, content: ContentId, chunk: ChunkIndex) -> bool {
        self.contents.get(&content).is_some_and(|c| c.have.contains(chunk))
    }

    /// Transfers in progress (orders not yet finished, either side).
    pub fn active_transfers(&self) -> usize {
        self.orders.len()
    }

    /// Open peer links.
    pub fn peer_links(&self) -> usize {
        self.links.peer_links()
    }

    /// Registers a connection the driver accepted; the notice to send before closing it
    /// when the connection table is full.
    pub fn accept(&mut self, now: Time) -> Result<ConnId, Notice> {
        let Some(conn) = self.links.alloc(now, LinkKind::Inbound, None) else {
            return Err(Notice::new(crate::wire::ErrorCode::Overloaded, "too many open connections"));
        };
        self.watch_idle(now);
        self.rearm(now);
        Ok(conn)
    }

    /// An outgoing connection is up: say hello, then start what waited for it.
    pub fn handle_connected(&mut self, now: Time, conn: ConnId) {
        let Some(link) = self.links.get_mut(conn) else { return };
        if link.connected || link.kind == LinkKind::Inbound {
            return;
        }
        link.connected = true;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            peer_id: self.cfg.peer_id,
            listen_port: self.cfg.listen_port,
            role: self.cfg.role,
        };
        self.send(now, conn, Message::Hello(hello));
        for token in self.orders.on_conn(conn) {
            self.link_ready(now, token);
        }
        self.rearm(now);
    }

    /// Bytes arrived on peer link `conn` (`NodeConfig::progress_timeout`).
    pub fn handle_progress(&mut self, now: Time, conn: ConnId) {
        self.progressed(now, conn);
    }

    /// A connection failed or the remote closed it.
    pub fn handle_closed(&mut self, now: Time, conn: ConnId) -> Up {
        let Some(link) = self.links.remove(conn) else { return Up::None };
        if link.kind == LinkKind::Tracker {
            return self.tracker_gone(now, None);
        }
        self.drop_link_state(now, conn, "peer link closed");
        self.rearm(now);
        Up::None
    }

    /// Closes a connection ourselves, sending `Error(notice)` first if given.
    pub fn close(&mut self, now: Time, conn: ConnId, notice: Option<Notice>) {
        let Some(link) = self.links.remove(conn) else { return };
        if let Some(n) = &notice {
            self.out.push_back(Transmit::Send { conn, msg: Message::Error(n.clone()) });
            self.emit(NodeEvent::Problem(n.clone()));
        }
        self.out.push_back(Transmit::Close { conn, reason: notice });
        if link.kind == LinkKind::Tracker {
            self.tracker = None;
            self.nonce = None;
        } else {
            self.drop_link_state(now, conn, "peer link closed by us");
        }
    }

    /// Routes one received message: the engine's own, or up to the role.
    pub fn handle_message(&mut self, now: Time, conn: ConnId, msg: Message) -> Up {
        let Some(link) = self.links.get(conn) else { return Up::None };
        let kind = link.kind;
        self.links.touch(conn, now);
        let up = match kind {
            LinkKind::Tracker => self.tracker_message(now, conn, msg),
            LinkKind::Inbound | LinkKind::Outbound => self.peer_message(now, conn, msg),
        };
        self.rearm(now);
        up
    }

    /// Sends `Unprovide` for chunks `first..end` of `content` (byte range of whole chunks).
    pub fn unprovide(&mut self, now: Time, content: ContentId, first: ChunkIndex, end: ChunkIndex) {
        let Some(c) = self.contents.get(&content) else { return };
        let g = c.manifest.geometry;
        let range =
            crate::chunks::ByteRange::new(g.chunk_bytes(first).start, g.chunk_bytes(end.max(1) - 1).end);
        self.send_tracker(now, Message::Unprovide(Interest::range(content, range)));
    }

    /// Recomputes every timer from the current state.
    pub fn rearm(&mut self, _now: Time) {
        self.timers.set(Timer::Watchdog, self.orders.next_deadline());
        self.timers.set(Timer::HeldRequest, self.orders.next_held_deadline());
        self.timers.set(Timer::IdleLink, self.idle_check);
        self.timers.set(Timer::Reconnect, self.retry_at);
    }

    /// Fires the timers that are due; an early or repeated call does nothing.
    pub fn handle_timeout(&mut self, now: Time) {
        let due: Vec<Timer> = self.timers.expired(now).collect();
        for t in due {
            match t {
                Timer::Watchdog => self.sweep_watchdog(now),
                Timer::HeldRequest => self.sweep_held(now),
                Timer::IdleLink => self.sweep_idle(now),
                Timer::Reconnect => {
                    self.retry_at = None;
                    self.connect_tracker(now);
                }
            }
        }
        self.rearm(now);
    }

    /// Closes peer links idle for `link_idle`. Links carrying a transfer count as active.
    ///
    /// The sweep runs at most every `link_idle / 2` while peer links exist, so a link closes
    /// between `link_idle` and `1.5 × link_idle` after its last activity, and the cost is one
    /// scan of the links per half interval rather than one per link deadline.
    fn sweep_idle(&mut self, now: Time) {
        let idle = self.cfg.link_idle;
        let due: Vec<ConnId> = self
            .links
            .iter()
            .filter(|(_, l)| l.kind != LinkKind::Tracker && l.last_active + idle <= now)
            .map(|(c, _)| c)
            .collect();
        for conn in due {
            if self.orders.uses(conn) {
                self.links.touch(conn, now);
            } else {
                self.close(now, conn, None);
            }
        }
        let half = Span::from_nanos(idle.as_nanos() / 2);
        self.idle_check = (self.links.peer_links() > 0).then(|| now + half);
    }

    /// Notes a new peer link for the idle timer.
    fn watch_idle(&mut self, now: Time) {
        let at = now + self.cfg.link_idle;
        self.idle_check = Some(self.idle_check.map_or(at, |t| t.min(at)));
    }

    /// The link to `peer`: an open one to reuse, or a new outbound connection (`None` when
    /// the connection table is full).
    fn link_to(
        &mut self,
        now: Time,
        peer: PeerId,
        endpoint: Endpoint,
        key: LinkSecret,
        dial: Dial,
    ) -> Option<ConnId> {
        if let Some(conn) = self.links.link_of(peer) {
            return Some(conn);
        }
        let conn = self.links.alloc(now, LinkKind::Outbound, Some(peer))?;
        self.watch_idle(now);
        self.out.push_back(Transmit::Connect { conn, endpoint, key: Some(key), dial });
        Some(conn)
    }

    /// A giver's end of a hole punch: dial the taker from our listening port, but act as
    /// the link's accepting end (the taker's id, `Hello` and `Get` come over it), so the
    /// link is an inbound one whose remote its `Hello` names. No dial if a link to the
    /// taker is open already (the taker reuses it too).
    fn punch_to(&mut self, now: Time, peer: PeerId, endpoint: Endpoint) {
        if self.links.link_of(peer).is_some() {
            return;
        }
        // A full table: the taker's dial fails, and the order with it.
        let Some(conn) = self.links.alloc(now, LinkKind::Inbound, None) else { return };
        self.watch_idle(now);
        self.out.push_back(Transmit::Connect {
            conn,
            endpoint,
            key: None,
            dial: Dial::Punch { accepting: true },
        });
    }

    /// The secret of an order whose peer link this node awaits (it accepts the connection)
    /// with link id `id` ([`LinkSecret::id`]): what a driver seals that link with.
    pub fn link_key(&self, id: &[u8; 16]) -> Option<LinkSecret> {
        self.orders.iter().find(|(_, o)| o.key_id == *id).map(|(_, o)| o.key.clone())
    }

    fn link_connected(&self, conn: ConnId) -> bool {
        self.links.get(conn).is_some_and(|l| l.connected)
    }

    /// Fails every order on a link that is gone and drops its held requests.
    fn drop_link_state(&mut self, now: Time, conn: ConnId, why: &str) {
        self.orders.held.retain(|h| h.conn != conn);
        for token in self.orders.on_conn(conn) {
            self.fail(now, token, why);
        }
    }
}

/// The wait before reconnection attempt `n` (from 1): one second doubling per attempt up to
/// `max`, times a factor in [0.5, 1.5) drawn from our id and `n`, so peers that lost the same
/// tracker do not all come back in the same instant (and a run stays deterministic).
fn retry_delay(peer: PeerId, n: u32, max: Span) -> Span {
    let base = Span::from_secs(1).as_nanos().saturating_mul(1u64 << n.saturating_sub(1).min(20));
    let base = base.min(max.as_nanos());
    let h = crate::manifest::Digest::of_parts(&[b"pdtp-retry", &peer.0.to_be_bytes(), &n.to_be_bytes()]);
    let u = (h.prefix_u64() >> 11) as f64 / (1u64 << 53) as f64;
    Span::from_nanos((base as f64 * (0.5 + u)) as u64)
}

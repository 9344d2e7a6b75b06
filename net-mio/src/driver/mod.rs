//! The single-threaded mio loop that drives core machines over real TCP.
//!
//! A [`Runtime`] owns one `mio::Poll` and hosts one or more nodes (a tracker, a seed, peers;
//! `pdtp-node demo` hosts all of them in one loop). Each node is one core machine plus the
//! application around it ([`Hosted`]). One turn of the loop:
//!
//! ```text
//!   timeout = min(machines' poll_timeout, apps' extra_timeout, hello deadlines,
//!                 closing deadlines, rate-limit wake-ups)   (zero if work is pending)
//!   poll(timeout); now = Instant::now()  (once per turn)
//!   events: listener -> accept until WouldBlock -> machine.accept
//!           extra    -> the app (stats page, sink pipe, live stdin)
//!           conn     -> cached readiness; connect done -> machine.handle_connected
//!   read:   every ready conn not over its output cap: fill (rate budget), decode each
//!           frame -> machine.handle_message; decode error -> malformed; EOF -> handle_closed
//!   timers: handle_timeout only on machines whose deadline passed
//!   drain:  poll_transmit until None (encode + queue, connect, close), app.after (events)
//!   write:  flush conns with output (rate budget); WRITABLE interest only while pending
//! ```
//!
//! Tokens: listeners and the apps' extra objects get tokens below [`CONN_TOKEN_BASE`];
//! connections live in a [`ConnTable`] from there up, never reused.

mod depart;
mod hosted;
mod io;
mod peer;
mod seed;
mod swarm;
mod tracker;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use pdtp_core::wire::codec::Decoder;
use pdtp_core::{ConnId, Time};

pub use hosted::{Cx, Hosted, Status};
pub use peer::{PeerNode, PeerOptions};
pub use seed::{SeedNode, SeedOptions, SeedStores};
pub use swarm::{Swarm, seed_key};
pub use tracker::{TrackerNode, TrackerOptions, load_bans, tracker_config};

use crate::clock::Clock;
use crate::conn::Limits as ConnLimits;
use crate::ratelimit::{RateMeter, TokenBucket};
use crate::secure::{LinkKey, SecureError, SecureLink};
use crate::stats::RateStats;
use crate::table::ConnTable;

/// The first connection token; listeners and extra objects use the tokens below.
pub const CONN_TOKEN_BASE: usize = 1 << 20;

/// A connection whose output queue passes this is closed: its reader is not reading.
/// (Chunk data is bounded by the scheduler's per-peer transfer limits, far below this.)
const OVERFLOW: usize = 128 << 20;

/// A connection being closed is given this long to flush what is queued.
const CLOSE_LINGER: Duration = Duration::from_secs(5);

/// A frame that has been arriving for longer than [`FRAME_GRACE`] must have come at
/// [`MIN_FRAME_RATE`] bytes a second on average, or its connection closes: a peer that
/// trickles a frame holds a connection (and up to the decoder's reserve) for as long as it
/// likes otherwise. The rate is far below any link a chunk could usefully cross (a 250 kB
/// chunk at 256 B/s takes 16 minutes).
const FRAME_GRACE: Duration = Duration::from_secs(10);
const MIN_FRAME_RATE: u64 = 256;
/// How often frames in progress are checked.
const FRAME_CHECK_EVERY: Duration = Duration::from_secs(1);

/// A hosted node's handle in a [`Runtime`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub usize);

/// One of the three node kinds.
// A runtime hosts a handful of nodes, each living as long as the process: the size of the
// tracker variant costs nothing worth an extra indirection on every event.
#[allow(clippy::large_enum_variant)]
pub enum Node {
    /// A tracker.
    Tracker(TrackerNode),
    /// A seed.
    Seed(SeedNode),
    /// A peer.
    Peer(PeerNode),
}

/// Per-process (per-node) rate limits, as bytes per second.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Cap on chunk data sent on peer links.
    pub upload: Option<u64>,
    /// Cap on chunk data received on peer links.
    pub download: Option<u64>,
}

/// The loop. See the module docs.
pub struct Runtime {
    poll: Poll,
    events: Events,
    clock: Clock,
    table: ConnTable,
    nodes: Vec<Option<Slot>>,
    /// Tokens below `CONN_TOKEN_BASE`: listeners and extras, by owner node.
    fixed: BTreeMap<usize, (usize, bool)>,
    next_fixed: usize,
    links: BTreeMap<Token, Link>,
    /// Connections to service (read) this turn.
    pending: BTreeSet<Token>,
    /// Connections with output to flush this turn.
    dirty: BTreeSet<Token>,
    /// Connections waiting for rate-limit credit, with the instant it will be there.
    parked: BTreeMap<Token, Instant>,
    /// Connections closing after a flush, with their deadline.
    closing: BTreeMap<Token, Instant>,
    /// When frames in progress are next checked for [`MIN_FRAME_RATE`] (none while no
    /// link has one).
    frame_check: Option<Instant>,
    /// Accepted peer links whose id matched no order yet (the order may still be on its
    /// way): read again when a tracker link brings messages.
    awaiting_key: BTreeSet<Token>,
    /// A tracker link brought messages this turn (orders, perhaps with awaited keys).
    orders_came: bool,
}

struct Slot {
    node: Node,
    listener: Option<TcpListener>,
    conns: BTreeMap<ConnId, Token>,
    tracker_conn: Option<ConnId>,
    /// The key the tracker proved on this node's link to it (seeds and peers).
    tracker_key: Option<LinkKey>,
    /// Why this node's last encrypted link failed, if one did.
    link_failure: Option<SecureError>,
    limiter: Limiter,
    connect_error: Option<String>,
}

/// A connection's owner and decoder.
struct Link {
    node: usize,
    conn: ConnId,
    decoder: Decoder,
    /// A peer link of a seed or peer: chunk data, subject to rate limits.
    limited: bool,
    /// The frame in progress (bytes of it buffered, not yet whole), if any.
    partial: Option<Partial>,
    /// A tracker link's encryption (every link to or from a tracker has one).
    secure: Option<SecureLink>,
    /// Bytes read from an encrypted link and not yet opened (a record in progress).
    wire: BytesMut,
}

/// A frame in progress on a link: when its first bytes came and how many have come.
#[derive(Clone, Copy, Debug)]
struct Partial {
    since: Instant,
    bytes: u64,
}

impl Partial {
    /// Whether it has been arriving for over [`FRAME_GRACE`] at under [`MIN_FRAME_RATE`].
    fn too_slow(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.since);
        elapsed > FRAME_GRACE
            && u128::from(self.bytes) * 1000 < u128::from(MIN_FRAME_RATE) * elapsed.as_millis()
    }
}

struct Limiter {
    up: Option<TokenBucket>,
    down: Option<TokenBucket>,
    up_meter: RateMeter,
    down_meter: RateMeter,
}

impl Node {
    fn hosted(&mut self) -> &mut dyn Hosted {
        match self {
            Node::Tracker(n) => n,
            Node::Seed(n) => n,
            Node::Peer(n) => n,
        }
    }

    fn hosted_ref(&self) -> &dyn Hosted {
        match self {
            Node::Tracker(n) => n,
            Node::Seed(n) => n,
            Node::Peer(n) => n,
        }
    }

    fn is_tracker(&self) -> bool {
        matches!(self, Node::Tracker(_))
    }
}

impl Limiter {
    fn new(limits: RateLimits, min_burst: u64, now: Instant) -> Self {
        let bucket = |r: Option<u64>| r.map(|r| TokenBucket::with_default_burst(r, min_burst, now));
        Self {
            up: bucket(limits.upload),
            down: bucket(limits.download),
            up_meter: RateMeter::new(Duration::from_secs(1), now),
            down_meter: RateMeter::new(Duration::from_secs(1), now),
        }
    }

    fn rates(&mut self, now: Instant) -> RateStats {
        RateStats {
            upload: self.up_meter.rate(now),
            download: self.down_meter.rate(now),
            peak_upload: self.up_meter.peak(now),
            peak_download: self.down_meter.peak(now),
        }
    }
}

impl Runtime {
    /// A loop with no nodes; at most `max_connections` connections at once (all nodes
    /// together), each of which must say hello within `hello_timeout` once accepted.
    pub fn new(max_connections: usize, hello_timeout: Duration) -> std::io::Result<Self> {
        let clock = Clock::start();
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(1024),
            clock,
            table: ConnTable::new(
                Token(CONN_TOKEN_BASE),
                max_connections,
                hello_timeout,
                ConnLimits::default(),
            ),
            nodes: Vec::new(),
            fixed: BTreeMap::new(),
            next_fixed: 0,
            links: BTreeMap::new(),
            pending: BTreeSet::new(),
            dirty: BTreeSet::new(),
            parked: BTreeMap::new(),
            closing: BTreeMap::new(),
            frame_check: None,
            awaiting_key: BTreeSet::new(),
            orders_came: false,
        })
    }

    /// The loop's clock (its epoch is `Time::ZERO` for every hosted machine).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The current time as the machines see it.
    pub fn now(&self) -> Time {
        self.clock.now()
    }

    /// Hosts a node: registers its listener (if any) and its extra I/O objects.
    ///
    /// `min_burst` is the smallest rate-limit burst (one chunk, so a chunk is never starved).
    pub fn add(
        &mut self,
        node: Node,
        listener: Option<TcpListener>,
        limits: RateLimits,
        min_burst: u64,
    ) -> std::io::Result<NodeId> {
        let id = self.nodes.len();
        let mut slot = Slot {
            node,
            listener,
            conns: BTreeMap::new(),
            tracker_conn: None,
            tracker_key: None,
            link_failure: None,
            limiter: Limiter::new(limits, min_burst, Instant::now()),
            connect_error: None,
        };
        if let Some(l) = slot.listener.as_mut() {
            let t = self.take_fixed(id, 1, true);
            self.poll.registry().register(l, t, Interest::READABLE)?;
        }
        let n = slot.node.hosted_ref().extra_tokens();
        if n > 0 {
            let base = self.take_fixed(id, n, false);
            slot.node.hosted().register(self.poll.registry(), base)?;
        }
        self.nodes.push(Some(slot));
        // Let the machine's first transmissions (a connect to the tracker) go out.
        self.drain_all(Instant::now());
        Ok(NodeId(id))
    }

    /// The hosted node, if still hosted.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id.0)?.as_ref().map(|s| &s.node)
    }

    /// The hosted node, mutably (commands such as starting a download).
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id.0)?.as_mut().map(|s| &mut s.node)
    }

    /// The poll's registry (for a node's own I/O objects, e.g. closing its output).
    pub fn registry(&self) -> &mio::Registry {
        self.poll.registry()
    }

    /// The link key node `id`'s tracker proved (a seed or peer, once its link is open): what
    /// an unpinned node remembers so that the next run pins it.
    pub fn tracker_key(&self, id: NodeId) -> Option<LinkKey> {
        self.nodes.get(id.0)?.as_ref()?.tracker_key
    }

    /// Why node `id`'s last encrypted link failed (a seed's or peer's link to its tracker:
    /// another key than the pinned one, a record changed on the way), if one did.
    pub fn link_failure(&self, id: NodeId) -> Option<&SecureError> {
        self.nodes.get(id.0)?.as_ref()?.link_failure.as_ref()
    }

    /// Connections refused at the loop's cap so far.
    pub fn refused(&self) -> u64 {
        self.table.refused()
    }

    /// A node's status (`None` once removed).
    pub fn status(&self, id: NodeId) -> Option<Status> {
        self.node(id).map(|n| n.hosted_ref().status())
    }

    /// Stops hosting a node at once, as if its process died: every socket it had is closed
    /// without a goodbye, and the node is returned.
    pub fn remove(&mut self, id: NodeId) -> Option<Node> {
        let (slot, tokens) = self.detach(id)?;
        for token in tokens {
            self.table.remove(token, self.poll.registry());
        }
        Some(slot.node)
    }

    /// Takes node `id` out of the loop's bookkeeping (its listener, extra tokens, links and
    /// every pending turn of its connections) and returns it with its connections' tokens,
    /// still open in the table: [`Runtime::remove`] closes them at once, `depart` politely.
    fn detach(&mut self, id: NodeId) -> Option<(Slot, BTreeSet<Token>)> {
        let mut slot = self.nodes.get_mut(id.0)?.take()?;
        if let Some(l) = slot.listener.as_mut() {
            let _ = self.poll.registry().deregister(l);
        }
        self.fixed.retain(|_, (n, _)| *n != id.0);
        let owned = self.links.iter().filter(|(_, l)| l.node == id.0).map(|(t, _)| *t);
        let tokens: BTreeSet<Token> = slot.conns.values().copied().chain(owned).collect();
        for t in &tokens {
            self.links.remove(t);
            self.pending.remove(t);
            self.dirty.remove(t);
            self.parked.remove(t);
            self.awaiting_key.remove(t);
            self.closing.remove(t);
        }
        Some((slot, tokens))
    }

    /// Runs turns until `done` says so or `limit` passes; returns whether `done` held.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Runtime) -> bool,
    ) -> std::io::Result<bool> {
        let end = Instant::now() + limit;
        loop {
            if done(self) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= end {
                return Ok(false);
            }
            self.turn(Some(end - now))?;
        }
    }

    /// One turn of the loop; sleeps at most `max_wait` (`None`: until an event or deadline).
    pub fn turn(&mut self, max_wait: Option<Duration>) -> std::io::Result<()> {
        let busy = self.nodes.iter().flatten().any(|s| s.node.hosted_ref().has_work());
        let timeout = if self.pending.is_empty() && self.dirty.is_empty() && !busy {
            let now = Instant::now();
            let until = self.deadline().map(|d| d.saturating_duration_since(now));
            match (until, max_wait) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        } else {
            Some(Duration::ZERO)
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        let now = Instant::now();
        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        for event in events.iter() {
            self.dispatch(event, now);
        }
        self.events = events;
        self.read_pending(now);
        self.timers(now);
        self.drain_all(now);
        self.flush_dirty(now);
        Ok(())
    }

    fn take_fixed(&mut self, node: usize, n: usize, listener: bool) -> Token {
        let base = self.next_fixed;
        for t in base..base + n {
            self.fixed.insert(t, (node, listener));
        }
        self.next_fixed += n;
        Token(base)
    }

    /// The earliest deadline of anything in the loop.
    fn deadline(&self) -> Option<Instant> {
        let mut at: Option<Instant> = None;
        let mut min = |t: Option<Instant>| {
            if let Some(t) = t {
                at = Some(at.map_or(t, |a| a.min(t)));
            }
        };
        for slot in self.nodes.iter().flatten() {
            let h = slot.node.hosted_ref();
            min(h.poll_timeout().and_then(|t| self.clock.instant(t)));
            min(h.extra_timeout());
        }
        min(self.table.poll_timeout());
        min(self.closing.values().min().copied());
        min(self.parked.values().min().copied());
        min(self.frame_check);
        at
    }

    /// Runs `f` with a node and its [`Cx`].
    fn with_cx(&mut self, node: usize, now: Instant, f: impl FnOnce(&mut dyn Hosted, &mut Cx<'_>)) {
        let time = self.clock.time(now);
        let registry = self.poll.registry();
        let refused = self.table.refused();
        let Some(Some(slot)) = self.nodes.get_mut(node) else { return };
        let rates = slot.limiter.rates(now);
        let mut cx = Cx { registry, now, time, rates, refused, connect_error: slot.connect_error.as_deref() };
        f(slot.node.hosted(), &mut cx);
    }

    fn timers(&mut self, now: Instant) {
        let t = self.clock.time(now);
        for i in 0..self.nodes.len() {
            let (due, extra_due) = match &self.nodes[i] {
                Some(s) => {
                    let h = s.node.hosted_ref();
                    (h.poll_timeout().is_some_and(|d| d <= t), h.extra_timeout().is_some_and(|d| d <= now))
                }
                None => continue,
            };
            if due && let Some(Some(s)) = self.nodes.get_mut(i) {
                s.node.hosted().handle_timeout(t);
            }
            if extra_due {
                self.with_cx(i, now, |h, cx| h.extra_timer(cx));
            }
        }
        for token in self.table.handle_timeout(self.poll.registry(), now) {
            self.forget(token, t);
        }
        let expired: Vec<Token> =
            self.closing.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
        for token in expired {
            self.closing.remove(&token);
            self.links.remove(&token);
            self.table.remove(token, self.poll.registry());
        }
        if self.frame_check.is_some_and(|at| at <= now) {
            self.close_slow_frames(now, t);
        }
        // Credit is back for these: read and write them again.
        let woken: Vec<Token> = self.parked.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
        for token in woken {
            self.parked.remove(&token);
            self.pending.insert(token);
            self.dirty.insert(token);
        }
    }

    /// Closes connections whose frame in progress arrives under [`MIN_FRAME_RATE`], unless
    /// this side is what slows it (a download rate limit on a peer link, or reading paused
    /// while the connection's output drains).
    fn close_slow_frames(&mut self, now: Instant, t: Time) {
        let mut slow = Vec::new();
        let mut any = false;
        for (token, link) in &self.links {
            let Some(p) = link.partial else { continue };
            any = true;
            let throttled = link.limited
                && self
                    .nodes
                    .get(link.node)
                    .and_then(Option::as_ref)
                    .is_some_and(|s| s.limiter.down.is_some());
            let paused = self.table.get(*token).is_some_and(crate::conn::Conn::over_cap);
            if !throttled && !paused && p.too_slow(now) {
                slow.push((*token, p));
            }
        }
        self.frame_check = any.then(|| now + FRAME_CHECK_EVERY);
        for (token, p) in slow {
            let secs = now.saturating_duration_since(p.since).as_secs_f64();
            tracing::warn!(
                peer = ?self.table.get(token).and_then(crate::conn::Conn::peer_addr),
                bytes = p.bytes,
                secs,
                "a frame arriving under {MIN_FRAME_RATE} B/s; closing that connection"
            );
            self.fail(token, t);
        }
    }

    /// A connection is gone (error, EOF, hello deadline): tell its machine.
    fn forget(&mut self, token: Token, t: Time) {
        self.awaiting_key.remove(&token);
        self.closing.remove(&token);
        self.pending.remove(&token);
        self.dirty.remove(&token);
        self.parked.remove(&token);
        let Some(link) = self.links.remove(&token) else { return };
        let Some(Some(slot)) = self.nodes.get_mut(link.node) else { return };
        if slot.conns.remove(&link.conn).is_some() {
            slot.node.hosted().handle_closed(t, link.conn);
        }
    }

    /// Drains every node's transmissions and events until nothing more comes out.
    fn drain_all(&mut self, now: Instant) {
        // Bounded: each round is driven by the machines' outputs, which run dry; the bound
        // only guards against a machine that would answer its own output forever.
        for _ in 0..64 {
            let mut any = false;
            for i in 0..self.nodes.len() {
                any |= self.drain_transmits(i, now);
                self.with_cx(i, now, |h, cx| h.after(cx));
                any |= self.drain_transmits(i, now);
            }
            if !any {
                break;
            }
        }
    }
}

/// Resolves an endpoint (an IP literal, or a name through the system resolver).
pub fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    (host, port).to_socket_addrs().ok()?.next()
}

/// A seed for a machine's generator, from the OS's hash randomisation (no extra crate).
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.write_u32(std::process::id());
    h.finish()
}

//! Connections: opening, the per-direction send queues, delivery, closing and resets.

use pdtp_core::{ConnId, Message, Payload, Transmit};

use super::tracker_side::Input;
use super::{Engine, Ev, Link, LinkId, Out};
use crate::network::Outcome;
use crate::node::Role;
use crate::wire_size::sealed_len;

impl Engine {
    /// Carries out one instruction from node `n`.
    pub(super) fn transmit(&mut self, n: u32, t: Transmit) {
        match t {
            Transmit::Send { conn, msg } => match self.nodes[n as usize].conns.get(conn) {
                Some(l) => {
                    let d = self.side(l, n);
                    let now = self.now;
                    let Some(link) = self.link_mut(l) else { return };
                    let end = &mut link.ends[d];
                    if end.done_sending {
                        // The link broke and the node has not heard yet (it still maps the
                        // connection): what it writes now is lost, like data written to a
                        // socket the peer has reset.
                        self.dropped += 1;
                        return;
                    }
                    // Nothing queued ahead and nothing holding the direction: what `pump`
                    // would do at once, without a round trip through the queue.
                    let is_data = matches!(msg, Message::Data(_));
                    if end.queue.is_empty()
                        && end.open
                        && end.inflight.is_none()
                        && !(is_data && end.busy_until > now)
                    {
                        self.send(l, d, msg, is_data);
                    } else {
                        end.queue.push_back(Out::Msg(msg));
                        self.pump(l, d);
                    }
                }
                None => self.dropped += 1,
            },
            Transmit::Connect { conn, endpoint, .. } => self.connect(n, conn, &endpoint.host),
            Transmit::Close { conn, .. } => {
                if let Some(l) = self.nodes[n as usize].conns.remove(&conn) {
                    let d = self.side(l, n);
                    if let Some(link) = self.link_mut(l) {
                        link.ends[d].mapped = false;
                        link.ends[d].queue.push_back(Out::Close);
                    }
                    self.pump(l, d);
                }
            }
        }
    }

    fn connect(&mut self, n: u32, conn: ConnId, host: &str) {
        let target = self.resolve(host);
        let l = self.alloc_link();
        let link = &mut self.links[l.ix as usize];
        link.ends[0].node = n;
        link.ends[0].conn = Some(conn);
        link.ends[0].mapped = true;
        self.nodes[n as usize].conns.insert(conn, l);
        match target {
            Some(t) if t != n => {
                self.links[l.ix as usize].ends[1].node = t;
                let lat = self.net.latency(self.nodes[n as usize].net, self.nodes[t as usize].net);
                if self.on_side(t) {
                    let host = self.nodes[n as usize].host.clone();
                    self.links[l.ix as usize].to_tracker_side = true;
                    self.post_to_tracker(self.now + lat, Input::Syn(l, host));
                } else {
                    self.queue.push(self.now + lat, Ev::SynArrive(l));
                }
            }
            // An unknown host: refused after a nominal round trip to the tracker's latency.
            _ => {
                let lat = self.net.latency(self.nodes[n as usize].net, self.nodes[0].net);
                self.queue.push(self.now + lat + lat, Ev::Reset(l, 1));
            }
        }
    }

    pub(super) fn syn_arrive(&mut self, l: LinkId) {
        let Some(link) = self.link_mut(l) else { return };
        let (a, b) = (link.ends[0].node, link.ends[1].node);
        let lat = self.net.latency(self.nodes[a as usize].net, self.nodes[b as usize].net);
        let (from, target) = host_and_node(&mut self.nodes, a as usize, b as usize);
        let accepted = if target.online { target.node.accept(self.now, from) } else { None };
        match accepted {
            Some(conn) => {
                self.accept_end(l, conn, lat);
                self.drain(b);
                self.pump(l, 1);
            }
            None => {
                self.drain(b);
                self.queue.push(self.now + lat, Ev::Reset(l, 1));
            }
        }
    }

    /// The acceptor's end of link `l` is up as its `conn`; the connector hears so one latency
    /// `lat` later.
    fn accept_end(&mut self, l: LinkId, conn: ConnId, lat: pdtp_core::Span) {
        let end = &mut self.links[l.ix as usize].ends[1];
        end.conn = Some(conn);
        end.mapped = true;
        end.open = true;
        let acceptor = end.node;
        self.nodes[acceptor as usize].conns.insert(conn, l);
        self.queue.push(self.now + lat, Ev::SynAck(l));
    }

    /// The node named `host`, if any. Names are the engine's own (`tracker`, `seed<i>`,
    /// `peer<p>`, in node order), so the index is read off the name and checked against it;
    /// a map of 10 000 names cost a cache miss per string compared, on every connect.
    pub(super) fn resolve(&self, host: &str) -> Option<u32> {
        let ix = if host == "tracker" {
            0
        } else if let Some(i) = host.strip_prefix("seed") {
            i.parse::<u32>().ok()?.checked_add(1)?
        } else {
            host.strip_prefix("peer")?.parse::<u32>().ok()?.checked_add(self.first_peer)?
        };
        (self.nodes.get(ix as usize)?.host == host).then_some(ix)
    }

    /// The tracker side accepted (or refused) the connect on link `l`, at `self.now`.
    pub(super) fn tracker_accepted(&mut self, l: LinkId, conn: Option<ConnId>) {
        // A link that broke meanwhile told the side so when it broke (`break_link`).
        let Some(link) = self.link_mut(l) else { return };
        let connector = link.ends[0].node;
        let lat = self.net.latency(self.nodes[0].net, self.nodes[connector as usize].net);
        match conn {
            Some(conn) => {
                self.accept_end(l, conn, lat);
                self.pump(l, 1);
            }
            None => self.queue.push(self.now + lat, Ev::Reset(l, 1)),
        }
    }

    /// Whether node `n` is the tracker running on a side of its own.
    pub(super) fn on_side(&self, n: u32) -> bool {
        n == 0 && self.tracker_window.is_some()
    }

    /// Hands an input to the tracker side for the window in which `at` falls.
    pub(super) fn post_to_tracker(&mut self, at: pdtp_core::Time, input: Input) {
        debug_assert!(at >= self.horizon, "a tracker input inside the running window");
        self.to_tracker.push((at, input));
    }

    /// Starts transmitting the queued messages of direction `d`, in order.
    ///
    /// Control messages go out back to back: each is delivered `serialisation + latency`
    /// after the previous one left, with no event of its own. A `Data` message becomes a flow
    /// once everything before it is on the wire, and nothing behind it moves until its flow
    /// ends (one TCP stream per link direction).
    pub(super) fn pump(&mut self, l: LinkId, d: usize) {
        let now = self.now;
        loop {
            let Some(link) = self.link_mut(l) else { return };
            let end = &mut link.ends[d];
            if !end.open || end.inflight.is_some() || end.done_sending {
                return;
            }
            let is_data = match end.queue.front() {
                None => return,
                Some(Out::Msg(Message::Data(_))) => true,
                Some(_) => false,
            };
            if is_data && end.busy_until > now {
                if !end.wake_pending {
                    end.wake_pending = true;
                    let at = end.busy_until;
                    self.queue.push(at, Ev::TxDone(l, d));
                }
                return;
            }
            let Some(out) = end.queue.pop_front() else { return };
            match out {
                Out::Close => {
                    let start = end.busy_until.max(now);
                    end.done_sending = true;
                    let (src, dst) = (link.ends[d].node, link.ends[1 - d].node);
                    let lat = self.net.latency(self.nodes[src as usize].net, self.nodes[dst as usize].net);
                    if self.on_side(dst) {
                        self.post_to_tracker(start + lat, Input::Closed(l));
                    } else {
                        self.queue.push(start + lat, Ev::Fin(l, d));
                    }
                    return;
                }
                Out::Msg(msg) => {
                    if is_data {
                        self.send(l, d, msg, true);
                        return;
                    }
                    self.send(l, d, msg, false);
                }
            }
        }
    }

    /// Puts `msg` on the wire of direction `d` now that everything before it is: a control
    /// message is delivered after its serialisation and the latency; a `Data` message
    /// (`is_data`, which then holds the direction) becomes a flow.
    fn send(&mut self, l: LinkId, d: usize, msg: Message, is_data: bool) {
        let now = self.now;
        let link = &self.links[l.ix as usize];
        let start = link.ends[d].busy_until.max(now);
        let (src, dst) = (link.ends[d].node, link.ends[1 - d].node);
        let (sn, dn) = (self.nodes[src as usize].net, self.nodes[dst as usize].net);
        let lat = self.net.latency(sn, dn);
        let size = sealed_len(&msg);
        if self.nodes[src as usize].role == Role::Tracker {
            self.recorder.tracker_message(now, size);
        }
        if is_data {
            let tag = (u64::from(l.generation) << 33) | (u64::from(l.ix) << 1) | d as u64;
            let flow = self.net.start_flow(now, sn, dn, size, tag);
            let end = &mut self.links[l.ix as usize].ends[d];
            end.inflight = Some(self.parked.park(msg));
            end.flow = Some(flow);
            return;
        }
        self.net.account(sn, dn, size);
        // Queued behind the frames of other flows on the access links; what follows on this
        // connection waits behind it (one FIFO).
        let done = start + self.net.queue_delay(sn, dn) + self.net.serialisation(sn, dn, size);
        self.links[l.ix as usize].ends[d].busy_until = done;
        if self.on_side(dst) {
            let conn = self.links[l.ix as usize].ends[1 - d].conn;
            self.post_to_tracker(done + lat, Input::Msg(conn, msg));
            return;
        }
        let slot = self.parked.park(msg);
        self.queue.push(done + lat, Ev::Deliver(l, d, slot));
    }

    /// The control messages ahead of a waiting `Data` message are on the wire.
    pub(super) fn wake(&mut self, l: LinkId, d: usize) {
        if let Some(link) = self.link_mut(l) {
            link.ends[d].wake_pending = false;
            self.pump(l, d);
        }
    }

    /// The in-flight message of direction `d` finished transmitting (`flow` for data).
    pub(super) fn transmitted(&mut self, l: LinkId, d: usize, flow: Option<(Outcome, u64)>) {
        let now = self.now;
        let Some(link) = self.link_mut(l) else { return };
        let end = &mut link.ends[d];
        end.flow = None;
        let Some(slot) = end.inflight.take() else { return };
        let (src, dst) = (link.ends[d].node, link.ends[1 - d].node);
        let lat = self.net.latency(self.nodes[src as usize].net, self.nodes[dst as usize].net);
        if let (Some(Message::Data(data)), Some((outcome, _))) = (self.parked.get_mut(slot), flow) {
            let (s, t) = (&self.nodes[src as usize], &self.nodes[dst as usize]);
            let bytes = u64::from(data.payload.len());
            self.recorder.payload(now, s.peer, t.peer, bytes, s.role == Role::Seed);
            match outcome {
                Outcome::Delivered => {}
                Outcome::Corrupted => corrupt(&mut data.payload),
                Outcome::Failed => {
                    // The connection breaks: both ends learn it one latency later.
                    self.parked.take(slot);
                    self.break_link(l, lat);
                    return;
                }
            }
        }
        self.links[l.ix as usize].ends[d].busy_until = now;
        self.queue.push(now + lat, Ev::Deliver(l, d, slot));
        self.pump(l, d);
        self.maybe_free(l);
    }

    pub(super) fn deliver(&mut self, l: LinkId, d: usize, msg: Message) {
        let now = self.now;
        let Some(link) = self.link_mut(l) else {
            self.dropped += 1;
            return;
        };
        let end = &link.ends[1 - d];
        let (n, conn) = match (end.mapped, end.conn) {
            (true, Some(c)) => (end.node, c),
            _ => {
                self.dropped += 1;
                return;
            }
        };
        let s = &mut self.nodes[n as usize];
        if s.role == Role::Tracker && self.processing > pdtp_core::Span::ZERO {
            let at = s.busy_until.max(now) + self.processing;
            s.busy_until = at;
            let slot = self.parked.park(msg);
            self.queue.push(at, Ev::Process(n, conn, slot));
            return;
        }
        if s.role == Role::Tracker {
            self.recorder.tracker_handled(now, sealed_len(&msg));
        }
        s.node.handle_message(now, conn, msg);
        self.drain(n);
    }

    /// End `e` of the link learns that the connection is gone.
    pub(super) fn closed_at(&mut self, l: LinkId, e: usize) {
        let now = self.now;
        let Some(link) = self.link_mut(l) else { return };
        let end = &mut link.ends[e];
        let was_mapped = end.mapped;
        end.mapped = false;
        end.done_sending = true;
        let (n, conn) = (end.node, end.conn);
        if let (true, Some(conn)) = (was_mapped, conn) {
            self.nodes[n as usize].conns.remove(&conn);
            // The tracker on its side has already handled the close (`tracker_side`).
            if !self.on_side(n) {
                self.nodes[n as usize].node.handle_closed(now, conn);
                self.drain(n);
            }
        }
        self.maybe_free(l);
    }

    /// Node `n` vanished (churn): the other end learns it one latency later.
    pub(super) fn kill_link(&mut self, l: LinkId, n: u32) {
        let Some(link) = self.link_mut(l) else { return };
        let d = usize::from(link.ends[0].node != n);
        link.ends[d].mapped = false;
        let (a, b) = (link.ends[0].node, link.ends[1].node);
        let lat = self.net.latency(self.nodes[a as usize].net, self.nodes[b as usize].net);
        self.break_link(l, lat);
    }

    /// Stops both directions at once (cancelling flows) and tells the still-mapped ends.
    fn break_link(&mut self, l: LinkId, lat: pdtp_core::Span) {
        let now = self.now;
        for d in 0..2 {
            let end = &mut self.links[l.ix as usize].ends[d];
            end.queue.clear();
            if let Some(slot) = end.inflight.take() {
                self.parked.take(slot);
            }
            end.done_sending = true;
            if let Some(f) = end.flow.take() {
                self.net.cancel_flow(now, f);
            }
            let mapped = end.mapped;
            if d == 1 && self.links[l.ix as usize].to_tracker_side {
                // The tracker's end, mapped or with its connect still on the way (the side
                // may have accepted it already): the side learns it either way.
                self.post_to_tracker(now + lat, Input::Closed(l));
            } else if mapped {
                // Ev::Reset(l, x) notifies end 1 - x.
                self.queue.push(now + lat, Ev::Reset(l, 1 - d));
            }
        }
        self.maybe_free(l);
    }

    fn maybe_free(&mut self, l: LinkId) {
        let link = &self.links[l.ix as usize];
        let idle = |d: usize| {
            let e = &link.ends[d];
            !e.mapped && e.inflight.is_none() && (e.done_sending || e.queue.is_empty())
        };
        if link.live && idle(0) && idle(1) {
            let link = &mut self.links[l.ix as usize];
            link.live = false;
            link.ends = Default::default();
            self.free_links.push(l.ix);
        }
    }

    fn alloc_link(&mut self) -> LinkId {
        let ix = match self.free_links.pop() {
            Some(ix) => ix,
            None => {
                self.links.push(Link::default());
                (self.links.len() - 1) as u32
            }
        };
        let link = &mut self.links[ix as usize];
        link.generation = link.generation.wrapping_add(1) & 0x7fff_ffff;
        link.live = true;
        link.to_tracker_side = false;
        LinkId { ix, generation: link.generation }
    }

    pub(super) fn link_mut(&mut self, l: LinkId) -> Option<&mut Link> {
        self.links.get_mut(l.ix as usize).filter(|k| k.live && k.generation == l.generation)
    }

    fn side(&self, l: LinkId, n: u32) -> usize {
        usize::from(self.links[l.ix as usize].ends[0].node != n)
    }
}

/// Node `a`'s host name beside node `b` itself (`a != b`), without copying the name.
fn host_and_node(nodes: &mut [super::Slot], a: usize, b: usize) -> (&str, &mut super::Slot) {
    if a < b {
        let (low, high) = nodes.split_at_mut(b);
        (&low[a].host, &mut high[0])
    } else {
        let (low, high) = nodes.split_at_mut(a);
        (&high[0].host, &mut low[b])
    }
}

/// A corrupted virtual payload: same length, a different content tag.
fn corrupt(p: &mut Payload) {
    match p {
        Payload::Virtual { tag, .. } => tag.0[0] ^= 0xff,
        Payload::Real(b) => {
            let mut v = b.to_vec();
            if let Some(x) = v.first_mut() {
                *x ^= 0xff;
            }
            *b = v.into();
        }
    }
}

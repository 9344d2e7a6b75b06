//! Transfer orders and peer requests, common to both sides: matching tokens, holding early
//! requests, failing transfers, and the watchdog.

use super::orders::{Check, Held, MAX_HELD, Order, Phase};
use super::{Node, NodeEvent};
use crate::ids::{ConnId, PeerId, Token};
use crate::output::Dial;
use crate::payload::Payload;
use crate::store::ChunkStore;
use crate::time::Time;
use crate::wire::{Completed, ErrorCode, Message, Method, Notice, PeerRequest, Side, TransferOrder};

/// How long a hole punch may take to connect and start moving data (TCP retries a lost SYN
/// after 1 s and again after 3 s).
const PUNCH_WAIT: crate::time::Span = crate::time::Span::from_secs(5);

impl<S: ChunkStore, E: From<NodeEvent>> Node<S, E> {
    /// A `Transfer` order from the tracker.
    pub(super) fn on_order(&mut self, now: Time, o: TransferOrder) {
        if self.orders.contains_key(&o.token) {
            let n = Notice::about(o.token, ErrorCode::Unexpected, "duplicate order");
            self.emit(NodeEvent::Problem(n));
            return;
        }
        match o.side {
            Side::Taker => self.taker_order(now, o),
            Side::Giver => self.giver_order(now, o),
        }
    }

    /// Records an order and starts it if its link is already up, or matches a held request.
    pub(super) fn start_order(&mut self, now: Time, o: TransferOrder) {
        let token = o.token;
        let (conn, phase) = match o.connect {
            // The giver's end of a hole punch dials, then waits for the taker's `Get` like
            // a giver whose taker dials it.
            Some(endpoint) if o.punch && o.side == Side::Giver => {
                self.punch_to(now, o.other, endpoint);
                (None, Phase::Waiting)
            }
            Some(endpoint) => {
                let dial = if o.punch { Dial::Punch { accepting: false } } else { Dial::Plain };
                (self.link_to(now, o.other, endpoint, o.key.clone(), dial), Phase::Linking)
            }
            None => (None, Phase::Waiting),
        };
        // A giver waiting for the taker's `Get` waits no longer than a request waits for its
        // order: an honest taker sends it one round trip after the order, and a slot held
        // by a taker that never asks is the tracker's to give to someone else.
        let wait = match (o.side, phase) {
            // A hole punch connects within a SYN retransmission or two, or not at all: the
            // tracker learns of a pair that cannot connect sooner than a stall would tell.
            _ if o.punch => self.cfg.stall_timeout.min(PUNCH_WAIT),
            (Side::Giver, Phase::Waiting) => self.cfg.stall_timeout.min(self.cfg.order_wait),
            _ => self.cfg.stall_timeout,
        };
        let order = Order {
            content: o.content,
            chunk: o.chunk,
            side: o.side,
            method: o.method,
            other: o.other,
            conn,
            phase,
            moving_since: now,
            deadline: now + wait,
            key_id: o.key.id(),
            key: o.key,
        };
        self.orders.insert(token, order);
        match conn {
            Some(c) if self.link_connected(c) => self.link_ready(now, token),
            Some(_) => {}
            // It needed a new link and the connection table is full.
            None if phase == Phase::Linking => self.fail(now, token, "too many open connections"),
            None => self.match_held(now, token),
        }
    }

    /// The link of a connecting order is up: send our `Get` or `Put`.
    pub(super) fn link_ready(&mut self, now: Time, token: Token) {
        let Some(o) = self.orders.get(&token) else { return };
        let (Some(conn), Phase::Linking) = (o.conn, o.phase) else { return };
        let req = PeerRequest { token, content: o.content, chunk: o.chunk };
        match o.side {
            Side::Taker => {
                self.send(now, conn, Message::Get(req));
                self.started(now, token);
            }
            Side::Giver => {
                self.send(now, conn, Message::Put(req));
                self.serve(now, conn, token);
            }
        }
    }

    /// A `Get` or `Put` from `remote` on `conn`.
    pub(super) fn on_request(
        &mut self,
        now: Time,
        conn: ConnId,
        remote: PeerId,
        method: Method,
        req: PeerRequest,
    ) {
        match self.orders.check(remote, method, &req) {
            Check::Accept => self.accept_request(now, conn, method, req.token, None),
            Check::Refuse => self.refuse(now, conn, req.token, "token does not match this pair and chunk"),
            Check::Hold => {
                let dup = self.orders.held.iter().any(|h| h.req.token == req.token);
                if dup || self.orders.held.len() >= MAX_HELD {
                    self.refuse(now, conn, req.token, "too many requests waiting for orders");
                } else {
                    let deadline = now + self.cfg.order_wait;
                    self.orders.held.push(Held { conn, method, req, deadline, data: None });
                }
            }
        }
    }

    /// An order just arrived: serve the request that was waiting for it, if any.
    fn match_held(&mut self, now: Time, token: Token) {
        let Some(h) = self.orders.take_held(token) else { return };
        let Some(remote) = self.links.get(h.conn).and_then(|l| l.remote) else { return };
        match self.orders.check(remote, h.method, &h.req) {
            Check::Accept => self.accept_request(now, h.conn, h.method, token, h.data),
            Check::Refuse | Check::Hold => {
                self.refuse(now, h.conn, token, "token does not match this pair and chunk")
            }
        }
    }

    fn accept_request(
        &mut self,
        now: Time,
        conn: ConnId,
        method: Method,
        token: Token,
        data: Option<Payload>,
    ) {
        let Some(o) = self.orders.get_mut(&token) else { return };
        o.conn = Some(conn);
        match method {
            Method::Get => self.serve(now, conn, token),
            Method::Put => {
                self.started(now, token);
                if let Some(payload) = data {
                    self.take_data(now, token, payload);
                }
            }
        }
    }

    /// Answers a peer request with `Warning(TokenRefused)`.
    fn refuse(&mut self, now: Time, conn: ConnId, token: Token, why: &str) {
        let n = Notice::about(token, ErrorCode::TokenRefused, why);
        self.send(now, conn, Message::Warning(n.clone()));
        self.emit(NodeEvent::Problem(n));
    }

    /// A warning on a peer link; refusals and unavailability fail the transfer they name.
    pub(super) fn on_peer_warning(&mut self, now: Time, conn: ConnId, n: Notice) {
        let fatal = matches!(n.code, ErrorCode::TokenRefused | ErrorCode::ChunkUnavailable);
        let named = n.token;
        self.emit(NodeEvent::Problem(n));
        if !fatal {
            return;
        }
        let token = named.or_else(|| {
            let on = self.orders.on_conn(conn);
            (on.len() == 1).then(|| on[0])
        });
        if let Some(t) = token
            && self.orders.get(&t).is_some_and(|o| o.conn == Some(conn))
        {
            self.fail(now, t, "refused by the other end");
        }
    }

    /// Ends a transfer without a verified chunk; a taker always reports `Completed(None)`.
    pub(super) fn fail(&mut self, now: Time, token: Token, why: &str) {
        let Some(o) = self.orders.remove(&token) else { return };
        if o.side == Side::Taker {
            self.send_tracker(now, Message::Completed(Completed { token, hash: None, copy_us: 0 }));
        }
        self.stats.transfers_failed += 1;
        self.emit(NodeEvent::TransferFailed { token, reason: why.to_string() });
    }

    /// Fails transfers not started or not finished in time.
    pub(super) fn sweep_watchdog(&mut self, now: Time) {
        let due: Vec<(Token, Phase)> =
            self.orders.iter().filter(|(_, o)| o.deadline <= now).map(|(t, o)| (*t, o.phase)).collect();
        for (token, phase) in due {
            match phase {
                Phase::Moving => self.fail(now, token, "transfer did not complete in time"),
                Phase::Waiting if self.get_queued_behind_a_copy(token) => {
                    // The taker's `Get` waits behind the copy it is sending us on the same
                    // link: it is working, not silent. Wait on while that copy moves (its own
                    // watchdogs end it if it stalls).
                    self.orders.set_deadline(&token, now + self.cfg.order_wait);
                }
                Phase::Waiting if self.orders.get(&token).is_some_and(|o| o.side == Side::Giver) => {
                    // The taker never asked: tell the tracker, which reclaims the slot at once
                    // (a giver's `Completed` with no hash; docs/protocol.md §4).
                    self.send_tracker(now, Message::Completed(Completed { token, hash: None, copy_us: 0 }));
                    self.fail(now, token, "the taker did not ask for the chunk in time");
                }
                Phase::Linking | Phase::Waiting => self.fail(now, token, "transfer did not start in time"),
            }
        }
    }

    /// Whether we give `token` and take a copy from the same peer that is under way: its
    /// data travels the direction the taker's `Get` must take, ahead of it.
    fn get_queued_behind_a_copy(&self, token: Token) -> bool {
        let Some(o) = self.orders.get(&token) else { return false };
        o.side == Side::Giver
            && self
                .orders
                .iter()
                .any(|(_, t)| t.other == o.other && t.side == Side::Taker && t.phase == Phase::Moving)
    }

    /// Refuses held requests whose order did not arrive within `order_wait`.
    pub(super) fn sweep_held(&mut self, now: Time) {
        let (due, keep): (Vec<Held>, Vec<Held>) =
            std::mem::take(&mut self.orders.held).into_iter().partition(|h| h.deadline <= now);
        self.orders.held = keep;
        for h in due {
            self.refuse(now, h.conn, h.req.token, "no matching order arrived");
        }
    }
}

//! Token bookkeeping: the transfer orders we hold and peer requests waiting for theirs.

use std::collections::BTreeMap;

use crate::ids::{ChunkIndex, ConnId, ContentId, PeerId, Token};
use crate::payload::Payload;
use crate::time::Time;
use crate::wire::{Method, PeerRequest, Side};

/// At most this many unmatched peer requests are held; more are refused at once.
pub(crate) const MAX_HELD: usize = 32;

/// Where a transfer we were ordered into stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// We connect: waiting for our link to come up.
    Linking,
    /// We accept: waiting for the other end's `Get` or `Put`.
    Waiting,
    /// Data is moving (taker: `Started` sent; giver: pushing).
    Moving,
    /// Giver: data sent, waiting for the tracker's verdict.
    Served,
}

/// One transfer order from the tracker, as this end tracks it.
#[derive(Clone, Debug)]
pub(crate) struct Order {
    pub content: ContentId,
    pub chunk: ChunkIndex,
    pub side: Side,
    pub method: Method,
    pub other: PeerId,
    /// The peer link carrying it, once chosen.
    pub conn: Option<ConnId>,
    pub phase: Phase,
    /// When the watchdog gives up on it.
    pub deadline: Time,
}

/// A peer request whose token matched no order yet (the order may still be on its way).
#[derive(Clone, Debug)]
pub(crate) struct Held {
    pub conn: ConnId,
    pub method: Method,
    pub req: PeerRequest,
    /// When it is refused with `Warning(TokenRefused)`.
    pub deadline: Time,
    /// The payload that followed a held `Put`, if it arrived already.
    pub data: Option<Payload>,
}

/// Orders by token, and held requests in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Orders {
    pub map: BTreeMap<Token, Order>,
    pub held: Vec<Held>,
}

/// What to do with a peer request (`Get` or `Put`) on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// It matches an order waiting for it.
    Accept,
    /// No order with this token yet: hold it.
    Hold,
    /// The token is known but for another pair, chunk or method: refuse at once.
    Refuse,
}

impl Orders {
    /// Matches a peer request from `remote` against our orders (docs/protocol.md §3).
    pub fn check(&self, remote: PeerId, method: Method, req: &PeerRequest) -> Check {
        let Some(o) = self.map.get(&req.token) else { return Check::Hold };
        // A Get is accepted by the giver, a Put by the taker.
        let side = match method {
            Method::Get => Side::Giver,
            Method::Put => Side::Taker,
        };
        let fits = o.side == side
            && o.method == method
            && o.other == remote
            && o.content == req.content
            && o.chunk == req.chunk
            && o.phase == Phase::Waiting;
        if fits { Check::Accept } else { Check::Refuse }
    }

    /// Takes the held request for `token`, if any.
    pub fn take_held(&mut self, token: Token) -> Option<Held> {
        let i = self.held.iter().position(|h| h.req.token == token)?;
        Some(self.held.remove(i))
    }

    /// Tokens of orders carried by `conn`.
    pub fn on_conn(&self, conn: ConnId) -> Vec<Token> {
        self.map.iter().filter(|(_, o)| o.conn == Some(conn)).map(|(t, _)| *t).collect()
    }

    /// Whether any order or held request uses `conn`.
    pub fn uses(&self, conn: ConnId) -> bool {
        self.map.values().any(|o| o.conn == Some(conn)) || self.held.iter().any(|h| h.conn == conn)
    }

    /// The earliest order deadline.
    pub fn next_deadline(&self) -> Option<Time> {
        self.map.values().map(|o| o.deadline).min()
    }

    /// The earliest held-request deadline.
    pub fn next_held_deadline(&self) -> Option<Time> {
        self.held.iter().map(|h| h.deadline).min()
    }
}

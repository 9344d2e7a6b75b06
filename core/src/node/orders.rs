//! Token bookkeeping: the transfer orders we hold and peer requests waiting for theirs.

use std::collections::{BTreeMap, VecDeque};

use crate::ids::{ChunkIndex, ConnId, ContentId, PeerId, Token};
use crate::payload::Payload;
use crate::time::Time;
use crate::wire::{LinkSecret, Method, PeerRequest, Side};

/// At most this many unmatched peer requests are held; more are refused at once.
pub(crate) const MAX_HELD: usize = 32;

/// At most this many served chunks are remembered (the oldest go first). A rejecting verdict
/// comes one tracker round trip after the taker got the data, and a seed on a fast link may
/// serve thousands of chunks a second: the age limit alone would let the list grow to
/// hundreds of thousands of entries.
pub(crate) const MAX_SERVED: usize = 4096;

/// Where a transfer we were ordered into stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// We connect: waiting for our link to come up.
    Linking,
    /// We accept: waiting for the other end's `Get` or `Put`.
    Waiting,
    /// Data is moving (taker: `Get` sent or `Put` accepted; giver: pushing).
    Moving,
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
    /// When data started moving (the taker reports the copy's duration from it); the
    /// order's arrival until then.
    pub moving_since: Time,
    /// When the watchdog gives up on it. Set it only through [`Orders::insert`] and
    /// [`Orders::set_deadline`], which keep the earliest deadline cached.
    pub deadline: Time,
    /// The peer link's secret, as the tracker gave it to both ends.
    pub key: LinkSecret,
    /// Its link id ([`LinkSecret::id`], a keyed hash), once: accepted links waiting for their
    /// secret look it up among the orders each time a tracker link brings messages.
    pub key_id: [u8; 16],
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

/// A chunk we served, remembered until `until` so that a rejecting verdict can name it: the
/// tracker sends a verdict only when the taker's hash did not match, and by then the order
/// is gone (it ended when the data was sent).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Served {
    pub token: Token,
    pub content: ContentId,
    pub chunk: ChunkIndex,
    pub other: PeerId,
    pub until: Time,
}

/// Orders by token, and held requests in arrival order.
#[derive(Debug, Default)]
pub(crate) struct Orders {
    map: BTreeMap<Token, Order>,
    pub held: Vec<Held>,
    /// Recently served chunks, oldest first (`until` grows with the send time).
    served: VecDeque<Served>,
    /// The earliest order deadline, when known (`None`: scan for it). Timers are re-armed
    /// after every message, most of which change no deadline; the cache spares the scan.
    earliest: Option<Option<Time>>,
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

/// Keeps the cached earliest deadline right when one order's deadline moves from `old` to
/// `new`: a sooner one is the new earliest; the earliest moved later is unknown.
fn moved(earliest: &mut Option<Option<Time>>, old: Time, new: Time) {
    match *earliest {
        Some(Some(e)) if new <= e => *earliest = Some(Some(new)),
        Some(Some(e)) if old == e => *earliest = None,
        _ => {}
    }
}

impl Orders {
    /// The order for `token`.
    pub fn get(&self, token: &Token) -> Option<&Order> {
        self.map.get(token)
    }

    /// The order for `token`, to change anything but its deadline ([`Orders::set_deadline`]).
    pub fn get_mut(&mut self, token: &Token) -> Option<&mut Order> {
        self.map.get_mut(token)
    }

    /// Whether an order for `token` is held.
    pub fn contains_key(&self, token: &Token) -> bool {
        self.map.contains_key(token)
    }

    /// Number of orders.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Orders in token order.
    pub fn iter(&self) -> impl Iterator<Item = (&Token, &Order)> {
        self.map.iter()
    }

    /// Records an order (replacing any with the same token).
    pub fn insert(&mut self, token: Token, order: Order) {
        let deadline = order.deadline;
        if let Some(old) = self.map.insert(token, order) {
            self.forget(old.deadline);
        }
        if let Some(e) = &mut self.earliest {
            *e = Some(e.map_or(deadline, |t| t.min(deadline)));
        }
    }

    /// Removes the order for `token`.
    pub fn remove(&mut self, token: &Token) -> Option<Order> {
        let o = self.map.remove(token)?;
        self.forget(o.deadline);
        Some(o)
    }

    /// Remembers a served chunk, forgetting those whose time is up and the oldest past
    /// [`MAX_SERVED`].
    pub fn record_served(&mut self, now: Time, served: Served) {
        while self.served.front().is_some_and(|s| s.until <= now) || self.served.len() >= MAX_SERVED {
            self.served.pop_front();
        }
        self.served.push_back(served);
    }

    /// Takes the record of the chunk served under `token`, if it is still remembered.
    pub fn take_served(&mut self, token: &Token) -> Option<Served> {
        let i = self.served.iter().rposition(|s| s.token == *token)?;
        self.served.remove(i)
    }

    /// Moves the deadline of the order for `token`.
    pub fn set_deadline(&mut self, token: &Token, deadline: Time) {
        let Some(o) = self.map.get_mut(token) else { return };
        let old = std::mem::replace(&mut o.deadline, deadline);
        moved(&mut self.earliest, old, deadline);
    }

    /// Moves the deadline of each order on `conn` for which `deadline` gives one. In place,
    /// with no list of tokens: a taker calls it on every read of a peer link.
    pub fn retime_on_conn(&mut self, conn: ConnId, deadline: impl Fn(&Order) -> Option<Time>) {
        let Self { map, earliest, .. } = self;
        for o in map.values_mut().filter(|o| o.conn == Some(conn)) {
            if let Some(new) = deadline(o) {
                let old = std::mem::replace(&mut o.deadline, new);
                moved(earliest, old, new);
            }
        }
    }

    /// A deadline left the table: the cached earliest is unknown if it was that one.
    fn forget(&mut self, deadline: Time) {
        if self.earliest == Some(Some(deadline)) {
            self.earliest = None;
        }
    }

    /// Matches a peer request from `remote` against our orders (docs/protocol.md §3).
    pub fn check(&self, remote: PeerId, method: Method, req: &PeerRequest) -> Check {
        let Some(o) = self.map.get(&req.token) else {
            // A token is good for one transfer: one already served is refused, not held.
            let served = self.served.iter().any(|s| s.token == req.token);
            return if served { Check::Refuse } else { Check::Hold };
        };
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
    pub fn next_deadline(&mut self) -> Option<Time> {
        let earliest = match self.earliest {
            Some(e) => e,
            None => {
                let e = self.map.values().map(|o| o.deadline).min();
                self.earliest = Some(e);
                e
            }
        };
        debug_assert_eq!(earliest, self.map.values().map(|o| o.deadline).min());
        earliest
    }

    /// The earliest held-request deadline.
    pub fn next_held_deadline(&self) -> Option<Time> {
        self.held.iter().map(|h| h.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    fn served(token: u64, until: Time) -> Served {
        Served { token: Token(token), content: ContentId(0), chunk: 3, other: PeerId(9), until }
    }

    #[test]
    fn served_tokens_are_refused_then_forgotten_by_age_and_by_count() {
        let mut orders = Orders::default();
        let t0 = Time::ZERO;
        let later = t0 + Span::from_secs(120);
        orders.record_served(t0, served(1, later));
        let get = PeerRequest { token: Token(1), content: ContentId(0), chunk: 3 };
        assert_eq!(orders.check(PeerId(9), Method::Get, &get), Check::Refuse, "a served token is spent");
        let unknown = PeerRequest { token: Token(2), ..get };
        assert_eq!(orders.check(PeerId(9), Method::Get, &unknown), Check::Hold);
        // Recording after token 1's time is up forgets it.
        orders.record_served(later, served(2, later + Span::from_secs(120)));
        assert!(orders.take_served(&Token(1)).is_none());
        assert_eq!(orders.take_served(&Token(2)).map(|s| s.chunk), Some(3));
        assert!(orders.take_served(&Token(2)).is_none(), "taken once");
        // No more than MAX_SERVED are kept: the oldest go first.
        for k in 0..=MAX_SERVED as u64 {
            orders.record_served(later, served(100 + k, later + Span::from_secs(1)));
        }
        assert!(orders.take_served(&Token(100)).is_none());
        assert!(orders.take_served(&Token(101)).is_some());
        assert!(orders.take_served(&Token(100 + MAX_SERVED as u64)).is_some());
    }
}

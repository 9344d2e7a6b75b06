//! The tracker on a core of its own: conservative windows over its latency.
//!
//! Nothing reaches the tracker sooner than the smallest one-way latency `L` between it and
//! any other node, and nothing it sends reaches anyone sooner either. So the run advances in
//! windows `[T, T + L)`: at `T`, every input the tracker will see before `T + L` (a connect,
//! a message, a close) is already known, because it was sent before `T`. The tracker side
//! handles those inputs in time order while the rest of the swarm runs its own events of the
//! window, the two on separate cores; at `T + L` the tracker's outputs, each stamped with the
//! instant it made them, are carried out by the engine at those instants (whatever they
//! cause happens at `T + L` or later). Neither side reads the other's state during a window,
//! so a run is as deterministic as the sequential loop, and gives the same result whether
//! the two halves run in parallel or one after the other.
//!
//! The tracker side owns the tracker's state machine, its FIFO processing queue
//! (`tracker.processing` per message) and its timer. The engine keeps every link: it tells
//! the tracker side which connection a message arrives on and learns, from the outputs,
//! which connection the tracker accepted or closed.

use std::collections::{BTreeMap, BTreeSet};

use pdtp_core::{ConnId, Message, Span, Time, Transmit};

use super::LinkId;
use crate::node::{NodeEvent, SimNode};
use crate::queue::EventQueue;
use crate::wire_size::sealed_len;

/// Something that reaches the tracker at a given instant.
pub(super) enum Input {
    /// The run starts.
    Start,
    /// A connect from `host` arrives on link `LinkId`.
    Syn(LinkId, String),
    /// A message arrives on the tracker's connection (`None`: the tracker's end was already
    /// closed when it was sent).
    Msg(Option<ConnId>, Message),
    /// A message's turn at the processing queue has come and its processing time passed.
    Process(ConnId, Message),
    /// Link `LinkId` closed or broke at the other end (possibly before the tracker's
    /// acceptance reached the engine).
    Closed(LinkId),
}

/// What the tracker did, for the engine to carry out at the instant it was done.
pub(super) enum Output {
    /// A connect on the link was accepted (`Some`) or refused.
    Accepted(LinkId, Option<ConnId>),
    /// The tracker's end of the link learnt it was closed.
    Closed(LinkId),
    Transmit(Transmit),
    Event(NodeEvent),
    /// A message handled, of this many bytes on the wire.
    Handled(u64),
    /// A message arrived for a connection the tracker had closed.
    Dropped,
}

/// The tracker, its inputs not yet handled and its outputs not yet carried out.
pub(super) struct TrackerSide {
    node: Box<dyn SimNode>,
    inbox: EventQueue<Input>,
    processing: Span,
    busy_until: Time,
    timer: Option<Time>,
    /// Connections the tracker accepted and has not closed or seen closed.
    open: BTreeSet<ConnId>,
    /// The connection the tracker accepted on each link it has not seen closed.
    accepted: BTreeMap<LinkId, ConnId>,
    outputs: Vec<(Time, Output)>,
    events: u64,
    /// The instant of the last event handled and how many events it has had.
    instant: (Time, u64),
    livelock_limit: u64,
    /// The instant that had more than `livelock_limit` events, if one did.
    livelock: Option<Time>,
}

impl TrackerSide {
    pub(super) fn new(node: Box<dyn SimNode>, processing: Span, livelock_limit: u64) -> Self {
        let mut inbox = EventQueue::new();
        inbox.push(Time::ZERO, Input::Start);
        Self {
            node,
            inbox,
            processing,
            busy_until: Time::ZERO,
            timer: None,
            open: BTreeSet::new(),
            accepted: BTreeMap::new(),
            outputs: Vec::new(),
            events: 0,
            instant: (Time::ZERO, 0),
            livelock_limit,
            livelock: None,
        }
    }

    pub(super) fn set_livelock_limit(&mut self, events: u64) {
        self.livelock_limit = events;
    }

    /// Queues an input sent during an earlier window (the engine passes them in the order
    /// they were made; equal instants are handled in that order).
    pub(super) fn post(&mut self, at: Time, input: Input) {
        self.inbox.push(at, input);
    }

    /// The instant of the tracker's next input or timer, if any.
    pub(super) fn next_time(&mut self) -> Option<Time> {
        match (self.inbox.earliest(), self.timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Handles every input and timer due before `horizon`, in time order (an input first
    /// when it ties with the timer, as the sequential loop would have queued it first).
    pub(super) fn advance(&mut self, horizon: Time) {
        while self.livelock.is_none() {
            let input_at = self.inbox.earliest().filter(|&t| t < horizon);
            let timer_at = self.timer.filter(|&t| t < horizon);
            match (input_at, timer_at) {
                (None, None) => return,
                (Some(a), Some(t)) if t < a => self.fire_timer(t),
                (None, Some(t)) => self.fire_timer(t),
                _ => {
                    let Some((now, input)) = self.inbox.pop() else { return };
                    self.count(now);
                    self.handle(now, input);
                }
            }
        }
    }

    fn fire_timer(&mut self, now: Time) {
        self.count(now);
        self.timer = None;
        self.node.handle_timeout(now);
        self.drain(now);
    }

    fn count(&mut self, now: Time) {
        self.events += 1;
        if self.instant.0 == now {
            self.instant.1 += 1;
            if self.instant.1 > self.livelock_limit {
                self.livelock = Some(now);
            }
        } else {
            self.instant = (now, 0);
        }
    }

    fn handle(&mut self, now: Time, input: Input) {
        match input {
            Input::Start => {
                self.node.start(now);
                self.drain(now);
            }
            Input::Syn(l, host) => {
                let conn = self.node.accept(now, &host);
                if let Some(c) = conn {
                    self.open.insert(c);
                    self.accepted.insert(l, c);
                }
                self.outputs.push((now, Output::Accepted(l, conn)));
                self.drain(now);
            }
            Input::Msg(conn, msg) => match conn.filter(|c| self.open.contains(c)) {
                Some(c) if self.processing > Span::ZERO => {
                    // A FIFO server: the message waits for those before it.
                    let at = self.busy_until.max(now) + self.processing;
                    self.busy_until = at;
                    self.inbox.push(at, Input::Process(c, msg));
                }
                Some(c) => self.process(now, c, msg),
                None => self.outputs.push((now, Output::Dropped)),
            },
            Input::Process(conn, msg) => {
                if self.open.contains(&conn) {
                    self.process(now, conn, msg);
                } else {
                    self.outputs.push((now, Output::Dropped));
                }
            }
            Input::Closed(l) => {
                self.outputs.push((now, Output::Closed(l)));
                if let Some(c) = self.accepted.remove(&l).filter(|c| self.open.remove(c)) {
                    self.node.handle_closed(now, c);
                    self.drain(now);
                }
            }
        }
    }

    fn process(&mut self, now: Time, conn: ConnId, msg: Message) {
        self.outputs.push((now, Output::Handled(sealed_len(&msg))));
        self.node.handle_message(now, conn, msg);
        self.drain(now);
    }

    /// Collects the tracker's outputs and re-arms its timer (a deadline already past fires
    /// now).
    fn drain(&mut self, now: Time) {
        while let Some(t) = self.node.poll_transmit() {
            if let Transmit::Close { conn, .. } = &t {
                self.open.remove(conn);
            }
            self.outputs.push((now, Output::Transmit(t)));
        }
        while let Some(ev) = self.node.poll_event() {
            self.outputs.push((now, Output::Event(ev)));
        }
        self.timer = self.node.poll_timeout().map(|t| t.max(now));
    }

    /// The outputs made since the last call, in the order they were made.
    pub(super) fn take_outputs(&mut self) -> std::vec::Drain<'_, (Time, Output)> {
        self.outputs.drain(..)
    }

    /// Events handled so far (inputs and timer firings).
    pub(super) fn events(&self) -> u64 {
        self.events
    }

    /// The tracker's state machine, to run it in the engine's own loop again.
    pub(super) fn into_node(self) -> Box<dyn SimNode> {
        self.node
    }

    /// The instant that had more events than the livelock limit, if one did.
    pub(super) fn livelocked(&self) -> Option<Time> {
        self.livelock
    }
}

/// What the engine's slot for the tracker holds while the tracker runs on its side: a node
/// that does nothing (the engine routes every tracker input to the side instead).
pub(super) struct Moved;

impl SimNode for Moved {
    fn start(&mut self, _now: Time) {}
    fn stop(&mut self, _now: Time) {}
    // The engine routes every connect, message and close for the tracker to its side; one
    // arriving here is an input the routing missed.
    fn accept(&mut self, _now: Time, _remote_host: &str) -> Option<ConnId> {
        debug_assert!(false, "a connect reached the tracker's stand-in");
        None
    }
    fn handle_connected(&mut self, _now: Time, _conn: ConnId) {
        debug_assert!(false, "the tracker's stand-in connected");
    }
    fn handle_closed(&mut self, _now: Time, _conn: ConnId) {
        debug_assert!(false, "a close reached the tracker's stand-in");
    }
    fn handle_message(&mut self, _now: Time, _conn: ConnId, _msg: Message) {
        debug_assert!(false, "a message reached the tracker's stand-in");
    }
    fn handle_timeout(&mut self, _now: Time) {}
    fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }
    fn poll_event(&mut self) -> Option<NodeEvent> {
        None
    }
    fn poll_timeout(&self) -> Option<Time> {
        None
    }
}

//! The run loop: pops events in `(time, sequence)` order, carries messages between nodes
//! through the network model, fires node timers when due, and feeds the metrics recorder.
//!
//! # Transport model
//!
//! A connection is two one-way byte streams. Each direction sends its messages one after
//! the other, like a TCP stream: a message is first *transmitted* (a `Data` message as a
//! flow in the [`Network`], sharing capacity max-min fairly with every other flow; a control
//! message in `size / min(up_src, down_dst)` without a flow, its bytes still counted, after
//! waiting in the busy access links' queues under `wire: tcp`: `Network::queue_delay`), then
//! *propagates* for the path latency `latency(src) + latency(dst)`, then is handed to the
//! receiver. For an isolated message that is latency + size/capacity, and messages on one
//! connection arrive in the order they were sent. Opening a connection takes one latency
//! for the connect to reach the acceptor and one more for the answer; a refused or
//! unreachable connect is reported as `handle_closed` one round trip later. A close reaches
//! the other end one latency after everything queued before it was transmitted.
//!
//! The tracker handles messages one at a time: each costs `tracker.processing`, and messages
//! that arrive while it is busy wait their turn (a FIFO server), so small chunks can
//! saturate it.
//!
//! The tracker runs on a side of its own, on the second core, in windows as long as the
//! smallest latency between it and any other node ([`tracker_side`]).

use std::collections::VecDeque;

use pdtp_core::{ConnId, Message, Span, Time};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::metrics::{Measured, Recorder, StreamClock};
use crate::network::{Faults, FlowId, Network, NodeIx};
use crate::node::{NodeEvent, NodeFactory, NodeSpec, Role, SimNode};
use crate::queue::EventQueue;
use crate::scenario::Scenario;
use crate::wire_size::sealed_len;
use conn_map::ConnMap;
use tracker_side::{Input, Output, TrackerSide};

mod schedule;

/// Why a run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Every viewer completed (or left for good).
    AllDone,
    /// The scenario's time limit passed first.
    TimeLimit,
    /// Nothing was left to happen (a stuck run).
    Quiescent,
    /// Too many events at one simulated instant: a node keeps asking for a timeout that is
    /// already due, or nodes ping-pong in zero time (a bug in a node, reported, not hung on).
    Livelock,
}

impl EndReason {
    /// The name `report.json` uses.
    pub fn name(self) -> &'static str {
        match self {
            Self::AllDone => "all_done",
            Self::TimeLimit => "time_limit",
            Self::Quiescent => "quiescent",
            Self::Livelock => "livelock",
        }
    }
}

/// Events at one simulated instant after which a run is declared livelocked.
pub const LIVELOCK_EVENTS: u64 = 10_000_000;

/// What a run produced, before it is related to the scenario's bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutput {
    /// The metrics' raw totals and per-viewer records.
    pub measured: Measured,
    /// Events popped from the queue.
    pub events: u64,
    /// Simulated time at the end.
    pub end: Time,
    /// Why it ended.
    pub reason: EndReason,
    /// Bytes uploaded by all nodes (network totals, control and data).
    pub bytes_uploaded: u64,
    /// Bytes downloaded by all nodes.
    pub bytes_downloaded: u64,
    /// Messages dropped because their connection was gone.
    pub dropped_messages: u64,
    /// Rate recomputations done by the network model.
    pub rate_recomputations: u64,
}

/// The simulator's run loop over one scenario.
pub struct Engine {
    now: Time,
    queue: EventQueue<Ev>,
    /// Messages of queued `Deliver` and `Process` events and links' in-flight `Data`,
    /// parked here so an event stays small (24 bytes instead of 136) on push, pop and
    /// dispatch, and a link too (168 bytes instead of 392).
    parked: Parked,
    net: Network,
    /// The earliest `Ev::Net` queued and not yet fired (as `Slot::queued`).
    net_queued: Option<Time>,
    nodes: Vec<Slot>,
    /// The index of the first viewer (after the tracker and the seeds).
    first_peer: u32,
    links: Vec<Link>,
    free_links: Vec<u32>,
    recorder: Recorder,
    processing: Span,
    /// Viewers in the run.
    viewers: u64,
    /// Viewers not yet done (completed, or left for good).
    pending: u64,
    events: u64,
    dropped: u64,
    limit: Time,
    livelock_events: u64,
    rng: ChaCha8Rng,
    churn: Option<crate::scenario::Churn>,
    seed_for: Option<crate::scenario::SeedFor>,
    content_path: String,
    seed_key: [u8; 32],
    /// The tracker on its own core (see [`tracker_side`]); taken out while the run goes.
    tracker_side: Option<TrackerSide>,
    /// The window length when the tracker runs on its side; `None` runs it in the same
    /// loop as everything else.
    tracker_window: Option<Span>,
    /// Inputs for the tracker side made during the current window, in the order made.
    to_tracker: Vec<(Time, Input)>,
    /// The end of the current window (every input for the tracker side lands at or after it).
    horizon: Time,
}

/// Windows shorter than this would cost more in handing over than the tracker side saves,
/// so a scenario whose tracker is closer to some node runs in one loop.
const MIN_WINDOW: Span = Span::from_millis(1);

/// Why a node starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// Its first arrival (churn decides here whether it will leave).
    First,
    /// Back after a churn departure.
    Return,
    /// Its player restarted after losing the tracker (the viewer never left).
    Restart,
}

/// How long a viewer's player waits, after losing its tracker connection before it was done,
/// to start again (as a new join: its links close and it reconnects). A saturated tracker
/// closes connections whose `Hello` waited past its timeout in the queue; without a restart
/// those viewers waited for ever and the run ended `quiescent`.
const PLAYER_RESTART: Span = Span::from_secs(1);

struct Slot {
    role: Role,
    peer: Option<u32>,
    node: Box<dyn SimNode>,
    net: NodeIx,
    host: String,
    online: bool,
    /// Offline for a player restart after losing the tracker: when it starts again
    /// (`PLAYER_RESTART` later). A `Restarted` event for another instant is stale.
    restarting: Option<Time>,
    /// Left for good after seeding (`seed_for`): churn no longer moves it.
    departed: bool,
    /// The node's current deadline (from `poll_timeout`).
    timer: Option<Time>,
    /// The earliest `Ev::Timer` queued for it and not yet fired. A deadline that moves later
    /// pushes nothing: the queued event fires early, finds nothing due, and re-queues.
    queued: Option<Time>,
    busy_until: Time,
    conns: ConnMap,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LinkId {
    ix: u32,
    generation: u32,
}

#[derive(Default)]
struct Link {
    generation: u32,
    live: bool,
    /// A connect to the tracker running on its side: end 1 is the tracker's, and the side
    /// is told when the link breaks even before the engine learns the tracker accepted.
    to_tracker_side: bool,
    ends: [End; 2],
}

#[derive(Default)]
struct End {
    node: u32,
    conn: Option<ConnId>,
    mapped: bool,
    open: bool,
    queue: SendQueue,
    /// The `Data` message whose flow is moving, parked (kept out of line so a link stays
    /// small; the same slot then rides in its `Deliver` event).
    inflight: Option<MsgSlot>,
    flow: Option<FlowId>,
    done_sending: bool,
    /// Control messages are serialised back to back without events of their own; the next
    /// message may start once this time has passed.
    busy_until: Time,
    /// A `TxDone` wake-up is queued for `busy_until` (a `Data` message waits behind them).
    wake_pending: bool,
}

enum Out {
    Msg(Message),
    Close,
}

/// A link end's queue of messages waiting to be serialised, allocated on first use: most
/// ends never queue anything, and a boxed queue keeps `End` (and so every link, which the
/// engine touches on each send and delivery) small.
#[derive(Default)]
#[allow(clippy::box_collection)] // the point: 8 bytes in `End` instead of a 32-byte VecDeque
struct SendQueue(Option<Box<VecDeque<Out>>>);

impl SendQueue {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|q| q.is_empty())
    }

    fn push_back(&mut self, out: Out) {
        self.0.get_or_insert_default().push_back(out);
    }

    fn front(&self) -> Option<&Out> {
        self.0.as_ref()?.front()
    }

    fn pop_front(&mut self) -> Option<Out> {
        self.0.as_mut()?.pop_front()
    }

    fn clear(&mut self) {
        if let Some(q) = &mut self.0 {
            q.clear();
        }
    }
}

enum Ev {
    Start(u32),
    Leave(u32),
    Rejoin(u32),
    /// A complete viewer's `seed_for` is over: it leaves for good.
    Depart(u32),
    /// The viewer lost its tracker: it goes offline now and starts again a moment later.
    Restart(u32),
    Restarted(u32),
    Timer(u32),
    Net,
    SynArrive(LinkId),
    SynAck(LinkId),
    /// The control messages ahead of a waiting `Data` message are on the wire.
    TxDone(LinkId, usize),
    Deliver(LinkId, usize, MsgSlot),
    Process(u32, ConnId, MsgSlot),
    Fin(LinkId, usize),
    Reset(LinkId, usize),
}

impl Engine {
    /// Builds the nodes of `scenario` with `factory` and schedules arrivals, churn and the
    /// time limit. All randomness comes from `scenario.seed`.
    pub fn new(scenario: &Scenario, factory: &mut dyn NodeFactory) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed);
        let faults = Faults { failure: scenario.faults.failure, corruption: scenario.faults.corruption };
        let net = Network::new(faults, rng.next_u64()).with_wire(scenario.wire);
        let mut seed_key = [0u8; 32];
        for part in seed_key.chunks_mut(8) {
            part.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let kind = if scenario.content.live.is_some() { "live" } else { "files" };
        let content_path = format!("{kind}/{}", scenario.label());
        let stream = StreamClock::of(scenario);
        let classes = scenario
            .viewer_classes()
            .map(|(i, c)| c.name.clone().unwrap_or_else(|| format!("class{i}")))
            .collect();
        let mut engine = Self {
            now: Time::ZERO,
            queue: EventQueue::new(),
            parked: Parked::default(),
            net,
            net_queued: None,
            nodes: Vec::new(),
            first_peer: 1 + scenario.seeds.count,
            links: Vec::new(),
            free_links: Vec::new(),
            recorder: Recorder::new(classes, stream),
            processing: scenario.tracker.processing.0,
            viewers: scenario.peer_count(),
            pending: scenario.peer_count(),
            events: 0,
            dropped: 0,
            limit: Time::ZERO + scenario.time_limit.0,
            livelock_events: LIVELOCK_EVENTS,
            rng,
            churn: scenario.churn,
            seed_for: scenario.seed_for,
            content_path,
            seed_key,
            tracker_side: None,
            tracker_window: None,
            to_tracker: Vec::new(),
            horizon: Time::ZERO,
        };
        engine.build_nodes(scenario, factory);
        engine
    }

    /// The window length when the tracker runs on a side of its own (the smallest latency
    /// between it and any other node), or `None` when it runs in the one loop.
    pub fn tracker_window(&self) -> Option<Span> {
        self.tracker_window
    }

    /// Runs the tracker in one loop with everything else (the outputs differ from the
    /// windowed run's only where events at the same nanosecond are ordered differently).
    pub fn sequential(mut self) -> Self {
        if let Some(side) = self.tracker_side.take() {
            self.tracker_window = None;
            self.nodes[0].node = side.into_node();
        }
        self
    }

    fn build_nodes(&mut self, scenario: &Scenario, factory: &mut dyn NodeFactory) {
        let t = &scenario.tracker;
        let tracker_host = "tracker".to_string();
        self.add_node(
            scenario,
            factory,
            Role::Tracker,
            0,
            None,
            tracker_host.clone(),
            (t.bandwidth, t.bandwidth, t.latency),
        );
        let s = &scenario.seeds;
        for i in 0..s.count {
            self.add_node(
                scenario,
                factory,
                Role::Seed,
                i,
                None,
                format!("seed{i}"),
                (s.upload, s.download, s.latency),
            );
        }
        let mut p = 0;
        for (ci, class) in scenario.peers.iter().enumerate() {
            for _ in 0..class.count {
                let caps = (class.upload, class.download, class.latency);
                self.add_node(scenario, factory, Role::Peer, p, Some(ci), format!("peer{p}"), caps);
                p += 1;
            }
        }
        // The tracker gets a side of its own when every other node is at least MIN_WINDOW
        // away from it.
        let tracker_net = self.nodes[0].net;
        let window = self.nodes[1..].iter().map(|n| self.net.latency(n.net, tracker_net)).min();
        match window {
            Some(w) if w >= MIN_WINDOW => {
                let node = std::mem::replace(&mut self.nodes[0].node, Box::new(tracker_side::Moved));
                self.tracker_side = Some(TrackerSide::new(node, self.processing, self.livelock_events));
                self.tracker_window = Some(w);
            }
            _ => {}
        }
        // The tracker and the seeds are up from the start; viewers arrive per the scenario.
        // (With the tracker on its side, its slot here starts a stand-in; the side starts it.)
        for n in 0..=s.count {
            self.queue.push(Time::ZERO, Ev::Start(n));
        }
        let first_peer = s.count + 1;
        let arrivals = schedule::arrivals(&mut self.rng, &scenario.arrivals, scenario.peer_count());
        for (k, at) in arrivals.into_iter().enumerate() {
            self.queue.push(at, Ev::Start(first_peer + k as u32));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_node(
        &mut self,
        scenario: &Scenario,
        factory: &mut dyn NodeFactory,
        role: Role,
        index: u32,
        class: Option<usize>,
        host: String,
        (up, down, latency): (crate::units::BitRate, crate::units::BitRate, crate::units::Duration),
    ) {
        let spec = NodeSpec {
            scenario,
            role,
            index,
            host: &host,
            tracker_host: "tracker",
            class,
            rng_seed: self.rng.next_u64(),
            content_path: &self.content_path,
            seed_key: &self.seed_key,
        };
        let node = factory.build(&spec);
        let net = self.net.add_node(up.0, down.0, latency.0);
        self.nodes.push(Slot {
            role,
            peer: (role == Role::Peer).then_some(index),
            node,
            net,
            host,
            online: false,
            restarting: None,
            departed: false,
            timer: None,
            queued: None,
            busy_until: Time::ZERO,
            conns: ConnMap::default(),
        });
    }

    /// Lowers the livelock threshold (events at one instant); for tests.
    pub fn with_livelock_limit(mut self, events: u64) -> Self {
        self.livelock_events = events;
        if let Some(side) = &mut self.tracker_side {
            side.set_livelock_limit(events);
        }
        self
    }

    /// Runs to the end; `progress(now, events, viewers_done)` is called every 65 536 events.
    pub fn run(mut self, progress: &mut dyn FnMut(Time, u64, u64)) -> RunOutput {
        let reason = match (self.tracker_side.take(), self.tracker_window) {
            (Some(mut side), Some(window)) => {
                let reason = self.run_windows(&mut side, window, progress);
                self.events += side.events();
                reason
            }
            _ => loop {
                if let Some(reason) = self.advance(None, progress) {
                    break reason;
                }
            },
        };
        let (mut up, mut down) = (0, 0);
        for s in &self.nodes {
            up += self.net.uploaded(s.net);
            down += self.net.downloaded(s.net);
        }
        RunOutput {
            measured: self.recorder.finish(self.now),
            events: self.events,
            end: self.now,
            reason,
            bytes_uploaded: up,
            bytes_downloaded: down,
            dropped_messages: self.dropped,
            rate_recomputations: self.net.recomputations(),
        }
    }

    /// Handles events in time order, up to (not including) `horizon` if one is given;
    /// `Some` when the run is over.
    fn advance(
        &mut self,
        horizon: Option<Time>,
        progress: &mut dyn FnMut(Time, u64, u64),
    ) -> Option<EndReason> {
        let total = self.viewers;
        let mut same_instant = 0u64;
        loop {
            if self.pending == 0 {
                return Some(EndReason::AllDone);
            }
            if let Some(h) = horizon
                && self.queue.earliest().is_none_or(|t| t >= h)
            {
                return None;
            }
            let Some((at, ev)) = self.queue.pop() else { return Some(EndReason::Quiescent) };
            if at > self.limit {
                // The run ends here; the event and the rest of the queue are dropped.
                self.now = self.limit;
                return Some(EndReason::TimeLimit);
            }
            if at == self.now {
                same_instant += 1;
                if same_instant > self.livelock_events {
                    return Some(EndReason::Livelock);
                }
            } else {
                same_instant = 0;
            }
            self.now = at;
            self.events += 1;
            if self.events & 0xffff == 0 {
                progress(self.now, self.events, total - self.pending);
            }
            self.step(ev);
            self.sync_net();
        }
    }

    /// The windowed loop (see [`tracker_side`]): each window, the tracker side and the rest
    /// of the swarm advance to its end on two cores, then the tracker's outputs are carried
    /// out at the instants it made them.
    fn run_windows(
        &mut self,
        side: &mut TrackerSide,
        window: Span,
        progress: &mut dyn FnMut(Time, u64, u64),
    ) -> EndReason {
        let helper = Helper::new();
        let mut start = Time::ZERO;
        loop {
            let horizon = start + window;
            self.horizon = horizon;
            for (at, input) in self.to_tracker.drain(..) {
                side.post(at, input);
            }
            let ended = helper.in_place_scope(|scope| {
                scope.spawn(|_| side.advance(horizon));
                self.advance(Some(horizon), progress)
            });
            if let Some(at) = side.livelocked() {
                self.now = at;
                return EndReason::Livelock;
            }
            // What ended the run ended it at `now`; the tracker's outputs up to then count.
            let until = if ended.is_some() { self.now } else { horizon };
            let now = self.now;
            for (at, output) in side.take_outputs().filter(|(t, _)| *t <= until) {
                self.now = at;
                self.carry_out(output);
            }
            self.now = now;
            if let Some(reason) = ended {
                return reason;
            }
            let next =
                [self.queue.earliest(), side.next_time(), self.to_tracker.iter().map(|(t, _)| *t).min()]
                    .into_iter()
                    .flatten()
                    .min();
            match next {
                None => return EndReason::Quiescent,
                Some(t) if t > self.limit => {
                    self.now = self.limit;
                    return EndReason::TimeLimit;
                }
                Some(t) => start = t.max(horizon),
            }
        }
    }

    /// Carries out one output of the tracker side at `self.now`, the instant it was made.
    fn carry_out(&mut self, output: Output) {
        match output {
            Output::Accepted(l, conn) => self.tracker_accepted(l, conn),
            // The tracker only accepts connections, so its end of a link is end 1.
            Output::Closed(l) => self.closed_at(l, 1),
            Output::Transmit(t) => self.transmit(0, t),
            Output::Event(NodeEvent::TransferFailed) => self.recorder.failure(),
            Output::Event(_) => {}
            Output::Handled(bytes) => self.recorder.tracker_handled(self.now, bytes),
            Output::Dropped => self.dropped += 1,
        }
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Start(n) => self.start(n, Arrival::First),
            Ev::Rejoin(n) if !self.nodes[n as usize].departed => self.start(n, Arrival::Return),
            Ev::Rejoin(_) => {}
            Ev::Depart(n) => self.depart(n),
            Ev::Restart(n) => {
                let s = &self.nodes[n as usize];
                // A viewer done in the same drain has nothing to restart for.
                if let Some(p) = s.peer.filter(|&p| s.online && !self.recorder.is_done(p)) {
                    self.go_offline(n);
                    self.recorder.restart(p);
                    let at = self.now + PLAYER_RESTART;
                    self.nodes[n as usize].restarting = Some(at);
                    self.queue.push(at, Ev::Restarted(n));
                }
            }
            Ev::Restarted(n) => {
                // Not if churn took the viewer away meanwhile (its own rejoin decides), nor
                // for an earlier restart's event.
                if self.nodes[n as usize].restarting == Some(self.now) {
                    self.nodes[n as usize].restarting = None;
                    self.start(n, Arrival::Restart);
                }
            }
            Ev::Leave(n) if !self.nodes[n as usize].departed => self.leave(n),
            Ev::Leave(_) => {}
            Ev::Timer(n) => {
                let now = self.now;
                let s = &mut self.nodes[n as usize];
                if s.queued != Some(now) {
                    return; // superseded by an earlier event for this node
                }
                s.queued = None;
                match s.timer {
                    Some(t) if s.online && t <= now => {
                        s.timer = None;
                        s.node.handle_timeout(now);
                        self.drain(n);
                    }
                    Some(t) if s.online => {
                        s.queued = Some(t);
                        self.queue.push(t, Ev::Timer(n));
                    }
                    _ => {}
                }
            }
            Ev::Net => {
                // The rating itself happens in `sync_net`, after this step.
                if self.net_queued == Some(self.now) {
                    self.net_queued = None;
                }
            }
            Ev::SynArrive(l) => self.syn_arrive(l),
            Ev::SynAck(l) => {
                if let Some(link) = self.link_mut(l) {
                    link.ends[0].open = true;
                    let (n, conn, mapped) = (link.ends[0].node, link.ends[0].conn, link.ends[0].mapped);
                    if let (true, Some(conn)) = (mapped, conn) {
                        self.nodes[n as usize].node.handle_connected(self.now, conn);
                        self.drain(n);
                    }
                    self.pump(l, 0);
                }
            }
            Ev::TxDone(l, d) => self.wake(l, d),
            Ev::Deliver(l, d, slot) => {
                let msg = self.parked.take(slot);
                self.deliver(l, d, msg);
            }
            Ev::Process(n, conn, slot) => {
                let msg = self.parked.take(slot);
                let s = &mut self.nodes[n as usize];
                if s.online && s.conns.contains_key(&conn) {
                    self.recorder.tracker_handled(self.now, sealed_len(&msg));
                    s.node.handle_message(self.now, conn, msg);
                    self.drain(n);
                } else {
                    self.dropped += 1;
                }
            }
            Ev::Fin(l, d) | Ev::Reset(l, d) => self.closed_at(l, 1 - d),
        }
    }

    fn start(&mut self, n: u32, arrival: Arrival) {
        let s = &mut self.nodes[n as usize];
        s.online = true;
        s.node.start(self.now);
        if let Some(p) = s.peer {
            // A restarted player's viewer never left.
            if arrival != Arrival::Restart {
                self.recorder.arrive(p, self.now);
            }
            if arrival == Arrival::First
                && let Some(churn) = self.churn
                && schedule::unit(&mut self.rng) < churn.leave
            {
                let stay = schedule::exponential(&mut self.rng, churn.stay.0);
                self.queue.push(self.now + stay, Ev::Leave(n));
            }
        }
        self.drain(n);
    }

    fn leave(&mut self, n: u32) {
        let now = self.now;
        // A viewer restarting its player is already offline: churn's leave replaces the
        // restart.
        if self.nodes[n as usize].restarting.take().is_none() {
            self.go_offline(n);
        }
        let Some(p) = self.nodes[n as usize].peer else { return };
        self.recorder.leave(p, now);
        if self.churn.is_some_and(|c| schedule::unit(&mut self.rng) < c.rejoin) {
            let away = schedule::exponential(&mut self.rng, self.churn.map_or(Span::ZERO, |c| c.away.0));
            self.queue.push(now + away, Ev::Rejoin(n));
        } else if !self.recorder.is_done(p) {
            self.pending = self.pending.saturating_sub(1);
        }
    }

    /// A complete viewer stops serving for good (`seed_for` is over). If churn has it away
    /// or its player restarting, it just does not come back.
    fn depart(&mut self, n: u32) {
        let s = &mut self.nodes[n as usize];
        if s.departed {
            return;
        }
        s.departed = true;
        let was_online = s.online;
        s.restarting = None;
        if was_online {
            self.go_offline(n);
            if let Some(p) = self.nodes[n as usize].peer {
                self.recorder.leave(p, self.now);
            }
        }
    }

    /// Queues viewer `n`'s departure `seed_for` after it completed. (A churn absence does not
    /// move it: a departure that falls while the viewer is away means it does not return.)
    fn schedule_departure(&mut self, n: u32) {
        let Some(seed_for) = self.seed_for else { return };
        let stay = match seed_for {
            crate::scenario::SeedFor::Fixed(d) => d.0,
            crate::scenario::SeedFor::Exponential(mean) => schedule::exponential(&mut self.rng, mean.0),
        };
        self.queue.push(self.now + stay, Ev::Depart(n));
    }

    /// Takes node `n` offline: its links break, its machine stops (keeping its store).
    fn go_offline(&mut self, n: u32) {
        let now = self.now;
        let conns = std::mem::take(&mut self.nodes[n as usize].conns);
        for l in conns.into_links() {
            self.kill_link(l, n);
        }
        let s = &mut self.nodes[n as usize];
        s.online = false;
        s.timer = None;
        s.node.stop(now);
    }

    /// Drains a node's outputs and re-arms its timer.
    fn drain(&mut self, n: u32) {
        while let Some(t) = self.nodes[n as usize].node.poll_transmit() {
            self.transmit(n, t);
        }
        while let Some(ev) = self.nodes[n as usize].node.poll_event() {
            let s = &self.nodes[n as usize];
            match s.peer {
                Some(p) => {
                    if ev == NodeEvent::Completed && !self.recorder.is_done(p) {
                        self.pending = self.pending.saturating_sub(1);
                        self.schedule_departure(n);
                    }
                    if ev == NodeEvent::TrackerLost {
                        // Not inside this drain: the node's own call is still on the stack.
                        self.queue.push(self.now, Ev::Restart(n));
                    }
                    self.recorder.peer_event(p, self.now, ev);
                }
                None if ev == NodeEvent::TransferFailed => self.recorder.failure(),
                None => {}
            }
        }
        let s = &mut self.nodes[n as usize];
        // A deadline already past fires now.
        let want = if s.online { s.node.poll_timeout().map(|t| t.max(self.now)) } else { None };
        s.timer = want;
        if let Some(t) = want
            && s.queued.is_none_or(|q| t < q)
        {
            s.queued = Some(t);
            self.queue.push(t, Ev::Timer(n));
        }
    }

    /// Brings the network model up to `now` and queues its next wake-up.
    ///
    /// Changes made at this instant (flows started or cancelled) are rated at once rather
    /// than through a queued event, so a flow start costs no event of its own; a change is
    /// rated before time moves on either way.
    fn sync_net(&mut self) {
        while self.net.poll_timeout().is_some_and(|t| t <= self.now) {
            self.net.handle_timeout(self.now);
            while let Some(c) = self.net.poll_completion() {
                let id = LinkId { ix: (c.tag >> 1) as u32, generation: (c.tag >> 33) as u32 };
                self.transmitted(id, (c.tag & 1) as usize, Some((c.outcome, c.bytes)));
            }
        }
        let want = self.net.poll_timeout();
        if let Some(t) = want
            && self.net_queued.is_none_or(|q| t < q)
        {
            self.net_queued = Some(t);
            self.queue.push(t, Ev::Net);
        }
    }
}

mod conn_map;
mod links;
#[cfg(test)]
mod tests;
mod tracker_side;

/// Where a parked message is (an index into `Parked`).
#[derive(Clone, Copy, Debug)]
struct MsgSlot(u32);

/// A slab of messages waiting in queued events or in flight on a link; slots are reused.
#[derive(Default)]
struct Parked {
    slots: Vec<Option<Message>>,
    free: Vec<u32>,
}

impl Parked {
    fn park(&mut self, msg: Message) -> MsgSlot {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(msg);
                MsgSlot(i)
            }
            None => {
                self.slots.push(Some(msg));
                // More than 4 billion messages in flight would not fit in memory anyway.
                MsgSlot(u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX))
            }
        }
    }

    /// Takes a parked message out; each slot is taken exactly once.
    fn take(&mut self, slot: MsgSlot) -> Message {
        self.free.push(slot.0);
        self.slots[slot.0 as usize].take().unwrap_or_else(|| unreachable!("message slot taken twice"))
    }

    /// A parked message, in place.
    fn get_mut(&mut self, slot: MsgSlot) -> Option<&mut Message> {
        self.slots[slot.0 as usize].as_mut()
    }
}

/// Where the tracker side runs while the swarm advances.
///
/// Called from inside a rayon pool (a sweep's cells), the side goes to that pool, whose
/// other workers are busy with other cells. Called from outside one (a single run), it gets
/// one thread of its own: the global pool would have one worker per core, and on two cores
/// the idle one spins beside the two that work, preempting the swarm's thread at every
/// window (measured 2026-11-28; the rounds of docs/performance.md in git history).
enum Helper {
    Current,
    Own(rayon::ThreadPool),
}

impl Helper {
    fn new() -> Self {
        if rayon::current_thread_index().is_some() {
            return Self::Current;
        }
        match rayon::ThreadPoolBuilder::new().num_threads(1).build() {
            Ok(pool) => Self::Own(pool),
            // No thread to spare: the global pool still gives the same run.
            Err(_) => Self::Current,
        }
    }

    fn in_place_scope<'s, R>(&self, op: impl FnOnce(&rayon::Scope<'s>) -> R) -> R {
        match self {
            Self::Current => rayon::in_place_scope(op),
            Self::Own(pool) => pool.in_place_scope(op),
        }
    }
}

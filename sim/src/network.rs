//! The flow-level network model: its own seeded machine with a handle/poll shape (STYLE 20).
//!
//! # Model
//!
//! Every node has an upload capacity and a download capacity (bytes per second here; the
//! scenario speaks bit/s and converts once). A *flow* moves `bytes` from `src` to `dst`; it
//! consumes `src`'s upload and `dst`'s download. The rates of concurrent flows are the
//! **max-min fair** allocation over those two resources per node, computed exactly by
//! progressive filling (water-filling): raise every flow's rate together; when a resource
//! saturates, freeze its flows at their current rate; continue with the rest. A flow's
//! completion time is then exact for the model: `since + remaining / rate`, rounded *up* to
//! the nanosecond. Nothing is time-stepped.
//!
//! # What a change recomputes
//!
//! Starting or cancelling a flow (and a flow completing) marks its two ends *dirty*. On the
//! next [`Network::handle_timeout`] (which [`Network::poll_timeout`] asks for at the same
//! instant; the changes made before that call are rated in one update — the engine calls it
//! after each of its events) the model
//! updates rates **locally** (see `network/local.rs`): each resource (a node's upload or
//! download) keeps a water level; the levels of the changed resources are recomputed, and a
//! level that moves re-queues the resources at the other ends of its flows, until nothing
//! moves. Cost: O(d) per pass of a resource's fixed-point water line (d = its flows; one or
//! two passes for 90 % of levels in flashcrowd.yml), per resource looked at, times the number of
//! resources the change reaches — typically a few hops, not the swarm. If the propagation
//! has not settled within a step budget, the model falls back to progressive filling over the
//! whole **connected component** of the dirty nodes (the graph whose edges are active flows):
//! O((F_c + R_c) log(F_c + R_c)) for F_c flows and R_c resources, the whole swarm in the worst
//! case. Either way the result is the exact max-min allocation (up to float rounding, checked
//! against a from-scratch re-fill by a test). Flows whose rate did not change keep their
//! scheduled completion.
//!
//! # The wire
//!
//! Capacities are link rates. Under [`Wire::Ideal`] a flow's bytes are all the link carries.
//! Under [`Wire::Tcp`] (TCP over IPv4 over Ethernet, 1 448 payload bytes in each 1 514-byte
//! frame, one 66-byte acknowledgement per two frames, which leaves on the *receiver's*
//! uplink and arrives on the sender's downlink) a link of `C` bytes/s carries `C · 1448/1514`
//! payload bytes/s, less the acknowledgements of what the node receives (on its upload) or
//! sends (on its download): `33/1514` of that flow's payload rate. The acknowledgement load
//! couples a node's two directions, so after each rate update the model sets each touched
//! node's payload capacities from its current rates and updates again, until no capacity
//! moves by more than [`ACK_TOLERANCE`] of the link (at most [`ACK_ROUNDS`] rounds).
//!
//! # Faults
//!
//! Each completing flow may fail (nothing usable arrives) or arrive corrupted, with the
//! probabilities given to [`Network::new`], drawn from the network's own seeded generator.

use std::cmp::Ordering;
use std::collections::VecDeque;

use pdtp_core::{Span, Time};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use adj::AdjList;
use finish::FinishHeap;

/// Flows a node's upload list keeps inline (more spill to the heap).
const OUT_INLINE: usize = 16;
/// Flows a node's download list keeps inline.
const IN_INLINE: usize = 8;

/// Worklist steps the local update may take before falling back to a component re-fill.
const LOCAL_BUDGET: usize = 4096;

/// Acknowledgement load changes smaller than this share of a link are not re-rated.
const ACK_TOLERANCE: f64 = 1e-3;
/// Rate updates per instant for the acknowledgement load to settle (it shrinks by about
/// 50× a round: a node's acknowledgements are 2 % of what it receives).
const ACK_ROUNDS: usize = 6;

/// What a link carries besides the flows' own bytes. See the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Wire {
    /// Nothing: a link's whole rate carries payload (the fluid model).
    #[default]
    Ideal,
    /// TCP/IPv4 over Ethernet: frame headers and the receivers' acknowledgements.
    Tcp,
}

impl Wire {
    /// Payload bytes per byte of link rate.
    fn payload_share(self) -> f64 {
        match self {
            Wire::Ideal => 1.0,
            Wire::Tcp => TCP_SEGMENT / TCP_FRAME,
        }
    }

    /// Acknowledgement bytes on the reverse link per payload byte, in payload-capacity units.
    fn ack_share(self) -> f64 {
        match self {
            Wire::Ideal => 0.0,
            Wire::Tcp => TCP_ACK_FRAME / 2.0 / TCP_FRAME,
        }
    }

    /// Link bytes a message of `bytes` takes (its own frames' headers, no acknowledgements).
    pub fn on_link(self, bytes: u64) -> u64 {
        match self {
            Wire::Ideal => bytes,
            Wire::Tcp => bytes + bytes.div_ceil(TCP_SEGMENT as u64).max(1) * (TCP_FRAME - TCP_SEGMENT) as u64,
        }
    }
}

/// TCP payload per full Ethernet frame (1 500-byte MTU, TCP timestamps on).
const TCP_SEGMENT: f64 = 1448.0;
/// A full frame on the link: payload + 32 TCP + 20 IPv4 + 14 Ethernet header bytes.
const TCP_FRAME: f64 = 1514.0;
/// A bare acknowledgement frame (delayed: one per two full frames).
const TCP_ACK_FRAME: f64 = 66.0;

/// Full frames each flow keeps queued at a saturated access link under [`Wire::Tcp`]: the
/// lab's CUBIC uplinks held a median of 1.3–2 per active upload (docs/lab.md).
pub const QUEUED_FRAMES: f64 = 2.0;
/// A link whose flows carry this share of its payload capacity is saturated.
const SATURATED: f64 = 0.99;

/// A node of the network model (the simulator uses the same index for its nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIx(pub u32);

/// A handle on one flow; stale handles (of finished flows) are recognised and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId {
    slot: u32,
    generation: u32,
}

/// How a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every byte arrived intact.
    Delivered,
    /// The bytes moved but arrived altered (the receiver will see a wrong hash).
    Corrupted,
    /// The transfer broke: nothing usable arrived (the bytes still used the links).
    Failed,
}

/// A finished flow, drained with [`Network::poll_completion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The flow.
    pub flow: FlowId,
    /// The caller's tag given to [`Network::start_flow`].
    pub tag: u64,
    /// Sender.
    pub src: NodeIx,
    /// Receiver.
    pub dst: NodeIx,
    /// Bytes moved.
    pub bytes: u64,
    /// When it finished.
    pub at: Time,
    /// How it ended.
    pub outcome: Outcome,
}

/// Per-transfer fault probabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// Probability that a flow fails.
    pub failure: f64,
    /// Probability that a flow that did not fail arrives corrupted.
    pub corruption: f64,
}

/// The network model. See the module documentation.
#[derive(Debug)]
pub struct Network {
    nodes: Vec<Node>,
    flows: Vec<Flow>,
    free: Vec<u32>,
    active: usize,
    finish: FinishHeap,
    dirty: Vec<NodeIx>,
    dirty_since: Option<Time>,
    completions: VecDeque<Completion>,
    faults: Faults,
    wire: Wire,
    /// Nodes whose flows changed rate since their acknowledgement load was last set.
    rerated: Vec<u32>,
    rng: ChaCha8Rng,
    // Scratch space for recomputation, kept to avoid reallocating.
    mark: Vec<u32>,
    local: Vec<u32>,
    frozen: Vec<u32>,
    new_rate: Vec<f64>,
    level: Vec<f64>,
    in_work: Vec<u32>,
    pending: Vec<bool>,
    /// Per flow slot: the epoch of the local update that last listed it for re-rating.
    rated: Vec<u32>,
    /// Per flow slot: its rate if it has a finish time, else NaN (equal to no rate), so the
    /// update skips unchanged flows without reading them.
    scheduled_rate: Vec<f64>,
    epoch: u32,
    recomputations: u64,
    full_recomputations: u64,
    /// Buffers the local update reuses.
    scratch: Scratch,
}

/// Scratch buffers for the local rate update (kept to avoid allocating per update).
#[derive(Debug, Default)]
struct Scratch {
    work: VecDeque<u32>,
    visited: Vec<u32>,
    /// Flows to re-rate and their new rates.
    flows: Vec<(u32, f64)>,
    /// Finite levels at the other ends of a resource's flows.
    others: Vec<f64>,
}

#[derive(Clone, Debug)]
struct Node {
    /// Payload capacity now: the link's, less the acknowledgements of the reverse flows.
    up: f64,
    down: f64,
    /// Payload capacity with no acknowledgements to carry.
    up_link: f64,
    down_link: f64,
    latency: Span,
    /// Flows this node sends, with the download resource at their other end.
    out: AdjList<OUT_INLINE>,
    /// Flows this node receives, with the upload resource at their other end.
    inn: AdjList<IN_INLINE>,
    uploaded: u64,
    downloaded: u64,
}

/// One flow in a node's list: its slot, and the resource at its other end (`2 * node` is a
/// node's upload, `2 * node + 1` its download), so the rate update reads levels without
/// visiting the flow itself.
#[derive(Clone, Copy, Debug)]
struct Adj {
    slot: u32,
    other: u32,
}

#[derive(Clone, Debug)]
struct Flow {
    live: bool,
    generation: u32,
    src: NodeIx,
    dst: NodeIx,
    bytes: u64,
    remaining: f64,
    rate: f64,
    since: Time,
    tag: u64,
    finish_at: Time,
}

/// An f64 with a total order, for the filling heap.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Share(f64);
impl Eq for Share {}
impl PartialOrd for Share {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Share {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl Network {
    /// An empty network with the given fault probabilities, seeded for its fault draws.
    pub fn new(faults: Faults, seed: u64) -> Self {
        Self {
            nodes: Vec::new(),
            flows: Vec::new(),
            free: Vec::new(),
            active: 0,
            finish: FinishHeap::default(),
            dirty: Vec::new(),
            dirty_since: None,
            completions: VecDeque::new(),
            faults,
            wire: Wire::Ideal,
            rerated: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            mark: Vec::new(),
            local: Vec::new(),
            frozen: Vec::new(),
            new_rate: Vec::new(),
            level: Vec::new(),
            in_work: Vec::new(),
            pending: Vec::new(),
            rated: Vec::new(),
            scheduled_rate: Vec::new(),
            epoch: 0,
            recomputations: 0,
            full_recomputations: 0,
            scratch: Scratch::default(),
        }
    }

    /// The same network with links that carry `wire`'s overhead; before any node is added.
    pub fn with_wire(mut self, wire: Wire) -> Self {
        debug_assert!(self.nodes.is_empty(), "the wire is chosen before the nodes");
        self.wire = wire;
        self
    }

    /// Adds a node with upload and download link rates in **bits per second** and a one-way
    /// access latency (a message from `a` to `b` takes `latency(a) + latency(b)`).
    pub fn add_node(&mut self, up_bps: u64, down_bps: u64, latency: Span) -> NodeIx {
        let ix = NodeIx(u32::try_from(self.nodes.len()).unwrap_or(u32::MAX));
        let share = self.wire.payload_share() / 8.0;
        self.nodes.push(Node {
            up: up_bps as f64 * share,
            down: down_bps as f64 * share,
            up_link: up_bps as f64 * share,
            down_link: down_bps as f64 * share,
            latency,
            out: AdjList::default(),
            inn: AdjList::default(),
            uploaded: 0,
            downloaded: 0,
        });
        self.mark.push(0);
        self.local.push(0);
        self.level.extend([f64::INFINITY, f64::INFINITY]);
        self.in_work.extend([0, 0]);
        self.pending.extend([false, false]);
        ix
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// One-way latency of a message from `a` to `b`.
    pub fn latency(&self, a: NodeIx, b: NodeIx) -> Span {
        self.nodes[a.0 as usize].latency + self.nodes[b.0 as usize].latency
    }

    /// Time to serialise `bytes` from `a` to `b` at the narrower of `a`'s upload and `b`'s
    /// download link, ignoring other traffic (the model for small control messages), frame
    /// headers included.
    pub fn serialisation(&self, a: NodeIx, b: NodeIx, bytes: u64) -> Span {
        let share = self.wire.payload_share();
        let rate = (self.nodes[a.0 as usize].up_link.min(self.nodes[b.0 as usize].down_link)) / share;
        Span::from_nanos(nanos_for(self.wire.on_link(bytes) as f64, rate))
    }

    /// How long a control message from `a` to `b` waits in the access links' queues behind
    /// the frames of the flows sharing them: under [`Wire::Tcp`], [`QUEUED_FRAMES`] full frames
    /// per flow at `a`'s upload and at `b`'s download, each only while it is saturated (a link
    /// its flows do not fill keeps no standing queue). Nothing under [`Wire::Ideal`].
    pub fn queue_delay(&self, a: NodeIx, b: NodeIx) -> Span {
        if self.wire == Wire::Ideal {
            return Span::ZERO;
        }
        let (src, dst) = (&self.nodes[a.0 as usize], &self.nodes[b.0 as usize]);
        let frames_at = |flows: &[Adj], payload_capacity: f64, link: f64| {
            let carried: f64 = flows.iter().map(|f| self.flows[f.slot as usize].rate).sum();
            if flows.is_empty() || carried < payload_capacity * SATURATED {
                return 0.0;
            }
            // A full frame takes TCP_FRAME / link rate = TCP_SEGMENT / payload link rate.
            flows.len() as f64 * QUEUED_FRAMES * TCP_SEGMENT / link
        };
        let secs = frames_at(src.out.as_slice(), src.up, src.up_link)
            + frames_at(dst.inn.as_slice(), dst.down, dst.down_link);
        Span::from_nanos((secs * 1e9).round() as u64)
    }

    /// Counts bytes sent outside flows (control messages) in the per-node totals.
    pub fn account(&mut self, a: NodeIx, b: NodeIx, bytes: u64) {
        self.nodes[a.0 as usize].uploaded += bytes;
        self.nodes[b.0 as usize].downloaded += bytes;
    }

    /// Starts a flow of `bytes` from `src` to `dst` at `now`; `tag` comes back in its
    /// [`Completion`].
    pub fn start_flow(&mut self, now: Time, src: NodeIx, dst: NodeIx, bytes: u64, tag: u64) -> FlowId {
        let flow = Flow {
            live: true,
            generation: 0,
            src,
            dst,
            bytes,
            remaining: bytes as f64,
            rate: 0.0,
            since: now,
            tag,
            finish_at: Time::NEVER,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                // The finish heap dropped the slot's entry when its earlier flow ended, so
                // nothing scheduled for that flow can complete this one.
                let generation = self.flows[s as usize].generation.wrapping_add(1);
                self.flows[s as usize] = Flow { generation, ..flow };
                s
            }
            None => {
                self.flows.push(flow);
                u32::try_from(self.flows.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.nodes[src.0 as usize].out.push(Adj { slot, other: 2 * dst.0 + 1 });
        self.nodes[dst.0 as usize].inn.push(Adj { slot, other: 2 * src.0 });
        self.record_scheduled_rate(slot, f64::NAN);
        self.active += 1;
        self.touch(now, src, dst);
        FlowId { slot, generation: self.flows[slot as usize].generation }
    }

    /// Cancels a flow (an end left the swarm). Returns the bytes it had moved, which are
    /// counted in the per-node totals; `None` if the flow had already finished.
    pub fn cancel_flow(&mut self, now: Time, id: FlowId) -> Option<u64> {
        let f = self.flows.get(id.slot as usize)?;
        if !f.live || f.generation != id.generation {
            return None;
        }
        let elapsed = now.saturating_since(f.since).as_nanos() as f64 / 1e9;
        let left = (f.remaining - f.rate * elapsed).max(0.0);
        let moved = f.bytes.saturating_sub(left.ceil() as u64);
        let (src, dst) = (f.src, f.dst);
        self.remove(id.slot);
        self.nodes[src.0 as usize].uploaded += moved;
        self.nodes[dst.0 as usize].downloaded += moved;
        self.touch(now, src, dst);
        Some(moved)
    }

    /// The current rate of a flow in bytes per second (zero until the next recomputation
    /// after it started); `None` for a finished flow.
    pub fn rate(&self, id: FlowId) -> Option<f64> {
        let f = self.flows.get(id.slot as usize)?;
        (f.live && f.generation == id.generation).then_some(f.rate)
    }

    /// Number of flows in progress.
    pub fn active_flows(&self) -> usize {
        self.active
    }

    /// Bytes a node has uploaded so far (finished and cancelled flows, control messages).
    pub fn uploaded(&self, n: NodeIx) -> u64 {
        self.nodes[n.0 as usize].uploaded
    }

    /// Bytes a node has downloaded so far.
    pub fn downloaded(&self, n: NodeIx) -> u64 {
        self.nodes[n.0 as usize].downloaded
    }

    /// How many times rates were brought up to date (a cost counter for reports).
    pub fn recomputations(&self) -> u64 {
        self.recomputations
    }

    /// How many of those fell back to re-filling a whole component.
    pub fn full_recomputations(&self) -> u64 {
        self.full_recomputations
    }

    /// The earliest time the model wants [`Network::handle_timeout`].
    ///
    /// Changes with: `start_flow` and `cancel_flow` (which ask for a recomputation at the
    /// time of the change) and `handle_timeout` (which completes flows and re-rates).
    pub fn poll_timeout(&self) -> Option<Time> {
        let next = self.finish.peek().map(|(at, _)| at);
        match (self.dirty_since, next) {
            (Some(d), Some(n)) => Some(d.min(n)),
            (d, n) => d.or(n),
        }
    }

    /// Recomputes pending rate changes and completes every flow due at or before `now`.
    ///
    /// Completions are queued for [`Network::poll_completion`] in (finish time, flow) order.
    pub fn handle_timeout(&mut self, now: Time) {
        loop {
            self.recompute(now);
            let mut any = false;
            while let Some((at, slot)) = self.finish.peek() {
                if at > now {
                    break;
                }
                any = true;
                self.complete(slot, at);
            }
            if !any {
                break;
            }
        }
        self.recompute(now);
    }

    /// The next finished flow, if any.
    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    fn complete(&mut self, slot: u32, at: Time) {
        let f = &self.flows[slot as usize];
        let (src, dst, bytes, tag) = (f.src, f.dst, f.bytes, f.tag);
        let id = FlowId { slot, generation: f.generation };
        let outcome = self.draw_outcome();
        self.remove(slot);
        self.nodes[src.0 as usize].uploaded += bytes;
        self.nodes[dst.0 as usize].downloaded += bytes;
        self.touch(at, src, dst);
        self.completions.push_back(Completion { flow: id, tag, src, dst, bytes, at, outcome });
    }

    fn draw_outcome(&mut self) -> Outcome {
        let Faults { failure, corruption } = self.faults;
        if failure <= 0.0 && corruption <= 0.0 {
            return Outcome::Delivered; // no draw: fault-free runs consume no randomness
        }
        if unit(&mut self.rng) < failure {
            Outcome::Failed
        } else if unit(&mut self.rng) < corruption {
            Outcome::Corrupted
        } else {
            Outcome::Delivered
        }
    }

    fn remove(&mut self, slot: u32) {
        let (src, dst) = {
            let f = &mut self.flows[slot as usize];
            f.live = false;
            (f.src, f.dst)
        };
        self.finish.remove(slot);
        self.nodes[src.0 as usize].out.remove_slot(slot);
        self.nodes[dst.0 as usize].inn.remove_slot(slot);
        self.free.push(slot);
        self.active -= 1;
    }

    fn touch(&mut self, now: Time, a: NodeIx, b: NodeIx) {
        self.dirty.push(a);
        self.dirty.push(b);
        self.dirty_since = Some(self.dirty_since.map_or(now, |d| d.min(now)));
    }

    /// Brings rates up to date after changes: the local level update when it settles within
    /// its budget, else progressive filling over the dirty nodes' component.
    fn recompute(&mut self, now: Time) {
        if self.wire.ack_share() == 0.0 {
            self.rate_update(now);
            return;
        }
        // The last round's capacities are rated but not revised again, so nothing stays dirty.
        for round in 1..=ACK_ROUNDS {
            self.rerated.extend(self.dirty.iter().map(|n| n.0));
            self.rate_update(now);
            if round == ACK_ROUNDS || !self.set_ack_loads(now) {
                break;
            }
        }
        self.rerated.clear();
    }

    /// Sets the payload capacities of the nodes whose flows changed from their current
    /// reverse rates; `true` (with those nodes dirty) if any moved beyond the tolerance.
    fn set_ack_loads(&mut self, now: Time) -> bool {
        let ack = self.wire.ack_share();
        let mut nodes = std::mem::take(&mut self.rerated);
        nodes.sort_unstable();
        nodes.dedup();
        for &n in &nodes {
            let node = &self.nodes[n as usize];
            let rate = |a: &Adj| self.flows[a.slot as usize].rate;
            let received: f64 = node.inn.as_slice().iter().map(rate).sum();
            let sent: f64 = node.out.as_slice().iter().map(rate).sum();
            let up = (node.up_link - ack * received).max(0.0);
            let down = (node.down_link - ack * sent).max(0.0);
            let moved = (up - node.up).abs() > ACK_TOLERANCE * node.up_link
                || (down - node.down).abs() > ACK_TOLERANCE * node.down_link;
            if moved {
                let node = &mut self.nodes[n as usize];
                (node.up, node.down) = (up, down);
                self.dirty.extend([NodeIx(n), NodeIx(n)]);
            }
        }
        nodes.clear();
        self.rerated = nodes;
        if self.dirty.is_empty() {
            return false;
        }
        self.dirty_since = Some(now);
        true
    }

    /// Brings rates up to date after changes to the flows or the capacities.
    fn rate_update(&mut self, now: Time) {
        if self.dirty.is_empty() {
            self.dirty_since = None;
            return;
        }
        self.recomputations += 1;
        if self.recompute_local(now, LOCAL_BUDGET) {
            self.dirty.clear();
            self.dirty_since = None;
            return;
        }
        self.full_recomputations += 1;
        self.recompute_component(now);
    }

    /// Gives flow `s` a new rate from `now`, rescheduling its completion if it changed.
    fn set_rate(&mut self, now: Time, s: u32, rate: f64) {
        let f = &mut self.flows[s as usize];
        if f.rate == rate && f.finish_at != Time::NEVER {
            return;
        }
        if self.wire.ack_share() > 0.0 {
            let ends = [f.src.0, f.dst.0];
            self.rerated.extend(ends);
        }
        let f = &mut self.flows[s as usize];
        let elapsed = now.saturating_since(f.since).as_nanos() as f64 / 1e9;
        f.remaining = (f.remaining - f.rate * elapsed).max(0.0);
        f.since = now;
        f.rate = rate;
        f.finish_at =
            if rate > 0.0 { now + Span::from_nanos(nanos_for(f.remaining, rate)) } else { Time::NEVER };
        if f.finish_at == Time::NEVER {
            self.finish.remove(s);
            self.record_scheduled_rate(s, f64::NAN);
        } else {
            self.finish.set(s, f.finish_at);
            self.record_scheduled_rate(s, rate);
        }
    }

    /// Records flow `s`'s rate as scheduled (`NaN`: not scheduled) for the update's quick
    /// skip of unchanged flows.
    fn record_scheduled_rate(&mut self, s: u32, rate: f64) {
        let s = s as usize;
        if self.scheduled_rate.len() <= s {
            self.scheduled_rate.resize(s + 1, f64::NAN);
        }
        self.scheduled_rate[s] = rate;
    }
}

/// Nanoseconds to move `bytes` at `rate` bytes/s, rounded up (never early).
fn nanos_for(bytes: f64, rate: f64) -> u64 {
    if bytes <= 0.0 {
        return 0;
    }
    if rate <= 0.0 {
        return u64::MAX;
    }
    let ns = bytes / rate * 1e9;
    // Guard against representation error turning an exact 1e9 into 1000000000.0000001.
    let rounded = ns.round();
    if (ns - rounded).abs() < 1e-6 { rounded as u64 } else { ns.ceil() as u64 }
}

/// A uniform draw in [0, 1) from the top 53 bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

mod adj;
mod component;
mod finish;
mod local;
#[cfg(test)]
mod tests;

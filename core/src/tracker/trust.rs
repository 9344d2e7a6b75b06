//! The trust graph: who served whom well, as the original PDTP defined it — and used.
//!
//! Each directed edge `a → b` (a took from b) counts transfers and successes. The raw weight
//! is `successes / transfers`; a node's outgoing weights are normalised to sum to 1. Trust
//! from `a` to `c` is the direct normalised weight plus one hop of implicit trust:
//! `trust(a, c) = w(a, c) + Σ_b w(a, b) · w(b, c)`.

use std::cell::Cell;
use std::collections::BTreeMap;

use crate::ids::PeerId;

/// Success and transfer counts on one directed edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Edge {
    /// Transfers that verified.
    pub successes: u32,
    /// All finished transfers (verified, corrupt, failed, stalled).
    pub transfers: u32,
}

/// Per-giver totals over all takers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GiverRecord {
    /// Transfers that verified.
    pub successes: u32,
    /// Transfers that delivered wrong bytes.
    pub corrupt: u32,
    /// All finished transfers.
    pub transfers: u32,
}

/// The whole graph, keyed by peer id so it outlives reconnections.
///
/// Each peer id gets a dense slot on first sight; the tracker keeps a node's slot beside it, so
/// recording a completion indexes vectors instead of searching trees.
#[derive(Clone, Debug)]
pub struct TrustGraph {
    slots: BTreeMap<PeerId, TrustSlot>,
    ids: Vec<PeerId>,
    /// Outgoing edges per slot, keyed by the giver's slot.
    out: Vec<BTreeMap<TrustSlot, Edge>>,
    /// Per slot, the sum of its outgoing raw weights once computed (cleared when an edge of
    /// it changes): `trust` normalises every neighbour's weights, and summing each
    /// neighbour's edges on every call made choosing a giver quadratic in the swarm (160
    /// viewers took 31 s against 1 s under another giver policy). `Cell` makes the graph,
    /// and so the tracker, `Send` but not `Sync`: one thread drives a tracker.
    totals: Vec<Cell<Option<f64>>>,
    givers: Vec<GiverRecord>,
    /// Slots of peers forgotten ([`TrustGraph::depart`]), for reuse (last freed first).
    free: Vec<TrustSlot>,
    /// Per slot, when its peer left with something on record (a number from `departures`),
    /// while it stays away: the key of its entry in `departed`.
    left: Vec<Option<u64>>,
    /// The slots of peers away with something on record, by when they left (oldest first):
    /// one entry per slot, so it is no longer than the graph however often a peer comes
    /// and goes.
    departed: BTreeMap<u64, TrustSlot>,
    /// Departures counted so far.
    departures: u64,
    /// Records kept at most ([`super::TrackerConfig::trust_records`]).
    cap: usize,
    /// Whether edges are recorded; only the trust giver policy reads them, and a swarm's
    /// edges number peers × givers each, so a tracker under another policy keeps totals only.
    keep_edges: bool,
}

impl Default for TrustGraph {
    fn default() -> Self {
        Self::new()
    }
}

/// A peer's dense index in the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustSlot(u32);

/// How a transfer ended, for the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The taker's hash matched the manifest.
    Verified,
    /// The taker received bytes that did not match.
    Corrupt,
    /// Nothing usable arrived (refused, closed, stalled).
    Failed,
}

impl Edge {
    /// `successes / transfers`, zero for an unused edge.
    pub fn raw(&self) -> f64 {
        if self.transfers == 0 { 0.0 } else { f64::from(self.successes) / f64::from(self.transfers) }
    }
}

impl GiverRecord {
    /// Laplace-smoothed success ratio: 0.5 for an unknown giver.
    pub fn reputation(&self) -> f64 {
        (f64::from(self.successes) + 1.0) / (f64::from(self.transfers) + 2.0)
    }
}

impl TrustGraph {
    /// An empty graph that records edges and giver totals.
    pub fn new() -> Self {
        Self {
            slots: BTreeMap::new(),
            ids: Vec::new(),
            out: Vec::new(),
            totals: Vec::new(),
            givers: Vec::new(),
            free: Vec::new(),
            left: Vec::new(),
            departed: BTreeMap::new(),
            departures: 0,
            cap: usize::MAX,
            keep_edges: true,
        }
    }

    /// An empty graph that records giver totals (reputation) but no edges: every edge reads
    /// as absent and every weight and trust as zero.
    pub fn totals_only() -> Self {
        Self { keep_edges: false, ..Self::new() }
    }

    /// The slot of `peer`, created on first sight.
    pub fn slot(&mut self, peer: PeerId) -> TrustSlot {
        if let Some(&s) = self.slots.get(&peer) {
            return s;
        }
        if let Some(s) = self.free.pop() {
            // Forgotten: its entries were emptied then.
            self.slots.insert(peer, s);
            self.ids[s.0 as usize] = peer;
            return s;
        }
        let s = TrustSlot(u32::try_from(self.ids.len()).unwrap_or(u32::MAX));
        self.slots.insert(peer, s);
        self.ids.push(peer);
        self.out.push(BTreeMap::new());
        self.totals.push(Cell::new(None));
        self.givers.push(GiverRecord::default());
        self.left.push(None);
        s
    }

    /// A peer connected: its slot, kept whatever the cap until it [`departs`](Self::depart).
    pub fn join(&mut self, peer: PeerId) -> TrustSlot {
        let s = self.slot(peer);
        if let Some(at) = self.left[s.0 as usize].take() {
            self.departed.remove(&at);
        }
        s
    }

    /// A graph that keeps at most `cap` records (see [`TrustGraph::depart`]).
    pub fn with_cap(self, cap: usize) -> Self {
        Self { cap: cap.max(1), ..self }
    }

    /// A peer left. With nothing on record (it gave and took nothing) it is forgotten at once,
    /// so identities that connect and leave do not grow the graph; otherwise its record stays
    /// for its return until the graph holds more than its cap, when the records of the peers
    /// that left longest ago are dropped, a tenth of the cap at a time, with the edges to them.
    pub fn depart(&mut self, peer: PeerId) {
        let Some(&s) = self.slots.get(&peer) else { return };
        let i = s.0 as usize;
        if self.givers[i].transfers == 0 && self.out[i].is_empty() {
            self.slots.remove(&peer);
            self.totals[i].set(None);
            self.free.push(s);
            return;
        }
        if let Some(at) = self.left[i].replace(self.departures) {
            self.departed.remove(&at);
        }
        self.departed.insert(self.departures, s);
        self.departures += 1;
        if self.slots.len() > self.cap {
            self.drop_oldest(self.slots.len() - self.cap + self.cap / 10);
        }
    }

    /// Drops up to `n` records of departed peers, oldest departure first. Edges run from a
    /// taker to its givers, so every remaining taker's edges are scanned once for the
    /// dropped (hence a batch at a time).
    fn drop_oldest(&mut self, n: usize) {
        let mut gone = std::collections::BTreeSet::new();
        while gone.len() < n {
            let Some((_, s)) = self.departed.pop_first() else { break };
            let i = s.0 as usize;
            self.slots.remove(&self.ids[i]);
            self.left[i] = None;
            self.out[i].clear();
            self.givers[i] = GiverRecord::default();
            self.totals[i].set(None);
            self.free.push(s);
            gone.insert(s);
        }
        if gone.is_empty() {
            return;
        }
        for (edges, total) in self.out.iter_mut().zip(&self.totals) {
            let before = edges.len();
            edges.retain(|g, _| !gone.contains(g));
            if edges.len() != before {
                total.set(None);
            }
        }
    }

    /// Peers on record (forgotten ones excluded).
    pub fn peer_count(&self) -> usize {
        self.slots.len()
    }

    /// Records a finished transfer from `giver` to `taker`.
    pub fn record(&mut self, taker: PeerId, giver: PeerId, outcome: Outcome) {
        let (t, g) = (self.slot(taker), self.slot(giver));
        self.record_slots(t, g, outcome);
    }

    /// [`record`](Self::record) by slots (what the tracker's hot path uses).
    pub fn record_slots(&mut self, taker: TrustSlot, giver: TrustSlot, outcome: Outcome) {
        let (Some(edges), true) =
            (self.out.get_mut(taker.0 as usize), (giver.0 as usize) < self.givers.len())
        else {
            return;
        };
        if self.keep_edges {
            self.totals[taker.0 as usize].set(None);
            let e = edges.entry(giver).or_default();
            e.transfers += 1;
            e.successes += u32::from(outcome == Outcome::Verified);
        }
        let g = &mut self.givers[giver.0 as usize];
        g.transfers += 1;
        match outcome {
            Outcome::Verified => g.successes += 1,
            Outcome::Corrupt => g.corrupt += 1,
            Outcome::Failed => {}
        }
    }

    fn edges(&self, a: PeerId) -> Option<&BTreeMap<TrustSlot, Edge>> {
        self.out.get(self.slots.get(&a)?.0 as usize)
    }

    /// The raw edge `taker → giver`, if any transfer happened.
    pub fn edge(&self, taker: PeerId, giver: PeerId) -> Option<Edge> {
        self.edges(taker)?.get(self.slots.get(&giver)?).copied()
    }

    /// Totals for a giver.
    pub fn giver(&self, giver: PeerId) -> GiverRecord {
        self.slots.get(&giver).map(|s| self.givers[s.0 as usize]).unwrap_or_default()
    }

    /// Normalised weight `w(a, b)`: the raw weight over the sum of `a`'s raw weights.
    pub fn weight(&self, a: PeerId, b: PeerId) -> f64 {
        match (self.slots.get(&a), self.slots.get(&b)) {
            (Some(&a), Some(&b)) => self.weight_by_slot(a, b),
            _ => 0.0,
        }
    }

    /// All normalised outgoing weights of `a`, in peer-id order.
    pub fn weights(&self, a: PeerId) -> Vec<(PeerId, f64)> {
        let Some(&slot) = self.slots.get(&a) else { return Vec::new() };
        let mut w: Vec<(PeerId, f64)> =
            self.normalised(slot).map(|(b, w)| (self.ids[b.0 as usize], w)).collect();
        w.sort_by_key(|&(p, _)| p);
        w
    }

    /// `trust(a, c) = w(a, c) + Σ_b w(a, b) · w(b, c)`.
    pub fn trust(&self, a: PeerId, c: PeerId) -> f64 {
        let direct = self.weight(a, c);
        let (Some(&a_slot), Some(&c_slot)) = (self.slots.get(&a), self.slots.get(&c)) else { return direct };
        // By slot, without a lookup by id per neighbour; summed in peer-id order, as
        // `weights` lists them, so the sum is the same to the last bit.
        let mut hops: Vec<(PeerId, TrustSlot, f64)> = self
            .normalised(a_slot)
            .filter(|&(b, _)| b != c_slot)
            .map(|(b, w)| (self.ids[b.0 as usize], b, w))
            .collect();
        hops.sort_by_key(|&(p, _, _)| p);
        let implicit: f64 = hops.iter().map(|&(_, b, w)| w * self.weight_by_slot(b, c_slot)).sum();
        direct + implicit
    }

    /// `a`'s outgoing edges with their normalised weights, in slot order.
    fn normalised(&self, a: TrustSlot) -> impl Iterator<Item = (TrustSlot, f64)> + '_ {
        let total = self.total(a);
        self.out[a.0 as usize]
            .iter()
            .map(move |(&b, e)| (b, if total == 0.0 { 0.0 } else { e.raw() / total }))
    }

    /// [`weight`](Self::weight) by slots.
    fn weight_by_slot(&self, a: TrustSlot, b: TrustSlot) -> f64 {
        let total = self.total(a);
        if total == 0.0 {
            return 0.0;
        }
        self.out[a.0 as usize].get(&b).map_or(0.0, |e| e.raw() / total)
    }

    /// The sum of `slot`'s outgoing raw weights, computed once per change of its edges.
    fn total(&self, slot: TrustSlot) -> f64 {
        let cached = &self.totals[slot.0 as usize];
        cached.get().unwrap_or_else(|| {
            let total = self.out[slot.0 as usize].values().map(Edge::raw).sum();
            cached.set(Some(total));
            total
        })
    }

    /// Forgets everything about a peer's outgoing edges (it left for good).
    pub fn forget_taker(&mut self, a: PeerId) {
        if let Some(s) = self.slots.get(&a) {
            self.out[s.0 as usize].clear();
            self.totals[s.0 as usize].set(None);
        }
    }

    /// Number of directed edges.
    pub fn edge_count(&self) -> usize {
        self.out.iter().map(BTreeMap::len).sum()
    }

    /// Every giver's totals, in peer-id order (peers that never gave included, at zero).
    pub fn givers(&self) -> impl Iterator<Item = (PeerId, GiverRecord)> + '_ {
        self.slots.iter().map(|(&p, s)| (p, self.givers[s.0 as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PeerId = PeerId(1);
    const B: PeerId = PeerId(2);
    const C: PeerId = PeerId(3);

    /// Records past the cap go, those of the peers that left longest ago first, with the
    /// edges that point at them; connected peers keep theirs however old, and a peer with
    /// nothing on record is forgotten as it leaves.
    #[test]
    fn records_past_the_cap_are_dropped_oldest_departure_first() {
        let mut g = TrustGraph::new().with_cap(10);
        let (giver, taker) = (PeerId(1000), PeerId(1001));
        g.join(giver);
        g.join(taker);
        g.record(taker, giver, Outcome::Verified);
        // 100 identities each give the connected taker a copy, take one from the giver, and leave.
        for k in 0..100 {
            let p = PeerId(k);
            g.join(p);
            g.record(taker, p, Outcome::Verified);
            g.record(p, giver, Outcome::Verified);
            g.depart(p);
            assert!(g.peer_count() <= 10, "{} records after {k}", g.peer_count());
        }
        // The most recent departures are kept; the earliest and every edge to them are gone.
        assert_eq!(g.giver(PeerId(99)).transfers, 1);
        assert_eq!(g.giver(PeerId(0)).transfers, 0);
        assert!(g.edge(taker, PeerId(0)).is_none() && g.edge(taker, PeerId(99)).is_some());
        assert_eq!(g.edges(taker).map(BTreeMap::len), Some(g.peer_count() - 1));
        // The two connected peers outlived them all.
        assert_eq!(g.giver(giver).transfers, 101);
        assert!(g.edge(taker, giver).is_some());
        // One identity coming and going a thousand times is one departure on the books, not
        // a thousand, and the latest: it outlives the earlier leavers.
        for _ in 0..1000 {
            g.join(PeerId(7_000));
            g.record(taker, PeerId(7_000), Outcome::Verified);
            g.depart(PeerId(7_000));
        }
        assert!(g.departed.len() < g.peer_count(), "{} departures kept", g.departed.len());
        assert_eq!(g.giver(PeerId(7_000)).transfers, 1000);
        // Nothing on record: forgotten at once.
        g.join(PeerId(500));
        let before = g.peer_count();
        g.depart(PeerId(500));
        assert_eq!(g.peer_count(), before - 1);
    }

    #[test]
    fn outgoing_weights_sum_to_one() {
        let mut g = TrustGraph::new();
        g.record(A, B, Outcome::Verified);
        g.record(A, B, Outcome::Failed);
        g.record(A, C, Outcome::Verified);
        let sum: f64 = g.weights(A).iter().map(|(_, w)| w).sum();
        assert!((sum - 1.0).abs() < 1e-12, "sum was {sum}");
        // raw: B = 0.5, C = 1.0 → normalised 1/3 and 2/3.
        assert!((g.weight(A, B) - 1.0 / 3.0).abs() < 1e-12);
        assert!((g.weight(A, C) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn failures_lower_weight() {
        let mut g = TrustGraph::new();
        g.record(A, B, Outcome::Verified);
        g.record(A, C, Outcome::Verified);
        let before = g.weight(A, B);
        g.record(A, B, Outcome::Corrupt);
        assert!(g.weight(A, B) < before);
        assert!(g.trust(A, B) < g.trust(A, C));
        assert_eq!(g.giver(B).corrupt, 1);
        assert!(g.giver(B).reputation() < g.giver(C).reputation());
    }

    #[test]
    fn a_totals_only_graph_keeps_reputation_but_no_edges() {
        let mut g = TrustGraph::totals_only();
        g.record(A, B, Outcome::Verified);
        g.record(A, B, Outcome::Corrupt);
        g.record(A, C, Outcome::Verified);
        assert_eq!((g.giver(B).transfers, g.giver(B).successes, g.giver(B).corrupt), (2, 1, 1));
        assert!(g.giver(B).reputation() < g.giver(C).reputation());
        assert_eq!(g.edge_count(), 0);
        assert_eq!(g.edge(A, B), None);
        assert_eq!(g.trust(A, C), 0.0);
    }

    #[test]
    fn implicit_trust_flows_one_hop() {
        let mut g = TrustGraph::new();
        g.record(A, B, Outcome::Verified);
        g.record(B, C, Outcome::Verified);
        assert_eq!(g.weight(A, C), 0.0);
        assert!((g.trust(A, C) - 1.0).abs() < 1e-12);
    }
}

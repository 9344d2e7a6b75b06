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
    /// Slots of peers forgotten with nothing on record ([`TrustGraph::forget_if_empty`]),
    /// for reuse (last freed first).
    free: Vec<TrustSlot>,
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
            // Forgotten with nothing on record: its entries are empty already.
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
        s
    }

    /// Forgets a peer that left with nothing on record (it gave nothing and took nothing
    /// from anyone), so identities that connect and leave do not grow the graph. Nothing
    /// points at such a slot: edges run from takers to givers, and it is neither.
    pub fn forget_if_empty(&mut self, peer: PeerId) {
        let Some(&s) = self.slots.get(&peer) else { return };
        let i = s.0 as usize;
        if self.givers[i].transfers == 0 && self.out[i].is_empty() {
            self.slots.remove(&peer);
            self.totals[i].set(None);
            self.free.push(s);
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

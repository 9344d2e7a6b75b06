//! The scheduler: serve dirty nodes as takers and as givers.
//!
//! A *taker step* picks a chunk among the taker's pending chunks that some node holds
//! (chunk policy), then a holder with a free upload slot (giver policy). A *giver step*
//! picks a chunk the giver holds that someone is waiting for, then a waiting taker with a
//! free download slot. Both look at bounded samples of the per-chunk indexes, so a decision
//! costs O(sample), not O(peers). A giver that finds nothing stays in `idle_givers`, which the
//! periodic sweep retries, so a match a bounded sample missed is found within one sweep.

use super::Tracker;
use super::config::{ChunkPolicy, GiverPolicy, OriginPolicy};
use super::state::{Node, NodeIdx};
use crate::bitset::BitSet;
use crate::ids::ChunkIndex;
use crate::time::Time;

/// At most this many list entries are examined per chunk, valid or not.
const SCAN_FACTOR: u32 = 4;

impl Tracker {
    /// Runs scheduling passes until no node is dirty.
    pub(super) fn schedule(&mut self, now: Time) {
        while let Some(idx) = self.dirty.pop_front() {
            let Some(node) = self.node_mut(idx) else { continue };
            node.dirty = false;
            while self.can_take(idx) && self.taker_step(now, idx) {}
            while self.can_give(idx) && self.giver_step(now, idx) {}
            if self.can_give(idx)
                && self.node(idx).is_some_and(|n| n.contents.iter().any(|c| !c.have.is_empty()))
            {
                self.idle_givers.push(idx);
            }
        }
        self.arm_sweep(now);
    }

    fn limits_for(&self, node: &Node) -> super::Limits {
        if node.is_seed() { self.config.seed_limits } else { self.config.limits }
    }

    fn can_take(&self, idx: NodeIdx) -> bool {
        self.node(idx).is_some_and(|n| {
            let l = self.limits_for(n);
            n.down < l.max_downloads && n.up + n.down < l.max_transfers
        })
    }

    fn can_give(&self, idx: NodeIdx) -> bool {
        self.node(idx).is_some_and(|n| {
            let l = self.limits_for(n);
            !n.banned && n.up < l.max_uploads && n.up + n.down < l.max_transfers
        })
    }

    /// One decision with `taker` as the receiving end; returns whether an order was made.
    fn taker_step(&mut self, now: Time, taker: NodeIdx) -> bool {
        let Some(node) = self.node(taker) else { return false };
        let contents: Vec<_> = node.contents.iter().map(|c| c.content).collect();
        for content_id in contents {
            let ci = content_id.0 as usize;
            let candidates = self.taker_candidates(taker, ci);
            for chunk in candidates {
                if let Some(giver) = self.choose_giver(taker, ci, chunk) {
                    self.order(now, giver, taker, ci, chunk);
                    return true;
                }
            }
        }
        false
    }

    /// One decision with `giver` as the sending end; returns whether an order was made.
    fn giver_step(&mut self, now: Time, giver: NodeIdx) -> bool {
        let Some(node) = self.node(giver) else { return false };
        let contents: Vec<_> =
            node.contents.iter().filter(|c| !c.have.is_empty()).map(|c| c.content).collect();
        for content_id in contents {
            let ci = content_id.0 as usize;
            let candidates = self.giver_candidates(giver, ci);
            for chunk in candidates {
                if let Some(taker) = self.choose_taker(giver, ci, chunk) {
                    self.order(now, giver, taker, ci, chunk);
                    return true;
                }
            }
        }
        false
    }

    /// Chunks the taker may receive now, best first per the chunk policy.
    fn taker_candidates(&mut self, taker: NodeIdx, ci: usize) -> Vec<ChunkIndex> {
        let sample = self.config.chunk_sample as usize;
        let policy = self.config.policy.chunk;
        let start_random = self.random_below(self.contents[ci].num_chunks().max(1) as usize) as u32;
        let content = &self.contents[ci];
        let Some(node) = self.nodes[taker.0 as usize].as_mut() else { return Vec::new() };
        let Some(nc) = node.content_mut(content.id) else { return Vec::new() };
        let from = match policy {
            ChunkPolicy::InOrder => nc.cursor.max(content.window_start),
            _ => start_random.max(content.window_start),
        };
        let mut out = Vec::with_capacity(sample);
        scan_pending(&nc.want, &nc.inflight, &content.supply, from, content.window_start, sample, &mut out);
        if policy == ChunkPolicy::InOrder {
            // Advance the cursor past chunks that are no longer pending at all.
            if let Some(first) = nc.want.next_at_or_after(nc.cursor) {
                nc.cursor = first;
            }
        }
        if policy == ChunkPolicy::RarestFirst {
            out.sort_by_key(|&c| (content.replicas(c) + content.holder_count[c as usize], c));
        }
        out
    }

    /// Chunks the giver holds that someone waits for, best first.
    fn giver_candidates(&mut self, giver: NodeIdx, ci: usize) -> Vec<ChunkIndex> {
        let sample = self.config.chunk_sample as usize;
        let policy = self.config.policy;
        let start_random = self.random_below(self.contents[ci].num_chunks().max(1) as usize) as u32;
        let content = &self.contents[ci];
        let Some(node) = self.node(giver) else { return Vec::new() };
        let Some(nc) = node.content(content.id) else { return Vec::new() };
        let frugal_seed = node.is_seed() && policy.origin == OriginPolicy::Frugal;
        let from = match policy.chunk {
            ChunkPolicy::InOrder => content.window_start,
            _ => start_random.max(content.window_start),
        };
        let mut out = Vec::with_capacity(sample);
        let mut c = from;
        let mut wrapped = false;
        while out.len() < sample {
            match nc.have.next_common_at_or_after(&content.demand, c) {
                Some(x) => {
                    if !frugal_seed || content.replicas(x) == 0 {
                        out.push(x);
                    }
                    c = x + 1;
                }
                None if !wrapped && from > content.window_start => {
                    wrapped = true;
                    c = content.window_start;
                }
                None => break,
            }
            if wrapped && c >= from {
                break;
            }
        }
        if policy.chunk == ChunkPolicy::RarestFirst {
            out.sort_by_key(|&x| (content.replicas(x) + content.holder_count[x as usize], x));
        }
        out
    }

    /// A holder of `chunk` that can give it to `taker` now, per the giver policy.
    fn choose_giver(&mut self, taker: NodeIdx, ci: usize, chunk: ChunkIndex) -> Option<NodeIdx> {
        let sample = self.config.giver_sample;
        let policy = self.config.policy;
        let list_len = self.contents[ci].holders[chunk as usize].len();
        if list_len == 0 {
            return None;
        }
        let mut pos = self.random_below(list_len);
        let taker_node = self.node(taker)?;
        let taker_id = taker_node.id;
        let taker_listens = taker_node.endpoint.is_some();
        let content_id = self.contents[ci].id;
        let frugal = policy.origin == OriginPolicy::Frugal && self.contents[ci].replicas(chunk) > 0;
        let mut found: Vec<(NodeIdx, u16)> = Vec::new();
        let mut examined = 0;
        while examined < sample * SCAN_FACTOR && (found.len() as u32) < sample {
            let list = &mut self.contents[ci].holders[chunk as usize];
            if list.is_empty() {
                break;
            }
            if pos >= list.len() {
                pos = 0;
            }
            let g = list[pos];
            examined += 1;
            let valid = g != taker
                && self.nodes[g.0 as usize]
                    .as_ref()
                    .and_then(|n| n.content(content_id))
                    .is_some_and(|nc| nc.have.contains(chunk));
            if !valid {
                // Stale entry: drop it (swap_remove keeps this O(1); order is deterministic).
                if g != taker {
                    self.contents[ci].holders[chunk as usize].swap_remove(pos);
                } else {
                    pos += 1;
                }
                continue;
            }
            pos += 1;
            if examined as usize > list_len + 1 {
                break;
            }
            if !self.can_give(g) {
                continue;
            }
            let Some(gn) = self.node(g) else { continue };
            if gn.endpoint.is_none() && !taker_listens {
                continue;
            }
            if frugal && gn.is_seed() {
                continue;
            }
            found.push((g, gn.up));
        }
        if found.is_empty() {
            return None;
        }
        let choice = match policy.giver {
            GiverPolicy::Random => {
                let i = self.random_below(found.len());
                found[i].0
            }
            GiverPolicy::LeastLoaded => found.iter().min_by_key(|&&(_, up)| up).map(|&(g, _)| g)?,
            GiverPolicy::Trust => {
                let mut best = found[0].0;
                let mut best_score = f64::MIN;
                for &(g, _) in &found {
                    let gid = self.node(g).map(|n| n.id)?;
                    let score = self.trust.trust(taker_id, gid) + self.trust.giver(gid).reputation();
                    if score > best_score {
                        best_score = score;
                        best = g;
                    }
                }
                best
            }
        };
        Some(choice)
    }

    /// A node waiting for `chunk` that `giver` can serve now: the least-loaded in a sample.
    fn choose_taker(&mut self, giver: NodeIdx, ci: usize, chunk: ChunkIndex) -> Option<NodeIdx> {
        let sample = self.config.giver_sample;
        let list_len = self.contents[ci].wanters[chunk as usize].len();
        if list_len == 0 {
            return None;
        }
        let mut pos = self.random_below(list_len);
        let giver_listens = self.node(giver)?.endpoint.is_some();
        let content_id = self.contents[ci].id;
        let mut best: Option<(NodeIdx, u16)> = None;
        let mut found = 0;
        let mut examined = 0;
        while examined < sample * SCAN_FACTOR && found < sample {
            let list = &mut self.contents[ci].wanters[chunk as usize];
            if list.is_empty() {
                break;
            }
            if pos >= list.len() {
                pos = 0;
            }
            let t = list[pos];
            examined += 1;
            let valid = self.nodes[t.0 as usize]
                .as_ref()
                .and_then(|n| n.content(content_id))
                .is_some_and(|nc| nc.pending(chunk));
            if !valid || t == giver {
                if t == giver {
                    pos += 1;
                } else {
                    self.contents[ci].wanters[chunk as usize].swap_remove(pos);
                }
                continue;
            }
            pos += 1;
            if examined as usize > list_len + 1 {
                break;
            }
            if !self.can_take(t) {
                continue;
            }
            let Some(tn) = self.node(t) else { continue };
            if tn.endpoint.is_none() && !giver_listens {
                continue;
            }
            found += 1;
            if best.is_none_or(|(_, d)| tn.down < d) {
                best = Some((t, tn.down));
            }
        }
        best.map(|(t, _)| t)
    }
}

/// Collects up to `max` chunks that are wanted, not in flight, and supplied, scanning from
/// `from` upwards and wrapping once to `floor`.
fn scan_pending(
    want: &BitSet,
    inflight: &BitSet,
    supply: &BitSet,
    from: ChunkIndex,
    floor: ChunkIndex,
    max: usize,
    out: &mut Vec<ChunkIndex>,
) {
    let (w, f, s) = (want.words(), inflight.words(), supply.words());
    let words = w.len().min(s.len());
    if words == 0 || max == 0 {
        return;
    }
    let cap = want.capacity().min(supply.capacity());
    let word_at = |i: usize| w[i] & !f.get(i).copied().unwrap_or(0) & s[i];
    let visit = |lo: ChunkIndex, hi: ChunkIndex, out: &mut Vec<ChunkIndex>| {
        let mut i = lo;
        while i < hi && out.len() < max {
            let wi = (i / 64) as usize;
            let mut bits = word_at(wi) & (!0u64 << (i % 64));
            if bits == 0 {
                i = (wi as u32 + 1) * 64;
                continue;
            }
            while bits != 0 && out.len() < max {
                let c = wi as u32 * 64 + bits.trailing_zeros();
                if c >= hi {
                    return;
                }
                out.push(c);
                bits &= bits - 1;
            }
            i = (wi as u32 + 1) * 64;
        }
    };
    let from = from.min(cap);
    visit(from, cap, out);
    if from > floor {
        visit(floor, from, out);
    }
}

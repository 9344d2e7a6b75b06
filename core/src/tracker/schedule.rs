//! The scheduler: serve dirty nodes as takers and as givers.
//!
//! A *taker step* picks chunks among the taker's pending chunks that some node holds (chunk
//! policy), then a holder with a free upload slot (giver policy), sampling the chunk's holder
//! list. A taker that finds no giver joins the `hungry` set. A *giver step* samples the hungry
//! set for a taker that wants something the giver holds, picks the chunk by policy and the
//! least-loaded such taker. Every step has a fixed budget of entries it may examine, so a
//! decision costs O(budget · chunk words), never O(peers). A giver that finds nothing joins
//! `idle_givers`, which the periodic sweep retries, so a match a bounded sample missed is found
//! within one sweep interval.

use std::ops::Bound;

use super::Tracker;
use super::config::{ChunkPolicy, GiverPolicy, OriginPolicy};
use super::state::{Load, NodeIdx};
use crate::bitset::BitSet;
use crate::ids::ChunkIndex;
use crate::time::{Span, Time};

/// Buffers reused by scheduling steps.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    chunks: Vec<ChunkIndex>,
    givers: Vec<(NodeIdx, u16)>,
    nodes: Vec<NodeIdx>,
    stale: Vec<NodeIdx>,
    /// A giver's other takers (`Tracker::measure_upload`).
    pub(super) takers: Vec<NodeIdx>,
}

/// How a giver step ranks takers: fewer orders wasted first, then higher first key, then
/// fewer downloads.
type TakerRank = (u8, std::cmp::Reverse<u32>, u16);

/// A step examines at most `sample × SCAN_FACTOR` list entries, valid or not.
const SCAN_FACTOR: u32 = 4;

impl Tracker {
    /// Runs scheduling passes until no node is dirty.
    pub(super) fn schedule(&mut self, now: Time) {
        if let Some(deadline) = self.config.live_deadline {
            for c in &mut self.contents {
                let n = c.appended.len().min(c.num_chunks() as usize);
                let from = c.floor as usize;
                if from < n && c.appended[from] + deadline < now {
                    let stale = c.appended[from..n].partition_point(|&t| t + deadline < now);
                    // Keep the newest chunk schedulable even if appends stopped.
                    c.floor =
                        ((from + stale) as ChunkIndex).min(c.num_chunks().saturating_sub(1)).max(c.floor);
                }
            }
        }
        while let Some(idx) = self.dirty.pop_front() {
            let Some(node) = self.node_mut(idx) else { continue };
            node.dirty = false;
            while self.can_take(now, idx) && self.taker_step(now, idx) {}
            if self.can_take(now, idx) && self.has_pending(idx) {
                self.hungry.insert(idx);
            }
            let load = self.loads[idx.0 as usize];
            if self.host_full(&load) {
                let waiting = &mut self.hosts[load.host as usize].waiting;
                if !waiting.contains(&idx) {
                    waiting.push(idx);
                }
            }
            while self.can_give(idx) && self.giver_step(now, idx) {}
            if self.can_give(idx)
                && let Some(n) = self.node_mut(idx)
                && !n.idle
                && n.contents.iter().any(|c| !c.have.is_empty())
            {
                n.idle = true;
                self.idle_givers.push(idx);
            }
        }
        self.arm_sweep(now);
    }

    fn limits_for(&self, load: &Load) -> &super::Limits {
        if load.seed { &self.config.seed_limits } else { &self.config.limits }
    }

    fn can_take(&self, now: Time, idx: NodeIdx) -> bool {
        self.loads
            .get(idx.0 as usize)
            .is_some_and(|l| l.benched_until <= now && l.can_take(self.limits_for(l)) && !self.host_full(l))
    }

    fn can_give(&self, idx: NodeIdx) -> bool {
        self.loads.get(idx.0 as usize).is_some_and(|l| l.can_give(self.limits_for(l)))
    }

    fn has_pending(&self, idx: NodeIdx) -> bool {
        self.node(idx).is_some_and(|n| {
            n.contents.iter().any(|nc| {
                let content = &self.contents[self.ix(nc.content)];
                any_pending(&nc.want, &nc.inflight, &content.supply, content.floor)
            })
        })
    }

    /// One decision with `taker` as the receiving end; returns whether an order was made.
    fn taker_step(&mut self, now: Time, taker: NodeIdx) -> bool {
        let mut budget = self.config.giver_sample * SCAN_FACTOR;
        let mut k = 0;
        while let Some(content_id) = self.node(taker).and_then(|n| n.contents.get(k)).map(|c| c.content) {
            k += 1;
            let ci = self.ix(content_id);
            let mut cands = std::mem::take(&mut self.scratch.chunks);
            self.taker_candidates(taker, ci, &mut cands);
            let head = if self.contents[ci].manifest.is_live() {
                self.node(taker)
                    .and_then(|n| n.content(content_id))
                    .and_then(|nc| join_chunk(nc, &self.contents[ci]))
            } else {
                None
            };
            let mut chosen = None;
            for &chunk in &cands {
                if budget == 0 {
                    break;
                }
                // A viewer's join chunk may use a holder past its rate-following slots (within
                // max_uploads): without it the viewer cannot start playing.
                let urgent = head == Some(chunk);
                if let Some(giver) = self.choose_giver(now, taker, ci, chunk, urgent, &mut budget) {
                    chosen = Some((giver, chunk));
                    break;
                }
            }
            self.scratch.chunks = cands;
            if let Some((giver, chunk)) = chosen {
                self.order(now, giver, taker, ci, chunk);
                return true;
            }
            if budget == 0 {
                return false;
            }
        }
        false
    }

    /// Chunks the taker may receive now, best first per the chunk policy.
    fn taker_candidates(&mut self, taker: NodeIdx, ci: usize, out: &mut Vec<ChunkIndex>) {
        out.clear();
        let sample = self.config.chunk_sample as usize;
        let policy = self.config.policy.chunk;
        let urgent = self.config.urgent_chunks;
        let start_random = self.random_below(self.contents[ci].num_chunks().max(1) as usize) as u32;
        let content = &self.contents[ci];
        let Some(node) = self.nodes[taker.0 as usize].as_mut() else { return };
        let Some(nc) = node.content_mut(content.id) else { return };
        if policy == ChunkPolicy::InOrder {
            // Chunks below the cursor are never pending again until a release lowers it.
            nc.cursor = nc.want.next_at_or_after(nc.cursor).unwrap_or(nc.want.capacity());
        }
        // A live viewer that holds nothing yet takes its oldest chunks first, in order: they
        // are the ones it must play first, and rarest-first would fetch the newest while the
        // oldest pass their deadline (then playback starts later, from a later chunk). Until
        // it holds the chunk it joined at, that one goes first (see `join_chunk`).
        let starting = content.manifest.is_live() && nc.have.is_empty();
        let head = join_chunk(nc, content);
        let from = match (policy, nc.focus) {
            _ if starting => content.floor,
            (_, Some(focus)) => focus.max(content.floor),
            (ChunkPolicy::InOrder, None) => nc.cursor.max(content.floor),
            _ => start_random.max(content.floor),
        };
        scan_pending(&nc.want, &nc.inflight, &content.supply, from, content.floor, sample, out);
        // A viewer that said where it plays gets its chunks in order from there.
        if policy == ChunkPolicy::RarestFirst && !starting && nc.focus.is_none() {
            out.sort_unstable_by_key(|&c| {
                (Some(c) != head, content.replicas(c) + content.holder_count[c as usize], c)
            });
        }
        if content.manifest.is_live() && !starting && urgent > 0 {
            // The viewer's next chunks first, in order; the join chunk still leads. Every
            // pending chunk in `frontier..end` but the join chunk is urgent, so the sampled
            // ones among them move rather than repeat.
            let frontier = nc.want.next_at_or_after(content.floor).unwrap_or(ChunkIndex::MAX);
            let end = frontier.saturating_add(urgent);
            out.retain(|&c| !(frontier..end).contains(&c) || Some(c) == head);
            let at = usize::from(head.is_some_and(|h| out.first() == Some(&h)));
            let sampled = out.len();
            let mut next = next_pending(&nc.want, &nc.inflight, &content.supply, frontier);
            while let Some(c) = next.filter(|&c| c < end) {
                if Some(c) != head {
                    out.push(c);
                }
                next = next_pending(&nc.want, &nc.inflight, &content.supply, c + 1);
            }
            let urgent_found = out.len() - sampled;
            out[at..].rotate_right(urgent_found);
        }
    }

    /// A holder of `chunk` that can give it to `taker` now, per the giver policy.
    fn choose_giver(
        &mut self,
        now: Time,
        taker: NodeIdx,
        ci: usize,
        chunk: ChunkIndex,
        urgent: bool,
        budget: &mut u32,
    ) -> Option<NodeIdx> {
        let sample = self.config.giver_sample as usize;
        let policy = self.config.policy;
        let list_len = self.contents[ci].holders[chunk as usize].len();
        if list_len == 0 {
            return None;
        }
        let mut pos = self.random_below(list_len);
        let taker_id = self.node(taker)?.id;
        let taker_listens = self.loads[taker.0 as usize].listens;
        let content_id = self.contents[ci].id;
        // A frugal origin gives a chunk only while no peer has or is receiving it; for a live
        // stream it places that one copy itself (`giver_step`, on the best relay) rather than
        // on whichever viewer asks first.
        let frugal = policy.origin == OriginPolicy::Frugal
            && (self.contents[ci].manifest.is_live() || self.peer_copy_exists(now, ci, chunk, taker));
        // Live: only givers expected to land the copy before the chunk's deadline.
        let slack = self.slack_secs(now, ci, chunk);
        let bytes = if slack.is_some() { self.contents[ci].manifest.geometry.chunk_len(chunk) } else { 0 };
        let mut found = std::mem::take(&mut self.scratch.givers);
        found.clear();
        let mut seen = 0;
        while *budget > 0 && found.len() < sample && seen < list_len {
            let list = &self.contents[ci].holders[chunk as usize];
            if list.is_empty() {
                break;
            }
            if pos >= list.len() {
                pos = 0;
            }
            let g = list[pos];
            *budget -= 1;
            // The dense load array first: most holders are busy, and this avoids touching them.
            let load = self.loads[g.0 as usize];
            let limits = self.limits_for(&load);
            // Past its rate slots only for a giver whose rate is measured: an unmeasured one
            // may be a slow uplink, and piling a stream's first chunks onto it made early
            // viewers wait seconds for them.
            // (The rate is read only for an urgent chunk: most holders are skipped without it.)
            let past_slots = urgent && self.up_rates[g.0 as usize] > 0.0;
            let free = if past_slots { load.can_give_past_slots(limits) } else { load.can_give(limits) };
            if load.alive && (g == taker || !free) {
                pos += 1;
                seen += 1;
                continue;
            }
            let valid = load.alive
                && self.nodes[g.0 as usize]
                    .as_ref()
                    .and_then(|n| n.content(content_id))
                    .is_some_and(|nc| nc.have.contains(chunk));
            if !valid {
                // Stale entry: drop it (swap_remove keeps this O(1) and deterministic).
                self.contents[ci].holders[chunk as usize].swap_remove(pos);
                continue;
            }
            pos += 1;
            seen += 1;
            if (!load.listens && !taker_listens && !self.may_punch(g, taker))
                || (frugal && load.seed)
                || self.shuns(now, taker, g)
                || slack.is_some_and(|s| self.copy_secs(g, &load, bytes) > s)
                || (past_slots && !load.can_give(limits) && self.late_past_slots(now, g, &load, ci, chunk))
            {
                continue;
            }
            found.push((g, load.up));
        }
        let choice = self.pick_giver(taker_id, &found);
        self.scratch.givers = found;
        choice
    }

    /// The giver policy's pick among eligible holders `(holder, its uploads)`.
    fn pick_giver(&mut self, taker_id: crate::ids::PeerId, found: &[(NodeIdx, u16)]) -> Option<NodeIdx> {
        if found.is_empty() {
            return None;
        }
        let choice = match self.config.policy.giver {
            GiverPolicy::Random => found[self.random_below(found.len())].0,
            GiverPolicy::LeastLoaded => found.iter().min_by_key(|&&(_, up)| up).map(|&(g, _)| g)?,
            GiverPolicy::Fastest => {
                let (mut sum, mut known) = (0.0f32, 0u32);
                for &(g, _) in found {
                    let r = self.up_rates[g.0 as usize];
                    if r > 0.0 {
                        sum += r;
                        known += 1;
                    }
                }
                let prior = if known > 0 { sum / known as f32 } else { 1.0 };
                let mut best = (found[0].0, f32::MIN);
                for &(g, up) in found {
                    let r = self.up_rates[g.0 as usize];
                    let score = if r > 0.0 { r } else { prior } / f32::from(up + 1);
                    if score > best.1 {
                        best = (g, score);
                    }
                }
                best.0
            }
            GiverPolicy::Trust => {
                let mut best = (found[0].0, f64::MIN);
                for &(g, _) in found {
                    let gid = self.node(g).map(|n| n.id)?;
                    let score = self.trust.trust(taker_id, gid) + self.trust.giver(gid).reputation();
                    if score > best.1 {
                        best = (g, score);
                    }
                }
                best.0
            }
        };
        Some(choice)
    }

    /// One decision with `giver` as the sending end: serve a hungry taker.
    fn giver_step(&mut self, now: Time, giver: NodeIdx) -> bool {
        if self.hungry.is_empty() {
            return false;
        }
        let sample = self.config.giver_sample as usize;
        let mut budget = self.config.giver_sample * SCAN_FACTOR;
        let start = NodeIdx(self.random_below(self.nodes.len()) as u32);
        let giver_listens = self.loads[giver.0 as usize].listens;
        let origin_feeds_fast =
            self.loads[giver.0 as usize].seed && self.config.policy.giver == GiverPolicy::Fastest;
        let mut stale = std::mem::take(&mut self.scratch.stale);
        stale.clear();
        let mut best: Option<(TakerRank, NodeIdx, usize, ChunkIndex)> = None;
        let mut found = 0;
        let mut order = std::mem::take(&mut self.scratch.nodes);
        order.clear();
        order.extend(
            self.hungry
                .range((Bound::Included(start), Bound::Unbounded))
                .chain(self.hungry.range((Bound::Unbounded, Bound::Excluded(start))))
                .take(budget as usize)
                .copied(),
        );
        for &t in &order {
            if budget == 0 || found >= sample {
                break;
            }
            budget -= 1;
            if !self.can_take(now, t) {
                stale.push(t);
                continue;
            }
            if t == giver || self.shuns(now, t, giver) {
                continue;
            }
            let load = self.loads[t.0 as usize];
            if !load.listens && !giver_listens && !self.may_punch(giver, t) {
                continue;
            }
            let Some((ci, chunk)) = self.chunk_for(now, giver, t) else { continue };
            found += 1;
            // The taker furthest from done first (most chunks still wanted), so peers finish
            // together; then the one with the fewest downloads.
            // A live origin feeds the fastest uploaders first (under the `Fastest` giver
            // policy): each fresh chunk enters the swarm where it is relayed quickest.
            let first = if origin_feeds_fast && self.contents[ci].manifest.is_live() {
                // Its measured uplink per upload it already runs: a fast uplink busy relaying
                // the last chunk is not the best first relay of this one. A viewer not measured
                // yet ranks first: its first relay measures it (ranked last, it never got one,
                // and a frugal origin fed one slow uplink for ever).
                let rate = self.up_rates[t.0 as usize];
                if rate > 0.0 { (rate / f32::from(load.up.saturating_add(1))) as u32 } else { u32::MAX }
            } else {
                self.wanted(t, ci)
            };
            // A taker that wasted orders comes after those that did not, whatever it wants.
            let key = (load.wasted, std::cmp::Reverse(first), load.down);
            if best.is_none_or(|(k, ..)| key < k) {
                best = Some((key, t, ci, chunk));
            }
        }
        for &t in &stale {
            self.hungry.remove(&t);
        }
        self.scratch.stale = stale;
        self.scratch.nodes = order;
        let Some((_, taker, ci, chunk)) = best else { return false };
        self.order(now, giver, taker, ci, chunk);
        if !self.can_take(now, taker) {
            self.hungry.remove(&taker);
        }
        true
    }

    /// Chunks `node` still wants of content `ci` and is not receiving.
    fn wanted(&self, node: NodeIdx, ci: usize) -> u32 {
        let id = self.contents[ci].id;
        self.node(node)
            .and_then(|n| n.content(id))
            .map_or(0, |nc| nc.want.count().saturating_sub(nc.inflight.count()))
    }

    /// The chunk `giver` should send `taker`, per the chunk policy, if any.
    fn chunk_for(&mut self, now: Time, giver: NodeIdx, taker: NodeIdx) -> Option<(usize, ChunkIndex)> {
        let mut cands = std::mem::take(&mut self.scratch.chunks);
        let pick = self.chunk_for_into(now, giver, taker, &mut cands);
        self.scratch.chunks = cands;
        pick
    }

    fn chunk_for_into(
        &self,
        now: Time,
        giver: NodeIdx,
        taker: NodeIdx,
        cands: &mut Vec<ChunkIndex>,
    ) -> Option<(usize, ChunkIndex)> {
        let policy = self.config.policy;
        let sample = self.config.chunk_sample as usize;
        let g = self.node(giver)?;
        let t = self.node(taker)?;
        let frugal_seed = g.is_seed() && policy.origin == OriginPolicy::Frugal;
        for gc in g.contents.iter().filter(|c| !c.have.is_empty()) {
            let Some(tc) = t.content(gc.content) else { continue };
            let ci = self.ix(gc.content);
            let content = &self.contents[ci];
            let floor = self.giver_floor(now, giver, ci);
            // The origin of a live stream feeds the freshest chunks: the newest the taker wants,
            // fewest copies first, so each new chunk enters the swarm at once and peers relay
            // it, instead of every copy of the oldest wanted chunk coming from the origin.
            let fresh = g.is_seed() && content.manifest.is_live();
            // A viewer that holds nothing yet gets its oldest chunk first (see taker_candidates).
            let starting = content.manifest.is_live() && tc.have.is_empty();
            let head = join_chunk(tc, content).filter(|&c| gc.have.contains(c));
            // (`focus` is on-demand only, so never `fresh` or `starting`, which are live.)
            let from = match (policy.chunk, tc.focus) {
                _ if starting => floor,
                _ if fresh => content.num_chunks().saturating_sub(sample as u32).max(floor),
                (_, Some(focus)) => focus.max(floor),
                (ChunkPolicy::InOrder, None) => tc.cursor.max(floor),
                // Spread the starting point by taker so givers do not all pick the same chunk.
                _ => floor + (taker.0.wrapping_mul(2_654_435_761) % content.num_chunks().max(1)),
            };
            cands.clear();
            scan_pending(&tc.want, &tc.inflight, &gc.have, from, floor, sample, cands);
            if frugal_seed {
                cands.retain(|&c| !self.peer_copy_exists(now, ci, c, taker));
            }
            // The taker's next chunks, when this giver holds one of them (not the origin's
            // fresh feed: it seeds new chunks into the swarm).
            let urgent = self.config.urgent_chunks;
            let next = (content.manifest.is_live() && !starting && !fresh && urgent > 0)
                .then(|| {
                    let frontier = tc.want.next_at_or_after(floor)?;
                    next_pending(&tc.want, &tc.inflight, &gc.have, frontier)
                        .filter(|&c| c < frontier.saturating_add(urgent))
                })
                .flatten();
            let pick = match policy.chunk {
                _ if head.is_some() => head,
                _ if next.is_some() => next,
                _ if starting => cands.iter().copied().min(),
                _ if tc.focus.is_some() => cands.first().copied(),
                _ if fresh => cands.iter().copied().min_by_key(|&c| (content.replicas(c), u32::MAX - c)),
                ChunkPolicy::RarestFirst => cands.iter().copied().min_by_key(|&c| (content.replicas(c), c)),
                _ => cands.first().copied(),
            };
            if let Some(c) = pick {
                return Some((ci, c));
            }
        }
        None
    }
}

impl Tracker {
    /// Under a frugal origin, whether a peer can supply chunk `chunk` of content `ci` to
    /// `taker` instead of a seed: a copy is on its way to a peer, or a peer that may give it
    /// (connected, not banned, not shunned by `taker`) holds it. A banned or shunned holder
    /// does not count: in a small swarm it may be the only one, and the origin holding back
    /// for it left the other viewers waiting for ever.
    fn peer_copy_exists(&self, now: Time, ci: usize, chunk: ChunkIndex, taker: NodeIdx) -> bool {
        let content = &self.contents[ci];
        if content.inflight_count[chunk as usize] > 0 {
            return true;
        }
        if content.peer_holder_count[chunk as usize] == 0 {
            return false;
        }
        // Usually the first holder settles it; the list may hold stale entries, so each is
        // checked against the node's own bitset.
        content.holders[chunk as usize].iter().any(|&h| {
            let load = &self.loads[h.0 as usize];
            load.alive
                && !load.banned
                && !load.seed
                && !self.shuns(now, taker, h)
                && self.node(h).and_then(|n| n.content(content.id)).is_some_and(|nc| nc.have.contains(chunk))
        })
    }

    /// Live with a [`super::TrackerConfig::live_deadline`]: seconds left before chunk `chunk`
    /// of content `ci` must have landed. `None` when there is no deadline.
    /// Only under [`super::TrackerConfig::deadline_givers`]; see [`Self::live_slack`].
    fn slack_secs(&self, now: Time, ci: usize, chunk: ChunkIndex) -> Option<f32> {
        self.config.deadline_givers.then(|| self.live_slack(now, ci, chunk))?
    }

    /// Seconds left before `append + live_deadline` of chunk `chunk` of content `ci` (zero
    /// once past); `None` without a deadline.
    fn live_slack(&self, now: Time, ci: usize, chunk: ChunkIndex) -> Option<f32> {
        let deadline = self.config.live_deadline?;
        let appended = *self.contents[ci].appended.get(chunk as usize)?;
        let due = appended + deadline;
        Some(if due > now { (due - now).as_secs_f64() as f32 } else { 0.0 })
    }

    /// Whether one more copy of live `chunk` from `g`, beyond its rate slots, is expected to
    /// land after the chunk's deadline (`append + live_deadline`), after which viewers no
    /// longer play it. A slow measured uplink that already holds a few copies then gets
    /// no more join chunks: piling three onto one 2 Mbit/s viewer made each take about
    /// 3 s, and their takers started a chunk late (live.yml seed 2). Never late without a
    /// deadline.
    fn late_past_slots(&self, now: Time, g: NodeIdx, load: &Load, ci: usize, chunk: ChunkIndex) -> bool {
        self.live_slack(now, ci, chunk).is_some_and(|slack| {
            self.copy_secs(g, load, self.contents[ci].manifest.geometry.chunk_len(chunk)) > slack
        })
    }

    /// Seconds a new copy of `bytes` from `g` is expected to take: its measured rate shared
    /// with its uploads after this one, plus the order lead time. Zero while unmeasured.
    fn copy_secs(&self, g: NodeIdx, load: &Load, bytes: u32) -> f32 {
        let rate = self.up_rates[g.0 as usize];
        if rate <= 0.0 {
            return 0.0;
        }
        bytes as f32 * f32::from(load.up + 1) / rate + self.order_lead
    }

    /// The lowest chunk of live content `ci` that `giver` could still deliver before its
    /// deadline (the content's floor when there is no deadline).
    fn giver_floor(&self, now: Time, giver: NodeIdx, ci: usize) -> ChunkIndex {
        let content = &self.contents[ci];
        let Some(deadline) = self.config.live_deadline.filter(|_| self.config.deadline_givers) else {
            return content.floor;
        };
        if content.appended.is_empty() {
            return content.floor;
        }
        let load = self.loads[giver.0 as usize];
        let need = Span::from_secs_f64(f64::from(self.copy_secs(
            giver,
            &load,
            content.manifest.geometry.chunk_size,
        )));
        // Chunks appended before `now + need − deadline` would land late.
        let cutoff = now + need;
        let first = content.appended.partition_point(|&t| t + deadline < cutoff) as ChunkIndex;
        first.min(content.num_chunks().saturating_sub(1)).max(content.floor)
    }
}

/// A live viewer's join chunk (the start of its open-ended request) while it is still
/// pending and schedulable: playback starts with it, so a viewer without it cannot start.
fn join_chunk(nc: &super::state::NodeContent, content: &super::state::Content) -> Option<ChunkIndex> {
    let c = nc.open_from?;
    (content.manifest.is_live() && c >= content.floor && nc.pending(c) && content.supply.contains(c))
        .then_some(c)
}

/// Whether any chunk at or above `floor` is in `want`, not in `inflight`, and in `other`.
fn any_pending(want: &BitSet, inflight: &BitSet, other: &BitSet, floor: ChunkIndex) -> bool {
    next_pending(want, inflight, other, floor).is_some()
}

/// The first chunk at or above `from` that is in `want`, not in `inflight`, and in `other`.
fn next_pending(want: &BitSet, inflight: &BitSet, other: &BitSet, from: ChunkIndex) -> Option<ChunkIndex> {
    let (w, f, s) = (want.words(), inflight.words(), other.words());
    let first = (from / 64) as usize;
    (first..w.len().min(s.len())).find_map(|i| {
        let mut bits = w[i] & !f.get(i).copied().unwrap_or(0) & s[i];
        if i == first {
            bits &= !0u64 << (from % 64);
        }
        // Bits past the capacity are never set by BitSet, so no mask is needed at the top.
        (bits != 0).then(|| i as u32 * 64 + bits.trailing_zeros())
    })
}

/// Collects up to `max` chunks that are in `want`, not in `inflight`, and in `other`,
/// scanning from `from` upwards, then wrapping once from `floor` up to `from`.
fn scan_pending(
    want: &BitSet,
    inflight: &BitSet,
    other: &BitSet,
    from: ChunkIndex,
    floor: ChunkIndex,
    max: usize,
    out: &mut Vec<ChunkIndex>,
) {
    let (w, f, s) = (want.words(), inflight.words(), other.words());
    if w.is_empty() || s.is_empty() || max == 0 {
        return;
    }
    let cap = want.capacity().min(other.capacity());
    let word_at = |i: usize| w[i] & !f.get(i).copied().unwrap_or(0) & s[i];
    let visit = |lo: ChunkIndex, hi: ChunkIndex, out: &mut Vec<ChunkIndex>| {
        let mut i = lo;
        while i < hi && out.len() < max {
            let wi = (i / 64) as usize;
            let mut bits = word_at(wi) & (!0u64 << (i % 64));
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

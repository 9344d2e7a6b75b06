//! The local rate update: per-resource water levels, changed only where a change reaches.
//!
//! Every resource `r` (a node's upload or download) has a *level* `L_r`: the rate of its
//! fattest flows if it is saturated, `∞` if it is not. A flow's rate is the smaller level of
//! its two resources. Given its flows' other levels `o_f`, a resource's level solves
//! `Σ_f min(L, o_f) = cap_r` (water-filling over one resource), or is `∞` when
//! `Σ_f o_f < cap_r`. A set of levels where every resource satisfies this is exactly the
//! max-min fair allocation: each flow's smaller level is finite, so that resource is
//! saturated, and the flow's rate is the largest there — the max-min bottleneck condition.
//!
//! After a change, the update recomputes the levels of the changed resources and, whenever a
//! level moves, of the resources at the other end of its flows, until nothing moves. Levels
//! depend only on lower levels (a flow bottlenecked elsewhere contributes that lower level),
//! so the propagation settles the way progressive filling does, usually within a few hops.
//! Should it not settle within a step budget, the caller re-fills the whole component
//! instead, so the result is exact either way.

use std::collections::VecDeque;

use super::{Adj, Scratch};

use super::Network;

impl Network {
    /// Updates levels and rates around the dirty node pairs; `false` if the budget ran out
    /// (levels touched so far are left for the component re-fill to overwrite).
    pub(super) fn recompute_local(&mut self, now: pdtp_core::Time, budget: usize) -> bool {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.in_work.iter_mut().for_each(|m| *m = 0);
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.frozen.iter_mut().for_each(|m| *m = 0);
            self.rated.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        // Scratch buffers are kept between updates: this runs once per instant with changes.
        let mut work: VecDeque<u32> = std::mem::take(&mut self.scratch.work);
        let mut visited: Vec<u32> = std::mem::take(&mut self.scratch.visited);
        let mut flows: Vec<(u32, f64)> = std::mem::take(&mut self.scratch.flows);
        let mut others: Vec<f64> = std::mem::take(&mut self.scratch.others);
        work.clear();
        visited.clear();
        flows.clear();
        let done = self.propagate(now, budget, epoch, &mut work, &mut visited, &mut flows, &mut others);
        self.scratch = Scratch { work, visited, flows, others };
        done
    }

    #[allow(clippy::too_many_arguments)]
    fn propagate(
        &mut self,
        now: pdtp_core::Time,
        budget: usize,
        epoch: u32,
        work: &mut VecDeque<u32>,
        visited: &mut Vec<u32>,
        flows: &mut Vec<(u32, f64)>,
        others: &mut Vec<f64>,
    ) -> bool {
        // `dirty` holds (src, dst) pairs: the upload of src and the download of dst changed.
        for i in (0..self.dirty.len() / 2 * 2).step_by(2) {
            let (a, b) = (self.dirty[i], self.dirty[i + 1]);
            for r in [2 * a.0, 2 * b.0 + 1] {
                if self.in_work[r as usize] != epoch {
                    self.in_work[r as usize] = epoch;
                    self.pending[r as usize] = true;
                    work.push_back(r);
                    visited.push(r);
                }
            }
        }
        // `in_work == epoch` marks resources listed in `visited` for re-rating: the dirty
        // ones (their flows changed) and those whose level moved. `pending` marks those queued.
        let mut steps = 0;
        while let Some(r) = work.pop_front() {
            steps += 1;
            if steps > budget {
                self.pending[r as usize] = false;
                for &q in work.iter() {
                    self.pending[q as usize] = false;
                }
                return false;
            }
            self.pending[r as usize] = false;
            let level = self.water_level(r, others);
            let old = self.level[r as usize];
            if same(level, old) {
                continue;
            }
            self.level[r as usize] = level;
            if self.in_work[r as usize] != epoch {
                self.in_work[r as usize] = epoch;
                visited.push(r);
            }
            let node = &self.nodes[(r / 2) as usize];
            let list = if r % 2 == 0 { node.out.as_slice() } else { node.inn.as_slice() };
            for &Adj { other, .. } in list {
                // The other end's level depends on this one only through min(its level, this
                // one): unchanged when both the old and the new level are at or above it, and,
                // for an unsaturated end (infinite level), when this level fell.
                let theirs = self.level[other as usize];
                let unaffected =
                    if theirs.is_finite() { old >= theirs && level >= theirs } else { level <= old };
                if !unaffected && !self.pending[other as usize] {
                    self.pending[other as usize] = true;
                    work.push_back(other);
                }
            }
        }
        // Re-rate every flow of every listed resource, each once (a flow whose two resources
        // were both listed is re-rated once). A flow with neither end listed kept both its
        // levels, so its rate, min of the two, is the one it has. Each flow's new rate depends
        // only on the levels, so the order they are re-rated in does not matter.
        if self.rated.len() < self.flows.len() {
            self.rated.resize(self.flows.len(), 0);
        }
        // A flow's rate is min(upload level of its sender, download level of its receiver).
        for &r in visited.iter() {
            let node = &self.nodes[(r / 2) as usize];
            let upload = r % 2 == 0;
            for &Adj { slot: s, other } in if upload { node.out.as_slice() } else { node.inn.as_slice() } {
                if self.rated[s as usize] != epoch {
                    self.rated[s as usize] = epoch;
                    let (l, o) = (self.level[r as usize], self.level[other as usize]);
                    let rate = if upload { l.min(o) } else { o.min(l) };
                    if !rate.is_finite() {
                        return false; // cannot happen at a fixed point; be exact rather than sorry
                    }
                    flows.push((s, rate));
                }
            }
        }
        for &(s, rate) in flows.iter() {
            // Unchanged and scheduled: nothing to do (what `set_rate` would decide, without
            // reading the flow).
            if self.scheduled_rate[s as usize] != rate {
                self.set_rate(now, s, rate);
            }
        }
        true
    }

    /// The level of resource `r` given the current levels at the other ends of its flows.
    fn water_level(&self, r: u32, others: &mut Vec<f64>) -> f64 {
        let node = &self.nodes[(r / 2) as usize];
        let (cap, list) =
            if r % 2 == 0 { (node.up, node.out.as_slice()) } else { (node.down, node.inn.as_slice()) };
        if list.is_empty() {
            return f64::INFINITY;
        }
        // An infinite level (an unsaturated resource) never fits under the water line, so only
        // the finite ones are collected. Short lists (all but the largest) stay on the stack.
        let levels = list.iter().map(|a| self.level[a.other as usize]).filter(|&o| o != f64::INFINITY);
        if list.len() <= SHORT {
            let mut finite = [0.0f64; SHORT];
            let mut n = 0;
            for o in levels {
                finite[n] = o;
                n += 1;
            }
            fill(cap, &finite[..n], list.len())
        } else {
            others.clear();
            others.extend(levels);
            fill(cap, others, list.len())
        }
    }
}

/// Lists up to this long are collected in a stack array.
const SHORT: usize = 24;

/// Water-filling over one resource of capacity `cap` with `flows` flows, given the finite
/// levels at their other ends (the rest are infinite): the level `L` with
/// `Σ min(L, o) = cap`, or `∞` if every flow fits.
///
/// By fixed-point iteration rather than a sort: start from the equal share `cap / flows`;
/// the flows whose other level is below the current guess are bottlenecked there, so the
/// rest share what they leave. In exact arithmetic the guesses rise monotonically to the
/// solution and the set below the line only grows (each guess is at most the solution, as
/// the equal share over the rest over-counts what capped flows take), so the loop ends
/// when a pass adds no flow: at most one pass per flow (in flashcrowd.yml one or two for
/// 90 % of levels).
fn fill(cap: f64, levels: &[f64], flows: usize) -> f64 {
    let mut below = 0usize;
    let mut line = cap / flows as f64;
    loop {
        let (mut taken, mut count) = (0.0, 0usize);
        for &o in levels {
            if o < line {
                taken += o;
                count += 1;
            }
        }
        if count <= below {
            return line;
        }
        if count == flows {
            // Every flow is capped at its other end below the line: the resource has room.
            return f64::INFINITY;
        }
        below = count;
        line = (cap - taken) / (flows - count) as f64;
    }
}

/// Equal up to floating-point noise (or both infinite).
fn same(a: f64, b: f64) -> bool {
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_finds_the_water_line() {
        // cap 10 over levels 1, 2 and two unsaturated ends: 1 + 2 fit, then (10 - 3) / 2.
        let levels = [2.0, 1.0];
        assert_eq!(fill(10.0, &levels, 4), 3.5);
        // Everything fits and no end is unsaturated: the resource is not saturated.
        assert_eq!(fill(10.0, &levels, 2), f64::INFINITY);
        // The smallest does not fit: an equal share.
        assert_eq!(fill(2.0, &levels, 2), 1.0);
    }

    /// The water line by the textbook method: sort, then fill from the smallest.
    fn sorted_fill(cap: f64, levels: &[f64], flows: usize) -> f64 {
        let mut sorted = levels.to_vec();
        sorted.sort_by(f64::total_cmp);
        let (mut remaining, mut k) = (cap, flows as f64);
        for o in sorted {
            if o * k < remaining {
                remaining -= o;
                k -= 1.0;
            } else {
                return remaining / k;
            }
        }
        if k > 0.0 { remaining / k } else { f64::INFINITY }
    }

    #[test]
    fn fill_agrees_with_sorting_on_random_resources() {
        use rand_chacha::ChaCha8Rng;
        use rand_core::{Rng as _, SeedableRng as _};
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for _ in 0..20_000 {
            let flows = 1 + (rng.next_u32() % 40) as usize;
            let finite = (rng.next_u32() as usize) % (flows + 1);
            // Levels on a coarse grid too, so ties and exact fits occur.
            let coarse = rng.next_u32() % 2 == 0;
            let levels: Vec<f64> = (0..finite)
                .map(|_| {
                    let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 1e7;
                    if coarse { (x / 1e6).round() * 1e6 } else { x }
                })
                .collect();
            let cap = 1e5 + (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 4e7;
            let (got, want) = (fill(cap, &levels, flows), sorted_fill(cap, &levels, flows));
            let close = got == want || (got - want).abs() <= 1e-9 * want.abs();
            assert!(close, "cap {cap} levels {levels:?} flows {flows}: {got} vs {want}");
        }
    }
}

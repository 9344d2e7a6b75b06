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
        // `in_work == epoch` marks resources looked at in this update; `pending` those queued.
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
            let node = &self.nodes[(r / 2) as usize];
            let list = if r % 2 == 0 { node.out.as_slice() } else { node.inn.as_slice() };
            for &Adj { other, .. } in list {
                if !self.pending[other as usize] {
                    self.pending[other as usize] = true;
                    work.push_back(other);
                    if self.in_work[other as usize] != epoch {
                        self.in_work[other as usize] = epoch;
                        visited.push(other);
                    }
                }
            }
        }
        // Re-rate every flow of every resource looked at, each once (a flow whose two
        // resources were both looked at is listed once). Each flow's new rate depends only
        // on the levels, so the order they are re-rated in does not matter.
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
        others.clear();
        others.extend(list.iter().map(|a| self.level[a.other as usize]));
        others.sort_by(f64::total_cmp);
        let mut remaining = cap;
        let mut k = others.len() as f64;
        for &o in others.iter() {
            if o * k < remaining {
                remaining -= o;
                k -= 1.0;
            } else {
                return remaining / k;
            }
        }
        f64::INFINITY
    }
}

/// Equal up to floating-point noise (or both infinite).
fn same(a: f64, b: f64) -> bool {
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

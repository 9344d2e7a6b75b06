//! The fallback re-fill: progressive filling over the connected component of the dirty
//! nodes, exact and from scratch (see the module documentation of `network`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use pdtp_core::Time;

use super::{Network, Share};

impl Network {
    /// Progressive filling over the connected component of the dirty nodes.
    pub(super) fn recompute_component(&mut self, now: Time) {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.mark.iter_mut().for_each(|m| *m = 0);
            self.frozen.iter_mut().for_each(|m| *m = 0);
            self.rated.iter_mut().for_each(|m| *m = 0);
            self.epoch = 1;
        }
        let epoch = self.epoch;
        // 1. The component: nodes reachable from the dirty ones through active flows.
        let mut comp: Vec<u32> = Vec::new();
        let mut stack: Vec<u32> = self.dirty.drain(..).map(|n| n.0).collect();
        while let Some(n) = stack.pop() {
            if self.mark[n as usize] == epoch {
                continue;
            }
            self.mark[n as usize] = epoch;
            comp.push(n);
            let node = &self.nodes[n as usize];
            for a in node.out.as_slice().iter().chain(node.inn.as_slice()) {
                stack.push(a.other / 2);
            }
        }
        self.dirty_since = None;
        comp.sort_unstable(); // a deterministic order whatever the dirty order was
        // 2. Resources: index 2*i = upload of comp[i], 2*i+1 = download of comp[i].
        for (i, &n) in comp.iter().enumerate() {
            self.local[n as usize] = i as u32;
        }
        if self.frozen.len() < self.flows.len() {
            self.frozen.resize(self.flows.len(), 0);
            self.new_rate.resize(self.flows.len(), 0.0);
        }
        let mut cap: Vec<f64> = Vec::with_capacity(comp.len() * 2);
        let mut count: Vec<u32> = Vec::with_capacity(comp.len() * 2);
        let mut flows: Vec<u32> = Vec::new();
        for &n in &comp {
            let node = &self.nodes[n as usize];
            cap.push(node.up);
            cap.push(node.down);
            count.push(node.out.len() as u32);
            count.push(node.inn.len() as u32);
            flows.extend(node.out.as_slice().iter().map(|a| a.slot));
        }
        for &n in &comp {
            self.level[2 * n as usize] = f64::INFINITY;
            self.level[2 * n as usize + 1] = f64::INFINITY;
        }
        let mut heap: BinaryHeap<Reverse<(Share, usize)>> = BinaryHeap::with_capacity(cap.len());
        for r in 0..cap.len() {
            if count[r] > 0 {
                heap.push(Reverse((Share(cap[r] / f64::from(count[r])), r)));
            }
        }
        let mut done = vec![false; cap.len()];
        while let Some(Reverse((Share(share), r))) = heap.pop() {
            if done[r] || count[r] == 0 || share != cap[r] / f64::from(count[r]) {
                continue; // stale entry
            }
            done[r] = true;
            let i = r / 2;
            self.level[2 * comp[i] as usize + r % 2] = share;
            let node = &self.nodes[comp[i] as usize];
            let list = if r % 2 == 0 { node.out.as_slice() } else { node.inn.as_slice() };
            for &super::Adj { slot: s, .. } in list {
                if self.frozen[s as usize] == epoch {
                    continue;
                }
                self.frozen[s as usize] = epoch;
                self.new_rate[s as usize] = share;
                let f = &self.flows[s as usize];
                // The flow's other resource: the download of its dst, or the upload of its src.
                let other = if r % 2 == 0 {
                    2 * self.local[f.dst.0 as usize] as usize + 1
                } else {
                    2 * self.local[f.src.0 as usize] as usize
                };
                cap[other] = (cap[other] - share).max(0.0);
                count[other] -= 1;
                if count[other] > 0 && !done[other] {
                    heap.push(Reverse((Share(cap[other] / f64::from(count[other])), other)));
                }
            }
            count[r] = 0;
        }
        // 3. Apply: re-rate and reschedule only flows whose rate changed.
        for s in flows {
            let rate = if self.frozen[s as usize] == epoch { self.new_rate[s as usize] } else { 0.0 };
            self.set_rate(now, s, rate);
        }
    }
}

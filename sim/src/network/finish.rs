//! The flows' scheduled completions: an indexed binary heap of `(finish time, flow slot)`.
//!
//! Each flow slot is in the heap at most once, at its current finish time; a re-rate moves
//! its entry up or down in place and an ended flow's entry is removed. So the heap holds
//! exactly the flows that have a finish time (no superseded entries to skip), and its top
//! is always the next real completion. Ties pop lowest slot first.
//!
//! Cost: `set` and `remove` are O(log n) in the number of scheduled flows; `peek` is O(1).

use pdtp_core::Time;

/// Not in the heap.
const ABSENT: u32 = u32::MAX;

/// Scheduled completions, one per flow slot at most.
#[derive(Debug, Default)]
pub(super) struct FinishHeap {
    heap: Vec<(Time, u32)>,
    /// `pos[slot]`: where the slot's entry is in `heap`, or `ABSENT`.
    pos: Vec<u32>,
}

impl FinishHeap {
    /// The earliest `(time, slot)`.
    pub(super) fn peek(&self) -> Option<(Time, u32)> {
        self.heap.first().copied()
    }

    /// Schedules `slot` at `at`, replacing its earlier time if it had one.
    pub(super) fn set(&mut self, slot: u32, at: Time) {
        let s = slot as usize;
        if self.pos.len() <= s {
            self.pos.resize(s + 1, ABSENT);
        }
        match self.pos[s] {
            ABSENT => {
                let i = self.heap.len();
                self.heap.push((at, slot));
                self.pos[s] = i as u32;
                self.sift_up(i);
            }
            p => {
                let i = p as usize;
                let old = self.heap[i].0;
                self.heap[i].0 = at;
                if at < old {
                    self.sift_up(i);
                } else {
                    self.sift_down(i);
                }
            }
        }
    }

    /// Unschedules `slot` (nothing if it was not scheduled).
    pub(super) fn remove(&mut self, slot: u32) {
        let Some(&p) = self.pos.get(slot as usize) else { return };
        if p == ABSENT {
            return;
        }
        self.pos[slot as usize] = ABSENT;
        let i = p as usize;
        let last = self.heap.len() - 1;
        if i == last {
            self.heap.pop();
            return;
        }
        let moved = self.heap[last];
        self.heap[i] = moved;
        self.heap.pop();
        self.pos[moved.1 as usize] = i as u32;
        if i > 0 && moved < self.heap[(i - 1) / 2] {
            self.sift_up(i);
        } else {
            self.sift_down(i);
        }
    }

    /// Number of scheduled flows.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    fn sift_up(&mut self, mut i: usize) {
        let item = self.heap[i];
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[parent] <= item {
                break;
            }
            self.heap[i] = self.heap[parent];
            self.pos[self.heap[i].1 as usize] = i as u32;
            i = parent;
        }
        self.heap[i] = item;
        self.pos[item.1 as usize] = i as u32;
    }

    fn sift_down(&mut self, mut i: usize) {
        let item = self.heap[i];
        let n = self.heap.len();
        loop {
            let left = 2 * i + 1;
            if left >= n {
                break;
            }
            let right = left + 1;
            let child = if right < n && self.heap[right] < self.heap[left] { right } else { left };
            if item <= self.heap[child] {
                break;
            }
            self.heap[i] = self.heap[child];
            self.pos[self.heap[i].1 as usize] = i as u32;
            i = child;
        }
        self.heap[i] = item;
        self.pos[item.1 as usize] = i as u32;
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng as _, SeedableRng as _};

    use super::*;

    #[test]
    fn pops_in_time_then_slot_order_through_updates_and_removals() {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        let mut next = || rng.next_u64() >> 33;
        let mut h = FinishHeap::default();
        let mut reference: Vec<Option<u64>> = vec![None; 64];
        for _ in 0..5000 {
            let slot = (next() % 64) as u32;
            match next() % 4 {
                0 => {
                    h.remove(slot);
                    reference[slot as usize] = None;
                }
                1 => {
                    let want =
                        reference.iter().enumerate().filter_map(|(s, t)| t.map(|t| (t, s as u32))).min();
                    assert_eq!(h.peek().map(|(t, s)| (t.as_nanos(), s)), want);
                    if let Some((_, s)) = want {
                        h.remove(s);
                        reference[s as usize] = None;
                    }
                }
                _ => {
                    let at = next() % 50;
                    h.set(slot, Time::from_nanos(at));
                    reference[slot as usize] = Some(at);
                }
            }
            assert_eq!(h.len(), reference.iter().flatten().count());
        }
    }
}

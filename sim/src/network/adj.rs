//! A node's flow list, stored inside the node while it is short.
//!
//! The rate update reads a node's capacities and then its flow list for every resource it
//! looks at; keeping up to `N` entries inline puts them next to the capacities instead of in
//! a separate allocation somewhere else on the heap. A longer list moves to the heap. It
//! behaves exactly like a `Vec` under `push` and `swap_remove`, so the order of its entries
//! (which the update's work order follows) is the same either way.

use super::Adj;

/// A list of flows, inline up to `N` entries.
#[derive(Clone, Debug)]
pub(super) struct AdjList<const N: usize> {
    len: usize,
    inline: [Adj; N],
    /// Holds every entry once the list has outgrown `inline` (and from then on).
    heap: Option<Vec<Adj>>,
}

impl<const N: usize> Default for AdjList<N> {
    fn default() -> Self {
        Self { len: 0, inline: [Adj { slot: 0, other: 0 }; N], heap: None }
    }
}

impl<const N: usize> AdjList<N> {
    /// The entries, in `Vec` order.
    pub(super) fn as_slice(&self) -> &[Adj] {
        match &self.heap {
            Some(v) => v,
            None => &self.inline[..self.len],
        }
    }

    /// Number of entries.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Appends an entry.
    pub(super) fn push(&mut self, a: Adj) {
        match &mut self.heap {
            Some(v) => v.push(a),
            None if self.len < N => self.inline[self.len] = a,
            None => {
                let mut v = Vec::with_capacity(2 * N);
                v.extend_from_slice(&self.inline);
                v.push(a);
                self.heap = Some(v);
            }
        }
        self.len += 1;
    }

    /// Removes the entry of flow `slot`, moving the last entry into its place
    /// (`Vec::swap_remove`); nothing if it is not listed.
    pub(super) fn remove_slot(&mut self, slot: u32) {
        let Some(p) = self.as_slice().iter().position(|a| a.slot == slot) else { return };
        match &mut self.heap {
            Some(v) => {
                v.swap_remove(p);
            }
            None => self.inline[p] = self.inline[self.len - 1],
        }
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng as _, SeedableRng as _};

    use super::*;

    #[test]
    fn behaves_like_a_vec_under_push_and_swap_remove() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut next = || rng.next_u32();
        let mut list = AdjList::<4>::default();
        let mut reference: Vec<Adj> = Vec::new();
        for i in 0..2000u32 {
            if next() % 3 == 0 && !reference.is_empty() {
                let slot = reference[next() as usize % reference.len()].slot;
                list.remove_slot(slot);
                let p = reference.iter().position(|a| a.slot == slot).unwrap_or(0);
                reference.swap_remove(p);
            } else if reference.len() < 12 {
                let a = Adj { slot: i, other: next() };
                list.push(a);
                reference.push(a);
            }
            let got: Vec<(u32, u32)> = list.as_slice().iter().map(|a| (a.slot, a.other)).collect();
            let want: Vec<(u32, u32)> = reference.iter().map(|a| (a.slot, a.other)).collect();
            assert_eq!(got, want);
            assert_eq!(list.len(), reference.len());
        }
    }
}

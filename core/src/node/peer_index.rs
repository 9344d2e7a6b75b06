//! Peer id → the link to reuse for it: an open-addressed table that is never iterated.
//!
//! A node looks this up for every order it starts and updates it for every link it opens or
//! accepts. With a few hundred links open (a peer keeps idle links for `link_idle`), a
//! `BTreeMap` cost a cache miss per level on each of those; here a lookup is one or two slots.
//! Nothing iterates the table, so its layout cannot leak into behaviour (STYLE 5).
//!
//! Linear probing over a power-of-two table at most half full, Fibonacci hashing of the id,
//! and backward-shift deletion (no tombstones). Probing stops after [`MAX_PROBE`] slots: an id
//! that would need more is simply not indexed. Reuse is an optimisation, so a remote that picks
//! colliding ids only loses reuse for its own links, and no lookup ever scans a long run.

use crate::ids::{ConnId, PeerId};

/// The most slots a lookup or insert visits.
const MAX_PROBE: usize = 32;

/// The smallest table allocated (a peer with any link has a handful).
const MIN_SLOTS: usize = 16;

#[derive(Debug, Default)]
pub(crate) struct PeerIndex {
    slots: Vec<Option<(PeerId, ConnId)>>,
    len: usize,
}

impl PeerIndex {
    /// The home slot of `peer` in a table of `slots` slots (a power of two).
    fn home(peer: PeerId, slots: usize) -> usize {
        let bits = slots.trailing_zeros();
        (u64::from(peer.0).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    /// The slot holding `peer`, if it is indexed.
    fn find(&self, peer: PeerId) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = Self::home(peer, self.slots.len());
        for _ in 0..MAX_PROBE {
            match self.slots[i] {
                None => return None,
                Some((p, _)) if p == peer => return Some(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
        None
    }

    pub fn get(&self, peer: PeerId) -> Option<ConnId> {
        self.find(peer).and_then(|i| self.slots[i].map(|(_, c)| c))
    }

    /// Indexes `peer` → `conn`, replacing what `peer` had.
    pub fn insert(&mut self, peer: PeerId, conn: ConnId) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        if self.place(peer, conn) {
            self.len += 1;
        }
    }

    /// Puts `peer` → `conn` in its probe run; returns whether an entry was added (not replaced).
    fn place(&mut self, peer: PeerId, conn: ConnId) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = Self::home(peer, self.slots.len());
        for _ in 0..MAX_PROBE {
            match self.slots[i] {
                None => {
                    self.slots[i] = Some((peer, conn));
                    return true;
                }
                Some((p, _)) if p == peer => {
                    self.slots[i] = Some((peer, conn));
                    return false;
                }
                Some(_) => i = (i + 1) & mask,
            }
        }
        false
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(MIN_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![None; size]);
        self.len = 0;
        for (peer, conn) in old.into_iter().flatten() {
            if self.place(peer, conn) {
                self.len += 1;
            }
        }
    }

    /// Forgets `peer`; the entries after it in its run shift back so no lookup stops short.
    pub fn remove(&mut self, peer: PeerId) {
        let Some(mut hole) = self.find(peer) else { return };
        self.slots[hole] = None;
        self.len -= 1;
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let Some((p, c)) = self.slots[j] else { return };
            // The entry at `j` may fill the hole unless its home lies after the hole (cyclically).
            let home = Self::home(p, self.slots.len());
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = Some((p, c));
                self.slots[j] = None;
                hole = j;
            }
        }
    }

    /// Number of indexed peers.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any sequence of inserts and removes answers every lookup as an ordered map does
        /// (ids from a small range, so runs collide, wrap and shift back often).
        #[test]
        fn answers_as_an_ordered_map_does(ops in prop::collection::vec((any::<bool>(), 0u32..300, any::<u32>()), 0..2000)) {
            let mut index = PeerIndex::default();
            let mut model = BTreeMap::new();
            for (insert, peer, conn) in ops {
                let (peer, conn) = (PeerId(peer), ConnId(conn));
                if insert {
                    index.insert(peer, conn);
                    model.insert(peer, conn);
                } else {
                    index.remove(peer);
                    model.remove(&peer);
                }
                prop_assert_eq!(index.len(), model.len());
            }
            for p in 0..300 {
                prop_assert_eq!(index.get(PeerId(p)), model.get(&PeerId(p)).copied());
            }
        }
    }

    #[test]
    fn ids_that_collide_past_the_probe_limit_are_not_indexed_and_harm_no_one_else() {
        let mut index = PeerIndex::default();
        index.insert(PeerId(1), ConnId(1));
        // Grow the table to its final size first, then craft ids that share one home slot.
        for p in 1000..1100 {
            index.insert(PeerId(p), ConnId(p));
        }
        for p in 1000..1100 {
            index.remove(PeerId(p));
        }
        let size = index.slots.len();
        let target = PeerIndex::home(PeerId(2), size);
        let colliding: Vec<PeerId> = (3u32..)
            .map(PeerId)
            .filter(|&p| PeerIndex::home(p, size) == target)
            .take(MAX_PROBE + 8)
            .collect();
        for &p in &colliding {
            index.insert(p, ConnId(p.0));
        }
        assert_eq!(index.slots.len(), size, "the crafted ids fit without growing");
        let indexed = colliding.iter().filter(|&&p| index.get(p).is_some()).count();
        assert!(indexed <= MAX_PROBE, "{indexed} ids indexed in one run");
        assert_eq!(index.get(PeerId(1)), Some(ConnId(1)));
        for &p in &colliding {
            index.remove(p);
        }
        assert_eq!(index.len(), 1);
        assert_eq!(index.get(PeerId(1)), Some(ConnId(1)));
    }
}

//! A fixed-capacity bitset over chunk indexes, growable for live content.

use serde::{Deserialize, Serialize};

/// A set of small integers stored as 64-bit words.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BitSet {
    words: Vec<u64>,
    len: u32,
}

impl BitSet {
    /// An empty set able to hold `0..len`.
    pub fn new(len: u32) -> Self {
        Self { words: vec![0; (len as usize).div_ceil(64)], len }
    }

    /// A set holding every index in `0..len`.
    pub fn full(len: u32) -> Self {
        let mut s = Self::new(len);
        s.insert_range(0, len);
        s
    }

    /// The capacity (indexes `0..capacity()` are valid).
    pub fn capacity(&self) -> u32 {
        self.len
    }

    /// Grows the capacity to `len` (new indexes are absent). Never shrinks.
    pub fn grow(&mut self, len: u32) {
        if len > self.len {
            self.len = len;
            self.words.resize((len as usize).div_ceil(64), 0);
        }
    }

    /// Whether `i` is present (false when out of range).
    pub fn contains(&self, i: u32) -> bool {
        i < self.len && self.words[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Adds `i`; returns whether it was newly added. Out-of-range indexes are ignored.
    pub fn insert(&mut self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[(i / 64) as usize];
        let bit = 1 << (i % 64);
        let fresh = *w & bit == 0;
        *w |= bit;
        fresh
    }

    /// Removes `i`; returns whether it was present.
    pub fn remove(&mut self, i: u32) -> bool {
        if i >= self.len {
            return false;
        }
        let w = &mut self.words[(i / 64) as usize];
        let bit = 1 << (i % 64);
        let was = *w & bit != 0;
        *w &= !bit;
        was
    }

    /// Adds every index in `start..end` (clamped to capacity).
    pub fn insert_range(&mut self, start: u32, end: u32) {
        for i in start..end.min(self.len) {
            self.words[(i / 64) as usize] |= 1 << (i % 64);
        }
    }

    /// Removes every index in `start..end` (clamped to capacity).
    pub fn remove_range(&mut self, start: u32, end: u32) {
        for i in start..end.min(self.len) {
            self.words[(i / 64) as usize] &= !(1 << (i % 64));
        }
    }

    /// Number of present indexes.
    pub fn count(&self) -> u32 {
        self.words.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether no index is present.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The smallest present index `>= from`.
    pub fn next_at_or_after(&self, from: u32) -> Option<u32> {
        if from >= self.len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut w = self.words[wi] & (!0u64 << (from % 64));
        loop {
            if w != 0 {
                let i = wi as u32 * 64 + w.trailing_zeros();
                return (i < self.len).then_some(i);
            }
            wi += 1;
            if wi >= self.words.len() {
                return None;
            }
            w = self.words[wi];
        }
    }

    /// The smallest index `>= from` present in both `self` and `other`.
    pub fn next_common_at_or_after(&self, other: &BitSet, from: u32) -> Option<u32> {
        let len = self.len.min(other.len);
        if from >= len {
            return None;
        }
        let mut wi = (from / 64) as usize;
        let mut w = self.words[wi] & other.words[wi] & (!0u64 << (from % 64));
        loop {
            if w != 0 {
                let i = wi as u32 * 64 + w.trailing_zeros();
                return (i < len).then_some(i);
            }
            wi += 1;
            if wi >= self.words.len().min(other.words.len()) {
                return None;
            }
            w = self.words[wi] & other.words[wi];
        }
    }

    /// Whether `self` and `other` share any index.
    pub fn intersects(&self, other: &BitSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }

    /// The underlying words (bit `i` is bit `i % 64` of word `i / 64`).
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Iterates present indexes in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let mut next = self.next_at_or_after(0);
        core::iter::from_fn(move || {
            let cur = next?;
            next = self.next_at_or_after(cur + 1);
            Some(cur)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_and_scan() {
        let mut s = BitSet::new(130);
        assert!(s.insert(3));
        assert!(!s.insert(3));
        assert!(s.insert(129));
        assert!(!s.insert(130));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![3, 129]);
        assert_eq!(s.next_at_or_after(4), Some(129));
        assert!(s.remove(3));
        assert_eq!(s.count(), 1);
        s.grow(300);
        s.insert_range(200, 400);
        assert_eq!(s.count(), 101);
        let mut t = BitSet::new(300);
        t.insert(250);
        assert_eq!(s.next_common_at_or_after(&t, 0), Some(250));
        assert!(s.intersects(&t));
    }
}

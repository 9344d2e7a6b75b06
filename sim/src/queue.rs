//! The event queue: timestamped events popped in `(time, sequence)` order.
//!
//! Same-time events come out in the order they were pushed (FIFO), so a run never depends
//! on how a queue happens to break ties (STYLE 18). Events live in a slab of reusable slots;
//! the ordering structure holds only `(key, slot)` pairs, where the key is the time and the
//! push sequence number in one `u128` (time in the high half), unique per event.
//!
//! The ordering structure is a **radix heap** (Ahuja, Mehlhorn, Orlin and Tarjan, 1990),
//! which fits a discrete-event simulation: keys only grow (nothing is scheduled before the
//! event being handled, and a later push has a larger sequence number). Bucket `b` holds
//! the keys whose highest bit differing from the last popped key is bit `b - 1` (bucket 0:
//! equal to it). A pop takes bucket 0 if it is not empty; otherwise it finds the smallest
//! key of the lowest non-empty bucket, makes it the last key and spreads that bucket over
//! lower buckets. A key only ever moves to a lower bucket, so each is moved at most 128
//! times, and in practice a handful: pushing and moving are appends to vectors, with no
//! comparisons against other pending events. A push into the past (a key below the last
//! popped one, which the engine never does) is still handled correctly, by re-spreading
//! every pending key from the new minimum.
//!
//! Cost: `push` O(1); `pop` amortised O(log of the key range) moves; `peek_time` scans the
//! lowest non-empty bucket.

use pdtp_core::Time;

/// A priority queue of events of type `E`, ordered by time, ties first-in first-out.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// `buckets[b]`: pending `(key, slot)` pairs whose key differs from `last` first in bit
    /// `b - 1` (counting from the least significant), or equals it (`b = 0`).
    buckets: Vec<Vec<(u128, u32)>>,
    /// Bit `b - 1` set when `buckets[b]` (b ≥ 1) is not empty.
    occupied: u128,
    /// The last key taken out (or the floor set by a push into the past).
    last: u128,
    len: usize,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self {
            buckets: (0..=128).map(|_| Vec::new()).collect(),
            occupied: 0,
            last: 0,
            len: 0,
            slots: Vec::new(),
            free: Vec::new(),
            next_seq: 0,
        }
    }

    /// Schedules `event` at `time`.
    pub fn push(&mut self, time: Time, event: E) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = Some(event);
                s
            }
            None => {
                self.slots.push(Some(event));
                // More than 4 billion simultaneously pending events would not fit in memory anyway.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let key = (u128::from(time.as_nanos()) << 64) | u128::from(self.next_seq);
        self.next_seq += 1;
        if key < self.last {
            self.respread_from(key);
        }
        self.place(key, slot);
        self.len += 1;
    }

    /// Removes and returns the earliest event (the first pushed among equals).
    pub fn pop(&mut self) -> Option<(Time, E)> {
        if self.buckets[0].is_empty() {
            if self.occupied == 0 {
                return None;
            }
            let b = self.occupied.trailing_zeros() as usize + 1;
            let items = std::mem::take(&mut self.buckets[b]);
            self.occupied &= !(1u128 << (b - 1));
            self.last = items.iter().map(|&(k, _)| k).min().unwrap_or(self.last);
            let mut items = items;
            for &(key, slot) in &items {
                self.place(key, slot);
            }
            // Hand the emptied vector back to keep its capacity.
            items.clear();
            if self.buckets[b].is_empty() {
                self.buckets[b] = items;
            }
        }
        let (key, slot) = self.buckets[0].pop()?;
        self.len -= 1;
        let event = self.slots[slot as usize].take()?;
        self.free.push(slot);
        Some((Time::from_nanos((key >> 64) as u64), event))
    }

    /// The time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<Time> {
        let key = match self.buckets[0].last() {
            Some(&(k, _)) => k,
            None if self.occupied == 0 => return None,
            None => {
                let b = self.occupied.trailing_zeros() as usize + 1;
                self.buckets[b].iter().map(|&(k, _)| k).min()?
            }
        };
        Some(Time::from_nanos((key >> 64) as u64))
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total number of events ever pushed.
    pub fn pushed(&self) -> u64 {
        self.next_seq
    }

    /// Puts a key (not below `last`) in its bucket.
    fn place(&mut self, key: u128, slot: u32) {
        let b = (128 - (key ^ self.last).leading_zeros()) as usize;
        self.buckets[b].push((key, slot));
        if b > 0 {
            self.occupied |= 1u128 << (b - 1);
        }
    }

    /// Makes `floor` (below every pending key) the last key and re-spreads every pending key.
    fn respread_from(&mut self, floor: u128) {
        self.last = floor;
        let mut all = Vec::with_capacity(self.len);
        for bucket in &mut self.buckets {
            all.append(bucket);
        }
        self.occupied = 0;
        for (key, slot) in all {
            self.place(key, slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Time {
        Time::from_nanos(n)
    }

    #[test]
    fn pops_in_time_order() {
        let mut q = EventQueue::new();
        for (time, e) in [(5, 'c'), (1, 'a'), (3, 'b'), (9, 'd')] {
            q.push(t(time), e);
        }
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got, vec![(t(1), 'a'), (t(3), 'b'), (t(5), 'c'), (t(9), 'd')]);
    }

    #[test]
    fn ties_are_fifo_even_after_slot_reuse() {
        let mut q = EventQueue::new();
        q.push(t(1), 0u32);
        q.push(t(2), 1);
        assert_eq!(q.pop(), Some((t(1), 0)));
        // Reuses slot 0 for a later push; order must still follow push order.
        for i in 2..50 {
            q.push(t(2), i);
        }
        let got: Vec<u32> = std::iter::from_fn(|| q.pop()).map(|(_, e)| e).collect();
        assert_eq!(got, (1..50).collect::<Vec<_>>());
        assert!(q.is_empty());
        assert_eq!(q.pushed(), 50);
    }

    #[test]
    fn a_push_into_the_past_still_pops_in_order() {
        let mut q = EventQueue::new();
        for time in [10, 40, 20, 30] {
            q.push(t(time), time);
        }
        assert_eq!(q.pop(), Some((t(10), 10)));
        assert_eq!(q.pop(), Some((t(20), 20)));
        q.push(t(5), 5); // before the last popped time
        q.push(t(30), 31);
        assert_eq!(q.peek_time(), Some(t(5)));
        let got: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(got, vec![(t(5), 5), (t(30), 30), (t(30), 31), (t(40), 40)]);
    }

    #[test]
    fn interleaved_push_pop_matches_a_sorted_reference() {
        // A small deterministic generator (LCG) so the test needs no dependency.
        let mut x: u64 = 12345;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x >> 33
        };
        let mut q = EventQueue::new();
        let mut reference: Vec<(u64, u64)> = Vec::new();
        let mut seq = 0;
        let mut now = 0;
        for _ in 0..2000 {
            if next() % 3 != 0 {
                let time = now + next() % 20;
                q.push(t(time), seq);
                reference.push((time, seq));
                seq += 1;
            } else if let Some((time, e)) = q.pop() {
                reference.sort();
                let expect = reference.remove(0);
                assert_eq!((time.as_nanos(), e), expect);
                now = time.as_nanos();
            }
        }
        assert_eq!(q.len(), reference.len());
        assert_eq!(q.peek_time().map(Time::as_nanos), reference.iter().map(|r| r.0).min());
    }
}

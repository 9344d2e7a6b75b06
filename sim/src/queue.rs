//! The event queue: timestamped events popped in `(time, sequence)` order.
//!
//! Same-time events come out in the order they were pushed (FIFO), so a run never depends
//! on how a queue happens to break ties (STYLE 18). Events live in a slab of reusable slots;
//! the ordering structure holds only `(time, sequence, slot)` entries, where the sequence
//! number counts pushes and makes every entry unique.
//!
//! The ordering structure is a **radix heap** (Ahuja, Mehlhorn, Orlin and Tarjan, 1990) over
//! the time alone, which fits a discrete-event simulation: times only grow (nothing is
//! scheduled before the event being handled). Bucket `b` holds the entries whose time's
//! highest bit differing from the last popped time is bit `b - 1` (bucket 0: equal to it).
//! When bucket 0 runs dry, a pop finds the smallest time in the lowest non-empty bucket,
//! makes it the last time and spreads that bucket over lower buckets. A time only ever moves
//! to a lower bucket, so each entry is moved at most 64 times, and in practice a handful;
//! events sharing a time are moved together and cost one spread between them, not one each.
//!
//! Bucket 0 is a FIFO in sequence order without any sorting: entries with equal times are
//! always in the same bucket (the bucket depends on the time only), each bucket is appended
//! to and spread in order, and a push comes after every pending entry in sequence order, so
//! equal-time entries stay in push order through every move (checked in debug builds). A push
//! into the past (a time below the last popped one; the engine makes one only after
//! `earliest` moved on and a tracker output then schedules an earlier event) is still
//! handled correctly, by re-spreading every pending entry, in order, from the new minimum.
//!
//! Cost: `push` O(1); `pop` amortised O(log of the time range) moves; `peek_time` scans the
//! lowest non-empty bucket.

use pdtp_core::Time;

/// One pending event in the ordering structure.
#[derive(Debug, Clone, Copy)]
struct Entry {
    time: u64,
    seq: u64,
    slot: u32,
}

/// A priority queue of events of type `E`, ordered by time, ties first-in first-out.
#[derive(Debug)]
pub struct EventQueue<E> {
    /// `buckets[b]`: pending entries whose time differs from `last` first in bit `b - 1`
    /// (counting from the least significant), or equals it (`b = 0`, read from `head` on,
    /// in sequence order).
    buckets: Vec<Vec<Entry>>,
    /// The next entry of `buckets[0]` to pop; the ones before it are spent.
    head: usize,
    /// Bit `b - 1` set when `buckets[b]` (b ≥ 1) is not empty.
    occupied: u64,
    /// The last time taken out (or the floor set by a push into the past).
    last: u64,
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
            buckets: (0..=64).map(|_| Vec::new()).collect(),
            head: 0,
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
        let time = time.as_nanos();
        let entry = Entry { time, seq: self.next_seq, slot };
        self.next_seq += 1;
        if time < self.last {
            self.respread_from(time);
        }
        // At the last time, the new entry has the largest sequence number: the FIFO's back.
        self.place(entry);
        self.len += 1;
    }

    /// Removes and returns the earliest event (the first pushed among equals).
    pub fn pop(&mut self) -> Option<(Time, E)> {
        self.earliest()?;
        let entry = *self.buckets[0].get(self.head)?;
        self.head += 1;
        self.len -= 1;
        let event = self.slots[entry.slot as usize].take()?;
        self.free.push(entry.slot);
        Some((Time::from_nanos(entry.time), event))
    }

    /// The time of the earliest event, if any, moving on to it if need be: unlike
    /// [`Self::peek_time`], amortised O(1) (the work is the next `pop`'s, done early).
    pub fn earliest(&mut self) -> Option<Time> {
        if self.head == self.buckets[0].len() {
            self.buckets[0].clear();
            self.head = 0;
            if self.occupied == 0 {
                return None;
            }
            self.refill();
        }
        Some(Time::from_nanos(self.last))
    }

    /// The time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<Time> {
        let time = if self.head < self.buckets[0].len() {
            self.last
        } else if self.occupied == 0 {
            return None;
        } else {
            let b = self.occupied.trailing_zeros() as usize + 1;
            self.buckets[b].iter().map(|e| e.time).min()?
        };
        Some(Time::from_nanos(time))
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

    /// With bucket 0 empty and some bucket occupied: moves on to the smallest pending time,
    /// spreading the lowest non-empty bucket into lower ones.
    fn refill(&mut self) {
        let b = self.occupied.trailing_zeros() as usize + 1;
        let mut items = std::mem::take(&mut self.buckets[b]);
        self.occupied &= !(1u64 << (b - 1));
        self.last = items.iter().map(|e| e.time).min().unwrap_or(self.last);
        for &entry in &items {
            self.place(entry);
        }
        // Hand the emptied vector back to keep its capacity (every entry moved lower).
        items.clear();
        self.buckets[b] = items;
        debug_assert!(self.buckets[0].windows(2).all(|w| w[0].seq < w[1].seq));
    }

    /// Puts an entry (not below `last`) in its bucket.
    #[inline]
    fn place(&mut self, entry: Entry) {
        let b = (64 - (entry.time ^ self.last).leading_zeros()) as usize;
        self.buckets[b].push(entry);
        if b > 0 {
            self.occupied |= 1u64 << (b - 1);
        }
    }

    /// Makes `floor` (below every pending time) the last time and re-spreads every pending
    /// entry; none lands in bucket 0.
    fn respread_from(&mut self, floor: u64) {
        self.last = floor;
        let mut all = Vec::with_capacity(self.len);
        all.extend(self.buckets[0].drain(self.head..));
        self.buckets[0].clear();
        self.head = 0;
        for bucket in &mut self.buckets[1..] {
            all.append(bucket);
        }
        self.occupied = 0;
        for entry in all {
            self.place(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha8Rng;
    use rand_core::{Rng as _, SeedableRng as _};

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
    fn earliest_names_the_next_pop_and_changes_nothing() {
        let mut q = EventQueue::new();
        assert_eq!(q.earliest(), None);
        for (time, e) in [(7, 'b'), (3, 'a'), (7, 'c'), (90, 'd')] {
            q.push(t(time), e);
        }
        let mut got = Vec::new();
        while let Some(at) = q.earliest() {
            assert_eq!(q.peek_time(), Some(at));
            let (popped, e) = q.pop().unwrap();
            assert_eq!(popped, at);
            got.push(e);
            if e == 'a' {
                // A push after `earliest` moved on still comes out in order.
                q.push(t(5), 'x');
            }
        }
        assert_eq!(got, vec!['a', 'x', 'b', 'c', 'd']);
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
        let mut rng = ChaCha8Rng::seed_from_u64(12345);
        let mut next = || rng.next_u64() >> 33;
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

    #[test]
    fn pop_order_matches_a_binary_heap_on_time_then_sequence() {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        // Few distinct times, so many events share one; pushes at the current time land
        // behind a part-consumed group, and now and then one goes into the past.
        let mut rng = ChaCha8Rng::seed_from_u64(987654321);
        let mut next = || rng.next_u64() >> 33;
        let mut q = EventQueue::new();
        let mut reference = BinaryHeap::new();
        let mut seq = 0u64;
        let mut now = 0u64;
        for round in 0..20_000 {
            if next() % 5 < 3 {
                let time = match next() % 10 {
                    0..=3 => now,
                    4 if round % 97 == 0 => now.saturating_sub(3),
                    _ => now + next() % 8 + (next() % 4) * 1000,
                };
                q.push(t(time), seq);
                reference.push(Reverse((time, seq)));
                seq += 1;
            } else {
                let expect = reference.pop().map(|Reverse(r)| r);
                assert_eq!(q.peek_time().map(Time::as_nanos), expect.map(|r| r.0));
                let got = q.pop().map(|(time, e)| (time.as_nanos(), e));
                assert_eq!(got, expect);
                if let Some((time, _)) = got {
                    now = time;
                }
            }
            assert_eq!(q.len(), reference.len());
        }
        while let Some(Reverse(expect)) = reference.pop() {
            assert_eq!(q.pop().map(|(time, e)| (time.as_nanos(), e)), Some(expect));
        }
        assert!(q.pop().is_none());
    }
}

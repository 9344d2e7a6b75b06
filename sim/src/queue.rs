//! The event queue: timestamped events popped in `(time, sequence)` order.
//!
//! Same-time events come out in the order they were pushed (FIFO), so a run never depends
//! on how a heap happens to break ties (STYLE 18). The heap holds small `(time, seq, slot)`
//! keys; the events themselves live in a slab of reusable slots, so sifting moves 24 bytes
//! however large an event is.
//!
//! Cost: `push` and `pop` are O(log n) in the number of pending events.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use pdtp_core::Time;

/// A priority queue of events of type `E`, ordered by time, ties first-in first-out.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<Key>>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    next_seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    time: Time,
    seq: u64,
    slot: u32,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue.
    pub fn new() -> Self {
        Self { heap: BinaryHeap::new(), slots: Vec::new(), free: Vec::new(), next_seq: 0 }
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
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Key { time, seq, slot }));
    }

    /// Removes and returns the earliest event (the first pushed among equals).
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let Reverse(key) = self.heap.pop()?;
        let event = self.slots[key.slot as usize].take()?;
        self.free.push(key.slot);
        Some((key.time, event))
    }

    /// The time of the earliest event, if any.
    pub fn peek_time(&self) -> Option<Time> {
        self.heap.peek().map(|Reverse(k)| k.time)
    }

    /// Number of pending events.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is pending.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Total number of events ever pushed.
    pub fn pushed(&self) -> u64 {
        self.next_seq
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

//! The node's timers: a small table of deadlines, one per kind (STYLE 6).

use crate::time::Time;

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The earliest transfer watchdog (not started / not completed in time).
    Watchdog = 0,
    /// The earliest held peer request whose order did not arrive within `order_wait`.
    HeldRequest = 1,
    /// The earliest idle peer link to close.
    IdleLink = 2,
    /// The next attempt to reach a lost tracker.
    Reconnect = 3,
}

impl Timer {
    /// Every timer, in the order they fire when due together.
    pub const ALL: [Timer; 4] = [Timer::Watchdog, Timer::HeldRequest, Timer::IdleLink, Timer::Reconnect];
}

/// One optional deadline per [`Timer`].
#[derive(Clone, Debug, Default)]
pub(crate) struct TimerTable([Option<Time>; 4]);

impl TimerTable {
    /// Sets (or clears) a timer.
    pub fn set(&mut self, timer: Timer, at: Option<Time>) {
        self.0[timer as usize] = at;
    }

    /// The earliest armed deadline.
    pub fn next(&self) -> Option<Time> {
        self.0.iter().flatten().min().copied()
    }

    /// The timers due at `now`.
    pub fn expired(&self, now: Time) -> impl Iterator<Item = Timer> + '_ {
        Timer::ALL.into_iter().filter(move |t| self.0[*t as usize].is_some_and(|at| at <= now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_due_timers_expire() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::IdleLink, Some(Time::from_nanos(50)));
        t.set(Timer::Watchdog, Some(Time::from_nanos(10)));
        assert_eq!(t.next(), Some(Time::from_nanos(10)));
        assert_eq!(t.expired(Time::from_nanos(9)).count(), 0);
        assert_eq!(t.expired(Time::from_nanos(10)).collect::<Vec<_>>(), vec![Timer::Watchdog]);
        t.set(Timer::Watchdog, None);
        assert_eq!(t.next(), Some(Time::from_nanos(50)));
    }
}

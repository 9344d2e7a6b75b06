//! The boundary between wall time and the core's [`Time`]: the runtime reads
//! `Instant::now()` once per loop turn and hands the machines a `Time`.

use std::time::{Duration, Instant};

use pdtp_core::{Span, Time};

/// Converts between `Instant` and [`Time`] (nanoseconds since the clock's epoch).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose epoch (`Time::ZERO`) is `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self { epoch }
    }

    /// A clock starting now.
    pub fn start() -> Self {
        Self::new(Instant::now())
    }

    /// The epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// `instant` as a [`Time`] (instants before the epoch map to `Time::ZERO`).
    pub fn time(&self, instant: Instant) -> Time {
        let d = instant.saturating_duration_since(self.epoch);
        Time::from_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The current time.
    pub fn now(&self) -> Time {
        self.time(Instant::now())
    }

    /// `time` as an `Instant`; `None` for `Time::NEVER` or a time too far out to represent.
    pub fn instant(&self, time: Time) -> Option<Instant> {
        if time == Time::NEVER {
            return None;
        }
        self.epoch.checked_add(Duration::from_nanos(time.as_nanos()))
    }

    /// How long a poll may sleep at `now` to wake at `deadline` (zero if it has passed);
    /// `None` (sleep until an event) for no deadline.
    pub fn poll_timeout(&self, now: Instant, deadline: Option<Time>) -> Option<Duration> {
        let at = self.instant(deadline?)?;
        Some(at.saturating_duration_since(now))
    }
}

/// A [`Span`] as a `Duration`.
pub fn duration(span: Span) -> Duration {
    Duration::from_nanos(span.as_nanos())
}

/// Seconds since the unix epoch, for timestamps other processes compare (reports, logs); 0
/// for a clock set before 1970.
pub fn unix_seconds() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_clamps() {
        let t0 = Instant::now();
        let c = Clock::new(t0);
        let later = t0 + Duration::from_millis(1_500);
        assert_eq!(c.time(later), Time::from_nanos(1_500_000_000));
        assert_eq!(c.instant(c.time(later)), Some(later));
        assert_eq!(c.time(t0.checked_sub(Duration::from_secs(1)).unwrap_or(t0)), Time::ZERO);
        assert_eq!(c.instant(Time::NEVER), None);
        assert_eq!(c.poll_timeout(t0, None), None);
        assert_eq!(c.poll_timeout(t0, Some(Time::NEVER)), None);
        assert_eq!(c.poll_timeout(t0, Some(Time::from_nanos(2_000))), Some(Duration::from_micros(2)));
        assert_eq!(
            c.poll_timeout(later, Some(Time::from_nanos(5))),
            Some(Duration::ZERO),
            "past deadlines: no sleep"
        );
        assert_eq!(duration(Span::from_millis(3)), Duration::from_millis(3));
    }
}

//! Token buckets for `max_upload_rate` / `max_download_rate`, and a meter for the rates
//! actually reached. Time is always an argument: tests feed instants, nothing sleeps.
//!
//! Semantics (one bucket per direction per process, shared by every connection):
//!
//! - the bucket holds up to `burst` bytes of credit and refills at `rate` bytes per second;
//!   it starts full;
//! - before writing, the loop asks [`TokenBucket::take`] how many of the bytes it has may go
//!   now and writes at most that many; before reading, it reads at most
//!   [`TokenBucket::available`] bytes;
//! - when a socket operation moved more than was granted (a read cannot always be sized
//!   exactly), [`TokenBucket::consume`] puts the bucket into debt, which later refills repay;
//! - with no credit, the loop stops that direction and sets a timer at
//!   [`TokenBucket::ready_at`] instead of polling.
//!
//! Arithmetic is exact: credit is kept in byte-nanoseconds, so no rounding drift accumulates
//! however often the bucket is refilled.

use std::time::{Duration, Instant};

const NANOS: i128 = 1_000_000_000;

/// A token bucket in bytes: `rate` bytes per second, up to `burst` bytes at once.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    /// Credit in byte-nanoseconds (bytes × 10⁹); negative while in debt.
    credit: i128,
    last: Instant,
}

/// Measures the rate actually reached: bytes per second over the last completed window,
/// and the peak of those.
#[derive(Clone, Debug)]
pub struct RateMeter {
    window: Duration,
    start: Instant,
    in_window: u64,
    total: u64,
    last_rate: f64,
    peak_rate: f64,
}

impl TokenBucket {
    /// A full bucket refilling at `rate` bytes/s holding at most `burst` bytes (both at least 1).
    pub fn new(rate: u64, burst: u64, now: Instant) -> Self {
        let burst = burst.max(1);
        Self { rate: rate.max(1), burst, credit: i128::from(burst) * NANOS, last: now }
    }

    /// A bucket whose burst is a tenth of a second of traffic, but at least `min_burst` bytes
    /// (one chunk, so a chunk can always be sent whole).
    pub fn with_default_burst(rate: u64, min_burst: u64, now: Instant) -> Self {
        Self::new(rate, (rate / 10).max(min_burst), now)
    }

    /// The configured rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The configured burst in bytes.
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// Whole bytes that may move now (0 while in debt).
    pub fn available(&mut self, now: Instant) -> u64 {
        self.refill(now);
        u64::try_from(self.credit.max(0) / NANOS).unwrap_or(u64::MAX)
    }

    /// Grants up to `want` bytes now and deducts them; returns how many were granted.
    pub fn take(&mut self, want: u64, now: Instant) -> u64 {
        let granted = want.min(self.available(now));
        self.credit -= i128::from(granted) * NANOS;
        granted
    }

    /// Deducts `n` bytes that already moved, going into debt if needed.
    pub fn consume(&mut self, n: u64, now: Instant) {
        self.refill(now);
        self.credit -= i128::from(n) * NANOS;
    }

    /// The earliest instant at which `n` bytes (capped at the burst) will be available;
    /// `now` if they already are.
    pub fn ready_at(&mut self, n: u64, now: Instant) -> Instant {
        self.refill(now);
        let need = i128::from(n.min(self.burst)) * NANOS - self.credit;
        if need <= 0 {
            return now;
        }
        // Ceiling division: at that instant the credit is at least `need`.
        let nanos = (need + i128::from(self.rate) - 1) / i128::from(self.rate);
        now + Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn refill(&mut self, now: Instant) {
        // Instants before `last` (a caller passing an older time) add nothing.
        let elapsed = now.saturating_duration_since(self.last);
        self.last = self.last.max(now);
        let cap = i128::from(self.burst) * NANOS;
        let gain = i128::try_from(elapsed.as_nanos()).unwrap_or(i128::MAX / 2) * i128::from(self.rate);
        self.credit = self.credit.saturating_add(gain).min(cap);
    }
}

impl RateMeter {
    /// A meter averaging over windows of `window` (e.g. one second).
    pub fn new(window: Duration, now: Instant) -> Self {
        Self {
            window: window.max(Duration::from_millis(1)),
            start: now,
            in_window: 0,
            total: 0,
            last_rate: 0.0,
            peak_rate: 0.0,
        }
    }

    /// Records `n` bytes moved at `now`.
    pub fn record(&mut self, n: u64, now: Instant) {
        self.roll(now);
        self.in_window += n;
        self.total += n;
    }

    /// Bytes per second over the last completed window (0 after an idle window).
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.last_rate
    }

    /// The highest windowed rate seen.
    pub fn peak(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.peak_rate
    }

    /// Bytes recorded in total.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < self.window {
            return;
        }
        // The window that just ended; any further whole windows were idle.
        let rate = self.in_window as f64 / self.window.as_secs_f64();
        let windows = elapsed.as_nanos() / self.window.as_nanos();
        self.last_rate = if windows > 1 { 0.0 } else { rate };
        self.peak_rate = self.peak_rate.max(rate);
        self.in_window = 0;
        let advance = self.window.as_nanos() * windows;
        self.start += Duration::from_nanos(u64::try_from(advance).unwrap_or(u64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, n: u64) -> Instant {
        base + Duration::from_millis(n)
    }

    #[test]
    fn starts_full_and_refills_at_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000, 500, t0);
        assert_eq!(b.available(t0), 500);
        assert_eq!(b.take(800, t0), 500, "never more than the burst at once");
        assert_eq!(b.take(1, t0), 0);
        assert_eq!(b.available(ms(t0, 100)), 100);
        assert_eq!(b.available(ms(t0, 250)), 250);
        assert_eq!(b.available(ms(t0, 10_000)), 500, "credit is capped at the burst");
    }

    #[test]
    fn long_run_average_equals_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(3_000, 100, t0);
        let mut moved = b.take(u64::MAX, t0);
        // Greedy sender polling every 7 ms for 10 s: no drift from rounding.
        for i in 1..=10_000 / 7 {
            moved += b.take(u64::MAX, ms(t0, i * 7));
        }
        let elapsed_ms = (10_000 / 7) * 7;
        assert_eq!(moved, 100 + 3 * elapsed_ms);
    }

    #[test]
    fn debt_delays_and_ready_at_is_exact() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1_000, 1_000, t0);
        b.consume(1_500, t0); // a read moved more than the credit
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.ready_at(100, t0), ms(t0, 600), "500 of debt, then 100 more, at 1 byte/ms");
        assert_eq!(b.available(ms(t0, 599)), 99, "500 of the 599 refilled went to the debt");
        assert_eq!(b.available(ms(t0, 600)), 100);
        assert_eq!(b.ready_at(50, ms(t0, 600)), ms(t0, 600), "available now");
        assert_eq!(b.ready_at(5_000, ms(t0, 600)), ms(t0, 1_500), "capped at the burst");
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let t0 = Instant::now();
        let later = ms(t0, 1_000);
        let mut b = TokenBucket::new(1_000, 1_000, t0);
        assert_eq!(b.take(1_000, later), 1_000);
        assert_eq!(b.available(t0), 0);
        assert_eq!(b.available(ms(t0, 1_010)), 10);
    }

    #[test]
    fn meter_reports_windowed_and_peak_rates() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(1), t0);
        m.record(1_000, ms(t0, 100));
        m.record(1_000, ms(t0, 900));
        assert_eq!(m.rate(ms(t0, 999)), 0.0, "first window not complete yet");
        assert_eq!(m.rate(ms(t0, 1_000)), 2_000.0);
        m.record(500, ms(t0, 1_500));
        assert_eq!(m.rate(ms(t0, 2_100)), 500.0);
        assert_eq!(m.rate(ms(t0, 4_000)), 0.0, "idle windows bring it to zero");
        assert_eq!(m.peak(ms(t0, 4_000)), 2_000.0);
        assert_eq!(m.total(), 2_500);
    }
}

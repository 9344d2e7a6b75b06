//! Random schedules drawn from the run's generator: arrivals and churn times.

use pdtp_core::{Span, Time};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::scenario::Arrivals;

/// Arrival times for `n` viewers, in viewer order.
///
/// `Uniform` draws each independently in `[0, window)`; `Poisson` accumulates exponential
/// gaps of mean `1/rate`, so viewer `k` is the `k`-th arrival; `At` draws nothing (validation
/// made its length `n`).
pub(super) fn arrivals(rng: &mut ChaCha8Rng, how: &Arrivals, n: u64) -> Vec<Time> {
    match *how {
        Arrivals::AllAtOnce => vec![Time::ZERO; n as usize],
        Arrivals::Uniform { window } => {
            (0..n).map(|_| Time::from_nanos((unit(rng) * window.0.as_nanos() as f64) as u64)).collect()
        }
        Arrivals::Poisson { rate } => {
            let mean = Span::from_secs_f64(1.0 / rate);
            let mut t = Time::ZERO;
            (0..n)
                .map(|_| {
                    t += exponential(rng, mean);
                    t
                })
                .collect()
        }
        Arrivals::At(ref times) => times.iter().map(|d| Time::from_nanos(d.0.as_nanos())).collect(),
    }
}

/// A uniform draw in [0, 1) from the top 53 bits.
pub(super) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// An exponential draw with the given mean.
pub(super) fn exponential(rng: &mut ChaCha8Rng, mean: Span) -> Span {
    Span::from_secs_f64(-mean.as_secs_f64() * (1.0 - unit(rng)).ln())
}

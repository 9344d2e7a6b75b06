//! Random schedules drawn from the run's generator: arrivals and churn times.

use pdtp_core::{Span, Time};
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

use crate::scenario::Arrivals;

/// Arrival times for `n` viewers, in viewer order.
///
/// `Uniform` draws each independently in `[0, window)`; `Poisson` accumulates exponential
/// gaps of mean `1/rate` and hands the arrivals to the viewers in a random order (viewers are
/// listed class by class, so in viewer order a Poisson stream of a mix brought every viewer
/// of the first class before any of the second); `At` draws nothing (validation made its
/// length `n`).
pub(super) fn arrivals(rng: &mut ChaCha8Rng, how: &Arrivals, n: u64) -> Vec<Time> {
    match *how {
        Arrivals::AllAtOnce => vec![Time::ZERO; n as usize],
        Arrivals::Uniform { window } => {
            (0..n).map(|_| Time::from_nanos((unit(rng) * window.0.as_nanos() as f64) as u64)).collect()
        }
        Arrivals::Poisson { rate } => {
            let mean = Span::from_secs_f64(1.0 / rate);
            let mut t = Time::ZERO;
            let mut times: Vec<Time> = (0..n)
                .map(|_| {
                    t += exponential(rng, mean);
                    t
                })
                .collect();
            // Fisher–Yates from the run's generator: the same seed, the same order.
            for i in (1..times.len()).rev() {
                let j = (unit(rng) * (i + 1) as f64) as usize;
                times.swap(i, j.min(i));
            }
            times
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

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    use super::*;

    /// A Poisson stream of two classes of 100 viewers each (listed class by class) mixes
    /// them: the first 100 arrivals are not all of the first class, as they were when
    /// viewer `k` was the `k`-th arrival. The times themselves are still a Poisson stream's,
    /// and the same seed gives the same order.
    #[test]
    fn poisson_arrivals_mix_the_classes() {
        let how = Arrivals::Poisson { rate: 2.0 };
        let draw = || arrivals(&mut ChaCha8Rng::seed_from_u64(3), &how, 200);
        let at = draw();
        assert_eq!(at, draw());
        let mut order: Vec<usize> = (0..200).collect();
        order.sort_by_key(|&v| at[v]);
        let first_class_early = order[..100].iter().filter(|&&v| v < 100).count();
        assert!((35..=65).contains(&first_class_early), "{first_class_early} of the first 100 arrivals");
        let mut sorted = at.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 200, "200 distinct times");
        let mean_gap = sorted[199].as_secs_f64() / 200.0;
        assert!((0.4..0.6).contains(&mean_gap), "mean gap {mean_gap} s at 2 arrivals a second");
    }
}

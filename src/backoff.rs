//! Capped exponential backoff with jitter, for reconnect loops.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Backoff {
        Backoff {
            initial,
            max,
            attempt: 0,
        }
    }

    /// The delay before the next attempt: `initial · 2^attempt` capped at `max`, then
    /// scaled by a random factor in [0.5, 1.0) so that many sidecars restarted together
    /// do not reconnect in step.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.delay_with(fastrand::f64());
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// After a success the next failure starts from `initial` again.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }

    fn delay_with(&self, random: f64) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        let ceiling = self.initial.saturating_mul(factor).min(self.max);
        ceiling.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_until_the_cap_and_jitters_below_it() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let ceilings: Vec<u64> = (0..10)
            .map(|_| {
                let top = b.delay_with(1.0).as_millis() as u64;
                let bottom = b.delay_with(0.0).as_millis() as u64;
                assert_eq!(bottom * 2, top);
                b.next_delay();
                top
            })
            .collect();
        assert_eq!(
            ceilings,
            [
                500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000
            ]
        );
    }

    #[test]
    fn reset_starts_over_and_huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        b.attempt = u32::MAX;
        assert_eq!(b.delay_with(1.0), Duration::from_secs(60));
        b.next_delay();
        b.reset();
        assert_eq!(b.delay_with(1.0), Duration::from_secs(1));
    }
}

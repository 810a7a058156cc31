//! When to try reconnecting: capped exponential backoff with full jitter.
//!
//! The n-th retry waits a random time between zero and
//! `min(cap, base × 2ⁿ)`. The randomness spreads out browsers that lost
//! their connection at the same moment (a server restart), so they do not
//! all come back at once.

use std::time::Duration;

/// The retry schedule of one connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            attempt: 0,
        }
    }

    /// How many retries have been scheduled since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.attempt.min(31));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before the next retry, given `random` in `[0, 1)`, and
    /// counts the attempt.
    pub fn next_delay(&mut self, random: f64) -> Duration {
        let delay = self.ceiling().mul_f64(random.clamp(0.0, 1.0));
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Starts over, after a connection succeeded.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    /// From ½ second up to 30 seconds.
    fn default() -> Self {
        Self::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        let ceilings: Vec<Duration> = (0..7)
            .map(|_| {
                let ceiling = backoff.ceiling();
                backoff.next_delay(0.5);
                ceiling
            })
            .collect();
        assert_eq!(
            ceilings,
            [
                ms(100),
                ms(200),
                ms(400),
                ms(800),
                ms(1000),
                ms(1000),
                ms(1000)
            ]
        );
    }

    #[test]
    fn the_delay_is_the_ceiling_scaled_by_the_random_draw() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        assert_eq!(backoff.next_delay(0.0), ms(0));
        assert_eq!(backoff.next_delay(0.5), ms(100));
        assert_eq!(backoff.next_delay(0.999_999), ms(400).mul_f64(0.999_999));
        // Out-of-range draws are clamped.
        assert_eq!(backoff.next_delay(7.0), ms(800));
        assert_eq!(backoff.next_delay(-1.0), ms(0));
    }

    #[test]
    fn many_failures_never_overflow() {
        let mut backoff = Backoff::new(ms(500), Duration::from_secs(30));
        for _ in 0..10_000 {
            assert!(backoff.next_delay(1.0) <= Duration::from_secs(30));
        }
        assert_eq!(backoff.attempt(), 10_000);
    }

    #[test]
    fn a_reset_starts_from_the_base_again() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        for _ in 0..5 {
            backoff.next_delay(1.0);
        }
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert_eq!(backoff.next_delay(1.0), ms(100));
    }
}

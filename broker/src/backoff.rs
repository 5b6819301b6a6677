//! Capped exponential backoff with full jitter, for every reconnect loop.

use std::time::Duration;

/// Backoff policy and state. `next_delay` grows `initial * 2^attempt` up to
/// `max`, then draws uniformly from `[delay/2, delay]` so that a fleet of
/// clients does not reconnect in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// New policy.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            attempt: 0,
        }
    }

    /// Attempts made since the last [`Backoff::reset`], starting at 1 for the
    /// first retry. Logged as the `attempt` field.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Delay before the next attempt; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        let half = base / 2;
        let jitter = rand::random_range(0..=half.as_millis() as u64);
        half + Duration::from_millis(jitter)
    }

    /// Back to the first step after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(100), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut last_cap = Duration::ZERO;
        for i in 0..20 {
            let d = b.next_delay();
            let cap = Duration::from_millis(100)
                .saturating_mul(1 << i.min(16))
                .min(Duration::from_secs(2));
            assert!(d <= cap && d >= cap / 2, "attempt {i}: {d:?} vs {cap:?}");
            assert!(cap >= last_cap);
            last_cap = cap;
        }
        assert_eq!(b.attempt(), 20);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}

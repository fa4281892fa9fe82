//! Waits between attempts: exponential from a base up to a ceiling, with jitter so that
//! several pollers (or several dmarcpipe hosts) that failed together do not come back
//! together. Input: the count of failures in a row. Output: the next wait, between half and
//! all of `base * 2^failures` (capped at `ceiling`).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

#[derive(Debug, Clone)]
pub(super) struct Backoff {
    base: Duration,
    ceiling: Duration,
    failures: u32,
    /// xorshift64 state for the jitter.
    state: u64,
}

impl Backoff {
    pub fn new(base: Duration, ceiling: Duration) -> Self {
        // A different sequence in every process and poller; the jitter needs no better source.
        let seed = std::collections::hash_map::RandomState::new().build_hasher().finish() | 1;
        Backoff { base, ceiling, failures: 0, state: seed }
    }

    /// The wait before the next attempt, counting one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exponent = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let full = self.base.saturating_mul(1 << exponent).min(self.ceiling);
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let fraction = (self.state >> 11) as f64 / (1u64 << 53) as f64;
        full.mul_f64(0.5 + 0.5 * fraction)
    }

    /// Failures in a row so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_ceiling_with_jitter() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut previous_full = Duration::ZERO;
        for failure in 0..12u32 {
            let delay = backoff.next_delay();
            let full = Duration::from_secs(1u64 << failure.min(6)).min(Duration::from_secs(60));
            assert!(
                delay >= full / 2 && delay <= full,
                "failure {failure}: {delay:?} outside [{:?}, {full:?}]",
                full / 2
            );
            assert!(full >= previous_full);
            previous_full = full;
        }
        assert_eq!(backoff.failures(), 12);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_differs_between_pollers() {
        let delays: Vec<Duration> =
            (0..8).map(|_| Backoff::new(Duration::from_secs(60), Duration::from_secs(3600)).next_delay()).collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
    }
}

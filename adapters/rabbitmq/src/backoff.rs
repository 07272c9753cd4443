//! Reconnection pacing.

use rand::Rng;
use std::time::Duration;
use tokio::time::Instant;

/// Exponential back-off between connection attempts: after each failure the next attempt waits
/// a delay doubling from `initial` up to `max`, randomised in `[d/2, d]` so that many pods losing
/// the broker together do not reconnect in lock-step.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
    not_before: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            next: initial,
            not_before: None,
        }
    }

    /// How long the next attempt must still wait.
    pub(crate) fn remaining(&self) -> Duration {
        self.not_before.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        })
    }

    /// Records a failed attempt (or a lost connection) and returns the wait before the next one.
    pub(crate) fn failed(&mut self) -> Duration {
        let base = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        let half = base / 2;
        let spread = u64::try_from((base - half).as_micros()).unwrap_or(u64::MAX);
        let delay = half + Duration::from_micros(rand::rng().random_range(0..=spread));
        self.not_before = Some(Instant::now() + delay);
        delay
    }

    /// After a success: the next failure waits only `initial` again.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        assert_eq!(b.remaining(), Duration::ZERO);
        for base in [100u128, 200, 400, 500, 500] {
            let d = b.failed().as_millis();
            assert!(
                (base / 2..=base).contains(&d),
                "{d} ms outside [{}, {base}]",
                base / 2
            );
            assert!(b.remaining() <= Duration::from_millis(500));
        }
        b.reset();
        assert_eq!(b.remaining(), Duration::ZERO);
        assert!(b.failed() <= Duration::from_millis(100));
    }
}

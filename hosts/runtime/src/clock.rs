//! The production clock: the system's wall time, tokio's sleep.

use async_trait::async_trait;
use flash_core::Timestamp;
use flash_core::ports::Clock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The system clock every host runs on (tests use the memory adapter's `FakeClock`).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(ms).unwrap_or(i64::MAX))
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn now_is_the_wall_clock_and_sleep_lets_time_pass() {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let t = SystemClock.now();
        assert!(
            (i128::from(t.millis()) - wall as i128).abs() < 60_000,
            "{t}"
        );
        SystemClock.sleep(Duration::from_millis(5)).await;
        assert!(SystemClock.now() >= t.plus(Duration::from_millis(5)));
    }
}

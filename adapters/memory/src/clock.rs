//! Time, identifiers and randomness.

use async_trait::async_trait;
use flash_core::Timestamp;
use flash_core::ports::{Clock, Ids, Random};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// A clock that moves only when told to. Clones share one time, so a test keeps a clone and
/// advances the clock its handlers read.
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<AtomicI64>,
}

impl FakeClock {
    /// 2025-11-03T10:00:00.000Z, the default start.
    pub const START: Timestamp = Timestamp(1_762_164_000_000);

    pub fn new(start: Timestamp) -> Self {
        FakeClock {
            now: Arc::new(AtomicI64::new(start.0)),
        }
    }

    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(ms))
            })
            .ok();
    }

    pub fn set(&self, t: Timestamp) {
        self.now.store(t.0, Ordering::SeqCst);
    }
}

impl Default for FakeClock {
    fn default() -> Self {
        FakeClock::new(FakeClock::START)
    }
}

#[async_trait]
impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }

    /// Advances the fake time and returns at once; the yield keeps a background loop that
    /// sleeps on this clock from starving the other tasks of a test.
    async fn sleep(&self, d: Duration) {
        self.advance(d);
        tokio::task::yield_now().await;
    }
}

/// Random (v4) UUIDs.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryIds;

impl MemoryIds {
    pub fn new() -> Self {
        MemoryIds
    }
}

impl Ids for MemoryIds {
    fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::new_v4()
    }
}

/// A reproducible random source for tests.
#[derive(Debug)]
pub struct SeededRandom {
    rng: Mutex<StdRng>,
}

impl SeededRandom {
    pub fn new(seed: u64) -> Self {
        SeededRandom {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }
}

impl Random for SeededRandom {
    fn unit(&self) -> f64 {
        // A panic elsewhere cannot leave a PRNG in a state that matters: keep using it.
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random::<f64>()
    }

    fn between(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(lo..=hi)
    }
}

/// The thread-local OS-seeded generator.
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadRandom;

impl ThreadRandom {
    pub fn new() -> Self {
        ThreadRandom
    }
}

impl Random for ThreadRandom {
    fn unit(&self) -> f64 {
        rand::rng().random::<f64>()
    }

    fn between(&self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        rand::rng().random_range(lo..=hi)
    }
}

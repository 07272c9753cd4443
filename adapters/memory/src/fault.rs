//! The fault switch that lets handler tests exercise "dependency down" paths.

use async_trait::async_trait;
use flash_core::StoreError;
use flash_core::ports::{HealthCheck, StoreResult};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// A shared switch: while it is down (or for the next `n` calls after [`Faults::fail_next`]),
/// every store holding a clone answers [`StoreError::Unavailable`] without touching its state.
/// Clones share the switch, so one handle can take several stores down at once.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    down: Arc<AtomicBool>,
    next: Arc<AtomicU32>,
}

impl Faults {
    /// A switch that is up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the stores down (`true`) or brings them back (`false`).
    pub fn set(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Makes the next `n` store calls fail, then recovers on its own (a transient outage).
    pub fn fail_next(&self, n: u32) {
        self.next.store(n, Ordering::SeqCst);
    }

    pub fn is_unavailable(&self) -> bool {
        self.down.load(Ordering::SeqCst)
    }

    /// Called first by every store method.
    pub(crate) fn check(&self, what: &str) -> Result<(), StoreError> {
        let transient = self
            .next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if transient || self.is_unavailable() {
            Err(StoreError::Unavailable(format!("{what} is unavailable")))
        } else {
            Ok(())
        }
    }
}

/// The switch doubles as the health check of the stores it controls, so `/ready` tests see the
/// same outage as the handlers.
#[async_trait]
impl HealthCheck for Faults {
    fn name(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> StoreResult<()> {
        if self.is_unavailable() {
            return Err(StoreError::Unavailable(
                "memory backend switched off".into(),
            ));
        }
        Ok(())
    }
}

/// `with_faults(self, faults)`, the builder step of every adapter that holds a `faults: Faults`
/// switch: its calls then fail while the switch says so.
macro_rules! with_faults {
    ($($adapter:ty),+ $(,)?) => {
        $(impl $adapter {
            pub fn with_faults(mut self, faults: $crate::Faults) -> Self {
                self.faults = faults;
                self
            }
        })+
    };
}
pub(crate) use with_faults;

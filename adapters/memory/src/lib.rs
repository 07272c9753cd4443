//! `flash-adapter-memory`: in-memory implementations of every Flash Tickets port.
//!
//! Used by handler tests (with [`FakeClock`] and the [`Faults`] switch) and by the embedded
//! single-process default. Each store keeps its state behind one `std::sync::Mutex` and finishes
//! its work before returning, so a lock is never held across an `.await`; that one critical
//! section is what makes every "atomic" clause of the port contracts hold. [`MemoryShop`] is a
//! single struct for events, orders, payments and the outbox because a reservation, a payment
//! result and an outbox write must change them together.
//!
//! Depends on `flash-core`, std and tokio only; it must never depend on handlers, hosts or other
//! adapters.

mod auth;
mod bus;
mod clock;
mod fault;
mod fenwick;
mod ledger;
mod notifier;
mod queue;
mod shop;
mod timeline;

pub use auth::{
    DEFAULT_RATE_LIMIT_MAX_KEYS, MemoryRateLimiter, MemorySessionStore, MemoryUserStore,
};
pub use bus::{BusCounters, DEFAULT_MAX_ATTEMPTS, MemoryBus, MemoryConsumer, dlq_name};
pub use clock::{FakeClock, MemoryIds, SeededRandom, ThreadRandom};
pub use fault::Faults;
pub use ledger::{MemoryHealth, MemoryPaymentLedger};
pub use notifier::MemoryQueueNotifier;
pub use queue::{DEFAULT_TICKET_RETENTION, MemoryQueueStore, RECENT_ADMISSIONS_WINDOW};
pub use shop::{DEFAULT_IDEMPOTENCY_MAX_RECORDS, MemoryShop};
pub use timeline::MemoryTimeline;

use flash_core::StoreError;
use std::sync::{Mutex, MutexGuard};

/// Locks a store's state. A poisoned lock means an earlier panic may have left the state half
/// updated, so the store reports `Internal` instead of serving possibly inconsistent data.
pub(crate) fn lock<'a, T>(m: &'a Mutex<T>, what: &str) -> Result<MutexGuard<'a, T>, StoreError> {
    m.lock()
        .map_err(|_| StoreError::Internal(format!("{what} state poisoned by an earlier panic")))
}

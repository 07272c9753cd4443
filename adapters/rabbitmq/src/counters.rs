//! Monotonic counters for `/metrics`, cheap to read (relaxed atomics, no broker round trip).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the counters of one [`crate::AmqpBus`] and the consumers made from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AmqpCounters {
    /// Messages handed to the broker by `Bus::publish` (a publish retried after a connection loss
    /// counts each time it is sent).
    pub published: u64,
    /// Publishes the broker confirmed (`Bus::publish` returned `Ok`).
    pub confirmed: u64,
    /// `Bus::publish` calls that returned an error.
    pub publish_failed: u64,
    /// Deliveries handed to the application, redeliveries included.
    pub consumed: u64,
    /// Deliveries settled with `Ack`.
    pub acked: u64,
    /// Deliveries sent to a retry queue for another attempt.
    pub retried: u64,
    /// Messages moved to a dead-letter queue (by the handler or for lack of attempts).
    pub dead_lettered: u64,
    /// Connections opened, the first ones included: growth without restarts means reconnections.
    pub connections: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) confirmed: AtomicU64,
    pub(crate) publish_failed: AtomicU64,
    pub(crate) consumed: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) connections: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AmqpCounters {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AmqpCounters {
            published: read(&self.published),
            confirmed: read(&self.confirmed),
            publish_failed: read(&self.publish_failed),
            consumed: read(&self.consumed),
            acked: read(&self.acked),
            retried: read(&self.retried),
            dead_lettered: read(&self.dead_lettered),
            connections: read(&self.connections),
        }
    }
}

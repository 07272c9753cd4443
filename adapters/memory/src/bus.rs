//! An in-process message bus with retries and dead-letter queues.

use crate::{Faults, lock};
use async_trait::async_trait;
use flash_core::StoreError;
use flash_core::messages::Envelope;
use flash_core::ports::{Acker, Bus, BusConsumer, Delivery, Disposition, StoreResult};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Deliveries of one message before it is dead-lettered (`BUS_MAX_ATTEMPTS`).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// The dead-letter queue of `queue`.
pub fn dlq_name(queue: &str) -> String {
    format!("{queue}.dlq")
}

#[derive(Debug)]
struct Pending {
    envelope: Envelope,
    /// Deliveries so far.
    deliveries: u32,
}

#[derive(Debug, Default)]
struct Line {
    ready: VecDeque<Pending>,
    /// Retries waiting for their back-off, by (due, arrival) so equal instants keep order.
    delayed: BTreeMap<(Instant, u64), Pending>,
    in_flight: usize,
}

impl Line {
    fn release_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            self.ready.push_back(entry.remove());
        }
    }
}

#[derive(Debug, Default)]
struct BusState {
    queues: HashMap<String, Line>,
    closed: bool,
    delay_seq: u64,
}

/// Monotonic counters for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BusCounters {
    pub published: u64,
    /// Deliveries handed to consumers, redeliveries included.
    pub delivered: u64,
    /// Deliveries settled with `Ack` (consumed).
    pub acked: u64,
    /// Deliveries put back for another attempt.
    pub retried: u64,
    /// Messages moved to a dead-letter queue.
    pub dead_lettered: u64,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    delivered: AtomicU64,
    acked: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<BusState>,
    /// Wakes every waiting consumer on any change; each re-checks its own queue.
    changed: Notify,
    max_attempts: u32,
    faults: Faults,
    counters: Counters,
}

impl Inner {
    fn state(&self) -> StoreResult<std::sync::MutexGuard<'_, BusState>> {
        lock(&self.state, "bus")
    }

    /// Counts one more of `counter` and wakes the waiting consumers.
    fn counted_change(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// The state even if a holder panicked: for what must not fail (requeueing from `Drop`,
    /// the inspection helpers, shutdown).
    fn state_anyway(&self) -> std::sync::MutexGuard<'_, BusState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a delivered message back (retry) or dead-letters it once it used its attempts.
    /// Infallible on purpose: it also runs from `Drop`, where a message must not be lost.
    fn requeue(&self, queue: &str, pending: Pending, after: std::time::Duration) {
        let mut s = self.state_anyway();
        if let Some(line) = s.queues.get_mut(queue) {
            line.in_flight = line.in_flight.saturating_sub(1);
        }
        if pending.deliveries >= self.max_attempts {
            Self::dead_letter_locked(&mut s, queue, pending);
            self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        } else {
            s.delay_seq += 1;
            let key = (Instant::now() + after, s.delay_seq);
            s.queues
                .entry(queue.to_owned())
                .or_default()
                .delayed
                .insert(key, pending);
            self.counters.retried.fetch_add(1, Ordering::Relaxed);
        }
        drop(s);
        self.changed.notify_waiters();
    }

    fn dead_letter_locked(s: &mut BusState, queue: &str, pending: Pending) {
        s.queues
            .entry(dlq_name(queue))
            .or_default()
            .ready
            .push_back(Pending {
                envelope: pending.envelope,
                deliveries: 0,
            });
    }
}

/// Named in-process queues implementing [`Bus`]; [`MemoryBus::consumer`] gives the consuming
/// side. A message is redelivered after `Retry { after }` until it has been delivered
/// `max_attempts` times, then moved to `<queue>.dlq`; `DeadLetter` moves it at once. A delivery
/// dropped without being settled is redelivered, like a broker does when a channel closes.
/// Several consumers of one queue share its messages (work-queue semantics). Clones share the
/// queues.
#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ATTEMPTS)
    }
}

impl MemoryBus {
    /// `max_attempts` deliveries per message (at least 1) before dead-lettering.
    pub fn new(max_attempts: u32) -> Self {
        Self::with_faults(max_attempts, Faults::default())
    }

    pub fn with_faults(max_attempts: u32, faults: Faults) -> Self {
        MemoryBus {
            inner: Arc::new(Inner {
                state: Mutex::new(BusState::default()),
                changed: Notify::new(),
                max_attempts: max_attempts.max(1),
                faults,
                counters: Counters::default(),
            }),
        }
    }

    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// A consumer of `queue` (its dead-letter queue is `dlq_name(queue)`, consumable the same way).
    pub fn consumer(&self, queue: &str) -> MemoryConsumer {
        MemoryConsumer {
            inner: Arc::clone(&self.inner),
            queue: queue.to_owned(),
        }
    }

    /// Messages waiting in `queue` (ready or backing off), not counting deliveries in flight.
    pub fn len(&self, queue: &str) -> usize {
        let s = self.inner.state_anyway();
        s.queues
            .get(queue)
            .map_or(0, |l| l.ready.len() + l.delayed.len())
    }

    /// Whether `queue` has no waiting message.
    pub fn is_empty(&self, queue: &str) -> bool {
        self.len(queue) == 0
    }

    /// Deliveries of `queue` handed out and not settled yet.
    pub fn in_flight(&self, queue: &str) -> usize {
        let s = self.inner.state_anyway();
        s.queues.get(queue).map_or(0, |l| l.in_flight)
    }

    /// Messages in the dead-letter queue of `queue`.
    pub fn dlq_len(&self, queue: &str) -> usize {
        self.len(&dlq_name(queue))
    }

    /// Copies of the messages in the dead-letter queue of `queue`, oldest first.
    pub fn dead_letters(&self, queue: &str) -> Vec<Envelope> {
        let s = self.inner.state_anyway();
        s.queues
            .get(&dlq_name(queue))
            .map(|l| l.ready.iter().map(|p| p.envelope.clone()).collect())
            .unwrap_or_default()
    }

    pub fn counters(&self) -> BusCounters {
        let c = &self.inner.counters;
        BusCounters {
            published: c.published.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            acked: c.acked.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        }
    }

    /// Stops the bus: waiting and future `next()` calls return `None`, `publish` fails.
    pub fn shutdown(&self) {
        self.inner.state_anyway().closed = true;
        self.inner.changed.notify_waiters();
    }
}

#[async_trait]
impl Bus for MemoryBus {
    async fn publish(&self, queue: &str, envelope: Envelope) -> StoreResult<()> {
        self.inner.faults.check("bus")?;
        {
            let mut s = self.inner.state()?;
            if s.closed {
                return Err(StoreError::Unavailable("bus is shut down".into()));
            }
            s.queues
                .entry(queue.to_owned())
                .or_default()
                .ready
                .push_back(Pending {
                    envelope,
                    deliveries: 0,
                });
        }
        self.inner.counted_change(&self.inner.counters.published);
        Ok(())
    }
}

/// The consuming side of one queue of a [`MemoryBus`].
#[derive(Debug, Clone)]
pub struct MemoryConsumer {
    inner: Arc<Inner>,
    queue: String,
}

impl MemoryConsumer {
    pub fn queue(&self) -> &str {
        &self.queue
    }
}

#[async_trait]
impl BusConsumer for MemoryConsumer {
    async fn next(&self) -> StoreResult<Option<Delivery>> {
        loop {
            self.inner.faults.check("bus")?;
            // Registered before the queue is checked, so a publish in between still wakes us.
            let mut changed = pin!(self.inner.changed.notified());
            changed.as_mut().enable();
            let wake_at = {
                let mut s = self.inner.state()?;
                if s.closed {
                    return Ok(None);
                }
                let line = s.queues.entry(self.queue.clone()).or_default();
                line.release_due(Instant::now());
                if let Some(mut pending) = line.ready.pop_front() {
                    pending.deliveries += 1;
                    line.in_flight += 1;
                    self.inner
                        .counters
                        .delivered
                        .fetch_add(1, Ordering::Relaxed);
                    return Ok(Some(Delivery {
                        envelope: pending.envelope.clone(),
                        attempt: pending.deliveries,
                        acker: Box::new(MemoryAcker {
                            inner: Arc::clone(&self.inner),
                            queue: self.queue.clone(),
                            pending: Mutex::new(Some(pending)),
                        }),
                    }));
                }
                line.delayed.keys().next().map(|(due, _)| *due)
            };
            match wake_at {
                Some(due) => {
                    // Either a change or the first back-off ending: look again.
                    let _ = tokio::time::timeout_at(due, changed).await;
                }
                None => changed.await,
            }
        }
    }
}

struct MemoryAcker {
    inner: Arc<Inner>,
    queue: String,
    pending: Mutex<Option<Pending>>,
}

impl MemoryAcker {
    fn take(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait]
impl Acker for MemoryAcker {
    async fn settle(&self, disposition: Disposition) -> StoreResult<()> {
        // While the bus is down the delivery stays unsettled; dropping it redelivers it.
        self.inner.faults.check("bus")?;
        let Some(pending) = self.take() else {
            return Err(StoreError::Internal("delivery settled twice".into()));
        };
        match disposition {
            Disposition::Ack => {
                let mut s = self.inner.state()?;
                if let Some(line) = s.queues.get_mut(&self.queue) {
                    line.in_flight = line.in_flight.saturating_sub(1);
                }
                self.inner.counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Disposition::Retry { after } => self.inner.requeue(&self.queue, pending, after),
            Disposition::DeadLetter { reason: _ } => {
                {
                    let mut s = self.inner.state()?;
                    if let Some(line) = s.queues.get_mut(&self.queue) {
                        line.in_flight = line.in_flight.saturating_sub(1);
                    }
                    Inner::dead_letter_locked(&mut s, &self.queue, pending);
                }
                self.inner
                    .counted_change(&self.inner.counters.dead_lettered);
            }
        }
        Ok(())
    }
}

impl Drop for MemoryAcker {
    fn drop(&mut self) {
        if let Some(pending) = self.take() {
            self.inner
                .requeue(&self.queue, pending, std::time::Duration::ZERO);
        }
    }
}

//! Read-only figures for `/metrics` and monitoring: queue sizes per active queue and order /
//! payment counts. Every read is O(active queues) or O(1).

use crate::Ports;
use crate::queue::wait_estimate;
use crate::settings::QueueSettings;
use flash_core::domain::{LinePhase, QueueScope, QueueStats, ShopCounts};
use flash_core::ports::{Clock, PaymentStore, QueueStore};
use flash_core::{EventId, StoreError};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFigures {
    pub scope: QueueScope,
    pub queued: u64,
    /// READY + USED.
    pub admitted: u64,
    pub used: u64,
    /// Seconds the last in line waits at the measured admission rate (0 with nobody waiting).
    pub estimated_wait_seconds: u64,
    pub phase: LinePhase,
}

pub struct Overview {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    payments: Arc<dyn PaymentStore>,
    capacity: u64,
    gate_ttl: Duration,
}

impl Overview {
    pub fn new(p: &Ports, s: &QueueSettings) -> Self {
        Overview {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            payments: p.payments.clone(),
            capacity: s.capacity,
            gate_ttl: s.gate_ttl,
        }
    }

    /// Every active queue, plus the site-wide one even when it is empty.
    pub async fn queues(&self) -> Result<Vec<QueueFigures>, StoreError> {
        let now = self.clock.now();
        let mut scopes = self.queue.active_scopes().await?;
        if !scopes.contains(&QueueScope::Global) {
            scopes.push(QueueScope::Global);
        }
        scopes.sort();
        let mut out = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let s = self.queue.stats(scope, now).await?;
            out.push(QueueFigures {
                scope,
                queued: s.queued,
                admitted: s.admitted,
                used: s.used,
                estimated_wait_seconds: self.wait(&s),
                phase: s.phase,
            });
        }
        Ok(out)
    }

    /// Seconds the last of `s.queued` waits at the line's measured admission rate.
    pub fn wait(&self, s: &QueueStats) -> u64 {
        wait_estimate(s.queued, s, self.capacity, self.gate_ttl)
    }

    pub async fn shop(&self) -> Result<ShopCounts, StoreError> {
        self.payments.counts().await
    }

    /// The same counters for one event's orders and their payments.
    pub async fn event_shop(&self, event: EventId) -> Result<ShopCounts, StoreError> {
        self.payments.event_counts(event).await
    }
}

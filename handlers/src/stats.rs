//! Read-only figures for `/metrics` and monitoring: queue sizes per active queue and order /
//! payment counts. Every read is O(active queues) or O(1).

use crate::Ports;
use flash_core::StoreError;
use flash_core::domain::{QueueScope, ShopCounts};
use flash_core::ports::{Clock, PaymentStore, QueueStore};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFigures {
    pub scope: QueueScope,
    pub queued: u64,
    /// READY + USED.
    pub admitted: u64,
    pub used: u64,
}

pub struct Overview {
    clock: Arc<dyn Clock>,
    queue: Arc<dyn QueueStore>,
    payments: Arc<dyn PaymentStore>,
}

impl Overview {
    pub fn new(p: &Ports) -> Self {
        Overview {
            clock: p.clock.clone(),
            queue: p.queue.clone(),
            payments: p.payments.clone(),
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
            });
        }
        Ok(out)
    }

    pub async fn shop(&self) -> Result<ShopCounts, StoreError> {
        self.payments.counts().await
    }
}

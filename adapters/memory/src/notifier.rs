//! In-process fan-out of queue notices.

use async_trait::async_trait;
use flash_core::domain::Notice;
use flash_core::ports::{QueueNotifier, QueueSubscription, StoreResult};
use tokio::sync::broadcast;

/// Notices buffered per subscriber before a slow one starts missing some.
const CAPACITY: usize = 4096;

/// A tokio broadcast channel: every subscriber of this process gets every notice.
#[derive(Debug, Clone)]
pub struct MemoryQueueNotifier {
    tx: broadcast::Sender<Notice>,
}

impl MemoryQueueNotifier {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(CAPACITY);
        MemoryQueueNotifier { tx }
    }

    /// Current subscribers.
    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for MemoryQueueNotifier {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl QueueNotifier for MemoryQueueNotifier {
    async fn announce(&self, notice: Notice) -> StoreResult<()> {
        // No subscriber is not an error: delivery is best effort.
        let _ = self.tx.send(notice);
        Ok(())
    }

    async fn subscribe(&self) -> StoreResult<Box<dyn QueueSubscription>> {
        Ok(Box::new(Subscription {
            rx: self.tx.subscribe(),
        }))
    }
}

struct Subscription {
    rx: broadcast::Receiver<Notice>,
}

#[async_trait]
impl QueueSubscription for Subscription {
    async fn next(&mut self) -> Option<Notice> {
        loop {
            match self.rx.recv().await {
                Ok(n) => return Some(n),
                // A lagging subscriber skips what it missed; positions are refreshed by polling
                // anyway, so best effort is the contract.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

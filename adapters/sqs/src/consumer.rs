//! A long-running consumer of one queue: long-poll receives of up to ten messages, handed out
//! one at a time; each delivery is deleted, delayed or dead-lettered when settled.

use crate::bus::{Received, Settled, SqsBus};
use async_trait::async_trait;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use flash_core::ports::{Acker, BusConsumer, Delivery, Disposition, StoreResult};
use std::collections::VecDeque;
use tokio::sync::Mutex;

/// Consumer of `queue` on SQS (for hosts that poll rather than being invoked by Lambda).
pub struct SqsConsumer {
    bus: SqsBus,
    queue: String,
    /// Received but not yet handed out. A tokio mutex: it is held across the receive, so
    /// concurrent `next` calls share one long poll instead of racing several.
    buffer: Mutex<VecDeque<Received>>,
}

impl SqsBus {
    /// A consumer of `queue`.
    pub fn consumer(&self, queue: impl Into<String>) -> SqsConsumer {
        SqsConsumer {
            bus: self.clone(),
            queue: queue.into(),
            buffer: Mutex::new(VecDeque::new()),
        }
    }
}

fn received(queue: &str, m: Message) -> Option<Received> {
    let attributes = m.message_attributes.unwrap_or_default();
    Some(Received::from_parts(
        queue,
        m.message_id.as_deref().unwrap_or_default(),
        m.receipt_handle?,
        m.body.as_deref().unwrap_or_default(),
        |name| attributes.get(name).and_then(|v| v.string_value.clone()),
        m.attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .map(String::as_str),
    ))
}

#[async_trait]
impl BusConsumer for SqsConsumer {
    async fn next(&self) -> StoreResult<Option<Delivery>> {
        let mut buffer = self.buffer.lock().await;
        loop {
            if let Some(r) = buffer.pop_front() {
                return Ok(Some(Delivery {
                    envelope: r.envelope.clone(),
                    attempt: r.attempt,
                    acker: Box::new(SqsAcker {
                        bus: self.bus.clone(),
                        received: r,
                    }),
                }));
            }
            let url = self.bus.queue_url(&self.queue).await?;
            let wait = i32::try_from(self.bus.config().wait.as_secs()).unwrap_or(20);
            let out = self
                .bus
                .client()
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(wait)
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| {
                    flash_core::StoreError::Unavailable(format!(
                        "sqs receive from '{}': {}",
                        self.queue,
                        aws_sdk_sqs::error::DisplayErrorContext(&e)
                    ))
                })?;
            buffer.extend(
                out.messages
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|m| received(&self.queue, m)),
            );
        }
    }
}

struct SqsAcker {
    bus: SqsBus,
    received: Received,
}

#[async_trait]
impl Acker for SqsAcker {
    async fn settle(&self, disposition: Disposition) -> StoreResult<()> {
        match self.bus.settle(&self.received, disposition).await? {
            Settled::Done => self.bus.delete(&self.received).await,
            Settled::Redeliver => Ok(()),
        }
    }
}

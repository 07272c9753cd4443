//! Bus message handlers: decode the legacy JSON, call one business handler, and map the outcome
//! to a disposition — the one place where error kinds become ack / retry / dead-letter.

use crate::worker::MessageHandler;
use async_trait::async_trait;
use flash_core::domain::ResultApplied;
use flash_core::messages::{Envelope, PaymentRequestMessage, PaymentResultMessage};
use flash_core::ports::Disposition;
use flash_core::{Classify, Context, ErrorKind};
use flash_handlers::Work;
use flash_handlers::pay::ProcessPayment;
use flash_handlers::payments::ApplyPaymentResult;
use flash_metrics::Metrics;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Business outcomes are acknowledged; transient failures retried with back-off (the bus
/// dead-letters after its attempt limit); what can never succeed goes straight to the DLQ.
pub fn disposition(kind: ErrorKind, reason: String, attempt: u32) -> Disposition {
    match kind {
        ErrorKind::Unavailable | ErrorKind::Internal => Disposition::Retry {
            after: retry_delay(attempt),
        },
        ErrorKind::Invalid
        | ErrorKind::NotFound
        | ErrorKind::Unauthorized
        | ErrorKind::Forbidden => Disposition::DeadLetter { reason },
        ErrorKind::Conflict | ErrorKind::SoldOut | ErrorKind::RateLimited => Disposition::Ack,
    }
}

/// 200 ms doubling per attempt, capped at 30 s.
pub fn retry_delay(attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(8);
    Duration::from_millis((200u64 << exp).min(30_000))
}

fn record(metrics: &Metrics, queue: &str, d: &Disposition) {
    let outcome = match d {
        Disposition::Ack => "ack",
        Disposition::Retry { .. } => "retry",
        Disposition::DeadLetter { .. } => "dead_letter",
    };
    metrics
        .bus_consumed_total
        .with_label_values(&[queue, outcome])
        .inc();
    if let Disposition::DeadLetter { reason } = d {
        tracing::warn!(queue, %reason, "message dead-lettered");
        metrics
            .bus_dead_lettered_total
            .with_label_values(&[queue])
            .inc();
    }
}

fn context(envelope: &Envelope, attempt: u32) -> Context {
    let mut cx = Context::new(envelope.correlation_id.clone());
    cx.attempt = attempt;
    cx
}

/// A business handler fed by a bus queue: the legacy JSON message it decodes and what it does
/// with one. [`Consumer`] does the rest (decoding, the disposition, metrics) the same for all.
#[async_trait]
pub trait Consumes: Send + Sync + 'static {
    /// The message on the queue.
    type Message: DeserializeOwned + Send + Sync;
    /// What the message is, in dead-letter reasons and logs (`payment result`).
    const MESSAGE: &'static str;

    /// The payment the message is about, for logs.
    fn payment_id(message: &Self::Message) -> &str;

    /// Handles one message; an error's kind decides between retry and dead letter.
    async fn consume(
        &self,
        cx: &Context,
        message: &Self::Message,
        metrics: &Metrics,
    ) -> Result<(), (ErrorKind, String)>;
}

/// Applies `payments_result` messages to orders and payments.
#[async_trait]
impl Consumes for ApplyPaymentResult {
    type Message = PaymentResultMessage;
    const MESSAGE: &'static str = "payment result";

    fn payment_id(message: &PaymentResultMessage) -> &str {
        &message.payment_id
    }

    async fn consume(
        &self,
        cx: &Context,
        message: &PaymentResultMessage,
        metrics: &Metrics,
    ) -> Result<(), (ErrorKind, String)> {
        match self.handle(cx, message).await {
            Ok(ResultApplied::RefundRequired(_)) => {
                metrics.orders_refund_required_total.inc();
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err((e.kind(), e.to_string())),
        }
    }
}

/// The mock payment processor on `payments_request`.
#[async_trait]
impl Consumes for ProcessPayment {
    type Message = PaymentRequestMessage;
    const MESSAGE: &'static str = "payment request";

    fn payment_id(message: &PaymentRequestMessage) -> &str {
        &message.payment_id
    }

    async fn consume(
        &self,
        cx: &Context,
        message: &PaymentRequestMessage,
        _metrics: &Metrics,
    ) -> Result<(), (ErrorKind, String)> {
        self.handle(cx, message)
            .await
            .map(drop)
            .map_err(|e| (e.kind(), e.to_string()))
    }
}

/// One queue's consumer: decodes each message for its handler and maps the outcome to a
/// disposition, counted per queue.
pub struct Consumer<H> {
    pub handler: Arc<H>,
    pub metrics: Metrics,
    pub queue: String,
}

impl Consumer<ApplyPaymentResult> {
    /// The payment-results consumer on `payments_result` (the settings' result queue).
    pub fn payment_results(work: &Work, metrics: Metrics) -> Self {
        Consumer {
            handler: work.apply_result.clone(),
            metrics,
            queue: work.settings.payments.result_queue.clone(),
        }
    }
}

impl Consumer<ProcessPayment> {
    /// The mock processor on `payments_request` (the settings' request queue).
    pub fn payment_requests(work: &Work, metrics: Metrics) -> Self {
        Consumer {
            handler: work.process_payment.clone(),
            metrics,
            queue: work.settings.payments.request_queue.clone(),
        }
    }
}

#[async_trait]
impl<H: Consumes> MessageHandler for Consumer<H> {
    async fn handle(&self, envelope: &Envelope, attempt: u32) -> Disposition {
        let d = match serde_json::from_slice::<H::Message>(&envelope.body) {
            Err(e) => Disposition::DeadLetter {
                reason: format!("malformed {}: {e}", H::MESSAGE),
            },
            Ok(message) => {
                let cx = context(envelope, attempt);
                match self.handler.consume(&cx, &message, &self.metrics).await {
                    Ok(()) => Disposition::Ack,
                    Err((kind, error)) => {
                        tracing::warn!(%error, payment = H::payment_id(&message), attempt, "{} not handled", H::MESSAGE);
                        disposition(kind, error, attempt)
                    }
                }
            }
        };
        record(&self.metrics, &self.queue, &d);
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_the_three_way_outcome() {
        assert!(matches!(
            disposition(ErrorKind::Unavailable, "x".into(), 1),
            Disposition::Retry { .. }
        ));
        assert!(matches!(
            disposition(ErrorKind::Invalid, "x".into(), 1),
            Disposition::DeadLetter { .. }
        ));
        assert_eq!(
            disposition(ErrorKind::SoldOut, "x".into(), 1),
            Disposition::Ack
        );
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_millis(200));
        assert_eq!(retry_delay(2), Duration::from_millis(400));
        assert_eq!(retry_delay(50), Duration::from_millis(30_000));
    }
}

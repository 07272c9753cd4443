//! Bus message handlers: decode the legacy JSON, call one business handler, and map the outcome
//! to a disposition — the one place where error kinds become ack / retry / dead-letter.

use crate::worker::MessageHandler;
use async_trait::async_trait;
use flash_core::domain::ResultApplied;
use flash_core::messages::{Envelope, PaymentRequestMessage, PaymentResultMessage};
use flash_core::ports::Disposition;
use flash_core::{Classify, Context, ErrorKind};
use flash_handlers::Handlers;
use flash_metrics::Metrics;
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

/// Applies `payments_result` messages to orders and payments.
pub struct PaymentResults {
    pub handlers: Arc<Handlers>,
    pub metrics: Metrics,
    pub queue: String,
}

#[async_trait]
impl MessageHandler for PaymentResults {
    async fn handle(&self, envelope: &Envelope, attempt: u32) -> Disposition {
        let d = match serde_json::from_slice::<PaymentResultMessage>(&envelope.body) {
            Err(e) => Disposition::DeadLetter {
                reason: format!("malformed payment result: {e}"),
            },
            Ok(msg) => {
                let cx = context(envelope, attempt);
                match self.handlers.apply_result.handle(&cx, &msg).await {
                    Ok(applied) => {
                        if let ResultApplied::RefundRequired(_) = applied {
                            self.metrics.orders_refund_required_total.inc();
                        }
                        Disposition::Ack
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, payment = %msg.payment_id, attempt, "payment result not applied");
                        disposition(e.kind(), e.to_string(), attempt)
                    }
                }
            }
        };
        record(&self.metrics, &self.queue, &d);
        d
    }
}

/// The mock payment processor on `payments_request`.
pub struct PaymentRequests {
    pub handlers: Arc<Handlers>,
    pub metrics: Metrics,
    pub queue: String,
}

#[async_trait]
impl MessageHandler for PaymentRequests {
    async fn handle(&self, envelope: &Envelope, attempt: u32) -> Disposition {
        let d = match serde_json::from_slice::<PaymentRequestMessage>(&envelope.body) {
            Err(e) => Disposition::DeadLetter {
                reason: format!("malformed payment request: {e}"),
            },
            Ok(msg) => {
                let cx = context(envelope, attempt);
                match self.handlers.process_payment.handle(&cx, &msg).await {
                    Ok(_) => Disposition::Ack,
                    Err(e) => {
                        tracing::warn!(error = %e, payment = %msg.payment_id, attempt, "payment request not processed");
                        disposition(e.kind(), e.to_string(), attempt)
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

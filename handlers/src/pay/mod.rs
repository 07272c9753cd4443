//! The mock payment processor: a configurable success rate and latency, idempotent per payment.

use crate::settings::PaySettings;
use crate::{Ports, classify};
use flash_core::domain::Verdict;
use flash_core::messages::{Envelope, PaymentRequestMessage, PaymentResultMessage};
use flash_core::ports::{Bus, Clock, Ids, PaymentLedger, Random};
use flash_core::{Context, PaymentId, StoreError};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("Malformed payment request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Store(StoreError),
}

classify!(ProcessError {
    Malformed(_) => Invalid, "malformed_message";
} store: Store);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Processed {
    pub verdict: Verdict,
    /// False when this delivery was a redelivery whose result had already gone out.
    pub published: bool,
}

const FAIL_MESSAGES: [&str; 4] = [
    "카드 한도 초과",
    "잔액 부족",
    "네트워크 오류",
    "추가 인증 필요",
];

pub struct ProcessPayment {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    random: Arc<dyn Random>,
    ledger: Arc<dyn PaymentLedger>,
    bus: Arc<dyn Bus>,
    settings: PaySettings,
    result_queue: String,
}

impl ProcessPayment {
    /// Publishes its verdicts on `result_queue`.
    pub fn new(p: &Ports, s: &PaySettings, result_queue: &str) -> Self {
        ProcessPayment {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            random: p.random.clone(),
            ledger: p.ledger.clone(),
            bus: p.bus.clone(),
            settings: s.clone(),
            result_queue: result_queue.to_owned(),
        }
    }

    /// Decides (once per payment), waits the simulated processing time, and publishes the
    /// result. A redelivered request yields the same verdict and no second result once the
    /// first was published.
    pub async fn handle(
        &self,
        _cx: &Context,
        req: &PaymentRequestMessage,
    ) -> Result<Processed, ProcessError> {
        let payment: PaymentId = req
            .payment_id
            .parse()
            .map_err(|_| ProcessError::Malformed("paymentId must be a UUID".into()))?;
        for (field, value) in [("orderId", &req.order_id), ("userId", &req.user_id)] {
            if flash_core::ids::parse_uuid(value).is_err() {
                return Err(ProcessError::Malformed(format!("{field} must be a UUID")));
            }
        }
        if self
            .ledger
            .published(payment)
            .await
            .map_err(ProcessError::Store)?
        {
            let verdict = self
                .ledger
                .decide(payment, Verdict::Fail)
                .await
                .map_err(ProcessError::Store)?;
            return Ok(Processed {
                verdict,
                published: false,
            });
        }
        let proposed = if self.random.unit() < self.settings.success_rate {
            Verdict::Ok
        } else {
            Verdict::Fail
        };
        let verdict = self
            .ledger
            .decide(payment, proposed)
            .await
            .map_err(ProcessError::Store)?;
        let lo = u64::try_from(self.settings.min_latency.as_millis()).unwrap_or(u64::MAX);
        let hi = u64::try_from(self.settings.max_latency.as_millis()).unwrap_or(u64::MAX);
        let latency = self.random.between(lo, hi.max(lo));
        if latency > 0 {
            self.clock.sleep(Duration::from_millis(latency)).await;
        }
        let message = match verdict {
            Verdict::Ok => "결제가 완료되었습니다.".to_owned(),
            Verdict::Fail => {
                let i = self.random.between(0, FAIL_MESSAGES.len() as u64 - 1);
                FAIL_MESSAGES[usize::try_from(i).unwrap_or(0) % FAIL_MESSAGES.len()].to_owned()
            }
        };
        let result = PaymentResultMessage {
            request_id: req.request_id.clone(),
            payment_id: req.payment_id.clone(),
            order_id: req.order_id.clone(),
            user_id: req.user_id.clone(),
            status: verdict,
            processed_at: self.clock.now().to_iso(),
            message: Some(message),
        };
        let envelope = Envelope::json(self.ids.uuid().to_string(), req.request_id.clone(), &result)
            .map_err(|e| ProcessError::Store(StoreError::Internal(e.to_string())))?;
        self.bus
            .publish(&self.result_queue, envelope)
            .await
            .map_err(ProcessError::Store)?;
        self.ledger
            .mark_published(payment)
            .await
            .map_err(ProcessError::Store)?;
        Ok(Processed {
            verdict,
            published: true,
        })
    }
}

//! Payment bus messages, field for field compatible with the legacy api and pay worker.

use crate::domain::{Payment, Verdict};
use serde::{Deserialize, Serialize};

pub const DEFAULT_REQUEST_QUEUE: &str = "payments_request";
pub const DEFAULT_RESULT_QUEUE: &str = "payments_result";

/// api → pay (`payments_request`). `messageId` = `correlationId` = `requestId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequestMessage {
    pub request_id: String,
    pub payment_id: String,
    pub order_id: String,
    pub user_id: String,
    pub amount: i64,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

impl PaymentRequestMessage {
    /// The request for `payment`, as every store writes it to its outbox: `messageId` =
    /// `correlationId` = `requestId`.
    pub fn envelope(
        payment: &Payment,
        request_id: uuid::Uuid,
    ) -> Result<Envelope, serde_json::Error> {
        let request_id = request_id.to_string();
        let body = PaymentRequestMessage {
            request_id: request_id.clone(),
            payment_id: payment.id.to_string(),
            order_id: payment.order_id.to_string(),
            user_id: payment.user.to_string(),
            amount: payment.amount,
            method: payment.method.clone(),
            metadata: None,
        };
        Envelope::json(request_id.clone(), request_id, &body)
    }
}

/// pay → api (`payments_result`). `correlationId` = the request's `requestId`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResultMessage {
    pub request_id: String,
    pub payment_id: String,
    pub order_id: String,
    pub user_id: String,
    pub status: Verdict,
    pub processed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A message on the bus: JSON body plus the AMQP/SQS properties we rely on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub message_id: String,
    pub correlation_id: String,
    pub body: Vec<u8>,
}

impl Envelope {
    pub fn json<T: Serialize>(
        message_id: String,
        correlation_id: String,
        body: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Envelope {
            message_id,
            correlation_id,
            body: serde_json::to_vec(body)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_message_uses_legacy_field_names() {
        let m = PaymentResultMessage {
            request_id: "r".into(),
            payment_id: "p".into(),
            order_id: "o".into(),
            user_id: "u".into(),
            status: Verdict::Ok,
            processed_at: "2025-11-03T10:00:00.000Z".into(),
            message: None,
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"requestId":"r","paymentId":"p","orderId":"o","userId":"u",
                "status":"OK","processedAt":"2025-11-03T10:00:00.000Z"})
        );
    }
}

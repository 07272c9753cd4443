//! Payments: one active payment per order with a transactional outbox, idempotent result
//! application that never downgrades PAID, the signed provider callback, and payment timeouts.

use crate::common::{AccessDenied, caller};
use crate::settings::{PaymentSettings, secret_bytes};
use crate::{Doorman, Kick, Ports, classify};
use flash_core::domain::{
    Payment, PaymentCommand, PaymentOpened, PaymentRejection, PaymentStatus, ResultApplied,
    ResultCommand, ResultRejection, Verdict,
};
use flash_core::messages::PaymentResultMessage;
use flash_core::ports::{Clock, Ids, PaymentStore};
use flash_core::{Context, OrderId, OutboxId, PaymentId, StoreError};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;

/// Longest accepted payment method code (legacy `varchar(64)`).
pub const MAX_METHOD_LEN: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("Order not found")]
    OrderNotFound,
    #[error("Order is already paid")]
    AlreadyPaid,
    #[error("Order is not eligible for payment")]
    NotEligible,
    #[error("Payment not found")]
    PaymentNotFound,
    #[error("Payment does not belong to the provided order")]
    WrongOrder,
    #[error("Payment has already been completed successfully")]
    AlreadyCompleted,
    #[error("Invalid signature")]
    BadSignature,
    #[error("Signature timestamp is outside the allowed window")]
    StaleSignature,
    #[error("Payment callbacks are reserved for the payment provider")]
    CallbackForbidden,
    #[error("Malformed payment result: {0}")]
    Malformed(String),
    #[error("Too many payment requests, retry later")]
    RateLimited(u64),
    #[error(transparent)]
    Access(AccessDenied),
    #[error(transparent)]
    Store(StoreError),
}

classify!(PaymentError {
    OrderNotFound => NotFound, "order_not_found";
    AlreadyPaid => Invalid, "order_already_paid";
    NotEligible => Invalid, "order_not_payable";
    PaymentNotFound => NotFound, "payment_not_found";
    WrongOrder => Invalid, "payment_order_mismatch";
    AlreadyCompleted => Invalid, "payment_already_completed";
    BadSignature => Unauthorized, "invalid_signature";
    StaleSignature => Unauthorized, "stale_signature";
    CallbackForbidden => Forbidden, "callback_forbidden";
    Malformed(_) => Invalid, "malformed_message";
    RateLimited(_) => RateLimited, "rate_limited";
} store: Store access: Access retry: RateLimited);

impl From<ResultRejection> for PaymentError {
    fn from(r: ResultRejection) -> Self {
        match r {
            ResultRejection::PaymentNotFound => PaymentError::PaymentNotFound,
            ResultRejection::WrongOrder => PaymentError::WrongOrder,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request a payment

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRequest {
    pub order_id: OrderId,
    pub method: String,
}

pub struct RequestPayment {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    payments: Arc<dyn PaymentStore>,
    timeout: Duration,
    kick: Kick,
    door: Doorman,
}

impl RequestPayment {
    /// `door` counts payment requests per client address and per user.
    pub fn new(p: &Ports, s: &PaymentSettings, kick: Kick, door: Doorman) -> Self {
        RequestPayment {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            payments: p.payments.clone(),
            timeout: s.timeout,
            kick,
            door,
        }
    }

    /// Opens the order's payment (or returns its active one). The payment row and its bus
    /// message are written together; the relay publishes the message.
    pub async fn handle(&self, cx: &Context, req: PaymentRequest) -> Result<Payment, PaymentError> {
        let user = caller(cx).map_err(PaymentError::Access)?.user;
        let now = self.clock.now();
        if let Some(wait) = self
            .door
            .check(cx, Some(user), now)
            .await
            .map_err(PaymentError::Store)?
        {
            return Err(PaymentError::RateLimited(wait));
        }
        let opened = self
            .payments
            .open(PaymentCommand {
                payment_id: PaymentId(self.ids.uuid()),
                order_id: req.order_id,
                user,
                method: req.method,
                request_id: self.ids.uuid(),
                outbox_id: OutboxId(self.ids.uuid()),
                now,
                settle_by: now.plus(self.timeout * 2),
            })
            .await
            .map_err(PaymentError::Store)?;
        match opened {
            Ok(PaymentOpened::Created(p)) => {
                self.kick.kick();
                Ok(p)
            }
            Ok(PaymentOpened::Existing(p)) => Ok(p),
            // Another user's order does not exist for the caller.
            Err(PaymentRejection::OrderNotFound | PaymentRejection::NotOwner) => {
                Err(PaymentError::OrderNotFound)
            }
            Err(PaymentRejection::AlreadyPaid) => Err(PaymentError::AlreadyPaid),
            Err(PaymentRejection::NotEligible) => Err(PaymentError::NotEligible),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Apply a result from the bus

pub struct ApplyPaymentResult {
    clock: Arc<dyn Clock>,
    payments: Arc<dyn PaymentStore>,
}

impl ApplyPaymentResult {
    pub fn new(p: &Ports) -> Self {
        ApplyPaymentResult {
            clock: p.clock.clone(),
            payments: p.payments.clone(),
        }
    }

    /// Applies a processor result. Duplicates and late results change nothing.
    pub async fn handle(
        &self,
        _cx: &Context,
        msg: &PaymentResultMessage,
    ) -> Result<ResultApplied, PaymentError> {
        let payment_id: PaymentId = msg
            .payment_id
            .parse()
            .map_err(|_| PaymentError::Malformed("paymentId must be a UUID".into()))?;
        let order_id: OrderId = msg
            .order_id
            .parse()
            .map_err(|_| PaymentError::Malformed("orderId must be a UUID".into()))?;
        let applied = self
            .payments
            .apply(ResultCommand {
                payment_id,
                order_id,
                verdict: msg.status,
                now: self.clock.now(),
            })
            .await
            .map_err(PaymentError::Store)??;
        if let ResultApplied::RefundRequired(p) = &applied {
            tracing::warn!(payment = %p.id, order = %p.order_id, "charged for an order that can no longer be paid: refund required");
        }
        Ok(applied)
    }
}

// ---------------------------------------------------------------------------------------------
// Provider callback

/// How far the timestamp of a signed callback may be from now, either way (SPEC §11): a
/// captured callback cannot be replayed later than this.
pub const CALLBACK_WINDOW: Duration = Duration::from_secs(5 * 60);

/// `POST /payments/callback`: the body as parsed, plus the raw bytes it was signed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRequest {
    pub order_id: OrderId,
    pub payment_id: PaymentId,
    pub verdict: Verdict,
    /// `X-Signature`: hex HMAC-SHA256 of `{timestamp}.{raw body}`.
    pub signature: Option<String>,
    /// `X-Signature-Timestamp`: the Unix time (seconds) the provider signed at.
    pub signed_at: Option<String>,
    pub signed_body: Vec<u8>,
}

pub struct PaymentCallback {
    clock: Arc<dyn Clock>,
    payments: Arc<dyn PaymentStore>,
    secret: Option<Arc<Vec<u8>>>,
    allow_owner: bool,
}

impl PaymentCallback {
    pub fn new(p: &Ports, s: &PaymentSettings) -> Self {
        PaymentCallback {
            clock: p.clock.clone(),
            payments: p.payments.clone(),
            secret: secret_bytes(&s.callback_secret).map(Arc::new),
            allow_owner: s.allow_owner_callback,
        }
    }

    /// Accepted from the provider (valid `X-Signature`), an admin, or — only with
    /// `PAYMENTS_ALLOW_OWNER_CALLBACK` — the order's owner.
    pub async fn handle(
        &self,
        cx: &Context,
        req: CallbackRequest,
    ) -> Result<Payment, PaymentError> {
        let owner_only = match (&req.signature, &cx.principal) {
            (Some(sig), _) => {
                self.verify_signature(sig, req.signed_at.as_deref(), &req.signed_body)?;
                None
            }
            (None, Some(p)) if p.is_admin() => None,
            (None, Some(p)) if self.allow_owner => Some(p.user),
            (None, Some(_)) => return Err(PaymentError::CallbackForbidden),
            (None, None) => return Err(PaymentError::Access(AccessDenied::Unauthenticated)),
        };
        let payment = self
            .payments
            .get(req.payment_id)
            .await
            .map_err(PaymentError::Store)?
            .ok_or(PaymentError::PaymentNotFound)?;
        if payment.order_id != req.order_id {
            return Err(PaymentError::WrongOrder);
        }
        if owner_only.is_some_and(|u| u != payment.user) {
            return Err(PaymentError::OrderNotFound);
        }
        let applied = self
            .payments
            .apply(ResultCommand {
                payment_id: req.payment_id,
                order_id: req.order_id,
                verdict: req.verdict,
                now: self.clock.now(),
            })
            .await
            .map_err(PaymentError::Store)??;
        match applied {
            ResultApplied::Paid(p)
            | ResultApplied::Failed(p)
            | ResultApplied::RefundRequired(p) => Ok(p),
            ResultApplied::Unchanged(p) => {
                if p.status == PaymentStatus::Ok && req.verdict == Verdict::Fail {
                    Err(PaymentError::AlreadyCompleted)
                } else {
                    Ok(p)
                }
            }
        }
    }

    /// The signature covers `{timestamp}.{body}`, so the timestamp cannot be changed to replay a
    /// captured callback; the timestamp must be within [`CALLBACK_WINDOW`] of now.
    fn verify_signature(
        &self,
        sig: &str,
        signed_at: Option<&str>,
        body: &[u8],
    ) -> Result<(), PaymentError> {
        let secret = self.secret.as_ref().ok_or(PaymentError::BadSignature)?;
        let stamp = signed_at.map(str::trim).ok_or(PaymentError::BadSignature)?;
        let at: i64 = stamp
            .parse()
            .ok()
            .filter(|_| stamp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(PaymentError::BadSignature)?;
        let sig = hex::decode(sig.trim()).map_err(|_| PaymentError::BadSignature)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(stamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&sig)
            .map_err(|_| PaymentError::BadSignature)?;
        let window = i64::try_from(CALLBACK_WINDOW.as_secs()).unwrap_or(i64::MAX);
        if self.clock.now().unix_seconds().abs_diff(at) > window.unsigned_abs() {
            return Err(PaymentError::StaleSignature);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Timeouts

pub struct TimeOutPayments {
    clock: Arc<dyn Clock>,
    payments: Arc<dyn PaymentStore>,
    timeout: Duration,
}

impl TimeOutPayments {
    pub fn new(p: &Ports, s: &PaymentSettings) -> Self {
        TimeOutPayments {
            clock: p.clock.clone(),
            payments: p.payments.clone(),
            timeout: s.timeout,
        }
    }

    /// Fails REQ payments older than the timeout (a late OK then becomes REFUND_REQUIRED if the
    /// hold has expired meanwhile). Returns how many it failed.
    pub async fn handle(&self, _cx: &Context) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let overdue = self.payments.overdue(now.minus(self.timeout), 200).await?;
        let mut failed = 0;
        for p in overdue {
            let applied = self
                .payments
                .apply(ResultCommand {
                    payment_id: p.id,
                    order_id: p.order_id,
                    verdict: Verdict::Fail,
                    now,
                })
                .await?;
            if matches!(applied, Ok(ResultApplied::Failed(_))) {
                tracing::info!(payment = %p.id, "payment timed out");
                failed += 1;
            }
        }
        Ok(failed)
    }
}

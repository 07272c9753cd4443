//! Orders: admission check, atomic reservation at HOLD time with the per-user limit, per-user
//! idempotency keys with a request fingerprint, reads, and hold expiry.

use crate::common::{AccessDenied, caller};
use crate::events::EventCache;
use crate::queue::GateTokens;
use crate::settings::{OrderSettings, QueueSettings};
use crate::{Doorman, Kick, Ports};
use flash_core::domain::{
    HoldOutcome, HoldRejection, HoldRequest, KeyedOutcome, Order, QueueMode, QueueScope, Ticket,
};
use flash_core::ports::{Clock, EventStore, Ids, OrderStore, QueueStore};
use flash_core::{Classify, Context, ErrorKind, EventId, OrderId, StoreError, Timestamp};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error("Idempotency-Key header is required")]
    KeyRequired,
    #[error("Idempotency-Key must be at most 255 characters")]
    KeyTooLong,
    #[error("Idempotency-Key reused with a different request")]
    KeyMismatch,
    #[error("Invalid gate token or gate token expired")]
    NotAdmitted,
    #[error("Event not found")]
    EventNotFound,
    #[error("Event is not on sale")]
    NotOnSale,
    #[error("Not enough tickets remaining")]
    SoldOut,
    #[error("Requested quantity exceeds per-user limit")]
    OverUserLimit,
    #[error("Order not found")]
    NotFound,
    #[error("Too many orders, retry later")]
    RateLimited(u64),
    #[error(transparent)]
    Access(AccessDenied),
    #[error(transparent)]
    Store(StoreError),
}

impl From<HoldRejection> for OrderError {
    fn from(r: HoldRejection) -> Self {
        match r {
            HoldRejection::EventNotFound => OrderError::EventNotFound,
            HoldRejection::NotOnSale => OrderError::NotOnSale,
            HoldRejection::SoldOut => OrderError::SoldOut,
            HoldRejection::OverUserLimit => OrderError::OverUserLimit,
        }
    }
}

impl Classify for OrderError {
    fn kind(&self) -> ErrorKind {
        match self {
            OrderError::KeyRequired | OrderError::KeyTooLong | OrderError::NotOnSale => {
                ErrorKind::Invalid
            }
            OrderError::OverUserLimit => ErrorKind::Invalid,
            OrderError::SoldOut => ErrorKind::SoldOut,
            OrderError::KeyMismatch => ErrorKind::Conflict,
            OrderError::NotAdmitted => ErrorKind::Forbidden,
            OrderError::EventNotFound | OrderError::NotFound => ErrorKind::NotFound,
            OrderError::RateLimited(_) => ErrorKind::RateLimited,
            OrderError::Access(e) => e.kind(),
            OrderError::Store(e) => e.kind(),
        }
    }
    fn code(&self) -> &'static str {
        match self {
            OrderError::KeyRequired => "idempotency_key_required",
            OrderError::KeyTooLong => "idempotency_key_too_long",
            OrderError::KeyMismatch => "idempotency_key_reused",
            OrderError::NotAdmitted => "not_admitted",
            OrderError::EventNotFound => "event_not_found",
            OrderError::NotOnSale => "event_not_on_sale",
            OrderError::SoldOut => "sold_out",
            OrderError::OverUserLimit => "per_user_limit",
            OrderError::NotFound => "order_not_found",
            OrderError::RateLimited(_) => "rate_limited",
            OrderError::Access(e) => e.code(),
            OrderError::Store(e) => crate::common::store_code(e),
        }
    }
    fn public_message(&self) -> String {
        match self {
            OrderError::Store(e) => crate::common::store_message(e),
            OrderError::KeyRequired
            | OrderError::KeyTooLong
            | OrderError::KeyMismatch
            | OrderError::NotAdmitted
            | OrderError::EventNotFound
            | OrderError::NotOnSale
            | OrderError::SoldOut
            | OrderError::OverUserLimit
            | OrderError::NotFound
            | OrderError::RateLimited(_)
            | OrderError::Access(_) => self.to_string(),
        }
    }
    fn unprocessable(&self) -> bool {
        matches!(self, OrderError::KeyMismatch)
    }
    fn retry_after_ms(&self) -> Option<u64> {
        match self {
            OrderError::RateLimited(ms) => Some(*ms),
            _ => None,
        }
    }
}

/// A validated `POST /orders` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaceOrderRequest {
    pub event_id: EventId,
    pub qty: i64,
}

/// The order, and whether this call created it (a replay returns the original).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub order: Order,
    pub replayed: bool,
}

pub struct PlaceOrder {
    clock: Arc<dyn Clock>,
    ids: Arc<dyn Ids>,
    orders: Arc<dyn OrderStore>,
    events: Arc<dyn EventStore>,
    queue: Arc<dyn QueueStore>,
    gate: GateTokens,
    enforce_admission: bool,
    hold_ttl: Duration,
    key_ttl: Duration,
    kick: Kick,
    door: Doorman,
    /// Where the event's existence and queue mode are read; `None`: the store, every time.
    cache: Option<Arc<EventCache>>,
}

impl PlaceOrder {
    pub fn new(
        p: &Ports,
        s: &OrderSettings,
        q: &QueueSettings,
        gate: GateTokens,
        kick: Kick,
        door: Doorman,
    ) -> Self {
        PlaceOrder {
            clock: p.clock.clone(),
            ids: p.ids.clone(),
            orders: p.orders.clone(),
            events: p.events.clone(),
            queue: p.queue.clone(),
            gate,
            enforce_admission: q.enforce_admission,
            hold_ttl: s.hold_ttl,
            key_ttl: s.idempotency_ttl,
            kick,
            door,
            cache: None,
        }
    }

    /// Reads the event (whether it exists, and its queue mode) through `cache`, at most its
    /// TTL old, instead of the store on every order; the store decides the rest of the HOLD on
    /// what it holds now.
    pub fn cached(self, cache: Arc<EventCache>) -> Self {
        PlaceOrder {
            cache: Some(cache),
            ..self
        }
    }

    /// Places a HOLD. Order of checks: rate limits (address, user) → key present → replay of
    /// the same key → event exists → admission → atomic reservation (on sale, per-user limit,
    /// stock). Only a placed order is remembered under its key. The replay is found by the
    /// reservation itself; only a request refused before it (no such event, no admission)
    /// looks its key up first, so an order costs the store one call.
    pub async fn handle(&self, cx: &Context, req: PlaceOrderRequest) -> Result<Placed, OrderError> {
        let user = caller(cx).map_err(OrderError::Access)?.user;
        if let Some(wait) = self
            .door
            .check(cx, Some(user), self.clock.now())
            .await
            .map_err(OrderError::Store)?
        {
            return Err(OrderError::RateLimited(wait));
        }
        let key = cx
            .idempotency_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(OrderError::KeyRequired)?;
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(OrderError::KeyTooLong);
        }
        let fingerprint = fingerprint(&req);
        let now = self.clock.now();
        let event = EventCache::read(self.cache.as_deref(), self.events.as_ref(), req.event_id);
        let mode = match event.await.map_err(OrderError::Store) {
            Ok(Some(event)) => event.queue_mode,
            Ok(None) => {
                return self
                    .replay_or(user, key, &fingerprint, now, OrderError::EventNotFound)
                    .await;
            }
            Err(e) => return self.replay_or(user, key, &fingerprint, now, e).await,
        };
        let admission = if self.enforce_admission {
            match self.admission(cx, req.event_id, mode, now).await {
                Ok(ticket) => Some(ticket),
                Err(e) => return self.replay_or(user, key, &fingerprint, now, e).await,
            }
        } else {
            None
        };
        let outcome = self
            .orders
            .place_hold(HoldRequest {
                order_id: OrderId(self.ids.uuid()),
                user,
                event_id: req.event_id,
                qty: req.qty,
                idempotency_key: key.to_owned(),
                fingerprint,
                now,
                hold_expires_at: now.plus(self.hold_ttl),
                key_expires_at: now.plus(self.key_ttl),
            })
            .await
            .map_err(OrderError::Store)?;
        match outcome {
            HoldOutcome::Created(order) => {
                if let Some(ticket) = admission {
                    // The admission is spent: its slot goes to the next in line.
                    if let Err(e) = self.queue.consume(ticket.id, now).await {
                        tracing::warn!(error = %e, ticket = %ticket.id, "could not consume admission; it will expire");
                    }
                }
                // The next promotion pass admits the next in line, or closes the line at once
                // if this hold took the last ticket (SPEC §4).
                self.kick.kick();
                Ok(Placed {
                    order,
                    replayed: false,
                })
            }
            HoldOutcome::Replayed(outcome) => replay(outcome),
            HoldOutcome::Rejected(r) => {
                if r == HoldRejection::SoldOut
                    && let Some(ticket) = admission
                {
                    self.release_if_sold_out(ticket, req.event_id, now).await;
                }
                Err(r.into())
            }
            HoldOutcome::KeyMismatch => Err(OrderError::KeyMismatch),
        }
    }

    /// The answer of an earlier request with this key, if there is one (a replay is answered
    /// whatever became of the event or the admission since); otherwise `refusal`.
    async fn replay_or(
        &self,
        user: flash_core::UserId,
        key: &str,
        fingerprint: &str,
        now: Timestamp,
        refusal: OrderError,
    ) -> Result<Placed, OrderError> {
        match self
            .orders
            .keyed(user, key, now)
            .await
            .map_err(OrderError::Store)?
        {
            Some(record) if record.fingerprint != fingerprint => Err(OrderError::KeyMismatch),
            Some(record) => replay(record.outcome),
            None => Err(refusal),
        }
    }

    /// SPEC §4: an admitted buyer refused with `Not enough tickets remaining` frees the slot at
    /// once, so the line keeps moving instead of waiting out the admission's TTL. Only when no
    /// ticket is left at all: a buyer who asked for two when one remains keeps the admission and
    /// can still buy the one. Best effort: the refusal stands whatever happens here, and a slot
    /// not freed now frees when the admission expires.
    async fn release_if_sold_out(&self, ticket: Ticket, event: EventId, now: Timestamp) {
        let none_left = match self.events.get(event).await {
            Ok(Some(e)) => e.available() <= 0,
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, ticket = %ticket.id, "could not read the event after a sold-out refusal; the admission will expire");
                return;
            }
        };
        if !none_left {
            return;
        }
        match self.queue.leave(ticket.id, ticket.user, now).await {
            Ok(_) => self.kick.kick(),
            Err(e) => {
                tracing::warn!(error = %e, ticket = %ticket.id, "could not free the admission of a sold-out buyer; it will expire");
            }
        }
    }

    /// The caller's admission for this purchase: the ticket named by a valid `X-Gate-Token`, or
    /// a live admitted ticket for the event or, unless the event has `queueMode: event`, for the
    /// site-wide queue.
    async fn admission(
        &self,
        cx: &Context,
        event: EventId,
        mode: QueueMode,
        now: Timestamp,
    ) -> Result<Ticket, OrderError> {
        let user = caller(cx).map_err(OrderError::Access)?.user;
        if let Some(token) = cx.gate_token.as_deref() {
            let pass = self
                .gate
                .verify(token, now)
                .map_err(|_| OrderError::NotAdmitted)?;
            if pass.user != user || !mode.admits(pass.scope, event) {
                return Err(OrderError::NotAdmitted);
            }
            return match self
                .queue
                .ticket(pass.ticket, now)
                .await
                .map_err(OrderError::Store)?
            {
                Some(t) if t.state.is_admitted() && t.user == user => Ok(t),
                Some(_) | None => Err(OrderError::NotAdmitted),
            };
        }
        for scope in [QueueScope::Event(event), QueueScope::Global] {
            if !mode.admits(scope, event) {
                continue;
            }
            if let Some(t) = self
                .queue
                .admission(user, scope, now)
                .await
                .map_err(OrderError::Store)?
            {
                return Ok(t);
            }
        }
        Err(OrderError::NotAdmitted)
    }
}

fn replay(outcome: KeyedOutcome) -> Result<Placed, OrderError> {
    match outcome {
        KeyedOutcome::Order(order) => Ok(Placed {
            order,
            replayed: true,
        }),
        KeyedOutcome::Rejected(r) => Err(r.into()),
    }
}

/// Digest of what the key stands for: the same key with another body is a different request.
pub fn fingerprint(req: &PlaceOrderRequest) -> String {
    let mut h = Sha256::new();
    h.update(format!("{}|{}", req.event_id, req.qty));
    hex::encode(h.finalize())
}

pub struct GetOrder {
    orders: Arc<dyn OrderStore>,
}

impl GetOrder {
    pub fn new(p: &Ports) -> Self {
        GetOrder {
            orders: p.orders.clone(),
        }
    }

    /// The caller's order (any order for an admin); another user's order does not exist.
    pub async fn handle(&self, cx: &Context, id: OrderId) -> Result<Order, OrderError> {
        let p = caller(cx).map_err(OrderError::Access)?;
        match self.orders.get(id).await.map_err(OrderError::Store)? {
            Some(o) if o.user == p.user || p.is_admin() => Ok(o),
            Some(_) | None => Err(OrderError::NotFound),
        }
    }
}

pub struct ListOrders {
    orders: Arc<dyn OrderStore>,
}

impl ListOrders {
    pub fn new(p: &Ports) -> Self {
        ListOrders {
            orders: p.orders.clone(),
        }
    }

    pub async fn handle(&self, cx: &Context) -> Result<Vec<Order>, OrderError> {
        let p = caller(cx).map_err(OrderError::Access)?;
        self.orders
            .list_for_user(p.user)
            .await
            .map_err(OrderError::Store)
    }
}

pub struct ExpireHolds {
    clock: Arc<dyn Clock>,
    orders: Arc<dyn OrderStore>,
}

impl ExpireHolds {
    pub fn new(p: &Ports) -> Self {
        ExpireHolds {
            clock: p.clock.clone(),
            orders: p.orders.clone(),
        }
    }

    /// Expires unpaid holds past their time, releasing their stock; returns them.
    pub async fn handle(&self, _cx: &Context) -> Result<Vec<Order>, StoreError> {
        self.orders.expire_holds(self.clock.now(), 500).await
    }
}

//! Shared builders, bundles of ports, and concurrency helpers for the contracts.

use flash_core::domain::{
    Event, EventStatus, HoldRequest, Order, OrderStatus, Payment, PaymentCommand, ResultCommand,
    TicketView, Verdict,
};
use flash_core::messages::DEFAULT_REQUEST_QUEUE;
use flash_core::ports::{
    Bus, BusConsumer, Delivery, Disposition, EventStore, OrderStore, Outbox, PaymentStore,
    QueueStore,
};
use flash_core::*;
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// 2025-11-03T10:00:00.000Z: the default start instant of every contract.
pub const T0: Timestamp = Timestamp(1_762_164_000_000);

/// How long a contract waits for something that must happen (a delivery, a notice).
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long a contract waits to be convinced that something does not happen.
pub const QUIET: Duration = Duration::from_millis(300);

/// Puts an order in a status the ports only reach through races or operator action (an
/// adapter does it behind its own ports, for example with an SQL `UPDATE`).
pub type Tamper = Arc<dyn Fn(OrderId, OrderStatus) -> BoxFuture<'static, ()> + Send + Sync>;

/// The four shop ports, which must share one state (a reservation, a payment and its outbox
/// message are written together).
#[derive(Clone)]
pub struct ShopPorts {
    pub events: Arc<dyn EventStore>,
    pub orders: Arc<dyn OrderStore>,
    pub payments: Arc<dyn PaymentStore>,
    pub outbox: Arc<dyn Outbox>,
    /// The queue the adapter writes payment requests to.
    pub request_queue: String,
    pub tamper: Option<Tamper>,
}

impl ShopPorts {
    /// One value implementing all four ports, writing to [`DEFAULT_REQUEST_QUEUE`].
    pub fn from_one<S>(shop: Arc<S>) -> Self
    where
        S: EventStore + OrderStore + PaymentStore + Outbox + 'static,
    {
        ShopPorts {
            events: shop.clone(),
            orders: shop.clone(),
            payments: shop.clone(),
            outbox: shop,
            request_queue: DEFAULT_REQUEST_QUEUE.to_owned(),
            tamper: None,
        }
    }

    pub fn with_tamper(mut self, tamper: Tamper) -> Self {
        self.tamper = Some(tamper);
        self
    }

    pub fn with_request_queue(mut self, queue: impl Into<String>) -> Self {
        self.request_queue = queue.into();
        self
    }
}

/// A bus, one queue of it and that queue's dead-letter queue.
#[derive(Clone)]
pub struct BusPorts {
    pub bus: Arc<dyn Bus>,
    /// A queue no other test uses.
    pub queue: String,
    pub consumer: Arc<dyn BusConsumer>,
    /// Consumer of the dead-letter queue of `queue`.
    pub dead_letters: Arc<dyn BusConsumer>,
    /// Deliveries before dead-lettering, as configured in the adapter.
    pub max_attempts: u32,
}

pub fn user() -> UserId {
    UserId(Uuid::new_v4())
}

pub fn event_id() -> EventId {
    EventId(Uuid::new_v4())
}

pub fn order_id() -> OrderId {
    OrderId(Uuid::new_v4())
}

pub fn payment_id() -> PaymentId {
    PaymentId(Uuid::new_v4())
}

pub fn ticket_id() -> TicketId {
    TicketId(Uuid::new_v4())
}

/// A unique string (keys, login names, queue names).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", &Uuid::new_v4().simple().to_string()[..16])
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// An event on sale from `now` for a day.
pub fn selling(now: Timestamp, total: i64, max_per_user: i64, price: i64) -> Event {
    Event {
        id: event_id(),
        name: unique("event-"),
        starts_at: now,
        ends_at: now.plus(Duration::from_secs(86_400)),
        total_qty: total,
        sold_qty: 0,
        held_qty: 0,
        max_per_user,
        price,
        status: EventStatus::Onsale,
        prequeue_starts_at: None,
        queue_mode: flash_core::domain::QueueMode::Global,
        created_at: now,
        updated_at: now,
    }
}

/// An event on sale until a day after `now`, starting an hour after it.
pub fn event(now: Timestamp, total: i64, max_per_user: i64, price: i64) -> Event {
    Event {
        starts_at: now.plus(Duration::from_secs(3600)),
        ..selling(now, total, max_per_user, price)
    }
}

/// Hold TTL used by [`hold`].
pub const HOLD_TTL: Duration = Duration::from_secs(300);
/// Idempotency-key lifetime used by [`hold`].
pub const KEY_TTL: Duration = Duration::from_secs(86_400);

/// A HOLD request whose fingerprint is derived from (event, qty), as a body digest would be.
pub fn hold(event: EventId, user: UserId, qty: i64, key: &str, now: Timestamp) -> HoldRequest {
    HoldRequest {
        order_id: order_id(),
        user,
        event_id: event,
        qty,
        idempotency_key: key.to_owned(),
        fingerprint: format!("{event}:{qty}"),
        now,
        hold_expires_at: now.plus(HOLD_TTL),
        key_expires_at: now.plus(KEY_TTL),
    }
}

/// Payment timeout used by [`pay`].
pub const SETTLE_WITHIN: Duration = Duration::from_secs(60);

pub fn pay(order: &Order, now: Timestamp) -> PaymentCommand {
    PaymentCommand {
        payment_id: payment_id(),
        order_id: order.id,
        user: order.user,
        method: "card".to_owned(),
        request_id: Uuid::new_v4(),
        outbox_id: OutboxId(Uuid::new_v4()),
        now,
        settle_by: now.plus(SETTLE_WITHIN),
    }
}

/// `Ok` if `ok`, else `Fail`.
pub fn verdict(ok: bool) -> Verdict {
    if ok { Verdict::Ok } else { Verdict::Fail }
}

/// The payment provider's `verdict` on `p`, arriving at `now`.
pub fn result(p: &Payment, verdict: Verdict, now: Timestamp) -> ResultCommand {
    ResultCommand {
        payment_id: p.id,
        order_id: p.order_id,
        verdict,
        now,
    }
}

/// Runs `make(0)`, …, `make(n - 1)` at once, each on its own tokio task, and returns their
/// outputs in order.
pub async fn race<T, F>(n: usize, make: impl FnMut(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = (0..n).map(make).map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("a racing task panicked"));
    }
    out
}

/// How many of `items` match `pred`.
pub fn count<T>(items: &[T], pred: impl Fn(&T) -> bool) -> usize {
    items.iter().filter(|i| pred(i)).count()
}

/// Fails the contract unless there are exactly `n` of `items`: `what` they are.
pub fn assert_count<T>(items: &[T], n: usize, what: &str) {
    assert_eq!(items.len(), n, "{} {what}, not {n}", items.len());
}

/// The ids in `batches`, failing the contract (as `what`) if one appears twice.
pub fn distinct<B, I>(batches: &[Vec<B>], id: impl Fn(&B) -> I, what: &str) -> Vec<I>
where
    I: std::hash::Hash + Eq + Copy + std::fmt::Debug,
{
    let ids: Vec<I> = batches.iter().flatten().map(id).collect();
    let mut seen = std::collections::HashSet::new();
    for i in &ids {
        assert!(seen.insert(*i), "{what}: {i:?}");
    }
    ids
}

/// Awaits `f`, failing the contract if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {PATIENCE:?}"))
}

/// The consumer's next delivery, failing the contract (as `what`) if none comes within
/// [`PATIENCE`], the consumer fails or it shuts down.
pub async fn next_delivery(consumer: &dyn BusConsumer, what: &str) -> Delivery {
    within(what, consumer.next())
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .unwrap_or_else(|| panic!("{what}: consumer shut down"))
}

/// Fails the contract (as `what`) if the consumer delivers anything within [`QUIET`].
pub async fn nothing_more(consumer: &dyn BusConsumer, what: &str) {
    if let Ok(Ok(Some(d))) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!("{what}: unexpected delivery {:?}", d.envelope.message_id);
    }
}

/// Settles `d` as `Retry` after `after`.
pub async fn retry(d: &Delivery, after: Duration) {
    d.acker
        .settle(Disposition::Retry { after })
        .await
        .unwrap_or_else(|e| panic!("retry after {after:?}: {e}"));
}

/// A source of configuration variables holding just `pairs`, for `from_vars`-style
/// constructors in tests.
pub fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: std::collections::HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

/// What `q` tells of ticket `id` at `now`, failing (as `what`) if it knows nothing of it.
pub async fn status_of(q: &dyn QueueStore, id: TicketId, now: Timestamp, what: &str) -> TicketView {
    q.status(id, now)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
        .unwrap_or_else(|| panic!("{what}: unknown ticket"))
}

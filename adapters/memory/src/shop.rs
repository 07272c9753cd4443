//! Events, orders, payments and the outbox over one lock.

use crate::{Faults, lock};
use async_trait::async_trait;
use flash_core::budget::Budget;
use flash_core::domain::{
    Event, EventPatch, HoldOutcome, HoldRejection, HoldRequest, IdempotencyRecord, KeyedOutcome,
    Order, OrderStatus, Payment, PaymentCommand, PaymentOpened, PaymentRejection, PaymentStatus,
    ResultApplied, ResultCommand, ResultRejection, ShopCounts, StockMove, check_hold, payable,
    settle,
};
use flash_core::messages::DEFAULT_REQUEST_QUEUE;
use flash_core::ports::{
    EventDeletion, EventListing, EventStore, EventUpdate, OrderStore, Outbox, OutboxMessage,
    PaymentStore, StoreResult,
};
use flash_core::{EventId, OrderId, OutboxId, PaymentId, StoreError, Timestamp, UserId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

crate::fault::with_faults!(MemoryShop);

/// What an idempotency key stands for: a placed order (refusals are not kept, SPEC §11). The
/// order is read back as it is now, so a replay shows its current status.
#[derive(Debug, Clone)]
struct KeyRecord {
    fingerprint: String,
    order: OrderId,
    expires_at: Timestamp,
}

#[derive(Debug)]
struct OutboxEntry {
    message: OutboxMessage,
    seq: u64,
    leased_until: Option<Timestamp>,
}

#[derive(Debug, Default)]
struct ShopState {
    events: HashMap<EventId, Event>,
    orders: HashMap<OrderId, Order>,
    /// Insertion order, oldest first.
    user_orders: HashMap<UserId, Vec<OrderId>>,
    orders_per_event: HashMap<EventId, u64>,
    /// HOLD + FAIL + PAID quantity of (user, event): the per-user limit without a scan.
    committed: HashMap<(UserId, EventId), i64>,
    /// (hold_expires_at, id) of exactly the HOLD/FAIL orders without a REQ payment: what
    /// `expire_holds` may take, found from the front.
    hold_deadlines: BTreeSet<(Timestamp, OrderId)>,
    keys: HashMap<(UserId, String), KeyRecord>,
    key_expiry: BTreeSet<(Timestamp, UserId, String)>,
    payments: HashMap<PaymentId, Payment>,
    /// The one REQ payment of an order.
    req_payment: HashMap<OrderId, PaymentId>,
    /// The OK payment of a PAID order.
    ok_payment: HashMap<OrderId, PaymentId>,
    /// (created_at, id) of REQ payments, for `overdue`.
    req_by_age: BTreeSet<(Timestamp, PaymentId)>,
    outbox: HashMap<OutboxId, OutboxEntry>,
    /// Unsent messages in write order.
    unsent: BTreeMap<u64, OutboxId>,
    outbox_seq: u64,
    counts: ShopCounts,
    /// The same counters per event (its orders and their payments).
    event_counts: HashMap<EventId, ShopCounts>,
}

fn order_counter(c: &mut ShopCounts, s: OrderStatus) -> &mut u64 {
    match s {
        OrderStatus::Hold => &mut c.orders_hold,
        OrderStatus::Paid => &mut c.orders_paid,
        OrderStatus::Fail => &mut c.orders_failed,
        OrderStatus::Expired => &mut c.orders_expired,
        OrderStatus::Cancelled => &mut c.orders_cancelled,
    }
}

fn payment_counter(c: &mut ShopCounts, s: PaymentStatus) -> &mut u64 {
    match s {
        PaymentStatus::Req => &mut c.payments_pending,
        PaymentStatus::Ok => &mut c.payments_ok,
        PaymentStatus::Fail => &mut c.payments_failed,
        PaymentStatus::RefundRequired => &mut c.payments_refund_required,
    }
}

impl ShopState {
    /// Counts a change in the site's counters and in those of `event`.
    fn count(&mut self, event: Option<EventId>, f: impl Fn(&mut ShopCounts)) {
        f(&mut self.counts);
        if let Some(e) = event {
            f(self.event_counts.entry(e).or_default());
        }
    }

    fn sweep_keys(&mut self, now: Timestamp) {
        while let Some((at, _, _)) = self.key_expiry.first() {
            if *at > now {
                break;
            }
            if let Some((at, user, key)) = self.key_expiry.pop_first() {
                // A key reused after expiry has a newer record; only drop the one that ended.
                let k = (user, key);
                if self.keys.get(&k).is_some_and(|r| r.expires_at == at) {
                    self.keys.remove(&k);
                }
            }
        }
    }

    /// Keeps the key's record, within `budget`: when it is full the record closest to its
    /// expiry is forgotten first (a retry of that request would place a new order, still within
    /// the event's per-user limit, so nothing is oversold).
    fn remember(&mut self, req: &HoldRequest, order: OrderId, budget: &Budget) {
        let k = (req.user, req.idempotency_key.clone());
        if let Some(old) = self.keys.get(&k) {
            self.key_expiry.remove(&(old.expires_at, k.0, k.1.clone()));
        } else {
            while budget.is_full(self.keys.len()) {
                let Some((at, user, key)) = self.key_expiry.pop_first() else {
                    break;
                };
                let old = (user, key);
                if self.keys.get(&old).is_some_and(|r| r.expires_at == at) {
                    self.keys.remove(&old);
                    budget.count_evicted(1);
                }
            }
        }
        self.key_expiry
            .insert((req.key_expires_at, req.user, req.idempotency_key.clone()));
        self.keys.insert(
            k,
            KeyRecord {
                fingerprint: req.fingerprint.clone(),
                order,
                expires_at: req.key_expires_at,
            },
        );
        budget.set_used(self.keys.len());
    }

    fn materialize(&self, id: OrderId) -> StoreResult<KeyedOutcome> {
        self.orders
            .get(&id)
            .cloned()
            .map(KeyedOutcome::Order)
            .ok_or_else(|| StoreError::Internal(format!("keyed order {id} is missing")))
    }

    /// Keeps `hold_deadlines` equal to "HOLD/FAIL without a REQ payment" for one order.
    fn reschedule(&mut self, id: OrderId) {
        let Some(o) = self.orders.get(&id) else {
            return;
        };
        let key = (o.hold_expires_at, id);
        if o.status.holds_stock() && !self.req_payment.contains_key(&id) {
            self.hold_deadlines.insert(key);
        } else {
            self.hold_deadlines.remove(&key);
        }
    }

    /// The one place an order's status changes: stock, per-user quantity, counters and the
    /// expiry schedule follow from the (from, to) pair, so no path can forget one of them.
    fn transition(&mut self, id: OrderId, to: OrderStatus, now: Timestamp) {
        let Some(o) = self.orders.get_mut(&id) else {
            return;
        };
        let from = o.status;
        if from == to {
            return;
        }
        self.hold_deadlines.remove(&(o.hold_expires_at, id));
        o.status = to;
        o.updated_at = now;
        let (user, event_id) = (o.user, o.event_id);
        let moved = StockMove::of(from, to, o.qty);
        if let Some(e) = self.events.get_mut(&event_id) {
            e.held_qty += moved.held;
            e.sold_qty += moved.sold;
        }
        *self.committed.entry((user, event_id)).or_default() += moved.committed;
        self.count(Some(event_id), |c| {
            let left = order_counter(c, from);
            *left = left.saturating_sub(1);
            *order_counter(c, to) += 1;
        });
        self.reschedule(id);
    }

    fn set_payment_status(&mut self, id: PaymentId, to: PaymentStatus, now: Timestamp) {
        let Some(p) = self.payments.get_mut(&id) else {
            return;
        };
        let from = p.status;
        p.status = to;
        p.updated_at = now;
        if from == PaymentStatus::Req && to != PaymentStatus::Req {
            self.req_by_age.remove(&(p.created_at, id));
            if self.req_payment.get(&p.order_id) == Some(&id) {
                self.req_payment.remove(&p.order_id);
            }
        }
        let event = self.orders.get(&p.order_id).map(|o| o.event_id);
        self.count(event, |c| {
            let left = payment_counter(c, from);
            *left = left.saturating_sub(1);
            *payment_counter(c, to) += 1;
        });
    }
}

/// Events, orders, payments and the transactional outbox over one mutex: a reservation, a
/// payment opening (payment row + outbox message) and a result (payment + order + stock) each
/// happen in one critical section, which is the memory equivalent of one database transaction.
/// Counters for `/metrics` are maintained on every transition, so `counts()` is O(1).
#[derive(Debug)]
pub struct MemoryShop {
    state: Mutex<ShopState>,
    request_queue: String,
    /// Idempotency records kept at once (SPEC §11).
    key_budget: Arc<Budget>,
    faults: Faults,
}

/// Idempotency records kept at once unless configured: ~300 B each with its key, ~30 MiB.
pub const DEFAULT_IDEMPOTENCY_MAX_RECORDS: usize = 100_000;

/// Outbox messages go to [`DEFAULT_REQUEST_QUEUE`].
impl Default for MemoryShop {
    fn default() -> Self {
        Self::new(DEFAULT_REQUEST_QUEUE)
    }
}

impl MemoryShop {
    /// A shop whose outbox messages go to `request_queue` (`PAYMENT_REQUEST_QUEUE`).
    pub fn new(request_queue: impl Into<String>) -> Self {
        MemoryShop {
            state: Mutex::new(ShopState::default()),
            request_queue: request_queue.into(),
            key_budget: Budget::new("idempotency_records", DEFAULT_IDEMPOTENCY_MAX_RECORDS),
            faults: Faults::default(),
        }
    }

    /// Keeps at most `budget.max()` idempotency records.
    pub fn with_key_budget(mut self, budget: Arc<Budget>) -> Self {
        self.key_budget = budget;
        self
    }

    pub fn key_budget(&self) -> Arc<Budget> {
        self.key_budget.clone()
    }

    fn state(&self) -> StoreResult<std::sync::MutexGuard<'_, ShopState>> {
        self.faults.check("shop store")?;
        lock(&self.state, "shop store")
    }

    /// The order as stored now. Unlike `get`, which three of the ports define, this name is
    /// unambiguous on the concrete type (for test assertions).
    pub fn order(&self, id: OrderId) -> Option<Order> {
        self.state.lock().ok()?.orders.get(&id).cloned()
    }

    /// The event as stored now (see [`MemoryShop::order`]).
    pub fn event(&self, id: EventId) -> Option<Event> {
        self.state.lock().ok()?.events.get(&id).cloned()
    }

    /// The payment as stored now (see [`MemoryShop::order`]).
    pub fn payment(&self, id: PaymentId) -> Option<Payment> {
        self.state.lock().ok()?.payments.get(&id).cloned()
    }

    /// Inserts or replaces an event as given (demo data, test set-up). Not for events that
    /// already have orders: their counters would no longer match.
    pub fn seed_event(&self, event: Event) {
        if let Ok(mut s) = self.state.lock() {
            s.events.insert(event.id, event);
        }
    }

    /// Puts an order in `status` behind the ports' back, keeping stock and counters consistent
    /// (a REQ payment is left as it is). For tests of states the ports only reach through races
    /// or operator action, such as a processor's OK for an order that can no longer be paid.
    /// Returns whether the order exists.
    pub fn force_order_status(&self, id: OrderId, status: OrderStatus, now: Timestamp) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        if !s.orders.contains_key(&id) {
            return false;
        }
        s.transition(id, status, now);
        true
    }

    /// Checks the stock and payment invariants of SPEC §8 (1–3) over the whole state; returns
    /// every violation found. O(n): for tests and audits, never for a request path.
    pub fn audit(&self) -> Result<(), Vec<String>> {
        let s = match lock(&self.state, "shop store") {
            Ok(s) => s,
            Err(e) => return Err(vec![e.to_string()]),
        };
        let mut bad = Vec::new();
        let mut sold: HashMap<EventId, i64> = HashMap::new();
        let mut held: HashMap<EventId, i64> = HashMap::new();
        let mut per_user: HashMap<(UserId, EventId), i64> = HashMap::new();
        for o in s.orders.values() {
            if o.status == OrderStatus::Paid {
                *sold.entry(o.event_id).or_default() += o.qty;
                let oks = s
                    .payments
                    .values()
                    .filter(|p| p.order_id == o.id && p.status == PaymentStatus::Ok)
                    .count();
                if oks != 1 {
                    bad.push(format!("PAID order {} has {oks} OK payments", o.id));
                }
            }
            if o.status.holds_stock() {
                *held.entry(o.event_id).or_default() += o.qty;
            }
            if o.status.counts_for_limit() {
                *per_user.entry((o.user, o.event_id)).or_default() += o.qty;
            }
        }
        for e in s.events.values() {
            let (sd, hd) = (
                sold.get(&e.id).copied().unwrap_or(0),
                held.get(&e.id).copied().unwrap_or(0),
            );
            if e.sold_qty + e.held_qty > e.total_qty {
                bad.push(format!("event {} oversold", e.id));
            }
            if e.sold_qty != sd || e.held_qty != hd {
                bad.push(format!(
                    "event {}: counters sold {} held {}, orders say {sd}/{hd}",
                    e.id, e.sold_qty, e.held_qty
                ));
            }
        }
        for ((user, event), q) in &per_user {
            if let Some(e) = s.events.get(event)
                && *q > e.max_per_user
            {
                bad.push(format!("user {user} holds {q} of event {event}"));
            }
        }
        for p in s.payments.values() {
            if p.status == PaymentStatus::Ok
                && s.orders.get(&p.order_id).map(|o| o.status) != Some(OrderStatus::Paid)
            {
                bad.push(format!("OK payment {} without a PAID order", p.id));
            }
        }
        if bad.is_empty() { Ok(()) } else { Err(bad) }
    }
}

#[async_trait]
impl EventStore for MemoryShop {
    async fn create(&self, event: Event) -> StoreResult<()> {
        let mut s = self.state()?;
        if s.events.contains_key(&event.id) {
            return Err(StoreError::Conflict(format!("event {} exists", event.id)));
        }
        s.events.insert(event.id, event);
        Ok(())
    }

    async fn get(&self, id: EventId) -> StoreResult<Option<Event>> {
        Ok(self.state()?.events.get(&id).cloned())
    }

    async fn list(&self, listing: EventListing) -> StoreResult<Vec<Event>> {
        let s = self.state()?;
        let mut events: Vec<Event> = match listing {
            EventListing::Public => s
                .events
                .values()
                .filter(|e| e.status.is_public())
                .cloned()
                .collect(),
            EventListing::Admin => s.events.values().cloned().collect(),
        };
        match listing {
            EventListing::Public => events.sort_by_key(|e| (e.starts_at, e.created_at, e.id)),
            EventListing::Admin => {
                events.sort_by_key(|e| (std::cmp::Reverse(e.created_at), e.id));
            }
        }
        Ok(events)
    }

    async fn update(
        &self,
        id: EventId,
        patch: EventPatch,
        now: Timestamp,
    ) -> StoreResult<EventUpdate> {
        let mut s = self.state()?;
        let Some(e) = s.events.get_mut(&id) else {
            return Ok(EventUpdate::NotFound);
        };
        // Patched from the current row under the lock: stock counters are copied from the
        // row as it is now, never from a stale read.
        match e.patched(&patch, now) {
            Ok(next) => {
                *e = next.clone();
                Ok(EventUpdate::Updated(next))
            }
            Err(r) => Ok(EventUpdate::Rejected(r)),
        }
    }

    async fn delete(&self, id: EventId) -> StoreResult<EventDeletion> {
        let mut s = self.state()?;
        if !s.events.contains_key(&id) {
            return Ok(EventDeletion::NotFound);
        }
        if s.orders_per_event.get(&id).copied().unwrap_or(0) > 0 {
            return Ok(EventDeletion::HasOrders);
        }
        s.events.remove(&id);
        Ok(EventDeletion::Deleted)
    }
}

#[async_trait]
impl OrderStore for MemoryShop {
    async fn place_hold(&self, req: HoldRequest) -> StoreResult<HoldOutcome> {
        req.check_validated()?;
        let mut s = self.state()?;
        s.sweep_keys(req.now);
        self.key_budget.set_used(s.keys.len());
        if let Some(r) = s.keys.get(&(req.user, req.idempotency_key.clone())) {
            if r.fingerprint != req.fingerprint {
                return Ok(HoldOutcome::KeyMismatch);
            }
            let order = r.order;
            return s.materialize(order).map(HoldOutcome::Replayed);
        }
        if s.orders.contains_key(&req.order_id) {
            return Err(StoreError::Conflict(format!(
                "order {} exists",
                req.order_id
            )));
        }
        let Some(event) = s.events.get(&req.event_id) else {
            return Ok(HoldOutcome::Rejected(HoldRejection::EventNotFound));
        };
        let committed = s
            .committed
            .get(&(req.user, req.event_id))
            .copied()
            .unwrap_or(0);
        if let Err(r) = check_hold(event, req.qty, committed) {
            return Ok(HoldOutcome::Rejected(r));
        }
        let order = Order {
            id: req.order_id,
            user: req.user,
            event_id: req.event_id,
            event_name: event.name.clone(),
            qty: req.qty,
            amount: event.price.saturating_mul(req.qty),
            status: OrderStatus::Hold,
            created_at: req.now,
            updated_at: req.now,
            hold_expires_at: req.hold_expires_at,
        };
        if let Some(e) = s.events.get_mut(&req.event_id) {
            e.held_qty += req.qty;
        }
        *s.committed.entry((req.user, req.event_id)).or_default() += req.qty;
        *s.orders_per_event.entry(req.event_id).or_default() += 1;
        s.user_orders.entry(req.user).or_default().push(order.id);
        s.count(Some(req.event_id), |c| {
            c.orders_total += 1;
            c.orders_hold += 1;
        });
        s.orders.insert(order.id, order.clone());
        s.reschedule(order.id);
        s.remember(&req, order.id, &self.key_budget);
        Ok(HoldOutcome::Created(order))
    }

    async fn keyed(
        &self,
        user: UserId,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let s = self.state()?;
        let Some(r) = s.keys.get(&(user, key.to_owned())) else {
            return Ok(None);
        };
        if r.expires_at <= now {
            return Ok(None);
        }
        Ok(Some(IdempotencyRecord {
            fingerprint: r.fingerprint.clone(),
            outcome: s.materialize(r.order)?,
        }))
    }

    async fn get(&self, id: OrderId) -> StoreResult<Option<Order>> {
        Ok(self.state()?.orders.get(&id).cloned())
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Order>> {
        let s = self.state()?;
        let mut orders: Vec<Order> = s
            .user_orders
            .get(&user)
            .map(|ids| {
                ids.iter()
                    .rev()
                    .filter_map(|id| s.orders.get(id).cloned())
                    .collect()
            })
            .unwrap_or_default();
        // Stable: equal instants keep newest-inserted first.
        orders.sort_by_key(|o| std::cmp::Reverse(o.created_at));
        Ok(orders)
    }

    async fn expire_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<Order>> {
        let mut s = self.state()?;
        let due: Vec<OrderId> = s
            .hold_deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        let mut expired = Vec::with_capacity(due.len());
        for id in due {
            s.transition(id, OrderStatus::Expired, now);
            if let Some(o) = s.orders.get(&id) {
                expired.push(o.clone());
            }
        }
        Ok(expired)
    }
}

#[async_trait]
impl PaymentStore for MemoryShop {
    async fn open(
        &self,
        cmd: PaymentCommand,
    ) -> StoreResult<Result<PaymentOpened, PaymentRejection>> {
        let mut s = self.state()?;
        let Some(order) = s.orders.get(&cmd.order_id) else {
            return Ok(Err(PaymentRejection::OrderNotFound));
        };
        if order.user != cmd.user {
            return Ok(Err(PaymentRejection::NotOwner));
        }
        match payable(order.status) {
            Ok(()) => {}
            // A PAID order answers with its OK payment.
            Err(PaymentRejection::AlreadyPaid) => {
                return Ok(s
                    .ok_payment
                    .get(&order.id)
                    .and_then(|p| s.payments.get(p))
                    .cloned()
                    .map(PaymentOpened::Existing)
                    .ok_or(PaymentRejection::AlreadyPaid));
            }
            Err(r) => return Ok(Err(r)),
        }
        if let Some(p) = s.req_payment.get(&order.id).and_then(|p| s.payments.get(p)) {
            return Ok(Ok(PaymentOpened::Existing(p.clone())));
        }
        if s.payments.contains_key(&cmd.payment_id) {
            return Err(StoreError::Conflict(format!(
                "payment {} exists",
                cmd.payment_id
            )));
        }
        let (payment, envelope) = cmd.open(order)?;

        // A FAIL order is payable again; the hold now lasts at least until the payment settles.
        // The REQ payment goes in first so that the order leaves the expiry schedule for as long
        // as the payment is in flight.
        let order_id = order.id;
        s.req_payment.insert(order_id, payment.id);
        s.reschedule(order_id);
        s.transition(order_id, OrderStatus::Hold, cmd.now);
        if let Some(o) = s.orders.get_mut(&order_id)
            && o.hold_expires_at < cmd.settle_by
        {
            o.hold_expires_at = cmd.settle_by;
            o.updated_at = cmd.now;
        }
        s.req_by_age.insert((payment.created_at, payment.id));
        let event = s.orders.get(&order_id).map(|o| o.event_id);
        s.count(event, |c| c.payments_pending += 1);
        s.payments.insert(payment.id, payment.clone());
        s.outbox_seq += 1;
        let seq = s.outbox_seq;
        s.unsent.insert(seq, cmd.outbox_id);
        s.outbox.insert(
            cmd.outbox_id,
            OutboxEntry {
                message: OutboxMessage {
                    id: cmd.outbox_id,
                    queue: self.request_queue.clone(),
                    envelope,
                    attempts: 0,
                },
                seq,
                leased_until: None,
            },
        );
        Ok(Ok(PaymentOpened::Created(payment)))
    }

    async fn apply(
        &self,
        cmd: ResultCommand,
    ) -> StoreResult<Result<ResultApplied, ResultRejection>> {
        let mut s = self.state()?;
        let Some(payment) = s.payments.get(&cmd.payment_id) else {
            return Ok(Err(ResultRejection::PaymentNotFound));
        };
        if payment.order_id != cmd.order_id {
            return Ok(Err(ResultRejection::WrongOrder));
        }
        let Some(order_status) = s.orders.get(&cmd.order_id).map(|o| o.status) else {
            return Err(StoreError::Internal(format!(
                "payment {} points at missing order {}",
                cmd.payment_id, cmd.order_id
            )));
        };
        let Some(settled) = settle(cmd.verdict, payment.status, order_status) else {
            return Ok(Ok(ResultApplied::Unchanged(payment.clone())));
        };
        let id = cmd.payment_id;
        s.set_payment_status(id, settled.payment, cmd.now);
        match settled.order {
            Some(to) => {
                if to == OrderStatus::Paid {
                    s.ok_payment.insert(cmd.order_id, id);
                }
                s.transition(cmd.order_id, to, cmd.now);
            }
            // Without its REQ payment the order's hold may run out again.
            None => s.reschedule(cmd.order_id),
        }
        let payment = s
            .payments
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::Internal(format!("payment {id} vanished")))?;
        Ok(Ok(settled.outcome.applied(payment)))
    }

    async fn get(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        Ok(self.state()?.payments.get(&id).cloned())
    }

    async fn overdue(&self, cutoff: Timestamp, limit: usize) -> StoreResult<Vec<Payment>> {
        let s = self.state()?;
        Ok(s.req_by_age
            .iter()
            .take_while(|(at, _)| *at <= cutoff)
            .take(limit)
            .filter_map(|(_, id)| s.payments.get(id).cloned())
            .collect())
    }

    async fn counts(&self) -> StoreResult<ShopCounts> {
        let s = self.state()?;
        Ok(ShopCounts {
            outbox_backlog: s.unsent.len() as u64,
            ..s.counts
        })
    }

    async fn event_counts(&self, event: EventId) -> StoreResult<ShopCounts> {
        Ok(self
            .state()?
            .event_counts
            .get(&event)
            .copied()
            .unwrap_or_default())
    }
}

#[async_trait]
impl Outbox for MemoryShop {
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<Vec<OutboxMessage>> {
        let mut s = self.state()?;
        let ShopState { outbox, unsent, .. } = &mut *s;
        let mut claimed = Vec::new();
        for id in unsent.values() {
            if claimed.len() >= limit {
                break;
            }
            let Some(entry) = outbox.get_mut(id) else {
                continue;
            };
            if entry.leased_until.is_some_and(|t| t > now) {
                continue;
            }
            entry.leased_until = Some(now.plus(lease));
            entry.message.attempts += 1;
            claimed.push(entry.message.clone());
        }
        Ok(claimed)
    }

    async fn mark_sent(&self, ids: &[OutboxId], _now: Timestamp) -> StoreResult<()> {
        let mut s = self.state()?;
        for id in ids {
            // Sent messages are dropped: nothing reads them again.
            if let Some(entry) = s.outbox.remove(id) {
                s.unsent.remove(&entry.seq);
            }
        }
        Ok(())
    }

    async fn backlog(&self) -> StoreResult<u64> {
        Ok(self.state()?.unsent.len() as u64)
    }
}

//! Ports: the narrow, object-safe traits business handlers are written against.
//!
//! Each method's documentation states what an implementation MUST do; `flash-testkit` turns those
//! sentences into contract tests that the in-memory and the real adapters all pass.
//! Every port is `Send + Sync` and held as `Arc<dyn Port>`.

use crate::domain::*;
use crate::error::StoreError;
use crate::ids::*;
use crate::limits::RateKey;
use crate::messages::Envelope;
use crate::time::Timestamp;
use async_trait::async_trait;
use std::time::Duration;

pub type StoreResult<T> = Result<T, StoreError>;

/// The time source. Tests drive a fake one; nothing reads the system clock directly.
#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Waits `d` of this clock's time. A fake clock MAY return at once after advancing itself.
    async fn sleep(&self, d: Duration);
}

/// Fresh identifiers. Implementations MUST return a UUID never returned before.
pub trait Ids: Send + Sync {
    fn uuid(&self) -> uuid::Uuid;
}

/// Randomness for the mock payment processor.
pub trait Random: Send + Sync {
    /// Uniform in `[0, 1)`.
    fn unit(&self) -> f64;
    /// Uniform integer in `[lo, hi]` (`lo` when `hi <= lo`).
    fn between(&self, lo: u64, hi: u64) -> u64;
}

/// Accounts.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Inserts a user. MUST fail with [`StoreError::Conflict`] when the login name exists,
    /// atomically (two concurrent creations of one name: exactly one succeeds).
    async fn create(&self, user: User) -> StoreResult<()>;
    async fn by_login(&self, login: &LoginName) -> StoreResult<Option<User>>;
    async fn by_id(&self, id: UserId) -> StoreResult<Option<User>>;
}

/// Refresh-token bookkeeping for rotation, reuse detection and logout.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Records a newly issued refresh token as unspent.
    async fn issue(&self, session: RefreshSession) -> StoreResult<()>;
    /// Spends `jti`. MUST be atomic: of two concurrent rotations of one token exactly one gets
    /// [`Rotation::Rotated`]. A token already spent or revoked MUST yield [`Rotation::Reused`]
    /// and revoke every token of its family; an unknown or expired one [`Rotation::Unknown`].
    async fn rotate(&self, jti: TokenId, now: Timestamp) -> StoreResult<Rotation>;
    /// Revokes every token of `family` (logout): none of them rotates any more and
    /// [`SessionStore::family_alive`] answers false. A family no longer remembered (every token
    /// expired) needs nothing.
    async fn revoke_family(&self, family: FamilyId) -> StoreResult<()>;
    /// True while `family` has not been revoked.
    async fn family_alive(&self, family: FamilyId) -> StoreResult<bool>;
}

/// Fixed-window counters shared by every instance (login and enqueue limits).
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Counts one hit on `key`. MUST allow at most `limit` hits per `window` and report how long
    /// until the window ends when refusing. Counters MUST expire on their own.
    async fn hit(
        &self,
        key: &RateKey,
        limit: u32,
        window: Duration,
        now: Timestamp,
    ) -> StoreResult<RateDecision>;

    /// Counts `hits` in order, as [`RateLimiter::hit`] each, and stops at the first that
    /// refuses: that refusal is the answer and the hits after it are not counted. A store that
    /// can count them in one round trip SHOULD; this default counts them one after another.
    async fn hit_all(&self, hits: &[RateHit<'_>], now: Timestamp) -> StoreResult<RateDecision> {
        hit_in_turn(self, hits, now).await
    }
}

/// [`RateLimiter::hit_all`] one hit after another: its default, and the way of a store that can
/// do better only sometimes.
pub async fn hit_in_turn<L: RateLimiter + ?Sized>(
    limiter: &L,
    hits: &[RateHit<'_>],
    now: Timestamp,
) -> StoreResult<RateDecision> {
    for h in hits {
        let decision = limiter.hit(h.key, h.limit, h.window, now).await?;
        if decision != RateDecision::Allowed {
            return Ok(decision);
        }
    }
    Ok(RateDecision::Allowed)
}

/// One hit of [`RateLimiter::hit_all`]: `key`, allowed `limit` times per `window`.
#[derive(Debug, Clone, Copy)]
pub struct RateHit<'a> {
    pub key: &'a RateKey,
    pub limit: u32,
    pub window: Duration,
}

/// The waiting queue. Every operation MUST cost O(log n) or better in the queue length and MUST
/// NOT scan tickets; ticket data MUST expire on its own once a ticket is finished.
#[async_trait]
pub trait QueueStore: Send + Sync {
    /// Puts `user` in line for `scope` with the next server-assigned sequence number, unless the
    /// user already has a live (QUEUED/READY/USED) ticket there, which MUST be returned instead
    /// (`created = false`). Atomic per (user, scope): concurrent enqueues yield one ticket.
    async fn enqueue(
        &self,
        ticket: TicketId,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
    ) -> StoreResult<Enqueued> {
        self.enqueue_at(ticket, user, scope, now, Place::Arrival)
            .await
    }

    /// [`QueueStore::enqueue`] with the new ticket's place chosen: behind everyone
    /// ([`Place::Arrival`]), or in the pre-queue's lottery ([`Place::Lottery`]): a lottery ticket
    /// MUST be ahead of every arrival ticket of its scope, and lottery tickets MUST be in the
    /// order of their draws (ties in any fixed order) once the line leaves its pre-queue. In the
    /// same atomic step: a line never given a phase MUST enter [`LinePhase::Prequeue`], and a
    /// lottery placement on a line in any other phase it was given MUST be an arrival.
    async fn enqueue_at(
        &self,
        ticket: TicketId,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
        place: Place,
    ) -> StoreResult<Enqueued>;

    /// Reads a ticket as of `now`: an admission whose `expires_at <= now` MUST read as EXPIRED
    /// (and free its slot), never as READY/USED.
    async fn ticket(&self, id: TicketId, now: Timestamp) -> StoreResult<Option<Ticket>>;

    /// 1-based position of a QUEUED ticket (QUEUED tickets ahead + 1); `None` otherwise.
    async fn position(&self, ticket: &Ticket) -> StoreResult<Option<u64>>;

    /// Counters of one queue as of `now`.
    async fn stats(&self, scope: QueueScope, now: Timestamp) -> StoreResult<QueueStats>;

    /// [`QueueStore::ticket`], then [`QueueStore::stats`] of its queue and, when QUEUED, its
    /// [`QueueStore::position`], as of `now`; `None` if unknown. The default makes those three
    /// calls; a networked store SHOULD answer in one round trip (it is the polled hot path).
    async fn status(&self, id: TicketId, now: Timestamp) -> StoreResult<Option<TicketView>> {
        let Some(ticket) = self.ticket(id, now).await? else {
            return Ok(None);
        };
        let stats = self.stats(ticket.scope, now).await?;
        let position = if ticket.state == TicketState::Queued {
            self.position(&ticket).await?
        } else {
            None
        };
        Ok(Some(TicketView {
            ticket,
            position,
            stats,
        }))
    }

    /// Expires admissions past their `expires_at`, then, while the line's phase is
    /// [`LinePhase::Open`], admits QUEUED tickets in sequence order until `capacity` tickets are
    /// admitted (READY + USED), setting `expires_at = now + ttl`. MUST be one atomic step: with
    /// any number of concurrent promoters the admitted count never exceeds `capacity`, and a line
    /// set to another phase admits nobody. Returns the tickets admitted by this call.
    async fn promote(
        &self,
        scope: QueueScope,
        capacity: u64,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Vec<Ticket>> {
        self.promote_counting(scope, capacity, None, now, ttl).await
    }

    /// [`QueueStore::promote`], counting the admitted tickets as at least those of `reading`
    /// plus every admission stamped after it (whoever made it, spent or not). A promoter caps
    /// `capacity` at the stock it read after `reading`; an admission spent in between (its hold
    /// taken after the stock read, or its slot handed out by another promoter and spent since)
    /// must not free a slot for a ticket that stock no longer has. O(log n).
    async fn promote_counting(
        &self,
        scope: QueueScope,
        capacity: u64,
        reading: Option<LineReading>,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Vec<Ticket>>;

    /// Sets the phase of `scope`'s line (read back in [`QueueStats::phase`]); QUEUED tickets keep
    /// their places whatever the phase. O(1). Returns whether the phase changed, so that exactly
    /// one of several racing callers announces the change.
    async fn set_phase(
        &self,
        scope: QueueScope,
        phase: LinePhase,
        now: Timestamp,
    ) -> StoreResult<bool>;

    /// READY → USED for `user`, re-arming `expires_at = now + ttl`. Returns the ticket as it is
    /// after the call (unchanged when it was not READY, or not `user`'s); `None` if unknown.
    async fn enter(
        &self,
        id: TicketId,
        user: UserId,
        now: Timestamp,
        ttl: Duration,
    ) -> StoreResult<Option<Ticket>>;

    /// Any live state → EXPIRED for `user`'s ticket, removing it from the line and freeing its
    /// slot at once. Returns the ticket after the call; `None` if unknown or not `user`'s.
    async fn leave(
        &self,
        id: TicketId,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>>;

    /// The user's admitted (READY/USED, unexpired) ticket in `scope`, if any.
    async fn admission(
        &self,
        user: UserId,
        scope: QueueScope,
        now: Timestamp,
    ) -> StoreResult<Option<Ticket>>;

    /// READY/USED → ORDERED (an order used this admission; the slot frees). MUST be a no-op on
    /// any other state. Returns whether it changed the ticket.
    async fn consume(&self, id: TicketId, now: Timestamp) -> StoreResult<bool>;

    /// Scopes that have QUEUED or admitted tickets (what the promoter must visit). MUST stay small:
    /// a scope leaves the set once it has neither.
    async fn active_scopes(&self) -> StoreResult<Vec<QueueScope>>;
}

/// A subscription to queue notices.
#[async_trait]
pub trait QueueSubscription: Send {
    /// The next notice; `None` when the channel is closed for good.
    async fn next(&mut self) -> Option<Notice>;
}

/// Fan-out of queue state changes to every host instance (READY pushed the moment it happens).
#[async_trait]
pub trait QueueNotifier: Send + Sync {
    /// Delivers `notice` to every current subscriber of every instance, best effort.
    async fn announce(&self, notice: Notice) -> StoreResult<()>;
    async fn subscribe(&self) -> StoreResult<Box<dyn QueueSubscription>>;
}

/// Which events a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventListing {
    /// ONSALE and CLOSED, by `starts_at` ascending.
    Public,
    /// Every event, by `created_at` descending.
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventUpdate {
    Updated(Event),
    NotFound,
    Rejected(PatchRejection),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDeletion {
    Deleted,
    NotFound,
    /// The event has orders; financial records are never cascaded away.
    HasOrders,
}

/// Events and their stock counters.
#[async_trait]
pub trait EventStore: Send + Sync {
    async fn create(&self, event: Event) -> StoreResult<()>;
    async fn get(&self, id: EventId) -> StoreResult<Option<Event>>;
    async fn list(&self, listing: EventListing) -> StoreResult<Vec<Event>>;
    /// Applies [`Event::patched`] to the current row atomically with respect to stock changes:
    /// a concurrent reservation or payment MUST NOT be lost or overwritten.
    async fn update(
        &self,
        id: EventId,
        patch: EventPatch,
        now: Timestamp,
    ) -> StoreResult<EventUpdate>;
    /// Deletes an event that has no orders.
    async fn delete(&self, id: EventId) -> StoreResult<EventDeletion>;
}

/// Orders with atomic stock reservation and per-user idempotency.
#[async_trait]
pub trait OrderStore: Send + Sync {
    /// In one atomic step: if (user, key) has an unexpired record, return `Replayed` (same
    /// fingerprint) or `KeyMismatch`; otherwise apply [`check_hold`] to the event and the user's
    /// committed quantity, and either create the HOLD order (taking `qty` into `held_qty`) or
    /// return `Rejected`; in both cases remember the outcome under (user, key). Under any
    /// concurrency: `sold + held <= total`, the per-user limit holds, and concurrent requests with
    /// one key produce one order.
    async fn place_hold(&self, req: HoldRequest) -> StoreResult<HoldOutcome>;
    /// The unexpired record of (user, key), if any.
    async fn keyed(
        &self,
        user: UserId,
        key: &str,
        now: Timestamp,
    ) -> StoreResult<Option<IdempotencyRecord>>;
    async fn get(&self, id: OrderId) -> StoreResult<Option<Order>>;
    /// The user's orders, newest first.
    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Order>>;
    /// HOLD/FAIL orders whose hold ended and that have no REQ payment → EXPIRED, their quantity
    /// released from `held_qty`. At most `limit` per call; safe to run concurrently anywhere.
    async fn expire_holds(&self, now: Timestamp, limit: usize) -> StoreResult<Vec<Order>>;
}

/// Payments, their outbox, and result application.
#[async_trait]
pub trait PaymentStore: Send + Sync {
    /// In one atomic step: check the order exists and belongs to `cmd.user`; a PAID order returns
    /// its OK payment as `Existing` (or `AlreadyPaid` if none); a FAIL order goes back to HOLD;
    /// an order neither HOLD nor FAIL is `NotEligible`; an existing REQ payment is returned as
    /// `Existing`; otherwise insert the REQ payment AND its outbox message together, extending the
    /// hold to at least `cmd.settle_by`. At most one REQ payment per order, under any concurrency.
    async fn open(
        &self,
        cmd: PaymentCommand,
    ) -> StoreResult<Result<PaymentOpened, PaymentRejection>>;

    /// Applies a processor verdict atomically:
    /// - OK for a REQ or FAIL payment (a success that arrived after a timeout): if the order is
    ///   HOLD or FAIL, payment OK, order PAID, qty moved from held to sold; otherwise (expired,
    ///   cancelled, or already paid by another payment) payment REFUND_REQUIRED — a charge is
    ///   never dropped silently.
    /// - FAIL for a REQ payment: payment FAIL, a HOLD order → FAIL.
    /// - Anything else (OK or REFUND_REQUIRED payments, FAIL for a FAIL payment) MUST change
    ///   nothing (`Unchanged`). A PAID order MUST NEVER change.
    async fn apply(
        &self,
        cmd: ResultCommand,
    ) -> StoreResult<Result<ResultApplied, ResultRejection>>;

    async fn get(&self, id: PaymentId) -> StoreResult<Option<Payment>>;

    /// REQ payments created at or before `cutoff`, oldest first, at most `limit`.
    async fn overdue(&self, cutoff: Timestamp, limit: usize) -> StoreResult<Vec<Payment>>;

    /// Cheap counters for `/metrics`.
    async fn counts(&self) -> StoreResult<ShopCounts>;

    /// The same counters for the orders of one event and their payments (the monitoring
    /// timeline's per-line figures); `outbox_backlog` is site-wide and left at 0. As cheap as
    /// [`PaymentStore::counts`]: never a scan of the event's orders.
    async fn event_counts(&self, event: EventId) -> StoreResult<ShopCounts>;
}

/// A message waiting in the transactional outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: OutboxId,
    /// Logical queue: the payment request queue.
    pub queue: String,
    pub envelope: Envelope,
    pub attempts: u32,
}

/// The transactional outbox written by [`PaymentStore::open`].
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Leases up to `limit` unsent messages until `now + lease`; a message leased by one relay
    /// MUST NOT be handed to another until its lease ends (so several relays can run).
    async fn claim(
        &self,
        limit: usize,
        now: Timestamp,
        lease: Duration,
    ) -> StoreResult<Vec<OutboxMessage>>;
    /// Marks messages published (confirmed by the broker); they are never handed out again.
    async fn mark_sent(&self, ids: &[OutboxId], now: Timestamp) -> StoreResult<()>;
    /// Unsent messages.
    async fn backlog(&self) -> StoreResult<u64>;
}

/// Publishing side of the bus.
#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes persistently to `queue` and returns once the broker has confirmed it.
    async fn publish(&self, queue: &str, envelope: Envelope) -> StoreResult<()>;

    /// Publishes several messages to `queue`; one result per envelope, in order. Adapters whose
    /// broker takes batches (SQS) override it; the default publishes them concurrently.
    async fn publish_batch(&self, queue: &str, envelopes: Vec<Envelope>) -> Vec<StoreResult<()>> {
        futures::future::join_all(envelopes.into_iter().map(|e| self.publish(queue, e))).await
    }
}

/// How a consumer settles a delivery (vector's three-way outcome).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Done (including business refusals): remove it.
    Ack,
    /// Transient failure: deliver again after `after`, up to the attempt limit, then dead-letter.
    Retry { after: Duration },
    /// Will never succeed (malformed): straight to the dead-letter queue.
    DeadLetter { reason: String },
}

/// Settles one delivery.
#[async_trait]
pub trait Acker: Send + Sync {
    async fn settle(&self, disposition: Disposition) -> StoreResult<()>;
}

/// One message received from a queue.
pub struct Delivery {
    pub envelope: Envelope,
    /// 1 for the first delivery.
    pub attempt: u32,
    pub acker: Box<dyn Acker>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("envelope", &self.envelope)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Consuming side of the bus, for one queue.
#[async_trait]
pub trait BusConsumer: Send + Sync {
    /// Waits for the next delivery; `None` when the consumer is shut down.
    async fn next(&self) -> StoreResult<Option<Delivery>>;
}

/// The mock processor's memory: one verdict per payment, whatever the redeliveries.
#[async_trait]
pub trait PaymentLedger: Send + Sync {
    /// Stores `proposed` for `payment` unless a verdict exists; returns the stored one.
    /// MUST be atomic (two concurrent calls return the same verdict).
    async fn decide(&self, payment: PaymentId, proposed: Verdict) -> StoreResult<Verdict>;
    /// Whether the result for `payment` was already published.
    async fn published(&self, payment: PaymentId) -> StoreResult<bool>;
    async fn mark_published(&self, payment: PaymentId) -> StoreResult<()>;
}

/// Reachability of one dependency, for `/ready` and `/health`.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// A short name (`database`, `redis`, `bus`).
    fn name(&self) -> &'static str;
    async fn ping(&self) -> StoreResult<()>;
}

/// The monitoring timeline: one record of named counters per second, shared by every instance
/// (the admin charts read the same records whichever instance answers). Memory is bounded: at
/// most [`TIMELINE_SECONDS`] records are kept, each with the fields of the lines then active.
#[async_trait]
pub trait TimelineStore: Send + Sync {
    /// Adds each `adds` value to its field of `second`'s record and sets each `levels` field,
    /// creating the record. Concurrent calls for one second from several instances MUST NOT
    /// lose an add (levels: the last write wins). A record MUST be forgotten on its own once it
    /// is more than [`TIMELINE_SECONDS`] seconds older than the newest one written.
    async fn record(
        &self,
        second: u64,
        adds: &[(String, u64)],
        levels: &[(String, u64)],
    ) -> StoreResult<()>;

    /// The records of the seconds `from..=to` that exist, oldest first; at most
    /// [`TIMELINE_SECONDS`] of them (a wider range is cut to its newest seconds).
    async fn read(&self, from: u64, to: u64) -> StoreResult<Vec<TimelineRecord>>;
}

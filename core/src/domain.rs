//! Domain types and the pure rules that adapters apply inside their atomic sections.

use crate::ids::*;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::fmt;

// ---------------------------------------------------------------------------------------------
// Users

/// A login name: 4–50 characters of `[a-zA-Z0-9_-]` (legacy `userId`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LoginName(String);

/// Why a login name was refused; the texts are the legacy class-validator messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LoginNameError {
    #[error("userId must be longer than or equal to 4 characters")]
    TooShort,
    #[error("userId must be shorter than or equal to 50 characters")]
    TooLong,
    #[error("userId must match /^[a-zA-Z0-9_\\-]+$/ regular expression")]
    BadCharacters,
}

impl LoginName {
    /// Validates a name for registration.
    pub fn parse(s: &str) -> Result<Self, Vec<LoginNameError>> {
        let mut errors = Vec::new();
        let n = s.chars().count();
        if n < 4 {
            errors.push(LoginNameError::TooShort);
        }
        if n > 50 {
            errors.push(LoginNameError::TooLong);
        }
        if s.is_empty()
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            errors.push(LoginNameError::BadCharacters);
        }
        if errors.is_empty() {
            Ok(LoginName(s.to_owned()))
        } else {
            Err(errors)
        }
    }

    /// Wraps a name read back from a store or a token (already validated when it was created).
    pub fn trusted(s: impl Into<String>) -> Self {
        LoginName(s.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LoginName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Admin => "ADMIN",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "USER" => Some(Role::User),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A registered account. `password_hash` is a bcrypt hash (legacy hashes verify unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub login: LoginName,
    pub password_hash: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// A stored refresh token. Rotation marks it used; a second use is reuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSession {
    pub jti: TokenId,
    pub family: FamilyId,
    pub user: UserId,
    pub expires_at: Timestamp,
}

/// Result of presenting a refresh token for rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// First use: the token is now spent; the caller issues the next one in the same family.
    Rotated(RefreshSession),
    /// The token was already spent or revoked: the whole family is now revoked.
    Reused { family: FamilyId },
    /// Never issued, expired or forgotten.
    Unknown,
}

/// Outcome of a rate-limit hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    Allowed,
    Limited { retry_after_ms: u64 },
}

// ---------------------------------------------------------------------------------------------
// Events

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventStatus {
    Draft,
    Onsale,
    Closed,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Draft => "DRAFT",
            EventStatus::Onsale => "ONSALE",
            EventStatus::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<EventStatus> {
        match s {
            "DRAFT" => Some(EventStatus::Draft),
            "ONSALE" => Some(EventStatus::Onsale),
            "CLOSED" => Some(EventStatus::Closed),
            _ => None,
        }
    }

    /// DRAFT→ONSALE, ONSALE→CLOSED, and any status to itself.
    pub fn can_become(self, next: EventStatus) -> bool {
        matches!(
            (self, next),
            (EventStatus::Draft, EventStatus::Onsale) | (EventStatus::Onsale, EventStatus::Closed)
        ) || self == next
    }

    /// Visible to buyers (`GET /events`); DRAFT is for admins only.
    pub fn is_public(self) -> bool {
        !matches!(self, EventStatus::Draft)
    }
}

/// A sale. `sold_qty` counts PAID tickets, `held_qty` HOLD and FAIL ones; both are changed only
/// by the order and payment rules below, inside the adapter's atomic section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: EventId,
    pub name: String,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub total_qty: i64,
    pub sold_qty: i64,
    pub held_qty: i64,
    pub max_per_user: i64,
    pub price: i64,
    pub status: EventStatus,
    /// When the pre-queue opens (SPEC §4), before `starts_at`: from then until `starts_at` buyers
    /// join a lottery, drawn once at `starts_at`. `None`: no pre-queue (the legacy behaviour).
    pub prequeue_starts_at: Option<Timestamp>,
    /// Which admissions may buy it (SPEC §4).
    pub queue_mode: QueueMode,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Limits from the legacy DTOs.
pub const MAX_TOTAL_QTY: i64 = 1_000_000;
pub const MAX_PER_USER: i64 = 100;

/// Admin changes to an event; `None` keeps the stored value. Stock counters are not patchable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventPatch {
    pub name: Option<String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub total_qty: Option<i64>,
    pub max_per_user: Option<i64>,
    pub price: Option<i64>,
    pub status: Option<EventStatus>,
    pub prequeue_starts_at: Option<Timestamp>,
    pub queue_mode: Option<QueueMode>,
}

/// Which line admits buyers of an event (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum QueueMode {
    /// An admission of the site-wide `__global__` line or of the event's own line (legacy).
    #[default]
    Global,
    /// Only an admission of the event's own line: no second door into its stock.
    Event,
}

impl QueueMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueMode::Global => "global",
            QueueMode::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<QueueMode> {
        match s {
            "global" => Some(QueueMode::Global),
            "event" => Some(QueueMode::Event),
            _ => None,
        }
    }

    /// Whether an admission of `scope` lets its holder buy event `event` of this mode.
    pub fn admits(self, scope: QueueScope, event: EventId) -> bool {
        match (self, scope) {
            (_, QueueScope::Event(e)) => e == event,
            (QueueMode::Global, QueueScope::Global) => true,
            (QueueMode::Event, QueueScope::Global) => false,
        }
    }
}

/// Why a patch cannot apply to the event as it is now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchRejection {
    #[error("startsAt must be earlier than endsAt")]
    InvertedDates,
    #[error("prequeueStartsAt must be earlier than startsAt")]
    PrequeueAfterStart,
    #[error("an event with a pre-queue must have queueMode event")]
    PrequeueWithoutOwnLine,
    #[error("totalQty cannot be less than sold quantity")]
    TotalBelowCommitted,
    #[error("Invalid status transition from {from} to {to}")]
    InvalidTransition {
        from: &'static str,
        to: &'static str,
    },
}

impl Event {
    /// Tickets neither sold nor held.
    pub fn available(&self) -> i64 {
        self.total_qty - self.sold_qty - self.held_qty
    }

    /// The phase of this event's own line at `now`: closed unless on sale; a pre-queue until
    /// `starts_at` when the event has one; then sold out while nothing is available (a hold that
    /// ends brings it back), open otherwise.
    pub fn line_phase(&self, now: Timestamp) -> LinePhase {
        match self.status {
            EventStatus::Draft | EventStatus::Closed => LinePhase::Closed,
            EventStatus::Onsale if self.in_prequeue(now) => LinePhase::Prequeue {
                starts_at: self.starts_at,
            },
            EventStatus::Onsale if self.available() > 0 => LinePhase::Open,
            EventStatus::Onsale => LinePhase::SoldOut,
        }
    }

    /// Whether a join at `now` goes into the pre-queue's lottery.
    pub fn in_prequeue(&self, now: Timestamp) -> bool {
        self.prequeue_starts_at.is_some() && now < self.starts_at
    }

    /// Whether its line refuses joins at `now`: it has a pre-queue that is not open yet.
    pub fn line_not_open_yet(&self, now: Timestamp) -> bool {
        self.prequeue_starts_at.is_some_and(|p| now < p)
    }

    /// The date rules of a new or patched event: `starts_at < ends_at`, and a pre-queue opens
    /// before the sale starts.
    pub fn check_dates(&self) -> Result<(), PatchRejection> {
        if self.starts_at >= self.ends_at {
            return Err(PatchRejection::InvertedDates);
        }
        if self.prequeue_starts_at.is_some_and(|p| p >= self.starts_at) {
            return Err(PatchRejection::PrequeueAfterStart);
        }
        // A pre-queue bought through the site-wide line would be a lottery anyone can skip.
        if self.prequeue_starts_at.is_some() && self.queue_mode != QueueMode::Event {
            return Err(PatchRejection::PrequeueWithoutOwnLine);
        }
        Ok(())
    }

    /// Applies a patch to the current row (called with the row locked). Checks the resulting
    /// date range (not only when both dates are sent, unlike legacy), that `total_qty` stays at
    /// or above sold + held, and the status model.
    pub fn patched(&self, patch: &EventPatch, now: Timestamp) -> Result<Event, PatchRejection> {
        let mut next = self.clone();
        if let Some(name) = &patch.name {
            next.name = name.clone();
        }
        if let Some(t) = patch.starts_at {
            next.starts_at = t;
        }
        if let Some(t) = patch.ends_at {
            next.ends_at = t;
        }
        if let Some(t) = patch.prequeue_starts_at {
            next.prequeue_starts_at = Some(t);
        }
        if let Some(m) = patch.queue_mode {
            next.queue_mode = m;
        }
        if patch.starts_at.is_some()
            || patch.ends_at.is_some()
            || patch.prequeue_starts_at.is_some()
            || patch.queue_mode.is_some()
        {
            next.check_dates()?;
        }
        if let Some(total) = patch.total_qty {
            if total < self.sold_qty + self.held_qty {
                return Err(PatchRejection::TotalBelowCommitted);
            }
            next.total_qty = total;
        }
        if let Some(m) = patch.max_per_user {
            next.max_per_user = m;
        }
        if let Some(p) = patch.price {
            next.price = p;
        }
        if let Some(status) = patch.status {
            if !self.status.can_become(status) {
                return Err(PatchRejection::InvalidTransition {
                    from: self.status.as_str(),
                    to: status.as_str(),
                });
            }
            next.status = status;
        }
        next.updated_at = now;
        Ok(next)
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting queue

/// The pseudo event id of the site-wide queue joined at login.
pub const GLOBAL_SCOPE: &str = "__global__";

/// Which queue a ticket waits in: one event's, or the site-wide `__global__` one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueScope {
    Global,
    Event(EventId),
}

impl QueueScope {
    /// `__global__` or an event UUID; anything else is refused.
    pub fn parse(s: &str) -> Option<QueueScope> {
        if s == GLOBAL_SCOPE {
            Some(QueueScope::Global)
        } else {
            s.parse().ok().map(QueueScope::Event)
        }
    }

    pub fn event(self) -> Option<EventId> {
        match self {
            QueueScope::Global => None,
            QueueScope::Event(e) => Some(e),
        }
    }
}

impl fmt::Display for QueueScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueScope::Global => f.write_str(GLOBAL_SCOPE),
            QueueScope::Event(e) => e.fmt(f),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TicketState {
    /// Waiting in line.
    Queued,
    /// Admitted: holds an admission slot; a gate token is issued.
    Ready,
    /// Entered with its gate token; still holds its slot.
    Used,
    /// An order was placed with this admission; the slot is free.
    Ordered,
    /// Left, or its admission ran out; the slot is free.
    Expired,
    /// Reported, never stored: a QUEUED ticket of a line still in its pre-queue
    /// ([`LinePhase::Prequeue`]): in the lottery, no position yet.
    Prequeue,
    /// Reported, never stored: a QUEUED ticket of a line whose event has nothing left to sell
    /// ([`LinePhase::SoldOut`]). It is QUEUED again, in its old place, if stock comes back.
    SoldOut,
    /// Reported, never stored: a live ticket of a line whose event is no longer on sale
    /// ([`LinePhase::Closed`]).
    Closed,
}

impl TicketState {
    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::Queued => "QUEUED",
            TicketState::Ready => "READY",
            TicketState::Used => "USED",
            TicketState::Ordered => "ORDERED",
            TicketState::Expired => "EXPIRED",
            TicketState::Prequeue => "PREQUEUE",
            TicketState::SoldOut => "SOLD_OUT",
            TicketState::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<TicketState> {
        match s {
            "QUEUED" => Some(TicketState::Queued),
            "READY" => Some(TicketState::Ready),
            "USED" => Some(TicketState::Used),
            "ORDERED" => Some(TicketState::Ordered),
            "EXPIRED" => Some(TicketState::Expired),
            "PREQUEUE" => Some(TicketState::Prequeue),
            "SOLD_OUT" => Some(TicketState::SoldOut),
            "CLOSED" => Some(TicketState::Closed),
            _ => None,
        }
    }

    /// Holds an admission slot.
    pub fn is_admitted(self) -> bool {
        matches!(self, TicketState::Ready | TicketState::Used)
    }

    /// Returned again by an idempotent enqueue.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            TicketState::Queued | TicketState::Ready | TicketState::Used
        )
    }
}

/// Where an event's line stands in its sale (SPEC §4). Decided from the event by the promoter
/// ([`Event::line_phase`]) and kept by the queue store beside the line, so that every status read
/// sees it in the same step, and promotion admits only while the line is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LinePhase {
    /// Before the sale starts: joins go into a lottery drawn when the line leaves this phase;
    /// nobody is admitted and nobody has a position yet.
    Prequeue { starts_at: Timestamp },
    /// Admitting (the `__global__` line is always open).
    #[default]
    Open,
    /// Nothing left to sell: QUEUED tickets read SOLD_OUT and nobody is admitted, until stock
    /// comes back.
    SoldOut,
    /// The event is no longer on sale: every live ticket reads CLOSED.
    Closed,
}

impl LinePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            LinePhase::Prequeue { .. } => "PREQUEUE",
            LinePhase::Open => "OPEN",
            LinePhase::SoldOut => "SOLD_OUT",
            LinePhase::Closed => "CLOSED",
        }
    }

    /// How a store keeps it: the name, and for a pre-queue its start, `PREQUEUE:<ms>`.
    pub fn encode(self) -> String {
        match self {
            LinePhase::Prequeue { starts_at } => format!("PREQUEUE:{}", starts_at.millis()),
            other => other.as_str().to_owned(),
        }
    }

    /// The inverse of [`LinePhase::encode`].
    pub fn decode(s: &str) -> Option<LinePhase> {
        match s {
            "OPEN" => Some(LinePhase::Open),
            "SOLD_OUT" => Some(LinePhase::SoldOut),
            "CLOSED" => Some(LinePhase::Closed),
            _ => {
                let ms = s.strip_prefix("PREQUEUE:")?.parse().ok()?;
                Some(LinePhase::Prequeue {
                    starts_at: Timestamp::from_millis(ms),
                })
            }
        }
    }

    /// What a ticket stored as `state` reads as on a line in this phase.
    pub fn report(self, state: TicketState) -> TicketState {
        match (self, state) {
            (LinePhase::Closed, s) if s.is_live() => TicketState::Closed,
            (LinePhase::SoldOut, TicketState::Queued) => TicketState::SoldOut,
            (LinePhase::Prequeue { .. }, TicketState::Queued) => TicketState::Prequeue,
            (_, s) => s,
        }
    }
}

/// A waiting-queue ticket for (user, scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    pub user: UserId,
    pub scope: QueueScope,
    pub state: TicketState,
    /// Server-assigned arrival order within its scope (a sequence, not a clock).
    pub seq: u64,
    pub created_at: Timestamp,
    /// When it was admitted (READY), if ever.
    pub admitted_at: Option<Timestamp>,
    /// When its admission ends (READY/USED only).
    pub expires_at: Option<Timestamp>,
}

/// What a promoter read of a line before reading the stock it caps a promotion at
/// ([`QueueStore::promote_counting`](crate::ports::QueueStore::promote_counting)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineReading {
    /// READY + USED tickets when it was read.
    pub admitted: u64,
    /// When it was read (at or before the read): every admission stamped after it counts too,
    /// spent or not, since the stock read after it may not show that admission's hold yet.
    pub at: Timestamp,
}

/// Counters of one queue, all O(1) to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// QUEUED tickets.
    pub queued: u64,
    /// READY + USED tickets (slots in use).
    pub admitted: u64,
    /// Of `admitted`, the USED (entered) ones.
    pub used: u64,
    /// Admissions over the last `window_ms`.
    pub recent_admissions: u64,
    pub window_ms: u64,
    /// The admissions as an exponentially decaying count with time constant `window_ms`, in
    /// thousandths: at a steady rate it tends to rate × window, so ÷ `window_ms` is the
    /// exponentially weighted mean of admissions per second over the last window (SPEC §4).
    pub decayed_admissions_milli: u64,
    /// The line's phase as last set ([`QueueStore::set_phase`](crate::ports::QueueStore::set_phase)).
    pub phase: LinePhase,
}

/// Seconds of monitoring history a [`TimelineStore`](crate::ports::TimelineStore) keeps: the
/// last 15 minutes, one record per second.
pub const TIMELINE_SECONDS: u64 = 900;

/// One second of the monitoring timeline: named counters (`<line>|<name>` or `site|<name>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineRecord {
    /// Unix seconds.
    pub second: u64,
    pub fields: std::collections::BTreeMap<String, u64>,
}

/// Where an enqueue puts a new ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Behind everyone, in arrival order (a server sequence).
    Arrival,
    /// In the pre-queue's lottery of a sale starting at `starts_at`, at `draw`, uniformly random
    /// from a CSPRNG: the lottery is ordered by draws, ahead of every arrival, so the order at the
    /// start is a uniformly random permutation decided once, server-side, and the same on every
    /// instance. The store's phase decides: a line not yet given one enters the pre-queue; a
    /// line that has left it takes the ticket as an arrival (a join that read a stale start).
    Lottery { draw: u64, starts_at: Timestamp },
}

/// Result of an enqueue: a new ticket, or the caller's live one returned again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueued {
    pub ticket: Ticket,
    pub created: bool,
}

/// Everything a status read needs about one ticket, read in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketView {
    /// The ticket as of the read (an overdue admission already EXPIRED).
    pub ticket: Ticket,
    /// QUEUED only: QUEUED tickets ahead + 1.
    pub position: Option<u64>,
    /// Counters of the ticket's queue.
    pub stats: QueueStats,
}

/// What the queue notifier carries to every host instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Notice {
    /// One ticket changed state (an admission): tell its owner.
    Ticket(QueueNotice),
    /// A whole line changed phase (sold out, re-opened, closed): tell everyone waiting in it.
    Line(LineNotice),
    /// An admin changed or deleted an event: every instance forgets what it remembers of it.
    Event(EventNotice),
}

/// Pushed when an admin changes or deletes an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventNotice {
    pub event_id: EventId,
}

/// Pushed when a line changes phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineNotice {
    pub scope: String,
    pub phase: LinePhase,
}

/// Pushed when a ticket changes state on its own (promotion), so hosts can tell the owner now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueNotice {
    pub ticket_id: TicketId,
    pub user_id: UserId,
    pub scope: String,
    pub state: TicketState,
    pub expires_at: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// Orders

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum OrderStatus {
    Hold,
    Paid,
    Fail,
    Expired,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Hold => "HOLD",
            OrderStatus::Paid => "PAID",
            OrderStatus::Fail => "FAIL",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<OrderStatus> {
        match s {
            "HOLD" => Some(OrderStatus::Hold),
            "PAID" => Some(OrderStatus::Paid),
            "FAIL" => Some(OrderStatus::Fail),
            "EXPIRED" => Some(OrderStatus::Expired),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }

    /// Counts against the event's held stock (and the per-user limit).
    pub fn holds_stock(self) -> bool {
        matches!(self, OrderStatus::Hold | OrderStatus::Fail)
    }

    /// Counts against the per-user limit.
    pub fn counts_for_limit(self) -> bool {
        matches!(
            self,
            OrderStatus::Hold | OrderStatus::Fail | OrderStatus::Paid
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub user: UserId,
    pub event_id: EventId,
    pub event_name: String,
    pub qty: i64,
    pub amount: i64,
    pub status: OrderStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// When an unpaid HOLD/FAIL order gives its stock back.
    pub hold_expires_at: Timestamp,
}

/// Everything a store needs to place a HOLD atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRequest {
    pub order_id: OrderId,
    pub user: UserId,
    pub event_id: EventId,
    pub qty: i64,
    pub idempotency_key: String,
    /// Digest of the request body; a replay with another fingerprint is refused.
    pub fingerprint: String,
    pub now: Timestamp,
    pub hold_expires_at: Timestamp,
    /// The idempotency record is kept until then (24 h).
    pub key_expires_at: Timestamp,
}

impl HoldRequest {
    /// A store's guard: the handlers refuse a quantity below one with a 400 before any store
    /// sees it, so one arriving here is a bug, not a client error.
    pub fn check_validated(&self) -> Result<(), crate::StoreError> {
        if self.qty < 1 {
            return Err(crate::StoreError::Internal(format!(
                "hold of {} tickets: quantity must be validated first",
                self.qty
            )));
        }
        Ok(())
    }
}

/// A business refusal of a HOLD (remembered under the idempotency key like a success).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HoldRejection {
    EventNotFound,
    NotOnSale,
    SoldOut,
    OverUserLimit,
}

/// What the idempotency key already stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyedOutcome {
    Order(Order),
    Rejected(HoldRejection),
}

/// A stored idempotency record for (user, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    pub outcome: KeyedOutcome,
}

/// Result of [`crate::ports::OrderStore::place_hold`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldOutcome {
    /// A new HOLD order: stock taken, limit checked.
    Created(Order),
    /// The key was used before with the same fingerprint: its outcome, unchanged.
    Replayed(KeyedOutcome),
    /// Refused now (and remembered under the key).
    Rejected(HoldRejection),
    /// The key was used before with another fingerprint.
    KeyMismatch,
}

/// The reservation rule, applied with the event row (and the user's orders) locked.
/// `user_committed` is the user's HOLD + FAIL + PAID quantity for the event.
pub fn check_hold(event: &Event, qty: i64, user_committed: i64) -> Result<(), HoldRejection> {
    if event.status != EventStatus::Onsale {
        return Err(HoldRejection::NotOnSale);
    }
    if qty > event.max_per_user || user_committed + qty > event.max_per_user {
        return Err(HoldRejection::OverUserLimit);
    }
    if qty > event.available() {
        return Err(HoldRejection::SoldOut);
    }
    Ok(())
}

/// What an order's status change does to its event's held and sold stock and to its buyer's
/// committed quantity (the per-user limit): the one stock rule every store applies, whatever
/// changes the status (a payment's result, the expiry sweep, an operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockMove {
    pub held: i64,
    pub sold: i64,
    pub committed: i64,
}

impl StockMove {
    /// The move of `qty` tickets from an order in `from` to one in `to`.
    pub fn of(from: OrderStatus, to: OrderStatus, qty: i64) -> StockMove {
        let side = |s: OrderStatus| StockMove {
            held: if s.holds_stock() { qty } else { 0 },
            sold: if s == OrderStatus::Paid { qty } else { 0 },
            committed: if s.counts_for_limit() { qty } else { 0 },
        };
        let (before, after) = (side(from), side(to));
        StockMove {
            held: after.held - before.held,
            sold: after.sold - before.sold,
            committed: after.committed - before.committed,
        }
    }

    /// Whether the event's stock changes (not only the buyer's count).
    pub fn moves_stock(self) -> bool {
        self.held != 0 || self.sold != 0
    }
}

// ---------------------------------------------------------------------------------------------
// Payments

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Requested; the processor has not answered.
    Req,
    Ok,
    Fail,
    /// The processor charged, but the order could no longer be paid: money must go back.
    RefundRequired,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Req => "REQ",
            PaymentStatus::Ok => "OK",
            PaymentStatus::Fail => "FAIL",
            PaymentStatus::RefundRequired => "REFUND_REQUIRED",
        }
    }

    pub fn parse(s: &str) -> Option<PaymentStatus> {
        match s {
            "REQ" => Some(PaymentStatus::Req),
            "OK" => Some(PaymentStatus::Ok),
            "FAIL" => Some(PaymentStatus::Fail),
            "REFUND_REQUIRED" => Some(PaymentStatus::RefundRequired),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: OrderId,
    pub user: UserId,
    pub status: PaymentStatus,
    pub method: String,
    pub amount: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Everything a store needs to open a payment and its outbox message in one atomic step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentCommand {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub user: UserId,
    pub method: String,
    /// `requestId` of the outgoing bus message.
    pub request_id: uuid::Uuid,
    pub outbox_id: OutboxId,
    pub now: Timestamp,
    /// A HOLD order's hold is extended to at least this instant while the payment is in flight.
    pub settle_by: Timestamp,
}

impl PaymentCommand {
    /// The REQ payment this command opens for `order`, and the bus request every store writes to
    /// its outbox with it. Built before anything changes, so a failure leaves no half-opened
    /// payment.
    pub fn open(
        &self,
        order: &Order,
    ) -> Result<(Payment, crate::messages::Envelope), crate::StoreError> {
        let payment = Payment {
            id: self.payment_id,
            order_id: order.id,
            user: order.user,
            status: PaymentStatus::Req,
            method: self.method.clone(),
            amount: order.amount,
            created_at: self.now,
            updated_at: self.now,
        };
        let envelope = crate::messages::PaymentRequestMessage::envelope(&payment, self.request_id)
            .map_err(|e| crate::StoreError::Internal(format!("payment request message: {e}")))?;
        Ok((payment, envelope))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRejection {
    OrderNotFound,
    NotOwner,
    AlreadyPaid,
    NotEligible,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOpened {
    /// New REQ payment; its message is in the outbox.
    Created(Payment),
    /// The order already has an active (REQ) payment, or is PAID with an OK one.
    Existing(Payment),
}

/// The processor's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    Ok,
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "OK",
            Verdict::Fail => "FAIL",
        }
    }
}

/// A payment result to apply (from the bus, the provider callback or the timeout sweeper).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCommand {
    pub payment_id: PaymentId,
    pub order_id: OrderId,
    pub verdict: Verdict,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultApplied {
    /// REQ→OK: the order is PAID, its quantity moved from held to sold.
    Paid(Payment),
    /// REQ→FAIL: a HOLD order is now FAIL (stock still held until the hold expires).
    Failed(Payment),
    /// OK for an order that can no longer be paid: recorded for refund.
    RefundRequired(Payment),
    /// The payment was already settled; nothing changed.
    Unchanged(Payment),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultRejection {
    PaymentNotFound,
    WrongOrder,
}

/// Whether an order in `status` can have a payment opened (SPEC §7): HOLD and FAIL orders can;
/// a PAID order answers with its OK payment; EXPIRED and CANCELLED orders cannot.
pub fn payable(status: OrderStatus) -> Result<(), PaymentRejection> {
    match status {
        OrderStatus::Hold | OrderStatus::Fail => Ok(()),
        OrderStatus::Paid => Err(PaymentRejection::AlreadyPaid),
        OrderStatus::Expired | OrderStatus::Cancelled => Err(PaymentRejection::NotEligible),
    }
}

/// What a payment result does once it settles a payment: the payment's new status, the order's
/// new status (`None`: unchanged), and how it is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub payment: PaymentStatus,
    pub order: Option<OrderStatus>,
    pub outcome: Settled,
}

/// How a settling result is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Paid,
    Failed,
    RefundRequired,
}

impl Settled {
    /// The report of the payment as it is once settled.
    pub fn applied(self, payment: Payment) -> ResultApplied {
        match self {
            Settled::Paid => ResultApplied::Paid(payment),
            Settled::Failed => ResultApplied::Failed(payment),
            Settled::RefundRequired => ResultApplied::RefundRequired(payment),
        }
    }
}

/// The payment transitions, applied by every store with the order and payment rows locked.
///
/// `None`: the result changes nothing (a settled payment stays settled; a FAIL never undoes an
/// OK). A success that arrives after the timeout sweeper failed the payment is still money
/// taken: it pays the order if it can, or is recorded for refund. A PAID order never changes.
pub fn settle(verdict: Verdict, payment: PaymentStatus, order: OrderStatus) -> Option<Settlement> {
    let settles = match (verdict, payment) {
        (Verdict::Ok, PaymentStatus::Req | PaymentStatus::Fail)
        | (Verdict::Fail, PaymentStatus::Req) => true,
        (Verdict::Ok, PaymentStatus::Ok | PaymentStatus::RefundRequired)
        | (
            Verdict::Fail,
            PaymentStatus::Ok | PaymentStatus::Fail | PaymentStatus::RefundRequired,
        ) => false,
    };
    if !settles {
        return None;
    }
    Some(match (verdict, order) {
        (Verdict::Ok, OrderStatus::Hold | OrderStatus::Fail) => Settlement {
            payment: PaymentStatus::Ok,
            order: Some(OrderStatus::Paid),
            outcome: Settled::Paid,
        },
        (Verdict::Ok, OrderStatus::Paid | OrderStatus::Expired | OrderStatus::Cancelled) => {
            Settlement {
                payment: PaymentStatus::RefundRequired,
                order: None,
                outcome: Settled::RefundRequired,
            }
        }
        (Verdict::Fail, OrderStatus::Hold) => Settlement {
            payment: PaymentStatus::Fail,
            order: Some(OrderStatus::Fail),
            outcome: Settled::Failed,
        },
        (
            Verdict::Fail,
            OrderStatus::Fail | OrderStatus::Paid | OrderStatus::Expired | OrderStatus::Cancelled,
        ) => Settlement {
            payment: PaymentStatus::Fail,
            order: None,
            outcome: Settled::Failed,
        },
    })
}

/// Outstanding counts for metrics; each MUST be cheap (a counter or an indexed count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShopCounts {
    pub orders_total: u64,
    pub orders_hold: u64,
    pub orders_paid: u64,
    pub orders_failed: u64,
    pub orders_cancelled: u64,
    pub orders_expired: u64,
    pub payments_pending: u64,
    pub payments_ok: u64,
    pub payments_failed: u64,
    pub payments_refund_required: u64,
    pub outbox_backlog: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stock rule: HOLD and FAIL hold stock, PAID sold it, and all three count against the
    /// buyer's limit; EXPIRED and CANCELLED hold nothing.
    #[test]
    fn stock_moves_follow_the_order_status() {
        use OrderStatus::*;
        let m = |held, sold, committed| StockMove {
            held,
            sold,
            committed,
        };
        assert_eq!(StockMove::of(Hold, Paid, 2), m(-2, 2, 0));
        assert_eq!(StockMove::of(Fail, Paid, 2), m(-2, 2, 0));
        assert_eq!(StockMove::of(Fail, Expired, 3), m(-3, 0, -3));
        assert_eq!(StockMove::of(Hold, Fail, 1), m(0, 0, 0));
        assert_eq!(StockMove::of(Paid, Cancelled, 1), m(0, -1, -1));
        assert_eq!(StockMove::of(Expired, Hold, 4), m(4, 0, 4));
        assert!(!StockMove::of(Hold, Fail, 1).moves_stock());
        assert!(StockMove::of(Paid, Cancelled, 1).moves_stock());
        for from in [Hold, Paid, Fail, Expired, Cancelled] {
            for to in [Hold, Paid, Fail, Expired, Cancelled] {
                let there = StockMove::of(from, to, 5);
                let back = StockMove::of(to, from, 5);
                assert_eq!(
                    there,
                    m(-back.held, -back.sold, -back.committed),
                    "{from:?} {to:?}"
                );
            }
        }
    }

    /// SPEC §7's payment table, once for every store: a PAID order never changes, a FAIL never
    /// undoes an OK, a late OK still pays or is recorded for refund.
    #[test]
    fn every_result_on_every_payment_and_order_status() {
        use OrderStatus as O;
        use PaymentStatus as P;
        use Verdict::{Fail, Ok as Okay};
        let orders = [O::Hold, O::Fail, O::Paid, O::Expired, O::Cancelled];
        for order in orders {
            for settled in [P::Ok, P::RefundRequired] {
                assert_eq!(settle(Okay, settled, order), None, "{settled:?} {order:?}");
                assert_eq!(settle(Fail, settled, order), None, "{settled:?} {order:?}");
            }
            assert_eq!(
                settle(Fail, P::Fail, order),
                None,
                "a FAIL is final for FAIL"
            );
            for from in [P::Req, P::Fail] {
                let s = settle(Okay, from, order).expect("an OK settles REQ and FAIL");
                match order {
                    O::Hold | O::Fail => {
                        assert_eq!(
                            (s.payment, s.order, s.outcome),
                            (P::Ok, Some(O::Paid), Settled::Paid)
                        );
                    }
                    O::Paid | O::Expired | O::Cancelled => assert_eq!(
                        (s.payment, s.order, s.outcome),
                        (P::RefundRequired, None, Settled::RefundRequired)
                    ),
                }
            }
            let s = settle(Fail, P::Req, order).expect("a FAIL settles REQ");
            assert_eq!((s.payment, s.outcome), (P::Fail, Settled::Failed));
            assert_eq!(s.order, (order == O::Hold).then_some(O::Fail), "{order:?}");
        }
        assert_eq!(payable(O::Hold), Ok(()));
        assert_eq!(payable(O::Fail), Ok(()));
        assert_eq!(payable(O::Paid), Err(PaymentRejection::AlreadyPaid));
        assert_eq!(payable(O::Expired), Err(PaymentRejection::NotEligible));
        assert_eq!(payable(O::Cancelled), Err(PaymentRejection::NotEligible));
    }

    fn event(total: i64, sold: i64, held: i64, max: i64) -> Event {
        Event {
            id: EventId(uuid::Uuid::nil()),
            name: "e".into(),
            starts_at: Timestamp(0),
            ends_at: Timestamp(1),
            total_qty: total,
            sold_qty: sold,
            held_qty: held,
            max_per_user: max,
            price: 100,
            status: EventStatus::Onsale,
            prequeue_starts_at: None,
            queue_mode: QueueMode::Global,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn login_names_follow_the_legacy_rules() {
        assert!(LoginName::parse("test0001").is_ok());
        assert!(LoginName::parse("a-b_c").is_ok());
        assert_eq!(
            LoginName::parse("abc").unwrap_err(),
            vec![LoginNameError::TooShort]
        );
        assert_eq!(
            LoginName::parse("ab cd").unwrap_err(),
            vec![LoginNameError::BadCharacters]
        );
        assert_eq!(LoginName::parse(&"a".repeat(51)).unwrap_err().len(), 1);
    }

    #[test]
    fn status_model_allows_only_forward_steps() {
        use EventStatus::*;
        assert!(Draft.can_become(Onsale));
        assert!(Onsale.can_become(Closed));
        assert!(Closed.can_become(Closed));
        assert!(!Draft.can_become(Closed));
        assert!(!Closed.can_become(Onsale));
        assert!(!Onsale.can_become(Draft));
    }

    #[test]
    fn patch_never_drops_total_below_sold_plus_held() {
        let e = event(10, 4, 3, 2);
        let p = EventPatch {
            total_qty: Some(6),
            ..Default::default()
        };
        assert_eq!(
            e.patched(&p, Timestamp(5)),
            Err(PatchRejection::TotalBelowCommitted)
        );
        let p = EventPatch {
            total_qty: Some(7),
            ..Default::default()
        };
        assert_eq!(e.patched(&p, Timestamp(5)).unwrap().total_qty, 7);
    }

    #[test]
    fn patch_checks_the_resulting_date_range() {
        let e = event(10, 0, 0, 2);
        let p = EventPatch {
            starts_at: Some(Timestamp(5)),
            ..Default::default()
        };
        assert_eq!(
            e.patched(&p, Timestamp(0)),
            Err(PatchRejection::InvertedDates)
        );
    }

    #[test]
    fn hold_rule_checks_sale_limit_and_stock() {
        let e = event(10, 5, 4, 2);
        assert_eq!(check_hold(&e, 1, 0), Ok(()));
        assert_eq!(check_hold(&e, 2, 0), Err(HoldRejection::SoldOut));
        assert_eq!(check_hold(&e, 1, 2), Err(HoldRejection::OverUserLimit));
        let mut closed = e.clone();
        closed.status = EventStatus::Closed;
        assert_eq!(check_hold(&closed, 1, 0), Err(HoldRejection::NotOnSale));
    }
}

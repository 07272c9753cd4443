//! The request and response bodies of the HTTP API, as types.
//!
//! A response is built from its domain value (`From<&Event> for Event`, …) and serialized with
//! the legacy camelCase names and ISO-8601 UTC dates with milliseconds. A request is read from
//! its JSON object by the legacy validator ([`crate::validate`]), which keeps the class-validator
//! messages; its fields (`FIELDS`, the keys it accepts) are its schema's properties, which a test
//! checks. The OpenAPI document ([`crate::openapi`]) is generated from these types, so what is
//! documented is what is served.

use crate::error::ApiError;
use crate::validate::{Validator, login_and_password};
use flash_core::domain::{self, QueueScope};
use flash_core::{EventId, OrderId, PaymentId, TicketId, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use uuid::Uuid;

/// The JSON object of a request body.
pub type Body = Map<String, Value>;

/// A wire enum: a core enum serialized by its `as_str`, with every variant in its schema. The
/// variant list is matched exhaustively, so a variant added to the core fails to compile here
/// until it is documented.
macro_rules! wire_enum {
    ($(#[doc = $doc:literal])* $name:ident($core:ident) { $($variant:ident),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name(pub domain::$core);

        impl $name {
            /// Every value on the wire, in declaration order.
            pub fn values() -> Vec<&'static str> {
                let exhaustive = |v: domain::$core| match v {
                    $(domain::$core::$variant)|+ => v.as_str(),
                };
                vec![$(exhaustive(domain::$core::$variant)),+]
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.0.as_str())
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let doc: &[&str] = &[$($doc.trim()),*];
                let description = doc.join(" ");
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some($name::values()))
                    .description((!description.is_empty()).then_some(description))
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

wire_enum!(EventStatus(EventStatus) { Draft, Onsale, Closed });
wire_enum!(OrderStatus(OrderStatus) { Hold, Paid, Fail, Expired, Cancelled });
wire_enum!(PaymentStatus(PaymentStatus) { Req, Ok, Fail, RefundRequired });
wire_enum!(
    /// PREQUEUE: in the pre-queue's lottery, no position until the sale starts. SOLD_OUT: the
    /// event has nothing left to sell; the ticket keeps its place and is QUEUED again if stock
    /// returns. CLOSED: the event is no longer on sale.
    TicketState(TicketState) { Prequeue, Queued, Ready, Used, Ordered, Expired, SoldOut, Closed }
);
wire_enum!(
    /// event: bought only with an admission of the event's own line (a global admission is
    /// refused with 403); global: also with a `__global__` admission (legacy).
    QueueMode(QueueMode) { Global, Event }
);

// ---------------------------------------------------------------------------------------------
// Responses

/// Legacy Event plus `heldQty` / `availableQty`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: Uuid,
    pub name: String,
    #[schema(format = DateTime, example = "2025-11-03T10:00:00.000Z")]
    pub starts_at: String,
    #[schema(format = DateTime, example = "2025-11-03T12:00:00.000Z")]
    pub ends_at: String,
    pub total_qty: i64,
    pub sold_qty: i64,
    /// Stock held by unpaid orders.
    pub held_qty: i64,
    /// What is left to sell: total − sold − held, never below 0.
    pub available_qty: i64,
    pub max_per_user: i64,
    pub price: i64,
    pub status: EventStatus,
    /// When the pre-queue opens (SPEC §4): from then until startsAt joins go into a lottery
    /// drawn at startsAt. null: no pre-queue.
    #[schema(format = DateTime, required)]
    pub prequeue_starts_at: Option<String>,
    pub queue_mode: QueueMode,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&domain::Event> for Event {
    fn from(e: &domain::Event) -> Self {
        Event {
            id: e.id.0,
            name: e.name.clone(),
            starts_at: e.starts_at.to_iso(),
            ends_at: e.ends_at.to_iso(),
            total_qty: e.total_qty,
            sold_qty: e.sold_qty,
            held_qty: e.held_qty,
            available_qty: e.available().max(0),
            max_per_user: e.max_per_user,
            price: e.price,
            status: EventStatus(e.status),
            prequeue_starts_at: e.prequeue_starts_at.map(Timestamp::to_iso),
            queue_mode: QueueMode(e.queue_mode),
            created_at: e.created_at.to_iso(),
            updated_at: e.updated_at.to_iso(),
        }
    }
}

/// An order's fields under either id name.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderFields {
    pub status: OrderStatus,
    pub amount: i64,
    pub qty: i64,
    pub event_id: Uuid,
    pub event_name: String,
    /// When an unpaid HOLD or FAIL order gives its stock back.
    #[schema(format = DateTime)]
    pub hold_expires_at: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&domain::Order> for OrderFields {
    fn from(o: &domain::Order) -> Self {
        OrderFields {
            status: OrderStatus(o.status),
            amount: o.amount,
            qty: o.qty,
            event_id: o.event_id.0,
            event_name: o.event_name.clone(),
            hold_expires_at: o.hold_expires_at.to_iso(),
            created_at: o.created_at.to_iso(),
            updated_at: o.updated_at.to_iso(),
        }
    }
}

/// An order's body with its id under the key the legacy route names it by.
macro_rules! order_body {
    ($(#[$doc:meta])* $name:ident { $id:ident }) => {
        $(#[$doc])*
        #[derive(Debug, Serialize, ToSchema)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            pub $id: Uuid,
            #[serde(flatten)]
            pub order: OrderFields,
        }

        impl From<&domain::Order> for $name {
            fn from(o: &domain::Order) -> Self {
                $name {
                    $id: o.id.0,
                    order: o.into(),
                }
            }
        }
    };
}

order_body! {
    /// `POST /orders` names the order `orderId` (legacy).
    OrderResponse { order_id }
}

order_body! {
    /// The reads name the order `id` (legacy).
    OrderDetail { id }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentResponse {
    pub payment_id: Uuid,
    pub order_id: Uuid,
    pub status: PaymentStatus,
    pub method: String,
    pub amount: i64,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&domain::Payment> for PaymentResponse {
    fn from(p: &domain::Payment) -> Self {
        PaymentResponse {
            payment_id: p.id.0,
            order_id: p.order_id.0,
            status: PaymentStatus(p.status),
            method: p.method.clone(),
            amount: p.amount,
            created_at: p.created_at.to_iso(),
            updated_at: p.updated_at.to_iso(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
}

impl From<flash_handlers::auth::TokenPair> for TokenPair {
    fn from(p: flash_handlers::auth::TokenPair) -> Self {
        TokenPair {
            access_token: p.access_token,
            refresh_token: p.refresh_token,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnqueueResponse {
    pub ticket_id: Uuid,
}

/// A ticket's state and place, over HTTP (`GET /queue/status`) and on the socket
/// (`queue:update`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    pub ticket_id: Uuid,
    /// The ticket's line: an event id or `__global__`.
    pub event_id: String,
    pub state: TicketState,
    /// QUEUED only: QUEUED tickets ahead + 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub position: Option<u64>,
    /// PREQUEUE only: when the sale starts and the lottery is drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub starts_at: Option<String>,
    /// READY only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gate_token: Option<String>,
    /// QUEUED tickets of the same line.
    pub queue_size: u64,
    /// The same figure as queueSize (legacy name).
    pub queue_length: u64,
    /// Admissions the line allows at once.
    pub ready_capacity: u64,
    /// QUEUED only, from the measured admission rate; null otherwise.
    #[schema(required)]
    pub estimated_wait_seconds: Option<u64>,
}

impl From<&flash_handlers::queue::TicketStatus> for QueueStatus {
    fn from(st: &flash_handlers::queue::TicketStatus) -> Self {
        QueueStatus {
            ticket_id: st.ticket.id.0,
            event_id: st.ticket.scope.to_string(),
            state: TicketState(st.ticket.state),
            position: st.position,
            starts_at: st.starts_at.map(Timestamp::to_iso),
            gate_token: st.gate_token.clone(),
            queue_size: st.queue_size,
            queue_length: st.queue_size,
            ready_capacity: st.ready_capacity,
            estimated_wait_seconds: st.estimated_wait_seconds,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnterResponse {
    #[schema(example = "entered")]
    pub status: &'static str,
}

/// The ticket, now EXPIRED.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaveResponse {
    pub ticket_id: Uuid,
    pub state: TicketState,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    #[schema(example = "ok")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteEventResponse {
    #[schema(example = "Event deleted successfully")]
    pub message: &'static str,
}

/// One dependency's check.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyCheck {
    /// `up` or `down`.
    #[schema(example = "up")]
    pub status: &'static str,
    /// Milliseconds; absent when down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_time: Option<u64>,
}

/// `GET /health`, the legacy report.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    /// `ok`, or `error` when a dependency is down.
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub timestamp: String,
    /// Process uptime in seconds.
    pub uptime: f64,
    /// One entry per dependency (database, redis, …).
    pub checks: BTreeMap<String, DependencyCheck>,
}

/// `GET /ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyReport {
    /// `ready`, or `not_ready` when a dependency is down.
    #[schema(example = "ready")]
    pub status: &'static str,
    pub checks: BTreeMap<String, DependencyCheck>,
}

/// Orders per second of the line's event (the site's on `__global__`), by outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrdersPerSecond {
    pub created: Vec<Option<f64>>,
    pub paid: Vec<Option<f64>>,
    pub failed: Vec<Option<f64>>,
    pub expired: Vec<Option<f64>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentsPerSecond {
    pub ok: Vec<Option<f64>>,
    pub failed: Vec<Option<f64>>,
}

/// A change of the line's phase (OPEN also when its event is put on sale).
#[derive(Debug, Serialize, ToSchema)]
pub struct PhaseMarker {
    /// Unix seconds.
    pub t: u64,
    #[schema(example = "OPEN")]
    pub phase: &'static str,
}

/// `GET /events/admin/timeline`: per-second series aligned on `t` (unix seconds), ready for a
/// chart; null where a second has no figure.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// `__global__` or an event id.
    pub line: String,
    /// The newest complete second covered: the next `since`.
    pub until: u64,
    #[schema(example = 1)]
    pub period_seconds: u64,
    /// The most seconds kept.
    pub capacity: u64,
    /// The line's phase in its newest sample.
    #[schema(required)]
    pub phase: Option<&'static str>,
    /// Every line with figures in the samples read.
    pub lines: Vec<String>,
    pub t: Vec<u64>,
    pub queued: Vec<Option<u64>>,
    pub admitted: Vec<Option<u64>>,
    pub arrivals_per_second: Vec<Option<u64>>,
    pub admissions_per_second: Vec<Option<u64>>,
    pub estimated_wait_seconds: Vec<Option<u64>>,
    pub orders_per_second: OrdersPerSecond,
    pub payments_per_second: PaymentsPerSecond,
    pub requests_per_second: Vec<Option<u64>>,
    pub client_errors_per_second: Vec<Option<u64>>,
    pub server_errors_per_second: Vec<Option<u64>>,
    /// The bound of the latency bucket holding the 99th percentile.
    pub p99_seconds: Vec<Option<f64>>,
    pub markers: Vec<PhaseMarker>,
}

impl Timeline {
    pub fn of(line: &QueueScope, v: flash_handlers::timeline::TimelineView) -> Self {
        Timeline {
            line: line.to_string(),
            until: v.until,
            period_seconds: 1,
            capacity: domain::TIMELINE_SECONDS,
            phase: v.phase,
            lines: v.lines,
            t: v.seconds,
            queued: v.queued,
            admitted: v.admitted,
            arrivals_per_second: v.arrivals,
            admissions_per_second: v.admissions,
            estimated_wait_seconds: v.estimated_wait,
            orders_per_second: OrdersPerSecond {
                created: v.orders_created,
                paid: v.orders_paid,
                failed: v.orders_failed,
                expired: v.orders_expired,
            },
            payments_per_second: PaymentsPerSecond {
                ok: v.payments_ok,
                failed: v.payments_failed,
            },
            requests_per_second: v.requests,
            client_errors_per_second: v.client_errors,
            server_errors_per_second: v.server_errors,
            p99_seconds: v.p99,
            markers: v
                .markers
                .iter()
                .map(|m| PhaseMarker {
                    t: m.second,
                    phase: m.phase,
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A request body: the keys it accepts, and how it is read.
pub trait Request: ToSchema + Sized {
    /// The accepted keys, in the schema's order; any other key is refused.
    const FIELDS: &'static [&'static str];

    /// The body read by the legacy validator: every message of every field, or the value.
    fn read(body: &Body) -> Result<Self, ApiError>;
}

/// The register form (SPEC §11).
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(min_length = 4, max_length = 50, pattern = r"^[a-zA-Z0-9_\-]+$")]
    pub user_id: String,
    #[schema(min_length = 8)]
    pub password: String,
}

impl Request for RegisterRequest {
    const FIELDS: &'static [&'static str] = &["userId", "password"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let (user_id, password) = login_and_password(&mut v);
        v.finish_api()?;
        Ok(RegisterRequest { user_id, password })
    }
}

/// The register form with the shared admin secret.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterAdminRequest {
    #[schema(min_length = 4, max_length = 50, pattern = r"^[a-zA-Z0-9_\-]+$")]
    pub user_id: String,
    #[schema(min_length = 8)]
    pub password: String,
    #[schema(min_length = 1)]
    pub admin_secret: String,
}

impl Request for RegisterAdminRequest {
    const FIELDS: &'static [&'static str] = &["userId", "password", "adminSecret"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let (user_id, password) = login_and_password(&mut v);
        let admin_secret = v.string("adminSecret").not_empty().get();
        v.finish_api()?;
        Ok(RegisterAdminRequest {
            user_id,
            password,
            admin_secret,
        })
    }
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(min_length = 1)]
    pub user_id: String,
    #[schema(min_length = 1)]
    pub password: String,
}

impl Request for LoginRequest {
    const FIELDS: &'static [&'static str] = &["userId", "password"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let user_id = v.string("userId").not_empty().get();
        let password = v.string("password").not_empty().get();
        v.finish_api()?;
        Ok(LoginRequest { user_id, password })
    }
}

/// `POST /auth/refresh` and `/auth/logout`.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

impl Request for RefreshRequest {
    const FIELDS: &'static [&'static str] = &["refreshToken"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let refresh_token = v.string("refreshToken").not_empty().get();
        v.finish_api()?;
        Ok(RefreshRequest { refresh_token })
    }
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnqueueRequest {
    /// An event id, or `__global__` for the site-wide queue.
    #[schema(value_type = String, example = "__global__")]
    pub event_id: QueueScope,
}

impl Request for EnqueueRequest {
    const FIELDS: &'static [&'static str] = &["eventId"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let v = Validator::new(body, Self::FIELDS);
        let mut messages = v.finish().err().unwrap_or_default();
        // An event UUID, or `__global__` (the site-wide queue, which legacy joined only by
        // socket).
        let scope = body
            .get("eventId")
            .and_then(Value::as_str)
            .and_then(QueueScope::parse);
        if scope.is_none() {
            messages.push("eventId must be a UUID".into());
        }
        match scope.filter(|_| messages.is_empty()) {
            Some(event_id) => Ok(EnqueueRequest { event_id }),
            None => Err(ApiError::validation(messages)),
        }
    }
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnterRequest {
    #[schema(value_type = Uuid)]
    pub ticket_id: TicketId,
    #[schema(min_length = 1)]
    pub gate_token: String,
}

impl Request for EnterRequest {
    const FIELDS: &'static [&'static str] = &["ticketId", "gateToken"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let ticket_id = TicketId(v.uuid("ticketId").get());
        let gate_token = v.string("gateToken").not_empty().get();
        v.finish_api()?;
        Ok(EnterRequest {
            ticket_id,
            gate_token,
        })
    }
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaveRequest {
    #[schema(value_type = Uuid)]
    pub ticket_id: TicketId,
}

impl Request for LeaveRequest {
    const FIELDS: &'static [&'static str] = &["ticketId"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let ticket_id = TicketId(v.uuid("ticketId").get());
        v.finish_api()?;
        Ok(LeaveRequest { ticket_id })
    }
}

/// Prices are PostgreSQL `integer`s (legacy schema): larger values are refused, not truncated.
pub const MAX_PRICE: i64 = i32::MAX as i64;

/// `queue_mode`: `global` (the legacy default) or `event` (SPEC §4), when given.
fn queue_mode(v: &mut Validator<'_>) -> Option<domain::QueueMode> {
    v.string("queue_mode")
        .optional()
        .one_of(&["global", "event"])
        .opt()
        .and_then(|s| domain::QueueMode::parse(&s))
}

/// `POST /events`, snake_case keys as in the legacy API.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventRequest {
    #[schema(min_length = 2, max_length = 120)]
    pub name: String,
    /// RFC 3339 date-time (or YYYY-MM-DD); must be before ends_at.
    #[schema(value_type = String, format = DateTime, example = "2025-11-03T10:00:00.000Z")]
    pub starts_at: Timestamp,
    #[schema(value_type = String, format = DateTime, example = "2025-11-03T12:00:00.000Z")]
    pub ends_at: Timestamp,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub total_qty: i64,
    #[schema(minimum = 1, maximum = 100)]
    pub max_per_user: i64,
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub price: i64,
    /// RFC 3339 date-time (or YYYY-MM-DD); must be before starts_at. Opens a pre-queue whose
    /// joins are put in a uniformly random order at starts_at.
    #[schema(value_type = Option<String>, format = DateTime, example = "2025-11-03T09:30:00.000Z")]
    pub prequeue_starts_at: Option<Timestamp>,
    /// Default global. A pre-queue needs event.
    #[schema(value_type = Option<QueueMode>)]
    pub queue_mode: Option<domain::QueueMode>,
}

/// The keys of an event body, in declaration order; `status` is the patch's alone.
const EVENT_FIELDS: [&str; 9] = [
    "name",
    "starts_at",
    "ends_at",
    "total_qty",
    "max_per_user",
    "price",
    "prequeue_starts_at",
    "queue_mode",
    "status",
];

impl Request for CreateEventRequest {
    const FIELDS: &'static [&'static str] = EVENT_FIELDS.split_last().expect("nine fields").1;

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let e = event_fields(&mut v, false);
        v.finish_api()?;
        // Valid, so every required field is there.
        Ok(CreateEventRequest {
            name: e.name.unwrap_or_default(),
            starts_at: e.starts_at.unwrap_or_default(),
            ends_at: e.ends_at.unwrap_or_default(),
            total_qty: e.total_qty.unwrap_or_default(),
            max_per_user: e.max_per_user.unwrap_or_default(),
            price: e.price.unwrap_or_default(),
            prequeue_starts_at: e.prequeue_starts_at,
            queue_mode: e.queue_mode,
        })
    }
}

/// The event fields as `POST /events` reads them (`patch` false: all but the pre-queue and the
/// mode required, no status) or as `PATCH /events/:id` does (any subset, status too), with the
/// same rules and messages.
fn event_fields(v: &mut Validator<'_>, patch: bool) -> UpdateEventRequest {
    UpdateEventRequest {
        name: v.string("name").optional_if(patch).length(2, 120).opt(),
        starts_at: v.date("starts_at").optional_if(patch).opt(),
        ends_at: v.date("ends_at").optional_if(patch).opt(),
        total_qty: v
            .int("total_qty")
            .optional_if(patch)
            .positive()
            .max(domain::MAX_TOTAL_QTY)
            .opt(),
        max_per_user: v
            .int("max_per_user")
            .optional_if(patch)
            .positive()
            .max(domain::MAX_PER_USER)
            .opt(),
        price: v
            .int("price")
            .optional_if(patch)
            .min(0)
            .max(MAX_PRICE)
            .opt(),
        prequeue_starts_at: v.date("prequeue_starts_at").optional().opt(),
        queue_mode: queue_mode(v),
        status: if patch {
            v.string("status")
                .optional()
                .one_of(&["DRAFT", "ONSALE", "CLOSED"])
                .opt()
                .and_then(|s| domain::EventStatus::parse(&s))
        } else {
            None
        },
    }
}

impl From<CreateEventRequest> for flash_handlers::events::NewEvent {
    fn from(r: CreateEventRequest) -> Self {
        flash_handlers::events::NewEvent {
            name: r.name,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            total_qty: r.total_qty,
            max_per_user: r.max_per_user,
            price: r.price,
            prequeue_starts_at: r.prequeue_starts_at,
            queue_mode: r.queue_mode.unwrap_or_default(),
        }
    }
}

/// `PATCH /events/:id`: any subset of the fields, snake_case keys. Stock counters cannot be set.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventRequest {
    #[schema(min_length = 2, max_length = 120)]
    pub name: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// Cannot drop below sold + held.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub total_qty: Option<i64>,
    #[schema(minimum = 1, maximum = 100)]
    pub max_per_user: Option<i64>,
    #[schema(minimum = 0, maximum = 2_147_483_647)]
    pub price: Option<i64>,
    /// Must be before starts_at.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub prequeue_starts_at: Option<Timestamp>,
    #[schema(value_type = Option<QueueMode>)]
    pub queue_mode: Option<domain::QueueMode>,
    #[schema(value_type = Option<EventStatus>)]
    pub status: Option<domain::EventStatus>,
}

impl Request for UpdateEventRequest {
    const FIELDS: &'static [&'static str] = &EVENT_FIELDS;

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let patch = event_fields(&mut v, true);
        v.finish_api()?;
        Ok(patch)
    }
}

impl From<UpdateEventRequest> for domain::EventPatch {
    fn from(r: UpdateEventRequest) -> Self {
        domain::EventPatch {
            name: r.name,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            total_qty: r.total_qty,
            max_per_user: r.max_per_user,
            price: r.price,
            prequeue_starts_at: r.prequeue_starts_at,
            queue_mode: r.queue_mode,
            status: r.status,
        }
    }
}

/// `POST /orders`, snake_case keys as in the legacy API.
#[derive(Debug, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    #[schema(value_type = Uuid)]
    pub event_id: EventId,
    /// At most the event's maxPerUser, counting the caller's live orders.
    #[schema(minimum = 1)]
    pub qty: i64,
}

impl Request for CreateOrderRequest {
    const FIELDS: &'static [&'static str] = &["event_id", "qty"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let event_id = EventId(v.uuid("event_id").get());
        // Above the event's per-user limit is the handler's legacy 400, not a DTO rule.
        let qty = v.int("qty").positive().get();
        v.finish_api()?;
        Ok(CreateOrderRequest { event_id, qty })
    }
}

#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreatePaymentRequest {
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[schema(min_length = 1, max_length = 64, example = "MOCK")]
    pub method: String,
}

impl Request for CreatePaymentRequest {
    const FIELDS: &'static [&'static str] = &["orderId", "method"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let order_id = OrderId(v.uuid("orderId").get());
        let method = v
            .string("method")
            .length(1, flash_handlers::payments::MAX_METHOD_LEN)
            .get();
        v.finish_api()?;
        Ok(CreatePaymentRequest { order_id, method })
    }
}

/// The provider's verdict on a payment.
#[derive(Debug, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentCallbackRequest {
    #[schema(value_type = Uuid)]
    pub order_id: OrderId,
    #[schema(value_type = Uuid)]
    pub payment_id: PaymentId,
    /// `OK` or `FAIL`.
    #[schema(value_type = String, pattern = "^(OK|FAIL)$", example = "OK")]
    pub status: domain::Verdict,
}

impl Request for PaymentCallbackRequest {
    const FIELDS: &'static [&'static str] = &["orderId", "paymentId", "status"];

    fn read(body: &Body) -> Result<Self, ApiError> {
        let mut v = Validator::new(body, Self::FIELDS);
        let order_id = OrderId(v.uuid("orderId").get());
        let payment_id = PaymentId(v.uuid("paymentId").get());
        let status = v.string("status").one_of(&["OK", "FAIL"]).get();
        v.finish_api()?;
        let status = if status == "OK" {
            domain::Verdict::Ok
        } else {
            domain::Verdict::Fail
        };
        Ok(PaymentCallbackRequest {
            order_id,
            payment_id,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    /// The schema's properties in declaration order.
    fn properties<T: ToSchema>() -> Vec<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn fields_are_the_schema<T: Request>() {
        assert_eq!(
            properties::<T>(),
            T::FIELDS,
            "{}: the keys the validator accepts are the documented ones",
            T::name()
        );
        let schema = serde_json::to_value(T::schema()).unwrap_or_default();
        assert_eq!(schema["additionalProperties"], false, "{}", T::name());
    }

    #[test]
    fn every_request_accepts_exactly_its_documented_keys() {
        fields_are_the_schema::<RegisterRequest>();
        fields_are_the_schema::<RegisterAdminRequest>();
        fields_are_the_schema::<LoginRequest>();
        fields_are_the_schema::<RefreshRequest>();
        fields_are_the_schema::<EnqueueRequest>();
        fields_are_the_schema::<EnterRequest>();
        fields_are_the_schema::<LeaveRequest>();
        fields_are_the_schema::<CreateEventRequest>();
        fields_are_the_schema::<UpdateEventRequest>();
        fields_are_the_schema::<CreateOrderRequest>();
        fields_are_the_schema::<CreatePaymentRequest>();
        fields_are_the_schema::<PaymentCallbackRequest>();
    }

    #[test]
    fn wire_enums_list_every_core_value() {
        assert_eq!(
            TicketState::values(),
            [
                "PREQUEUE", "QUEUED", "READY", "USED", "ORDERED", "EXPIRED", "SOLD_OUT", "CLOSED"
            ]
        );
        assert_eq!(
            PaymentStatus::values(),
            ["REQ", "OK", "FAIL", "REFUND_REQUIRED"]
        );
        let schema = serde_json::to_value(TicketState::schema()).unwrap_or_default();
        assert_eq!(schema["type"], "string");
        assert!(
            schema["description"]
                .as_str()
                .is_some_and(|d| d.contains("SOLD_OUT"))
        );
    }
}

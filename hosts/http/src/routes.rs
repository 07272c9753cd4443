//! The gateway and api routes: legacy paths, status codes, JSON field names and error texts.
//! Each route validates its DTO, builds a [`Context`] and calls one handler; nothing else.

use crate::body::{JsonObject, PathUuid, QueryMap, RawBody};
use crate::dto::{self, Request as _};
use crate::error::{ApiError, ErrorBody};
use crate::openapi::{BadBody, BadRequest, Conflict, Forbidden, NotFound, Refusals, Unauthorized};
use crate::state::AppState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flash_core::domain::{LoginName, QueueScope};
use flash_core::ports::EventListing;
use flash_core::{Context, EventId, OrderId, Principal, TicketId};
use flash_handlers::auth::{AccessError, LoginRequest, RegisterRequest};
use flash_handlers::orders::PlaceOrderRequest;
use flash_handlers::payments::{CallbackRequest, PaymentRequest};
use flash_handlers::timeline::TimelineQuery;
use serde::Serialize;

type ApiResult = Result<Response, ApiError>;

fn created(body: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

fn ok(body: impl Serialize) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// Legacy register/logout answer 200 with an empty body.
fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

fn fail<E: flash_core::Classify + std::fmt::Display>(e: E) -> ApiError {
    ApiError::from_classified(&e)
}

// ---------------------------------------------------------------------------------------------
// Request context

/// The request's context: request id, optional caller (a present but invalid token is a 401),
/// `Idempotency-Key`, `X-Gate-Token`, client address.
pub struct Cx(pub Context);

/// Like [`Cx`] but a caller is required (legacy guard: 401 `Unauthorized`).
pub struct AuthedCx(pub Context, pub Principal);

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The caller of a request with `Authorization: Bearer`, checked against its session: a token
/// of a logged-out or revoked session is refused like a forged one.
async fn principal(parts: &Parts, state: &AppState) -> Result<Option<Principal>, ApiError> {
    let Some(raw) = header(&parts.headers, "authorization") else {
        return Ok(None);
    };
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .ok_or_else(ApiError::unauthorized)?;
    match state.handlers.access.verify(token.trim()).await {
        Ok(grant) => Ok(Some(grant.principal)),
        Err(AccessError::Invalid(_) | AccessError::Revoked) => Err(ApiError::unauthorized()),
        Err(AccessError::Store(e)) => {
            tracing::warn!(error = %e, "session check unavailable");
            Err(ApiError::unavailable("Service temporarily unavailable"))
        }
    }
}

fn context(parts: &Parts, principal: Option<Principal>) -> Context {
    let mut cx = Context::new(header(&parts.headers, "x-request-id").unwrap_or_default());
    cx.principal = principal;
    cx.idempotency_key = header(&parts.headers, "idempotency-key");
    cx.gate_token = header(&parts.headers, "x-gate-token");
    cx.client_addr = crate::layers::client_addr(parts);
    cx
}

impl FromRequestParts<AppState> for Cx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal(parts, state).await?;
        Ok(Cx(context(parts, p)))
    }
}

impl FromRequestParts<AppState> for AuthedCx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = principal(parts, state)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        Ok(AuthedCx(context(parts, Some(p.clone())), p))
    }
}

// ---------------------------------------------------------------------------------------------
// Router

pub fn gateway_routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/register/admin", post(register_admin))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/queue/enqueue", post(enqueue))
        .route("/queue/status", get(queue_status))
        .route("/queue/enter", post(enter))
        .route("/queue/leave", post(leave))
        .route("/queue/healthz", get(queue_healthz))
}

pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list_events).post(create_event))
        .route("/events/admin/all", get(list_all_events))
        .route("/events/admin/timeline", get(timeline))
        .route(
            "/events/{id}",
            get(get_event).patch(update_event).delete(delete_event),
        )
        .route("/orders", get(list_orders).post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/payments", post(request_payment))
        .route("/payments/callback", post(payment_callback))
}

// ---------------------------------------------------------------------------------------------
// Auth

/// The handler's registration from the form's login and password.
fn registration(
    user_id: &str,
    password: String,
    admin_secret: Option<String>,
) -> Result<RegisterRequest, ApiError> {
    let login = LoginName::parse(user_id)
        .map_err(|e| ApiError::validation(e.iter().map(ToString::to_string).collect()))?;
    Ok(RegisterRequest {
        login,
        password,
        admin_secret,
    })
}

#[utoipa::path(post, path = "/auth/register", tag = "auth", operation_id = "register",
    summary = "Register a user",
    request_body = dto::RegisterRequest, security(()),
    responses(
        (status = 200, description = "Registered (empty body)."),
        BadBody, Conflict, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn register(
    Cx(cx): Cx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let form = dto::RegisterRequest::read(&body)?;
    let request = registration(&form.user_id, form.password, None)?;
    s.handlers
        .register
        .handle(&cx, request)
        .await
        .map_err(fail)?;
    Ok(empty_ok())
}

#[utoipa::path(post, path = "/auth/register/admin", tag = "auth", operation_id = "registerAdmin",
    summary = "Register an admin with the shared admin secret",
    request_body = dto::RegisterAdminRequest, security(()),
    responses(
        (status = 200, description = "Registered (empty body)."),
        BadBody, Conflict, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn register_admin(
    Cx(cx): Cx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let form = dto::RegisterAdminRequest::read(&body)?;
    let request = registration(&form.user_id, form.password, Some(form.admin_secret))?;
    s.handlers
        .register
        .handle(&cx, request)
        .await
        .map_err(fail)?;
    Ok(empty_ok())
}

#[utoipa::path(post, path = "/auth/login", tag = "auth", operation_id = "login",
    summary = "Log in", description = "Rate-limited per user id and per client address.",
    request_body = dto::LoginRequest, security(()),
    responses(
        (status = 201, description = "Token pair.", body = dto::TokenPair),
        BadBody, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn login(Cx(cx): Cx, State(s): State<AppState>, JsonObject(body): JsonObject) -> ApiResult {
    let form = dto::LoginRequest::read(&body)?;
    let request = LoginRequest {
        login: form.user_id,
        password: form.password,
    };
    let pair = s.handlers.login.handle(&cx, request).await.map_err(fail)?;
    Ok(created(dto::TokenPair::from(pair)))
}

#[utoipa::path(post, path = "/auth/refresh", tag = "auth", operation_id = "refresh",
    summary = "Rotate a refresh token",
    request_body = dto::RefreshRequest, security(()),
    responses(
        (status = 201, description = "New token pair; the used refresh token is revoked.", body = dto::TokenPair),
        BadBody, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn refresh(Cx(cx): Cx, State(s): State<AppState>, JsonObject(body): JsonObject) -> ApiResult {
    let form = dto::RefreshRequest::read(&body)?;
    let pair = s
        .handlers
        .refresh
        .handle(&cx, &form.refresh_token)
        .await
        .map_err(fail)?;
    Ok(created(dto::TokenPair::from(pair)))
}

#[utoipa::path(post, path = "/auth/logout", tag = "auth", operation_id = "logout",
    summary = "Revoke a refresh token",
    request_body = dto::RefreshRequest, security(()),
    responses(
        (status = 200, description = "Logged out (empty body)."),
        BadBody, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn logout(Cx(cx): Cx, State(s): State<AppState>, JsonObject(body): JsonObject) -> ApiResult {
    let form = dto::RefreshRequest::read(&body)?;
    s.handlers
        .logout
        .handle(&cx, &form.refresh_token)
        .await
        .map_err(fail)?;
    Ok(empty_ok())
}

// ---------------------------------------------------------------------------------------------
// Queue

#[utoipa::path(post, path = "/queue/enqueue", tag = "queue", operation_id = "enqueue",
    summary = "Join the waiting queue of an event",
    request_body = dto::EnqueueRequest, security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The caller's live ticket (idempotent per user and event).", body = dto::EnqueueResponse),
        BadBody, NotFound, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn enqueue(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let form = dto::EnqueueRequest::read(&body)?;
    let ticket = s
        .handlers
        .join_queue
        .handle(&cx, form.event_id)
        .await
        .map_err(fail)?;
    Ok(created(dto::EnqueueResponse {
        ticket_id: ticket.id.0,
    }))
}

#[utoipa::path(get, path = "/queue/status", tag = "queue", operation_id = "queueStatus",
    summary = "Read a ticket's state and position",
    params(("ticketId" = Uuid, Query, description = "The ticket.")), security(()),
    responses(
        (status = 200, description = "Ticket status.", body = dto::QueueStatus),
        BadRequest, NotFound, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn queue_status(Cx(cx): Cx, State(s): State<AppState>, QueryMap(q): QueryMap) -> ApiResult {
    let raw = match q.get("ticketId") {
        Some(serde_json::Value::String(t)) if !t.is_empty() => t.clone(),
        Some(serde_json::Value::Array(_)) => {
            return Err(ApiError::bad_request("ticketId must be a single value"));
        }
        _ => {
            return Err(ApiError::bad_request(
                "ticketId query parameter is required",
            ));
        }
    };
    let id: TicketId = raw
        .parse()
        .map_err(|_| ApiError::validation(vec!["ticketId must be a UUID".into()]))?;
    let st = s
        .handlers
        .queue_status
        .handle(&cx, id)
        .await
        .map_err(fail)?;
    Ok(ok(dto::QueueStatus::from(&st)))
}

#[utoipa::path(post, path = "/queue/enter", tag = "queue", operation_id = "enter",
    summary = "Enter with an admitted ticket and its gate token",
    request_body = dto::EnterRequest, security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Entered.", body = dto::EnterResponse),
        BadBody, NotFound, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn enter(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let form = dto::EnterRequest::read(&body)?;
    s.handlers
        .enter_queue
        .handle(&cx, form.ticket_id, &form.gate_token)
        .await
        .map_err(fail)?;
    Ok(created(dto::EnterResponse { status: "entered" }))
}

#[utoipa::path(post, path = "/queue/leave", tag = "queue", operation_id = "leave",
    summary = "Leave the queue (frees the ticket at once)",
    request_body = dto::LeaveRequest, security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The ticket, now EXPIRED.", body = dto::LeaveResponse),
        BadBody, NotFound, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("gateway"))))]
async fn leave(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let form = dto::LeaveRequest::read(&body)?;
    let t = s
        .handlers
        .leave_queue
        .handle(&cx, form.ticket_id)
        .await
        .map_err(fail)?;
    Ok(ok(dto::LeaveResponse {
        ticket_id: t.id.0,
        state: dto::TicketState(t.state),
    }))
}

#[utoipa::path(get, path = "/queue/healthz", tag = "ops", operation_id = "queueHealthz",
    summary = "Static gateway health", security(()),
    responses((status = 200, description = "Always ok; touches no dependency.", body = dto::Status)),
    extensions(("x-service" = json!("gateway"))))]
async fn queue_healthz() -> Json<dto::Status> {
    Json(dto::Status { status: "ok" })
}

// ---------------------------------------------------------------------------------------------
// Events

fn events(list: &[flash_core::domain::Event]) -> Vec<dto::Event> {
    list.iter().map(dto::Event::from).collect()
}

#[utoipa::path(get, path = "/events", tag = "events", operation_id = "listEvents",
    summary = "List public events (ONSALE and CLOSED)", security(()),
    responses(
        (status = 200, description = "Events by start time.", body = Vec<dto::Event>),
        Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn list_events(Cx(cx): Cx, State(s): State<AppState>) -> ApiResult {
    let list = s
        .handlers
        .list_events
        .handle(&cx, EventListing::Public)
        .await
        .map_err(fail)?;
    Ok(ok(events(&list)))
}

#[utoipa::path(get, path = "/events/admin/all", tag = "events", operation_id = "listAllEvents",
    summary = "List all events, drafts included (ADMIN)", security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Events, newest first.", body = Vec<dto::Event>),
        Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn list_all_events(AuthedCx(cx, _): AuthedCx, State(s): State<AppState>) -> ApiResult {
    let list = s
        .handlers
        .list_events
        .handle(&cx, EventListing::Admin)
        .await
        .map_err(fail)?;
    Ok(ok(events(&list)))
}

/// `GET /events/admin/timeline?line=__global__|<event id>&since=<unix seconds>` (admins): the
/// monitoring charts' last 15 minutes, or only the seconds after `since`.
#[utoipa::path(get, path = "/events/admin/timeline", tag = "events", operation_id = "getTimeline",
    summary = "The monitoring timeline: the last 15 minutes, one sample a second (ADMIN)",
    description = "Per-second series of one queue line and of the site, aligned on `t` (unix seconds), null where a second has no sample: queue length, admitted, arrivals and admissions per second, estimated wait, orders and payments per second by outcome (the event's own on an event's line, the site's on `__global__`), requests per second, 4xx/5xx per second, p99 latency (the bound of the histogram bucket holding it), and the line's phase changes as markers (OPEN also when its event is put on sale). The same on every instance (the samples are kept in Redis on the pods). At most 900 seconds; with `since`, only the seconds after it.",
    params(
        ("line" = Option<String>, Query, description = "`__global__` (the default) or an event UUID."),
        ("since" = Option<u64>, Query, description = "Unix seconds: only later seconds are returned."),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The series.", body = dto::Timeline),
        BadRequest, Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn timeline(
    AuthedCx(cx, caller): AuthedCx,
    State(s): State<AppState>,
    QueryMap(q): QueryMap,
) -> ApiResult {
    require_admin(&caller)?;
    let mut query = TimelineQuery {
        line: QueueScope::Global,
        since: None,
    };
    for (key, value) in &q {
        let name = match key.as_str() {
            "line" => "line",
            "since" => "since",
            _ => {
                return Err(ApiError::validation(vec![
                    "only line and since are accepted".into(),
                ]));
            }
        };
        let serde_json::Value::String(value) = value else {
            return Err(ApiError::validation(vec![format!(
                "{name} must be a single value"
            )]));
        };
        match name {
            "line" => {
                query.line = match value.as_str() {
                    "global" => QueueScope::Global,
                    other => QueueScope::parse(other).ok_or_else(|| {
                        ApiError::validation(vec![
                            "line must be __global__ or an event UUID".into(),
                        ])
                    })?,
                }
            }
            "since" => {
                let since = value.parse::<u64>().ok().filter(|s| *s <= MAX_SINCE);
                query.since = Some(since.ok_or_else(|| {
                    ApiError::validation(vec!["since must be a whole number of seconds".into()])
                })?);
            }
            _ => {}
        }
    }
    let view = s
        .handlers
        .work
        .timeline
        .read(&cx, query)
        .await
        .map_err(fail)?;
    Ok(ok(dto::Timeline::of(&query.line, view)))
}

/// The latest `since` accepted: year 9999 in unix seconds.
const MAX_SINCE: u64 = 253_402_300_799;

#[utoipa::path(get, path = "/events/{id}", tag = "events", operation_id = "getEvent",
    summary = "Read an event", description = "DRAFT events are visible to admins only.",
    params(("id" = Uuid, Path, description = "The event.")), security(()),
    responses(
        (status = 200, description = "The event.", body = dto::Event),
        BadRequest, NotFound, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn get_event(Cx(cx): Cx, State(s): State<AppState>, PathUuid(id): PathUuid) -> ApiResult {
    let e = s
        .handlers
        .get_event
        .handle(&cx, EventId(id))
        .await
        .map_err(fail)?;
    Ok(ok(dto::Event::from(&e)))
}

/// Legacy guards run before validation: a buyer learns nothing about the admin bodies.
fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden_resource())
    }
}

#[utoipa::path(post, path = "/events", tag = "events", operation_id = "createEvent",
    summary = "Create an event (ADMIN)",
    request_body = dto::CreateEventRequest, security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The new DRAFT event.", body = dto::Event),
        BadBody, Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn create_event(
    AuthedCx(cx, caller): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    require_admin(&caller)?;
    let form = dto::CreateEventRequest::read(&body)?;
    let e = s
        .handlers
        .create_event
        .handle(&cx, form.into())
        .await
        .map_err(fail)?;
    Ok(created(dto::Event::from(&e)))
}

#[utoipa::path(patch, path = "/events/{id}", tag = "events", operation_id = "updateEvent",
    summary = "Update an event (ADMIN)",
    params(("id" = Uuid, Path, description = "The event.")),
    request_body = dto::UpdateEventRequest, security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The updated event.", body = dto::Event),
        BadBody, NotFound, Conflict, Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn update_event(
    AuthedCx(cx, caller): AuthedCx,
    State(s): State<AppState>,
    PathUuid(id): PathUuid,
    JsonObject(body): JsonObject,
) -> ApiResult {
    require_admin(&caller)?;
    let form = dto::UpdateEventRequest::read(&body)?;
    let e = s
        .handlers
        .update_event
        .handle(&cx, EventId(id), form.into())
        .await
        .map_err(fail)?;
    Ok(ok(dto::Event::from(&e)))
}

#[utoipa::path(delete, path = "/events/{id}", tag = "events", operation_id = "deleteEvent",
    summary = "Delete an event without orders (ADMIN)",
    params(("id" = Uuid, Path, description = "The event.")), security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Deleted.", body = dto::DeleteEventResponse),
        BadRequest, NotFound, Conflict, Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn delete_event(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    PathUuid(id): PathUuid,
) -> ApiResult {
    s.handlers
        .delete_event
        .handle(&cx, EventId(id))
        .await
        .map_err(fail)?;
    Ok(ok(dto::DeleteEventResponse {
        message: "Event deleted successfully",
    }))
}

// ---------------------------------------------------------------------------------------------
// Orders

#[utoipa::path(post, path = "/orders", tag = "orders", operation_id = "placeOrder",
    summary = "Place an order (reserves stock as a HOLD)",
    params(
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 255,
            description = "Scoped per user and kept 24 h; the same key and body return the same order, a different body is 422."),
        ("X-Gate-Token" = Option<String>, Header,
            description = "Gate token of an admitted ticket; without it a live admission of the caller for the event (or `__global__`) is required."),
    ),
    request_body = dto::CreateOrderRequest, security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The order (a replay of the same key and body returns the original).", body = dto::OrderResponse),
        (status = 422, description = "Idempotency-Key reused with a different request.", body = ErrorBody),
        BadBody, NotFound, Conflict, Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn place_order(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    if cx
        .idempotency_key
        .as_deref()
        .is_none_or(|k| k.trim().is_empty())
    {
        return Err(ApiError::bad_request("Idempotency-Key header is required"));
    }
    let form = dto::CreateOrderRequest::read(&body)?;
    let request = PlaceOrderRequest {
        event_id: form.event_id,
        qty: form.qty,
    };
    let placed = s
        .handlers
        .place_order
        .handle(&cx, request)
        .await
        .map_err(fail)?;
    Ok(created(dto::OrderResponse::from(&placed.order)))
}

#[utoipa::path(get, path = "/orders", tag = "orders", operation_id = "listOrders",
    summary = "List the caller's orders", security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "Orders, newest first.", body = Vec<dto::OrderDetail>),
        Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn list_orders(AuthedCx(cx, _): AuthedCx, State(s): State<AppState>) -> ApiResult {
    let orders = s.handlers.list_orders.handle(&cx).await.map_err(fail)?;
    let list: Vec<dto::OrderDetail> = orders.iter().map(dto::OrderDetail::from).collect();
    Ok(ok(list))
}

#[utoipa::path(get, path = "/orders/{id}", tag = "orders", operation_id = "getOrder",
    summary = "Read one of the caller's orders (any order for ADMIN)",
    params(("id" = Uuid, Path, description = "The order.")), security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The order.", body = dto::OrderDetail),
        BadRequest, NotFound, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn get_order(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    PathUuid(id): PathUuid,
) -> ApiResult {
    let o = s
        .handlers
        .get_order
        .handle(&cx, OrderId(id))
        .await
        .map_err(fail)?;
    Ok(ok(dto::OrderDetail::from(&o)))
}

// ---------------------------------------------------------------------------------------------
// Payments

#[utoipa::path(post, path = "/payments", tag = "payments", operation_id = "requestPayment",
    summary = "Request payment of an order",
    request_body = dto::CreatePaymentRequest, security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "The REQ payment (a repeat call returns it).", body = dto::PaymentResponse),
        BadBody, NotFound, Conflict, Unauthorized, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn request_payment(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let form = dto::CreatePaymentRequest::read(&body)?;
    let request = PaymentRequest {
        order_id: form.order_id,
        method: form.method,
    };
    let p = s
        .handlers
        .request_payment
        .handle(&cx, request)
        .await
        .map_err(fail)?;
    Ok(created(dto::PaymentResponse::from(&p)))
}

#[utoipa::path(post, path = "/payments/callback", tag = "payments", operation_id = "paymentCallback",
    summary = "Payment provider callback",
    description = "Authenticated by `X-Signature` (HMAC-SHA256 of `{X-Signature-Timestamp}.{raw body}`, the timestamp within 5 minutes of the server's clock) or by an ADMIN bearer token.",
    params(
        ("X-Signature" = Option<String>, Header, pattern = "^[0-9a-fA-F]{64}$",
            description = "Hex HMAC-SHA256 of `{X-Signature-Timestamp}.{raw body}` with PAYMENT_CALLBACK_SECRET; required unless the caller is ADMIN."),
        ("X-Signature-Timestamp" = Option<String>, Header, pattern = "^[0-9]{1,12}$",
            description = "Unix time in seconds at which the provider signed; required with X-Signature, and refused more than 5 minutes from the server's clock (replays)."),
    ),
    request_body = dto::PaymentCallbackRequest, security((), ("bearerAuth" = [])),
    responses(
        (status = 201, description = "The payment after applying the result.", body = dto::PaymentResponse),
        BadBody, NotFound, Conflict, Unauthorized, Forbidden, Refusals,
    ),
    extensions(("x-service" = json!("api"))))]
async fn payment_callback(
    Cx(cx): Cx,
    State(s): State<AppState>,
    headers: HeaderMap,
    RawBody(raw): RawBody,
) -> ApiResult {
    let signature = header(&headers, "x-signature");
    let signed_at = header(&headers, "x-signature-timestamp");
    if signature.is_none() && cx.principal.is_none() {
        return Err(ApiError::unauthorized());
    }
    let body = crate::body::parse_json_object(&raw)?;
    let form = dto::PaymentCallbackRequest::read(&body)?;
    let request = CallbackRequest {
        order_id: form.order_id,
        payment_id: form.payment_id,
        verdict: form.status,
        signature,
        signed_at,
        signed_body: raw.to_vec(),
    };
    let p = s
        .handlers
        .callback
        .handle(&cx, request)
        .await
        .map_err(fail)?;
    Ok(created(dto::PaymentResponse::from(&p)))
}

//! The gateway and api routes: legacy paths, status codes, JSON field names and error texts.
//! Each route validates its DTO, builds a [`Context`] and calls one handler; nothing else.

use crate::body::{JsonObject, PathUuid, QueryMap, RawBody};
use crate::error::ApiError;
use crate::socket::status_json;
use crate::state::AppState;
use crate::validate::{Validator, login_and_password};
use crate::views::{self, OrderIdField};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flash_core::domain::{EventPatch, EventStatus, LoginName, QueueMode, QueueScope, Verdict};
use flash_core::ports::EventListing;
use flash_core::{Context, EventId, OrderId, PaymentId, Principal, TicketId};
use flash_handlers::auth::{AccessError, LoginRequest, RegisterRequest};
use flash_handlers::events::NewEvent;
use flash_handlers::orders::PlaceOrderRequest;
use flash_handlers::payments::{CallbackRequest, PaymentRequest};
use flash_handlers::timeline::TimelineQuery;
use serde_json::{Value, json};

type ApiResult = Result<Response, ApiError>;

fn created(body: Value) -> Response {
    (StatusCode::CREATED, Json(body)).into_response()
}

fn ok(body: Value) -> Response {
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
        .route(
            "/queue/healthz",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
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

/// `POST /auth/register` and `/auth/register/admin`: the same fields, the admin one with its
/// secret.
async fn register_with(
    cx: &Context,
    s: &AppState,
    body: &serde_json::Map<String, Value>,
    admin: bool,
) -> ApiResult {
    let fields: &[&str] = if admin {
        &["userId", "password", "adminSecret"]
    } else {
        &["userId", "password"]
    };
    let mut v = Validator::new(body, fields);
    let (login, password) = login_and_password(&mut v);
    let admin_secret = admin.then(|| v.string("adminSecret").not_empty().get());
    v.finish_api()?;
    let login = LoginName::parse(&login)
        .map_err(|e| ApiError::validation(e.iter().map(ToString::to_string).collect()))?;
    let request = RegisterRequest {
        login,
        password,
        admin_secret,
    };
    s.handlers
        .register
        .handle(cx, request)
        .await
        .map_err(fail)?;
    Ok(empty_ok())
}

async fn register(
    Cx(cx): Cx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    register_with(&cx, &s, &body, false).await
}

async fn register_admin(
    Cx(cx): Cx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    register_with(&cx, &s, &body, true).await
}

async fn login(Cx(cx): Cx, State(s): State<AppState>, JsonObject(body): JsonObject) -> ApiResult {
    let mut v = Validator::new(&body, &["userId", "password"]);
    let login = v.string("userId").not_empty().get();
    let password = v.string("password").not_empty().get();
    v.finish_api()?;
    let pair = s
        .handlers
        .login
        .handle(&cx, LoginRequest { login, password })
        .await
        .map_err(fail)?;
    Ok(created(
        json!({"accessToken": pair.access_token, "refreshToken": pair.refresh_token}),
    ))
}

fn refresh_token(body: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    let mut v = Validator::new(body, &["refreshToken"]);
    let token = v.string("refreshToken").not_empty().get();
    v.finish_api()?;
    Ok(token)
}

async fn refresh(Cx(cx): Cx, State(s): State<AppState>, JsonObject(body): JsonObject) -> ApiResult {
    let token = refresh_token(&body)?;
    let pair = s.handlers.refresh.handle(&cx, &token).await.map_err(fail)?;
    Ok(created(
        json!({"accessToken": pair.access_token, "refreshToken": pair.refresh_token}),
    ))
}

async fn logout(Cx(cx): Cx, State(s): State<AppState>, JsonObject(body): JsonObject) -> ApiResult {
    let token = refresh_token(&body)?;
    s.handlers.logout.handle(&cx, &token).await.map_err(fail)?;
    Ok(empty_ok())
}

// ---------------------------------------------------------------------------------------------
// Queue

async fn enqueue(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let v = Validator::new(&body, &["eventId"]);
    let mut messages = v.finish().err().unwrap_or_default();
    // An event UUID, or `__global__` (the site-wide queue, which legacy joined only by socket).
    let scope = body
        .get("eventId")
        .and_then(Value::as_str)
        .and_then(QueueScope::parse);
    if scope.is_none() {
        messages.push("eventId must be a UUID".into());
    }
    let Some(scope) = scope.filter(|_| messages.is_empty()) else {
        return Err(ApiError::validation(messages));
    };
    let ticket = s
        .handlers
        .join_queue
        .handle(&cx, scope)
        .await
        .map_err(fail)?;
    Ok(created(json!({"ticketId": ticket.id.to_string()})))
}

async fn queue_status(Cx(cx): Cx, State(s): State<AppState>, QueryMap(q): QueryMap) -> ApiResult {
    let raw = match q.get("ticketId") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(Value::Array(_)) => {
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
    Ok(ok(status_json(&st)))
}

async fn enter(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let mut v = Validator::new(&body, &["ticketId", "gateToken"]);
    let ticket = v.uuid("ticketId").get();
    let gate = v.string("gateToken").not_empty().get();
    v.finish_api()?;
    s.handlers
        .enter_queue
        .handle(&cx, TicketId(ticket), &gate)
        .await
        .map_err(fail)?;
    Ok(created(json!({"status": "entered"})))
}

async fn leave(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let mut v = Validator::new(&body, &["ticketId"]);
    let ticket = v.uuid("ticketId").get();
    v.finish_api()?;
    let t = s
        .handlers
        .leave_queue
        .handle(&cx, TicketId(ticket))
        .await
        .map_err(fail)?;
    Ok(ok(
        json!({"ticketId": t.id.to_string(), "state": t.state.as_str()}),
    ))
}

// ---------------------------------------------------------------------------------------------
// Events

/// Prices are PostgreSQL `integer`s (legacy schema): larger values are refused, not truncated.
const MAX_PRICE: i64 = i32::MAX as i64;

/// The fields of `POST /events`; `PATCH /events/:id` also takes `status`.
pub(crate) const EVENT_FIELDS: [&str; 9] = [
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

/// `queue_mode`: `global` (the legacy default) or `event` (SPEC §4), when given.
fn queue_mode(v: &mut Validator<'_>) -> Option<QueueMode> {
    v.string("queue_mode")
        .optional()
        .one_of(&["global", "event"])
        .opt()
        .and_then(|s| QueueMode::parse(&s))
}

async fn list_events(Cx(cx): Cx, State(s): State<AppState>) -> ApiResult {
    let events = s
        .handlers
        .list_events
        .handle(&cx, EventListing::Public)
        .await
        .map_err(fail)?;
    Ok(ok(Value::Array(events.iter().map(views::event).collect())))
}

async fn list_all_events(AuthedCx(cx, _): AuthedCx, State(s): State<AppState>) -> ApiResult {
    let events = s
        .handlers
        .list_events
        .handle(&cx, EventListing::Admin)
        .await
        .map_err(fail)?;
    Ok(ok(Value::Array(events.iter().map(views::event).collect())))
}

/// `GET /events/admin/timeline?line=__global__|<event id>&since=<unix seconds>` (admins): the
/// monitoring charts' last 15 minutes, or only the seconds after `since`.
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
        let Value::String(value) = value else {
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
    Ok(ok(views::timeline(&query.line.to_string(), &view)))
}

/// The latest `since` accepted: year 9999 in unix seconds.
const MAX_SINCE: u64 = 253_402_300_799;

async fn get_event(Cx(cx): Cx, State(s): State<AppState>, PathUuid(id): PathUuid) -> ApiResult {
    let e = s
        .handlers
        .get_event
        .handle(&cx, EventId(id))
        .await
        .map_err(fail)?;
    Ok(ok(views::event(&e)))
}

/// Legacy guards run before validation: a buyer learns nothing about the admin bodies.
fn require_admin(p: &Principal) -> Result<(), ApiError> {
    if p.is_admin() {
        Ok(())
    } else {
        Err(ApiError::forbidden_resource())
    }
}

async fn create_event(
    AuthedCx(cx, caller): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    require_admin(&caller)?;
    let mut v = Validator::new(&body, &EVENT_FIELDS[..8]);
    let name = v.string("name").length(2, 120).get();
    let starts_at = v.date("starts_at").get();
    let ends_at = v.date("ends_at").get();
    let total_qty = v
        .int("total_qty")
        .positive()
        .max(flash_core::domain::MAX_TOTAL_QTY)
        .get();
    let max_per_user = v
        .int("max_per_user")
        .positive()
        .max(flash_core::domain::MAX_PER_USER)
        .get();
    let price = v.int("price").min(0).max(MAX_PRICE).get();
    let prequeue_starts_at = v.date("prequeue_starts_at").optional().opt();
    let queue_mode = queue_mode(&mut v).unwrap_or_default();
    v.finish_api()?;
    let e = s
        .handlers
        .create_event
        .handle(
            &cx,
            NewEvent {
                name,
                starts_at,
                ends_at,
                total_qty,
                max_per_user,
                price,
                prequeue_starts_at,
                queue_mode,
            },
        )
        .await
        .map_err(fail)?;
    Ok(created(views::event(&e)))
}

async fn update_event(
    AuthedCx(cx, caller): AuthedCx,
    State(s): State<AppState>,
    PathUuid(id): PathUuid,
    JsonObject(body): JsonObject,
) -> ApiResult {
    require_admin(&caller)?;
    let mut v = Validator::new(&body, &EVENT_FIELDS);
    let patch = EventPatch {
        name: v.string("name").optional().length(2, 120).opt(),
        starts_at: v.date("starts_at").optional().opt(),
        ends_at: v.date("ends_at").optional().opt(),
        total_qty: v
            .int("total_qty")
            .optional()
            .positive()
            .max(flash_core::domain::MAX_TOTAL_QTY)
            .opt(),
        max_per_user: v
            .int("max_per_user")
            .optional()
            .positive()
            .max(flash_core::domain::MAX_PER_USER)
            .opt(),
        price: v.int("price").optional().min(0).max(MAX_PRICE).opt(),
        prequeue_starts_at: v.date("prequeue_starts_at").optional().opt(),
        queue_mode: queue_mode(&mut v),
        status: v
            .string("status")
            .optional()
            .one_of(&["DRAFT", "ONSALE", "CLOSED"])
            .opt()
            .and_then(|s| EventStatus::parse(&s)),
    };
    v.finish_api()?;
    let e = s
        .handlers
        .update_event
        .handle(&cx, EventId(id), patch)
        .await
        .map_err(fail)?;
    Ok(ok(views::event(&e)))
}

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
    Ok(ok(json!({"message": "Event deleted successfully"})))
}

// ---------------------------------------------------------------------------------------------
// Orders

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
    let mut v = Validator::new(&body, &["event_id", "qty"]);
    let event_id = v.uuid("event_id").get();
    // Above the event's per-user limit is the handler's legacy 400, not a DTO rule.
    let qty = v.int("qty").positive().get();
    v.finish_api()?;
    let placed = s
        .handlers
        .place_order
        .handle(
            &cx,
            PlaceOrderRequest {
                event_id: EventId(event_id),
                qty,
            },
        )
        .await
        .map_err(fail)?;
    Ok(created(views::order(&placed.order, OrderIdField::OrderId)))
}

async fn list_orders(AuthedCx(cx, _): AuthedCx, State(s): State<AppState>) -> ApiResult {
    let orders = s.handlers.list_orders.handle(&cx).await.map_err(fail)?;
    Ok(ok(Value::Array(
        orders
            .iter()
            .map(|o| views::order(o, OrderIdField::Id))
            .collect(),
    )))
}

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
    Ok(ok(views::order(&o, OrderIdField::Id)))
}

// ---------------------------------------------------------------------------------------------
// Payments

async fn request_payment(
    AuthedCx(cx, _): AuthedCx,
    State(s): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult {
    let mut v = Validator::new(&body, &["orderId", "method"]);
    let order_id = v.uuid("orderId").get();
    let method = v
        .string("method")
        .length(1, flash_handlers::payments::MAX_METHOD_LEN)
        .get();
    v.finish_api()?;
    let p = s
        .handlers
        .request_payment
        .handle(
            &cx,
            PaymentRequest {
                order_id: OrderId(order_id),
                method,
            },
        )
        .await
        .map_err(fail)?;
    Ok(created(views::payment(&p)))
}

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
    let mut v = Validator::new(&body, &["orderId", "paymentId", "status"]);
    let order_id = v.uuid("orderId").get();
    let payment_id = v.uuid("paymentId").get();
    let status = v.string("status").one_of(&["OK", "FAIL"]).get();
    v.finish_api()?;
    let verdict = if status == "OK" {
        Verdict::Ok
    } else {
        Verdict::Fail
    };
    let p = s
        .handlers
        .callback
        .handle(
            &cx,
            CallbackRequest {
                order_id: OrderId(order_id),
                payment_id: PaymentId(payment_id),
                verdict,
                signature,
                signed_at,
                signed_body: raw.to_vec(),
            },
        )
        .await
        .map_err(fail)?;
    Ok(created(views::payment(&p)))
}

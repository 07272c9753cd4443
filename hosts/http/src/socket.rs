//! Socket.IO namespace `/queue` (legacy event names and payloads), authenticated by access token.
//!
//! - On connect the token (handshake `auth.token`, `Authorization` header, or `?token=` only when
//!   `SOCKET_TOKEN_IN_QUERY=true`) is verified against its session; the user always comes from
//!   it, never from a payload. No valid token → `connect_error`. A connection whose token
//!   expires or whose session is revoked is told (`queue:error` `Unauthorized`) and closed.
//! - `queue/join` enqueues (idempotently) and starts tracking; `queue/leave` with
//!   `clearTicket: true` removes the ticket from the line.
//! - READY is pushed the moment a promotion happens: every instance subscribes to the queue
//!   notifier and emits to the room `ticket:<id>`, wherever the socket is connected.
//! - A line's phase change (sold out, re-opened, closed) is pushed the moment it happens to every
//!   socket waiting in that line on every instance: one task per notice walks the room.
//! - Positions refresh at most every `QUEUE_WS_REFRESH_MS` per socket, by one refresher task per
//!   queue room of this instance (not one per socket): it starts with the room's first join and
//!   ends once no socket in the room is waiting for updates. One `queue:summary` per room per
//!   interval.

use crate::dto::QueueStatus;
use crate::state::AppState;
use flash_core::domain::{LineNotice, Notice, QueueNotice, QueueScope, TicketState};
use flash_core::ports::QueueNotifier;
use flash_core::{Classify, Context, ErrorKind, Principal, TicketId};
use flash_handlers::auth::Grant;
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::task::JoinHandle;

pub const NAMESPACE: &str = "/queue";
/// Initial WebSocket read buffer of each socket.
const WS_READ_BUFFER: usize = 1024;
const JOIN_FAILED: &str = "대기열에 참여하지 못했습니다. 잠시 후 다시 시도해주세요.";
const STATUS_FAILED: &str = "대기열 상태를 조회하지 못했습니다.";

/// What a socket is tracking; replaced on every join, so the room refreshers follow the latest.
#[derive(Clone)]
struct Tracking {
    ticket: TicketId,
    scope: QueueScope,
    generation: u64,
    /// When the join sent the first `queue:update`: the first refresh comes a period later.
    since: tokio::time::Instant,
}

/// Set on a socket once the ticket of that join generation needs no more refreshes (it is
/// finished, or its status could not be read); a later join has a new generation.
#[derive(Clone, Copy)]
struct Finished(u64);

/// The queue rooms of this instance that have a refresher running, one per scope.
#[derive(Clone, Default)]
struct Refreshers(Arc<Mutex<HashSet<QueueScope>>>);

impl Refreshers {
    fn running(&self) -> std::sync::MutexGuard<'_, HashSet<QueueScope>> {
        // The set is only inserted into and removed from: still sound after a panic elsewhere.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Builds the Socket.IO layer and starts the push tasks (READY notices and room summaries).
/// The returned handles end with the process; abort them on shutdown.
pub fn layer(
    state: AppState,
    notifier: Arc<dyn QueueNotifier>,
) -> (SocketIoLayer, SocketIo, Vec<JoinHandle<()>>) {
    let (layer, io) = SocketIo::builder()
        .with_state(state.clone())
        .with_state(Refreshers::default())
        // Clients send only small events (join, leave, pongs); a larger frame still arrives
        // (the buffer grows), but 10,000 idle sockets keep 1 KiB each instead of 4 KiB.
        .ws_read_buffer_size(WS_READ_BUFFER)
        .build_layer();
    io.ns(NAMESPACE, on_connect.with(authenticate));
    let tasks = vec![
        tokio::spawn(forward_notices(io.clone(), state.clone(), notifier)),
        tokio::spawn(broadcast_summaries(io.clone(), state.clone())),
        tokio::spawn(close_lapsed_sessions(io.clone(), state)),
    ];
    (layer, io, tasks)
}

#[derive(Debug, Deserialize, Default)]
struct HandshakeAuth {
    token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
struct Unauthorized;

fn bearer(value: &str) -> &str {
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value)
        .trim()
}

async fn authenticate(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<HandshakeAuth>,
) -> Result<(), Unauthorized> {
    let parts = s.req_parts();
    let from_auth = auth.ok().and_then(|a| a.token);
    let from_header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| bearer(v).to_owned());
    let from_query = || {
        let q = parts.uri.query()?;
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| v.to_owned())
    };
    let token = from_auth
        .or(from_header)
        .or_else(|| {
            state
                .handlers
                .settings()
                .auth
                .socket_token_in_query
                .then(from_query)
                .flatten()
        })
        .ok_or(Unauthorized)?;
    let grant = state
        .handlers
        .access
        .verify(bearer(&token))
        .await
        .map_err(|_| Unauthorized)?;
    s.extensions.insert(grant.principal.clone());
    s.extensions.insert(grant);
    Ok(())
}

/// How often connected sockets are checked for an expired token or a revoked session.
const SESSION_SWEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes every socket whose access token expired or whose session was revoked, one sweep over
/// the namespace per second (a revocation taken elsewhere is seen within `SESSION_CHECK_MS`).
/// A session store that cannot answer closes nothing.
async fn close_lapsed_sessions(io: SocketIo, state: AppState) {
    let mut tick = tokio::time::interval(SESSION_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ns) = io.of(NAMESPACE) else { continue };
        for s in ns.sockets() {
            let Some(grant) = s.extensions.get::<Grant>() else {
                continue;
            };
            match state.handlers.access.still_valid(&grant).await {
                Ok(true) => {}
                Ok(false) => {
                    emit_error(&s, "Unauthorized");
                    let _ = s.disconnect();
                }
                Err(e) => tracing::debug!(error = %e, "session check failed; socket kept"),
            }
        }
    }
}

async fn on_connect(s: SocketRef, State(state): State<AppState>) {
    let capacity = state.handlers.settings().queue.capacity;
    let _ = s.emit("queue:config", &json!({ "readyCapacity": capacity }));
    s.on("queue/join", on_join);
    s.on("queue/leave", on_leave);
    s.on_disconnect(async |s: SocketRef| {
        s.extensions.remove::<Tracking>();
    });
}

fn context(s: &SocketRef, principal: Principal) -> Context {
    Context::new(format!("ws-{}", s.id)).with_principal(principal)
}

fn emit_error(s: &SocketRef, message: &str) {
    let _ = s.emit("queue:error", &json!({ "message": message }));
}

/// The public text of a join failure: the reason for a client error, the legacy retry text
/// when a dependency failed.
fn join_failure_text(e: &impl Classify) -> String {
    match e.kind() {
        ErrorKind::Unavailable | ErrorKind::Internal => JOIN_FAILED.to_owned(),
        ErrorKind::Invalid
        | ErrorKind::Unauthorized
        | ErrorKind::Forbidden
        | ErrorKind::NotFound
        | ErrorKind::Conflict
        | ErrorKind::SoldOut
        | ErrorKind::RateLimited => e.public_message(),
    }
}

async fn on_join(
    s: SocketRef,
    io: SocketIo,
    State(state): State<AppState>,
    State(refreshers): State<Refreshers>,
    Extension(principal): Extension<Principal>,
    TryData(payload): TryData<Value>,
) {
    let payload = payload.unwrap_or(Value::Null);
    let raw_event = payload.get("eventId").cloned();
    let scope = match &raw_event {
        None | Some(Value::Null) => Some(QueueScope::Global),
        Some(Value::String(s)) if s.trim().is_empty() => Some(QueueScope::Global),
        Some(Value::String(s)) => QueueScope::parse(s.trim()),
        Some(_) => None,
    };
    let Some(scope) = scope else {
        emit_error(&s, "eventId must be a UUID");
        return;
    };
    let cx = context(&s, principal);
    let ticket = match state.handlers.join_queue.handle(&cx, scope).await {
        Ok(t) => t,
        Err(e) => {
            emit_error(&s, &join_failure_text(&e));
            return;
        }
    };
    if let Some(old) = s.extensions.get::<Tracking>() {
        s.leave(vec![
            old.scope.to_string(),
            format!("ticket:{}", old.ticket),
        ]);
    }
    let tracking = Tracking {
        ticket: ticket.id,
        scope,
        generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        since: tokio::time::Instant::now(),
    };
    s.extensions.insert(tracking);
    s.join(vec![scope.to_string(), format!("ticket:{}", ticket.id)]);
    // Read the ticket only now that the socket is in its room: an admission announced before
    // the join shows here, one announced after it is pushed to the room.
    match state.handlers.queue_status.handle(&cx, ticket.id).await {
        Ok(st) => {
            let _ = s.emit("queue:update", &QueueStatus::from(&st));
            let _ = s.emit(
                "queue:summary",
                &json!({"eventId": scope.to_string(), "queueSize": st.queue_size, "readyCapacity": st.ready_capacity}),
            );
        }
        Err(_) => emit_error(&s, STATUS_FAILED),
    }
    let _ = s.emit(
        "queue:joined",
        &json!({ "ticketId": ticket.id.to_string(), "eventId": raw_event }),
    );
    // The socket is tracked and in its room: a refresher that has not yet ended sees it.
    let start = refreshers.running().insert(scope);
    if start {
        tokio::spawn(refresh_room(io, state, refreshers, scope));
    }
}

/// Status reads in flight per room refresh pass. One at a time, a status read (a Redis round
/// trip, ~0.2–0.5 ms) would take 10,000 sockets 2–5 s per pass, longer than the refresh
/// period (3 s by default); 64 at once (the bound of the phase pushes) lets the store's
/// throughput set the pass time, while never putting more than 64 reads on the store, or 64
/// read futures in memory, at once, however large the room.
const REFRESHES_IN_FLIGHT: usize = 64;

/// Position updates for every socket of this instance waiting in the `scope` room, one pass
/// per refresh period: each socket gets its own ticket's status, at most once a period (the
/// first a period after its join), until its ticket is finished (Expired, Ordered, Closed) or
/// cannot be read, it joins another queue, leaves, or disconnects. Ends when no socket in the
/// room is waiting for updates; the next join starts a new one.
async fn refresh_room(io: SocketIo, state: AppState, refreshers: Refreshers, scope: QueueScope) {
    use futures::StreamExt;
    let period = state.ws_refresh;
    let room = scope.to_string();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let at = tick.tick().await;
        let waiting = |io: &SocketIo| -> Vec<(SocketRef, Tracking)> {
            let Some(ns) = io.of(NAMESPACE) else {
                return Vec::new();
            };
            ns.to(room.clone())
                .sockets()
                .into_iter()
                .filter_map(|s| {
                    let t = s.extensions.get::<Tracking>()?;
                    let finished = s.extensions.get::<Finished>();
                    (t.scope == scope && finished.is_none_or(|f| f.0 != t.generation))
                        .then_some((s, t))
                })
                .collect()
        };
        let mut sockets = waiting(&io);
        if sockets.is_empty() {
            // Decided under the lock a join takes after entering the room: either that join
            // sees this refresher gone and starts another, or this check sees its socket.
            let mut running = refreshers.running();
            sockets = waiting(&io);
            if sockets.is_empty() {
                running.remove(&scope);
                return;
            }
        }
        let state = &state;
        futures::stream::iter(sockets)
            .filter(|(_, t)| std::future::ready(at.saturating_duration_since(t.since) >= period))
            .for_each_concurrent(REFRESHES_IN_FLIGHT, |(s, tracking)| async move {
                refresh(state, s, tracking).await;
            })
            .await;
    }
}

/// One socket's `queue:update` in a refresh pass; marks it [`Finished`] after a last update.
async fn refresh(state: &AppState, s: SocketRef, tracking: Tracking) {
    let cx = Context::new(format!("ws-{}", s.id));
    let read = state
        .handlers
        .queue_status
        .handle(&cx, tracking.ticket)
        .await;
    // It may have joined another queue, left or gone while its ticket was read.
    let current = s.extensions.get::<Tracking>();
    if !s.connected() || current.map(|t| t.generation) != Some(tracking.generation) {
        return;
    }
    match read {
        Ok(st) => {
            let _ = s.emit("queue:update", &QueueStatus::from(&st));
            if matches!(
                st.ticket.state,
                TicketState::Expired | TicketState::Ordered | TicketState::Closed
            ) {
                s.extensions.insert(Finished(tracking.generation));
            }
        }
        Err(_) => {
            emit_error(&s, STATUS_FAILED);
            s.extensions.insert(Finished(tracking.generation));
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LeavePayload {
    clear_ticket: Option<bool>,
}

async fn on_leave(
    s: SocketRef,
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    TryData(payload): TryData<LeavePayload>,
) {
    let clear = payload.ok().and_then(|p| p.clear_ticket).unwrap_or(false);
    if let Some(t) = s.extensions.remove::<Tracking>() {
        s.leave(vec![t.scope.to_string(), format!("ticket:{}", t.ticket)]);
        if clear {
            let cx = context(&s, principal);
            if let Err(e) = state.handlers.leave_queue.handle(&cx, t.ticket).await {
                tracing::debug!(error = %e, "leave on socket failed");
            }
        }
    }
    let _ = s.emit("queue:left", &());
}

/// Notices pushed at once: a promotion admits many tickets together, and each push waits for a
/// status read.
const PUSHES_IN_FLIGHT: usize = 64;

/// Emits a `queue:update` to the owner's sockets the moment their ticket is admitted, and
/// records in `queue_ready_push_seconds` how long after the promotion that was.
async fn forward_notices(io: SocketIo, state: AppState, notifier: Arc<dyn QueueNotifier>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(PUSHES_IN_FLIGHT));
    loop {
        let mut sub = match notifier.subscribe().await {
            Ok(sub) => sub,
            Err(e) => {
                tracing::warn!(error = %e, "queue notices unavailable; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(notice) = sub.next().await {
            let notice = match notice {
                Notice::Ticket(n) => n,
                // The event memory follows these itself (`flash_handlers::events::follow_changes`).
                Notice::Event(_) => continue,
                Notice::Line(n) => {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        continue;
                    };
                    let (io, state) = (io.clone(), state.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        push_phase(io, state, n).await;
                    });
                    continue;
                }
            };
            let Some(ns) = io.of(NAMESPACE) else { continue };
            let room = format!("ticket:{}", notice.ticket_id);
            // The owner's socket may be on another instance: nothing to read or push here.
            if ns.to(room.clone()).sockets().is_empty() {
                continue;
            }
            let Ok(permit) = slots.clone().acquire_owned().await else {
                continue;
            };
            let (io, state) = (io.clone(), state.clone());
            tokio::spawn(async move {
                let _permit = permit;
                push_notice(io, state, room, notice).await;
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Tells every socket of this instance waiting in a line that changed phase where it now stands:
/// each socket's own ticket is read (a READY buyer stays READY on a sold-out line), at most
/// [`PUSHES_IN_FLIGHT`] reads at once, all from this one task.
async fn push_phase(io: SocketIo, state: AppState, notice: LineNotice) {
    use futures::StreamExt;
    let Some(ns) = io.of(NAMESPACE) else { return };
    let sockets = ns.to(notice.scope.clone()).sockets();
    tracing::debug!(scope = %notice.scope, phase = notice.phase.as_str(), sockets = sockets.len(), "pushing a line phase");
    let cx = Context::new("line-notice");
    futures::stream::iter(sockets)
        .for_each_concurrent(PUSHES_IN_FLIGHT, |s| {
            let (state, cx) = (&state, &cx);
            async move {
                let Some(tracking) = s.extensions.get::<Tracking>() else {
                    return;
                };
                if let Ok(st) = state
                    .handlers
                    .queue_status
                    .handle(cx, tracking.ticket)
                    .await
                {
                    let _ = s.emit("queue:update", &QueueStatus::from(&st));
                }
            }
        })
        .await;
}

async fn push_notice(io: SocketIo, state: AppState, room: String, notice: QueueNotice) {
    let cx = Context::new("notice");
    // Read the ticket as it is now: the notice may be older than a later change.
    let Ok(st) = state
        .handlers
        .queue_status
        .handle(&cx, notice.ticket_id)
        .await
    else {
        return;
    };
    let Some(ns) = io.of(NAMESPACE) else { return };
    if let Err(e) = ns
        .to(room)
        .emit("queue:update", &QueueStatus::from(&st))
        .await
    {
        tracing::debug!(error = %e, "push of an admission failed");
        return;
    }
    // A promotion sets expires_at = promoted_at + gate TTL.
    if let Some(expires) = notice.expires_at {
        let ttl = i64::try_from(state.handlers.settings().queue.gate_ttl.as_millis()).unwrap_or(0);
        let promoted_at = expires.saturating_sub(ttl);
        let late_ms = state
            .handlers
            .now()
            .millis()
            .saturating_sub(promoted_at)
            .max(0);
        state
            .ops
            .metrics
            .queue_ready_push_seconds
            .observe(late_ms as f64 / 1000.0);
    }
}

/// One `queue:summary` per room per refresh period.
async fn broadcast_summaries(io: SocketIo, state: AppState) {
    let mut tick = tokio::time::interval(state.ws_refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(ns) = io.of(NAMESPACE) else { continue };
        let Ok(rooms) = ns.rooms().await;
        for room in rooms {
            let Some(scope) = QueueScope::parse(&room) else {
                continue;
            };
            if let Ok(summary) = state.handlers.queue_status.summary(scope).await {
                let body = json!({
                    "eventId": room.to_string(),
                    "queueSize": summary.queue_size,
                    "readyCapacity": summary.ready_capacity,
                });
                if let Some(ns) = io.of(NAMESPACE) {
                    let _ = ns.to(room).emit("queue:summary", &body).await;
                }
            }
        }
    }
}

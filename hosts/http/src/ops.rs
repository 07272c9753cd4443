//! Operations endpoints of every service: `/live`, `/ready`, `/health`, `/metrics`,
//! `/openapi.json`.

use crate::dto::{DependencyCheck, HealthReport, ReadyReport};
use crate::metrics::{LegacyText, live_body};
use crate::state::OpsState;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flash_core::EventId;
use flash_core::domain::QueueScope;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// The operations routes, on any state they can be read from.
pub fn ops_routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    OpsState: FromRef<S>,
{
    Router::new()
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// Liveness: the process answers; no dependency is touched.
#[utoipa::path(get, path = "/live", tag = "ops", operation_id = "live",
    summary = "Liveness (no dependency checks)",
    responses((status = 200, description = "`service_live 1`.", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")),
    extensions(("x-service" = json!("common"))))]
async fn live() -> Response {
    live_body().into_response()
}

/// The document of what this instance serves: one service's operations on a pod, all of them
/// on `flash up` and Lambda.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "This OpenAPI document, generated from the typed bodies.", body = Object)),
    extensions(("x-service" = json!("common"))))]
async fn openapi(State(s): State<OpsState>) -> Json<Value> {
    Json(match (s.services.gateway, s.services.api) {
        (true, false) => crate::openapi::document_for("gateway"),
        (false, true) => crate::openapi::document_for("api"),
        _ => crate::openapi::document().clone(),
    })
}

/// Pings every dependency in parallel, each bounded by the health timeout.
async fn checks(s: &OpsState) -> (bool, BTreeMap<String, DependencyCheck>) {
    let pings = s.health.iter().map(|check| async move {
        let started = Instant::now();
        let outcome = tokio::time::timeout(s.health_timeout, check.ping()).await;
        let elapsed = started.elapsed().as_millis() as u64;
        (check.name(), matches!(outcome, Ok(Ok(()))), elapsed)
    });
    let results = futures::future::join_all(pings).await;
    let all_up = results.iter().all(|(_, up, _)| *up);
    let checks = results
        .into_iter()
        .map(|(name, up, ms)| {
            let check = DependencyCheck {
                status: if up { "up" } else { "down" },
                response_time: up.then_some(ms),
            };
            (name.to_owned(), check)
        })
        .collect();
    (all_up, checks)
}

/// 200 when every dependency is up, else 503, with `body`.
fn report(up: bool, body: impl Serialize) -> Response {
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Readiness: every dependency reachable within the health timeout.
#[utoipa::path(get, path = "/ready", tag = "ops", operation_id = "ready",
    summary = "Readiness: dependencies reachable (with timeouts)",
    responses(
        (status = 200, description = "Ready.", body = ReadyReport),
        (status = 503, description = "Not ready.", body = ReadyReport),
    ),
    extensions(("x-service" = json!("common"))))]
async fn ready(State(s): State<OpsState>) -> Response {
    let (up, checks) = checks(&s).await;
    let status = if up { "ready" } else { "not_ready" };
    report(up, ReadyReport { status, checks })
}

/// The legacy health report; 503 with the same shape when a dependency is down.
#[utoipa::path(get, path = "/health", tag = "ops", operation_id = "health",
    summary = "Legacy health report",
    responses(
        (status = 200, description = "All dependencies up.", body = HealthReport),
        (status = 503, description = "A dependency is down (the same object, status `error`).", body = HealthReport),
    ),
    extensions(("x-service" = json!("common"))))]
async fn health(State(s): State<OpsState>) -> Response {
    let (up, checks) = checks(&s).await;
    let body = HealthReport {
        status: if up { "ok" } else { "error" },
        timestamp: s.work.now().to_iso(),
        uptime: s.started.elapsed().as_secs_f64(),
        checks,
    };
    report(up, body)
}

/// Orders and payments of each active event line's event, by outcome (the monitoring page's
/// per-line chart; the site-wide line's are the unlabelled legacy counters).
async fn line_shop_counts(s: &OpsState, lines: &[EventId], t: &mut LegacyText) {
    const ORDERS: &str = "flash_line_orders_total";
    const ORDERS_HELP: &str = "Orders of each active event line's event, by outcome (created: all)";
    const PAYMENTS: &str = "flash_line_payments_total";
    const PAYMENTS_HELP: &str = "Payments of each active event line's event, by outcome";
    t.declare_counter(ORDERS, ORDERS_HELP)
        .declare_counter(PAYMENTS, PAYMENTS_HELP);
    for &event in lines {
        let c = match s.work.overview.event_shop(event).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, %event, "line order figures unavailable for /metrics");
                continue;
            }
        };
        let event = event.to_string();
        for (status, n) in [
            ("created", c.orders_total),
            ("paid", c.orders_paid),
            ("failed", c.orders_failed),
            ("expired", c.orders_expired),
        ] {
            t.counter_with(
                ORDERS,
                ORDERS_HELP,
                &[("event", &event), ("status", status)],
                n as f64,
            );
        }
        for (status, n) in [("ok", c.payments_ok), ("failed", c.payments_failed)] {
            t.counter_with(
                PAYMENTS,
                PAYMENTS_HELP,
                &[("event", &event), ("status", status)],
                n as f64,
            );
        }
    }
}

/// The registry plus the legacy metrics, computed from counters and per-queue figures (no scans).
#[utoipa::path(get, path = "/metrics", tag = "ops", operation_id = "metrics",
    summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text format.", body = String,
        content_type = "text/plain; version=0.0.4; charset=utf-8")),
    extensions(("x-service" = json!("common"))))]
async fn metrics(State(s): State<OpsState>) -> Response {
    let mut t = LegacyText::new();
    let now = s.work.now();
    let mut lines = Vec::new();
    if s.services.gateway || s.services.api {
        match s.work.overview.queues().await {
            Ok(queues) => {
                lines = queues.iter().filter_map(|q| q.scope.event()).collect();
                let (mut waiting, mut ready, mut used) = (0u64, 0u64, 0u64);
                for q in &queues {
                    let label = match q.scope {
                        QueueScope::Global => "global".to_owned(),
                        QueueScope::Event(e) => e.to_string(),
                    };
                    let phase = flash_handlers::timeline::phase_code(q.phase);
                    for (name, help, value) in [
                        (
                            "flash_queue_length",
                            "Waiting (QUEUED) tickets per queue",
                            q.queued as f64,
                        ),
                        (
                            "flash_queue_admitted",
                            "Admitted (READY + USED) tickets per queue",
                            q.admitted as f64,
                        ),
                        (
                            "flash_queue_estimated_wait_seconds",
                            "Seconds the last in line waits at the measured admission rate, per queue",
                            q.estimated_wait_seconds as f64,
                        ),
                        (
                            "flash_queue_phase",
                            "Sale phase of each queue: 1 PREQUEUE, 2 OPEN, 3 SOLD_OUT, 4 CLOSED",
                            f64::from(phase),
                        ),
                    ] {
                        t.gauge_with(name, help, &[("event", &label)], value);
                    }
                    waiting += q.queued;
                    ready += q.admitted - q.used.min(q.admitted);
                    used += q.used;
                }
                t.gauge("flash_queue_events", "Queues reported", queues.len() as f64);
                for (name, help, value) in [
                    (
                        "queue_waiting_users_total",
                        "Waiting tickets over every queue",
                        waiting,
                    ),
                    (
                        "queue_ready_users_total",
                        "Admitted tickets not yet entered (READY) over every queue",
                        ready,
                    ),
                    (
                        "queue_used_users_total",
                        "Entered tickets (USED) still holding a slot over every queue",
                        used,
                    ),
                ] {
                    t.gauge(name, help, value as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "queue figures unavailable for /metrics"),
        }
        t.gauge(
            "flash_queue_metrics_collected_at",
            "Scrape time, epoch seconds",
            now.unix_seconds() as f64,
        );
    }
    if s.services.api {
        match s.work.overview.shop().await {
            Ok(c) => {
                t.counter(
                    "orders_created_total",
                    "Orders created",
                    c.orders_total as f64,
                );
                t.gauge("orders_hold_total", "Orders in HOLD", c.orders_hold as f64);
                t.counter("orders_paid_total", "Orders PAID", c.orders_paid as f64);
                t.counter(
                    "orders_cancelled_total",
                    "Orders CANCELLED",
                    c.orders_cancelled as f64,
                );
                t.counter(
                    "orders_failed_total",
                    "Orders whose payment failed (FAIL)",
                    c.orders_failed as f64,
                );
                t.counter(
                    "orders_expired_total",
                    "Orders whose hold expired",
                    c.orders_expired as f64,
                );
                t.gauge(
                    "payments_pending_total",
                    "Payments awaiting a result (REQ)",
                    c.payments_pending as f64,
                );
                t.counter(
                    "payments_successful_total",
                    "Payments OK",
                    c.payments_ok as f64,
                );
                t.counter(
                    "payments_failed_total",
                    "Payments FAIL",
                    c.payments_failed as f64,
                );
                s.metrics
                    .outbox_backlog
                    .set(i64::try_from(c.outbox_backlog).unwrap_or(i64::MAX));
            }
            Err(e) => tracing::warn!(error = %e, "order figures unavailable for /metrics"),
        }
        line_shop_counts(&s, &lines, &mut t).await;
        if let Some(db) = &s.db_stats {
            for (name, help, kind, value) in db.db_stats().await {
                match kind {
                    "counter" => t.counter(name, help, value),
                    _ => t.gauge(name, help, value),
                };
            }
        }
    }
    for b in s.budgets.all() {
        let labels = [("budget", b.name())];
        t.gauge_with(
            "flash_budget_used",
            "Entries kept for clients, per budget (SPEC §11)",
            &labels,
            b.used() as f64,
        );
        t.gauge_with(
            "flash_budget_max",
            "Most entries a budget keeps",
            &labels,
            b.max() as f64,
        );
        t.counter_with(
            "flash_budget_evicted_total",
            "Entries forgotten early because their budget was full",
            &labels,
            b.evicted() as f64,
        );
    }
    let (headers, body) = s.metrics.render(&t.finish());
    (headers, body).into_response()
}

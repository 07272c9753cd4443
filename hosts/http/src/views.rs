//! Response bodies: legacy camelCase field names, ISO-8601 UTC dates with milliseconds.

use flash_core::domain::{Event, Order, Payment};
use serde_json::{Value, json};

/// Legacy Event plus `heldQty` / `availableQty` (stock held by unpaid orders, and what is left).
pub fn event(e: &Event) -> Value {
    json!({
        "id": e.id.to_string(),
        "name": e.name,
        "startsAt": e.starts_at.to_iso(),
        "endsAt": e.ends_at.to_iso(),
        "totalQty": e.total_qty,
        "soldQty": e.sold_qty,
        "heldQty": e.held_qty,
        "availableQty": e.available().max(0),
        "maxPerUser": e.max_per_user,
        "price": e.price,
        "status": e.status.as_str(),
        "prequeueStartsAt": e.prequeue_starts_at.map(|t| t.to_iso()),
        "queueMode": e.queue_mode.as_str(),
        "createdAt": e.created_at.to_iso(),
        "updatedAt": e.updated_at.to_iso(),
    })
}

/// Which id field an order body carries: `POST /orders` says `orderId`, reads say `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderIdField {
    OrderId,
    Id,
}

pub fn order(o: &Order, id_field: OrderIdField) -> Value {
    let key = match id_field {
        OrderIdField::OrderId => "orderId",
        OrderIdField::Id => "id",
    };
    let mut v = json!({
        "status": o.status.as_str(),
        "amount": o.amount,
        "qty": o.qty,
        "eventId": o.event_id.to_string(),
        "eventName": o.event_name,
        "holdExpiresAt": o.hold_expires_at.to_iso(),
        "createdAt": o.created_at.to_iso(),
        "updatedAt": o.updated_at.to_iso(),
    });
    v[key] = json!(o.id.to_string());
    v
}

pub fn payment(p: &Payment) -> Value {
    json!({
        "paymentId": p.id.to_string(),
        "orderId": p.order_id.to_string(),
        "status": p.status.as_str(),
        "method": p.method,
        "amount": p.amount,
        "createdAt": p.created_at.to_iso(),
        "updatedAt": p.updated_at.to_iso(),
    })
}

/// `GET /events/admin/timeline`: per-second series aligned on `t` (unix seconds), ready for a
/// chart; `null` where a second has no figure.
pub fn timeline(line: &str, v: &flash_handlers::timeline::TimelineView) -> Value {
    json!({
        "line": line,
        "until": v.until,
        "periodSeconds": 1,
        "capacity": flash_core::domain::TIMELINE_SECONDS,
        "phase": v.phase,
        "lines": v.lines,
        "t": v.seconds,
        "queued": v.queued,
        "admitted": v.admitted,
        "arrivalsPerSecond": v.arrivals,
        "admissionsPerSecond": v.admissions,
        "estimatedWaitSeconds": v.estimated_wait,
        "ordersPerSecond": {
            "created": v.orders_created,
            "paid": v.orders_paid,
            "failed": v.orders_failed,
            "expired": v.orders_expired,
        },
        "paymentsPerSecond": {
            "ok": v.payments_ok,
            "failed": v.payments_failed,
        },
        "requestsPerSecond": v.requests,
        "clientErrorsPerSecond": v.client_errors,
        "serverErrorsPerSecond": v.server_errors,
        "p99Seconds": v.p99,
        "markers": v.markers.iter().map(|m| json!({"t": m.second, "phase": m.phase})).collect::<Vec<_>>(),
    })
}

mod common;

use common::*;
use flash_core::domain::{EventPatch, EventStatus, OrderStatus, QueueScope, TicketState};
use flash_core::ports::{EventStore, QueueStore};
use flash_core::{Classify, Context, ErrorKind, EventId, OrderId, Principal};
use flash_handlers::orders::{OrderError, PlaceOrderRequest, Placed};

fn with_key(p: &Principal, key: &str) -> Context {
    let mut c = as_user(p);
    c.idempotency_key = Some(key.into());
    c
}

async fn order(w: &World, c: &Context, event: EventId, qty: i64) -> Result<Placed, OrderError> {
    w.h.place_order
        .handle(
            c,
            PlaceOrderRequest {
                event_id: event,
                qty,
            },
        )
        .await
}

#[tokio::test]
async fn an_order_needs_an_idempotency_key() {
    let w = world();
    let ev = w.onsale_event(10, 2).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    let e = order(&w, &as_user(&u), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(e.public_message(), "Idempotency-Key header is required");
    let e = order(&w, &with_key(&u, "   "), ev.id, 1).await.unwrap_err();
    assert!(matches!(e, OrderError::KeyRequired));
    let e = order(&w, &with_key(&u, &"k".repeat(256)), ev.id, 1)
        .await
        .unwrap_err();
    assert!(matches!(e, OrderError::KeyTooLong));
}

#[tokio::test]
async fn nobody_buys_without_an_admission() {
    let w = world();
    let ev = w.onsale_event(10, 2).await;
    let u = buyer();
    let e = order(&w, &with_key(&u, "k1"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert_eq!(
        e.public_message(),
        "Invalid gate token or gate token expired"
    );
    // Waiting in line is not an admission either.
    w.h.join_queue
        .handle(&as_user(&u), QueueScope::Global)
        .await
        .unwrap();
    let e = order(&w, &with_key(&u, "k1"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert_eq!(w.event(ev.id).await.held_qty, 0);
}

#[tokio::test]
async fn an_admission_to_the_event_queue_or_the_global_queue_both_work_once() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let t = w.admit(&u, QueueScope::Event(ev.id)).await;
    let placed = order(&w, &with_key(&u, "k1"), ev.id, 1).await.unwrap();
    assert_eq!(placed.order.status, OrderStatus::Hold);
    assert_eq!(
        w.queue.ticket(t.id, w.now()).await.unwrap().unwrap().state,
        TicketState::Ordered,
        "the admission is spent"
    );
    let e = order(&w, &with_key(&u, "k2"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    w.admit(&u, QueueScope::Global).await;
    order(&w, &with_key(&u, "k2"), ev.id, 1).await.unwrap();
}

#[tokio::test]
async fn a_gate_token_admits_only_its_own_user() {
    let w = world();
    let ev = w.onsale_event(10, 2).await;
    let (a, b) = (buyer(), buyer());
    let ta = w.admit(&a, QueueScope::Event(ev.id)).await;
    let gate =
        w.h.queue_status
            .handle(&cx(), ta.id)
            .await
            .unwrap()
            .gate_token
            .unwrap();
    let mut stolen = with_key(&b, "k1");
    stolen.gate_token = Some(gate.clone());
    let e = order(&w, &stolen, ev.id, 1).await.unwrap_err();
    assert!(matches!(e, OrderError::NotAdmitted));
    let mut own = with_key(&a, "k1");
    own.gate_token = Some(gate);
    order(&w, &own, ev.id, 1).await.unwrap();
}

#[tokio::test]
async fn a_gate_token_for_another_event_does_not_admit() {
    let w = world();
    let ev = w.onsale_event(10, 2).await;
    let other = w.onsale_event(10, 2).await;
    let a = buyer();
    let t = w.admit(&a, QueueScope::Event(other.id)).await;
    let gate =
        w.h.queue_status
            .handle(&cx(), t.id)
            .await
            .unwrap()
            .gate_token
            .unwrap();
    let mut c = with_key(&a, "k1");
    c.gate_token = Some(gate);
    assert!(matches!(
        order(&w, &c, ev.id, 1).await,
        Err(OrderError::NotAdmitted)
    ));
}

#[tokio::test]
async fn admission_enforcement_can_be_switched_off() {
    let mut s = settings();
    s.queue.enforce_admission = false;
    let w = world_with(s);
    let ev = w.onsale_event(10, 2).await;
    order(&w, &with_key(&buyer(), "k1"), ev.id, 1)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hold_reserves_stock_at_once() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let o = w.hold(&buyer(), &ev, 3).await;
    assert_eq!(o.amount, 150_000);
    assert_eq!(o.event_name, "Concert");
    let now = w.event(ev.id).await;
    assert_eq!((now.held_qty, now.sold_qty, now.available()), (3, 0, 7));
}

#[tokio::test]
async fn the_same_key_and_body_replays_the_same_order() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    let first = order(&w, &with_key(&u, "k1"), ev.id, 2).await.unwrap();
    let again = order(&w, &with_key(&u, "k1"), ev.id, 2).await.unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(first.order.id, again.order.id);
    assert_eq!(w.event(ev.id).await.held_qty, 2);
    let e = order(&w, &with_key(&u, "k1"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.unprocessable());
    assert_eq!(
        e.public_message(),
        "Idempotency-Key reused with a different request"
    );
}

#[tokio::test]
async fn concurrent_duplicates_of_one_key_make_one_order() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    let c = with_key(&u, "same");
    let results = futures_join(&w, &c, ev.id).await;
    let ids: std::collections::HashSet<OrderId> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|p| p.order.id)
        .collect();
    assert_eq!(ids.len(), 1);
    assert_eq!(w.event(ev.id).await.held_qty, 1);
}

async fn futures_join(w: &World, c: &Context, ev: EventId) -> Vec<Result<Placed, OrderError>> {
    let (a, b, d) = tokio::join!(order(w, c, ev, 1), order(w, c, ev, 1), order(w, c, ev, 1));
    vec![a, b, d]
}

#[tokio::test]
async fn keys_are_scoped_per_user() {
    let mut s = settings();
    s.queue.enforce_admission = false;
    let w = world_with(s);
    let ev = w.onsale_event(10, 4).await;
    let a = order(&w, &with_key(&buyer(), "shared"), ev.id, 1)
        .await
        .unwrap();
    let b = order(&w, &with_key(&buyer(), "shared"), ev.id, 1)
        .await
        .unwrap();
    assert_ne!(a.order.id, b.order.id);
}

#[tokio::test]
async fn the_last_tickets_go_to_whoever_holds_first() {
    let w = world();
    let ev = w.onsale_event(3, 4).await;
    w.hold(&buyer(), &ev, 2).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    let e = order(&w, &with_key(&u, "k"), ev.id, 2).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SoldOut);
    assert_eq!(e.public_message(), "Not enough tickets remaining");
    // The refusal is remembered under the key.
    let again = order(&w, &with_key(&u, "k"), ev.id, 2).await.unwrap_err();
    assert!(matches!(again, OrderError::SoldOut));
    order(&w, &with_key(&u, "k2"), ev.id, 1).await.unwrap();
}

#[tokio::test]
async fn the_per_user_limit_counts_holds_and_purchases() {
    let mut s = settings();
    s.queue.enforce_admission = false;
    let w = world_with(s);
    let ev = w.onsale_event(100, 3).await;
    let u = buyer();
    order(&w, &with_key(&u, "a"), ev.id, 2).await.unwrap();
    let e = order(&w, &with_key(&u, "b"), ev.id, 2).await.unwrap_err();
    assert_eq!(
        e.public_message(),
        "Requested quantity exceeds per-user limit"
    );
    assert_eq!(e.kind(), ErrorKind::Invalid);
    order(&w, &with_key(&u, "c"), ev.id, 1).await.unwrap();
}

#[tokio::test]
async fn events_not_on_sale_or_missing_sell_nothing() {
    let w = world();
    let ev = w.onsale_event(10, 2).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    let e = order(&w, &with_key(&u, "k"), EventId(uuid::Uuid::new_v4()), 1)
        .await
        .unwrap_err();
    assert_eq!(e.public_message(), "Event not found");
    let close = EventPatch {
        status: Some(EventStatus::Closed),
        ..Default::default()
    };
    w.shop.update(ev.id, close, w.now()).await.unwrap();
    let e = order(&w, &with_key(&u, "k2"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.public_message(), "Event is not on sale");
}

#[tokio::test]
async fn an_unpaid_hold_expires_and_gives_its_stock_back() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let o = w.hold(&buyer(), &ev, 2).await;
    w.advance(299_000);
    assert!(w.expire_holds().await.is_empty());
    w.advance(1_000);
    let expired = w.expire_holds().await;
    assert_eq!(expired.iter().map(|o| o.id).collect::<Vec<_>>(), vec![o.id]);
    let now = w.event(ev.id).await;
    assert_eq!(now.held_qty, 0);
    assert_eq!(w.order(o.id).await.status, OrderStatus::Expired);
}

#[tokio::test]
async fn another_users_order_does_not_exist_but_admins_see_all() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let owner = buyer();
    let o = w.hold(&owner, &ev, 1).await;
    let e =
        w.h.get_order
            .handle(&as_user(&buyer()), o.id)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.public_message(), "Order not found");
    assert_eq!(
        w.h.get_order
            .handle(&as_user(&owner), o.id)
            .await
            .unwrap()
            .id,
        o.id
    );
    assert_eq!(
        w.h.get_order
            .handle(&as_user(&admin()), o.id)
            .await
            .unwrap()
            .id,
        o.id
    );
    let mine = w.h.list_orders.handle(&as_user(&owner)).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        w.h.list_orders
            .handle(&as_user(&buyer()))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_order_store_outage_is_reported_as_unavailable() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    w.faults.set(true);
    let e = order(&w, &with_key(&u, "k"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    w.faults.set(false);
    order(&w, &with_key(&u, "k"), ev.id, 1).await.unwrap();
}

#[tokio::test]
async fn a_buyer_refused_because_nothing_is_left_frees_the_slot_at_once() {
    let mut s = settings();
    s.queue.capacity = 2;
    let w = world_with(s);
    let ev = w.onsale_event(2, 2).await;
    let scope = QueueScope::Event(ev.id);
    // Both admitted while two tickets are left; the first takes both.
    let first = buyer();
    w.admit(&first, scope).await;
    let second = buyer();
    let refused = w.admit(&second, scope).await;
    order(&w, &with_key(&first, "k"), ev.id, 2).await.unwrap();

    let e = order(&w, &with_key(&second, "k"), ev.id, 1)
        .await
        .unwrap_err();
    assert_eq!(e.public_message(), "Not enough tickets remaining");
    let after = w.queue.ticket(refused.id, w.now()).await.unwrap().unwrap();
    assert_eq!(
        after.state,
        TicketState::Expired,
        "the slot is freed, not kept until its TTL"
    );
    assert_eq!(w.queue.stats(scope, w.now()).await.unwrap().admitted, 0);
}

#[tokio::test]
async fn a_buyer_refused_while_tickets_remain_keeps_the_admission() {
    let w = world();
    let ev = w.onsale_event(3, 4).await;
    w.hold(&buyer(), &ev, 2).await;
    let u = buyer();
    let ticket = w.admit(&u, QueueScope::Event(ev.id)).await;
    let e = order(&w, &with_key(&u, "k"), ev.id, 2).await.unwrap_err();
    assert_eq!(e.public_message(), "Not enough tickets remaining");
    let kept = w.queue.ticket(ticket.id, w.now()).await.unwrap().unwrap();
    assert!(kept.state.is_admitted(), "{:?}", kept.state);
    order(&w, &with_key(&u, "k2"), ev.id, 1).await.unwrap();
}

#[tokio::test]
async fn an_event_of_its_own_line_refuses_a_site_wide_admission() {
    let w = world();
    let ev = w.onsale_event(10, 2).await;
    let own_line = flash_core::domain::EventPatch {
        queue_mode: Some(flash_core::domain::QueueMode::Event),
        ..Default::default()
    };
    w.shop.update(ev.id, own_line, w.now()).await.unwrap();
    let u = buyer();
    let global = w.admit(&u, QueueScope::Global).await;
    let e = order(&w, &with_key(&u, "k"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), flash_core::ErrorKind::Forbidden);
    assert_eq!(
        e.public_message(),
        "Invalid gate token or gate token expired"
    );
    // Its gate token does not open that door either.
    let pass = w.h.queue_status.handle(&cx(), global.id).await.unwrap();
    let mut c = with_key(&u, "k2");
    c.gate_token = pass.gate_token;
    assert!(c.gate_token.is_some());
    let e = order(&w, &c, ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), flash_core::ErrorKind::Forbidden);
    // The event's own admission does.
    w.admit(&u, QueueScope::Event(ev.id)).await;
    order(&w, &with_key(&u, "k3"), ev.id, 1).await.unwrap();
}

/// The reservation answers a replay itself, so the checks before it look the key up only when
/// they refuse: a replay is answered even while the queue store is down (its admission is
/// spent, and the admission check fails), and a new key is told the store is unavailable.
#[tokio::test]
async fn a_replay_is_answered_when_the_checks_before_the_reservation_fail() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    let first = order(&w, &with_key(&u, "k1"), ev.id, 1).await.unwrap();
    w.faults.fail_next(1);
    let again = order(&w, &with_key(&u, "k1"), ev.id, 1).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.order.id, first.order.id);
    w.faults.fail_next(1);
    let e = order(&w, &with_key(&u, "k2"), ev.id, 1).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(w.event(ev.id).await.held_qty, 1);
}

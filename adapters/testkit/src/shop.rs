//! Contracts of `EventStore`, `OrderStore`, `PaymentStore` and `Outbox`.

use crate::fixtures::{
    HOLD_TTL, KEY_TTL, ShopPorts, assert_count, count, distinct, event, event_id, hold, order_id,
    pay, payment_id, race, result, unique, user,
};
use flash_core::domain::{
    Event, EventPatch, EventStatus, HoldOutcome, HoldRejection, KeyedOutcome, Order, OrderStatus,
    PatchRejection, Payment, PaymentOpened, PaymentRejection, PaymentStatus, ResultApplied,
    ResultCommand, ResultRejection, ShopCounts, Verdict,
};
use flash_core::messages::{Envelope, PaymentRequestMessage};
use flash_core::ports::{EventDeletion, EventListing, EventUpdate};
use flash_core::{EventId, OrderId, PaymentId, Timestamp};
use std::collections::HashSet;
use std::time::Duration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

async fn on_sale(shop: &ShopPorts, now: Timestamp, total: i64, max: i64) -> Event {
    let e = event(now, total, max, 1500);
    shop.events.create(e.clone()).await.unwrap();
    e
}

async fn stock(shop: &ShopPorts, id: EventId) -> (i64, i64) {
    let e = shop.events.get(id).await.unwrap().expect("event vanished");
    (e.sold_qty, e.held_qty)
}

async fn counts(shop: &ShopPorts) -> ShopCounts {
    shop.payments.counts().await.unwrap()
}

/// Outbox messages not yet sent.
async fn backlog(shop: &ShopPorts) -> u64 {
    shop.outbox.backlog().await.unwrap()
}

async fn order(shop: &ShopPorts, id: OrderId) -> Order {
    shop.orders.get(id).await.unwrap().expect("order vanished")
}

/// A HOLD order of `qty` for a fresh user.
async fn held(shop: &ShopPorts, e: &Event, qty: i64, now: Timestamp) -> Order {
    match shop
        .orders
        .place_hold(hold(e.id, user(), qty, &unique("k"), now))
        .await
        .unwrap()
    {
        HoldOutcome::Created(o) => o,
        other => panic!("hold refused: {other:?}"),
    }
}

async fn opened(shop: &ShopPorts, o: &Order, now: Timestamp) -> Payment {
    match shop.payments.open(pay(o, now)).await.unwrap() {
        Ok(PaymentOpened::Created(p)) => p,
        other => panic!("payment not opened: {other:?}"),
    }
}

async fn settle(shop: &ShopPorts, p: &Payment, verdict: Verdict, now: Timestamp) -> ResultApplied {
    shop.payments
        .apply(result(p, verdict, now))
        .await
        .unwrap()
        .unwrap_or_else(|r| panic!("result refused: {r:?}"))
}

/// Settles `p` OK where the order can no longer be paid: the payment must be REFUND_REQUIRED,
/// and counted there.
async fn refund_required(shop: &ShopPorts, p: &Payment, now: Timestamp, why: &str) -> Payment {
    let before = counts(shop).await.payments_refund_required;
    let ResultApplied::RefundRequired(r) = settle(shop, p, Verdict::Ok, now).await else {
        panic!("{why}");
    };
    assert_eq!(r.status, PaymentStatus::RefundRequired, "{why}");
    assert_eq!(counts(shop).await.payments_refund_required, before + 1);
    r
}

fn ours(list: Vec<Event>, ids: &[EventId]) -> Vec<EventId> {
    list.into_iter()
        .map(|e| e.id)
        .filter(|id| ids.contains(id))
        .collect()
}

/// Public listing: ONSALE and CLOSED only, by `starts_at` ascending.
pub async fn events_public_listing_hides_drafts_and_sorts_by_start(
    shop: ShopPorts,
    now: Timestamp,
) {
    let mut draft = event(now, 10, 2, 100);
    draft.status = EventStatus::Draft;
    draft.starts_at = now.plus(secs(3600));
    let mut later = event(now, 10, 2, 100);
    later.starts_at = now.plus(secs(3 * 3600));
    let mut closed = event(now, 10, 2, 100);
    closed.status = EventStatus::Closed;
    closed.starts_at = now.plus(secs(2 * 3600));
    for e in [&draft, &later, &closed] {
        shop.events.create(e.clone()).await.unwrap();
    }
    let ids = [draft.id, later.id, closed.id];
    let public = ours(shop.events.list(EventListing::Public).await.unwrap(), &ids);
    assert_eq!(
        public,
        vec![closed.id, later.id],
        "public listing wrong or unsorted"
    );
    let admin = ours(shop.events.list(EventListing::Admin).await.unwrap(), &ids);
    assert_eq!(admin.len(), 3, "admin listing must show drafts too");
}

/// Admin listing: every event, by `created_at` descending.
pub async fn events_admin_listing_is_newest_first(shop: ShopPorts, now: Timestamp) {
    let mut made = Vec::new();
    for i in 0..3 {
        let mut e = event(now.plus(secs(i)), 10, 2, 100);
        if i == 1 {
            e.status = EventStatus::Draft;
        }
        shop.events.create(e.clone()).await.unwrap();
        made.push(e.id);
    }
    let admin = ours(shop.events.list(EventListing::Admin).await.unwrap(), &made);
    assert_eq!(admin, vec![made[2], made[1], made[0]]);
}

/// `update` applies `Event::patched` to the current row: stock counters are never overwritten.
pub async fn events_update_applies_patch_to_the_current_row(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    held(&shop, &e, 3, now).await;
    let at = now.plus(secs(5));
    let patch = EventPatch {
        name: Some("renamed".into()),
        total_qty: Some(20),
        ..EventPatch::default()
    };
    let EventUpdate::Updated(next) = shop.events.update(e.id, patch, at).await.unwrap() else {
        panic!("valid patch refused");
    };
    assert_eq!(next.name, "renamed");
    assert_eq!(next.total_qty, 20);
    assert_eq!(next.held_qty, 3, "the patch overwrote the held quantity");
    assert_eq!(next.updated_at, at);
    assert_eq!(shop.events.get(e.id).await.unwrap(), Some(next));
}

/// Rejections of `Event::patched` come back as `Rejected`; an unknown id is `NotFound`.
pub async fn events_update_rejects_what_patched_rejects(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    held(&shop, &e, 4, now).await;
    let below = EventPatch {
        total_qty: Some(3),
        ..EventPatch::default()
    };
    assert_eq!(
        shop.events.update(e.id, below, now).await.unwrap(),
        EventUpdate::Rejected(PatchRejection::TotalBelowCommitted)
    );
    let back = EventPatch {
        status: Some(EventStatus::Draft),
        ..EventPatch::default()
    };
    assert!(matches!(
        shop.events.update(e.id, back, now).await.unwrap(),
        EventUpdate::Rejected(PatchRejection::InvalidTransition { .. })
    ));
    assert_eq!(
        shop.events.get(e.id).await.unwrap().map(|e| e.total_qty),
        Some(10)
    );
    assert_eq!(
        shop.events
            .update(event_id(), EventPatch::default(), now)
            .await
            .unwrap(),
        EventUpdate::NotFound
    );
}

/// A concurrent reservation MUST NOT be lost or overwritten by an update.
pub async fn events_update_never_loses_concurrent_reservations(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 1000, 5).await;
    let mut tasks = Vec::new();
    for i in 0..60i64 {
        let shop = shop.clone();
        let id = e.id;
        tasks.push(tokio::spawn(async move {
            if i % 2 == 0 {
                let r = hold(id, user(), 1, &unique("k"), now);
                matches!(
                    shop.orders.place_hold(r).await.unwrap(),
                    HoldOutcome::Created(_)
                )
            } else {
                let patch = EventPatch {
                    price: Some(1000 + i),
                    ..EventPatch::default()
                };
                shop.events.update(id, patch, now).await.unwrap();
                false
            }
        }));
    }
    let mut created = 0;
    for t in tasks {
        created += i64::from(t.await.expect("task panicked"));
    }
    assert_eq!(created, 30);
    assert_eq!(
        stock(&shop, e.id).await,
        (0, 30),
        "an update lost reservations"
    );
}

/// `delete` refuses an event with orders; financial records are never cascaded away.
pub async fn events_delete_refuses_when_the_event_has_orders(shop: ShopPorts, now: Timestamp) {
    let sold = on_sale(&shop, now, 10, 2).await;
    let o = held(&shop, &sold, 1, now).await;
    shop.orders
        .expire_holds(o.hold_expires_at, 1000)
        .await
        .unwrap();
    assert_eq!(
        shop.events.delete(sold.id).await.unwrap(),
        EventDeletion::HasOrders,
        "deleted an event whose only order expired"
    );
    assert!(shop.events.get(sold.id).await.unwrap().is_some());
    let empty = on_sale(&shop, now, 10, 2).await;
    assert_eq!(
        shop.events.delete(empty.id).await.unwrap(),
        EventDeletion::Deleted
    );
    assert_eq!(shop.events.get(empty.id).await.unwrap(), None);
    assert_eq!(
        shop.events.delete(empty.id).await.unwrap(),
        EventDeletion::NotFound
    );
}

/// A HOLD takes `qty` into `held_qty` and is remembered under (user, key).
pub async fn orders_hold_takes_stock_and_is_remembered(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let req = hold(e.id, user(), 3, "key-1", now);
    let HoldOutcome::Created(o) = shop.orders.place_hold(req.clone()).await.unwrap() else {
        panic!("hold refused");
    };
    assert_eq!(o.id, req.order_id);
    assert_eq!((o.user, o.event_id, o.qty), (req.user, e.id, 3));
    assert_eq!(o.status, OrderStatus::Hold);
    assert_eq!(o.amount, 3 * e.price);
    assert_eq!(o.event_name, e.name);
    assert_eq!(o.hold_expires_at, req.hold_expires_at);
    assert_eq!(stock(&shop, e.id).await, (0, 3));
    let rec = shop
        .orders
        .keyed(req.user, "key-1", now)
        .await
        .unwrap()
        .expect("key not remembered");
    assert_eq!(rec.fingerprint, req.fingerprint);
    assert_eq!(rec.outcome, KeyedOutcome::Order(o.clone()));
    assert_eq!(shop.orders.keyed(user(), "key-1", now).await.unwrap(), None);
    assert_eq!(shop.orders.get(o.id).await.unwrap(), Some(o));
}

/// Under any concurrency `sold + held <= total`.
pub async fn orders_concurrent_holds_never_oversell(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 2).await;
    let outcomes = race(40, |_| {
        let shop = shop.clone();
        let r = hold(e.id, user(), 1, &unique("k"), now);
        async move { shop.orders.place_hold(r).await.unwrap() }
    })
    .await;
    let created = count(&outcomes, |o| matches!(o, HoldOutcome::Created(_)));
    assert_eq!(created, 10, "{created} holds on 10 tickets");
    assert!(
        outcomes.iter().all(|o| matches!(
            o,
            HoldOutcome::Created(_) | HoldOutcome::Rejected(HoldRejection::SoldOut)
        )),
        "{outcomes:?}"
    );
    assert_eq!(stock(&shop, e.id).await, (0, 10));
}

/// Under any concurrency the per-user limit holds.
pub async fn orders_per_user_limit_holds_under_concurrency(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 3).await;
    let buyer = user();
    let outcomes = race(12, |_| {
        let shop = shop.clone();
        let r = hold(e.id, buyer, 1, &unique("k"), now);
        async move { shop.orders.place_hold(r).await.unwrap() }
    })
    .await;
    let created = count(&outcomes, |o| matches!(o, HoldOutcome::Created(_)));
    assert_eq!(
        created, 3,
        "one user got {created} tickets with a limit of 3"
    );
    assert!(outcomes.iter().all(|o| matches!(
        o,
        HoldOutcome::Created(_) | HoldOutcome::Rejected(HoldRejection::OverUserLimit)
    )));
    assert_eq!(stock(&shop, e.id).await, (0, 3));
}

/// Concurrent requests with one key produce one order; the others replay it.
pub async fn orders_same_key_concurrently_yields_one_order(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 4).await;
    let (buyer, key) = (user(), unique("k"));
    let outcomes = race(16, |_| {
        let shop = shop.clone();
        // Every duplicate carries its own order id, as each request would.
        let r = hold(e.id, buyer, 2, &key, now);
        async move { shop.orders.place_hold(r).await.unwrap() }
    })
    .await;
    let mut ids = HashSet::new();
    let mut created = 0;
    for o in &outcomes {
        match o {
            HoldOutcome::Created(o) => {
                created += 1;
                ids.insert(o.id);
            }
            HoldOutcome::Replayed(KeyedOutcome::Order(o)) => {
                ids.insert(o.id);
            }
            other => panic!("duplicate request got {other:?}"),
        }
    }
    assert_eq!(
        (created, ids.len()),
        (1, 1),
        "one key made {} orders",
        ids.len()
    );
    assert_eq!(stock(&shop, e.id).await, (0, 2));
}

/// Same key, other fingerprint: `KeyMismatch`, nothing changes. Keys are scoped per user.
pub async fn orders_key_with_other_fingerprint_is_mismatch(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 4).await;
    let buyer = user();
    let first = hold(e.id, buyer, 1, "shared-key", now);
    assert!(matches!(
        shop.orders.place_hold(first.clone()).await.unwrap(),
        HoldOutcome::Created(_)
    ));
    let other_body = hold(e.id, buyer, 2, "shared-key", now);
    assert_ne!(other_body.fingerprint, first.fingerprint);
    assert_eq!(
        shop.orders.place_hold(other_body).await.unwrap(),
        HoldOutcome::KeyMismatch
    );
    assert_eq!(stock(&shop, e.id).await, (0, 1));
    let replay = hold(e.id, buyer, 1, "shared-key", now.plus(secs(1)));
    assert!(matches!(
        shop.orders.place_hold(replay).await.unwrap(),
        HoldOutcome::Replayed(KeyedOutcome::Order(o)) if o.id == first.order_id
    ));
    let someone_else = hold(e.id, user(), 2, "shared-key", now);
    assert!(
        matches!(
            shop.orders.place_hold(someone_else).await.unwrap(),
            HoldOutcome::Created(_)
        ),
        "keys must be scoped per user"
    );
}

/// A refusal is not kept under its key (SPEC §11): the key is free again, and the same request
/// succeeds once the stock is there.
pub async fn orders_rejection_is_not_kept_under_the_key(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 1, 1).await;
    held(&shop, &e, 1, now).await;
    let buyer = user();
    let r = hold(e.id, buyer, 1, "late", now);
    assert_eq!(
        shop.orders.place_hold(r.clone()).await.unwrap(),
        HoldOutcome::Rejected(HoldRejection::SoldOut)
    );
    assert_eq!(shop.orders.keyed(buyer, "late", now).await.unwrap(), None);
    let more = EventPatch {
        total_qty: Some(5),
        ..EventPatch::default()
    };
    shop.events.update(e.id, more, now).await.unwrap();
    let mut again = r.clone();
    again.order_id = order_id();
    assert!(
        matches!(
            shop.orders.place_hold(again).await.unwrap(),
            HoldOutcome::Created(_)
        ),
        "the refusal stuck to the key"
    );
    let missing = hold(event_id(), buyer, 1, "nowhere", now);
    assert_eq!(
        shop.orders.place_hold(missing).await.unwrap(),
        HoldOutcome::Rejected(HoldRejection::EventNotFound)
    );
    assert_eq!(
        shop.orders.keyed(buyer, "nowhere", now).await.unwrap(),
        None
    );
}

/// A record is kept until `key_expires_at`, not after.
pub async fn orders_key_is_forgotten_after_it_expires(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 4).await;
    let buyer = user();
    let first = hold(e.id, buyer, 1, "daily", now);
    shop.orders.place_hold(first.clone()).await.unwrap();
    let end = now.plus(KEY_TTL);
    let before_end = end.minus(Duration::from_millis(1));
    assert!(
        shop.orders
            .keyed(buyer, "daily", before_end)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(shop.orders.keyed(buyer, "daily", end).await.unwrap(), None);
    let next = hold(e.id, buyer, 1, "daily", end);
    match shop.orders.place_hold(next.clone()).await.unwrap() {
        HoldOutcome::Created(o) => assert_eq!(o.id, next.order_id),
        other => panic!("an expired key still answered: {other:?}"),
    }
}

/// The user's orders, newest first.
pub async fn orders_list_for_user_is_newest_first(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 10).await;
    let buyer = user();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = hold(e.id, buyer, 1, &unique("k"), now.plus(secs(i)));
        ids.push(r.order_id);
        shop.orders.place_hold(r).await.unwrap();
    }
    held(&shop, &e, 1, now).await;
    let listed: Vec<OrderId> = shop
        .orders
        .list_for_user(buyer)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(listed, vec![ids[2], ids[1], ids[0]]);
    assert!(shop.orders.list_for_user(user()).await.unwrap().is_empty());
}

/// Ended HOLDs become EXPIRED and release their stock, at most `limit` per call.
pub async fn orders_expire_holds_releases_stock(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 2).await;
    let buyer = user();
    let mut orders = Vec::new();
    for _ in 0..2 {
        let r = hold(e.id, buyer, 1, &unique("k"), now);
        let HoldOutcome::Created(o) = shop.orders.place_hold(r).await.unwrap() else {
            panic!("hold refused");
        };
        orders.push(o);
    }
    orders.push(held(&shop, &e, 1, now).await);
    let end = now.plus(HOLD_TTL);
    let early = shop
        .orders
        .expire_holds(end.minus(Duration::from_millis(1)), 100)
        .await;
    assert!(early.unwrap().is_empty(), "a live hold expired");
    let first = shop.orders.expire_holds(end, 2).await.unwrap();
    assert_eq!(first.len(), 2, "limit not honoured");
    let rest = shop.orders.expire_holds(end, 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert!(
        first
            .iter()
            .chain(&rest)
            .all(|o| o.status == OrderStatus::Expired)
    );
    for o in &orders {
        assert_eq!(order(&shop, o.id).await.status, OrderStatus::Expired);
    }
    assert_eq!(stock(&shop, e.id).await, (0, 0), "stock not released");
    let r = hold(e.id, buyer, 2, &unique("k"), end);
    assert!(
        matches!(
            shop.orders.place_hold(r).await.unwrap(),
            HoldOutcome::Created(_)
        ),
        "expired orders still count against the per-user limit"
    );
}

/// An order with a REQ payment does not expire; once the payment fails, it can.
pub async fn orders_expire_holds_skips_orders_with_a_pending_payment(
    shop: ShopPorts,
    now: Timestamp,
) {
    let e = on_sale(&shop, now, 10, 2).await;
    let o = held(&shop, &e, 2, now).await;
    let p = opened(&shop, &o, now.plus(HOLD_TTL).minus(secs(1))).await;
    let far = now.plus(secs(3600));
    assert!(
        shop.orders.expire_holds(far, 100).await.unwrap().is_empty(),
        "an order with a payment in flight expired"
    );
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Hold);
    settle(&shop, &p, Verdict::Fail, far).await;
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Fail);
    assert_eq!(
        stock(&shop, e.id).await,
        (0, 2),
        "FAIL must keep its stock until expiry"
    );
    let expired = shop.orders.expire_holds(far, 100).await.unwrap();
    assert_eq!(expired.iter().map(|o| o.id).collect::<Vec<_>>(), vec![o.id]);
    assert_eq!(stock(&shop, e.id).await, (0, 0));
}

/// Safe to run concurrently: each order expires once and its stock is released once.
pub async fn orders_concurrent_expiry_expires_each_order_once(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 2).await;
    for _ in 0..20 {
        held(&shop, &e, 2, now).await;
    }
    let end = now.plus(HOLD_TTL);
    let batches = race(8, |_| {
        let shop = shop.clone();
        async move { shop.orders.expire_holds(end, 7).await.unwrap() }
    })
    .await;
    let ids = distinct(&batches, |o| o.id, "an order expired twice");
    let left = shop.orders.expire_holds(end, 100).await.unwrap();
    assert_eq!(ids.len() + left.len(), 20);
    assert_eq!(
        stock(&shop, e.id).await,
        (0, 0),
        "held quantity released twice or not at all"
    );
}

/// `open` inserts the REQ payment AND its outbox message, whose body is the request message.
pub async fn payments_open_writes_the_outbox_message(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 2, now).await;
    let cmd = pay(&o, now);
    let Ok(PaymentOpened::Created(p)) = shop.payments.open(cmd.clone()).await.unwrap() else {
        panic!("payment not created");
    };
    assert_eq!((p.id, p.order_id, p.user), (cmd.payment_id, o.id, o.user));
    assert_eq!(p.status, PaymentStatus::Req);
    assert_eq!((p.amount, p.method.as_str()), (o.amount, "card"));
    assert_eq!(shop.payments.get(p.id).await.unwrap(), Some(p.clone()));
    assert_eq!(backlog(&shop).await, 1);
    let claimed = shop.outbox.claim(10, now, secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1, "the outbox message is missing");
    let m = &claimed[0];
    assert_eq!(m.id, cmd.outbox_id);
    assert_eq!(m.queue, shop.request_queue);
    let rid = cmd.request_id.to_string();
    let expected = Envelope::json(
        rid.clone(),
        rid,
        &PaymentRequestMessage {
            request_id: cmd.request_id.to_string(),
            payment_id: p.id.to_string(),
            order_id: o.id.to_string(),
            user_id: o.user.to_string(),
            amount: o.amount,
            method: "card".into(),
            metadata: None,
        },
    )
    .unwrap();
    assert_eq!(m.envelope.message_id, expected.message_id);
    assert_eq!(m.envelope.correlation_id, expected.correlation_id);
    assert_eq!(
        String::from_utf8_lossy(&m.envelope.body),
        String::from_utf8_lossy(&expected.body)
    );
}

/// At most one REQ payment per order, under any concurrency; a repeat returns it.
pub async fn payments_one_active_payment_per_order(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 1, now).await;
    let results = race(16, |_| {
        let shop = shop.clone();
        let cmd = pay(&o, now);
        async move { shop.payments.open(cmd).await.unwrap() }
    })
    .await;
    let mut ids = HashSet::new();
    let mut created = 0;
    for r in &results {
        match r {
            Ok(PaymentOpened::Created(p)) => {
                created += 1;
                ids.insert(p.id);
            }
            Ok(PaymentOpened::Existing(p)) => {
                ids.insert(p.id);
            }
            Err(e) => panic!("open refused: {e:?}"),
        }
    }
    assert_eq!(
        (created, ids.len()),
        (1, 1),
        "{} REQ payments for one order",
        ids.len()
    );
    assert_eq!(backlog(&shop).await, 1, "one message per payment");
}

/// Owner and eligibility checks of `open`.
pub async fn payments_open_checks_owner_and_eligibility(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 1, now).await;
    let mut missing = pay(&o, now);
    missing.order_id = order_id();
    assert_eq!(
        shop.payments.open(missing).await.unwrap(),
        Err(PaymentRejection::OrderNotFound)
    );
    let mut stranger = pay(&o, now);
    stranger.user = user();
    assert_eq!(
        shop.payments.open(stranger).await.unwrap(),
        Err(PaymentRejection::NotOwner)
    );
    shop.orders
        .expire_holds(o.hold_expires_at, 100)
        .await
        .unwrap();
    assert_eq!(
        shop.payments.open(pay(&o, now)).await.unwrap(),
        Err(PaymentRejection::NotEligible)
    );
    assert_eq!(backlog(&shop).await, 0, "a refused open wrote a message");
}

/// `open` extends the hold to at least `settle_by`, never shortens it.
pub async fn payments_open_extends_the_hold_to_settle_by(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let late = held(&shop, &e, 1, now).await;
    let mut cmd = pay(&late, now);
    cmd.settle_by = late.hold_expires_at.plus(secs(600));
    shop.payments.open(cmd.clone()).await.unwrap().unwrap();
    assert!(order(&shop, late.id).await.hold_expires_at >= cmd.settle_by);
    let early = held(&shop, &e, 1, now).await;
    let mut cmd = pay(&early, now);
    cmd.settle_by = now.plus(secs(1));
    shop.payments.open(cmd).await.unwrap().unwrap();
    assert_eq!(
        order(&shop, early.id).await.hold_expires_at,
        early.hold_expires_at
    );
}

/// REQ→OK: payment OK, order PAID, quantity moved from held to sold.
pub async fn payments_ok_marks_paid_and_moves_stock(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 2, now).await;
    let p = opened(&shop, &o, now).await;
    let at = now.plus(secs(2));
    let ResultApplied::Paid(paid) = settle(&shop, &p, Verdict::Ok, at).await else {
        panic!("OK did not pay");
    };
    assert_eq!((paid.id, paid.status), (p.id, PaymentStatus::Ok));
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Paid);
    assert_eq!(stock(&shop, e.id).await, (2, 0));
    assert_eq!(
        shop.payments.open(pay(&o, at)).await.unwrap(),
        Ok(PaymentOpened::Existing(paid)),
        "a PAID order must return its OK payment"
    );
}

/// REQ→FAIL: a HOLD order → FAIL keeping its stock; a new payment reopens it.
pub async fn payments_fail_makes_the_order_fail_and_a_new_payment_retries(
    shop: ShopPorts,
    now: Timestamp,
) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 2, now).await;
    let first = opened(&shop, &o, now).await;
    let ResultApplied::Failed(failed) = settle(&shop, &first, Verdict::Fail, now).await else {
        panic!("FAIL not applied");
    };
    assert_eq!(failed.status, PaymentStatus::Fail);
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Fail);
    assert_eq!(stock(&shop, e.id).await, (0, 2));
    let second = opened(&shop, &o, now).await;
    assert_ne!(second.id, first.id);
    assert_eq!(
        order(&shop, o.id).await.status,
        OrderStatus::Hold,
        "FAIL must go back to HOLD"
    );
    assert!(matches!(
        settle(&shop, &second, Verdict::Ok, now).await,
        ResultApplied::Paid(_)
    ));
    assert_eq!(stock(&shop, e.id).await, (2, 0));
}

/// A PAID order MUST NEVER change.
pub async fn payments_paid_order_never_changes(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 1, now).await;
    let p = opened(&shop, &o, now).await;
    settle(&shop, &p, Verdict::Ok, now).await;
    let paid = order(&shop, o.id).await;
    assert!(matches!(
        settle(&shop, &p, Verdict::Fail, now).await,
        ResultApplied::Unchanged(_)
    ));
    assert!(
        shop.orders
            .expire_holds(now.plus(secs(86_400)), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        shop.payments.open(pay(&o, now)).await.unwrap(),
        Ok(PaymentOpened::Existing(x)) if x.id == p.id
    ));
    assert_eq!(order(&shop, o.id).await, paid, "a PAID order changed");
    assert_eq!(stock(&shop, e.id).await, (1, 0));
    assert_eq!(backlog(&shop).await, 1, "a PAID order sent another request");
}

/// Settled payments MUST change nothing: duplicate OKs, FAIL after FAIL, anything after
/// REFUND_REQUIRED.
pub async fn payments_settled_payment_is_unchanged(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let paid = held(&shop, &e, 1, now).await;
    let p = opened(&shop, &paid, now).await;
    settle(&shop, &p, Verdict::Ok, now).await;
    let ResultApplied::Unchanged(dup) = settle(&shop, &p, Verdict::Ok, now).await else {
        panic!("a duplicate OK was applied twice");
    };
    assert_eq!(dup.status, PaymentStatus::Ok);
    assert_eq!(
        stock(&shop, e.id).await,
        (1, 0),
        "a duplicate OK sold twice"
    );

    let failing = held(&shop, &e, 1, now).await;
    let f = opened(&shop, &failing, now).await;
    settle(&shop, &f, Verdict::Fail, now).await;
    let ResultApplied::Unchanged(again) = settle(&shop, &f, Verdict::Fail, now).await else {
        panic!("a duplicate FAIL was applied twice");
    };
    assert_eq!(again.status, PaymentStatus::Fail);
    assert_eq!(order(&shop, failing.id).await.status, OrderStatus::Fail);

    let late = held(&shop, &e, 1, now).await;
    let r = opened(&shop, &late, now).await;
    settle(&shop, &r, Verdict::Fail, now).await;
    shop.orders
        .expire_holds(now.plus(secs(86_400)), 100)
        .await
        .unwrap();
    settle(&shop, &r, Verdict::Ok, now).await;
    for verdict in [Verdict::Ok, Verdict::Fail] {
        let ResultApplied::Unchanged(x) = settle(&shop, &r, verdict, now).await else {
            panic!("a REFUND_REQUIRED payment changed on {verdict:?}");
        };
        assert_eq!(x.status, PaymentStatus::RefundRequired);
    }
}

/// An OK that arrives after the payment was failed (timeout) still pays a HOLD/FAIL order.
pub async fn payments_late_ok_after_a_failure_pays_a_still_held_order(
    shop: ShopPorts,
    now: Timestamp,
) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 2, now).await;
    let p = opened(&shop, &o, now).await;
    settle(&shop, &p, Verdict::Fail, now.plus(secs(60))).await;
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Fail);
    let ResultApplied::Paid(paid) = settle(&shop, &p, Verdict::Ok, now.plus(secs(61))).await else {
        panic!("a late OK for a still-held order did not pay it");
    };
    assert_eq!((paid.id, paid.status), (p.id, PaymentStatus::Ok));
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Paid);
    assert_eq!(stock(&shop, e.id).await, (2, 0));
}

/// A late OK for an order another payment already paid is recorded for refund; the order and
/// its OK payment stay as they are.
pub async fn payments_late_ok_for_an_order_paid_by_another_payment_requires_refund(
    shop: ShopPorts,
    now: Timestamp,
) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 1, now).await;
    let first = opened(&shop, &o, now).await;
    settle(&shop, &first, Verdict::Fail, now).await;
    let second = opened(&shop, &o, now).await;
    settle(&shop, &second, Verdict::Ok, now).await;
    let paid = order(&shop, o.id).await;
    let r = refund_required(
        &shop,
        &first,
        now,
        "a second charge for a PAID order was not recorded for refund",
    )
    .await;
    assert_eq!(r.id, first.id);
    assert_eq!(order(&shop, o.id).await, paid, "a PAID order changed");
    assert_eq!(stock(&shop, e.id).await, (1, 0), "sold twice");
    let ok = shop
        .payments
        .get(second.id)
        .await
        .unwrap()
        .map(|p| p.status);
    assert_eq!(ok, Some(PaymentStatus::Ok));
}

pub async fn payments_result_for_unknown_payment_or_wrong_order_is_rejected(
    shop: ShopPorts,
    now: Timestamp,
) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 1, now).await;
    let p = opened(&shop, &o, now).await;
    let cmd = |payment_id: PaymentId, order_id: OrderId| ResultCommand {
        payment_id,
        order_id,
        verdict: Verdict::Ok,
        now,
    };
    assert_eq!(
        shop.payments.apply(cmd(payment_id(), o.id)).await.unwrap(),
        Err(ResultRejection::PaymentNotFound)
    );
    assert_eq!(
        shop.payments.apply(cmd(p.id, order_id())).await.unwrap(),
        Err(ResultRejection::WrongOrder)
    );
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Hold);
}

/// OK for an order that expired meanwhile (its payment timed out, then its hold ran out):
/// payment REFUND_REQUIRED, order and stock untouched. A charge is never dropped silently.
pub async fn payments_ok_for_expired_order_requires_refund(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 2, now).await;
    let p = opened(&shop, &o, now).await;
    settle(&shop, &p, Verdict::Fail, now.plus(secs(60))).await;
    let far = now.plus(secs(86_400));
    let expired = shop.orders.expire_holds(far, 100).await.unwrap();
    assert_eq!(expired.iter().map(|o| o.id).collect::<Vec<_>>(), vec![o.id]);
    let before = counts(&shop).await;
    refund_required(
        &shop,
        &p,
        far,
        "OK for an expired order was not recorded for refund",
    )
    .await;
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Expired);
    assert_eq!(
        stock(&shop, e.id).await,
        (0, 0),
        "tickets sold for an expired order"
    );
    let after = counts(&shop).await;
    assert_eq!(after.payments_failed + 1, before.payments_failed);
}

/// OK while the order was made unpayable behind a REQ payment's back (cancelled by an
/// operator): REFUND_REQUIRED. The ports never reach that state on their own, so the contract
/// uses the adapter's tamper hook.
pub async fn payments_ok_for_cancelled_order_requires_refund(shop: ShopPorts, now: Timestamp) {
    let tamper = shop
        .tamper
        .clone()
        .expect("this contract needs ShopPorts::with_tamper");
    let e = on_sale(&shop, now, 10, 4).await;
    let o = held(&shop, &e, 2, now).await;
    let p = opened(&shop, &o, now).await;
    let before = counts(&shop).await;
    tamper(o.id, OrderStatus::Cancelled).await;
    assert_eq!(stock(&shop, e.id).await, (0, 0));
    refund_required(
        &shop,
        &p,
        now,
        "OK for a cancelled order was not recorded for refund",
    )
    .await;
    assert_eq!(order(&shop, o.id).await.status, OrderStatus::Cancelled);
    assert_eq!(stock(&shop, e.id).await, (0, 0));
    let after = counts(&shop).await;
    assert_eq!(after.payments_pending + 1, before.payments_pending);
}

/// REQ payments created at or before `cutoff`, oldest first, at most `limit`.
pub async fn payments_overdue_lists_old_requests_oldest_first(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    let a = opened(&shop, &held(&shop, &e, 1, now).await, now).await;
    let later = now.plus(secs(10));
    let b = opened(&shop, &held(&shop, &e, 1, now).await, later).await;
    let ids = |v: Vec<Payment>| v.into_iter().map(|p| p.id).collect::<Vec<_>>();
    assert_eq!(
        ids(shop.payments.overdue(now.minus(secs(1)), 10).await.unwrap()),
        vec![]
    );
    assert_eq!(
        ids(shop
            .payments
            .overdue(later.minus(secs(1)), 10)
            .await
            .unwrap()),
        vec![a.id]
    );
    assert_eq!(
        ids(shop.payments.overdue(later, 10).await.unwrap()),
        vec![a.id, b.id]
    );
    assert_eq!(
        ids(shop.payments.overdue(later, 1).await.unwrap()),
        vec![a.id]
    );
    settle(&shop, &a, Verdict::Fail, later).await;
    assert_eq!(
        ids(shop.payments.overdue(later, 10).await.unwrap()),
        vec![b.id]
    );
}

/// `counts` follow orders and payments through their transitions.
pub async fn payments_counts_follow_every_transition(shop: ShopPorts, now: Timestamp) {
    let before = counts(&shop).await;
    let e = on_sale(&shop, now, 10, 4).await;
    let paid = held(&shop, &e, 1, now).await;
    let failed = held(&shop, &e, 1, now).await;
    held(&shop, &e, 1, now).await;
    let p = opened(&shop, &paid, now).await;
    let f = opened(&shop, &failed, now).await;
    let mid = counts(&shop).await;
    assert_eq!(mid.orders_total, before.orders_total + 3);
    assert_eq!(mid.orders_hold, before.orders_hold + 3);
    assert_eq!(mid.payments_pending, before.payments_pending + 2);
    assert_eq!(mid.outbox_backlog, before.outbox_backlog + 2);
    settle(&shop, &p, Verdict::Ok, now).await;
    settle(&shop, &f, Verdict::Fail, now).await;
    shop.orders
        .expire_holds(now.plus(secs(86_400)), 100)
        .await
        .unwrap();
    let c = counts(&shop).await;
    assert_eq!(c.orders_total, before.orders_total + 3);
    assert_eq!(c.orders_hold, before.orders_hold);
    assert_eq!(c.orders_paid, before.orders_paid + 1);
    assert_eq!(c.orders_failed, before.orders_failed);
    assert_eq!(c.orders_expired, before.orders_expired + 2);
    assert_eq!(c.payments_pending, before.payments_pending);
    assert_eq!(c.payments_ok, before.payments_ok + 1);
    assert_eq!(c.payments_failed, before.payments_failed + 1);
}

/// `event_counts` are the same counters for one event's orders and their payments: a new event
/// starts at zero, another event's orders never show in it, and the site's counters gain what
/// the events gained.
pub async fn payments_event_counts_are_per_event(shop: ShopPorts, now: Timestamp) {
    let before = counts(&shop).await;
    let a = on_sale(&shop, now, 10, 4).await;
    let b = on_sale(&shop, now, 10, 4).await;
    let zero = shop.payments.event_counts(a.id).await.unwrap();
    assert_eq!(
        zero,
        ShopCounts::default(),
        "a new event has counted nothing"
    );
    let paid = held(&shop, &a, 1, now).await;
    let failed = held(&shop, &a, 2, now).await;
    held(&shop, &a, 1, now).await;
    let other = held(&shop, &b, 1, now).await;
    let p = opened(&shop, &paid, now).await;
    let f = opened(&shop, &failed, now).await;
    let o = opened(&shop, &other, now).await;
    let mid = shop.payments.event_counts(a.id).await.unwrap();
    assert_eq!((mid.orders_total, mid.orders_hold), (3, 3));
    assert_eq!(mid.payments_pending, 2);
    assert_eq!(mid.outbox_backlog, 0, "the outbox is site-wide");
    settle(&shop, &p, Verdict::Ok, now).await;
    settle(&shop, &f, Verdict::Fail, now).await;
    settle(&shop, &o, Verdict::Ok, now).await;
    shop.orders
        .expire_holds(now.plus(secs(86_400)), 100)
        .await
        .unwrap();
    let ca = shop.payments.event_counts(a.id).await.unwrap();
    let want_a = ShopCounts {
        orders_total: 3,
        orders_paid: 1,
        orders_expired: 2,
        payments_ok: 1,
        payments_failed: 1,
        ..ShopCounts::default()
    };
    assert_eq!(ca, want_a);
    let cb = shop.payments.event_counts(b.id).await.unwrap();
    let want_b = ShopCounts {
        orders_total: 1,
        orders_paid: 1,
        payments_ok: 1,
        ..ShopCounts::default()
    };
    assert_eq!(cb, want_b);
    let site = counts(&shop).await;
    assert_eq!(site.orders_total, before.orders_total + 4);
    assert_eq!(site.orders_paid, before.orders_paid + 2);
    assert_eq!(site.orders_expired, before.orders_expired + 2);
    assert_eq!(site.payments_ok, before.payments_ok + 2);
    assert_eq!(site.payments_failed, before.payments_failed + 1);
}

/// A leased message MUST NOT be handed to another relay until its lease ends.
pub async fn outbox_lease_hides_message_from_other_relays(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 100, 4).await;
    opened(&shop, &held(&shop, &e, 1, now).await, now).await;
    let lease = secs(30);
    assert_eq!(shop.outbox.claim(10, now, lease).await.unwrap().len(), 1);
    assert!(
        shop.outbox
            .claim(10, now.plus(secs(29)), lease)
            .await
            .unwrap()
            .is_empty(),
        "a leased message was handed out again"
    );
    for _ in 0..5 {
        opened(&shop, &held(&shop, &e, 1, now).await, now).await;
    }
    let at = now.plus(secs(1));
    let batches = race(8, |_| {
        let shop = shop.clone();
        async move { shop.outbox.claim(2, at, lease).await.unwrap() }
    })
    .await;
    let ids = distinct(&batches, |m| m.id, "two relays got one message");
    assert_count(&ids, 5, "of 5 messages claimed by racing relays");
    assert_eq!(backlog(&shop).await, 6, "leased is not sent");
}

/// Once its lease ends, an unsent message is claimable again (a relay crashed).
pub async fn outbox_message_returns_after_its_lease_ends(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    opened(&shop, &held(&shop, &e, 1, now).await, now).await;
    let lease = secs(30);
    let first = shop.outbox.claim(10, now, lease).await.unwrap();
    let again = shop.outbox.claim(10, now.plus(lease), lease).await.unwrap();
    assert_eq!(again.len(), 1, "a message with a lapsed lease is stuck");
    assert_eq!(again[0].id, first[0].id);
    assert!(
        again[0].attempts > first[0].attempts,
        "attempts not counted"
    );
    assert_eq!(again[0].envelope, first[0].envelope);
}

/// Messages marked sent are never handed out again.
pub async fn outbox_sent_messages_are_never_handed_out_again(shop: ShopPorts, now: Timestamp) {
    let e = on_sale(&shop, now, 10, 4).await;
    opened(&shop, &held(&shop, &e, 1, now).await, now).await;
    opened(&shop, &held(&shop, &e, 1, now).await, now).await;
    let lease = secs(30);
    let claimed = shop.outbox.claim(10, now, lease).await.unwrap();
    assert_eq!(claimed.len(), 2);
    shop.outbox.mark_sent(&[claimed[0].id], now).await.unwrap();
    assert_eq!(backlog(&shop).await, 1);
    let later = now.plus(secs(3600));
    let left = shop.outbox.claim(10, later, lease).await.unwrap();
    assert_eq!(
        left.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![claimed[1].id]
    );
    shop.outbox
        .mark_sent(&[claimed[0].id, claimed[1].id], later)
        .await
        .unwrap();
    assert_eq!(backlog(&shop).await, 0);
    assert!(
        shop.outbox
            .claim(10, later.plus(secs(3600)), lease)
            .await
            .unwrap()
            .is_empty()
    );
}

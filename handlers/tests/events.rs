mod common;

use common::*;
use flash_core::domain::{EventNotice, EventPatch, EventStatus, Notice};
use flash_core::ports::EventListing;
use flash_core::{Classify, ErrorKind, EventId, Timestamp};
use flash_handlers::events::{EVENT_CACHE_TTL, NewEvent};

fn new_event(w: &World) -> NewEvent {
    NewEvent {
        name: "Concert".into(),
        starts_at: w.now(),
        ends_at: Timestamp(w.now().millis() + 3_600_000),
        total_qty: 100,
        max_per_user: 2,
        price: 100_000,
        prequeue_starts_at: None,
        queue_mode: flash_core::domain::QueueMode::Global,
    }
}

#[tokio::test]
async fn only_admins_create_events_and_they_start_as_drafts() {
    let w = world();
    let e =
        w.h.create_event
            .handle(&cx(), new_event(&w))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let e =
        w.h.create_event
            .handle(&as_user(&buyer()), new_event(&w))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    assert_eq!(e.public_message(), "Forbidden resource");
    let ev =
        w.h.create_event
            .handle(&as_user(&admin()), new_event(&w))
            .await
            .unwrap();
    assert_eq!(ev.status, EventStatus::Draft);
    assert_eq!((ev.sold_qty, ev.held_qty), (0, 0));
}

#[tokio::test]
async fn a_pre_queue_opens_before_the_sale_starts_on_create_and_on_edit() {
    let w = world();
    let admin = as_user(&admin());
    let mut req = new_event(&w);
    req.prequeue_starts_at = Some(req.starts_at);
    req.queue_mode = flash_core::domain::QueueMode::Event;
    let e =
        w.h.create_event
            .handle(&admin, req.clone())
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(
        e.public_message(),
        "prequeueStartsAt must be earlier than startsAt"
    );
    // A lottery anyone could skip through the site-wide line is refused.
    let mut global = req.clone();
    global.prequeue_starts_at = Some(Timestamp(req.starts_at.millis() - 60_000));
    global.queue_mode = flash_core::domain::QueueMode::Global;
    let e = w.h.create_event.handle(&admin, global).await.unwrap_err();
    assert_eq!(
        e.public_message(),
        "an event with a pre-queue must have queueMode event"
    );

    req.prequeue_starts_at = Some(Timestamp(req.starts_at.millis() - 60_000));
    let ev = w.h.create_event.handle(&admin, req).await.unwrap();
    assert_eq!(
        ev.prequeue_starts_at,
        Some(Timestamp(ev.starts_at.millis() - 60_000))
    );
    // Moving the start before the pre-queue is refused; moving both is fine.
    let earlier = Timestamp(ev.starts_at.millis() - 120_000);
    let patch = EventPatch {
        starts_at: Some(earlier),
        ..Default::default()
    };
    let e =
        w.h.update_event
            .handle(&admin, ev.id, patch)
            .await
            .unwrap_err();
    assert_eq!(
        e.public_message(),
        "prequeueStartsAt must be earlier than startsAt"
    );
    let patch = EventPatch {
        starts_at: Some(earlier),
        prequeue_starts_at: Some(Timestamp(earlier.millis() - 1)),
        ..Default::default()
    };
    let moved = w.h.update_event.handle(&admin, ev.id, patch).await.unwrap();
    assert_eq!(
        moved.prequeue_starts_at,
        Some(Timestamp(earlier.millis() - 1))
    );
}

#[tokio::test]
async fn an_event_must_start_before_it_ends() {
    let w = world();
    let mut req = new_event(&w);
    req.ends_at = req.starts_at;
    let e =
        w.h.create_event
            .handle(&as_user(&admin()), req)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(e.public_message(), "startsAt must be earlier than endsAt");
}

#[tokio::test]
async fn status_moves_only_forward() {
    let w = world();
    let a = as_user(&admin());
    let ev = w.h.create_event.handle(&a, new_event(&w)).await.unwrap();
    let to = |s| EventPatch {
        status: Some(s),
        ..Default::default()
    };
    let e =
        w.h.update_event
            .handle(&a, ev.id, to(EventStatus::Closed))
            .await
            .unwrap_err();
    assert_eq!(
        e.public_message(),
        "Invalid status transition from DRAFT to CLOSED"
    );
    let on =
        w.h.update_event
            .handle(&a, ev.id, to(EventStatus::Onsale))
            .await
            .unwrap();
    assert_eq!(on.status, EventStatus::Onsale);
    let e =
        w.h.update_event
            .handle(&a, ev.id, to(EventStatus::Draft))
            .await
            .unwrap_err();
    assert_eq!(
        e.public_message(),
        "Invalid status transition from ONSALE to DRAFT"
    );
    let closed =
        w.h.update_event
            .handle(&a, ev.id, to(EventStatus::Closed))
            .await
            .unwrap();
    assert_eq!(closed.status, EventStatus::Closed);
}

#[tokio::test]
async fn total_cannot_drop_below_what_is_sold_and_held() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    w.hold(&buyer(), &ev, 3).await;
    let a = as_user(&admin());
    let patch = |n| EventPatch {
        total_qty: Some(n),
        ..Default::default()
    };
    let e =
        w.h.update_event
            .handle(&a, ev.id, patch(2))
            .await
            .unwrap_err();
    assert_eq!(
        e.public_message(),
        "totalQty cannot be less than sold quantity"
    );
    let ok = w.h.update_event.handle(&a, ev.id, patch(3)).await.unwrap();
    assert_eq!((ok.total_qty, ok.held_qty), (3, 3));
}

#[tokio::test]
async fn an_admin_patch_never_overwrites_stock_counters() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    w.hold(&buyer(), &ev, 2).await;
    let renamed =
        w.h.update_event
            .handle(
                &as_user(&admin()),
                ev.id,
                EventPatch {
                    name: Some("Renamed".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(renamed.held_qty, 2);
}

#[tokio::test]
async fn an_event_with_orders_cannot_be_deleted() {
    let w = world();
    let a = as_user(&admin());
    let ev = w.onsale_event(10, 4).await;
    w.hold(&buyer(), &ev, 1).await;
    let e = w.h.delete_event.handle(&a, ev.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let empty = w.onsale_event(10, 4).await;
    w.h.delete_event.handle(&a, empty.id).await.unwrap();
    let e = w.h.delete_event.handle(&a, empty.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.public_message(), "Event not found");
    let e =
        w.h.delete_event
            .handle(&as_user(&buyer()), ev.id)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn drafts_are_visible_to_admins_only() {
    let w = world();
    let a = as_user(&admin());
    let draft = w.h.create_event.handle(&a, new_event(&w)).await.unwrap();
    w.advance(1_000);
    let live = w.onsale_event(5, 1).await;
    let public =
        w.h.list_events
            .handle(&cx(), EventListing::Public)
            .await
            .unwrap();
    assert_eq!(
        public.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![live.id]
    );
    let all =
        w.h.list_events
            .handle(&a, EventListing::Admin)
            .await
            .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, live.id, "newest first");
    let e =
        w.h.list_events
            .handle(&as_user(&buyer()), EventListing::Admin)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    let e =
        w.h.get_event
            .handle(&as_user(&buyer()), draft.id)
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(
        w.h.get_event.handle(&a, draft.id).await.unwrap().id,
        draft.id
    );
    let e =
        w.h.get_event
            .handle(&cx(), EventId(uuid::Uuid::new_v4()))
            .await
            .unwrap_err();
    assert_eq!(e.public_message(), "Event not found");
}

/// A change made behind the handlers' back: another instance's admin, or stock an order moved.
async fn renamed_in_the_store(w: &World, id: EventId, name: &str) {
    let patch = EventPatch {
        name: Some(name.into()),
        ..EventPatch::default()
    };
    flash_core::ports::EventStore::update(w.shop.as_ref(), id, patch, w.now())
        .await
        .unwrap();
}

#[tokio::test]
async fn public_reads_are_at_most_a_ttl_old_and_a_change_here_shows_at_once() {
    let w = world();
    let e = w.onsale_event(5, 1).await;
    let public = || async {
        w.h.list_events
            .handle(&cx(), EventListing::Public)
            .await
            .unwrap()
    };
    let one = || async { w.h.get_event.handle(&cx(), e.id).await.unwrap() };
    assert_eq!(public().await[0].name, "Concert");
    assert_eq!(one().await.name, "Concert");

    // Remembered: a change elsewhere is not read again until the TTL is over…
    renamed_in_the_store(&w, e.id, "Elsewhere").await;
    w.advance(EVENT_CACHE_TTL.as_millis() as u64 - 1);
    assert_eq!(public().await[0].name, "Concert");
    assert_eq!(one().await.name, "Concert");
    // …and then it is.
    w.advance(1);
    assert_eq!(public().await[0].name, "Elsewhere");
    assert_eq!(one().await.name, "Elsewhere");

    // A change through this instance's handlers is served at once, and announced.
    let mut sub = w.ports.notifier.subscribe().await.unwrap();
    let patch = EventPatch {
        name: Some("Here".into()),
        ..EventPatch::default()
    };
    let a = as_user(&admin());
    w.h.update_event.handle(&a, e.id, patch).await.unwrap();
    assert_eq!(public().await[0].name, "Here");
    assert_eq!(one().await.name, "Here");
    assert_eq!(
        sub.next().await,
        Some(Notice::Event(EventNotice { event_id: e.id }))
    );

    // Forgetting (what an announcement from another instance does) reads afresh at once.
    renamed_in_the_store(&w, e.id, "Announced").await;
    w.h.event_cache().forget(e.id);
    assert_eq!(public().await[0].name, "Announced");
    assert_eq!(one().await.name, "Announced");

    // A deletion is forgotten and announced too.
    w.h.delete_event.handle(&a, e.id).await.unwrap();
    assert!(public().await.is_empty());
    assert_eq!(
        w.h.get_event.handle(&cx(), e.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        sub.next().await,
        Some(Notice::Event(EventNotice { event_id: e.id }))
    );
}

#[tokio::test]
async fn the_admin_listing_is_always_read_afresh() {
    let w = world();
    let e = w.onsale_event(5, 1).await;
    let a = as_user(&admin());
    let all =
        w.h.list_events
            .handle(&a, EventListing::Admin)
            .await
            .unwrap();
    assert_eq!(all[0].name, "Concert");
    renamed_in_the_store(&w, e.id, "Renamed").await;
    let all =
        w.h.list_events
            .handle(&a, EventListing::Admin)
            .await
            .unwrap();
    assert_eq!(all[0].name, "Renamed");
}

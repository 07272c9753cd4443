//! Two instances over one set of stores: what one instance's admin changes, the other forgets
//! at once through the announcement, although its clock never lets the cached event expire.

use flash_adapter_memory::*;
use flash_core::domain::{Event, EventPatch, EventStatus, QueueMode};
use flash_core::ports::{EventListing, EventStore};
use flash_core::{Context, EventId, Principal, Timestamp, UserId};
use flash_handlers::{Handlers, Ports, Settings};
use flash_runtime::jobs::spawn_event_follower;
use flash_runtime::shutdown::{Shutdown, TaskSet};
use std::sync::Arc;
use std::time::Duration;

fn ports(clock: Arc<FakeClock>, shop: Arc<MemoryShop>) -> Ports {
    Ports {
        clock,
        ids: Arc::new(MemoryIds),
        random: Arc::new(SeededRandom::new(7)),
        users: Arc::new(MemoryUserStore::new()),
        sessions: Arc::new(MemorySessionStore::new()),
        limiter: Arc::new(MemoryRateLimiter::new()),
        queue: Arc::new(MemoryQueueStore::new()),
        notifier: Arc::new(MemoryQueueNotifier::new()),
        events: shop.clone(),
        orders: shop.clone(),
        payments: shop,
        bus: Arc::new(MemoryBus::new(5)),
        ledger: Arc::new(MemoryPaymentLedger::new()),
        timeline: Arc::new(MemoryTimeline::new()),
    }
}

async fn public_names(h: &Handlers) -> Vec<String> {
    let cx = Context::new("test");
    let listing = h.list_events.handle(&cx, EventListing::Public).await;
    let listing = listing.expect("listing");
    listing.iter().map(|e| e.name.clone()).collect()
}

#[tokio::test]
async fn an_instance_forgets_an_event_another_instance_changed() {
    let now = Timestamp(1_762_149_814_000);
    // The clock never moves: only the announcement can make the other instance read again.
    let clock = Arc::new(FakeClock::new(now));
    let shop = Arc::new(MemoryShop::new("payments_request".to_owned()));
    let ports = ports(clock, shop.clone());
    let settings = Settings::with_secrets("access-secret", "refresh-secret", "gate-secret");
    let here = Handlers::new(&ports, settings.clone());
    let there = Handlers::new(&ports, settings);
    let event = Event {
        id: EventId(uuid::Uuid::new_v4()),
        name: "Concert".into(),
        starts_at: now,
        ends_at: now.plus(Duration::from_secs(3600)),
        total_qty: 10,
        sold_qty: 0,
        held_qty: 0,
        max_per_user: 2,
        price: 50_000,
        status: EventStatus::Onsale,
        prequeue_starts_at: None,
        queue_mode: QueueMode::Global,
        created_at: now,
        updated_at: now,
    };
    shop.create(event.clone()).await.expect("event");

    let shutdown = Shutdown::new();
    let mut tasks = TaskSet::new(&shutdown);
    spawn_event_follower(&mut tasks, there.event_cache(), ports.notifier.clone());
    // Remembered there; a change made behind both instances' backs stays unseen there…
    assert_eq!(public_names(&there).await, ["Concert"]);
    let rename = |name: &str| EventPatch {
        name: Some(name.into()),
        ..EventPatch::default()
    };
    shop.update(event.id, rename("Unannounced"), now)
        .await
        .expect("rename");
    assert_eq!(public_names(&there).await, ["Concert"]);

    // …until an admin changes the event here: the announcement reaches there.
    let admin = Principal {
        user: UserId(uuid::Uuid::new_v4()),
        login: flash_core::domain::LoginName::trusted("admin01"),
        role: flash_core::domain::Role::Admin,
    };
    let cx = Context::new("test").with_principal(admin);
    here.update_event
        .handle(&cx, event.id, rename("Announced"))
        .await
        .expect("update");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while public_names(&there).await != ["Announced"] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other instance never forgot the changed event"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cx = Context::new("test");
    let one = there.get_event.handle(&cx, event.id).await;
    assert_eq!(one.expect("event").name, "Announced");
    tasks.shutdown(Duration::from_secs(1)).await;
}

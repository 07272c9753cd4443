//! A whole world on the in-memory adapters with a fake clock: handlers under test, no network.
#![allow(dead_code)]

use flash_adapter_memory::*;
use flash_core::domain::*;
use flash_core::ports::*;
use flash_core::{Context, EventId, Principal, Timestamp, UserId};
use flash_handlers::{Handlers, Ports, Settings};
use std::sync::Arc;
use std::time::Duration;

pub struct World {
    pub h: Arc<Handlers>,
    pub clock: Arc<FakeClock>,
    pub shop: Arc<MemoryShop>,
    pub queue: Arc<MemoryQueueStore>,
    pub bus: Arc<MemoryBus>,
    pub faults: Faults,
    pub limiter: Arc<MemoryRateLimiter>,
    pub ports: Ports,
}

pub const T0: i64 = 1_762_149_814_000;

pub fn settings() -> Settings {
    let mut s = Settings::with_secrets("access-secret", "refresh-secret", "gate-secret");
    s.auth.bcrypt_cost = 4;
    s.auth.admin_secret = Some("admin-secret".into());
    s.queue.capacity = 2;
    s.payments.callback_secret = Some("callback-secret".into());
    s.pay.min_latency = Duration::from_millis(10);
    s.pay.max_latency = Duration::from_millis(20);
    s
}

pub fn world() -> World {
    world_with(settings())
}

pub fn world_with(settings: Settings) -> World {
    let faults = Faults::default();
    let clock = Arc::new(FakeClock::new(Timestamp(T0)));
    let shop = Arc::new(
        MemoryShop::new(settings.payments.request_queue.clone()).with_faults(faults.clone()),
    );
    let queue = Arc::new(MemoryQueueStore::new().with_faults(faults.clone()));
    let bus = Arc::new(MemoryBus::new(5));
    let limiter = Arc::new(MemoryRateLimiter::new());
    let ports = Ports {
        clock: clock.clone(),
        ids: Arc::new(MemoryIds),
        random: Arc::new(SeededRandom::new(7)),
        users: Arc::new(MemoryUserStore::new().with_faults(faults.clone())),
        sessions: Arc::new(MemorySessionStore::new()),
        limiter: limiter.clone(),
        queue: queue.clone(),
        notifier: Arc::new(MemoryQueueNotifier::new()),
        events: shop.clone(),
        orders: shop.clone(),
        payments: shop.clone(),
        bus: bus.clone(),
        ledger: Arc::new(MemoryPaymentLedger::new()),
        timeline: Arc::new(MemoryTimeline::new()),
    };
    let h = Arc::new(Handlers::new(&ports, settings));
    World {
        h,
        clock,
        shop,
        queue,
        bus,
        faults,
        limiter,
        ports,
    }
}

pub fn cx() -> Context {
    Context::new("test")
}

pub fn as_user(p: &Principal) -> Context {
    cx().with_principal(p.clone())
}

pub fn admin() -> Principal {
    Principal {
        user: UserId(uuid::Uuid::new_v4()),
        login: LoginName::trusted("admin01"),
        role: Role::Admin,
    }
}

pub fn buyer() -> Principal {
    Principal {
        user: UserId(uuid::Uuid::new_v4()),
        login: LoginName::trusted(format!(
            "u{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )),
        role: Role::User,
    }
}

impl World {
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn advance(&self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    /// An ONSALE event with `total` tickets and a per-user limit.
    pub async fn onsale_event(&self, total: i64, max_per_user: i64) -> Event {
        let now = self.now();
        let e = Event {
            id: EventId(uuid::Uuid::new_v4()),
            name: "Concert".into(),
            starts_at: now,
            ends_at: now.plus(Duration::from_secs(3600)),
            total_qty: total,
            sold_qty: 0,
            held_qty: 0,
            max_per_user,
            price: 50_000,
            status: EventStatus::Onsale,
            prequeue_starts_at: None,
            queue_mode: flash_core::domain::QueueMode::Global,
            created_at: now,
            updated_at: now,
        };
        self.shop.create(e.clone()).await.unwrap();
        e
    }

    /// An ONSALE event of its own line (`queueMode: event`) whose pre-queue opened now and whose
    /// sale starts in `starts_in`.
    pub async fn scheduled_event(&self, total: i64, starts_in: Duration) -> Event {
        let now = self.now();
        let e = Event {
            starts_at: now.plus(starts_in),
            ends_at: now.plus(starts_in + Duration::from_secs(3600)),
            prequeue_starts_at: Some(now),
            queue_mode: flash_core::domain::QueueMode::Event,
            ..self.onsale_event(total, 1).await
        };
        self.shop
            .update(
                e.id,
                flash_core::domain::EventPatch {
                    starts_at: Some(e.starts_at),
                    ends_at: Some(e.ends_at),
                    prequeue_starts_at: e.prequeue_starts_at,
                    queue_mode: Some(flash_core::domain::QueueMode::Event),
                    ..Default::default()
                },
                now,
            )
            .await
            .unwrap();
        e
    }

    /// One promotion pass.
    pub async fn promote(&self) -> flash_handlers::queue::Promoted {
        self.h.work.promote.handle(&cx()).await.unwrap()
    }

    /// One hold-expiry pass: the orders it expired.
    pub async fn expire_holds(&self) -> Vec<Order> {
        self.h.work.expire_holds.handle(&cx()).await.unwrap()
    }

    /// One payment-timeout pass: how many payments it failed.
    pub async fn time_out_payments(&self) -> usize {
        self.h.work.time_out_payments.handle(&cx()).await.unwrap()
    }

    /// Enqueues `p` for `scope`, promotes, and returns the admitted ticket.
    pub async fn admit(&self, p: &Principal, scope: QueueScope) -> Ticket {
        let t = self.h.join_queue.handle(&as_user(p), scope).await.unwrap();
        self.promote().await;
        let t = self.queue.ticket(t.id, self.now()).await.unwrap().unwrap();
        assert!(
            t.state.is_admitted(),
            "expected an admission, got {:?}",
            t.state
        );
        t
    }

    /// Admits `p` and places a HOLD of `qty`.
    pub async fn hold(&self, p: &Principal, event: &Event, qty: i64) -> Order {
        self.admit(p, QueueScope::Global).await;
        let mut c = as_user(p);
        c.idempotency_key = Some(uuid::Uuid::new_v4().to_string());
        self.h
            .place_order
            .handle(
                &c,
                flash_handlers::orders::PlaceOrderRequest {
                    event_id: event.id,
                    qty,
                },
            )
            .await
            .unwrap()
            .order
    }

    pub async fn order(&self, id: flash_core::OrderId) -> Order {
        OrderStore::get(&*self.shop, id).await.unwrap().unwrap()
    }

    pub async fn event(&self, id: EventId) -> Event {
        EventStore::get(&*self.shop, id).await.unwrap().unwrap()
    }
}

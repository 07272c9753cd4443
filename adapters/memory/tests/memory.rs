//! Behaviour specific to the in-memory adapters: the fault switch, the fake clock, retention,
//! queue positions at scale, the bus helpers, and the shop's invariants under a mixed workload.

use flash_adapter_memory::*;
use flash_core::domain::*;
use flash_core::limits::{Door, RateKey};
use flash_core::messages::Envelope;
use flash_core::ports::*;
use flash_core::*;
use flash_testkit::fixtures::{self, pay};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const NOW: Timestamp = FakeClock::START;

fn tid() -> TicketId {
    TicketId(Uuid::new_v4())
}

fn uid() -> UserId {
    UserId(Uuid::new_v4())
}

fn on_sale(total: i64, max: i64) -> Event {
    fixtures::selling(NOW, total, max, 1000)
}

fn hold(event: EventId, user: UserId, qty: i64, now: Timestamp) -> HoldRequest {
    fixtures::hold(event, user, qty, &Uuid::new_v4().to_string(), now)
}

fn unavailable<T: std::fmt::Debug>(r: StoreResult<T>) -> bool {
    matches!(r, Err(StoreError::Unavailable(_)))
}

#[tokio::test]
async fn a_downed_switch_makes_every_store_unavailable_until_it_comes_back() {
    let faults = Faults::new();
    let queue = MemoryQueueStore::new().with_faults(faults.clone());
    let shop = MemoryShop::default().with_faults(faults.clone());
    let users = MemoryUserStore::new().with_faults(faults.clone());
    let health = faults.clone();
    let bus = MemoryBus::with_faults(5, faults.clone());
    let e = on_sale(10, 2);
    shop.seed_event(e.clone());

    faults.set(true);
    assert!(unavailable(
        queue.enqueue(tid(), uid(), QueueScope::Global, NOW).await
    ));
    assert!(unavailable(queue.active_scopes().await));
    assert!(unavailable(
        shop.place_hold(hold(e.id, uid(), 1, NOW)).await
    ));
    assert!(unavailable(EventStore::get(&shop, e.id).await));
    assert!(unavailable(shop.counts().await));
    assert!(unavailable(users.by_id(uid()).await));
    assert!(unavailable(health.ping().await));
    assert!(unavailable(bus.publish("q", envelope("m")).await));
    assert_eq!(
        EventStore::get(&shop, e.id).await.map(|_| ()),
        Err(StoreError::Unavailable("shop store is unavailable".into()))
    );

    faults.set(false);
    assert!(
        queue
            .enqueue(tid(), uid(), QueueScope::Global, NOW)
            .await
            .is_ok()
    );
    assert!(matches!(
        shop.place_hold(hold(e.id, uid(), 1, NOW)).await,
        Ok(HoldOutcome::Created(_))
    ));
    assert!(health.ping().await.is_ok());
    // Nothing was written while down.
    assert_eq!(
        queue.stats(QueueScope::Global, NOW).await.unwrap().queued,
        1
    );
}

#[tokio::test]
async fn fail_next_is_a_transient_outage() {
    let faults = Faults::new();
    let users = MemoryUserStore::new().with_faults(faults.clone());
    faults.fail_next(2);
    assert!(unavailable(users.by_id(uid()).await));
    assert!(unavailable(users.by_id(uid()).await));
    assert_eq!(users.by_id(uid()).await, Ok(None));
    assert!(!faults.is_unavailable());
}

#[tokio::test]
async fn the_fake_clock_moves_only_when_told_and_sleep_advances_it() {
    let clock = FakeClock::new(NOW);
    let shared = clock.clone();
    assert_eq!(clock.now(), NOW);
    clock.advance(Duration::from_millis(1500));
    assert_eq!(shared.now(), NOW.plus(Duration::from_millis(1500)));
    shared.sleep(Duration::from_secs(60)).await;
    assert_eq!(clock.now(), NOW.plus(Duration::from_millis(61_500)));
    clock.set(Timestamp(5));
    assert_eq!(shared.now(), Timestamp(5));
}

#[test]
fn seeded_random_is_reproducible() {
    let (a, b) = (SeededRandom::new(9), SeededRandom::new(9));
    let xs: Vec<u64> = (0..20).map(|_| a.between(0, 1_000_000)).collect();
    let ys: Vec<u64> = (0..20).map(|_| b.between(0, 1_000_000)).collect();
    assert_eq!(xs, ys);
}

#[tokio::test]
async fn finished_tickets_are_forgotten_after_the_retention_period() {
    let retention = Duration::from_secs(3600);
    let q = MemoryQueueStore::new().with_retention(retention);
    let scope = QueueScope::Global;
    let (left, waiting) = (uid(), uid());
    let a = q.enqueue(tid(), left, scope, NOW).await.unwrap().ticket;
    let b = q.enqueue(tid(), waiting, scope, NOW).await.unwrap().ticket;
    q.leave(a.id, left, NOW).await.unwrap();
    let almost = NOW.plus(retention).minus(Duration::from_millis(1));
    assert!(
        q.ticket(a.id, almost).await.unwrap().is_some(),
        "forgotten too early"
    );
    let after = NOW.plus(retention);
    assert_eq!(
        q.ticket(a.id, after).await.unwrap(),
        None,
        "a finished ticket lingers"
    );
    assert_eq!(q.remembered(), 1);
    assert_eq!(
        q.ticket(b.id, after).await.unwrap().map(|t| t.state),
        Some(TicketState::Queued),
        "a live ticket must never be forgotten"
    );
}

/// Positions stay exact through many enqueues, leaves and promotions (which also exercises
/// the Fenwick compaction), checked against a plain ordered map.
#[tokio::test]
async fn positions_stay_exact_over_a_long_churning_line() {
    let q = MemoryQueueStore::new();
    let scope = QueueScope::Event(EventId(Uuid::new_v4()));
    let rng = SeededRandom::new(3);
    let mut line: BTreeMap<u64, Ticket> = BTreeMap::new();
    let mut now = NOW;
    for round in 0..40 {
        for _ in 0..500 {
            let t = q.enqueue(tid(), uid(), scope, now).await.unwrap().ticket;
            line.insert(t.seq, t);
        }
        for _ in 0..100 {
            let k = rng.between(0, line.len() as u64 - 1) as usize;
            if let Some(seq) = line.keys().nth(k).copied() {
                let t = line.remove(&seq).unwrap();
                q.leave(t.id, t.user, now).await.unwrap();
            }
        }
        // Admissions expire after a second, so each round admits a fresh batch.
        now = now.plus(Duration::from_secs(2));
        let admitted = q
            .promote(scope, 350, now, Duration::from_secs(1))
            .await
            .unwrap();
        for t in &admitted {
            let front = line.pop_first().map(|(_, t)| t.id);
            assert_eq!(front, Some(t.id), "round {round}: promotion out of order");
        }
        for (i, t) in line.values().enumerate().step_by(37) {
            assert_eq!(
                q.position(t).await.unwrap(),
                Some(i as u64 + 1),
                "round {round}"
            );
        }
        let stats = q.stats(scope, now).await.unwrap();
        assert_eq!(stats.queued, line.len() as u64);
    }
}

#[tokio::test]
async fn a_large_line_answers_positions_quickly() {
    let q = MemoryQueueStore::new();
    let scope = QueueScope::Global;
    let mut last = None;
    for _ in 0..100_000 {
        last = Some(q.enqueue(tid(), uid(), scope, NOW).await.unwrap().ticket);
    }
    let last = last.unwrap();
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        assert_eq!(q.position(&last).await.unwrap(), Some(100_000));
    }
    // 10k lookups in a 100k line: a scan would take seconds even optimised.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

fn envelope(id: &str) -> Envelope {
    Envelope {
        message_id: id.into(),
        correlation_id: id.into(),
        body: b"{}".to_vec(),
    }
}

#[tokio::test]
async fn a_delivery_dropped_unsettled_is_redelivered() {
    let bus = MemoryBus::default();
    let consumer = bus.consumer("q");
    bus.publish("q", envelope("m1")).await.unwrap();
    let d = consumer.next().await.unwrap().unwrap();
    assert_eq!(bus.in_flight("q"), 1);
    assert!(bus.is_empty("q"));
    drop(d);
    let again = tokio::time::timeout(Duration::from_secs(5), consumer.next())
        .await
        .expect("not redelivered")
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.envelope.message_id.as_str(), again.attempt),
        ("m1", 2)
    );
    again.acker.settle(Disposition::Ack).await.unwrap();
    assert!(matches!(
        again.acker.settle(Disposition::Ack).await,
        Err(StoreError::Internal(_))
    ));
    assert_eq!(bus.in_flight("q"), 0);
}

#[tokio::test]
async fn bus_helpers_count_queues_dead_letters_and_outcomes() {
    let bus = MemoryBus::new(1);
    let consumer = bus.consumer("payments_result");
    for id in ["a", "b", "c"] {
        bus.publish("payments_result", envelope(id)).await.unwrap();
    }
    assert_eq!(bus.len("payments_result"), 3);
    let a = consumer.next().await.unwrap().unwrap();
    a.acker.settle(Disposition::Ack).await.unwrap();
    let b = consumer.next().await.unwrap().unwrap();
    b.acker
        .settle(Disposition::Retry {
            after: Duration::ZERO,
        })
        .await
        .unwrap();
    let c = consumer.next().await.unwrap().unwrap();
    c.acker
        .settle(Disposition::DeadLetter {
            reason: "bad json".into(),
        })
        .await
        .unwrap();
    assert_eq!(bus.len("payments_result"), 0);
    assert_eq!(
        bus.dlq_len("payments_result"),
        2,
        "max_attempts 1: a retry dead-letters"
    );
    let dead: Vec<String> = bus
        .dead_letters("payments_result")
        .into_iter()
        .map(|e| e.message_id)
        .collect();
    assert_eq!(dead, vec!["b", "c"]);
    assert_eq!(
        bus.counters(),
        BusCounters {
            published: 3,
            delivered: 3,
            acked: 1,
            retried: 0,
            dead_lettered: 2,
        }
    );
}

#[tokio::test]
async fn shutdown_wakes_waiting_consumers_with_none() {
    let bus = MemoryBus::default();
    let consumer = bus.consumer("q");
    let waiting = tokio::spawn(async move { consumer.next().await });
    tokio::task::yield_now().await;
    bus.shutdown();
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("consumer not woken")
        .unwrap();
    assert!(matches!(got, Ok(None)));
    assert!(unavailable(bus.publish("q", envelope("late")).await));
}

fn addr_key(i: u32) -> RateKey {
    RateKey::addr(Door::Login, Some(&std::net::Ipv4Addr::from(i).to_string()))
}

#[tokio::test]
async fn rate_limit_windows_are_forgotten_once_ended() {
    let limiter = MemoryRateLimiter::new();
    for i in 0..50 {
        limiter
            .hit(&addr_key(i), 5, Duration::from_secs(1), NOW)
            .await
            .unwrap();
    }
    assert_eq!(limiter.tracked_keys(), 50);
    limiter
        .hit(
            &addr_key(1_000),
            5,
            Duration::from_secs(1),
            NOW.plus(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert_eq!(limiter.tracked_keys(), 1);
}

/// SPEC §11: a flood of distinct keys keeps at most the budget; the windows closest to their
/// end go first, and a key that keeps knocking is still limited.
#[tokio::test]
async fn rate_limit_windows_stay_within_their_budget() {
    let limiter = MemoryRateLimiter::with_budget(budget::Budget::new("rate_limit_keys", 100));
    let window = Duration::from_secs(60);
    let busy = addr_key(u32::MAX);
    for n in 0..3 {
        limiter
            .hit(&busy, 3, window, NOW.plus(Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(limiter.tracked_keys(), 1, "hit {n}");
    }
    for i in 0..10_000 {
        let at = NOW.plus(Duration::from_millis(u64::from(i)));
        limiter.hit(&addr_key(i), 3, window, at).await.unwrap();
        assert!(limiter.tracked_keys() <= 100);
    }
    assert_eq!(limiter.tracked_keys(), 100);
    assert_eq!(limiter.budget().evicted(), 9_901);
    assert_eq!(limiter.budget().used(), 100);
    // The busy key's window ends after every flood key's, so the flood evicted its own keys
    // first and the busy key is still counted: its fourth hit is refused.
    assert!(matches!(
        limiter
            .hit(&busy, 3, window, NOW.plus(Duration::from_secs(31)))
            .await
            .unwrap(),
        RateDecision::Limited { .. }
    ));
}

#[tokio::test]
async fn the_outbox_message_goes_to_the_configured_queue() {
    let shop = MemoryShop::new("custom_requests");
    let e = on_sale(10, 2);
    shop.seed_event(e.clone());
    let HoldOutcome::Created(o) = shop.place_hold(hold(e.id, uid(), 1, NOW)).await.unwrap() else {
        panic!("hold refused");
    };
    let Ok(PaymentOpened::Created(p)) = shop.open(pay(&o, NOW)).await.unwrap() else {
        panic!("payment refused");
    };
    let m = shop.claim(1, NOW, Duration::from_secs(10)).await.unwrap();
    assert_eq!(m[0].queue, "custom_requests");
    assert_eq!(shop.order(o.id).map(|o| o.status), Some(OrderStatus::Hold));
    assert_eq!(shop.event(e.id).map(|e| e.held_qty), Some(1));
    assert_eq!(shop.payment(p.id), Some(p));
}

/// Holds, payments, results and expiry racing on one event keep SPEC §8 (1–3) true.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shop_keeps_its_invariants_under_a_racing_mixed_workload() {
    let shop = Arc::new(MemoryShop::default());
    let e = on_sale(60, 3);
    shop.seed_event(e.clone());
    let buyers: Vec<UserId> = (0..40).map(|_| uid()).collect();
    let mut tasks = Vec::new();
    for (i, buyer) in buyers.into_iter().enumerate() {
        let shop = Arc::clone(&shop);
        let event = e.id;
        tasks.push(tokio::spawn(async move {
            let rng = SeededRandom::new(i as u64);
            for step in 0..6u64 {
                let now = NOW.plus(Duration::from_secs(step * 100));
                let qty = rng.between(1, 2) as i64;
                let HoldOutcome::Created(o) =
                    shop.place_hold(hold(event, buyer, qty, now)).await.unwrap()
                else {
                    shop.expire_holds(now, 10).await.unwrap();
                    continue;
                };
                if rng.unit() < 0.8
                    && let Ok(PaymentOpened::Created(p)) = shop.open(pay(&o, now)).await.unwrap()
                {
                    let cmd = fixtures::result(&p, fixtures::verdict(rng.unit() < 0.6), now);
                    shop.apply(cmd.clone()).await.unwrap().unwrap();
                    // A duplicate result changes nothing.
                    assert!(matches!(
                        shop.apply(cmd).await.unwrap(),
                        Ok(ResultApplied::Unchanged(_))
                    ));
                }
                shop.expire_holds(now, 10).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    shop.audit()
        .unwrap_or_else(|v| panic!("invariants broken: {v:#?}"));
    let counts = shop.counts().await.unwrap();
    let ev = EventStore::get(&*shop, e.id).await.unwrap().unwrap();
    assert!(ev.sold_qty + ev.held_qty <= ev.total_qty);
    assert!(
        counts.orders_paid > 0 && counts.orders_expired > 0,
        "a workload too tame: {counts:?}"
    );
    assert_eq!(
        counts.orders_total,
        counts.orders_hold
            + counts.orders_paid
            + counts.orders_failed
            + counts.orders_expired
            + counts.orders_cancelled
    );
}

#[tokio::test]
async fn the_audit_reports_a_broken_invariant() {
    let shop = MemoryShop::default();
    let mut e = on_sale(10, 2);
    e.held_qty = 3;
    shop.seed_event(e);
    let broken = shop.audit().unwrap_err();
    assert_eq!(broken.len(), 1, "{broken:?}");
}

/// SPEC §11: a flood of distinct idempotency keys keeps at most the budget's records; the
/// records closest to their expiry go first, and the newest still replays.
#[tokio::test]
async fn idempotency_records_stay_within_their_budget() {
    let budget = budget::Budget::new("idempotency_records", 50);
    let shop = MemoryShop::new("requests").with_key_budget(budget.clone());
    let e = on_sale(10_000, 10_000);
    shop.seed_event(e.clone());
    let mut last = None;
    for i in 0..1_000 {
        let at = NOW.plus(Duration::from_millis(i));
        let req = hold(e.id, uid(), 1, at);
        assert!(matches!(
            shop.place_hold(req.clone()).await.unwrap(),
            HoldOutcome::Created(_)
        ));
        assert!(budget.used() <= 50);
        last = Some(req);
    }
    assert_eq!((budget.used(), budget.evicted()), (50, 950));
    let last = last.unwrap();
    let mut again = last.clone();
    again.order_id = OrderId(Uuid::new_v4());
    assert!(matches!(
        shop.place_hold(again).await.unwrap(),
        HoldOutcome::Replayed(KeyedOutcome::Order(_))
    ));
}

//! PostgreSQL-specific behaviour beyond the shared contracts: the flash-sale race checked by
//! SQL, housekeeping, statistics and error translation.

mod common;

use common::{fresh_database, fresh_pool, pool_on};
use flash_adapter_postgres::{PgHealth, PgSessionStore, PgShop, PoolSettings, lazy_pool, migrate};
use flash_core::domain::{
    Event, HoldOutcome, HoldRejection, HoldRequest, PaymentCommand, PaymentOpened, RefreshSession,
    ResultApplied,
};
use flash_core::ports::{EventStore, HealthCheck, OrderStore, Outbox, PaymentStore, SessionStore};
use flash_core::*;
use flash_testkit::{T0, fixtures};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

fn on_sale(total: i64, max_per_user: i64) -> Event {
    fixtures::selling(T0, total, max_per_user, 1500)
}

fn hold(event: EventId, user: UserId, qty: i64) -> HoldRequest {
    fixtures::hold(event, user, qty, &Uuid::new_v4().to_string(), T0)
}

fn pay(order: OrderId, user: UserId) -> PaymentCommand {
    PaymentCommand {
        payment_id: PaymentId(Uuid::new_v4()),
        order_id: order,
        user,
        method: "MOCK".into(),
        request_id: Uuid::new_v4(),
        outbox_id: OutboxId(Uuid::new_v4()),
        now: T0,
        settle_by: T0.plus(Duration::from_secs(60)),
    }
}

/// SPEC §8 sums, straight from the tables: (held, sold, Σ HOLD+FAIL qty, Σ PAID qty,
/// largest per-user HOLD+FAIL+PAID quantity).
async fn sums(shop: &PgShop, event: EventId) -> (i64, i64, i64, i64, i64) {
    sqlx::query_as(
        "SELECT e.held_qty::bigint, e.sold_qty::bigint, \
            (SELECT coalesce(sum(qty), 0)::bigint FROM orders \
             WHERE event_id = e.id AND status IN ('HOLD', 'FAIL')), \
            (SELECT coalesce(sum(qty), 0)::bigint FROM orders \
             WHERE event_id = e.id AND status = 'PAID'), \
            (SELECT coalesce(max(s), 0)::bigint FROM ( \
                SELECT sum(qty) AS s FROM orders \
                WHERE event_id = e.id AND status IN ('HOLD', 'FAIL', 'PAID') \
                GROUP BY user_id) per_user) \
         FROM events_with_stock e WHERE e.id = $1",
    )
    .bind(event.as_uuid())
    .fetch_one(shop.pool())
    .await
    .expect("sums")
}

/// 500 concurrent holds of 1–3 tickets by 250 buyers (two requests each) for 100 tickets with a
/// limit of 2 per buyer: exactly the stock is held, nobody is over the limit, and the sums of
/// SPEC §8 hold — also after paying, failing and expiring.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_buyers_race_for_a_hundred_tickets() {
    race_for_a_hundred_tickets(PgShop::with_default_queue(fresh_pool(24).await)).await;
}

/// The same race with the HOLDs placed in batches (group commit), as the hosts run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_buyers_race_for_a_hundred_tickets_in_batches() {
    let shop = PgShop::with_default_queue(fresh_pool(24).await).with_hold_batching(4);
    race_for_a_hundred_tickets(shop).await;
}

async fn race_for_a_hundred_tickets(shop: PgShop) {
    let shop = Arc::new(shop);
    let e = on_sale(100, 2);
    shop.create(e.clone()).await.unwrap();
    let buyers: Vec<UserId> = (0..250).map(|_| UserId(Uuid::new_v4())).collect();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let (shop, user) = (Arc::clone(&shop), buyers[i % 250]);
            // Quantities 1, 2, 3, 1, 2, 3, …: a third ask for more than the limit.
            let qty = i64::try_from(i % 3 + 1).unwrap();
            let req = hold(e.id, user, qty);
            tokio::spawn(async move { (user, qty, shop.place_hold(req).await.unwrap()) })
        })
        .collect();
    let mut held_by: HashMap<UserId, i64> = HashMap::new();
    let mut held = 0;
    let mut orders = Vec::new();
    for t in tasks {
        let (user, qty, outcome) = t.await.expect("task panicked");
        match outcome {
            HoldOutcome::Created(o) => {
                assert!(qty <= 2, "a hold of {qty} passed a limit of 2");
                held += qty;
                *held_by.entry(user).or_default() += qty;
                orders.push(o);
            }
            HoldOutcome::Rejected(HoldRejection::SoldOut | HoldRejection::OverUserLimit) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(held, 100, "the holds took {held} of 100 tickets");
    assert!(
        held_by.values().all(|&q| q <= 2),
        "a buyer is over the limit"
    );
    assert_eq!(sums(&shop, e.id).await, (100, 0, 100, 0, 2));
    assert_eq!(shop.audit().await.unwrap(), Vec::<String>::new());

    // Pay a third, fail a third, let the rest expire.
    let mut sold = 0;
    for (i, o) in orders.iter().enumerate() {
        let Ok(PaymentOpened::Created(p)) = shop.open(pay(o.id, o.user)).await.unwrap() else {
            panic!("payment not opened");
        };
        let cmd = fixtures::result(&p, fixtures::verdict(i % 3 == 0), T0);
        match shop.apply(cmd).await.unwrap() {
            Ok(ResultApplied::Paid(_)) => sold += o.qty,
            Ok(ResultApplied::Failed(_)) => {}
            other => panic!("unexpected result {other:?}"),
        }
    }
    let expired = shop
        .expire_holds(T0.plus(Duration::from_secs(3600)), 1000)
        .await
        .unwrap();
    assert_eq!(
        expired.iter().map(|o| o.qty).sum::<i64>(),
        100 - sold,
        "every unpaid ticket comes back"
    );
    let (h, s, hf, paid, top) = sums(&shop, e.id).await;
    assert_eq!((h, s, hf, paid), (0, sold, 0, sold));
    assert!(top <= 2);
    assert_eq!(shop.audit().await.unwrap(), Vec::<String>::new());
    let c = shop.counts().await.unwrap();
    assert_eq!(c.orders_total, orders.len() as u64);
    assert_eq!(c.orders_paid + c.orders_expired, orders.len() as u64);
    assert_eq!(c.outbox_backlog, orders.len() as u64);
}

/// One request of a `place_holds` batch, as the adapter binds it.
#[derive(Clone)]
struct Batched {
    user: Uuid,
    event: Uuid,
    qty: i32,
    key: String,
}

fn batched(user: UserId, event: EventId, qty: i32, key: &str) -> Batched {
    Batched {
        user: user.as_uuid(),
        event: event.as_uuid(),
        qty,
        key: key.to_owned(),
    }
}

/// Binds `batch` as the nine arrays of `place_holds`.
fn bind_batch<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    batch: &[Batched],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let at = ::time::OffsetDateTime::from_unix_timestamp(T0.millis() / 1000).unwrap();
    let n = batch.len();
    let col = |f: fn(&Batched) -> Uuid| batch.iter().map(f).collect::<Vec<_>>();
    query
        .bind((0..n).map(|_| Uuid::new_v4()).collect::<Vec<_>>())
        .bind(col(|b| b.user))
        .bind(col(|b| b.event))
        .bind(batch.iter().map(|b| b.qty).collect::<Vec<_>>())
        .bind(batch.iter().map(|b| b.key.clone()).collect::<Vec<_>>())
        .bind(vec!["fp".to_owned(); n])
        .bind(vec![at; n])
        .bind(vec![at + ::time::Duration::days(1); n])
        .bind(vec![at + ::time::Duration::minutes(5); n])
}

/// Runs the `place_holds` function on `batch` over `conn` and returns its verdicts.
async fn place_holds(conn: &mut sqlx::PgConnection, batch: &[Batched]) -> Vec<String> {
    let query = sqlx::query("SELECT verdict FROM place_holds($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    bind_batch(query, batch)
        .fetch_all(conn)
        .await
        .expect("place_holds")
        .iter()
        .map(|r| sqlx::Row::get(r, "verdict"))
        .collect()
}

/// The batch function decides each request on its own, in check_hold's order, and leaves
/// nothing behind for a refused one: no key, no quota, no stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_holds_decides_each_request_and_keeps_only_what_it_placed() {
    let shop = PgShop::with_default_queue(fresh_pool(4).await).with_stock_shards(1);
    let draft = Event {
        status: flash_core::domain::EventStatus::Draft,
        ..on_sale(10, 2)
    };
    let sale = on_sale(4, 2);
    shop.create(sale.clone()).await.unwrap();
    shop.create(draft.clone()).await.unwrap();
    let tiny = on_sale(1, 2);
    shop.create(tiny.clone()).await.unwrap();
    // The function takes users in ascending order (its lock order).
    let mut users: Vec<UserId> = (0..8).map(|_| UserId(Uuid::new_v4())).collect();
    users.sort();
    let earlier = hold(sale.id, users[7], 1);
    assert!(matches!(
        shop.place_hold(earlier.clone()).await.unwrap(),
        HoldOutcome::Created(_)
    ));
    let batch = [
        batched(users[0], sale.id, 2, "a"),
        // Within the 3 left, but not within the 1 that `a` left: placed alone by the adapter.
        batched(users[1], sale.id, 2, "b"),
        batched(users[2], sale.id, 3, "c"),
        batched(users[3], draft.id, 1, "d"),
        batched(users[4], EventId(Uuid::new_v4()), 1, "e"),
        batched(users[5], sale.id, 1, "f"),
        batched(users[6], tiny.id, 2, "g"),
        batched(earlier.user, sale.id, 1, &earlier.idempotency_key),
    ];
    let mut conn = shop.pool().acquire().await.unwrap();
    let verdicts = place_holds(&mut conn, &batch).await;
    assert_eq!(
        verdicts,
        [
            "Created",
            "Raced",
            "OverUserLimit",
            "NotOnSale",
            "EventNotFound",
            "Created",
            "SoldOut",
            "Replay"
        ]
    );
    let unordered = [batch[1].clone(), batch[0].clone()];
    let refused = sqlx::query("SELECT place_holds($1, $2, $3, $4, $5, $6, $7, $8, $9)");
    assert!(
        bind_batch(refused, &unordered)
            .execute(&mut *conn)
            .await
            .is_err(),
        "users out of order are refused"
    );

    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM idempotency_keys ORDER BY key")
        .fetch_all(shop.pool())
        .await
        .unwrap();
    let mut kept = vec![
        "a".to_owned(),
        "f".to_owned(),
        earlier.idempotency_key.clone(),
    ];
    kept.sort();
    assert_eq!(keys, kept, "only the placed orders keep their keys");
    let quotas: i64 = sqlx::query_scalar("SELECT count(*) FROM order_quotas")
        .fetch_one(shop.pool())
        .await
        .unwrap();
    assert_eq!(quotas, 3);
    assert_eq!(sums(&shop, sale.id).await, (4, 0, 4, 0, 2));
    assert_eq!(sums(&shop, draft.id).await, (0, 0, 0, 0, 0));
    assert_eq!(shop.audit().await.unwrap(), Vec::<String>::new());
}

/// Returns once a connection of this test's database waits for a row lock (60 s at most).
async fn until_a_lock_is_awaited(pool: &sqlx::PgPool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing waits for a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A batch never waits for a stock row another transaction holds: the request comes back
/// 'Raced' at once, with its key and quota undone, for the adapter to place on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_finds_every_shard_busy_undoes_its_request() {
    let shop = PgShop::with_default_queue(fresh_pool(4).await).with_hold_batching(2);
    let e = on_sale(10, 2);
    shop.create(e.clone()).await.unwrap();
    let mut blocker = shop.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM event_stock WHERE event_id = $1 FOR UPDATE")
        .bind(e.id.as_uuid())
        .execute(&mut *blocker)
        .await
        .unwrap();
    let user = UserId(Uuid::new_v4());
    let mut conn = shop.pool().acquire().await.unwrap();
    assert_eq!(
        place_holds(&mut conn, &[batched(user, e.id, 1, "k")]).await,
        ["Raced"]
    );
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM idempotency_keys), \
                (SELECT coalesce(sum(committed_qty), 0)::bigint FROM order_quotas)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(left, (0, 0));
    drop(conn);

    // Through the adapter, the raced request is placed alone, waiting for the stock row.
    let placing = {
        let shop = shop.clone();
        tokio::spawn(async move { shop.place_hold(hold(e.id, user, 1)).await.unwrap() })
    };
    until_a_lock_is_awaited(shop.pool()).await;
    blocker.commit().await.unwrap();
    assert!(matches!(placing.await.unwrap(), HoldOutcome::Created(_)));
    assert_eq!(sums(&shop, e.id).await, (1, 0, 1, 0, 1));
}

/// Results applied in batches as if one after another: 40 payments of 40 orders get, all at
/// once, their verdict twice (the bus redelivers), a result naming another order and one for a
/// payment that does not exist. Each payment settles once, the stock follows, and a duplicate
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_applied_in_batches_settle_each_payment_once() {
    let shop = Arc::new(
        PgShop::with_default_queue(fresh_pool(12).await)
            .with_hold_batching(2)
            .with_result_batching(2),
    );
    let e = on_sale(100, 2);
    shop.create(e.clone()).await.unwrap();
    let mut payments = Vec::new();
    for _ in 0..40 {
        let HoldOutcome::Created(o) = shop
            .place_hold(hold(e.id, UserId(Uuid::new_v4()), 2))
            .await
            .unwrap()
        else {
            panic!("hold refused");
        };
        let Ok(PaymentOpened::Created(p)) = shop.open(pay(o.id, o.user)).await.unwrap() else {
            panic!("payment not opened");
        };
        payments.push(p);
    }
    let mut cmds = Vec::new();
    for (i, p) in payments.iter().enumerate() {
        let verdict = fixtures::verdict(i % 4 != 0);
        cmds.push((Some(i), fixtures::result(p, verdict, T0)));
        cmds.push((Some(i), fixtures::result(p, verdict, T0)));
        let mut elsewhere = fixtures::result(p, verdict, T0);
        elsewhere.order_id = OrderId(Uuid::new_v4());
        cmds.push((None, elsewhere));
    }
    let mut missing = fixtures::result(&payments[0], fixtures::verdict(true), T0);
    missing.payment_id = PaymentId(Uuid::new_v4());
    cmds.push((None, missing));

    let tasks: Vec<_> = cmds
        .into_iter()
        .map(|(i, cmd)| {
            let shop = Arc::clone(&shop);
            tokio::spawn(async move { (i, shop.apply(cmd).await.unwrap()) })
        })
        .collect();
    let mut settled = vec![0; payments.len()];
    for t in tasks {
        match t.await.expect("task panicked") {
            (Some(i), Ok(ResultApplied::Paid(_) | ResultApplied::Failed(_))) => settled[i] += 1,
            (Some(_), Ok(ResultApplied::Unchanged(_))) => {}
            (None, Err(_)) => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert!(
        settled.iter().all(|&n| n == 1),
        "settled per payment: {settled:?}"
    );
    assert_eq!(
        shop.result_batches().unwrap().failed,
        0,
        "no batch fell back"
    );
    let paid = (0..payments.len()).filter(|i| i % 4 != 0).count() as i64;
    assert_eq!(
        sums(&shop, e.id).await,
        (2 * (40 - paid), 2 * paid, 2 * (40 - paid), 2 * paid, 2)
    );
    assert_eq!(shop.audit().await.unwrap(), Vec::<String>::new());
    let c = shop.counts().await.unwrap();
    assert_eq!(c.orders_paid, paid as u64);
    assert_eq!(c.payments_ok, paid as u64);
}

/// Opens a payment of a new 1-ticket HOLD of `event`.
async fn opened(shop: &PgShop, event: EventId) -> flash_core::domain::Payment {
    let HoldOutcome::Created(o) = shop
        .place_hold(hold(event, UserId(Uuid::new_v4()), 1))
        .await
        .unwrap()
    else {
        panic!("hold refused");
    };
    reopened(shop, o.id, o.user).await
}

async fn reopened(shop: &PgShop, order: OrderId, user: UserId) -> flash_core::domain::Payment {
    let Ok(PaymentOpened::Created(p)) = shop.open(pay(order, user)).await.unwrap() else {
        panic!("payment not opened");
    };
    p
}

/// Results queued behind a busy order row are applied in one batch exactly as one after
/// another: a failure then a late success of one payment; a late success of a timed-out payment
/// and then of its order's second payment (paid, then refund required); a duplicate; a result
/// naming another order; a missing payment; a failure, whose order then expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn results_queued_together_are_applied_as_if_one_after_another() {
    let shop = Arc::new(PgShop::with_default_queue(fresh_pool(8).await).with_result_batching(1));
    let e = on_sale(100, 4);
    shop.create(e.clone()).await.unwrap();
    let (z, a, c, f) = (
        opened(&shop, e.id).await,
        opened(&shop, e.id).await,
        opened(&shop, e.id).await,
        opened(&shop, e.id).await,
    );
    let b1 = opened(&shop, e.id).await;
    assert!(matches!(
        shop.apply(fixtures::result(&b1, fixtures::verdict(false), T0))
            .await
            .unwrap(),
        Ok(ResultApplied::Failed(_))
    ));
    let b_user: UserId = sqlx::query_scalar("SELECT user_id FROM orders WHERE id = $1")
        .bind(b1.order_id.as_uuid())
        .fetch_one(shop.pool())
        .await
        .map(UserId)
        .unwrap();
    let b2 = reopened(&shop, b1.order_id, b_user).await;

    // The writer takes z's result alone and waits for its order row...
    let mut blocker = shop.pool().begin().await.unwrap();
    sqlx::query("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE")
        .bind(z.order_id.as_uuid())
        .execute(&mut *blocker)
        .await
        .unwrap();
    let first = {
        let shop = Arc::clone(&shop);
        let cmd = fixtures::result(&z, fixtures::verdict(false), T0);
        tokio::spawn(async move { shop.apply(cmd).await.unwrap() })
    };
    until_a_lock_is_awaited(shop.pool()).await;
    // ...while these queue, in this order (join_all polls them in turn).
    let (ok, fail) = (fixtures::verdict(true), fixtures::verdict(false));
    let later = T0.plus(Duration::from_secs(1));
    let mut elsewhere = fixtures::result(&c, ok, later);
    elsewhere.order_id = OrderId(Uuid::new_v4());
    let mut missing = fixtures::result(&c, ok, later);
    missing.payment_id = PaymentId(Uuid::new_v4());
    let cmds = [
        fixtures::result(&a, fail, later),
        fixtures::result(&a, ok, later),
        fixtures::result(&b1, ok, later),
        fixtures::result(&b2, ok, later),
        fixtures::result(&c, ok, later),
        fixtures::result(&c, ok, later),
        elsewhere,
        missing,
        fixtures::result(&f, fail, later),
    ];
    let mut all = Box::pin(futures::future::join_all(
        cmds.into_iter().map(|cmd| shop.apply(cmd)),
    ));
    assert!(futures::poll!(&mut all).is_pending());
    blocker.commit().await.unwrap();
    assert!(matches!(first.await.unwrap(), Ok(ResultApplied::Failed(_))));
    let kinds: Vec<String> = all
        .await
        .into_iter()
        .map(|o| match o.unwrap() {
            Ok(ResultApplied::Paid(p)) => format!("Paid {}", p.status.as_str()),
            Ok(ResultApplied::Failed(p)) => format!("Failed {}", p.status.as_str()),
            Ok(ResultApplied::RefundRequired(p)) => {
                format!("RefundRequired {}", p.status.as_str())
            }
            Ok(ResultApplied::Unchanged(p)) => format!("Unchanged {}", p.status.as_str()),
            Err(r) => format!("{r:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "Failed FAIL",
            "Paid OK",
            "Paid OK",
            "RefundRequired REFUND_REQUIRED",
            "Paid OK",
            "Unchanged OK",
            "WrongOrder",
            "PaymentNotFound",
            "Failed FAIL"
        ]
    );
    let counts = shop.result_batches().unwrap();
    assert_eq!(counts.failed, 0, "no batch fell back");
    assert_eq!(
        counts.batches, 3,
        "b1 alone, z alone, then the nine together: {counts:?}"
    );

    // The stock followed: a, b and c sold; z and f hold theirs until they expire, which their
    // settled payments no longer prevent.
    assert_eq!(sums(&shop, e.id).await, (2, 3, 2, 3, 1));
    let expired = shop
        .expire_holds(T0.plus(Duration::from_secs(3600)), 100)
        .await
        .unwrap();
    let mut expired: Vec<OrderId> = expired.iter().map(|o| o.id).collect();
    expired.sort();
    let mut want = vec![z.order_id, f.order_id];
    want.sort();
    assert_eq!(expired, want);
    assert_eq!(shop.audit().await.unwrap(), Vec::<String>::new());
    let n = shop.counts().await.unwrap();
    assert_eq!(
        (
            n.orders_paid,
            n.payments_ok,
            n.payments_refund_required,
            n.payments_failed
        ),
        (3, 3, 1, 2)
    );
}

/// Purge forgets expired idempotency records and old sent messages, and folding the counters
/// of ended connections keeps the totals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_forgets_what_expired_and_keeps_the_counts() {
    let url = fresh_database().await;
    let pool = pool_on(&url, 4);
    let shop = PgShop::with_default_queue(pool.clone());
    let e = on_sale(10, 2);
    shop.create(e.clone()).await.unwrap();
    let user = UserId(Uuid::new_v4());
    let req = hold(e.id, user, 1);
    let key = req.idempotency_key.clone();
    let HoldOutcome::Created(o) = shop.place_hold(req).await.unwrap() else {
        panic!("hold refused");
    };
    shop.open(pay(o.id, user)).await.unwrap().unwrap();
    let claimed = shop.claim(10, T0, Duration::from_secs(30)).await.unwrap();
    shop.mark_sent(&[claimed[0].id], T0).await.unwrap();
    let before = shop.counts().await.unwrap();
    assert_eq!((before.orders_total, before.payments_pending), (1, 1));
    // The connections end, so their counter rows can be folded.
    pool.close().await;
    let shop = PgShop::with_default_queue(pool_on(&url, 1));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let others: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(shop.pool())
        .await
        .unwrap();
        if others == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "old connections linger"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let early = shop
        .purge(
            T0.plus(Duration::from_secs(60)),
            Duration::from_secs(3600),
            100,
        )
        .await
        .unwrap();
    assert_eq!((early.idempotency_keys, early.sent_messages), (0, 0));
    let day = T0.plus(Duration::from_secs(86_400));
    let report = shop
        .purge(day, Duration::from_secs(3600), 100)
        .await
        .unwrap();
    assert_eq!((report.idempotency_keys, report.sent_messages), (1, 1));
    assert_eq!(report.counter_rows, 0, "folded by the first purge already");
    assert!(early.counter_rows > 0, "{early:?}");
    assert_eq!(shop.counts().await.unwrap(), before);
    assert!(shop.keyed(user, &key, T0).await.unwrap().is_none());
    assert_eq!(shop.audit().await.unwrap(), Vec::<String>::new());
}

#[tokio::test]
async fn migrations_are_idempotent() {
    let pool = fresh_pool(2).await;
    migrate(&pool).await.expect("a second run must be a no-op");
}

#[tokio::test]
async fn sessions_purge_forgets_expired_tokens() {
    let sessions = PgSessionStore::new(fresh_pool(2).await);
    let s = RefreshSession {
        jti: TokenId(Uuid::new_v4()),
        family: FamilyId(Uuid::new_v4()),
        user: UserId(Uuid::new_v4()),
        expires_at: T0.plus(Duration::from_secs(60)),
    };
    sessions.issue(s.clone()).await.unwrap();
    assert_eq!(sessions.purge(T0).await.unwrap(), 0);
    assert_eq!(
        sessions
            .purge(T0.plus(Duration::from_secs(60)))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        sessions.rotate(s.jti, T0).await.unwrap(),
        flash_core::domain::Rotation::Unknown
    );
}

#[tokio::test]
async fn db_stats_report_the_legacy_metric_names() {
    let health = PgHealth::new(fresh_pool(2).await);
    health.ping().await.unwrap();
    let stats = health.db_stats().await.unwrap();
    let names: Vec<&str> = stats.iter().map(|s| s.0).collect();
    for name in [
        "db_connections_active",
        "db_transactions_committed_total",
        "db_rows_inserted_total",
        "db_bgwriter_checkpoints_timed_total",
        "db_bgwriter_buffers_alloc_total",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert!(stats.iter().all(|(_, help, kind, v)| !help.is_empty()
        && (*kind == "counter" || *kind == "gauge")
        && v.is_finite()
        && *v >= 0.0));
    let committed = stats
        .iter()
        .find(|s| s.0 == "db_transactions_committed_total")
        .map(|s| s.3);
    assert!(committed.is_some_and(|v| v > 0.0));
    assert!(health.pool_size() >= 1);
    assert!(health.pool_idle() <= health.pool_size() as usize);
}

/// Nothing listens on the port: requests fail fast as `Unavailable`, never `Internal`.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let settings = PoolSettings {
        acquire_timeout: Duration::from_millis(500),
        ..PoolSettings::default()
    };
    let pool = lazy_pool("postgres://postgres@127.0.0.1:9/none", &settings).unwrap();
    let err = PgHealth::new(pool.clone()).ping().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = PgShop::with_default_queue(pool)
        .place_hold(hold(EventId(Uuid::new_v4()), UserId(Uuid::new_v4()), 1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(lazy_pool("not a url", &settings).is_err());
}

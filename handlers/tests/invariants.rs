//! SPEC §8 under random concurrent interleavings: never oversold, never over the per-user limit,
//! never over the admission capacity, and a PAID order never changes.

mod common;

use common::*;
use flash_core::domain::{OrderStatus, QueueScope, Verdict};
use flash_core::messages::PaymentResultMessage;
use flash_core::ports::{OrderStore, PaymentStore, QueueStore};
use flash_core::{Context, OrderId, Principal};
use flash_handlers::orders::PlaceOrderRequest;
use flash_handlers::payments::PaymentRequest;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Op {
    /// A user joins the site-wide queue.
    Join(usize),
    /// The promoter runs (several may run at once).
    Promote,
    /// A user orders `qty` with a fresh key (or reuses key `k` of theirs).
    Order { user: usize, qty: i64, key: u8 },
    /// A user pays their latest order; the processor answers with `ok`.
    Pay { user: usize, ok: bool },
    /// A user leaves the queue.
    Leave(usize),
    /// Time passes (admissions and holds may expire), then the sweepers run.
    Tick(u64),
}

fn op(users: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..users).prop_map(Op::Join),
        2 => Just(Op::Promote),
        4 => (0..users, 1i64..4, 0u8..3).prop_map(|(user, qty, key)| Op::Order { user, qty, key }),
        3 => (0..users, any::<bool>()).prop_map(|(user, ok)| Op::Pay { user, ok }),
        1 => (0..users).prop_map(Op::Leave),
        1 => (1u64..200_000).prop_map(Op::Tick),
    ]
}

struct Case {
    w: World,
    users: Vec<Principal>,
    event: flash_core::domain::Event,
    capacity: u64,
}

async fn run(case: Arc<Case>, op: Op) {
    let w = &case.w;
    match op {
        Op::Join(u) => {
            let _ =
                w.h.join_queue
                    .handle(&as_user(&case.users[u]), QueueScope::Global)
                    .await;
        }
        Op::Promote => {
            let _ = w.h.work.promote.handle(&cx()).await;
        }
        Op::Order { user, qty, key } => {
            let mut c: Context = as_user(&case.users[user]);
            c.idempotency_key = Some(format!("key-{key}"));
            let _ =
                w.h.place_order
                    .handle(
                        &c,
                        PlaceOrderRequest {
                            event_id: case.event.id,
                            qty,
                        },
                    )
                    .await;
        }
        Op::Pay { user, ok } => {
            let u = &case.users[user];
            let Ok(orders) = w.h.list_orders.handle(&as_user(u)).await else {
                return;
            };
            let Some(o) = orders.first() else { return };
            let req = PaymentRequest {
                order_id: o.id,
                method: "MOCK".into(),
            };
            if let Ok(p) = w.h.request_payment.handle(&as_user(u), req).await {
                let msg = PaymentResultMessage {
                    request_id: "r".into(),
                    payment_id: p.id.to_string(),
                    order_id: p.order_id.to_string(),
                    user_id: p.user.to_string(),
                    status: if ok { Verdict::Ok } else { Verdict::Fail },
                    processed_at: "2025-11-03T10:00:00.000Z".into(),
                    message: None,
                };
                let _ = w.h.work.apply_result.handle(&cx(), &msg).await;
            }
        }
        Op::Leave(u) => {
            let p = &case.users[u];
            if let Ok(Some(t)) = w.queue.admission(p.user, QueueScope::Global, w.now()).await {
                let _ = w.h.leave_queue.handle(&as_user(p), t.id).await;
            }
        }
        Op::Tick(ms) => {
            w.advance(ms);
            let _ = w.h.work.time_out_payments.handle(&cx()).await;
            let _ = w.h.work.expire_holds.handle(&cx()).await;
        }
    }
}

/// Checks SPEC §8 (1, 2, 3, 6) and that PAID orders stay as they were.
async fn check(case: &Case, paid: &mut HashMap<OrderId, i64>) -> Result<(), TestCaseError> {
    let w = &case.w;
    let e = w.event(case.event.id).await;
    prop_assert!(e.sold_qty + e.held_qty <= e.total_qty, "oversold: {e:?}");
    prop_assert!(e.sold_qty >= 0 && e.held_qty >= 0);
    let mut sold = 0;
    let mut held = 0;
    for u in &case.users {
        let orders = w.shop.list_for_user(u.user).await.unwrap();
        let committed: i64 = orders
            .iter()
            .filter(|o| o.status.counts_for_limit())
            .map(|o| o.qty)
            .sum();
        prop_assert!(
            committed <= e.max_per_user,
            "over the per-user limit: {committed}"
        );
        for o in &orders {
            match o.status {
                OrderStatus::Paid => {
                    sold += o.qty;
                    if let Some(q) = paid.insert(o.id, o.qty) {
                        prop_assert_eq!(q, o.qty);
                    }
                }
                OrderStatus::Hold | OrderStatus::Fail => {
                    held += o.qty;
                    prop_assert!(!paid.contains_key(&o.id), "a PAID order changed");
                }
                OrderStatus::Expired | OrderStatus::Cancelled => {
                    prop_assert!(!paid.contains_key(&o.id), "a PAID order changed");
                }
            }
        }
    }
    prop_assert_eq!(sold, e.sold_qty, "sold must equal the PAID quantity");
    prop_assert_eq!(held, e.held_qty, "held must equal the HOLD + FAIL quantity");
    let counts = w.shop.counts().await.unwrap();
    prop_assert_eq!(
        counts.payments_ok,
        paid.len() as u64,
        "every PAID order has exactly one OK payment"
    );
    let stats = w.queue.stats(QueueScope::Global, w.now()).await.unwrap();
    prop_assert!(
        stats.admitted <= case.capacity,
        "admitted {} > {}",
        stats.admitted,
        case.capacity
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn sales_stay_within_stock_limits_and_capacity_under_concurrency(
        users in 2usize..8,
        total in 1i64..12,
        max_per_user in 1i64..4,
        capacity in 1u64..4,
        batches in prop::collection::vec(prop::collection::vec(op(8), 1..8), 1..12),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
        rt.block_on(async {
            let mut s = settings();
            s.queue.capacity = capacity;
            let w = world_with(s);
            let event = w.onsale_event(total, max_per_user).await;
            let case = Arc::new(Case {
                users: (0..users).map(|_| buyer()).collect(),
                w,
                event,
                capacity,
            });
            let mut paid = HashMap::new();
            for batch in batches {
                let mut tasks = Vec::new();
                for op in batch {
                    let op = match op {
                        Op::Join(u) => Op::Join(u % users),
                        Op::Order { user, qty, key } => Op::Order { user: user % users, qty, key },
                        Op::Pay { user, ok } => Op::Pay { user: user % users, ok },
                        Op::Leave(u) => Op::Leave(u % users),
                        other => other,
                    };
                    tasks.push(tokio::spawn(run(case.clone(), op)));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                check(&case, &mut paid).await?;
            }
            Ok::<(), TestCaseError>(())
        })?;
    }
}

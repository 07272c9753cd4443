//! Criterion micro-benchmarks of the hot handlers on the in-memory adapters (no HTTP, no
//! sockets): enqueue, queue status, place order (an admitted buyer with a gate token), and
//! login at bcrypt cost 4.
//!
//! `cargo bench -p flash-bench` (add `-- --quick` for a short run).

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use flash_bench::{Bench, bench_config, buyer, scope};
use flash_core::Context;
use flash_handlers::auth::LoginRequest;
use flash_handlers::orders::PlaceOrderRequest;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

fn runtime() -> Runtime {
    #[allow(clippy::expect_used)]
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn bench() -> Bench {
    #[allow(clippy::expect_used)]
    let cfg = bench_config(&[]).expect("the bench configuration parses");
    Bench::new(&cfg)
}

#[allow(clippy::expect_used)]
fn enqueue(c: &mut Criterion) {
    let rt = runtime();
    let b = bench();
    let event = rt
        .block_on(b.event(1_000_000, 4))
        .expect("event is created");
    let mut g = c.benchmark_group("enqueue");
    let h = &b.handlers;
    g.bench_function("new buyer", |bn| {
        bn.to_async(&rt).iter_batched(
            buyer,
            |cx| async move {
                let t = h.join_queue.handle(&cx, scope(event)).await;
                black_box(t.expect("enqueued"));
            },
            BatchSize::SmallInput,
        );
    });
    let again = buyer();
    g.bench_function("same buyer again (idempotent)", |bn| {
        bn.to_async(&rt).iter(|| async {
            let t = b.handlers.join_queue.handle(&again, scope(event)).await;
            black_box(t.expect("enqueued"));
        });
    });
    g.finish();
}

#[allow(clippy::expect_used)]
fn queue_status(c: &mut Criterion) {
    let rt = runtime();
    let b = bench();
    let event = rt
        .block_on(b.event(1_000_000, 4))
        .expect("event is created");
    let (ready, queued) = rt.block_on(async {
        // 10,000 buyers in line, the first one admitted.
        let first = b
            .handlers
            .join_queue
            .handle(&buyer(), scope(event))
            .await
            .expect("enqueued");
        b.handlers
            .work
            .promote
            .handle(&Context::new("bench"))
            .await
            .expect("promoted");
        let mut last = first.clone();
        for _ in 0..10_000 {
            last = b
                .handlers
                .join_queue
                .handle(&buyer(), scope(event))
                .await
                .expect("enqueued");
        }
        (first.id, last.id)
    });
    let cx = Context::new("bench");
    let mut g = c.benchmark_group("queue status");
    g.bench_function("READY (signs the gate token)", |bn| {
        bn.to_async(&rt).iter(|| async {
            let st = b.handlers.queue_status.handle(&cx, ready).await;
            black_box(st.expect("status"));
        });
    });
    g.bench_function("QUEUED at position 10,000", |bn| {
        bn.to_async(&rt).iter(|| async {
            let st = b.handlers.queue_status.handle(&cx, queued).await;
            black_box(st.expect("status"));
        });
    });
    g.finish();
}

#[allow(clippy::expect_used)]
fn place_order(c: &mut Criterion) {
    let rt = runtime();
    let b = bench();
    let mut g = c.benchmark_group("place order");
    g.sample_size(30);
    g.measurement_time(Duration::from_secs(4));
    g.bench_function("admitted buyer, X-Gate-Token, hot event", |bn| {
        bn.iter_custom(|iters| {
            rt.block_on(async {
                // Untimed: an event with exactly enough stock and one admitted buyer per order.
                let event = b
                    .event(iters.clamp(1, 1_000_000) as i64, 4)
                    .await
                    .expect("event is created");
                let mut buyers = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let cx = buyer();
                    let t = b
                        .handlers
                        .join_queue
                        .handle(&cx, scope(event))
                        .await
                        .expect("enqueued");
                    buyers.push((cx, t.id));
                }
                b.handlers
                    .work
                    .promote
                    .handle(&Context::new("bench"))
                    .await
                    .expect("promoted");
                let plain = Context::new("bench");
                let mut ready = Vec::with_capacity(buyers.len());
                for (mut cx, ticket) in buyers {
                    let st = b
                        .handlers
                        .queue_status
                        .handle(&plain, ticket)
                        .await
                        .expect("status");
                    cx.gate_token = st.gate_token;
                    cx.idempotency_key = Some(uuid::Uuid::new_v4().to_string());
                    ready.push(cx);
                }
                let request = PlaceOrderRequest {
                    event_id: event,
                    qty: 1,
                };
                let t0 = Instant::now();
                for cx in &ready {
                    let placed = b.handlers.place_order.handle(cx, request).await;
                    black_box(placed.expect("order placed"));
                }
                t0.elapsed()
            })
        });
    });
    g.finish();
}

#[allow(clippy::expect_used)]
fn login(c: &mut Criterion) {
    let rt = runtime();
    let b = bench();
    rt.block_on(b.account("test0001", "testtest", 4))
        .expect("account is created");
    let mut g = c.benchmark_group("login");
    g.sample_size(20);
    g.bench_function("bcrypt cost 4", |bn| {
        bn.to_async(&rt).iter(|| async {
            let pair = b
                .handlers
                .login
                .handle(
                    &Context::new("bench"),
                    LoginRequest {
                        login: "test0001".into(),
                        password: "testtest".into(),
                    },
                )
                .await;
            black_box(pair.expect("logged in"));
        });
    });
    g.finish();
}

criterion_group!(benches, enqueue, queue_status, place_order, login);
criterion_main!(benches);

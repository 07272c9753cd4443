//! A flash sale on the real services: 500 concurrent buyers for 100 tickets.

mod common;

use common::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What one buyer ended with.
#[derive(Debug, Default, Clone, Copy)]
struct Outcome {
    paid: i64,
    admitted: bool,
    /// Read SOLD_OUT while waiting in line (SPEC §4: sold out closes the line).
    told_sold_out: bool,
    ordered_without_admission: bool,
}

async fn buyer(http: Http, gw: String, api: String, event: String, n: usize) -> Outcome {
    let mut out = Outcome::default();
    let user = format!("buyer{n:04}");
    let token = http.register(&gw, &user).await;
    let ticket = http.ticket(&gw, &token, &event).await;
    let leave = || {
        http.post(
            format!("{gw}/queue/leave"),
            Some(&token),
            json!({"ticketId": ticket}),
        )
    };
    // Wait for an admission, or until the line says the event is sold out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let gate = loop {
        let (_, st) = http
            .get(format!("{gw}/queue/status?ticketId={ticket}"), None)
            .await;
        if st["state"] == "READY" {
            break st["gateToken"].as_str().map(str::to_owned);
        }
        out.told_sold_out = st["state"] == "SOLD_OUT";
        if out.told_sold_out || tokio::time::Instant::now() > deadline {
            // Walk away: leave the line so the slot count stays honest.
            leave().await;
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let Some(gate) = gate else {
        // A buyer without an admission must be refused.
        let (s, _) = http
            .order(&api, &token, &event, 1, &[("Idempotency-Key", "k")])
            .await;
        out.ordered_without_admission = s == 201;
        return out;
    };
    out.admitted = true;
    let qty = 1 + (n % 2) as i64;
    let headers = [("Idempotency-Key", "k"), ("X-Gate-Token", gate.as_str())];
    let (s, o) = http.order(&api, &token, &event, qty, &headers).await;
    if s != 201 {
        assert_eq!(s, 400, "order: {o}");
        leave().await;
        return out;
    }
    let order = o["orderId"].as_str().unwrap().to_owned();
    let (s, p) = http.pay(&api, &token, &order).await;
    assert_eq!(s, 201, "payment: {p}");
    let status = eventually("a payment result", Duration::from_secs(60), || async {
        let (_, o) = http
            .get(format!("{api}/orders/{order}"), Some(&token))
            .await;
        (o["status"] != "HOLD").then(|| o["status"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert_eq!(status, "PAID");
    out.paid = qty;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_buyers_for_a_hundred_tickets_buy_exactly_a_hundred() {
    let mut env = Env::new("sale");
    env.set("QUEUE_READY_CAPACITY", "50")
        .set("ENQUEUE_RATE_LIMIT_PER_USER", "1000/min");
    let s = Sale::start(env, 100, 2).await;
    let (env, gw, api, http, event) = (&s.env, &s.gw, &s.api, &s.http, &s.event);

    let limit = Arc::new(tokio::sync::Semaphore::new(128));
    let mut tasks = Vec::new();
    for n in 0..500 {
        let (http, gw, api, event, limit) = (
            http.clone(),
            gw.url.clone(),
            api.url.clone(),
            event.clone(),
            limit.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = limit.acquire_owned().await.unwrap();
            buyer(http, gw, api, event, n).await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("buyer task"));
    }
    let paid: i64 = outcomes.iter().map(|o| o.paid).sum();
    assert_eq!(paid, 100, "exactly the stock is sold");
    // Everyone who never got in was told the event sold out; nobody waited out the deadline.
    let waited_in_vain = outcomes
        .iter()
        .filter(|o| !o.admitted && !o.told_sold_out)
        .count();
    assert_eq!(waited_in_vain, 0, "buyers left waiting on a sold-out event");
    assert!(outcomes.iter().any(|o| o.told_sold_out));
    assert!(
        outcomes.iter().all(|o| !o.ordered_without_admission),
        "an order without admission"
    );
    assert!(outcomes.iter().filter(|o| o.paid > 0).all(|o| o.admitted));

    // SPEC §8 in the database: sold = Σ PAID, sold + held ≤ total, per-user limit, one OK payment
    // per PAID order.
    let db = &env.db.name;
    let sold = psql_value(
        db,
        &format!("SELECT sold_qty FROM events_with_stock WHERE id = '{event}'"),
    );
    let held = psql_value(
        db,
        &format!("SELECT held_qty FROM events_with_stock WHERE id = '{event}'"),
    );
    assert_eq!((sold.as_str(), held.as_str()), ("100", "0"));
    let paid_sum = psql_value(
        db,
        &format!(
            "SELECT COALESCE(SUM(qty),0) FROM orders WHERE event_id = '{event}' AND status = 'PAID'"
        ),
    );
    assert_eq!(paid_sum, "100");
    let over = psql_value(
        db,
        &format!(
            "SELECT COUNT(*) FROM (SELECT user_id FROM orders WHERE event_id = '{event}' AND status IN ('HOLD','FAIL','PAID') GROUP BY user_id HAVING SUM(qty) > 2) x"
        ),
    );
    assert_eq!(over, "0", "nobody over the per-user limit");
    let bad = psql_value(
        db,
        &format!(
            "SELECT COUNT(*) FROM orders o WHERE o.event_id = '{event}' AND o.status = 'PAID' AND (SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id AND p.status = 'OK') <> 1"
        ),
    );
    assert_eq!(bad, "0", "every PAID order has exactly one OK payment");
}

/// SPEC §4's pre-queue on the pods: buyers who join between `prequeueStartsAt` and `startsAt`
/// (through two gateways) are put in one random order at the start, drawn once although two
/// gateways and the api promote; every one of them is ahead of everyone who joined later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scheduled_sale_lets_its_pre_queue_in_by_lottery_before_later_arrivals() {
    const EARLY: usize = 300;
    const LATE: usize = 50;
    const CAPACITY: usize = 100;
    let mut env = Env::new("lottery");
    env.set("QUEUE_READY_CAPACITY", &CAPACITY.to_string());
    let gateways = [Pod::gateway(&env, &[]), Pod::gateway(&env, &[])];
    let api = Pod::api(&env, &[]);
    let http = Http::new();
    let (admin, event) = http.onsale_event(&gateways[0].url, &api.url, 1000, 1).await;
    // Its own line, a pre-queue open since a minute ago, the sale an hour away (brought forward
    // once everyone has joined, so no join can miss the pre-queue on a slow machine).
    let now = flash_core::ports::Clock::now(&flash_runtime::clock::SystemClock);
    let starts = now.plus(Duration::from_secs(3600));
    http.prequeue_event(
        &api.url,
        &admin,
        &event,
        now,
        starts,
        Duration::from_secs(7200),
    )
    .await;

    let join = |n: usize| {
        let (http, gw, event) = (http.clone(), gateways[n % 2].url.clone(), event.clone());
        async move {
            let token = http.register(&gw, &format!("lot{n:04}")).await;
            http.ticket(&gw, &token, &event).await
        }
    };
    let early: Vec<String> = futures::future::join_all((0..EARLY).map(join)).await;
    let status = |ticket: String| {
        let (http, gw) = (http.clone(), gateways[0].url.clone());
        async move {
            let (_, st) = http
                .get(format!("{gw}/queue/status?ticketId={ticket}"), None)
                .await;
            st
        }
    };
    for st in futures::future::join_all(early.iter().cloned().map(status)).await {
        assert_eq!(st["state"], "PREQUEUE", "{st}");
        assert_eq!(st["startsAt"], starts.to_iso().as_str());
    }

    // The sale starts now: the line opens and the first CAPACITY of the lottery are let in.
    let start = flash_core::Timestamp::from_millis(now.millis() + 1);
    http.patch_event(
        &api.url,
        &admin,
        &event,
        json!({"starts_at": start.to_iso()}),
    )
    .await;
    eventually("the line to open", Duration::from_secs(60), || async {
        let st = status(early[0].clone()).await;
        (st["state"] != "PREQUEUE").then_some(())
    })
    .await;
    // One after another, so that their order of arrival is known.
    let mut late = Vec::with_capacity(LATE);
    for n in EARLY..EARLY + LATE {
        late.push(join(n).await);
    }
    let early_now = futures::future::join_all(early.iter().cloned().map(status)).await;
    let late_now = futures::future::join_all(late.iter().cloned().map(status)).await;

    let admitted = early_now.iter().filter(|s| s["state"] == "READY").count();
    assert_eq!(
        admitted, CAPACITY,
        "exactly the capacity let in, by racing promoters"
    );
    // The rest of the pre-queue holds places 1..=200, each once; the later arrivals follow in
    // the order they came.
    let mut places: Vec<u64> = early_now
        .iter()
        .filter(|s| s["state"] == "QUEUED")
        .map(|s| s["position"].as_u64().unwrap())
        .collect();
    places.sort_unstable();
    assert_eq!(places, (1..=(EARLY - CAPACITY) as u64).collect::<Vec<_>>());
    let late_places: Vec<u64> = late_now
        .iter()
        .map(|s| s["position"].as_u64().unwrap_or_else(|| panic!("{s}")))
        .collect();
    let expected: Vec<u64> =
        ((EARLY - CAPACITY + 1) as u64..=(EARLY - CAPACITY + LATE) as u64).collect();
    assert_eq!(
        late_places, expected,
        "later arrivals queue behind the whole pre-queue, in order"
    );
    // A lottery, not the join order: of the first 100 to join, about a third are let in (a
    // uniform draw gives 33.3, standard deviation 4.7); the join order would give all 100.
    let first_joiners_in = early_now[..CAPACITY]
        .iter()
        .filter(|s| s["state"] == "READY")
        .count();
    assert!(
        (10..=60).contains(&first_joiners_in),
        "{first_joiners_in} of the first {CAPACITY} joiners let in first"
    );
}

//! The whole journey across gateway ×2, api and pay — real binaries, real services.

mod common;

use common::*;
use flash_host_testkit::socket::{connect, expect, expect_ready};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_buyer_goes_from_login_to_paid_across_two_gateways_an_api_and_a_pay_worker() {
    let mut env = Env::new("journey");
    env.set("QUEUE_READY_CAPACITY", "1");
    // Gateway A promotes; gateway B only serves sockets (its own promoter sleeps), so an
    // admission it pushes must have come from A through Redis.
    let a = Pod::gateway(&env, &[]);
    let b = Pod::gateway(
        &env,
        &[
            ("QUEUE_PROMOTION_INTERVAL_MS", "3600000"),
            ("QUEUE_WS_REFRESH_MS", "3600000"),
        ],
    );
    let api = Pod::api(&env, &[]);
    let _pay = Pod::pay(&env, &[]);
    let http = Http::new();
    let (_admin, event) = http.onsale_event(&a.url, &api.url, 10, 2).await;

    // The first buyer takes the only admission slot, over REST on gateway A.
    let first = http.register(&a.url, "first01").await;
    let first_ticket = http.ticket(&a.url, &first, &event).await;
    let admitted = http.admitted(&a.url, &first_ticket).await;
    let gate = admitted["gateToken"].as_str().unwrap().to_owned();

    // The second buyer waits on a socket of gateway B.
    let second = http.register(&a.url, "second01").await;
    let (sock, mut rx) = connect(&b.url, Some(&second)).await;
    expect(&mut rx, "queue:config", |n, _| n == "queue:config").await;
    sock.emit("queue/join", json!({"eventId": event}))
        .await
        .unwrap();
    let queued = expect(&mut rx, "queued", |n, v| {
        n == "queue:update" && v["state"] == "QUEUED"
    })
    .await;
    assert_eq!(queued["position"], 1);

    // The first buyer enters, orders (which frees the slot: gateway A promotes the second),
    // pays, and is PAID through the outbox, RabbitMQ and the pay worker.
    let (s, v) = http
        .post(
            format!("{}/queue/enter", a.url),
            Some(&first),
            json!({"ticketId": first_ticket, "gateToken": gate}),
        )
        .await;
    assert_eq!((s, v["status"].as_str()), (201, Some("entered")));
    let (s, order) = http
        .order(
            &api.url,
            &first,
            &event,
            2,
            &[("Idempotency-Key", "order-1")],
        )
        .await;
    assert_eq!(s, 201, "{order}");
    assert_eq!(order["status"], "HOLD");
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    expect_ready(&mut rx, "READY pushed by gateway B").await;

    let (s, p) = http.pay(&api.url, &first, &order_id).await;
    assert_eq!((s, p["status"].as_str()), (201, Some("REQ")), "{p}");
    eventually("PAID", Duration::from_secs(20), || async {
        let (_, o) = http
            .get(format!("{}/orders/{order_id}", api.url), Some(&first))
            .await;
        (o["status"] == "PAID").then_some(())
    })
    .await;
    // The public reads are up to a second old (the event memory's TTL).
    eventually("the paid tickets sold", Duration::from_secs(20), || async {
        let (_, e) = http.get(format!("{}/events/{event}", api.url), None).await;
        let figures = (e["soldQty"].as_i64(), e["heldQty"].as_i64());
        (figures == (Some(2), Some(0))).then_some(())
    })
    .await;
    let (_, m) = http.get(format!("{}/metrics", api.url), None).await;
    let m = m.as_str().unwrap_or_default().to_owned();
    assert!(m.contains("orders_paid_total 1"), "{m}");
    assert!(
        m.contains("db_connections_active"),
        "legacy db metrics from PostgreSQL"
    );
    let _ = sock.disconnect().await;
}

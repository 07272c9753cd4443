//! Crashes on the real services: nothing is lost, nothing is applied twice.

mod common;

use common::*;
use flash_adapter_rabbitmq::{AmqpBus, AmqpConfig};
use flash_core::messages::Envelope;
use flash_core::ports::Bus;
use std::time::Duration;

/// Registers `n` buyers, admits each, and has each place a 1-ticket order; returns
/// (token, order id) pairs.
async fn orders(
    http: &Http,
    gw: &str,
    api: &str,
    event: &str,
    prefix: &str,
    n: usize,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in 0..n {
        let token = http.register(gw, &format!("{prefix}{i:03}")).await;
        let order = http.hold_one(gw, api, &token, event).await;
        out.push((token, order));
    }
    out
}

async fn pay_all(http: &Http, api: &str, orders: &[(String, String)]) {
    for (token, order) in orders {
        let (s, p) = http.pay(api, token, order).await;
        assert_eq!(s, 201, "{p}");
    }
}

async fn all_paid(http: &Http, api: &str, orders: &[(String, String)], limit: Duration) {
    for (token, order) in orders {
        eventually("PAID", limit, || async {
            let (_, o) = http.get(format!("{api}/orders/{order}"), Some(token)).await;
            (o["status"] == "PAID").then_some(())
        })
        .await;
    }
}

/// Every one of `orders` becomes PAID (within `limit`), and the database holds just those PAID
/// orders, each with exactly one payment, which is OK.
async fn all_paid_exactly_once(
    env: &Env,
    http: &Http,
    api: &str,
    orders: &[(String, String)],
    limit: Duration,
) {
    all_paid(http, api, orders, limit).await;
    let db = &env.db.name;
    assert_eq!(
        psql_value(db, "SELECT COUNT(*) FROM orders WHERE status = 'PAID'"),
        orders.len().to_string()
    );
    let wrong = psql_value(
        db,
        "SELECT COUNT(*) FROM orders o WHERE (SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id) <> 1 \
         OR (SELECT COUNT(*) FROM payments p WHERE p.order_id = o.id AND p.status = 'OK') <> 1",
    );
    assert_eq!(
        wrong, "0",
        "every order has exactly one payment, and it is OK"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pay_worker_killed_mid_stream_loses_no_payment_and_pays_none_twice() {
    let mut s = Sale::start(Env::new("paykill").paying_within(300, 600), 100, 1).await;
    let (env, gw, api, http, event) = (&s.env, &s.gw, &s.api, &s.http, &s.event);
    let orders = orders(http, &gw.url, &api.url, event, "pk", 30).await;
    pay_all(http, &api.url, &orders).await;
    // Kill the processor while requests are in flight (processing takes 300–600 ms each).
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.pay.kill();
    let _pay = Pod::pay(env, &[]);
    all_paid_exactly_once(env, http, &api.url, &orders, Duration::from_secs(60)).await;
    let sold = psql_value(
        &env.db.name,
        &format!("SELECT sold_qty FROM events_with_stock WHERE id = '{event}'"),
    );
    assert_eq!(sold, "30");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_killed_after_committing_a_payment_still_sends_its_message_once() {
    let env = Env::new("apikill");
    let gw = Pod::gateway(&env, &[]);
    let _pay = Pod::pay(&env, &[]);
    let http = Http::new();
    // This api commits payments but never publishes: the crash comes before the relay.
    let mut silent = Pod::api(&env, &[("OUTBOX_RELAY", "false")]);
    let (_a, event) = http.onsale_event(&gw.url, &silent.url, 10, 1).await;
    let orders = orders(&http, &gw.url, &silent.url, &event, "ak", 3).await;
    pay_all(&http, &silent.url, &orders).await;
    assert_eq!(
        psql_value(
            &env.db.name,
            "SELECT COUNT(*) FROM payments WHERE status = 'REQ'"
        ),
        "3"
    );
    silent.kill();
    // A fresh api (relay on) finds the committed messages in the outbox and sends them.
    let api = Pod::api(&env, &[]);
    all_paid_exactly_once(&env, &http, &api.url, &orders, Duration::from_secs(30)).await;
    let unsent = psql_value(
        &env.db.name,
        "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL",
    );
    assert_eq!(unsent, "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_result_goes_to_the_dead_letter_queue_and_nothing_else_stalls() {
    let env = Env::new("poison");
    let Pods {
        gw,
        api,
        pay: _pay,
        http,
    } = Pods::start(&env);
    let result_queue = env.vars["PAYMENT_RESULT_QUEUE"].clone();
    let bus = AmqpBus::new(AmqpConfig::new(env.vars["RABBITMQ_URL"].clone()));
    bus.publish(
        &result_queue,
        Envelope {
            message_id: "poison-1".into(),
            correlation_id: "poison-1".into(),
            body: b"{ this is not json".to_vec(),
        },
    )
    .await
    .expect("poison published");
    eventually("the poison in the DLQ", Duration::from_secs(20), || async {
        (bus.dlq_len(&result_queue).await.ok() == Some(1)).then_some(())
    })
    .await;
    // Payments keep flowing.
    let (_a, event) = http.onsale_event(&gw.url, &api.url, 10, 1).await;
    let orders = orders(&http, &gw.url, &api.url, &event, "pz", 2).await;
    pay_all(&http, &api.url, &orders).await;
    all_paid(&http, &api.url, &orders, Duration::from_secs(30)).await;
    let (_, m) = http.get(format!("{}/metrics", api.url), None).await;
    let m = m.as_str().unwrap_or_default().to_owned();
    let line = format!("bus_dead_lettered_total{{queue=\"{result_queue}\"}} 1");
    assert!(m.contains(&line), "expected {line} in\n{m}");
    let _ = bus.delete_topology(&result_queue).await;
}

//! Issue 11's flood test on the pods, bounded: gateway, api and pay on the real services with
//! the default limits, 10,000 distinct login names (one in ten 60,000 characters long) and
//! 10,000 distinct idempotency keys from one attacker (its address the last `X-Forwarded-For`
//! hop, as the ALB appends it), while a buyer from another address buys. The gateway's RSS and
//! Redis `used_memory` must stay within their budgets, no answer may be a 5xx, and the buyer's
//! order must end PAID.

mod common;

use common::*;
use flash_fuzz::flood::{FloodConfig, Source, run};
use std::time::Duration;

/// Kept login names (the bug SPEC §11 forbids) would be 1,000 keys of 60 KiB on Redis alone.
const REDIS_BUDGET_MIB: u64 = 16;
const RSS_BUDGET_MIB: u64 = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_names_and_keys_keeps_redis_and_the_gateway_small_and_the_buyer_buys() {
    // The default per-address limits: attacker and buyer come from different addresses.
    let env = Env::with(
        "flood",
        &[
            ("LOGIN_RATE_LIMIT_PER_IP", "300/min"),
            ("REGISTER_RATE_LIMIT_PER_IP", "60/min"),
            ("ENQUEUE_RATE_LIMIT_PER_IP", "600/min"),
            ("ORDER_RATE_LIMIT_PER_IP", "600/min"),
            ("PAYMENT_RATE_LIMIT_PER_IP", "600/min"),
        ],
    );
    let Pods {
        gw: gateway,
        api,
        pay: _pay,
        http,
    } = Pods::start(&env);
    let (_, event) = http.onsale_event(&gateway.url, &api.url, 100, 4).await;

    let mut flood = FloodConfig::new(gateway.url.clone());
    flood.api_base = Some(api.url.clone());
    flood.names = 10_000;
    flood.long_every = 10;
    flood.keys = 10_000;
    flood.concurrency = 16;
    flood.attacker = Source::Forwarded([198, 51, 100, 7].into());
    flood.buyer = Source::Forwarded([203, 0, 113, 9].into());
    flood.attacker_user = "flooder01".into();
    flood.buyer_user = "floodbuyer01".into();
    flood.event = Some(event);
    flood.pid = Some(gateway.child.id());
    flood.rss_budget_mib = Some(RSS_BUDGET_MIB);
    flood.redis_url = Some(env.vars["REDIS_URL"].clone());
    flood.redis_budget_mib = Some(REDIS_BUDGET_MIB);
    // Generous: CI machines are small and busy.
    flood.deadline = Duration::from_secs(120);
    let report = run(flood).await;

    eprintln!(
        "flood: {:?} rss {:?} redis {:?}",
        report.statuses, report.rss, report.redis
    );
    let sent: u64 = report.statuses.values().flat_map(|m| m.values()).sum();
    assert_eq!(sent + report.transport_errors, 20_000, "{report:?}");
    assert!(report.rss.is_some() && report.redis.is_some(), "{report:?}");
    let failures = report.failures();
    assert!(failures.is_empty(), "{failures:?}\n{report:?}");
}

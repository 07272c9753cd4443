//! Issue 11's flood test on the embedded default, bounded: `flash up` in-process with its
//! default limits and budgets, 20,000 distinct login names (one in ten 60,000 characters long)
//! and 20,000 distinct idempotency keys from one attacker address, while a buyer from another
//! address queues and buys. Nothing of the flood may stay in memory past the budget, no answer
//! may be a 5xx, and the buyer's order must end PAID. (`flash-flood` runs the million-key
//! version; BENCHMARKS.md has its figures.)

mod common;

use common::{FAST_PAYMENTS, flash_up, stop};
use flash_fuzz::flood::{FloodConfig, run};
use std::time::Duration;

/// What 20,000 flood requests may leave behind in this process (the server and the test's
/// own client): kept login names alone (the bug SPEC §11 forbids) would be over 100 MiB.
const RSS_BUDGET_MIB: u64 = 48;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_names_and_keys_keeps_no_memory_and_the_buyer_still_buys() {
    let mut args = vec!["--demo-users", "3", "--queue-promotion-interval-ms", "100"];
    args.extend(FAST_PAYMENTS);
    let sys = flash_up(&args).await;

    let mut flood = FloodConfig::new(format!("http://{}", sys.addr));
    flood.names = 20_000;
    flood.long_every = 10;
    flood.keys = 20_000;
    flood.concurrency = 16;
    flood.pid = Some(std::process::id());
    flood.rss_budget_mib = Some(RSS_BUDGET_MIB);
    // Generous: CI machines are small and busy.
    flood.deadline = Duration::from_secs(120);
    let report = run(flood).await;

    stop(sys).await;
    let logins: u64 = report.statuses.get("login").map_or(0, |m| m.values().sum());
    let orders: u64 = report.statuses.get("order").map_or(0, |m| m.values().sum());
    assert_eq!((logins, orders), (20_000, 20_000), "{report:?}");
    // The default limits answer the flood: most of it is refused with 429.
    assert!(
        report.statuses["login"].get(&429).copied().unwrap_or(0) > 19_000,
        "{report:?}"
    );
    eprintln!("flood: {:?} rss {:?}", report.statuses, report.rss);
    assert!(report.rss.is_some(), "RSS not sampled");
    let failures = report.failures();
    assert!(failures.is_empty(), "{failures:?}\n{report:?}");
}

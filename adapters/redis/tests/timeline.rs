//! The `TimelineStore` contracts against the real Redis on 127.0.0.1:6379 (`REDIS_URL`
//! overrides it), and the bound they cannot see: every record expires on its own.
//!
//! Each test works under its own key prefix, so tests never see each other's keys.

mod common;

use common::{inspector, local_url, prefixed};
use flash_adapter_redis::{Redis, RedisTimeline};
use flash_core::domain::TIMELINE_SECONDS;
use flash_core::ports::TimelineStore;
use std::sync::Arc;

fn redis_with_prefix() -> (Redis, String) {
    let (config, prefix) = prefixed(&local_url(), false);
    (
        Redis::open(&config).unwrap_or_else(|e| panic!("redis: {e}")),
        prefix,
    )
}

flash_testkit::timeline_store_contracts!(Arc::new(RedisTimeline::new(redis_with_prefix().0)));

#[tokio::test]
async fn every_record_expires_within_the_window_and_a_minute() {
    let (redis, prefix) = redis_with_prefix();
    let t = RedisTimeline::new(redis);
    t.record(1_000, &[("site|requests".to_owned(), 1)], &[])
        .await
        .unwrap();
    let mut c = inspector().await;
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{prefix}{{tl}}:1000"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl as u64 <= TIMELINE_SECONDS + 60,
        "TTL {ttl} s"
    );
}

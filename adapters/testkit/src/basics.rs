//! Contracts of `Clock`, `Ids`, `Random` and `HealthCheck`.

use crate::fixtures::{count, race};
use flash_core::Timestamp;
use flash_core::ports::{Clock, HealthCheck, Ids, Random};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// `sleep(d)` waits `d` of the clock's own time (a fake clock by advancing itself).
pub async fn clock_sleep_lets_at_least_the_duration_pass(clock: Arc<dyn Clock>, _now: Timestamp) {
    let before = clock.now();
    clock.sleep(Duration::from_millis(30)).await;
    let after = clock.now();
    // One millisecond of slack for the truncation of both readings to whole milliseconds.
    assert!(
        after.millis() - before.millis() >= 29,
        "sleep(30ms) let only {}ms pass",
        after.millis() - before.millis()
    );
}

/// `uuid()` never returns a UUID twice, also when called from many threads at once.
pub async fn ids_are_never_repeated(ids: Arc<dyn Ids>, _now: Timestamp) {
    let batches = race(8, |_| {
        let ids = ids.clone();
        async move { (0..5_000).map(|_| ids.uuid()).collect::<Vec<_>>() }
    })
    .await;
    let mut seen = HashSet::new();
    for id in batches.into_iter().flatten() {
        assert!(seen.insert(id), "uuid {id} returned twice");
        assert!(!id.is_nil(), "nil uuid");
    }
}

/// `unit()` is uniform in `[0, 1)`.
#[allow(
    clippy::unused_async,
    reason = "async like every contract, for the macros"
)]
pub async fn random_unit_stays_in_the_unit_interval(random: Arc<dyn Random>, _now: Timestamp) {
    let samples: Vec<f64> = (0..10_000).map(|_| random.unit()).collect();
    assert!(
        samples.iter().all(|x| (0.0..1.0).contains(x)),
        "unit() left [0, 1)"
    );
    let low = count(&samples, |x| *x < 0.5);
    assert!(
        (4_000..6_000).contains(&low),
        "unit() is not uniform: {low} of 10000 below 0.5"
    );
}

/// `between(lo, hi)` covers `[lo, hi]` and is `lo` when `hi <= lo`.
#[allow(
    clippy::unused_async,
    reason = "async like every contract, for the macros"
)]
pub async fn random_between_is_inclusive_and_collapses_when_empty(
    random: Arc<dyn Random>,
    _now: Timestamp,
) {
    let mut seen = HashSet::new();
    for _ in 0..3_000 {
        let x = random.between(3, 5);
        assert!((3..=5).contains(&x), "between(3, 5) gave {x}");
        seen.insert(x);
    }
    assert_eq!(
        seen.len(),
        3,
        "between(3, 5) never reached both ends: {seen:?}"
    );
    assert_eq!(random.between(7, 7), 7);
    assert_eq!(random.between(9, 2), 9);
}

/// A reachable dependency answers its ping, under a short lowercase name.
pub async fn health_ping_answers_under_a_short_name(health: Arc<dyn HealthCheck>, _now: Timestamp) {
    let name = health.name();
    assert!(
        !name.is_empty()
            && name.len() <= 24
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-'),
        "health check name {name:?} is not a short lowercase name"
    );
    health
        .ping()
        .await
        .unwrap_or_else(|e| panic!("{name} ping failed: {e}"));
}

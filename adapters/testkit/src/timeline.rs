//! Contracts of `TimelineStore`.

use crate::fixtures::race;
use flash_core::Timestamp;
use flash_core::domain::TIMELINE_SECONDS;
use flash_core::ports::TimelineStore;
use std::sync::Arc;

fn second(now: Timestamp) -> u64 {
    u64::try_from(now.unix_seconds()).unwrap_or(0)
}

fn fields(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// MUST NOT lose an add: concurrent instances' counts of one second sum up; levels keep the
/// last write.
pub async fn timeline_adds_from_racing_writers_sum_up(t: Arc<dyn TimelineStore>, now: Timestamp) {
    let s = second(now);
    race(16, |_| {
        let t = t.clone();
        async move {
            t.record(s, &fields(&[("site|requests", 3), ("L|arrivals", 1)]), &[])
                .await
                .unwrap();
        }
    })
    .await;
    t.record(s, &[], &fields(&[("L|queued", 7)])).await.unwrap();
    t.record(s, &[], &fields(&[("L|queued", 5)])).await.unwrap();
    let r = t.read(s, s).await.unwrap();
    assert_eq!(r.len(), 1, "one record for the second");
    assert_eq!(r[0].second, s);
    assert_eq!(r[0].fields["site|requests"], 48, "adds sum up");
    assert_eq!(r[0].fields["L|arrivals"], 16);
    assert_eq!(r[0].fields["L|queued"], 5, "the last level wins");
}

/// A read returns the existing seconds of its range, oldest first, at most
/// [`TIMELINE_SECONDS`] of them (the newest).
pub async fn timeline_reads_existing_seconds_in_order_within_the_window(
    t: Arc<dyn TimelineStore>,
    now: Timestamp,
) {
    let s = second(now);
    for d in [0, 2, 5] {
        t.record(s + d, &fields(&[("site|requests", d + 1)]), &[])
            .await
            .unwrap();
    }
    let r = t.read(s, s + 10).await.unwrap();
    let seconds: Vec<u64> = r.iter().map(|r| r.second).collect();
    assert_eq!(
        seconds,
        [s, s + 2, s + 5],
        "only existing seconds, in order"
    );
    assert_eq!(r[2].fields["site|requests"], 6);
    assert!(t.read(s + 6, s + 10).await.unwrap().is_empty());
    assert!(
        t.read(s + 3, s + 1).await.unwrap().is_empty(),
        "an empty range"
    );
    let far = s + TIMELINE_SECONDS + 3;
    t.record(far, &fields(&[("site|requests", 1)]), &[])
        .await
        .unwrap();
    let wide = t.read(0, far).await.unwrap();
    assert!(
        wide.iter()
            .all(|r| r.second > far - TIMELINE_SECONDS && r.second <= far),
        "a wide read is cut to the newest {TIMELINE_SECONDS} seconds"
    );
    assert_eq!(wide.last().map(|r| r.second), Some(far));
}

//! Contracts of `Bus` and `BusConsumer`: delivery, retry with back-off, dead-lettering.

use crate::fixtures::{BusPorts, next_delivery as next, nothing_more, retry, unique};
use flash_core::Timestamp;
use flash_core::messages::Envelope;
use flash_core::ports::Disposition;
use std::time::Duration;

fn message() -> Envelope {
    let id = unique("msg-");
    Envelope {
        message_id: id.clone(),
        correlation_id: id.clone(),
        body: format!("{{\"requestId\":\"{id}\"}}").into_bytes(),
    }
}

/// `m` is on the dead-letter queue, unchanged, and no longer on the queue.
async fn dead_lettered(bus: &BusPorts, m: &Envelope) {
    let dead = next(&*bus.dead_letters, "dead letter").await;
    assert_eq!(dead.envelope.message_id, m.message_id);
    assert_eq!(dead.envelope.body, m.body);
    dead.acker.settle(Disposition::Ack).await.unwrap();
    nothing_more(&*bus.consumer, "after dead-lettering").await;
}

/// A published message is delivered (attempt 1) and, once acknowledged, gone.
pub async fn bus_delivers_a_published_message_until_acked(bus: BusPorts, _now: Timestamp) {
    let m = message();
    bus.bus.publish(&bus.queue, m.clone()).await.unwrap();
    let d = next(&*bus.consumer, "first delivery").await;
    assert_eq!(d.envelope, m);
    assert_eq!(d.attempt, 1);
    d.acker.settle(Disposition::Ack).await.unwrap();
    nothing_more(&*bus.consumer, "after ack").await;
    nothing_more(&*bus.dead_letters, "dead letters after ack").await;
}

/// `Retry` delivers the message again with the next attempt number.
pub async fn bus_retry_redelivers_with_the_attempt_count(bus: BusPorts, _now: Timestamp) {
    if bus.max_attempts < 2 {
        return;
    }
    let m = message();
    bus.bus.publish(&bus.queue, m.clone()).await.unwrap();
    let first = next(&*bus.consumer, "first delivery").await;
    retry(&first, Duration::from_millis(10)).await;
    let second = next(&*bus.consumer, "redelivery").await;
    assert_eq!(second.envelope, m);
    assert_eq!(second.attempt, 2, "attempts not counted");
    second.acker.settle(Disposition::Ack).await.unwrap();
    nothing_more(&*bus.consumer, "after ack").await;
}

/// A retry is not delivered before its back-off ends.
pub async fn bus_retry_waits_for_its_back_off(bus: BusPorts, _now: Timestamp) {
    let m = message();
    bus.bus.publish(&bus.queue, m).await.unwrap();
    let first = next(&*bus.consumer, "first delivery").await;
    let back_off = Duration::from_millis(400);
    let started = tokio::time::Instant::now();
    retry(&first, back_off).await;
    if bus.max_attempts < 2 {
        next(&*bus.dead_letters, "dead letter").await;
        return;
    }
    let second = next(&*bus.consumer, "redelivery").await;
    let waited = started.elapsed();
    assert!(
        waited >= back_off - Duration::from_millis(50),
        "redelivered after {waited:?}, back-off {back_off:?}"
    );
    second.acker.settle(Disposition::Ack).await.unwrap();
}

/// After `max_attempts` deliveries a retried message goes to `<queue>.dlq`, and only there.
pub async fn bus_retry_then_dead_letter(bus: BusPorts, _now: Timestamp) {
    let m = message();
    bus.bus.publish(&bus.queue, m.clone()).await.unwrap();
    for attempt in 1..=bus.max_attempts {
        let d = next(&*bus.consumer, "delivery before the limit").await;
        assert_eq!(d.attempt, attempt);
        assert_eq!(d.envelope.message_id, m.message_id);
        retry(&d, Duration::from_millis(5)).await;
    }
    dead_lettered(&bus, &m).await;
}

/// `DeadLetter` moves the message to the dead-letter queue at once, without retries.
pub async fn bus_dead_letter_disposition_skips_retries(bus: BusPorts, _now: Timestamp) {
    let m = message();
    bus.bus.publish(&bus.queue, m.clone()).await.unwrap();
    let d = next(&*bus.consumer, "delivery").await;
    d.acker
        .settle(Disposition::DeadLetter {
            reason: "malformed".into(),
        })
        .await
        .unwrap();
    dead_lettered(&bus, &m).await;
}

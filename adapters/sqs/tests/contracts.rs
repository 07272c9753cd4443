//! The bus contracts and the SQS specifics (batches, redrive, attributes) against a real SQS
//! endpoint: `moto_server` on loopback.

use flash_adapter_sqs::{Received, Settled, SqsBus, SqsConfig, dlq_name};
use flash_core::messages::Envelope;
use flash_core::ports::{Bus, BusConsumer, Disposition};
use flash_testkit::BusPorts;
use flash_testkit::fixtures::next_delivery as next;
use std::sync::Arc;
use std::time::Duration;

fn config() -> SqsConfig {
    SqsConfig::default()
        .with_endpoint(flash_testkit::moto::shared().endpoint.clone())
        .with_max_attempts(3)
        .with_wait(Duration::from_secs(1))
        .with_create_queues(true)
}

fn unique_queue() -> String {
    format!("flash-test-{}", uuid::Uuid::new_v4().simple())
}

fn bus() -> BusPorts {
    let queue = unique_queue();
    let bus = SqsBus::local(config()).expect("local SQS config");
    BusPorts {
        consumer: Arc::new(bus.consumer(&queue)),
        dead_letters: Arc::new(bus.consumer(dlq_name(&queue))),
        max_attempts: bus.config().max_attempts,
        queue,
        bus: Arc::new(bus),
    }
}

flash_testkit::bus_contracts!(bus());

fn message(n: usize) -> Envelope {
    let id = format!("req-{n}-{}", uuid::Uuid::new_v4());
    Envelope {
        message_id: id.clone(),
        correlation_id: id.clone(),
        body: format!("{{\"requestId\":\"{id}\"}}").into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_25_goes_out_in_chunks_and_every_message_arrives_once() {
    let bus = SqsBus::local(config()).unwrap();
    let queue = unique_queue();
    bus.declare(&queue).await.unwrap();
    let sent: Vec<Envelope> = (0..25).map(message).collect();
    let results = bus.publish_batch(&queue, sent.clone()).await;
    assert_eq!(results.len(), 25);
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let consumer = bus.consumer(&queue);
    let mut got = Vec::new();
    while got.len() < 25 {
        let d = next(&consumer, "batched message").await;
        got.push(d.envelope.clone());
        d.acker.settle(Disposition::Ack).await.unwrap();
    }
    got.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    let mut want = sent;
    want.sort_by(|a, b| a.message_id.cmp(&b.message_id));
    assert_eq!(
        got, want,
        "ids, correlation ids and bodies survive the trip"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), consumer.next())
            .await
            .is_err(),
        "a deleted message came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_never_settled_is_moved_by_the_redrive_policy() {
    // What happens when a consumer crashes on every delivery: nobody settles, the visibility
    // timeout (1 s here) lets it reappear, SQS counts the receives and, past `max_attempts`,
    // moves it to the dead-letter queue.
    let mut short = config();
    short.visibility_timeout = Duration::from_secs(1);
    let bus = SqsBus::local(short).unwrap();
    let queue = unique_queue();
    bus.declare(&queue).await.unwrap();
    let m = message(0);
    bus.publish(&queue, m.clone()).await.unwrap();
    let consumer = bus.consumer(&queue);
    for attempt in 1..=3 {
        let d = next(&consumer, "delivery before the redrive").await;
        assert_eq!(d.attempt, attempt);
        assert_eq!(d.envelope, m);
        drop(d); // never settled
    }
    // The fourth receive finds it gone: SQS moved it.
    let after = tokio::time::timeout(Duration::from_secs(3), consumer.next()).await;
    assert!(after.is_err(), "delivered a fourth time: {after:?}");
    let dead = next(&bus.consumer(dlq_name(&queue)), "redriven dead letter").await;
    assert_eq!(dead.envelope, m, "the redrive keeps body and attributes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settling_a_lambda_record_says_what_lambda_must_do() {
    let bus = SqsBus::local(config()).unwrap();
    let queue = unique_queue();
    bus.declare(&queue).await.unwrap();
    let m = message(1);
    bus.publish(&queue, m.clone()).await.unwrap();
    let consumer = bus.consumer(&queue);
    let first = next(&consumer, "delivery").await;
    assert_eq!(first.attempt, 1);
    // A record as the Lambda host builds it from the event.
    let record = |attempt: u32, receipt_handle: String| Received {
        queue: queue.clone(),
        receipt_handle,
        envelope: m.clone(),
        attempt,
    };
    // Ack: nothing to call, Lambda deletes successful records.
    assert_eq!(
        bus.settle(&record(1, "ignored".into()), Disposition::Ack)
            .await
            .unwrap(),
        Settled::Done
    );
    drop(first);
    // Out of attempts: a retry becomes a dead letter, and Lambda may delete the original.
    let back_off = Disposition::Retry {
        after: Duration::from_secs(1),
    };
    assert_eq!(
        bus.settle(&record(3, "ignored".into()), back_off)
            .await
            .unwrap(),
        Settled::Done
    );
    let dead = next(&bus.consumer(dlq_name(&queue)), "dead letter").await;
    assert_eq!(dead.envelope, m);
    dead.acker.settle(Disposition::Ack).await.unwrap();
}

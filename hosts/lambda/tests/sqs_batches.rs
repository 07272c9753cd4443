//! SQS-triggered functions report exactly the records to deliver again in `batchItemFailures`,
//! dead-letter what can never succeed, and move what keeps failing to the dead-letter queue —
//! on a real SQS endpoint (moto).

mod common;

use aws_lambda_events::sqs::SqsEvent;
use common::{EventSourceMapping, World};
use flash_adapter_sqs::{SqsBus, dlq_name};
use flash_core::messages::{Envelope, PaymentResultMessage};
use flash_core::ports::{Bus, Disposition};
use flash_lambda::Kind;
use flash_lambda::batch::handle_batch;
use flash_runtime::consumers::Consumer;
use flash_runtime::worker::MessageHandler;
use std::time::Duration;

/// Acknowledges "ok" bodies, retries "transient", dead-letters "poison".
struct Scripted;

#[async_trait::async_trait]
impl MessageHandler for Scripted {
    async fn handle(&self, envelope: &Envelope, _attempt: u32) -> Disposition {
        match envelope.body.as_slice() {
            b"transient" => Disposition::Retry {
                after: Duration::from_secs(1),
            },
            b"poison" => Disposition::DeadLetter {
                reason: "malformed".into(),
            },
            _ => Disposition::Ack,
        }
    }
}

fn fixture(queue: &str) -> SqsEvent {
    let path = format!(
        "{}/tests/fixtures/sqs_batch.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    serde_json::from_str(&text.replace(":QUEUE\"", &format!(":{queue}\""))).expect("SQS event")
}

/// A fresh world (kept alive by the caller) with its payment-request queue declared: the world,
/// its bus and the queue's name.
async fn request_queue(name: &str) -> (World, SqsBus, String) {
    let world = World::new(name).await;
    let bus = world.bus();
    let queue = world.request_queue().to_owned();
    bus.declare(&queue).await.unwrap();
    (world, bus, queue)
}

/// The first record of what `esm` receives within `wait`; a panic saying `what` was not.
async fn first_record(esm: &EventSourceMapping, wait: Duration, what: &str) -> serde_json::Value {
    let (event, _) = esm.receive(wait).await.expect(what);
    event["Records"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_record_is_the_only_one_reported() {
    let (_world, bus, queue) = request_queue("batch").await;
    let event = fixture(&queue);
    let response = handle_batch(&bus, &Scripted, &event, 10).await.unwrap();
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
    // The wire form Lambda reads.
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        wire["batchItemFailures"][0]["itemIdentifier"],
        "2e1424d4-f796-459a-8184-9c92662be6da"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_goes_to_the_dead_letter_queue_and_is_not_redriven() {
    let (_world, bus, queue) = request_queue("poison").await;
    let mut event = fixture(&queue);
    event.records[1].body = Some("poison".into());
    let response = handle_batch(&bus, &Scripted, &event, 10).await.unwrap();
    assert!(
        response.batch_item_failures.is_empty(),
        "a dead-lettered record is done: {response:?}"
    );
    let dlq = EventSourceMapping::new(bus.clone(), &dlq_name(&queue));
    let record = first_record(&dlq, Duration::from_secs(2), "a dead letter").await;
    assert_eq!(record["body"], "poison");
    assert_eq!(
        record["messageAttributes"]["correlationId"]["stringValue"],
        "req-transient"
    );
    assert_eq!(
        record["messageAttributes"]["deadLetterReason"]["stringValue"],
        "malformed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_that_keeps_failing_ends_in_the_dead_letter_queue() {
    // The results function with its database unreachable: every delivery fails transiently,
    // is reported, comes back after its back-off, and after BUS_MAX_ATTEMPTS (3) it is a dead
    // letter rather than a message retried for ever.
    let mut world = World::new("keepsfailing").await;
    world.set(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/unreachable",
    );
    let function = world.function(Kind::Results);
    let handler = Consumer::payment_results(&function.app.work, function.app.metrics.clone());
    let queue = world.result_queue().to_owned();
    let result = PaymentResultMessage {
        request_id: "req-1".into(),
        payment_id: uuid::Uuid::new_v4().to_string(),
        order_id: uuid::Uuid::new_v4().to_string(),
        user_id: uuid::Uuid::new_v4().to_string(),
        status: flash_core::domain::Verdict::Ok,
        processed_at: "2026-11-24T06:00:00.000Z".into(),
        message: None,
    };
    let envelope = Envelope::json("req-1".into(), "req-1".into(), &result).unwrap();
    function
        .bus
        .publish(&queue, envelope.clone())
        .await
        .unwrap();

    let esm = EventSourceMapping::new(function.bus.clone(), &queue);
    let mut reported = 0;
    let mut invocations = 0;
    let dlq = EventSourceMapping::new(function.bus.clone(), &dlq_name(&queue));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        if let Some((event, receipts)) = esm.receive(Duration::from_secs(1)).await {
            let event: SqsEvent = serde_json::from_value(event).unwrap();
            let response = handle_batch(&function.bus, &handler, &event, 10)
                .await
                .unwrap();
            invocations += 1;
            reported += esm
                .settle(&receipts, &serde_json::to_value(&response).unwrap())
                .await;
        }
        if let Some(dead) = dlq.receive(Duration::from_secs(0)).await {
            break dead;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter after {invocations} invocations"
        );
    };
    assert_eq!(invocations, 3, "one invocation per attempt");
    assert_eq!(
        reported, 2,
        "reported for redelivery until the last attempt"
    );
    let record = &dead.0["Records"][0];
    assert_eq!(record["body"], String::from_utf8(envelope.body).unwrap());
    assert_eq!(
        record["messageAttributes"]["deadLetterReason"]["stringValue"],
        "out of attempts"
    );
    assert_eq!(EventSourceMapping::depth(&function.bus, &queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reported_record_comes_back_after_its_back_off_not_before() {
    let (_world, bus, queue) = request_queue("backoff").await;
    let message = Envelope {
        message_id: "req-transient".into(),
        correlation_id: "req-transient".into(),
        body: b"transient".to_vec(),
    };
    bus.publish(&queue, message).await.unwrap();
    let esm = EventSourceMapping::new(bus.clone(), &queue);
    let (event, receipts) = esm
        .receive(Duration::from_secs(2))
        .await
        .expect("the message");
    let event: SqsEvent = serde_json::from_value(event).unwrap();
    let response = handle_batch(&bus, &Scripted, &event, 10).await.unwrap();
    assert_eq!(response.batch_item_failures.len(), 1);
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        esm.settle(&receipts, &wire).await,
        1,
        "reported, so not deleted"
    );
    // The back-off (1 s) became its visibility timeout: invisible now, delivered again after
    // it as attempt 2 (the queue's own visibility timeout is 30 s, so this is the function's).
    assert!(
        esm.receive(Duration::ZERO).await.is_none(),
        "redelivered before its back-off"
    );
    let record = first_record(
        &esm,
        Duration::from_secs(5),
        "redelivered after its back-off",
    )
    .await;
    assert_eq!(record["body"], "transient");
    assert_eq!(record["attributes"]["ApproximateReceiveCount"], "2");
}

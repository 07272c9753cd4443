mod common;

use common::*;
use flash_core::domain::Verdict;
use flash_core::messages::{PaymentRequestMessage, PaymentResultMessage};
use flash_core::ports::BusConsumer;
use flash_handlers::pay::ProcessError;

fn request() -> PaymentRequestMessage {
    PaymentRequestMessage {
        request_id: uuid::Uuid::new_v4().to_string(),
        payment_id: uuid::Uuid::new_v4().to_string(),
        order_id: uuid::Uuid::new_v4().to_string(),
        user_id: uuid::Uuid::new_v4().to_string(),
        amount: 50_000,
        method: "MOCK".into(),
        metadata: None,
    }
}

#[tokio::test]
async fn the_processor_publishes_one_result_per_payment_even_when_redelivered() {
    let w = world();
    let req = request();
    let first = w.h.work.process_payment.handle(&cx(), &req).await.unwrap();
    assert!(first.published);
    let again = w.h.work.process_payment.handle(&cx(), &req).await.unwrap();
    assert_eq!(again.verdict, first.verdict);
    assert!(!again.published);
    assert_eq!(w.bus.len("payments_result"), 1);
    let consumer = w.bus.consumer("payments_result");
    let d = consumer.next().await.unwrap().unwrap();
    let msg: PaymentResultMessage = serde_json::from_slice(&d.envelope.body).unwrap();
    assert_eq!(msg.payment_id, req.payment_id);
    assert_eq!(msg.status, first.verdict);
    assert_eq!(d.envelope.correlation_id, req.request_id);
    assert!(msg.message.is_some());
}

#[tokio::test]
async fn the_success_rate_decides_the_verdicts() {
    for (rate, expected) in [(1.0, Verdict::Ok), (0.0, Verdict::Fail)] {
        let mut s = settings();
        s.pay.success_rate = rate;
        let w = world_with(s);
        for _ in 0..5 {
            assert_eq!(
                w.h.work
                    .process_payment
                    .handle(&cx(), &request())
                    .await
                    .unwrap()
                    .verdict,
                expected
            );
        }
    }
}

#[tokio::test]
async fn the_processing_latency_uses_the_clock() {
    let mut s = settings();
    s.pay.min_latency = std::time::Duration::from_millis(1000);
    s.pay.max_latency = std::time::Duration::from_millis(1000);
    let w = world_with(s);
    let before = w.now();
    w.h.work
        .process_payment
        .handle(&cx(), &request())
        .await
        .unwrap();
    assert_eq!(w.now().millis() - before.millis(), 1000);
}

#[tokio::test]
async fn a_request_with_bad_ids_is_malformed() {
    let w = world();
    let mut req = request();
    req.order_id = "x".into();
    let e =
        w.h.work
            .process_payment
            .handle(&cx(), &req)
            .await
            .unwrap_err();
    assert!(matches!(e, ProcessError::Malformed(_)));
    assert_eq!(w.bus.len("payments_result"), 0);
}

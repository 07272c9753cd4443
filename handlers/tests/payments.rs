mod common;

use common::*;
use flash_core::domain::{OrderStatus, PaymentStatus, ResultApplied, Verdict};
use flash_core::messages::{PaymentRequestMessage, PaymentResultMessage};
use flash_core::ports::{Outbox, PaymentStore};
use flash_core::{Classify, ErrorKind, OrderId, PaymentId};
use flash_handlers::payments::{CallbackRequest, PaymentError, PaymentRequest};
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn pay_req(order: OrderId) -> PaymentRequest {
    PaymentRequest {
        order_id: order,
        method: "MOCK".into(),
    }
}

fn result(p: &flash_core::domain::Payment, verdict: Verdict) -> PaymentResultMessage {
    PaymentResultMessage {
        request_id: uuid::Uuid::new_v4().to_string(),
        payment_id: p.id.to_string(),
        order_id: p.order_id.to_string(),
        user_id: p.user.to_string(),
        status: verdict,
        processed_at: "2025-11-03T10:00:00.000Z".into(),
        message: None,
    }
}

#[tokio::test]
async fn a_payment_is_written_with_its_bus_message_and_repeats_return_it() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 2).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    assert_eq!(
        (p.status, p.amount, p.method.as_str()),
        (PaymentStatus::Req, 100_000, "MOCK")
    );
    let again =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    assert_eq!(again.id, p.id, "one active payment per order");
    let msgs = w
        .shop
        .claim(10, w.now(), std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(msgs.len(), 1);
    let body: PaymentRequestMessage = serde_json::from_slice(&msgs[0].envelope.body).unwrap();
    assert_eq!(body.payment_id, p.id.to_string());
    assert_eq!(body.amount, 100_000);
    assert_eq!(msgs[0].envelope.correlation_id, body.request_id);
}

#[tokio::test]
async fn concurrent_payment_requests_open_one_payment() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let c = as_user(&u);
    let (a, b) = tokio::join!(
        w.h.request_payment.handle(&c, pay_req(o.id)),
        w.h.request_payment.handle(&c, pay_req(o.id))
    );
    assert_eq!(a.unwrap().id, b.unwrap().id);
    assert_eq!(w.shop.backlog().await.unwrap(), 1);
}

#[tokio::test]
async fn only_the_owner_pays_for_an_order() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let o = w.hold(&buyer(), &ev, 1).await;
    let e =
        w.h.request_payment
            .handle(&as_user(&buyer()), pay_req(o.id))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.public_message(), "Order not found");
    let e =
        w.h.request_payment
            .handle(&as_user(&buyer()), pay_req(OrderId(uuid::Uuid::new_v4())))
            .await
            .unwrap_err();
    assert!(matches!(e, PaymentError::OrderNotFound));
}

#[tokio::test]
async fn an_ok_result_makes_the_order_paid_and_moves_stock_to_sold() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 2).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    let applied =
        w.h.work
            .apply_result
            .handle(&cx(), &result(&p, Verdict::Ok))
            .await
            .unwrap();
    assert!(matches!(applied, ResultApplied::Paid(_)));
    let now = w.event(ev.id).await;
    assert_eq!((now.sold_qty, now.held_qty), (2, 0));
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
    // Paying again returns the OK payment.
    let again =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    assert_eq!((again.id, again.status), (p.id, PaymentStatus::Ok));
}

#[tokio::test]
async fn duplicate_and_late_results_never_change_a_paid_order() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    w.h.work
        .apply_result
        .handle(&cx(), &result(&p, Verdict::Ok))
        .await
        .unwrap();
    let dup =
        w.h.work
            .apply_result
            .handle(&cx(), &result(&p, Verdict::Ok))
            .await
            .unwrap();
    assert!(matches!(dup, ResultApplied::Unchanged(_)));
    let late =
        w.h.work
            .apply_result
            .handle(&cx(), &result(&p, Verdict::Fail))
            .await
            .unwrap();
    assert!(matches!(late, ResultApplied::Unchanged(_)));
    let now = w.event(ev.id).await;
    assert_eq!(now.sold_qty, 1, "sold counted once");
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
}

#[tokio::test]
async fn a_failed_payment_keeps_the_stock_and_can_be_retried() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    w.h.work
        .apply_result
        .handle(&cx(), &result(&p, Verdict::Fail))
        .await
        .unwrap();
    assert_eq!(w.order(o.id).await.status, OrderStatus::Fail);
    assert_eq!(w.event(ev.id).await.held_qty, 1);
    let retry =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    assert_ne!(retry.id, p.id);
    assert_eq!(w.order(o.id).await.status, OrderStatus::Hold);
    w.h.work
        .apply_result
        .handle(&cx(), &result(&retry, Verdict::Ok))
        .await
        .unwrap();
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
}

#[tokio::test]
async fn money_taken_for_an_expired_order_is_flagged_for_refund() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    // The processor does not answer in time: the payment times out, then the hold expires.
    w.advance(60_000);
    assert_eq!(w.time_out_payments().await, 1);
    w.advance(600_000);
    assert_eq!(w.expire_holds().await.len(), 1);
    // ...and then the processor says it charged the card.
    let late =
        w.h.work
            .apply_result
            .handle(&cx(), &result(&p, Verdict::Ok))
            .await
            .unwrap();
    assert!(matches!(late, ResultApplied::RefundRequired(_)));
    assert_eq!(w.shop.counts().await.unwrap().payments_refund_required, 1);
    let now = w.event(ev.id).await;
    assert_eq!((now.sold_qty, now.held_qty), (0, 0));
    assert_eq!(w.order(o.id).await.status, OrderStatus::Expired);
}

#[tokio::test]
async fn a_late_success_after_a_timeout_still_pays_an_order_that_is_held() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    w.advance(60_000);
    assert_eq!(w.time_out_payments().await, 1);
    let late =
        w.h.work
            .apply_result
            .handle(&cx(), &result(&p, Verdict::Ok))
            .await
            .unwrap();
    assert!(matches!(late, ResultApplied::Paid(_)));
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
    assert_eq!(w.event(ev.id).await.sold_qty, 1);
}

#[tokio::test]
async fn a_second_success_for_a_paid_order_is_flagged_for_refund() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p1 =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    w.h.work
        .apply_result
        .handle(&cx(), &result(&p1, Verdict::Fail))
        .await
        .unwrap();
    let p2 =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    w.h.work
        .apply_result
        .handle(&cx(), &result(&p2, Verdict::Ok))
        .await
        .unwrap();
    // The first attempt's FAIL is final: a contradicting OK for it is not applied twice.
    let r =
        w.h.work
            .apply_result
            .handle(&cx(), &result(&p1, Verdict::Ok))
            .await
            .unwrap();
    assert!(matches!(r, ResultApplied::RefundRequired(_)));
    assert_eq!(w.event(ev.id).await.sold_qty, 1);
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
}

#[tokio::test]
async fn a_payment_in_flight_keeps_its_order_from_expiring() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    w.advance(290_000);
    w.h.request_payment
        .handle(&as_user(&u), pay_req(o.id))
        .await
        .unwrap();
    w.advance(20_000);
    assert!(w.expire_holds().await.is_empty());
    assert_eq!(w.order(o.id).await.status, OrderStatus::Hold);
}

/// (`X-Signature-Timestamp`, `X-Signature`) of `body` signed at Unix second `at`.
fn sign(at: i64, body: &[u8], key: &[u8]) -> (String, String) {
    let stamp = at.to_string();
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(format!("{stamp}.").as_bytes());
    m.update(body);
    (stamp, hex::encode(m.finalize().into_bytes()))
}

fn callback(
    p: &flash_core::domain::Payment,
    verdict: Verdict,
    signed: Option<(String, String)>,
    body: &[u8],
) -> CallbackRequest {
    let (signed_at, signature) = signed.unzip();
    CallbackRequest {
        order_id: p.order_id,
        payment_id: p.id,
        verdict,
        signature,
        signed_at,
        signed_body: body.to_vec(),
    }
}

#[tokio::test]
async fn buyers_cannot_mark_their_own_payment_paid() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    let body = b"{}";
    let e =
        w.h.callback
            .handle(&as_user(&u), callback(&p, Verdict::Ok, None, body))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Forbidden);
    let e =
        w.h.callback
            .handle(&cx(), callback(&p, Verdict::Ok, None, body))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let forged = sign(w.now().unix_seconds(), body, b"wrong-key");
    let e =
        w.h.callback
            .handle(&cx(), callback(&p, Verdict::Ok, Some(forged), body))
            .await
            .unwrap_err();
    assert_eq!(e.public_message(), "Invalid signature");
    assert_eq!(w.order(o.id).await.status, OrderStatus::Hold);
}

#[tokio::test]
async fn a_signed_provider_callback_or_an_admin_settles_a_payment() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    let body = br#"{"status":"OK"}"#;
    let sig = sign(w.now().unix_seconds(), body, b"callback-secret");
    let settled =
        w.h.callback
            .handle(&cx(), callback(&p, Verdict::Ok, Some(sig), body))
            .await
            .unwrap();
    assert_eq!(settled.status, PaymentStatus::Ok);
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
    // A FAIL after OK is refused with the legacy text.
    let e =
        w.h.callback
            .handle(&as_user(&admin()), callback(&p, Verdict::Fail, None, body))
            .await
            .unwrap_err();
    assert_eq!(
        e.public_message(),
        "Payment has already been completed successfully"
    );
    // A payment of another order is refused.
    let mut wrong = callback(&p, Verdict::Ok, None, body);
    wrong.order_id = OrderId(uuid::Uuid::new_v4());
    let e =
        w.h.callback
            .handle(&as_user(&admin()), wrong)
            .await
            .unwrap_err();
    assert_eq!(
        e.public_message(),
        "Payment does not belong to the provided order"
    );
    let mut missing = callback(&p, Verdict::Ok, None, body);
    missing.payment_id = PaymentId(uuid::Uuid::new_v4());
    let e =
        w.h.callback
            .handle(&as_user(&admin()), missing)
            .await
            .unwrap_err();
    assert_eq!(e.public_message(), "Payment not found");
}

#[tokio::test]
async fn owner_callbacks_work_only_when_the_legacy_switch_is_on() {
    let mut s = settings();
    s.payments.allow_owner_callback = true;
    let w = world_with(s);
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    let e =
        w.h.callback
            .handle(&as_user(&buyer()), callback(&p, Verdict::Ok, None, b""))
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let ok =
        w.h.callback
            .handle(&as_user(&u), callback(&p, Verdict::Ok, None, b""))
            .await
            .unwrap();
    assert_eq!(ok.status, PaymentStatus::Ok);
}

#[tokio::test]
async fn a_payment_that_times_out_fails_its_order() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    w.h.request_payment
        .handle(&as_user(&u), pay_req(o.id))
        .await
        .unwrap();
    w.advance(59_000);
    assert_eq!(w.time_out_payments().await, 0);
    w.advance(1_000);
    assert_eq!(w.time_out_payments().await, 1);
    assert_eq!(w.order(o.id).await.status, OrderStatus::Fail);
}

#[tokio::test]
async fn a_result_with_bad_ids_is_malformed() {
    let w = world();
    let mut m = PaymentResultMessage {
        request_id: "r".into(),
        payment_id: "nope".into(),
        order_id: uuid::Uuid::new_v4().to_string(),
        user_id: "u".into(),
        status: Verdict::Ok,
        processed_at: "x".into(),
        message: None,
    };
    let e = w.h.work.apply_result.handle(&cx(), &m).await.unwrap_err();
    assert!(matches!(e, PaymentError::Malformed(_)));
    m.payment_id = uuid::Uuid::new_v4().to_string();
    let e = w.h.work.apply_result.handle(&cx(), &m).await.unwrap_err();
    assert!(matches!(e, PaymentError::PaymentNotFound));
}

#[tokio::test]
async fn a_signed_callback_counts_only_within_five_minutes_of_its_timestamp() {
    let w = world();
    let ev = w.onsale_event(10, 4).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let p =
        w.h.request_payment
            .handle(&as_user(&u), pay_req(o.id))
            .await
            .unwrap();
    let body = br#"{"status":"OK"}"#;
    let key = b"callback-secret";
    let now = w.now().unix_seconds();
    let body_only = {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(body);
        hex::encode(m.finalize().into_bytes())
    };
    let (_, signed_earlier) = sign(now - 10, body, key);
    let refused = [
        // A replay from the past, and one "from the future", both properly signed.
        (
            sign(now - 301, body, key),
            "Signature timestamp is outside the allowed window",
        ),
        (
            sign(now + 301, body, key),
            "Signature timestamp is outside the allowed window",
        ),
        // The timestamp is part of what is signed: changing it breaks the signature.
        ((now.to_string(), signed_earlier), "Invalid signature"),
        // The body alone (no timestamp) is not enough.
        ((now.to_string(), body_only.clone()), "Invalid signature"),
        ((String::new(), body_only), "Invalid signature"),
        (("+1".into(), sign(1, body, key).1), "Invalid signature"),
    ];
    for (signed, message) in refused {
        let e =
            w.h.callback
                .handle(&cx(), callback(&p, Verdict::Ok, Some(signed), body))
                .await
                .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert_eq!(e.public_message(), message);
    }
    let mut unstamped = callback(&p, Verdict::Ok, Some(sign(now, body, key)), body);
    unstamped.signed_at = None;
    assert!(w.h.callback.handle(&cx(), unstamped).await.is_err());
    assert_eq!(w.order(o.id).await.status, OrderStatus::Hold);

    let settled =
        w.h.callback
            .handle(
                &cx(),
                callback(&p, Verdict::Ok, Some(sign(now - 299, body, key)), body),
            )
            .await
            .unwrap();
    assert_eq!(settled.status, PaymentStatus::Ok);
    assert_eq!(w.order(o.id).await.status, OrderStatus::Paid);
}

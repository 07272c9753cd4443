//! SPEC §11: every door a client can knock on is limited per client address and per user, with
//! keys the client cannot choose, and what is refused is not kept.

mod common;

use common::*;
use flash_core::domain::{LoginName, QueueScope};
use flash_core::ports::OrderStore;
use flash_core::{Classify, Context, ErrorKind};
use flash_handlers::auth::{LoginRequest, RegisterRequest};
use flash_handlers::orders::PlaceOrderRequest;
use flash_handlers::payments::PaymentRequest;

fn from(addr: &str) -> Context {
    let mut c = cx();
    c.client_addr = Some(addr.into());
    c
}

fn as_user_from(p: &flash_core::Principal, addr: &str) -> Context {
    let mut c = as_user(p);
    c.client_addr = Some(addr.into());
    c
}

fn login(name: &str) -> LoginRequest {
    LoginRequest {
        login: name.into(),
        password: "wrong-password".into(),
    }
}

fn register(name: &str) -> RegisterRequest {
    RegisterRequest {
        login: LoginName::parse(name).unwrap(),
        password: "testtest".into(),
        admin_secret: None,
    }
}

fn assert_limited(e: &impl Classify) {
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{}", e.public_message());
    assert!(
        e.retry_after_ms().is_some_and(|ms| ms > 0),
        "no retry-after"
    );
}

#[tokio::test]
async fn a_flood_of_distinct_login_names_keeps_one_counter_per_address() {
    let mut s = settings();
    s.auth.login_per_addr.limit = 1_000_000;
    let w = world_with(s);
    let huge = "x".repeat(60_000);
    for i in 0..2_000 {
        // Unknown names, names that are not valid at all, and 60,000-character ones.
        let name = match i % 3 {
            0 => format!("nobody{i:05}"),
            1 => format!("{{slot{i}}}\u{0}"),
            _ => format!("{huge}{i}"),
        };
        let e = w.h.login.handle(&from("198.51.100.7"), login(&name)).await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::Unauthorized);
    }
    assert_eq!(
        w.limiter.tracked_keys(),
        1,
        "one per address, none per name"
    );
}

#[tokio::test]
async fn a_login_refused_by_its_address_leaves_no_counter_for_the_account() {
    let mut s = settings();
    s.auth.login_per_addr.limit = 2;
    let w = world_with(s);
    w.h.register
        .handle(&from("192.0.2.1"), register("buyer001"))
        .await
        .unwrap();
    let before = w.limiter.tracked_keys();
    for _ in 0..2 {
        let e =
            w.h.login
                .handle(&from("192.0.2.2"), login("nobody01"))
                .await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::Unauthorized);
    }
    let e =
        w.h.login
            .handle(&from("192.0.2.2"), login("buyer001"))
            .await;
    assert_limited(&e.unwrap_err());
    assert_eq!(w.limiter.tracked_keys(), before + 1, "only the address");
    // Another address still reaches the account (and is counted for it).
    let e =
        w.h.login
            .handle(&from("192.0.2.3"), login("buyer001"))
            .await;
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Unauthorized);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let mut s = settings();
    s.auth.register_per_addr.limit = 3;
    let w = world_with(s);
    for i in 0..3 {
        w.h.register
            .handle(&from("203.0.113.5"), register(&format!("buyer{i:03}")))
            .await
            .unwrap();
    }
    let e =
        w.h.register
            .handle(&from("203.0.113.5"), register("buyer100"))
            .await
            .unwrap_err();
    assert_limited(&e);
    // Every address of one IPv6 /64 is one client; another /64 is not.
    let mut s = settings();
    s.auth.register_per_addr.limit = 1;
    let w = world_with(s);
    w.h.register
        .handle(&from("2001:db8:0:1::1"), register("buyer200"))
        .await
        .unwrap();
    let e =
        w.h.register
            .handle(&from("2001:db8:0:1:ffff::2"), register("buyer201"))
            .await
            .unwrap_err();
    assert_limited(&e);
    w.h.register
        .handle(&from("2001:db8:0:2::1"), register("buyer202"))
        .await
        .unwrap();
}

#[tokio::test]
async fn enqueues_are_limited_per_address_across_users() {
    let mut s = settings();
    s.queue.enqueue_per_addr.limit = 3;
    let w = world_with(s);
    for _ in 0..3 {
        w.h.join_queue
            .handle(&as_user_from(&buyer(), "198.51.100.9"), QueueScope::Global)
            .await
            .unwrap();
    }
    let e =
        w.h.join_queue
            .handle(&as_user_from(&buyer(), "198.51.100.9"), QueueScope::Global)
            .await
            .unwrap_err();
    assert_limited(&e);
    w.h.join_queue
        .handle(&as_user_from(&buyer(), "198.51.100.10"), QueueScope::Global)
        .await
        .unwrap();
}

fn keyed(mut c: Context, key: &str) -> Context {
    c.idempotency_key = Some(key.into());
    c
}

#[tokio::test]
async fn orders_are_limited_per_user_and_per_address() {
    let mut s = settings();
    s.orders.order_per_user.limit = 3;
    s.orders.order_per_addr.limit = 5;
    let w = world_with(s);
    let ev = w.onsale_event(100, 1).await;
    let req = PlaceOrderRequest {
        event_id: ev.id,
        qty: 1,
    };
    let u = buyer();
    w.admit(&u, QueueScope::Global).await;
    for i in 0..3 {
        let c = keyed(as_user_from(&u, "192.0.2.50"), &format!("k{i}"));
        let _ = w.h.place_order.handle(&c, req).await;
    }
    let c = keyed(as_user_from(&u, "192.0.2.51"), "k9");
    assert_limited(&w.h.place_order.handle(&c, req).await.unwrap_err());
    // Two more users from the first address reach its limit of five.
    for i in 0..2 {
        let c = keyed(as_user_from(&buyer(), "192.0.2.50"), &format!("o{i}"));
        let e = w.h.place_order.handle(&c, req).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Forbidden, "not admitted, but counted");
    }
    let c = keyed(as_user_from(&buyer(), "192.0.2.50"), "o9");
    assert_limited(&w.h.place_order.handle(&c, req).await.unwrap_err());
}

#[tokio::test]
async fn refused_orders_are_not_kept_under_their_key() {
    let w = world();
    let ev = w.onsale_event(1, 1).await;
    let (first, second) = (buyer(), buyer());
    w.hold(&first, &ev, 1).await;
    w.admit(&second, QueueScope::Global).await;
    let req = PlaceOrderRequest {
        event_id: ev.id,
        qty: 1,
    };
    let c = keyed(as_user(&second), "retry-me");
    let e = w.h.place_order.handle(&c, req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::SoldOut);
    assert_eq!(
        w.shop
            .keyed(second.user, "retry-me", w.now())
            .await
            .unwrap(),
        None,
        "a refusal is not an idempotency record"
    );
    // The same key works once stock is back: the refusal did not stick to it.
    w.advance(301_000);
    w.expire_holds().await;
    // (The admission expired meanwhile too; a fresh one.)
    w.admit(&second, QueueScope::Global).await;
    let placed = w.h.place_order.handle(&c, req).await.unwrap();
    assert!(!placed.replayed);
}

#[tokio::test]
async fn payment_requests_are_limited_per_user_and_per_address() {
    let mut s = settings();
    s.payments.payment_per_user.limit = 2;
    s.payments.payment_per_addr.limit = 3;
    let w = world_with(s);
    let ev = w.onsale_event(10, 1).await;
    let u = buyer();
    let o = w.hold(&u, &ev, 1).await;
    let req = || PaymentRequest {
        order_id: o.id,
        method: "MOCK".into(),
    };
    for _ in 0..2 {
        w.h.request_payment
            .handle(&as_user_from(&u, "198.51.100.20"), req())
            .await
            .unwrap();
    }
    let e =
        w.h.request_payment
            .handle(&as_user_from(&u, "198.51.100.21"), req())
            .await
            .unwrap_err();
    assert_limited(&e);
    // The address's third request (another user's) is its last.
    let other = buyer();
    let e =
        w.h.request_payment
            .handle(&as_user_from(&other, "198.51.100.20"), req())
            .await
            .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e =
        w.h.request_payment
            .handle(&as_user_from(&buyer(), "198.51.100.20"), req())
            .await
            .unwrap_err();
    assert_limited(&e);
}

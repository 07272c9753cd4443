//! Socket.IO `/queue` with a real client library (rust_socketio) against the running system:
//! token auth on connect, legacy events, and READY pushed without polling.

mod common;

use common::{flash_up, stop};
use flash::up::Running;
use flash_host_testkit::Http;
use flash_host_testkit::socket::{
    connect, connect_refused, expect, expect_each, expect_ready, within_half_a_second,
};
use serde_json::{Value, json};
use std::time::Duration;

/// The system on an ephemeral port with capacity 1 and a position refresh so slow (60 s) that a
/// READY arriving within seconds can only have been pushed.
async fn system() -> Running {
    system_with(&[]).await
}

/// [`system`] and its base URL.
async fn up() -> (Running, String) {
    let sys = system().await;
    let base = format!("http://{}", sys.addr);
    (sys, base)
}

async fn system_with(extra: &[&str]) -> Running {
    system_refreshing("60000", extra).await
}

/// [`system_with`], positions refreshed every `refresh_ms`.
async fn system_refreshing(refresh_ms: &str, extra: &[&str]) -> Running {
    let mut args = vec![
        "--demo-users",
        "3",
        "--queue-ready-capacity",
        "1",
        "--queue-ws-refresh-ms",
        refresh_ms,
        "--queue-promotion-interval-ms",
        "60000",
    ];
    args.extend_from_slice(extra);
    flash_up(&args).await
}

/// [`system`] with an admin, and an ONSALE event of `total` tickets, one per buyer: the system,
/// its base URL, a client, and (admin token, event id).
async fn on_sale(total: i64) -> (Running, String, Http, (String, String)) {
    let sys = system_with(&["--admin-register-secret", flash_host_testkit::ADMIN_SECRET]).await;
    let base = format!("http://{}", sys.addr);
    let http = Http::new();
    let sale = http.onsale_event(&base, &base, total, 1).await;
    (sys, base, http, sale)
}

async fn login(base: &str, user: &str) -> String {
    login_pair(base, user).await.0
}

/// (access token, refresh token) of a fresh session.
async fn login_pair(base: &str, user: &str) -> (String, String) {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({"userId": user, "password": "testtest"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = |k: &str| body[k].as_str().unwrap().to_owned();
    (token("accessToken"), token("refreshToken"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_buyer_is_told_they_are_ready_the_moment_a_slot_frees() {
    let (sys, base) = up().await;
    let (first, second) = (
        login(&base, "test0000").await,
        login(&base, "test0001").await,
    );

    let (a, mut a_rx) = connect(&base, Some(&first)).await;
    let cfg = expect(&mut a_rx, "queue:config", |n, _| n == "queue:config").await;
    assert_eq!(cfg["readyCapacity"], 1);
    a.emit("queue/join", json!({"eventId": "__global__"}))
        .await
        .unwrap();
    // The first buyer is admitted as soon as they join (the join kicks the promoter). The READY
    // comes before `queue:joined` when the promoter ran before the join read the ticket, after
    // it (pushed) when it ran later: either order is right.
    let [joined, ready] = expect_each(
        &mut a_rx,
        "queue:joined and READY for the first buyer",
        [&|n, _| n == "queue:joined", &|n, v| {
            n == "queue:update" && v["state"] == "READY"
        }],
    )
    .await;
    let a_ticket = joined["ticketId"].as_str().unwrap().to_owned();
    assert!(ready["gateToken"].as_str().is_some_and(|g| !g.is_empty()));

    let (b, mut b_rx) = connect(&base, Some(&second)).await;
    // The namespace is joined once the server has greeted the socket.
    expect(&mut b_rx, "queue:config", |n, _| n == "queue:config").await;
    b.emit("queue/join", json!({})).await.unwrap();
    let update = expect(&mut b_rx, "queue:update", |n, _| n == "queue:update").await;
    assert_eq!(update["state"], "QUEUED");
    assert_eq!(update["position"], 1);
    assert_eq!(update["eventId"], "__global__");
    assert_eq!(update["readyCapacity"], 1);
    assert!(update["queueSize"].as_u64().is_some());
    expect(&mut b_rx, "queue:summary", |n, v| {
        n == "queue:summary" && v["eventId"] == "__global__"
    })
    .await;
    expect(&mut b_rx, "queue:joined", |n, _| n == "queue:joined").await;

    // The first buyer gives up their slot; the second hears of their admission at once,
    // although their periodic refresh is a minute away.
    a.emit("queue/leave", json!({"clearTicket": true}))
        .await
        .unwrap();
    expect(&mut a_rx, "queue:left", |n, _| n == "queue:left").await;
    let pushed = expect_ready(&mut b_rx, "READY pushed to the second buyer").await;
    assert_ne!(pushed["ticketId"].as_str().unwrap(), a_ticket);

    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
    stop(sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyone_waiting_is_told_the_moment_the_last_ticket_is_held() {
    let (sys, base, http, (_admin, event)) = on_sale(1).await;
    let first = login(&base, "test0000").await;
    let ticket = http.ticket(&base, &first, &event).await;
    http.admitted(&base, &ticket).await;

    // The second buyer waits behind the only admission (capacity 1).
    let (b, mut b_rx) = connect(&base, Some(&login(&base, "test0001").await)).await;
    expect(&mut b_rx, "queue:config", |n, _| n == "queue:config").await;
    b.emit("queue/join", json!({"eventId": event}))
        .await
        .unwrap();
    let update = expect(&mut b_rx, "queue:update", |n, _| n == "queue:update").await;
    assert_eq!(
        (update["state"].as_str(), update["position"].as_u64()),
        (Some("QUEUED"), Some(1))
    );
    expect(&mut b_rx, "queue:joined", |n, _| n == "queue:joined").await;

    // The first buyer holds the last ticket: the line closes and the waiting socket hears it
    // although its refresh and the promotion period are a minute away.
    let (s, o) = http
        .order(&base, &first, &event, 1, &[("Idempotency-Key", "k")])
        .await;
    assert_eq!(s, 201, "order: {o}");
    let pushed = expect(&mut b_rx, "SOLD_OUT pushed to the waiting buyer", |n, v| {
        n == "queue:update" && v["state"] == "SOLD_OUT"
    })
    .await;
    assert_eq!(pushed["eventId"], event.as_str());
    assert!(pushed["position"].is_null() && pushed["estimatedWaitSeconds"].is_null());
    assert_eq!(
        pushed["queueLength"], 1,
        "the line is kept in case stock returns"
    );

    b.disconnect().await.unwrap();
    stop(sys).await;
}

/// Waits (with the deadline) for the next `queue:update` and returns its (ticket id, state).
async fn next_update(rx: &mut flash_host_testkit::socket::Events, what: &str) -> (String, String) {
    let v = expect(rx, what, |n, _| n == "queue:update").await;
    let field = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    (field("ticketId"), field("state"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_in_one_room_each_get_their_own_refresh_until_their_ticket_is_finished() {
    // Positions refresh every 200 ms, by one refresher for the event's room.
    let sys = system_refreshing(
        "200",
        &["--admin-register-secret", flash_host_testkit::ADMIN_SECRET],
    )
    .await;
    let base = format!("http://{}", sys.addr);
    let http = Http::new();
    let (_admin, event) = http.onsale_event(&base, &base, 10, 1).await;
    // The first buyer holds the only admission before their socket joins: every update it
    // gets after `queue:joined` is a refresh, not the push of that admission.
    let first = login(&base, "test0000").await;
    let a_ticket = http.ticket(&base, &first, &event).await;
    http.admitted(&base, &a_ticket).await;

    let mut joined = Vec::new();
    for token in [first.clone(), login(&base, "test0001").await] {
        let (c, mut rx) = connect(&base, Some(&token)).await;
        expect(&mut rx, "queue:config", |n, _| n == "queue:config").await;
        c.emit("queue/join", json!({"eventId": event}))
            .await
            .unwrap();
        let j = expect(&mut rx, "queue:joined", |n, _| n == "queue:joined").await;
        joined.push((c, rx, j["ticketId"].as_str().unwrap().to_owned()));
    }
    let [(a, mut a_rx, a_joined), (b, mut b_rx, b_ticket)] =
        <[_; 2]>::try_from(joined).ok().unwrap();
    assert_eq!(a_joined, a_ticket);

    // Each socket of the room is refreshed with its own ticket.
    assert_eq!(
        next_update(&mut a_rx, "the first buyer's refresh").await,
        (a_ticket.clone(), "READY".to_owned())
    );
    assert_eq!(
        next_update(&mut b_rx, "the second buyer's refresh").await,
        (b_ticket.clone(), "QUEUED".to_owned())
    );

    // The first buyer orders: their ticket is finished, and its last update says so.
    let (s, o) = http
        .order(&base, &first, &event, 1, &[("Idempotency-Key", "k")])
        .await;
    assert_eq!(s, 201, "order: {o}");
    loop {
        let (ticket, state) = next_update(&mut a_rx, "the first buyer's last update").await;
        assert_eq!(ticket, a_ticket);
        if state == "ORDERED" {
            break;
        }
        assert_eq!(state, "READY");
    }
    // The second buyer goes on being refreshed (four updates: at most one is the push of their
    // admission and one from the pass that finished the first, so two later passes)…
    for _ in 0..4 {
        let (ticket, _) = next_update(&mut b_rx, "the second buyer's refreshes").await;
        assert_eq!(ticket, b_ticket);
    }
    // …and in none of them was the finished socket told anything.
    while let Ok((name, v)) = a_rx.try_recv() {
        assert_ne!(name, "queue:update", "a finished ticket was refreshed: {v}");
    }

    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
    stop(sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_line_opens_at_its_start_not_a_promotion_period_later() {
    let (sys, base, http, (admin, event)) = on_sale(10).await;
    let now = flash_core::ports::Clock::now(&flash_runtime::clock::SystemClock);
    // A pre-queue open since a minute ago, the sale two seconds away; promotion runs every
    // minute, so only the start itself can open the line within the wait below.
    let starts = now.plus(Duration::from_secs(2));
    http.prequeue_event(
        &base,
        &admin,
        &event,
        now,
        starts,
        Duration::from_secs(3600),
    )
    .await;

    let (b, mut b_rx) = connect(&base, Some(&login(&base, "test0001").await)).await;
    expect(&mut b_rx, "queue:config", |n, _| n == "queue:config").await;
    b.emit("queue/join", json!({"eventId": event}))
        .await
        .unwrap();
    let waiting = expect(&mut b_rx, "queue:update", |n, _| n == "queue:update").await;
    assert_eq!(waiting["state"], "PREQUEUE", "{waiting}");
    assert_eq!(waiting["startsAt"], starts.to_iso().as_str());
    expect(&mut b_rx, "READY pushed once the sale starts", |n, v| {
        n == "queue:update" && v["state"] == "READY"
    })
    .await;
    b.disconnect().await.unwrap();
    stop(sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_token_is_refused() {
    let (sys, base) = up().await;
    for token in [None, Some("not-a-jwt")] {
        let (c, mut rx) = connect_refused(&base, token).await;
        // Nothing of the namespace reaches a refused socket.
        let _ = c.emit("queue/join", json!({})).await;
        let got = within_half_a_second(&mut rx, |n| n.starts_with("queue:")).await;
        assert!(got.is_none(), "a refused socket received {got:?}");
        let _ = c.disconnect().await;
    }
    stop(sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_string_is_refused_unless_allowed() {
    let (sys, base) = up().await;
    let token = login(&base, "test0000").await;
    // SOCKET_TOKEN_IN_QUERY defaults to false: the token would land in proxy logs.
    let (c, _) = connect_refused(&format!("{base}/?token={token}"), None).await;
    let _ = c.disconnect().await;
    stop(sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_when_its_session_is_logged_out() {
    let (sys, base) = up().await;
    let (access, refresh) = login_pair(&base, "test0000").await;
    let (other, _) = login_pair(&base, "test0001").await;
    let (a, mut a_rx) = connect(&base, Some(&access)).await;
    expect(&mut a_rx, "queue:config", |n, _| n == "queue:config").await;
    let (b, mut b_rx) = connect(&base, Some(&other)).await;
    expect(&mut b_rx, "queue:config", |n, _| n == "queue:config").await;

    let status = reqwest::Client::new()
        .post(format!("{base}/auth/logout"))
        .json(&json!({ "refreshToken": refresh }))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "logout answered {status}");

    let told = expect(&mut a_rx, "the logged-out socket told", |n, _| {
        n == "queue:error"
    })
    .await;
    assert_eq!(told["message"], "Unauthorized");
    // The server closed the namespace: what the socket asks is no longer answered, while the
    // other user's socket still is.
    let _ = a.emit("queue/join", json!({})).await;
    b.emit("queue/join", json!({})).await.unwrap();
    expect(&mut b_rx, "queue:joined for the other user", |n, _| {
        n == "queue:joined"
    })
    .await;
    let late = within_half_a_second(&mut a_rx, |n| n == "queue:joined").await;
    assert!(late.is_none(), "a logged-out socket still joined the queue");
    let _ = a.disconnect().await;
    let _ = b.disconnect().await;
    stop(sys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_closed_when_its_access_token_expires() {
    // Access tokens of 2 s: the socket outlives its token within the test's deadline.
    let sys = system_with(&["--jwt-access-exp", "2"]).await;
    let base = format!("http://{}", sys.addr);
    let (c, mut rx) = connect(&base, Some(&login(&base, "test0000").await)).await;
    expect(&mut rx, "queue:config", |n, _| n == "queue:config").await;
    let told = expect(&mut rx, "the expired socket told", |n, _| {
        n == "queue:error"
    })
    .await;
    assert_eq!(told["message"], "Unauthorized");
    let _ = c.disconnect().await;
    stop(sys).await;
}

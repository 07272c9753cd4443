//! Socket.IO `/queue` with a real client library (rust_socketio) against the running system:
//! token auth on connect, legacy events, and READY pushed without polling.

use flash::up::{Running, UpConfig, start};
use flash_runtime::config::parse_args_ignoring_env;
use flash_runtime::shutdown::Shutdown;
use futures::FutureExt;
use rust_socketio::Payload;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// The system on an ephemeral port with capacity 1 and a position refresh so slow (60 s) that a
/// READY arriving within seconds can only have been pushed.
async fn system() -> Running {
    let cfg: UpConfig = parse_args_ignoring_env(&[
        "--port",
        "0",
        "--demo-users",
        "3",
        "--bcrypt-cost",
        "4",
        "--queue-ready-capacity",
        "1",
        "--queue-ws-refresh-ms",
        "60000",
        "--queue-promotion-interval-ms",
        "60000",
    ])
    .expect("test configuration parses");
    start(cfg, Shutdown::new()).await.expect("system starts")
}

async fn login(base: &str, user: &str) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({"userId": user, "password": "testtest"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["accessToken"].as_str().unwrap().to_owned()
}

/// Every event the socket receives, as (name, first argument).
async fn connect(
    base: &str,
    token: Option<&str>,
) -> (Client, mpsc::UnboundedReceiver<(String, Value)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut builder = ClientBuilder::new(base).namespace("/queue");
    if let Some(t) = token {
        builder = builder.auth(json!({ "token": t }));
    }
    for name in [
        "queue:config",
        "queue:update",
        "queue:summary",
        "queue:joined",
        "queue:left",
        "queue:error",
        "error",
    ] {
        let tx = tx.clone();
        builder = builder.on(name, move |payload: Payload, _c: Client| {
            let tx = tx.clone();
            let name = name.to_owned();
            async move {
                let v = match payload {
                    Payload::Text(mut values) if !values.is_empty() => values.remove(0),
                    Payload::Text(_) => Value::Null,
                    #[allow(deprecated)]
                    Payload::String(s) => Value::String(s),
                    Payload::Binary(_) => Value::Null,
                };
                let _ = tx.send((name, v));
            }
            .boxed()
        });
    }
    let client = builder.connect().await.expect("engine.io connection");
    (client, rx)
}

/// Waits (with a deadline, no sleeps) for the first event matching `pred`.
async fn expect(
    rx: &mut mpsc::UnboundedReceiver<(String, Value)>,
    what: &str,
    pred: impl Fn(&str, &Value) -> bool,
) -> Value {
    // Generous: CI machines are small and busy; a pushed READY normally arrives in milliseconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((name, v))) if pred(&name, &v) => return v,
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_buyer_is_told_they_are_ready_the_moment_a_slot_frees() {
    let sys = system().await;
    let base = format!("http://{}", sys.addr);
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
    let joined = expect(&mut a_rx, "queue:joined", |n, _| n == "queue:joined").await;
    let a_ticket = joined["ticketId"].as_str().unwrap().to_owned();
    // The first buyer is admitted as soon as they join (the join kicks the promoter).
    let ready = expect(&mut a_rx, "READY for the first buyer", |n, v| {
        n == "queue:update" && v["state"] == "READY"
    })
    .await;
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
    let pushed = expect(&mut b_rx, "READY pushed to the second buyer", |n, v| {
        n == "queue:update" && v["state"] == "READY"
    })
    .await;
    assert!(
        pushed["gateToken"]
            .as_str()
            .is_some_and(|g| g.starts_with("g1."))
    );
    assert_ne!(pushed["ticketId"].as_str().unwrap(), a_ticket);

    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
    sys.shutdown.trigger();
    let _ = sys.done.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_without_a_valid_token_is_refused() {
    let sys = system().await;
    let base = format!("http://{}", sys.addr);
    for token in [None, Some("not-a-jwt")] {
        let (c, mut rx) = connect(&base, token).await;
        let err = expect(&mut rx, "connect_error", |n, _| n == "error").await;
        assert!(err.to_string().contains("Unauthorized"), "got {err}");
        // Nothing of the namespace reaches a refused socket.
        let _ = c.emit("queue/join", json!({})).await;
        let got = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                match rx.recv().await {
                    Some((n, _)) if n.starts_with("queue:") => return Some(n),
                    Some(_) => continue,
                    None => return None,
                }
            }
        })
        .await;
        assert!(
            !matches!(got, Ok(Some(_))),
            "a refused socket received {got:?}"
        );
        let _ = c.disconnect().await;
    }
    sys.shutdown.trigger();
    let _ = sys.done.await;
}

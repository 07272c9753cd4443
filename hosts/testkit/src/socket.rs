//! A Socket.IO client of the `/queue` namespace (rust_socketio) that records every legacy event
//! it receives, and waits on those events, never on a time: the deadline is only the safety net.

use futures::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a socket received, as (event name, first argument), in order.
pub type Events = mpsc::UnboundedReceiver<(String, Value)>;

/// Every event the socket receives, as (name, first argument).
pub async fn connect(base: &str, token: Option<&str>) -> (Client, Events) {
    let (tx, rx) = mpsc::unbounded_channel();
    // WebSocket from the start, as the rehearsal's clients: with polling first, an emit that
    // races rust_socketio's transport upgrade can find the transport closed (rust-socketio
    // #502). The page test covers the polling start with the real JavaScript client.
    let mut builder = ClientBuilder::new(base)
        .namespace("/queue")
        .transport_type(TransportType::Websocket);
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

/// A connection the server refuses: its `connect_error` says Unauthorized.
pub async fn connect_refused(base: &str, token: Option<&str>) -> (Client, Events) {
    let (c, mut rx) = connect(base, token).await;
    let err = expect(&mut rx, "connect_error", |n, _| n == "error").await;
    assert!(err.to_string().contains("Unauthorized"), "got {err}");
    (c, rx)
}

/// Waits (with a deadline, no sleeps) for the first event matching `pred`.
pub async fn expect(rx: &mut Events, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
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

pub type Matcher<'a> = &'a dyn Fn(&str, &Value) -> bool;

/// Waits (with the same deadline) until every matcher has matched one event, in any order, and
/// returns the first event each matched.
pub async fn expect_each<const N: usize>(
    rx: &mut Events,
    what: &str,
    matchers: [Matcher<'_>; N],
) -> [Value; N] {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut found: [Option<Value>; N] = std::array::from_fn(|_| None);
    while found.iter().any(Option::is_none) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((name, v))) => {
                let hit = (0..N).find(|&i| found[i].is_none() && matchers[i](&name, &v));
                if let Some(i) = hit {
                    found[i] = Some(v);
                }
            }
            Ok(None) | Err(_) => panic!("timed out waiting for {what}"),
        }
    }
    found.map(|v| v.expect("every matcher matched"))
}

/// Waits (with the same deadline) for a `queue:update` pushing READY with a gate token, and
/// returns it.
pub async fn expect_ready(rx: &mut Events, what: &str) -> Value {
    let pushed = expect(rx, what, |n, v| {
        n == "queue:update" && v["state"] == "READY"
    })
    .await;
    assert!(
        pushed["gateToken"]
            .as_str()
            .is_some_and(|g| g.starts_with("g1.")),
        "{what}: {pushed}"
    );
    pushed
}

/// The first event matching `pred` within half a second, if any: for asserting that a socket
/// is not told something (a window, as nothing can signal that an event will never come).
pub async fn within_half_a_second(rx: &mut Events, pred: impl Fn(&str) -> bool) -> Option<String> {
    tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            match rx.recv().await {
                Some((n, _)) if pred(&n) => return Some(n),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
}

//! Socket.IO `/queue` as the web client uses it: connect with the access token (handshake
//! `auth.token`), `queue/join`, then wait for the `queue:update` that carries READY and a gate
//! token. The join payload also names `userId` (the token's `sub`), which legacy servers need.

use futures::FutureExt;
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the server said, in arrival order.
#[derive(Debug, Clone)]
pub enum Heard {
    Config(Value),
    Update(Value),
    Joined(Value),
    Error(String),
    /// `connect_error` or a transport failure.
    Refused(String),
}

/// A connected socket; dropping it disconnects (so a deadline never leaks connections).
pub struct QueueSocket {
    client: Option<Client>,
    pub events: mpsc::UnboundedReceiver<Heard>,
}

impl Drop for QueueSocket {
    fn drop(&mut self) {
        if let Some(c) = self.client.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = c.disconnect().await;
            });
        }
    }
}

fn first_arg(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut values) if !values.is_empty() => values.remove(0),
        Payload::Text(_) | Payload::Binary(_) => Value::Null,
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
    }
}

impl QueueSocket {
    pub async fn connect(base: &str, token: &str) -> Result<QueueSocket, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut builder = ClientBuilder::new(base)
            .namespace("/queue")
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .auth(json!({ "token": token }));
        for name in [
            "queue:config",
            "queue:update",
            "queue:joined",
            "queue:error",
            "error",
        ] {
            let tx = tx.clone();
            builder = builder.on(name, move |payload: Payload, _c: Client| {
                let tx = tx.clone();
                async move {
                    let v = first_arg(payload);
                    let heard = match name {
                        "queue:config" => Heard::Config(v),
                        "queue:update" => Heard::Update(v),
                        "queue:joined" => Heard::Joined(v),
                        "queue:error" => Heard::Error(crate::client::message_of(&v)),
                        _ => Heard::Refused(match v {
                            Value::String(s) => s,
                            other => crate::client::message_of(&other),
                        }),
                    };
                    let _ = tx.send(heard);
                }
                .boxed()
            });
        }
        // The Debug form names the engine.io cause the Display form hides.
        let client = builder.connect().await.map_err(|e| format!("{e:?}"))?;
        Ok(QueueSocket {
            client: Some(client),
            events: rx,
        })
    }

    pub async fn join(&self, event_id: &str, user_id: Option<&str>) -> Result<(), String> {
        let Some(c) = &self.client else {
            return Err("socket closed".into());
        };
        let mut payload = json!({ "eventId": event_id });
        if let Some(u) = user_id {
            payload["userId"] = json!(u);
        }
        c.emit("queue/join", payload)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.disconnect().await;
        }
    }
}

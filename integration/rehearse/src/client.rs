//! HTTP calls to the gateway and the api: bounded concurrency, timing into the recorder, the
//! retry policy for refusals (429/503) and lost requests, and tolerant reading of legacy bodies.

use crate::stats::{Recorder, Step};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The legacy error text: `message` as a string, or its array joined with "; ".
    pub fn message(&self) -> String {
        message_of(&self.body)
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.body.get(field).and_then(Value::as_str)
    }
}

pub fn message_of(body: &Value) -> String {
    match body.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
            .collect::<Vec<_>>()
            .join("; "),
        Some(other) => other.to_string(),
        None => match body {
            Value::String(s) => s.chars().take(160).collect(),
            Value::Null => String::new(),
            other => other.to_string().chars().take(160).collect(),
        },
    }
}

/// A request that got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    /// `transport` (connection, timeout) or the HTTP status of the last refusal.
    pub status: String,
    pub message: String,
}

/// What may be retried when the request is lost in transit or the server fails (5xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Safe to send again (reads; `POST /orders` with the same Idempotency-Key; login).
    Idempotent,
    /// Sent again only when the server refused it outright (429, 503).
    RefusalsOnly,
}

/// One request to send (again, on a retry).
pub struct Call<'a> {
    pub step: Step,
    pub method: Method,
    pub url: String,
    pub token: Option<&'a str>,
    pub body: Option<&'a Value>,
    pub headers: Vec<(&'static str, String)>,
    pub retry: Retry,
}

impl<'a> Call<'a> {
    pub fn get(step: Step, url: String, token: Option<&'a str>) -> Self {
        Call {
            step,
            method: Method::GET,
            url,
            token,
            body: None,
            headers: Vec::new(),
            retry: Retry::Idempotent,
        }
    }

    pub fn post(step: Step, url: String, token: Option<&'a str>, body: &'a Value) -> Self {
        Call {
            step,
            method: Method::POST,
            url,
            token,
            body: Some(body),
            headers: Vec::new(),
            retry: Retry::RefusalsOnly,
        }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub gateway: String,
    pub api: String,
    limit: Arc<Semaphore>,
    handshakes: Arc<Semaphore>,
    pub rec: Arc<Recorder>,
    retries: u32,
}

const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

impl Api {
    pub fn new(
        gateway: String,
        api: String,
        concurrency: usize,
        handshakes: usize,
        timeout: Duration,
        retries: u32,
        rec: Arc<Recorder>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .build()?;
        Ok(Api {
            http,
            gateway,
            api,
            limit: Arc::new(Semaphore::new(concurrency)),
            handshakes: Arc::new(Semaphore::new(handshakes.max(1))),
            rec,
            retries,
        })
    }

    /// A slot for one Socket.IO handshake. Handshakes have their own, smaller bound: thousands
    /// at once only overflow the server's accept backlog and time out handshakes.
    pub async fn handshake_permit(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.handshakes.acquire().await.ok()
    }

    pub fn gw(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }

    pub fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    fn build(&self, c: &Call<'_>) -> RequestBuilder {
        let mut r = self.http.request(c.method.clone(), &c.url);
        if let Some(t) = c.token {
            r = r.bearer_auth(t);
        }
        for (k, v) in &c.headers {
            r = r.header(*k, v);
        }
        if let Some(b) = c.body {
            r = r.json(b);
        }
        r
    }

    /// Sends the call, retrying per its policy; every answered attempt is timed under its step.
    /// Any HTTP answer is returned (the caller judges it); `Err` only when none usable came.
    pub async fn send(&self, c: Call<'_>) -> Result<Reply, Failed> {
        let mut attempt = 0u32;
        loop {
            let outcome = {
                let _permit = self.limit.acquire().await.map_err(|_| Failed {
                    status: "transport".into(),
                    message: "client closed".into(),
                })?;
                let t0 = Instant::now();
                self.rec.request();
                let sent = self.build(&c).send().await;
                match sent {
                    Ok(resp) => {
                        let status = resp.status();
                        let retry_after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        let bytes = resp.bytes().await;
                        self.rec.time(c.step, t0.elapsed());
                        match bytes {
                            Ok(b) => {
                                let body = if b.is_empty() {
                                    Value::Null
                                } else {
                                    serde_json::from_slice(&b).unwrap_or_else(|_| {
                                        Value::String(String::from_utf8_lossy(&b).into_owned())
                                    })
                                };
                                Ok((Reply { status, body }, retry_after))
                            }
                            Err(e) => Err(transport(&e)),
                        }
                    }
                    Err(e) => Err(transport(&e)),
                }
            };
            let (pause, failure) = match outcome {
                Ok((reply, retry_after)) => {
                    let refused = reply.status == StatusCode::TOO_MANY_REQUESTS
                        || reply.status == StatusCode::SERVICE_UNAVAILABLE;
                    let server_failed =
                        reply.status.is_server_error() && c.retry == Retry::Idempotent;
                    if attempt >= self.retries || !(refused || server_failed) {
                        return Ok(reply);
                    }
                    let f = Failed {
                        status: reply.status.as_u16().to_string(),
                        message: reply.message(),
                    };
                    (retry_after.unwrap_or_else(|| backoff(attempt)), f)
                }
                Err(f) => {
                    if attempt >= self.retries || c.retry != Retry::Idempotent {
                        return Err(f);
                    }
                    (backoff(attempt), f)
                }
            };
            self.rec.retry(c.step, failure.status, failure.message);
            tokio::time::sleep(pause.min(MAX_RETRY_PAUSE)).await;
            attempt += 1;
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6)))
}

fn transport(e: &reqwest::Error) -> Failed {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection refused or reset"
    } else if e.is_body() || e.is_decode() {
        "response body lost"
    } else {
        "request failed"
    };
    Failed {
        status: "transport".into(),
        message: kind.into(),
    }
}

/// The JWT `sub` claim (user UUID), read without verification as the legacy web does; the
/// legacy Socket.IO join needs it in its payload.
pub fn token_subject(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_messages_are_read_as_text_or_joined_arrays() {
        assert_eq!(
            message_of(&json!({"message": "Not enough tickets remaining"})),
            "Not enough tickets remaining"
        );
        assert_eq!(
            message_of(&json!({"message": ["eventId must be a UUID", "qty must be positive"]})),
            "eventId must be a UUID; qty must be positive"
        );
        assert_eq!(message_of(&json!("Bad Gateway")), "Bad Gateway");
    }

    #[test]
    fn the_subject_is_read_from_an_unverified_jwt() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"sub":"5d0c","userId":"test0001"}"#);
        assert_eq!(
            token_subject(&format!("h.{payload}.s")).as_deref(),
            Some("5d0c")
        );
        assert_eq!(token_subject("not-a-jwt"), None);
    }
}

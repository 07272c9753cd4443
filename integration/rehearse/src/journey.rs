//! One buyer's journey: (log in) → queue → READY → enter → order → pay → PAID or FAIL (retried).
//!
//! Every request is timed by the [`Api`]; every unexpected answer is recorded once as an error of
//! its step. Sold out and the per-user limit are business outcomes, not errors. What the buyer
//! observed (admissions, orders) is kept for the audit.

use crate::client::{Api, Call, Reply, Retry, token_subject};
use crate::config::{Plan, QueueMode, Range, WaitMode};
use crate::socket::{Heard, QueueSocket};
use crate::stats::Step;
use rand::Rng;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const GLOBAL_QUEUE: &str = "__global__";
/// The stage of a buyer whose journey has not started.
pub const NOT_ARRIVED: &str = "not arrived";

/// An admission the buyer saw: READY at `ready_at`, its slot surely still taken until
/// `released_at` (when the order was sent; `ready_at` when none was).
#[derive(Debug, Clone)]
pub struct Admission {
    pub scope: String,
    pub ticket: String,
    pub ready_at: Instant,
    pub released_at: Instant,
}

/// An order the buyer placed (the server's answer to `POST /orders`).
#[derive(Debug, Clone)]
pub struct OrderSeen {
    pub id: String,
    pub event: String,
    pub qty: u32,
    pub payment_requested: bool,
    /// The last status the buyer read.
    pub status: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    Paid,
    /// Refused at the order with `Not enough tickets remaining`.
    SoldOut,
    /// Told SOLD_OUT while waiting in line (and walked away).
    ToldSoldOut,
    LimitReached,
    /// Every payment attempt ended FAIL.
    PaymentFailed,
    /// Stopped by an unexpected answer at this step.
    Failed(Step),
    /// Still under way at the deadline, at this stage.
    Unfinished(&'static str),
}

#[derive(Debug, Clone)]
pub struct Buyer {
    pub index: u32,
    pub login: String,
    pub token: Option<String>,
    pub subject: Option<String>,
    pub event: String,
    pub stage: &'static str,
    pub admissions: Vec<Admission>,
    pub orders: Vec<OrderSeen>,
    pub outcome: Option<Outcome>,
}

impl Buyer {
    pub fn new(index: u32, login: String, event: String) -> Self {
        Buyer {
            index,
            login,
            token: None,
            subject: None,
            event,
            stage: NOT_ARRIVED,
            admissions: Vec::new(),
            orders: Vec::new(),
            outcome: None,
        }
    }
}

fn think(range: Range<Duration>) -> Duration {
    if range.max.is_zero() {
        return Duration::ZERO;
    }
    let (a, b) = (range.min.as_micros() as u64, range.max.as_micros() as u64);
    Duration::from_micros(rand::rng().random_range(a..=b))
}

async fn pause(range: Range<Duration>) {
    let d = think(range);
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

fn jitter(d: Duration) -> Duration {
    let us = d.as_micros() as u64;
    if us < 10 {
        return d;
    }
    Duration::from_micros(rand::rng().random_range(us * 8 / 10..=us * 12 / 10))
}

/// How many periods of `every` fit in `total` (at least one): the bound of a polling loop.
fn polls(total: Duration, every: Duration) -> u64 {
    let every = every.max(Duration::from_millis(1));
    (total.as_millis() / every.as_millis()).clamp(1, 10_000_000) as u64
}

fn record_failure(api: &Api, step: Step, r: &Reply) {
    api.rec
        .error(step, r.status.as_u16().to_string(), r.message());
}

/// `POST /auth/register`; an existing account (409) is fine.
pub async fn register(api: &Api, plan: &Plan, b: &Buyer) -> bool {
    let body = json!({"userId": b.login, "password": plan.password});
    match api
        .send(Call::post(
            Step::Register,
            api.gw("/auth/register"),
            None,
            &body,
        ))
        .await
    {
        Ok(r) if r.ok() || r.status.as_u16() == 409 => true,
        Ok(r) => {
            record_failure(api, Step::Register, &r);
            false
        }
        Err(f) => {
            api.rec.error(Step::Register, f.status, f.message);
            false
        }
    }
}

/// `POST /auth/login`; keeps the access token and its subject.
pub async fn login(api: &Api, plan: &Plan, b: &mut Buyer) -> bool {
    let body = json!({"userId": b.login, "password": plan.password});
    let call = Call::post(Step::Login, api.gw("/auth/login"), None, &body).retry(Retry::Idempotent);
    match api.send(call).await {
        Ok(r) if r.ok() => match r.str("accessToken") {
            Some(t) => {
                b.subject = token_subject(t);
                b.token = Some(t.to_owned());
                true
            }
            None => {
                api.rec
                    .error(Step::Login, "protocol", "login answer without accessToken");
                false
            }
        },
        Ok(r) => {
            record_failure(api, Step::Login, &r);
            false
        }
        Err(f) => {
            api.rec.error(Step::Login, f.status, f.message);
            false
        }
    }
}

/// Best effort: frees the admission slot a buyer will not use (servers without
/// `POST /queue/leave`, such as legacy ones, answer 404, which is ignored).
async fn leave(api: &Api, token: &str, ticket: &str) {
    let body = json!({"ticketId": ticket});
    let _ = api
        .send(Call::post(
            Step::Leave,
            api.gw("/queue/leave"),
            Some(token),
            &body,
        ))
        .await;
}

pub async fn journey(api: &Api, plan: &Plan, b: &mut Buyer) -> Outcome {
    let arrived = Instant::now();
    let rec = api.rec.clone();
    rec.arrived();
    b.stage = "login";
    if b.token.is_none() && !login(api, plan, b).await {
        return Outcome::Failed(Step::Login);
    }
    let Some(token) = b.token.clone() else {
        return Outcome::Failed(Step::Login);
    };
    let scope = match plan.queue {
        QueueMode::Event => b.event.clone(),
        QueueMode::Global => GLOBAL_QUEUE.to_owned(),
    };

    b.stage = "queue";
    let waited = match plan.wait {
        WaitMode::Socket => wait_by_socket(api, plan, b, &token, &scope).await,
        WaitMode::Poll => wait_by_polling(api, plan, b, &token, &scope).await,
    };
    let (ticket, gate) = match waited {
        Ok(x) => x,
        Err(outcome) => {
            if b.stage == "queued" {
                rec.gave_up_waiting();
            }
            return outcome;
        }
    };
    let ready_at = Instant::now();
    rec.admitted(ready_at);
    b.admissions.push(Admission {
        scope,
        ticket: ticket.clone(),
        ready_at,
        released_at: ready_at,
    });

    pause(plan.think).await;
    b.stage = "enter";
    let body = json!({"ticketId": ticket, "gateToken": gate});
    match api
        .send(Call::post(
            Step::Enter,
            api.gw("/queue/enter"),
            Some(&token),
            &body,
        ))
        .await
    {
        Ok(r) if r.ok() => {}
        Ok(r) => {
            record_failure(api, Step::Enter, &r);
            leave(api, &token, &ticket).await;
            return Outcome::Failed(Step::Enter);
        }
        Err(f) => {
            rec.error(Step::Enter, f.status, f.message);
            leave(api, &token, &ticket).await;
            return Outcome::Failed(Step::Enter);
        }
    }

    pause(plan.think).await;
    b.stage = "order";
    let qty = if plan.qty.min == plan.qty.max {
        plan.qty.min
    } else {
        rand::rng().random_range(plan.qty.min..=plan.qty.max)
    };
    let body = json!({"event_id": b.event, "qty": qty});
    if let Some(a) = b.admissions.last_mut() {
        a.released_at = Instant::now();
    }
    let call = Call::post(Step::Order, api.api_url("/orders"), Some(&token), &body)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("X-Gate-Token", gate.clone())
        .retry(Retry::Idempotent);
    let order_id = match api.send(call).await {
        Ok(r) if r.ok() => match r.str("orderId").or_else(|| r.str("id")) {
            Some(id) => {
                let id = id.to_owned();
                b.orders.push(OrderSeen {
                    id: id.clone(),
                    event: b.event.clone(),
                    qty,
                    payment_requested: false,
                    status: r.str("status").unwrap_or("HOLD").to_owned(),
                });
                rec.ordered(qty);
                rec.held();
                id
            }
            None => {
                rec.error(Step::Order, "protocol", "order answer without orderId");
                return Outcome::Failed(Step::Order);
            }
        },
        Ok(r) => {
            let msg = r.message();
            let outcome = if r.status.as_u16() == 400 && msg.contains("Not enough tickets") {
                rec.sold_out_reply();
                Outcome::SoldOut
            } else if r.status.as_u16() == 400 && msg.contains("per-user limit") {
                Outcome::LimitReached
            } else {
                record_failure(api, Step::Order, &r);
                Outcome::Failed(Step::Order)
            };
            leave(api, &token, &ticket).await;
            return outcome;
        }
        Err(f) => {
            rec.error(Step::Order, f.status, f.message);
            leave(api, &token, &ticket).await;
            return Outcome::Failed(Step::Order);
        }
    };

    pause(plan.think).await;
    pay(api, plan, b, &token, &order_id, arrived).await
}

/// `POST /payments`, then `GET /orders/:id` until PAID or FAIL; FAIL is retried up to
/// `payment_retries` times.
async fn pay(
    api: &Api,
    plan: &Plan,
    b: &mut Buyer,
    token: &str,
    order_id: &str,
    arrived: Instant,
) -> Outcome {
    let rec = api.rec.clone();
    let body = json!({"orderId": order_id, "method": plan.payment_method});
    let status_url = api.api_url(&format!("/orders/{order_id}"));
    for attempt in 0..=plan.payment_retries {
        if attempt > 0 {
            tokio::time::sleep(plan.payment_retry_delay).await;
        }
        b.stage = "pay";
        match api
            .send(Call::post(
                Step::Pay,
                api.api_url("/payments"),
                Some(token),
                &body,
            ))
            .await
        {
            Ok(r) if r.ok() => {}
            // Paid meanwhile (a result that arrived between our read and this request).
            Ok(r) if r.status.as_u16() == 400 && r.message().contains("already paid") => {}
            Ok(r) => {
                record_failure(api, Step::Pay, &r);
                return Outcome::Failed(Step::Pay);
            }
            Err(f) => {
                rec.error(Step::Pay, f.status, f.message);
                return Outcome::Failed(Step::Pay);
            }
        }
        if let Some(o) = b.orders.last_mut() {
            o.payment_requested = true;
        }
        b.stage = "payment";
        let asked = Instant::now();
        let mut settled = None;
        for _ in 0..polls(plan.deadline, plan.order_poll_interval) {
            tokio::time::sleep(jitter(plan.order_poll_interval)).await;
            let r = match api
                .send(Call::get(
                    Step::OrderStatus,
                    status_url.clone(),
                    Some(token),
                ))
                .await
            {
                Ok(r) if r.ok() => r,
                Ok(r) => {
                    record_failure(api, Step::OrderStatus, &r);
                    return Outcome::Failed(Step::OrderStatus);
                }
                Err(f) => {
                    rec.error(Step::OrderStatus, f.status, f.message);
                    return Outcome::Failed(Step::OrderStatus);
                }
            };
            let status = r.str("status").unwrap_or_default().to_owned();
            if let Some(o) = b.orders.last_mut() {
                o.status.clone_from(&status);
            }
            match status.as_str() {
                "HOLD" => continue,
                "PAID" | "FAIL" => {
                    settled = Some(status);
                    break;
                }
                other => {
                    rec.error(
                        Step::OrderStatus,
                        "protocol",
                        format!("order became {other} while its payment was processed"),
                    );
                    return Outcome::Failed(Step::OrderStatus);
                }
            }
        }
        rec.time(Step::PaymentWait, asked.elapsed());
        match settled.as_deref() {
            Some("PAID") => {
                rec.time(Step::Journey, arrived.elapsed());
                rec.paid();
                return Outcome::Paid;
            }
            Some(_) => continue,
            None => return Outcome::Unfinished("payment"),
        }
    }
    rec.stages.failed.fetch_add(1, Ordering::Relaxed);
    Outcome::PaymentFailed
}

/// REST: `POST /queue/enqueue`, then `GET /queue/status` until READY.
async fn wait_by_polling(
    api: &Api,
    plan: &Plan,
    b: &mut Buyer,
    token: &str,
    scope: &str,
) -> Result<(String, String), Outcome> {
    let rec = api.rec.clone();
    let body = json!({"eventId": scope});
    let ticket = match api
        .send(Call::post(
            Step::Enqueue,
            api.gw("/queue/enqueue"),
            Some(token),
            &body,
        ))
        .await
    {
        Ok(r) if r.ok() => match r.str("ticketId") {
            Some(t) => t.to_owned(),
            None => {
                rec.error(Step::Enqueue, "protocol", "enqueue answer without ticketId");
                return Err(Outcome::Failed(Step::Enqueue));
            }
        },
        Ok(r) => {
            record_failure(api, Step::Enqueue, &r);
            return Err(Outcome::Failed(Step::Enqueue));
        }
        Err(f) => {
            rec.error(Step::Enqueue, f.status, f.message);
            return Err(Outcome::Failed(Step::Enqueue));
        }
    };
    rec.queued();
    b.stage = "queued";
    poll_until_ready(api, plan, token, ticket, Instant::now()).await
}

/// A waiting buyer told the event sold out: counted, and out of the line (a buyer who walks
/// away; the server would have kept the place in case stock returns).
async fn walk_away_sold_out(api: &Api, token: &str, ticket: &str, since: Instant) -> Outcome {
    api.rec.told_sold_out(since);
    leave(api, token, ticket).await;
    Outcome::ToldSoldOut
}

/// `GET /queue/status` until READY (also the fallback of a socket that broke).
async fn poll_until_ready(
    api: &Api,
    plan: &Plan,
    token: &str,
    ticket: String,
    since: Instant,
) -> Result<(String, String), Outcome> {
    let rec = api.rec.clone();
    let url = api.gw(&format!("/queue/status?ticketId={ticket}"));
    for i in 0..polls(plan.deadline, plan.poll_interval) {
        if i > 0 {
            tokio::time::sleep(jitter(plan.poll_interval)).await;
        }
        let r = match api.send(Call::get(Step::Status, url.clone(), None)).await {
            Ok(r) if r.ok() => r,
            Ok(r) => {
                record_failure(api, Step::Status, &r);
                return Err(Outcome::Failed(Step::Status));
            }
            Err(f) => {
                rec.error(Step::Status, f.status, f.message);
                return Err(Outcome::Failed(Step::Status));
            }
        };
        if let Some(c) = r.body.get("readyCapacity").and_then(Value::as_u64) {
            rec.saw_capacity(c);
        }
        match (r.str("state"), r.str("gateToken")) {
            (Some("READY"), Some(gate)) => {
                rec.time(Step::QueueWait, since.elapsed());
                return Ok((ticket, gate.to_owned()));
            }
            // In line, or in a pre-queue's lottery until the sale starts.
            (Some("QUEUED" | "PREQUEUE"), _) => {}
            (Some("SOLD_OUT"), _) => {
                return Err(walk_away_sold_out(api, token, &ticket, since).await);
            }
            (state, _) => {
                rec.error(
                    Step::Status,
                    "protocol",
                    format!(
                        "ticket became {} while waiting",
                        state.unwrap_or("(no state)")
                    ),
                );
                return Err(Outcome::Failed(Step::Status));
            }
        }
    }
    Err(Outcome::Unfinished("queued"))
}

/// A server refusal of the namespace (bad token), as opposed to a transport failure.
fn is_refusal(message: &str) -> bool {
    message.contains("ConnectError")
}

/// Connects and waits for the `queue:config` greeting; transport failures are retried.
async fn connect_socket(api: &Api, plan: &Plan, token: &str) -> Result<QueueSocket, Outcome> {
    let rec = api.rec.clone();
    let mut last = String::new();
    for attempt in 0..=plan.http_retries {
        if attempt > 0 {
            rec.retry(Step::SocketConnect, "socket", last.clone());
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(5))).await;
        }
        let permit = api.handshake_permit().await;
        let t0 = Instant::now();
        rec.request();
        let mut socket = match QueueSocket::connect(&api.gateway, token).await {
            Ok(s) => s,
            Err(e) => {
                last = e;
                continue;
            }
        };
        // The namespace is ours once the server greets the socket with `queue:config`.
        let greeted = tokio::time::timeout(plan.request_timeout, socket.events.recv()).await;
        drop(permit);
        match greeted {
            Ok(Some(Heard::Config(v))) => {
                rec.time(Step::SocketConnect, t0.elapsed());
                if let Some(c) = v.get("readyCapacity").and_then(Value::as_u64) {
                    rec.saw_capacity(c);
                }
                return Ok(socket);
            }
            Ok(Some(Heard::Refused(m))) if is_refusal(&m) => {
                rec.error(Step::SocketConnect, "socket", format!("refused: {m}"));
                return Err(Outcome::Failed(Step::SocketConnect));
            }
            Ok(Some(Heard::Refused(m))) => last = m,
            Ok(Some(other)) => last = format!("expected queue:config first, got {other:?}"),
            Ok(None) => last = "closed before queue:config".into(),
            Err(_) => last = "no queue:config in time".into(),
        }
    }
    rec.error(Step::SocketConnect, "socket", last);
    Err(Outcome::Failed(Step::SocketConnect))
}

/// Socket.IO: connect, `queue/join`, and wait for the READY push. A socket that breaks after
/// the join hands over to polling; one that breaks before it is reconnected.
async fn wait_by_socket(
    api: &Api,
    plan: &Plan,
    b: &mut Buyer,
    token: &str,
    scope: &str,
) -> Result<(String, String), Outcome> {
    let rec = api.rec.clone();
    let mut ticket: Option<String> = None;
    let mut acknowledged = false;
    let mut joined_at = Instant::now();
    let mut queued_at = joined_at;
    for round in 0..=plan.http_retries {
        let mut socket = connect_socket(api, plan, token).await?;
        if round == 0 {
            joined_at = Instant::now();
        }
        rec.request();
        if let Err(e) = socket.join(scope, b.subject.as_deref()).await {
            rec.retry(Step::Enqueue, "socket", e);
            continue;
        }
        // Ends with READY, a failure, the socket, or (from outside) the sale's deadline.
        let broke = loop {
            let Some(heard) = socket.events.recv().await else {
                break "closed while waiting for READY".to_owned();
            };
            let update = match heard {
                Heard::Joined(v) | Heard::Update(v) => v,
                Heard::Config(_) => continue,
                Heard::Error(m) => {
                    rec.error(Step::Enqueue, "socket", m);
                    return Err(Outcome::Failed(Step::Enqueue));
                }
                Heard::Refused(m) => break m,
            };
            if !acknowledged {
                acknowledged = true;
                queued_at = Instant::now();
                rec.time(Step::Enqueue, joined_at.elapsed());
                rec.queued();
                // "queued" only once the server said so: the timeline's queue counts it.
                b.stage = "queued";
            }
            if let Some(t) = update.get("ticketId").and_then(Value::as_str) {
                ticket.get_or_insert_with(|| t.to_owned());
            }
            if let Some(c) = update.get("readyCapacity").and_then(Value::as_u64) {
                rec.saw_capacity(c);
            }
            match update.get("state").and_then(Value::as_str) {
                Some("READY") => {
                    if let (Some(t), Some(g)) = (
                        ticket.clone(),
                        update.get("gateToken").and_then(Value::as_str),
                    ) {
                        rec.time(Step::QueueWait, joined_at.elapsed());
                        socket.close().await;
                        return Ok((t, g.to_owned()));
                    }
                }
                Some("EXPIRED") => {
                    rec.error(Step::QueueWait, "protocol", "ticket expired while waiting");
                    return Err(Outcome::Failed(Step::QueueWait));
                }
                Some("SOLD_OUT") => {
                    if let Some(t) = ticket.clone() {
                        socket.close().await;
                        return Err(walk_away_sold_out(api, token, &t, queued_at).await);
                    }
                }
                _ => {}
            }
        };
        drop(socket);
        match ticket.clone() {
            Some(t) => {
                rec.retry(
                    Step::QueueWait,
                    "socket",
                    format!("{broke}; polling instead"),
                );
                return poll_until_ready(api, plan, token, t, joined_at).await;
            }
            None => rec.retry(Step::Enqueue, "socket", broke),
        }
    }
    rec.error(
        Step::Enqueue,
        "socket",
        "could not join the queue by socket",
    );
    Err(Outcome::Failed(Step::Enqueue))
}

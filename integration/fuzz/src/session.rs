//! Honest traffic: log-ins, an on-sale event, A's real resources, and the final purchase.

use crate::cases::Ctx;
use reqwest::{Client, Method};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A JSON call's answer: status and body (a JSON string when not JSON).
pub type Answer = (u16, Value);

/// One JSON request; transport errors and their causes as text.
pub async fn call(
    http: &Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Answer, String> {
    let mut req = http.request(method.clone(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{method} {url}: {}", crate::error_chain(&e)))?;
    let status = resp.status().as_u16();
    let text = resp
        .text()
        .await
        .map_err(|e| format!("{method} {url}: {}", crate::error_chain(&e)))?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Like [`call`], but a 429 is waited out (its `Retry-After`, within `deadline`).
async fn call_patiently(
    http: &Client,
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
    deadline: Instant,
) -> Result<Answer, String> {
    loop {
        let answer = call(http, method.clone(), url, token, headers, body).await?;
        if answer.0 != 429 || Instant::now() >= deadline {
            return Ok(answer);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Access and refresh token of `user`, registering it first when it does not exist.
pub async fn session(
    http: &Client,
    gateway: &str,
    user: &str,
    password: &str,
    deadline: Instant,
) -> Result<(String, String), String> {
    let creds = json!({"userId": user, "password": password});
    let login_url = format!("{gateway}/auth/login");
    let post = Method::POST;
    let (mut s, mut v) = call_patiently(
        http,
        post.clone(),
        &login_url,
        None,
        &[],
        Some(&creds),
        deadline,
    )
    .await?;
    if s == 401 {
        let url = format!("{gateway}/auth/register");
        let (rs, rv) =
            call_patiently(http, post.clone(), &url, None, &[], Some(&creds), deadline).await?;
        if rs != 200 && rs != 409 {
            return Err(format!("register {user}: {rs} {rv}"));
        }
        (s, v) = call_patiently(http, post, &login_url, None, &[], Some(&creds), deadline).await?;
    }
    match (s, v["accessToken"].as_str(), v["refreshToken"].as_str()) {
        (201, Some(a), Some(r)) => Ok((a.to_owned(), r.to_owned())),
        _ => Err(format!("login {user}: {s} {v}")),
    }
}

/// An admin session: registers `fuzzadmin1` with the admin secret (or finds it), logs in.
pub async fn admin_session(
    http: &Client,
    gateway: &str,
    secret: &str,
    password: &str,
    deadline: Instant,
) -> Result<String, String> {
    let body = json!({"userId": "fuzzadmin1", "password": password, "adminSecret": secret});
    let url = format!("{gateway}/auth/register/admin");
    let (s, v) = call_patiently(http, Method::POST, &url, None, &[], Some(&body), deadline).await?;
    if s != 200 && s != 409 {
        return Err(format!("admin register: {s} {v}"));
    }
    session(http, gateway, "fuzzadmin1", password, deadline)
        .await
        .map(|(a, _)| a)
}

/// `YYYY-MM-DDTHH:MM:SS.000Z` of a Unix time in seconds.
pub fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Creates an event and puts it ON SALE; returns its id.
pub async fn onsale_event(
    http: &Client,
    api: &str,
    admin: &str,
    name: &str,
    total: i64,
    max: i64,
) -> Result<String, String> {
    let now = now_secs();
    let body = json!({"name": name, "starts_at": iso8601(now - 3600),
        "ends_at": iso8601(now + 86_400), "total_qty": total, "max_per_user": max, "price": 1000});
    let (s, e) = call(
        http,
        Method::POST,
        &format!("{api}/events"),
        Some(admin),
        &[],
        Some(&body),
    )
    .await?;
    let Some(id) = e["id"].as_str().filter(|_| s == 201) else {
        return Err(format!("create event: {s} {e}"));
    };
    let url = format!("{api}/events/{id}");
    let (s, v) = call(
        http,
        Method::PATCH,
        &url,
        Some(admin),
        &[],
        Some(&json!({"status": "ONSALE"})),
    )
    .await?;
    if s != 200 {
        return Err(format!("put event on sale: {s} {v}"));
    }
    Ok(id.to_owned())
}

/// The ON SALE event with the most stock left, from the public list.
pub async fn listed_event(http: &Client, api: &str) -> Result<String, String> {
    let (s, v) = call(http, Method::GET, &format!("{api}/events"), None, &[], None).await?;
    let left = |e: &Value| {
        e["totalQty"].as_i64().unwrap_or(0)
            - e["soldQty"].as_i64().unwrap_or(0)
            - e["heldQty"].as_i64().unwrap_or(0)
    };
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["status"] == "ONSALE" && left(e) > 0)
        .max_by_key(|e| left(e))
        .and_then(|e| e["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("no ONSALE event with stock in GET /events ({s})"))
}

/// Enqueues `token`'s user for `event` and waits for READY; returns (ticket, gate token).
pub async fn admitted(
    http: &Client,
    gateway: &str,
    token: &str,
    event: &str,
    deadline: Instant,
) -> Result<(String, String), String> {
    let url = format!("{gateway}/queue/enqueue");
    let body = json!({ "eventId": event });
    let (s, t) = call_patiently(
        http,
        Method::POST,
        &url,
        Some(token),
        &[],
        Some(&body),
        deadline,
    )
    .await?;
    let Some(ticket) = t["ticketId"].as_str().filter(|_| s == 201) else {
        return Err(format!("enqueue {event}: {s} {t}"));
    };
    let status_url = format!("{gateway}/queue/status?ticketId={ticket}");
    loop {
        let (s, st) = call(http, Method::GET, &status_url, None, &[], None).await?;
        match (s, st["state"].as_str(), st["gateToken"].as_str()) {
            (200, Some("READY"), Some(gate)) => return Ok((ticket.to_owned(), gate.to_owned())),
            (200, Some("QUEUED" | "PREQUEUE"), _) => {}
            _ => return Err(format!("queue status of {ticket}: {s} {st}")),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "ticket {ticket} not READY before the deadline: {st}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Places a HOLD order of one ticket with the admission `gate`; returns the order id.
pub async fn order(
    http: &Client,
    api: &str,
    token: &str,
    event: &str,
    gate: &str,
    key: &str,
    deadline: Instant,
) -> Result<String, String> {
    let url = format!("{api}/orders");
    let body = json!({"event_id": event, "qty": 1});
    let headers = [("Idempotency-Key", key), ("X-Gate-Token", gate)];
    let (s, o) = call_patiently(
        http,
        Method::POST,
        &url,
        Some(token),
        &headers,
        Some(&body),
        deadline,
    )
    .await?;
    match o["orderId"].as_str() {
        Some(id) if s == 201 && o["status"] == "HOLD" => Ok(id.to_owned()),
        _ => Err(format!("POST /orders: {s} {o}")),
    }
}

/// Requests a payment for `order`; returns the payment id.
pub async fn pay(
    http: &Client,
    api: &str,
    token: &str,
    order: &str,
    deadline: Instant,
) -> Result<String, String> {
    let url = format!("{api}/payments");
    let body = json!({"orderId": order, "method": "MOCK"});
    let (s, p) = call_patiently(
        http,
        Method::POST,
        &url,
        Some(token),
        &[],
        Some(&body),
        deadline,
    )
    .await?;
    match p["id"].as_str().or_else(|| p["paymentId"].as_str()) {
        Some(id) if s == 201 => Ok(id.to_owned()),
        _ => Err(format!("POST /payments: {s} {p}")),
    }
}

/// What set-up learnt, and where the honest purchase will buy.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// Tokens and ids for the generator.
    pub ctx: Ctx,
    /// The buyer's access token.
    pub buyer: Option<String>,
    /// The event the final purchase buys.
    pub purchase_event: Option<String>,
    /// Every honest step that failed.
    pub problems: Vec<String>,
}

/// Logs in A, B, the buyer (and an admin), finds or creates events, and gives A a real order,
/// payment and a READY `__global__` admission.
pub async fn setup(http: &Client, cfg: &crate::FuzzConfig, api: &str) -> Setup {
    let gw = cfg.base.as_str();
    let deadline = Instant::now() + cfg.deadline;
    let mut out = Setup::default();
    out.ctx.body_limit = cfg.body_limit;
    out.ctx.jwt_secret = cfg.jwt_access_secret.clone();
    let mut sessions = Vec::new();
    for user in &cfg.users {
        match session(http, gw, user, &cfg.password, deadline).await {
            Ok(s) => sessions.push(Some(s)),
            Err(e) => {
                out.problems.push(e);
                sessions.push(None);
            }
        }
    }
    let (a, b, c) = (
        sessions[0].clone(),
        sessions[1].clone(),
        sessions[2].clone(),
    );
    if let Some((acc, refr)) = &a {
        out.ctx.a_access = acc.clone();
        out.ctx.a_refresh = refr.clone();
    }
    if let Some((acc, _)) = &b {
        out.ctx.b_access = acc.clone();
    }
    out.buyer = c.map(|s| s.0);
    if let Some(secret) = &cfg.admin_secret {
        match admin_session(http, gw, secret, &cfg.password, deadline).await {
            Ok(t) => out.ctx.admin = Some(t),
            Err(e) => out.problems.push(e),
        }
    }
    if let Some(admin) = out.ctx.admin.clone() {
        for (name, total, slot) in [("Fuzz target", 100_000, 0), ("Fuzz purchase", 10, 1)] {
            match onsale_event(http, api, &admin, name, total, 10).await {
                Ok(id) if slot == 0 => out.ctx.event = Some(id),
                Ok(id) => out.purchase_event = Some(id),
                Err(e) => out.problems.push(e),
            }
        }
    } else {
        match listed_event(http, api).await {
            Ok(id) => {
                out.ctx.event = Some(id.clone());
                out.purchase_event = Some(id);
            }
            Err(e) => out.problems.push(e),
        }
    }
    let (Some(event), Some(_)) = (out.ctx.event.clone(), a.as_ref()) else {
        return out;
    };
    let token = out.ctx.a_access.clone();
    let held = async {
        let (_, gate) = admitted(http, gw, &token, &event, deadline).await?;
        let key = format!("fuzz-setup-{}", cfg.seed);
        let order = order(http, api, &token, &event, &gate, &key, deadline).await?;
        let payment = pay(http, api, &token, &order, deadline).await;
        Ok::<_, String>((order, payment))
    }
    .await;
    match held {
        Ok((o, p)) => {
            out.ctx.a_order = Some(o);
            match p {
                Ok(p) => out.ctx.a_payment = Some(p),
                Err(e) => out.problems.push(format!("set-up payment: {e}")),
            }
        }
        Err(e) => out.problems.push(format!("set-up order: {e}")),
    }
    match admitted(http, gw, &token, "__global__", deadline).await {
        Ok(t) => out.ctx.a_ticket = Some(t),
        Err(e) => out.problems.push(format!("set-up global admission: {e}")),
    }
    out
}

/// How the final honest purchase went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purchase {
    /// The order that ended PAID.
    pub order: String,
    /// Payment attempts it took (a FAIL is retried, SPEC §6).
    pub attempts: u32,
}

/// Login (done in set-up) → enqueue → READY → enter → order → pay → PAID, within `limit`.
pub async fn purchase(
    http: &Client,
    cfg: &crate::FuzzConfig,
    api: &str,
    setup: &Setup,
) -> Result<Purchase, String> {
    let gw = cfg.base.as_str();
    let deadline = Instant::now() + cfg.deadline;
    let token = setup.buyer.as_deref().ok_or("the buyer could not log in")?;
    let event = setup
        .purchase_event
        .as_deref()
        .ok_or("no event to buy from")?;
    let (ticket, gate) = admitted(http, gw, token, event, deadline).await?;
    let body = json!({"ticketId": ticket, "gateToken": gate});
    let (s, v) = call(
        http,
        Method::POST,
        &format!("{gw}/queue/enter"),
        Some(token),
        &[],
        Some(&body),
    )
    .await?;
    if s != 201 || v["status"] != "entered" {
        return Err(format!("POST /queue/enter: {s} {v}"));
    }
    let key = format!("fuzz-purchase-{}", uuid::Uuid::new_v4());
    let order = order(http, api, token, event, &gate, &key, deadline).await?;
    let order_url = format!("{api}/orders/{order}");
    for attempt in 1..=5 {
        pay(http, api, token, &order, deadline).await?;
        loop {
            let (s, o) = call(http, Method::GET, &order_url, Some(token), &[], None).await?;
            match (s, o["status"].as_str()) {
                (200, Some("PAID")) => {
                    return Ok(Purchase {
                        order,
                        attempts: attempt,
                    });
                }
                (200, Some("FAIL")) => break,
                (200, Some("HOLD")) => {}
                _ => return Err(format!("GET /orders/{order}: {s} {o}")),
            }
            if Instant::now() >= deadline {
                return Err(format!("order {order} not PAID before the deadline: {o}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Err(format!("order {order}: five payments failed"))
}

#[cfg(test)]
mod tests {
    use super::iso8601;

    #[test]
    fn iso8601_formats_utc_with_milliseconds() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_764_979_200), "2025-12-06T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400 + 3661), "2000-02-29T01:01:01.000Z");
    }
}

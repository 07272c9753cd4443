//! A broken invariant makes the rehearsal fail: a tiny legacy-compatible server (legacy paths,
//! status codes and bodies, no `heldQty`/`availableQty`, no `/queue/leave`, no Socket.IO) whose
//! event reports one more ticket sold than its PAID orders hold. The `flash-rehearse` binary
//! runs against it and must exit non-zero with that check failed in its report — and pass
//! against the same server without the bug.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const EVENT: &str = "5fc5e855-f1e6-4c0a-a758-5f76eb6aee4e";
const TOTAL: i64 = 10;
const STAMP: &str = "2099-01-01T00:00:00.000Z";

#[derive(Default)]
struct Shop {
    /// token → user uuid
    tokens: HashMap<String, String>,
    /// ticket → (user, gate token)
    tickets: HashMap<String, (String, String)>,
    /// order id → (user, qty, status)
    orders: Vec<(String, String, i64, String)>,
    sold: i64,
    /// The injected bug: once sales begin, soldQty is reported this much above the PAID
    /// orders (one order counted twice, as legacy could after a PAID → FAIL → PAID cycle).
    drift: i64,
}

type Db = Arc<Mutex<Shop>>;

fn err(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"statusCode": status.as_u16(), "message": message})),
    )
        .into_response()
}

fn caller(db: &Db, headers: &HeaderMap) -> Option<String> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    db.lock().ok()?.tokens.get(token).cloned()
}

fn event(s: &Shop) -> Value {
    // Legacy Event: no heldQty, no availableQty.
    json!({
        "id": EVENT, "name": "Legacy Concert", "startsAt": STAMP, "endsAt": STAMP,
        "totalQty": TOTAL, "soldQty": if s.sold > 0 { s.sold + s.drift } else { 0 }, "maxPerUser": 2, "price": 1000,
        "status": "ONSALE", "createdAt": STAMP, "updatedAt": STAMP,
    })
}

fn order_view(id: &str, qty: i64, status: &str, key: &str) -> Value {
    let mut v = json!({
        "status": status, "amount": qty * 1000, "qty": qty, "eventId": EVENT,
        "eventName": "Legacy Concert", "createdAt": STAMP, "updatedAt": STAMP,
    });
    v[key] = json!(id);
    v
}

async fn login(State(db): State<Db>, Json(body): Json<Value>) -> Response {
    if body["password"] != "testtest" {
        return err(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let user = uuid::Uuid::new_v4().to_string();
    let claims = json!({"sub": user, "userId": body["userId"], "role": "USER"});
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let token = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig");
    db.lock().unwrap().tokens.insert(token.clone(), user);
    (
        StatusCode::CREATED,
        Json(json!({"accessToken": token, "refreshToken": "r"})),
    )
        .into_response()
}

async fn enqueue(State(db): State<Db>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Some(user) = caller(&db, &headers) else {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    if body["eventId"]
        .as_str()
        .and_then(|e| uuid::Uuid::parse_str(e).ok())
        .is_none()
    {
        return err(StatusCode::BAD_REQUEST, "eventId must be a UUID");
    }
    let ticket = uuid::Uuid::new_v4().to_string();
    let gate = uuid::Uuid::new_v4().to_string();
    db.lock()
        .unwrap()
        .tickets
        .insert(ticket.clone(), (user, gate));
    (StatusCode::CREATED, Json(json!({"ticketId": ticket}))).into_response()
}

async fn status(State(db): State<Db>, Query(q): Query<HashMap<String, String>>) -> Response {
    let s = db.lock().unwrap();
    match q
        .get("ticketId")
        .and_then(|t| s.tickets.get(t).map(|x| (t, x)))
    {
        // Legacy READY body: ticketId, state, gateToken — nothing else.
        Some((t, (_, gate))) => {
            Json(json!({"ticketId": t, "state": "READY", "gateToken": gate})).into_response()
        }
        None => err(StatusCode::NOT_FOUND, "Queue ticket not found"),
    }
}

async fn enter(State(db): State<Db>, headers: HeaderMap) -> Response {
    if caller(&db, &headers).is_none() {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    (StatusCode::CREATED, Json(json!({"status": "entered"}))).into_response()
}

async fn place_order(
    State(db): State<Db>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Some(user) = caller(&db, &headers) else {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let qty = body["qty"].as_i64().unwrap_or(0);
    let mut s = db.lock().unwrap();
    let committed: i64 = s.orders.iter().filter(|o| o.1 == user).map(|o| o.2).sum();
    // Every order here is HOLD or PAID, and both take stock: no oversell.
    let reserved: i64 = s.orders.iter().map(|o| o.2).sum();
    if reserved + qty > TOTAL {
        return err(StatusCode::BAD_REQUEST, "Not enough tickets remaining");
    }
    if committed + qty > 2 {
        return err(
            StatusCode::BAD_REQUEST,
            "Requested quantity exceeds per-user limit",
        );
    }
    let id = uuid::Uuid::new_v4().to_string();
    s.orders.push((id.clone(), user, qty, "HOLD".into()));
    (
        StatusCode::CREATED,
        Json(order_view(&id, qty, "HOLD", "orderId")),
    )
        .into_response()
}

async fn pay(State(db): State<Db>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let Some(user) = caller(&db, &headers) else {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let mut s = db.lock().unwrap();
    let Some(i) = s
        .orders
        .iter()
        .position(|o| body["orderId"] == o.0 && o.1 == user)
    else {
        return err(StatusCode::NOT_FOUND, "Order not found");
    };
    // The processor answers at once: the order is paid by the time the buyer looks.
    let qty = s.orders[i].2;
    s.orders[i].3 = "PAID".into();
    s.sold += qty;
    (
        StatusCode::CREATED,
        Json(json!({
            "paymentId": uuid::Uuid::new_v4().to_string(), "orderId": body["orderId"],
            "status": "REQ", "method": body["method"], "amount": qty * 1000,
            "createdAt": STAMP, "updatedAt": STAMP,
        })),
    )
        .into_response()
}

async fn list_orders(State(db): State<Db>, headers: HeaderMap) -> Response {
    let Some(user) = caller(&db, &headers) else {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let s = db.lock().unwrap();
    let mine: Vec<Value> = s
        .orders
        .iter()
        .filter(|o| o.1 == user)
        .map(|o| order_view(&o.0, o.2, &o.3, "id"))
        .collect();
    Json(Value::Array(mine)).into_response()
}

async fn get_order(State(db): State<Db>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let Some(user) = caller(&db, &headers) else {
        return err(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let s = db.lock().unwrap();
    match s.orders.iter().find(|o| o.0 == id && o.1 == user) {
        Some(o) => Json(order_view(&o.0, o.2, &o.3, "id")).into_response(),
        None => err(StatusCode::NOT_FOUND, "Order not found"),
    }
}

async fn legacy_server(drift: i64) -> (String, tokio::task::JoinHandle<()>) {
    let db: Db = Arc::new(Mutex::new(Shop {
        drift,
        ..Shop::default()
    }));
    let app = Router::new()
        .route("/auth/login", post(login))
        .route("/queue/enqueue", post(enqueue))
        .route("/queue/status", get(status))
        .route("/queue/enter", post(enter))
        .route(
            "/events",
            get(|State(db): State<Db>| async move { Json(json!([event(&db.lock().unwrap())])) }),
        )
        .route(
            "/events/{id}",
            get(|State(db): State<Db>| async move { Json(event(&db.lock().unwrap())) }),
        )
        .route("/orders", get(list_orders).post(place_order))
        .route("/orders/{id}", get(get_order))
        .route("/payments", post(pay))
        .with_state(db);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), task)
}

/// Runs the real binary; returns its exit code, its report and its output.
async fn run_binary(base: &str, name: &str, buyers: &str) -> (i32, Value, String) {
    let out = std::env::temp_dir().join(format!(
        "flash-rehearse-legacy-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_flash-rehearse"))
        .args([
            "--url",
            base,
            "-n",
            buyers,
            "--wait",
            "poll",
            "--poll-interval",
            "10ms",
            "--order-poll-interval",
            "10ms",
            "--deadline",
            "30s",
            "--settle",
            "3s",
            "--out",
        ])
        .arg(&out)
        .env_remove("DATABASE_URL")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = std::fs::read_to_string(out.join("report.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    assert!(out.join("report.md").exists(), "no report.md:\n{text}");
    assert!(out.join("report.html").exists(), "no report.html:\n{text}");
    let _ = std::fs::remove_dir_all(&out);
    (output.status.code().unwrap_or(-1), report, text)
}

fn check_passed(report: &Value, name: &str) -> Value {
    report["audit"]["checks"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .map(|c| c["passed"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_sold_count_disagrees_with_its_paid_orders_fails_the_rehearsal() {
    let (base, server) = legacy_server(1).await;
    let (code, report, text) = run_binary(&base, "broken", "6").await;
    assert_eq!(code, 1, "the audit failure is the exit status:\n{text}");
    assert_eq!(
        check_passed(&report, "sold = Σ qty of PAID orders"),
        false,
        "{text}"
    );
    // Only that check: 6 + 1 ≤ 10 tickets is no oversell.
    assert_eq!(
        check_passed(&report, "no oversell: sold + held ≤ total"),
        true,
        "{text}"
    );
    assert_eq!(report["verdict"]["passed"], false);
    assert!(text.contains("FAILED"), "{text}");
    // The rest of the journey worked: this is an audit failure, not an error storm.
    assert_eq!(report["errors"], json!([]), "{text}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_legacy_server_without_the_bug_passes() {
    let (base, server) = legacy_server(0).await;
    let (code, report, text) = run_binary(&base, "sound", "12").await;
    assert_eq!(code, 0, "{text}");
    assert_eq!(report["verdict"]["passed"], true, "{text}");
    // 12 buyers for 10 tickets, one each: 10 paid, 2 told it is sold out.
    assert_eq!(report["sale"]["outcomes"]["paid"], 10, "{text}");
    assert_eq!(report["sale"]["outcomes"]["soldOut"], 2, "{text}");
    // Legacy reports neither heldQty nor readyCapacity: those checks are skipped, not failed.
    assert_eq!(
        check_passed(&report, "held = Σ qty of HOLD and FAIL orders"),
        Value::Null
    );
    assert_eq!(check_passed(&report, "admitted ≤ capacity"), Value::Null);
    server.abort();
}

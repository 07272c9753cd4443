//! Router tests without sockets: every endpoint of `flash_http::app` driven with
//! `tower::ServiceExt::oneshot` over the in-memory adapters and a fake clock. They pin the wire
//! contract of SPEC §2–§8 and legacy-system.md §2: paths, status codes, JSON field names, the
//! legacy error body and its texts.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use flash_adapter_memory::{
    FakeClock, Faults, MemoryBus, MemoryIds, MemoryPaymentLedger, MemoryQueueNotifier,
    MemoryQueueStore, MemoryRateLimiter, MemorySessionStore, MemoryShop, MemoryTimeline,
    MemoryUserStore, SeededRandom,
};
use flash_core::budget::Budgets;
use flash_core::ports::HealthCheck;
use flash_core::{Context, Timestamp};
use flash_handlers::timeline::{HostCounters, SampleScope};
use flash_handlers::{Handlers, Ports, Settings};
use flash_http::layers::HttpLayersConfig;
use flash_http::metrics::Metrics;
use flash_http::state::{AppState, OpsState, Services};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// Fixture

/// 2025-11-03T06:03:34.000Z, the instant of the legacy wire example.
const T0: i64 = 1_762_149_814_000;
const ADMIN_SECRET: &str = "admin-secret";
const CALLBACK_SECRET: &[u8] = b"callback-secret";
const PASSWORD: &str = "password123";
const ACCESS_TTL_SECS: i64 = 15 * 60;
const REFRESH_TTL_SECS: i64 = 7 * 24 * 3600;

fn settings() -> Settings {
    let mut s = Settings::with_secrets("access-secret", "refresh-secret", "gate-secret");
    s.auth.bcrypt_cost = 4;
    s.auth.admin_secret = Some(ADMIN_SECRET.into());
    s.queue.capacity = 50;
    s.payments.callback_secret = std::str::from_utf8(CALLBACK_SECRET).ok().map(Into::into);
    s.pay.min_latency = Duration::from_millis(10);
    s.pay.max_latency = Duration::from_millis(20);
    s
}

/// The router over a whole in-memory world. `faults` takes the stores (and the health check)
/// down at once.
struct Api {
    app: Router,
    handlers: Arc<Handlers>,
    clock: Arc<FakeClock>,
    faults: Faults,
    timeline: Arc<MemoryTimeline>,
}

impl Api {
    fn new() -> Self {
        Api::with(settings())
    }

    fn with(settings: Settings) -> Self {
        let faults = Faults::default();
        let clock = Arc::new(FakeClock::new(Timestamp(T0)));
        let shop = Arc::new(
            MemoryShop::new(settings.payments.request_queue.clone()).with_faults(faults.clone()),
        );
        let limiter = Arc::new(MemoryRateLimiter::new());
        let timeline = Arc::new(MemoryTimeline::new());
        let budgets = Budgets::default();
        budgets.add(limiter.budget());
        budgets.add(shop.key_budget());
        let ports = Ports {
            clock: clock.clone(),
            ids: Arc::new(MemoryIds),
            random: Arc::new(SeededRandom::new(7)),
            users: Arc::new(MemoryUserStore::new().with_faults(faults.clone())),
            sessions: Arc::new(MemorySessionStore::new()),
            limiter,
            queue: Arc::new(MemoryQueueStore::new().with_faults(faults.clone())),
            notifier: Arc::new(MemoryQueueNotifier::new()),
            events: shop.clone(),
            orders: shop.clone(),
            payments: shop.clone(),
            bus: Arc::new(MemoryBus::new(5)),
            ledger: Arc::new(MemoryPaymentLedger::new()),
            timeline: timeline.clone(),
        };
        let handlers = Arc::new(Handlers::new(&ports, settings));
        let health: Vec<Arc<dyn HealthCheck>> = vec![Arc::new(faults.clone())];
        let state = AppState {
            ops: OpsState {
                work: handlers.work.clone(),
                metrics: Metrics::new().expect("metrics registry"),
                health: Arc::new(health),
                db_stats: None,
                budgets,
                services: Services::ALL,
                health_timeout: Duration::from_secs(1),
                started: Instant::now(),
            },
            handlers: handlers.clone(),
            ws_refresh: Duration::from_secs(1),
        };
        let app = flash_http::app(state, &HttpLayersConfig::new("flash"));
        Api {
            app,
            handlers,
            clock,
            faults,
            timeline,
        }
    }

    /// Sends `call` and checks the answer against the OpenAPI document (see [`documented`]).
    async fn send(&self, call: Call) -> Reply {
        let (method, uri) = (call.method.clone(), call.uri.clone());
        let reply = self.answer(call).await;
        documented(&method, &uri, &reply);
        reply
    }

    async fn answer(&self, call: Call) -> Reply {
        let response = self
            .app
            .clone()
            .oneshot(call.request())
            .await
            .unwrap_or_else(|e| match e {});
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("response body")
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// One promotion pass, as the background promoter would run it.
    async fn promote(&self) {
        self.handlers
            .work
            .promote
            .handle(&Context::new("t"))
            .await
            .expect("promotion pass");
    }

    async fn register(&self, login: &str) -> Reply {
        self.send(post("/auth/register").json(&json!({"userId": login, "password": PASSWORD})))
            .await
    }

    async fn login(&self, login: &str, password: &str) -> Reply {
        self.send(post("/auth/login").json(&json!({"userId": login, "password": password})))
            .await
    }

    async fn session(&self, login: &str) -> User {
        let r = self.login(login, PASSWORD).await;
        r.expect(201);
        User {
            access: r.json["accessToken"]
                .as_str()
                .expect("accessToken")
                .to_owned(),
            refresh: r.json["refreshToken"]
                .as_str()
                .expect("refreshToken")
                .to_owned(),
        }
    }

    /// A registered and logged-in buyer.
    async fn user(&self, login: &str) -> User {
        self.register(login).await.expect(200);
        self.session(login).await
    }

    /// A registered and logged-in admin.
    async fn admin(&self, login: &str) -> User {
        self.send(post("/auth/register/admin").json(&json!({
            "userId": login, "password": PASSWORD, "adminSecret": ADMIN_SECRET
        })))
        .await
        .expect(200);
        self.session(login).await
    }

    async fn create_event(&self, admin: &User, body: &Value) -> Reply {
        self.send(post("/events").bearer(&admin.access).json(body))
            .await
    }

    async fn patch_event(&self, admin: &User, id: &str, body: &Value) -> Reply {
        self.send(
            patch(&format!("/events/{id}"))
                .bearer(&admin.access)
                .json(body),
        )
        .await
    }

    /// An event in `status` (DRAFT, ONSALE or CLOSED) reached through the API; returns its id.
    async fn event(&self, admin: &User, status: &str, total: i64, max_per_user: i64) -> String {
        let mut body = event_body("Concert");
        body["total_qty"] = json!(total);
        body["max_per_user"] = json!(max_per_user);
        let created = self.create_event(admin, &body).await;
        created.expect(201);
        let id = created.json["id"].as_str().expect("event id").to_owned();
        let steps: &[&str] = match status {
            "DRAFT" => &[],
            "ONSALE" => &["ONSALE"],
            "CLOSED" => &["ONSALE", "CLOSED"],
            other => panic!("unknown status {other}"),
        };
        for step in steps {
            self.patch_event(admin, &id, &json!({"status": step}))
                .await
                .expect(200);
        }
        id
    }

    async fn enqueue(&self, user: &User, event_id: &str) -> Reply {
        self.send(
            post("/queue/enqueue")
                .bearer(&user.access)
                .json(&json!({"eventId": event_id})),
        )
        .await
    }

    async fn status(&self, ticket: &str) -> Reply {
        self.send(get(&format!("/queue/status?ticketId={ticket}")))
            .await
    }

    /// Enqueues `user` for `scope` and promotes; returns the admitted ticket id.
    async fn admit(&self, user: &User, scope: &str) -> String {
        let r = self.enqueue(user, scope).await;
        r.expect(201);
        let ticket = r.json["ticketId"].as_str().expect("ticketId").to_owned();
        self.promote().await;
        let st = self.status(&ticket).await;
        assert_eq!(
            st.json["state"], "READY",
            "admission of {ticket}: {}",
            st.text
        );
        ticket
    }

    async fn place_order(&self, user: &User, key: &str, event_id: &str, qty: Value) -> Reply {
        self.send(
            post("/orders")
                .bearer(&user.access)
                .header("Idempotency-Key", key)
                .json(&json!({"event_id": event_id, "qty": qty})),
        )
        .await
    }

    /// Admits `user` on the global queue and places a HOLD; returns the `POST /orders` body.
    async fn hold(&self, user: &User, event_id: &str, qty: i64) -> Value {
        self.admit(user, "__global__").await;
        let r = self
            .place_order(
                user,
                &uuid::Uuid::new_v4().to_string(),
                event_id,
                json!(qty),
            )
            .await;
        r.expect(201);
        r.json
    }

    async fn request_payment(&self, user: &User, order_id: &str) -> Reply {
        self.send(
            post("/payments")
                .bearer(&user.access)
                .json(&json!({"orderId": order_id, "method": "MOCK"})),
        )
        .await
    }

    async fn order_of(&self, user: &User, order_id: &str) -> Reply {
        self.send(get(&format!("/orders/{order_id}")).bearer(&user.access))
            .await
    }
}

struct User {
    access: String,
    refresh: String,
}

/// The documented operation serving `method` and `path`: the template matching the most literal
/// segments (`/events/admin/all` before `/events/{id}`).
fn operation<'d>(doc: &'d Value, method: &Method, path: &str) -> Option<(&'d str, &'d Value)> {
    let segments: Vec<&str> = path.split('/').collect();
    let method = method.as_str().to_ascii_lowercase();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            let fits = parts.len() == segments.len()
                && parts.iter().zip(&segments).all(|(p, s)| {
                    p == s || (p.starts_with('{') && p.ends_with('}') && !s.is_empty())
                });
            let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
            let op = item.get(&method)?;
            fits.then_some((literal, template.as_str(), op))
        })
        .max_by_key(|(literal, _, _)| *literal)
        .map(|(_, template, op)| (template, op))
}

/// Every answer of a documented operation is documented: its status is listed, and a JSON body
/// validates against that response's generated schema (a body-less response has no body). The
/// legacy contract tests below thus check the document as well as the wire.
fn documented(method: &Method, uri: &str, reply: &Reply) {
    let doc = flash_http::openapi::document();
    let path = uri.split('?').next().unwrap_or(uri);
    let Some((template, op)) = operation(doc, method, path) else {
        return;
    };
    if reply.json["code"] == "route_not_found" {
        return; // a router serving one service only: this route is the other service's
    }
    let status = reply.status.as_str();
    let mut response = &op["responses"][status];
    assert!(
        !response.is_null(),
        "{method} {template} answered {status}, which its operation does not document: {}",
        reply.text
    );
    if let Some(reference) = response["$ref"].as_str() {
        response = doc
            .pointer(reference.trim_start_matches('#'))
            .expect("response reference resolves");
    }
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        if response.get("content").is_none() {
            assert_eq!(
                reply.text, "",
                "{method} {template} {status} documents no body"
            );
        }
        return;
    };
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("the documented schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&reply.json)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {status}: the body does not match its documented schema: {errors:#?}\n{}",
        reply.text
    );
    let undocumented = undocumented_keys(doc, schema, &reply.json, &mut Vec::new());
    assert!(
        undocumented.is_empty(),
        "{method} {template} {status}: served but not documented: {undocumented:?}"
    );
}

/// The keys of `value` (and of the objects in it) that `schema` does not declare. The response
/// schemas allow more keys than they list, so the validator alone would miss a field added to
/// the wire and not to the document.
fn undocumented_keys(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &mut Vec<String>,
) -> Vec<String> {
    let schema = match schema["$ref"].as_str() {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or(&Value::Null),
        None => schema,
    };
    let mut parts = vec![schema];
    parts.extend(schema["allOf"].as_array().into_iter().flatten());
    let parts: Vec<&Value> = parts
        .into_iter()
        .map(|p| match p["$ref"].as_str() {
            Some(r) => doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or(&Value::Null),
            None => p,
        })
        .collect();
    let mut missing = Vec::new();
    match value {
        // A free-form object (the OpenAPI document itself) lists no properties.
        Value::Object(map) if parts.iter().any(|p| p.get("properties").is_some()) => {
            for (key, v) in map {
                let declared = parts.iter().find_map(|p| p["properties"].get(key));
                let free = parts
                    .iter()
                    .find_map(|p| p.get("additionalProperties").filter(|a| a.is_object()));
                at.push(key.clone());
                match declared.or(free) {
                    Some(inner) => missing.extend(undocumented_keys(doc, inner, v, at)),
                    None => missing.push(at.join(".")),
                }
                at.pop();
            }
        }
        Value::Array(items) => {
            if let Some(inner) = parts.iter().find_map(|p| p.get("items")) {
                for v in items {
                    missing.extend(undocumented_keys(doc, inner, v, at));
                }
            }
        }
        _ => {}
    }
    missing
}

#[test]
fn the_document_check_refuses_a_body_that_drifted() {
    let event = |json: Value| Reply {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        text: json.to_string(),
        json,
    };
    let drifted = [event(json!({"id": "not-an-event"})), event(json!([]))];
    for reply in drifted {
        let outcome = std::panic::catch_unwind(|| {
            documented(
                &Method::GET,
                "/events/00000000-0000-4000-8000-000000000001",
                &reply,
            )
        });
        assert!(outcome.is_err(), "{} passed the check", reply.text);
    }
    let mut extra = event(
        json!({"statusCode": 404, "message": "Event not found", "code": "not_found", "secret": 1}),
    );
    extra.status = StatusCode::NOT_FOUND;
    let outcome = std::panic::catch_unwind(|| {
        documented(
            &Method::GET,
            "/events/00000000-0000-4000-8000-000000000001",
            &extra,
        )
    });
    assert!(outcome.is_err(), "an undocumented key passed the check");
    let mut fine = extra;
    fine.json.as_object_mut().map(|m| m.remove("secret"));
    documented(
        &Method::GET,
        "/events/00000000-0000-4000-8000-000000000001",
        &fine,
    );
}

/// A request under construction.
struct Call {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Sent as a stream without `Content-Length`.
    streamed: bool,
}

fn call(method: Method, uri: &str) -> Call {
    Call {
        method,
        uri: uri.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        streamed: false,
    }
}

fn get(uri: &str) -> Call {
    call(Method::GET, uri)
}

fn post(uri: &str) -> Call {
    call(Method::POST, uri)
}

fn patch(uri: &str) -> Call {
    call(Method::PATCH, uri)
}

fn delete(uri: &str) -> Call {
    call(Method::DELETE, uri)
}

impl Call {
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    fn json(self, body: &Value) -> Self {
        self.raw(serde_json::to_vec(body).expect("json body"))
    }

    fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", "application/json")
    }

    fn streamed(mut self) -> Self {
        self.streamed = true;
        self
    }

    fn request(self) -> Request<Body> {
        let mut b = Request::builder().method(self.method).uri(self.uri);
        for (name, value) in &self.headers {
            b = b.header(name.as_str(), value.as_str());
        }
        if self.streamed {
            let chunks: [Result<Vec<u8>, std::io::Error>; 1] = [Ok(self.body)];
            return b
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .expect("request");
        }
        if !self.body.is_empty() {
            b = b.header(header::CONTENT_LENGTH, self.body.len());
        }
        b.body(Body::from(self.body)).expect("request")
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    #[track_caller]
    fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status, body: {}",
            self.text
        );
        self
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn str(&self, field: &str) -> String {
        self.json[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string in {}", self.text))
            .to_owned()
    }
}

/// The legacy error body with a text message, plus our `code`.
#[track_caller]
fn assert_error(r: &Reply, status: u16, message: &str) {
    assert_eq!(r.status.as_u16(), status, "body: {}", r.text);
    assert!(
        r.content_type().starts_with("application/json"),
        "content type {:?}",
        r.content_type()
    );
    assert_eq!(r.json["statusCode"], status, "body: {}", r.text);
    assert_eq!(r.json["message"], message, "body: {}", r.text);
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or_default();
    assert_eq!(r.json["error"], reason, "body: {}", r.text);
    assert!(r.json["code"].is_string(), "body: {}", r.text);
}

/// A 400 whose `message` is the class-validator array containing every `expected` text.
#[track_caller]
fn assert_validation(r: &Reply, expected: &[&str]) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "body: {}", r.text);
    assert_eq!(r.json["statusCode"], 400);
    assert_eq!(r.json["error"], "Bad Request");
    let list: Vec<&str> = r.json["message"]
        .as_array()
        .unwrap_or_else(|| panic!("message is not an array: {}", r.text))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for e in expected {
        assert!(list.contains(e), "{e:?} missing from {list:?}");
    }
}

/// The JWT guard's bare 401.
#[track_caller]
fn assert_unauthorized(r: &Reply) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "body: {}", r.text);
    assert_eq!(
        r.json,
        json!({"message": "Unauthorized", "statusCode": 401, "code": "unauthorized"})
    );
}

fn event_body(name: &str) -> Value {
    json!({
        "name": name,
        "starts_at": "2025-11-03T10:00:00.000Z",
        "ends_at": "2025-11-03T18:00:00.000Z",
        "total_qty": 1000,
        "max_per_user": 4,
        "price": 50000,
    })
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// `X-Signature` of `body` signed at the fake clock's start, [`SIGNED_AT`].
fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(CALLBACK_SECRET).expect("any key length");
    mac.update(format!("{}.", SIGNED_AT).as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `X-Signature-Timestamp` of every signed callback here: the fake clock's start, in seconds.
const SIGNED_AT: i64 = T0 / 1000;

fn is_uuid(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| flash_http::validate::parse_uuid(s).is_some())
}

/// `2025-11-03T10:00:00.000Z`: UTC, milliseconds.
fn is_iso_millis(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24
            && s.ends_with('Z')
            && &s[10..11] == "T"
            && &s[19..20] == "."
            && s[20..23].bytes().all(|b| b.is_ascii_digit())
            && Timestamp::parse_iso(s).is_some()
    })
}

#[track_caller]
fn assert_keys(v: &Value, keys: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    for k in keys {
        assert!(obj.contains_key(*k), "{k} missing from {v}");
    }
    for k in obj.keys() {
        assert!(!k.contains('_'), "field {k} is not camelCase in {v}");
    }
}

const EVENT_FIELDS: &[&str] = &[
    "id",
    "name",
    "startsAt",
    "endsAt",
    "totalQty",
    "soldQty",
    "maxPerUser",
    "price",
    "status",
    "prequeueStartsAt",
    "queueMode",
    "createdAt",
    "updatedAt",
];

// ---------------------------------------------------------------------------------------------
// Auth

#[tokio::test]
async fn registering_a_new_user_answers_200_with_an_empty_body() {
    let api = Api::new();
    let r = api.register("buyer01").await;
    r.expect(200);
    assert_eq!(r.text, "");
}

#[tokio::test]
async fn registering_a_taken_user_id_is_409_user_id_already_registered() {
    let api = Api::new();
    api.register("buyer01").await.expect(200);
    let r = api.register("buyer01").await;
    assert_error(&r, 409, "User ID already registered");
}

#[tokio::test]
async fn register_validation_errors_are_400_with_the_class_validator_message_array() {
    let api = Api::new();
    let cases = [
        (
            json!({"userId": "ab", "password": PASSWORD}),
            "userId must be longer than or equal to 4 characters",
        ),
        (
            json!({"userId": "x".repeat(51), "password": PASSWORD}),
            "userId must be shorter than or equal to 50 characters",
        ),
        (
            json!({"userId": "bad name!", "password": PASSWORD}),
            r"userId must match /^[a-zA-Z0-9_\-]+$/ regular expression",
        ),
        (
            json!({"userId": "buyer01", "password": "short"}),
            "password must be longer than or equal to 8 characters",
        ),
        (
            json!({"userId": "buyer01", "password": PASSWORD, "foo": 1}),
            "property foo should not exist",
        ),
        (
            json!({"userId": 12345, "password": PASSWORD}),
            "userId must be a string",
        ),
        (json!({"userId": "buyer01"}), "password should not be empty"),
    ];
    for (body, message) in cases {
        let r = api.send(post("/auth/register").json(&body)).await;
        assert_validation(&r, &[message]);
        assert_eq!(r.json["code"], "validation_failed");
    }
    // Nothing was registered by the refused attempts.
    assert_error(
        &api.login("buyer01", PASSWORD).await,
        401,
        "Invalid credentials",
    );
}

#[tokio::test]
async fn admin_registration_with_a_bad_secret_is_401_even_for_a_taken_user_id() {
    let api = Api::new();
    let body = |login: &str, secret: &str| json!({"userId": login, "password": PASSWORD, "adminSecret": secret});
    let r = api
        .send(post("/auth/register/admin").json(&body("boss01", "wrong")))
        .await;
    assert_error(&r, 401, "Invalid admin secret");

    api.register("taken01").await.expect(200);
    let r = api
        .send(post("/auth/register/admin").json(&body("taken01", "wrong")))
        .await;
    assert_error(&r, 401, "Invalid admin secret");

    let r = api
        .send(post("/auth/register/admin").json(&body("taken01", ADMIN_SECRET)))
        .await;
    assert_error(&r, 409, "User ID already registered");

    let r = api
        .send(post("/auth/register/admin").json(&json!({"userId": "boss01", "password": PASSWORD})))
        .await;
    assert_validation(&r, &["adminSecret should not be empty"]);
}

#[tokio::test]
async fn admin_registration_with_the_right_secret_answers_200_and_logs_in_as_admin() {
    let api = Api::new();
    let r = api
        .send(post("/auth/register/admin").json(&json!({
            "userId": "boss01", "password": PASSWORD, "adminSecret": ADMIN_SECRET
        })))
        .await;
    r.expect(200);
    assert_eq!(r.text, "");
    let admin = api.session("boss01").await;
    assert_eq!(claims(&admin.access)["role"], "ADMIN");
}

#[tokio::test]
async fn login_answers_201_with_a_token_pair_carrying_the_legacy_claims() {
    let api = Api::new();
    api.register("buyer01").await.expect(200);
    let r = api.login("buyer01", PASSWORD).await;
    r.expect(201);
    let obj = r.json.as_object().expect("object");
    assert_eq!(
        obj.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from(["accessToken", "refreshToken"])
    );
    let access = claims(&r.str("accessToken"));
    let iat = T0 / 1000;
    assert!(is_uuid(&access["sub"]), "{access}");
    assert_eq!(access["userId"], "buyer01");
    assert_eq!(access["role"], "USER");
    assert_eq!(access["iat"], iat);
    assert_eq!(access["exp"], iat + ACCESS_TTL_SECS);
    assert_eq!(access["typ"], "access");
    assert!(
        access["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "{access}"
    );

    let refresh = claims(&r.str("refreshToken"));
    assert_eq!(refresh["sub"], access["sub"]);
    assert_eq!(refresh["typ"], "refresh");
    assert_eq!(refresh["exp"], iat + REFRESH_TTL_SECS);
    assert_ne!(refresh["jti"], access["jti"]);
}

#[tokio::test]
async fn login_with_a_wrong_password_or_an_unknown_user_is_401_invalid_credentials() {
    let api = Api::new();
    api.register("buyer01").await.expect(200);
    assert_error(
        &api.login("buyer01", "wrong-password").await,
        401,
        "Invalid credentials",
    );
    assert_error(
        &api.login("nobody99", PASSWORD).await,
        401,
        "Invalid credentials",
    );
    let r = api.send(post("/auth/login").json(&json!({}))).await;
    assert_validation(
        &r,
        &["userId should not be empty", "password should not be empty"],
    );
}

#[tokio::test]
async fn too_many_logins_for_one_user_are_429_with_retry_after() {
    let api = Api::new();
    api.register("buyer01").await.expect(200);
    let limit = settings().auth.login_per_user.limit;
    for _ in 0..limit {
        api.login("buyer01", "wrong-password").await.expect(401);
    }
    let r = api.login("buyer01", PASSWORD).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.json["statusCode"], 429);
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("numeric Retry-After");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

#[tokio::test]
async fn refresh_rotates_the_pair_and_a_reused_refresh_token_is_401_and_revokes_its_family() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    let r = api
        .send(post("/auth/refresh").json(&json!({"refreshToken": u.refresh})))
        .await;
    r.expect(201);
    let rotated = r.str("refreshToken");
    assert_ne!(rotated, u.refresh);
    assert_eq!(claims(&r.str("accessToken"))["typ"], "access");
    // The new access token works.
    api.send(get("/orders").bearer(&r.str("accessToken")))
        .await
        .expect(200);

    let reused = api
        .send(post("/auth/refresh").json(&json!({"refreshToken": u.refresh})))
        .await;
    assert_error(&reused, 401, "Invalid refresh token");
    // Reuse revoked the whole family, including the rotated token.
    let r = api
        .send(post("/auth/refresh").json(&json!({"refreshToken": rotated})))
        .await;
    assert_error(&r, 401, "Invalid refresh token");
}

#[tokio::test]
async fn an_access_token_is_never_a_refresh_token_nor_the_reverse() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    let r = api
        .send(post("/auth/refresh").json(&json!({"refreshToken": u.access})))
        .await;
    assert_error(&r, 401, "Invalid refresh token");
    assert_unauthorized(&api.send(get("/orders").bearer(&u.refresh)).await);
    let r = api
        .send(post("/auth/refresh").json(&json!({"refreshToken": "not-a-jwt"})))
        .await;
    assert_error(&r, 401, "Invalid refresh token");
    let r = api.send(post("/auth/refresh").json(&json!({}))).await;
    assert_validation(&r, &["refreshToken should not be empty"]);
}

#[tokio::test]
async fn logout_answers_200_with_an_empty_body_and_ends_the_session() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    api.send(get("/orders").bearer(&u.access)).await.expect(200);
    let r = api
        .send(post("/auth/logout").json(&json!({"refreshToken": u.refresh})))
        .await;
    r.expect(200);
    assert_eq!(r.text, "");
    let r = api
        .send(post("/auth/refresh").json(&json!({"refreshToken": u.refresh})))
        .await;
    assert_error(&r, 401, "Invalid refresh token");
    // The access token of the ended session is refused at once, like a forged one (SPEC §11).
    let r = api.send(get("/orders").bearer(&u.access)).await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = api
        .send(post("/auth/logout").json(&json!({"refreshToken": "garbage"})))
        .await;
    assert_error(&r, 401, "Invalid refresh token");
    let r = api.send(post("/auth/logout").json(&json!({}))).await;
    assert_validation(&r, &["refreshToken should not be empty"]);
}

// ---------------------------------------------------------------------------------------------
// Guards

#[tokio::test]
async fn a_missing_or_invalid_bearer_token_is_the_bare_legacy_401() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    // A token signed with another secret.
    let foreign = {
        let mut parts: Vec<String> = u.access.split('.').map(str::to_owned).collect();
        parts[2] = URL_SAFE_NO_PAD.encode([7u8; 32]);
        parts.join(".")
    };
    let routes = [
        post("/queue/enqueue").json(&json!({"eventId": "__global__"})),
        get("/orders"),
        get("/events/admin/all"),
        post("/payments").json(&json!({"orderId": uuid::Uuid::new_v4(), "method": "MOCK"})),
    ];
    for route in routes {
        let (method, uri, body) = (route.method.clone(), route.uri.clone(), route.body.clone());
        let variants: [Option<String>; 5] = [
            None,
            Some("Bearer garbage".into()),
            Some(format!("Basic {}", u.access)),
            Some(format!("Bearer {foreign}")),
            Some("Bearer ".into()),
        ];
        for auth in variants {
            let mut c = call(method.clone(), &uri);
            if !body.is_empty() {
                c = c.raw(body.clone());
            }
            if let Some(a) = &auth {
                c = c.header("authorization", a);
            }
            let r = api.send(c).await;
            assert_unauthorized(&r);
        }
    }
}

#[tokio::test]
async fn an_expired_access_token_is_401() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    api.send(get("/orders").bearer(&u.access)).await.expect(200);
    api.clock
        .advance(Duration::from_secs(ACCESS_TTL_SECS as u64 + 120));
    assert_unauthorized(&api.send(get("/orders").bearer(&u.access)).await);
}

#[tokio::test]
async fn a_buyer_token_on_admin_routes_is_403_forbidden_resource() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let buyer = api.user("buyer01").await;
    let id = api.event(&admin, "DRAFT", 10, 2).await;
    let calls = [
        get("/events/admin/all"),
        post("/events").json(&event_body("Concert")),
        patch(&format!("/events/{id}")).json(&json!({"status": "ONSALE"})),
        delete(&format!("/events/{id}")),
    ];
    for c in calls {
        let r = api.send(c.bearer(&buyer.access)).await;
        assert_eq!(
            r.json,
            json!({"message": "Forbidden resource", "error": "Forbidden", "statusCode": 403, "code": "forbidden"}),
            "{}",
            r.text
        );
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
    // The event was neither changed nor deleted.
    let r = api
        .send(get(&format!("/events/{id}")).bearer(&admin.access))
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "DRAFT");
}

/// Nest runs guards before pipes: a buyer learns nothing about the DTO of an admin route.
#[tokio::test]
async fn a_buyer_is_refused_with_403_before_the_admin_event_body_is_validated() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let buyer = api.user("buyer01").await;
    let id = api.event(&admin, "DRAFT", 10, 2).await;
    let r = api
        .send(post("/events").bearer(&buyer.access).json(&json!({})))
        .await;
    assert_error(&r, 403, "Forbidden resource");
    let r = api
        .send(
            patch(&format!("/events/{id}"))
                .bearer(&buyer.access)
                .json(&json!({"status": "BOGUS"})),
        )
        .await;
    assert_error(&r, 403, "Forbidden resource");
}

// ---------------------------------------------------------------------------------------------
// Queue

#[tokio::test]
async fn enqueue_answers_201_with_a_ticket_id_for_an_event_and_for_the_global_queue() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 2).await;
    for scope in [event.as_str(), "__global__"] {
        let r = api.enqueue(&u, scope).await;
        r.expect(201);
        assert_eq!(
            r.json
                .as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["ticketId".to_owned()])
        );
        assert!(is_uuid(&r.json["ticketId"]), "{}", r.text);
        // Idempotent per (user, queue): the live ticket comes back.
        let again = api.enqueue(&u, scope).await;
        again.expect(201);
        assert_eq!(again.json["ticketId"], r.json["ticketId"]);
    }
}

#[tokio::test]
async fn enqueue_with_a_bad_event_id_is_400_event_id_must_be_a_uuid() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    for bad in ["nope", "", "12345678-1234-1234-1234-12345678901"] {
        let r = api.enqueue(&u, bad).await;
        assert_eq!(
            r.json["message"],
            json!(["eventId must be a UUID"]),
            "{bad:?}"
        );
        r.expect(400);
    }
}

#[tokio::test]
async fn enqueue_with_an_unknown_property_names_that_property() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    let r = api
        .send(
            post("/queue/enqueue")
                .bearer(&u.access)
                .json(&json!({"eventId": "__global__", "extra": true})),
        )
        .await;
    assert_eq!(
        r.json["message"],
        json!(["property extra should not exist"]),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn enqueue_with_a_missing_or_non_string_event_id_names_the_uuid_rule() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    for body in [json!({}), json!({"eventId": 5})] {
        let r = api
            .send(post("/queue/enqueue").bearer(&u.access).json(&body))
            .await;
        assert_validation(&r, &["eventId must be a UUID"]);
        let texts = r.json["message"].to_string();
        assert!(!texts.contains("__global__"), "{texts}");
    }
}

#[tokio::test]
async fn enqueue_for_a_missing_or_draft_event_is_404_and_for_a_closed_event_400() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let draft = api.event(&admin, "DRAFT", 10, 2).await;
    let closed = api.event(&admin, "CLOSED", 10, 2).await;
    let missing = uuid::Uuid::new_v4().to_string();
    assert_error(&api.enqueue(&u, &missing).await, 404, "Event not found");
    assert_error(&api.enqueue(&u, &draft).await, 404, "Event not found");
    assert_error(&api.enqueue(&u, &closed).await, 400, "Event is not on sale");
}

#[tokio::test]
async fn queue_status_of_a_waiting_ticket_reports_position_queue_size_and_estimated_wait() {
    let api = Api::new();
    let a = api.user("buyer01").await;
    let b = api.user("buyer02").await;
    api.enqueue(&a, "__global__").await.expect(201);
    let ticket = api.enqueue(&b, "__global__").await.str("ticketId");
    // No token needed (legacy).
    let r = api.status(&ticket).await;
    r.expect(200);
    assert_keys(
        &r.json,
        &[
            "ticketId",
            "state",
            "position",
            "queueSize",
            "estimatedWaitSeconds",
        ],
    );
    assert_eq!(r.json["ticketId"], ticket.as_str());
    assert_eq!(r.json["state"], "QUEUED");
    assert_eq!(r.json["position"], 2);
    assert_eq!(r.json["queueSize"], 2);
    assert!(r.json["estimatedWaitSeconds"].is_u64(), "{}", r.text);
    assert!(r.json.get("gateToken").is_none(), "{}", r.text);
}

#[tokio::test]
async fn queue_status_without_ticket_id_is_400_unknown_is_404_and_non_uuid_is_400() {
    let api = Api::new();
    for uri in ["/queue/status", "/queue/status?ticketId="] {
        let r = api.send(get(uri)).await;
        assert_error(&r, 400, "ticketId query parameter is required");
    }
    let r = api.status(&uuid::Uuid::new_v4().to_string()).await;
    assert_error(&r, 404, "Queue ticket not found");
    let r = api.status("not-a-ticket").await;
    assert_validation(&r, &["ticketId must be a UUID"]);
    let id = uuid::Uuid::new_v4();
    let r = api
        .send(get(&format!("/queue/status?ticketId={id}&ticketId={id}")))
        .await;
    assert_error(&r, 400, "ticketId must be a single value");
}

#[tokio::test]
async fn an_expired_admission_no_longer_lets_the_buyer_order() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 2).await;
    let ticket = api.admit(&u, "__global__").await;
    let gate_ttl = settings().queue.gate_ttl;
    api.clock.advance(gate_ttl + Duration::from_secs(1));
    assert_eq!(api.status(&ticket).await.json["state"], "EXPIRED");
    let r = api.place_order(&u, "k-1", &event, json!(1)).await;
    assert_error(&r, 403, "Invalid gate token or gate token expired");
}

#[tokio::test]
async fn an_admitted_ticket_reports_ready_with_a_gate_token_and_enters_with_201() {
    let api = Api::new();
    let u = api.user("buyer01").await;
    let ticket = api.enqueue(&u, "__global__").await.str("ticketId");
    api.promote().await;
    let st = api.status(&ticket).await;
    st.expect(200);
    assert_eq!(st.json["state"], "READY");
    assert!(st.json.get("position").is_none(), "{}", st.text);
    let gate = st.str("gateToken");
    assert!(!gate.is_empty());

    let r = api
        .send(
            post("/queue/enter")
                .bearer(&u.access)
                .json(&json!({"ticketId": ticket, "gateToken": gate})),
        )
        .await;
    r.expect(201);
    assert_eq!(r.json, json!({"status": "entered"}));
    assert_eq!(api.status(&ticket).await.json["state"], "USED");
}

#[tokio::test]
async fn entering_is_refused_with_the_legacy_401_and_404_texts() {
    let api = Api::new();
    let owner = api.user("buyer01").await;
    let other = api.user("buyer02").await;
    let waiting = api.user("buyer03").await;
    let ticket = api.enqueue(&owner, "__global__").await.str("ticketId");
    api.promote().await;
    let gate = api.status(&ticket).await.str("gateToken");
    let other_ticket = api.admit(&other, "__global__").await;
    let other_gate = api.status(&other_ticket).await.str("gateToken");
    let enter = |user: &User, ticket: &str, gate: &str| {
        post("/queue/enter")
            .bearer(&user.access)
            .json(&json!({"ticketId": ticket, "gateToken": gate}))
    };

    let r = api.send(enter(&owner, &ticket, "forged-token")).await;
    assert_error(&r, 401, "Gate token mismatch");
    let r = api.send(enter(&owner, &ticket, &other_gate)).await;
    assert_error(&r, 401, "Gate token mismatch");
    let r = api.send(enter(&other, &ticket, &gate)).await;
    assert_error(&r, 401, "Ticket does not belong to this user");
    let r = api
        .send(enter(&owner, &uuid::Uuid::new_v4().to_string(), &gate))
        .await;
    assert_error(&r, 404, "Queue ticket not found");

    // Enqueued after the promotion pass: still QUEUED.
    let queued = api.enqueue(&waiting, "__global__").await.str("ticketId");
    let r = api.send(enter(&waiting, &queued, &gate)).await;
    assert_error(&r, 401, "Ticket is not ready to enter");

    let r = api
        .send(
            post("/queue/enter")
                .bearer(&owner.access)
                .json(&json!({"ticketId": "x", "gateToken": ""})),
        )
        .await;
    assert_validation(
        &r,
        &["ticketId must be a UUID", "gateToken should not be empty"],
    );
    // The refused attempts did not spend the admission.
    assert_eq!(api.status(&ticket).await.json["state"], "READY");
}

#[tokio::test]
async fn leaving_the_queue_answers_200_and_takes_the_ticket_out_of_the_line() {
    let api = Api::new();
    let a = api.user("buyer01").await;
    let b = api.user("buyer02").await;
    let first = api.enqueue(&a, "__global__").await.str("ticketId");
    let second = api.enqueue(&b, "__global__").await.str("ticketId");
    assert_eq!(api.status(&second).await.json["position"], 2);

    // Someone else's ticket is not found for the caller.
    let r = api
        .send(
            post("/queue/leave")
                .bearer(&b.access)
                .json(&json!({"ticketId": first})),
        )
        .await;
    assert_error(&r, 404, "Queue ticket not found");

    let r = api
        .send(
            post("/queue/leave")
                .bearer(&a.access)
                .json(&json!({"ticketId": first})),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["ticketId"], first.as_str());
    assert_eq!(r.json["state"], "EXPIRED");
    let after = api.status(&second).await;
    assert_eq!(after.json["position"], 1, "{}", after.text);
    assert_eq!(after.json["queueSize"], 1, "{}", after.text);

    let r = api
        .send(
            post("/queue/leave")
                .bearer(&a.access)
                .json(&json!({"ticketId": "nope"})),
        )
        .await;
    assert_validation(&r, &["ticketId must be a UUID"]);
}

#[tokio::test]
async fn queue_healthz_answers_ok_without_dependencies() {
    let api = Api::new();
    api.faults.set(true);
    let r = api.send(get("/queue/healthz")).await;
    r.expect(200);
    assert_eq!(r.json, json!({"status": "ok"}));
}

// ---------------------------------------------------------------------------------------------
// Events

#[tokio::test]
async fn the_public_event_list_shows_only_onsale_and_closed_events_with_camel_case_fields() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let draft = api.event(&admin, "DRAFT", 10, 2).await;
    let onsale = api.event(&admin, "ONSALE", 10, 2).await;
    let closed = api.event(&admin, "CLOSED", 10, 2).await;
    let r = api.send(get("/events")).await;
    r.expect(200);
    let list = r.json.as_array().expect("array");
    let ids: BTreeSet<&str> = list.iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(ids, BTreeSet::from([onsale.as_str(), closed.as_str()]));
    assert!(!ids.contains(draft.as_str()));
    for e in list {
        assert_keys(e, EVENT_FIELDS);
        for date in ["startsAt", "endsAt", "createdAt", "updatedAt"] {
            assert!(is_iso_millis(&e[date]), "{date}: {}", e[date]);
        }
        assert_eq!(e["startsAt"], "2025-11-03T10:00:00.000Z");
        assert_eq!(e["totalQty"], 10);
        assert_eq!(e["soldQty"], 0);
        assert_eq!(e["maxPerUser"], 2);
        assert_eq!(e["price"], 50000);
        assert!(matches!(e["status"].as_str(), Some("ONSALE" | "CLOSED")));
    }
}

#[tokio::test]
async fn the_public_event_list_is_ordered_by_start() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let mut ids = Vec::new();
    for (name, start, end) in [
        (
            "Late",
            "2025-12-01T10:00:00.000Z",
            "2025-12-01T12:00:00.000Z",
        ),
        (
            "Early",
            "2025-11-01T10:00:00.000Z",
            "2025-11-01T12:00:00.000Z",
        ),
    ] {
        let mut body = event_body(name);
        body["starts_at"] = json!(start);
        body["ends_at"] = json!(end);
        let id = api.create_event(&admin, &body).await.str("id");
        api.patch_event(&admin, &id, &json!({"status": "ONSALE"}))
            .await
            .expect(200);
        ids.push(id);
    }
    let r = api.send(get("/events")).await;
    let names: Vec<&str> = r
        .json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["Early", "Late"]);
}

#[tokio::test]
async fn creating_an_event_takes_a_snake_case_body_and_answers_201_draft() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let r = api.create_event(&admin, &event_body("Concert")).await;
    r.expect(201);
    assert_keys(&r.json, EVENT_FIELDS);
    assert!(is_uuid(&r.json["id"]));
    assert_eq!(r.json["name"], "Concert");
    assert_eq!(r.json["startsAt"], "2025-11-03T10:00:00.000Z");
    assert_eq!(r.json["endsAt"], "2025-11-03T18:00:00.000Z");
    assert_eq!(r.json["totalQty"], 1000);
    assert_eq!(r.json["soldQty"], 0);
    assert_eq!(r.json["maxPerUser"], 4);
    assert_eq!(r.json["price"], 50000);
    assert_eq!(r.json["status"], "DRAFT");
    assert_eq!(r.json["createdAt"], Timestamp(T0).to_iso());
    assert_eq!(r.json["updatedAt"], Timestamp(T0).to_iso());
}

#[tokio::test]
async fn a_camel_case_key_in_an_event_body_is_400_property_should_not_exist() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let mut body = event_body("Concert");
    let starts = body
        .as_object_mut()
        .and_then(|o| o.remove("starts_at"))
        .expect("starts_at");
    body["startsAt"] = starts;
    let r = api.create_event(&admin, &body).await;
    assert_validation(
        &r,
        &[
            "property startsAt should not exist",
            "startsAt must be a Date instance",
        ],
    );
    let r = api
        .send(get("/events/admin/all").bearer(&admin.access))
        .await;
    assert_eq!(r.json, json!([]), "nothing was created");
}

#[tokio::test]
async fn a_scheduled_sale_takes_its_pre_queue_and_its_line_reads_prequeue_until_the_start() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let mut body = event_body("Scheduled");
    body["prequeue_starts_at"] = json!("2025-11-03T10:00:00.000Z");
    body["queue_mode"] = json!("event");
    let r = api.create_event(&admin, &body).await;
    assert_error(&r, 400, "prequeueStartsAt must be earlier than startsAt");
    body["prequeue_starts_at"] = json!("2025-11-03T09:00:00.000Z");
    body["queue_mode"] = json!("global");
    let r = api.create_event(&admin, &body).await;
    assert_error(
        &r,
        400,
        "an event with a pre-queue must have queueMode event",
    );
    body["queue_mode"] = json!("lottery");
    let r = api.create_event(&admin, &body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);

    // A pre-queue not open yet refuses joins; an open one answers PREQUEUE with the start.
    let u = api.user("buyer01").await;
    for (opens, starts, joins) in [
        (
            "2098-01-01T00:00:00.000Z",
            "2099-01-01T00:00:00.000Z",
            false,
        ),
        ("2000-01-01T00:00:00.000Z", "2099-01-01T00:00:00.000Z", true),
    ] {
        let mut body = event_body("Scheduled");
        body["starts_at"] = json!(starts);
        body["ends_at"] = json!("2099-01-02T00:00:00.000Z");
        body["prequeue_starts_at"] = json!(opens);
        body["queue_mode"] = json!("event");
        let created = api.create_event(&admin, &body).await;
        created.expect(201);
        assert_eq!(created.json["prequeueStartsAt"], opens);
        assert_eq!(created.json["queueMode"], "event");
        let id = created.json["id"].as_str().unwrap().to_owned();
        api.patch_event(&admin, &id, &json!({"status": "ONSALE"}))
            .await
            .expect(200);
        let r = api.enqueue(&u, &id).await;
        if !joins {
            assert_error(&r, 400, "Queue is not open yet");
            continue;
        }
        r.expect(201);
        let st = api.status(r.json["ticketId"].as_str().unwrap()).await;
        st.expect(200);
        assert_eq!(st.json["state"], "PREQUEUE", "{}", st.text);
        assert_eq!(st.json["startsAt"], starts);
        assert!(st.json["position"].is_null() && st.json["estimatedWaitSeconds"].is_null());
    }
}

#[tokio::test]
async fn an_event_starting_at_or_after_its_end_is_400() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    for ends in ["2025-11-03T10:00:00.000Z", "2025-11-03T09:00:00.000Z"] {
        let mut body = event_body("Concert");
        body["ends_at"] = json!(ends);
        let r = api.create_event(&admin, &body).await;
        assert_error(&r, 400, "startsAt must be earlier than endsAt");
    }
    let id = api.event(&admin, "DRAFT", 10, 2).await;
    let r = api
        .patch_event(
            &admin,
            &id,
            &json!({"starts_at": "2025-11-04T10:00:00.000Z", "ends_at": "2025-11-04T09:00:00.000Z"}),
        )
        .await;
    assert_error(&r, 400, "startsAt must be earlier than endsAt");
}

#[tokio::test]
async fn event_field_rules_use_the_class_validator_texts_with_camel_case_names() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let cases = [
        (
            "name",
            json!("a"),
            "name must be longer than or equal to 2 characters",
        ),
        (
            "starts_at",
            json!("yesterday"),
            "startsAt must be a Date instance",
        ),
        ("total_qty", json!(0), "totalQty must be a positive number"),
        (
            "total_qty",
            json!(1_000_001),
            "totalQty must not be greater than 1000000",
        ),
        (
            "total_qty",
            json!("10"),
            "totalQty must be an integer number",
        ),
        (
            "max_per_user",
            json!(101),
            "maxPerUser must not be greater than 100",
        ),
        ("price", json!(-1), "price must not be less than 0"),
        (
            "status",
            json!("ONSALE"),
            "property status should not exist",
        ),
    ];
    for (key, value, message) in cases {
        let mut body = event_body("Concert");
        body[key] = value;
        let r = api.create_event(&admin, &body).await;
        assert_validation(&r, &[message]);
    }
}

#[tokio::test]
async fn patching_an_event_follows_the_draft_onsale_closed_model() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let id = api.event(&admin, "DRAFT", 10, 2).await;
    let r = api
        .patch_event(&admin, &id, &json!({"status": "CLOSED"}))
        .await;
    assert_error(&r, 400, "Invalid status transition from DRAFT to CLOSED");

    let r = api
        .patch_event(&admin, &id, &json!({"status": "BOGUS"}))
        .await;
    assert_validation(
        &r,
        &["status must be one of the following values: DRAFT, ONSALE, CLOSED"],
    );

    api.clock.advance(Duration::from_secs(5));
    let r = api
        .patch_event(
            &admin,
            &id,
            &json!({"status": "ONSALE", "name": "Renamed", "price": 1}),
        )
        .await;
    r.expect(200);
    assert_keys(&r.json, EVENT_FIELDS);
    assert_eq!(r.json["status"], "ONSALE");
    assert_eq!(r.json["name"], "Renamed");
    assert_eq!(r.json["price"], 1);
    assert_eq!(r.json["createdAt"], Timestamp(T0).to_iso());
    assert_eq!(r.json["updatedAt"], Timestamp(T0 + 5000).to_iso());

    let r = api
        .patch_event(&admin, &id, &json!({"status": "CLOSED"}))
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "CLOSED");

    let r = api
        .patch_event(
            &admin,
            &uuid::Uuid::new_v4().to_string(),
            &json!({"name": "x1"}),
        )
        .await;
    assert_error(&r, 404, "Event not found");
    let r = api
        .patch_event(&admin, "nope", &json!({"name": "x1"}))
        .await;
    assert_validation(&r, &["id must be a UUID"]);
    let r = api.patch_event(&admin, &id, &json!({"totalQty": 5})).await;
    assert_validation(&r, &["property totalQty should not exist"]);
}

#[tokio::test]
async fn total_qty_cannot_drop_below_what_is_sold_or_held() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let buyer = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    api.hold(&buyer, &event, 3).await;
    let r = api
        .patch_event(&admin, &event, &json!({"total_qty": 2}))
        .await;
    assert_error(&r, 400, "totalQty cannot be less than sold quantity");
    let r = api
        .patch_event(&admin, &event, &json!({"total_qty": 3}))
        .await;
    r.expect(200);
    assert_eq!(r.json["totalQty"], 3);
}

#[tokio::test]
async fn reading_one_event_checks_the_id_and_hides_drafts_from_the_public() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let buyer = api.user("buyer01").await;
    let onsale = api.event(&admin, "ONSALE", 10, 2).await;
    let draft = api.event(&admin, "DRAFT", 10, 2).await;

    let r = api.send(get(&format!("/events/{onsale}"))).await;
    r.expect(200);
    assert_keys(&r.json, EVENT_FIELDS);
    assert_eq!(r.json["id"], onsale.as_str());

    let r = api.send(get("/events/not-a-uuid")).await;
    assert_validation(&r, &["id must be a UUID"]);
    assert_eq!(r.json["message"], json!(["id must be a UUID"]));

    let r = api
        .send(get(&format!("/events/{}", uuid::Uuid::new_v4())))
        .await;
    assert_error(&r, 404, "Event not found");

    for viewer in [None, Some(&buyer)] {
        let mut c = get(&format!("/events/{draft}"));
        if let Some(u) = viewer {
            c = c.bearer(&u.access);
        }
        assert_error(&api.send(c).await, 404, "Event not found");
    }
    let r = api
        .send(get(&format!("/events/{draft}")).bearer(&admin.access))
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "DRAFT");
}

#[tokio::test]
async fn deleting_an_event_answers_200_and_an_event_with_orders_is_409() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let buyer = api.user("buyer01").await;
    let empty = api.event(&admin, "DRAFT", 10, 2).await;
    let r = api
        .send(delete(&format!("/events/{empty}")).bearer(&admin.access))
        .await;
    r.expect(200);
    assert_eq!(r.json, json!({"message": "Event deleted successfully"}));
    let r = api
        .send(get(&format!("/events/{empty}")).bearer(&admin.access))
        .await;
    assert_error(&r, 404, "Event not found");
    let r = api
        .send(delete(&format!("/events/{empty}")).bearer(&admin.access))
        .await;
    assert_error(&r, 404, "Event not found");

    let sold = api.event(&admin, "ONSALE", 10, 2).await;
    api.hold(&buyer, &sold, 1).await;
    let r = api
        .send(delete(&format!("/events/{sold}")).bearer(&admin.access))
        .await;
    assert_error(&r, 409, "Event has orders and cannot be deleted");
    api.send(get(&format!("/events/{sold}"))).await.expect(200);

    let r = api.send(delete("/events/nope").bearer(&admin.access)).await;
    assert_validation(&r, &["id must be a UUID"]);
}

#[tokio::test]
async fn the_admin_list_shows_every_event_newest_first() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let first = api.event(&admin, "DRAFT", 10, 2).await;
    api.clock.advance(Duration::from_secs(1));
    let second = api.event(&admin, "ONSALE", 10, 2).await;
    api.clock.advance(Duration::from_secs(1));
    let third = api.event(&admin, "CLOSED", 10, 2).await;
    let r = api
        .send(get("/events/admin/all").bearer(&admin.access))
        .await;
    r.expect(200);
    let ids: Vec<&str> = r
        .json
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, [third.as_str(), second.as_str(), first.as_str()]);
    assert_unauthorized(&api.send(get("/events/admin/all")).await);
}

// ---------------------------------------------------------------------------------------------
// Orders

#[tokio::test]
async fn placing_an_order_without_an_idempotency_key_is_400() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 2).await;
    api.admit(&u, "__global__").await;
    for key in [None, Some(""), Some("   ")] {
        let mut c = post("/orders")
            .bearer(&u.access)
            .json(&json!({"event_id": event, "qty": 1}));
        if let Some(k) = key {
            c = c.header("Idempotency-Key", k);
        }
        let r = api.send(c).await;
        assert_error(&r, 400, "Idempotency-Key header is required");
    }
    // The header name is case-insensitive.
    let r = api
        .send(
            post("/orders")
                .bearer(&u.access)
                .header("idempotency-key", "k-1")
                .json(&json!({"event_id": event, "qty": 1})),
        )
        .await;
    r.expect(201);
}

#[tokio::test]
async fn placing_an_order_without_an_admission_is_403() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 2).await;
    let r = api.place_order(&u, "k-1", &event, json!(1)).await;
    assert_error(&r, 403, "Invalid gate token or gate token expired");
    // Waiting in line is not an admission either.
    api.enqueue(&u, "__global__").await.expect(201);
    let r = api.place_order(&u, "k-2", &event, json!(1)).await;
    assert_error(&r, 403, "Invalid gate token or gate token expired");
}

#[tokio::test]
async fn an_admitted_buyer_places_a_hold_with_201_and_an_order_id() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    let ticket = api.admit(&u, "__global__").await;
    let r = api.place_order(&u, "k-1", &event, json!(2)).await;
    r.expect(201);
    assert_keys(
        &r.json,
        &[
            "orderId",
            "status",
            "amount",
            "qty",
            "eventId",
            "eventName",
            "createdAt",
            "updatedAt",
        ],
    );
    assert!(
        r.json.get("id").is_none(),
        "POST /orders says orderId: {}",
        r.text
    );
    assert!(is_uuid(&r.json["orderId"]));
    assert_eq!(r.json["status"], "HOLD");
    assert_eq!(r.json["amount"], 100_000);
    assert_eq!(r.json["qty"], 2);
    assert_eq!(r.json["eventId"], event.as_str());
    assert_eq!(r.json["eventName"], "Concert");
    assert!(is_iso_millis(&r.json["createdAt"]));
    assert!(is_iso_millis(&r.json["updatedAt"]));
    // The admission is spent.
    assert_eq!(api.status(&ticket).await.json["state"], "ORDERED");
    let e = api.send(get(&format!("/events/{event}"))).await;
    assert_eq!(e.json["soldQty"], 0, "a HOLD is not sold");
}

#[tokio::test]
async fn an_admission_on_the_event_queue_or_an_x_gate_token_also_admits() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let a = api.user("buyer01").await;
    let b = api.user("buyer02").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;

    api.admit(&a, &event).await;
    api.place_order(&a, "k-1", &event, json!(1))
        .await
        .expect(201);

    let ticket = api.admit(&b, &event).await;
    let gate = api.status(&ticket).await.str("gateToken");
    let with_gate = |token: &str, key: &str| {
        post("/orders")
            .bearer(&b.access)
            .header("Idempotency-Key", key)
            .header("X-Gate-Token", token)
            .json(&json!({"event_id": event, "qty": 1}))
    };
    // A forged gate token is refused even though an admission exists.
    let r = api.send(with_gate("forged", "k-1")).await;
    assert_error(&r, 403, "Invalid gate token or gate token expired");
    api.send(with_gate(&gate, "k-2")).await.expect(201);
}

#[tokio::test]
async fn the_same_idempotency_key_replays_the_order_and_a_different_body_is_422() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let other = api.user("buyer02").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    api.admit(&u, "__global__").await;
    let first = api.place_order(&u, "k-1", &event, json!(1)).await;
    first.expect(201);
    let again = api.place_order(&u, "k-1", &event, json!(1)).await;
    again.expect(201);
    assert_eq!(again.json["orderId"], first.json["orderId"]);
    assert_eq!(again.json, first.json);

    let r = api.place_order(&u, "k-1", &event, json!(2)).await;
    assert_error(&r, 422, "Idempotency-Key reused with a different request");

    // Keys are per user: another buyer's identical key is a new request (here: not admitted).
    let r = api.place_order(&other, "k-1", &event, json!(1)).await;
    assert_error(&r, 403, "Invalid gate token or gate token expired");

    let list = api.send(get("/orders").bearer(&u.access)).await;
    assert_eq!(list.json.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn order_body_validation_is_strict_and_snake_case() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    api.admit(&u, "__global__").await;
    let r = api.place_order(&u, "k-1", &event, json!("1")).await;
    assert_validation(&r, &["qty must be an integer number"]);
    for (qty, message) in [
        (json!(0), "qty must be a positive number"),
        (json!(1.5), "qty must be an integer number"),
        (json!(null), "qty must be an integer number"),
    ] {
        let r = api.place_order(&u, "k-2", &event, qty).await;
        assert_validation(&r, &[message]);
    }
    let r = api.place_order(&u, "k-3", "nope", json!(1)).await;
    assert_eq!(r.json["message"], json!(["eventId must be a UUID"]));
    let r = api
        .send(
            post("/orders")
                .bearer(&u.access)
                .header("Idempotency-Key", "k-4")
                .json(&json!({"eventId": event, "qty": 1})),
        )
        .await;
    assert_validation(
        &r,
        &[
            "property eventId should not exist",
            "eventId must be a UUID",
        ],
    );
    // None of the refused bodies spent the admission.
    api.place_order(&u, "k-5", &event, json!(1))
        .await
        .expect(201);
}

#[tokio::test]
async fn ordering_more_than_remains_is_400_not_enough_tickets_remaining() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let a = api.user("buyer01").await;
    let b = api.user("buyer02").await;
    let event = api.event(&admin, "ONSALE", 1, 4).await;
    api.admit(&a, "__global__").await;
    let r = api.place_order(&a, "k-1", &event, json!(2)).await;
    assert_error(&r, 400, "Not enough tickets remaining");
    api.place_order(&a, "k-2", &event, json!(1))
        .await
        .expect(201);
    api.admit(&b, "__global__").await;
    let r = api.place_order(&b, "k-1", &event, json!(1)).await;
    assert_error(&r, 400, "Not enough tickets remaining");
}

#[tokio::test]
async fn ordering_over_the_per_user_limit_is_400() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 100, 2).await;
    api.admit(&u, "__global__").await;
    let r = api.place_order(&u, "k-1", &event, json!(3)).await;
    assert_error(&r, 400, "Requested quantity exceeds per-user limit");
    api.place_order(&u, "k-2", &event, json!(2))
        .await
        .expect(201);
    api.admit(&u, "__global__").await;
    let r = api.place_order(&u, "k-3", &event, json!(1)).await;
    assert_error(&r, 400, "Requested quantity exceeds per-user limit");
}

#[tokio::test]
async fn ordering_for_a_missing_or_closed_event_is_refused() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let closed = api.event(&admin, "CLOSED", 10, 2).await;
    api.admit(&u, "__global__").await;
    let r = api
        .place_order(&u, "k-1", &uuid::Uuid::new_v4().to_string(), json!(1))
        .await;
    assert_error(&r, 404, "Event not found");
    let r = api.place_order(&u, "k-2", &closed, json!(1)).await;
    assert_error(&r, 400, "Event is not on sale");
}

#[tokio::test]
async fn order_reads_use_id_and_another_users_order_is_404() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let a = api.user("buyer01").await;
    let b = api.user("buyer02").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    let placed = api.hold(&a, &event, 1).await;
    let order_id = placed["orderId"].as_str().expect("orderId").to_owned();

    let list = api.send(get("/orders").bearer(&a.access)).await;
    list.expect(200);
    let items = list.json.as_array().expect("array");
    assert_eq!(items.len(), 1);
    assert_keys(
        &items[0],
        &[
            "id",
            "status",
            "amount",
            "qty",
            "eventId",
            "eventName",
            "createdAt",
            "updatedAt",
        ],
    );
    assert_eq!(items[0]["id"], order_id.as_str());
    assert!(items[0].get("orderId").is_none(), "{}", list.text);

    let one = api.order_of(&a, &order_id).await;
    one.expect(200);
    assert_eq!(one.json["id"], order_id.as_str());
    assert_eq!(one.json["status"], "HOLD");
    assert!(one.json.get("orderId").is_none());

    assert_error(&api.order_of(&b, &order_id).await, 404, "Order not found");
    api.order_of(&admin, &order_id).await.expect(200);
    assert_error(
        &api.order_of(&a, &uuid::Uuid::new_v4().to_string()).await,
        404,
        "Order not found",
    );
    assert_validation(&api.order_of(&a, "nope").await, &["id must be a UUID"]);
    let empty = api.send(get("/orders").bearer(&b.access)).await;
    assert_eq!(empty.json, json!([]));
}

// ---------------------------------------------------------------------------------------------
// Payments

#[tokio::test]
async fn requesting_a_payment_answers_201_req_and_a_repeat_returns_the_same_payment() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    let order = api.hold(&u, &event, 2).await;
    let order_id = order["orderId"].as_str().expect("orderId");
    let r = api.request_payment(&u, order_id).await;
    r.expect(201);
    let obj = r.json.as_object().expect("object");
    assert_eq!(
        obj.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        BTreeSet::from([
            "paymentId",
            "orderId",
            "status",
            "method",
            "amount",
            "createdAt",
            "updatedAt"
        ])
    );
    assert!(is_uuid(&r.json["paymentId"]));
    assert_eq!(r.json["orderId"], order_id);
    assert_eq!(r.json["status"], "REQ");
    assert_eq!(r.json["method"], "MOCK");
    assert_eq!(r.json["amount"], 100_000);
    assert!(is_iso_millis(&r.json["createdAt"]));
    assert!(is_iso_millis(&r.json["updatedAt"]));

    let again = api.request_payment(&u, order_id).await;
    again.expect(201);
    assert_eq!(again.json["paymentId"], r.json["paymentId"]);
}

#[tokio::test]
async fn payment_requests_are_validated_and_scoped_to_the_owner() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let owner = api.user("buyer01").await;
    let other = api.user("buyer02").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    let order = api.hold(&owner, &event, 1).await;
    let order_id = order["orderId"].as_str().expect("orderId");

    assert_error(
        &api.request_payment(&other, order_id).await,
        404,
        "Order not found",
    );
    assert_error(
        &api.request_payment(&owner, &uuid::Uuid::new_v4().to_string())
            .await,
        404,
        "Order not found",
    );
    let r = api.request_payment(&owner, "nope").await;
    assert_eq!(r.json["message"], json!(["orderId must be a UUID"]));
    let r = api
        .send(
            post("/payments")
                .bearer(&owner.access)
                .json(&json!({"orderId": order_id, "method": "M".repeat(65)})),
        )
        .await;
    assert_validation(
        &r,
        &["method must be shorter than or equal to 64 characters"],
    );
    let r = api
        .send(
            post("/payments")
                .bearer(&owner.access)
                .json(&json!({"orderId": order_id})),
        )
        .await;
    assert_validation(&r, &["method must be a string"]);
}

fn callback_body(order_id: &str, payment_id: &str, status: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"orderId": order_id, "paymentId": payment_id, "status": status}))
        .expect("json")
}

/// An admitted buyer with a HOLD and its REQ payment: (buyer, order id, payment id, event id).
async fn order_with_payment(api: &Api, admin: &User) -> (User, String, String, String) {
    let u = api.user("buyer01").await;
    let event = api.event(admin, "ONSALE", 10, 4).await;
    let order = api.hold(&u, &event, 2).await;
    let order_id = order["orderId"].as_str().expect("orderId").to_owned();
    let payment = api.request_payment(&u, &order_id).await;
    payment.expect(201);
    let payment_id = payment.str("paymentId");
    (u, order_id, payment_id, event)
}

#[tokio::test]
async fn an_expired_hold_is_reported_and_can_no_longer_be_paid() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    let order = api.hold(&u, &event, 2).await;
    let order_id = order["orderId"].as_str().expect("orderId");
    api.clock
        .advance(settings().orders.hold_ttl + Duration::from_secs(1));
    let expired = api
        .handlers
        .work
        .expire_holds
        .handle(&Context::new("t"))
        .await
        .expect("sweep");
    assert_eq!(expired.len(), 1);
    assert_eq!(api.order_of(&u, order_id).await.json["status"], "EXPIRED");
    assert_error(
        &api.request_payment(&u, order_id).await,
        400,
        "Order is not eligible for payment",
    );
    let e = api.send(get(&format!("/events/{event}"))).await;
    assert_eq!(e.json["soldQty"], 0);
    assert_eq!(e.json["heldQty"], 0, "{}", e.text);
}

#[tokio::test]
async fn a_buyer_cannot_post_the_payment_callback() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (u, order_id, payment_id, _) = order_with_payment(&api, &admin).await;
    let r = api
        .send(
            post("/payments/callback")
                .bearer(&u.access)
                .raw(callback_body(&order_id, &payment_id, "OK")),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.json["statusCode"], 403);
    assert_eq!(r.json["error"], "Forbidden");
    assert_eq!(
        r.json["message"],
        "Payment callbacks are reserved for the payment provider"
    );
    assert_eq!(api.order_of(&u, &order_id).await.json["status"], "HOLD");

    // Without a token or a signature: 401 (whatever its body shape, see the ignored test below).
    let r = api
        .send(post("/payments/callback").raw(callback_body(&order_id, &payment_id, "OK")))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert_eq!(r.json["message"], "Unauthorized");
}

#[tokio::test]
async fn an_anonymous_unsigned_callback_is_the_bare_guard_401() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (_, order_id, payment_id, _) = order_with_payment(&api, &admin).await;
    let r = api
        .send(post("/payments/callback").raw(callback_body(&order_id, &payment_id, "OK")))
        .await;
    assert_unauthorized(&r);
}

#[tokio::test]
async fn a_signed_callback_answers_201_and_makes_the_order_paid() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (u, order_id, payment_id, event) = order_with_payment(&api, &admin).await;
    let body = callback_body(&order_id, &payment_id, "OK");
    let r = api
        .send(
            post("/payments/callback")
                .header("X-Signature-Timestamp", &SIGNED_AT.to_string())
                .header("X-Signature", &sign(&body))
                .raw(body),
        )
        .await;
    r.expect(201);
    assert_eq!(r.json["paymentId"], payment_id.as_str());
    assert_eq!(r.json["orderId"], order_id.as_str());
    assert_eq!(r.json["status"], "OK");
    assert_eq!(r.json["method"], "MOCK");
    assert_eq!(r.json["amount"], 100_000);

    assert_eq!(api.order_of(&u, &order_id).await.json["status"], "PAID");
    // The public figures are at most the event memory's TTL old (the order read it).
    api.clock.advance(flash_handlers::events::EVENT_CACHE_TTL);
    let e = api.send(get(&format!("/events/{event}"))).await;
    assert_eq!(e.json["soldQty"], 2);
    // A late FAIL for a completed payment is refused.
    let fail = callback_body(&order_id, &payment_id, "FAIL");
    let r = api
        .send(
            post("/payments/callback")
                .header("X-Signature-Timestamp", &SIGNED_AT.to_string())
                .header("X-Signature", &sign(&fail))
                .raw(fail),
        )
        .await;
    assert_error(&r, 400, "Payment has already been completed successfully");
    assert_eq!(api.order_of(&u, &order_id).await.json["status"], "PAID");
}

#[tokio::test]
async fn requesting_a_payment_for_a_paid_order_returns_its_ok_payment_as_legacy_did() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (u, order_id, payment_id, _) = order_with_payment(&api, &admin).await;
    let body = callback_body(&order_id, &payment_id, "OK");
    api.send(
        post("/payments/callback")
            .header("X-Signature-Timestamp", &SIGNED_AT.to_string())
            .header("X-Signature", &sign(&body))
            .raw(body),
    )
    .await
    .expect(201);
    // Legacy §8.2 step 3: a PAID order answers with its most recent OK payment.
    let again = api.request_payment(&u, &order_id).await;
    again.expect(201);
    assert_eq!(again.json["paymentId"], payment_id.as_str());
    assert_eq!(again.json["status"], "OK");
}

#[tokio::test]
async fn a_callback_with_an_invalid_signature_is_401() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (u, order_id, payment_id, _) = order_with_payment(&api, &admin).await;
    let body = callback_body(&order_id, &payment_id, "OK");
    let other = callback_body(&order_id, &payment_id, "FAIL");
    for sig in [sign(&other), "zz".into(), String::new(), "00".repeat(32)] {
        let r = api
            .send(
                post("/payments/callback")
                    .header("X-Signature-Timestamp", &SIGNED_AT.to_string())
                    .header("X-Signature", &sig)
                    .raw(body.clone()),
            )
            .await;
        assert_error(&r, 401, "Invalid signature");
    }
    // Re-serializing changes the bytes: the signature covers the raw body.
    let spaced = String::from_utf8(body.clone())
        .expect("utf8")
        .replace(':', ": ");
    let r = api
        .send(
            post("/payments/callback")
                .header("X-Signature-Timestamp", &SIGNED_AT.to_string())
                .header("X-Signature", &sign(&body))
                .raw(spaced),
        )
        .await;
    assert_error(&r, 401, "Invalid signature");
    assert_eq!(api.order_of(&u, &order_id).await.json["status"], "HOLD");
}

#[tokio::test]
async fn an_admin_callback_with_fail_makes_the_order_fail() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (u, order_id, payment_id, _) = order_with_payment(&api, &admin).await;
    let r = api
        .send(
            post("/payments/callback")
                .bearer(&admin.access)
                .raw(callback_body(&order_id, &payment_id, "FAIL")),
        )
        .await;
    r.expect(201);
    assert_eq!(r.json["status"], "FAIL");
    assert_eq!(api.order_of(&u, &order_id).await.json["status"], "FAIL");
}

#[tokio::test]
async fn callback_errors_use_the_legacy_texts() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let (_, order_id, payment_id, _) = order_with_payment(&api, &admin).await;
    let as_admin = |body: Vec<u8>| post("/payments/callback").bearer(&admin.access).raw(body);
    let r = api
        .send(as_admin(callback_body(
            &order_id,
            &uuid::Uuid::new_v4().to_string(),
            "OK",
        )))
        .await;
    assert_error(&r, 404, "Payment not found");
    let r = api
        .send(as_admin(callback_body(
            &uuid::Uuid::new_v4().to_string(),
            &payment_id,
            "OK",
        )))
        .await;
    assert_error(&r, 400, "Payment does not belong to the provided order");
    let r = api
        .send(as_admin(callback_body(&order_id, &payment_id, "MAYBE")))
        .await;
    assert_validation(
        &r,
        &["status must be one of the following values: OK, FAIL"],
    );
    let r = api
        .send(as_admin(callback_body("x", &payment_id, "OK")))
        .await;
    assert_validation(&r, &["orderId must be a UUID"]);
}

// ---------------------------------------------------------------------------------------------
// Transport

#[tokio::test]
async fn a_body_over_64_kib_is_413_json() {
    let api = Api::new();
    let big = format!(
        r#"{{"userId":"buyer01","password":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let r = api.send(post("/auth/register").raw(big)).await;
    assert_error(&r, 413, "Request body is too large");
    // Streamed without Content-Length: still 413.
    let r = api
        .send(post("/auth/login").raw(vec![b' '; 70 * 1024]).streamed())
        .await;
    assert_error(&r, 413, "Request body is too large");
}

#[tokio::test]
async fn a_json_body_is_read_whatever_its_content_type() {
    let api = Api::new();
    for content_type in [None, Some("text/plain")] {
        let mut req = Request::post("/auth/register");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let login = format!("user{}", content_type.map_or(0, str::len));
        let body = json!({"userId": login, "password": PASSWORD}).to_string();
        let response = api
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).expect("request"))
            .await
            .unwrap_or_else(|e| match e {});
        assert_eq!(response.status(), StatusCode::OK, "{content_type:?}");
        api.login(&login, PASSWORD).await.expect(201);
    }
}

#[tokio::test]
async fn malformed_or_non_object_json_is_400() {
    let api = Api::new();
    let r = api.send(post("/auth/login").raw(r#"{"userId":"#)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_eq!(r.json["statusCode"], 400);
    assert_eq!(r.json["error"], "Bad Request");
    assert_eq!(r.json["code"], "malformed_json");
    let r = api.send(post("/auth/login").raw("[1,2]")).await;
    assert_error(&r, 400, "Request body must be a JSON object");
    let r = api.send(post("/auth/login").raw("not json")).await;
    r.expect(400);
}

#[tokio::test]
async fn an_unknown_route_or_method_is_the_legacy_404() {
    let api = Api::new();
    let r = api.send(get("/nope")).await;
    assert_error(&r, 404, "Cannot GET /nope");
    let r = api.send(call(Method::PUT, "/events")).await;
    assert_error(&r, 404, "Cannot PUT /events");
    let r = api.send(delete("/auth/login")).await;
    assert_error(&r, 404, "Cannot DELETE /auth/login");
}

#[tokio::test]
async fn live_answers_the_legacy_text_even_when_dependencies_are_down() {
    let api = Api::new();
    api.faults.set(true);
    let r = api.send(get("/live")).await;
    r.expect(200);
    assert_eq!(r.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    assert!(r.text.lines().any(|l| l == "service_live 1"), "{}", r.text);
    assert!(r.text.contains("# TYPE service_live gauge"));
}

#[tokio::test]
async fn ready_and_health_are_200_when_up_and_503_when_a_dependency_is_down() {
    let api = Api::new();
    let r = api.send(get("/ready")).await;
    r.expect(200);
    assert_eq!(r.json["status"], "ready");
    assert_eq!(r.json["checks"]["memory"]["status"], "up");

    let r = api.send(get("/health")).await;
    r.expect(200);
    assert_eq!(r.json["status"], "ok");
    assert_eq!(r.json["timestamp"], Timestamp(T0).to_iso());
    assert!(r.json["uptime"].is_f64(), "{}", r.text);
    assert_eq!(r.json["checks"]["memory"]["status"], "up");
    assert!(r.json["checks"]["memory"]["responseTime"].is_u64());

    api.faults.set(true);
    let r = api.send(get("/ready")).await;
    r.expect(503);
    assert_eq!(r.json["status"], "not_ready");
    assert_eq!(r.json["checks"]["memory"]["status"], "down");
    let r = api.send(get("/health")).await;
    r.expect(503);
    assert_eq!(r.json["status"], "error");
    assert_eq!(r.json["checks"]["memory"], json!({"status": "down"}));

    api.faults.set(false);
    api.send(get("/ready")).await.expect(200);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_legacy_names() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let waiting = api.user("buyer02").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    api.hold(&u, &event, 1).await;
    // Enqueued after the promotion pass: one QUEUED ticket on the event's queue.
    api.enqueue(&waiting, &event).await.expect(201);
    api.send(get("/nope")).await.expect(404);

    let r = api.send(get("/metrics")).await;
    r.expect(200);
    assert_eq!(r.content_type(), "text/plain; version=0.0.4; charset=utf-8");
    for name in [
        "flash_queue_length",
        "orders_created_total",
        "payments_successful_total",
        "http_requests_total",
        "http_request_duration_seconds",
    ] {
        assert!(
            r.text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{}",
            r.text
        );
    }
    assert!(
        r.text.lines().any(|l| l == "orders_created_total 1"),
        "{}",
        r.text
    );
    assert!(
        r.text.lines().any(|l| l.starts_with("flash_queue_length{")
            && l.contains(&event)
            && l.ends_with(" 1")),
        "{}",
        r.text
    );
    // The monitoring timeline's figures per line: one waiting on the event's line (never
    // promoted, so with the floor rate of 50 per 120 s: 3 s), none admitted there, the line open;
    // the site-wide line holds the buyer's consumed admission no longer. (Arrivals are counted
    // by the host's sampler, which this router test does not run.)
    for line in [
        format!(r#"flash_queue_admitted{{event="{event}"}} 0"#),
        format!(r#"flash_queue_estimated_wait_seconds{{event="{event}"}} 3"#),
        format!(r#"flash_queue_phase{{event="{event}"}} 2"#),
        // The event's own orders, counted per line as well as site-wide.
        format!(r#"flash_line_orders_total{{event="{event}",status="created"}} 1"#),
        format!(r#"flash_line_orders_total{{event="{event}",status="paid"}} 0"#),
        format!(r#"flash_line_payments_total{{event="{event}",status="ok"}} 0"#),
        r#"flash_queue_admitted{event="global"} 0"#.to_owned(),
        "queue_arrivals_total 0".to_owned(),
    ] {
        assert!(
            r.text.lines().any(|l| l == line),
            "{line} missing from:\n{}",
            r.text
        );
    }
    assert!(
        r.text.contains(r#"route="/auth/login""#) && r.text.contains(r#"route="unmatched""#),
        "{}",
        r.text
    );
    // SPEC §11: what the process keeps for clients, against its budgets. (The hold's key is the
    // one idempotency record; logins and the enqueue opened rate-limit windows.)
    for line in [
        r#"flash_budget_used{budget="idempotency_records"} 1"#,
        r#"flash_budget_max{budget="rate_limit_keys"} 100000"#,
        r#"flash_budget_evicted_total{budget="rate_limit_keys"} 0"#,
    ] {
        assert!(
            r.text.lines().any(|l| l == line),
            "{line} missing from:\n{}",
            r.text
        );
    }
    assert!(
        r.text.lines().any(
            |l| l.starts_with(r#"flash_budget_used{budget="rate_limit_keys"} "#)
                && !l.ends_with(" 0")
        ),
        "{}",
        r.text
    );
    flash_http::metrics::lint_exposition(&r.text).unwrap_or_else(|e| panic!("{e}\n{}", r.text));
}

/// Whether the router serves `method path` (anything but the fallback's `route_not_found`).
async fn is_served(api: &Api, method: &str, template: &str) -> bool {
    let uri = template.replace("{id}", &uuid::Uuid::new_v4().to_string());
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let r = api.send(call(method, &uri)).await;
    r.json["code"] != "route_not_found"
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let api = Api::new();
    let r = api.send(get("/openapi.json")).await;
    r.expect(200);
    assert!(r.content_type().starts_with("application/json"));
    assert!(
        r.json["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );

    let documented: BTreeSet<(String, String)> = flash_http::openapi::paths().into_iter().collect();
    let served: BTreeSet<(String, String)> = flash_http::openapi::SPEC_ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(documented, served);
    for (method, path) in &documented {
        assert!(
            is_served(&api, method, path).await,
            "{method} {path} is documented but not served"
        );
        assert!(
            r.json["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{method} {path} missing from the served document"
        );
    }
    // The probe can tell a missing route apart.
    assert!(!is_served(&api, "PUT", "/events/{id}").await);
    assert!(!is_served(&api, "GET", "/payments").await);
}

#[tokio::test]
async fn the_request_id_is_echoed_or_generated() {
    let api = Api::new();
    let r = api
        .send(get("/events").header("x-request-id", "req-abc-123"))
        .await;
    r.expect(200);
    assert_eq!(r.headers["x-request-id"], "req-abc-123");
    // Also on errors.
    let r = api
        .send(get("/nope").header("x-request-id", "req-404"))
        .await;
    assert_eq!(r.headers["x-request-id"], "req-404");
    let r = api.send(get("/events")).await;
    let generated = r.headers["x-request-id"].to_str().expect("ascii");
    assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
}

#[tokio::test]
async fn a_dependency_outage_is_503_with_a_clear_message_not_500() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let u = api.user("buyer01").await;
    let event = api.event(&admin, "ONSALE", 10, 4).await;
    let ticket = api.enqueue(&u, "__global__").await.str("ticketId");
    api.faults.set(true);

    let calls = [
        post("/auth/login").json(&json!({"userId": "buyer01", "password": PASSWORD})),
        post("/auth/register").json(&json!({"userId": "buyer02", "password": PASSWORD})),
        get("/events"),
        get(&format!("/events/{event}")),
        post("/queue/enqueue")
            .bearer(&u.access)
            .json(&json!({"eventId": "__global__"})),
        get(&format!("/queue/status?ticketId={ticket}")),
        post("/orders")
            .bearer(&u.access)
            .header("Idempotency-Key", "k-1")
            .json(&json!({"event_id": event, "qty": 1})),
        get("/orders").bearer(&u.access),
        post("/payments")
            .bearer(&u.access)
            .json(&json!({"orderId": uuid::Uuid::new_v4(), "method": "MOCK"})),
    ];
    for c in calls {
        let label = format!("{} {}", c.method, c.uri);
        let r = api.send(c).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{label}: {}",
            r.text
        );
        assert_eq!(r.json["statusCode"], 503, "{label}");
        assert_eq!(r.json["error"], "Service Unavailable", "{label}");
        assert_eq!(
            r.json["message"], "Service temporarily unavailable, please retry",
            "{label}"
        );
        assert_eq!(r.json["code"], "dependency_unavailable", "{label}");
    }

    api.faults.set(false);
    api.send(get("/events")).await.expect(200);
    api.status(&ticket).await.expect(200);
}

#[tokio::test]
async fn responses_carry_security_headers_and_cors_for_allowed_origins_only() {
    let api = Api::new();
    let r = api
        .send(get("/events").header("origin", "http://localhost:5173"))
        .await;
    r.expect(200);
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://localhost:5173"
    );
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    let r = api
        .send(get("/events").header("origin", "https://evil.example"))
        .await;
    r.expect(200);
    assert!(r.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_gateway_only_router_does_not_serve_api_routes() {
    let faults = Faults::default();
    let api = Api::new();
    let state = AppState {
        ops: OpsState {
            work: api.handlers.work.clone(),
            metrics: Metrics::new().expect("metrics"),
            health: Arc::new(vec![Arc::new(faults) as Arc<dyn HealthCheck>]),
            db_stats: None,
            budgets: Budgets::default(),
            services: Services::GATEWAY,
            health_timeout: Duration::from_secs(1),
            started: Instant::now(),
        },
        handlers: api.handlers.clone(),
        ws_refresh: Duration::from_secs(1),
    };
    let gateway = Api {
        app: flash_http::app(state, &HttpLayersConfig::new("gateway")),
        ..api
    };
    assert!(is_served(&gateway, "POST", "/auth/login").await);
    assert!(is_served(&gateway, "GET", "/live").await);
    assert!(!is_served(&gateway, "GET", "/events").await);
    assert!(!is_served(&gateway, "POST", "/orders").await);
    // Its document describes what it serves, nothing of the api.
    let doc = gateway.send(get("/openapi.json")).await;
    doc.expect(200);
    assert!(doc.json["paths"]["/auth/login"]["post"].is_object());
    assert!(doc.json["paths"].get("/orders").is_none(), "{}", doc.text);
}

// ---------------------------------------------------------------------------------------------
// Monitoring timeline

/// One sample of the timeline, as the host's sampler takes it each second, with this host's
/// HTTP counters so far.
async fn sample(api: &Api, requests: u64, client_errors: u64, server_errors: u64) {
    let latency = vec![
        (0.005, requests * 8 / 10),
        (0.05, requests),
        (f64::INFINITY, requests),
    ];
    api.handlers
        .work
        .timeline
        .sample(
            HostCounters {
                requests,
                client_errors,
                server_errors,
                latency,
            },
            SampleScope {
                queues: true,
                shop: true,
            },
        )
        .await
        .recorded
        .expect("sample");
}

fn numbers(v: &Value) -> Vec<Option<f64>> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(Value::as_f64)
        .collect()
}

#[tokio::test]
async fn the_timeline_is_for_admins_only_and_refuses_bad_queries() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let buyer = api.user("buyer01").await;
    assert_unauthorized(&api.send(get("/events/admin/timeline")).await);
    assert_error(
        &api.send(get("/events/admin/timeline").bearer(&buyer.access))
            .await,
        403,
        "Forbidden resource",
    );
    for (query, message) in [
        ("line=nope", "line must be __global__ or an event UUID"),
        ("line=", "line must be __global__ or an event UUID"),
        ("since=-1", "since must be a whole number of seconds"),
        ("since=1.5", "since must be a whole number of seconds"),
        (
            "since=99999999999999999999",
            "since must be a whole number of seconds",
        ),
        ("since=1&since=2", "since must be a single value"),
        ("line=__global__&line=global", "line must be a single value"),
        ("limit=5", "only line and since are accepted"),
    ] {
        let r = api
            .send(get(&format!("/events/admin/timeline?{query}")).bearer(&admin.access))
            .await;
        assert_validation(&r, &[message]);
    }
    let r = api
        .send(get("/events/admin/timeline?line=global").bearer(&admin.access))
        .await;
    r.expect(200);
    assert_eq!(r.json["line"], "__global__");
    assert_eq!(r.json["capacity"], 900);
    assert_eq!(r.json["t"], json!([]), "nothing sampled yet");
}

#[tokio::test]
async fn the_timeline_counts_a_sale_second_by_second_with_its_sold_out_marker() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let first = api.user("buyer01").await;
    let late = api.user("buyer02").await;
    let elsewhere = api.user("buyer03").await;
    let on_sale = async |name: &str, mode: &str| {
        let mut body = event_body(name);
        body["total_qty"] = json!(1);
        body["max_per_user"] = json!(1);
        body["queue_mode"] = json!(mode);
        let created = api.create_event(&admin, &body).await;
        created.expect(201);
        let event = created.str("id");
        api.patch_event(&admin, &event, &json!({"status": "ONSALE"}))
            .await
            .expect(200);
        event
    };
    let event = on_sale("Charts", "event").await;
    // Another event sold at the same time: its orders are not this line's.
    let other = on_sale("Elsewhere", "event").await;
    let s0 = (T0 / 1000) as u64;

    // Second 0: both sales start (the marker). Second 1: a buyer joins the event's line and is
    // admitted; another is admitted to the other event.
    sample(&api, 0, 0, 0).await;
    api.clock.advance(Duration::from_secs(1));
    api.admit(&first, &event).await;
    api.admit(&elsewhere, &other).await;
    sample(&api, 10, 2, 1).await;
    // Second 2: the buyer takes the last ticket and pays; the line sells out and a late buyer
    // joins it.
    api.clock.advance(Duration::from_secs(1));
    let order = api
        .place_order(&first, &uuid::Uuid::new_v4().to_string(), &event, json!(1))
        .await;
    order.expect(201);
    api.place_order(
        &elsewhere,
        &uuid::Uuid::new_v4().to_string(),
        &other,
        json!(1),
    )
    .await
    .expect(201);
    let order_id = order.str("orderId");
    let payment = api.request_payment(&first, &order_id).await;
    payment.expect(201);
    let callback = callback_body(&order_id, &payment.str("paymentId"), "OK");
    api.send(
        post("/payments/callback")
            .header("X-Signature-Timestamp", &SIGNED_AT.to_string())
            .header("X-Signature", &sign(&callback))
            .raw(callback),
    )
    .await
    .expect(201);
    // The promoter sees the sell-out once the late buyer's ticket makes the line active again.
    api.enqueue(&late, &event).await.expect(201);
    api.promote().await;
    sample(&api, 25, 2, 3).await;
    // Only settled seconds are read: not the one under way, nor the one just ended.
    api.clock.advance(Duration::from_secs(1));
    let r = api
        .send(get(&format!("/events/admin/timeline?line={event}")).bearer(&admin.access))
        .await;
    assert_eq!(r.json["until"], s0 + 1, "{}", r.text);
    api.clock.advance(Duration::from_secs(1));

    let r = api
        .send(get(&format!("/events/admin/timeline?line={event}")).bearer(&admin.access))
        .await;
    r.expect(200);
    let j = &r.json;
    assert_eq!(j["line"], event.as_str());
    assert_eq!(j["until"], s0 + 2);
    assert_eq!(j["t"], json!([s0, s0 + 1, s0 + 2]));
    assert_eq!(j["queued"], json!([null, 0, 1]), "{}", r.text);
    assert_eq!(j["admitted"], json!([null, 1, 0]));
    // Counts of a sampled second are 0 when nothing happened (levels stay null).
    assert_eq!(j["arrivalsPerSecond"], json!([0, 1, 1]));
    assert_eq!(j["admissionsPerSecond"], json!([0, 1, 0]));
    assert_eq!(j["estimatedWaitSeconds"][0], Value::Null);
    assert!(j["estimatedWaitSeconds"][2].as_u64().is_some_and(|w| w > 0));
    // The line sells its event alone: its order figures start from zero with the line.
    assert_eq!(
        numbers(&j["ordersPerSecond"]["created"]),
        [None, Some(0.0), Some(1.0)],
        "the line's own orders, not the other event's"
    );
    assert_eq!(
        numbers(&j["ordersPerSecond"]["paid"]),
        [None, Some(0.0), Some(1.0)]
    );
    assert_eq!(
        numbers(&j["paymentsPerSecond"]["ok"]),
        [None, Some(0.0), Some(1.0)]
    );
    assert_eq!(
        numbers(&j["paymentsPerSecond"]["failed"]),
        [None, Some(0.0), Some(0.0)]
    );
    assert_eq!(j["requestsPerSecond"], json!([0, 10, 15]));
    assert_eq!(j["clientErrorsPerSecond"], json!([0, 2, 0]));
    assert_eq!(j["serverErrorsPerSecond"], json!([0, 1, 2]));
    assert_eq!(numbers(&j["p99Seconds"]), [None, Some(0.05), Some(0.05)]);
    assert_eq!(
        j["markers"],
        json!([{"t": s0, "phase": "OPEN"}, {"t": s0 + 2, "phase": "SOLD_OUT"}]),
        "the sale's start and its sell-out"
    );
    assert_eq!(j["phase"], "SOLD_OUT");
    let lines: Vec<&str> = j["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(lines.contains(&"__global__") && lines.contains(&event.as_str()));

    // The site-wide line has its own figures, and `since` gives only the later seconds.
    let r = api
        .send(get(&format!("/events/admin/timeline?since={}", s0 + 1)).bearer(&admin.access))
        .await;
    r.expect(200);
    assert_eq!(r.json["t"], json!([s0 + 2]));
    assert_eq!(r.json["queued"], json!([0]));
    assert_eq!(r.json["requestsPerSecond"], json!([15]));
    assert_eq!(
        numbers(&r.json["ordersPerSecond"]["created"]),
        [Some(2.0)],
        "the site's orders: both events'"
    );
    let r = api
        .send(get("/events/admin/timeline").bearer(&admin.access))
        .await;
    assert_eq!(
        r.json["markers"],
        json!([]),
        "sales with lines of their own start on their own lines"
    );
}

#[tokio::test]
async fn a_sale_sold_through_the_site_wide_line_marks_its_start_there_once() {
    let api = Api::new();
    let admin = api.admin("boss01").await;
    let created = api.create_event(&admin, &event_body("Plain")).await;
    created.expect(201);
    let event = created.str("id");
    let s0 = (T0 / 1000) as u64;
    for _ in 0..2 {
        // Patched on sale twice: only the first starts the sale.
        api.patch_event(&admin, &event, &json!({"status": "ONSALE"}))
            .await
            .expect(200);
        sample(&api, 0, 0, 0).await;
        api.clock.advance(Duration::from_secs(1));
    }
    let r = api
        .send(get("/events/admin/timeline").bearer(&admin.access))
        .await;
    r.expect(200);
    assert_eq!(r.json["markers"], json!([{"t": s0, "phase": "OPEN"}]));
}

#[tokio::test]
async fn the_timeline_keeps_at_most_fifteen_minutes_of_seconds() {
    let api = Api::new();
    api.admin("boss01").await;
    for i in 0..1000 {
        sample(&api, i, 0, 0).await;
        assert!(api.timeline.len() <= 900, "{} records", api.timeline.len());
        api.clock.advance(Duration::from_secs(1));
    }
    assert_eq!(api.timeline.len(), 900);
    // The last second settles.
    api.clock.advance(Duration::from_secs(1));
    // 1000 s outlive the access token.
    let admin = api.session("boss01").await;
    let r = api
        .send(get("/events/admin/timeline").bearer(&admin.access))
        .await;
    r.expect(200);
    let t = r.json["t"].as_array().expect("t");
    assert_eq!(t.len(), 900);
    let newest = (T0 / 1000) as u64 + 999;
    assert_eq!(t.first(), Some(&json!(newest - 899)));
    assert_eq!(t.last(), Some(&json!(newest)));
    assert_eq!(r.json["requestsPerSecond"][0], 1);
}

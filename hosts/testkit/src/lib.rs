//! What the hosts' end-to-end tests share, so each host's tests say only what is their own (which
//! binaries, which bus): a fresh PostgreSQL database per test, the settings that make a journey
//! take seconds, a JSON client that walks the journey's steps, and polling for a condition with a
//! generous deadline as the safety net.

use flash_core::time::Timestamp;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

pub mod socket;

/// The machine's PostgreSQL (trust auth on loopback).
pub const PG: &str = "postgres://postgres@127.0.0.1:5432";

/// The admin secret [`fast_settings`] configures.
pub const ADMIN_SECRET: &str = "admin-secret";

/// The password of every user the [`Http`] journey steps register.
pub const PASSWORD: &str = "testtest";

/// Runs `sql` in `database` and returns what it prints, trimmed (a query's single value).
pub fn psql(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", database])
        .args(["-v", "ON_ERROR_STOP=1", "-tAqc", sql])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A database of its own for one test, dropped with it.
pub struct TestDatabase {
    pub name: String,
    /// A short random id, for the test's Redis prefix and queue names too.
    pub id: String,
}

impl TestDatabase {
    /// `flash_it_{prefix}_{id}`, created empty.
    pub fn create(prefix: &str) -> TestDatabase {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let name = format!("flash_it_{prefix}_{id}");
        psql("postgres", &format!("CREATE DATABASE {name}"));
        TestDatabase { name, id }
    }

    pub fn url(&self) -> String {
        format!("{PG}/{}", self.name)
    }

    /// The single value `sql` returns in this database.
    pub fn value(&self, sql: &str) -> String {
        psql(&self.name, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The Redis the end-to-end tests run on: the machine's Redis on 127.0.0.1:6379, or, when
/// `FLASH_TEST_REDIS_CLUSTER_URL` is set (`.ci/test` sets it to run the pods' journey and sale
/// again), the Redis Cluster whose configuration endpoint it names.
pub fn test_redis() -> Vec<(&'static str, String)> {
    match std::env::var("FLASH_TEST_REDIS_CLUSTER_URL") {
        Ok(url) if !url.trim().is_empty() => {
            vec![("REDIS_URL", url), ("REDIS_CLUSTER", "true".into())]
        }
        _ => vec![
            ("REDIS_URL", "redis://127.0.0.1:6379".into()),
            ("REDIS_CLUSTER", "false".into()),
        ],
    }
}

/// The settings every end-to-end test runs with, `id` keeping its secrets, Redis keys and queues
/// apart from other tests': cheap password hashes, payments that settle in tens of milliseconds
/// and always succeed, frequent promotion, and per-address limits out of the way (every test
/// client is 127.0.0.1, so SPEC §11's per-address limits would be the whole test's limits).
pub fn fast_settings(id: &str) -> Vec<(&'static str, String)> {
    let wide = || "100000/min".to_owned();
    let mut settings = test_redis();
    settings.extend([
        ("REDIS_KEY_PREFIX", format!("it{id}:")),
        ("PAYMENT_REQUEST_QUEUE", format!("req_{id}")),
        ("PAYMENT_RESULT_QUEUE", format!("res_{id}")),
        ("JWT_ACCESS_SECRET", format!("access-{id}")),
        ("JWT_REFRESH_SECRET", format!("refresh-{id}")),
        ("ADMIN_REGISTER_SECRET", ADMIN_SECRET.into()),
        ("BCRYPT_COST", "4".into()),
        ("PAYMENT_PROCESSING_MIN_MS", "10".into()),
        ("PAYMENT_PROCESSING_MAX_MS", "30".into()),
        ("PAYMENT_SUCCESS_RATE", "1".into()),
        ("QUEUE_PROMOTION_INTERVAL_MS", "100".into()),
        ("LOGIN_RATE_LIMIT_PER_IP", wide()),
        ("REGISTER_RATE_LIMIT_PER_IP", wide()),
        ("ENQUEUE_RATE_LIMIT_PER_IP", wide()),
        ("ORDER_RATE_LIMIT_PER_IP", wide()),
        ("PAYMENT_RATE_LIMIT_PER_IP", wide()),
        ("RUST_LOG", "warn".into()),
    ]);
    settings
}

/// A world's variables: [`fast_settings`] for `db`, then `extra` (which win).
pub fn world_vars<C: FromIterator<(String, String)>>(
    db: &TestDatabase,
    extra: impl IntoIterator<Item = (&'static str, String)>,
) -> C {
    let mut vars = fast_settings(&db.id);
    vars.push(("DATABASE_URL", db.url()));
    vars.extend(extra);
    vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Polls `f` every 50 ms until it returns `Some`, or panics naming `what` after `limit` (the
/// safety net: a test waits for the condition, not for a time).
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A small JSON client: every answer as (status, body), a body that is not JSON as a string.
#[derive(Clone, Default)]
pub struct Http(pub reqwest::Client);

impl Http {
    pub fn new() -> Http {
        Http::default()
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.0.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request to {url}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, url: String, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, url, token, &[], Some(body))
            .await
    }

    pub async fn get(&self, url: String, token: Option<&str>) -> (u16, Value) {
        self.call(reqwest::Method::GET, url, token, &[], None).await
    }

    /// Logs `user` in (password [`PASSWORD`]); the access token.
    pub async fn login(&self, gateway: &str, user: &str) -> String {
        let v = self.auth(gateway, "login", user, 201).await;
        v["accessToken"].as_str().unwrap().to_owned()
    }

    /// Registers `user` and logs in; the access token.
    pub async fn register(&self, gateway: &str, user: &str) -> String {
        self.auth(gateway, "register", user, 200).await;
        self.login(gateway, user).await
    }

    /// `POST /auth/{step}` for `user` with [`PASSWORD`], which must answer `status`; the body.
    async fn auth(&self, gateway: &str, step: &str, user: &str, status: u16) -> Value {
        let (s, v) = self
            .post(
                format!("{gateway}/auth/{step}"),
                None,
                json!({"userId": user, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, status, "{step} {user}: {v}");
        v
    }

    /// `POST /queue/enqueue` for `event`: (status, body).
    pub async fn enqueue(&self, gateway: &str, token: &str, event: &str) -> (u16, Value) {
        self.post(
            format!("{gateway}/queue/enqueue"),
            Some(token),
            json!({"eventId": event}),
        )
        .await
    }

    /// Joins `event`'s line; the ticket id.
    pub async fn ticket(&self, gateway: &str, token: &str, event: &str) -> String {
        let (s, t) = self.enqueue(gateway, token, event).await;
        assert_eq!(s, 201, "enqueue: {t}");
        t["ticketId"].as_str().unwrap().to_owned()
    }

    /// Waits until `ticket` is admitted (READY); its status.
    pub async fn admitted(&self, gateway: &str, ticket: &str) -> Value {
        eventually("admission", Duration::from_secs(30), || async {
            let (_, st) = self
                .get(format!("{gateway}/queue/status?ticketId={ticket}"), None)
                .await;
            (st["state"] == "READY").then_some(st)
        })
        .await
    }

    /// `POST /orders` of `qty` tickets under `key`, with `headers` besides: (status, body).
    pub async fn order(
        &self,
        api: &str,
        token: &str,
        event: &str,
        qty: i64,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.call(
            reqwest::Method::POST,
            format!("{api}/orders"),
            Some(token),
            headers,
            Some(json!({"event_id": event, "qty": qty})),
        )
        .await
    }

    /// Joins `event`'s line, waits for the admission and holds one ticket; the order id.
    pub async fn hold_one(&self, gateway: &str, api: &str, token: &str, event: &str) -> String {
        let ticket = self.ticket(gateway, token, event).await;
        self.admitted(gateway, &ticket).await;
        let (s, o) = self
            .order(api, token, event, 1, &[("Idempotency-Key", "k")])
            .await;
        assert_eq!(s, 201, "order: {o}");
        o["orderId"].as_str().unwrap().to_owned()
    }

    /// `POST /payments` for `order` with the MOCK method: (status, body).
    pub async fn pay(&self, api: &str, token: &str, order: &str) -> (u16, Value) {
        self.post(
            format!("{api}/payments"),
            Some(token),
            json!({"orderId": order, "method": "MOCK"}),
        )
        .await
    }

    /// `PATCH /events/:id` with `body` as `admin`; the change must be accepted.
    pub async fn patch_event(&self, api: &str, admin: &str, event: &str, body: Value) {
        let (s, v) = self
            .call(
                reqwest::Method::PATCH,
                format!("{api}/events/{event}"),
                Some(admin),
                &[],
                Some(body),
            )
            .await;
        assert_eq!(s, 200, "patch event: {v}");
    }

    /// Gives `event` a line of its own (`queue_mode` event) whose pre-queue opened a minute
    /// before `now`, the sale starting at `starts` and lasting `lasts`.
    pub async fn prequeue_event(
        &self,
        api: &str,
        admin: &str,
        event: &str,
        now: Timestamp,
        starts: Timestamp,
        lasts: Duration,
    ) {
        self.patch_event(
            api,
            admin,
            event,
            json!({
                "queue_mode": "event",
                "starts_at": starts.to_iso(),
                "ends_at": starts.plus(lasts).to_iso(),
                "prequeue_starts_at": now.minus(Duration::from_secs(60)).to_iso(),
            }),
        )
        .await;
    }

    /// Registers the admin `boss01` (or finds it) and creates an ONSALE event of `total`
    /// tickets, `max` per user; returns (admin token, event id).
    pub async fn onsale_event(
        &self,
        gateway: &str,
        api: &str,
        total: i64,
        max: i64,
    ) -> (String, String) {
        let (s, v) = self
            .post(
                format!("{gateway}/auth/register/admin"),
                None,
                json!({"userId": "boss01", "password": PASSWORD, "adminSecret": ADMIN_SECRET}),
            )
            .await;
        assert!(s == 200 || s == 409, "admin register: {v}");
        let admin = self.login(gateway, "boss01").await;
        let (s, e) = self
            .post(
                format!("{api}/events"),
                Some(&admin),
                json!({"name": "Integration", "starts_at": "2026-12-01T10:00:00.000Z",
                       "ends_at": "2026-12-01T12:00:00.000Z", "total_qty": total,
                       "max_per_user": max, "price": 1000}),
            )
            .await;
        assert_eq!(s, 201, "create event: {e}");
        let id = e["id"].as_str().unwrap().to_owned();
        self.patch_event(api, &admin, &id, json!({"status": "ONSALE"}))
            .await;
        (admin, id)
    }
}

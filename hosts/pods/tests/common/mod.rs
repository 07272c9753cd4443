//! Starts the real pod binaries on ephemeral ports against the real PostgreSQL, Redis and
//! RabbitMQ on loopback, each test in its own database, Redis key prefix and queue names.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PG: &str = "postgres://postgres@127.0.0.1:5432";

/// One test's isolated world: a fresh database, a Redis prefix, queue names, secrets.
pub struct Env {
    pub vars: HashMap<String, String>,
    pub database: String,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let database = format!("flash_it_{name}_{id}");
        psql(&format!("CREATE DATABASE {database}"));
        let mut vars = HashMap::new();
        for (k, v) in [
            ("DATABASE_URL", format!("{PG}/{database}")),
            ("REDIS_URL", "redis://127.0.0.1:6379".into()),
            ("REDIS_KEY_PREFIX", format!("it{id}:")),
            (
                "RABBITMQ_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            ),
            ("PAYMENT_REQUEST_QUEUE", format!("req_{id}")),
            ("PAYMENT_RESULT_QUEUE", format!("res_{id}")),
            ("JWT_ACCESS_SECRET", format!("access-{id}")),
            ("JWT_REFRESH_SECRET", format!("refresh-{id}")),
            ("ADMIN_REGISTER_SECRET", "admin-secret".into()),
            ("BCRYPT_COST", "4".into()),
            ("PAYMENT_PROCESSING_MIN_MS", "10".into()),
            ("PAYMENT_PROCESSING_MAX_MS", "30".into()),
            ("PAYMENT_SUCCESS_RATE", "1".into()),
            ("QUEUE_PROMOTION_INTERVAL_MS", "100".into()),
            // Every test client is 127.0.0.1: the per-address limits of SPEC §11 would be
            // the whole test's limits.
            ("LOGIN_RATE_LIMIT_PER_IP", "100000/min".into()),
            ("REGISTER_RATE_LIMIT_PER_IP", "100000/min".into()),
            ("ENQUEUE_RATE_LIMIT_PER_IP", "100000/min".into()),
            ("ORDER_RATE_LIMIT_PER_IP", "100000/min".into()),
            ("PAYMENT_RATE_LIMIT_PER_IP", "100000/min".into()),
            ("HOST", "127.0.0.1".into()),
            ("PORT", "0".into()),
            ("PAY_HEALTH_PORT", "0".into()),
            ("RUST_LOG", "warn".into()),
        ] {
            vars.insert(k.to_owned(), v);
        }
        let env = Env { vars, database };
        let status = Command::new(env!("CARGO_BIN_EXE_flash-migrate"))
            .envs(&env.vars)
            .status()
            .expect("flash-migrate runs");
        assert!(status.success(), "migrations failed");
        env
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn database_url(&self) -> String {
        self.vars["DATABASE_URL"].clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        psql(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ));
    }
}

pub fn psql(sql: &str) {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A psql query's single value.
pub fn psql_value(database: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-tA",
            "-c",
            sql,
        ])
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running pod binary; killed when dropped.
pub struct Pod {
    pub child: Child,
    pub url: String,
}

impl Pod {
    pub fn start(binary: &str, env: &Env, extra: &[(&str, &str)]) -> Pod {
        let mut cmd = Command::new(binary);
        cmd.envs(&env.vars)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("pod starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        break url.trim().to_owned();
                    }
                }
                Some(Err(e)) => panic!("{binary}: {e}"),
                None => panic!("{binary} exited before listening"),
            }
        };
        // Keep draining stdout so the pod never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Pod { child, url }
    }

    pub fn gateway(env: &Env, extra: &[(&str, &str)]) -> Pod {
        Pod::start(env!("CARGO_BIN_EXE_flash-gateway"), env, extra)
    }

    pub fn api(env: &Env, extra: &[(&str, &str)]) -> Pod {
        Pod::start(env!("CARGO_BIN_EXE_flash-api"), env, extra)
    }

    pub fn pay(env: &Env, extra: &[(&str, &str)]) -> Pod {
        Pod::start(env!("CARGO_BIN_EXE_flash-pay"), env, extra)
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it returns `Some`, or panics after `limit`.
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

/// A small JSON client.
#[derive(Clone)]
pub struct Http(pub reqwest::Client);

impl Http {
    pub fn new() -> Http {
        Http(reqwest::Client::new())
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.0.request(method, url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
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

    pub async fn login(&self, gateway: &str, user: &str) -> String {
        let (s, v) = self
            .post(
                format!("{gateway}/auth/login"),
                None,
                json!({"userId": user, "password": "testtest"}),
            )
            .await;
        assert_eq!(s, 201, "login {user}: {v}");
        v["accessToken"].as_str().unwrap().to_owned()
    }

    pub async fn register(&self, gateway: &str, user: &str) -> String {
        let (s, v) = self
            .post(
                format!("{gateway}/auth/register"),
                None,
                json!({"userId": user, "password": "testtest"}),
            )
            .await;
        assert_eq!(s, 200, "register {user}: {v}");
        self.login(gateway, user).await
    }

    /// Registers an admin and creates an ONSALE event; returns (admin token, event id).
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
                json!({"userId": "boss01", "password": "testtest", "adminSecret": "admin-secret"}),
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
        let (s, v) = self
            .call(
                reqwest::Method::PATCH,
                format!("{api}/events/{id}"),
                Some(&admin),
                &[],
                Some(json!({"status": "ONSALE"})),
            )
            .await;
        assert_eq!(s, 200, "on sale: {v}");
        (admin, id)
    }
}

//! Starts the real pod binaries on ephemeral ports against the real PostgreSQL, Redis and
//! RabbitMQ on loopback, each test in its own database, Redis key prefix and queue names.
#![allow(dead_code, unused_imports)]

pub use flash_host_testkit::{Http, PG, eventually, psql as psql_value};
use flash_host_testkit::{TestDatabase, world_vars};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One test's isolated world: a fresh database, a Redis prefix, queue names, secrets.
pub struct Env {
    pub vars: HashMap<String, String>,
    pub db: TestDatabase,
}

impl Env {
    pub fn new(name: &str) -> Env {
        let db = TestDatabase::create(name);
        let vars = world_vars(
            &db,
            [
                (
                    "RABBITMQ_URL",
                    "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                ),
                ("HOST", "127.0.0.1".into()),
                ("PORT", "0".into()),
                ("PAY_HEALTH_PORT", "0".into()),
            ],
        );
        let env = Env { vars, db };
        let status = Command::new(env!("CARGO_BIN_EXE_flash-migrate"))
            .envs(&env.vars)
            .status()
            .expect("flash-migrate runs");
        assert!(status.success(), "migrations failed");
        env
    }

    /// [`Env::new`] with `settings` on top.
    pub fn with(name: &str, settings: &[(&str, &str)]) -> Env {
        let mut env = Env::new(name);
        for (k, v) in settings {
            env.set(k, v);
        }
        env
    }

    /// Payments that take `min_ms` to `max_ms` to process.
    pub fn paying_within(mut self, min_ms: u64, max_ms: u64) -> Env {
        self.set("PAYMENT_PROCESSING_MIN_MS", &min_ms.to_string())
            .set("PAYMENT_PROCESSING_MAX_MS", &max_ms.to_string());
        self
    }

    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.vars.insert(k.to_owned(), v.to_owned());
        self
    }

    pub fn database_url(&self) -> String {
        self.vars["DATABASE_URL"].clone()
    }
}

/// A running pod binary; killed when dropped.
pub struct Pod {
    pub child: Child,
    pub url: String,
}

impl Pod {
    pub fn start(binary: &str, env: &Env, extra: &[(&str, &str)]) -> Pod {
        Pod::start_without(binary, env, &[], extra)
    }

    /// [`Pod::start`] with the variables `unset` removed from the test's environment.
    pub fn start_without(binary: &str, env: &Env, unset: &[&str], extra: &[(&str, &str)]) -> Pod {
        let mut cmd = Command::new(binary);
        cmd.envs(&env.vars)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for k in unset {
            cmd.env_remove(k);
        }
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

    /// The payment processor, without the token secrets the other pods get: it serves no API
    /// and must start (and process payments) without them.
    pub fn pay(env: &Env, extra: &[(&str, &str)]) -> Pod {
        let secrets = ["JWT_ACCESS_SECRET", "JWT_REFRESH_SECRET"];
        Pod::start_without(env!("CARGO_BIN_EXE_flash-pay"), env, &secrets, extra)
    }

    /// SIGKILL: no graceful anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One gateway, one api and one pay worker of an [`Env`], and a client for them.
pub struct Pods {
    pub gw: Pod,
    pub api: Pod,
    pub pay: Pod,
    pub http: Http,
}

impl Pods {
    pub fn start(env: &Env) -> Pods {
        Pods {
            gw: Pod::gateway(env, &[]),
            api: Pod::api(env, &[]),
            pay: Pod::pay(env, &[]),
            http: Http::new(),
        }
    }
}

/// A sale on the pods: one gateway, api and pay worker of an [`Env`], a client, and an ONSALE
/// event. The pods stop before the environment's database is dropped.
pub struct Sale {
    pub gw: Pod,
    pub api: Pod,
    pub pay: Pod,
    pub http: Http,
    pub event: String,
    pub env: Env,
}

impl Sale {
    /// Starts the pods of `env` and puts `total` tickets on sale, `max` per user.
    pub async fn start(env: Env, total: i64, max: i64) -> Sale {
        let Pods { gw, api, pay, http } = Pods::start(&env);
        let (_admin, event) = http.onsale_event(&gw.url, &api.url, total, max).await;
        Sale {
            gw,
            api,
            pay,
            http,
            event,
            env,
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.kill();
    }
}

//! The flood of SPEC §11: distinct login names (some of them 60,000 characters long) and
//! distinct idempotency keys from one attacker, while an honest buyer from another address
//! queues and buys. It fails on any 5xx or transport error, on server RSS or Redis
//! `used_memory` growth past its budget, and when the buyer's purchase does not end PAID.
//!
//! The attacker and the buyer are told apart the way the server tells clients apart: by the
//! local address they connect from (`flash up` sees the socket peer; any 127.x.y.z works on
//! loopback), or by the `X-Forwarded-For` hop a load balancer would append (the pods).

use crate::session::{self, Purchase, Setup};
use crate::{FuzzConfig, RssCheck, error_chain, rss_kib};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, Method};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How a client's address reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Connect from this local address (the server sees it as the peer).
    Bind(IpAddr),
    /// Send it as the last `X-Forwarded-For` hop (a server behind a load balancer).
    Forwarded(IpAddr),
}

/// What to flood and what must hold.
#[derive(Debug, Clone)]
pub struct FloodConfig {
    /// The gateway (or `flash up`).
    pub base: String,
    /// The api service when it is another server (pods).
    pub api_base: Option<String>,
    /// Distinct login names to try.
    pub names: u64,
    /// Every `long_every`-th name is 60,000 characters long (0: none).
    pub long_every: u64,
    /// Distinct idempotency keys to order with.
    pub keys: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// The attacker's address and account.
    pub attacker: Source,
    pub attacker_user: String,
    /// The buyer's address and account.
    pub buyer: Source,
    pub buyer_user: String,
    /// Password of both accounts (registered when they do not exist).
    pub password: String,
    /// The event to order from; `None`: the first ONSALE event with stock.
    pub event: Option<String>,
    /// The server process whose RSS is checked, and its allowed growth in MiB.
    pub pid: Option<u32>,
    pub rss_budget_mib: Option<u64>,
    /// A Redis to read `used_memory` from, and its allowed growth in MiB.
    pub redis_url: Option<String>,
    pub redis_budget_mib: Option<u64>,
    /// Deadline of each honest phase (set-up, the purchase).
    pub deadline: Duration,
}

impl FloodConfig {
    /// A million names (one in a hundred long) and a million keys against `base`, attacker
    /// from 127.0.0.2 and buyer from 127.0.0.3, demo users test0000 and test0001.
    pub fn new(base: impl Into<String>) -> Self {
        FloodConfig {
            base: base.into().trim_end_matches('/').to_owned(),
            api_base: None,
            names: 1_000_000,
            long_every: 100,
            keys: 1_000_000,
            concurrency: 32,
            attacker: Source::Bind([127, 0, 0, 2].into()),
            attacker_user: "test0000".into(),
            buyer: Source::Bind([127, 0, 0, 3].into()),
            buyer_user: "test0001".into(),
            password: "testtest".into(),
            event: None,
            pid: None,
            rss_budget_mib: None,
            redis_url: None,
            redis_budget_mib: None,
            deadline: Duration::from_secs(120),
        }
    }

    fn api(&self) -> String {
        self.api_base.clone().unwrap_or_else(|| self.base.clone())
    }
}

/// `used_memory` of a Redis before and after, with its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisCheck {
    pub before: u64,
    pub after: u64,
    pub budget_mib: Option<u64>,
}

impl RedisCheck {
    pub fn ok(&self) -> bool {
        self.budget_mib
            .is_none_or(|b| self.after.saturating_sub(self.before) <= b * 1024 * 1024)
    }
}

/// What the flood saw.
#[derive(Debug, Clone)]
pub struct FloodReport {
    /// Status → count, per kind of request (`login`, `order`).
    pub statuses: BTreeMap<&'static str, BTreeMap<u16, u64>>,
    /// Requests without a complete answer.
    pub transport_errors: u64,
    /// The first few 5xx and transport errors.
    pub examples: Vec<String>,
    pub rss: Option<RssCheck>,
    pub redis: Option<RedisCheck>,
    /// Honest steps that failed before the flood.
    pub problems: Vec<String>,
    /// The buyer's purchase, made during the flood.
    pub purchase: Result<Purchase, String>,
    pub elapsed: Duration,
}

impl FloodReport {
    /// Every broken rule, in words; empty when the flood held.
    pub fn failures(&self) -> Vec<String> {
        let mut out = self.problems.clone();
        let server_errors: u64 = self
            .statuses
            .values()
            .flat_map(|m| m.iter())
            .filter(|(s, _)| **s >= 500)
            .map(|(_, n)| n)
            .sum();
        if server_errors > 0 {
            out.push(format!("{server_errors} answers were 5xx"));
        }
        if self.transport_errors > 0 {
            out.push(format!("{} transport errors", self.transport_errors));
        }
        if let Some(r) = self.rss.filter(|r| !r.ok()) {
            out.push(format!(
                "server RSS grew {} KiB, budget {} MiB",
                r.after_kib.saturating_sub(r.before_kib),
                r.budget_mib.unwrap_or(0)
            ));
        }
        if let Some(r) = self.redis.filter(|r| !r.ok()) {
            out.push(format!(
                "Redis used_memory grew {} B, budget {} MiB",
                r.after.saturating_sub(r.before),
                r.budget_mib.unwrap_or(0)
            ));
        }
        if let Err(e) = &self.purchase {
            out.push(format!("the buyer did not buy during the flood: {e}"));
        }
        out
    }
}

fn client(source: Source, concurrency: usize) -> Client {
    let mut b = Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    match source {
        Source::Bind(ip) => b = b.local_address(ip),
        Source::Forwarded(ip) => {
            let mut h = HeaderMap::new();
            let hop = HeaderValue::from_str(&ip.to_string()).expect("an address is a header");
            h.insert("x-forwarded-for", hop);
            b = b.default_headers(h);
        }
    }
    b.build().expect("a plain HTTP client builds")
}

async fn used_memory(url: &str) -> Result<u64, String> {
    let c = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = c
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "no used_memory in INFO memory".into())
}

/// One flood request.
enum Hit {
    Login(u64),
    Order(u64),
}

/// Runs the flood and the purchase beside it.
pub async fn run(cfg: FloodConfig) -> FloodReport {
    let started = Instant::now();
    let api = cfg.api();
    let attacker = client(cfg.attacker, cfg.concurrency);
    let buyer = client(cfg.buyer, 4);
    let deadline = Instant::now() + cfg.deadline;
    let mut problems = Vec::new();

    // The attacker is a real, admitted user, so its orders reach the idempotency records.
    let event = match &cfg.event {
        Some(e) => Ok(e.clone()),
        None => session::listed_event(&attacker, &api).await,
    };
    let armed = async {
        let event = event.clone()?;
        let (token, _) = session::session(
            &attacker,
            &cfg.base,
            &cfg.attacker_user,
            &cfg.password,
            deadline,
        )
        .await?;
        let (_, gate) = session::admitted(&attacker, &cfg.base, &token, &event, deadline).await?;
        Ok::<_, String>((event, token, gate))
    }
    .await;
    let (event, token, gate) = match armed {
        Ok(a) => a,
        Err(e) => {
            problems.push(format!("attacker set-up: {e}"));
            (String::new(), String::new(), String::new())
        }
    };

    let rss_before = cfg.pid.and_then(rss_kib);
    let redis_before = match &cfg.redis_url {
        Some(u) => used_memory(u).await.map_err(|e| problems.push(e)).ok(),
        None => None,
    };

    // The honest buyer arrives with the flood.
    let purchase = {
        let mut fuzz = FuzzConfig::new(cfg.base.clone());
        fuzz.api_base = cfg.api_base.clone();
        fuzz.deadline = cfg.deadline;
        let (base, user, password) = (
            cfg.base.clone(),
            cfg.buyer_user.clone(),
            cfg.password.clone(),
        );
        let (api, event, buyer) = (api.clone(), event.clone(), buyer.clone());
        tokio::spawn(async move {
            let (token, _) = session::session(&buyer, &base, &user, &password, deadline).await?;
            let setup = Setup {
                buyer: Some(token),
                purchase_event: Some(event),
                ..Setup::default()
            };
            session::purchase(&buyer, &fuzz, &api, &setup).await
        })
    };

    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let hits = (0..cfg.names.max(cfg.keys)).flat_map(|i| {
        let login = (i < cfg.names).then_some(Hit::Login(i));
        let order = (i < cfg.keys).then_some(Hit::Order(i));
        login.into_iter().chain(order)
    });
    let (login_url, order_url) = (format!("{}/auth/login", cfg.base), format!("{api}/orders"));
    let answers = futures::stream::iter(hits)
        .map(|hit| {
            let (http, token, gate, event) = (&attacker, &token, &gate, &event);
            let (login_url, order_url, run_id) = (&login_url, &order_url, &run_id);
            let long_every = cfg.long_every;
            async move {
                match hit {
                    Hit::Login(i) => {
                        let name = if long_every > 0 && i % long_every == 0 {
                            format!("{i:012}{}", "n".repeat(60_000 - 12))
                        } else {
                            format!("fl{i:010}")
                        };
                        let body = json!({"userId": name, "password": "wrong-password"});
                        let r = http.post(login_url.as_str()).json(&body).send().await;
                        ("login", r)
                    }
                    Hit::Order(i) => {
                        let body = json!({"event_id": event, "qty": 1});
                        let r = http
                            .request(Method::POST, order_url.as_str())
                            .bearer_auth(token)
                            .header("Idempotency-Key", format!("flood-{run_id}-{i}"))
                            .header("X-Gate-Token", gate.as_str())
                            .json(&body)
                            .send()
                            .await;
                        ("order", r)
                    }
                }
            }
        })
        .buffer_unordered(cfg.concurrency.max(1));
    let mut answers = std::pin::pin!(answers);
    let mut statuses: BTreeMap<&'static str, BTreeMap<u16, u64>> = BTreeMap::new();
    let mut transport_errors = 0;
    let mut examples = Vec::new();
    while let Some((kind, r)) = answers.next().await {
        match r {
            Ok(resp) => {
                let status = resp.status().as_u16();
                // Read the answer whole, as a client does, so the connection is reused.
                let text = resp.text().await.unwrap_or_default();
                *statuses.entry(kind).or_default().entry(status).or_default() += 1;
                if status >= 500 && examples.len() < 10 {
                    examples.push(format!("{kind}: {status} {text}"));
                }
            }
            Err(e) => {
                transport_errors += 1;
                if examples.len() < 10 {
                    examples.push(format!("{kind}: {}", error_chain(&e)));
                }
            }
        }
    }

    let purchase = match purchase.await {
        Ok(p) => p,
        Err(e) => Err(format!("the purchase task failed: {e}")),
    };
    let rss = match (rss_before, cfg.pid.and_then(rss_kib)) {
        (Some(before_kib), Some(after_kib)) => Some(RssCheck {
            before_kib,
            after_kib,
            budget_mib: cfg.rss_budget_mib,
        }),
        _ => None,
    };
    let redis = match (&cfg.redis_url, redis_before) {
        (Some(u), Some(before)) => match used_memory(u).await {
            Ok(after) => Some(RedisCheck {
                before,
                after,
                budget_mib: cfg.redis_budget_mib,
            }),
            Err(e) => {
                problems.push(e);
                None
            }
        },
        _ => None,
    };
    FloodReport {
        statuses,
        transport_errors,
        examples,
        rss,
        redis,
        problems,
        purchase,
        elapsed: started.elapsed(),
    }
}

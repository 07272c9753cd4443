//! `flash-bench`: what the benchmark record (`BENCHMARKS.md`) is measured with.
//!
//! - [`Bench`]: every port on its in-memory adapter and the handlers over them, built the way
//!   `flash up` builds them, for the criterion micro-benchmarks in `benches/handlers.rs`.
//! - `flash-bench-hello`: an axum hello-world server, the same-run reference of the HTTP rows.
//! - `flash-bench-tokens`: mints access tokens for fresh users ([`Minter`]), so `wrk` can
//!   enqueue as many distinct buyers as it sends requests.
//! - `flash-bench-drive`: creates events, admits buyers, fills queues, drives payments and holds
//!   Socket.IO connections for the pod rows (`run-pods.sh`).
//! - `wrk/*.lua`: the request scripts of the `wrk` rows.
//!
//! It measures the system from outside or through its public crates; nothing here is used by
//! the system itself.

use flash::up::UpConfig;
use flash_adapter_memory::{
    MemoryBus, MemoryIds, MemoryPaymentLedger, MemoryQueueNotifier, MemoryQueueStore,
    MemoryRateLimiter, MemorySessionStore, MemoryShop, MemoryUserStore, ThreadRandom,
};
use flash_core::domain::{Event, EventStatus, LoginName, QueueScope, Role, User};
use flash_core::ports::{Clock, EventStore, UserStore};
use flash_core::{Context, EventId, Principal, UserId};
use flash_handlers::{Handlers, Ports};
use flash_runtime::config::parse_args_ignoring_env;
use std::sync::Arc;
use std::time::Duration;

/// The configuration of the benchmarks: bcrypt cost 4, limits out of the way (JWT secrets are
/// random unless `extra` names them).
pub fn bench_config(extra: &[&str]) -> Result<UpConfig, String> {
    let mut args = vec![
        "--bcrypt-cost",
        "4",
        "--queue-ready-capacity",
        "100000000",
        "--enqueue-rate-limit-per-user",
        "1000000000/min",
        "--login-rate-limit-per-user",
        "1000000000/min",
        "--login-rate-limit-per-ip",
        "1000000000/min",
    ];
    args.extend_from_slice(extra);
    parse_args_ignoring_env(&args).map_err(|e| e.to_string())
}

/// Handlers over fresh in-memory adapters.
pub struct Bench {
    pub handlers: Arc<Handlers>,
    pub ports: Ports,
    pub users: Arc<MemoryUserStore>,
    pub shop: Arc<MemoryShop>,
}

impl Bench {
    pub fn new(cfg: &UpConfig) -> Bench {
        let clock: Arc<dyn Clock> = Arc::new(flash_runtime::clock::SystemClock);
        let shop = Arc::new(MemoryShop::new(
            cfg.pod.app.settings.payments.request_queue.clone(),
        ));
        let users = Arc::new(MemoryUserStore::new());
        let ports = Ports {
            clock,
            ids: Arc::new(MemoryIds),
            random: Arc::new(ThreadRandom),
            users: users.clone(),
            sessions: Arc::new(MemorySessionStore::new()),
            limiter: Arc::new(MemoryRateLimiter::new()),
            queue: Arc::new(MemoryQueueStore::new()),
            notifier: Arc::new(MemoryQueueNotifier::new()),
            events: shop.clone(),
            orders: shop.clone(),
            payments: shop.clone(),
            bus: Arc::new(MemoryBus::new(
                cfg.pod.app.settings.payments.bus_max_attempts,
            )),
            ledger: Arc::new(MemoryPaymentLedger::new()),
            timeline: Arc::new(flash_adapter_memory::MemoryTimeline::new()),
        };
        let handlers = Arc::new(Handlers::new(
            &ports,
            cfg.pod.app.settings.clone().with_random_secrets(),
        ));
        Bench {
            handlers,
            ports,
            users,
            shop,
        }
    }

    /// An ONSALE event of `total` tickets, `max_per_user` each.
    pub async fn event(&self, total: i64, max_per_user: i64) -> Result<EventId, String> {
        let now = self.ports.clock.now();
        let id = EventId(uuid::Uuid::new_v4());
        self.shop
            .create(Event {
                id,
                name: "Bench".into(),
                starts_at: now,
                ends_at: now.plus(Duration::from_secs(86_400)),
                total_qty: total,
                sold_qty: 0,
                held_qty: 0,
                max_per_user,
                price: 1000,
                status: EventStatus::Onsale,
                prequeue_starts_at: None,
                queue_mode: flash_core::domain::QueueMode::Global,
                created_at: now,
                updated_at: now,
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(id)
    }

    /// A stored account `login` whose password hash has `cost`.
    pub async fn account(&self, login: &str, password: &str, cost: u32) -> Result<(), String> {
        let hash =
            flash_handlers::auth::hash_password(password, cost).map_err(|e| e.to_string())?;
        self.users
            .create(User {
                id: UserId(uuid::Uuid::new_v4()),
                login: LoginName::trusted(login),
                password_hash: hash,
                role: Role::User,
                created_at: self.ports.clock.now(),
            })
            .await
            .map_err(|e| e.to_string())
    }
}

/// The context of a request by a brand-new buyer.
pub fn buyer() -> Context {
    let id = uuid::Uuid::new_v4();
    Context::new("bench").with_principal(Principal {
        user: UserId(id),
        login: LoginName::trusted(format!("b{}", id.simple())),
        role: Role::User,
    })
}

/// The queue of an event.
pub fn scope(event: EventId) -> QueueScope {
    QueueScope::Event(event)
}

/// Mints access tokens of fresh users (random ids, login `benchNNNNNN`), signed as a server with
/// `--jwt-access-secret SECRET` signs them; access tokens are verified without a store read, so
/// the users need not exist.
pub struct Minter {
    tokens: flash_handlers::auth::Tokens,
    now: flash_core::Timestamp,
}

impl Minter {
    pub fn new(secret: &str) -> Result<Minter, String> {
        let cfg = bench_config(&["--jwt-access-secret", secret])?;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default();
        Ok(Minter {
            tokens: flash_handlers::auth::Tokens::new(
                &cfg.pod.app.settings.clone().with_random_secrets().auth,
            ),
            now: flash_core::Timestamp::from_millis(now_ms),
        })
    }

    /// The access token of a new user numbered `i`.
    pub fn token(&self, i: usize) -> Result<String, String> {
        self.issue(format!("bench{i:06}"), Role::User)
    }

    /// The access token of an administrator.
    pub fn admin_token(&self) -> Result<String, String> {
        self.issue("benchadmin".to_owned(), Role::Admin)
    }

    fn issue(&self, login: String, role: Role) -> Result<String, String> {
        let user = User {
            id: UserId(uuid::Uuid::new_v4()),
            login: LoginName::trusted(login),
            password_hash: String::new(),
            role,
            created_at: self.now,
        };
        let id = || flash_core::TokenId(uuid::Uuid::new_v4());
        self.tokens
            .issue(
                &user,
                flash_core::FamilyId(uuid::Uuid::new_v4()),
                id(),
                id(),
                self.now,
            )
            .map(|(pair, _)| pair.access_token)
            .map_err(|e| e.to_string())
    }
}

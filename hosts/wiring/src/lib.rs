//! `flash-wiring`: picks an adapter for every store port from the legacy environment variables —
//! PostgreSQL when `DATABASE_URL` is set, Redis when `REDIS_URL` / `REDIS_HOST` is set, the
//! in-memory adapter otherwise. Connections are lazy: a process starts while a dependency is down
//! and reports not ready until it is back.
//!
//! It is also the composition root: [`AppConfig`] is the one configuration tree every host
//! flattens (adding what is only its own), and [`App::build`] turns it into wired ports and
//! handlers, the same way for the pods, `flash up` and the Lambda functions.
//!
//! The bus is not here: the pods add RabbitMQ (`flash-pods`), the Lambda functions add SQS
//! (`flash-lambda`), so neither links the other's client; each hands its bus to [`App::build`].

use async_trait::async_trait;
use clap::{ArgAction, Args};
use flash_adapter_memory as memory;
use flash_adapter_postgres as pg;
use flash_adapter_redis as redis;
use flash_adapter_redis::{parse_cluster, parse_tls};
use flash_core::budget::{Budget, Budgets};
use flash_core::ports::*;
use flash_handlers::{Handlers, Ports, Settings, Work};
use flash_http::layers::HttpLayersConfig;
use flash_http::metrics::Metrics;
use flash_http::state::{AppState, DbStatsSource, OpsState, Services};
use flash_runtime::config::{
    ConfigError, HttpConfig, TelemetryConfig, parse_positive_usize, parse_secret, require_secret,
};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// How long `/ready` and `/health` wait for each dependency.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// The configuration every host reads: how HTTP listens, the business settings, logging and
/// where the stores are. A host flattens it into its own command and adds only what is its own
/// (the bus, demo data, SQS); each option is declared once, in its group.
#[derive(Debug, Clone, Args)]
pub struct AppConfig {
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    #[command(flatten)]
    pub stores: StoreConfig,
}

impl AppConfig {
    /// The HTTP layers of a host whose `service` label is given (`gateway`, `api`, `flash`).
    pub fn layers(&self, service: &str) -> HttpLayersConfig {
        HttpLayersConfig {
            service: service.to_owned(),
            cors_origins: self.http.cors_origins.clone(),
            body_limit: flash_http::body::DEFAULT_BODY_LIMIT,
            read_timeout: self.http.http_read_timeout_ms,
        }
    }
}

/// Which token secrets a binary that serves the API must be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// `JWT_ACCESS_SECRET` is required (every instance must agree); with `refresh`,
    /// `JWT_REFRESH_SECRET` too (the binary signs refresh tokens), else it defaults to the
    /// access secret.
    Required { refresh: bool },
    /// What is unset is random for this process (the embedded default).
    RandomWhenUnset,
}

impl Secrets {
    fn resolve(self, mut settings: Settings) -> Result<Settings, ConfigError> {
        match self {
            Secrets::Required { refresh } => {
                let auth = &mut settings.auth;
                let access = require_secret("JWT_ACCESS_SECRET", &auth.access_secret)?;
                if refresh {
                    require_secret("JWT_REFRESH_SECRET", &auth.refresh_secret)?;
                } else if auth.refresh_secret.is_none() {
                    auth.refresh_secret = Some(access);
                }
                Ok(settings)
            }
            Secrets::RandomWhenUnset => Ok(settings.with_random_secrets()),
        }
    }
}

/// The bus a host brings to [`App::build`], and how `/ready` checks it.
pub struct BusWiring {
    pub bus: Arc<dyn Bus>,
    /// `None` for an in-process bus (nothing to check).
    pub health: Option<Arc<dyn HealthCheck>>,
    /// Its name in the start-up log (`rabbitmq`, `sqs`), `None` in memory.
    pub name: Option<&'static str>,
}

/// Everything a host serves or runs from: the wired ports, the background work over them, and
/// what `/ready`, `/health` and `/metrics` report. A host that serves the API adds its request
/// handlers with [`App::site`]; the payment processor and the bus and sweeper functions never
/// build them, so they read no token secret.
pub struct App {
    pub work: Arc<Work>,
    pub ports: Ports,
    pub outbox: Arc<dyn Outbox>,
    /// Dependencies for `/ready` and `/health`.
    pub health: Vec<Arc<dyn HealthCheck>>,
    pub db_stats: Option<Arc<dyn DbStatsSource>>,
    /// What the in-process stores keep for clients, for `/metrics`.
    pub budgets: Budgets,
    pub metrics: Metrics,
    /// Names of the real backends in use, for the start-up log.
    pub described: Vec<&'static str>,
}

/// A start-up failure: a configuration value or a backend.
pub type BuildError = Box<dyn std::error::Error + Send + Sync>;

impl App {
    /// The composition root: the stores the binary `needs` connected (lazily), the host's bus
    /// added, the background work built. Must run inside a Tokio runtime.
    pub fn build(config: &AppConfig, needs: StoreNeeds, bus: BusWiring) -> Result<App, BuildError> {
        let settings = config.settings.clone();
        let mut stores = config
            .stores
            .connect(needs, &settings.payments.request_queue)?;
        if let Some(health) = bus.health {
            stores.health.push(health);
        }
        stores.described.extend(bus.name);
        let ports = stores.ports(bus.bus);
        Ok(App {
            work: Arc::new(Work::new(&ports, settings)),
            health: stores.health_or_memory(),
            outbox: stores.outbox(),
            db_stats: stores.db_stats(),
            budgets: stores.budgets.clone(),
            metrics: Metrics::new()?,
            described: stores.described,
            ports,
        })
    }

    /// The request handlers of a host that serves the API, over this app's work, with the
    /// token secrets resolved as the binary requires.
    pub fn site(&self, secrets: Secrets) -> Result<Arc<Handlers>, ConfigError> {
        let settings = secrets.resolve(self.work.settings.clone())?;
        Ok(Arc::new(Handlers::over(
            self.work.clone(),
            &self.ports,
            &settings,
        )))
    }

    /// What the operations endpoints of `services` read.
    pub fn ops(&self, services: Services) -> OpsState {
        OpsState {
            work: self.work.clone(),
            metrics: self.metrics.clone(),
            health: Arc::new(self.health.clone()),
            db_stats: self.db_stats.clone(),
            budgets: self.budgets.clone(),
            services,
            health_timeout: HEALTH_TIMEOUT,
            started: std::time::Instant::now(),
        }
    }

    /// The state the HTTP routes of `services` run on, with the site's `handlers`.
    pub fn state(&self, handlers: Arc<Handlers>, services: Services) -> AppState {
        AppState {
            handlers,
            ops: self.ops(services),
            ws_refresh: self.work.settings.queue.ws_refresh,
        }
    }
}

/// Where the stores are. Every field is optional: what is unset runs in memory.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Backends")]
pub struct StoreConfig {
    /// PostgreSQL URL (users, events, orders, payments, outbox); unset: in memory.
    #[arg(long, env, value_parser = parse_secret)]
    pub database_url: Option<SecretString>,
    /// Most connections of the PostgreSQL pool.
    #[arg(long, env, default_value_t = 20)]
    pub database_pool_max: u32,
    /// Redis URL (`redis://` or `rediss://`); the legacy REDIS_HOST / REDIS_PORT /
    /// REDIS_PASSWORD / REDIS_TLS work too. Unset (both): queue, limits and sessions in memory.
    #[arg(long, env, value_parser = parse_secret)]
    pub redis_url: Option<SecretString>,
    /// Legacy Redis host (used when REDIS_URL is unset).
    #[arg(long, env)]
    pub redis_host: Option<String>,
    /// Legacy Redis port.
    #[arg(long, env, default_value_t = redis::DEFAULT_PORT, value_parser = redis::parse_port)]
    pub redis_port: u16,
    /// Legacy Redis password.
    #[arg(long, env, value_parser = parse_secret)]
    pub redis_password: Option<SecretString>,
    /// Legacy: exactly `true` enables TLS to Redis.
    #[arg(long, env, default_value = "false", action = ArgAction::Set, value_parser = parse_tls)]
    pub redis_tls: bool,
    /// Exactly `true`: REDIS_URL / REDIS_HOST name a Redis Cluster's configuration endpoint
    /// (ElastiCache cluster mode) and every command goes to the master of its slot.
    #[arg(long, env, default_value = "false", action = ArgAction::Set, value_parser = parse_cluster)]
    pub redis_cluster: bool,
    /// Prefix of every Redis key and channel (several systems can share one Redis).
    #[arg(long, env, default_value = "flash:")]
    pub redis_key_prefix: String,
    /// Most rate-limit windows kept in memory (without Redis); beyond it the window closest to
    /// its end is forgotten first. Clients cannot grow the process past it (SPEC §11).
    #[arg(
        long,
        env,
        default_value_t = memory::DEFAULT_RATE_LIMIT_MAX_KEYS,
        value_parser = parse_positive_usize
    )]
    pub rate_limit_max_keys: usize,
    /// Most idempotency records kept in memory (without PostgreSQL); beyond it the record
    /// closest to its expiry is forgotten first.
    #[arg(
        long,
        env,
        default_value_t = memory::DEFAULT_IDEMPOTENCY_MAX_RECORDS,
        value_parser = parse_positive_usize
    )]
    pub idempotency_max_records: usize,
    /// Most ticket ids whose queue the Redis adapter remembers in process (status polls by
    /// ticket id cost one round trip while remembered).
    #[arg(
        long,
        env,
        default_value_t = redis::DEFAULT_SCOPE_CACHE_MAX,
        value_parser = parse_positive_usize
    )]
    pub queue_scope_cache_max: usize,
}

/// Which stores a binary uses. A service refuses to start without one it uses and ignores the
/// others; `flash up` runs whatever is unset in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreNeeds {
    pub database: bool,
    pub redis: bool,
    /// Whether an unset store is an error (pods, functions) or runs in memory (`flash up`).
    pub required: bool,
}

/// A start-up failure that names the variable at fault.
#[derive(Debug)]
pub struct WiringError(pub String);

impl std::fmt::Display for WiringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WiringError {}

impl WiringError {
    /// The error for a backend a service needs but whose variable is unset.
    pub fn missing(what: &str, var: &str) -> Self {
        WiringError(format!("{var}: this service needs {what}; set {var}"))
    }
}

/// The wired stores plus what a host needs besides them; add a bus with [`Stores::ports`].
pub struct Stores {
    durable: Durable,
    fast: Fast,
    /// Dependencies for `/ready` and `/health` (the host adds its bus).
    pub health: Vec<Arc<dyn HealthCheck>>,
    /// Names of the real backends in use, for the start-up log.
    pub described: Vec<&'static str>,
    /// What the in-process stores keep for clients, for `/metrics`.
    pub budgets: Budgets,
}

impl Stores {
    /// Every port, with `bus` for publishing.
    pub fn ports(&self, bus: Arc<dyn Bus>) -> Ports {
        let (d, f) = (&self.durable, &self.fast);
        Ports {
            clock: Arc::new(flash_runtime::clock::SystemClock),
            ids: Arc::new(memory::MemoryIds),
            random: Arc::new(memory::ThreadRandom),
            users: d.users.clone(),
            // Refresh tokens are durable in PostgreSQL when there is one.
            sessions: d.sessions.clone().unwrap_or_else(|| f.sessions.clone()),
            limiter: f.limiter.clone(),
            queue: f.queue.clone(),
            notifier: f.notifier.clone(),
            events: d.events.clone(),
            orders: d.orders.clone(),
            payments: d.payments.clone(),
            bus,
            ledger: f.ledger.clone(),
            timeline: f.timeline.clone(),
        }
    }

    /// The outbox of the order store.
    pub fn outbox(&self) -> Arc<dyn Outbox> {
        self.durable.outbox.clone()
    }

    /// The database's statistics, where there is a database.
    pub fn db_stats(&self) -> Option<Arc<dyn DbStatsSource>> {
        self.durable.db_stats.clone()
    }

    /// The health checks, with an always-healthy one when every store is in memory and no
    /// real bus was added (so `/ready` has something to report).
    pub fn health_or_memory(&self) -> Vec<Arc<dyn HealthCheck>> {
        if self.health.is_empty() {
            vec![Arc::new(memory::MemoryHealth)]
        } else {
            self.health.clone()
        }
    }
}

/// The ports PostgreSQL serves (or memory stands in for).
struct Durable {
    users: Arc<dyn UserStore>,
    sessions: Option<Arc<dyn SessionStore>>,
    events: Arc<dyn EventStore>,
    orders: Arc<dyn OrderStore>,
    payments: Arc<dyn PaymentStore>,
    outbox: Arc<dyn Outbox>,
    db_stats: Option<Arc<dyn DbStatsSource>>,
}

/// The ports Redis serves (or memory stands in for).
struct Fast {
    queue: Arc<dyn QueueStore>,
    notifier: Arc<dyn QueueNotifier>,
    limiter: Arc<dyn RateLimiter>,
    ledger: Arc<dyn PaymentLedger>,
    timeline: Arc<dyn TimelineStore>,
    sessions: Arc<dyn SessionStore>,
}

struct PgStats(pg::PgHealth);

#[async_trait]
impl DbStatsSource for PgStats {
    async fn db_stats(&self) -> Vec<(&'static str, &'static str, &'static str, f64)> {
        match self.0.db_stats().await {
            Ok(rows) => rows.into_iter().map(seconds_not_ms).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "database statistics unavailable");
                Vec::new()
            }
        }
    }
}

/// The legacy api reported four PostgreSQL timings as `…_time_ms_total`; Prometheus's linter
/// (`promtool check metrics`) refuses abbreviated units, so they are served in seconds as
/// `…_time_seconds_total`. Every other legacy name is kept as it was.
fn seconds_not_ms(
    (name, help, kind, value): (&'static str, &'static str, &'static str, f64),
) -> (&'static str, &'static str, &'static str, f64) {
    let renamed = match name {
        "db_block_read_time_ms_total" => Some("db_block_read_time_seconds_total"),
        "db_block_write_time_ms_total" => Some("db_block_write_time_seconds_total"),
        "db_bgwriter_checkpoint_write_time_ms_total" => {
            Some("db_bgwriter_checkpoint_write_time_seconds_total")
        }
        "db_bgwriter_checkpoint_sync_time_ms_total" => {
            Some("db_bgwriter_checkpoint_sync_time_seconds_total")
        }
        _ => None,
    };
    match renamed {
        Some(n) => (n, help, kind, value / 1000.0),
        None => (name, help, kind, value),
    }
}

impl StoreConfig {
    fn redis_config(&self) -> Result<Option<redis::RedisConfig>, WiringError> {
        let bad = |e: redis::RedisConfigError| WiringError(e.to_string());
        let config = if let Some(url) = &self.redis_url {
            redis::RedisConfig::from_url(url.expose_secret()).map_err(bad)?
        } else if let Some(host) = &self.redis_host {
            redis::RedisConfig::from_parts(
                host,
                self.redis_port,
                self.redis_password.clone(),
                self.redis_tls,
            )
            .map_err(bad)?
        } else {
            return Ok(None);
        };
        config
            .with_cluster(self.redis_cluster)
            .and_then(|c| c.with_prefix(self.redis_key_prefix.clone()))
            .map(Some)
            .map_err(bad)
    }

    /// Wires every store port. `request_queue` names the outbox's queue. Must run inside a Tokio
    /// runtime (connections are prepared lazily).
    pub fn connect(&self, needs: StoreNeeds, request_queue: &str) -> Result<Stores, WiringError> {
        let redis_config = self.redis_config()?.filter(|_| needs.redis);
        let database_url = self.database_url.as_ref().filter(|_| needs.database);
        if needs.required {
            if needs.database && database_url.is_none() {
                return Err(WiringError::missing("PostgreSQL", "DATABASE_URL"));
            }
            if needs.redis && redis_config.is_none() {
                return Err(WiringError::missing("Redis", "REDIS_URL"));
            }
        }
        let mut health: Vec<Arc<dyn HealthCheck>> = Vec::new();
        let mut described = Vec::new();
        let budgets = Budgets::default();

        // PostgreSQL: accounts, the shop and the outbox.
        let durable = match database_url {
            Some(url) => {
                let settings = pg::PoolSettings {
                    max_connections: self.database_pool_max.max(1),
                    ..pg::PoolSettings::default()
                };
                let pool = pg::lazy_pool(url.expose_secret(), &settings)
                    .map_err(|e| WiringError(format!("DATABASE_URL: {e}")))?;
                // HOLDs and payment results are written in batches (group commit) by as many
                // writer tasks each as an eighth of the pool (2 of the default 20); they share
                // the pool with everything else. Fewer writers make fuller batches: 5 HOLD
                // writers placed 2,878 orders/s, 2 placed 3,451/s (BENCHMARKS.md).
                let writers = (settings.max_connections / 8).clamp(1, 4) as usize;
                let shop = Arc::new(
                    pg::PgShop::new(pool.clone(), request_queue)
                        .with_hold_batching(writers)
                        .with_result_batching(writers),
                );
                let pg_health = pg::PgHealth::new(pool.clone());
                health.push(Arc::new(pg_health.clone()));
                described.push("postgresql");
                Durable {
                    users: Arc::new(pg::PgUserStore::new(pool.clone())),
                    sessions: Some(Arc::new(pg::PgSessionStore::new(pool))),
                    events: shop.clone(),
                    orders: shop.clone(),
                    payments: shop.clone(),
                    outbox: shop,
                    db_stats: Some(Arc::new(PgStats(pg_health))),
                }
            }
            None => {
                let records = Budget::new("idempotency_records", self.idempotency_max_records);
                budgets.add(records.clone());
                let shop = Arc::new(
                    memory::MemoryShop::new(request_queue.to_owned()).with_key_budget(records),
                );
                Durable {
                    users: Arc::new(memory::MemoryUserStore::new()),
                    sessions: None,
                    events: shop.clone(),
                    orders: shop.clone(),
                    payments: shop.clone(),
                    outbox: shop,
                    db_stats: None,
                }
            }
        };

        // Redis: the queue, its notices, limits, the processor ledger (and sessions without a DB).
        let fast = match &redis_config {
            Some(config) => {
                let r = redis::Redis::open(config).map_err(|e| WiringError(e.to_string()))?;
                health.push(Arc::new(redis::RedisHealth::new(r.clone())));
                described.push("redis");
                let scopes = Budget::new("queue_ticket_scopes", self.queue_scope_cache_max);
                budgets.add(scopes.clone());
                Fast {
                    queue: Arc::new(
                        redis::RedisQueueStore::new(r.clone()).with_scope_budget(scopes),
                    ),
                    notifier: Arc::new(redis::RedisQueueNotifier::new(r.clone())),
                    limiter: Arc::new(redis::RedisRateLimiter::new(r.clone())),
                    ledger: Arc::new(redis::RedisPaymentLedger::new(r.clone())),
                    timeline: Arc::new(redis::RedisTimeline::new(r.clone())),
                    sessions: Arc::new(redis::RedisSessionStore::new(r)),
                }
            }
            None => Fast {
                queue: Arc::new(memory::MemoryQueueStore::new()),
                notifier: Arc::new(memory::MemoryQueueNotifier::new()),
                limiter: {
                    let keys = Budget::new("rate_limit_keys", self.rate_limit_max_keys);
                    budgets.add(keys.clone());
                    Arc::new(memory::MemoryRateLimiter::with_budget(keys))
                },
                ledger: Arc::new(memory::MemoryPaymentLedger::new()),
                // 900 one-second records of a few fields per active line: well under 1 MiB.
                timeline: Arc::new(memory::MemoryTimeline::new()),
                sessions: Arc::new(memory::MemorySessionStore::new()),
            },
        };
        Ok(Stores {
            durable,
            fast,
            health,
            described,
            budgets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Stores {
        #[command(flatten)]
        stores: StoreConfig,
    }

    fn stores(args: &[&str]) -> Result<StoreConfig, clap::Error> {
        use clap::Parser;
        Stores::try_parse_from(std::iter::once("flash").chain(args.iter().copied()))
            .map(|s| s.stores)
    }

    #[test]
    fn the_legacy_redis_variables_are_parsed_once_and_refused_when_wrong() {
        let unset = stores(&[]).unwrap();
        assert!(unset.redis_config().unwrap().is_none());
        let legacy = stores(&[
            "--redis-host",
            "cache.internal",
            "--redis-port",
            "6380",
            "--redis-tls",
            "true",
        ])
        .unwrap();
        let config = legacy
            .redis_config()
            .unwrap()
            .expect("REDIS_HOST names a Redis");
        assert!(config.tls());
        assert_eq!(config.prefix(), "flash:");
        assert!(
            format!("{config:?}").contains("rediss://cache.internal:6380"),
            "{config:?}"
        );
        for (args, variable) in [
            (["--redis-port", "http"], "REDIS_PORT"),
            (["--redis-port", "0"], "REDIS_PORT"),
            (["--redis-tls", "yes"], "REDIS_TLS"),
            (["--redis-cluster", "1"], "REDIS_CLUSTER"),
        ] {
            let text = stores(&args).expect_err("refused").to_string();
            assert!(text.contains(variable), "{args:?}: {text}");
        }
        assert!(!config.cluster());
        let cluster = stores(&[
            "--redis-url",
            "redis://clustercfg.cache.internal:6379",
            "--redis-cluster",
            "true",
        ])
        .unwrap();
        assert!(
            cluster
                .redis_config()
                .unwrap()
                .expect("REDIS_URL names a Redis Cluster")
                .cluster()
        );
        let bad_host = stores(&["--redis-host", "a b"]).unwrap();
        assert!(
            bad_host
                .redis_config()
                .unwrap_err()
                .to_string()
                .contains("REDIS_HOST")
        );
    }

    #[test]
    fn legacy_millisecond_timings_are_served_in_seconds() {
        let (name, _, _, value) = seconds_not_ms(("db_block_read_time_ms_total", "h", "c", 1500.0));
        assert_eq!(name, "db_block_read_time_seconds_total");
        assert_eq!(value, 1.5);
        let (name, _, _, value) = seconds_not_ms(("db_commits_total", "h", "c", 7.0));
        assert_eq!((name, value), ("db_commits_total", 7.0));
    }
}

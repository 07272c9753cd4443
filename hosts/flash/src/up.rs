//! `flash up`: every port on its in-memory adapter, the router on one address, and the
//! background work as tasks of this process.

use clap::Args;
use flash_adapter_memory::{
    MemoryBus, MemoryClock, MemoryHealth, MemoryIds, MemoryPaymentLedger, MemoryQueueNotifier,
    MemoryQueueStore, MemoryRateLimiter, MemorySessionStore, MemoryShop, MemoryUserStore,
    ThreadRandom,
};
use flash_core::domain::{Event, EventStatus, LoginName, Role, User};
use flash_core::ports::{Clock, EventStore, UserStore};
use flash_core::{EventId, UserId};
use flash_handlers::settings::{
    AuthSettings, OrderSettings, PaySettings, PaymentSettings, QueueSettings,
};
use flash_handlers::{Handlers, Ports, Settings};
use flash_http::layers::HttpLayersConfig;
use flash_http::metrics::Metrics;
use flash_http::state::{AppState, Services};
use flash_runtime::config::{
    AuthConfig, HttpConfig, OrderConfig, PayConfig, PaymentConfig, QueueConfig, TelemetryConfig,
    secret_or_random,
};
use flash_runtime::jobs::{self, Intervals};
use flash_runtime::shutdown::{Shutdown, TaskSet};
use secrecy::ExposeSecret;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct UpConfig {
    #[command(flatten)]
    pub http: HttpConfig,
    #[command(flatten)]
    pub auth: AuthConfig,
    #[command(flatten)]
    pub queue: QueueConfig,
    #[command(flatten)]
    pub orders: OrderConfig,
    #[command(flatten)]
    pub payments: PaymentConfig,
    #[command(flatten)]
    pub pay: PayConfig,
    #[command(flatten)]
    pub telemetry: TelemetryConfig,
    /// Demo accounts test0000… created at start-up (password `testtest`); 0 for none.
    #[arg(
        long = "demo-users",
        env = "DEMO_USERS",
        value_name = "DEMO_USERS",
        default_value_t = 1000
    )]
    pub demo_users: u32,
    /// Tickets of the demo ONSALE event; 0 for no demo event.
    #[arg(
        long = "demo-event-qty",
        env = "DEMO_EVENT_QTY",
        value_name = "DEMO_EVENT_QTY",
        default_value_t = 1000
    )]
    pub demo_event_qty: i64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Builds the business settings from the validated configuration.
pub fn settings(c: &UpConfig) -> Settings {
    let access = secret_or_random(c.auth.jwt_access_secret.clone());
    let refresh = secret_or_random(c.auth.jwt_refresh_secret.clone());
    let gate = c.queue.effective_gate_secret(&access);
    let bytes = |s: &secrecy::SecretString| s.expose_secret().as_bytes().to_vec();
    Settings {
        auth: AuthSettings {
            access_secret: bytes(&access),
            refresh_secret: bytes(&refresh),
            access_ttl: c.auth.access_ttl,
            refresh_ttl: c.auth.refresh_ttl,
            admin_secret: c.auth.admin_register_secret.as_ref().map(bytes),
            bcrypt_cost: c.auth.bcrypt_cost,
            hash_concurrency: c.auth.password_hash_concurrency,
            login_limit_per_user: c.auth.login_rate_limit_per_user.limit,
            login_limit_per_addr: c.auth.login_rate_limit_per_ip.limit,
            login_window: c.auth.login_rate_limit_per_user.window,
        },
        queue: QueueSettings {
            capacity: c.queue.ready_capacity,
            gate_ttl: c.queue.gate_token_ttl,
            gate_secret: bytes(&gate),
            enforce_admission: c.queue.enforce_admission,
            enqueue_limit_per_user: c.queue.enqueue_rate_limit_per_user.limit,
            enqueue_window: c.queue.enqueue_rate_limit_per_user.window,
        },
        orders: OrderSettings {
            hold_ttl: c.orders.hold_ttl,
            idempotency_ttl: c.orders.idempotency_ttl,
        },
        payments: PaymentSettings {
            timeout: c.payments.timeout,
            callback_secret: c.payments.callback_secret.as_ref().map(bytes),
            allow_owner_callback: c.payments.allow_owner_callback,
            request_queue: c.payments.request_queue.clone(),
            result_queue: c.payments.result_queue.clone(),
        },
        pay: PaySettings {
            success_rate: c.pay.success_rate,
            min_latency: c.pay.processing_min(),
            max_latency: c.pay.processing_max(),
            result_queue: c.payments.result_queue.clone(),
        },
    }
}

/// The running system, for tests: its address and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub done: tokio::task::JoinHandle<()>,
    pub demo_event: Option<EventId>,
}

pub async fn run(c: UpConfig) -> Result<(), BoxError> {
    flash_runtime::telemetry::init(&c.telemetry);
    let started = Instant::now();
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    let running = start(c, shutdown).await?;
    print_banner(running.addr, running.demo_event, started.elapsed());
    running.done.await?;
    Ok(())
}

/// Starts everything and returns once the listener is bound.
pub async fn start(c: UpConfig, shutdown: Shutdown) -> Result<Running, BoxError> {
    let settings = settings(&c);
    let clock: Arc<dyn Clock> = Arc::new(MemoryClock);
    let shop = Arc::new(MemoryShop::new(c.payments.request_queue.clone()));
    let bus = Arc::new(MemoryBus::new(c.payments.bus_max_attempts));
    let users = Arc::new(MemoryUserStore::new());
    let ports = Ports {
        clock: clock.clone(),
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
        bus: bus.clone(),
        ledger: Arc::new(MemoryPaymentLedger::new()),
    };
    let demo_event = seed(&c, &ports, users.as_ref(), shop.as_ref()).await?;
    let handlers = Arc::new(Handlers::new(&ports, settings));
    let metrics = Metrics::new()?;
    let state = AppState {
        handlers: handlers.clone(),
        metrics: metrics.clone(),
        health: Arc::new(vec![Arc::new(MemoryHealth)]),
        db_stats: None,
        services: Services::ALL,
        health_timeout: Duration::from_secs(2),
        ws_refresh: c.queue.ws_refresh,
        started: Instant::now(),
    };
    let layers = HttpLayersConfig {
        service: "flash".into(),
        cors_origins: c.http.cors_origins.clone(),
        body_limit: flash_http::body::DEFAULT_BODY_LIMIT,
    };
    let (router, socket_tasks) =
        flash_http::app_with_socket(state, &layers, ports.notifier.clone());
    let router = crate::web::mount(router, &layers, &metrics);

    let mut tasks = TaskSet::new(&shutdown);
    for (i, t) in socket_tasks.into_iter().enumerate() {
        tasks.adopt(format!("socket-{i}"), t);
    }
    let intervals = Intervals {
        promotion: c.queue.promotion_interval,
        sweep: Duration::from_secs(1),
        relay: Duration::from_millis(500),
    };
    jobs::spawn_promoter(
        &mut tasks,
        handlers.clone(),
        metrics.clone(),
        intervals.promotion,
    );
    jobs::spawn_sweepers(&mut tasks, handlers.clone(), intervals.sweep);
    jobs::spawn_relay(
        &mut tasks,
        &handlers,
        shop.clone(),
        bus.clone(),
        clock.clone(),
        metrics.clone(),
        intervals.relay,
    );
    jobs::spawn_pay_worker(
        &mut tasks,
        handlers.clone(),
        metrics.clone(),
        Arc::new(bus.consumer(&c.payments.request_queue)),
        c.pay.concurrency,
    );
    jobs::spawn_result_consumer(
        &mut tasks,
        handlers.clone(),
        metrics.clone(),
        Arc::new(bus.consumer(&c.payments.result_queue)),
        c.pay.concurrency,
    );

    let listener = tokio::net::TcpListener::bind(c.http.addr()).await?;
    let addr = listener.local_addr()?;
    let grace = c.http.shutdown_grace;
    let stop = shutdown.clone();
    let done = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "server failed");
        }
        let report = tasks.shutdown(grace).await;
        tracing::info!(?report, "stopped");
    });
    Ok(Running {
        addr,
        shutdown,
        done,
        demo_event,
    })
}

/// Demo data of SPEC §1: accounts test0000… (password `testtest`) and one ONSALE event.
async fn seed(
    c: &UpConfig,
    ports: &Ports,
    users: &dyn UserStore,
    events: &dyn EventStore,
) -> Result<Option<EventId>, BoxError> {
    let now = ports.clock.now();
    if c.demo_users > 0 {
        // One hash for every demo account: hashing a thousand at cost 10 would take a minute.
        let cost = c.auth.bcrypt_cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt_hash("testtest", cost)).await??;
        for i in 0..c.demo_users {
            users
                .create(User {
                    id: UserId(ports.ids.uuid()),
                    login: LoginName::trusted(format!("test{i:04}")),
                    password_hash: hash.clone(),
                    role: Role::User,
                    created_at: now,
                })
                .await?;
        }
    }
    if c.demo_event_qty <= 0 {
        return Ok(None);
    }
    let id = EventId(ports.ids.uuid());
    events
        .create(Event {
            id,
            name: "Flash Tickets Live".into(),
            starts_at: now,
            ends_at: now.plus(Duration::from_secs(7 * 24 * 3600)),
            total_qty: c.demo_event_qty,
            sold_qty: 0,
            held_qty: 0,
            max_per_user: 4,
            price: 50_000,
            status: EventStatus::Onsale,
            created_at: now,
            updated_at: now,
        })
        .await?;
    Ok(Some(id))
}

fn bcrypt_hash(password: &str, cost: u32) -> Result<String, BoxError> {
    Ok(flash_handlers::auth::hash_password(password, cost)?)
}

fn print_banner(addr: SocketAddr, event: Option<EventId>, took: Duration) {
    println!(
        "Flash Tickets is up in {} ms on http://{addr}",
        took.as_millis()
    );
    println!("  demo accounts: test0000 … test0999, password testtest");
    if let Some(e) = event {
        println!("  demo event:    {e} (ONSALE)");
    }
    println!("  try:           curl -s http://{addr}/events");
    println!("  API document:  http://{addr}/openapi.json   metrics: http://{addr}/metrics");
    println!("  stop with Ctrl-C");
}

//! `flash up`: the whole system in one process. Every port runs on its in-memory adapter unless
//! its backend's variable is set (`DATABASE_URL`, `REDIS_URL`/`REDIS_HOST`, `RABBITMQ_URL`), the
//! router serves the gateway and api routes, Socket.IO and the web page on one address, and the
//! background work runs as tasks of this process.

use clap::Args;
use flash_core::domain::{Event, EventStatus, LoginName, Role, User};
use flash_core::ports::EventListing;
use flash_core::{EventId, StoreError, UserId};
use flash_handlers::{Handlers, Ports, Settings};
use flash_http::layers::HttpLayersConfig;
use flash_http::metrics::Metrics;
use flash_http::server::ServeOptions;
use flash_http::state::{AppState, Services};
use flash_pods::backends::{BackendConfig, Needs};
use flash_runtime::config::{
    AuthConfig, HttpConfig, OrderConfig, PayConfig, PaymentConfig, QueueConfig, TelemetryConfig,
    secret_or_random,
};
use flash_runtime::jobs::{self, Intervals};
use flash_runtime::settings::Groups;
use flash_runtime::shutdown::{Shutdown, TaskSet};
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
    #[command(flatten)]
    pub backends: BackendConfig,
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

/// Builds the business settings; unset JWT secrets become random ones for this process.
pub fn settings(c: &UpConfig) -> Settings {
    let access = secret_or_random(c.auth.jwt_access_secret.clone());
    let refresh = secret_or_random(c.auth.jwt_refresh_secret.clone());
    let groups = Groups {
        auth: &c.auth,
        queue: &c.queue,
        orders: &c.orders,
        payments: &c.payments,
        pay: &c.pay,
    };
    flash_runtime::settings::build(&groups, &access, &refresh)
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
    let demo_users = c.demo_users;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    let running = start(c, shutdown).await?;
    print_banner(
        running.addr,
        demo_users,
        running.demo_event,
        started.elapsed(),
    );
    running.done.await?;
    Ok(())
}

/// Starts everything and returns once the listener is bound.
pub async fn start(c: UpConfig, shutdown: Shutdown) -> Result<Running, BoxError> {
    let settings = settings(&c);
    let backends = c.backends.connect(
        Needs::WHATEVER_IS_SET,
        &c.payments.request_queue,
        c.payments.bus_max_attempts,
    )?;
    if !backends.described.is_empty() {
        tracing::info!(backends = ?backends.described, "real backends in use");
    }
    let ports = backends.ports.clone();
    let demo_event = seed(&c, &ports).await?;
    let handlers = Arc::new(Handlers::new(&ports, settings));
    let metrics = Metrics::new()?;
    let state = AppState {
        handlers: handlers.clone(),
        metrics: metrics.clone(),
        health: Arc::new(backends.health.clone()),
        db_stats: backends.db_stats.clone(),
        budgets: backends.budgets.clone(),
        services: Services::ALL,
        health_timeout: Duration::from_secs(2),
        ws_refresh: c.queue.ws_refresh,
        started: Instant::now(),
    };
    let layers = HttpLayersConfig {
        service: "flash".into(),
        cors_origins: c.http.cors_origins.clone(),
        body_limit: flash_http::body::DEFAULT_BODY_LIMIT,
        read_timeout: c.http.read_timeout,
    };
    let (router, socket_tasks) =
        flash_http::app_with_socket(state, &layers, ports.notifier.clone());
    let router = crate::web::mount(router, &layers, &metrics);

    let mut tasks = TaskSet::new(&shutdown);
    for t in socket_tasks {
        // Push loops: nothing in flight to let finish.
        tasks.adopt_abortable(t);
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
        backends.outbox.clone(),
        ports.bus.clone(),
        ports.clock.clone(),
        metrics.clone(),
        intervals.relay,
    );
    let prefetch = u16::try_from(c.pay.concurrency).unwrap_or(u16::MAX);
    jobs::spawn_pay_worker(
        &mut tasks,
        handlers.clone(),
        metrics.clone(),
        backends.consumer(&c.payments.request_queue, prefetch),
        c.pay.concurrency,
    );
    jobs::spawn_result_consumer(
        &mut tasks,
        handlers.clone(),
        metrics.clone(),
        backends.consumer(&c.payments.result_queue, prefetch),
        c.pay.concurrency,
    );

    let listener = tokio::net::TcpListener::bind(c.http.addr()).await?;
    let addr = listener.local_addr()?;
    let grace = c.http.shutdown_grace;
    let stop = shutdown.clone();
    let options = ServeOptions {
        read_timeout: c.http.read_timeout,
        // `flash up` faces its clients directly: the socket peer is the client address.
        peer_is_client: true,
    };
    let done = tokio::spawn(async move {
        flash_http::server::serve(listener, router, options, stop.cancelled()).await;
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

/// Demo data of SPEC §1: accounts test0000… (password `testtest`) and one ONSALE event. Against
/// a database that already has them (a restart with `DATABASE_URL`), nothing is added twice.
async fn seed(c: &UpConfig, ports: &Ports) -> Result<Option<EventId>, BoxError> {
    let now = ports.clock.now();
    let first = LoginName::trusted("test0000");
    if c.demo_users > 0 && ports.users.by_login(&first).await?.is_none() {
        // One hash for every demo account: hashing a thousand at cost 10 would take a minute.
        let cost = c.auth.bcrypt_cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt_hash("testtest", cost)).await??;
        for i in 0..c.demo_users {
            let user = User {
                id: UserId(ports.ids.uuid()),
                login: LoginName::trusted(format!("test{i:04}")),
                password_hash: hash.clone(),
                role: Role::User,
                created_at: now,
            };
            match ports.users.create(user).await {
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    if c.demo_event_qty <= 0 {
        return Ok(None);
    }
    if let Some(existing) = ports.events.list(EventListing::Public).await?.first() {
        return Ok(Some(existing.id));
    }
    let id = EventId(ports.ids.uuid());
    ports
        .events
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

fn print_banner(addr: SocketAddr, demo_users: u32, event: Option<EventId>, took: Duration) {
    println!(
        "Flash Tickets is up in {} ms on http://{addr}",
        took.as_millis()
    );
    if demo_users > 0 {
        println!(
            "  demo accounts: test0000 … test{:04}, password testtest",
            demo_users - 1
        );
    }
    if let Some(e) = event {
        println!("  demo event:    {e} (ONSALE)");
    }
    println!("  open:          http://{addr}/   (the buyer and admin page)");
    println!("  try:           curl -s http://{addr}/events");
    println!("  API document:  http://{addr}/openapi.json   metrics: http://{addr}/metrics");
    println!("  stop with Ctrl-C");
}

//! `flash up`: the whole system in one process. Every port runs on its in-memory adapter unless
//! its backend's variable is set (`DATABASE_URL`, `REDIS_URL`/`REDIS_HOST`, `RABBITMQ_URL`), the
//! router serves the gateway and api routes, Socket.IO and the web page on one address, and the
//! background work runs as tasks of this process.

use clap::Args;
use flash_core::domain::{Event, EventStatus, LoginName, Role as UserRole, User};
use flash_core::ports::EventListing;
use flash_core::{EventId, StoreError, UserId};
use flash_handlers::Ports;
use flash_pods::serve::{self, PodConfig, Role};
use flash_runtime::shutdown::Shutdown;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Args)]
pub struct UpConfig {
    #[command(flatten)]
    pub pod: PodConfig,
    /// Demo accounts test0000… created at start-up (password `testtest`); 0 for none.
    #[arg(long, env, default_value_t = 1000)]
    pub demo_users: u32,
    /// Tickets of the demo ONSALE event; 0 for no demo event.
    #[arg(long, env, default_value_t = 1000)]
    pub demo_event_qty: i64,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The running system, for tests: its address and a way to stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub done: tokio::task::JoinHandle<()>,
    pub demo_event: Option<EventId>,
}

pub async fn run(c: UpConfig) -> Result<(), BoxError> {
    flash_runtime::telemetry::init(&c.pod.app.telemetry);
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

/// Starts everything (the pods' roles in one process, plus the web page and the demo data) and
/// returns once the listener is bound.
pub async fn start(c: UpConfig, shutdown: Shutdown) -> Result<Running, BoxError> {
    let mut assembled = serve::assemble(Role::All, &c.pod, &shutdown)?;
    let app = &assembled.backends.app;
    let demo_event = seed(&c, &app.ports).await?;
    let layers = c.pod.app.layers("flash");
    assembled.router = crate::web::mount(assembled.router, &layers, &app.metrics);
    let pod = assembled.serve(shutdown).await?;
    Ok(Running {
        addr: pod.addr,
        shutdown: pod.shutdown,
        done: pod.done,
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
        let cost = c.pod.app.settings.auth.bcrypt_cost;
        let hash = tokio::task::spawn_blocking(move || bcrypt_hash("testtest", cost)).await??;
        for i in 0..c.demo_users {
            let user = User {
                id: UserId(ports.ids.uuid()),
                login: LoginName::trusted(format!("test{i:04}")),
                password_hash: hash.clone(),
                role: UserRole::User,
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
            prequeue_starts_at: None,
            queue_mode: flash_core::domain::QueueMode::Global,
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

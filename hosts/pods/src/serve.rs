//! One pod: configuration, backends, router and background tasks for its role, served until
//! SIGTERM, then drained within the grace period.

use crate::backends::{BackendConfig, Backends, HEALTH_TIMEOUT, Needs};
use axum::Router;
use clap::{Args, CommandFactory, Parser};
use flash_handlers::Handlers;
use flash_http::layers::HttpLayersConfig;
use flash_http::metrics::Metrics;
use flash_http::server::ServeOptions;
use flash_http::state::{AppState, Services};
use flash_runtime::config::{
    AuthConfig, ConfigError, HttpConfig, OrderConfig, PayConfig, PaymentConfig, QueueConfig,
    TelemetryConfig, parse_command_from_env, require_secret,
};
use flash_runtime::jobs;
use flash_runtime::settings::{Groups, build};
use flash_runtime::shutdown::{Shutdown, TaskSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a pod does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Auth, queue, Socket.IO, promotion (:3000).
    Gateway,
    /// Events, orders, payments, result consumer, outbox relay, sweepers (:4000).
    Api,
    /// The mock payment processor on the bus; health on PAY_HEALTH_PORT (:3100).
    Pay,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Api => "api",
            Role::Pay => "pay",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Role::Gateway => "flash-gateway",
            Role::Api => "flash-api",
            Role::Pay => "flash-pay",
        }
    }

    fn needs(self) -> Needs {
        match self {
            Role::Gateway => Needs {
                database: true,
                redis: true,
                bus: false,
                required: true,
            },
            Role::Api => Needs {
                database: true,
                redis: true,
                bus: true,
                required: true,
            },
            Role::Pay => Needs {
                database: false,
                redis: true,
                bus: true,
                required: true,
            },
        }
    }
}

/// Every option of every pod (each role uses what it needs), from the legacy variables.
#[derive(Debug, Clone, Args)]
pub struct PodConfig {
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
    /// Whether this api instance publishes the outbox (run it in every api pod or in a few).
    #[arg(long = "outbox-relay", env = "OUTBOX_RELAY", value_name = "OUTBOX_RELAY", default_value = "true", value_parser = flash_runtime::config::parse_bool)]
    pub outbox_relay: bool,
}

#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    config: PodConfig,
}

/// Parses the pod's configuration from the environment with its role's defaults; a bad value
/// ends the process with a message naming the variable.
pub fn parse(role: Role) -> PodConfig {
    let mut cmd = Cli::command()
        .name(role.binary())
        .about(format!("Flash Tickets {} pod", role.name()));
    cmd = match role {
        Role::Gateway => cmd.mut_arg("port", |a| a.default_value("3000")),
        Role::Api => cmd.mut_arg("port", |a| a.default_value("4000")),
        Role::Pay => cmd,
    };
    let cli: Cli = parse_command_from_env(cmd);
    cli.config
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn secrets(c: &PodConfig) -> Result<flash_handlers::Settings, ConfigError> {
    let access = require_secret("JWT_ACCESS_SECRET", &c.auth.jwt_access_secret)?;
    // Only the gateway signs refresh tokens; the others verify access tokens only.
    let refresh = c
        .auth
        .jwt_refresh_secret
        .clone()
        .unwrap_or_else(|| access.clone());
    let groups = Groups {
        auth: &c.auth,
        queue: &c.queue,
        orders: &c.orders,
        payments: &c.payments,
        pay: &c.pay,
    };
    Ok(build(&groups, &access, &refresh))
}

/// Runs a pod until SIGTERM / Ctrl-C.
pub async fn run(role: Role, c: PodConfig) -> Result<(), BoxError> {
    flash_runtime::telemetry::init(&c.telemetry);
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signal();
    let pod = start(role, c, shutdown).await?;
    pod.done.await?;
    Ok(())
}

/// A started pod: where it listens and how to stop it.
pub struct Pod {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    pub done: tokio::task::JoinHandle<()>,
}

/// Starts a pod and returns once it listens. Prints `listening on http://ADDR` on stdout.
pub async fn start(role: Role, c: PodConfig, shutdown: Shutdown) -> Result<Pod, BoxError> {
    if role == Role::Gateway && c.auth.jwt_refresh_secret.is_none() {
        return Err(ConfigError::new("JWT_REFRESH_SECRET", "is required")
            .to_string()
            .into());
    }
    let settings = secrets(&c).map_err(|e| e.to_string())?;
    let backends = c.backends.connect(
        role.needs(),
        &c.payments.request_queue,
        c.payments.bus_max_attempts,
    )?;
    let handlers = Arc::new(Handlers::new(&backends.ports, settings));
    let metrics = Metrics::new()?;
    let mut tasks = TaskSet::new(&shutdown);
    let prefetch = u16::try_from(c.pay.concurrency).unwrap_or(u16::MAX);

    let (router, addr) = match role {
        Role::Gateway => {
            let state = app_state(&handlers, &metrics, &backends, Services::GATEWAY, &c);
            let (router, socket_tasks) = flash_http::app_with_socket(
                state,
                &layers(role, &c),
                backends.ports.notifier.clone(),
            );
            for t in socket_tasks {
                // Push loops: nothing in flight to let finish.
                tasks.adopt_abortable(t);
            }
            jobs::spawn_promoter(
                &mut tasks,
                handlers.clone(),
                metrics.clone(),
                c.queue.promotion_interval,
            );
            (router, c.http.gateway_addr())
        }
        Role::Api => {
            let state = app_state(&handlers, &metrics, &backends, Services::API, &c);
            let router = flash_http::app(state, &layers(role, &c));
            jobs::spawn_sweepers(&mut tasks, handlers.clone(), Duration::from_secs(1));
            if c.outbox_relay {
                jobs::spawn_relay(
                    &mut tasks,
                    &handlers,
                    backends.outbox.clone(),
                    backends.ports.bus.clone(),
                    backends.ports.clock.clone(),
                    metrics.clone(),
                    Duration::from_millis(500),
                );
            }
            jobs::spawn_result_consumer(
                &mut tasks,
                handlers.clone(),
                metrics.clone(),
                backends.consumer(&c.payments.result_queue, prefetch),
                c.pay.concurrency,
            );
            (router, c.http.addr())
        }
        Role::Pay => {
            // The processor has no API: its HTTP server answers health and metrics only.
            let state = app_state(
                &handlers,
                &metrics,
                &backends,
                Services {
                    gateway: false,
                    api: false,
                },
                &c,
            );
            let router = flash_http::app(state, &layers(role, &c));
            jobs::spawn_pay_worker(
                &mut tasks,
                handlers.clone(),
                metrics.clone(),
                backends.consumer(&c.payments.request_queue, prefetch),
                c.pay.concurrency,
            );
            let mut addr = c.http.addr();
            addr.set_port(c.pay.health_port);
            (router, addr)
        }
    };
    tracing::info!(role = role.name(), backends = ?backends.described, "starting");
    serve(
        router,
        addr,
        shutdown,
        tasks,
        c.http.shutdown_grace,
        c.http.read_timeout,
    )
    .await
}

fn app_state(
    handlers: &Arc<Handlers>,
    metrics: &Metrics,
    b: &Backends,
    services: Services,
    c: &PodConfig,
) -> AppState {
    AppState {
        handlers: handlers.clone(),
        metrics: metrics.clone(),
        health: Arc::new(b.health.clone()),
        db_stats: b.db_stats.clone(),
        budgets: b.budgets.clone(),
        services,
        health_timeout: HEALTH_TIMEOUT,
        ws_refresh: c.queue.ws_refresh,
        started: Instant::now(),
    }
}

fn layers(role: Role, c: &PodConfig) -> HttpLayersConfig {
    HttpLayersConfig {
        service: role.name().to_owned(),
        cors_origins: c.http.cors_origins.clone(),
        body_limit: flash_http::body::DEFAULT_BODY_LIMIT,
        read_timeout: c.http.read_timeout,
    }
}

/// Binds, prints the address, serves until shutdown, then drains the background tasks.
pub async fn serve(
    router: Router,
    addr: SocketAddr,
    shutdown: Shutdown,
    tasks: TaskSet,
    grace: Duration,
    read_timeout: Duration,
) -> Result<Pod, BoxError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    // Tests and scripts read this line to find an ephemeral port.
    println!("listening on http://{local}");
    tracing::info!(%local, "listening");
    let stop = shutdown.clone();
    let done = tokio::spawn(async move {
        let options = ServeOptions {
            read_timeout,
            // Behind the ALB the client address comes from X-Forwarded-For.
            peer_is_client: false,
        };
        flash_http::server::serve(listener, router, options, stop.cancelled()).await;
        let report = tasks.shutdown(grace).await;
        tracing::info!(?report, "stopped");
    });
    Ok(Pod {
        addr: local,
        shutdown,
        done,
    })
}

/// Entry point shared by the role binaries.
pub fn main_for(role: Role) {
    let config = parse(role);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(role, config)) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

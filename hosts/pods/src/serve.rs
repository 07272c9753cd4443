//! One pod: configuration, backends, router and background tasks for its role, served until
//! SIGTERM, then drained within the grace period.

use crate::backends::{Backends, BusConfig, Needs};
use axum::Router;
use clap::{Args, CommandFactory, Parser};
use flash_handlers::settings::values::parse_positive_millis;
use flash_http::server::ServeOptions;
use flash_http::state::Services;
use flash_runtime::config::parse_command_from_env;
use flash_runtime::consumers::Consumer;
use flash_runtime::jobs;
use flash_runtime::shutdown::{Shutdown, TaskSet, Threads};
use flash_runtime::worker::MessageHandler;
use flash_wiring::{AppConfig, Secrets};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a process serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Auth, queue, Socket.IO, promotion (:3000).
    Gateway,
    /// Events, orders, payments, result consumer, outbox relay, sweepers (:4000).
    Api,
    /// The mock payment processor on the bus; health on PAY_HEALTH_PORT (:3100).
    Pay,
    /// Everything in one process (`flash up`): every backend whose variable is set is real, the
    /// rest in memory; unset token secrets are random.
    All,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Api => "api",
            Role::Pay => "pay",
            Role::All => "flash",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Role::Gateway => "flash-gateway",
            Role::Api => "flash-api",
            Role::Pay => "flash-pay",
            Role::All => "flash",
        }
    }

    fn needs(self) -> Needs {
        let pod = |database, bus| Needs {
            database,
            redis: true,
            bus,
            required: true,
        };
        match self {
            Role::Gateway => pod(true, false),
            Role::Api => pod(true, true),
            Role::Pay => pod(false, true),
            Role::All => Needs::WHATEVER_IS_SET,
        }
    }

    /// Only the gateway signs refresh tokens and the api verifies access tokens; the payment
    /// processor serves no API, so it builds no request handlers and reads no token secret.
    fn secrets(self) -> Option<Secrets> {
        match self {
            Role::Gateway => Some(Secrets::Required { refresh: true }),
            Role::Api => Some(Secrets::Required { refresh: false }),
            Role::Pay => None,
            Role::All => Some(Secrets::RandomWhenUnset),
        }
    }

    fn services(self) -> Services {
        match self {
            Role::Gateway => Services::GATEWAY,
            Role::Api => Services::API,
            // The processor has no API: its HTTP server answers health and metrics only.
            Role::Pay => Services {
                gateway: false,
                api: false,
            },
            Role::All => Services::ALL,
        }
    }
}

/// Every option of every pod (each role uses what it needs), from the legacy variables.
#[derive(Debug, Clone, Args)]
pub struct PodConfig {
    #[command(flatten)]
    pub app: AppConfig,
    #[command(flatten)]
    pub bus: BusConfig,
    /// Whether this api instance publishes the outbox (run it in every api pod or in a few).
    #[arg(long, env, default_value = "true", value_parser = flash_runtime::config::parse_bool)]
    pub outbox_relay: bool,
    /// How often the relay polls the outbox; a payment written in this process nudges it at once.
    #[arg(long, env, default_value = "500", value_parser = parse_positive_millis)]
    pub outbox_relay_interval_ms: Duration,
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
        Role::Pay | Role::All => cmd,
    };
    let cli: Cli = parse_command_from_env(cmd);
    cli.config
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Runs a pod until SIGTERM / Ctrl-C.
pub async fn run(role: Role, c: PodConfig) -> Result<(), BoxError> {
    flash_runtime::telemetry::init(&c.app.telemetry);
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
    assemble(role, &c, &shutdown)?.serve(shutdown).await
}

/// A process put together but not yet listening: its backends, router and background tasks.
pub struct Assembled {
    pub backends: Backends,
    pub router: Router,
    pub tasks: TaskSet,
    pub addr: SocketAddr,
    role: Role,
    grace: Duration,
    read_timeout: Duration,
}

/// Connects the backends `role` needs, builds its router and spawns its background work (which
/// starts at once; the listener is bound by [`Assembled::serve`]).
pub fn assemble(role: Role, c: &PodConfig, shutdown: &Shutdown) -> Result<Assembled, BoxError> {
    let backends = Backends::connect(&c.app, &c.bus, role.needs())?;
    let app = &backends.app;
    let work = &app.work;
    let settings = &work.settings;
    let mut tasks = TaskSet::new(shutdown);
    let layers = c.app.layers(role.name());
    let router = match role.secrets() {
        None => flash_http::ops_app(app.ops(role.services()), &layers),
        Some(secrets) => {
            let handlers = app.site(secrets)?;
            // What this instance remembers of events forgets what an admin changes anywhere.
            jobs::spawn_event_follower(
                &mut tasks,
                handlers.event_cache(),
                app.ports.notifier.clone(),
            );
            let state = app.state(handlers, role.services());
            if role.services().gateway {
                let (router, socket_tasks) =
                    flash_http::app_with_socket(state, &layers, app.ports.notifier.clone());
                for t in socket_tasks {
                    // Push loops: nothing in flight to let finish.
                    tasks.adopt_abortable(t);
                }
                router
            } else {
                flash_http::app(state, &layers)
            }
        }
    };
    // The gateway promotes when a buyer joins or leaves; the api when an order spends an
    // admission or takes the last ticket (SPEC §4: the line closes within a pass, not a period).
    // Either's kick is in-process, so both run a promoter; racing ones are safe (atomic steps,
    // a phase change announced once) and their notices reach every gateway through Redis.
    if role.services().gateway || role.services().api {
        jobs::spawn_promoter(
            &mut tasks,
            work.clone(),
            app.metrics.clone(),
            settings.queue.promotion_interval,
        );
    }
    if role.services().gateway || role.services().api {
        // Every instance adds its own requests, joins and admissions to the shared timeline;
        // the order and payment counts are read where the order store is (the api).
        flash_runtime::sampler::spawn_sampler(
            &mut tasks,
            work.clone(),
            app.metrics.clone(),
            flash_handlers::timeline::SampleScope {
                queues: true,
                shop: role.services().api,
            },
        );
    }
    let concurrency = settings.pay.concurrency;
    let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
    if role.services().api {
        jobs::spawn_sweepers(&mut tasks, work.clone(), Duration::from_secs(1));
        if c.outbox_relay {
            jobs::spawn_relay(
                &mut tasks,
                work,
                app.outbox.clone(),
                app.ports.bus.clone(),
                app.ports.clock.clone(),
                app.metrics.clone(),
                c.outbox_relay_interval_ms,
            );
        }
    }
    // The bus consumers of this role, each on its queue.
    let mut consumers: Vec<(&'static str, &str, Arc<dyn MessageHandler>)> = Vec::new();
    if role.services().api {
        let results = Consumer::payment_results(work, app.metrics.clone());
        consumers.push((
            "payment-results",
            &settings.payments.result_queue,
            Arc::new(results),
        ));
    }
    if matches!(role, Role::Pay | Role::All) {
        let requests = Consumer::payment_requests(work, app.metrics.clone());
        consumers.push((
            "pay-worker",
            &settings.payments.request_queue,
            Arc::new(requests),
        ));
    }
    for (name, queue, handler) in consumers {
        let consumer = backends.consumer(queue, prefetch);
        jobs::spawn_consumer(&mut tasks, name, consumer, handler, concurrency);
    }
    let addr = match role {
        Role::Gateway => c.app.http.gateway_addr(),
        Role::Pay => SocketAddr::new(c.app.http.host, settings.pay.health_port),
        Role::Api | Role::All => c.app.http.addr(),
    };
    tracing::info!(role = role.name(), backends = ?app.described, "starting");
    Ok(Assembled {
        backends,
        router,
        tasks,
        addr,
        role,
        grace: c.app.http.shutdown_grace_ms,
        read_timeout: c.app.http.http_read_timeout_ms,
    })
}

impl Assembled {
    /// Binds, prints the address, serves until shutdown, then drains the background tasks.
    pub async fn serve(self, shutdown: Shutdown) -> Result<Pod, BoxError> {
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        let local = listener.local_addr()?;
        // Tests and scripts read this line to find an ephemeral port.
        println!("listening on http://{local}");
        tracing::info!(%local, "listening");
        let options = ServeOptions {
            read_timeout: self.read_timeout,
            // Behind the ALB the client address comes from X-Forwarded-For; `flash up` faces its
            // clients directly, so there the socket peer is the client.
            peer_is_client: self.role == Role::All,
        };
        let (router, tasks, grace) = (self.router, self.tasks, self.grace);
        let stop = shutdown.clone();
        let done = tokio::spawn(async move {
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
}

/// Entry point shared by the role binaries.
pub fn main_for(role: Role) {
    let config = parse(role);
    flash_runtime::shutdown::run_main(Threads::PerCore, run(role, config));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<PodConfig, clap::Error> {
        Cli::try_parse_from(std::iter::once("flash-api").chain(args.iter().copied()))
            .map(|c| c.config)
    }

    #[test]
    fn the_outbox_relay_runs_every_half_second_unless_told_otherwise() {
        let c = parse_args(&[]).expect("defaults parse");
        assert!(c.outbox_relay);
        assert_eq!(c.outbox_relay_interval_ms, Duration::from_millis(500));
        let c = parse_args(&["--outbox-relay-interval-ms", "50"]).expect("a period parses");
        assert_eq!(c.outbox_relay_interval_ms, Duration::from_millis(50));
        let e = parse_args(&["--outbox-relay-interval-ms", "0"]).unwrap_err();
        assert!(e.to_string().contains("OUTBOX_RELAY_INTERVAL_MS"), "{e}");
    }
}

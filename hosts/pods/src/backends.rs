//! The pods' backends: the stores from `flash-wiring` (PostgreSQL when `DATABASE_URL` is set,
//! Redis when `REDIS_URL` / `REDIS_HOST` is set) plus RabbitMQ when `RABBITMQ_URL` is set, and
//! the in-memory adapters otherwise. Connections are lazy: a process starts while a dependency
//! is down and reports not ready until it is back.

use clap::Args;
use flash_adapter_memory as memory;
use flash_adapter_rabbitmq as amqp;
use flash_core::budget::Budgets;
use flash_core::ports::*;
use flash_handlers::Ports;
use flash_http::state::DbStatsSource;
use flash_runtime::config::parse_secret;
use flash_wiring::{StoreConfig, StoreNeeds};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

pub use flash_wiring::{HEALTH_TIMEOUT, WiringError as BackendError};

/// Where the backends are. Every field is optional: what is unset runs in memory.
#[derive(Debug, Clone, Args)]
pub struct BackendConfig {
    #[command(flatten)]
    pub stores: StoreConfig,
    /// RabbitMQ URL (`amqp://user:pass@host:5672/%2f`); unset: an in-process bus.
    #[arg(long = "rabbitmq-url", env = "RABBITMQ_URL", value_name = "RABBITMQ_URL", value_parser = parse_secret, help_heading = "Backends")]
    pub rabbitmq_url: Option<SecretString>,
}

/// Which backends a binary uses. A pod refuses to start without one it uses and ignores the
/// others; `flash up` uses [`Needs::WHATEVER_IS_SET`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub database: bool,
    pub redis: bool,
    pub bus: bool,
    /// Whether an unset backend is an error (pods) or runs in memory (`flash up`).
    pub required: bool,
}

impl Needs {
    /// Every backend whose variable is set is real, the rest in memory.
    pub const WHATEVER_IS_SET: Needs = Needs {
        database: true,
        redis: true,
        bus: true,
        required: false,
    };
}

/// The wired ports plus what the host needs besides them.
pub struct Backends {
    pub ports: Ports,
    pub outbox: Arc<dyn Outbox>,
    /// Dependencies for `/ready` and `/health`.
    pub health: Vec<Arc<dyn HealthCheck>>,
    pub db_stats: Option<Arc<dyn DbStatsSource>>,
    bus: BusKind,
    /// Names of the real backends in use, for the start-up log.
    pub described: Vec<&'static str>,
    /// What the in-process stores keep for clients, for `/metrics`.
    pub budgets: Budgets,
}

enum BusKind {
    Memory(memory::MemoryBus),
    Amqp(amqp::AmqpBus),
}

impl Backends {
    /// A consumer of `queue` on the configured bus.
    pub fn consumer(&self, queue: &str, prefetch: u16) -> Arc<dyn BusConsumer> {
        match &self.bus {
            BusKind::Memory(bus) => Arc::new(bus.consumer(queue)),
            BusKind::Amqp(bus) => {
                let config = bus.config().clone().with_prefetch(prefetch);
                Arc::new(amqp::AmqpConsumer::new(config, queue))
            }
        }
    }
}

impl BackendConfig {
    /// Wires every port. `request_queue` names the outbox's queue; `max_attempts` the bus's
    /// redelivery limit. Must run inside a Tokio runtime (connections are prepared lazily).
    pub fn connect(
        &self,
        needs: Needs,
        request_queue: &str,
        max_attempts: u32,
    ) -> Result<Backends, BackendError> {
        let store_needs = StoreNeeds {
            database: needs.database,
            redis: needs.redis,
            required: needs.required,
        };
        let rabbitmq_url = self.rabbitmq_url.as_ref().filter(|_| needs.bus);
        if needs.required && needs.bus && rabbitmq_url.is_none() {
            return Err(BackendError::missing("RabbitMQ", "RABBITMQ_URL"));
        }
        let mut stores = self.stores.connect(store_needs, request_queue)?;

        let (bus, bus_port): (BusKind, Arc<dyn Bus>) = match rabbitmq_url {
            Some(url) => {
                let config = amqp::AmqpConfig::new(url.expose_secret().to_owned())
                    .with_max_attempts(max_attempts);
                let b = amqp::AmqpBus::new(config);
                stores.health.push(Arc::new(b.health()));
                stores.described.push("rabbitmq");
                (BusKind::Amqp(b.clone()), Arc::new(b))
            }
            None => {
                let b = memory::MemoryBus::new(max_attempts);
                (BusKind::Memory(b.clone()), Arc::new(b))
            }
        };
        Ok(Backends {
            ports: stores.ports(bus_port),
            outbox: stores.outbox.clone(),
            health: stores.health_or_memory(),
            db_stats: stores.db_stats.clone(),
            bus,
            described: stores.described,
            budgets: stores.budgets,
        })
    }
}

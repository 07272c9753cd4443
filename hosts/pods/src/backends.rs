//! The pods' backends: the stores from `flash-wiring` (PostgreSQL when `DATABASE_URL` is set,
//! Redis when `REDIS_URL` / `REDIS_HOST` is set) plus RabbitMQ when `RABBITMQ_URL` is set, and
//! the in-memory adapters otherwise. Connections are lazy: a process starts while a dependency
//! is down and reports not ready until it is back.

use clap::Args;
use flash_adapter_memory as memory;
use flash_adapter_rabbitmq as amqp;
use flash_core::ports::*;
use flash_runtime::config::parse_secret;
use flash_wiring::{App, AppConfig, BuildError, BusWiring, StoreNeeds, WiringError};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// Where the bus is; unset, an in-process one.
#[derive(Debug, Clone, Args)]
pub struct BusConfig {
    /// RabbitMQ URL (`amqp://user:pass@host:5672/%2f`); unset: an in-process bus.
    #[arg(long, env, value_parser = parse_secret, help_heading = "Backends")]
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

/// The application on its backends, and the bus its consumers read.
pub struct Backends {
    pub app: App,
    bus: BusKind,
}

enum BusKind {
    Memory(memory::MemoryBus),
    Amqp(amqp::AmqpBus),
}

impl Backends {
    /// Builds the application on the configured backends (the bus from `bus`, RabbitMQ or in
    /// memory). Must run inside a Tokio runtime (connections are prepared lazily).
    pub fn connect(
        config: &AppConfig,
        bus: &BusConfig,
        needs: Needs,
    ) -> Result<Backends, BuildError> {
        let rabbitmq_url = bus.rabbitmq_url.as_ref().filter(|_| needs.bus);
        if needs.required && needs.bus && rabbitmq_url.is_none() {
            return Err(WiringError::missing("RabbitMQ", "RABBITMQ_URL").into());
        }
        let max_attempts = config.settings.payments.bus_max_attempts;
        let (kind, wiring) = match rabbitmq_url {
            Some(url) => {
                let config = amqp::AmqpConfig::new(url.expose_secret().to_owned())
                    .with_max_attempts(max_attempts);
                let b = amqp::AmqpBus::new(config);
                let wiring = BusWiring {
                    health: Some(Arc::new(b.health())),
                    name: Some("rabbitmq"),
                    bus: Arc::new(b.clone()),
                };
                (BusKind::Amqp(b), wiring)
            }
            None => {
                let b = memory::MemoryBus::new(max_attempts);
                let wiring = BusWiring {
                    health: None,
                    name: None,
                    bus: Arc::new(b.clone()),
                };
                (BusKind::Memory(b), wiring)
            }
        };
        let store_needs = StoreNeeds {
            database: needs.database,
            redis: needs.redis,
            required: needs.required,
        };
        let app = App::build(config, store_needs, wiring)?;
        Ok(Backends { app, bus: kind })
    }

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

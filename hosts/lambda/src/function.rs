//! What every function builds at init: configuration, stores, the SQS bus and the handlers.

use crate::BoxError;
use crate::config::LambdaConfig;
use flash_adapter_sqs::{SqsBus, validate_queue_name};
use flash_core::budget::Budgets;
use flash_core::ports::{HealthCheck, Outbox};
use flash_handlers::{Handlers, Ports};
use flash_http::metrics::Metrics;
use flash_http::state::DbStatsSource;
use flash_runtime::config::{ConfigError, require_secret, secret_or_random};
use flash_runtime::settings::{Groups, build};
use flash_wiring::StoreNeeds;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;

/// Which function a binary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Pay,
    Results,
    Sweeper,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Http => "flash-lambda-http",
            Kind::Pay => "flash-lambda-pay",
            Kind::Results => "flash-lambda-results",
            Kind::Sweeper => "flash-lambda-sweeper",
        }
    }

    /// The processor needs only its Redis ledger; everything else needs both stores.
    fn needs(self) -> StoreNeeds {
        StoreNeeds {
            database: self != Kind::Pay,
            redis: true,
            required: true,
        }
    }
}

/// A function's wired ports and handlers, built once per execution environment (Lambda reuses
/// it across invocations until the environment is recycled).
pub struct Function {
    pub kind: Kind,
    pub config: LambdaConfig,
    pub handlers: Arc<Handlers>,
    pub ports: Ports,
    pub outbox: Arc<dyn Outbox>,
    pub bus: SqsBus,
    pub metrics: Metrics,
    pub health: Vec<Arc<dyn HealthCheck>>,
    pub db_stats: Option<Arc<dyn DbStatsSource>>,
    /// What the in-process stores keep for clients, for `/metrics`.
    pub budgets: Budgets,
    /// When init started, for the start-up log.
    pub started: Instant,
}

fn queue_name(variable: &'static str, name: &str) -> Result<(), ConfigError> {
    validate_queue_name(name).map_err(|e| ConfigError::new(variable, e))
}

/// Only the HTTP function signs and verifies tokens: the others never see a secret.
fn secrets(kind: Kind, config: &LambdaConfig) -> Result<(SecretString, SecretString), ConfigError> {
    if kind == Kind::Http {
        Ok((
            require_secret("JWT_ACCESS_SECRET", &config.auth.jwt_access_secret)?,
            require_secret("JWT_REFRESH_SECRET", &config.auth.jwt_refresh_secret)?,
        ))
    } else {
        Ok((secret_or_random(None), secret_or_random(None)))
    }
}

impl Function {
    /// Reads the environment and wires everything; connections open lazily on first use.
    pub async fn init(kind: Kind) -> Result<Function, BoxError> {
        let started = Instant::now();
        let config = LambdaConfig::from_env(kind.binary());
        flash_runtime::telemetry::init(&config.telemetry);
        Self::with_config(kind, config, started).await
    }

    /// [`Function::init`] with a configuration built by the caller (tests).
    pub async fn with_config(
        kind: Kind,
        config: LambdaConfig,
        started: Instant,
    ) -> Result<Function, BoxError> {
        let bus = SqsBus::from_env(config.sqs_config()).await?;
        Self::with_bus(kind, config, bus, started)
    }

    /// [`Function::with_config`] on a bus built by the caller (tests use a local SQS).
    pub fn with_bus(
        kind: Kind,
        config: LambdaConfig,
        bus: SqsBus,
        started: Instant,
    ) -> Result<Function, BoxError> {
        queue_name("PAYMENT_REQUEST_QUEUE", &config.payments.request_queue)?;
        queue_name("PAYMENT_RESULT_QUEUE", &config.payments.result_queue)?;
        let (access, refresh) = secrets(kind, &config)?;
        let settings = build(
            &Groups {
                auth: &config.auth,
                queue: &config.queue,
                orders: &config.orders,
                payments: &config.payments,
                pay: &config.pay,
            },
            &access,
            &refresh,
        );
        let mut stores = config
            .stores
            .connect(kind.needs(), &config.payments.request_queue)?;
        stores
            .health
            .push(Arc::new(bus.health(config.payments.request_queue.clone())));
        stores.described.push("sqs");
        let ports = stores.ports(Arc::new(bus.clone()));
        let handlers = Arc::new(Handlers::new(&ports, settings));
        tracing::info!(function = kind.binary(), backends = ?stores.described, "initialised");
        Ok(Function {
            kind,
            handlers,
            ports,
            outbox: stores.outbox.clone(),
            bus,
            metrics: Metrics::new()?,
            health: stores.health.clone(),
            db_stats: stores.db_stats.clone(),
            budgets: stores.budgets.clone(),
            started,
            config,
        })
    }

    /// Logs how long init took (the cold start's share that is ours).
    pub fn log_ready(&self) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(function = self.kind.binary(), init_ms = ms, "ready");
        // Also on stdout as plain text, for the README's measurement under `cargo lambda watch`.
        println!("{} ready: init {ms:.1} ms", self.kind.binary());
    }
}

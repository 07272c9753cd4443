//! What every function builds at init: configuration, stores, the SQS bus and the background
//! work (the HTTP function adds the request handlers, [`crate::http::HttpFunction`]).

use crate::BoxError;
use crate::config::LambdaConfig;
use flash_adapter_sqs::{SqsBus, validate_queue_name};
use flash_runtime::config::ConfigError;
use flash_wiring::{App, BusWiring, StoreNeeds};
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

/// A function's application (wired ports and background work), built once per execution environment
/// (Lambda reuses it across invocations until the environment is recycled).
pub struct Function {
    pub kind: Kind,
    pub config: LambdaConfig,
    pub app: App,
    pub bus: SqsBus,
    /// When init started, for the start-up log.
    pub started: Instant,
}

fn queue_name(variable: &'static str, name: &str) -> Result<(), ConfigError> {
    validate_queue_name(name).map_err(|e| ConfigError::new(variable, e))
}

impl Function {
    /// Reads the environment and wires everything; connections open lazily on first use.
    pub async fn init(kind: Kind) -> Result<Function, BoxError> {
        let started = Instant::now();
        let config = LambdaConfig::from_env(kind.binary());
        flash_runtime::telemetry::init(&config.app.telemetry);
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
        let payments = &config.app.settings.payments;
        queue_name("PAYMENT_REQUEST_QUEUE", &payments.request_queue)?;
        queue_name("PAYMENT_RESULT_QUEUE", &payments.result_queue)?;
        let wiring = BusWiring {
            bus: Arc::new(bus.clone()),
            health: Some(Arc::new(bus.health(payments.request_queue.clone()))),
            name: Some("sqs"),
        };
        let app = App::build(&config.app, kind.needs(), wiring)?;
        tracing::info!(function = kind.binary(), backends = ?app.described, "initialised");
        Ok(Function {
            kind,
            app,
            bus,
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

//! `flash-runtime`: the host wiring every Flash Tickets binary shares.
//!
//! - [`config`]: typed configuration from the legacy environment variables, validated once at
//!   start-up, secrets redacted;
//! - [`telemetry`]: `tracing` set-up, text or JSON lines;
//! - [`shutdown`]: a binary's `run_main`, SIGTERM / Ctrl-C, a cancellation handle, named background tasks stopped with a
//!   grace period;
//! - [`periodic`]: timed background work (promotion, expiry, relay), optionally kicked;
//! - [`worker`]: the bus consumer loop with bounded concurrency and the outbox relay step;
//! - [`consumers`]: bus messages decoded and handed to one handler each, outcomes mapped to
//!   ack / retry / dead-letter;
//! - [`jobs`]: the background tasks of a host (promotion, sweepers, relay, consumers);
//! - [`sampler`]: the monitoring timeline's once-a-second sample;
//! - [`backoff`]: jittered exponential back-off for retry loops.
//!
//! This crate decides *when* and *how often* work runs and how it is stopped, never *what* it
//! does: it must contain no business rules (those live in `flash-handlers`) and no transport or
//! backend specifics (those live in `flash-http` and the adapters). The loops here see only the
//! `flash-core` ports, so they run unchanged over the in-memory, RabbitMQ or SQS bus.

pub mod backoff;
pub mod clock;
pub mod config;
pub mod consumers;
pub mod jobs;
pub mod periodic;
pub mod sampler;
pub mod shutdown;
pub mod telemetry;
pub mod worker;

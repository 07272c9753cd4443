//! `flash-lambda`: the Lambda deployment of Flash Tickets — the same business handlers as the
//! pods, hosted as AWS Lambda functions on PostgreSQL (RDS), Redis (ElastiCache) and SQS.
//!
//! | binary | trigger | does |
//! |---|---|---|
//! | `flash-lambda-http` | API Gateway HTTP API (v2), REST API (v1) or an ALB | every gateway and api route, through the pods' axum router |
//! | `flash-lambda-pay` | SQS `payments_request` | the mock payment processor |
//! | `flash-lambda-results` | SQS `payments_result` | applies payment results to orders |
//! | `flash-lambda-sweeper` | an EventBridge schedule | hold expiry, payment timeouts, outbox relay, promotion |
//!
//! What differs from the pods, because a function only runs while it answers:
//! - no background tasks: the outbox is relayed right after the request that wrote it (and by the
//!   sweeper, for anything left), and promotion runs on status reads and slot releases, at most
//!   once per `QUEUE_PROMOTION_INTERVAL_MS` across all instances (a Redis rate-limit key acts as
//!   the lock), so admission never waits for the one-minute schedule;
//! - no Socket.IO (API Gateway HTTP APIs carry no WebSocket upgrade): clients poll
//!   `/queue/status`, which the legacy client already does as its fallback;
//! - SQS batches report partial failures (`batchItemFailures`): one bad record never re-drives
//!   the others.
//!
//! No dependency path to lapin: `deploy/lambda/check` (in `.ci/run`) lists `cargo tree -p flash-lambda`
//! for x86_64 and aarch64 and fails on lapin, amq-protocol, flash-adapter-rabbitmq or flash-pods.

pub mod batch;
pub mod config;
pub mod function;
pub mod http;
pub mod sweep;

pub use config::LambdaConfig;
pub use function::{Function, Kind};

/// Error type of the function handlers (what `lambda_runtime` reports to Lambda).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

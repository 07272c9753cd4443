//! `flash-adapter-sqs`: the payment bus ports ([`Bus`], [`BusConsumer`], [`HealthCheck`]) on
//! Amazon SQS (aws-sdk-sqs), for the Lambda deployment. The same legacy JSON bodies as on
//! RabbitMQ; the legacy `messageId` and `correlationId` travel as String message attributes.
//!
//! Depends on `flash-core` and the AWS SDK only: never on handlers, hosts or another adapter.
//!
//! # Queues
//!
//! | queue | role |
//! |---|---|
//! | `<name>` | standard queue, `RedrivePolicy` → `<name>-dlq` with `maxReceiveCount` = attempts |
//! | `<name>-dlq` | dead letters: malformed messages, those out of attempts, crash loops |
//!
//! In AWS the queues come from the SAM template (`deploy/lambda/template.yaml`); a local run can
//! create them ([`SqsConfig::create_queues`]). The dead-letter queue of a queue is read from its
//! own `RedrivePolicy`, so an operator's naming is respected.
//!
//! # Settling a delivery
//!
//! - `Ack`: the message is deleted.
//! - `Retry { after }`: its visibility timeout is set to `after` (rounded up to whole seconds),
//!   so SQS delivers it again no earlier; `ApproximateReceiveCount` is the attempt number. A
//!   delivery whose attempt reached `max_attempts` is dead-lettered instead. The redrive policy is
//!   the safety net for what never gets settled (a crashing consumer, a timed-out function).
//! - `DeadLetter`: a copy is sent to the dead-letter queue with a `deadLetterReason` attribute,
//!   then the original is deleted (send first: a crash in between duplicates, never loses).
//!
//! Sends go out as `SendMessageBatch` calls of up to ten ([`Bus::publish_batch`]); receives
//! long-poll (`WaitTimeSeconds`). SQS is at-least-once and the handlers are idempotent.
//!
//! [`Bus`]: flash_core::ports::Bus
//! [`Bus::publish_batch`]: flash_core::ports::Bus::publish_batch
//! [`BusConsumer`]: flash_core::ports::BusConsumer
//! [`HealthCheck`]: flash_core::ports::HealthCheck

mod bus;
mod config;
mod consumer;

pub use bus::{ATTEMPT_LIMIT_REASON, Received, Settled, SqsBus, SqsHealth};
pub use config::{
    ConfigError, DEFAULT_MAX_ATTEMPTS, DEFAULT_VISIBILITY_TIMEOUT, DEFAULT_WAIT, DLQ_SUFFIX,
    SqsConfig, dlq_name, queue_name_from_arn, validate_queue_name,
};
pub use consumer::SqsConsumer;

/// Message attribute carrying the legacy `correlationId` (the request's `requestId`).
pub const CORRELATION_ID_ATTRIBUTE: &str = "correlationId";
/// Message attribute carrying the legacy `messageId` (SQS assigns its own `MessageId`).
pub const MESSAGE_ID_ATTRIBUTE: &str = "messageId";
/// Message attribute on a dead letter: why it was dead-lettered.
pub const DEAD_LETTER_REASON_ATTRIBUTE: &str = "deadLetterReason";

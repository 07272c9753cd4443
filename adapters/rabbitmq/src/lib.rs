//! `flash-adapter-rabbitmq`: the payment bus ports ([`Bus`], [`BusConsumer`], [`HealthCheck`]) on
//! RabbitMQ (AMQP 0-9-1, via lapin), wire-compatible with the legacy api and pay worker.
//!
//! Depends on `flash-core` and its driver only: never on handlers, hosts or another adapter. Only
//! the pod binaries (api, pay) and the all-in-one `flash` may depend on it; the Lambda binaries
//! must never have a dependency path to this crate (they use SQS; check with
//! `cargo tree -i flash-adapter-rabbitmq`).
//!
//! # Topology (legacy-compatible)
//!
//! | queue | declared as | role |
//! |---|---|---|
//! | `<name>` | durable, **no arguments** | the queue itself, on the default exchange (routing key = name) |
//! | `<name>.dlq` | durable, no arguments | dead letters: malformed messages and those out of attempts |
//! | `<name>.retry.<ms>` | durable, `x-message-ttl = ms`, dead-lettering to `""`/`<name>` | back-off before redelivery, one queue per delay bucket |
//!
//! The main queue keeps no `x-dead-letter-*` arguments on purpose: the legacy services declared
//! it `durable: true` without arguments, and redeclaring an existing queue with different
//! arguments fails with `PRECONDITION_FAILED`. The consumer therefore *publishes* a dead letter to
//! `<name>.dlq` itself (with a reason header), then acknowledges the original. Should an operator
//! have declared the main queue with other arguments anyway, it is used as it is.
//!
//! # Retries
//!
//! `Disposition::Retry { after }` republishes the message to the retry queue of `after`'s bucket
//! (rounded **up** to a power of two milliseconds: never early, at most twice as late) with the
//! attempt counter header [`ATTEMPT_HEADER`] incremented, then acknowledges the original. The
//! bucket's queue-level TTL dead-letters it back to `<name>` when the delay is over. A TTL per
//! queue rather than per message matters: RabbitMQ expires messages only at the head of a queue,
//! so one queue holding mixed per-message TTLs would hold a short retry behind a long one. With
//! the host's doubling back-off (200 ms, 400 ms, …) a queue uses a handful of buckets; there are
//! never more than 32. A delivery whose attempt reached `max_attempts` is dead-lettered instead.
//!
//! # Delivery guarantees
//!
//! Publishes use publisher confirms and `mandatory`, pipelined on one channel: every publish
//! waits for its own confirm, many are in flight at once, and nothing is serialised behind a
//! lock. Consumers use manual acknowledgements after the handler's effect and a prefetch equal to
//! the host's concurrency. Every step that moves a message (retry, dead letter) publishes the copy
//! with a confirm before acknowledging the original, so a crash in between duplicates a message but
//! never loses one; unacknowledged deliveries are redelivered by the broker when a connection
//! drops. The bus is at-least-once and handlers are idempotent. The attempt counter travels in a
//! header, so a redelivery caused by a lost connection does not count as an attempt (classic
//! queues keep no delivery count).
//!
//! # Connections
//!
//! Publishers and each consumer use separate connections (RabbitMQ's advice: flow control that
//! blocks a publishing connection must not block a consumer's acknowledgements). Connections are
//! opened lazily and reopened with jittered exponential back-off after any loss; a publish during
//! an outage fails with `StoreError::Unavailable` once [`AmqpConfig::publish_timeout`] has passed.
//! The dead-peer detection interval is the negotiated heartbeat (tunable with `?heartbeat=` in
//! `RABBITMQ_URL`).
//!
//! [`Bus`]: flash_core::ports::Bus
//! [`BusConsumer`]: flash_core::ports::BusConsumer
//! [`HealthCheck`]: flash_core::ports::HealthCheck

mod backoff;
mod config;
mod connection;
mod consumer;
mod counters;
mod publisher;
mod topology;

pub use config::{
    AmqpConfig, ConfigError, DEFAULT_FRAME_MAX, DEFAULT_MAX_ATTEMPTS, DEFAULT_PREFETCH, DEFAULT_URL,
};
pub use consumer::AmqpConsumer;
pub use counters::AmqpCounters;
pub use publisher::{AmqpBus, AmqpHealth};
pub use topology::{
    ATTEMPT_HEADER, DEAD_LETTER_ATTEMPTS_HEADER, DEAD_LETTER_REASON_HEADER, declare_retry_queue,
    declare_topology, dlq_name, retry_bucket, retry_queue_name,
};

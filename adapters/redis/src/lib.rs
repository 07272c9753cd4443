//! `flash-adapter-redis`: the Redis side of Flash Tickets.
//!
//! Implements the ports that live in Redis — the waiting queue ([`RedisQueueStore`]), READY
//! fan-out across instances through pub/sub ([`RedisQueueNotifier`]), login and enqueue rate
//! limits ([`RedisRateLimiter`]), refresh-token rotation ([`RedisSessionStore`]), the mock
//! processor's verdict ledger ([`RedisPaymentLedger`]), the monitoring timeline
//! ([`RedisTimeline`]) and a health check ([`RedisHealth`]) — on
//! one shared, multiplexed [`Redis`] connection that reconnects on its own.
//!
//! Properties every adapter here keeps:
//! - Every mutation that must be atomic is one Lua script (`src/lua/`), so any number of gateway
//!   instances can race on the same keys.
//! - Every key gets a TTL; nothing runs `KEYS` or `SCAN`; queue operations cost O(log n).
//! - A dead or slow Redis yields [`flash_core::StoreError::Unavailable`] within the configured
//!   command timeout, never a hang; malformed data yields `Internal`.
//! - Per-scope queue keys share a `{scope}` hash tag, so each scope's script touches one Redis
//!   Cluster slot. The two global queue keys (the active-scope set and the ticket-id index) are
//!   maintained outside those scripts, in an order that keeps them correct (see [`queue`]).
//!
//! Depends on `flash-core`, the `redis` driver and small support crates (tokio, serde_json,
//! secrecy, tracing); never on handlers, hosts or other adapters.

mod config;
mod conn;
mod ledger;
mod notifier;
pub mod queue;
mod reply;
mod scopes;
mod sessions;
mod timeline;

pub use config::{DEFAULT_PORT, RedisConfig, RedisConfigError, parse_port, parse_tls};
pub use conn::Redis;
pub use ledger::{RedisHealth, RedisPaymentLedger};
pub use notifier::RedisQueueNotifier;
pub use queue::{QueueTuning, RedisQueueStore};
pub use scopes::DEFAULT_SCOPE_CACHE_MAX;
pub use sessions::{RedisRateLimiter, RedisSessionStore};
pub use timeline::RedisTimeline;

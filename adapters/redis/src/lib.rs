//! `flash-adapter-redis`: the Redis side of Flash Tickets.
//!
//! Implements the ports that live in Redis — the waiting queue ([`RedisQueueStore`]), READY
//! fan-out across instances through pub/sub ([`RedisQueueNotifier`]), login and enqueue rate
//! limits ([`RedisRateLimiter`]), refresh-token rotation ([`RedisSessionStore`]), the mock
//! processor's verdict ledger ([`RedisPaymentLedger`]), the monitoring timeline
//! ([`RedisTimeline`]) and a health check ([`RedisHealth`]) — on one shared, multiplexed
//! [`Redis`] connection that reconnects on its own, to one node or to a Redis Cluster
//! (`REDIS_CLUSTER=true`; the same adapters run on both).
//!
//! Properties every adapter here keeps:
//! - Every mutation that must be atomic is one Lua script (`src/lua/`), so any number of gateway
//!   instances can race on the same keys.
//! - Every key gets a TTL; nothing runs `KEYS` or `SCAN`; queue operations cost O(log n).
//! - A dead or slow Redis yields [`flash_core::StoreError::Unavailable`] within the configured
//!   command timeout, never a hang; malformed data yields `Internal`.
//! - No script, transaction or pipeline touches keys of two Redis Cluster slots. Per-scope queue
//!   keys share a `{scope}` hash tag, so each line's script runs on the one master of its slot
//!   and lines of different events spread over the masters. The two global queue keys (the
//!   active-scope set and the ticket-id index) are written one key per command, outside those
//!   scripts, in an order that keeps them correct (see [`queue`]). Sessions share one
//!   `{sessions}` tag (a rotation reaches the token's family in the same script); a rate-limit
//!   window and a ledger entry are one key each.
//! - Queue notices are plain `PUBLISH`es, which a cluster delivers to every node: a subscription
//!   on any one node hears them all, and moves to another node when its own goes away.
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

pub use config::{
    DEFAULT_PORT, RedisConfig, RedisConfigError, parse_cluster, parse_port, parse_tls,
};
pub use conn::Redis;
pub use ledger::{RedisHealth, RedisPaymentLedger};
pub use notifier::RedisQueueNotifier;
pub use queue::{QueueTuning, RedisQueueStore};
pub use scopes::DEFAULT_SCOPE_CACHE_MAX;
pub use sessions::{RedisRateLimiter, RedisSessionStore};
pub use timeline::RedisTimeline;

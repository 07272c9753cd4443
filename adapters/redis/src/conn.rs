//! The shared connection, timeouts, and the translation of driver errors.

use crate::config::{RedisConfig, RedisConfigError};
use flash_core::StoreError;
use flash_core::ports::StoreResult;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::{Client, RedisError, RetryMethod};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Reconnection back-off of the shared connection: 50 ms doubling up to 2 s (the legacy cap).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Attempts per reconnection round; a failed round is restarted by the next command, so this only
/// bounds how long one round keeps retrying in the background.
const RECONNECT_ATTEMPTS: usize = 6;

/// One multiplexed connection to Redis, shared by every adapter of this crate (clone freely).
///
/// Concurrent requests are pipelined on it. When the connection drops, the driver reconnects in
/// the background with back-off; meanwhile each operation fails with
/// [`StoreError::Unavailable`] after at most the configured command timeout.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    manager: ConnectionManager,
    client: Client,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Prepares the connection without contacting the server: it is established by the first
    /// command, so a host can start (and report not-ready) while Redis is still down. Must be
    /// called inside a Tokio runtime.
    pub fn open(config: &RedisConfig) -> Result<Redis, RedisConfigError> {
        if config.tls() {
            // `rediss://` builds rustls configs from the process-wide provider; other crates of a
            // binary may enable a second one, which would make rustls refuse to guess. Whoever
            // installs first wins, and any installed provider will do.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client =
            Client::open(config.connection_info()?).map_err(|e| RedisConfigError::Invalid {
                name: "REDIS_URL",
                reason: e.to_string(),
            })?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.command_timeout()))
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_number_of_retries(RECONNECT_ATTEMPTS);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|e| RedisConfigError::Invalid {
                name: "REDIS_URL",
                reason: e.to_string(),
            })?;
        Ok(Redis {
            inner: Arc::new(Inner {
                manager,
                client,
                prefix: config.prefix().to_owned(),
                timeout: config.command_timeout(),
                connect_timeout: config.connect_timeout(),
            }),
        })
    }

    /// [`Redis::open`], then a `PING`: for hosts that want to fail fast at start-up.
    pub async fn connect(config: &RedisConfig) -> StoreResult<Redis> {
        let redis = Redis::open(config).map_err(|e| StoreError::Internal(e.to_string()))?;
        redis.ping().await?;
        Ok(redis)
    }

    /// The key and channel prefix.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// `PING`, expecting `PONG`.
    pub async fn ping(&self) -> StoreResult<()> {
        let pong: String = self
            .run("ping", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Internal(format!(
                "redis ping answered {pong:?}"
            )))
        }
    }

    /// Runs `op` on the shared connection, bounded by the command timeout (which also covers
    /// waiting for a reconnection), translating driver errors.
    pub(crate) async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> StoreResult<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let conn = self.inner.manager.clone();
        match tokio::time::timeout(self.inner.timeout, op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(translate(what, &e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {:?}",
                self.inner.timeout
            ))),
        }
    }

    /// A dedicated pub/sub connection (subscribed connections cannot be multiplexed).
    pub(crate) async fn pubsub(&self) -> StoreResult<PubSub> {
        let bound = self.inner.connect_timeout + self.inner.timeout;
        match tokio::time::timeout(bound, self.inner.client.get_async_pubsub()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(translate("subscribe", &e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis subscribe: no connection within {bound:?}"
            ))),
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

/// Unreachable, overloaded, failing over or loading → `Unavailable` (retry later); anything
/// else (a script bug, a type mismatch, refused permissions) → `Internal`.
fn translate(what: &str, e: &RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(e.code(), Some("BUSY" | "OOM" | "LOADING" | "MASTERDOWN"))
        || !matches!(e.retry_method(), RetryMethod::NoRetry);
    if transient {
        StoreError::Unavailable(format!("redis {what}: {e}"))
    } else {
        StoreError::Internal(format!("redis {what}: {e}"))
    }
}

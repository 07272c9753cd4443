//! The shared connection, timeouts, and the translation of driver errors.

use crate::config::{RedisConfig, RedisConfigError};
use flash_core::StoreError;
use flash_core::ports::StoreResult;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::TcpSettings;
use redis::{
    Client, Cmd, ConnectionAddr, ConnectionInfo, FromRedisValue, Pipeline, RedisError, RedisFuture,
    RetryMethod, ScriptInvocation, Value,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Reconnection back-off of the shared connection: 50 ms doubling up to 2 s (the legacy cap).
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);
/// Attempts per reconnection round; a failed round is restarted by the next command, so this only
/// bounds how long one round keeps retrying in the background.
const RECONNECT_ATTEMPTS: usize = 6;
/// Retries of one cluster request (MOVED/ASK are followed on top of these): a failover or a slot
/// migration is ridden out with 50 ms to 500 ms pauses until the command timeout says stop.
const CLUSTER_RETRIES: u32 = 8;
const CLUSTER_MIN_RETRY_WAIT_MS: u64 = 50;
const CLUSTER_MAX_RETRY_WAIT_MS: u64 = 500;

/// What [`Redis::query`] sends: a command, a pipeline or a script invocation.
pub(crate) trait Request: Sync {
    fn send<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Conn) -> RedisFuture<'a, T>;
}

impl Request for Cmd {
    fn send<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Conn) -> RedisFuture<'a, T> {
        Box::pin(self.query_async(conn))
    }
}

impl Request for Pipeline {
    fn send<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Conn) -> RedisFuture<'a, T> {
        Box::pin(self.query_async(conn))
    }
}

impl Request for ScriptInvocation<'_> {
    fn send<'a, T: FromRedisValue + Send + 'a>(&'a self, conn: &'a mut Conn) -> RedisFuture<'a, T> {
        Box::pin(self.invoke_async(conn))
    }
}

/// The shared connection: one node through a [`ConnectionManager`], or a Redis Cluster through a
/// [`ClusterConnection`] that routes each command to the master of its slot and follows MOVED,
/// ASK and failovers by itself. Both are multiplexed and cheap to clone; every adapter of the
/// crate runs its commands and scripts on this type alone, so none of them knows which it is.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// One multiplexed connection to Redis or to a Redis Cluster, shared by every adapter of this
/// crate (clone freely).
///
/// Concurrent requests are pipelined on it. When the connection drops, the driver reconnects in
/// the background with back-off (on a cluster: refreshes the slot map and follows a failover);
/// meanwhile each operation fails with [`StoreError::Unavailable`] after at most the configured
/// command timeout.
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Conn,
    /// The configured endpoint, for pub/sub connections (a cluster's configuration endpoint).
    client: Client,
    info: ConnectionInfo,
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
        let invalid = |e: RedisError| RedisConfigError::Invalid {
            name: "REDIS_URL",
            reason: e.to_string(),
        };
        let info = config.connection_info()?;
        let client = Client::open(info.clone()).map_err(invalid)?;
        let conn = if config.cluster() {
            // The endpoint is only the first node asked for the slot map; the client then keeps
            // a connection to every master and refreshes the map on MOVED or a failed node.
            let cluster = ClusterClientBuilder::new(vec![info.clone()])
                .connection_timeout(config.connect_timeout())
                .response_timeout(config.command_timeout())
                .overall_response_timeout(Some(config.command_timeout()))
                .retries(CLUSTER_RETRIES)
                .min_retry_wait(CLUSTER_MIN_RETRY_WAIT_MS)
                .max_retry_wait(CLUSTER_MAX_RETRY_WAIT_MS)
                .retry_wait_formula(CLUSTER_MIN_RETRY_WAIT_MS, 2)
                .tcp_settings(TcpSettings::default().set_nodelay(true))
                .build()
                .map_err(invalid)?;
            // The connection's own config replaces the builder's per-node timeouts: repeat them.
            let per_node = ClusterConfig::new()
                .set_connection_timeout(config.connect_timeout())
                .set_response_timeout(config.command_timeout());
            Conn::Cluster(cluster.get_pending_async_connection_with_config(per_node))
        } else {
            let manager_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.connect_timeout()))
                .set_response_timeout(Some(config.command_timeout()))
                .set_min_delay(RECONNECT_MIN_DELAY)
                .set_max_delay(RECONNECT_MAX_DELAY)
                .set_number_of_retries(RECONNECT_ATTEMPTS);
            Conn::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
                    .map_err(invalid)?,
            )
        };
        Ok(Redis {
            inner: Arc::new(Inner {
                conn,
                client,
                info,
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
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        let conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, op(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(translate(what, &e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what}: no answer within {:?}",
                self.inner.timeout
            ))),
        }
    }

    /// One command, pipeline or script invocation, run as [`Redis::run`] runs any operation;
    /// `T = ()` when the reply is not needed.
    pub(crate) async fn query<T: FromRedisValue + Send>(
        &self,
        what: &'static str,
        request: &impl Request,
    ) -> StoreResult<T> {
        self.run(what, |mut c| async move { request.send(&mut c).await })
            .await
    }

    /// Whether `field` of hash `key` is set to `"1"`.
    pub(crate) async fn flag(
        &self,
        what: &'static str,
        key: &str,
        field: &str,
    ) -> StoreResult<bool> {
        let value: Option<String> = self
            .query(what, redis::cmd("HGET").arg(key).arg(field))
            .await?;
        Ok(value.as_deref() == Some("1"))
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.conn, Conn::Cluster(_))
    }

    /// A dedicated pub/sub connection (subscribed connections cannot be multiplexed).
    ///
    /// On a cluster, a plain `PUBLISH` reaches every node (masters and replicas), so one
    /// subscription on any node hears the whole cluster: the configured endpoint is tried first,
    /// then, should it be down (a killed master), every node of the current slot map in turn.
    pub(crate) async fn pubsub(&self) -> StoreResult<PubSub> {
        let first = Self::pubsub_on(&self.inner.client, self.bound()).await;
        let Err(first_error) = first else {
            return first;
        };
        if !self.is_cluster() {
            return Err(first_error);
        }
        for node in self.cluster_nodes().await.unwrap_or_default() {
            let Ok(client) = Client::open(self.node_info(&node)) else {
                continue;
            };
            if let Ok(p) = Self::pubsub_on(&client, self.bound()).await {
                return Ok(p);
            }
        }
        Err(first_error)
    }

    fn bound(&self) -> Duration {
        self.inner.connect_timeout + self.inner.timeout
    }

    async fn pubsub_on(client: &Client, bound: Duration) -> StoreResult<PubSub> {
        match tokio::time::timeout(bound, client.get_async_pubsub()).await {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(e)) => Err(translate("subscribe", &e)),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis subscribe: no connection within {bound:?}"
            ))),
        }
    }

    /// `(host, port)` of every node in the cluster's slot map (`CLUSTER SLOTS`), masters first.
    async fn cluster_nodes(&self) -> StoreResult<Vec<(String, u16)>> {
        let slots: Vec<Value> = self
            .run("cluster slots", |mut c| async move {
                redis::cmd("CLUSTER").arg("SLOTS").query_async(&mut c).await
            })
            .await?;
        let mut masters = Vec::new();
        let mut replicas = Vec::new();
        for range in &slots {
            // [start, end, [host, port, id, ...] (master), [host, port, id, ...] (replicas)...]
            let Value::Array(fields) = range else {
                continue;
            };
            for (i, node) in fields.iter().skip(2).enumerate() {
                let Value::Array(node) = node else { continue };
                let (Some(host), Some(Value::Int(port))) = (node.first(), node.get(1)) else {
                    continue;
                };
                let host = match host {
                    Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                    Value::SimpleString(s) => s.clone(),
                    _ => continue,
                };
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                let list = if i == 0 { &mut masters } else { &mut replicas };
                if !host.is_empty() && !list.contains(&(host.clone(), port)) {
                    list.push((host, port));
                }
            }
        }
        masters.extend(replicas);
        Ok(masters)
    }

    /// The configured endpoint's settings (password, TLS) on another node's address.
    fn node_info(&self, (host, port): &(String, u16)) -> ConnectionInfo {
        let addr = match self.inner.info.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        self.inner.info.clone().set_addr(addr)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.timeout
    }
}

/// Unreachable, overloaded, failing over, loading, or a cluster slot still moving (`CLUSTERDOWN`,
/// `TRYAGAIN`, a redirection the client gave up following) → `Unavailable` (retry later);
/// anything else (a script bug, a type mismatch, refused permissions) → `Internal`.
fn translate(what: &str, e: &RedisError) -> StoreError {
    let transient = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.code(),
            Some(
                "BUSY"
                    | "OOM"
                    | "LOADING"
                    | "MASTERDOWN"
                    | "CLUSTERDOWN"
                    | "TRYAGAIN"
                    | "MOVED"
                    | "ASK"
                    | "READONLY"
            )
        )
        || !matches!(e.retry_method(), RetryMethod::NoRetry);
    if transient {
        StoreError::Unavailable(format!("redis {what}: {e}"))
    } else {
        StoreError::Internal(format!("redis {what}: {e}"))
    }
}

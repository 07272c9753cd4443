//! What the Redis tests share: where the single Redis and the cluster are, a configuration under
//! a key prefix of a test's own, the contracts every deployment must pass, a TCP proxy standing
//! in for a server that goes away, polling with a deadline, and the cluster's layout as its nodes
//! see it.
#![allow(dead_code)]

use flash_adapter_redis::{
    Redis, RedisConfig, RedisHealth, RedisQueueNotifier, RedisQueueStore, RedisRateLimiter,
};
use flash_core::domain::{QueueScope, Ticket};
use flash_core::limits::{Door, RateKey};
use flash_core::ports::{HealthCheck, QueueNotifier, QueueStore, RateLimiter};
use flash_core::{StoreError, TicketId, UserId};
use flash_testkit::T0;
use redis::aio::MultiplexedConnection;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Every `flash-testkit` contract of the ports this crate implements (but the timeline's), each
/// test on a fresh `$redis`.
#[allow(unused_macros)]
macro_rules! redis_contracts {
    (@each $redis:expr; $($contracts:ident: $port:ident),+) => {
        $(::flash_testkit::$contracts!(::std::sync::Arc::new(
            ::flash_adapter_redis::$port::new($redis)
        ));)+
    };
    ($redis:expr) => {
        redis_contracts!(@each $redis;
            queue_store_contracts: RedisQueueStore,
            queue_notifier_contracts: RedisQueueNotifier,
            rate_limiter_contracts: RedisRateLimiter,
            session_store_contracts: RedisSessionStore,
            payment_ledger_contracts: RedisPaymentLedger);

        #[::tokio::test]
        async fn health_ping_answers_under_a_short_name() {
            ::flash_testkit::basics::health_ping_answers_under_a_short_name(
                ::std::sync::Arc::new(::flash_adapter_redis::RedisHealth::new($redis)),
                ::flash_testkit::T0,
            )
            .await;
        }
    };
}

/// The single Redis: `REDIS_URL`, default 127.0.0.1:6379.
pub fn local_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The cluster's configuration endpoint: `REDIS_CLUSTER_URL`, default the local cluster of
/// `integration/redis-cluster.sh`.
pub fn url() -> String {
    std::env::var("REDIS_CLUSTER_URL").unwrap_or_else(|_| "redis://127.0.0.1:7000".to_owned())
}

/// A configuration for `url` (a cluster's endpoint if `cluster`) under a key prefix no other
/// test uses, and the prefix.
pub fn prefixed(url: &str, cluster: bool) -> (RedisConfig, String) {
    let prefix = format!("test-{}:", Uuid::new_v4().simple());
    let config = RedisConfig::from_url(url)
        .and_then(|c| c.with_cluster(cluster))
        .and_then(|c| c.with_prefix(prefix.clone()))
        .unwrap_or_else(|e| panic!("redis config for {url}: {e}"));
    (config, prefix)
}

/// A plain connection to the single Redis, for inspecting what the adapters wrote.
pub async fn inspector() -> MultiplexedConnection {
    redis::Client::open(local_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key under `prefix` (SCAN is fine in a test, never in the adapters).
pub async fn keys_under(conn: &mut MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

pub fn user() -> UserId {
    UserId(Uuid::new_v4())
}

pub fn ticket_id() -> TicketId {
    TicketId(Uuid::new_v4())
}

/// A fresh user's ticket in `scope`.
pub async fn enqueue(q: &RedisQueueStore, scope: QueueScope) -> Ticket {
    q.enqueue(ticket_id(), user(), scope, T0)
        .await
        .unwrap()
        .ticket
}

/// Fails unless `err` is `Unavailable`, the one error an unreachable server may give.
pub fn assert_unavailable(err: &StoreError) {
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

/// A port on 127.0.0.1 that nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// With nothing answering at `config`'s address, every port fails fast with `Unavailable`:
/// `enqueues` enqueues within 2 s each, then a ping, a rate-limit hit and a subscription within
/// 4 s together, and a connection.
pub async fn every_port_is_unavailable_within_the_timeout(config: &RedisConfig, enqueues: usize) {
    let redis = Redis::open(config).unwrap();
    let bound = Duration::from_secs(2);
    for _ in 0..enqueues {
        let started = Instant::now();
        let err = RedisQueueStore::new(redis.clone())
            .enqueue(ticket_id(), user(), QueueScope::Global, T0)
            .await
            .unwrap_err();
        assert_unavailable(&err);
        assert!(started.elapsed() < bound, "took {:?}", started.elapsed());
    }

    let started = Instant::now();
    let err = RedisHealth::new(redis.clone()).ping().await.unwrap_err();
    assert_unavailable(&err);
    let err = RedisRateLimiter::new(redis.clone())
        .hit(
            &RateKey::global(Door::Promotion),
            1,
            Duration::from_secs(1),
            T0,
        )
        .await
        .unwrap_err();
    assert_unavailable(&err);
    let err = RedisQueueNotifier::new(redis.clone())
        .subscribe()
        .await
        .err()
        .expect("subscribed to nothing");
    assert_unavailable(&err);
    assert!(
        started.elapsed() < bound * 2,
        "took {:?}",
        started.elapsed()
    );

    let err = Redis::connect(config).await.unwrap_err();
    assert_unavailable(&err);
}

/// Polls `f` every `every` until it yields `Some`, or fails after `within`.
pub async fn until<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(every).await;
    }
}

/// Forwards every connection to `upstream` until cut; [`Proxy::restore`] listens again on the
/// same port.
pub struct Proxy {
    pub addr: SocketAddr,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    /// On any free port.
    pub fn to(upstream: String) -> Proxy {
        Self::on("127.0.0.1:0".parse().unwrap(), upstream)
    }

    /// Listens on `addr` (port 0: any free port).
    pub fn on(addr: SocketAddr, upstream: String) -> Proxy {
        let mut p = Proxy {
            addr,
            upstream,
            task: None,
        };
        p.restore();
        p
    }

    pub fn restore(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener: TcpListener = socket.listen(64).unwrap();
        self.addr = listener.local_addr().unwrap();
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut pipes = tokio::task::JoinSet::new();
            while let Ok((mut down, _)) = listener.accept().await {
                let upstream = upstream.clone();
                pipes.spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        }));
    }

    /// Closes the listener and every forwarded connection (the JoinSet dies with the task).
    pub async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

/// The endpoint's address (`host:port`).
pub fn endpoint() -> String {
    url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned()
}

/// A plain connection to one node.
pub async fn node(addr: &str) -> redis::RedisResult<MultiplexedConnection> {
    redis::Client::open(format!("redis://{addr}"))?
        .get_multiplexed_async_connection()
        .await
}

/// One master: the slot ranges it serves and its replicas.
#[derive(Debug, Clone)]
pub struct Shard {
    pub master: String,
    pub slots: Vec<(u16, u16)>,
    pub replicas: Vec<String>,
}

impl Shard {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&slot))
    }
}

/// The shards as `addr` sees them, from `CLUSTER NODES` (Redis 7.0's cached `CLUSTER SLOTS`
/// reply can miss a replica that rejoined); failing nodes are left out.
pub async fn shards(addr: &str) -> redis::RedisResult<Vec<Shard>> {
    let mut conn = node(addr).await?;
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut conn)
        .await?;
    // <id> <ip:port@cport> <flags> <master id|-> <ping> <pong> <epoch> <link> <slot ranges...>
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 8 && !f[2].contains("fail"))
        .collect();
    let addr_of = |f: &[&str]| f[1].split('@').next().unwrap_or_default().to_owned();
    let mut shards = Vec::new();
    for f in lines.iter().filter(|f| f[2].contains("master")) {
        let slots = f[8..]
            .iter()
            .filter(|r| !r.starts_with('['))
            .filter_map(|r| {
                let (lo, hi) = r.split_once('-').unwrap_or((r, r));
                Some((lo.parse().ok()?, hi.parse().ok()?))
            })
            .collect::<Vec<(u16, u16)>>();
        if slots.is_empty() {
            continue;
        }
        let replicas = lines
            .iter()
            .filter(|r| r[2].contains("slave") && r[3] == f[0])
            .map(|r| addr_of(r))
            .collect();
        shards.push(Shard {
            master: addr_of(f),
            slots,
            replicas,
        });
    }
    shards.sort_by(|a, b| a.master.cmp(&b.master));
    Ok(shards)
}

/// The shard serving `slot`, as `addr` sees it.
pub async fn shard_of(addr: &str, slot: u16) -> Option<Shard> {
    shards(addr)
        .await
        .ok()?
        .into_iter()
        .find(|s| s.serves(slot))
}

pub async fn keyslot(conn: &mut MultiplexedConnection, key: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

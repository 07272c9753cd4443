//! What the Redis Cluster tests share: the cluster's endpoint and its layout as its nodes see it.
#![allow(dead_code)]

use redis::aio::MultiplexedConnection;

/// The configuration endpoint: `REDIS_CLUSTER_URL`, default the local cluster of
/// `integration/redis-cluster.sh`.
pub fn url() -> String {
    std::env::var("REDIS_CLUSTER_URL").unwrap_or_else(|_| "redis://127.0.0.1:7000".to_owned())
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

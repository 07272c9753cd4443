//! The monitoring timeline on Redis, shared by every instance.

use crate::conn::Redis;
use async_trait::async_trait;
use flash_core::domain::{TIMELINE_SECONDS, TimelineRecord};
use flash_core::ports::{StoreResult, TimelineStore};
use std::collections::HashMap;

/// A second's record outlives the window by this much, for instances whose clocks lag.
const TTL_SLACK_SECONDS: u64 = 60;

/// [`TimelineStore`] on Redis: `{tl}:<unix second>` HASH of counters, TTL 16 minutes, so at most
/// [`TIMELINE_SECONDS`] + 60 records exist at once whatever writes them. Adds are `HINCRBY`, so
/// the instances' counts of one second sum up; the `{tl}` hash tag keeps every record in one
/// Redis Cluster slot, so a read is one pipeline to one node.
#[derive(Debug, Clone)]
pub struct RedisTimeline {
    redis: Redis,
}

impl RedisTimeline {
    pub fn new(redis: Redis) -> Self {
        RedisTimeline { redis }
    }

    fn key(&self, second: u64) -> String {
        format!("{}{{tl}}:{second}", self.redis.prefix())
    }
}

#[async_trait]
impl TimelineStore for RedisTimeline {
    async fn record(
        &self,
        second: u64,
        adds: &[(String, u64)],
        levels: &[(String, u64)],
    ) -> StoreResult<()> {
        let key = self.key(second);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (name, n) in adds {
            pipe.cmd("HINCRBY").arg(&key).arg(name).arg(*n).ignore();
        }
        if !levels.is_empty() {
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (name, n) in levels {
                hset.arg(name).arg(*n);
            }
            pipe.add_command(hset).ignore();
        }
        pipe.cmd("EXPIRE")
            .arg(&key)
            .arg(TIMELINE_SECONDS + TTL_SLACK_SECONDS)
            .ignore();
        self.redis.query("timeline record", &pipe).await
    }

    async fn read(&self, from: u64, to: u64) -> StoreResult<Vec<TimelineRecord>> {
        let from = from.max(to.saturating_sub(TIMELINE_SECONDS - 1));
        if from > to {
            return Ok(Vec::new());
        }
        let seconds: Vec<u64> = (from..=to).collect();
        let mut pipe = redis::pipe();
        for s in &seconds {
            pipe.cmd("HGETALL").arg(self.key(*s));
        }
        let maps: Vec<HashMap<String, u64>> = self.redis.query("timeline read", &pipe).await?;
        Ok(seconds
            .into_iter()
            .zip(maps)
            .filter(|(_, m)| !m.is_empty())
            .map(|(second, fields)| TimelineRecord {
                second,
                fields: fields.into_iter().collect(),
            })
            .collect())
    }
}

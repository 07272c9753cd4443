//! The mock processor's verdict ledger and the health check.

use crate::conn::Redis;
use crate::reply::{malformed, opt_text};
use async_trait::async_trait;
use flash_core::PaymentId;
use flash_core::domain::Verdict;
use flash_core::ports::{HealthCheck, PaymentLedger, StoreResult};
use redis::Value;
use std::time::Duration;

/// How long a verdict is remembered: far longer than any redelivery of its request.
pub const DEFAULT_LEDGER_TTL: Duration = Duration::from_secs(7 * 86_400);

/// [`PaymentLedger`] on Redis: `P pay:<payment>` HASH `verdict`, `published`, TTL 7 days.
#[derive(Debug, Clone)]
pub struct RedisPaymentLedger {
    redis: Redis,
    ttl: Duration,
}

impl RedisPaymentLedger {
    pub fn new(redis: Redis) -> Self {
        RedisPaymentLedger {
            redis,
            ttl: DEFAULT_LEDGER_TTL,
        }
    }

    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    fn key(&self, payment: PaymentId) -> String {
        format!("{}pay:{payment}", self.redis.prefix())
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }
}

fn parse_verdict(s: &str) -> StoreResult<Verdict> {
    match s {
        "OK" => Ok(Verdict::Ok),
        "FAIL" => Ok(Verdict::Fail),
        other => Err(malformed("ledger", format!("verdict {other:?}"))),
    }
}

#[async_trait]
impl PaymentLedger for RedisPaymentLedger {
    /// `HSETNX` decides atomically (the first verdict wins and never changes); the transaction
    /// keeps the TTL from ever being missing.
    async fn decide(&self, payment: PaymentId, proposed: Verdict) -> StoreResult<Verdict> {
        let key = self.key(payment);
        let ttl = self.ttl_ms();
        let (stored,): (Value,) = self
            .redis
            .query(
                "ledger decide",
                redis::pipe()
                    .atomic()
                    .cmd("HSETNX")
                    .arg(&key)
                    .arg("verdict")
                    .arg(proposed.as_str())
                    .ignore()
                    .cmd("HGET")
                    .arg(&key)
                    .arg("verdict")
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl)
                    .ignore(),
            )
            .await?;
        let stored = opt_text(&stored, "ledger decide")?
            .ok_or_else(|| malformed("ledger decide", "no verdict after HSETNX"))?;
        parse_verdict(&stored)
    }

    async fn published(&self, payment: PaymentId) -> StoreResult<bool> {
        let key = self.key(payment);
        self.redis.flag("ledger published", &key, "published").await
    }

    async fn mark_published(&self, payment: PaymentId) -> StoreResult<()> {
        let key = self.key(payment);
        let ttl = self.ttl_ms();
        self.redis
            .query(
                "ledger mark published",
                redis::pipe()
                    .atomic()
                    .cmd("HSET")
                    .arg(&key)
                    .arg("published")
                    .arg("1")
                    .ignore()
                    .cmd("PEXPIRE")
                    .arg(&key)
                    .arg(ttl)
                    .ignore(),
            )
            .await
    }
}

/// Reachability of Redis for `/ready` and `/health`: a `PING` within the command timeout.
#[derive(Debug, Clone)]
pub struct RedisHealth {
    redis: Redis,
}

impl RedisHealth {
    pub fn new(redis: Redis) -> Self {
        RedisHealth { redis }
    }
}

#[async_trait]
impl HealthCheck for RedisHealth {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.redis.ping().await
    }
}

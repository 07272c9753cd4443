//! Refresh-token sessions and fixed-window rate limits.

use crate::conn::Redis;
use crate::reply::{array, at, int, malformed, text};
use async_trait::async_trait;
use flash_core::domain::{RateDecision, RefreshSession, Rotation};
use flash_core::limits::RateKey;
use flash_core::ports::{RateHit, RateLimiter, SessionStore, StoreResult, hit_in_turn};
use flash_core::{FamilyId, StoreError, Timestamp, TokenId};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

static ISSUE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_issue.lua")));
static ROTATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_rotate.lua")));
static REVOKE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/session_revoke.lua")));
static HIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/rate_hit.lua")));

/// Shortest TTL of a session key, whatever its `expires_at` says by the server's clock.
const MIN_SESSION_TTL: Duration = Duration::from_secs(60);

/// [`SessionStore`] on Redis.
///
/// Keys (all under one `{sessions}` hash tag, since `rotate` knows only the token and must reach
/// its family in the same atomic script): `P s:{sessions}:t:<jti>` HASH `family user exp state`
/// with the token's remaining life as TTL, and `P s:{sessions}:f:<family>` HASH `revoked`, whose
/// TTL is stretched to cover the longest-lived token of the family.
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    redis: Redis,
}

impl RedisSessionStore {
    pub fn new(redis: Redis) -> Self {
        RedisSessionStore { redis }
    }

    fn token_key(&self, jti: TokenId) -> String {
        format!("{}s:{{sessions}}:t:{jti}", self.redis.prefix())
    }

    fn family_prefix(&self) -> String {
        format!("{}s:{{sessions}}:f:", self.redis.prefix())
    }

    fn family_key(&self, family: FamilyId) -> String {
        format!("{}{family}", self.family_prefix())
    }
}

fn parse_id<T: std::str::FromStr>(s: &str, what: &str) -> StoreResult<T> {
    s.parse().map_err(|_| malformed(what, format!("id {s:?}")))
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn issue(&self, session: RefreshSession) -> StoreResult<()> {
        let mut inv = ISSUE.prepare_invoke();
        inv.key(self.token_key(session.jti))
            .key(self.family_key(session.family))
            .arg(session.family.to_string())
            .arg(session.user.to_string())
            .arg(session.expires_at.millis())
            .arg(u64::try_from(MIN_SESSION_TTL.as_millis()).unwrap_or(u64::MAX));
        let status: i64 = self.redis.query("session issue", &inv).await?;
        match status {
            1 => Ok(()),
            -1 => Err(StoreError::Conflict(format!(
                "refresh token {} already issued",
                session.jti
            ))),
            n => Err(malformed("session issue", format!("status {n}"))),
        }
    }

    async fn rotate(&self, jti: TokenId, now: Timestamp) -> StoreResult<Rotation> {
        const WHAT: &str = "session rotate";
        let mut inv = ROTATE.prepare_invoke();
        inv.key(self.token_key(jti))
            .arg(now.millis())
            .arg(self.family_prefix());
        let v = self.redis.query(WHAT, &inv).await?;
        let items = array(v, WHAT)?;
        match int(at(&items, 0, WHAT)?, WHAT)? {
            0 => Ok(Rotation::Unknown),
            1 => Ok(Rotation::Rotated(RefreshSession {
                jti,
                family: parse_id(&text(at(&items, 1, WHAT)?, WHAT)?, WHAT)?,
                user: parse_id(&text(at(&items, 2, WHAT)?, WHAT)?, WHAT)?,
                expires_at: Timestamp::from_millis(int(at(&items, 3, WHAT)?, WHAT)?),
            })),
            2 => Ok(Rotation::Reused {
                family: parse_id(&text(at(&items, 1, WHAT)?, WHAT)?, WHAT)?,
            }),
            n => Err(malformed(WHAT, format!("status {n}"))),
        }
    }

    async fn revoke_family(&self, family: FamilyId) -> StoreResult<()> {
        let mut inv = REVOKE.prepare_invoke();
        inv.key(self.family_key(family));
        let _: i64 = self.redis.query("session revoke", &inv).await?;
        Ok(())
    }

    /// A family nobody remembers (never issued, or all its tokens expired) was never revoked,
    /// and none of its tokens can be rotated any more.
    async fn family_alive(&self, family: FamilyId) -> StoreResult<bool> {
        let key = self.family_key(family);
        let revoked = self.redis.flag("session family", &key, "revoked").await?;
        Ok(!revoked)
    }
}

/// [`RateLimiter`] on Redis: one hash per key (`P rl:<key>`: hit count and window end) written by
/// one script (every key of a `hit_all` on one node in one run), expiring on its own when the
/// window is over.
///
/// The window opens at the first hit and ends `window` later by the caller's clock, like every
/// time-based port; the key's TTL (the window length) lets Redis forget it without a sweeper.
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    redis: Redis,
}

impl RedisRateLimiter {
    pub fn new(redis: Redis) -> Self {
        RedisRateLimiter { redis }
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn hit(
        &self,
        key: &RateKey,
        limit: u32,
        window: Duration,
        now: Timestamp,
    ) -> StoreResult<RateDecision> {
        self.count(&[RateHit { key, limit, window }], now).await
    }

    /// One script over every key on one node. On a Redis Cluster the keys (an address's and a
    /// user's) live in different slots, which no script may span: one hit after another there.
    async fn hit_all(&self, hits: &[RateHit<'_>], now: Timestamp) -> StoreResult<RateDecision> {
        if self.redis.is_cluster() && hits.len() > 1 {
            return hit_in_turn(self, hits, now).await;
        }
        self.count(hits, now).await
    }
}

impl RedisRateLimiter {
    fn key(&self, key: &RateKey) -> String {
        format!("{}rl:{key}", self.redis.prefix())
    }

    /// `hits` counted by one run of the rate script (`rate_hit.lua`).
    async fn count(&self, hits: &[RateHit<'_>], now: Timestamp) -> StoreResult<RateDecision> {
        const WHAT: &str = "rate limit";
        if hits.is_empty() {
            return Ok(RateDecision::Allowed);
        }
        let mut inv = HIT.prepare_invoke();
        inv.arg(now.millis());
        for h in hits {
            inv.key(self.key(h.key))
                .arg(now.plus(h.window).millis())
                .arg(window_ms(h.window))
                .arg(h.limit);
        }
        let v = self.redis.query(WHAT, &inv).await?;
        let items = array(v, WHAT)?;
        match int(at(&items, 0, WHAT)?, WHAT)? {
            0 => Ok(RateDecision::Allowed),
            i if (1..=hits.len() as i64).contains(&i) => {
                Ok(refusal(now, int(at(&items, 1, WHAT)?, WHAT)?))
            }
            i => Err(malformed(
                WHAT,
                format!("refusing key {i} of {}", hits.len()),
            )),
        }
    }
}

fn window_ms(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// A refusal until the window that ends at `ends_ms`.
fn refusal(now: Timestamp, ends_ms: i64) -> RateDecision {
    RateDecision::Limited {
        retry_after_ms: u64::try_from(now.until(Timestamp::from_millis(ends_ms)).as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
    }
}

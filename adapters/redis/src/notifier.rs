//! Queue notices fanned out to every instance through Redis pub/sub.

use crate::conn::Redis;
use async_trait::async_trait;
use flash_core::StoreError;
use flash_core::domain::Notice;
use flash_core::ports::{QueueNotifier, QueueSubscription, StoreResult};
use futures::StreamExt;
use redis::Value;
use redis::aio::{PubSubSink, PubSubStream};
use std::time::Duration;

/// A quiet subscription pings after this long, so a connection that died without a word (a
/// failover, a dropped NAT entry) is noticed and replaced.
const KEEPALIVE: Duration = Duration::from_secs(15);
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// [`QueueNotifier`] on Redis pub/sub: notices are JSON on the channel `P queue:notices`.
///
/// Each subscription owns a dedicated connection. When that connection is lost, the subscription
/// reconnects and resubscribes by itself, with back-off, instead of ending: `next()` never returns
/// `None`, it waits until Redis is back. Notices published while it was disconnected are lost
/// (delivery is best effort, as the port says; hosts refresh positions by polling anyway).
#[derive(Debug, Clone)]
pub struct RedisQueueNotifier {
    redis: Redis,
    channel: String,
}

impl RedisQueueNotifier {
    pub fn new(redis: Redis) -> Self {
        let channel = format!("{}queue:notices", redis.prefix());
        RedisQueueNotifier { redis, channel }
    }

    /// The pub/sub channel (for operators: `SUBSCRIBE` to it to watch admissions).
    pub fn channel(&self) -> &str {
        &self.channel
    }
}

#[async_trait]
impl QueueNotifier for RedisQueueNotifier {
    async fn announce(&self, notice: Notice) -> StoreResult<()> {
        let payload = serde_json::to_string(&notice)
            .map_err(|e| StoreError::Internal(format!("queue notice: {e}")))?;
        let channel = self.channel.clone();
        // The receiver count is of no use: nobody listening is not an error.
        let _receivers: i64 = self
            .redis
            .query(
                "queue announce",
                redis::cmd("PUBLISH").arg(&channel).arg(&payload),
            )
            .await?;
        Ok(())
    }

    /// Subscribes before returning, so every notice announced afterwards is delivered.
    async fn subscribe(&self) -> StoreResult<Box<dyn QueueSubscription>> {
        let conn = connect(&self.redis, &self.channel).await?;
        Ok(Box::new(RedisSubscription {
            redis: self.redis.clone(),
            channel: self.channel.clone(),
            conn: Some(conn),
            backoff: RECONNECT_MIN,
        }))
    }
}

async fn connect(redis: &Redis, channel: &str) -> StoreResult<(PubSubSink, PubSubStream)> {
    let mut pubsub = redis.pubsub().await?;
    match tokio::time::timeout(redis.timeout(), pubsub.subscribe(channel)).await {
        Ok(Ok(())) => Ok(pubsub.split()),
        Ok(Err(e)) => Err(StoreError::Unavailable(format!("redis subscribe: {e}"))),
        Err(_) => Err(StoreError::Unavailable(
            "redis subscribe: no confirmation".to_owned(),
        )),
    }
}

enum Woke {
    Message(Option<redis::Msg>),
    Quiet,
}

struct RedisSubscription {
    redis: Redis,
    channel: String,
    conn: Option<(PubSubSink, PubSubStream)>,
    backoff: Duration,
}

impl RedisSubscription {
    /// Whether the connection still answers a `PING`.
    async fn alive(&mut self) -> bool {
        let Some((sink, _)) = self.conn.as_mut() else {
            return false;
        };
        matches!(
            tokio::time::timeout(self.redis.timeout(), sink.ping::<Value>()).await,
            Ok(Ok(_))
        )
    }
}

#[async_trait]
impl QueueSubscription for RedisSubscription {
    async fn next(&mut self) -> Option<Notice> {
        loop {
            let Some((_, stream)) = self.conn.as_mut() else {
                match connect(&self.redis, &self.channel).await {
                    Ok(conn) => {
                        tracing::info!(channel = %self.channel, "queue notices: resubscribed");
                        self.conn = Some(conn);
                        self.backoff = RECONNECT_MIN;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "queue notices: resubscribe failed");
                        tokio::time::sleep(self.backoff).await;
                        self.backoff = (self.backoff * 2).min(RECONNECT_MAX);
                    }
                }
                continue;
            };
            let woke = tokio::select! {
                msg = stream.next() => Woke::Message(msg),
                () = tokio::time::sleep(KEEPALIVE) => Woke::Quiet,
            };
            match woke {
                Woke::Message(Some(msg)) => {
                    match serde_json::from_slice::<Notice>(msg.get_payload_bytes()) {
                        Ok(notice) => return Some(notice),
                        // Someone else's message on our channel: skip it, keep listening.
                        Err(e) => {
                            tracing::warn!(error = %e, "queue notices: malformed notice skipped");
                        }
                    }
                }
                Woke::Message(None) => {
                    tracing::warn!(channel = %self.channel, "queue notices: connection lost, resubscribing");
                    self.conn = None;
                }
                Woke::Quiet => {
                    if !self.alive().await {
                        tracing::warn!(channel = %self.channel, "queue notices: connection silent, resubscribing");
                        self.conn = None;
                    }
                }
            }
        }
    }
}

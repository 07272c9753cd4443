//! The consuming side: [`AmqpConsumer`] and the acker that settles its deliveries.

use crate::backoff::Backoff;
use crate::config::AmqpConfig;
use crate::connection::{self, Confirmed, publish_confirmed, store_error};
use crate::counters::{AmqpCounters, Counters};
use crate::topology::{
    self, ATTEMPT_HEADER, DEAD_LETTER_ATTEMPTS_HEADER, DEAD_LETTER_REASON_HEADER, Declared,
    dlq_name, retry_bucket, retry_queue_name,
};
use async_trait::async_trait;
use flash_core::StoreError;
use flash_core::messages::Envelope;
use flash_core::ports::{Acker, BusConsumer, Delivery, Disposition, StoreResult};
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info};

/// Reconnection pacing of a consumer: quick after a single loss, at most 5 s between attempts
/// during an outage.
const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Bound on (re)opening a consumer: connecting, declaring, setting the prefetch, subscribing. A
/// broker that accepts the socket and then stalls must not hold `next` forever.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

/// Makes consumer tags unique within the process (the broker requires it per channel; unique
/// tags also tell consumers apart in the management UI).
static CONSUMER_SEQ: AtomicU64 = AtomicU64::new(0);

/// The consuming side of one queue.
///
/// Connects on the first [`BusConsumer::next`], declares the topology, sets the prefetch and
/// consumes with manual acknowledgements. After a lost connection or a cancelled consumer,
/// `next` returns `Unavailable` once and the following call reconnects (with back-off), so the
/// host's loop resumes by itself. `next` is cancel-safe: a delivery it has not returned stays in
/// the client's buffer for the next call, or goes back to the broker when the connection closes.
///
/// The broker pushes at most [`AmqpConfig::prefetch`] unacknowledged deliveries; set it to the
/// host's handler concurrency so that no message waits in one pod's buffer while another pod is
/// idle. A delivery dropped without being settled is requeued at once.
#[derive(Clone)]
pub struct AmqpConsumer {
    inner: Arc<Inner>,
}

struct Inner {
    config: AmqpConfig,
    queue: String,
    counters: Arc<Counters>,
    session: tokio::sync::Mutex<Session>,
    shutdown: CancellationToken,
}

struct Session {
    live: Option<Live>,
    backoff: Backoff,
}

struct Live {
    link: Arc<Link>,
    stream: lapin::Consumer,
}

/// One connection of a consumer. Every unsettled delivery holds it, so the channel whose
/// delivery tags they carry stays open until they are settled.
struct Link {
    connection: Connection,
    /// Retry and dead-letter copies, published with confirms before the original is acked.
    publish: Channel,
    queue: String,
    dlq: String,
    max_attempts: u32,
    settle_timeout: Duration,
    counters: Arc<Counters>,
    declared: Declared,
    /// Keeps the consuming channel open while deliveries are settled (after a shutdown too).
    _consume: Channel,
    _events: DropGuard,
}

impl std::fmt::Debug for AmqpConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpConsumer")
            .field("queue", &self.inner.queue)
            .finish_non_exhaustive()
    }
}

impl AmqpConsumer {
    /// A consumer of `queue` with counters of its own; [`crate::AmqpBus::consumer`] shares the
    /// bus's instead.
    pub fn new(config: AmqpConfig, queue: &str) -> Self {
        Self::with_counters(config, queue, Arc::new(Counters::default()))
    }

    pub(crate) fn with_counters(config: AmqpConfig, queue: &str, counters: Arc<Counters>) -> Self {
        AmqpConsumer {
            inner: Arc::new(Inner {
                config,
                queue: queue.to_owned(),
                counters,
                session: tokio::sync::Mutex::new(Session {
                    live: None,
                    backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX),
                }),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    pub fn queue(&self) -> &str {
        &self.inner.queue
    }

    pub fn counters(&self) -> AmqpCounters {
        self.inner.counters.snapshot()
    }

    /// Stops consuming: pending and later [`BusConsumer::next`] calls return `None`, the broker
    /// stops pushing, and deliveries already handed out can still be settled. Deliveries the
    /// client had buffered but not handed out go back to the queue when the connection closes
    /// (once the last handed-out delivery is settled).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let live = self.inner.session.lock().await.live.take();
        drop(live);
    }

    async fn open(&self) -> StoreResult<Live> {
        let inner = &self.inner;
        let name = format!("flash-consumer {}", inner.queue);
        let (connection, events) = connection::open(&inner.config, &name).await?;
        topology::ensure_topology(&connection, &inner.queue).await?;
        let publish = connection::confirm_channel(&connection).await?;
        let consume = connection
            .create_channel()
            .await
            .map_err(|e| store_error("cannot open a channel", &e))?;
        consume
            .basic_qos(inner.config.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| store_error("cannot set the prefetch", &e))?;
        let tag = format!(
            "flash-{}-{}",
            std::process::id(),
            CONSUMER_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let stream = consume
            .basic_consume(
                &inner.queue,
                &tag,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| store_error(&format!("cannot consume {}", inner.queue), &e))?;
        Counters::bump(&inner.counters.connections);
        info!(queue = %inner.queue, prefetch = inner.config.prefetch, "consuming from RabbitMQ");
        Ok(Live {
            link: Arc::new(Link {
                connection,
                publish,
                queue: inner.queue.clone(),
                dlq: dlq_name(&inner.queue),
                max_attempts: inner.config.max_attempts.max(1),
                settle_timeout: inner.config.publish_timeout,
                counters: Arc::clone(&inner.counters),
                declared: Declared::default(),
                _consume: consume,
                _events: events,
            }),
            stream,
        })
    }
}

#[async_trait]
impl BusConsumer for AmqpConsumer {
    async fn next(&self) -> StoreResult<Option<Delivery>> {
        let inner = &self.inner;
        let mut session = tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => return Ok(None),
            session = inner.session.lock() => session,
        };
        let session = &mut *session;
        if session.live.is_none() {
            tokio::select! {
                biased;
                () = inner.shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(session.backoff.remaining()) => {}
            }
            let opened = tokio::select! {
                biased;
                () = inner.shutdown.cancelled() => return Ok(None),
                opened = tokio::time::timeout(OPEN_TIMEOUT, self.open()) => {
                    opened.unwrap_or_else(|_| Err(StoreError::Unavailable(format!(
                        "could not start consuming {} within {OPEN_TIMEOUT:?}",
                        inner.queue
                    ))))
                }
            };
            match opened {
                Ok(live) => session.live = Some(live),
                Err(e) => {
                    let delay = session.backoff.failed();
                    debug!(queue = %inner.queue, error = %e, retry_in_ms = delay.as_millis(), "cannot consume");
                    return Err(e);
                }
            }
        }
        let Some(live) = session.live.as_mut() else {
            return Err(StoreError::Internal("consumer session vanished".into()));
        };
        let received = tokio::select! {
            biased;
            () = inner.shutdown.cancelled() => return Ok(None),
            // Cancel-safe: lapin takes a delivery from its buffer only when returning it.
            received = live.stream.next() => received,
        };
        match received {
            Some(Ok(delivery)) => {
                session.backoff.reset();
                Counters::bump(&inner.counters.consumed);
                Ok(Some(to_delivery(Arc::clone(&live.link), delivery)))
            }
            Some(Err(e)) => {
                session.live = None;
                session.backoff.failed();
                Err(store_error(
                    &format!("lost the consumer of {}", inner.queue),
                    &e,
                ))
            }
            None => {
                // The broker cancelled the consumer (queue deleted) or the channel closed.
                session.live = None;
                session.backoff.failed();
                Err(StoreError::Unavailable(format!(
                    "the consumer of {} was cancelled",
                    inner.queue
                )))
            }
        }
    }
}

fn short_string(value: Option<&ShortString>) -> String {
    value.map(|s| s.as_str().to_owned()).unwrap_or_default()
}

fn to_delivery(link: Arc<Link>, delivery: lapin::message::Delivery) -> Delivery {
    let lapin::message::Delivery {
        properties,
        data,
        acker,
        ..
    } = delivery;
    let attempt = attempt_of(&properties);
    let envelope = Envelope {
        message_id: short_string(properties.message_id().as_ref()),
        correlation_id: short_string(properties.correlation_id().as_ref()),
        body: data.clone(),
    };
    Delivery {
        envelope,
        attempt,
        acker: Box::new(AmqpAcker {
            link,
            pending: Mutex::new(Some(Pending {
                acker,
                properties,
                body: data,
                attempt,
            })),
        }),
    }
}

/// The attempt recorded in [`ATTEMPT_HEADER`]; 1 when absent or unreadable (a legacy message).
fn attempt_of(properties: &BasicProperties) -> u32 {
    properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER))
        .and_then(header_u32)
        .unwrap_or(1)
        .max(1)
}

/// A header as a count: other clients may write integers of any width, or digits as text.
fn header_u32(value: &AMQPValue) -> Option<u32> {
    match value {
        AMQPValue::ShortShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
        AMQPValue::LongUInt(n) => Some(*n),
        AMQPValue::ShortShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok(),
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok(),
        AMQPValue::Boolean(_)
        | AMQPValue::Float(_)
        | AMQPValue::Double(_)
        | AMQPValue::DecimalValue(_)
        | AMQPValue::FieldArray(_)
        | AMQPValue::Timestamp(_)
        | AMQPValue::FieldTable(_)
        | AMQPValue::ByteArray(_)
        | AMQPValue::Void => None,
    }
}

/// Headers a moved copy keeps: the application's, without our bookkeeping (rewritten for the
/// copy) and without the broker's `x-death` family, which a retry queue adds each time its TTL
/// sends a message back and which would only pile up on fresh copies.
fn carried_headers(properties: &BasicProperties) -> BTreeMap<ShortString, AMQPValue> {
    let Some(headers) = properties.headers() else {
        return BTreeMap::new();
    };
    headers
        .inner()
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k != ATTEMPT_HEADER
                && k != DEAD_LETTER_REASON_HEADER
                && k != DEAD_LETTER_ATTEMPTS_HEADER
                && k != "x-death"
                && !k.starts_with("x-first-death-")
                && !k.starts_with("x-last-death-")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The original's properties for a copy, persistent, without an expiration (a per-message TTL
/// would cut a retry delay short) and without `user-id` (the broker checks it against the
/// publishing user).
fn copy_properties(
    original: &BasicProperties,
    headers: BTreeMap<ShortString, AMQPValue>,
) -> BasicProperties {
    let mut p = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(FieldTable::from(headers));
    // The string-valued properties, each kept as it was.
    macro_rules! keep {
        ($($get:ident => $with:ident),+) => {
            $(if let Some(v) = original.$get() {
                p = p.$with(v.clone());
            })+
        };
    }
    keep!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        message_id => with_message_id,
        correlation_id => with_correlation_id,
        kind => with_type,
        app_id => with_app_id,
        reply_to => with_reply_to
    );
    if let Some(v) = original.timestamp() {
        p = p.with_timestamp(*v);
    }
    if let Some(v) = original.priority() {
        p = p.with_priority(*v);
    }
    p
}

/// What an unsettled delivery needs to be acknowledged or moved.
struct Pending {
    acker: lapin::acker::Acker,
    properties: BasicProperties,
    body: Vec<u8>,
    attempt: u32,
}

impl Link {
    async fn settle(&self, pending: &Pending, disposition: Disposition) -> StoreResult<()> {
        match disposition {
            Disposition::Ack => {
                self.ack(pending).await?;
                Counters::bump(&self.counters.acked);
            }
            Disposition::Retry { after: _ } if pending.attempt >= self.max_attempts => {
                let reason = format!("still failing after {} attempts", pending.attempt);
                self.dead_letter(pending, &reason).await?;
            }
            Disposition::Retry { after } => {
                let target = match retry_bucket(after) {
                    Some(bucket) => self.retry_queue(bucket).await?,
                    None => self.queue.clone(),
                };
                let mut headers = carried_headers(&pending.properties);
                headers.insert(
                    ATTEMPT_HEADER.into(),
                    AMQPValue::LongUInt(pending.attempt.saturating_add(1)),
                );
                self.republish(&target, pending, headers).await?;
                self.ack(pending).await?;
                Counters::bump(&self.counters.retried);
            }
            Disposition::DeadLetter { reason } => self.dead_letter(pending, &reason).await?,
        }
        Ok(())
    }

    async fn dead_letter(&self, pending: &Pending, reason: &str) -> StoreResult<()> {
        let mut headers = carried_headers(&pending.properties);
        headers.insert(
            DEAD_LETTER_REASON_HEADER.into(),
            AMQPValue::LongString(LongString::from(bounded_reason(reason))),
        );
        headers.insert(
            DEAD_LETTER_ATTEMPTS_HEADER.into(),
            AMQPValue::LongUInt(pending.attempt),
        );
        let dlq = self.dlq.clone();
        self.declared
            .ensure(&dlq, || topology::ensure_topology(&self.connection, &dlq))
            .await?;
        self.republish(&dlq, pending, headers).await?;
        self.ack(pending).await?;
        Counters::bump(&self.counters.dead_lettered);
        Ok(())
    }

    /// The retry queue of `bucket`, declared on first use on this connection.
    async fn retry_queue(&self, bucket: u32) -> StoreResult<String> {
        let name = retry_queue_name(&self.queue, bucket);
        self.declared
            .ensure(&name, || {
                topology::ensure_retry_queue(&self.connection, &self.queue, bucket)
            })
            .await?;
        Ok(name)
    }

    async fn republish(
        &self,
        target: &str,
        pending: &Pending,
        headers: BTreeMap<ShortString, AMQPValue>,
    ) -> StoreResult<()> {
        let properties = copy_properties(&pending.properties, headers);
        match publish_confirmed(&self.publish, target, &pending.body, properties, || {}).await {
            Ok(Confirmed::Ack) => Ok(()),
            Ok(Confirmed::Returned(reply)) => {
                // Deleted behind our back: the next settle declares it again.
                self.declared.forget(target);
                Err(StoreError::Unavailable(format!(
                    "RabbitMQ returned the copy for {target}: {reply}"
                )))
            }
            Ok(Confirmed::Nack) => Err(StoreError::Unavailable(format!(
                "RabbitMQ refused the copy for {target} (nack)"
            ))),
            Err(e) => Err(store_error(&format!("cannot publish to {target}"), &e)),
        }
    }

    async fn ack(&self, pending: &Pending) -> StoreResult<()> {
        match pending.acker.ack(BasicAckOptions::default()).await {
            Ok(true) => Ok(()),
            // lapin refuses without sending when the channel is gone: the broker redelivers.
            Ok(false) => Err(StoreError::Unavailable(
                "the delivery's channel is closed; the broker will redeliver it".into(),
            )),
            Err(e) => Err(store_error("cannot acknowledge", &e)),
        }
    }
}

/// Settles one delivery of an [`AmqpConsumer`].
struct AmqpAcker {
    link: Arc<Link>,
    pending: Mutex<Option<Pending>>,
}

impl AmqpAcker {
    fn take(&self) -> Option<Pending> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn put_back(&self, pending: Pending) {
        *self.pending.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
    }
}

#[async_trait]
impl Acker for AmqpAcker {
    async fn settle(&self, disposition: Disposition) -> StoreResult<()> {
        let Some(pending) = self.take() else {
            return Err(StoreError::Internal("delivery settled twice".into()));
        };
        let limit = self.link.settle_timeout;
        let outcome = tokio::time::timeout(limit, self.link.settle(&pending, disposition)).await;
        let result = outcome.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "RabbitMQ did not settle the delivery within {limit:?}"
            )))
        });
        if result.is_err() {
            // Unsettled: dropping it requeues it. lapin settles a delivery tag at most once, so a
            // requeue after an acknowledgement already sent is a no-op, never a channel error.
            self.put_back(pending);
        }
        result
    }
}

impl Drop for AmqpAcker {
    fn drop(&mut self) {
        let Some(pending) = self.take() else {
            return;
        };
        // Hand it back now rather than when the connection closes, so the prefetch slot frees up.
        // Without a runtime the channel's closing returns it instead.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let link = Arc::clone(&self.link);
            runtime.spawn(async move {
                let requeue = BasicNackOptions {
                    multiple: false,
                    requeue: true,
                };
                if let Err(e) = pending.acker.nack(requeue).await {
                    debug!(queue = %link.queue, error = %e, "could not requeue a dropped delivery");
                }
            });
        }
    }
}

/// Longest dead-letter reason kept in its header: a header frame cannot be split, and it must
/// fit in one frame (`DEFAULT_FRAME_MAX`, 8 KiB) with the message's other headers.
const MAX_REASON_BYTES: usize = 1024;

/// `reason` cut to [`MAX_REASON_BYTES`] at a character boundary.
fn bounded_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_dead_letter_reason_is_cut_at_a_character_boundary() {
        assert_eq!(bounded_reason("short"), "short");
        let long = "é".repeat(MAX_REASON_BYTES);
        let cut = bounded_reason(&long);
        assert!(cut.len() <= MAX_REASON_BYTES && cut.len() > MAX_REASON_BYTES - 2);
        assert!(long.starts_with(cut));
    }

    fn with_headers(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
        let map: BTreeMap<ShortString, AMQPValue> = pairs
            .iter()
            .map(|(k, v)| (ShortString::from(*k), v.clone()))
            .collect();
        BasicProperties::default().with_headers(FieldTable::from(map))
    }

    #[test]
    fn attempt_defaults_to_one_and_reads_any_integer_or_digits() {
        assert_eq!(attempt_of(&BasicProperties::default()), 1);
        assert_eq!(attempt_of(&with_headers(&[])), 1);
        for (value, expected) in [
            (AMQPValue::LongUInt(3), 3),
            (AMQPValue::LongLongInt(4), 4),
            (AMQPValue::ShortShortUInt(2), 2),
            (AMQPValue::LongString(LongString::from("5")), 5),
            (AMQPValue::LongInt(-2), 1),
            (AMQPValue::LongUInt(0), 1),
            (AMQPValue::Boolean(true), 1),
        ] {
            assert_eq!(
                attempt_of(&with_headers(&[(ATTEMPT_HEADER, value.clone())])),
                expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn copies_keep_application_headers_and_drop_bookkeeping() {
        let original = with_headers(&[
            ("tenant", AMQPValue::LongString(LongString::from("t1"))),
            (ATTEMPT_HEADER, AMQPValue::LongUInt(2)),
            ("x-death", AMQPValue::Void),
            ("x-first-death-queue", AMQPValue::Void),
            ("x-last-death-reason", AMQPValue::Void),
        ])
        .with_message_id("m".into())
        .with_correlation_id("c".into())
        .with_content_type("application/json".into())
        .with_expiration("10".into())
        .with_user_id("someone".into());
        let headers = carried_headers(&original);
        assert_eq!(
            headers.keys().map(ShortString::as_str).collect::<Vec<_>>(),
            ["tenant"]
        );
        let copy = copy_properties(&original, headers);
        assert_eq!(
            copy.message_id().as_ref().map(ShortString::as_str),
            Some("m")
        );
        assert_eq!(
            copy.correlation_id().as_ref().map(ShortString::as_str),
            Some("c")
        );
        assert_eq!(
            copy.content_type().as_ref().map(ShortString::as_str),
            Some("application/json")
        );
        assert_eq!(*copy.delivery_mode(), Some(2));
        assert_eq!(*copy.expiration(), None);
        assert_eq!(*copy.user_id(), None);
    }
}
